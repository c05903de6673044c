//! Packs on an object store (opendal: a filesystem directory or an S3 bucket).
//!
//! Object names (see docs/format.md, "Remote layout"):
//! - `packs/<blake3 of the pack>`: a sealed chunk file of blob frames;
//! - `index/<id>`: a [`PackIndex`] per push batch (the pack's blobs, the batch's keys);
//! - `records/<hh>/<blake3 of the key>`: a [`RemoteRecord`].
//!
//! Write order per batch: pack, then index, then records, so a record never names a pack
//! that is not there yet, and a kill between steps leaves only unreferenced (collectable)
//! objects. Remote GC deletes only objects older than its grace period, and a pusher reuses a
//! remote blob only from a pack younger than half that period: a pack that a new record is
//! about to name is never old enough to be collected.

use std::collections::{BTreeSet, HashMap, HashSet};
use std::path::PathBuf;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use async_trait::async_trait;
use pipecache_format::record::Record;
use pipecache_format::remote::{
    LedgerEntry, PackIndex, PackLocation, RemoteRecord, decode_pack_frame,
};
use pipecache_format::{BlobHash, CompressionPolicy};
use pipecache_remote::{ObjectMeta, ObjectStore, RemoteError};
use serde::Serialize;
use tokio::sync::Mutex;

mod batch;
mod blob_map;
mod gc;
mod ledger;

use blob_map::BlobMap;

pub(crate) use batch::{PendingRecords, PreparedBatch, UploadItem};
pub use gc::PackGcReport;
pub(crate) use ledger::{Ledger, entry as ledger_entry, local_identity};

use crate::{
    BackendKind, CacheBackend, Capabilities, Fetched, Written, for_each_bounded, from_record,
    key_hash,
};
use crate::{Error, Result};
use pipecache_store::{Clock, StoreError, StoredArtifact};

/// Ranged reads of frames closer than this are merged into one request.
const COALESCE_GAP: u64 = 256 * 1024;
/// Largest merged ranged read.
const MAX_RANGE: u64 = 64 << 20;
/// Concurrent requests of one tier operation.
const CONCURRENCY: usize = 8;
/// How long a loaded blob map is trusted before the index objects are listed again.
const MAP_REFRESH: Duration = Duration::from_secs(60);

/// One ranged read: (pack, start, end, the parts it covers with their locations).
type MergedRange = (BlobHash, u64, u64, Vec<(usize, PackLocation)>);

/// What one batch upload did.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
pub struct BatchReport {
    /// Records written.
    pub records: u64,
    /// Blobs uploaded (new to the remote).
    pub blobs_uploaded: u64,
    /// Blobs found already remote and reused.
    pub blobs_reused: u64,
    /// Packs written.
    pub packs: u64,
    /// Pack bytes written.
    pub pack_bytes: u64,
}

/// A tier of packs and records on an opendal object store.
#[derive(Debug)]
pub struct PackTier {
    name: String,
    kind: BackendKind,
    store: ObjectStore,
    compression: CompressionPolicy,
    clock: Arc<dyn Clock>,
    grace: Duration,
    map: Mutex<BlobMap>,
    /// The store directory that keeps the remote blob table between processes (`blob_map`);
    /// unset, the table lives in memory only.
    table_dir: OnceLock<PathBuf>,
}

/// A file in the store directory holding `what` of `remote` (a pack tier's target), named
/// by a hash, since a target holds characters file names must not.
fn state_file_name(what: &str, remote: &str) -> String {
    let hex = BlobHash::of(remote.as_bytes()).to_hex();
    format!("{what}-{}", &hex[..16])
}

fn pack_path(id: &BlobHash) -> String {
    format!("packs/{}", id.to_hex())
}

pub(crate) fn record_path(key: &str) -> String {
    let h = key_hash(key);
    format!("records/{}/{}", &h[..2], h)
}

impl PackTier {
    /// A tier over `store`. `grace` is the remote GC grace period, which also bounds blob
    /// reuse (see the module docs).
    pub fn new(
        name: impl Into<String>,
        kind: BackendKind,
        store: ObjectStore,
        compression: CompressionPolicy,
        clock: Arc<dyn Clock>,
        grace: Duration,
    ) -> Self {
        let map = Mutex::new(BlobMap::new(store.target()));
        Self {
            name: name.into(),
            kind,
            store,
            compression,
            clock,
            grace,
            map,
            table_dir: OnceLock::new(),
        }
    }

    /// Keeps the remote blob table (`blob_map`) in the store directory `dir` from now on.
    /// Set once, before the tier is used; later calls are ignored.
    pub(crate) fn keep_blob_table_in(&self, dir: &std::path::Path) {
        let _ = self.table_dir.set(dir.to_owned());
    }

    /// The GC grace period.
    pub fn grace(&self) -> Duration {
        self.grace
    }

    /// How old a pack may be for a push to name its blobs: half the grace period, so a
    /// pack a new record is about to name is never old enough to be collected.
    fn reuse_window_ms(&self) -> u64 {
        (self.grace / 2).as_millis() as u64
    }

    /// The transport (for stats and tests).
    pub fn store(&self) -> &ObjectStore {
        &self.store
    }

    /// The object name of `key`'s record.
    #[cfg(feature = "test-hooks")]
    pub fn record_path(key: &str) -> String {
        record_path(key)
    }

    fn remote(&self, e: RemoteError) -> Error {
        Error::remote(&self.name, e)
    }

    fn corrupt(&self, key: Option<&str>, what: impl std::fmt::Display) -> Error {
        StoreError::corruption(key, None, format!("tier {}: {what}", self.name)).into()
    }

    /// The record of `key`, decoded; `None` when absent.
    pub async fn record(&self, key: &str) -> Result<Option<RemoteRecord>> {
        let Some(bytes) = self
            .store
            .get(&record_path(key))
            .await
            .map_err(|e| self.remote(e))?
        else {
            return Ok(None);
        };
        self.decode_record(key, &bytes).map(Some)
    }

    /// `key`'s record from its object's bytes: a corruption error when they do not decode or
    /// name another key.
    fn decode_record(&self, key: &str, bytes: &[u8]) -> Result<RemoteRecord> {
        let rec = RemoteRecord::decode(bytes)
            .map_err(|e| self.corrupt(Some(key), format!("record: {e}")))?;
        if rec.key != key {
            return Err(self.corrupt(Some(key), format!("record holds key {:?}", rec.key)));
        }
        Ok(rec)
    }

    /// The records of `keys` (read concurrently), each `None` when absent; in `keys` order.
    async fn records_or_errors(
        &self,
        keys: &[String],
    ) -> Result<Vec<Option<Result<RemoteRecord>>>> {
        let at: HashMap<String, usize> = keys
            .iter()
            .enumerate()
            .map(|(i, k)| (record_path(k), i))
            .collect();
        let mut out: Vec<Option<Result<RemoteRecord>>> = keys.iter().map(|_| None).collect();
        for (path, bytes) in self.get_many(at.keys().cloned().collect()).await? {
            let i = at[&path];
            out[i] = bytes.map(|b| self.decode_record(&keys[i], &b));
        }
        Ok(out)
    }

    /// The decodable records of `keys` (read concurrently). A key whose record is absent or
    /// damaged is left out (logged): callers treat it as missing.
    pub async fn records(&self, keys: &[String]) -> Result<HashMap<String, RemoteRecord>> {
        let mut out = HashMap::with_capacity(keys.len());
        for (key, rec) in keys.iter().zip(self.records_or_errors(keys).await?) {
            match rec {
                Some(Ok(rec)) => {
                    out.insert(key.clone(), rec);
                }
                Some(Err(e)) => {
                    tracing::warn!(tier = %self.name, %key, error = %e, "damaged remote record")
                }
                None => {}
            }
        }
        Ok(out)
    }

    /// Names of every record object (one listing).
    pub async fn record_names(&self) -> Result<HashSet<String>> {
        Ok(self.record_listing().await?.into_keys().collect())
    }

    /// Every record object, by name, with the version the listing shows (one listing).
    pub(crate) async fn record_listing(&self) -> Result<HashMap<String, ObjectMeta>> {
        Ok(self
            .store
            .list("records/")
            .await
            .map_err(|e| self.remote(e))?
            .into_iter()
            .map(|e| {
                let version = ObjectMeta {
                    size: e.size,
                    modified_ms: e.modified_ms,
                    etag: e.etag,
                };
                (e.path, version)
            })
            .collect())
    }

    /// Brings the blob map up to date: reads the store directory's table on first use,
    /// lists the index objects (at most every [`MAP_REFRESH`]), reads the ones not tabled,
    /// and saves the table when enough were read or written since it was.
    async fn refresh(&self, map: &mut BlobMap) -> Result<()> {
        let now = self.clock.now_ms();
        if !map.loaded {
            if let Some(dir) = self.table_dir.get() {
                let (dir, remote) = (dir.clone(), self.store.target().to_owned());
                *map = tokio::task::spawn_blocking(move || BlobMap::load(&dir, &remote))
                    .await
                    .unwrap_or_else(|e| std::panic::resume_unwind(e.into_panic()));
            }
            map.loaded = true;
        }
        if map
            .listed_ms
            .is_some_and(|t| now.saturating_sub(t) < MAP_REFRESH.as_millis() as u64)
        {
            return Ok(());
        }
        let names: HashSet<String> = self.index_names().await?.into_iter().collect();
        map.mark_listed(&names);
        let fresh: Vec<String> = names.into_iter().filter(|p| !map.knows(p)).collect();
        let reuse_window = self.reuse_window_ms();
        self.for_each_index(fresh, |path, idx| {
            // A pack past the reuse window is never named again (module docs): its blobs
            // need no room.
            let reusable = now.saturating_sub(idx.created_ms) < reuse_window;
            let blobs = idx.blobs.iter().map(|b| (b.hash, b.offset, b.stored_len));
            map.add_index(path, idx.pack, idx.created_ms, reusable, blobs);
        })
        .await?;
        map.listed_ms = Some(now);
        self.save_table_if_due(map).await;
        Ok(())
    }

    /// Saves the blob table to the store directory once [`blob_map::SAVE_AFTER_INDEXES`]
    /// index objects were added since it was last saved.
    async fn save_table_if_due(&self, map: &mut BlobMap) {
        let Some(dir) = self.table_dir.get() else {
            return;
        };
        if map.unsaved < blob_map::SAVE_AFTER_INDEXES || map.listed_ms.is_none() {
            return;
        }
        let bytes = map.encode_for_save(self.clock.now_ms(), self.reuse_window_ms());
        let (dir, remote) = (dir.clone(), self.store.target().to_owned());
        tokio::task::spawn_blocking(move || blob_map::save(dir, &remote, &bytes))
            .await
            .unwrap_or_else(|e| std::panic::resume_unwind(e.into_panic()));
    }

    /// Saves the blob table if what this process added makes it worth it (the end of a
    /// `sync push`).
    pub(crate) async fn save_blob_table(&self) {
        let mut map = self.map.lock().await;
        self.save_table_if_due(&mut map).await;
    }

    /// Where `hash` is on the remote, if a batch started at `started_ms` may name it.
    async fn reusable_blobs(
        &self,
        hashes: impl Iterator<Item = &BlobHash>,
        started_ms: u64,
    ) -> Result<HashMap<BlobHash, PackLocation>> {
        let mut map = self.map.lock().await;
        self.refresh(&mut map).await?;
        let window = self.reuse_window_ms();
        Ok(hashes
            .filter_map(|h| Some((*h, map.find(h, started_ms, window)?)))
            .collect())
    }

    /// Tables the blobs of an index object this process wrote.
    async fn add_written_index(
        &self,
        name: String,
        pack: Option<BlobHash>,
        created_ms: u64,
        entries: &[pipecache_format::remote::PackEntry],
    ) {
        let mut map = self.map.lock().await;
        let blobs = entries.iter().map(|e| (e.hash, e.offset, e.stored_len));
        map.add_index(name, pack, created_ms, true, blobs);
    }

    /// The names of the remote's index objects.
    async fn index_names(&self) -> Result<Vec<String>> {
        let entries = self
            .store
            .list("index/")
            .await
            .map_err(|e| self.remote(e))?;
        Ok(entries.into_iter().map(|e| e.path).collect())
    }

    /// Reads the index objects `names` and hands each to `each` as it arrives, decoded, not
    /// all held at once (242 of them, ~170 MB, for a 3M-blob remote). One that vanished is
    /// skipped; one that does not decode is skipped with a warning.
    async fn for_each_index(
        &self,
        names: Vec<String>,
        mut each: impl FnMut(String, PackIndex),
    ) -> Result<()> {
        self.for_each_object(names, |path, bytes| {
            let Some(bytes) = bytes else { return Ok(()) };
            match PackIndex::decode(&bytes) {
                Ok(idx) => each(path, idx),
                Err(e) => {
                    tracing::warn!(tier = %self.name, %path, error = %e, "skipping corrupt pack index");
                }
            }
            Ok(())
        })
        .await
    }

    /// Fetches whole objects concurrently; `None` for the ones that vanished.
    async fn get_many(&self, paths: Vec<String>) -> Result<Vec<(String, Option<Vec<u8>>)>> {
        let mut out = Vec::with_capacity(paths.len());
        self.for_each_object(paths, |path, bytes| {
            out.push((path, bytes));
            Ok(())
        })
        .await?;
        Ok(out)
    }

    /// Fetches whole objects concurrently and hands each to `each` as it arrives (`None` for
    /// one that vanished).
    async fn for_each_object(
        &self,
        paths: Vec<String>,
        mut each: impl FnMut(String, Option<Vec<u8>>) -> Result<()>,
    ) -> Result<()> {
        let store = &self.store;
        for_each_bounded(
            paths,
            CONCURRENCY,
            |path| {
                let store = store.clone();
                async move {
                    let r = store.get(&path).await;
                    (path, r)
                }
            },
            |(path, r)| each(path, r.map_err(|e| self.remote(e))?),
        )
        .await
    }

    /// Keys listed by any index object, filtered by `prefix`. A listed key's record may have
    /// been deleted since; callers read the record to know.
    pub async fn candidate_keys(&self, prefix: &str) -> Result<Vec<String>> {
        // Every index is read: key listings are not kept (the blob table holds blobs only).
        let names = self.index_names().await?;
        let mut keys = BTreeSet::new();
        self.for_each_index(names, |_, idx| {
            keys.extend(idx.keys.into_iter().filter(|k| k.starts_with(prefix)));
        })
        .await?;
        Ok(keys.into_iter().collect())
    }

    /// Uploads `items` as one batch: one pack of the blobs the remote lacks, one index, then
    /// one record per artifact.
    pub async fn put_batch(&self, items: Vec<(String, StoredArtifact)>) -> Result<BatchReport> {
        Ok(self.put_batch_with(items, false).await?.0)
    }

    /// [`PackTier::put_batch`], with what each item's write deduplicated; with `if_absent`,
    /// a record is written only where none is (copies from another tier must never replace
    /// a put that landed meanwhile; a pack whose records all lose stays unreferenced until
    /// remote GC).
    async fn put_batch_with(
        &self,
        items: Vec<(String, StoredArtifact)>,
        if_absent: bool,
    ) -> Result<(BatchReport, Vec<Written>)> {
        let items = items
            .into_iter()
            .map(|(key, item)| UploadItem::unhashed(key, item))
            .collect();
        let batch = self.prepare_batch(items, &[]).await?;
        let written = batch
            .deduplicated()
            .iter()
            .map(|&bytes| Written::deduplicated(bytes))
            .collect();
        Ok((self.upload_batch(batch, if_absent).await?.0, written))
    }

    /// Writes `records` (with `if_absent`, only where none is); returns how many were
    /// written and, for records written without a condition, a ledger entry saying which
    /// version of the object each write made (what the next `sync push` compares with the
    /// listing instead of reading the record).
    async fn put_records(
        &self,
        records: &[RemoteRecord],
        if_absent: bool,
    ) -> Result<(u64, Vec<LedgerEntry>)> {
        let store = &self.store;
        let mut written = 0;
        let mut entries = Vec::new();
        for_each_bounded(
            records,
            CONCURRENCY,
            |rec| {
                let store = store.clone();
                let (path, bytes) = (record_path(&rec.key), rec.encode());
                let made = (rec.key.clone(), ledger::remote_identity(rec));
                async move {
                    if if_absent {
                        store.put_if_absent(&path, bytes).await.map(|w| (w, None))
                    } else {
                        let version = store.put_versioned(&path, bytes).await?;
                        Ok((true, Some(ledger::entry(made.0, made.1, &version))))
                    }
                }
            },
            |r| {
                let (was_written, entry) = r.map_err(|e| self.remote(e))?;
                written += u64::from(was_written);
                entries.extend(entry);
                Ok(())
            },
        )
        .await?;
        Ok((written, entries))
    }

    /// Reads every part of `rec`, merging nearby frames of one pack into one ranged read.
    async fn read_parts(&self, key: &str, rec: &RemoteRecord) -> Result<Vec<Vec<u8>>> {
        let mut order: Vec<(usize, PackLocation)> = Vec::with_capacity(rec.parts.len());
        for (i, p) in rec.parts.iter().enumerate() {
            let at = p
                .at
                .ok_or_else(|| self.corrupt(Some(key), format!("part {:?} has no pack", p.name)))?;
            order.push((i, at));
        }
        order.sort_by_key(|(_, at)| (at.pack, at.offset));
        // Ranges: (pack, start, end, [(part index, location)]).
        let mut ranges: Vec<MergedRange> = Vec::new();
        for (i, at) in order {
            let r = at.frame_range();
            match ranges.last_mut() {
                Some((pack, start, end, members))
                    if *pack == at.pack
                        && r.start >= *end
                        && r.start - *end <= COALESCE_GAP
                        && r.end - *start <= MAX_RANGE =>
                {
                    *end = r.end;
                    members.push((i, at));
                }
                _ => ranges.push((at.pack, r.start, r.end, vec![(i, at)])),
            }
        }
        let mut data: Vec<Option<Vec<u8>>> = vec![None; rec.parts.len()];
        let store = &self.store;
        for_each_bounded(
            ranges,
            CONCURRENCY,
            |(pack, start, end, members)| {
                let store = store.clone();
                async move {
                    let r = store.get_range(&pack_path(&pack), start..end).await;
                    (pack, start, members, r)
                }
            },
            |(pack, start, members, r)| {
                let bytes = match r {
                    Ok(b) => b,
                    Err(RemoteError::NotFound { .. }) => {
                        return Err(self.corrupt(Some(key), format!("pack {pack} is missing")));
                    }
                    Err(e) => return Err(self.remote(e)),
                };
                for (i, at) in members {
                    let r = at.frame_range();
                    let (a, b) = ((r.start - start) as usize, (r.end - start) as usize);
                    let frame = bytes.get(a..b).ok_or_else(|| {
                        self.corrupt(Some(key), format!("pack {pack} is shorter than its index"))
                    })?;
                    let raw = decode_pack_frame(frame, rec.parts[i].hash).map_err(|e| {
                        StoreError::corruption(
                            Some(key),
                            Some(rec.parts[i].hash),
                            format!("tier {}: pack {pack}: {e}", self.name),
                        )
                    })?;
                    data[i] = Some(raw);
                }
                Ok(())
            },
        )
        .await?;
        Ok(data
            .into_iter()
            .map(|d| d.expect("every part was fetched"))
            .collect())
    }
}

#[async_trait]
impl CacheBackend for PackTier {
    fn name(&self) -> &str {
        &self.name
    }

    fn kind(&self) -> BackendKind {
        self.kind
    }

    fn capabilities(&self) -> Capabilities {
        Capabilities {
            ranged_reads: true,
            native_ttl: false,
            max_object_size: None,
            list: true,
        }
    }

    async fn get(&self, key: &str) -> Result<Option<Fetched>> {
        let Some(rec) = self.record(key).await? else {
            return Ok(None);
        };
        if rec.is_expired(self.clock.now_ms()) {
            return Ok(None);
        }
        let data = self.read_parts(key, &rec).await?;
        let digest = rec.digest;
        Ok(Some(Fetched {
            stored: from_record(rec, data),
            digest: Some(digest),
        }))
    }

    async fn put(&self, key: &str, item: &StoredArtifact) -> Result<Written> {
        let (_, written) = self
            .put_batch_with(vec![(key.to_owned(), item.clone())], false)
            .await?;
        Ok(written.into_iter().next().unwrap_or_default())
    }

    /// A copy never replaces a record: checked first (no upload when one is there, live or
    /// expired: the conditional write below would refuse either), then made a condition of
    /// the record write, so a put landing in between wins. An expired record blocks copies
    /// until remote GC removes it.
    async fn put_copy(&self, key: &str, item: &StoredArtifact) -> Result<Written> {
        if self.record(key).await?.is_some() {
            return Ok(Written::default());
        }
        let (report, written) = self
            .put_batch_with(vec![(key.to_owned(), item.clone())], true)
            .await?;
        // A put that landed meanwhile kept its record: this copy wrote nothing.
        Ok(written
            .into_iter()
            .next()
            .filter(|_| report.records > 0)
            .unwrap_or_default())
    }

    async fn put_many(&self, items: &[(String, StoredArtifact)]) -> Result<Vec<Written>> {
        Ok(self.put_batch_with(items.to_vec(), false).await?.1)
    }

    async fn delete(&self, key: &str) -> Result<bool> {
        let path = record_path(key);
        let existed = self.store.exists(&path).await.map_err(|e| self.remote(e))?;
        if existed {
            self.store.delete(&path).await.map_err(|e| self.remote(e))?;
        }
        Ok(existed)
    }

    async fn exists(&self, key: &str) -> Result<bool> {
        Ok(self
            .record(key)
            .await?
            .is_some_and(|r| !r.is_expired(self.clock.now_ms())))
    }

    async fn list(&self, prefix: &str) -> Result<Vec<String>> {
        let keys = self.candidate_keys(prefix).await?;
        let now = self.clock.now_ms();
        let mut out = Vec::new();
        for (key, rec) in keys.iter().zip(self.records_or_errors(&keys).await?) {
            // A damaged record is an error, as for `exists`: a listing must not hide it.
            if rec.transpose()?.is_some_and(|r| !r.is_expired(now)) {
                out.push(key.clone());
            }
        }
        Ok(out)
    }
}
