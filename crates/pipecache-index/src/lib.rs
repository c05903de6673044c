//! # pipecache-index: the RocksDB index of a pipecache store
//!
//! Owns the RocksDB database under `<store>/index` and its column families:
//!
//! | CF          | key                              | value                    |
//! |-------------|----------------------------------|--------------------------|
//! | `artifacts` | artifact key (UTF-8)             | [`ArtifactRecord`] CBOR  |
//! | `blobs`     | blake3 hash (32 bytes)           | [`BlobRecord`] CBOR      |
//! | `chunks`    | chunk id (u64 big-endian)        | [`ChunkRecord`] CBOR     |
//! | `access`    | artifact key                     | [`AccessRecord`] CBOR    |
//! | `expiry`    | expiry ms (u64 BE) ++ key        | empty                    |
//! | `meta`      | `store`                          | [`StoreMeta`] CBOR       |
//! | `queue`     | queue name ++ 0x00 ++ seq (u64 BE)| [`QueueOp`]: key, or 0xFF ++ key |
//!
//! It gives typed reads and scans through [`Index`], and writes through the one
//! [`IndexWriter`] an open hands out: an [`IndexBatch`] that commits atomically. Whoever holds
//! the writer is the index's only committer (the store's writer thread); the one other write,
//! [`Index::queue_remove`], is named for what it is. It must not
//! open chunk files or know where they live, must not spawn threads or tasks of its own, and must
//! not decide policy (what to evict, when to sync): the store engine does.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use pipecache_format::record::{
    AccessRecord, ArtifactRecord, BlobRecord, ChunkRecord, Record, StoreMeta, chunk_key,
    expiry_key, parse_chunk_key, parse_expiry_key,
};
use pipecache_format::{BlobHash, FormatError};

mod error;

pub use error::IndexError;
use error::classify;
use rocksdb::{
    BlockBasedOptions, ColumnFamily, ColumnFamilyDescriptor, DB, Direction, IteratorMode, Options,
    WriteBatch, WriteOptions,
};

/// Names of the column families, in creation order.
pub const COLUMN_FAMILIES: [&str; 7] = [
    "artifacts",
    "blobs",
    "chunks",
    "access",
    "expiry",
    "meta",
    "queue",
];

const META_STORE_KEY: &[u8] = b"store";

/// Artifact records this long or longer live in RocksDB's blob files instead of the SSTs
/// (a keyframes record: 300+ parts; a transcript's is ~150 bytes).
const ARTIFACT_BLOB_MIN: u64 = 4096;

/// First byte of a `queue` value that marks a delete. Never the first byte of UTF-8 text, so
/// an upload entry (the bare key, as version 1 wrote every entry) can never be mistaken for one.
const QUEUE_DELETE_TAG: u8 = 0xFF;

/// What a write-back queue entry asks the remote tier to do with its key.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum QueueOp {
    /// Make the remote hold the key's current local artifact (or nothing, when it is gone
    /// here or too large for the tier).
    Upload,
    /// Remove the remote's copy: the key was deleted here, its value is too large for the
    /// tier, or its upload was dropped on a full queue. An upload entry of the same key in
    /// the same worker batch wins (the local state then decides).
    Delete,
}

/// One entry of a persistent write-back queue.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct QueueEntry {
    /// Position in the queue (entries are taken in sequence order).
    pub seq: u64,
    /// Artifact key.
    pub key: String,
    /// What to do with it.
    pub op: QueueOp,
}

/// Result alias for this crate.
pub type Result<T, E = IndexError> = std::result::Result<T, E>;

fn rocks(context: impl Into<String>) -> impl FnOnce(rocksdb::Error) -> IndexError {
    move |source| classify(context.into(), source)
}

fn printable(key: &[u8]) -> String {
    match std::str::from_utf8(key) {
        Ok(s) => s.to_owned(),
        Err(_) => key.iter().map(|b| format!("{b:02x}")).collect(),
    }
}

fn decode<T: Record>(cf: &'static str, key: &[u8], value: &[u8]) -> Result<T> {
    T::decode(value).map_err(|source| IndexError::Record {
        cf,
        key: printable(key),
        source,
    })
}

/// Read options of whole-CF scans (GC, verify, listings): their blocks are read once, so
/// they stay out of the block cache, which keeps the blocks point lookups (gets, the
/// writer's reads) come back to, and keeps a scan of a 3M-blob index from growing RSS.
fn scan_options() -> rocksdb::ReadOptions {
    let mut o = rocksdb::ReadOptions::default();
    o.fill_cache(false);
    o
}

/// Tuning knobs for the RocksDB instance.
#[derive(Clone, Debug)]
pub struct IndexOptions {
    /// Block cache shared by all CFs, bytes (default 128 MiB: at 3M blobs the index is
    /// ~260 MiB of SST files, and with 32 MiB get p99 was ~2x a 300k-blob store's; the
    /// cache fills only as lookups touch blocks, so small stores and short CLI runs do not
    /// pay for it).
    pub block_cache_bytes: usize,
    /// Memtable size per CF, bytes.
    pub write_buffer_bytes: usize,
}

impl Default for IndexOptions {
    fn default() -> Self {
        Self {
            block_cache_bytes: 128 << 20,
            write_buffer_bytes: 16 << 20,
        }
    }
}

/// The open index: every read, and the one write outside the writer
/// ([`Index::queue_remove`]). Commits go through the [`IndexWriter`] `open` returns with it.
pub struct Index {
    db: Arc<DB>,
    path: PathBuf,
}

/// The only handle that commits to an open index. [`Index::open`] makes exactly one, so
/// the one thread that holds it (the store's writer) is the index's only committer, by
/// type: the store's invariant 3. Not `Clone`.
pub struct IndexWriter {
    db: Arc<DB>,
}

impl std::fmt::Debug for IndexWriter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("IndexWriter").finish_non_exhaustive()
    }
}

fn cf_handle<'d>(db: &'d DB, name: &'static str) -> &'d ColumnFamily {
    db.cf_handle(name)
        .expect("column families are created at open")
}

impl std::fmt::Debug for Index {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Index").field("path", &self.path).finish()
    }
}

/// Write-ahead log files an open may find before it flushes them into SST files. Each
/// open starts a new WAL and keeps the older ones until their data is flushed (RocksDB's
/// recovery flush is off, see [`Index::open`]), so this bounds what the next open replays.
const WAL_FILES_BEFORE_FLUSH: usize = 16;

/// Level-0 SST files in one column family at which an open waits for RocksDB's own
/// compaction to finish (twice RocksDB's trigger of 4: processes that exited before their
/// background compaction finished left them).
const L0_FILES_BEFORE_WAIT: u64 = 8;

/// SST files of one column family above which an open merges them, when they are small
/// (below [`SMALL_SST_BYTES`] on average). Keys that only grow (artifact keys per video,
/// expiry times, chunk ids) make RocksDB move each flushed file down a level whole instead
/// of merging it, so their file count grows with every flush: measured 143 SSTs after 2,000
/// opens. The average-size condition keeps a large column family (files of tens of MiB)
/// from being rewritten again and again.
const SST_FILES_BEFORE_MERGE: usize = 12;
const SMALL_SST_BYTES: usize = 4 << 20;

/// Longest an open waits for that compaction; the store is usable either way.
const COMPACTION_WAIT: std::time::Duration = std::time::Duration::from_secs(60);

/// Size at which RocksDB's info log rolls over; with `keep_log_file_num` this bounds the
/// info logs of a directory opened thousands of times.
const INFO_LOG_BYTES: usize = 1 << 20;

impl Index {
    fn db_options(options: &IndexOptions) -> Result<(Options, Vec<ColumnFamilyDescriptor>)> {
        // A short-lived process (one CLI call) must not leave SST files behind: by default
        // RocksDB flushes the WAL it replays at open into a new L0 file per column family,
        // which nothing compacts before the process exits (300 CLI calls left 1,202 SSTs).
        // Replayed data stays in the memtable and its WAL instead; `open` bounds the WALs.
        // No fallocate either: RocksDB preallocates each WAL at 1.1 x the memtable size
        // (17.6 MiB here), space a nearly full disk needs for the store's own deletes and gc
        // (on tmpfs it is taken at once). The binding has setters for neither; RocksDB's
        // option-string parser sets them.
        let mut db_opts = Options::default()
            .get_options_from_string("avoid_flush_during_recovery=true;allow_fallocate=false")
            .map_err(rocks("set options"))?;
        db_opts.create_missing_column_families(true);
        db_opts.set_max_background_jobs(2);
        db_opts.set_keep_log_file_num(4);
        db_opts.set_max_log_file_size(INFO_LOG_BYTES);
        db_opts.set_max_total_wal_size(64 << 20);
        // One memtable budget for all column families instead of write_buffer_bytes x 6.
        db_opts.set_db_write_buffer_size(options.write_buffer_bytes * 2);
        let cache = rocksdb::Cache::new_lru_cache(options.block_cache_bytes);
        let cfs = COLUMN_FAMILIES
            .iter()
            .map(|name| {
                let mut table = BlockBasedOptions::default();
                table.set_block_cache(&cache);
                // Point lookups dominate (blob by hash, artifact by key): bloom filters skip
                // SSTs. Index and filter blocks stay resident (RocksDB's default) instead of
                // competing in the block cache: with a full filter of ~1 MB per SST, a
                // thrashing cache made every lookup re-read megabytes (measured: 90 us per
                // get at 1M blobs).
                table.set_bloom_filter(10.0, false);
                table.set_cache_index_and_filter_blocks(false);
                let mut cf_opts = Options::default();
                cf_opts.set_block_based_table_factory(&table);
                cf_opts.set_write_buffer_size(options.write_buffer_bytes);
                cf_opts.set_compression_type(rocksdb::DBCompressionType::Lz4);
                if *name == "artifacts" {
                    // A keyframes record lists 300+ parts (~26 KB of hashes, lengths and
                    // location hints) beside a video's few small records. Kept inline, those
                    // records are most of the CF's SST bytes (~250 MiB at 10,000 videos), so
                    // a transcript's one lookup mostly missed the block cache. RocksDB's blob
                    // files hold values of `ARTIFACT_BLOB_MIN` bytes or more outside the SSTs
                    // (written at flush, after the WAL, so durability is unchanged), leaving
                    // small records and blob indexes in blocks the cache keeps. Blob GC
                    // rewrites the live values of the oldest files during compaction, so
                    // overwritten and deleted records free their space. Blob values are not
                    // compressed (mostly hashes) and not cached: a large record is read once
                    // per get, from the page cache, and hot artifacts come from the memory
                    // tier.
                    cf_opts.set_enable_blob_files(true);
                    cf_opts.set_min_blob_size(ARTIFACT_BLOB_MIN);
                    cf_opts.set_enable_blob_gc(true);
                }
                ColumnFamilyDescriptor::new(*name, cf_opts)
            })
            .collect();
        Ok((db_opts, cfs))
    }

    /// Opens (creating if needed) the index at `path`, with the one [`IndexWriter`] that can
    /// commit to it.
    ///
    /// The caller owns the directory (the store holds its own lock file first), so a failure
    /// here is never a lock conflict: it is classified by RocksDB's status code.
    #[tracing::instrument(level = "debug")]
    pub fn open(path: &Path, options: &IndexOptions) -> Result<(Self, IndexWriter)> {
        let (mut db_opts, cfs) = Self::db_options(options)?;
        // RocksDB takes a directory without CURRENT for a new database and would start an
        // empty one over the old files: only a missing or empty directory is new.
        let damaged = |detail: &str| IndexError::Corruption {
            context: format!("open {}", path.display()),
            detail: detail.into(),
        };
        let fresh = match std::fs::read_dir(path) {
            Ok(mut entries) => {
                let fresh = entries.next().is_none();
                if !fresh && !path.join("CURRENT").exists() {
                    return Err(damaged("its CURRENT file is missing"));
                }
                fresh
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => true,
            Err(e) if e.kind() == std::io::ErrorKind::NotADirectory => {
                return Err(damaged("it is not a directory"));
            }
            // Anything else (permissions, say) RocksDB reports in its own words.
            Err(_) => false,
        };
        db_opts.create_if_missing(fresh);
        let db = DB::open_cf_descriptors(&db_opts, path, cfs)
            .map_err(rocks(format!("open {}", path.display())))?;
        let index = Self {
            db: Arc::new(db),
            path: path.to_owned(),
        };
        index.keep_files_bounded();
        let writer = IndexWriter {
            db: index.db.clone(),
        };
        Ok((index, writer))
    }

    /// Opens the index at `path` without writing to it (no WAL, no MANIFEST, no recovery
    /// flush): for a store on a full filesystem, which can then still serve reads. There is
    /// no [`IndexWriter`].
    #[tracing::instrument(level = "debug")]
    pub fn open_read_only(path: &Path, options: &IndexOptions) -> Result<Self> {
        let (db_opts, cfs) = Self::db_options(options)?;
        let db = DB::open_cf_descriptors_read_only(&db_opts, path, cfs, false)
            .map_err(rocks(format!("open {} read-only", path.display())))?;
        Ok(Self {
            db: Arc::new(db),
            path: path.to_owned(),
        })
    }

    /// Keeps the files of a directory opened thousands of times bounded: flushes the
    /// memtables when open found many WAL files, lets RocksDB's own compaction finish when
    /// level 0 has piled up, and merges column families made of many small SST files. Both are housekeeping: a failure (a full disk, say) is
    /// logged, and the index stays usable with its data safe in the WAL.
    fn keep_files_bounded(&self) {
        let wal_files = std::fs::read_dir(&self.path)
            .map(|rd| {
                rd.filter_map(|e| e.ok())
                    .filter(|e| e.file_name().to_string_lossy().ends_with(".log"))
                    .count()
            })
            .unwrap_or(0);
        if wal_files > WAL_FILES_BEFORE_FLUSH {
            tracing::debug!(wal_files, "flushing memtables replayed from many WAL files");
            if let Err(e) = self.flush() {
                tracing::warn!(error = %e, "index housekeeping: flush at open failed");
                return;
            }
        }
        let l0_max = COLUMN_FAMILIES
            .iter()
            .filter_map(|name| {
                self.db
                    .property_int_value_cf(self.cf(name), "rocksdb.num-files-at-level0")
                    .ok()
                    .flatten()
            })
            .max()
            .unwrap_or(0);
        if l0_max >= L0_FILES_BEFORE_WAIT {
            tracing::debug!(l0_max, "waiting for level-0 compaction");
            let mut wait = rocksdb::WaitForCompactOptions::default();
            wait.set_timeout(COMPACTION_WAIT.as_micros() as u64);
            if let Err(e) = self.db.wait_for_compact(&wait) {
                tracing::warn!(error = %e, "index housekeeping: level-0 compaction at open failed");
            }
        }
        if let Err(e) = self.merge_small_ssts() {
            tracing::warn!(error = %e, "index housekeeping: merging small SST files failed");
        }
    }

    /// Merges the SST files of every column family that has many small ones into as few
    /// as its size needs (a synchronous full compaction of that column family).
    fn merge_small_ssts(&self) -> Result<()> {
        let files = self.db.live_files().map_err(rocks("list live files"))?;
        for name in COLUMN_FAMILIES {
            let (count, bytes) = files
                .iter()
                .filter(|f| f.column_family_name == name)
                .fold((0usize, 0usize), |(n, b), f| (n + 1, b + f.size));
            if count > SST_FILES_BEFORE_MERGE && bytes / count < SMALL_SST_BYTES {
                tracing::debug!(cf = name, count, bytes, "merging small SST files");
                let mut opts = rocksdb::CompactOptions::default();
                opts.set_bottommost_level_compaction(rocksdb::BottommostLevelCompaction::Force);
                self.db
                    .compact_range_cf_opt(self.cf(name), None::<&[u8]>, None::<&[u8]>, &opts);
            }
        }
        Ok(())
    }

    /// Files in the index directory by role: (SST files, WAL files, everything else).
    /// For tests and `stats`: their growth under many short processes must stay bounded.
    pub fn file_counts(&self) -> (usize, usize, usize) {
        let mut counts = (0, 0, 0);
        for entry in std::fs::read_dir(&self.path)
            .into_iter()
            .flatten()
            .flatten()
        {
            let name = entry.file_name();
            let name = name.to_string_lossy();
            if name.ends_with(".sst") {
                counts.0 += 1;
            } else if name.ends_with(".log") {
                counts.1 += 1;
            } else {
                counts.2 += 1;
            }
        }
        counts
    }

    /// Directory of the RocksDB instance.
    pub fn path(&self) -> &Path {
        &self.path
    }

    fn cf(&self, name: &'static str) -> &ColumnFamily {
        cf_handle(&self.db, name)
    }

    fn get<T: Record>(&self, cf: &'static str, key: &[u8]) -> Result<Option<T>> {
        let value = self
            .db
            .get_pinned_cf(self.cf(cf), key)
            // The message is built only on error: this is every read's path.
            .map_err(|e| rocks(format!("get {cf}/{}", printable(key)))(e))?;
        value.map(|v| decode(cf, key, &v)).transpose()
    }

    /// The store meta record, `None` for a fresh index.
    pub fn meta(&self) -> Result<Option<StoreMeta>> {
        self.get("meta", META_STORE_KEY)
    }

    /// The record of an artifact key.
    pub fn artifact(&self, key: &str) -> Result<Option<ArtifactRecord>> {
        self.get("artifacts", key.as_bytes())
    }

    /// The record of a blob.
    pub fn blob(&self, hash: &BlobHash) -> Result<Option<BlobRecord>> {
        self.get("blobs", hash.as_bytes())
    }

    /// Records of many blobs in one RocksDB multi-get, in the order asked.
    pub fn blobs(&self, hashes: &[BlobHash]) -> Result<Vec<Option<BlobRecord>>> {
        let keys: Vec<&[u8]> = hashes.iter().map(|h| h.as_bytes().as_slice()).collect();
        self.multi_get("blobs", &keys)
    }

    /// Records of many artifact keys in one RocksDB multi-get, in the order asked.
    pub fn artifacts<K: AsRef<str>>(&self, keys: &[K]) -> Result<Vec<Option<ArtifactRecord>>> {
        let keys: Vec<&[u8]> = keys.iter().map(|k| k.as_ref().as_bytes()).collect();
        self.multi_get("artifacts", &keys)
    }

    fn multi_get<T: Record>(&self, cf: &'static str, keys: &[&[u8]]) -> Result<Vec<Option<T>>> {
        let handle = self.cf(cf);
        self.db
            .multi_get_cf(keys.iter().map(|k| (handle, *k)))
            .into_iter()
            .zip(keys)
            .map(|(r, k)| {
                let v = r.map_err(|e| rocks(format!("get {cf}/{}", printable(k)))(e))?;
                v.map(|v| decode(cf, k, &v)).transpose()
            })
            .collect()
    }

    /// The record of a chunk.
    pub fn chunk(&self, id: u64) -> Result<Option<ChunkRecord>> {
        self.get("chunks", &chunk_key(id))
    }

    /// Every chunk record, by id.
    pub fn chunks(&self) -> Result<Vec<(u64, ChunkRecord)>> {
        let mut out = Vec::new();
        for item in self.db.iterator_cf(self.cf("chunks"), IteratorMode::Start) {
            let (k, v) = item.map_err(rocks("scan chunks"))?;
            let id = parse_chunk_key(&k).map_err(|source| IndexError::Record {
                cf: "chunks",
                key: printable(&k),
                source,
            })?;
            out.push((id, decode("chunks", &k, &v)?));
        }
        Ok(out)
    }

    /// The last recorded access of an artifact key.
    pub fn access(&self, key: &str) -> Result<Option<AccessRecord>> {
        self.get("access", key.as_bytes())
    }

    /// Artifacts whose key starts with `prefix`, in key order.
    pub fn scan_artifacts<'a>(
        &'a self,
        prefix: &'a str,
    ) -> impl Iterator<Item = Result<(String, ArtifactRecord)>> + 'a {
        self.db
            .iterator_cf_opt(
                self.cf("artifacts"),
                scan_options(),
                IteratorMode::From(prefix.as_bytes(), Direction::Forward),
            )
            .map(|item| item.map_err(rocks("scan artifacts")))
            .take_while(move |item| match item {
                Ok((k, _)) => k.starts_with(prefix.as_bytes()),
                Err(_) => true,
            })
            .map(|item| {
                let (k, v) = item?;
                let key = String::from_utf8(k.to_vec()).map_err(|e| IndexError::Record {
                    cf: "artifacts",
                    key: printable(&k),
                    source: FormatError::Corrupt {
                        what: "artifact key",
                        detail: e.to_string(),
                    },
                })?;
                let rec = decode("artifacts", &k, &v)?;
                Ok((key, rec))
            })
    }

    /// Every access record, in key order (the same order as [`Index::scan_artifacts`] with an
    /// empty prefix, so the two can be merged in one pass).
    pub fn scan_access(&self) -> impl Iterator<Item = Result<(String, AccessRecord)>> + '_ {
        self.db
            .iterator_cf_opt(self.cf("access"), scan_options(), IteratorMode::Start)
            .map(|item| {
                let (k, v) = item.map_err(rocks("scan access"))?;
                let key = String::from_utf8(k.to_vec()).map_err(|e| IndexError::Record {
                    cf: "access",
                    key: printable(&k),
                    source: FormatError::Corrupt {
                        what: "artifact key",
                        detail: e.to_string(),
                    },
                })?;
                Ok((key, decode("access", &k, &v)?))
            })
    }

    /// Removes entries `seqs` of `queue` in one write. Not synced: an entry that comes back
    /// after a crash is uploaded again, which is idempotent.
    ///
    /// The one write that does not go through the [`IndexWriter`]: an upload that finished
    /// removes its own entries, which only that upload's worker knows about, and which no
    /// put or delete of the writer ever touches again (sequence numbers are not reused).
    pub fn queue_remove(&self, queue: &str, seqs: &[u64]) -> Result<()> {
        let mut batch = WriteBatch::default();
        for &seq in seqs {
            batch.delete_cf(self.cf("queue"), queue_key(queue, seq));
        }
        self.db
            .write(batch)
            .map_err(rocks(format!("queue remove {queue}")))
    }

    /// The oldest `limit` entries of `queue`, oldest first.
    pub fn queue_peek(&self, queue: &str, limit: usize) -> Result<Vec<QueueEntry>> {
        let prefix = queue_key(queue, 0);
        let prefix = &prefix[..prefix.len() - 8];
        let mut out = Vec::new();
        let iter = self.db.iterator_cf(
            self.cf("queue"),
            IteratorMode::From(prefix, Direction::Forward),
        );
        for item in iter {
            let (k, v) = item.map_err(|e| rocks(format!("scan queue {queue}"))(e))?;
            if !k.starts_with(prefix) || out.len() >= limit {
                break;
            }
            let bad = |detail: &str| IndexError::Record {
                cf: "queue",
                key: printable(&k),
                source: FormatError::Corrupt {
                    what: "queue entry",
                    detail: detail.into(),
                },
            };
            let seq = k[prefix.len()..]
                .try_into()
                .map(u64::from_be_bytes)
                .map_err(|_| bad("sequence is not 8 bytes"))?;
            let (op, key) = match v.split_first() {
                Some((&QUEUE_DELETE_TAG, rest)) => (QueueOp::Delete, rest),
                _ => (QueueOp::Upload, &v[..]),
            };
            let key = String::from_utf8(key.to_vec()).map_err(|_| bad("key is not UTF-8"))?;
            out.push(QueueEntry { seq, key, op });
        }
        Ok(out)
    }

    /// Every blob record, in hash order.
    pub fn scan_blobs(&self) -> impl Iterator<Item = Result<(BlobHash, BlobRecord)>> + '_ {
        self.db
            .iterator_cf_opt(self.cf("blobs"), scan_options(), IteratorMode::Start)
            .map(|item| {
                let (k, v) = item.map_err(rocks("scan blobs"))?;
                let hash = BlobHash::from_slice(&k).map_err(|source| IndexError::Record {
                    cf: "blobs",
                    key: printable(&k),
                    source,
                })?;
                Ok((hash, decode("blobs", &k, &v)?))
            })
    }

    /// Expiry entries with expiry time `<= until_ms`, oldest first.
    pub fn scan_expiry(&self, until_ms: u64) -> impl Iterator<Item = Result<(u64, String)>> + '_ {
        self.db
            .iterator_cf(self.cf("expiry"), IteratorMode::Start)
            .map(|item| {
                let (k, _) = item.map_err(rocks("scan expiry"))?;
                parse_expiry_key(&k).map_err(|source| IndexError::Record {
                    cf: "expiry",
                    key: printable(&k),
                    source,
                })
            })
            .take_while(move |item| match item {
                Ok((t, _)) => *t <= until_ms,
                Err(_) => true,
            })
    }

    /// Flushes memtables to SST files (used before a clean close and by tests).
    pub fn flush(&self) -> Result<()> {
        for name in COLUMN_FAMILIES {
            self.db
                .flush_cf(self.cf(name))
                .map_err(rocks(format!("flush {name}")))?;
        }
        Ok(())
    }
}

impl IndexWriter {
    /// Starts a batch; nothing is visible until [`IndexWriter::commit`].
    pub fn batch(&self) -> IndexBatch<'_> {
        IndexBatch {
            db: &self.db,
            batch: WriteBatch::default(),
        }
    }

    /// Commits a batch atomically; with `sync` the WAL is fsynced before returning.
    pub fn commit(&self, batch: IndexBatch<'_>, sync: bool) -> Result<()> {
        let mut opts = WriteOptions::default();
        opts.set_sync(sync);
        self.db
            .write_opt(batch.batch, &opts)
            .map_err(rocks("commit batch"))
    }
}

/// A set of index mutations committed atomically by [`IndexWriter::commit`].
pub struct IndexBatch<'a> {
    db: &'a DB,
    batch: WriteBatch,
}

impl std::fmt::Debug for IndexBatch<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("IndexBatch")
            .field("len", &self.batch.len())
            .finish()
    }
}

impl IndexBatch<'_> {
    /// Number of mutations.
    pub fn len(&self) -> usize {
        self.batch.len()
    }

    /// True when the batch holds no mutation.
    pub fn is_empty(&self) -> bool {
        self.batch.is_empty()
    }

    /// Writes the store meta record.
    pub fn put_meta(&mut self, meta: &StoreMeta) {
        self.batch
            .put_cf(cf_handle(self.db, "meta"), META_STORE_KEY, meta.encode());
    }

    /// Writes an artifact record.
    pub fn put_artifact(&mut self, key: &str, rec: &ArtifactRecord) {
        self.batch.put_cf(
            cf_handle(self.db, "artifacts"),
            key.as_bytes(),
            rec.encode(),
        );
    }

    /// Deletes an artifact record.
    pub fn delete_artifact(&mut self, key: &str) {
        self.batch
            .delete_cf(cf_handle(self.db, "artifacts"), key.as_bytes());
    }

    /// Writes a blob record.
    pub fn put_blob(&mut self, hash: &BlobHash, rec: &BlobRecord) {
        self.batch
            .put_cf(cf_handle(self.db, "blobs"), hash.as_bytes(), rec.encode());
    }

    /// Deletes a blob record.
    pub fn delete_blob(&mut self, hash: &BlobHash) {
        self.batch
            .delete_cf(cf_handle(self.db, "blobs"), hash.as_bytes());
    }

    /// Writes a chunk record.
    pub fn put_chunk(&mut self, id: u64, rec: &ChunkRecord) {
        self.batch
            .put_cf(cf_handle(self.db, "chunks"), chunk_key(id), rec.encode());
    }

    /// Deletes a chunk record.
    pub fn delete_chunk(&mut self, id: u64) {
        self.batch
            .delete_cf(cf_handle(self.db, "chunks"), chunk_key(id));
    }

    /// Writes an access record.
    pub fn put_access(&mut self, key: &str, rec: &AccessRecord) {
        self.batch
            .put_cf(cf_handle(self.db, "access"), key.as_bytes(), rec.encode());
    }

    /// Deletes an access record.
    pub fn delete_access(&mut self, key: &str) {
        self.batch
            .delete_cf(cf_handle(self.db, "access"), key.as_bytes());
    }

    /// Adds an expiry entry.
    pub fn put_expiry(&mut self, expires_ms: u64, key: &str) {
        self.batch.put_cf(
            cf_handle(self.db, "expiry"),
            expiry_key(expires_ms, key),
            [],
        );
    }

    /// Removes an expiry entry.
    pub fn delete_expiry(&mut self, expires_ms: u64, key: &str) {
        self.batch
            .delete_cf(cf_handle(self.db, "expiry"), expiry_key(expires_ms, key));
    }

    /// Appends entry `seq` to the persistent queue `queue`, in the same atomic commit as the
    /// put or delete that it uploads: a crash can never keep one without the other.
    pub fn put_queue_entry(&mut self, queue: &str, seq: u64, key: &str, op: QueueOp) {
        let mut value = Vec::with_capacity(key.len() + 1);
        if op == QueueOp::Delete {
            value.push(QUEUE_DELETE_TAG);
        }
        value.extend_from_slice(key.as_bytes());
        self.batch
            .put_cf(cf_handle(self.db, "queue"), queue_key(queue, seq), value);
    }
}

fn queue_key(queue: &str, seq: u64) -> Vec<u8> {
    let mut k = Vec::with_capacity(queue.len() + 9);
    k.extend_from_slice(queue.as_bytes());
    k.push(0);
    k.extend_from_slice(&seq.to_be_bytes());
    k
}

#[cfg(test)]
mod tests;
