//! The conditional write under pack tiers' copies (`put_if_absent`, used so that a
//! promotion never replaces a record a put wrote meanwhile), against the real servers: on an
//! S3-protocol server (`If-None-Match: *`) and on a filesystem store, the first write lands,
//! a second is refused and leaves the first in place.

use std::time::Duration;

use pipecache_remote::ObjectStore;
use pipecache_test_support::servers::S3Server;

async fn write_once(store: &ObjectStore) {
    let path = "records/ab/abcdef";
    assert!(store.put_if_absent(path, b"first".to_vec()).await.unwrap());
    assert!(
        !store.put_if_absent(path, b"second".to_vec()).await.unwrap(),
        "{}: a second conditional write landed",
        store.target()
    );
    assert_eq!(
        store.get(path).await.unwrap().as_deref(),
        Some(&b"first"[..])
    );
    // An unconditional write still replaces it.
    store.put(path, b"third".to_vec()).await.unwrap();
    assert_eq!(
        store.get(path).await.unwrap().as_deref(),
        Some(&b"third"[..])
    );
    assert!(
        store
            .put_if_absent("records/ab/other", b"x".to_vec())
            .await
            .unwrap()
    );
    let listed = store.list("records/").await.unwrap();
    assert_eq!(listed.len(), 2, "{listed:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn s3_refuses_a_second_conditional_write() {
    let s3 = S3Server::start();
    write_once(&s3.raw_store()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_filesystem_store_refuses_a_second_conditional_write() {
    let dir = tempfile::tempdir().unwrap();
    let store = ObjectStore::filesystem(dir.path(), Duration::from_secs(5)).unwrap();
    write_once(&store).await;
}
