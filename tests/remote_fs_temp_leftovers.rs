//! fs-remote objects are written to `.pipecache-tmp/` and renamed into place; a crash in
//! between leaves the temporary file. Opening the tier removes leftovers older than an hour
//! and leaves younger files alone (another machine sharing the directory may be writing).

use std::time::{Duration, SystemTime};

use pipecache_remote::ObjectStore;
use pipecache_test_support::pipeline::set_mtime;

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

    let store = ObjectStore::filesystem(share.path(), Duration::from_secs(5)).unwrap();
    assert!(!stale.exists(), "a two-hour-old leftover was kept");
    assert!(fresh.exists(), "a ten-minute-old file was removed");

    // The directory still works as the temporary area of new writes.
    store.put("records/k", b"whole".to_vec()).await.unwrap();
    assert_eq!(
        store.get("records/k").await.unwrap().as_deref(),
        Some(&b"whole"[..])
    );
}
