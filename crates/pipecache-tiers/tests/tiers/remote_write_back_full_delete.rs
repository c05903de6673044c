//! A full write-back queue refuses uploads, never removals: with the tier down and the queue
//! at capacity, a delete still goes through the queue (never dropped, never a direct delete
//! racing an upload), and a put whose upload is dropped queues the removal of the tier's
//! copy, so other machines read nothing rather than the value it replaced. Once the tier is
//! back, the deleted and the replaced copies are gone and the queued upload arrives.

use std::time::Duration;

use pipecache::Artifact;
use pipecache::tier::WritePolicy;
use pipecache_test_support::json_like;
use pipecache_test_support::servers::{RedisServer, TcpProxy};
use pipecache_test_support::tiers::{
    assert_redis_holds, open_temp_manager, redis_backend, with_queue_capacity,
};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_queue_queues_removals_not_uploads() {
    let redis = RedisServer::start();
    let proxy = TcpProxy::start(redis.port());
    let backend = with_queue_capacity(redis_backend(&proxy.redis_url(), WritePolicy::WriteBack), 1);
    let (_dir, m) = open_temp_manager(vec![backend], None).await;
    let art = |i: u64| Artifact::single(json_like(i, 2_000)).with_kind("transcript");
    let (old, new, dropped) = (
        "video:q:transcript:n=0",
        "video:q:transcript:n=1",
        "video:q:transcript:n=2",
    );
    m.put(old, art(0)).await.unwrap();
    m.drain_queues(Duration::from_secs(30)).await.unwrap();
    m.put(dropped, art(9)).await.unwrap();
    m.drain_queues(Duration::from_secs(30)).await.unwrap();

    proxy.set_down(true);
    m.put(new, art(1)).await.unwrap();
    m.put(dropped, art(2)).await.unwrap();
    let s = m.tier_stats()[1].clone();
    assert_eq!(
        (s.queue_length, s.queue_dropped),
        (2, 1),
        "the dropped upload queues a removal past capacity: {s:?}"
    );
    assert_eq!(m.get(dropped).await.unwrap(), Some(art(2)), "kept locally");
    assert!(
        m.delete(old).await.unwrap(),
        "the delete succeeds while the tier is down"
    );
    assert_eq!(
        m.tier_stats()[1].queue_length,
        3,
        "the delete is queued past capacity"
    );

    proxy.set_down(false);
    m.drain_queues(Duration::from_secs(60)).await.unwrap();
    m.close().await.unwrap();

    assert_redis_holds(
        &redis.url(),
        &[
            (old, None, "the remote copy was deleted"),
            (new, Some(art(1)), "the queued upload arrived"),
            (
                dropped,
                None,
                "neither the dropped upload nor the value it replaced is there",
            ),
        ],
    )
    .await;
}
