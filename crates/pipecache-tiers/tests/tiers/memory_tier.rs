//! The memory tier: it keeps to its byte budget, answers hits without the store, and never
//! serves a value that a later put, delete, expiry or eviction replaced, also while writers
//! and readers run at the same time (a property test against a model, and concurrent tasks).

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use pipecache::tier::{BackendKind, MemoryTier};
use pipecache::{Artifact, CacheManager, GcOptions, ManualClock, PutOptions, StoreOptions};
use pipecache_test_support::TempStore;
use proptest::prelude::*;

async fn manager(options: StoreOptions, budget: u64) -> (TempStore, CacheManager) {
    let ts = TempStore::new(options).await;
    let m = CacheManager::builder(ts.store().clone())
        .memory_tier(budget)
        .build()
        .await
        .unwrap();
    (ts, m)
}

fn value(text: &str) -> Artifact {
    Artifact::single(text.as_bytes().to_vec())
}

fn text(a: &Artifact) -> String {
    String::from_utf8(a.parts[0].data.clone()).unwrap()
}

#[test]
fn the_byte_budget_holds() {
    let budget = 1 << 20;
    let m = MemoryTier::new(budget);
    for i in 0..200 {
        let stored = pipecache::StoredArtifact {
            artifact: Artifact::single(vec![i as u8; 50_000]),
            created_ms: 0,
            expires_ms: None,
        };
        let key = format!("k{i}");
        m.insert_if_unchanged(&key, Arc::new(stored), 0, m.generation(&key));
    }
    let held = m.weighted_size();
    assert!(held <= budget, "{held} bytes held, budget {budget}");
    assert!(
        held > budget / 2,
        "only {held} bytes held: the tier keeps too little"
    );
    // One artifact over the largest entry kept (a quarter of a shard's share, 1/16 of
    // the budget) is never kept.
    let big = pipecache::StoredArtifact {
        artifact: Artifact::single(vec![0; 300_000]),
        created_ms: 0,
        expires_ms: None,
    };
    m.insert_if_unchanged("big", Arc::new(big), 0, m.generation("big"));
    assert!(m.get("big", 0).is_none());
}

/// An artifact over `SECOND_READ_MIN` enters memory on its second read, not its first (a
/// fill costs fresh memory for every byte); a small one on its first.
#[tokio::test]
async fn large_artifacts_enter_memory_on_their_second_read() {
    use pipecache::tier::SECOND_READ_MIN;
    let (_ts, m) = manager(StoreOptions::default(), 64 << 20).await;
    let large = Artifact::single(vec![7u8; SECOND_READ_MIN as usize + 1]);
    m.put("large", large.clone()).await.unwrap();
    assert!(
        m.get_from_memory("large").is_none(),
        "a large put is not kept"
    );
    assert_eq!(m.get("large").await.unwrap().unwrap(), large);
    assert!(
        m.get_from_memory("large").is_none(),
        "kept on its first read"
    );
    assert_eq!(m.get("large").await.unwrap().unwrap(), large);
    let hit = m.get_from_memory("large").expect("kept on its second read");
    assert_eq!(hit.artifact, large);

    // A small artifact enters on its first read (a conditional put keeps nothing).
    let only_if_absent = PutOptions {
        if_absent: true,
        ..Default::default()
    };
    m.put_with("small", value("s"), only_if_absent)
        .await
        .unwrap();
    assert!(m.get_from_memory("small").is_none());
    assert_eq!(text(&m.get("small").await.unwrap().unwrap()), "s");
    assert!(
        m.get_from_memory("small").is_some(),
        "kept on its first read"
    );
}

#[tokio::test]
async fn hits_come_from_memory_and_are_counted() {
    let (_ts, m) = manager(StoreOptions::default(), 1 << 20).await;
    m.put("k", value("v1")).await.unwrap();
    let hit = m
        .get_from_memory("k")
        .expect("a small put is kept as written");
    assert_eq!(text(&hit.artifact), "v1");
    assert_eq!(text(&m.get("k").await.unwrap().unwrap()), "v1");
    // Shared, not copied: the same allocation answers again.
    assert!(Arc::ptr_eq(
        &hit,
        &m.get_shared("k").await.unwrap().unwrap()
    ));
    // Too large to keep (over 1/16 of the budget): read from the store every time,
    // and a read does not keep it either.
    m.put("big", Artifact::single(vec![7; 300_000]))
        .await
        .unwrap();
    assert!(m.get_from_memory("big").is_none());
    assert!(m.get("big").await.unwrap().is_some());
    assert!(m.get_from_memory("big").is_none());
    let stats = m.tier_stats();
    assert_eq!(stats[0].kind, BackendKind::Memory);
    assert_eq!(stats[0].hits, 3);
    assert_eq!(stats[1].kind, BackendKind::Local);
    assert_eq!(
        stats[1].hits, 1,
        "only the large artifact was read from the store"
    );
    m.put("k", value("v2")).await.unwrap();
    assert_eq!(text(&m.get("k").await.unwrap().unwrap()), "v2");
    m.delete("k").await.unwrap();
    assert!(m.get_from_memory("k").is_none());
    assert!(m.get("k").await.unwrap().is_none());
}

#[tokio::test]
async fn expiry_and_gc_eviction_take_effect_in_memory_at_once() {
    let clock = ManualClock::new(1_700_000_000_000);
    // A 100-byte budget: the filler put below takes the store over it.
    let options = StoreOptions {
        gc_interval: None,
        max_size: Some(100),
        clock: clock.clone() as Arc<dyn pipecache::Clock>,
        ..StoreOptions::default()
    };
    let (ts, m) = manager(options, 1 << 20).await;
    let short = PutOptions {
        ttl: Some(Duration::from_secs(10)),
        ..PutOptions::default()
    };
    m.put_with("short", value("expires"), short).await.unwrap();
    assert!(m.get_from_memory("short").is_some());
    clock.advance(Duration::from_secs(11));
    assert!(
        m.get_from_memory("short").is_none(),
        "expired in memory too"
    );

    m.put("long", value("stays until evicted")).await.unwrap();
    clock.advance(Duration::from_secs(1));
    m.get("long").await.unwrap().unwrap();
    assert!(m.get_from_memory("long").is_some());
    // A newer artifact takes the store over budget; "long" is the least recently used.
    clock.advance(Duration::from_secs(1));
    m.put("filler", value(&"f".repeat(90))).await.unwrap();
    ts.store().flush_access_times().await.unwrap();
    ts.store().gc(GcOptions::default()).await.unwrap();
    assert!(!ts.store().contains("long").await.unwrap(), "evicted by GC");
    assert!(
        m.get_from_memory("long").is_none(),
        "the eviction reached memory"
    );
    assert!(m.get("long").await.unwrap().is_none());
}

#[derive(Clone, Debug)]
enum Op {
    Put(u8, u16),
    Delete(u8),
    Get(u8),
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        (0..4u8, any::<u16>()).prop_map(|(k, v)| Op::Put(k, v)),
        (0..4u8).prop_map(Op::Delete),
        (0..4u8).prop_map(Op::Get),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 24, ..ProptestConfig::default() })]

    /// Against a model: every get returns what the last put left, or nothing after a
    /// delete, however reads and writes interleave.
    #[test]
    fn gets_match_a_model(ops in proptest::collection::vec(op(), 1..40)) {
        let rt = tokio::runtime::Runtime::new().unwrap();
        rt.block_on(async {
            let (_ts, m) = manager(StoreOptions::default(), 1 << 20).await;
            let mut model: HashMap<u8, u16> = HashMap::new();
            for op in ops {
                match op {
                    Op::Put(k, v) => {
                        m.put(&format!("k{k}"), value(&v.to_string())).await.unwrap();
                        model.insert(k, v);
                    }
                    Op::Delete(k) => {
                        m.delete(&format!("k{k}")).await.unwrap();
                        model.remove(&k);
                    }
                    Op::Get(k) => {
                        let got = m.get(&format!("k{k}")).await.unwrap().map(|a| text(&a));
                        prop_assert_eq!(got, model.get(&k).map(u16::to_string));
                    }
                }
            }
            Ok(())
        })?;
    }
}

/// Writers put increasing versions while readers read: a read that starts after a put was
/// acknowledged never returns an older version, memory or not.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_readers_never_see_a_replaced_value() {
    let (_ts, m) = manager(StoreOptions::default(), 1 << 20).await;
    const KEYS: usize = 3;
    const VERSIONS: u64 = 40;
    let acked: Arc<Vec<AtomicU64>> = Arc::new((0..KEYS).map(|_| AtomicU64::new(0)).collect());
    let done = Arc::new(std::sync::atomic::AtomicBool::new(false));
    for k in 0..KEYS {
        m.put(&format!("k{k}"), value("0")).await.unwrap();
    }
    let mut readers = Vec::new();
    for r in 0..4 {
        let (m, acked, done) = (m.clone(), acked.clone(), done.clone());
        readers.push(tokio::spawn(async move {
            let mut reads = 0usize;
            while !done.load(Ordering::SeqCst) || reads < 50 {
                let k = (reads + r) % KEYS;
                let floor = acked[k].load(Ordering::SeqCst);
                let got: u64 = text(&m.get(&format!("k{k}")).await.unwrap().unwrap())
                    .parse()
                    .unwrap();
                assert!(
                    got >= floor,
                    "k{k}: read {got} after {floor} was acknowledged"
                );
                reads += 1;
                // A memory hit never waits: let the writers run.
                tokio::task::yield_now().await;
            }
            reads
        }));
    }
    let mut writers = Vec::new();
    for k in 0..KEYS {
        let (m, acked) = (m.clone(), acked.clone());
        writers.push(tokio::spawn(async move {
            for v in 1..=VERSIONS {
                m.put(&format!("k{k}"), value(&v.to_string()))
                    .await
                    .unwrap();
                acked[k].store(v, Ordering::SeqCst);
            }
        }));
    }
    for w in writers {
        w.await.unwrap();
    }
    done.store(true, Ordering::SeqCst);
    for r in readers {
        assert!(r.await.unwrap() >= 50);
    }
    for k in 0..KEYS {
        let got = text(&m.get(&format!("k{k}")).await.unwrap().unwrap());
        assert_eq!(got, VERSIONS.to_string());
    }
}

/// While a write of a key is in flight, a read that began after the write's start (and so
/// after its invalidation) does not fill memory with what it read: the write may commit
/// before the read ends. The write's own value is kept at its end; a write that ends
/// without one (a failure, a delete) leaves the key out.
#[test]
fn no_fill_while_a_write_of_the_key_is_in_flight() {
    let m = MemoryTier::new(1 << 20);
    let stored = |t: &str| {
        Arc::new(pipecache::StoredArtifact {
            artifact: value(t),
            created_ms: 0,
            expires_ms: None,
        })
    };
    let write = m.begin_write("k");
    let seen = m.generation("k");
    m.insert_if_unchanged("k", stored("old"), 0, seen);
    assert!(
        m.get("k", 0).is_none(),
        "a read overlapping a write filled memory"
    );
    write.keep(stored("new"), 0);
    assert_eq!(text(&m.get("k", 0).unwrap().artifact), "new");

    // A delete (a write that keeps nothing): the key is gone, reads fill again after it.
    let delete = m.begin_write("k");
    drop(delete);
    assert!(m.get("k", 0).is_none());
    m.insert_if_unchanged("k", stored("again"), 0, m.generation("k"));
    assert_eq!(text(&m.get("k", 0).unwrap().artifact), "again");
}
