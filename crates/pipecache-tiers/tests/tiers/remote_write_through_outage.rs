//! A write-through tier that is down never fails a put or delete, and never keeps the value
//! a put replaced: the calls succeed locally, their entries wait in the tier's queue (counted
//! as deferred), survive a restart, and bring the tier to the local state once it is back.

use std::time::Duration;

use pipecache::Artifact;
use pipecache::tier::WritePolicy;
use pipecache_test_support::json_like;
use pipecache_test_support::servers::{RedisServer, TcpProxy};
use pipecache_test_support::tiers::{assert_redis_holds, open_manager, redis_backend};

const KEY: &str = "video:o:transcript:n=1";
const GONE: &str = "video:o:transcript:n=2";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_downed_write_through_tier_catches_up_after_a_restart() {
    let redis = RedisServer::start();
    let proxy = TcpProxy::start(redis.port());
    let dir = tempfile::tempdir().unwrap();
    let art = |i: u64| Artifact::single(json_like(i, 2_000)).with_kind("transcript");
    let backend = || redis_backend(&proxy.redis_url(), WritePolicy::WriteThrough);

    let m = open_manager(dir.path(), vec![backend()], None).await;
    m.put(KEY, art(1)).await.unwrap();
    m.put(GONE, art(2)).await.unwrap();
    let s = m.tier_stats()[1].clone();
    assert_eq!(s.queue_length, 0, "applied calls leave no entry: {s:?}");
    assert_eq!(s.puts, 2, "{s:?}");
    assert!(s.bytes_up > 0, "uploads are counted in bytes: {s:?}");

    proxy.set_down(true);
    m.put(KEY, art(3))
        .await
        .expect("a put succeeds locally while the tier is down");
    m.delete(GONE)
        .await
        .expect("a delete succeeds locally while the tier is down");
    let s = m.tier_stats()[1].clone();
    assert_eq!((s.deferred, s.queue_length), (2, 2), "{s:?}");
    // Reads of this machine see its own state.
    assert_eq!(m.get(KEY).await.unwrap(), Some(art(3)));
    assert_eq!(m.get(GONE).await.unwrap(), None);
    // Closed with the tier still down: the entries stay queued in the local index.
    m.close().await.unwrap();

    // Another machine still sees the old values until the queue is applied.
    assert_redis_holds(
        &redis.url(),
        &[(
            KEY,
            Some(art(1)),
            "the old value until the queue is applied",
        )],
    )
    .await;

    proxy.set_down(false);
    let m = open_manager(dir.path(), vec![backend()], None).await;
    assert_eq!(
        m.tier_stats()[1].queue_length,
        2,
        "entries survive the restart"
    );
    m.drain_queues(Duration::from_secs(20)).await.unwrap();
    let s = m.tier_stats()[1].clone();
    assert_eq!(
        (s.puts, s.deferred),
        (1, 0),
        "the worker sent the deferred put: {s:?}"
    );
    assert!(s.bytes_up > 0, "{s:?}");
    m.close().await.unwrap();

    assert_redis_holds(
        &redis.url(),
        &[
            (
                KEY,
                Some(art(3)),
                "the tier holds the put's value, not the one it replaced",
            ),
            (GONE, None, "the deleted key is gone from the tier"),
        ],
    )
    .await;
}
