//! The promotion layer alone, over real backends (the local store, an fs-remote pack tier,
//! Redis), without a manager: a copy reaches every target that takes it, keeps a newer value
//! a target already holds, skips a target it is too large for, goes on past a target that is
//! down, and stops as soon as the source's value is no longer current. `Promotions::wait`
//! returns only once every background copy has ended and let go of what it held, a copy
//! that panicked included.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use pipecache::tier::{CacheBackend, PromotionOutcome, Promotions, RedisTier, promote};
use pipecache::{Artifact, CompressionPolicy, StoredArtifact, SystemClock};
use pipecache_remote::RedisStore;
use pipecache_test_support::servers::{RedisServer, TcpProxy};
use pipecache_test_support::tiers::fs_pack_tier;
use pipecache_test_support::{TempStore, random_bytes};

const KEY: &str = "video:s1-00000000000000aa:transcript:model=base";

fn stored(seed: u64, len: usize) -> StoredArtifact {
    StoredArtifact {
        artifact: Artifact::single(random_bytes(seed, len)).with_kind("transcript"),
        created_ms: 1,
        expires_ms: None,
    }
}

fn redis_tier(url: &str, max_object_size: u64) -> RedisTier {
    let store = RedisStore::new(url, RedisTier::KEY_PREFIX, Duration::from_secs(2)).unwrap();
    RedisTier::new(
        "redis",
        store,
        max_object_size,
        CompressionPolicy::DEFAULT,
        Arc::new(SystemClock),
    )
}

async fn held(tier: &dyn CacheBackend) -> Option<Artifact> {
    tier.get(KEY).await.unwrap().map(|f| f.stored.artifact)
}

fn names(outcomes: &[PromotionOutcome]) -> Vec<&'static str> {
    outcomes
        .iter()
        .map(|o| match o {
            PromotionOutcome::Copied => "copied",
            PromotionOutcome::TooLarge => "too large",
            PromotionOutcome::Stale => "stale",
            PromotionOutcome::Failed(_) => "failed",
            _ => "unknown",
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_copy_reaches_every_target_that_takes_it() {
    let redis = RedisServer::start();
    let share = tempfile::tempdir().unwrap();
    let local = TempStore::default_options().await;
    let pack = fs_pack_tier("share", share.path());
    let small_redis = redis_tier(&redis.url(), 1024);
    let item = stored(1, 20_000);

    let targets: [&dyn CacheBackend; 3] = [&small_redis, &pack, local.store()];
    let outcomes = promote(KEY, &item, &targets, || true).await;
    assert_eq!(names(&outcomes), ["too large", "copied", "copied"]);
    assert_eq!(held(&small_redis).await, None, "too large: never sent");
    assert_eq!(held(&pack).await, Some(item.artifact.clone()));
    assert_eq!(held(local.store()).await, Some(item.artifact.clone()));

    // A small one fits Redis too.
    let small = stored(2, 100);
    let outcomes = promote("small", &small, &[&small_redis], || true).await;
    assert_eq!(names(&outcomes), ["copied"]);
    let got = small_redis.get("small").await.unwrap().unwrap();
    assert_eq!(got.stored.artifact, small.artifact);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_newer_value_in_the_target_stays() {
    let share = tempfile::tempdir().unwrap();
    let local = TempStore::default_options().await;
    let pack = fs_pack_tier("share", share.path());
    let newer = stored(3, 5_000);
    local
        .store()
        .put(KEY, newer.artifact.clone())
        .await
        .unwrap();
    pack.put(KEY, &newer).await.unwrap();

    let older = stored(4, 5_000);
    let targets: [&dyn CacheBackend; 2] = [&pack, local.store()];
    let outcomes = promote(KEY, &older, &targets, || true).await;
    assert_eq!(names(&outcomes), ["copied", "copied"], "kept is a success");
    assert_eq!(held(&pack).await, Some(newer.artifact.clone()));
    assert_eq!(held(local.store()).await, Some(newer.artifact));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_target_that_is_down_does_not_stop_the_others() {
    // A Redis behind a proxy that is down: every connection is closed at once. (Not a port
    // nothing listens on: a parallel test could start a server there.)
    let redis = RedisServer::start();
    let proxy = TcpProxy::start(redis.port());
    proxy.set_down(true);
    let down = redis_tier(&proxy.redis_url(), 1 << 20);
    let local = TempStore::default_options().await;
    let item = stored(5, 2_000);

    let targets: [&dyn CacheBackend; 2] = [&down, local.store()];
    let outcomes = promote(KEY, &item, &targets, || true).await;
    assert_eq!(names(&outcomes), ["failed", "copied"]);
    match &outcomes[0] {
        PromotionOutcome::Failed(e) => assert!(!e.is_corruption(), "{e}"),
        other => panic!("{other:?}"),
    }
    assert_eq!(held(local.store()).await, Some(item.artifact));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stale_source_stops_the_copy() {
    let share = tempfile::tempdir().unwrap();
    let local = TempStore::default_options().await;
    let pack = fs_pack_tier("share", share.path());
    let item = stored(6, 3_000);

    // Current for the first target only: the source was written to in between.
    let asked = AtomicUsize::new(0);
    let targets: [&dyn CacheBackend; 2] = [&pack, local.store()];
    let outcomes = promote(KEY, &item, &targets, || {
        asked.fetch_add(1, Ordering::SeqCst) == 0
    })
    .await;
    assert_eq!(names(&outcomes), ["copied", "stale"]);
    assert_eq!(held(local.store()).await, None);

    let outcomes = promote("other", &item, &targets, || false).await;
    assert_eq!(names(&outcomes), ["stale", "stale"]);
    assert!(pack.get("other").await.unwrap().is_none());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wait_returns_once_every_copy_has_let_go() {
    let local = TempStore::default_options().await;
    let promotions = Arc::new(Promotions::default());
    let held_by_copies = Arc::new(());
    // Closed until every copy has started, so `wait` is reached while all are running.
    let gate = Arc::new(tokio::sync::Semaphore::new(0));
    let item = stored(7, 50_000);
    for i in 0..16 {
        let store = local.store().clone();
        let item = item.clone();
        let token = held_by_copies.clone();
        let gate = gate.clone();
        promotions.spawn(async move {
            let _held = token;
            let _open = gate.acquire().await.unwrap();
            let key = format!("k{i}");
            let outcomes = promote(&key, &item, &[&store], || true).await;
            assert!(matches!(outcomes[..], [PromotionOutcome::Copied]));
        });
    }
    assert_eq!(promotions.in_flight(), 16);
    gate.add_permits(16);
    promotions.wait().await;
    assert_eq!(promotions.in_flight(), 0);
    assert_eq!(
        Arc::strong_count(&held_by_copies),
        1,
        "a copy still holds its state"
    );
    for i in 0..16 {
        assert_eq!(
            local.store().get(&format!("k{i}")).await.unwrap(),
            Some(item.artifact.clone())
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_copy_that_panics_still_ends() {
    let promotions = Arc::new(Promotions::default());
    promotions.spawn(async { panic!("a copy that panics (expected in this test)") });
    tokio::time::timeout(Duration::from_secs(30), promotions.wait())
        .await
        .expect("wait returned although a copy panicked");
    assert_eq!(promotions.in_flight(), 0);
}
