//! `rebuild-index`: restores the RocksDB index from chunk files alone.
//!
//! Every put writes its artifact record as a frame next to its blobs, and every delete a
//! tombstone, each with a store-wide sequence number. Rebuilding scans every chunk file once:
//! blob frames give blob locations, and for each key the record or tombstone with the highest
//! sequence number decides whether it exists. Artifacts whose blobs are not all found are
//! reported as lost. Refcounts, chunk live bytes and totals are recomputed; every chunk is
//! sealed (new writes go to a new chunk).
//!
//! The new index is built beside the old one, which is never opened with `--force` (it may be
//! unreadable, half-written or from a newer version) and never deleted first:
//! 1. build in `index.partial` (a leftover of an interrupted rebuild is discarded first);
//! 2. commit it (the meta record last) and close it, then rename it to `index.new`: a
//!    complete index, not yet in use;
//! 3. rename `index` to `index.old`, `index.new` to `index`, sync the directory;
//! 4. delete `index.old`.
//!
//! A crash in 1-2 leaves the old index in place; a crash in 3-4 leaves `index.new`, and the
//! next open (or rebuild) finishes the swap ([`finish_index_swap`]).

use std::collections::{BTreeMap, HashMap};
use std::fs;
use std::path::{Path, PathBuf};

use pipecache_format::chunk::CHUNK_HEADER_LEN;
use pipecache_format::record::{
    AccessRecord, ArtifactRecord, BlobRecord, ChunkRecord, FrameRef, RECORD_VERSION, Record,
    RecordFrame, StoreMeta, TombstoneFrame, Totals,
};
use pipecache_format::{
    BlobHash, ChunkScanner, FormatError, FrameKind, parse_chunk_file_name, sync_dir,
};
use pipecache_index::{Index, IndexOptions};
use serde::Serialize;

use crate::layout::{INDEX_DIR, INDEX_NEW_DIR, INDEX_OLD_DIR, INDEX_PARTIAL_DIR};
use crate::{Error, Result, StoreOptions};

/// Removes `path`, a directory or (a damaged store may have one there) a file.
fn remove_dir_if_present(path: &Path) -> Result<()> {
    let removed = match fs::symlink_metadata(path) {
        Ok(m) if m.is_dir() => fs::remove_dir_all(path),
        Ok(_) => fs::remove_file(path),
        Err(e) => Err(e),
    };
    match removed {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(Error::io(format!("remove {}", path.display()), e)),
    }
}

/// Puts a complete rebuilt index (`index.new`) in place of `index`, if one is waiting:
/// `index` moves aside to `index.old` first and is deleted only once the new one is in
/// place. Idempotent; the store lock must be held. Open calls it too, so a rebuild killed
/// mid-swap is finished, never lost.
pub(crate) fn finish_index_swap(dir: &Path) -> Result<()> {
    let (index, new, old) = (
        dir.join(INDEX_DIR),
        dir.join(INDEX_NEW_DIR),
        dir.join(INDEX_OLD_DIR),
    );
    if new.is_dir() {
        if index.exists() {
            remove_dir_if_present(&old)?;
            fs::rename(&index, &old)
                .map_err(|e| Error::io(format!("rename {}", index.display()), e))?;
        }
        fs::rename(&new, &index).map_err(|e| Error::io(format!("rename {}", new.display()), e))?;
        sync_dir(dir)?;
        tracing::info!(index = %index.display(), "rebuilt index put in place");
    }
    remove_dir_if_present(&old)
}

/// What `rebuild-index` found and restored.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct RebuildReport {
    /// Chunk files scanned.
    pub chunks_scanned: u64,
    /// Chunk files whose scan stopped early at a damaged frame (what follows it is lost).
    pub chunks_damaged: Vec<u64>,
    /// Distinct blobs found.
    pub blobs_found: u64,
    /// Artifacts restored.
    pub artifacts_restored: u64,
    /// Keys whose latest record is a deletion.
    pub deleted_keys_seen: u64,
    /// Keys whose record was found but whose blobs are not all present: not restored.
    pub lost_keys: Vec<String>,
}

struct FoundBlob {
    chunk: u64,
    offset: u64,
    stored_len: u64,
    raw_len: u64,
    codec: u8,
}

/// What the chunk files hold, as a scan found it.
#[derive(Default)]
struct Found {
    /// The first intact frame of every blob.
    blobs: HashMap<BlobHash, FoundBlob>,
    /// key -> (seq, record and where its frame is; `None` for a tombstone), the highest
    /// sequence number winning.
    latest: HashMap<String, (u64, Option<(ArtifactRecord, FrameRef)>)>,
    /// Length of every readable chunk file.
    chunk_len: BTreeMap<u64, u64>,
    max_seq: u64,
}

impl Found {
    fn record(&mut self, key: String, seq: u64, value: Option<(ArtifactRecord, FrameRef)>) {
        self.max_seq = self.max_seq.max(seq);
        let slot = self.latest.entry(key).or_insert((0, None));
        if seq >= slot.0 {
            *slot = (seq, value);
        }
    }
}

/// Rebuilds `<dir>/index` from `<dir>/chunks`. The caller holds the store lock. Refuses to
/// replace an index that has a meta record unless `force`.
pub(crate) fn rebuild(
    dir: &Path,
    options: &StoreOptions,
    force: bool,
    progress: &dyn Fn(u64, u64),
) -> Result<RebuildReport> {
    finish_index_swap(dir)?;
    let index_dir = dir.join(INDEX_DIR);
    if index_dir.exists() && !force {
        refuse_intact_index(dir, &index_dir)?;
    }
    let partial = dir.join(INDEX_PARTIAL_DIR);
    remove_dir_if_present(&partial)?;
    let files = chunk_files(&dir.join("chunks"))?;
    let mut report = RebuildReport::default();
    let found = scan_chunks(&files, &mut report, progress)?;
    report.blobs_found = found.blobs.len() as u64;
    let next_chunk_id = files.last().map(|f| f.0 + 1).unwrap_or(1);
    write_index(&partial, found, next_chunk_id, options, &mut report)?;
    let built = dir.join(INDEX_NEW_DIR);
    fs::rename(&partial, &built)
        .map_err(|e| Error::io(format!("rename {}", partial.display()), e))?;
    sync_dir(dir)?;
    finish_index_swap(dir)?;
    report.lost_keys.sort();
    report.chunks_damaged.sort();
    Ok(report)
}

/// Without `--force` only a missing or visibly incomplete index is replaced.
fn refuse_intact_index(dir: &Path, index_dir: &Path) -> Result<()> {
    let intact = Index::open(index_dir, &IndexOptions::default())
        .and_then(|(index, _writer)| index.meta())
        .map_err(|e| Error::InvalidStoreDir {
            path: dir.to_owned(),
            reason: format!("the index does not open ({e}); pass --force to rebuild it"),
        })?
        .is_some();
    if intact {
        return Err(Error::InvalidStoreDir {
            path: dir.to_owned(),
            reason: "the index exists and looks complete; pass --force to rebuild it anyway".into(),
        });
    }
    Ok(())
}

/// The chunk files of `chunk_dir` (id, path, length), by id.
fn chunk_files(chunk_dir: &Path) -> Result<Vec<(u64, PathBuf, u64)>> {
    let list_err = |e| Error::io(format!("list {}", chunk_dir.display()), e);
    let mut files = Vec::new();
    for entry in fs::read_dir(chunk_dir).map_err(list_err)? {
        let entry = entry.map_err(list_err)?;
        if let Some(id) = entry.file_name().to_str().and_then(parse_chunk_file_name) {
            let len = entry
                .metadata()
                .map_err(|e| Error::io("stat chunk file", e))?
                .len();
            files.push((id, entry.path(), len));
        }
    }
    files.sort();
    Ok(files)
}

/// Scans every chunk file front to back; a damaged one is reported and scanned up to the
/// damage (or skipped when its header is unreadable).
fn scan_chunks(
    files: &[(u64, PathBuf, u64)],
    report: &mut RebuildReport,
    progress: &dyn Fn(u64, u64),
) -> Result<Found> {
    let total: u64 = files.iter().map(|f| f.2).sum();
    let mut found = Found::default();
    let mut done = 0u64;
    for (id, path, len) in files {
        report.chunks_scanned += 1;
        let mut scanner = match ChunkScanner::open(path) {
            Ok(s) => s,
            Err(e @ FormatError::UnsupportedVersion { .. }) => return Err(e.into()),
            Err(e) => {
                tracing::error!(chunk = id, error = %e, "chunk header unreadable; skipping the file");
                report.chunks_damaged.push(*id);
                continue;
            }
        };
        if scanner.header().id != *id {
            report.chunks_damaged.push(*id);
            continue;
        }
        found.chunk_len.insert(*id, *len);
        if let Some(e) = scan_frames(&mut scanner, *id, &mut found)?
            && scanner.offset() < *len
        {
            tracing::warn!(chunk = id, at = scanner.offset(), error = %e, "chunk scan stopped early");
            report.chunks_damaged.push(*id);
        }
        done += len;
        progress(done, total);
    }
    Ok(found)
}

/// Takes every frame of chunk `id` into `found`; the error the scan stopped at, a torn tail
/// (a crash) or damage, past which frames cannot be located.
fn scan_frames<R: std::io::Read>(
    scanner: &mut ChunkScanner<R>,
    id: u64,
    found: &mut Found,
) -> Result<Option<FormatError>> {
    loop {
        let frame = match scanner.next_frame() {
            Ok(Some(frame)) => frame,
            Ok(None) => return Ok(None),
            Err(e) => return Ok(Some(e)),
        };
        let at = FrameRef {
            chunk: id,
            offset: frame.offset,
            len: frame.header.frame_len(),
        };
        match frame.header.kind {
            FrameKind::Blob => {
                found.blobs.entry(frame.header.hash).or_insert(FoundBlob {
                    chunk: id,
                    offset: frame.offset,
                    stored_len: frame.header.stored_len,
                    raw_len: frame.header.raw_len,
                    codec: frame.header.codec as u8,
                });
            }
            FrameKind::ArtifactRecord => {
                let rf = RecordFrame::decode(&frame.payload)?;
                let seq = rf.record.seq;
                found.record(rf.key, seq, Some((rf.record, at)));
            }
            FrameKind::Tombstone => {
                let t = TombstoneFrame::decode(&frame.payload)?;
                found.record(t.key, t.seq, None);
            }
        }
    }
}

/// Writes the index `found` implies into `partial`: artifact records whose blobs all exist,
/// blob records with their counted references, chunk records, and the meta record last (a
/// rebuild killed before it leaves an index `open` refuses). Closes it before returning.
fn write_index(
    partial: &Path,
    found: Found,
    next_chunk_id: u64,
    options: &StoreOptions,
    report: &mut RebuildReport,
) -> Result<()> {
    let (index, writer) = Index::open(partial, &IndexOptions::default())?;
    let Found {
        blobs,
        latest,
        chunk_len,
        max_seq,
    } = found;
    let mut refs: HashMap<BlobHash, u64> = HashMap::new();
    let mut live: HashMap<u64, u64> = HashMap::new();
    let mut totals = Totals::default();
    let mut batch = writer.batch();
    let mut keys: Vec<_> = latest.into_iter().collect();
    keys.sort_by(|a, b| a.0.cmp(&b.0));
    for (key, (_, found)) in keys {
        let Some((mut rec, at)) = found else {
            report.deleted_keys_seen += 1;
            continue;
        };
        if !rec.parts.iter().all(|p| blobs.contains_key(&p.hash)) {
            report.lost_keys.push(key);
            continue;
        }
        for p in &rec.parts {
            *refs.entry(p.hash).or_default() += 1;
        }
        *live.entry(at.chunk).or_default() += at.len;
        rec.frame = Some(at);
        totals.artifacts += 1;
        totals.logical_bytes += rec.logical_size;
        if let Some(t) = rec.expires_ms {
            batch.put_expiry(t, &key);
        }
        batch.put_access(
            &key,
            &AccessRecord {
                v: RECORD_VERSION,
                last_ms: rec.created_ms,
            },
        );
        batch.put_artifact(&key, &rec);
        report.artifacts_restored += 1;
        if batch.len() >= 30_000 {
            writer.commit(std::mem::replace(&mut batch, writer.batch()), false)?;
        }
    }
    for (hash, n) in &refs {
        let b = &blobs[hash];
        let rec = BlobRecord {
            v: RECORD_VERSION,
            chunk: b.chunk,
            offset: b.offset,
            stored_len: b.stored_len,
            raw_len: b.raw_len,
            codec: b.codec,
            refs: *n,
        };
        *live.entry(b.chunk).or_default() += rec.frame_len();
        totals.blobs += 1;
        totals.unique_bytes += rec.raw_len;
        totals.stored_bytes += rec.stored_len;
        batch.put_blob(hash, &rec);
        if batch.len() >= 30_000 {
            writer.commit(std::mem::replace(&mut batch, writer.batch()), false)?;
        }
    }
    let now = options.clock.now_ms();
    for (id, len) in &chunk_len {
        batch.put_chunk(
            *id,
            &ChunkRecord {
                v: RECORD_VERSION,
                total_bytes: (*len).max(CHUNK_HEADER_LEN),
                live_bytes: live.get(id).copied().unwrap_or(0),
                sealed: true,
                created_ms: now,
            },
        );
    }
    writer.commit(batch, true)?;
    index.flush()?;
    let mut last = writer.batch();
    last.put_meta(&StoreMeta {
        v: RECORD_VERSION,
        next_chunk_id,
        open_chunk: None,
        totals,
        created_ms: now,
        next_seq: max_seq + 1,
    });
    writer.commit(last, true)?;
    // Both handles close the database; only then may its directory move.
    drop(writer);
    drop(index);
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use pipecache_format::record::{ArtifactRecord, FrameRef, RECORD_VERSION};

    use super::Found;

    fn record(seq: u64) -> (ArtifactRecord, FrameRef) {
        let rec = ArtifactRecord {
            v: RECORD_VERSION,
            kind: "t".into(),
            parts: Vec::new(),
            meta: BTreeMap::new(),
            logical_size: 0,
            created_ms: 0,
            expires_ms: None,
            seq,
            frame: None,
        };
        let at = FrameRef {
            chunk: 1,
            offset: seq * 100,
            len: 10,
        };
        (rec, at)
    }

    /// Chunk files are scanned in id order, but compaction moves frames forward, so an older
    /// record or tombstone can come after a newer one: the highest sequence number wins,
    /// whatever the order, and a tombstone newer than every record deletes the key.
    #[test]
    fn the_newest_record_or_tombstone_wins_in_any_scan_order() {
        let mut found = Found::default();
        found.record("k".into(), 5, Some(record(5)));
        found.record("k".into(), 3, Some(record(3)));
        found.record("k".into(), 4, None);
        let (seq, kept) = &found.latest["k"];
        assert_eq!(*seq, 5);
        assert_eq!(kept.as_ref().map(|(r, _)| r.seq), Some(5));
        found.record("k".into(), 6, None);
        assert!(
            found.latest["k"].1.is_none(),
            "a newer tombstone deletes the key"
        );
        assert_eq!(found.max_seq, 6);
    }
}
