//! The single writer thread: every index mutation and every chunk append goes through it.
//!
//! Requests arrive on a crossbeam channel. The thread takes everything queued (up to
//! `max_batch_requests` / `max_batch_bytes`), appends the group's new blobs and record frames to
//! the open chunk, fsyncs the chunk once, then commits one RocksDB `WriteBatch` for the whole
//! group and answers every request. Maintenance requests (eviction, dropping dead blobs, chunk
//! relocation for compaction, orphan removal, repair) run after the group, each as its own
//! commit, on the same thread.
//!
//! One thread owning all mutations is what makes dedup safe against GC: a blob's liveness is
//! decided and changed in one place, in order, and every maintenance request *re-checks* the
//! state it was planned on (a key's record sequence number, a blob's refcount and location) at
//! the moment it applies. No grace period is needed. A put that saw a blob as present carries
//! the raw bytes anyway, so if the blob was collected in between it is simply written again.
//!
//! Write order (the crash-safety promise, see docs/format.md):
//! 1. append frames to the open chunk (rolling to a new chunk file when full; a sealed chunk is
//!    fsynced before the new one is used);
//! 2. fsync the open chunk;
//! 3. commit one WriteBatch: blob records and refcounts, chunk records (committed length, live
//!    bytes), artifact records, expiry and access entries, store totals;
//! 4. only then unlink chunk files that compaction emptied.
//!
//! A crash before 3 leaves bytes past the committed length of a chunk, or a chunk file the index
//! does not know: both are unreferenced and removed at the next open (or by `gc`).

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crossbeam_channel::{Receiver, RecvTimeoutError};
use pipecache_format::record::{
    AccessRecord, ArtifactRecord, BlobRecord, ChunkRecord, FrameRef, PartRef, RECORD_VERSION,
    Record, RecordFrame, StoreMeta, TombstoneFrame,
};
use pipecache_format::{BlobHash, ChunkWriter, Codec, FRAME_HEADER_LEN, FrameHeader, FrameKind};
use pipecache_index::IndexWriter;
use tokio::sync::oneshot;

use crate::accounting::{RecordCounts, record_counts};
use crate::options::Durability;
use crate::outbox::OutboxSlot;
use crate::recovery::{recover_chunks, remove_orphan_chunks};
use crate::space::{effective_min_free, fs_space};
use crate::state::Shared;
use crate::{Error, Result};

/// Bytes a put's record frame and chunk roll-over may add beyond its parts' frames, for the
/// `min_free_space` check (keys are at most 1 KiB, metadata at most `MAX_META_BYTES`).
const PUT_RECORD_ALLOWANCE: u64 = 80 << 10;

/// A blob's bytes as prepared by the caller's thread (hashed, maybe compressed).
#[derive(Debug)]
pub(crate) struct PreparedPart {
    pub name: String,
    pub hash: BlobHash,
    pub raw: Vec<u8>,
    /// `Some` when the caller already chose a codec (the blob looked new when prepared).
    pub encoded: Option<(Codec, Option<Vec<u8>>)>,
}

#[derive(Debug)]
pub(crate) struct PutRequest {
    pub key: String,
    pub kind: String,
    pub meta: BTreeMap<String, String>,
    pub parts: Vec<PreparedPart>,
    pub expires_ms: Option<u64>,
    /// `PutOptions::if_absent`.
    pub if_absent: bool,
    /// Write-back queue entries committed with the put (none when `if_absent` refuses it).
    pub queue: Vec<OutboxSlot>,
    /// `Ok(false)`: `if_absent` refused the put (nothing written, no queue entry).
    pub reply: oneshot::Sender<Result<bool>>,
}

/// What a maintenance request expects to find, re-checked when it applies.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Expect {
    /// The record still has this sequence number (not overwritten since it was chosen).
    Seq(u64),
    /// The record still expires at this time, and that time has passed.
    Expired(u64),
}

/// Why an artifact is removed by maintenance.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum RemovalReason {
    /// Its TTL passed.
    Expired,
    /// The size budget needed room.
    Evicted,
    /// Its bytes are lost (verify --repair).
    Lost,
}

#[derive(Debug)]
pub(crate) struct Victim {
    pub key: String,
    pub expect: Expect,
    pub reason: RemovalReason,
}

/// One frame of a chunk being compacted, read (and hash-checked) by the GC thread.
#[derive(Debug)]
pub(crate) struct RelocItem {
    pub offset: u64,
    pub header: FrameHeader,
    pub stored: Vec<u8>,
    /// Key named by a record or tombstone frame.
    pub key: Option<String>,
    /// Chunk a tombstone shadows.
    pub shadows: Option<u64>,
    /// A blob that was dead when scanned: `stored` is empty (its record only needs dropping).
    pub dead_at_scan: bool,
    /// The blob record the GC thread read for this frame.
    pub seen: Option<BlobRecord>,
}

/// What relocating one chunk did.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize)]
pub struct RelocOutcome {
    /// Live blobs copied.
    pub blobs_moved: u64,
    /// Record and tombstone frames copied.
    pub frames_moved: u64,
    /// Dead blob records dropped with the chunk.
    pub dead_blobs_dropped: u64,
    /// Bytes appended to the open chunk.
    pub bytes_copied: u64,
    /// Size of the chunk file that was removed.
    pub file_bytes_removed: u64,
}

impl std::ops::AddAssign for RelocOutcome {
    fn add_assign(&mut self, o: Self) {
        self.blobs_moved += o.blobs_moved;
        self.frames_moved += o.frames_moved;
        self.dead_blobs_dropped += o.dead_blobs_dropped;
        self.bytes_copied += o.bytes_copied;
        self.file_bytes_removed += o.file_bytes_removed;
    }
}

/// The writer's answer to one relocation batch.
#[derive(Debug)]
pub(crate) struct RelocReply {
    /// `None`: refused (the chunk grew since it was scanned, or a put revived a blob that was
    /// dead at scan time); what earlier batches moved stays moved.
    pub outcome: Option<RelocOutcome>,
    /// The batch's `epoch` was current when the writer took it: no commit but this batch's own
    /// happened since the sender's records were read, so records of frames the batch did not
    /// carry are still current at `epoch_after`.
    pub seen_current: bool,
    /// `Shared::commit_epoch` once the batch is done.
    pub epoch_after: u64,
}

#[derive(Debug)]
pub(crate) enum Request {
    Put(PutRequest),
    Delete {
        key: String,
        /// Write-back queue entries committed with the delete.
        queue: Vec<OutboxSlot>,
        reply: oneshot::Sender<Result<bool>>,
    },
    /// Write pending access times now (close, gc, tests).
    FlushAccess {
        reply: oneshot::Sender<Result<()>>,
    },
    Evict {
        victims: Vec<Victim>,
        reply: oneshot::Sender<Result<Vec<(String, u64, RemovalReason)>>>,
    },
    DropDeadBlobs {
        hashes: Vec<BlobHash>,
        reply: oneshot::Sender<Result<u64>>,
    },
    Relocate {
        chunk: u64,
        /// Committed length of the chunk when it was scanned: if the chunk has grown since (it
        /// was the open chunk and puts appended to it), the relocation is refused, because the
        /// new frames are not in `items`.
        scanned_len: u64,
        items: Vec<RelocItem>,
        /// The chunk's last batch: drop the chunk record and unlink the file.
        last: bool,
        /// `Shared::commit_epoch` at which the items' `seen` blob records were the index's
        /// state (`u64::MAX`: unknown, read them again).
        epoch: u64,
        reply: oneshot::Sender<Result<RelocReply>>,
    },
    RemoveOrphans {
        reply: oneshot::Sender<Result<Vec<u64>>>,
    },
    /// Drop keys and blob records, then recount refcounts, chunk live bytes and totals.
    Repair {
        drop_keys: Vec<String>,
        drop_blobs: Vec<BlobHash>,
        drop_chunks: Vec<u64>,
        /// Keys whose record frame is lost: append a fresh copy.
        rewrite_records: Vec<String>,
        reply: oneshot::Sender<Result<(Vec<String>, u64)>>,
    },
}

impl Request {
    fn payload_bytes(&self) -> u64 {
        match self {
            Request::Put(p) => p.parts.iter().map(|x| x.raw.len() as u64).sum(),
            _ => 0,
        }
    }

    fn is_group(&self) -> bool {
        matches!(
            self,
            Request::Put(_) | Request::Delete { .. } | Request::FlushAccess { .. }
        )
    }
}

/// State of the writer thread.
pub(crate) struct Writer {
    shared: Arc<Shared>,
    /// The index's only commit handle (invariant 3, by type).
    index_writer: IndexWriter,
    chunk: Option<ChunkWriter>,
    meta: StoreMeta,
}

/// Mutations of one commit, applied on top of the committed index.
struct BatchState {
    meta: StoreMeta,
    blobs: HashMap<BlobHash, BlobRecord>,
    blob_deletes: HashSet<BlobHash>,
    chunks: HashMap<u64, ChunkRecord>,
    chunk_deletes: HashSet<u64>,
    artifacts: HashMap<String, Option<ArtifactRecord>>,
    /// Committed artifact records read ahead in one multi-get (never written back).
    artifact_reads: HashMap<String, Option<ArtifactRecord>>,
    access: Vec<(String, u64)>,
    expiry_put: Vec<(u64, String)>,
    expiry_del: Vec<(u64, String)>,
    queue_entries: Vec<(OutboxSlot, String)>,
    blobs_written: u64,
    blobs_deduped: u64,
    bytes_written: u64,
}

impl Writer {
    pub(crate) fn new(
        shared: Arc<Shared>,
        index_writer: IndexWriter,
        meta: StoreMeta,
        chunk: Option<ChunkWriter>,
    ) -> Self {
        Self {
            shared,
            index_writer,
            chunk,
            meta,
        }
    }

    fn new_state(&self) -> BatchState {
        BatchState {
            meta: self.meta,
            blobs: HashMap::new(),
            blob_deletes: HashSet::new(),
            chunks: HashMap::new(),
            chunk_deletes: HashSet::new(),
            artifacts: HashMap::new(),
            artifact_reads: HashMap::new(),
            access: Vec::new(),
            expiry_put: Vec::new(),
            expiry_del: Vec::new(),
            queue_entries: Vec::new(),
            blobs_written: 0,
            blobs_deduped: 0,
            bytes_written: 0,
        }
    }

    /// The thread body: runs until every sender is gone, then flushes access times.
    pub(crate) fn run(mut self, rx: Receiver<Request>) {
        let flush_every = self.shared.options.access_flush_interval;
        let mut last_access_flush = Instant::now();
        loop {
            let timeout = flush_every
                .saturating_sub(last_access_flush.elapsed())
                .max(Duration::from_millis(1));
            match rx.recv_timeout(timeout) {
                Ok(first) => {
                    let mut batch = vec![first];
                    let mut bytes = batch[0].payload_bytes();
                    while batch.len() < self.shared.options.max_batch_requests
                        && bytes < self.shared.options.max_batch_bytes
                    {
                        match rx.try_recv() {
                            Ok(r) => {
                                bytes += r.payload_bytes();
                                batch.push(r);
                            }
                            Err(_) => break,
                        }
                    }
                    let (group, maintenance): (Vec<Request>, Vec<Request>) =
                        batch.into_iter().partition(Request::is_group);
                    if !group.is_empty() {
                        self.run_group(group);
                    }
                    if !maintenance.is_empty() {
                        for req in maintenance {
                            self.run_maintenance(req);
                        }
                        // GC removed chunk files: the reserve may fit again (or a full disk
                        // may need it released).
                        self.adjust_reserve();
                    }
                }
                Err(RecvTimeoutError::Timeout) => {}
                Err(RecvTimeoutError::Disconnected) => break,
            }
            if last_access_flush.elapsed() >= flush_every {
                if let Err(e) = self.flush_access() {
                    tracing::warn!(error = %e, "writing access times failed");
                }
                last_access_flush = Instant::now();
            }
        }
        if let Err(e) = self.flush_access() {
            tracing::warn!(error = %e, "writing access times at close failed");
        }
        tracing::debug!("writer thread stopped");
    }

    /// Refuses, before anything is written, the puts that would leave less than
    /// `min_free_space` free on the store's filesystem; the rest of the group goes on
    /// (deletes in it are what frees space). Counted against one `statvfs` per group, with
    /// each put's bytes as if none were deduplicated.
    fn refuse_puts_over_space(&self, batch: Vec<Request>) -> Vec<Request> {
        if !batch.iter().any(|r| matches!(r, Request::Put(_))) {
            return batch;
        }
        let space = match fs_space(&self.shared.chunk_dir) {
            Ok(space) => space,
            Err(e) => {
                // Measuring failed; the write itself still meets a full disk as NoSpace.
                tracing::warn!(error = %e, "free space unknown; puts not checked against min_free_space");
                return batch;
            }
        };
        let min_free = effective_min_free(self.shared.options.min_free_space, space);
        let mut room = space.free_bytes.saturating_sub(min_free);
        let mut kept = Vec::with_capacity(batch.len());
        for req in batch {
            let Request::Put(p) = req else {
                kept.push(req);
                continue;
            };
            let need = p
                .parts
                .iter()
                .map(|x| (x.raw.len() + FRAME_HEADER_LEN) as u64)
                .sum::<u64>()
                + PUT_RECORD_ALLOWANCE;
            if need <= room {
                room -= need;
                kept.push(Request::Put(p));
            } else {
                let _ = p.reply.send(Err(Error::NoSpace {
                    detail: format!(
                        "put of {:?} needs up to {need} bytes; {} bytes are free on the store's filesystem and min_free_space keeps {min_free}",
                        p.key, space.free_bytes
                    ),
                }));
            }
        }
        kept
    }

    /// Releases or restores the reserve file after space changed (see `space`).
    fn adjust_reserve(&self) {
        if let Err(e) = self
            .shared
            .reserve
            .adjust(self.shared.options.min_free_space)
        {
            tracing::warn!(error = %e, "reserve file not adjusted");
        }
    }

    #[tracing::instrument(level = "debug", skip_all, fields(requests = batch.len()))]
    fn run_group(&mut self, batch: Vec<Request>) {
        let batch = self.refuse_puts_over_space(batch);
        let mut st = self.new_state();
        let mut put_replies = Vec::new();
        let mut delete_replies = Vec::new();
        let mut flush_replies = Vec::new();
        let mut outcome: Result<()> = Ok(());
        for req in batch {
            match req {
                Request::Put(p) => {
                    let mut written = false;
                    if outcome.is_ok() {
                        match self.apply_put(&mut st, &p) {
                            Ok(w) => written = w,
                            Err(e) => outcome = Err(e),
                        }
                    }
                    put_replies.push((p.reply, written));
                }
                Request::Delete { key, queue, reply } => {
                    let mut existed = false;
                    if outcome.is_ok() {
                        match self.remove_artifact(&mut st, &key, None) {
                            Ok(removed) => existed = removed.is_some(),
                            Err(e) => outcome = Err(e),
                        }
                        // Queued even when nothing was here locally: a remote tier may hold
                        // the key (evicted here, or put by another machine).
                        for slot in queue {
                            st.queue_entries.push((slot, key.clone()));
                        }
                    }
                    delete_replies.push((reply, existed));
                }
                Request::FlushAccess { reply } => flush_replies.push(reply),
                other => unreachable!("maintenance request {other:?} in a group"),
            }
        }
        if outcome.is_ok() {
            outcome = self.commit(st);
        }
        match &outcome {
            Ok(()) => {
                for (r, written) in put_replies {
                    if written {
                        self.shared.counters.puts.add(1);
                    }
                    let _ = r.send(Ok(written));
                }
                for (r, existed) in delete_replies {
                    if existed {
                        self.shared.counters.deletes.add(1);
                    }
                    let _ = r.send(Ok(existed));
                }
            }
            Err(e) => {
                tracing::error!(error = %e, "group commit failed; recovering writer state");
                if e.is_no_space() {
                    // Another program filled the disk: give deletes and gc room.
                    self.adjust_reserve();
                }
                self.shared.counters.write_errors.add(1);
                for (r, _) in put_replies {
                    let _ = r.send(Err(e.duplicate()));
                }
                for (r, _) in delete_replies {
                    let _ = r.send(Err(e.duplicate()));
                }
                self.recover_after_error();
            }
        }
        if !flush_replies.is_empty() {
            let res = self.flush_access();
            for r in flush_replies {
                let _ = r.send(res.as_ref().map(|_| ()).map_err(Error::duplicate));
            }
        }
    }

    /// Runs `f` on a fresh batch state and commits it; on failure the writer reloads its state.
    fn maintenance<T>(
        &mut self,
        f: impl FnOnce(&mut Self, &mut BatchState) -> Result<T>,
    ) -> Result<T> {
        let mut st = self.new_state();
        let result = f(self, &mut st).and_then(|v| {
            self.commit(st)?;
            Ok(v)
        });
        if let Err(e) = &result {
            tracing::error!(error = %e, "maintenance commit failed; recovering writer state");
            self.shared.counters.write_errors.add(1);
            self.recover_after_error();
        }
        result
    }

    fn run_maintenance(&mut self, req: Request) {
        match req {
            Request::Evict { victims, reply } => {
                let res = self.maintenance(|w, st| {
                    w.read_ahead(st, victims.iter().map(|v| v.key.as_str()))?;
                    let mut removed = Vec::new();
                    for v in &victims {
                        if let Some(size) =
                            w.remove_artifact(st, &v.key, Some((v.expect, v.reason)))?
                        {
                            match v.reason {
                                RemovalReason::Expired => st.meta.totals.expired += 1,
                                RemovalReason::Evicted => st.meta.totals.evicted += 1,
                                RemovalReason::Lost => {}
                            }
                            removed.push((v.key.clone(), size, v.reason));
                        }
                    }
                    Ok(removed)
                });
                let _ = reply.send(res);
            }
            Request::DropDeadBlobs { hashes, reply } => {
                let res = self.maintenance(|w, st| {
                    let mut dropped = 0;
                    for h in &hashes {
                        // Re-check at deletion: a put may have revived it since it was listed.
                        if let Some(rec) = w.blob_state(st, *h)?
                            && rec.refs == 0
                        {
                            st.blob_deletes.insert(*h);
                            st.meta.totals.dead_blobs = st.meta.totals.dead_blobs.saturating_sub(1);
                            dropped += 1;
                        }
                    }
                    Ok(dropped)
                });
                let _ = reply.send(res);
            }
            Request::Relocate {
                chunk,
                scanned_len,
                items,
                last,
                epoch,
                reply,
            } => {
                let seen_current = self.shared.epoch() == epoch;
                let current_len = match &self.chunk {
                    // Maintenance runs after the group commit: everything appended is committed.
                    Some(c) if c.id() == chunk => Some(c.len()),
                    _ => self
                        .shared
                        .index
                        .chunk(chunk)
                        .ok()
                        .flatten()
                        .map(|r| r.total_bytes),
                };
                if current_len != Some(scanned_len) {
                    tracing::debug!(
                        chunk,
                        ?current_len,
                        scanned_len,
                        "chunk changed since it was scanned; not compacting it now"
                    );
                    let _ = reply.send(Ok(RelocReply {
                        outcome: None,
                        seen_current,
                        epoch_after: self.shared.epoch(),
                    }));
                    return;
                }
                let res = self
                    .maintenance(|w, st| w.apply_relocate(st, chunk, &items, last, seen_current));
                let res = res.and_then(|outcome| {
                    let Some(mut outcome) = outcome else {
                        return Ok(None);
                    };
                    if !last {
                        return Ok(Some(outcome));
                    }
                    // The batch that stopped referencing the chunk is committed: now the file
                    // can go. A crash before this unlink leaves an orphan that open/gc removes.
                    let path = self
                        .shared
                        .chunk_dir
                        .join(pipecache_format::chunk_file_name(chunk));
                    outcome.file_bytes_removed =
                        std::fs::metadata(&path).map(|m| m.len()).unwrap_or(0);
                    self.shared.forget_reader(chunk);
                    std::fs::remove_file(&path)
                        .map_err(|e| Error::io(format!("remove {}", path.display()), e))?;
                    pipecache_format::sync_dir(&self.shared.chunk_dir)?;
                    Ok(Some(outcome))
                });
                let res = res.map(|outcome| RelocReply {
                    outcome,
                    seen_current,
                    epoch_after: self.shared.epoch(),
                });
                let _ = reply.send(res);
            }
            Request::RemoveOrphans { reply } => {
                let _ = reply.send(remove_orphan_chunks(&self.shared));
            }
            Request::Repair {
                drop_keys,
                drop_blobs,
                drop_chunks,
                rewrite_records,
                reply,
            } => {
                let res = self
                    .maintenance(|w, st| {
                        let mut dropped = Vec::new();
                        for key in &drop_keys {
                            if let Some(old) = w.artifact_state(st, key)? {
                                // No release: refcounts are recounted from scratch below.
                                st.meta.totals.artifacts -= 1;
                                st.meta.totals.logical_bytes -= old.logical_size;
                                if let Some(t) = old.expires_ms {
                                    st.expiry_del.push((t, key.clone()));
                                }
                                st.artifacts.insert(key.clone(), None);
                                dropped.push(key.clone());
                            }
                        }
                        for h in &drop_blobs {
                            if w.blob_state(st, *h)?.is_some() {
                                st.blob_deletes.insert(*h);
                            }
                        }
                        for id in &drop_chunks {
                            if w.chunk.as_ref().is_some_and(|c| c.id() == *id) {
                                w.chunk = None;
                            }
                            if st.meta.open_chunk == Some(*id) {
                                st.meta.open_chunk = None;
                            }
                            st.chunks.remove(id);
                            st.chunk_deletes.insert(*id);
                        }
                        let now = w.shared.options.clock.now_ms();
                        for key in &rewrite_records {
                            let Some(mut rec) = w.artifact_state(st, key)? else {
                                continue;
                            };
                            rec.frame = None;
                            let payload = RecordFrame {
                                v: RECORD_VERSION,
                                key: key.clone(),
                                record: rec.clone(),
                            }
                            .encode();
                            // Live bytes are recounted below.
                            rec.frame = Some(w.append_record(
                                st,
                                FrameKind::ArtifactRecord,
                                &payload,
                                now,
                            )?);
                            st.artifacts.insert(key.clone(), Some(rec));
                        }
                        Ok(dropped)
                    })
                    .and_then(|dropped| {
                        let fixed = self.maintenance(|w, st| w.recount(st))?;
                        Ok((dropped, fixed))
                    });
                let _ = reply.send(res);
            }
            other => unreachable!("group request {other:?} routed as maintenance"),
        }
    }

    /// Reads the records of `keys` and of their parts' blobs with two multi-gets, so that
    /// removing many artifacts in one batch costs no point lookup per part.
    fn read_ahead<'k>(
        &self,
        st: &mut BatchState,
        keys: impl Iterator<Item = &'k str>,
    ) -> Result<()> {
        let keys: Vec<&str> = keys
            .filter(|k| !st.artifacts.contains_key(*k) && !st.artifact_reads.contains_key(*k))
            .collect();
        let index = &self.shared.index;
        let mut hashes = Vec::new();
        for (key, rec) in keys.iter().zip(index.artifacts(&keys)?) {
            if let Some(rec) = &rec {
                hashes.extend(rec.parts.iter().map(|p| p.hash));
            }
            st.artifact_reads.insert((*key).to_owned(), rec);
        }
        self.load_blobs(st, hashes)
    }

    /// Loads the records of the blobs in `hashes` this batch has not touched yet, with
    /// multi-gets instead of a point lookup each.
    fn load_blobs(&self, st: &mut BatchState, mut hashes: Vec<BlobHash>) -> Result<()> {
        hashes.sort_unstable();
        hashes.dedup();
        hashes.retain(|h| !st.blobs.contains_key(h) && !st.blob_deletes.contains(h));
        for batch in hashes.chunks(4096) {
            for (h, rec) in batch.iter().zip(self.shared.index.blobs(batch)?) {
                if let Some(rec) = rec {
                    st.blobs.insert(*h, rec);
                }
            }
        }
        Ok(())
    }

    fn blob_state<'s>(
        &self,
        st: &'s mut BatchState,
        hash: BlobHash,
    ) -> Result<Option<&'s mut BlobRecord>> {
        use std::collections::hash_map::Entry;
        if st.blob_deletes.contains(&hash) {
            return Ok(None);
        }
        match st.blobs.entry(hash) {
            Entry::Occupied(e) => Ok(Some(e.into_mut())),
            Entry::Vacant(e) => match self.shared.index.blob(&hash)? {
                Some(rec) => Ok(Some(e.insert(rec))),
                None => Ok(None),
            },
        }
    }

    fn chunk_state<'s>(&self, st: &'s mut BatchState, id: u64) -> Result<&'s mut ChunkRecord> {
        use std::collections::hash_map::Entry;
        match st.chunks.entry(id) {
            Entry::Occupied(e) => Ok(e.into_mut()),
            Entry::Vacant(e) => {
                let rec = self.shared.index.chunk(id)?.ok_or_else(|| {
                    Error::corruption(
                        None,
                        None,
                        format!("a record points at chunk {id}, which the index does not know"),
                    )
                })?;
                Ok(e.insert(rec))
            }
        }
    }

    /// Lowers a chunk's live bytes; tolerant of a chunk already gone (repair, rebuild).
    fn dec_live(&self, st: &mut BatchState, chunk: u64, len: u64) -> Result<()> {
        if st.chunk_deletes.contains(&chunk) {
            return Ok(());
        }
        if st.chunks.contains_key(&chunk) || self.shared.index.chunk(chunk)?.is_some() {
            let c = self.chunk_state(st, chunk)?;
            c.live_bytes = c.live_bytes.saturating_sub(len);
        }
        Ok(())
    }

    fn artifact_state(&self, st: &BatchState, key: &str) -> Result<Option<ArtifactRecord>> {
        if let Some(rec) = st.artifacts.get(key).or_else(|| st.artifact_reads.get(key)) {
            return Ok(rec.clone());
        }
        self.shared.index.artifact(key).map_err(Error::from)
    }

    /// Takes a reference on `part`'s blob, writing its bytes when the store lacks them.
    fn acquire(&mut self, st: &mut BatchState, part: &PreparedPart) -> Result<()> {
        let now = self.shared.options.clock.now_ms();
        if let Some(rec) = self.blob_state(st, part.hash)? {
            rec.refs += 1;
            let rec = *rec;
            st.blobs_deduped += 1;
            if rec.refs == 1 {
                // A dead blob (zero refs, bytes still in its chunk) comes back to life.
                let frame = rec.frame_len();
                self.chunk_state(st, rec.chunk)?.live_bytes += frame;
                let t = &mut st.meta.totals;
                t.dead_blobs = t.dead_blobs.saturating_sub(1);
                t.blobs += 1;
                t.unique_bytes += rec.raw_len;
                t.stored_bytes += rec.stored_len;
            }
            return Ok(());
        }
        let encoded;
        let (codec, stored) = match &part.encoded {
            Some((codec, stored)) => (*codec, stored.as_deref()),
            None => {
                // The blob vanished between the caller's check and now (collected by GC): the
                // put carries its raw bytes, so encode and write it again.
                encoded = self.shared.options.compression.encode(&part.raw)?;
                (encoded.0, encoded.1.as_deref())
            }
        };
        let stored = stored.unwrap_or(&part.raw);
        let header = FrameHeader::blob(part.hash, codec, part.raw.len() as u64, stored);
        let at = self.append(st, &header, stored, now)?;
        let rec = BlobRecord {
            v: RECORD_VERSION,
            chunk: at.chunk,
            offset: at.offset,
            stored_len: stored.len() as u64,
            raw_len: part.raw.len() as u64,
            codec: codec as u8,
            refs: 1,
        };
        st.blobs.insert(part.hash, rec);
        self.chunk_state(st, at.chunk)?.live_bytes += at.len;
        let t = &mut st.meta.totals;
        t.blobs += 1;
        t.unique_bytes += rec.raw_len;
        t.stored_bytes += rec.stored_len;
        st.blobs_written += 1;
        Ok(())
    }

    /// Appends one frame to the open chunk (rolling over when full) and says where it went.
    fn append(
        &mut self,
        st: &mut BatchState,
        header: &FrameHeader,
        stored: &[u8],
        now: u64,
    ) -> Result<FrameRef> {
        let len = FRAME_HEADER_LEN as u64 + stored.len() as u64;
        self.ensure_room(st, len, now)?;
        let chunk = self.chunk.as_mut().expect("ensure_room opens a chunk");
        let offset = chunk.append(header, stored)?;
        st.bytes_written += len;
        Ok(FrameRef {
            chunk: chunk.id(),
            offset,
            len,
        })
    }

    /// Appends a CBOR record or tombstone frame.
    fn append_record(
        &mut self,
        st: &mut BatchState,
        kind: FrameKind,
        payload: &[u8],
        now: u64,
    ) -> Result<FrameRef> {
        let header = FrameHeader::raw(kind, payload);
        self.append(st, &header, payload, now)
    }

    /// Makes sure the open chunk can take `frame_len` more bytes, sealing it and starting a new
    /// chunk file when it cannot (a frame larger than a whole chunk gets a chunk of its own).
    fn ensure_room(&mut self, st: &mut BatchState, frame_len: u64, now: u64) -> Result<()> {
        let limit = self.shared.options.chunk_size;
        if let Some(chunk) = &self.chunk
            && (chunk.is_empty() || chunk.len() + frame_len <= limit)
        {
            return Ok(());
        }
        self.seal_open(st)?;
        let id = st.meta.next_chunk_id;
        let writer = ChunkWriter::create(&self.shared.chunk_dir, id, now)?;
        st.meta.next_chunk_id += 1;
        st.meta.open_chunk = Some(id);
        st.chunks.insert(
            id,
            ChunkRecord {
                v: RECORD_VERSION,
                total_bytes: writer.len(),
                live_bytes: 0,
                sealed: false,
                created_ms: now,
            },
        );
        tracing::debug!(chunk = id, "opened new chunk file");
        self.chunk = Some(writer);
        Ok(())
    }

    /// Seals the open chunk: makes its bytes durable before any batch can reference a later one.
    fn seal_open(&mut self, st: &mut BatchState) -> Result<()> {
        if let Some(mut chunk) = self.chunk.take() {
            let id = chunk.id();
            let len = match chunk.sync() {
                Ok(len) => len,
                Err(e) => {
                    self.chunk = Some(chunk);
                    return Err(e.into());
                }
            };
            let rec = self.chunk_state(st, id)?;
            rec.total_bytes = len;
            rec.sealed = true;
            st.meta.open_chunk = None;
        }
        Ok(())
    }

    /// Drops one reference to `hash`; at zero the blob is dead (its record stays, with
    /// `refs = 0`, until GC drops it; its bytes until compaction).
    fn release(&mut self, st: &mut BatchState, hash: BlobHash) -> Result<()> {
        let Some(rec) = self.blob_state(st, hash)? else {
            return Err(Error::corruption(
                None,
                Some(hash),
                "released a blob the index does not have",
            ));
        };
        if rec.refs == 0 {
            return Err(Error::corruption(None, Some(hash), "refcount underflow"));
        }
        rec.refs -= 1;
        let rec = *rec;
        if rec.refs == 0 {
            self.dec_live(st, rec.chunk, rec.frame_len())?;
            let t = &mut st.meta.totals;
            t.blobs -= 1;
            t.unique_bytes -= rec.raw_len;
            t.stored_bytes -= rec.stored_len;
            t.dead_blobs += 1;
        }
        Ok(())
    }

    fn release_record(
        &mut self,
        st: &mut BatchState,
        key: &str,
        old: &ArtifactRecord,
    ) -> Result<()> {
        for part in &old.parts {
            self.release(st, part.hash)?;
        }
        if let Some(f) = old.frame {
            self.dec_live(st, f.chunk, f.len)?;
        }
        st.meta.totals.artifacts -= 1;
        st.meta.totals.logical_bytes -= old.logical_size;
        if let Some(t) = old.expires_ms {
            st.expiry_del.push((t, key.to_owned()));
        }
        Ok(())
    }

    /// Applies one put; `Ok(false)` when `if_absent` finds a live artifact and writes nothing.
    fn apply_put(&mut self, st: &mut BatchState, p: &PutRequest) -> Result<bool> {
        let now = self.shared.options.clock.now_ms();
        if p.if_absent
            && self
                .artifact_state(st, &p.key)?
                .is_some_and(|old| !old.is_expired(now))
        {
            return Ok(false);
        }
        // New references first, then release the old record's: a part kept across an
        // overwrite never touches zero.
        for part in &p.parts {
            self.acquire(st, part)?;
        }
        if let Some(old) = self.artifact_state(st, &p.key)? {
            self.release_record(st, &p.key, &old)?;
        }
        let seq = st.meta.next_seq;
        st.meta.next_seq += 1;
        let mut rec = ArtifactRecord {
            v: RECORD_VERSION,
            kind: p.kind.clone(),
            parts: p
                .parts
                .iter()
                .map(|x| PartRef {
                    name: x.name.clone(),
                    hash: x.hash,
                    len: x.raw.len() as u64,
                })
                .collect(),
            logical_size: p.parts.iter().map(|x| x.raw.len() as u64).sum(),
            created_ms: now,
            expires_ms: p.expires_ms,
            meta: p.meta.clone(),
            seq,
            frame: None,
        };
        // The record goes into the chunk too, so rebuild-index can restore it without RocksDB.
        let payload = RecordFrame {
            v: RECORD_VERSION,
            key: p.key.clone(),
            record: rec.clone(),
        }
        .encode();
        let at = self.append_record(st, FrameKind::ArtifactRecord, &payload, now)?;
        self.chunk_state(st, at.chunk)?.live_bytes += at.len;
        rec.frame = Some(at);
        st.meta.totals.artifacts += 1;
        st.meta.totals.logical_bytes += rec.logical_size;
        if let Some(t) = rec.expires_ms {
            st.expiry_put.push((t, p.key.clone()));
        }
        st.access.push((p.key.clone(), now));
        st.artifacts.insert(p.key.clone(), Some(rec));
        for slot in &p.queue {
            st.queue_entries.push((slot.clone(), p.key.clone()));
        }
        Ok(true)
    }

    /// Deletes `key` (user delete, expiry or eviction). With `expect`, the record must still be
    /// the one the caller planned on. Returns the removed artifact's logical size.
    fn remove_artifact(
        &mut self,
        st: &mut BatchState,
        key: &str,
        expect: Option<(Expect, RemovalReason)>,
    ) -> Result<Option<u64>> {
        let now = self.shared.options.clock.now_ms();
        let Some(old) = self.artifact_state(st, key)? else {
            return Ok(None);
        };
        match expect {
            Some((Expect::Seq(seq), _)) if old.seq != seq => return Ok(None),
            Some((Expect::Expired(t), _)) if old.expires_ms != Some(t) || !old.is_expired(now) => {
                return Ok(None);
            }
            _ => {}
        }
        self.release_record(st, key, &old)?;
        let seq = st.meta.next_seq;
        st.meta.next_seq += 1;
        let payload = TombstoneFrame {
            v: RECORD_VERSION,
            key: key.to_owned(),
            seq,
            shadows: old.frame.map(|f| f.chunk),
        }
        .encode();
        // Tombstones are never live bytes: compaction keeps them only while they shadow something.
        self.append_record(st, FrameKind::Tombstone, &payload, now)?;
        st.artifacts.insert(key.to_owned(), None);
        Ok(Some(old.logical_size))
    }

    /// Copies the still-needed frames of chunk `old` into the open chunk and forgets `old`.
    fn apply_relocate(
        &mut self,
        st: &mut BatchState,
        old: u64,
        items: &[RelocItem],
        last: bool,
        seen_current: bool,
    ) -> Result<Option<RelocOutcome>> {
        // Nothing committed since the GC thread read these records: they are the index's
        // current state, so use them instead of reading them again.
        if seen_current {
            for item in items {
                if let Some(rec) = item.seen {
                    st.blobs.entry(item.header.hash).or_insert(rec);
                }
            }
        }
        let blobs = items
            .iter()
            .filter(|i| i.header.kind == FrameKind::Blob)
            .map(|i| i.header.hash)
            .collect();
        self.load_blobs(st, blobs)?;
        // A blob dead at scan time (its bytes not carried) that a put revived since: the
        // chunk must wait for the next pass. Checked before any mutation of this batch.
        let revived = items.iter().any(|i| {
            i.dead_at_scan
                && st
                    .blobs
                    .get(&i.header.hash)
                    .is_some_and(|r| r.refs > 0 && r.chunk == old && r.offset == i.offset)
        });
        if revived {
            return Ok(None);
        }
        let now = self.shared.options.clock.now_ms();
        if self.chunk.as_ref().is_some_and(|c| c.id() == old) {
            self.seal_open(st)?;
        }
        if self.chunk_state(st, old).is_err() {
            return Err(Error::NotFound {
                what: format!("chunk {old}"),
            });
        }
        let mut out = RelocOutcome::default();
        for item in items {
            match item.header.kind {
                FrameKind::Blob => {
                    let hash = item.header.hash;
                    let Some(rec) = self.blob_state(st, hash)?.copied() else {
                        continue;
                    };
                    if rec.chunk != old || rec.offset != item.offset {
                        continue; // a stale copy; the index uses another
                    }
                    if rec.refs == 0 {
                        st.blob_deletes.insert(hash);
                        st.meta.totals.dead_blobs = st.meta.totals.dead_blobs.saturating_sub(1);
                        out.dead_blobs_dropped += 1;
                        continue;
                    }
                    let at = self.append(st, &item.header, &item.stored, now)?;
                    let r = self.blob_state(st, hash)?.expect("present above");
                    r.chunk = at.chunk;
                    r.offset = at.offset;
                    self.chunk_state(st, at.chunk)?.live_bytes += at.len;
                    // A batch before the last leaves the old chunk in place: its live bytes
                    // must drop too, or a refused or interrupted relocation counts them twice.
                    self.dec_live(st, old, at.len)?;
                    out.blobs_moved += 1;
                    out.bytes_copied += at.len;
                }
                FrameKind::ArtifactRecord => {
                    let Some(key) = &item.key else { continue };
                    let Some(mut rec) = self.artifact_state(st, key)? else {
                        continue;
                    };
                    if rec
                        .frame
                        .is_none_or(|f| f.chunk != old || f.offset != item.offset)
                    {
                        continue;
                    }
                    let at = self.append(st, &item.header, &item.stored, now)?;
                    self.chunk_state(st, at.chunk)?.live_bytes += at.len;
                    self.dec_live(st, old, at.len)?;
                    rec.frame = Some(at);
                    st.artifacts.insert(key.clone(), Some(rec));
                    out.frames_moved += 1;
                    out.bytes_copied += at.len;
                }
                FrameKind::Tombstone => {
                    let needed = match item.shadows {
                        Some(c) if c != old && !st.chunk_deletes.contains(&c) => {
                            st.chunks.contains_key(&c) || self.shared.index.chunk(c)?.is_some()
                        }
                        _ => false,
                    };
                    if needed {
                        let at = self.append(st, &item.header, &item.stored, now)?;
                        out.frames_moved += 1;
                        out.bytes_copied += at.len;
                    }
                }
            }
        }
        if last {
            st.chunks.remove(&old);
            st.chunk_deletes.insert(old);
        }
        Ok(Some(out))
    }

    /// Recomputes refcounts, chunk live bytes and totals from the artifact records (repair).
    fn recount(&mut self, st: &mut BatchState) -> Result<u64> {
        let index = &self.shared.index;
        let RecordCounts {
            refs,
            mut live,
            artifacts,
            logical,
        } = record_counts(index)?;
        let mut fixed = 0;
        let (mut blobs, mut unique, mut stored, mut dead) = (0u64, 0u64, 0u64, 0u64);
        let mut updates = Vec::new();
        for item in index.scan_blobs() {
            let (hash, mut rec) = item?;
            let actual = refs.get(&hash).copied().unwrap_or(0);
            if actual != rec.refs {
                rec.refs = actual;
                updates.push((hash, rec));
                fixed += 1;
            }
            if actual > 0 {
                blobs += 1;
                unique += rec.raw_len;
                stored += rec.stored_len;
                *live.entry(rec.chunk).or_default() += rec.frame_len();
            } else {
                dead += 1;
            }
        }
        for (hash, rec) in updates {
            st.blobs.insert(hash, rec);
        }
        for (id, mut rec) in index.chunks()? {
            let l = live.get(&id).copied().unwrap_or(0);
            if rec.live_bytes != l {
                rec.live_bytes = l;
                st.chunks.insert(id, rec);
            }
        }
        let t = &mut st.meta.totals;
        t.artifacts = artifacts;
        t.logical_bytes = logical;
        t.blobs = blobs;
        t.unique_bytes = unique;
        t.stored_bytes = stored;
        t.dead_blobs = dead;
        Ok(fixed)
    }

    fn commit(&mut self, mut st: BatchState) -> Result<()> {
        let sync = self.shared.options.durability == Durability::Fsync;
        if let Some(chunk) = &mut self.chunk {
            let len = if sync { chunk.sync()? } else { chunk.flush()? };
            let id = chunk.id();
            self.chunk_state(&mut st, id)?.total_bytes = len;
        }
        let mut b = self.index_writer.batch();
        for (hash, rec) in &st.blobs {
            if !st.blob_deletes.contains(hash) {
                b.put_blob(hash, rec);
            }
        }
        for hash in &st.blob_deletes {
            b.delete_blob(hash);
        }
        for (id, rec) in &st.chunks {
            if !st.chunk_deletes.contains(id) {
                b.put_chunk(*id, rec);
            }
        }
        for id in &st.chunk_deletes {
            b.delete_chunk(*id);
        }
        // Deletions before insertions: an expiry entry deleted and re-added by two puts of the
        // same key in one batch must survive.
        for (t, key) in &st.expiry_del {
            b.delete_expiry(*t, key);
        }
        for (key, rec) in &st.artifacts {
            match rec {
                Some(rec) => b.put_artifact(key, rec),
                None => {
                    b.delete_artifact(key);
                    b.delete_access(key);
                }
            }
        }
        for (t, key) in &st.expiry_put {
            if matches!(st.artifacts.get(key), Some(Some(rec)) if rec.expires_ms == Some(*t)) {
                b.put_expiry(*t, key);
            }
        }
        for (key, now) in &st.access {
            if matches!(st.artifacts.get(key), Some(Some(_))) {
                b.put_access(
                    key,
                    &AccessRecord {
                        v: RECORD_VERSION,
                        last_ms: *now,
                    },
                );
            }
        }
        for (slot, key) in &st.queue_entries {
            b.put_queue_entry(&slot.queue, slot.seq, key, slot.op);
        }
        b.put_meta(&st.meta);
        self.index_writer.commit(b, sync)?;
        self.meta = st.meta;
        self.shared.bump_epoch();
        let c = &self.shared.counters;
        c.commits.add(1);
        c.blobs_written.add(st.blobs_written);
        c.blobs_deduped.add(st.blobs_deduped);
        c.bytes_written.add(st.bytes_written);
        self.shared.after_commit(&self.meta);
        Ok(())
    }

    /// Writes access times collected by reads, in one unsynced batch: losing the last few
    /// seconds of access times in a crash only makes LRU slightly less exact.
    fn flush_access(&mut self) -> Result<()> {
        let pending = std::mem::take(&mut *self.shared.access.lock().expect("access map poisoned"));
        if pending.is_empty() {
            return Ok(());
        }
        let index = &self.shared.index;
        let mut b = self.index_writer.batch();
        for (key, t) in &pending {
            // A key deleted since it was read must not get an orphan access entry.
            if index.artifact(key)?.is_some() {
                b.put_access(
                    key,
                    &AccessRecord {
                        v: RECORD_VERSION,
                        last_ms: *t,
                    },
                );
            }
        }
        self.index_writer.commit(b, false)?;
        Ok(())
    }

    /// After a failed commit: forget in-memory state and reload it from the index, dropping any
    /// chunk bytes or files the failed batch left behind.
    fn recover_after_error(&mut self) {
        self.chunk = None;
        match recover_chunks(&self.shared, &self.index_writer) {
            Ok((meta, chunk)) => {
                self.meta = meta;
                self.chunk = chunk;
            }
            Err(e) => tracing::error!(error = %e, "writer recovery failed; later writes will fail"),
        }
    }
}
