//! The state a store's async API, its blocking tasks, the writer thread and the GC thread
//! share: directories, the index's read handle, options, counters, the chunk reader cache,
//! access times waiting for the writer, and the outbox claims. Reading and checking one blob
//! lives here too; everything that decides or mutates sits above.

use std::collections::{HashMap, HashSet};
use std::fs::File;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};

use crossbeam_channel::Sender;
use pipecache_format::record::{BlobRecord, StoreMeta};
use pipecache_format::{BlobHash, ChunkReader, FormatError};
use pipecache_index::Index;

use crate::space::Reserve;
use crate::{Error, Result, StoreOptions};

#[derive(Debug, Default)]
pub(crate) struct Counter(AtomicU64);

impl Counter {
    pub(crate) fn add(&self, n: u64) {
        self.0.fetch_add(n, Ordering::Relaxed);
    }
    pub(crate) fn get(&self) -> u64 {
        self.0.load(Ordering::Relaxed)
    }
    pub(crate) fn set(&self, n: u64) {
        self.0.store(n, Ordering::Relaxed);
    }
}

/// Operation counters of this process's handle on the store.
#[derive(Debug, Default)]
pub(crate) struct Counters {
    pub hits: Counter,
    pub misses: Counter,
    pub expired_misses: Counter,
    pub corruption_errors: Counter,
    pub puts: Counter,
    pub deletes: Counter,
    pub commits: Counter,
    pub blobs_written: Counter,
    pub blobs_deduped: Counter,
    pub bytes_deduped: Counter,
    pub bytes_written: Counter,
    pub write_errors: Counter,
    pub gc_runs: Counter,
    pub gc_reclaimed_bytes: Counter,
    /// When the last GC pass ended (store clock, ms; 0: none yet) and what it reclaimed.
    pub last_gc_ms: Counter,
    pub last_gc_reclaimed_bytes: Counter,
}

/// A callback told of each key the store's GC removed (expired or evicted). Runs on the
/// writer thread: it must be quick and must not call back into the store.
pub type RemovalListener = Arc<dyn Fn(&str) + Send + Sync>;

/// The registered [`RemovalListener`]s.
#[derive(Default)]
struct RemovalListeners(RwLock<Vec<RemovalListener>>);

impl std::fmt::Debug for RemovalListeners {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let n = self.0.read().map_or(0, |l| l.len());
        write!(f, "{n} removal listeners")
    }
}

/// State shared by the async API, blocking tasks and the writer thread.
#[derive(Debug)]
pub(crate) struct Shared {
    pub dir: PathBuf,
    pub chunk_dir: PathBuf,
    pub index: Index,
    pub options: StoreOptions,
    pub counters: Counters,
    /// Access times collected by reads, written to the index by the writer thread in batches.
    pub access: Mutex<HashMap<String, u64>>,
    readers: RwLock<HashMap<u64, Arc<ChunkReader>>>,
    /// Incremented after every index commit: lets the writer trust index reads the GC thread
    /// made when no commit happened since (saves a second lookup per relocated blob).
    commit_epoch: AtomicU64,
    /// Wakes the background GC thread early (a commit took the store over budget).
    gc_wake: Option<Sender<()>>,
    /// Write-back queues a manager serves (see [`Store::claim_queue`]).
    pub(crate) claimed_queues: Mutex<HashSet<String>>,
    /// The reserve file that keeps room for open, deletes and gc on a full filesystem.
    pub reserve: Reserve,
    /// Opened read-only: the filesystem was too full to open the index for writing.
    pub read_only: bool,
    /// The next chunk id to hand out: the writer's new chunks and puts' direct chunks both
    /// take theirs here, so the two never collide (the committed `StoreMeta::next_chunk_id`
    /// only ever catches up with it).
    next_chunk_id: AtomicU64,
    /// Direct chunks (see `direct`) being written or waiting for their put's commit: orphan
    /// removal and verify must not take them for leftovers of a crash.
    direct_in_flight: Mutex<HashSet<u64>>,
    /// Told of every key GC expired or evicted, after the commit (see `Store::on_removal`).
    removal_listeners: RemovalListeners,
    /// Where the writer thread publishes the keys each commit changed, for other processes'
    /// near caches (`None` read-only, or when the journal could not be created for lack of
    /// space: then no reader can map one either).
    pub(crate) journal: Option<crate::journal::JournalWriter>,
    // Declared last so it is released after RocksDB is closed.
    _lock: File,
}

impl Shared {
    /// State for a store opened on `dir`; `lock` is the held store lock, released when the
    /// last handle drops (after RocksDB closed).
    #[allow(clippy::too_many_arguments)] // one constructor for one struct's private fields
    pub(crate) fn new(
        dir: PathBuf,
        chunk_dir: PathBuf,
        index: Index,
        options: StoreOptions,
        gc_wake: Option<Sender<()>>,
        reserve: Reserve,
        read_only: bool,
        journal: Option<crate::journal::JournalWriter>,
        lock: File,
    ) -> Self {
        Self {
            dir,
            chunk_dir,
            index,
            options,
            counters: Counters::default(),
            access: Mutex::new(HashMap::new()),
            readers: RwLock::new(HashMap::new()),
            commit_epoch: AtomicU64::new(0),
            gc_wake,
            claimed_queues: Mutex::default(),
            reserve,
            read_only,
            next_chunk_id: AtomicU64::new(1),
            direct_in_flight: Mutex::default(),
            removal_listeners: RemovalListeners::default(),
            journal,
            _lock: lock,
        }
    }

    /// Adds a listener told of every key GC removes (see `Store::on_removal`).
    pub(crate) fn add_removal_listener(&self, listener: RemovalListener) {
        self.removal_listeners
            .0
            .write()
            .expect("removal listeners poisoned")
            .push(listener);
    }

    /// Tells the listeners that `keys` were removed; called by the writer after the commit.
    pub(crate) fn notify_removed<'k>(&self, keys: impl Iterator<Item = &'k str>) {
        let listeners = self
            .removal_listeners
            .0
            .read()
            .expect("removal listeners poisoned");
        if listeners.is_empty() {
            return;
        }
        for key in keys {
            for listener in listeners.iter() {
                listener(key);
            }
        }
    }

    /// Takes a chunk id no chunk file has used.
    pub(crate) fn take_chunk_id(&self) -> u64 {
        self.next_chunk_id.fetch_add(1, Ordering::SeqCst)
    }

    /// Makes sure ids handed out from now on are at least `next` (the committed meta's).
    pub(crate) fn chunk_ids_from(&self, next: u64) {
        self.next_chunk_id.fetch_max(next, Ordering::SeqCst);
    }

    /// Marks chunk `id` as a direct chunk in flight (`true`) or no longer (`false`).
    pub(crate) fn set_direct_in_flight(&self, id: u64, in_flight: bool) {
        let mut set = self
            .direct_in_flight
            .lock()
            .expect("direct chunk set poisoned");
        if in_flight {
            set.insert(id);
        } else {
            set.remove(&id);
        }
    }

    /// True while chunk `id` is a direct chunk not yet committed or removed.
    pub(crate) fn is_direct_in_flight(&self, id: u64) -> bool {
        self.direct_in_flight
            .lock()
            .expect("direct chunk set poisoned")
            .contains(&id)
    }

    /// Commits so far (see `commit_epoch`).
    pub(crate) fn epoch(&self) -> u64 {
        self.commit_epoch.load(Ordering::SeqCst)
    }

    /// Counts one index commit; only the writer thread calls it, right after committing.
    pub(crate) fn bump_epoch(&self) {
        self.commit_epoch.fetch_add(1, Ordering::SeqCst);
    }

    pub(crate) fn reader(&self, id: u64) -> Result<Arc<ChunkReader>, FormatError> {
        if let Some(r) = self.readers.read().expect("reader cache poisoned").get(&id) {
            return Ok(r.clone());
        }
        let r = Arc::new(ChunkReader::open(&self.chunk_dir, id)?);
        self.readers
            .write()
            .expect("reader cache poisoned")
            .insert(id, r.clone());
        Ok(r)
    }

    pub(crate) fn read_blob_quiet(
        &self,
        hash: BlobHash,
        rec: &BlobRecord,
    ) -> Result<Vec<u8>, FormatError> {
        self.reader(rec.chunk)
            .and_then(|r| r.read_blob(rec.offset, hash, rec.stored_len))
    }

    /// Counts and logs corruption on its way to the caller.
    pub(crate) fn count(&self, e: Error) -> Error {
        if e.is_corruption() {
            self.counters.corruption_errors.add(1);
            tracing::error!(error = %e, "corrupt blob");
        }
        e
    }

    /// Reads and checks one blob; corruption is counted and named.
    pub(crate) fn read_blob(
        &self,
        key: Option<&str>,
        hash: BlobHash,
        rec: &BlobRecord,
    ) -> Result<Vec<u8>> {
        self.read_blob_quiet(hash, rec)
            .map_err(|e| self.count(Error::from_format(e, key, Some(hash))))
    }

    /// Called by the writer after every commit.
    pub(crate) fn after_commit(&self, meta: &StoreMeta) {
        if let (Some(max), Some(wake)) = (self.options.max_size, &self.gc_wake)
            && meta.totals.stored_bytes > max
        {
            let _ = wake.try_send(());
        }
    }

    pub(crate) fn forget_reader(&self, id: u64) {
        self.readers
            .write()
            .expect("reader cache poisoned")
            .remove(&id);
    }
}
