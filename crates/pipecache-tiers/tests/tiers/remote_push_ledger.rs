//! `sync push` reads a remote record only for keys that changed on either side since a push
//! verified them (the push ledger in the store directory), on each kind of remote: the
//! version a write reports must match what the next listing shows (S3: the PUT's ETag
//! against the listing's; a filesystem: the file's time). The ledger is a shortcut only:
//! removed or damaged, a push reads every record and sends nothing it need not.
//!
//! s3s-fs lists objects without their ETags (S3 and moto list them) and answers a PUT
//! without a time, so there a record this machine wrote is read once more by the next push,
//! which then knows its listed version.

use pipecache::tier::WritePolicy;
use pipecache::{Artifact, CacheManager};
use pipecache_config::BackendConfig;
use pipecache_test_support::random_bytes;
use pipecache_test_support::servers::{S3Server, S3sServer};
use pipecache_test_support::tiers::{
    fs_remote_backend, open_temp_manager, s3_backend, s3s_backend,
};

const N: u64 = 12;

fn key(i: u64) -> String {
    format!("video:s1-{i:016x}:transcript:model=base")
}

fn art(seed: u64) -> Artifact {
    Artifact::single(random_bytes(seed, 8 * 1024)).with_kind("transcript")
}

fn ledger_files(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| {
            p.file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.starts_with("push-ledger-") && !n.ends_with(".tmp"))
        })
        .collect()
}

async fn push(m: &CacheManager) -> pipecache::tier::PushReport {
    m.sync_push(None, None, &|_, _| {}).await.unwrap()
}

/// `rereads` is 1 where the listing cannot confirm a write's version (see the module docs):
/// each record written is then read once by the next push.
async fn reads_only_what_changed(backend: impl Fn() -> BackendConfig, rereads: u64) {
    let (dir, a) = open_temp_manager(vec![backend()], None).await;
    for i in 0..N {
        a.local().put(&key(i), art(i)).await.unwrap();
    }
    let first = push(&a).await;
    assert_eq!((first.pushed, first.records_read), (N, 0), "{first:?}");

    // Every record's version came back with its write: nothing to read.
    let second = push(&a).await;
    assert_eq!(
        (
            second.pushed,
            second.already_remote,
            second.unchanged_since_last_push,
            second.records_read
        ),
        (0, N, N - N * rereads, N * rereads),
        "{second:?}"
    );
    let settled = push(&a).await;
    assert_eq!(
        (settled.unchanged_since_last_push, settled.records_read),
        (N, 0),
        "{settled:?}"
    );

    // One key changed here: only its record is read, and it is pushed.
    a.local().put(&key(0), art(100)).await.unwrap();
    let third = push(&a).await;
    assert_eq!((third.pushed, third.records_read), (1, 1), "{third:?}");

    // Another machine replaces key 1 remotely with bytes of the same length: the listing
    // shows a new version, so its record is read, and the push makes the remote hold this
    // machine's value again (last push wins).
    let (_dir_b, b) = open_temp_manager(vec![backend()], None).await;
    b.local().put(&key(1), art(1_000)).await.unwrap();
    assert_eq!(push(&b).await.pushed, 1);
    b.close().await.unwrap();
    let fourth = push(&a).await;
    assert_eq!(
        (fourth.pushed, fourth.records_read),
        (1, 1 + rereads),
        "{fourth:?}"
    );

    // Without the ledger (removed, then damaged) every record is read, nothing is sent.
    let files = ledger_files(dir.path());
    assert_eq!(files.len(), 1, "one ledger per remote: {files:?}");
    std::fs::remove_file(&files[0]).unwrap();
    let fifth = push(&a).await;
    assert_eq!((fifth.pushed, fifth.records_read), (0, N), "{fifth:?}");
    std::fs::write(&files[0], b"\xa1\x61v\x01 not a ledger").unwrap();
    let sixth = push(&a).await;
    assert_eq!((sixth.pushed, sixth.records_read), (0, N), "{sixth:?}");
    let seventh = push(&a).await;
    assert_eq!(
        (seventh.pushed, seventh.records_read),
        (0, 0),
        "{seventh:?}"
    );
    a.close().await.unwrap();

    // The remote holds every value as this machine last had it.
    let (_dir_c, c) = open_temp_manager(vec![backend()], None).await;
    assert_eq!(c.get(&key(0)).await.unwrap(), Some(art(100)));
    assert_eq!(c.get(&key(1)).await.unwrap(), Some(art(1)));
    assert_eq!(c.get(&key(2)).await.unwrap(), Some(art(2)));
    c.close().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_filesystem_remote_is_read_only_where_something_changed() {
    let remote = tempfile::tempdir().unwrap();
    reads_only_what_changed(
        || fs_remote_backend(remote.path(), WritePolicy::WriteBack),
        0,
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_s3_remote_is_read_only_where_something_changed() {
    let s3 = S3Server::start();
    reads_only_what_changed(
        || s3_backend(&s3.endpoint(), s3.bucket(), WritePolicy::WriteBack),
        0,
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_signature_checking_s3_remote_is_read_only_where_something_changed() {
    let s3 = S3sServer::start();
    reads_only_what_changed(|| s3s_backend(&s3, WritePolicy::WriteBack), 1).await;
}
