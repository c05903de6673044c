//! One upload batch in steps, so `sync push` can pack the next batch while the current
//! one uploads: [`PackTier::prepare_batch`] does the CPU work (blake3, compression, the
//! pack's bytes) on tokio's blocking pool, [`PackTier::upload_pack`] writes the pack and
//! its index, [`PendingRecords::write`] the records, in the module's write order (pack,
//! index, records); [`PackTier::upload_batch`] does both writes.
//!
//! A batch prepared while earlier ones are still uploading may name their new blobs
//! (`earlier`): they are uploaded first, since batches upload one at a time in
//! the order they were prepared, and a failed upload stops the push before any later batch
//! writes a record.

use std::collections::HashMap;

use pipecache_format::record::Record;
use pipecache_format::remote::{
    LedgerEntry, PackBuilder, PackEntry, PackIndex, PackLocation, RemotePart, RemoteRecord,
};
use pipecache_format::{BlobHash, CompressionPolicy};
use pipecache_store::{StoreError, StoredArtifact};

use super::{BatchReport, PackTier, pack_path};
use crate::{Result, remote_record};

/// A batch ready to upload: its records, and the pack of its new blobs.
#[derive(Debug)]
pub(crate) struct PreparedBatch {
    started_ms: u64,
    keys: Vec<String>,
    records: Vec<RemoteRecord>,
    /// The pack's id and bytes; `None` when every blob was already remote.
    pack: Option<(BlobHash, Vec<u8>)>,
    entries: Vec<PackEntry>,
    report: BatchReport,
    /// Per item: raw bytes of its parts the remote or an earlier part already held.
    deduplicated: Vec<u64>,
}

impl PreparedBatch {
    /// Per item, in order: raw bytes of its parts that were not packed again.
    pub(crate) fn deduplicated(&self) -> &[u64] {
        &self.deduplicated
    }

    /// Where this batch's new blobs will be once it is uploaded.
    pub(crate) fn locations(&self) -> HashMap<BlobHash, PackLocation> {
        let Some((pack, _)) = &self.pack else {
            return HashMap::new();
        };
        self.entries
            .iter()
            .map(|e| {
                let loc = PackLocation {
                    pack: *pack,
                    offset: e.offset,
                    stored_len: e.stored_len,
                };
                (e.hash, loc)
            })
            .collect()
    }
}

/// Runs CPU-bound work on the blocking pool (a panic there is re-raised here).
async fn off_the_runtime<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> T {
    match tokio::task::spawn_blocking(f).await {
        Ok(v) => v,
        Err(e) => std::panic::resume_unwind(e.into_panic()),
    }
}

/// An artifact to upload under `key`, with its parts' blake3 when a checked read already
/// computed them (`Store::get_stored_hashed`), so packing does not hash every byte again.
#[derive(Debug)]
pub(crate) struct UploadItem {
    pub(crate) key: String,
    pub(crate) item: StoredArtifact,
    /// One per part, in order; `None`: hashed while packing.
    pub(crate) hashes: Option<Vec<BlobHash>>,
}

impl UploadItem {
    /// An item whose parts are hashed while packing.
    pub(crate) fn unhashed(key: String, item: StoredArtifact) -> Self {
        Self {
            key,
            item,
            hashes: None,
        }
    }
}

/// Each item's part hashes: the ones it came with, the others computed.
fn part_hashes(items: Vec<UploadItem>) -> (Vec<(String, StoredArtifact)>, Vec<Vec<BlobHash>>) {
    items
        .into_iter()
        .map(|u| {
            let hashes = match u.hashes {
                Some(h) if h.len() == u.item.artifact.parts.len() => h,
                _ => u
                    .item
                    .artifact
                    .parts
                    .iter()
                    .map(|p| BlobHash::of(&p.data))
                    .collect(),
            };
            ((u.key, u.item), hashes)
        })
        .unzip()
}

impl PackTier {
    /// Hashes `items`' parts (those that came without their hashes), decides which blobs
    /// the remote (or an `earlier` batch, see the module docs) already holds, and builds the
    /// pack of the others.
    pub(crate) async fn prepare_batch(
        &self,
        items: Vec<UploadItem>,
        earlier: &[HashMap<BlobHash, PackLocation>],
    ) -> Result<PreparedBatch> {
        let started_ms = self.clock.now_ms();
        let (items, hashes) = if items.iter().all(|u| u.hashes.is_some()) {
            part_hashes(items)
        } else {
            off_the_runtime(move || part_hashes(items)).await
        };
        let mut remote = self
            .reusable_blobs(hashes.iter().flatten(), started_ms)
            .await?;
        for hash in hashes.iter().flatten() {
            if !remote.contains_key(hash)
                && let Some(loc) = earlier.iter().find_map(|m| m.get(hash).copied())
            {
                remote.insert(*hash, loc);
            }
        }
        let compression = self.compression;
        off_the_runtime(move || build(items, &hashes, &remote, compression, started_ms)).await
    }

    /// Writes a prepared batch: its pack, its index, then its records (with `if_absent`,
    /// only where none is). Returns, with the report, a push-ledger entry per record written
    /// without a condition.
    pub(crate) async fn upload_batch(
        &self,
        batch: PreparedBatch,
        if_absent: bool,
    ) -> Result<(BatchReport, Vec<LedgerEntry>)> {
        self.upload_pack(batch).await?.write(self, if_absent).await
    }

    /// The first half of [`PackTier::upload_batch`]: writes the batch's pack and index, after
    /// which its blobs are reusable; its records are left to [`PendingRecords::write`], so
    /// `sync push` can write them while the next batch's pack uploads.
    pub(crate) async fn upload_pack(&self, batch: PreparedBatch) -> Result<PendingRecords> {
        let PreparedBatch {
            started_ms,
            keys,
            records,
            pack,
            entries,
            report,
            deduplicated: _,
        } = batch;
        let pack_id = pack.as_ref().map(|(id, _)| *id);
        if let Some((id, bytes)) = pack {
            self.store
                .put(&pack_path(&id), bytes)
                .await
                .map_err(|e| self.remote(e))?;
        }
        let idx = PackIndex::new(pack_id, entries, keys, started_ms);
        let idx_bytes = idx.encode();
        let idx_name = format!("index/{}", BlobHash::of(&idx_bytes).to_hex());
        self.store
            .put(&idx_name, idx_bytes)
            .await
            .map_err(|e| self.remote(e))?;
        // From here the pack's blobs are reusable: a retry after the records fail (a push
        // resumed within MAP_REFRESH) must not upload them again.
        self.add_written_index(idx_name, pack_id, started_ms, &idx.blobs)
            .await;
        Ok(PendingRecords { records, report })
    }
}

/// The records of a batch whose pack and index are written.
#[derive(Debug)]
pub(crate) struct PendingRecords {
    records: Vec<RemoteRecord>,
    report: BatchReport,
}

impl PendingRecords {
    /// Writes the records (with `if_absent`, only where none is); the batch's report, and a
    /// push-ledger entry per record written without a condition.
    pub(crate) async fn write(
        self,
        tier: &PackTier,
        if_absent: bool,
    ) -> Result<(BatchReport, Vec<LedgerEntry>)> {
        let Self {
            records,
            mut report,
        } = self;
        let (written, entries) = tier.put_records(&records, if_absent).await?;
        report.records = written;
        Ok((report, entries))
    }
}

/// The CPU half of [`PackTier::prepare_batch`]: compresses and packs every blob `remote`
/// does not hold (each once), and writes the records.
fn build(
    items: Vec<(String, StoredArtifact)>,
    hashes: &[Vec<BlobHash>],
    remote: &HashMap<BlobHash, PackLocation>,
    compression: CompressionPolicy,
    started_ms: u64,
) -> Result<PreparedBatch> {
    let mut report = BatchReport::default();
    let mut pack = PackBuilder::new(started_ms);
    // `None` = in the pack being built (location fixed once its id is known).
    let mut placed: HashMap<BlobHash, Option<PackLocation>> = HashMap::new();
    let mut records = Vec::with_capacity(items.len());
    let mut deduplicated = Vec::with_capacity(items.len());
    for ((key, item), hashes) in items.iter().zip(hashes) {
        let mut parts = Vec::with_capacity(item.artifact.parts.len());
        let mut spared = 0;
        for (p, hash) in item.artifact.parts.iter().zip(hashes) {
            let at = match placed.get(hash) {
                Some(at) => {
                    spared += p.data.len() as u64;
                    *at
                }
                None => {
                    let at = if let Some(loc) = remote.get(hash) {
                        report.blobs_reused += 1;
                        spared += p.data.len() as u64;
                        Some(*loc)
                    } else {
                        let (codec, packed) = compression
                            .encode(&p.data)
                            .map_err(|e| StoreError::from_format(e, Some(key), None))?;
                        let stored = packed.as_deref().unwrap_or(&p.data);
                        pack.push(*hash, codec, p.data.len() as u64, stored);
                        report.blobs_uploaded += 1;
                        None
                    };
                    placed.insert(*hash, at);
                    at
                }
            };
            parts.push(RemotePart {
                name: p.name.clone(),
                hash: *hash,
                len: p.data.len() as u64,
                at,
            });
        }
        records.push(remote_record(key, item, parts));
        deduplicated.push(spared);
    }
    let (pack, entries) = if pack.is_empty() {
        (None, Vec::new())
    } else {
        let (id, bytes, entries) = pack.finish();
        report.pack_bytes = bytes.len() as u64;
        report.packs = 1;
        (Some((id, bytes)), entries)
    };
    if let Some((id, _)) = &pack {
        let by_hash: HashMap<BlobHash, PackEntry> = entries.iter().map(|e| (e.hash, *e)).collect();
        for part in records.iter_mut().flat_map(|r| r.parts.iter_mut()) {
            if part.at.is_none() {
                let e = by_hash[&part.hash];
                part.at = Some(PackLocation {
                    pack: *id,
                    offset: e.offset,
                    stored_len: e.stored_len,
                });
            }
        }
    }
    Ok(PreparedBatch {
        started_ms,
        keys: items.into_iter().map(|(k, _)| k).collect(),
        records,
        pack,
        entries,
        report,
        deduplicated,
    })
}
