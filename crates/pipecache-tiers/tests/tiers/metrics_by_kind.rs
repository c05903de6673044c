//! Per-kind metrics: with a key classifier in the store options, every tier counts hits,
//! misses, bytes and latency per kind; gets as callers see them are counted once each,
//! with the recompute time their hits saved; misses are listed per subject; keys the
//! classifier does not claim count as `other`.

use std::sync::Arc;

use pipecache::tier::{KindStats, OTHER};
use pipecache::{Artifact, CacheManager, StoreOptions};
use pipecache_test_support::{SlashKeys, TempStore};

fn of<'a>(stats: &'a [KindStats], kind: &str) -> &'a KindStats {
    stats
        .iter()
        .find(|k| k.kind == kind)
        .expect("every kind is reported")
}

#[tokio::test]
async fn tiers_and_lookups_count_per_kind() {
    let options = StoreOptions {
        key_classifier: Some(Arc::new(SlashKeys)),
        ..StoreOptions::default()
    };
    let ts = TempStore::new(options).await;
    let m = CacheManager::builder(ts.store().clone())
        .memory_tier(1 << 20)
        .build()
        .await
        .unwrap();
    m.put("cheap/v1/a", Artifact::single(vec![1; 100]))
        .await
        .unwrap();
    m.put("dear/v1/a", Artifact::single(vec![2; 300]))
        .await
        .unwrap();
    m.put("plain-key", Artifact::single(vec![3; 10]))
        .await
        .unwrap();
    // Kept in memory as written: three memory hits.
    for key in ["cheap/v1/a", "dear/v1/a", "dear/v1/a"] {
        assert!(m.get(key).await.unwrap().is_some());
    }
    // Misses of video v2 (twice) and v3, and of a plain key.
    for key in ["dear/v2/a", "dear/v2/b", "cheap/v3/a", "nothing"] {
        assert!(m.get(key).await.unwrap().is_none());
    }

    let lookups = m.lookup_stats();
    let names: Vec<&str> = lookups.iter().map(|k| k.kind.as_str()).collect();
    assert_eq!(names, ["cheap", "dear", OTHER]);
    let (cheap, dear, other) = (
        of(&lookups, "cheap"),
        of(&lookups, "dear"),
        of(&lookups, OTHER),
    );
    assert_eq!(
        (cheap.hits, cheap.misses, dear.hits, dear.misses),
        (1, 1, 2, 2)
    );
    assert_eq!((other.hits, other.misses), (0, 1));
    assert_eq!((dear.read_bytes, cheap.read_bytes), (600, 100));
    assert_eq!(cheap.get_seconds.count + dear.get_seconds.count, 6);
    assert_eq!(cheap.recompute_seconds_saved, 2.0);
    assert_eq!(dear.recompute_seconds_saved, 120.0);
    assert_eq!(other.recompute_seconds_saved, 0.0);
    assert_eq!(
        m.recompute_seconds_saved_today(),
        122.0,
        "everything so far was today"
    );

    let tiers = m.tier_stats();
    let (memory, local) = (&tiers[0], &tiers[1]);
    assert_eq!(of(&memory.by_kind, "dear").hits, 2);
    assert_eq!(of(&memory.by_kind, "dear").misses, 2);
    assert_eq!(of(&local.by_kind, "dear").misses, 2);
    assert_eq!(of(&local.by_kind, "dear").puts, 1);
    assert_eq!(of(&local.by_kind, "dear").written_bytes, 300);
    assert_eq!(of(&local.by_kind, OTHER).puts, 1);
    // A tier's totals are the sums of its kinds.
    for t in &tiers {
        assert_eq!(
            t.hits,
            t.by_kind.iter().map(|k| k.hits).sum::<u64>(),
            "{}",
            t.name
        );
        assert_eq!(
            t.misses,
            t.by_kind.iter().map(|k| k.misses).sum::<u64>(),
            "{}",
            t.name
        );
        assert_eq!(
            t.get_seconds.count,
            t.by_kind.iter().map(|k| k.get_seconds.count).sum::<u64>()
        );
    }
    assert!(local.last_success_ms.is_some());

    let missed: Vec<(String, u64)> = m
        .most_missed()
        .into_iter()
        .map(|s| (s.subject, s.misses))
        .collect();
    assert_eq!(missed, [("v2".to_owned(), 2), ("v3".to_owned(), 1)]);
    m.close().await.unwrap();
}
