use std::collections::HashMap;

use pipecache_format::BlobHash;
use pipecache_format::chunk::CHUNK_HEADER_LEN;
use pipecache_format::record::BlobRecord;
use serde::Serialize;

use crate::store::Shared;
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

/// Result of [`crate::Store::verify`].
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct VerifyReport {
    /// Artifact records scanned.
    pub artifacts_checked: u64,
    /// Live blobs read and blake3-checked.
    pub blobs_checked: u64,
    /// Stored bytes read.
    pub bytes_checked: u64,
    /// Blobs whose bytes are damaged or unreadable.
    pub damaged_blobs: Vec<DamagedBlob>,
    /// Artifact keys that cannot be read back intact, sorted.
    pub damaged_keys: Vec<String>,
    /// Blobs whose refcount is wrong.
    pub refcount_mismatches: Vec<RefcountMismatch>,
    /// Chunk files the index knows but the disk lacks (or that are shorter than committed).
    pub missing_chunk_files: Vec<u64>,
}

impl VerifyReport {
    /// True when nothing is damaged or inconsistent.
    pub fn is_clean(&self) -> bool {
        self.damaged_blobs.is_empty()
            && self.damaged_keys.is_empty()
            && self.refcount_mismatches.is_empty()
            && self.missing_chunk_files.is_empty()
    }
}

pub(crate) fn run(shared: &Shared, progress: &dyn Fn(u64, u64)) -> Result<VerifyReport> {
    let mut report = VerifyReport::default();

    for (id, rec) in shared.index.chunks()? {
        let path = shared.chunk_dir.join(pipecache_format::chunk_file_name(id));
        match std::fs::metadata(&path) {
            Ok(m) if m.len() >= rec.total_bytes && m.len() >= CHUNK_HEADER_LEN => {}
            Ok(_) => report.missing_chunk_files.push(id),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                report.missing_chunk_files.push(id)
            }
            Err(e) => return Err(Error::io(format!("stat {}", path.display()), e)),
        }
    }

    let mut blobs: Vec<(BlobHash, BlobRecord)> = Vec::new();
    for item in shared.index.scan_blobs() {
        blobs.push(item?);
    }
    // Chunk order, offset order: verify reads every chunk file front to back.
    let mut live: Vec<&(BlobHash, BlobRecord)> = blobs.iter().filter(|(_, r)| r.refs > 0).collect();
    live.sort_by_key(|(_, r)| (r.chunk, r.offset));
    let total: u64 = live.iter().map(|(_, r)| r.stored_len).sum();
    let mut damaged: HashMap<BlobHash, ()> = HashMap::new();
    for (hash, rec) in live {
        match shared.read_blob(None, *hash, rec) {
            Ok(_) => {}
            Err(e) => {
                damaged.insert(*hash, ());
                report.damaged_blobs.push(DamagedBlob {
                    hash: hash.to_hex(),
                    chunk: rec.chunk,
                    offset: rec.offset,
                    error: e.to_string(),
                });
            }
        }
        report.blobs_checked += 1;
        report.bytes_checked += rec.stored_len;
        progress(report.bytes_checked, total);
    }

    let recorded: HashMap<BlobHash, u64> = blobs.iter().map(|(h, r)| (*h, r.refs)).collect();
    let mut actual: HashMap<BlobHash, u64> = HashMap::new();
    for item in shared.index.scan_artifacts("") {
        let (key, rec) = item?;
        report.artifacts_checked += 1;
        let mut bad = false;
        for part in &rec.parts {
            *actual.entry(part.hash).or_default() += 1;
            if damaged.contains_key(&part.hash)
                || recorded.get(&part.hash).copied().unwrap_or(0) == 0
            {
                bad = true;
            }
        }
        if bad {
            report.damaged_keys.push(key);
        }
    }
    for (hash, refs) in &recorded {
        let real = actual.get(hash).copied().unwrap_or(0);
        if real != *refs {
            report.refcount_mismatches.push(RefcountMismatch {
                hash: hash.to_hex(),
                recorded: *refs,
                actual: real,
            });
        }
    }
    for (hash, real) in &actual {
        if !recorded.contains_key(hash) {
            report.refcount_mismatches.push(RefcountMismatch {
                hash: hash.to_hex(),
                recorded: 0,
                actual: *real,
            });
        }
    }
    report
        .refcount_mismatches
        .sort_by(|a, b| a.hash.cmp(&b.hash));
    Ok(report)
}
