//! The S3 server becomes unreachable in the middle of a push: the push fails cleanly (an
//! error naming the tier, within the deadline), the local tier keeps serving and putting (a
//! write-through put's upload waits in the tier's queue); when the server is back, the queue
//! drains and a second push completes without re-uploading what already arrived.

use std::time::{Duration, Instant};

use pipecache::Artifact;
use pipecache::tier::WritePolicy;
use pipecache_test_support::random_bytes;
use pipecache_test_support::servers::{S3Server, TcpProxy};
use pipecache_test_support::tiers::{open_manager, open_s3_manager, open_s3_reader};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn push_fails_cleanly_and_resumes_without_reuploading() {
    let s3 = S3Server::start();
    let proxy = TcpProxy::start(s3.port());
    let dir = tempfile::tempdir().unwrap();
    // Fill the local tier alone first: no write-back queue races the push below.
    const N: usize = 120;
    let local = open_manager(dir.path(), vec![], None).await;
    for i in 0..N {
        let art = Artifact::single(random_bytes(i as u64, 64 * 1024)).with_kind("embeddings");
        local
            .put(&format!("video:s1-{i:016x}:embeddings:model=clip"), art)
            .await
            .unwrap();
    }
    local.close().await.unwrap();
    let m = open_s3_manager(dir.path(), &s3, Some(&proxy), WritePolicy::WriteThrough).await;

    // A direct view of the bucket, behind no proxy, to watch the push land.
    let (_dir_direct, direct) = open_s3_reader(&s3).await;
    let pusher = m.clone();
    // One artifact per batch: many small packs, so the outage lands mid-push.
    let push = tokio::spawn(async move { pusher.sync_push(None, Some(1), &|_, _| {}).await });
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let landed = count_records(&direct).await;
        if landed >= 10 {
            break;
        }
        assert!(Instant::now() < deadline, "push made no progress");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    proxy.set_down(true);
    let cut = Instant::now();
    let err = push
        .await
        .unwrap()
        .expect_err("the push must fail while S3 is down");
    assert!(
        cut.elapsed() < Duration::from_secs(10),
        "failure took {:?}",
        cut.elapsed()
    );
    assert!(
        matches!(err, pipecache::Error::Remote { ref tier, .. } if tier == "s3"),
        "{err}"
    );
    // A request the server received before the cut may still complete: wait until the
    // count holds still for half a second.
    let mut arrived = count_records(&direct).await;
    let settle_deadline = Instant::now() + Duration::from_secs(15);
    loop {
        tokio::time::sleep(Duration::from_millis(500)).await;
        let now = count_records(&direct).await;
        if now == arrived || Instant::now() > settle_deadline {
            arrived = now;
            break;
        }
        arrived = now;
    }
    assert!(arrived < N, "the push finished before the outage");

    // The local tier keeps serving and putting.
    let key0 = "video:s1-0000000000000000:embeddings:model=clip";
    assert!(m.get(key0).await.unwrap().is_some());
    // A write-through put succeeds locally; its upload is counted as deferred and queued.
    let late = "video:s1-ffffffffffffffff:transcript";
    m.put(late, Artifact::single(b"late".to_vec()))
        .await
        .expect("the local tier keeps putting while S3 is down");
    assert!(m.local().contains(late).await.unwrap());
    let s3_stats = &m.tier_stats()[1];
    assert!(s3_stats.errors + s3_stats.timeouts >= 1, "{s3_stats:?}");
    assert_eq!(s3_stats.deferred, 1, "{s3_stats:?}");

    proxy.set_down(false);
    // The queue sends the deferred put once the tier is back.
    m.drain_queues(Duration::from_secs(30)).await.unwrap();
    assert_eq!(
        direct.get(late).await.unwrap(),
        Some(Artifact::single(b"late".to_vec()))
    );
    let second = m.sync_push(None, None, &|_, _| {}).await.unwrap();
    assert_eq!(second.artifacts, N as u64 + 1);
    assert_eq!(
        second.already_remote,
        arrived as u64 + 1,
        "records that arrived must not be pushed again: {second:?}"
    );
    assert_eq!(second.pushed, (N - arrived) as u64);
    // Blobs of a batch cut between its pack and its records are reused, not re-sent.
    assert_eq!(second.blobs_uploaded + second.blobs_reused, second.pushed);
    assert_eq!(count_records(&direct).await, N + 1);
    for i in [0usize, N / 2, N - 1] {
        let key = format!("video:s1-{i:016x}:embeddings:model=clip");
        let expect = Artifact::single(random_bytes(i as u64, 64 * 1024)).with_kind("embeddings");
        assert_eq!(direct.get(&key).await.unwrap(), Some(expect));
    }
    m.close().await.unwrap();
    direct.close().await.unwrap();
}

/// Record objects in the bucket, listed directly.
async fn count_records(m: &pipecache::CacheManager) -> usize {
    m.remote_packs(None)
        .unwrap()
        .record_names()
        .await
        .unwrap()
        .len()
}
