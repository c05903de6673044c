//! `sync push` decides what to send from index records on both sides: a push of a store the
//! remote already has reads no local blob; a re-put with a new TTL sends only a record; a
//! remote value that differs from the local one is replaced by it (last push wins).

use std::time::Duration;

use pipecache::tier::WritePolicy;
use pipecache::{Artifact, ManualClock, PutOptions};
use pipecache_test_support::random_bytes;
use pipecache_test_support::tiers::{fs_remote_backend, open_temp_manager, wall_ms};

const N: u64 = 20;

fn key(i: u64) -> String {
    format!("video:s1-{i:016x}:embeddings:model=clip")
}

fn art(seed: u64) -> Artifact {
    Artifact::single(random_bytes(seed, 32 * 1024)).with_kind("embeddings")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn push_sends_only_what_differs_and_reads_nothing_when_up_to_date() {
    let remote = tempfile::tempdir().unwrap();
    let backend = || vec![fs_remote_backend(remote.path(), WritePolicy::WriteBack)];
    let clock = ManualClock::new(wall_ms());
    let (_dir_a, a) = open_temp_manager(backend(), Some(clock.clone())).await;
    // Local puts only: the push is what sends them.
    for i in 0..N {
        a.local().put(&key(i), art(i)).await.unwrap();
    }
    let first = a.sync_push(None, None, &|_, _| {}).await.unwrap();
    assert_eq!((first.pushed, first.already_remote), (N, 0), "{first:?}");

    let hits = a.local().stats().await.unwrap().counters.hits;
    let second = a.sync_push(None, None, &|_, _| {}).await.unwrap();
    assert_eq!((second.pushed, second.already_remote), (0, N), "{second:?}");
    assert_eq!(second.put_requests, 0, "{second:?}");
    assert_eq!(
        a.local().stats().await.unwrap().counters.hits,
        hits,
        "an up-to-date push read local artifacts"
    );

    // Same bytes, new expiry: the record goes again, the blob is reused.
    clock.advance(Duration::from_secs(1));
    let ttl = PutOptions {
        ttl: Some(Duration::from_secs(3600)),
        ..PutOptions::default()
    };
    a.local().put_with(&key(0), art(0), ttl).await.unwrap();
    let third = a.sync_push(None, None, &|_, _| {}).await.unwrap();
    assert_eq!((third.pushed, third.blobs_uploaded), (1, 0), "{third:?}");

    // Machine B puts other bytes under key 1 and pushes; A's next push makes the remote
    // hold A's value again (the push makes the remote match the pusher: last push wins).
    clock.advance(Duration::from_secs(1));
    let (_dir_b, b) = open_temp_manager(backend(), Some(clock.clone())).await;
    b.local().put(&key(1), art(1_000)).await.unwrap();
    let from_b = b.sync_push(None, None, &|_, _| {}).await.unwrap();
    assert_eq!(from_b.pushed, 1, "{from_b:?}");
    b.close().await.unwrap();
    let fourth = a.sync_push(None, None, &|_, _| {}).await.unwrap();
    assert_eq!(
        (fourth.pushed, fourth.already_remote, fourth.blobs_uploaded),
        (1, N - 1, 0),
        "{fourth:?}"
    );
    a.close().await.unwrap();

    let (_dir_c, c) = open_temp_manager(backend(), Some(clock)).await;
    assert_eq!(c.get(&key(1)).await.unwrap(), Some(art(1)));
    assert_eq!(c.get(&key(2)).await.unwrap(), Some(art(2)));
    c.close().await.unwrap();
}
