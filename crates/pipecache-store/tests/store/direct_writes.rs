//! Large blobs skip the writer's open chunk: concurrent puts each write theirs into a chunk
//! file of their own, and the store reads them back after a reopen, verifies clean, and
//! can rebuild its index from those chunks.

use pipecache_store::{Artifact, Store};
use pipecache_test_support::{
    TempStore, assert_reads_back, chunk_files, direct_write_options, random_bytes,
};

fn artifact(i: u64) -> Artifact {
    Artifact::default()
        .with_kind("embeddings")
        .with_part("large-a", random_bytes(i, 200_000))
        .with_part("large-b", random_bytes(1000 + i, 100_000))
        .with_part("small", random_bytes(2000 + i, 1_000))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_large_puts_write_their_own_chunks() {
    let mut ts = TempStore::new(direct_write_options()).await;
    let store = ts.store().clone();
    let puts: Vec<_> = (0..8u64)
        .map(|i| {
            let store = store.clone();
            tokio::spawn(async move { store.put(&format!("v{i}"), artifact(i)).await })
        })
        .collect();
    for p in puts {
        p.await.unwrap().unwrap();
    }
    // One direct chunk per put (both large parts together), plus the writer's open chunk
    // holding the small parts and the records.
    assert_eq!(chunk_files(ts.path()).len(), 9);
    let stats = store.stats().await.unwrap();
    assert_eq!(stats.blobs, 24);
    assert_eq!(stats.counters.blobs_written, 24);
    drop(store);

    ts.reopen().await;
    for i in 0..8u64 {
        assert_reads_back(ts.store(), &format!("v{i}"), &artifact(i)).await;
    }
    let report = ts.store().verify().await.unwrap();
    assert!(report.is_clean(), "{report:?}");
    ts.close().await;

    std::fs::remove_dir_all(ts.path().join("index")).unwrap();
    let rebuilt = Store::rebuild_index(ts.path(), direct_write_options(), false, |_, _| {})
        .await
        .unwrap();
    assert_eq!(rebuilt.artifacts_restored, 8);
    ts.reopen().await;
    for i in 0..8u64 {
        assert_reads_back(ts.store(), &format!("v{i}"), &artifact(i)).await;
    }
    let report = ts.store().verify().await.unwrap();
    assert!(report.is_clean(), "{report:?}");
}
