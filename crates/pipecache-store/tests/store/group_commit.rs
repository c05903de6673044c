//! Concurrent puts share fsyncs: many puts, fewer group commits, all readable afterwards.

use pipecache_store::Artifact;
use pipecache_test_support::{TempStore, json_like};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_puts_are_group_committed() {
    let ts = TempStore::default_options().await;
    let store = ts.store().clone();
    let tasks: Vec<_> = (0..200u64)
        .map(|i| {
            let store = store.clone();
            tokio::spawn(async move {
                store
                    .put(&format!("t:{i}"), Artifact::single(json_like(i, 20_000)))
                    .await
            })
        })
        .collect();
    for t in tasks {
        t.await.unwrap().unwrap();
    }
    let s = store.stats().await.unwrap();
    assert_eq!(s.counters.puts, 200);
    assert!(
        s.counters.group_commits < 200,
        "{} commits for 200 concurrent puts",
        s.counters.group_commits
    );
    assert!(
        s.compression_ratio > 2.0,
        "JSON-like parts should be zstd'd: {}",
        s.compression_ratio
    );
    for i in (0..200u64).step_by(17) {
        assert_eq!(
            store.get(&format!("t:{i}")).await.unwrap().unwrap().parts[0].data,
            json_like(i, 20_000)
        );
    }
}
