//! Access times are recorded coarsely: a read notes the time in memory, the index is written
//! only when access times are flushed (periodically, at close, before gc), never on every read;
//! a key deleted after it was read gets no orphan access entry.

use std::time::Duration;

use pipecache_store::{Artifact, ManualClock, StoreOptions};
use pipecache_test_support::TempStore;

#[tokio::test]
async fn reads_do_not_write_the_index_until_flushed() {
    let clock = ManualClock::new(1_000_000);
    let mut ts = TempStore::new(StoreOptions {
        clock: clock.clone(),
        gc_interval: None,
        access_flush_interval: Duration::from_secs(3600),
        ..StoreOptions::default()
    })
    .await;
    let store = ts.store().clone();
    store
        .put("a", Artifact::single(b"x".to_vec()))
        .await
        .unwrap();
    store
        .put("b", Artifact::single(b"y".to_vec()))
        .await
        .unwrap();
    assert_eq!(
        store.last_access_ms("a").await.unwrap(),
        Some(1_000_000),
        "the put records it"
    );

    clock.advance(Duration::from_secs(60));
    for _ in 0..100 {
        assert!(store.get("a").await.unwrap().is_some());
    }
    assert!(store.get("b").await.unwrap().is_some());
    assert_eq!(
        store.last_access_ms("a").await.unwrap(),
        Some(1_000_000),
        "reads alone write nothing"
    );

    assert!(store.delete("b").await.unwrap());
    store.flush_access_times().await.unwrap();
    assert_eq!(store.last_access_ms("a").await.unwrap(), Some(1_060_000));
    assert_eq!(
        store.last_access_ms("b").await.unwrap(),
        None,
        "no orphan entry for a deleted key"
    );

    // Close flushes too.
    clock.advance(Duration::from_secs(60));
    store.get("a").await.unwrap();
    drop(store);
    ts.reopen().await;
    assert_eq!(
        ts.store().last_access_ms("a").await.unwrap(),
        Some(1_120_000)
    );
}
