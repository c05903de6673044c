//! Opening repairs what a crash can leave behind (an uncommitted chunk tail, a chunk file no
//! batch committed) and refuses what it must not paper over (a lost index, a newer layout).

use std::io::Write;

use pipecache_format::chunk_file_name;
use pipecache_store::{Artifact, MARKER_FILE, Store, StoreError as Error, StoreOptions};
use pipecache_test_support::{TempStore, chunk_files, random_bytes};

#[tokio::test]
async fn uncommitted_tail_and_orphan_chunk_are_removed() {
    let mut ts = TempStore::default_options().await;
    let data = random_bytes(1, 10_000);
    ts.store()
        .put("k", Artifact::single(data.clone()))
        .await
        .unwrap();
    ts.close().await;
    let chunk = chunk_files(ts.path()).pop().unwrap();
    let committed = std::fs::metadata(&chunk).unwrap().len();
    std::fs::OpenOptions::new()
        .append(true)
        .open(&chunk)
        .unwrap()
        .write_all(&[0xAB; 777])
        .unwrap();
    let orphan = ts.path().join("chunks").join(chunk_file_name(0xFF));
    std::fs::write(&orphan, b"written by a batch that never committed").unwrap();

    ts.reopen().await;
    assert!(!orphan.exists(), "orphan chunk file must be removed");
    assert_eq!(
        std::fs::metadata(&chunk).unwrap().len(),
        committed,
        "tail truncated to committed length"
    );
    assert_eq!(
        ts.store().get("k").await.unwrap().unwrap().parts[0].data,
        data
    );
    // Appends continue in the same chunk, after the committed bytes.
    ts.store()
        .put("k2", Artifact::single(random_bytes(2, 500)))
        .await
        .unwrap();
    assert_eq!(chunk_files(ts.path()).len(), 1);
    assert!(ts.store().verify().await.unwrap().is_clean());
}

#[tokio::test]
async fn lost_index_is_reported_not_recreated_empty() {
    let mut ts = TempStore::default_options().await;
    ts.store()
        .put("k", Artifact::single(b"v".to_vec()))
        .await
        .unwrap();
    ts.close().await;
    std::fs::remove_dir_all(ts.path().join("index")).unwrap();
    match Store::open(ts.path(), StoreOptions::default()).await {
        Err(Error::IndexMissing { .. }) => {}
        other => panic!("expected IndexMissing, got {other:?}"),
    }
    assert_eq!(
        chunk_files(ts.path()).len(),
        1,
        "chunk files are kept for rebuild-index"
    );
}

#[tokio::test]
async fn newer_store_layout_is_unsupported() {
    let mut ts = TempStore::default_options().await;
    ts.close().await;
    std::fs::write(ts.path().join(MARKER_FILE), "pipecache-store 99\n").unwrap();
    match Store::open(ts.path(), StoreOptions::default()).await {
        Err(Error::UnsupportedVersion { found: 99, .. }) => {}
        other => panic!("expected UnsupportedVersion, got {other:?}"),
    }
}
