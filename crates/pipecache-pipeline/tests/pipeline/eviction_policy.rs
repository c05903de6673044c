//! The eviction policy decides which artifact a budget-driven GC pass removes: `CostWeighted`
//! keeps the expensive kind (VLM descriptions) over the cheap one (keyframes) unless the
//! expensive one has been idle proportionally longer; `Lru` removes the least recently accessed
//! regardless of kind. Eviction never takes a blob another artifact still references.

use std::sync::Arc;
use std::time::Duration;

use pipecache::{Artifact, EvictionPolicy, GcOptions, GcReport, Lru, ManualClock, StoreOptions};
use pipecache_test_support::{TempStore, assert_reads_back, lifecycle_options, random_bytes};

const T0: u64 = 1_700_000_000_000;
const SIZE: usize = 100_000;
/// Room for one 100 KB artifact (plus frame headers and records), not two.
const BUDGET: u64 = 150_000;

fn options(clock: Arc<ManualClock>, policy: Arc<dyn EvictionPolicy>) -> StoreOptions {
    StoreOptions {
        max_size: Some(BUDGET),
        eviction: policy,
        ..lifecycle_options(1 << 20, clock)
    }
}

/// Puts a "descriptions" and a "keyframes" artifact of equal size at the same instant; if
/// `read_keyframes_after` is set, reads the keyframes artifact that long after; runs GC 60 s
/// after the puts. Returns the report, and checks the survivor reads back.
async fn scenario(
    policy: Arc<dyn EvictionPolicy>,
    desc_key: &str,
    kf_key: &str,
    read_keyframes_after: Option<Duration>,
) -> GcReport {
    let clock = ManualClock::new(T0);
    let ts = TempStore::new(options(clock.clone(), policy)).await;
    let store = ts.store();
    let desc = Artifact::default()
        .with_kind("descriptions")
        .with_part("data", random_bytes(1, SIZE));
    let kf = Artifact::default()
        .with_kind("keyframes")
        .with_part("data", random_bytes(2, SIZE));
    store.put(desc_key, desc.clone()).await.unwrap();
    store.put(kf_key, kf.clone()).await.unwrap();
    let mut elapsed = Duration::ZERO;
    if let Some(after) = read_keyframes_after {
        clock.advance(after);
        elapsed = after;
        assert_reads_back(store, kf_key, &kf).await;
        store.flush_access_times().await.unwrap();
    }
    clock.advance(Duration::from_secs(60) - elapsed);
    let report = store.gc(GcOptions::default()).await.unwrap();
    assert_eq!(
        report.evicted.len(),
        1,
        "budget fits exactly one: {report:?}"
    );
    assert!(report.expired.is_empty());
    let s = store.stats().await.unwrap();
    assert_eq!(s.artifacts, 1);
    assert_eq!(s.evicted, 1);
    assert!(
        s.disk_bytes <= BUDGET + (1 << 20),
        "disk {} after gc",
        s.disk_bytes
    );
    let (survivor, expected) = if report.evicted[0] == kf_key {
        (desc_key, &desc)
    } else {
        (kf_key, &kf)
    };
    assert_reads_back(store, survivor, expected).await;
    assert!(store.get(&report.evicted[0]).await.unwrap().is_none());
    assert!(store.verify().await.unwrap().is_clean());
    report
}

#[tokio::test]
async fn cost_weighted_evicts_the_cheaper_kind_of_equal_age() {
    // Key order would favour evicting the descriptions artifact on a tie: the policy must win.
    let r = scenario(
        Arc::new(pipecache_pipeline::cost_weighted_policy()),
        "a:descriptions",
        "b:keyframes",
        None,
    )
    .await;
    assert_eq!(r.evicted, ["b:keyframes"]);
}

#[tokio::test]
async fn cost_weighted_keeps_an_expensive_kind_idle_not_proportionally_longer() {
    // keyframes read 40 s in: idle 20 s, score 45/21; descriptions idle 60 s, score 180/61.
    let r = scenario(
        Arc::new(pipecache_pipeline::cost_weighted_policy()),
        "a:descriptions",
        "b:keyframes",
        Some(Duration::from_secs(40)),
    )
    .await;
    assert_eq!(r.evicted, ["b:keyframes"]);
}

#[tokio::test]
async fn lru_evicts_the_older_accessed_regardless_of_kind() {
    // Same access pattern as above; key order would favour evicting the keyframes artifact on a
    // tie, so only the recorded access time makes LRU pick the descriptions artifact.
    let r = scenario(
        Arc::new(Lru),
        "b:descriptions",
        "a:keyframes",
        Some(Duration::from_secs(40)),
    )
    .await;
    assert_eq!(r.evicted, ["b:descriptions"]);
}

#[tokio::test]
async fn eviction_keeps_blobs_still_referenced() {
    let clock = ManualClock::new(T0);
    let mut ts = TempStore::new(StoreOptions {
        max_size: Some(130_000),
        ..options(
            clock.clone(),
            Arc::new(pipecache_pipeline::cost_weighted_policy()),
        )
    })
    .await;
    let store = ts.store().clone();
    let shared = random_bytes(10, 50_000);
    let kf = Artifact::default()
        .with_kind("keyframes")
        .with_part("shared", shared.clone())
        .with_part("own", random_bytes(11, 50_000));
    let desc = Artifact::default()
        .with_kind("descriptions")
        .with_part("own", random_bytes(12, 50_000))
        .with_part("shared", shared.clone());
    store.put("v:keyframes", kf).await.unwrap();
    store.put("v:descriptions", desc.clone()).await.unwrap();
    assert_eq!(store.stats().await.unwrap().blobs, 3);
    clock.advance(Duration::from_secs(60));

    let r = store.gc(GcOptions::default()).await.unwrap();
    assert_eq!(r.evicted, ["v:keyframes"], "{r:?}");
    let s = store.stats().await.unwrap();
    assert_eq!(
        s.blobs, 2,
        "shared blob kept, evicted artifact's own blob released: {s:?}"
    );
    assert_eq!(s.unique_bytes, 100_000);
    assert_eq!(s.dead_blobs, 0);
    assert_reads_back(&store, "v:descriptions", &desc).await;
    let v = store.verify().await.unwrap();
    assert!(v.is_clean(), "{v:?}");

    // Still intact after an explicit compaction and a restart.
    store.compact().await.unwrap();
    assert_reads_back(&store, "v:descriptions", &desc).await;
    drop(store);
    ts.reopen().await;
    let store = ts.store();
    assert_reads_back(store, "v:descriptions", &desc).await;
    assert!(store.get("v:keyframes").await.unwrap().is_none());
    let v = store.verify().await.unwrap();
    assert!(v.is_clean(), "{v:?}");
    assert_eq!(store.stats().await.unwrap().counters.corruption_errors, 0);
}
