//! The background GC thread of an open store brings it back under its size budget without any
//! explicit `gc` call: oldest artifacts are evicted, chunk files compacted away, and what
//! survives reads back intact. (This file polls with short sleeps: the behaviour under test is
//! a background thread.)

use std::time::{Duration, Instant};

use pipecache_store::{Artifact, ManualClock, StoreOptions};
use pipecache_test_support::{
    TempStore, assert_reads_back, lifecycle_options, list_keys, random_bytes,
};

const BUDGET: u64 = 1 << 20;
const CHUNK: u64 = 64 << 10;
const N: u64 = 100;
const SIZE: usize = 40_000;

fn key(i: u64) -> String {
    format!("video:{i:03}:keyframes")
}

fn artifact(i: u64) -> Artifact {
    Artifact::default()
        .with_kind("keyframes")
        .with_part("a.jpg", random_bytes(2 * i, SIZE / 2))
        .with_part("b.jpg", random_bytes(2 * i + 1, SIZE / 2))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn background_gc_enforces_the_budget() {
    let clock = ManualClock::new(1_700_000_000_000);
    let mut ts = TempStore::new(StoreOptions {
        max_size: Some(BUDGET),
        gc_interval: Some(Duration::from_millis(50)),
        ..lifecycle_options(CHUNK, clock.clone())
    })
    .await;
    let store = ts.store().clone();

    // ~4 MB, four times the budget; one second apart so LRU order is put order.
    for i in 0..N {
        clock.advance(Duration::from_secs(1));
        store.put(&key(i), artifact(i)).await.unwrap();
    }

    let start = Instant::now();
    let mut s = store.stats().await.unwrap();
    while s.disk_bytes > BUDGET + CHUNK && start.elapsed() < Duration::from_secs(120) {
        tokio::time::sleep(Duration::from_millis(50)).await;
        s = store.stats().await.unwrap();
    }
    assert!(
        s.disk_bytes <= BUDGET + CHUNK,
        "background GC did not get under budget in {:?}: {s:?}",
        start.elapsed()
    );
    assert!(s.evicted > 0, "{s:?}");
    assert_eq!(s.expired, 0);

    let disk_at_convergence = s.disk_bytes;

    // Stop the background thread (reopen without it) so the checks below see a quiet store.
    drop(store);
    ts.options.gc_interval = None;
    ts.reopen().await;
    let store = ts.store();
    let s = store.stats().await.unwrap();
    assert!(
        s.disk_bytes <= BUDGET + CHUNK,
        "{s:?} (was {disk_at_convergence} when polled)"
    );

    // Whatever survives is intact; the newest artifacts survive; nothing vanished uncounted.
    let survivors: Vec<String> = list_keys(store, "").await;
    assert!(!survivors.is_empty());
    assert_eq!(s.evicted + s.artifacts, N, "{s:?}");
    for i in N - 5..N {
        assert!(survivors.contains(&key(i)), "newest {} was evicted", key(i));
    }
    for k in &survivors {
        let i: u64 = k[6..9].parse().unwrap();
        assert_reads_back(store, k, &artifact(i)).await;
    }
    let v = store.verify().await.unwrap();
    assert!(v.is_clean(), "{v:?}");
    assert_eq!(store.stats().await.unwrap().counters.corruption_errors, 0);
}
