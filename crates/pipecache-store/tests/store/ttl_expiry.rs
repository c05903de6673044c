//! An expired artifact is a miss the moment it expires (injected clock, no sleeps); a put that
//! names no TTL gets the default one, 7 days.

use std::time::Duration;

use pipecache_store::{Artifact, ManualClock, PutOptions, StoreOptions};
use pipecache_test_support::{TempStore, list_keys};

#[tokio::test]
async fn expired_artifact_is_a_miss() {
    let clock = ManualClock::new(1_000_000);
    let ts = TempStore::new(StoreOptions {
        clock: clock.clone(),
        default_ttl: Some(Duration::from_secs(3600)),
        ..StoreOptions::default()
    })
    .await;
    let store = ts.store();
    store
        .put_with(
            "short",
            Artifact::single(b"a".to_vec()),
            PutOptions {
                ttl: Some(Duration::from_secs(90)),
                ..PutOptions::default()
            },
        )
        .await
        .unwrap();
    store
        .put("default", Artifact::single(b"b".to_vec()))
        .await
        .unwrap();
    clock.advance(Duration::from_secs(89));
    assert!(store.get("short").await.unwrap().is_some());
    clock.advance(Duration::from_secs(1));
    assert!(
        store.get("short").await.unwrap().is_none(),
        "expired at exactly created + ttl"
    );
    assert!(!store.contains("short").await.unwrap());
    assert!(store.contains("default").await.unwrap());
    let keys: Vec<String> = list_keys(store, "").await;
    assert_eq!(keys, ["default"]);
    clock.advance(Duration::from_secs(3600));
    assert!(store.get("default").await.unwrap().is_none());
    assert_eq!(store.stats().await.unwrap().counters.expired_misses, 2);
    assert!(
        store
            .put_with(
                "z",
                Artifact::single(b"c".to_vec()),
                PutOptions {
                    ttl: Some(Duration::ZERO),
                    ..PutOptions::default()
                }
            )
            .await
            .is_err()
    );
}

#[tokio::test]
async fn default_ttl_is_seven_days() {
    const SEVEN_DAYS: Duration = Duration::from_secs(7 * 24 * 3600);
    assert_eq!(StoreOptions::default().default_ttl, Some(SEVEN_DAYS));
    let t0 = 1_700_000_000_000u64;
    let clock = ManualClock::new(t0);
    let ts = TempStore::new(StoreOptions {
        clock: clock.clone(),
        ..StoreOptions::default()
    })
    .await;
    let store = ts.store();
    let artifact = Artifact::single(b"keyframes".to_vec());
    store.put("clip", artifact.clone()).await.unwrap();
    let expires_ms = t0 + SEVEN_DAYS.as_millis() as u64;
    let stored = store.get_stored("clip").await.unwrap().expect("a hit");
    assert_eq!(stored.expires_ms, Some(expires_ms));

    clock.set(expires_ms - 1);
    assert_eq!(
        store.get("clip").await.unwrap(),
        Some(artifact),
        "a hit 1 ms before 7 days"
    );
    assert!(store.contains("clip").await.unwrap());
    clock.set(expires_ms);
    assert!(
        store.get("clip").await.unwrap().is_none(),
        "expired at exactly created + 7 days"
    );
    assert!(!store.contains("clip").await.unwrap());
    assert_eq!(store.stats().await.unwrap().counters.expired_misses, 1);
}
