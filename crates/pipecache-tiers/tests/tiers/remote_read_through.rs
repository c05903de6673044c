//! Two machines (separate local stores) share one S3 bucket: A puts and pushes, B reads the
//! artifacts byte-identical through read-through, then from its own local tier once they are
//! promoted; pushes pack frames (well under one PUT per ten frames).

use pipecache::tier::WritePolicy;
use pipecache_test_support::random_bytes;
use pipecache_test_support::servers::S3Server;
use pipecache_test_support::tiers::{frames_artifact, open_manager, s3_backend};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn machine_b_reads_what_machine_a_pushed_then_serves_it_locally() {
    let s3 = S3Server::start();
    let (dir_a, dir_b) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let backend = || s3_backend(&s3.endpoint(), s3.bucket(), WritePolicy::WriteBack);
    // A fills its local tier first, then opens with S3 to push (no write-back worker racing).
    let a = open_manager(dir_a.path(), vec![], None).await;
    // Five videos of 40 frames plus a shared 10-frame intro.
    let intro: Vec<Vec<u8>> = (0..10).map(|i| random_bytes(900 + i, 20_000)).collect();
    let mut artifacts = Vec::new();
    for v in 0..5u64 {
        let key = format!("video:s1-{v:016x}:keyframes:max_frames=3000:threshold=0.999");
        let art = frames_artifact(v, 40, 20_000, &intro);
        a.put(&key, art.clone()).await.unwrap();
        artifacts.push((key, art));
    }
    let frames: u64 = artifacts.iter().map(|(_, a)| a.parts.len() as u64).sum();
    a.close().await.unwrap();
    let a = open_manager(dir_a.path(), vec![backend()], None).await;
    let push = a.sync_push(None, None, &|_, _| {}).await.unwrap();
    assert_eq!(push.pushed, 5);
    // Each intro frame crosses the wire once, not once per video.
    assert_eq!(push.blobs_uploaded, 5 * 40 + 10, "{push:?}");
    assert!(
        push.put_requests * 10 < frames,
        "{} PUTs for {frames} frames",
        push.put_requests
    );
    a.close().await.unwrap();

    let b = open_manager(dir_b.path(), vec![backend()], None).await;
    for (key, art) in &artifacts {
        assert_eq!(b.get(key).await.unwrap().as_ref(), Some(art), "{key}");
    }
    b.wait_promotions().await;
    let stats = b.tier_stats();
    let (local, s3t) = (&stats[0], &stats[1]);
    assert_eq!((local.misses, local.hits), (5, 0), "{local:?}");
    assert_eq!((s3t.hits, s3t.errors, s3t.corrupt), (5, 0, 0), "{s3t:?}");
    assert_eq!(local.promotions, 5, "{local:?}");
    assert!(s3t.bytes_down > 5 * 40 * 20_000, "{s3t:?}");
    // Ranged reads of packs, merged: a handful of GETs per artifact, not one per frame.
    let gets = s3t.requests.unwrap().gets;
    assert!(gets < frames / 10, "{gets} GETs for {frames} frames");

    // Second read: the local tier answers; S3 is not asked.
    for (key, art) in &artifacts {
        assert_eq!(b.get(key).await.unwrap().as_ref(), Some(art));
    }
    let stats = b.tier_stats();
    assert_eq!(stats[0].hits, 5);
    assert_eq!(stats[1].hits, 5, "S3 was read again: {:?}", stats[1]);
    assert!(b.local().contains(&artifacts[0].0).await.unwrap());
    b.close().await.unwrap();
}
