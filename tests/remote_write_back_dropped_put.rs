//! A put whose upload is dropped because the write-back queue is full does not leave the
//! tier's copy of the value it replaced: a removal is queued past capacity, so other machines
//! read nothing rather than the older value once the tier is back.

use std::time::Duration;

use pipecache::Artifact;
use pipecache::tier::WritePolicy;
use pipecache_test_support::json_like;
use pipecache_test_support::servers::{RedisServer, TcpProxy};
use pipecache_test_support::tiers::{open_temp_manager, redis_backend, with_queue_capacity};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dropped_upload_removes_the_older_remote_copy() {
    let redis = RedisServer::start();
    let proxy = TcpProxy::start(redis.port());
    let backend = with_queue_capacity(redis_backend(&proxy.redis_url(), WritePolicy::WriteBack), 1);
    let (_dir, m) = open_temp_manager(vec![backend], None).await;
    let art = |i: u64| Artifact::single(json_like(i, 2_000)).with_kind("transcript");
    let (key, filler) = ("video:d:transcript:n=0", "video:d:transcript:n=1");
    m.put(key, art(1)).await.unwrap();
    m.drain_queues(Duration::from_secs(30)).await.unwrap();

    proxy.set_down(true);
    m.put(filler, art(2)).await.unwrap();
    m.put(key, art(3)).await.unwrap();
    let s = m.tier_stats()[1].clone();
    assert_eq!(
        (s.queue_length, s.queue_dropped),
        (2, 1),
        "the upload is dropped, its removal queued past capacity: {s:?}"
    );
    assert_eq!(
        m.get(key).await.unwrap(),
        Some(art(3)),
        "local has the new value"
    );

    proxy.set_down(false);
    m.drain_queues(Duration::from_secs(60)).await.unwrap();
    m.close().await.unwrap();

    let (_other_dir, other) = open_temp_manager(
        vec![redis_backend(&redis.url(), WritePolicy::WriteThrough)],
        None,
    )
    .await;
    assert_eq!(
        other.get(key).await.unwrap(),
        None,
        "the tier no longer holds the value the dropped put replaced"
    );
    assert_eq!(
        other.get(filler).await.unwrap(),
        Some(art(2)),
        "the upload that fitted the queue arrived"
    );
    other.close().await.unwrap();
}
