//! `sync pull` and `sync push` leave keys this machine still owes its tier. Here a new value
//! is evicted locally before the worker can send it (S3 is down); S3 comes back, and in the
//! window before the worker's next attempt a pull reports the key as pending instead of
//! bringing the old value back, and a push leaves a queued key to the queue.

use std::time::Duration;

use pipecache::Artifact;
use pipecache::tier::WritePolicy;
use pipecache_test_support::servers::{S3Server, TcpProxy};
use pipecache_test_support::tiers::{open_s3_manager, open_s3_reader, wait_for_tier_failures};
use pipecache_test_support::{json_like, random_bytes};

const KEY: &str = "video:u-00000000000000c1:transcript:model_size=base";
const SETTLED: &str = "video:u-00000000000000c2:transcript:model_size=base";
const QUEUED: &str = "video:u-00000000000000c3:transcript:model_size=base";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sync_jobs_leave_keys_still_owed_to_the_tier() {
    let s3 = S3Server::start();
    let proxy = TcpProxy::start(s3.port());
    let dir = tempfile::tempdir().unwrap();
    let m = open_s3_manager(dir.path(), &s3, Some(&proxy), WritePolicy::WriteBack).await;
    let old = Artifact::single(random_bytes(1, 3_000)).with_kind("transcript");
    let settled = Artifact::single(json_like(2, 3_000)).with_kind("transcript");
    m.put(KEY, old).await.unwrap();
    m.put(SETTLED, settled.clone()).await.unwrap();
    m.drain_queues(Duration::from_secs(30)).await.unwrap();

    proxy.set_down(true);
    let new = Artifact::single(random_bytes(3, 3_000)).with_kind("transcript");
    m.put(KEY, new).await.unwrap();
    let queued = Artifact::single(json_like(4, 3_000)).with_kind("transcript");
    m.put(QUEUED, queued.clone()).await.unwrap();
    // After seven failures the worker waits 6.4 s: the pull below runs in that window.
    wait_for_tier_failures(&m, 1, 7).await;
    // Evicted here (straight from the local store) before the upload, and the settled key
    // too, so the pull has something it may bring back.
    assert!(m.local().delete(KEY).await.unwrap());
    assert!(m.local().delete(SETTLED).await.unwrap());
    proxy.set_down(false);

    let pull = m.sync_pull(None, "video:u-", &|_, _| {}).await.unwrap();
    let push = m.sync_push(None, None, &|_, _| {}).await.unwrap();
    assert_eq!(
        m.tier_stats()[1].queue_length,
        2,
        "the worker ran before the pull and push finished"
    );
    assert_eq!(
        (pull.candidates, pull.pulled, pull.pending_upload),
        (2, 1, 1),
        "{pull:?}"
    );
    assert_eq!(
        (
            push.artifacts,
            push.already_remote,
            push.pending_upload,
            push.pushed
        ),
        (2, 1, 1, 0),
        "{push:?}"
    );
    assert!(
        !m.local().contains(KEY).await.unwrap(),
        "the pull brought back the value the local put replaced"
    );
    assert_eq!(m.local().get(SETTLED).await.unwrap(), Some(settled));

    // Once the worker runs, S3 holds nothing under the key, and the queued value.
    m.drain_queues(Duration::from_secs(60)).await.unwrap();
    m.close().await.unwrap();
    let (_other_dir, other) = open_s3_reader(&s3).await;
    assert_eq!(other.get(KEY).await.unwrap(), None);
    assert_eq!(other.get(QUEUED).await.unwrap(), Some(queued));
    other.close().await.unwrap();
}
