//! The single writer thread: every index mutation and every chunk append goes through it.
//!
//! Requests arrive on a crossbeam channel. The thread takes everything queued (up to
//! `max_batch_requests` / `max_batch_bytes`), appends the batch's new blobs to the open chunk,
//! fsyncs the chunk once, then commits one RocksDB `WriteBatch` for the whole group and answers
//! every request. One thread owning all mutations is also what makes dedup safe against GC:
//! a blob's liveness is decided and changed in one place, in order.
//!
//! Write order (the crash-safety promise, see docs/format.md):
//! 1. append frames to the open chunk (rolling to a new chunk file when full; a sealed chunk is
//!    fsynced before the new one is used);
//! 2. fsync the open chunk;
//! 3. commit one WriteBatch: blob records and refcounts, chunk records (committed length, live
//!    bytes), artifact records, expiry and access entries, store totals.
//!
//! A crash before 3 leaves bytes past the committed length of a chunk, or a chunk file the index
//! does not know: both are unreferenced and removed at the next open.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crossbeam_channel::{Receiver, RecvTimeoutError};
use pipecache_format::record::{
    AccessRecord, ArtifactRecord, BlobRecord, ChunkRecord, PartRef, RECORD_VERSION, StoreMeta,
};
use pipecache_format::{BlobHash, ChunkWriter, Codec, FRAME_HEADER_LEN};
use tokio::sync::oneshot;

use crate::options::Durability;
use crate::store::Shared;
use crate::{Error, Result};

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
    pub reply: oneshot::Sender<Result<()>>,
}

#[derive(Debug)]
pub(crate) enum Request {
    Put(PutRequest),
    Delete {
        key: String,
        reply: oneshot::Sender<Result<bool>>,
    },
    /// Write pending access times now (close, tests).
    FlushAccess {
        reply: oneshot::Sender<Result<()>>,
    },
}

impl Request {
    fn payload_bytes(&self) -> u64 {
        match self {
            Request::Put(p) => p.parts.iter().map(|x| x.raw.len() as u64).sum(),
            _ => 0,
        }
    }
}

/// State of the writer thread.
pub(crate) struct Writer {
    shared: Arc<Shared>,
    chunk: Option<ChunkWriter>,
    meta: StoreMeta,
}

/// Mutations of one group commit, applied on top of the committed index.
struct BatchState {
    meta: StoreMeta,
    blobs: HashMap<BlobHash, BlobRecord>,
    chunks: HashMap<u64, ChunkRecord>,
    artifacts: HashMap<String, Option<ArtifactRecord>>,
    access: Vec<(String, u64)>,
    expiry_put: Vec<(u64, String)>,
    expiry_del: Vec<(u64, String)>,
    blobs_written: u64,
    blobs_deduped: u64,
    bytes_written: u64,
}

impl Writer {
    pub(crate) fn new(shared: Arc<Shared>, meta: StoreMeta, chunk: Option<ChunkWriter>) -> Self {
        Self {
            shared,
            chunk,
            meta,
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
                    self.run_batch(batch);
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
        if let Some(chunk) = &mut self.chunk {
            // Nothing uncommitted can be buffered here (every batch syncs), but be explicit.
            let _ = chunk.sync();
        }
        tracing::debug!("writer thread stopped");
    }

    #[tracing::instrument(level = "debug", skip_all, fields(requests = batch.len()))]
    fn run_batch(&mut self, batch: Vec<Request>) {
        let mut st = BatchState {
            meta: self.meta,
            blobs: HashMap::new(),
            chunks: HashMap::new(),
            artifacts: HashMap::new(),
            access: Vec::new(),
            expiry_put: Vec::new(),
            expiry_del: Vec::new(),
            blobs_written: 0,
            blobs_deduped: 0,
            bytes_written: 0,
        };
        let mut put_replies = Vec::new();
        let mut delete_replies = Vec::new();
        let mut flush_replies = Vec::new();
        let mut outcome: Result<()> = Ok(());
        for req in batch {
            match req {
                Request::Put(p) => {
                    if outcome.is_ok() {
                        outcome = self.apply_put(&mut st, &p);
                    }
                    put_replies.push(p.reply);
                }
                Request::Delete { key, reply } => {
                    let existed = if outcome.is_ok() {
                        match self.apply_delete(&mut st, &key) {
                            Ok(existed) => existed,
                            Err(e) => {
                                outcome = Err(e);
                                false
                            }
                        }
                    } else {
                        false
                    };
                    delete_replies.push((reply, existed));
                }
                Request::FlushAccess { reply } => flush_replies.push(reply),
            }
        }
        if outcome.is_ok() {
            outcome = self.commit(st);
        }
        let puts = put_replies.len() as u64;
        match &outcome {
            Ok(()) => {
                self.shared.counters.puts.add(puts);
                for r in put_replies {
                    let _ = r.send(Ok(()));
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
                self.shared.counters.write_errors.add(1);
                for r in put_replies {
                    let _ = r.send(Err(e.duplicate()));
                }
                for (r, _) in delete_replies {
                    let _ = r.send(Err(e.duplicate()));
                }
                if let Err(e2) = self.recover() {
                    tracing::error!(error = %e2, "writer recovery failed; store is closing");
                }
            }
        }
        if !flush_replies.is_empty() {
            let res = self.flush_access();
            for r in flush_replies {
                let _ = r.send(res.as_ref().map(|_| ()).map_err(Error::duplicate));
            }
        }
    }

    fn blob_state<'s>(
        &self,
        st: &'s mut BatchState,
        hash: BlobHash,
    ) -> Result<Option<&'s mut BlobRecord>> {
        use std::collections::hash_map::Entry;
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
                        format!("blob points at chunk {id}, which the index does not know"),
                    )
                })?;
                Ok(e.insert(rec))
            }
        }
    }

    fn artifact_state(&self, st: &mut BatchState, key: &str) -> Result<Option<ArtifactRecord>> {
        if let Some(rec) = st.artifacts.get(key) {
            return Ok(rec.clone());
        }
        self.shared.index.artifact(key).map_err(Error::from)
    }

    /// Takes a reference on `hash`, writing its bytes when the store lacks them.
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
                t.dead_blobs -= 1;
                t.dead_bytes -= frame;
                t.blobs += 1;
                t.unique_bytes += rec.raw_len;
                t.stored_bytes += rec.stored_len;
            }
            return Ok(());
        }
        let (codec, stored) = match &part.encoded {
            Some((codec, stored)) => (*codec, stored.as_deref()),
            None => {
                // The blob vanished between the caller's check and now (or the caller skipped
                // encoding because it looked present): encode here.
                let (codec, stored) = self.shared.options.compression.encode(&part.raw)?;
                return self.write_blob(st, part, codec, stored.as_deref(), now);
            }
        };
        self.write_blob(st, part, codec, stored, now)
    }

    fn write_blob(
        &mut self,
        st: &mut BatchState,
        part: &PreparedPart,
        codec: Codec,
        stored: Option<&[u8]>,
        now: u64,
    ) -> Result<()> {
        let stored = stored.unwrap_or(&part.raw);
        let frame_len = FRAME_HEADER_LEN as u64 + stored.len() as u64;
        self.ensure_room(st, frame_len, now)?;
        let chunk = self.chunk.as_mut().expect("ensure_room opens a chunk");
        let chunk_id = chunk.id();
        let offset = chunk.append_blob(part.hash, codec, part.raw.len() as u64, stored)?;
        let rec = BlobRecord {
            v: RECORD_VERSION,
            chunk: chunk_id,
            offset,
            stored_len: stored.len() as u64,
            raw_len: part.raw.len() as u64,
            codec: codec as u8,
            refs: 1,
        };
        st.blobs.insert(part.hash, rec);
        let c = self.chunk_state(st, chunk_id)?;
        c.live_bytes += frame_len;
        let t = &mut st.meta.totals;
        t.blobs += 1;
        t.unique_bytes += rec.raw_len;
        t.stored_bytes += rec.stored_len;
        st.blobs_written += 1;
        st.bytes_written += frame_len;
        Ok(())
    }

    /// Makes sure the open chunk can take `frame_len` more bytes, sealing it and starting a new
    /// chunk file when it cannot (a frame larger than a whole chunk gets a chunk of its own).
    fn ensure_room(&mut self, st: &mut BatchState, frame_len: u64, now: u64) -> Result<()> {
        let limit = self.shared.options.chunk_size;
        if let Some(chunk) = &mut self.chunk {
            if chunk.is_empty() || chunk.len() + frame_len <= limit {
                return Ok(());
            }
            // Seal: make its bytes durable before any batch can reference the next chunk.
            let id = chunk.id();
            let len = chunk.sync()?;
            let rec = self.chunk_state(st, id)?;
            rec.total_bytes = len;
            rec.sealed = true;
            self.chunk = None;
        }
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

    /// Drops one reference to `hash`; at zero the blob is dead (its record stays, with
    /// `refs = 0`, until GC; its bytes until compaction).
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
            let frame = rec.frame_len();
            let c = self.chunk_state(st, rec.chunk)?;
            c.live_bytes = c.live_bytes.saturating_sub(frame);
            let t = &mut st.meta.totals;
            t.blobs -= 1;
            t.unique_bytes -= rec.raw_len;
            t.stored_bytes -= rec.stored_len;
            t.dead_blobs += 1;
            t.dead_bytes += frame;
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
        st.meta.totals.artifacts -= 1;
        st.meta.totals.logical_bytes -= old.logical_size;
        if let Some(t) = old.expires_ms {
            st.expiry_del.push((t, key.to_owned()));
        }
        Ok(())
    }

    fn apply_put(&mut self, st: &mut BatchState, p: &PutRequest) -> Result<()> {
        let now = self.shared.options.clock.now_ms();
        // New references first, then release the old record's: a part kept across an
        // overwrite never touches zero.
        for part in &p.parts {
            self.acquire(st, part)?;
        }
        if let Some(old) = self.artifact_state(st, &p.key)? {
            self.release_record(st, &p.key, &old)?;
        }
        let rec = ArtifactRecord {
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
        };
        st.meta.totals.artifacts += 1;
        st.meta.totals.logical_bytes += rec.logical_size;
        if let Some(t) = rec.expires_ms {
            st.expiry_put.push((t, p.key.clone()));
        }
        st.access.push((p.key.clone(), now));
        st.artifacts.insert(p.key.clone(), Some(rec));
        Ok(())
    }

    fn apply_delete(&mut self, st: &mut BatchState, key: &str) -> Result<bool> {
        let Some(old) = self.artifact_state(st, key)? else {
            return Ok(false);
        };
        self.release_record(st, key, &old)?;
        st.artifacts.insert(key.to_owned(), None);
        Ok(true)
    }

    fn commit(&mut self, mut st: BatchState) -> Result<()> {
        let sync = self.shared.options.durability == Durability::Fsync;
        if let Some(chunk) = &mut self.chunk {
            let len = if sync { chunk.sync()? } else { chunk.flush()? };
            let id = chunk.id();
            self.chunk_state(&mut st, id)?.total_bytes = len;
        }
        let index = &self.shared.index;
        let mut b = index.batch();
        for (hash, rec) in &st.blobs {
            b.put_blob(hash, rec);
        }
        for (id, rec) in &st.chunks {
            b.put_chunk(*id, rec);
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
        b.put_meta(&st.meta);
        index.commit(b, sync)?;
        self.meta = st.meta;
        let c = &self.shared.counters;
        c.commits.add(1);
        c.blobs_written.add(st.blobs_written);
        c.blobs_deduped.add(st.blobs_deduped);
        c.bytes_written.add(st.bytes_written);
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
        let mut b = index.batch();
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
        index.commit(b, false)?;
        Ok(())
    }

    /// After a failed batch: forget in-memory state and reload it from the index, dropping any
    /// chunk bytes or files the failed batch left behind.
    fn recover(&mut self) -> Result<()> {
        self.chunk = None;
        let (meta, chunk) = crate::store::recover_chunks(&self.shared)?;
        self.meta = meta;
        self.chunk = chunk;
        Ok(())
    }
}
