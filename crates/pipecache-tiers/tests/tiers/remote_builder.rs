//! The builder API gives what the config gives: a manager built in code over Redis and an
//! fs-remote tier writes where a config-built manager on another machine reads. A misshapen
//! tier list (a remote tier at priority 0, a name used twice) is refused, by the builder and
//! by a config, and a refused config creates no store directory.

use std::sync::Arc;
use std::time::Duration;

use pipecache::tier::{CacheConfig, RedisTier, WritePolicy};
use pipecache::{Artifact, CacheManager, CompressionPolicy, ConfigError, Error, SystemClock};
use pipecache_test_support::servers::RedisServer;
use pipecache_test_support::tiers::{
    fs_pack_tier, fs_remote_backend, open_temp_manager, redis_backend, tier_options, with_priority,
};
use pipecache_test_support::{TempStore, json_like, random_bytes};

fn redis_tier(name: &str, redis: &RedisServer) -> RedisTier {
    let (max, compression) = (64 << 10, CompressionPolicy::DEFAULT);
    RedisTier::new(
        name,
        redis.raw_store(),
        max,
        compression,
        Arc::new(SystemClock),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_built_manager_writes_where_a_configured_one_reads() {
    let redis = RedisServer::start();
    let share = tempfile::tempdir().unwrap();
    let ts = TempStore::new(tier_options(None)).await;
    let store = ts.store().clone();
    let m = CacheManager::builder(store)
        .redis_tier(
            redis_tier("redis", &redis),
            1,
            WritePolicy::WriteThrough,
            100,
        )
        .pack_tier(
            fs_pack_tier("share", share.path()),
            2,
            WritePolicy::WriteBack,
            100,
        )
        .build()
        .await
        .unwrap();
    let small_key = "video:b-00000000000000c1:transcript:model_size=base";
    let big_key = "video:b-00000000000000c1:keyframes:threshold=0.9";
    let small = Artifact::single(json_like(1, 10_000)).with_kind("transcript");
    // Over the Redis tier's 64 KiB: only the fs-remote tier gets it.
    let big = Artifact::single(random_bytes(2, 200_000)).with_kind("keyframes");
    m.put(small_key, small.clone()).await.unwrap();
    m.put(big_key, big.clone()).await.unwrap();
    m.drain_queues(Duration::from_secs(30)).await.unwrap();
    let stats = m.tier_stats();
    let names: Vec<&str> = stats.iter().map(|s| s.name.as_str()).collect();
    assert_eq!(names, ["local", "redis", "share"]);
    assert_eq!(stats[1].skipped_too_large, 1, "{:?}", stats[1]);
    m.close().await.unwrap();

    let share_backend = with_priority(
        fs_remote_backend(share.path(), WritePolicy::WriteThrough),
        2,
    );
    let (_other_dir, other) = open_temp_manager(
        vec![
            redis_backend(&redis.url(), WritePolicy::WriteThrough),
            share_backend,
        ],
        None,
    )
    .await;
    assert_eq!(other.get(small_key).await.unwrap(), Some(small));
    assert_eq!(other.get(big_key).await.unwrap(), Some(big));
    let stats = other.tier_stats();
    assert_eq!((stats[1].hits, stats[2].hits), (1, 1), "{stats:?}");
    other.close().await.unwrap();
}

fn assert_invalid<T>(r: Result<T, Error>, needle: &str) {
    match r {
        Err(e @ Error::Config(ConfigError::Invalid { .. })) => {
            assert!(e.to_string().contains(needle), "{e}");
        }
        Err(e) => panic!("expected an invalid-option error, got {e}"),
        Ok(_) => panic!("accepted a misshapen tier list"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_builder_refuses_a_misshapen_tier_list() {
    let share = tempfile::tempdir().unwrap();
    let ts = TempStore::new(tier_options(None)).await;
    let store = ts.store().clone();
    // Builds a manager over fs-remote tiers given as (name, priority).
    let build = |tiers: &[(&str, u32)]| {
        let mut b = CacheManager::builder(store.clone());
        for (name, priority) in tiers {
            let tier = fs_pack_tier(name, share.path());
            b = b.pack_tier(tier, *priority, WritePolicy::WriteThrough, 100);
        }
        b.build()
    };
    assert_invalid(build(&[("share", 0)]).await, "priority 0");
    let twice = build(&[("share", 1), ("share", 2)]).await;
    assert_invalid(twice, "\"share\" is used twice");
    assert_invalid(build(&[("local", 1)]).await, "\"local\" is used twice");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refused_config_creates_no_store() {
    let share = tempfile::tempdir().unwrap();
    let base = tempfile::tempdir().unwrap();
    let dir = base.path().join("store");
    let config = CacheConfig {
        backends: vec![
            fs_remote_backend(share.path(), WritePolicy::WriteThrough),
            fs_remote_backend(share.path(), WritePolicy::WriteBack),
        ],
        ..CacheConfig::default()
    };
    let opened = CacheManager::open(&config, &dir, tier_options(None), "test").await;
    assert_invalid(opened, "used twice");
    assert!(!dir.exists(), "a refused config created {}", dir.display());
}
