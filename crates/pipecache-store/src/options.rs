use std::fmt::Debug;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

pub use pipecache_format::{Algorithm, CompressionPolicy};

use crate::policy::{EvictionPolicy, Lru};
use crate::{Error, Result};

/// The default TTL: 7 days.
pub const DEFAULT_TTL: Duration = Duration::from_secs(7 * 24 * 3600);

/// Source of "now" for TTLs and access times; injectable so tests need no sleeps.
pub trait Clock: Send + Sync + Debug {
    /// Milliseconds since the unix epoch.
    fn now_ms(&self) -> u64;
}

/// The system clock.
#[derive(Debug, Default, Clone, Copy)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now_ms(&self) -> u64 {
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_millis() as u64)
            .unwrap_or(0)
    }
}

/// A clock tests move by hand.
#[derive(Debug, Default)]
pub struct ManualClock(AtomicU64);

impl ManualClock {
    /// A clock reading `now_ms`.
    pub fn new(now_ms: u64) -> Arc<Self> {
        Arc::new(Self(AtomicU64::new(now_ms)))
    }

    /// Moves the clock forward.
    pub fn advance(&self, by: Duration) {
        self.0.fetch_add(by.as_millis() as u64, Ordering::SeqCst);
    }

    /// Sets the clock.
    pub fn set(&self, now_ms: u64) {
        self.0.store(now_ms, Ordering::SeqCst);
    }
}

impl Clock for ManualClock {
    fn now_ms(&self) -> u64 {
        self.0.load(Ordering::SeqCst)
    }
}

/// How far a put is durable when it returns (config `durability = "fsync" | "os-buffered"`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Durability {
    /// Chunk data and the index WAL are fsynced before a put returns: survives power loss.
    Fsync,
    /// Nothing is fsynced: survives a process crash (the OS has the bytes), not power loss
    /// or a kernel crash, which may lose the last seconds of puts (never corrupt the store:
    /// the write order still holds, and open drops what the index does not commit). What
    /// diskcache and SQLite's default mode give; for caches whose artifacts can be
    /// recomputed, benchmarks and scratch stores.
    OsBuffered,
}

/// Options of [`crate::Store::open`].
#[derive(Clone, Debug)]
pub struct StoreOptions {
    /// Create the store when the directory is missing or empty (default true).
    pub create_if_missing: bool,
    /// Chunk files roll over at this size (default 64 MiB).
    pub chunk_size: u64,
    /// When to zstd a blob.
    pub compression: CompressionPolicy,
    /// Durability of a returned put.
    pub durability: Durability,
    /// TTL applied to puts that do not name one (default 7 days); `None` = never expire.
    pub default_ttl: Option<Duration>,
    /// Size budget for chunk files; `None` = unbounded. Over it, GC evicts whole artifacts
    /// (by `eviction`) and compaction gives the space back.
    pub max_size: Option<u64>,
    /// Which artifacts go first when the budget needs room.
    pub eviction: Arc<dyn EvictionPolicy>,
    /// A sealed chunk whose live fraction falls under this is compacted (default 0.5).
    pub compact_threshold: f64,
    /// Interval of the background GC step of an open store; `None` disables it (offline `gc`
    /// still works). A put that takes the store over budget wakes it early.
    pub gc_interval: Option<Duration>,
    /// Most artifacts one background GC step removes (bounded work per step).
    pub gc_step_removals: usize,
    /// Most blob locations compaction reads ahead in one scan of the index (24 bytes each;
    /// default 8 Mi, 192 MiB: one scan covers a whole pass up to 8M blobs; every further
    /// round rescans the whole CF). Chunks whose blobs do not fit are prescanned in later rounds, and
    /// a chunk that alone does not fit is filtered by point lookups instead (slower, bounded).
    pub gc_prescan_max_blobs: usize,
    /// Most bytes of live blob and tombstone frames one compaction batch (one writer commit)
    /// moves (default 8 MiB), so puts wait behind small commits. A chunk's artifact record
    /// frames all move in its last batch, with the file's removal: that batch also carries
    /// them (at most the chunk's size, usually a small fraction).
    pub compact_batch_bytes: u64,
    /// How often access times collected by reads are written to the index.
    pub access_flush_interval: Duration,
    /// Most requests one group commit takes.
    pub max_batch_requests: usize,
    /// Most payload bytes one group commit takes before it commits.
    pub max_batch_bytes: u64,
    /// A put's new blobs stored at this size or larger (default 4 MiB) skip the writer
    /// thread's open chunk: the putting thread writes and fsyncs them into a chunk file of
    /// their own, in parallel with other puts, and the writer only commits their records
    /// (`u64::MAX` turns this off).
    pub direct_write_min: u64,
    /// Free space a put must leave on the store's filesystem, bytes; a put that would
    /// cross it fails with [`Error::NoSpace`] before anything is written. `None` (default):
    /// the smaller of 1 GiB and 5% of the filesystem. `Some(0)` lets puts fill the disk.
    pub min_free_space: Option<u64>,
    /// Clock for TTL and access times.
    pub clock: Arc<dyn Clock>,
    /// Sorts keys into artifact kinds for the per-kind metrics of the tiers above
    /// (`None`, the default: every key counts as `other`). The store itself ignores it.
    pub key_classifier: Option<Arc<dyn crate::KeyClassifier>>,
}

impl Default for StoreOptions {
    fn default() -> Self {
        Self {
            create_if_missing: true,
            chunk_size: 64 << 20,
            compression: CompressionPolicy::default(),
            durability: Durability::Fsync,
            default_ttl: Some(DEFAULT_TTL),
            max_size: None,
            eviction: Arc::new(Lru),
            compact_threshold: 0.5,
            gc_interval: Some(Duration::from_secs(60)),
            gc_step_removals: 1000,
            gc_prescan_max_blobs: 8 << 20,
            compact_batch_bytes: 8 << 20,
            access_flush_interval: Duration::from_secs(30),
            max_batch_requests: 512,
            max_batch_bytes: 64 << 20,
            direct_write_min: 4 << 20,
            min_free_space: None,
            clock: Arc::new(SystemClock),
            key_classifier: None,
        }
    }
}

impl StoreOptions {
    pub(crate) fn validate(&self) -> Result<()> {
        let bad = |reason: String| Err(Error::InvalidOption { reason });
        if self.chunk_size < 4096 {
            return bad(format!(
                "chunk_size {} is below the 4096-byte minimum",
                self.chunk_size
            ));
        }
        if self.compact_batch_bytes == 0 {
            return bad("compact_batch_bytes must be positive".into());
        }
        if !(0.0..=1.0).contains(&self.compression.max_ratio) {
            return bad(format!(
                "compression max_ratio {} is not within 0..=1",
                self.compression.max_ratio
            ));
        }
        if !(1..=19).contains(&self.compression.level) {
            return bad(format!(
                "zstd level {} is not within 1..=19",
                self.compression.level
            ));
        }
        if self.default_ttl == Some(Duration::ZERO) {
            return bad("default_ttl must be positive".into());
        }
        if self.max_size == Some(0) {
            return bad("max_size must be positive".into());
        }
        if !(0.0..=1.0).contains(&self.compact_threshold) {
            return bad(format!(
                "compact_threshold {} is not within 0..=1",
                self.compact_threshold
            ));
        }
        if self.gc_interval == Some(Duration::ZERO) {
            return bad("gc_interval must be positive".into());
        }
        if self.direct_write_min == 0 {
            return bad("direct_write_min must be positive".into());
        }
        if self.max_batch_requests == 0 {
            return bad("max_batch_requests must be at least 1".into());
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_validate_and_nonsense_is_refused() {
        StoreOptions::default().validate().unwrap();
        for bad in [
            StoreOptions {
                chunk_size: 100,
                ..StoreOptions::default()
            },
            StoreOptions {
                compact_batch_bytes: 0,
                ..StoreOptions::default()
            },
        ] {
            assert!(matches!(bad.validate(), Err(Error::InvalidOption { .. })));
        }
    }
}
