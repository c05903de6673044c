//! A write-back batch that fails counts against the kinds it carried: each kind among its
//! keys gets the error, none goes to `other` for want of a key.

use std::time::Duration;

use pipecache::Artifact;
use pipecache::tier::{OTHER, WritePolicy};
use pipecache_test_support::json_like;
use pipecache_test_support::servers::{RedisServer, TcpProxy};
use pipecache_test_support::tiers::{
    open_classified_manager, redis_backend, wait_for_tier_failures,
};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_upload_counts_against_its_keys_kinds() {
    let redis = RedisServer::start();
    let proxy = TcpProxy::start(redis.port());
    proxy.set_down(true);
    let dir = tempfile::tempdir().unwrap();
    let m = open_classified_manager(
        dir.path(),
        vec![redis_backend(&proxy.redis_url(), WritePolicy::WriteBack)],
    )
    .await;
    for key in ["cheap/v1/t", "dear/v1/t"] {
        m.put(key, Artifact::single(json_like(1, 500)))
            .await
            .unwrap();
    }
    // Two failures: one batch with both keys, or the first key alone and then both.
    wait_for_tier_failures(&m, 1, 2).await;
    let failed = |kind: &str| {
        let s = &m.tier_stats()[1];
        let k = s.by_kind.iter().find(|k| k.kind == kind).unwrap();
        k.errors + k.timeouts
    };
    assert!(failed("cheap") >= 1, "{:?}", m.tier_stats()[1].by_kind);
    assert!(failed("dear") >= 1, "{:?}", m.tier_stats()[1].by_kind);
    assert_eq!(failed(OTHER), 0, "{:?}", m.tier_stats()[1].by_kind);

    // Back up: the queue drains, and each kind counts its upload.
    proxy.set_down(false);
    m.drain_queues(Duration::from_secs(30)).await.unwrap();
    let s = &m.tier_stats()[1];
    let puts: Vec<u64> = s.by_kind.iter().map(|k| k.puts).collect();
    assert_eq!(puts, [1, 1, 0], "{:?}", s.by_kind);
    m.close().await.unwrap();
}
