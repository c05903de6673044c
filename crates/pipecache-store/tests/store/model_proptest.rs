//! The store against a HashMap model: random put / put-with-TTL / overwrite / get / delete /
//! clock advance / gc / compact / reopen sequences, with parts drawn from a small pool so blobs
//! are shared across keys. Expired artifacts are misses at once and gone after a gc; gc and
//! compaction never change what a live key reads.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use pipecache_store::{Artifact, GcOptions, ManualClock, PutOptions, StoreOptions};
use pipecache_test_support::{TempStore, json_like, random_bytes};
use proptest::prelude::*;

#[derive(Clone, Debug)]
enum Op {
    Put {
        key: u8,
        parts: Vec<u8>,
        ttl_s: Option<u64>,
    },
    Get {
        key: u8,
    },
    Delete {
        key: u8,
    },
    Advance {
        secs: u64,
    },
    Gc,
    Compact,
    Reopen,
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        5 => (0u8..6, proptest::collection::vec(0u8..12, 0..6), proptest::option::of(1u64..100))
            .prop_map(|(key, parts, ttl_s)| Op::Put { key, parts, ttl_s }),
        4 => (0u8..6).prop_map(|key| Op::Get { key }),
        2 => (0u8..6).prop_map(|key| Op::Delete { key }),
        1 => (1u64..60).prop_map(|secs| Op::Advance { secs }),
        1 => Just(Op::Gc),
        1 => Just(Op::Compact),
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

/// key -> (artifact, expiry ms). Expired entries stay until a gc, like in the store.
type Model = HashMap<String, (Artifact, Option<u64>)>;

fn visible<'m>(model: &'m Model, key: &str, now: u64) -> Option<&'m Artifact> {
    model
        .get(key)
        .filter(|(_, e)| e.is_none_or(|e| now < e))
        .map(|(a, _)| a)
}

async fn check_against_model(ts: &TempStore, model: &Model, now: u64) {
    let store = ts.store();
    for k in 0u8..6 {
        let key = format!("key{k}");
        let got = store.get(&key).await.expect("get");
        assert_eq!(got.as_ref(), visible(model, &key, now), "key {key}");
    }
    let stats = store.stats().await.expect("stats");
    assert_eq!(stats.artifacts, model.len() as u64);
    let logical: u64 = model.values().map(|(a, _)| a.logical_size()).sum();
    assert_eq!(stats.logical_bytes, logical);
    let mut distinct: Vec<Vec<u8>> = model
        .values()
        .flat_map(|(a, _)| a.parts.iter().map(|p| p.data.clone()))
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
    fn store_matches_hashmap_model(
        ops in proptest::collection::vec(op(), 1..40),
        // Compaction's read-ahead of blob records: none (point lookups), a few at a time
        // (several prescan rounds per pass), or all.
        prescan_max in prop_oneof![Just(0usize), 1usize..40, Just(usize::MAX)],
        // Bytes per compaction batch: one frame per batch (every chunk in many commits,
        // records with the last) or the default (one batch per 16 KiB chunk).
        compact_batch_bytes in prop_oneof![Just(1u64), 1u64..8192, Just(8u64 << 20)],
    ) {
        let rt = tokio::runtime::Runtime::new().unwrap();
        rt.block_on(async {
            let clock = ManualClock::new(1_000_000);
            // Small chunks and an eager threshold so sequences roll over and compact chunk files.
            let options = StoreOptions {
                chunk_size: 16 * 1024,
                compact_threshold: 0.9,
                default_ttl: None,
                gc_interval: None,
                gc_prescan_max_blobs: prescan_max,
                compact_batch_bytes,
                clock: clock.clone() as Arc<dyn pipecache_store::Clock>,
                ..StoreOptions::default()
            };
            let mut ts = TempStore::new(options).await;
            let mut model: Model = HashMap::new();
            for op in ops {
                let now = pipecache_store::Clock::now_ms(&*clock);
                match op {
                    Op::Put { key, parts, ttl_s } => {
                        let a = artifact(&parts);
                        let ttl = ttl_s.map(Duration::from_secs);
                        ts.store().put_with(&format!("key{key}"), a.clone(), PutOptions { ttl, ..PutOptions::default() }).await.unwrap();
                        model.insert(format!("key{key}"), (a, ttl_s.map(|s| now + s * 1000)));
                    }
                    Op::Get { key } => {
                        let key = format!("key{key}");
                        assert_eq!(ts.store().get(&key).await.unwrap().as_ref(), visible(&model, &key, now));
                    }
                    Op::Delete { key } => {
                        let key = format!("key{key}");
                        let existed = ts.store().delete(&key).await.unwrap();
                        assert_eq!(existed, model.remove(&key).is_some());
                    }
                    Op::Advance { secs } => clock.advance(Duration::from_secs(secs)),
                    Op::Gc => {
                        let r = ts.store().gc(GcOptions::default()).await.unwrap();
                        let mut expected: Vec<String> = model
                            .iter()
                            .filter(|(_, (_, e))| e.is_some_and(|e| now >= e))
                            .map(|(k, _)| k.clone())
                            .collect();
                        expected.sort();
                        let mut got = r.expired.clone();
                        got.sort();
                        assert_eq!(got, expected, "gc removes exactly the expired keys");
                        model.retain(|_, (_, e)| e.is_none_or(|e| now < e));
                        assert!(r.evicted.is_empty(), "no budget, no eviction");
                    }
                    Op::Compact => {
                        ts.store().compact().await.unwrap();
                    }
                    Op::Reopen => ts.reopen().await,
                }
            }
            let now = pipecache_store::Clock::now_ms(&*clock);
            check_against_model(&ts, &model, now).await;
            ts.reopen().await;
            check_against_model(&ts, &model, now).await;
        });
    }
}
