//! `min_free_space`: a put that would leave less free space than the floor fails with
//! NoSpace before anything is written; smaller puts and deletes go on.

use pipecache::{Artifact, Store, StoreOptions};
use pipecache_test_support::operations::SmallFs;
use pipecache_test_support::{chunk_files, random_bytes};

fn chunk_bytes(dir: &std::path::Path) -> u64 {
    chunk_files(dir)
        .iter()
        .map(|p| std::fs::metadata(p).unwrap().len())
        .sum()
}

#[tokio::test(flavor = "multi_thread")]
async fn a_put_that_would_cross_the_floor_fails_before_writing() {
    let fs = SmallFs::mount(40);
    let dir = fs.path().join("store");
    let store = Store::open(
        &dir,
        StoreOptions {
            gc_interval: None,
            min_free_space: Some(24 << 20),
            ..StoreOptions::default()
        },
    )
    .await
    .unwrap();
    let free = fs.free_bytes();
    assert!(free > 30 << 20, "{free}");
    store
        .put(
            "video:a:keyframes",
            Artifact::single(random_bytes(1, 4 << 20)),
        )
        .await
        .unwrap();
    let written = chunk_bytes(&dir);
    let stats_before = store.stats().await.unwrap();
    // 4 MiB more would leave less than 24 MiB free out of ~40.
    let free_now = fs.free_bytes();
    let too_big = (free_now - (24 << 20)) as usize + (1 << 20);
    let err = store
        .put(
            "video:b:keyframes",
            Artifact::single(random_bytes(2, too_big)),
        )
        .await
        .unwrap_err();
    assert!(err.is_no_space(), "{err:?}");
    assert!(err.to_string().contains("min_free_space"), "{err}");
    assert_eq!(chunk_bytes(&dir), written, "nothing was written");
    let stats = store.stats().await.unwrap();
    assert_eq!(stats.artifacts, stats_before.artifacts);
    assert_eq!(stats.min_free_space, 24 << 20);
    assert!(stats.fs.free_bytes > 0 && stats.fs.total_bytes >= 39 << 20);
    // A put that fits, and a delete, still work.
    store
        .put("video:c:transcript", Artifact::single(b"{}".to_vec()))
        .await
        .unwrap();
    assert!(store.delete("video:a:keyframes").await.unwrap());
    store.close().await.unwrap();
}
