//! `verify`: reads every chunk file front to back, checks every frame (header checksum, blake3
//! of the decoded payload) and reconciles what it finds with the index: live blobs and record
//! frames the index names, frames the index does not name (dead or unindexed data), index
//! entries whose bytes are damaged or whose chunk file is gone, and refcounts and chunk live
//! bytes that do not match the artifact records. `repair` acts on the report.

use std::collections::{BTreeSet, HashMap, HashSet};

use pipecache_format::{BlobHash, BlobHashSet, ChunkScanner, FrameKind, chunk_file_name};
use serde::Serialize;

use crate::accounting::{RecordCounts, record_counts};
use crate::state::Shared;
use crate::{Error, Result};

/// A blob whose bytes failed verification.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct DamagedBlob {
    /// Blob hash (hex).
    pub hash: String,
    /// Chunk the index places it in.
    pub chunk: u64,
    /// Offset of its frame.
    pub offset: u64,
    /// What failed.
    pub error: String,
}

/// A blob whose recorded refcount differs from the references artifacts hold.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct RefcountMismatch {
    /// Blob hash (hex).
    pub hash: String,
    /// Refcount in the blob record.
    pub recorded: u64,
    /// Parts that reference it.
    pub actual: u64,
}

/// A chunk whose recorded live bytes differ from the frames live artifacts and blobs hold
/// in it. Compaction decides from live bytes: an over-count keeps a chunk of dead data
/// forever, an under-count compacts too early.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct LiveBytesMismatch {
    /// Chunk id.
    pub chunk: u64,
    /// Live bytes in the chunk record.
    pub recorded: u64,
    /// Bytes of the frames of referenced blobs and of artifact records in the chunk.
    pub actual: u64,
}

/// Result of [`crate::Store::verify`].
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct VerifyReport {
    /// Chunk files read.
    pub chunks_checked: u64,
    /// Artifact records scanned.
    pub artifacts_checked: u64,
    /// Live blobs whose bytes were checked.
    pub blobs_checked: u64,
    /// Chunk bytes read.
    pub bytes_checked: u64,
    /// Blobs whose bytes are damaged or unreadable.
    pub damaged_blobs: Vec<DamagedBlob>,
    /// Artifact keys that cannot be read back intact, sorted.
    pub damaged_keys: Vec<String>,
    /// Blobs whose refcount is wrong.
    pub refcount_mismatches: Vec<RefcountMismatch>,
    /// Chunks whose live-byte count is wrong (by chunk id).
    pub live_bytes_mismatches: Vec<LiveBytesMismatch>,
    /// Chunk files the index knows but the disk lacks (or that are shorter than committed).
    pub missing_chunk_files: Vec<u64>,
    /// Keys whose record copy in the chunk files is missing or damaged: they read fine, but
    /// `rebuild-index` could not restore them.
    pub missing_record_frames: Vec<String>,
    /// Chunk files on disk that the index does not know (what an interrupted compaction or a
    /// crashed batch left; open and gc remove them).
    pub orphan_chunk_files: Vec<u64>,
    /// The index itself is damaged (RocksDB found a bad block, a record does not decode):
    /// what was found, naming the file. Nothing past it was checked; `rebuild-index --force`
    /// restores the index from the chunk files.
    pub index_damage: Option<String>,
    /// Frames in chunk files the index does not reference (dead data awaiting compaction).
    pub unindexed_frames: u64,
    /// Bytes of those frames.
    pub unindexed_bytes: u64,
}

impl VerifyReport {
    /// True when nothing is damaged or inconsistent (unindexed frames are normal dead data).
    pub fn is_clean(&self) -> bool {
        self.damaged_blobs.is_empty()
            && self.damaged_keys.is_empty()
            && self.refcount_mismatches.is_empty()
            && self.live_bytes_mismatches.is_empty()
            && self.missing_chunk_files.is_empty()
            && self.missing_record_frames.is_empty()
            && self.orphan_chunk_files.is_empty()
            && self.index_damage.is_none()
    }
}

/// What `repair` did.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct RepairReport {
    /// The verification the repair acted on.
    pub before: VerifyReport,
    /// Artifacts dropped because their bytes are lost: they are misses from now on.
    pub dropped_keys: Vec<String>,
    /// Blob records dropped (damaged or gone).
    pub dropped_blobs: u64,
    /// Blob refcounts corrected.
    pub refcounts_fixed: u64,
    /// Chunk records dropped because their file is gone.
    pub dropped_chunks: Vec<u64>,
    /// Verification after the repair.
    pub after: VerifyReport,
}

/// Verifies the store; damage to the index is a finding, not an error.
pub(crate) fn run(shared: &Shared, progress: &dyn Fn(u64, u64)) -> Result<VerifyReport> {
    match check(shared, progress) {
        Err(e) if e.is_index_damage() => Ok(VerifyReport {
            index_damage: Some(e.to_string()),
            ..VerifyReport::default()
        }),
        other => other,
    }
}

/// What the index says the chunk files hold. Kept small at millions of blobs (32 bytes per
/// live blob twice, no record copies, no part lists): a store of 3M blobs verified with
/// 813 MiB peak RSS when this held every blob record and every artifact's part list.
#[derive(Default)]
struct Expected {
    /// Hashes of the blobs with references.
    live: BlobHashSet,
    /// Live blobs by chunk: (offset, hash).
    live_by_chunk: HashMap<u64, Vec<(u64, BlobHash)>>,
    /// Artifact record frames by chunk: offset -> key.
    records_by_chunk: HashMap<u64, HashMap<u64, String>>,
    /// Artifacts with a part the index has no live blob for.
    unbacked_keys: BTreeSet<String>,
}

impl Expected {
    fn is_live(&self, hash: &BlobHash) -> bool {
        self.live.contains(hash)
    }
}

fn check(shared: &Shared, progress: &dyn Fn(u64, u64)) -> Result<VerifyReport> {
    let mut report = VerifyReport::default();
    let chunks = shared.index.chunks()?;
    let total: u64 = chunks.iter().map(|(_, c)| c.total_bytes).sum();
    let mut expected = expectations(shared, &mut report)?;
    let known_chunks: HashSet<u64> = chunks.iter().map(|(id, _)| *id).collect();
    report.orphan_chunk_files = orphan_chunk_files(shared, &known_chunks)?;
    let mut damaged: HashSet<BlobHash> = HashSet::new();
    let mut done_bytes = 0u64;
    for (id, crec) in &chunks {
        check_chunk(
            shared,
            *id,
            crec.total_bytes,
            &mut expected,
            &mut report,
            &mut damaged,
        );
        done_bytes += crec.total_bytes;
        progress(done_bytes, total);
    }
    // Live blobs pointing at chunks the index does not even know.
    for (chunk, list) in std::mem::take(&mut expected.live_by_chunk) {
        if !known_chunks.contains(&chunk) {
            for (offset, hash) in list {
                damaged.insert(hash);
                report.damaged_blobs.push(DamagedBlob {
                    hash: hash.to_hex(),
                    chunk,
                    offset,
                    error: "chunk is not in the index".into(),
                });
            }
        }
    }
    for (_, keys) in std::mem::take(&mut expected.records_by_chunk) {
        report.missing_record_frames.extend(keys.into_values());
    }
    let mut damaged_keys = std::mem::take(&mut expected.unbacked_keys);
    drop(expected);
    // Damage is rare: the artifacts a damaged blob belongs to come from a second scan of
    // the artifact records rather than part lists kept for every artifact.
    if !damaged.is_empty() {
        for item in shared.index.scan_artifacts("") {
            let (key, rec) = item?;
            if rec.parts.iter().any(|p| damaged.contains(&p.hash)) {
                damaged_keys.insert(key);
            }
        }
    }
    report.damaged_keys = damaged_keys.into_iter().collect();
    // Commits during the chunk scans (background GC, concurrent puts) would show as
    // accounting noise: these come from one index read no commit interleaved with, retried
    // a few times while the store is busy.
    for _ in 0..5 {
        let before = shared.epoch();
        (report.refcount_mismatches, report.live_bytes_mismatches) = accounting(shared)?;
        if shared.epoch() == before {
            break;
        }
    }
    report.missing_record_frames.sort();
    report.damaged_blobs.sort_by_key(|b| (b.chunk, b.offset));
    Ok(report)
}

/// Reads the blob and artifact records into what the chunk scans must find; counts the
/// artifacts and notes those whose record frame is not located.
fn expectations(shared: &Shared, report: &mut VerifyReport) -> Result<Expected> {
    let mut expected = Expected::default();
    let mut live = Vec::new();
    for item in shared.index.scan_blobs() {
        let (hash, rec) = item?;
        if rec.refs > 0 {
            expected
                .live_by_chunk
                .entry(rec.chunk)
                .or_default()
                .push((rec.offset, hash));
            live.push(hash);
        }
    }
    // Already in order (the index is keyed by hash); sorting sorted input is one pass.
    expected.live = BlobHashSet::new(live);
    for item in shared.index.scan_artifacts("") {
        let (key, rec) = item?;
        report.artifacts_checked += 1;
        match rec.frame {
            Some(f) => {
                expected
                    .records_by_chunk
                    .entry(f.chunk)
                    .or_default()
                    .insert(f.offset, key.clone());
            }
            None => report.missing_record_frames.push(key.clone()),
        }
        if rec.parts.iter().any(|p| !expected.is_live(&p.hash)) {
            expected.unbacked_keys.insert(key);
        }
    }
    Ok(expected)
}

/// Chunk files the index does not know, by id (a put's direct chunk in flight is not one).
fn orphan_chunk_files(shared: &Shared, known: &HashSet<u64>) -> Result<Vec<u64>> {
    let list_err = |e| Error::io(format!("list {}", shared.chunk_dir.display()), e);
    let mut orphans = Vec::new();
    for entry in std::fs::read_dir(&shared.chunk_dir).map_err(list_err)? {
        let entry = entry.map_err(list_err)?;
        if let Some(id) = entry
            .file_name()
            .to_str()
            .and_then(pipecache_format::parse_chunk_file_name)
            && !known.contains(&id)
            && !shared.is_direct_in_flight(id)
            // Committed since `known` was read (a new chunk, or a direct chunk's put).
            && shared.index.chunk(id)?.is_none()
        {
            orphans.push(id);
        }
    }
    orphans.sort();
    Ok(orphans)
}

/// Scans chunk `id` front to back, checking every frame (the scanner verifies checksums
/// and hashes) against what the index expects there; then reads one by one whatever the
/// scan could not reach.
fn check_chunk(
    shared: &Shared,
    id: u64,
    committed_len: u64,
    expected: &mut Expected,
    report: &mut VerifyReport,
    damaged: &mut HashSet<BlobHash>,
) {
    report.chunks_checked += 1;
    let mut expected_blobs: HashMap<u64, BlobHash> = expected
        .live_by_chunk
        .remove(&id)
        .unwrap_or_default()
        .into_iter()
        .collect();
    let mut expected_records = expected.records_by_chunk.remove(&id).unwrap_or_default();
    let path = shared.chunk_dir.join(chunk_file_name(id));
    let on_disk = std::fs::metadata(&path).map(|m| m.len()).ok();
    if on_disk.is_none_or(|len| len < committed_len) {
        report.missing_chunk_files.push(id);
    }
    if on_disk.is_some() {
        match ChunkScanner::open(&path) {
            Ok(mut scanner) => {
                while scanner.offset() < committed_len {
                    let frame = match scanner.next_frame() {
                        Ok(Some(f)) => f,
                        Ok(None) | Err(_) => break, // leftovers get positioned reads below
                    };
                    let len = frame.header.frame_len();
                    report.bytes_checked += len;
                    let indexed = match frame.header.kind {
                        FrameKind::Blob => {
                            let hit = expected_blobs.get(&frame.offset) == Some(&frame.header.hash);
                            if hit {
                                expected_blobs.remove(&frame.offset);
                                report.blobs_checked += 1;
                            }
                            hit
                        }
                        FrameKind::ArtifactRecord => {
                            expected_records.remove(&frame.offset).is_some()
                        }
                        FrameKind::Tombstone => false,
                    };
                    if !indexed {
                        report.unindexed_frames += 1;
                        report.unindexed_bytes += len;
                    }
                }
            }
            Err(e) => {
                tracing::warn!(chunk = id, error = %e, "chunk header unreadable; checking blobs one by one")
            }
        }
    }
    // Whatever the scan could not reach (a damaged frame stops it): check one by one.
    let mut rest: Vec<(u64, BlobHash)> = expected_blobs.into_iter().collect();
    rest.sort();
    for (offset, hash) in rest {
        report.blobs_checked += 1;
        let read = shared
            .index
            .blob(&hash)
            .map_err(Error::from)
            .and_then(|rec| {
                let rec = rec.ok_or_else(|| {
                    Error::corruption(None, Some(hash), "blob record gone during verify")
                })?;
                shared.read_blob(None, hash, &rec)
            });
        if let Err(e) = read {
            damaged.insert(hash);
            report.damaged_blobs.push(DamagedBlob {
                hash: hash.to_hex(),
                chunk: id,
                offset,
                error: e.to_string(),
            });
        }
    }
    for (offset, key) in expected_records {
        let ok = shared
            .reader(id)
            .and_then(|r| r.read_frame(offset))
            .is_ok_and(|(h, _)| h.kind == FrameKind::ArtifactRecord);
        if !ok {
            report.missing_record_frames.push(key);
        }
    }
}

/// Refcounts and chunk live bytes from the artifact records ([`record_counts`], as `repair`
/// recounts them) compared with the blob and chunk records. A chunk's live bytes are the
/// frames of the artifact records in it and of the blobs in it that artifacts reference.
fn accounting(shared: &Shared) -> Result<(Vec<RefcountMismatch>, Vec<LiveBytesMismatch>)> {
    let RecordCounts {
        refs: mut actual_refs,
        live: mut live_bytes,
        ..
    } = record_counts(&shared.index)?;
    let mut refcounts = Vec::new();
    for item in shared.index.scan_blobs() {
        let (hash, rec) = item?;
        let real = actual_refs.remove(&hash).unwrap_or(0);
        if real > 0 {
            *live_bytes.entry(rec.chunk).or_default() += rec.frame_len();
        }
        if real != rec.refs {
            refcounts.push(RefcountMismatch {
                hash: hash.to_hex(),
                recorded: rec.refs,
                actual: real,
            });
        }
    }
    // Referenced blobs the index has no record of.
    for (hash, real) in actual_refs {
        refcounts.push(RefcountMismatch {
            hash: hash.to_hex(),
            recorded: 0,
            actual: real,
        });
    }
    refcounts.sort_by(|a, b| a.hash.cmp(&b.hash));
    let mut live = Vec::new();
    for (id, crec) in shared.index.chunks()? {
        let actual = live_bytes.get(&id).copied().unwrap_or(0);
        if actual != crec.live_bytes {
            live.push(LiveBytesMismatch {
                chunk: id,
                recorded: crec.live_bytes,
                actual,
            });
        }
    }
    Ok((refcounts, live))
}

/// Keys to drop, blob records to drop, chunk records to drop, keys whose record frame must be
/// written again.
pub(crate) type RepairPlan = (Vec<String>, Vec<BlobHash>, Vec<u64>, Vec<String>);

/// Turns a verify report into a repair plan: keys to drop, blob records to drop, chunk records
/// to drop, keys whose record frame must be written again.
pub(crate) fn plan(report: &VerifyReport) -> Result<RepairPlan> {
    let blobs = report
        .damaged_blobs
        .iter()
        .map(|b| BlobHash::from_hex(&b.hash).map_err(Error::from))
        .collect::<Result<Vec<_>>>()?;
    let rewrite = report
        .missing_record_frames
        .iter()
        .filter(|k| !report.damaged_keys.contains(k))
        .cloned()
        .collect();
    Ok((
        report.damaged_keys.clone(),
        blobs,
        report.missing_chunk_files.clone(),
        rewrite,
    ))
}
