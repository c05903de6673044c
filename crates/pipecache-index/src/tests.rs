//! Unit tests of the index: batches, scans, queues, damage classification.

use std::collections::BTreeMap;

use pipecache_format::record::{PartRef, RECORD_VERSION, Totals};

use super::*;

fn rec(size: u64) -> ArtifactRecord {
    ArtifactRecord {
        v: RECORD_VERSION,
        kind: "t".into(),
        parts: vec![PartRef {
            name: "a".into(),
            hash: BlobHash::of(b"a"),
            len: size,
            at: None,
        }],
        logical_size: size,
        created_ms: 1,
        expires_ms: None,
        meta: BTreeMap::new(),
        seq: 0,
        frame: None,
    }
}

#[test]
fn batch_commits_atomically_and_scans_by_prefix() {
    let dir = tempfile::tempdir().unwrap();
    let (index, writer) = Index::open(dir.path(), &IndexOptions::default()).unwrap();
    assert!(index.meta().unwrap().is_none());
    let mut b = writer.batch();
    b.put_artifact("video:a:x", &rec(1));
    b.put_artifact("video:a:y", &rec(2));
    b.put_artifact("video:b:x", &rec(3));
    b.put_meta(&StoreMeta {
        v: 1,
        next_chunk_id: 1,
        open_chunk: None,
        totals: Totals::default(),
        created_ms: 0,
        next_seq: 1,
    });
    b.put_expiry(10, "video:a:x");
    b.put_expiry(5, "video:b:x");
    b.put_chunk(
        3,
        &ChunkRecord {
            v: 1,
            total_bytes: 64,
            live_bytes: 0,
            sealed: false,
            created_ms: 0,
        },
    );
    writer.commit(b, true).unwrap();
    let keys: Vec<String> = index
        .scan_artifacts("video:a:")
        .map(|r| r.unwrap().0)
        .collect();
    assert_eq!(keys, ["video:a:x", "video:a:y"]);
    assert_eq!(
        index.artifact("video:b:x").unwrap().unwrap().logical_size,
        3
    );
    let expired: Vec<_> = index.scan_expiry(9).map(|r| r.unwrap()).collect();
    assert_eq!(expired, vec![(5, "video:b:x".to_string())]);
    assert_eq!(index.chunks().unwrap().len(), 1);
    let h = BlobHash::of(b"a");
    assert_eq!(index.blobs(&[h]).unwrap(), vec![None]);
}

#[test]
fn queue_entries_keep_order_op_and_queue() {
    let dir = tempfile::tempdir().unwrap();
    let (index, writer) = Index::open(dir.path(), &IndexOptions::default()).unwrap();
    let mut b = writer.batch();
    b.put_queue_entry("s3", 2, "k:del", QueueOp::Delete);
    b.put_queue_entry("s3", 1, "k:up", QueueOp::Upload);
    // A queue whose name extends another's must not leak into it.
    b.put_queue_entry("s3x", 0, "other", QueueOp::Upload);
    writer.commit(b, true).unwrap();
    let entries = index.queue_peek("s3", 10).unwrap();
    let got: Vec<_> = entries
        .iter()
        .map(|e| (e.seq, e.key.as_str(), e.op))
        .collect();
    assert_eq!(
        got,
        [(1, "k:up", QueueOp::Upload), (2, "k:del", QueueOp::Delete)]
    );
    index.queue_remove("s3", &[1]).unwrap();
    assert_eq!(index.queue_peek("s3", 10).unwrap()[0].seq, 2);
    assert_eq!(index.queue_peek("s3x", 10).unwrap().len(), 1);
}

#[test]
fn a_damaged_current_file_is_corruption() {
    let dir = tempfile::tempdir().unwrap();
    drop(Index::open(dir.path(), &IndexOptions::default()).unwrap());
    // RocksDB itself reports this one (CURRENT must end with a newline).
    std::fs::write(dir.path().join("CURRENT"), b"garbage-without-newline").unwrap();
    let err = Index::open(dir.path(), &IndexOptions::default()).unwrap_err();
    assert!(err.is_corruption(), "{err:?}");
    // Without CURRENT RocksDB would start an empty index over the old files.
    std::fs::remove_file(dir.path().join("CURRENT")).unwrap();
    let err = Index::open(dir.path(), &IndexOptions::default()).unwrap_err();
    assert!(err.is_corruption(), "{err:?}");
    assert!(dir.path().read_dir().unwrap().count() > 1, "old files kept");
}

#[test]
fn corrupt_value_is_a_record_error() {
    let dir = tempfile::tempdir().unwrap();
    let (index, _writer) = Index::open(dir.path(), &IndexOptions::default()).unwrap();
    index
        .db
        .put_cf(index.cf("artifacts"), b"k", b"\xffnot cbor")
        .unwrap();
    let err = index.artifact("k").unwrap_err();
    assert!(err.is_corruption(), "{err}");
}

/// Files in `dir` with RocksDB's blob file extension.
fn blob_files(dir: &std::path::Path) -> usize {
    std::fs::read_dir(dir)
        .unwrap()
        .filter(|e| {
            e.as_ref()
                .unwrap()
                .path()
                .extension()
                .is_some_and(|x| x == "blob")
        })
        .count()
}

#[test]
fn records_of_many_parts_live_in_blob_files_until_deleted() {
    let dir = tempfile::tempdir().unwrap();
    let mut big = rec(1);
    big.parts = (0..400u32)
        .map(|i| PartRef {
            name: format!("frame_{i:06}.jpeg"),
            hash: BlobHash::of(&i.to_le_bytes()),
            len: 20_000,
            at: None,
        })
        .collect();
    assert!(big.encode().len() as u64 >= ARTIFACT_BLOB_MIN);
    {
        let (index, writer) = Index::open(dir.path(), &IndexOptions::default()).unwrap();
        let mut b = writer.batch();
        b.put_artifact("video:a:keyframes", &big);
        b.put_artifact("video:a:transcript", &rec(2));
        writer.commit(b, true).unwrap();
        index.flush().unwrap();
    }
    assert_eq!(
        blob_files(dir.path()),
        1,
        "the large record's flush wrote one"
    );
    let (index, writer) = Index::open(dir.path(), &IndexOptions::default()).unwrap();
    assert_eq!(index.artifact("video:a:keyframes").unwrap(), Some(big));
    assert_eq!(index.artifact("video:a:transcript").unwrap(), Some(rec(2)));
    // Deleted and compacted away, the record no longer holds its blob file.
    let mut b = writer.batch();
    b.delete_artifact("video:a:keyframes");
    writer.commit(b, true).unwrap();
    index.flush().unwrap();
    let mut opts = rocksdb::CompactOptions::default();
    opts.set_bottommost_level_compaction(rocksdb::BottommostLevelCompaction::Force);
    index
        .db
        .compact_range_cf_opt(index.cf("artifacts"), None::<&[u8]>, None::<&[u8]>, &opts);
    assert_eq!(index.artifact("video:a:keyframes").unwrap(), None);
    assert_eq!(blob_files(dir.path()), 0, "the blob file was deleted");
}
