//! fs-remote objects are written to `.pipecache-tmp/` and renamed into place; a crash in
//! between leaves the temporary file. Opening a manager on the tier removes leftovers older
//! than an hour and leaves younger files alone (another machine sharing the directory may be
//! writing); checking a config touches nothing.

use std::time::{Duration, SystemTime};

use pipecache::tier::{CacheConfig, WritePolicy};
use pipecache::{Artifact, CacheManager};
use pipecache_test_support::pipeline::set_mtime;
use pipecache_test_support::tiers::{fs_remote_backend, open_temp_manager};

#[tokio::test]
async fn stale_temporary_files_are_removed_on_open() {
    let share = tempfile::tempdir().unwrap();
    let tmp = share.path().join(".pipecache-tmp");
    std::fs::create_dir_all(&tmp).unwrap();
    let (stale, fresh) = (tmp.join("crashed-write"), tmp.join("write-in-flight"));
    std::fs::write(&stale, b"half an object").unwrap();
    std::fs::write(&fresh, b"half an object").unwrap();
    set_mtime(&stale, SystemTime::now() - Duration::from_secs(2 * 60 * 60));
    set_mtime(&fresh, SystemTime::now() - Duration::from_secs(10 * 60));

    let backends = vec![fs_remote_backend(share.path(), WritePolicy::WriteThrough)];
    let config = CacheConfig {
        backends: backends.clone(),
        ..CacheConfig::default()
    };
    CacheManager::check_config(&config, "test").await.unwrap();
    assert!(stale.exists(), "a config check removed a file");

    let (_dir, m) = open_temp_manager(backends, None).await;
    assert!(!stale.exists(), "a two-hour-old leftover was kept");
    assert!(fresh.exists(), "a ten-minute-old file was removed");

    // The directory still works as the temporary area of new writes.
    let key = "video:t-0000000000000001:transcript";
    m.put(key, Artifact::single(b"whole".to_vec()))
        .await
        .unwrap();
    m.close().await.unwrap();
    let (_other, reader) = open_temp_manager(
        vec![fs_remote_backend(share.path(), WritePolicy::WriteThrough)],
        None,
    )
    .await;
    assert_eq!(
        reader.get(key).await.unwrap(),
        Some(Artifact::single(b"whole".to_vec()))
    );
    reader.close().await.unwrap();
}
