//! A process that opens a store held by a server gets a client of it without being told;
//! a second server on the same store refuses, naming the first; a store held by a process
//! that is not a server stays "in use".

use pipecache::client::protocol::SERVER_FILE;
use pipecache::{Artifact, Store, StoreError, StoreOptions, TierError};
use pipecache_server::{ServeError, ServeOptions};
use pipecache_test_support::served::{RunningServer, open_cache as open, open_server};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn opening_a_served_store_uses_the_server() {
    let tmp = tempfile::tempdir().unwrap();
    let server = RunningServer::start(tmp.path(), ServeOptions::default()).await;

    let cache = open(tmp.path()).await.unwrap();
    assert!(cache.server().is_some(), "{}", cache.describe());
    cache
        .put("k", Artifact::single(b"v".to_vec()))
        .await
        .unwrap();
    let other = open(tmp.path()).await.unwrap();
    assert_eq!(other.get("k").await.unwrap().unwrap().parts[0].data, b"v");
    // Invalid keys are refused as the store refuses them, before any request.
    assert!(matches!(
        other.get("").await,
        Err(TierError::Store(StoreError::InvalidKey { .. }))
    ));

    match open_server(tmp.path(), ServeOptions::default()).await {
        Err(ServeError::AlreadyServed { pid, .. }) => assert_eq!(pid, std::process::id()),
        other => panic!("expected AlreadyServed, got {other:?}"),
    }
    cache.close().await.unwrap();
    other.close().await.unwrap();
    server.stop().await;

    // Stopped: the server file is gone and the next open owns the store.
    assert!(!tmp.path().join(SERVER_FILE).exists());
    let owned = open(tmp.path()).await.unwrap();
    assert!(owned.manager().is_some());
    assert_eq!(owned.get("k").await.unwrap().unwrap().parts[0].data, b"v");
    owned.close().await.unwrap();
}

#[tokio::test]
async fn a_store_held_by_a_non_server_stays_in_use() {
    let tmp = tempfile::tempdir().unwrap();
    let store = Store::open(tmp.path(), StoreOptions::default())
        .await
        .unwrap();
    assert!(matches!(
        open(tmp.path()).await,
        Err(TierError::Store(StoreError::StoreInUse { .. }))
    ));
    match open_server(tmp.path(), ServeOptions::default()).await {
        Err(ServeError::Cache(TierError::Store(StoreError::StoreInUse { .. }))) => {}
        other => panic!("expected StoreInUse, got {other:?}"),
    }
    store.close().await.unwrap();
}
