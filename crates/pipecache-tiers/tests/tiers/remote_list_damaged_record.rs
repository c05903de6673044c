//! Listing a pack tier (what `invalidate` relies on) reports a damaged record as an error
//! naming the tier, instead of silently leaving that key out of the listing.

use pipecache::Artifact;
use pipecache::tier::{PackTier, WritePolicy};
use pipecache_test_support::json_like;
use pipecache_test_support::tiers::{fs_remote_backend, open_temp_manager};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_damaged_remote_record_fails_the_listing() {
    let remote = tempfile::tempdir().unwrap();
    let (_dir, m) = open_temp_manager(
        vec![fs_remote_backend(remote.path(), WritePolicy::WriteThrough)],
        None,
    )
    .await;
    for k in ["video:a:transcript", "video:b:transcript"] {
        m.put(k, Artifact::single(json_like(1, 2_000)))
            .await
            .unwrap();
    }
    let listed = m.list_keys("video:").await.unwrap();
    assert_eq!(listed.len(), 2, "{listed:?}");

    let record = remote
        .path()
        .join(PackTier::record_path("video:b:transcript"));
    assert!(record.is_file(), "{}", record.display());
    std::fs::write(&record, b"not a record").unwrap();
    let err = m
        .list_keys("video:")
        .await
        .expect_err("a damaged record must not vanish from the listing");
    assert!(err.is_corruption(), "{err}");
    assert!(err.to_string().contains("video:b:transcript"), "{err}");
    m.close().await.unwrap();
}
