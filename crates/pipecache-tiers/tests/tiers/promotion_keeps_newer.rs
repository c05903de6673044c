//! A copy arriving from another tier (promotion after a remote hit, or a pull) never replaces
//! a live local artifact: a `put` that landed while the copy was in flight is newer and must
//! survive. Once the local artifact has expired, the copy is taken.

use std::sync::Arc;
use std::time::Duration;

use pipecache::tier::CacheBackend;
use pipecache::{Artifact, ManualClock, PutOptions, StoreOptions, StoredArtifact};
use pipecache_test_support::TempStore;

fn remote_copy(artifact: &Artifact) -> StoredArtifact {
    StoredArtifact {
        artifact: artifact.clone(),
        created_ms: 1,
        expires_ms: None,
    }
}

#[tokio::test]
async fn a_copy_from_another_tier_never_overwrites_a_live_put() {
    let clock = ManualClock::new(1_700_000_000_000);
    let ts = TempStore::new(StoreOptions {
        gc_interval: None,
        clock: clock.clone() as Arc<dyn pipecache::Clock>,
        ..StoreOptions::default()
    })
    .await;
    let store = ts.store();
    let stale = Artifact::single(b"v1 from the remote".to_vec());
    let newer = Artifact::single(b"v2 put locally".to_vec());

    // The newer put lands first; the promotion of the older remote copy arrives after it.
    let ttl = PutOptions {
        ttl: Some(Duration::from_secs(60)),
        ..PutOptions::default()
    };
    store.put_with("k", newer.clone(), ttl).await.unwrap();
    CacheBackend::put_copy(store, "k", &remote_copy(&stale))
        .await
        .unwrap();
    assert_eq!(store.get("k").await.unwrap(), Some(newer.clone()));

    // Absent key: the copy is written.
    CacheBackend::put_copy(store, "other", &remote_copy(&stale))
        .await
        .unwrap();
    assert_eq!(store.get("other").await.unwrap(), Some(stale.clone()));

    // Expired local artifact: a miss, so the copy replaces it.
    clock.advance(Duration::from_secs(61));
    CacheBackend::put_copy(store, "k", &remote_copy(&stale))
        .await
        .unwrap();
    assert_eq!(store.get("k").await.unwrap(), Some(stale.clone()));

    // A plain `put` through the tier interface is a write, not a copy: it replaces.
    CacheBackend::put(store, "k", &remote_copy(&newer))
        .await
        .unwrap();
    assert_eq!(store.get("k").await.unwrap(), Some(newer));
    assert!(store.verify().await.unwrap().is_clean());
}
