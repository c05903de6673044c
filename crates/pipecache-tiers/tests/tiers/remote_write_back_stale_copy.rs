//! A write-back tier ends up holding a key's current local value or nothing, never an older
//! one. While Redis is down, three keys it already holds are overwritten locally; before the
//! worker can send them, one expires here and one's bytes are damaged here. Once Redis is
//! back, the intact one is uploaded and the other two are removed from it: read-through
//! would otherwise answer with the values they replaced.

use std::time::Duration;

use pipecache::tier::{RedisTier, WritePolicy};
use pipecache::{Artifact, ManualClock, PutOptions};
use pipecache_test_support::servers::{RedisServer, TcpProxy};
use pipecache_test_support::tiers::{open_manager, open_temp_manager, redis_backend, wall_ms};
use pipecache_test_support::{chunk_files, flip_byte, random_bytes};

const INTACT: &str = "video:w-00000000000000a1:transcript:whisper=1";
const EXPIRED: &str = "video:w-00000000000000a2:transcript:whisper=2";
const DAMAGED: &str = "video:w-00000000000000a3:transcript:whisper=3";

/// A distinct value per key and version (keys differ in their last character).
fn value(key: &str, version: u64) -> Artifact {
    let seed = version * 1_000 + u64::from(*key.as_bytes().last().unwrap());
    Artifact::single(random_bytes(seed, 4_000)).with_kind("transcript")
}

/// Flips a byte inside `payload` where it sits in one of the chunk files under `dir`.
fn damage(dir: &std::path::Path, payload: &[u8]) {
    let needle = &payload[1_000..1_064];
    for file in chunk_files(dir) {
        let bytes = std::fs::read(&file).unwrap();
        if let Some(at) = bytes.windows(needle.len()).position(|w| w == needle) {
            flip_byte(&file, at as u64 + 10, 0x20);
            return;
        }
    }
    panic!("payload not found in any chunk file");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_tier_never_keeps_an_older_value() {
    let redis = RedisServer::start();
    let proxy = TcpProxy::start(redis.port());
    let backend = || redis_backend(&proxy.redis_url(), WritePolicy::WriteBack);
    let clock = ManualClock::new(wall_ms());
    let dir = tempfile::tempdir().unwrap();
    let m = open_manager(dir.path(), vec![backend()], Some(clock.clone())).await;
    for key in [INTACT, EXPIRED, DAMAGED] {
        m.put(key, value(key, 1)).await.unwrap();
    }
    m.drain_queues(Duration::from_secs(30)).await.unwrap();
    let raw = redis.raw_store();
    for key in [INTACT, EXPIRED, DAMAGED] {
        assert!(
            raw.ttl(&RedisTier::object_name(key))
                .await
                .unwrap()
                .is_some()
        );
    }

    proxy.set_down(true);
    m.put(INTACT, value(INTACT, 2)).await.unwrap();
    m.put_with(
        EXPIRED,
        value(EXPIRED, 2),
        PutOptions {
            ttl: Some(Duration::from_secs(60)),
            ..PutOptions::default()
        },
    )
    .await
    .unwrap();
    m.put(DAMAGED, value(DAMAGED, 2)).await.unwrap();
    assert_eq!(m.tier_stats()[1].queue_length, 3);
    m.close().await.unwrap();

    damage(dir.path(), &value(DAMAGED, 2).parts[0].data);
    clock.advance(Duration::from_secs(120));
    proxy.set_down(false);
    let m = open_manager(dir.path(), vec![backend()], Some(clock.clone())).await;
    m.drain_queues(Duration::from_secs(30)).await.unwrap();
    for key in [EXPIRED, DAMAGED] {
        assert_eq!(
            raw.ttl(&RedisTier::object_name(key)).await.unwrap(),
            None,
            "{key}: Redis still holds the value it replaced"
        );
    }
    match m.get(DAMAGED).await {
        Err(e) if e.is_corruption() => {}
        other => panic!(
            "a damaged local value is a corruption error, not the older remote one: {other:?}"
        ),
    }
    m.close().await.unwrap();

    // Another machine sees the current value of the intact key, and nothing of the others.
    let (_other_dir, other) = open_temp_manager(
        vec![redis_backend(&redis.url(), WritePolicy::WriteThrough)],
        None,
    )
    .await;
    assert_eq!(other.get(INTACT).await.unwrap(), Some(value(INTACT, 2)));
    for key in [EXPIRED, DAMAGED] {
        assert_eq!(other.get(key).await.unwrap(), None, "{key}");
    }
    other.close().await.unwrap();
}
