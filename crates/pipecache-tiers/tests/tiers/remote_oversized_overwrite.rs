//! Overwriting a key with an artifact too large for a tier removes that tier's copy of the
//! older value: otherwise, once the local tier evicts the new value, read-through would
//! answer with the old one. The same holds for a value only the tier has (another machine's
//! put of a key this machine never held). Checked for a write-through and a write-back Redis
//! tier.

use std::time::Duration;

use pipecache::Artifact;
use pipecache::tier::{RedisTier, WritePolicy};
use pipecache_test_support::servers::RedisServer;
use pipecache_test_support::tiers::{open_temp_manager, redis_backend};
use pipecache_test_support::{json_like, random_bytes};

async fn overwrite_with_oversized(policy: WritePolicy) {
    let redis = RedisServer::start();
    let key = "video:s1-00000000000000bb:transcript:model_size=base";
    let (_dir, m) = open_temp_manager(vec![redis_backend(&redis.url(), policy)], None).await;
    let small = Artifact::single(json_like(1, 20_000)).with_kind("transcript");
    m.put(key, small).await.unwrap();
    m.drain_queues(Duration::from_secs(30)).await.unwrap();
    let raw = redis.raw_store();
    let name = RedisTier::object_name(key);
    assert!(
        raw.ttl(&name).await.unwrap().is_some(),
        "the small value reached Redis"
    );

    // 200 KB is over the test backend's 64 KiB max_object_size.
    let big = Artifact::single(random_bytes(2, 200_000)).with_kind("transcript");
    m.put(key, big.clone()).await.unwrap();
    m.drain_queues(Duration::from_secs(30)).await.unwrap();
    assert_eq!(
        m.get(key).await.unwrap(),
        Some(big),
        "local holds the new value"
    );
    let s = &m.tier_stats()[1];
    assert_eq!(s.skipped_too_large, 1, "{s:?}");
    assert_eq!(
        raw.ttl(&name).await.unwrap(),
        None,
        "{policy:?}: Redis still holds the overwritten value"
    );
    m.close().await.unwrap();

    // Another machine: a miss, never the old value.
    let (_other_dir, other) =
        open_temp_manager(vec![redis_backend(&redis.url(), policy)], None).await;
    assert_eq!(other.get(key).await.unwrap(), None);

    // A value only the tier holds (this machine never had the key) goes too.
    let shared = "video:s1-00000000000000cc:transcript:model_size=base";
    let (_first_dir, first) =
        open_temp_manager(vec![redis_backend(&redis.url(), policy)], None).await;
    first
        .put(shared, Artifact::single(json_like(3, 20_000)))
        .await
        .unwrap();
    first.drain_queues(Duration::from_secs(30)).await.unwrap();
    first.close().await.unwrap();
    let shared_name = RedisTier::object_name(shared);
    assert!(raw.ttl(&shared_name).await.unwrap().is_some());
    other
        .put(shared, Artifact::single(random_bytes(4, 200_000)))
        .await
        .unwrap();
    other.drain_queues(Duration::from_secs(30)).await.unwrap();
    assert_eq!(
        raw.ttl(&shared_name).await.unwrap(),
        None,
        "{policy:?}: Redis still holds the other machine's value"
    );
    other.close().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn write_through_tier_drops_the_older_copy() {
    overwrite_with_oversized(WritePolicy::WriteThrough).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn write_back_tier_drops_the_older_copy() {
    overwrite_with_oversized(WritePolicy::WriteBack).await;
}
