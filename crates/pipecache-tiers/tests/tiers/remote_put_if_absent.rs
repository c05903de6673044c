//! `PutOptions::if_absent` through the manager: refused by a live local artifact, the put
//! writes nothing anywhere (no write-through upload of the refused value) and leaves no
//! write-back queue slot counted, so the queue still drains.

use std::time::Duration;

use pipecache::tier::{BackendConfig, WritePolicy};
use pipecache::{Artifact, PutOptions};
use pipecache_test_support::json_like;
use pipecache_test_support::tiers::{fs_remote_backend, open_temp_manager, with_priority};

fn tier(path: &std::path::Path, name: &str, priority: u32, policy: WritePolicy) -> BackendConfig {
    let mut b = with_priority(fs_remote_backend(path, policy), priority);
    b.remote_mut().expect("a remote backend").name = Some(name.into());
    b
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refused_if_absent_put_writes_nothing_anywhere() {
    let (back, through) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let tiers = || {
        vec![
            tier(back.path(), "back", 1, WritePolicy::WriteBack),
            tier(through.path(), "through", 2, WritePolicy::WriteThrough),
        ]
    };
    let (_dir, m) = open_temp_manager(tiers(), None).await;
    let (v1, v2) = (
        Artifact::single(json_like(1, 3_000)),
        Artifact::single(json_like(2, 3_000)),
    );
    m.put("k", v1.clone()).await.unwrap();
    m.drain_queues(Duration::from_secs(30)).await.unwrap();

    let if_absent = PutOptions {
        if_absent: true,
        ..PutOptions::default()
    };
    m.put_with("k", v2, if_absent).await.unwrap();
    assert_eq!(
        m.tier_stats()[1].queue_length,
        0,
        "a refused put holds no queue slot"
    );
    m.drain_queues(Duration::from_secs(5))
        .await
        .expect("nothing is left to drain");
    assert_eq!(m.local().get("k").await.unwrap(), Some(v1.clone()));
    m.close().await.unwrap();

    // Both remote tiers still hold the first value.
    for t in [
        tier(back.path(), "back", 1, WritePolicy::WriteThrough),
        tier(through.path(), "through", 1, WritePolicy::WriteThrough),
    ] {
        let (_d, reader) = open_temp_manager(vec![t], None).await;
        assert_eq!(reader.get("k").await.unwrap(), Some(v1.clone()));
        reader.close().await.unwrap();
    }
}
