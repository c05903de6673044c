//! Compaction gives disk space back: after most artifacts are deleted, sealed chunks that are
//! mostly dead are rewritten (live frames copied out) and their files removed; survivors read
//! back identically, before and after a restart, and `verify` stays clean.

use std::collections::BTreeSet;

use pipecache_format::chunk_file_name;
use pipecache_store::{Artifact, ManualClock};
use pipecache_test_support::{
    TempStore, assert_reads_back, chunk_files, clip_artifact, clip_key, lifecycle_options,
};

const N: u64 = 200;
const SIZE: usize = 20_000;
const CHUNK: u64 = 64 << 10;

fn key(i: u64) -> String {
    clip_key(i)
}

fn artifact(i: u64) -> Artifact {
    clip_artifact(i, SIZE)
}

fn kept(i: u64) -> bool {
    i.is_multiple_of(5)
}

fn file_names(ts: &TempStore) -> BTreeSet<String> {
    chunk_files(ts.path())
        .iter()
        .map(|p| p.file_name().unwrap().to_string_lossy().into_owned())
        .collect()
}

#[tokio::test]
async fn compaction_reclaims_space_of_deleted_artifacts() {
    let clock = ManualClock::new(1_700_000_000_000);
    let mut ts = TempStore::new(lifecycle_options(CHUNK, clock)).await;
    let store = ts.store().clone();
    for i in 0..N {
        store.put(&key(i), artifact(i)).await.unwrap();
    }
    let full = store.stats().await.unwrap();
    assert!(
        full.chunk_files >= 50,
        "~3 artifacts per 64 KiB chunk: {full:?}"
    );
    for i in (0..N).filter(|i| !kept(*i)) {
        assert!(store.delete(&key(i)).await.unwrap());
    }
    let before = store.stats().await.unwrap();
    assert_eq!(before.artifacts, N / 5);
    assert!(
        before.disk_bytes >= full.disk_bytes,
        "deleting frees nothing on disk by itself"
    );
    assert!(before.dead_bytes > before.disk_bytes / 2, "{before:?}");
    let files_before = file_names(&ts);
    assert_eq!(files_before.len() as u64, before.chunk_files);

    // A dry run plans the same chunks and touches nothing.
    let dry = store
        .compact_with_progress(true, |_, _, _| {})
        .await
        .unwrap();
    assert!(!dry.chunks_compacted.is_empty());
    assert_eq!(file_names(&ts), files_before, "dry run removed files");
    assert_eq!(store.stats().await.unwrap().disk_bytes, before.disk_bytes);

    let r = store.compact().await.unwrap();
    let after = store.stats().await.unwrap();
    let compacted: BTreeSet<u64> = r.chunks_compacted.iter().copied().collect();
    assert!(!compacted.is_empty(), "{r:?}");
    assert_eq!(
        compacted.len(),
        r.chunks_compacted.len(),
        "a chunk compacted twice"
    );
    assert_eq!(
        compacted,
        dry.chunks_compacted
            .iter()
            .copied()
            .collect::<BTreeSet<u64>>(),
        "dry run and real run disagree"
    );
    assert!(r.chunks_skipped.is_empty(), "{r:?}");
    assert!(
        compacted.len() as u64 >= full.chunk_files / 2,
        "every sealed chunk is at most 1/3 live: {r:?}"
    );
    assert!(r.blobs_moved > 0 && r.blobs_moved <= N / 5, "{r:?}");
    assert!(r.dead_blobs_dropped > 0, "{r:?}");
    assert!(r.bytes_removed > r.bytes_copied, "{r:?}");

    // The files are gone, and the space with them.
    let files_after = file_names(&ts);
    for id in &compacted {
        assert!(
            !files_after.contains(&chunk_file_name(*id)),
            "compacted chunk {id} still on disk"
        );
    }
    assert_eq!(files_after.len() as u64, after.chunk_files);
    assert!(
        after.chunk_files < before.chunk_files,
        "{} -> {} chunk files",
        before.chunk_files,
        after.chunk_files
    );
    assert!(
        after.disk_bytes < before.disk_bytes / 2,
        "80% deleted, disk {} -> {}",
        before.disk_bytes,
        after.disk_bytes
    );
    assert!(after.dead_bytes < before.dead_bytes, "{after:?}");
    assert_eq!(after.artifacts, before.artifacts);
    assert_eq!(after.blobs, before.blobs);
    assert_eq!(after.logical_bytes, before.logical_bytes);
    assert_eq!(after.stored_bytes, before.stored_bytes);

    // Survivors read back; deleted keys stay deleted.
    for i in 0..N {
        if kept(i) {
            assert_reads_back(&store, &key(i), &artifact(i)).await;
        } else {
            assert!(store.get(&key(i)).await.unwrap().is_none(), "{}", key(i));
        }
    }
    let v = store.verify().await.unwrap();
    assert!(v.is_clean(), "{v:?}");
    assert_eq!(after.counters.corruption_errors, 0);

    // And after a restart.
    drop(store);
    ts.reopen().await;
    let store = ts.store();
    let reopened = store.stats().await.unwrap();
    assert_eq!(reopened.artifacts, after.artifacts);
    assert_eq!(reopened.blobs, after.blobs);
    assert_eq!(reopened.disk_bytes, after.disk_bytes);
    assert_eq!(reopened.chunk_files, after.chunk_files);
    assert_eq!(file_names(&ts), files_after);
    for i in 0..N {
        if kept(i) {
            assert_reads_back(store, &key(i), &artifact(i)).await;
        } else {
            assert!(store.get(&key(i)).await.unwrap().is_none(), "{}", key(i));
        }
    }
    let v = store.verify().await.unwrap();
    assert!(v.is_clean(), "{v:?}");
    assert_eq!(store.stats().await.unwrap().counters.corruption_errors, 0);
}
