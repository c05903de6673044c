//! GC and compaction run safely against concurrent puts, overwrites, gets and deletes: no get
//! ever fails (no corruption error) or returns bytes other than the last acknowledged put,
//! artifacts that are neither expired nor evictable always read back, and the store verifies
//! clean.
//!
//! Workers own disjoint keys, so each keeps an exact model of its keys. "pin:" keys have no TTL
//! and the eviction policy never picks them while there is anything else to evict (the budget
//! is far above what they hold); "tmp:" keys have short TTLs on the manual clock, which the GC
//! task advances, and are evicted least-recently-used first. Values share blobs from a small
//! pool, so dedup, dead-blob revival and relocation all race with collection.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use pipecache_store::{
    Artifact, EvictionCandidate, EvictionPolicy, GcOptions, ManualClock, PutOptions, StoreOptions,
};
use pipecache_test_support::{TempStore, assert_reads_back, lifecycle_options, random_bytes};
use rand::{Rng, SeedableRng, rngs::StdRng};

const WORKERS: u64 = 3;
const OPS_PER_WORKER: u64 = 2500;
const PINNED_PER_WORKER: u64 = 4;
const TMP_PER_WORKER: u64 = 40;
const POOL: u64 = 32;
const POOL_PART: usize = 6_000;
const OWN_PART: usize = 10_000;
/// Pinned artifacts hold at most 12 x 16 KB: with the budget at 512 KiB, the excess over the
/// budget is always smaller than what the tmp artifacts hold, so eviction never needs them.
const BUDGET: u64 = 512 << 10;

/// LRU, except that "pin:" keys go last.
#[derive(Debug)]
struct PinnedLast;

impl EvictionPolicy for PinnedLast {
    fn name(&self) -> &str {
        "pinned-last"
    }
    fn score(&self, c: &EvictionCandidate<'_>) -> f64 {
        if c.key.starts_with("pin:") {
            f64::MAX
        } else {
            c.last_access_ms as f64
        }
    }
}

/// A value: usually one part from the shared pool plus one of its own, sometimes only pool
/// parts (fully deduplicated).
fn value(rng: &mut StdRng, unique_seed: u64) -> Artifact {
    let pool = |s: u64| random_bytes(1_000_000 + s, POOL_PART);
    let mut a = Artifact::default()
        .with_kind("keyframes")
        .with_part("pool", pool(rng.random_range(0..POOL)));
    if rng.random_bool(0.8) {
        a = a.with_part("own", random_bytes(unique_seed, OWN_PART));
    } else {
        a = a.with_part("pool2", pool(POOL + rng.random_range(0..4)));
    }
    a
}

#[derive(Clone, Debug)]
enum Model {
    Absent,
    /// Last acknowledged put; a tmp key may have expired or been evicted since.
    Put(Artifact),
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gc_and_compaction_race_with_writers() {
    let clock = ManualClock::new(1_700_000_000_000);
    let mut ts = TempStore::new(StoreOptions {
        default_ttl: None,
        max_size: Some(BUDGET),
        eviction: Arc::new(PinnedLast),
        ..lifecycle_options(64 << 10, clock.clone())
    })
    .await;
    let store = ts.store().clone();

    // Pinned keys exist before the race starts.
    let mut pinned_initial = HashMap::new();
    let mut rng = StdRng::seed_from_u64(7);
    for w in 0..WORKERS {
        for p in 0..PINNED_PER_WORKER {
            let k = format!("pin:{w}:{p}");
            let v = value(&mut rng, 10_000 + w * 100 + p);
            store.put(&k, v.clone()).await.unwrap();
            pinned_initial.insert(k, v);
        }
    }

    let done = Arc::new(AtomicBool::new(false));
    let gc_passes = Arc::new(AtomicU64::new(0));
    let gc_task = {
        let store = store.clone();
        let clock = clock.clone();
        let done = done.clone();
        let gc_passes = gc_passes.clone();
        tokio::spawn(async move {
            let (mut expired, mut evicted, mut compacted) = (0usize, 0usize, 0usize);
            while !done.load(Ordering::SeqCst) {
                clock.advance(Duration::from_millis(250));
                let r = store.gc(GcOptions::default()).await.expect("gc pass");
                for k in r.expired.iter().chain(&r.evicted) {
                    assert!(!k.starts_with("pin:"), "gc removed pinned key {k}: {r:?}");
                }
                // `chunks_skipped` may be non-empty: a chunk that puts appended to while it was
                // being scanned is left for a later pass. Data safety is checked by the gets.
                expired += r.expired.len();
                evicted += r.evicted.len();
                compacted += r.compaction.chunks_compacted.len();
                let c = store.compact().await.expect("compaction");
                compacted += c.chunks_compacted.len();
                gc_passes.fetch_add(1, Ordering::SeqCst);
                tokio::task::yield_now().await;
            }
            (expired, evicted, compacted)
        })
    };

    let workers: Vec<_> = (0..WORKERS)
        .map(|w| {
            let store = store.clone();
            let mut model: HashMap<String, Model> = pinned_initial
                .iter()
                .filter(|(k, _)| k.starts_with(&format!("pin:{w}:")))
                .map(|(k, v)| (k.clone(), Model::Put(v.clone())))
                .collect();
            for t in 0..TMP_PER_WORKER {
                model.insert(format!("tmp:{w}:{t}"), Model::Absent);
            }
            tokio::spawn(async move {
                let mut rng = StdRng::seed_from_u64(100 + w);
                let (mut tmp_hits, mut tmp_misses) = (0u64, 0u64);
                for op in 0..OPS_PER_WORKER {
                    let unique = ((w + 1) << 32) | op;
                    let pin = format!("pin:{w}:{}", rng.random_range(0..PINNED_PER_WORKER));
                    let tmp = format!("tmp:{w}:{}", rng.random_range(0..TMP_PER_WORKER));
                    match rng.random_range(0..100) {
                        0..30 => {
                            let v = value(&mut rng, unique);
                            store.put(&pin, v.clone()).await.expect("put pinned");
                            model.insert(pin, Model::Put(v));
                        }
                        30..55 => {
                            let v = value(&mut rng, unique);
                            let ttl = Duration::from_millis(rng.random_range(100..1_500));
                            store
                                .put_with(
                                    &tmp,
                                    v.clone(),
                                    PutOptions {
                                        ttl: Some(ttl),
                                        ..PutOptions::default()
                                    },
                                )
                                .await
                                .expect("put tmp");
                            model.insert(tmp, Model::Put(v));
                        }
                        55..65 => {
                            store.delete(&tmp).await.expect("delete");
                            model.insert(tmp, Model::Absent);
                        }
                        65..80 => {
                            let Model::Put(v) = &model[&pin] else {
                                unreachable!("pinned keys are always present")
                            };
                            assert_reads_back(&store, &pin, v).await;
                        }
                        _ => {
                            let got = store
                                .get(&tmp)
                                .await
                                .unwrap_or_else(|e| panic!("get {tmp}: {e}"));
                            match (&model[&tmp], got) {
                                (Model::Absent, Some(_)) => {
                                    panic!("{tmp} was deleted but reads back")
                                }
                                (Model::Absent, None) => {}
                                (Model::Put(_), None) => tmp_misses += 1, // expired or evicted
                                (Model::Put(v), Some(got)) => {
                                    assert!(got == *v, "{tmp} read back a stale or wrong value");
                                    tmp_hits += 1;
                                }
                            }
                        }
                    }
                }
                (model, tmp_hits, tmp_misses)
            })
        })
        .collect();

    let mut models = Vec::new();
    let (mut tmp_hits, mut tmp_misses) = (0, 0);
    for w in workers {
        let (m, h, mi) = w.await.expect("worker panicked");
        models.push(m);
        tmp_hits += h;
        tmp_misses += mi;
    }
    done.store(true, Ordering::SeqCst);
    let (expired, evicted, compacted) = gc_task.await.expect("gc task panicked");
    let passes = gc_passes.load(Ordering::SeqCst);

    // The race really exercised collection.
    assert!(
        passes >= 3,
        "only {passes} gc passes ran during the workload"
    );
    assert!(expired > 0, "nothing expired during the workload");
    assert!(evicted > 0, "nothing was evicted during the workload");
    assert!(compacted > 0, "nothing was compacted during the workload");
    assert!(
        tmp_hits > 0 && tmp_misses > 0,
        "hits {tmp_hits}, misses {tmp_misses}"
    );

    // Every pinned key holds its last acknowledged value.
    let pinned: Vec<(String, Artifact)> = models
        .iter()
        .flat_map(|m| m.iter())
        .filter_map(|(k, v)| match v {
            Model::Put(a) if k.starts_with("pin:") => Some((k.clone(), a.clone())),
            _ => None,
        })
        .collect();
    assert_eq!(pinned.len() as u64, WORKERS * PINNED_PER_WORKER);
    for (k, v) in &pinned {
        assert_reads_back(&store, k, v).await;
    }
    let s = store.stats().await.unwrap();
    assert_eq!(s.counters.corruption_errors, 0, "{s:?}");
    let v = store.verify().await.unwrap();
    assert!(v.is_clean(), "{v:?}");

    // Once every TTL has passed, a final pass leaves exactly the pinned artifacts, and the
    // totals agree with them.
    clock.advance(Duration::from_secs(10));
    store.gc(GcOptions::default()).await.unwrap();
    let s = store.stats().await.unwrap();
    assert_eq!(s.artifacts, pinned.len() as u64, "{s:?}");
    assert_eq!(
        s.logical_bytes,
        pinned.iter().map(|(_, a)| a.logical_size()).sum::<u64>()
    );
    assert_eq!(s.dead_blobs, 0);
    let v = store.verify().await.unwrap();
    assert!(v.is_clean(), "{v:?}");

    drop(store);
    ts.reopen().await;
    let store = ts.store();
    for (k, v) in &pinned {
        assert_reads_back(store, k, v).await;
    }
    let v = store.verify().await.unwrap();
    assert!(v.is_clean(), "{v:?}");
}
