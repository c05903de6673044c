//! Redis goes away and comes back: while it is down, a write-through put succeeds locally and
//! its upload waits in the tier's queue (counted as deferred), and the local tier keeps
//! serving; once it is back, the same manager sends the deferred put and writes to Redis again
//! without a restart (the connection is re-established).

use std::time::Duration;

use pipecache::Artifact;
use pipecache::tier::WritePolicy;
use pipecache_test_support::json_like;
use pipecache_test_support::servers::{RedisServer, TcpProxy};
use pipecache_test_support::tiers::{open_temp_manager, redis_backend};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_redis_tier_reconnects_after_an_outage() {
    let redis = RedisServer::start();
    let proxy = TcpProxy::start(redis.port());
    let (_dir, m) = open_temp_manager(
        vec![redis_backend(&proxy.redis_url(), WritePolicy::WriteThrough)],
        None,
    )
    .await;
    let art = |i: u64| Artifact::single(json_like(i, 2_000)).with_kind("transcript");
    m.put("video:r:transcript:n=1", art(1)).await.unwrap();

    proxy.set_down(true);
    m.put("video:r:transcript:n=2", art(2))
        .await
        .expect("the local tier keeps putting while Redis is down");
    assert_eq!(
        m.get("video:r:transcript:n=2").await.unwrap(),
        Some(art(2)),
        "local serves"
    );
    let down = m.tier_stats()[1].clone();
    assert!(down.errors + down.timeouts >= 1, "{down:?}");
    assert_eq!(down.deferred, 1, "{down:?}");

    proxy.set_down(false);
    // The same manager's worker reconnects and sends the deferred put; a new put goes
    // straight through.
    m.drain_queues(Duration::from_secs(20)).await.unwrap();
    m.put("video:r:transcript:n=3", art(3)).await.unwrap();
    assert_eq!(
        m.tier_stats()[1].deferred,
        1,
        "the put after the outage reached Redis"
    );
    // Another machine hits it in Redis.
    let (_other_dir, other) = open_temp_manager(
        vec![redis_backend(&redis.url(), WritePolicy::WriteThrough)],
        None,
    )
    .await;
    assert_eq!(
        other.get("video:r:transcript:n=3").await.unwrap(),
        Some(art(3))
    );
    for n in [1, 2] {
        assert_eq!(
            other
                .get(&format!("video:r:transcript:n={n}"))
                .await
                .unwrap(),
            Some(art(n))
        );
    }
    assert_eq!(other.tier_stats()[1].hits, 3);
    m.close().await.unwrap();
    other.close().await.unwrap();
}
