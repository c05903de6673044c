//! Remote GC with two writers sharing a bucket: unreferenced packs older than the grace
//! period go; packs a live record names, and anything younger than the grace period (another
//! machine's push in flight), stay; every live artifact still reads back.

use std::time::Duration;

use pipecache::tier::{BackendConfig, WritePolicy};
use pipecache::{Artifact, ManualClock, PutOptions};
use pipecache_format::remote::PackBuilder;
use pipecache_format::{BlobHash, Codec};
use pipecache_test_support::random_bytes;
use pipecache_test_support::servers::S3Server;
use pipecache_test_support::tiers::{
    frames_artifact, open_s3_reader, open_temp_manager, s3_backend, wall_ms,
};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gc_keeps_referenced_and_young_packs_and_deletes_the_rest() {
    let s3 = S3Server::start();
    // A runs GC with a 2 s grace, configured (a shorter `--grace` than configured is refused).
    // A's clock stands still between the GC passes, so a slow server cannot age a pack past
    // the grace period between two of its requests (S3 timestamps are whole seconds).
    let mut short_grace = s3_backend(&s3.endpoint(), s3.bucket(), WritePolicy::WriteThrough);
    if let BackendConfig::S3 { gc_grace, .. } = &mut short_grace {
        *gc_grace = Some("2s".parse().unwrap());
    }
    let clock = ManualClock::new(wall_ms());
    let (_da, a) = open_temp_manager(vec![short_grace], Some(clock.clone())).await;
    let (_db, b) = open_s3_reader(&s3).await;
    let intro: Vec<Vec<u8>> = (0..4).map(|i| random_bytes(50 + i, 10_000)).collect();
    let live_a = (
        "video:s1-000000000000000a:keyframes",
        frames_artifact(1, 5, 10_000, &intro),
    );
    let doomed = (
        "video:s1-000000000000000d:keyframes",
        frames_artifact(2, 5, 10_000, &[]),
    );
    let live_b = (
        "video:s1-000000000000000b:keyframes",
        frames_artifact(3, 5, 10_000, &intro),
    );
    let short = (
        "video:s1-000000000000000e:transcript",
        Artifact::single(random_bytes(4, 5_000)),
    );
    a.put(live_a.0, live_a.1.clone()).await.unwrap();
    a.put(doomed.0, doomed.1.clone()).await.unwrap();
    // B reuses A's intro frames: its record names A's pack.
    b.put(live_b.0, live_b.1.clone()).await.unwrap();
    b.put_with(
        short.0,
        short.1.clone(),
        PutOptions {
            ttl: Some(Duration::from_secs(1)),
            ..PutOptions::default()
        },
    )
    .await
    .unwrap();
    // A deletes one artifact everywhere: its pack is now unreferenced.
    assert!(a.delete(doomed.0).await.unwrap());
    let packs_before = a
        .remote_packs(None)
        .unwrap()
        .store()
        .list("packs/")
        .await
        .unwrap();
    assert_eq!(packs_before.len(), 4);

    let refused = a
        .remote_gc(None, Some(Duration::from_secs(1)), false)
        .await
        .unwrap_err();
    assert!(refused.to_string().contains("shorter than"), "{refused}");
    assert!(
        refused.to_string().contains("may still reuse packs"),
        "{refused}"
    );

    // Right away, with a 2 s grace: everything is young, nothing goes.
    let r = a.remote_gc(None, None, false).await.unwrap();
    assert_eq!((r.packs_deleted, r.packs_in_grace), (0, 1), "{r:?}");

    // 3 s after everything so far: A's packs are past the grace period, B's short artifact
    // expired. The in-flight pack below is uploaded after the 3.2 s sleep, so even with its
    // timestamp truncated to the second it is at most 0.8 s old at A's now.
    clock.set(wall_ms() + 3_000);
    tokio::time::sleep(Duration::from_millis(3_200)).await;
    // Another machine's push in flight: its pack is up, its records are not yet.
    let mut pack = PackBuilder::new(wall_ms());
    let blob = random_bytes(99, 1_000);
    pack.push(BlobHash::of(&blob), Codec::Raw, blob.len() as u64, &blob);
    let (id, bytes, _) = pack.finish();
    let in_flight = format!("packs/{}", id.to_hex());
    let remote = b.remote_packs(None).unwrap().store().clone();
    remote.put(&in_flight, bytes).await.unwrap();

    // A record that does not decode (damaged, or from a newer pipecache) could name any pack:
    // a pass that meets one deletes nothing.
    let junk = format!("records/ff/{}", "f".repeat(64));
    remote.put(&junk, b"not a record".to_vec()).await.unwrap();
    let held = a.remote_gc(None, None, false).await.unwrap();
    assert_eq!(
        (
            held.packs_deleted,
            held.expired_records,
            held.corrupt_records.len()
        ),
        (0, 0, 1),
        "{held:?}"
    );
    remote.delete(&junk).await.unwrap();

    let dry = a.remote_gc(None, None, true).await.unwrap();
    assert_eq!((dry.packs_deleted, dry.expired_records), (2, 1), "{dry:?}");
    assert_eq!(
        remote.list("packs/").await.unwrap().len(),
        5,
        "dry run deleted"
    );

    let r = a.remote_gc(None, None, false).await.unwrap();
    // The doomed artifact's pack and the expired one's go; the in-flight one is young.
    assert_eq!(r.packs_deleted, 2, "{r:?}");
    assert_eq!(r.expired_records, 1);
    assert_eq!(r.packs_in_grace, 1);
    assert_eq!(r.records, 2);
    let left: Vec<String> = remote
        .list("packs/")
        .await
        .unwrap()
        .into_iter()
        .map(|e| e.path)
        .collect();
    assert!(left.contains(&in_flight), "a young pack was deleted");
    assert_eq!(left.len(), 3);

    // A third machine reads both live artifacts byte-identical.
    let (_dc, c) = open_s3_reader(&s3).await;
    assert_eq!(c.get(live_a.0).await.unwrap(), Some(live_a.1));
    assert_eq!(c.get(live_b.0).await.unwrap(), Some(live_b.1));
    assert_eq!(c.get(doomed.0).await.unwrap(), None);
    assert_eq!(c.tier_stats()[1].corrupt, 0);
    // Keys stay listable after old index objects were folded into one.
    let pulled = c.sync_pull(None, "video:", &|_, _| {}).await.unwrap();
    assert_eq!(pulled.already_local + pulled.pulled, 2, "{pulled:?}");
    for m in [a, b, c] {
        m.close().await.unwrap();
    }
}
