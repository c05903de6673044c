//! A process that uploads to a pack tier reads only the index objects listed since the
//! store directory's remote blob table was saved, and still reuses the remote's blobs. An
//! index the remote no longer lists names nothing, and a lost or damaged table costs
//! reading the index objects again, never a wrong reuse.

use pipecache::tier::{PushReport, WritePolicy};
use pipecache::{Artifact, CacheManager};
use pipecache_test_support::random_bytes;
use pipecache_test_support::tiers::{fs_remote_backend, open_manager, open_temp_manager};

/// One batch per artifact: more index objects than a push saves the table after (16).
const N: u64 = 20;

fn key(i: u64) -> String {
    format!("video:t{i}:keyframes")
}

/// A shared intro frame and one of its own.
fn art(i: u64) -> Artifact {
    Artifact::default()
        .with_kind("keyframes")
        .with_part("000.jpg", random_bytes(999, 20_000))
        .with_part("001.jpg", random_bytes(i, 20_000))
}

async fn push(m: &CacheManager) -> PushReport {
    m.sync_push(None, Some(1), &|_, _| {}).await.unwrap()
}

fn remote_gets(m: &CacheManager) -> u64 {
    m.tier_stats()[1].requests.unwrap().gets
}

fn table_files(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| {
            let name = p.file_name().unwrap().to_str().unwrap();
            name.starts_with("remote-blobs-") && !name.ends_with(".tmp")
        })
        .collect()
}

/// Puts `art(i)` locally and pushes it from a new manager (a new process); returns the
/// push and the remote GETs it made.
async fn push_one_more(
    dir: &std::path::Path,
    remote: &std::path::Path,
    i: u64,
) -> (PushReport, u64) {
    let m = open_manager(
        dir,
        vec![fs_remote_backend(remote, WritePolicy::WriteThrough)],
        None,
    )
    .await;
    m.local().put(&key(i), art(i)).await.unwrap();
    let before = remote_gets(&m);
    let r = push(&m).await;
    let gets = remote_gets(&m) - before;
    m.close().await.unwrap();
    assert_eq!(r.pushed, 1, "{r:?}");
    (r, gets)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_new_process_reads_only_new_index_objects_and_never_names_a_dropped_one() {
    let (dir, remote) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let tier = || vec![fs_remote_backend(remote.path(), WritePolicy::WriteThrough)];
    let m = open_manager(dir.path(), tier(), None).await;
    for i in 0..N {
        m.local().put(&key(i), art(i)).await.unwrap();
    }
    let first = push(&m).await;
    assert_eq!(
        (first.pushed, first.packs, first.blobs_reused),
        (N, N, N - 1),
        "the intro is uploaded once: {first:?}"
    );
    m.close().await.unwrap();
    assert_eq!(table_files(dir.path()).len(), 1, "the push saved the table");

    // A new process reuses the intro from the table, reading no index object (nor any
    // record: the push ledger vouches for the others, the new key is not listed).
    let (r, gets) = push_one_more(dir.path(), remote.path(), 100).await;
    assert_eq!((r.blobs_reused, r.blobs_uploaded), (1, 1), "{r:?}");
    assert_eq!(gets, 0, "index objects read despite the table");

    // Without the table (lost, then damaged), the index objects are read again, and the
    // intro is still reused.
    std::fs::remove_file(&table_files(dir.path())[0]).unwrap();
    let (r, gets) = push_one_more(dir.path(), remote.path(), 101).await;
    assert_eq!((r.blobs_reused, r.blobs_uploaded), (1, 1), "{r:?}");
    assert!(gets > N, "{gets} GETs: every index object should be read");
    assert_eq!(
        table_files(dir.path()).len(),
        1,
        "saved again after the reads"
    );
    std::fs::write(&table_files(dir.path())[0], b"PCBTAB01 not a table").unwrap();
    let (r, gets) = push_one_more(dir.path(), remote.path(), 102).await;
    assert_eq!((r.blobs_reused, r.blobs_uploaded), (1, 1), "{r:?}");
    assert!(gets > N, "{gets} GETs: every index object should be read");

    // The remote loses its index objects (emptied by hand, say): the table names none of
    // their packs, so the intro is uploaded again rather than named where it may be gone.
    std::fs::remove_dir_all(remote.path().join("index")).unwrap();
    let (r, _) = push_one_more(dir.path(), remote.path(), 103).await;
    assert_eq!((r.blobs_reused, r.blobs_uploaded), (0, 2), "{r:?}");

    // Every artifact reads back from the remote alone.
    let (_reader_dir, reader) = open_temp_manager(tier(), None).await;
    for i in (0..N).chain(100..104) {
        assert_eq!(reader.get(&key(i)).await.unwrap(), Some(art(i)), "{i}");
    }
    reader.close().await.unwrap();
}
