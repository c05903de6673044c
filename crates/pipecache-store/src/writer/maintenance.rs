//! Maintenance requests, each applied as its own commit after the group it arrived with:
//! eviction and expiry, dropping dead blobs, relocating a compacted chunk's frames, removing
//! orphan chunk files, and repair. Each re-checks at apply time what it was planned on.

use pipecache_format::record::{RECORD_VERSION, Record, RecordFrame};
use pipecache_format::{BlobHash, FrameKind};

use super::request::{RelocItem, RelocOutcome, RelocReply, RemovalReason, Request, Victim};
use super::state::{BatchState, Writer};
use crate::recovery::remove_orphan_chunks;
use crate::{Error, Result};

/// What `repair` removes and rewrites (see `verify::plan`).
struct RepairPlan {
    drop_keys: Vec<String>,
    drop_blobs: Vec<BlobHash>,
    drop_chunks: Vec<u64>,
    rewrite_records: Vec<String>,
}

impl Writer {
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

    pub(super) fn run_maintenance(&mut self, req: Request) {
        match req {
            Request::Evict { victims, reply } => {
                let _ = reply.send(self.evict(&victims));
            }
            Request::DropDeadBlobs { hashes, reply } => {
                let _ = reply.send(self.drop_dead_blobs(&hashes));
            }
            Request::Relocate {
                chunk,
                scanned_len,
                items,
                last,
                epoch,
                reply,
            } => {
                let _ = reply.send(self.relocate(chunk, scanned_len, &items, last, epoch));
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
                let plan = RepairPlan {
                    drop_keys,
                    drop_blobs,
                    drop_chunks,
                    rewrite_records,
                };
                let _ = reply.send(self.repair(&plan));
            }
            other => unreachable!("group request {other:?} routed as maintenance"),
        }
    }

    /// Removes expired or evicted artifacts whose records still are what GC planned on.
    fn evict(&mut self, victims: &[Victim]) -> Result<Vec<(String, u64, RemovalReason)>> {
        let removed = self.maintenance(|w, st| {
            w.read_ahead(st, victims.iter().map(|v| v.key.as_str()))?;
            let mut removed = Vec::new();
            for v in victims {
                if let Some(size) = w.remove_artifact(st, &v.key, Some((v.expect, v.reason)))? {
                    match v.reason {
                        RemovalReason::Expired => st.meta.totals.expired += 1,
                        RemovalReason::Evicted => st.meta.totals.evicted += 1,
                        RemovalReason::Lost => {}
                    }
                    removed.push((v.key.clone(), size, v.reason));
                }
            }
            Ok(removed)
        })?;
        self.shared
            .notify_removed(removed.iter().map(|(k, _, _)| k.as_str()));
        Ok(removed)
    }

    /// Drops the blob records of `hashes` that still have no reference.
    fn drop_dead_blobs(&mut self, hashes: &[BlobHash]) -> Result<u64> {
        self.maintenance(|w, st| {
            let mut dropped = 0;
            for h in hashes {
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
        })
    }

    /// Moves one batch of a compacted chunk's live frames to the open chunk, if the chunk
    /// is still as long as when it was scanned; after its last batch, unlinks the file.
    fn relocate(
        &mut self,
        chunk: u64,
        scanned_len: u64,
        items: &[RelocItem],
        last: bool,
        epoch: u64,
    ) -> Result<RelocReply> {
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
            return Ok(RelocReply {
                outcome: None,
                seen_current,
                epoch_after: self.shared.epoch(),
            });
        }
        let outcome =
            self.maintenance(|w, st| w.apply_relocate(st, chunk, items, last, seen_current))?;
        let outcome = match outcome {
            Some(outcome) if last => Some(self.unlink_relocated(chunk, outcome)?),
            other => other,
        };
        Ok(RelocReply {
            outcome,
            seen_current,
            epoch_after: self.shared.epoch(),
        })
    }

    /// The batch that stopped referencing `chunk` is committed: now the file can go. A crash
    /// before this unlink leaves an orphan that open/gc removes.
    fn unlink_relocated(&mut self, chunk: u64, mut outcome: RelocOutcome) -> Result<RelocOutcome> {
        let path = self
            .shared
            .chunk_dir
            .join(pipecache_format::chunk_file_name(chunk));
        outcome.file_bytes_removed = std::fs::metadata(&path).map(|m| m.len()).unwrap_or(0);
        self.shared.forget_reader(chunk);
        std::fs::remove_file(&path)
            .map_err(|e| Error::io(format!("remove {}", path.display()), e))?;
        pipecache_format::sync_dir(&self.shared.chunk_dir)?;
        Ok(outcome)
    }

    /// Applies a repair plan in one commit, then recounts refcounts and live bytes from the
    /// artifact records in a second.
    fn repair(&mut self, plan: &RepairPlan) -> Result<(Vec<String>, u64)> {
        let dropped = self.maintenance(|w, st| w.apply_repair(st, plan))?;
        let fixed = self.maintenance(|w, st| w.recount(st))?;
        Ok((dropped, fixed))
    }

    fn apply_repair(&mut self, st: &mut BatchState, plan: &RepairPlan) -> Result<Vec<String>> {
        let mut dropped = Vec::new();
        for key in &plan.drop_keys {
            if let Some(old) = self.artifact_state(st, key)? {
                // No release: refcounts are recounted from scratch afterwards.
                st.meta.totals.artifacts -= 1;
                st.meta.totals.logical_bytes -= old.logical_size;
                if let Some(t) = old.expires_ms {
                    st.expiry_del.push((t, key.clone()));
                }
                st.artifacts.insert(key.clone(), None);
                dropped.push(key.clone());
            }
        }
        for h in &plan.drop_blobs {
            if self.blob_state(st, *h)?.is_some() {
                st.blob_deletes.insert(*h);
            }
        }
        for id in &plan.drop_chunks {
            if self.chunk.as_ref().is_some_and(|c| c.id() == *id) {
                self.chunk = None;
            }
            if st.meta.open_chunk == Some(*id) {
                st.meta.open_chunk = None;
            }
            st.chunks.remove(id);
            st.chunk_deletes.insert(*id);
        }
        let now = self.shared.options.clock.now_ms();
        for key in &plan.rewrite_records {
            let Some(mut rec) = self.artifact_state(st, key)? else {
                continue;
            };
            rec.frame = None;
            let payload = RecordFrame {
                v: RECORD_VERSION,
                key: key.clone(),
                record: rec.clone(),
            }
            .encode();
            // Live bytes are recounted afterwards.
            rec.frame = Some(self.append_record(st, FrameKind::ArtifactRecord, &payload, now)?);
            st.artifacts.insert(key.clone(), Some(rec));
        }
        Ok(dropped)
    }
}
