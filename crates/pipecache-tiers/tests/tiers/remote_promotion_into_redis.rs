//! Promotion from S3 into Redis: a machine whose Redis tier misses and whose S3 tier hits
//! copies the artifact into Redis, where a third machine then hits it. A copy never replaces
//! a value written to Redis since it was read (`SET NX`).

use std::sync::Arc;

use pipecache::tier::{CacheBackend, RedisTier, WritePolicy};
use pipecache::{Artifact, CompressionPolicy, StoredArtifact, SystemClock};
use pipecache_test_support::json_like;
use pipecache_test_support::servers::{RedisServer, S3Server};
use pipecache_test_support::tiers::{open_temp_manager, redis_backend, s3_backend, with_priority};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_s3_hit_is_promoted_into_redis_for_the_next_machine() {
    let s3 = S3Server::start();
    let redis = RedisServer::start();
    let key = "video:s1-00000000000000bb:transcript:model_size=base";
    let transcript = Artifact::single(json_like(5, 20_000)).with_kind("transcript");

    // Machine A writes to S3 only.
    let (_a_dir, a) = open_temp_manager(
        vec![s3_backend(
            &s3.endpoint(),
            s3.bucket(),
            WritePolicy::WriteThrough,
        )],
        None,
    )
    .await;
    a.put(key, transcript.clone()).await.unwrap();
    a.close().await.unwrap();

    // Machine B: Redis (priority 1) in front of S3 (priority 2).
    let behind = with_priority(
        s3_backend(&s3.endpoint(), s3.bucket(), WritePolicy::WriteThrough),
        2,
    );
    let (_b_dir, b) = open_temp_manager(
        vec![
            redis_backend(&redis.url(), WritePolicy::WriteThrough),
            behind,
        ],
        None,
    )
    .await;
    assert_eq!(b.get(key).await.unwrap(), Some(transcript.clone()));
    b.wait_promotions().await;
    let s = b.tier_stats();
    assert_eq!(
        (s[1].name.as_str(), s[1].misses, s[1].promotions),
        ("redis", 1, 1),
        "{s:?}"
    );
    assert_eq!((s[2].hits, s[0].promotions), (1, 1), "{s:?}");
    b.close().await.unwrap();

    // Machine C has Redis only, and hits.
    let (_c_dir, c) = open_temp_manager(
        vec![redis_backend(&redis.url(), WritePolicy::WriteThrough)],
        None,
    )
    .await;
    assert_eq!(c.get(key).await.unwrap(), Some(transcript));
    assert_eq!(c.tier_stats()[1].hits, 1);
    c.close().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_copy_never_replaces_a_newer_redis_value() {
    let redis = RedisServer::start();
    let store = redis.raw_store();
    let tier = RedisTier::new(
        "redis",
        store,
        1 << 20,
        CompressionPolicy::default(),
        Arc::new(SystemClock),
    );
    let item = |seed: u64| StoredArtifact {
        artifact: Artifact::single(json_like(seed, 2_000)),
        created_ms: 1,
        expires_ms: None,
    };
    let got = |key: &'static str| {
        let tier = &tier;
        async move { tier.get(key).await.unwrap().map(|f| f.stored.artifact) }
    };
    // The newer put landed while the copy of the older value was in flight.
    tier.put("k", &item(2)).await.unwrap();
    tier.put_copy("k", &item(1)).await.unwrap();
    assert_eq!(got("k").await, Some(item(2).artifact));
    // Nothing there: the copy is written.
    tier.put_copy("fresh", &item(1)).await.unwrap();
    assert_eq!(got("fresh").await, Some(item(1).artifact));
    // A put is a write: it replaces.
    tier.put("k", &item(3)).await.unwrap();
    assert_eq!(got("k").await, Some(item(3).artifact));
}
