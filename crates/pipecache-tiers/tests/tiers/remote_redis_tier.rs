//! Redis tier: small artifacts are written whole and hit from Redis by another machine; Redis
//! expiry follows the artifact's TTL; an artifact over max_object_size is skipped, counted.

use std::time::Duration;

use pipecache::tier::{RedisTier, WritePolicy};
use pipecache::{Artifact, ManualClock, PutOptions};
use pipecache_test_support::servers::RedisServer;
use pipecache_test_support::tiers::{open_temp_manager, redis_backend, wall_ms};
use pipecache_test_support::{json_like, random_bytes};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn small_artifacts_hit_from_redis_and_expire_with_their_ttl() {
    let redis = RedisServer::start();
    let backend = || vec![redis_backend(&redis.url(), WritePolicy::WriteThrough)];
    let clock = ManualClock::new(wall_ms());
    let (_dir_a, a) = open_temp_manager(backend(), Some(clock.clone())).await;
    let small = "video:s1-00000000000000aa:transcript:model_size=base";
    let big = "video:s1-00000000000000aa:keyframes:threshold=0.999";
    let transcript = Artifact::single(json_like(1, 20_000)).with_kind("transcript");
    a.put_with(
        small,
        transcript.clone(),
        PutOptions {
            ttl: Some(Duration::from_secs(90)),
            ..PutOptions::default()
        },
    )
    .await
    .unwrap();
    // 200 KB is over the 64 KiB max_object_size of the test backend.
    a.put(big, Artifact::single(random_bytes(3, 200_000)))
        .await
        .unwrap();
    let expiry_of = |entries: Vec<pipecache::ListEntry>| {
        entries
            .into_iter()
            .find(|e| e.key == small)
            .and_then(|e| e.expires_ms)
    };
    let written_expiry = expiry_of(a.local().list("").await.unwrap());
    assert!(written_expiry.is_some());
    let s = &a.tier_stats()[1];
    assert_eq!((s.puts, s.skipped_too_large), (1, 1), "{s:?}");

    let raw = redis.raw_store();
    let ttl = raw
        .ttl(&RedisTier::object_name(small))
        .await
        .unwrap()
        .expect("value present")
        .expect("value has an expiry");
    assert!(
        ttl <= Duration::from_secs(90) && ttl > Duration::from_secs(80),
        "Redis expiry {ttl:?} does not follow the 90 s TTL"
    );
    assert_eq!(raw.ttl(&RedisTier::object_name(big)).await.unwrap(), None);
    a.close().await.unwrap();

    // Another machine: a local miss, then a Redis hit, byte-identical.
    let (_dir_b, b) = open_temp_manager(backend(), Some(clock.clone())).await;
    assert_eq!(b.get(small).await.unwrap(), Some(transcript));
    assert_eq!(b.get(big).await.unwrap(), None);
    let s = b.tier_stats();
    assert_eq!((s[0].misses, s[1].hits, s[1].misses), (2, 1, 1), "{s:?}");
    b.wait_promotions().await;
    assert_eq!(b.tier_stats()[0].promotions, 1);
    // The promoted copy keeps the artifact's expiry; its TTL does not restart.
    assert_eq!(expiry_of(b.local().list("").await.unwrap()), written_expiry);
    b.close().await.unwrap();

    // Past the TTL the recorded expiry makes it a miss even before Redis drops the value.
    clock.advance(Duration::from_secs(91));
    let (_dir_c, c) = open_temp_manager(backend(), Some(clock)).await;
    assert_eq!(c.get(small).await.unwrap(), None);
    assert_eq!(c.tier_stats()[1].misses, 1);
    c.close().await.unwrap();
}
