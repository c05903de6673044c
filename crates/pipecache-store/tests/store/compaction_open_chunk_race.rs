//! Compaction under budget pressure also rewrites the open chunk (the one puts append to).
//! Puts that land in that chunk while it is being compacted must not be lost: every key keeps
//! reading back its last acknowledged value and the store verifies clean.
//!
//! Setup that makes the race wide: one large chunk size (so the open chunk is where all the
//! dead bytes are), a store far over its small budget (so every `compact` call is under
//! pressure and includes the open chunk), no GC pass (nothing is evicted), and writers that
//! keep overwriting their keys while a task compacts in a loop. Nothing is evicted, so unlike
//! `gc_budget_race.rs` no miss is acceptable: every key must read back exactly.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use pipecache_store::{Artifact, ManualClock, StoreOptions};
use pipecache_test_support::{TempStore, assert_reads_back, lifecycle_options, random_bytes};
use rand::{Rng, SeedableRng, rngs::StdRng};

const WRITERS: u64 = 2;
const KEYS_PER_WRITER: u64 = 16;
const OPS_PER_WRITER: u64 = 1500;
const SIZE: usize = 8_000;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn puts_into_the_chunk_being_compacted_are_not_lost() {
    let clock = ManualClock::new(1_700_000_000_000);
    let mut ts = TempStore::new(StoreOptions {
        default_ttl: None,
        max_size: Some(64 << 10),
        ..lifecycle_options(8 << 20, clock)
    })
    .await;
    let store = ts.store().clone();

    let done = Arc::new(AtomicBool::new(false));
    // Compactions attempted (done, or refused because puts grew the chunk meanwhile).
    let compactions = Arc::new(AtomicU64::new(0));
    let compactor = {
        let store = store.clone();
        let done = done.clone();
        let compactions = compactions.clone();
        tokio::spawn(async move {
            while !done.load(Ordering::SeqCst) {
                // A chunk that grew while it was scanned is skipped (left for the next call);
                // that is the expected outcome of the race, not an error.
                let r = store.compact().await.expect("compaction");
                compactions.fetch_add(
                    (r.chunks_compacted.len() + r.chunks_skipped.len()) as u64,
                    Ordering::SeqCst,
                );
                tokio::task::yield_now().await;
            }
        })
    };

    let writers: Vec<_> = (0..WRITERS)
        .map(|w| {
            let store = store.clone();
            tokio::spawn(async move {
                let mut rng = StdRng::seed_from_u64(w);
                let mut model: HashMap<String, Artifact> = HashMap::new();
                for op in 0..OPS_PER_WRITER {
                    let k = format!("w{w}:{}", rng.random_range(0..KEYS_PER_WRITER));
                    let v = Artifact::single(random_bytes(((w + 1) << 32) | op, SIZE));
                    store.put(&k, v.clone()).await.expect("put");
                    model.insert(k, v);
                    let check = format!("w{w}:{}", rng.random_range(0..KEYS_PER_WRITER));
                    if let Some(v) = model.get(&check) {
                        assert_reads_back(&store, &check, v).await;
                    }
                }
                model
            })
        })
        .collect();
    let mut model = HashMap::new();
    for w in writers {
        model.extend(w.await.expect("writer panicked"));
    }
    done.store(true, Ordering::SeqCst);
    compactor.await.expect("compactor panicked");
    assert!(
        compactions.load(Ordering::SeqCst) > 10,
        "too few compactions were attempted to exercise the race"
    );

    for (k, v) in &model {
        assert_reads_back(&store, k, v).await;
    }
    let v = store.verify().await.unwrap();
    assert!(v.is_clean(), "{v:?}");
    assert_eq!(store.stats().await.unwrap().counters.corruption_errors, 0);
    drop(store);
    ts.reopen().await;
    for (k, v) in &model {
        assert_reads_back(ts.store(), k, v).await;
    }
}
