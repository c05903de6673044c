//! Applying one request to a batch: a put, the removal of an artifact, the relocation of a
//! compacted chunk's frames, and the recount `repair` ends with. Each re-checks what it was
//! planned on (record sequence number, refcount, location) before it changes anything.

use pipecache_format::FrameKind;
use pipecache_format::record::{
    ArtifactRecord, FrameRef, PartRef, RECORD_VERSION, Record, RecordFrame, TombstoneFrame,
};

use super::request::{Expect, PutRequest, RelocItem, RelocOutcome, RemovalReason};
use super::state::{BatchState, Writer};
use crate::accounting::{RecordCounts, record_counts};
use crate::{Error, Result};

impl Writer {
    /// Applies one put; `Ok(false)` when `if_absent` finds a live artifact and writes nothing.
    pub(super) fn apply_put(&mut self, st: &mut BatchState, p: &PutRequest) -> Result<bool> {
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
        let mut parts = Vec::with_capacity(p.parts.len());
        for x in &p.parts {
            // Each part's blob was just acquired, so its record is in this batch's state.
            let at = self.blob_state(st, x.hash)?.map(|b| FrameRef {
                chunk: b.chunk,
                offset: b.offset,
                len: b.frame_len(),
            });
            parts.push(PartRef {
                name: x.name.clone(),
                hash: x.hash,
                len: x.raw.len() as u64,
                at,
            });
        }
        let mut rec = ArtifactRecord {
            v: RECORD_VERSION,
            kind: p.kind.clone(),
            parts,
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
    pub(super) fn remove_artifact(
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
    pub(super) fn apply_relocate(
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
    pub(super) fn recount(&mut self, st: &mut BatchState) -> Result<u64> {
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
}
