//! The writer's state: the open chunk and store meta it owns, one batch's pending
//! mutations ([`BatchState`]) on top of the committed index, and the steps every request
//! is made of (reading a record into the batch, appending a frame, taking or releasing a
//! blob reference).

use std::collections::HashMap;
use std::sync::Arc;

use pipecache_format::record::{
    ArtifactRecord, BlobRecord, ChunkRecord, FrameRef, RECORD_VERSION, StoreMeta,
};
use pipecache_format::{BlobHash, ChunkWriter, FRAME_HEADER_LEN, FrameHeader, FrameKind};
use pipecache_index::IndexWriter;
use rustc_hash::{FxHashMap, FxHashSet};

use super::request::PreparedPart;
use crate::direct::DirectFrame;
use crate::outbox::OutboxSlot;
use crate::state::Shared;
use crate::{Error, Result};

/// State of the writer thread.
pub(crate) struct Writer {
    /// The index's only commit handle (invariant 3, by type). Declared before `shared`, so
    /// it is dropped first: when this holds the last `Arc<Shared>`, RocksDB must be closed
    /// before `Shared` releases the store's lock, or a process reopening the store at once
    /// takes the lock and finds RocksDB's own still held (a flaky "lock hold by current
    /// process" in `remote_manager_drop`).
    pub(super) index_writer: IndexWriter,
    pub(super) shared: Arc<Shared>,
    pub(super) chunk: Option<ChunkWriter>,
    pub(super) meta: StoreMeta,
}

/// Mutations of one commit, applied on top of the committed index.
pub(super) struct BatchState {
    pub(super) meta: StoreMeta,
    // FxHash: a GC commit touches up to hundreds of thousands of blobs, and SipHash on
    // their (already uniform) hashes was a measurable share of a pass.
    pub(super) blobs: FxHashMap<BlobHash, BlobRecord>,
    pub(super) blob_deletes: FxHashSet<BlobHash>,
    pub(super) chunks: FxHashMap<u64, ChunkRecord>,
    pub(super) chunk_deletes: FxHashSet<u64>,
    pub(super) artifacts: HashMap<String, Option<ArtifactRecord>>,
    /// Committed artifact records read ahead in one multi-get (never written back).
    pub(super) artifact_reads: HashMap<String, Option<ArtifactRecord>>,
    pub(super) access: Vec<(String, u64)>,
    pub(super) expiry_put: Vec<(u64, String)>,
    pub(super) expiry_del: Vec<(u64, String)>,
    pub(super) queue_entries: Vec<(OutboxSlot, String)>,
    pub(super) blobs_written: u64,
    pub(super) blobs_deduped: u64,
    /// Raw bytes of the parts that referenced an existing blob.
    pub(super) bytes_deduped: u64,
    pub(super) bytes_written: u64,
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
    pub(super) fn new_state(&self) -> BatchState {
        BatchState {
            meta: self.meta,
            blobs: FxHashMap::default(),
            blob_deletes: FxHashSet::default(),
            chunks: FxHashMap::default(),
            chunk_deletes: FxHashSet::default(),
            artifacts: HashMap::new(),
            artifact_reads: HashMap::new(),
            access: Vec::new(),
            expiry_put: Vec::new(),
            expiry_del: Vec::new(),
            queue_entries: Vec::new(),
            blobs_written: 0,
            blobs_deduped: 0,
            bytes_deduped: 0,
            bytes_written: 0,
        }
    }
    /// Reads the records of `keys` and of their parts' blobs with two multi-gets, so that
    /// removing many artifacts in one batch costs no point lookup per part.
    pub(super) fn read_ahead<'k>(
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
    pub(super) fn load_blobs(&self, st: &mut BatchState, mut hashes: Vec<BlobHash>) -> Result<()> {
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
    pub(super) fn blob_state<'s>(
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
    pub(super) fn chunk_state<'s>(
        &self,
        st: &'s mut BatchState,
        id: u64,
    ) -> Result<&'s mut ChunkRecord> {
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
    pub(super) fn dec_live(&self, st: &mut BatchState, chunk: u64, len: u64) -> Result<()> {
        if st.chunk_deletes.contains(&chunk) {
            return Ok(());
        }
        if st.chunks.contains_key(&chunk) || self.shared.index.chunk(chunk)?.is_some() {
            let c = self.chunk_state(st, chunk)?;
            c.live_bytes = c.live_bytes.saturating_sub(len);
        }
        Ok(())
    }
    pub(super) fn artifact_state(
        &self,
        st: &BatchState,
        key: &str,
    ) -> Result<Option<ArtifactRecord>> {
        if let Some(rec) = st.artifacts.get(key).or_else(|| st.artifact_reads.get(key)) {
            return Ok(rec.clone());
        }
        self.shared.index.artifact(key).map_err(Error::from)
    }
    /// Takes a reference on `part`'s blob, writing its bytes when the store lacks them.
    pub(super) fn acquire(&mut self, st: &mut BatchState, part: &PreparedPart) -> Result<()> {
        let now = self.shared.options.clock.now_ms();
        if let Some(rec) = self.blob_state(st, part.hash)? {
            rec.refs += 1;
            let rec = *rec;
            st.blobs_deduped += 1;
            st.bytes_deduped += rec.raw_len;
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
        if let Some(at) = part.direct {
            return self.adopt_direct(st, part, at, now);
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
    /// Records a blob the caller already wrote into a direct chunk (see `direct`), and the
    /// chunk itself (sealed: nothing is ever appended to it) with its first blob.
    fn adopt_direct(
        &mut self,
        st: &mut BatchState,
        part: &PreparedPart,
        at: DirectFrame,
        now: u64,
    ) -> Result<()> {
        let (codec, stored) = part
            .encoded
            .as_ref()
            .expect("a direct blob was encoded by its caller");
        let stored_len = stored.as_ref().map_or(part.raw.len(), Vec::len) as u64;
        let rec = BlobRecord {
            v: RECORD_VERSION,
            chunk: at.chunk,
            offset: at.offset,
            stored_len,
            raw_len: part.raw.len() as u64,
            codec: *codec as u8,
            refs: 1,
        };
        st.blobs.insert(part.hash, rec);
        st.meta.next_chunk_id = st.meta.next_chunk_id.max(at.chunk + 1);
        let chunk = st.chunks.entry(at.chunk).or_insert(ChunkRecord {
            v: RECORD_VERSION,
            total_bytes: at.chunk_len,
            live_bytes: 0,
            sealed: true,
            created_ms: now,
        });
        chunk.live_bytes += rec.frame_len();
        let t = &mut st.meta.totals;
        t.blobs += 1;
        t.unique_bytes += rec.raw_len;
        t.stored_bytes += rec.stored_len;
        st.blobs_written += 1;
        st.bytes_written += rec.frame_len();
        Ok(())
    }
    /// Appends one frame to the open chunk (rolling over when full) and says where it went.
    pub(super) fn append(
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
    pub(super) fn append_record(
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
    pub(super) fn ensure_room(
        &mut self,
        st: &mut BatchState,
        frame_len: u64,
        now: u64,
    ) -> Result<()> {
        let limit = self.shared.options.chunk_size;
        if let Some(chunk) = &self.chunk
            && (chunk.is_empty() || chunk.len() + frame_len <= limit)
        {
            return Ok(());
        }
        self.seal_open(st)?;
        let id = self.shared.take_chunk_id();
        let writer = ChunkWriter::create(&self.shared.chunk_dir, id, now)?;
        st.meta.next_chunk_id = st.meta.next_chunk_id.max(id + 1);
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
    pub(super) fn seal_open(&mut self, st: &mut BatchState) -> Result<()> {
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
    pub(super) fn release(&mut self, st: &mut BatchState, hash: BlobHash) -> Result<()> {
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
    pub(super) fn release_record(
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
}
