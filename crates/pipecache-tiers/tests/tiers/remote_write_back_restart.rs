//! A write-back queue survives a restart of the store with items pending, then drains.

use std::time::Duration;

use pipecache::Artifact;
use pipecache::tier::WritePolicy;
use pipecache_test_support::json_like;
use pipecache_test_support::servers::{S3Server, TcpProxy};
use pipecache_test_support::tiers::{
    open_manager, open_s3_manager, open_s3_reader, s3_backend, wait_for_tier_failures,
    with_queue_capacity,
};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn queued_uploads_survive_a_restart() {
    let s3 = S3Server::start();
    let proxy = TcpProxy::start(s3.port());
    let dir = tempfile::tempdir().unwrap();
    let behind_proxy = || {
        vec![s3_backend(
            &proxy.endpoint(),
            s3.bucket(),
            WritePolicy::WriteBack,
        )]
    };

    // S3 unreachable: puts succeed locally and queue up.
    proxy.set_down(true);
    let m = open_manager(dir.path(), behind_proxy(), None).await;
    let keys: Vec<String> = (0..20)
        .map(|i| format!("video:s1-{i:016x}:descriptions:model=Qwen2-VL"))
        .collect();
    for (i, k) in keys.iter().enumerate() {
        m.put(k, Artifact::single(json_like(i as u64, 10_000)))
            .await
            .unwrap();
    }
    let s = &m.tier_stats()[1];
    assert_eq!(s.queue_length, 20, "{s:?}");
    assert_eq!(s.queue_dropped, 0);
    // The worker fails against the downed proxy, counted as errors, not misses.
    wait_for_tier_failures(&m, 1, 1).await;
    assert_eq!(m.tier_stats()[1].misses, 0);
    // Waiting for the queue gives up with a timeout error, not a misconfiguration error.
    let waited = m
        .drain_queues(Duration::from_millis(100))
        .await
        .unwrap_err();
    assert!(waited.is_timeout(), "{waited}");
    m.close().await.unwrap();

    // Restart, S3 still down: the queue was persisted.
    let m = open_manager(dir.path(), behind_proxy(), None).await;
    assert_eq!(m.tier_stats()[1].queue_length, 20);
    m.close().await.unwrap();
    // Restart with S3 back: the queue drains.
    proxy.set_down(false);
    let m = open_manager(dir.path(), behind_proxy(), None).await;
    m.drain_queues(Duration::from_secs(60)).await.unwrap();
    assert_eq!(m.tier_stats()[1].queue_length, 0);
    m.close().await.unwrap();

    // Another machine reads every one of them from S3.
    let (_dir_other, other) = open_s3_reader(&s3).await;
    for (i, k) in keys.iter().enumerate() {
        assert_eq!(
            other.get(k).await.unwrap(),
            Some(Artifact::single(json_like(i as u64, 10_000))),
            "{k}"
        );
    }
    other.close().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_queue_drops_uploads_never_puts() {
    let s3 = S3Server::start();
    let proxy = TcpProxy::start(s3.port());
    proxy.set_down(true);
    let backend = with_queue_capacity(
        s3_backend(&proxy.endpoint(), s3.bucket(), WritePolicy::WriteBack),
        5,
    );
    let dir = tempfile::tempdir().unwrap();
    let m = open_manager(dir.path(), vec![backend], None).await;
    for i in 0..8u64 {
        m.put(&format!("k{i}"), Artifact::single(json_like(i, 1_000)))
            .await
            .expect("a full queue must not fail the put");
    }
    let s = &m.tier_stats()[1];
    // Five uploads fill the queue; the three dropped ones queue removals past it.
    assert_eq!((s.queue_length, s.queue_dropped), (8, 3), "{s:?}");
    for i in 0..8u64 {
        assert!(m.local().contains(&format!("k{i}")).await.unwrap());
    }
    m.close().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_worker_retries_until_the_tier_comes_back() {
    let s3 = S3Server::start();
    let proxy = TcpProxy::start(s3.port());
    proxy.set_down(true);
    let dir = tempfile::tempdir().unwrap();
    let m = open_s3_manager(dir.path(), &s3, Some(&proxy), WritePolicy::WriteBack).await;
    let art = Artifact::single(json_like(7, 5_000));
    m.put("video:s1-0000000000000007:transcript", art.clone())
        .await
        .unwrap();
    // Let it fail a few times (backoff grows from 100 ms), then bring S3 back: the same
    // process uploads it, no restart needed.
    wait_for_tier_failures(&m, 1, 2).await;
    proxy.set_down(false);
    m.drain_queues(Duration::from_secs(60)).await.unwrap();
    assert!(m.tier_stats()[1].puts >= 1);
    m.close().await.unwrap();
    let (_d, other) = open_s3_reader(&s3).await;
    assert_eq!(
        other
            .get("video:s1-0000000000000007:transcript")
            .await
            .unwrap(),
        Some(art)
    );
    other.close().await.unwrap();
}
