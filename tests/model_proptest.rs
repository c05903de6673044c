//! The store against a HashMap model: random put / overwrite / get / delete / reopen sequences,
//! with parts drawn from a small pool so blobs are shared across keys.

use std::collections::HashMap;

use pipecache::{Artifact, StoreOptions};
use pipecache_test_support::{TempStore, json_like, random_bytes};
use proptest::prelude::*;

#[derive(Clone, Debug)]
enum Op {
    Put { key: u8, parts: Vec<u8> },
    Get { key: u8 },
    Delete { key: u8 },
    Reopen,
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        5 => (0u8..6, proptest::collection::vec(0u8..12, 0..6)).prop_map(|(key, parts)| Op::Put { key, parts }),
        4 => (0u8..6).prop_map(|key| Op::Get { key }),
        2 => (0u8..6).prop_map(|key| Op::Delete { key }),
        1 => Just(Op::Reopen),
    ]
}

/// Pool entry `i`: sizes from empty to larger than a (small) chunk, some compressible.
fn pooled(i: u8) -> Vec<u8> {
    match i % 4 {
        0 => Vec::new(),
        1 => random_bytes(u64::from(i), 100 + usize::from(i) * 37),
        2 => json_like(u64::from(i), 3000 + usize::from(i) * 101),
        _ => random_bytes(u64::from(i), 9000),
    }
}

fn artifact(parts: &[u8]) -> Artifact {
    let mut a = Artifact::default().with_kind("model");
    for (j, p) in parts.iter().enumerate() {
        a = a.with_part(format!("part{j}"), pooled(*p));
    }
    a
}

async fn check_against_model(ts: &TempStore, model: &HashMap<String, Artifact>) {
    let store = ts.store();
    for k in 0u8..6 {
        let key = format!("key{k}");
        let got = store.get(&key).await.expect("get");
        assert_eq!(got.as_ref(), model.get(&key), "key {key}");
    }
    let stats = store.stats().await.expect("stats");
    assert_eq!(stats.artifacts, model.len() as u64);
    let logical: u64 = model.values().map(Artifact::logical_size).sum();
    assert_eq!(stats.logical_bytes, logical);
    let mut distinct: Vec<Vec<u8>> = model
        .values()
        .flat_map(|a| a.parts.iter().map(|p| p.data.clone()))
        .collect();
    distinct.sort();
    distinct.dedup();
    assert_eq!(
        stats.blobs,
        distinct.len() as u64,
        "live blobs = distinct payloads in the model"
    );
    assert_eq!(
        stats.unique_bytes,
        distinct.iter().map(|d| d.len() as u64).sum::<u64>()
    );
    let report = store.verify().await.expect("verify");
    assert!(report.is_clean(), "{report:?}");
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 24, ..ProptestConfig::default() })]

    #[test]
    fn store_matches_hashmap_model(ops in proptest::collection::vec(op(), 1..40)) {
        let rt = tokio::runtime::Runtime::new().unwrap();
        rt.block_on(async {
            // Small chunks so sequences roll over chunk files too.
            let mut ts = TempStore::new(StoreOptions { chunk_size: 16 * 1024, ..StoreOptions::default() }).await;
            let mut model: HashMap<String, Artifact> = HashMap::new();
            for op in ops {
                match op {
                    Op::Put { key, parts } => {
                        let a = artifact(&parts);
                        ts.store().put(&format!("key{key}"), a.clone()).await.unwrap();
                        model.insert(format!("key{key}"), a);
                    }
                    Op::Get { key } => {
                        let key = format!("key{key}");
                        assert_eq!(ts.store().get(&key).await.unwrap().as_ref(), model.get(&key));
                    }
                    Op::Delete { key } => {
                        let key = format!("key{key}");
                        let existed = ts.store().delete(&key).await.unwrap();
                        assert_eq!(existed, model.remove(&key).is_some());
                    }
                    Op::Reopen => ts.reopen().await,
                }
            }
            check_against_model(&ts, &model).await;
            ts.reopen().await;
            check_against_model(&ts, &model).await;
        });
    }
}
