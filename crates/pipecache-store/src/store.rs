//! The store facade: [`Store`], opening and locking a store directory, the read path, and
//! the async API every caller uses. The top of the crate's layers: it starts the writer and
//! GC threads and calls lifecycle, verify and rebuild; nothing below imports it.

use std::fs;
use std::io::ErrorKind;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

use crossbeam_channel::Sender;
use pipecache_format::record::ArtifactRecord;
use pipecache_format::{BlobHash, parse_chunk_file_name};
use pipecache_index::{Index, IndexOptions};
use tokio::sync::oneshot;

use crate::artifact::{ListEntry, PutOptions, PutOutcome, StoredArtifact, validate_key};
use crate::compaction::{self, CompactReport};
use crate::job;
use crate::journal::JournalWriter;
use crate::layout::{CHUNK_DIR, INDEX_DIR};
use crate::lifecycle::{self, GcOptions, GcReport};
use crate::open::{check_store_dir, lock_and_check};
use crate::outbox::{OutboxClaim, OutboxSlot, QueueEntry};
use crate::read::write_large_parts;
use crate::rebuild::{self, RebuildReport};
use crate::recovery::recover_chunks;
use crate::space::{Reserve, effective_min_free, fs_space};
use crate::state::Shared;
use crate::stats::{CounterSnapshot, DiskUsage, Footprint, Stats};
use crate::verify::{self, RepairReport, VerifyReport};
use crate::writer::{PutRequest, Request, Writer};
use crate::{Artifact, Error, Result, StoreOptions};
use pipecache_format::chunk::CHUNK_HEADER_LEN;

/// Counts the chunk files in a directory listing and their bytes. A file that is gone by the time
/// it is stat'ed was deleted by a concurrent compaction: it occupies nothing, so it is not counted
/// (failing `stats` would turn a routine race into an error for the caller).
fn chunk_files_on_disk(
    listing: impl IntoIterator<Item = std::io::Result<fs::DirEntry>>,
) -> Result<(u64, u64)> {
    let (mut files, mut bytes) = (0u64, 0u64);
    for entry in listing {
        let entry = entry.map_err(|e| Error::io("list chunk dir", e))?;
        let Some(id) = entry.file_name().to_str().and_then(parse_chunk_file_name) else {
            continue;
        };
        match entry.metadata() {
            Ok(meta) => {
                files += 1;
                bytes += meta.len();
            }
            Err(e) if e.kind() == ErrorKind::NotFound => {
                tracing::debug!(chunk = id, "chunk file removed while listing; not counted");
            }
            Err(e) => return Err(Error::io(format!("stat chunk file {id}"), e)),
        }
    }
    Ok((files, bytes))
}

#[derive(Debug)]
struct WriterHandle {
    tx: Mutex<Option<Sender<Request>>>,
    thread: Mutex<Option<JoinHandle<()>>>,
    gc_stop: Mutex<Option<Sender<()>>>,
    gc_thread: Mutex<Option<JoinHandle<()>>>,
    /// The store was opened read-only (full filesystem): there never was a writer.
    read_only: bool,
}

impl WriterHandle {
    fn sender(&self) -> Result<Sender<Request>> {
        if self.read_only {
            return Err(Error::NoSpace {
                detail: "the store was opened read-only because its filesystem was full; free space and open it again to write".into(),
            });
        }
        self.tx
            .lock()
            .expect("writer handle poisoned")
            .clone()
            .ok_or(Error::Closed)
    }
}

impl Drop for WriterHandle {
    fn drop(&mut self) {
        // The GC thread holds a sender: stop it first, or the writer never sees the channel close.
        self.gc_stop.lock().expect("writer handle poisoned").take();
        if let Some(t) = self
            .gc_thread
            .lock()
            .expect("writer handle poisoned")
            .take()
        {
            let _ = t.join();
        }
        // Closing the channel lets the writer finish its batch, write access times and exit;
        // joining makes "drop, then reopen" in the same process safe.
        self.tx.lock().expect("writer handle poisoned").take();
        if let Some(t) = self.thread.lock().expect("writer handle poisoned").take() {
            let _ = t.join();
        }
    }
}

/// An open pipecache store: chunk files plus a RocksDB index, owned by this process.
///
/// Cheap to clone; the store closes when the last clone is dropped (or on [`Store::close`]).
/// Every method is async and runs RocksDB and file I/O on tokio's blocking pool; mutations are
/// group-committed by one writer thread.
#[derive(Clone, Debug)]
pub struct Store {
    shared: Arc<Shared>,
    writer: Arc<WriterHandle>,
}

async fn blocking<T: Send + 'static>(f: impl FnOnce() -> Result<T> + Send + 'static) -> Result<T> {
    tokio::task::spawn_blocking(f).await.map_err(|e| {
        if e.is_panic() {
            std::panic::resume_unwind(e.into_panic())
        }
        Error::Closed
    })?
}

/// Largest artifact (logical bytes) a put hashes and compresses on the calling task rather
/// than the blocking pool: up to 64 KiB that takes less than the pool's two thread hops
/// (~20-40 µs each on this project's VM; a served 50 KB put spent more time switching
/// threads than working), and keeps an async thread busy no longer than a blake3 of 64 KiB
/// plus one compression attempt.
const PREPARE_INLINE_MAX: u64 = 64 << 10;

impl Store {
    /// Opens the store in `dir`, creating it when the directory is missing or empty.
    pub async fn open(dir: impl AsRef<Path>, options: StoreOptions) -> Result<Store> {
        let dir = dir.as_ref().to_owned();
        blocking(move || Self::open_blocking(dir, options)).await
    }

    #[tracing::instrument(level = "info", skip(options))]
    fn open_blocking(dir: PathBuf, options: StoreOptions) -> Result<Store> {
        options.validate()?;
        check_store_dir(&dir, &options)?;
        let lock = lock_and_check(&dir, &options)?;
        let chunk_dir = dir.join(CHUNK_DIR);
        fs::create_dir_all(&chunk_dir)
            .map_err(|e| Error::io(format!("create {}", chunk_dir.display()), e))?;
        // A rebuild killed after its new index was complete: put that one in place.
        rebuild::finish_index_swap(&dir)?;
        let reserve = Reserve::new(&dir);
        reserve.adjust(options.min_free_space)?;
        let index_dir = dir.join(INDEX_DIR);
        let (index, index_writer) = match Index::open(&index_dir, &IndexOptions::default()) {
            Ok((index, writer)) => (index, Some(writer)),
            // No reserve to release (a store made on an already full disk): serve reads.
            Err(e) if e.is_no_space() => {
                tracing::warn!(error = %e, "filesystem full: store opened read-only; free space and open it again to write");
                (
                    Index::open_read_only(&index_dir, &IndexOptions::default())?,
                    None,
                )
            }
            Err(e) => return Err(e.into()),
        };
        let read_only = index_writer.is_none();
        let journal = if read_only {
            None
        } else {
            JournalWriter::open_or_skip(&dir)?
        };
        let (wake_tx, wake_rx) = crossbeam_channel::bounded(1);
        let gc_interval = options.gc_interval;
        let shared = Arc::new(Shared::new(
            dir,
            chunk_dir,
            index,
            options,
            gc_interval.map(|_| wake_tx),
            reserve,
            read_only,
            journal,
            lock,
        ));
        let Some(index_writer) = index_writer else {
            // No writer and no GC thread: every write is refused with NoSpace.
            return Ok(Store {
                shared,
                writer: Arc::new(WriterHandle {
                    tx: Mutex::new(None),
                    thread: Mutex::new(None),
                    gc_stop: Mutex::new(None),
                    gc_thread: Mutex::new(None),
                    read_only: true,
                }),
            });
        };
        let (meta, chunk) = recover_chunks(&shared, &index_writer)?;
        let (tx, rx) = crossbeam_channel::bounded(1024);
        let writer = Writer::new(shared.clone(), index_writer, meta, chunk);
        let gc_tx = tx.clone();
        let thread = std::thread::Builder::new()
            .name("pipecache-writer".into())
            .spawn(move || writer.run(rx))
            .map_err(|e| Error::io("spawn writer thread", e))?;
        let (gc_stop, gc_thread) = match gc_interval {
            Some(interval) => {
                let (stop_tx, stop_rx) = crossbeam_channel::bounded(0);
                let t =
                    lifecycle::spawn_background(shared.clone(), gc_tx, stop_rx, wake_rx, interval)
                        .map_err(|e| Error::io("spawn gc thread", e))?;
                (Some(stop_tx), Some(t))
            }
            None => (None, None),
        };
        Ok(Store {
            shared,
            writer: Arc::new(WriterHandle {
                tx: Mutex::new(Some(tx)),
                thread: Mutex::new(Some(thread)),
                gc_stop: Mutex::new(gc_stop),
                gc_thread: Mutex::new(gc_thread),
                read_only: false,
            }),
        })
    }

    /// Rebuilds the index of the store in `dir` from its chunk files alone (offline: takes the
    /// store lock). Refuses to replace an index that looks complete unless `force`.
    pub async fn rebuild_index(
        dir: impl AsRef<Path>,
        options: StoreOptions,
        force: bool,
        progress: impl Fn(u64, u64) + Send + 'static,
    ) -> Result<RebuildReport> {
        let dir = dir.as_ref().to_owned();
        blocking(move || {
            options.validate()?;
            if !dir.is_dir() {
                return Err(Error::NotFound {
                    what: format!("store directory {}", dir.display()),
                });
            }
            let _lock = lock_and_check(
                &dir,
                &StoreOptions {
                    create_if_missing: false,
                    ..options.clone()
                },
            )?;
            let report = rebuild::rebuild(&dir, &options, force, &progress)?;
            // Entries the rebuild could not recover must leave other processes' copies too.
            JournalWriter::open_or_skip(&dir)?;
            Ok(report)
        })
        .await
    }

    /// The store directory.
    pub fn dir(&self) -> &Path {
        &self.shared.dir
    }

    /// The options the store was opened with.
    pub fn options(&self) -> &StoreOptions {
        &self.shared.options
    }

    /// Stores `artifact` under `key` with the default TTL, replacing any previous artifact.
    /// Returns once the artifact is durable (see [`crate::Durability`]).
    pub async fn put(&self, key: &str, artifact: Artifact) -> Result<()> {
        self.put_with(key, artifact, PutOptions::default()).await
    }

    /// [`Store::put`] with per-put options.
    #[tracing::instrument(level = "debug", skip(self, artifact), fields(parts = artifact.parts.len()))]
    pub async fn put_with(&self, key: &str, artifact: Artifact, options: PutOptions) -> Result<()> {
        self.put_with_outbox(key, artifact, options, Vec::new())
            .await
            .map(drop)
    }

    /// [`Store::put_with`] that also commits write-back queue entries for the key in the same
    /// batch (the manager's write-back tiers). `written: false`: `if_absent` refused the put,
    /// and neither the artifact nor its queue entries were written.
    pub async fn put_with_outbox(
        &self,
        key: &str,
        artifact: Artifact,
        options: PutOptions,
        queue: Vec<OutboxSlot>,
    ) -> Result<PutOutcome> {
        validate_key(key)?;
        artifact.validate()?;
        if let Some(max) = self.shared.options.max_size
            && artifact.logical_size() > max
        {
            return Err(Error::TooLarge {
                size: artifact.logical_size(),
                max_size: max,
            });
        }
        if let Some(c) = &options.compression
            && (!(1..=19).contains(&c.level) || !(0.0..=1.0).contains(&c.max_ratio))
        {
            return Err(Error::InvalidOption {
                reason: format!("invalid compression policy {c:?}"),
            });
        }
        if options.ttl == Some(Duration::ZERO) {
            return Err(Error::InvalidOption {
                reason: "ttl must be positive".into(),
            });
        }
        let tx = self.writer.sender()?;
        let shared = self.shared.clone();
        let key = key.to_owned();
        let (reply, answer) = oneshot::channel();
        let inline = artifact.logical_size() <= PREPARE_INLINE_MAX;
        let prepare = move || {
            // A store with compression off stays off: a per-put policy (the pipeline's
            // per-kind ones) picks the level and threshold, never overrides that choice.
            let mut policy = options.compression.unwrap_or(shared.options.compression);
            policy.enabled &= shared.options.compression.enabled;
            let mut parts = shared.prepare(artifact.parts, &policy)?;
            let direct = write_large_parts(&shared, &mut parts)?;
            let expires_ms =
                options.expiry(shared.options.clock.now_ms(), shared.options.default_ttl);
            Ok::<_, Error>(Request::Put(PutRequest {
                key,
                kind: artifact.kind,
                meta: artifact.meta,
                parts,
                expires_ms,
                if_absent: options.if_absent,
                queue,
                direct,
                reply,
            }))
        };
        if inline {
            match tx.try_send(prepare()?) {
                Ok(()) => {}
                // The writer's queue is full: wait for room off the async thread.
                Err(crossbeam_channel::TrySendError::Full(req)) => {
                    blocking(move || tx.send(req).map_err(|_| Error::Closed)).await?;
                }
                Err(crossbeam_channel::TrySendError::Disconnected(_)) => return Err(Error::Closed),
            }
        } else {
            blocking(move || tx.send(prepare()?).map_err(|_| Error::Closed)).await?;
        }
        answer.await.map_err(|_| Error::Closed)?
    }

    /// The artifact under `key`; `Ok(None)` is a miss (absent or expired). Corrupt bytes are
    /// never returned: they are an [`Error::Corruption`] naming the key and blob.
    #[tracing::instrument(level = "debug", skip(self))]
    pub async fn get(&self, key: &str) -> Result<Option<Artifact>> {
        validate_key(key)?;
        let shared = self.shared.clone();
        let key = key.to_owned();
        let hit = blocking(move || shared.get_blocking(&key)).await?;
        Ok(hit.map(|h| h.artifact))
    }

    /// [`Store::get`] with the artifact's creation and expiry times (tiers copy them along).
    pub async fn get_stored(&self, key: &str) -> Result<Option<StoredArtifact>> {
        validate_key(key)?;
        let shared = self.shared.clone();
        let key = key.to_owned();
        blocking(move || shared.get_blocking(&key)).await
    }

    /// [`Store::get_stored`] with each part's blake3, as the read checked it against the
    /// part's bytes (`sync push` packs them without hashing every byte again).
    pub async fn get_stored_hashed(
        &self,
        key: &str,
    ) -> Result<Option<(StoredArtifact, Vec<BlobHash>)>> {
        validate_key(key)?;
        let shared = self.shared.clone();
        let key = key.to_owned();
        blocking(move || shared.get_hashed_blocking(&key)).await
    }

    /// Index records of `keys`, in order: `None` for absent or expired ones. Reads no blob
    /// bytes (`sync push` compares them with remote records before reading anything).
    pub async fn records(&self, keys: Vec<String>) -> Result<Vec<Option<ArtifactRecord>>> {
        let shared = self.shared.clone();
        blocking(move || {
            let now = shared.options.clock.now_ms();
            Ok(shared
                .index
                .artifacts(&keys)?
                .into_iter()
                .map(|r| r.filter(|r| !r.is_expired(now)))
                .collect())
        })
        .await
    }

    /// What the live artifacts among `keys` take after dedup: logical bytes against the
    /// distinct blobs they reference (index records only, no blob read).
    pub async fn footprint(&self, keys: Vec<String>) -> Result<Footprint> {
        let records = self.records(keys).await?;
        Ok(Footprint::of(records.iter().flatten()))
    }

    /// Registers `listener`, told of every key GC expires or evicts, right after the
    /// commit that removed it, on the writer thread (quick, and never calling back into
    /// the store). Lets a cache in front of the store drop its copy at once.
    pub fn on_removal(&self, listener: crate::state::RemovalListener) {
        self.shared.add_removal_listener(listener);
    }

    /// Claims outbox queue `queue` for one consumer until the claim drops.
    pub fn claim_outbox(&self, queue: &str) -> Result<OutboxClaim> {
        if !self
            .shared
            .claimed_queues
            .lock()
            .expect("queue claims poisoned")
            .insert(queue.to_owned())
        {
            return Err(Error::QueueInUse {
                queue: queue.to_owned(),
            });
        }
        Ok(OutboxClaim::new(
            Arc::downgrade(&self.shared),
            queue.to_owned(),
        ))
    }

    /// The oldest `limit` entries of outbox queue `queue`.
    pub async fn outbox_peek(&self, queue: &str, limit: usize) -> Result<Vec<QueueEntry>> {
        let (shared, queue) = (self.shared.clone(), queue.to_owned());
        blocking(move || Ok(shared.index.queue_peek(&queue, limit)?)).await
    }

    /// Removes delivered entries `seqs` of outbox queue `queue`: the one index write that
    /// does not go through the writer thread (`pipecache_index::Index::queue_remove` says
    /// why that is safe).
    pub async fn outbox_remove_delivered(&self, queue: &str, seqs: Vec<u64>) -> Result<()> {
        let (shared, queue) = (self.shared.clone(), queue.to_owned());
        blocking(move || Ok(shared.index.queue_remove(&queue, &seqs)?)).await
    }

    /// True when `key` holds a live (unexpired) artifact. Reads no blob bytes.
    pub async fn contains(&self, key: &str) -> Result<bool> {
        validate_key(key)?;
        let shared = self.shared.clone();
        let key = key.to_owned();
        blocking(move || {
            let now = shared.options.clock.now_ms();
            Ok(shared
                .index
                .artifact(&key)?
                .is_some_and(|r| !r.is_expired(now)))
        })
        .await
    }

    /// Removes `key`; returns whether it existed. Its blobs lose a reference.
    pub async fn delete(&self, key: &str) -> Result<bool> {
        self.delete_with_outbox(key, Vec::new()).await
    }

    /// [`Store::delete`] that also commits outbox entries for the key, in the same batch.
    pub async fn delete_with_outbox(&self, key: &str, queue: Vec<OutboxSlot>) -> Result<bool> {
        validate_key(key)?;
        let tx = self.writer.sender()?;
        let (reply, answer) = oneshot::channel();
        let key = key.to_owned();
        blocking(move || {
            tx.send(Request::Delete { key, queue, reply })
                .map_err(|_| Error::Closed)
        })
        .await?;
        answer.await.map_err(|_| Error::Closed)?
    }

    /// Live artifacts whose key starts with `prefix`, in key order.
    pub async fn list(&self, prefix: &str) -> Result<Vec<ListEntry>> {
        let shared = self.shared.clone();
        let prefix = prefix.to_owned();
        blocking(move || {
            let now = shared.options.clock.now_ms();
            let mut out = Vec::new();
            for item in shared.index.scan_artifacts(&prefix) {
                let (key, rec) = item?;
                if rec.is_expired(now) {
                    continue;
                }
                out.push(ListEntry {
                    key,
                    kind: rec.kind,
                    parts: rec.parts.len(),
                    size: rec.logical_size,
                    created_ms: rec.created_ms,
                    expires_ms: rec.expires_ms,
                });
            }
            Ok(out)
        })
        .await
    }

    /// Sizes, dedup figures and this handle's counters. O(number of chunk files).
    pub async fn stats(&self) -> Result<Stats> {
        let shared = self.shared.clone();
        blocking(move || {
            let meta = shared
                .index
                .meta()?
                .ok_or_else(|| Error::corruption(None, None, "store meta record is missing"))?;
            let (chunk_files, disk_bytes) = chunk_files_on_disk(
                fs::read_dir(&shared.chunk_dir)
                    .map_err(|e| Error::io(format!("list {}", shared.chunk_dir.display()), e))?,
            )?;
            let c = &shared.counters;
            let dead_bytes = shared
                .index
                .chunks()?
                .iter()
                .map(|(_, c)| {
                    c.total_bytes
                        .saturating_sub(CHUNK_HEADER_LEN)
                        .saturating_sub(c.live_bytes)
                })
                .sum();
            let fs = fs_space(&shared.dir)?;
            Ok(Stats::new(
                meta.totals,
                DiskUsage {
                    chunk_files,
                    disk_bytes,
                    dead_bytes,
                    fs,
                    min_free_space: effective_min_free(shared.options.min_free_space, fs),
                },
                shared.options.max_size,
                CounterSnapshot {
                    hits: c.hits.get(),
                    misses: c.misses.get(),
                    expired_misses: c.expired_misses.get(),
                    corruption_errors: c.corruption_errors.get(),
                    puts: c.puts.get(),
                    deletes: c.deletes.get(),
                    group_commits: c.commits.get(),
                    blobs_written: c.blobs_written.get(),
                    blobs_deduped: c.blobs_deduped.get(),
                    bytes_deduped: c.bytes_deduped.get(),
                    bytes_written: c.bytes_written.get(),
                    write_errors: c.write_errors.get(),
                    gc_runs: c.gc_runs.get(),
                    gc_reclaimed_bytes: c.gc_reclaimed_bytes.get(),
                    last_gc_ms: Some(c.last_gc_ms.get()).filter(|&ms| ms > 0),
                    last_gc_reclaimed_bytes: c.last_gc_reclaimed_bytes.get(),
                },
                shared.read_only,
            ))
        })
        .await
    }

    /// Reads and blake3-checks every live blob and cross-checks the index (missing blobs, chunk
    /// files, refcounts and chunk live bytes). Meant for a quiet store: the accounting checks
    /// come from one index read no commit interleaved with (retried while commits land), but
    /// chunk scans racing puts or compaction can still report frames in flux.
    pub async fn verify(&self) -> Result<VerifyReport> {
        self.verify_with_progress(|_, _| {}).await
    }

    /// [`Store::verify`] reporting `(bytes checked, bytes total)` as it goes.
    pub async fn verify_with_progress(
        &self,
        progress: impl Fn(u64, u64) + Send + 'static,
    ) -> Result<VerifyReport> {
        let shared = self.shared.clone();
        blocking(move || verify::run(&shared, &progress)).await
    }

    /// One GC pass: removes expired artifacts (expiry CF, time order), evicts whole artifacts by
    /// the eviction policy while live bytes exceed `max_size`, compacts chunks, drops
    /// zero-reference blob records and chunk files nothing references. Safe while the store is
    /// in use: every removal is re-checked by the writer thread when it applies.
    pub async fn gc(&self, options: GcOptions) -> Result<GcReport> {
        self.gc_with_progress(options, |_, _, _| {}).await
    }

    /// [`Store::gc`] reporting `(phase, done, total)`.
    pub async fn gc_with_progress(
        &self,
        options: GcOptions,
        progress: impl Fn(&str, u64, u64) + Send + Sync + 'static,
    ) -> Result<GcReport> {
        let shared = self.shared.clone();
        let tx = self.writer.sender()?;
        blocking(move || lifecycle::gc(&shared, &tx, options, &progress)).await
    }

    /// Runs a GC pass if the store is over its size budget: stored bytes above `max_size`,
    /// or chunk files above `max_size` plus one chunk (the bound a GC pass keeps). For a
    /// process without the background GC thread, such as one CLI call, after its put.
    pub async fn gc_if_over_budget(&self) -> Result<Option<GcReport>> {
        let Some(max) = self.shared.options.max_size else {
            return Ok(None);
        };
        let s = self.stats().await?;
        if s.stored_bytes > max || s.disk_bytes > max + self.shared.options.chunk_size {
            Ok(Some(self.gc(GcOptions::default()).await?))
        } else {
            Ok(None)
        }
    }

    /// Compacts chunks whose live fraction is under `compact_threshold` (and, over budget, any
    /// chunk with dead bytes): live frames are copied to the open chunk, the index is updated in
    /// one batch, then the old file is removed.
    pub async fn compact(&self) -> Result<CompactReport> {
        self.compact_with_progress(false, |_, _, _| {}).await
    }

    /// [`Store::compact`] with a dry-run switch and progress.
    pub async fn compact_with_progress(
        &self,
        dry_run: bool,
        progress: impl Fn(&str, u64, u64) + Send + Sync + 'static,
    ) -> Result<CompactReport> {
        let shared = self.shared.clone();
        let tx = self.writer.sender()?;
        blocking(move || compaction::compact(&shared, &tx, dry_run, None, &progress)).await
    }

    /// Verifies, then fixes what can be fixed: artifacts whose bytes are lost are dropped (they
    /// become misses, listed in the report), damaged blob records and chunk records whose file
    /// is gone are dropped, refcounts, chunk live bytes and totals are recounted.
    pub async fn repair(&self) -> Result<RepairReport> {
        let shared = self.shared.clone();
        let tx = self.writer.sender()?;
        blocking(move || {
            let before = verify::run(&shared, &|_, _| {})?;
            let (drop_keys, drop_blobs, drop_chunks, rewrite_records) = verify::plan(&before)?;
            let (dropped_keys, refcounts_fixed) = job::call(&tx, |reply| Request::Repair {
                drop_keys,
                drop_blobs: drop_blobs.clone(),
                drop_chunks: drop_chunks.clone(),
                rewrite_records,
                reply,
            })?;
            let after = verify::run(&shared, &|_, _| {})?;
            Ok(RepairReport {
                before,
                dropped_keys,
                dropped_blobs: drop_blobs.len() as u64,
                refcounts_fixed,
                dropped_chunks: drop_chunks,
                after,
            })
        })
        .await
    }

    /// Notes that `key` was read now without this store reading it (a server client
    /// answered the get from its near cache), so LRU eviction sees the read: kept with the
    /// access times reads collect, and written with them.
    pub fn record_access(&self, key: &str) {
        let shared = &self.shared;
        if !shared.read_only {
            let now = shared.options.clock.now_ms();
            shared
                .access
                .lock()
                .expect("access map poisoned")
                .insert(key.to_owned(), now);
        }
    }

    /// Writes access times collected by reads to the index now (normally every
    /// `access_flush_interval` and at close).
    pub async fn flush_access_times(&self) -> Result<()> {
        let tx = self.writer.sender()?;
        let (reply, answer) = oneshot::channel();
        blocking(move || {
            tx.send(Request::FlushAccess { reply })
                .map_err(|_| Error::Closed)
        })
        .await?;
        answer.await.map_err(|_| Error::Closed)?
    }

    /// Last access time recorded in the index for `key` (coarse: see `access_flush_interval`).
    pub async fn last_access_ms(&self, key: &str) -> Result<Option<u64>> {
        let shared = self.shared.clone();
        let key = key.to_owned();
        blocking(move || Ok(shared.index.access(&key)?.map(|a| a.last_ms))).await
    }

    /// Flushes access times and closes the store, waiting for the writer thread to stop.
    /// Other clones of this handle keep the store open until they are dropped.
    pub async fn close(self) -> Result<()> {
        // A read-only store recorded no access times (it has no writer to write them).
        if !self.writer.read_only {
            self.flush_access_times().await?;
        }
        let Store { shared, writer } = self;
        drop(shared);
        tokio::task::spawn_blocking(move || drop(writer))
            .await
            .map_err(|_| Error::Closed)?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use pipecache_format::chunk_file_name;

    #[test]
    fn a_chunk_file_deleted_after_listing_is_not_counted() {
        let dir = tempfile::tempdir().unwrap();
        for id in [1u64, 2, 3] {
            fs::write(
                dir.path().join(chunk_file_name(id)),
                vec![0u8; 100 * id as usize],
            )
            .unwrap();
        }
        fs::write(dir.path().join("LOCK"), b"not a chunk").unwrap();
        // The listing is taken first, then a compaction deletes chunk 2 before it is stat'ed.
        let listing: Vec<_> = fs::read_dir(dir.path()).unwrap().collect();
        fs::remove_file(dir.path().join(chunk_file_name(2))).unwrap();
        assert_eq!(chunk_files_on_disk(listing).unwrap(), (2, 400));
    }
}
