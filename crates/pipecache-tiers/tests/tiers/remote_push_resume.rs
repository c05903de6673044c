//! A push whose batch fails after its pack and index landed (here: the records cannot be
//! written) is resumed by the same process at once: the batch's blobs are reused from the pack
//! already there, not uploaded again, and every artifact then reads back from the remote.

use pipecache::Artifact;
use pipecache::tier::WritePolicy;
use pipecache_test_support::random_bytes;
use pipecache_test_support::tiers::{fs_remote_backend, open_manager, open_temp_manager};

const N: u64 = 6;
const PARTS: u64 = 4;

fn artifact(i: u64) -> Artifact {
    let mut a = Artifact::default().with_kind("keyframes");
    for j in 0..PARTS {
        a = a.with_part(format!("{j:03}.jpg"), random_bytes(i * 100 + j, 30_000));
    }
    a
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_resumed_push_reuses_the_blobs_of_its_failed_batch() {
    let dir = tempfile::tempdir().unwrap();
    let remote = tempfile::tempdir().unwrap();
    let local = open_manager(dir.path(), vec![], None).await;
    for i in 0..N {
        local
            .put(&format!("video:r{i}:keyframes"), artifact(i))
            .await
            .unwrap();
    }
    local.close().await.unwrap();

    // `records` is a file, so record objects cannot be created under it; packs and indexes can.
    let blocker = remote.path().join("records");
    std::fs::write(&blocker, b"in the way").unwrap();
    let tier = || vec![fs_remote_backend(remote.path(), WritePolicy::WriteThrough)];
    let m = open_manager(dir.path(), tier(), None).await;
    m.sync_push(None, None, &|_, _| {})
        .await
        .expect_err("records cannot be written");
    let packs = std::fs::read_dir(remote.path().join("packs"))
        .unwrap()
        .count();
    assert_eq!(packs, 1, "the failed batch's pack landed");

    std::fs::remove_file(&blocker).unwrap();
    let r = m.sync_push(None, None, &|_, _| {}).await.unwrap();
    assert_eq!(r.pushed, N, "{r:?}");
    assert_eq!(
        (r.blobs_uploaded, r.blobs_reused, r.packs),
        (0, N * PARTS, 0),
        "the retry must reuse the pack that already arrived: {r:?}"
    );
    m.close().await.unwrap();

    let (_reader_dir, reader) = open_temp_manager(tier(), None).await;
    for i in 0..N {
        assert_eq!(
            reader.get(&format!("video:r{i}:keyframes")).await.unwrap(),
            Some(artifact(i))
        );
    }
    reader.close().await.unwrap();
}
