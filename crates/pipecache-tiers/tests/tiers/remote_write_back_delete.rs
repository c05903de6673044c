//! A delete on a write-back tier goes through the tier's queue: it succeeds while the remote
//! is down, survives a restart, and reaches the remote after the uploads queued before it.

use std::time::Duration;

use pipecache::Artifact;
use pipecache::tier::WritePolicy;
use pipecache_test_support::json_like;
use pipecache_test_support::servers::{S3Server, TcpProxy};
use pipecache_test_support::tiers::{open_s3_manager, open_s3_reader};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_queued_delete_reaches_the_remote_after_a_restart() {
    let s3 = S3Server::start();
    let proxy = TcpProxy::start(s3.port());
    let dir = tempfile::tempdir().unwrap();
    let (gone, kept, late) = (
        "video:d1:transcript",
        "video:d2:transcript",
        "video:d3:transcript",
    );

    let m = open_s3_manager(dir.path(), &s3, Some(&proxy), WritePolicy::WriteBack).await;
    m.put(gone, Artifact::single(json_like(1, 4_000)))
        .await
        .unwrap();
    m.put(kept, Artifact::single(json_like(2, 4_000)))
        .await
        .unwrap();
    m.drain_queues(Duration::from_secs(60)).await.unwrap();

    // Remote down: the delete and a later put commit locally with their queue entries.
    proxy.set_down(true);
    assert!(
        m.delete(gone)
            .await
            .expect("a write-back delete never waits for the remote")
    );
    m.put(late, Artifact::single(json_like(3, 4_000)))
        .await
        .unwrap();
    assert_eq!(m.tier_stats()[1].queue_length, 2);
    // A delete of a key this machine never had is queued too: another machine may have put it.
    assert!(!m.delete("video:d4:transcript").await.unwrap());
    assert_eq!(m.tier_stats()[1].queue_length, 3);
    m.close().await.unwrap();

    let (_reader_dir, reader) = open_s3_reader(&s3).await;
    assert!(
        reader.get(gone).await.unwrap().is_some(),
        "the delete must not reach the remote while it is down"
    );
    reader.close().await.unwrap();

    proxy.set_down(false);
    let m = open_s3_manager(dir.path(), &s3, Some(&proxy), WritePolicy::WriteBack).await;
    assert_eq!(
        m.tier_stats()[1].queue_length,
        3,
        "the queue survived the restart"
    );
    m.drain_queues(Duration::from_secs(60)).await.unwrap();
    m.close().await.unwrap();

    let (_reader_dir, reader) = open_s3_reader(&s3).await;
    assert_eq!(reader.get(gone).await.unwrap(), None);
    assert_eq!(
        reader.get(kept).await.unwrap(),
        Some(Artifact::single(json_like(2, 4_000)))
    );
    assert_eq!(
        reader.get(late).await.unwrap(),
        Some(Artifact::single(json_like(3, 4_000)))
    );
    reader.close().await.unwrap();
}
