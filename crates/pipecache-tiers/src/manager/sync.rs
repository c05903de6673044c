//! Sync: `sync push` uploads what a pack tier lacks in resumable batches, `sync pull` copies
//! a remote tier's artifacts into the local store through the promotion layer.

use std::collections::{HashMap, VecDeque};

use pipecache_format::BlobHash;
use pipecache_format::record::ArtifactRecord;
use pipecache_format::remote::{LedgerEntry, PackLocation, RemoteRecord};
use pipecache_remote::ObjectMeta;
use pipecache_store::{ListEntry, StoreError};
use serde::{Deserialize, Serialize};

use super::shared::CacheManager;
use super::tier::{RemoteTier, bump_by};
use crate::pack::{
    BatchReport, Ledger, PackTier, PendingRecords, PreparedBatch, UploadItem, ledger_entry,
    local_identity, record_path,
};
use crate::promotion::{PromotionOutcome, promote};
use crate::{CacheBackend, Result, for_each_bounded};

/// Artifacts fetched at once by `sync pull`.
const PULL_CONCURRENCY: usize = 8;
/// Default bytes per push batch (one pack).
const DEFAULT_PUSH_BATCH: u64 = 16 << 20;
/// Local artifacts compared with their remote records per round of `sync push`.
const PUSH_WINDOW: usize = 256;

/// What `sync push` did.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct PushReport {
    /// Remote tier pushed to.
    pub tier: String,
    /// Local artifacts considered.
    pub artifacts: u64,
    /// Artifacts uploaded.
    pub pushed: u64,
    /// Artifacts the remote already had (same kind, metadata, parts and expiry).
    pub already_remote: u64,
    /// Of `already_remote`: artifacts the push ledger showed unchanged on both sides since
    /// a push verified them, so no remote record was read for them.
    #[serde(default)]
    pub unchanged_since_last_push: u64,
    /// Remote records read to compare with local ones.
    #[serde(default)]
    pub records_read: u64,
    /// Keys left to the tier's write-back queue (entries not yet applied): a push could be
    /// undone by a queued removal or repeat a queued upload. Push again once it drained.
    pub pending_upload: u64,
    /// Blobs uploaded.
    pub blobs_uploaded: u64,
    /// Blobs already remote and reused.
    pub blobs_reused: u64,
    /// Packs written.
    pub packs: u64,
    /// Bytes uploaded (packs, indexes, records).
    pub bytes_up: u64,
    /// Write requests made.
    pub put_requests: u64,
}

/// What `sync pull` did.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct PullReport {
    /// Remote tier pulled from.
    pub tier: String,
    /// Remote keys matching the prefix.
    pub candidates: u64,
    /// Artifacts copied into the local tier.
    pub pulled: u64,
    /// Artifacts the local tier already had.
    pub already_local: u64,
    /// Listed keys whose record is gone or expired.
    pub gone: u64,
    /// Keys not pulled because this machine still owes the tier an upload or delete of
    /// them (write-back queue): the tier's copy may be a value a local put replaced.
    pub pending_upload: u64,
    /// Keys whose remote bytes failed a check (not copied).
    pub corrupt: Vec<String>,
    /// Bytes downloaded.
    pub bytes_down: u64,
}

impl CacheManager {
    /// Uploads every local artifact the pack tier `tier` (default: the first) lacks, in
    /// batches of about `batch_bytes` (one pack each). Idempotent; a killed push resumes
    /// without re-uploading what arrived. `progress(done, total)` is called per artifact.
    ///
    /// A remote record is read only for keys that changed on either side since a push
    /// verified them: the push ledger in the store directory (`pack::ledger`) remembers,
    /// per key, the local artifact's identity and the record's version (size, time, entity
    /// tag) a push saw, and the listing says whether that version is still there.
    pub async fn sync_push(
        &self,
        tier: Option<&str>,
        batch_bytes: Option<u64>,
        progress: &(dyn Fn(u64, u64) + Send + Sync),
    ) -> Result<PushReport> {
        let (_, t, pack) = self.pack_tier(tier)?;
        let before = pack.store().stats().snapshot();
        let batch_bytes = batch_bytes.unwrap_or(DEFAULT_PUSH_BATCH).max(1);
        let listing = pack
            .record_listing()
            .await
            .inspect_err(|e| t.failed("push", "", e))?;
        let (dir, remote_id) = (
            self.inner.local.dir().to_owned(),
            pack.store().target().to_owned(),
        );
        let ledger = {
            let (dir, remote_id) = (dir.clone(), remote_id.clone());
            tokio::task::spawn_blocking(move || Ledger::load(&dir, &remote_id))
                .await
                .unwrap_or_else(|e| std::panic::resume_unwind(e.into_panic()))
        };
        let local = self.inner.local.list("").await?;
        let mut report = PushReport {
            tier: t.backend.name().to_owned(),
            artifacts: local.len() as u64,
            ..PushReport::default()
        };
        // Pipelined in three stages: the planner reads batch N+2's local artifacts while the
        // packer packs batch N+1 (zstd on the blocking pool) and the uploader writes batch
        // N. Each channel holds one batch, so at most five are in memory: read, queued to
        // pack, being packed, queued to upload, uploading. Packs upload one at a time and in
        // order, which keeps a killed push resumable; a batch's records are written after
        // its pack and index, while the next pack uploads.
        let (to_pack, unpacked) = tokio::sync::mpsc::channel::<Vec<UploadItem>>(1);
        let (queue, mut batches) = tokio::sync::mpsc::channel::<PreparedBatch>(1);
        // What this push verified: records found equal (planner), records written (uploader).
        let (mut verified, mut written) = (Vec::new(), Vec::new());
        let planner = self.plan_push(
            t,
            pack,
            PushInputs {
                local: &local,
                listing: &listing,
                ledger: &ledger,
            },
            batch_bytes,
            progress,
            &mut report,
            &mut verified,
            to_pack,
        );
        let packer = pack_batches(t, pack, unpacked, queue);
        let uploader = async {
            let mut uploaded = BatchReport::default();
            // The previous batch's records, written while this batch's pack uploads.
            let mut records: Option<PendingRecords> = None;
            loop {
                let next_pack = async {
                    match batches.recv().await {
                        Some(batch) => pack.upload_pack(batch).await.map(Some),
                        None => Ok(None),
                    }
                };
                let previous_records = async {
                    match records.take() {
                        Some(r) => r.write(pack, false).await.map(Some),
                        None => Ok(None),
                    }
                };
                let (next, written_now) = tokio::join!(next_pack, previous_records);
                if let Some((r, entries)) = written_now.inspect_err(|e| t.failed("push", "", e))? {
                    uploaded.records += r.records;
                    uploaded.blobs_uploaded += r.blobs_uploaded;
                    uploaded.blobs_reused += r.blobs_reused;
                    uploaded.packs += r.packs;
                    written.extend(entries);
                }
                match next.inspect_err(|e| t.failed("push", "", e))? {
                    Some(pending) => records = Some(pending),
                    None => break,
                }
            }
            Ok(uploaded)
        };
        let pushed = tokio::try_join!(planner, packer, uploader);
        pack.save_blob_table().await;
        verified.extend(written);
        save_ledger(dir, remote_id, ledger, verified, pushed.is_ok()).await;
        let ((), (), uploaded) = pushed?;
        report.pushed = uploaded.records;
        report.blobs_uploaded = uploaded.blobs_uploaded;
        report.blobs_reused = uploaded.blobs_reused;
        report.packs = uploaded.packs;
        progress(report.artifacts, report.artifacts);
        t.succeeded();
        let after = pack.store().stats().snapshot();
        report.bytes_up = after.bytes_up - before.bytes_up;
        report.put_requests = after.puts - before.puts;
        bump_by(&t.counters.pushed, report.pushed);
        Ok(report)
    }

    /// The planning half of `sync_push`: decides, a window of keys at a time, which local
    /// artifacts the remote lacks (from index records on both sides: an artifact the remote
    /// already has costs one record read there and no blob read here), reads them, and
    /// queues them for packing in batches of about `batch_bytes`.
    #[allow(clippy::too_many_arguments)] // one caller; the pieces are sync_push's locals
    async fn plan_push(
        &self,
        t: &RemoteTier,
        pack: &PackTier,
        inputs: PushInputs<'_>,
        batch_bytes: u64,
        progress: &(dyn Fn(u64, u64) + Send + Sync),
        report: &mut PushReport,
        verified: &mut Vec<LedgerEntry>,
        to_pack: tokio::sync::mpsc::Sender<Vec<UploadItem>>,
    ) -> Result<()> {
        let PushInputs {
            local,
            listing,
            ledger,
        } = inputs;
        let total = local.len() as u64;
        let mut batch: Vec<UploadItem> = Vec::new();
        let mut pending = 0u64;
        // A closed channel means the packer stopped on an error, which try_join reports.
        let send = async |items: Vec<UploadItem>| {
            let _ = to_pack.send(items).await;
        };
        let mut done = 0u64;
        for window in local.chunks(PUSH_WINDOW) {
            let keys: Vec<String> = window.iter().map(|e| e.key.clone()).collect();
            let records = self.inner.local.records(keys.clone()).await?;
            let now = self.inner.local.options().clock.now_ms();
            // Per key: the record's version in the listing, the local artifact's identity,
            // and whether the ledger vouches that this version holds that artifact.
            let seen: Vec<Option<(&ObjectMeta, BlobHash, bool)>> = keys
                .iter()
                .zip(&records)
                .map(|(key, rec)| {
                    let rec = rec.as_ref().filter(|r| !r.is_expired(now))?;
                    let listed = listing.get(&record_path(key))?;
                    let identity = local_identity(rec);
                    Some((listed, identity, ledger.vouches(key, &identity, listed)))
                })
                .collect();
            let to_read: Vec<String> = keys
                .iter()
                .zip(&seen)
                .filter(|(_, s)| s.is_some_and(|(_, _, vouched)| !vouched))
                .map(|(k, _)| k.clone())
                .collect();
            report.records_read += to_read.len() as u64;
            let remote = pack
                .records(&to_read)
                .await
                .inspect_err(|e| t.failed("push", "", e))?;
            for ((key, rec), seen) in keys.into_iter().zip(records).zip(seen) {
                progress(done, total);
                done += 1;
                // Deleted or expired since the listing.
                let Some(rec) = rec else { continue };
                if t.is_pending(&key) {
                    report.pending_upload += 1;
                    continue;
                }
                if let Some((listed, identity, true)) = seen {
                    report.already_remote += 1;
                    report.unchanged_since_last_push += 1;
                    verified.push(ledger_entry(key, identity, listed));
                    continue;
                }
                // A remote record that differs (or expired there) is replaced: the push
                // makes the remote hold this machine's value (last push wins).
                if remote
                    .get(&key)
                    .is_some_and(|r| !r.is_expired(now) && same_artifact(r, &rec))
                {
                    report.already_remote += 1;
                    if let Some((listed, identity, _)) = seen {
                        verified.push(ledger_entry(key, identity, listed));
                    }
                    continue;
                }
                let Some((item, hashes)) = self.inner.local.get_stored_hashed(&key).await? else {
                    continue;
                };
                pending += item.artifact.logical_size();
                batch.push(UploadItem {
                    key,
                    item,
                    hashes: Some(hashes),
                });
                if pending >= batch_bytes {
                    send(std::mem::take(&mut batch)).await;
                    pending = 0;
                }
            }
        }
        if !batch.is_empty() {
            send(batch).await;
        }
        Ok(())
    }

    /// Copies the pack tier's artifacts whose key starts with `prefix` into the local tier
    /// (cache warming). Every copy is hash-checked; a corrupt one is reported, not stored.
    pub async fn sync_pull(
        &self,
        tier: Option<&str>,
        prefix: &str,
        progress: &(dyn Fn(u64, u64) + Send + Sync),
    ) -> Result<PullReport> {
        let (tier_index, t, pack) = self.pack_tier(tier)?;
        let before = pack.store().stats().snapshot();
        let keys = pack
            .candidate_keys(prefix)
            .await
            .inspect_err(|e| t.failed("pull", prefix, e))?;
        let total = keys.len() as u64;
        let mut report = PullReport {
            tier: t.backend.name().to_owned(),
            candidates: total,
            ..PullReport::default()
        };
        // Several artifacts in flight: remote latency overlaps, local puts share fsyncs.
        enum Outcome {
            Local,
            Pulled,
            Gone,
            Pending,
        }
        let mut done = 0u64;
        let (local, backend) = (&self.inner.local, &t.backend);
        // Keys this machine still owes the tier are left: their copy there may be older than
        // a local put or delete. Checked before the read and again before the copy.
        for_each_bounded(
            keys,
            PULL_CONCURRENCY,
            |key| {
                let (local, backend) = (local.clone(), backend.clone());
                let inner = self.inner.clone();
                async move {
                    let pending = || inner.remotes[tier_index].is_pending(&key);
                    let r: Result<Outcome> = async {
                        if pending() {
                            return Ok(Outcome::Pending);
                        }
                        if local.contains(&key).await? {
                            return Ok(Outcome::Local);
                        }
                        let Some(f) = backend.get(&key).await? else {
                            return Ok(Outcome::Gone);
                        };
                        let local: &dyn CacheBackend = &local;
                        match promote(&key, &f.stored, &[local], || !pending())
                            .await
                            .pop()
                        {
                            Some(PromotionOutcome::Copied) => Ok(Outcome::Pulled),
                            Some(PromotionOutcome::Failed(e)) => Err(e),
                            // Over the local store's whole budget: the put's own error.
                            Some(PromotionOutcome::TooLarge) => Err(StoreError::TooLarge {
                                size: f.stored.artifact.logical_size(),
                                max_size: local.capabilities().max_object_size.unwrap_or(0),
                            }
                            .into()),
                            Some(PromotionOutcome::Stale) | None => Ok(Outcome::Pending),
                        }
                    }
                    .await;
                    (key, r)
                }
            },
            |(key, r)| {
                done += 1;
                progress(done, total);
                match r {
                    Ok(Outcome::Local) => report.already_local += 1,
                    Ok(Outcome::Pulled) => report.pulled += 1,
                    Ok(Outcome::Gone) => report.gone += 1,
                    Ok(Outcome::Pending) => report.pending_upload += 1,
                    Err(e) if e.is_corruption() => {
                        t.failed("pull", &key, &e);
                        report.corrupt.push(key);
                    }
                    Err(e) => {
                        t.failed("pull", &key, &e);
                        return Err(e);
                    }
                }
                Ok(())
            },
        )
        .await?;
        report.corrupt.sort();
        progress(total, total);
        report.bytes_down = pack.store().stats().snapshot().bytes_down - before.bytes_down;
        Ok(report)
    }
}

/// What `plan_push` compares: the local artifacts, the remote listing of records, and the
/// push ledger.
struct PushInputs<'a> {
    local: &'a [ListEntry],
    listing: &'a HashMap<String, ObjectMeta>,
    ledger: &'a Ledger,
}

/// The packing stage of `sync_push`: prepares each batch the planner read (blake3 where a
/// part came without it, zstd, the pack's bytes) and queues it for the uploader, naming the
/// new blobs of the two batches that may still be queued or uploading instead of packing
/// them again (they upload first: packs upload in the order they were prepared).
async fn pack_batches(
    t: &RemoteTier,
    pack: &PackTier,
    mut unpacked: tokio::sync::mpsc::Receiver<Vec<UploadItem>>,
    queue: tokio::sync::mpsc::Sender<PreparedBatch>,
) -> Result<()> {
    let mut earlier: VecDeque<HashMap<BlobHash, PackLocation>> = VecDeque::new();
    while let Some(items) = unpacked.recv().await {
        let prepared = pack
            .prepare_batch(items, earlier.make_contiguous())
            .await
            .inspect_err(|e| t.failed("push", "", e))?;
        if earlier.len() == 2 {
            earlier.pop_front();
        }
        earlier.push_back(prepared.locations());
        // A closed queue means the uploader stopped on an error, which try_join reports.
        let _ = queue.send(prepared).await;
    }
    Ok(())
}

/// Writes the push ledger: after a whole push, exactly what it verified (keys deleted
/// locally drop out); after a failed one, what it verified over the earlier entries (an
/// earlier entry that no longer holds vouches for nothing: all its fields must match). A
/// ledger not written costs the next push reads, so a failure is logged, not returned.
async fn save_ledger(
    dir: std::path::PathBuf,
    remote_id: String,
    earlier: Ledger,
    verified: Vec<LedgerEntry>,
    complete: bool,
) {
    let entries = if complete {
        verified
    } else {
        earlier.merged(verified)
    };
    let saved = tokio::task::spawn_blocking(move || Ledger::save(&dir, &remote_id, entries))
        .await
        .unwrap_or_else(|e| std::panic::resume_unwind(e.into_panic()));
    if let Err(e) = saved {
        tracing::warn!(error = %e, "push ledger not written; the next push reads every remote record");
    }
}

/// True when a remote record describes the same artifact as a local one: same kind,
/// metadata, expiry and parts (names, lengths, blake3 of the bytes), which is what the
/// record's digest covers, plus the expiry, so a re-put with a new TTL is pushed again.
fn same_artifact(remote: &RemoteRecord, local: &ArtifactRecord) -> bool {
    remote.kind == local.kind
        && remote.meta == local.meta
        && remote.expires_ms == local.expires_ms
        && remote.parts.len() == local.parts.len()
        && remote
            .parts
            .iter()
            .zip(&local.parts)
            .all(|(r, l)| r.name == l.name && r.hash == l.hash && r.len == l.len)
}
