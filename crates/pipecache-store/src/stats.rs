use pipecache_format::record::{ArtifactRecord, Totals};
use serde::Serialize;

use crate::space::FsSpace;

/// Counters of one open store handle (since open).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, serde::Deserialize)]
pub struct CounterSnapshot {
    /// `get`s that returned an artifact.
    pub hits: u64,
    /// `get`s that returned `None` (absent or expired).
    pub misses: u64,
    /// Misses because the artifact had expired.
    pub expired_misses: u64,
    /// Reads that found corrupt bytes (and returned an error instead).
    pub corruption_errors: u64,
    /// Puts committed.
    pub puts: u64,
    /// Deletes that removed an artifact.
    pub deletes: u64,
    /// Group commits (one chunk fsync + one WriteBatch each).
    pub group_commits: u64,
    /// New blobs written to chunk files.
    pub blobs_written: u64,
    /// Parts that referenced an existing blob instead of writing one.
    pub blobs_deduped: u64,
    /// Raw bytes of those parts: what dedup spared the disk.
    #[serde(default)]
    pub bytes_deduped: u64,
    /// Frame bytes appended to chunk files.
    pub bytes_written: u64,
    /// Group commits that failed.
    pub write_errors: u64,
    /// GC passes that ran (background and requested; dry runs not counted).
    #[serde(default)]
    pub gc_runs: u64,
    /// Chunk-file bytes those passes reclaimed.
    #[serde(default)]
    pub gc_reclaimed_bytes: u64,
    /// When the last of those passes ended (Unix ms by the store's clock).
    #[serde(default)]
    pub last_gc_ms: Option<u64>,
    /// Chunk-file bytes the last pass reclaimed.
    #[serde(default)]
    pub last_gc_reclaimed_bytes: u64,
}

/// A snapshot of the store's size and dedup figures.
#[derive(Clone, Debug, PartialEq, Serialize, serde::Deserialize)]
pub struct Stats {
    /// Live artifacts.
    pub artifacts: u64,
    /// Live (referenced) blobs.
    pub blobs: u64,
    /// Sum of live artifacts' sizes.
    pub logical_bytes: u64,
    /// Raw bytes of live blobs (after dedup, before compression).
    pub unique_bytes: u64,
    /// Stored bytes of live blobs (after dedup and compression).
    pub stored_bytes: u64,
    /// Blob records with no reference left, waiting for GC.
    pub dead_blobs: u64,
    /// Chunk bytes nothing references any more (dead blobs, old records, tombstones),
    /// reclaimed by compaction.
    pub dead_bytes: u64,
    /// Artifacts removed because their TTL passed (lifetime of the store).
    pub expired: u64,
    /// Artifacts evicted to meet the size budget (lifetime of the store).
    pub evicted: u64,
    /// The size budget, if any.
    pub max_size: Option<u64>,
    /// Chunk files on disk.
    pub chunk_files: u64,
    /// Bytes of chunk files on disk.
    pub disk_bytes: u64,
    /// `logical_bytes / unique_bytes`: how much dedup saves (1.0 when nothing is shared).
    pub dedup_ratio: f64,
    /// `unique_bytes / stored_bytes`: how much compression saves.
    pub compression_ratio: f64,
    /// Counters of this handle.
    pub counters: CounterSnapshot,
    /// Free and total bytes of the filesystem holding the store.
    pub fs: FsSpace,
    /// Free space puts leave on that filesystem (`min_free_space`, resolved).
    pub min_free_space: u64,
    /// The store was opened read-only because its filesystem was full: gets work, writes
    /// fail with `NoSpace` until it is opened again with space free.
    pub read_only: bool,
}

/// What a set of artifacts takes after dedup ([`crate::Store::footprint`]): the figures of
/// [`Stats`] for chosen keys, e.g. one pipeline stage's artifacts.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct Footprint {
    /// Artifacts found (absent and expired keys are not counted).
    pub artifacts: u64,
    /// Sum of their parts' sizes.
    pub logical_bytes: u64,
    /// Sum of the sizes of the distinct blobs their parts reference.
    pub unique_bytes: u64,
    /// `logical_bytes / unique_bytes` (1.0 when nothing is shared).
    pub dedup_ratio: f64,
}

impl Footprint {
    pub(crate) fn of<'r>(records: impl IntoIterator<Item = &'r ArtifactRecord>) -> Self {
        let mut seen = std::collections::HashSet::new();
        let mut f = Footprint::default();
        for r in records {
            f.artifacts += 1;
            for p in &r.parts {
                f.logical_bytes += p.len;
                if seen.insert(p.hash) {
                    f.unique_bytes += p.len;
                }
            }
        }
        f.dedup_ratio = ratio(f.logical_bytes, f.unique_bytes);
        f
    }
}

fn ratio(a: u64, b: u64) -> f64 {
    if b == 0 { 1.0 } else { a as f64 / b as f64 }
}

/// What the store's files take on disk, for [`Stats::new`].
#[derive(Debug)]
pub(crate) struct DiskUsage {
    pub chunk_files: u64,
    pub disk_bytes: u64,
    pub dead_bytes: u64,
    pub fs: FsSpace,
    pub min_free_space: u64,
}

impl Stats {
    pub(crate) fn new(
        t: Totals,
        disk: DiskUsage,
        max_size: Option<u64>,
        counters: CounterSnapshot,
        read_only: bool,
    ) -> Self {
        let DiskUsage {
            chunk_files,
            disk_bytes,
            dead_bytes,
            fs,
            min_free_space,
        } = disk;
        Self {
            artifacts: t.artifacts,
            blobs: t.blobs,
            logical_bytes: t.logical_bytes,
            unique_bytes: t.unique_bytes,
            stored_bytes: t.stored_bytes,
            dead_blobs: t.dead_blobs,
            dead_bytes,
            expired: t.expired,
            evicted: t.evicted,
            max_size,
            chunk_files,
            disk_bytes,
            dedup_ratio: ratio(t.logical_bytes, t.unique_bytes),
            compression_ratio: ratio(t.unique_bytes, t.stored_bytes),
            counters,
            fs,
            min_free_space,
            read_only,
        }
    }
}
