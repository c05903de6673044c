//! A key whose upload to a write-back tier is still queued is not read from that tier: its
//! copy there is the value the local put replaced. Here the new value expires locally
//! before the worker can send it (Redis is down), Redis comes back, and a read in the
//! window before the worker's next attempt is a miss, not the old value. The same holds
//! when the manager was closed and reopened in between (pending keys rebuilt from the queue).

use std::time::{Duration, Instant};

use pipecache::tier::{RedisTier, WritePolicy};
use pipecache::{Artifact, ManualClock, PutOptions};
use pipecache_test_support::servers::{RedisServer, TcpProxy};
use pipecache_test_support::tiers::{
    open_manager, open_temp_manager, redis_backend, wait_for_tier_failures, wall_ms,
};
use pipecache_test_support::{json_like, random_bytes};

const KEY: &str = "video:p-00000000000000b1:transcript:model_size=base";
const PROBE: &str = "video:p-00000000000000b2:transcript:model_size=base";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_queued_key_is_not_read_from_its_tier() {
    queued_key_is_not_read(false).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_key_queued_before_a_restart_is_not_read_from_its_tier() {
    queued_key_is_not_read(true).await;
}

async fn queued_key_is_not_read(reopen: bool) {
    let redis = RedisServer::start();
    let proxy = TcpProxy::start(redis.port());
    let clock = ManualClock::new(wall_ms());
    let dir = tempfile::tempdir().unwrap();
    let open = || {
        open_manager(
            dir.path(),
            vec![redis_backend(&proxy.redis_url(), WritePolicy::WriteBack)],
            Some(clock.clone()),
        )
    };
    let mut m = open().await;
    let old = Artifact::single(random_bytes(1, 3_000)).with_kind("transcript");
    m.put(KEY, old.clone()).await.unwrap();
    m.drain_queues(Duration::from_secs(30)).await.unwrap();
    // Another machine puts the probe straight into Redis.
    let (_other_dir, other) = open_temp_manager(
        vec![redis_backend(&redis.url(), WritePolicy::WriteThrough)],
        None,
    )
    .await;
    let probe = Artifact::single(json_like(3, 2_000)).with_kind("transcript");
    other.put(PROBE, probe).await.unwrap();
    other.close().await.unwrap();

    proxy.set_down(true);
    let new = Artifact::single(random_bytes(2, 3_000)).with_kind("transcript");
    let short = PutOptions {
        ttl: Some(Duration::from_secs(60)),
        ..PutOptions::default()
    };
    m.put_with(KEY, new.clone(), short).await.unwrap();
    if reopen {
        m.close().await.unwrap();
        m = open().await;
        assert_eq!(m.tier_stats()[1].queue_length, 1, "the entry survived");
    }
    // After seven failures the worker waits 6.4 s: time enough for the Redis client to
    // reconnect and the read below.
    wait_for_tier_failures(&m, 1, 7).await;
    clock.advance(Duration::from_secs(120));
    proxy.set_down(false);

    // Redis answers reads again (a probe only Redis holds), the queue still waits.
    let probe_deadline = Instant::now() + Duration::from_secs(5);
    while m.get(PROBE).await.unwrap().is_none() {
        assert!(Instant::now() < probe_deadline, "Redis never answered");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    assert_eq!(
        m.tier_stats()[1].queue_length,
        1,
        "the worker ran too early"
    );
    assert_eq!(
        m.get(KEY).await.unwrap(),
        None,
        "read-through answered with the value the local put replaced"
    );
    assert_eq!(
        m.tier_stats()[1].queue_length,
        1,
        "the worker ran during the read"
    );

    // Once the worker runs, Redis holds neither value.
    m.drain_queues(Duration::from_secs(30)).await.unwrap();
    let raw = redis.raw_store();
    assert_eq!(raw.ttl(&RedisTier::object_name(KEY)).await.unwrap(), None);
    m.close().await.unwrap();
}
