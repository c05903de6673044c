//! Compaction rewrites a sealed chunk only when its live fraction is below
//! `StoreOptions::compact_threshold` (default 0.5): at the default a 60%-live chunk stays on
//! disk while a 30%-live one is compacted, and reopened with the threshold raised to 0.8 the
//! 60%-live chunk is compacted too. A fully live chunk is never touched; every artifact reads
//! back identically after each step and `verify` stays clean.

use std::collections::BTreeSet;

use pipecache_format::chunk::CHUNK_HEADER_LEN;
use pipecache_format::record::{Record, RecordFrame};
use pipecache_format::{ChunkScanner, FRAME_HEADER_LEN, FrameKind, chunk_file_name};
use pipecache_store::{Artifact, BlobHash, CompactReport, ManualClock, StoreOptions};
use pipecache_test_support::{
    TempStore, assert_reads_back, chunk_files, chunk_id, clip_artifact, clip_key,
    lifecycle_options, random_bytes,
};

/// Payload of every artifact: equal-sized and incompressible, so every artifact occupies the
/// same bytes on disk (one blob frame and one record frame of the same length).
const SIZE: usize = 10_000;
/// Artifacts per chunk.
const PER_CHUNK: u64 = 10;
/// Room per artifact for its record frame: ten of them are less than another blob frame, so
/// the eleventh artifact's blob rolls over to the next chunk.
const RECORD_ROOM: u64 = 512;
const CHUNK: u64 =
    CHUNK_HEADER_LEN + PER_CHUNK * (FRAME_HEADER_LEN as u64 + SIZE as u64 + RECORD_ROOM);
/// Three full chunks and two artifacts in the open one (room for the tombstones).
const N: u64 = 3 * PER_CHUNK + 2;

fn key(i: u64) -> String {
    clip_key(i)
}

fn artifact(i: u64) -> Artifact {
    clip_artifact(i, SIZE)
}

/// Deleted from the first chunk: 4 of 10 (60% live).
const DELETED_A: [u64; 4] = [0, 2, 4, 6];
/// Deleted from the second chunk: 7 of 10 (30% live).
const DELETED_B: [u64; 7] = [10, 11, 12, 14, 16, 17, 18];

fn deleted(i: u64) -> bool {
    DELETED_A.contains(&i) || DELETED_B.contains(&i)
}

/// The artifacts a chunk file holds, by frame: blob frames and record frames (artifact index),
/// and the length of each frame.
#[derive(Debug, Default)]
struct Layout {
    blobs: BTreeSet<u64>,
    records: BTreeSet<u64>,
    /// (artifact index, frame length) of every blob and record frame; `None` for other frames.
    frames: Vec<(Option<u64>, u64)>,
}

impl Layout {
    fn of(path: &std::path::Path) -> Self {
        let by_hash: std::collections::HashMap<BlobHash, u64> = (0..N)
            .map(|i| (BlobHash::of(&random_bytes(i, SIZE)), i))
            .collect();
        let by_key: std::collections::HashMap<String, u64> = (0..N).map(|i| (key(i), i)).collect();
        let mut layout = Layout::default();
        let mut scanner = ChunkScanner::open(path).expect("open chunk file");
        while let Some(frame) = scanner.next_frame().expect("chunk file reads back") {
            let owner = match frame.header.kind {
                FrameKind::Blob => {
                    let i = by_hash[&frame.header.hash];
                    layout.blobs.insert(i);
                    Some(i)
                }
                FrameKind::ArtifactRecord => {
                    let rec = RecordFrame::decode(&frame.payload).expect("record frame");
                    let i = by_key[&rec.key];
                    layout.records.insert(i);
                    Some(i)
                }
                FrameKind::Tombstone => None,
            };
            layout.frames.push((owner, frame.header.frame_len()));
        }
        layout
    }

    /// Share of the frame bytes that belong to artifacts not deleted.
    fn live_fraction(&self) -> f64 {
        let total: u64 = self.frames.iter().map(|(_, len)| len).sum();
        let live: u64 = self
            .frames
            .iter()
            .filter(|(owner, _)| owner.is_some_and(|i| !deleted(i)))
            .map(|(_, len)| len)
            .sum();
        live as f64 / total as f64
    }
}

fn on_disk(ts: &TempStore, id: u64) -> bool {
    ts.path().join("chunks").join(chunk_file_name(id)).exists()
}

/// Every kept artifact reads back identically, every deleted one is a miss, verify is clean.
async fn assert_store_intact(ts: &TempStore, step: &str) {
    let store = ts.store();
    for i in 0..N {
        if deleted(i) {
            assert!(
                store.get(&key(i)).await.unwrap().is_none(),
                "{step}: deleted {} came back",
                key(i)
            );
        } else {
            assert_reads_back(store, &key(i), &artifact(i)).await;
        }
    }
    let v = store.verify().await.unwrap();
    assert!(v.is_clean(), "{step}: {v:?}");
}

#[tokio::test]
async fn only_chunks_below_the_threshold_are_compacted() {
    let options = lifecycle_options(CHUNK, ManualClock::new(1_700_000_000_000));
    assert_eq!(options.compact_threshold, 0.5);
    assert_eq!(StoreOptions::default().compact_threshold, 0.5);
    let mut ts = TempStore::new(options).await;
    for i in 0..N {
        ts.store().put(&key(i), artifact(i)).await.unwrap();
    }

    // The scenario: chunks A, B, C hold artifacts 0..10, 10..20, 20..30 whole (blob and
    // record frame); the fourth chunk is the open one.
    let files = chunk_files(ts.path());
    assert_eq!(files.len(), 4, "{files:?}");
    let ids: Vec<u64> = files.iter().map(|p| chunk_id(p)).collect();
    let (a, b, c) = (ids[0], ids[1], ids[2]);
    for (n, path) in files.iter().take(3).enumerate() {
        let layout = Layout::of(path);
        let expected: BTreeSet<u64> = (n as u64 * PER_CHUNK..(n as u64 + 1) * PER_CHUNK).collect();
        assert_eq!(layout.blobs, expected, "blobs of {path:?}");
        assert_eq!(layout.records, expected, "records of {path:?}");
    }

    for i in DELETED_A.iter().chain(&DELETED_B) {
        assert!(ts.store().delete(&key(*i)).await.unwrap(), "{}", key(*i));
    }
    assert_eq!(
        chunk_files(ts.path()),
        files,
        "the deletes fit in the open chunk"
    );
    let live_a = Layout::of(&files[0]).live_fraction();
    let live_b = Layout::of(&files[1]).live_fraction();
    let live_c = Layout::of(&files[2]).live_fraction();
    assert!((live_a - 0.6).abs() < 0.01, "chunk A is {live_a} live");
    assert!((live_b - 0.3).abs() < 0.01, "chunk B is {live_b} live");
    assert_eq!(live_c, 1.0, "chunk C is fully live");
    assert_store_intact(&ts, "after the deletes").await;

    // Default threshold 0.5: B (30% live) is compacted, A (60% live) and C are left alone.
    let r = ts.store().compact().await.unwrap();
    assert_eq!(r.chunks_compacted, vec![b], "{r:?}");
    assert!(r.chunks_skipped.is_empty(), "{r:?}");
    assert_eq!(
        r.blobs_moved, 3,
        "B's three survivors are copied out: {r:?}"
    );
    assert!(!on_disk(&ts, b), "compacted chunk B is still on disk");
    assert!(
        on_disk(&ts, a),
        "chunk A (60% live) was removed at threshold 0.5"
    );
    assert!(on_disk(&ts, c), "fully live chunk C was removed");
    assert_store_intact(&ts, "after compacting at 0.5").await;

    // A second pass at the default finds nothing under the threshold.
    let r = ts.store().compact().await.unwrap();
    assert_eq!(r, CompactReport::default(), "chunk A is not under 0.5");
    assert!(on_disk(&ts, a));
    assert_store_intact(&ts, "after a second pass at 0.5").await;

    // Reopened with the threshold at 0.8, A (60% live) is compacted; C still is not.
    ts.options.compact_threshold = 0.8;
    ts.reopen().await;
    assert_store_intact(&ts, "after reopening at 0.8").await;
    let r = ts.store().compact().await.unwrap();
    assert_eq!(r.chunks_compacted, vec![a], "{r:?}");
    assert!(r.chunks_skipped.is_empty(), "{r:?}");
    assert_eq!(r.blobs_moved, 6, "A's six survivors are copied out: {r:?}");
    assert!(!on_disk(&ts, a), "compacted chunk A is still on disk");
    assert!(on_disk(&ts, c), "fully live chunk C was removed");
    assert_store_intact(&ts, "after compacting at 0.8").await;

    // And after a restart.
    ts.reopen().await;
    assert_store_intact(&ts, "after a restart").await;
}
