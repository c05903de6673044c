//! A pipelined push packs batch N+1 while batch N uploads. A blob that batch N+1 shares with
//! a batch still in flight is named, not packed again: across 12 one-artifact batches the
//! shared blob is uploaded once, and every artifact reads back from another machine.

use pipecache::Artifact;
use pipecache::tier::WritePolicy;
use pipecache_test_support::random_bytes;
use pipecache_test_support::tiers::{fs_remote_backend, open_manager, open_temp_manager};

const N: u64 = 12;
const PART: usize = 30_000;

fn artifact(i: u64) -> Artifact {
    Artifact::default()
        .with_kind("keyframes")
        .with_part("intro.jpg", random_bytes(999, PART))
        .with_part("own.jpg", random_bytes(i, PART))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn batches_in_flight_share_blobs_without_uploading_them_twice() {
    let dir = tempfile::tempdir().unwrap();
    let remote = tempfile::tempdir().unwrap();
    let tier = || vec![fs_remote_backend(remote.path(), WritePolicy::WriteThrough)];
    let local = open_manager(dir.path(), vec![], None).await;
    for i in 0..N {
        local
            .put(&format!("video:p{i}:keyframes"), artifact(i))
            .await
            .unwrap();
    }
    local.close().await.unwrap();

    let m = open_manager(dir.path(), tier(), None).await;
    // One artifact per batch (each is 2 x 30 KB).
    let r = m
        .sync_push(None, Some(2 * PART as u64), &|_, _| {})
        .await
        .unwrap();
    m.close().await.unwrap();
    assert_eq!(r.pushed, N, "{r:?}");
    assert_eq!(
        (r.packs, r.blobs_uploaded, r.blobs_reused),
        (N, N + 1, N - 1),
        "the shared blob is packed once, then named: {r:?}"
    );
    let packs = std::fs::read_dir(remote.path().join("packs"))
        .unwrap()
        .count() as u64;
    assert_eq!(packs, N);

    let (_reader_dir, reader) = open_temp_manager(tier(), None).await;
    for i in 0..N {
        assert_eq!(
            reader.get(&format!("video:p{i}:keyframes")).await.unwrap(),
            Some(artifact(i))
        );
    }
    reader.close().await.unwrap();
}
