//! One process owns a store directory: a second open is a clear "in use" error, in-process and
//! from another process, and the store works normally once the owner closes it.

use pipecache::{Artifact, Store, StoreError as Error, StoreOptions};
use pipecache_test_support::run_cli;

#[tokio::test]
async fn second_open_is_store_in_use() {
    let tmp = tempfile::tempdir().unwrap();
    let first = Store::open(tmp.path(), StoreOptions::default())
        .await
        .unwrap();
    first
        .put("k", Artifact::single(b"v".to_vec()))
        .await
        .unwrap();

    match Store::open(tmp.path(), StoreOptions::default()).await {
        Err(Error::StoreInUse { path }) => assert_eq!(path, tmp.path()),
        other => panic!("expected StoreInUse, got {other:?}"),
    }
    let out = run_cli(
        std::path::Path::new(env!("CARGO_BIN_EXE_pipecache")),
        tmp.path(),
        &["get", "k"],
        None,
    );
    assert_eq!(out.status.code(), Some(2));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("in use"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    first.close().await.unwrap();
    let second = Store::open(tmp.path(), StoreOptions::default())
        .await
        .unwrap();
    assert_eq!(second.get("k").await.unwrap().unwrap().parts[0].data, b"v");
}
