//! Lookup counts outlive the process: a manager opened on a store continues the per-kind
//! hits, misses and recompute time saved (today's too) of the managers before it, through
//! `lookups.json` in the store directory; a damaged file only restarts the count.

use std::path::Path;
use std::sync::Arc;

use pipecache::tier::KindStats;
use pipecache::{Artifact, CacheManager, Store, StoreOptions};
use pipecache_test_support::SlashKeys;

async fn store(dir: &Path) -> Store {
    let options = StoreOptions {
        key_classifier: Some(Arc::new(SlashKeys)),
        ..StoreOptions::default()
    };
    Store::open(dir, options).await.unwrap()
}

async fn open(dir: &Path) -> CacheManager {
    CacheManager::builder(store(dir).await)
        .memory_tier(1 << 20)
        .build()
        .await
        .unwrap()
}

/// (kind, hits, misses, errors, recompute seconds saved) of every kind.
fn counts(stats: &[KindStats]) -> Vec<(String, u64, u64, u64, f64)> {
    stats
        .iter()
        .map(|k| {
            let saved = k.recompute_seconds_saved;
            (k.kind.clone(), k.hits, k.misses, k.errors, saved)
        })
        .collect()
}

#[tokio::test]
async fn lookup_totals_continue_after_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let m = open(dir.path()).await;
    m.put("dear/v1/a", Artifact::single(vec![1; 100]))
        .await
        .unwrap();
    for _ in 0..2 {
        assert!(m.get("dear/v1/a").await.unwrap().is_some());
    }
    assert!(m.get("cheap/v2/a").await.unwrap().is_none());
    let first = counts(&m.lookup_stats());
    assert_eq!(m.recompute_seconds_saved_today(), 120.0);
    m.close().await.unwrap();
    assert!(dir.path().join("lookups.json").exists());

    // The next process starts where the first stopped, then counts on.
    let m = open(dir.path()).await;
    assert_eq!(counts(&m.lookup_stats()), first);
    assert_eq!(m.recompute_seconds_saved_today(), 120.0);
    assert!(m.get("dear/v1/a").await.unwrap().is_some());
    m.close().await.unwrap();
    let m = open(dir.path()).await;
    let dear = counts(&m.lookup_stats())
        .into_iter()
        .find(|k| k.0 == "dear")
        .unwrap();
    assert_eq!(dear, ("dear".to_owned(), 3, 0, 0, 180.0));
    assert_eq!(m.recompute_seconds_saved_today(), 180.0);
    m.close().await.unwrap();

    // Damaged: the store opens and counts from zero.
    std::fs::write(dir.path().join("lookups.json"), b"{\"version\": 1, \"kin").unwrap();
    let m = open(dir.path()).await;
    assert!(m.lookup_stats().iter().all(|k| k.hits + k.misses == 0));
    assert!(m.get("dear/v1/a").await.unwrap().is_some());
    m.close().await.unwrap();
    let m = open(dir.path()).await;
    let dear = m
        .lookup_stats()
        .into_iter()
        .find(|k| k.kind == "dear")
        .unwrap();
    assert_eq!(
        dear.hits, 1,
        "the damaged file was replaced by the new count"
    );
    m.close().await.unwrap();
}

#[tokio::test]
async fn lookup_totals_are_written_while_the_manager_runs() {
    let dir = tempfile::tempdir().unwrap();
    let other = tempfile::tempdir().unwrap();
    let refused = CacheManager::builder(store(other.path()).await)
        .totals_save_interval(std::time::Duration::ZERO)
        .build()
        .await;
    assert!(refused.is_err(), "a zero interval is refused");

    let m = CacheManager::builder(store(dir.path()).await)
        .memory_tier(1 << 20)
        .totals_save_interval(std::time::Duration::from_millis(50))
        .build()
        .await
        .unwrap();
    m.put("dear/v1/a", Artifact::single(vec![1; 100]))
        .await
        .unwrap();
    for _ in 0..2 {
        assert!(m.get("dear/v1/a").await.unwrap().is_some());
    }
    // Written by the running manager, before any close: what a crash now would keep.
    let file = dir.path().join("lookups.json");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    let hits = loop {
        let hits = std::fs::read(&file)
            .ok()
            .and_then(|b| serde_json::from_slice::<serde_json::Value>(&b).ok())
            .and_then(|v| v["kinds"]["dear"]["hits"].as_u64());
        if hits == Some(2) || std::time::Instant::now() > deadline {
            break hits;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    };
    assert_eq!(hits, Some(2), "lookups.json written while running");
    m.close().await.unwrap();
}
