//! A manager dropped without `close` does not keep its store open for good: the last clone
//! dropped stops the write-back workers, the store closes once they exit, and the directory
//! opens again in the same process; whatever was still queued is uploaded from there.

use std::time::{Duration, Instant};

use pipecache::tier::{CacheConfig, WritePolicy};
use pipecache::{Artifact, CacheManager, Error, StoreError};
use pipecache_test_support::json_like;
use pipecache_test_support::tiers::{fs_remote_backend, open_manager, tier_options};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dropping_the_last_clone_releases_the_store() {
    let (dir, share) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let backends = vec![fs_remote_backend(share.path(), WritePolicy::WriteBack)];
    let keys: Vec<String> = (0..5)
        .map(|i| format!("video:m-{i:016x}:transcript"))
        .collect();
    let m = open_manager(dir.path(), backends.clone(), None).await;
    let clone = m.clone();
    drop(m);
    // A clone left alive keeps the manager running.
    for (i, k) in keys.iter().enumerate() {
        clone
            .put(k, Artifact::single(json_like(i as u64, 2_000)))
            .await
            .unwrap();
    }
    drop(clone);

    let config = CacheConfig {
        backends,
        ..CacheConfig::default()
    };
    let deadline = Instant::now() + Duration::from_secs(30);
    let reopened = loop {
        match CacheManager::open(&config, dir.path(), tier_options(None), "test").await {
            Ok(m) => break m,
            Err(Error::Store(StoreError::StoreInUse { .. })) if Instant::now() < deadline => {
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            Err(e) => panic!("the dropped manager still holds the store: {e}"),
        }
    };
    reopened
        .drain_queues(Duration::from_secs(30))
        .await
        .unwrap();
    reopened.close().await.unwrap();

    let (_reader_dir, reader) = pipecache_test_support::tiers::open_temp_manager(
        vec![fs_remote_backend(share.path(), WritePolicy::WriteThrough)],
        None,
    )
    .await;
    for (i, k) in keys.iter().enumerate() {
        assert_eq!(
            reader.get(k).await.unwrap(),
            Some(Artifact::single(json_like(i as u64, 2_000))),
            "{k}"
        );
    }
    reader.close().await.unwrap();
}
