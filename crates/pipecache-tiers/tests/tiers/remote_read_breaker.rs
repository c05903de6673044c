//! Reads skip a remote tier that keeps failing: after three failed reads in a row the walk
//! leaves Redis out (each skipped read counted, the tier shown as paused) instead of paying
//! a refused connection per local miss; once Redis is back, the read after the pause goes
//! through again and finds what is there.

use std::time::{Duration, Instant};

use pipecache::Artifact;
use pipecache::tier::WritePolicy;
use pipecache_test_support::json_like;
use pipecache_test_support::servers::{RedisServer, TcpProxy};
use pipecache_test_support::tiers::{open_temp_manager, redis_backend};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reads_skip_a_failing_tier_until_it_answers_again() {
    let redis = RedisServer::start();
    let proxy = TcpProxy::start(redis.port());
    let (_dir, m) = open_temp_manager(
        vec![redis_backend(&proxy.redis_url(), WritePolicy::WriteThrough)],
        None,
    )
    .await;
    // Another machine put this one: in Redis, not in this store.
    let theirs = Artifact::single(json_like(7, 2_000)).with_kind("transcript");
    let (_other_dir, other) = open_temp_manager(
        vec![redis_backend(&redis.url(), WritePolicy::WriteThrough)],
        None,
    )
    .await;
    other
        .put("video:b:transcript:n=1", theirs.clone())
        .await
        .unwrap();
    other.close().await.unwrap();

    proxy.set_down(true);
    for i in 0..10 {
        let got = m.get(&format!("video:a:descriptions:n={i}")).await.unwrap();
        assert!(got.is_none(), "a miss while Redis is down");
    }
    let t = m.tier_stats()[1].clone();
    assert_eq!(t.name, "redis");
    assert_eq!(
        t.errors + t.timeouts,
        3,
        "three failed reads pause the tier: {t:?}"
    );
    assert_eq!(t.skipped, 7, "every later read is skipped: {t:?}");
    assert!(t.paused, "{t:?}");
    // Counted per kind too (no key classifier here: every key is of kind `other`).
    let other = t.by_kind.iter().find(|k| k.kind == "other").unwrap();
    assert_eq!(other.skipped, 7, "{other:?}");
    assert_eq!(
        t.misses, 0,
        "a skipped read is not a miss the tier answered"
    );

    // Back up: within a pause (at most 1 s for the first) a read reaches Redis again.
    proxy.set_down(false);
    let deadline = Instant::now() + Duration::from_secs(10);
    let found = loop {
        if let Some(found) = m.get("video:b:transcript:n=1").await.unwrap() {
            break found;
        }
        assert!(Instant::now() < deadline, "{:?}", m.tier_stats()[1]);
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert_eq!(found, theirs);
    let t = m.tier_stats()[1].clone();
    assert!(!t.paused, "{t:?}");
    assert_eq!(t.hits, 1, "{t:?}");
    assert_eq!(
        t.errors + t.timeouts,
        3,
        "no read failed after the pause: {t:?}"
    );
    m.close().await.unwrap();
}
