//! The read path: index lookup, positioned reads of every part's blob, blake3 checks,
//! retry when a concurrent overwrite or compaction moved the bytes; and the caller-thread
//! half of a put (hashing, compression) before the writer gets it.

use std::collections::HashSet;

use std::sync::Arc;

use pipecache_format::record::{BlobRecord, PartRef};
use pipecache_format::{BlobHash, FRAME_HEADER_LEN, FrameHeader};

use crate::artifact::{Part, StoredArtifact};
use crate::direct::{DirectChunk, write_direct};
use crate::state::Shared;
use crate::writer::PreparedPart;
use crate::{Artifact, Error, Result};

/// Where a part's bytes came from: read through its location hint, or its blob record
/// as looked up (`None`: the index has none).
enum Located {
    Read(Vec<u8>),
    Looked(Option<BlobRecord>),
}

impl Shared {
    pub(crate) fn get_blocking(&self, key: &str) -> Result<Option<StoredArtifact>> {
        Ok(self.get_attempt(key, 0)?.map(|(stored, _)| stored))
    }

    /// [`Shared::get_blocking`] with the blake3 of each part, as the read checked it.
    pub(crate) fn get_hashed_blocking(
        &self,
        key: &str,
    ) -> Result<Option<(StoredArtifact, Vec<BlobHash>)>> {
        Ok(self
            .get_attempt(key, 0)?
            .map(|(stored, parts)| (stored, parts.iter().map(|p| p.hash).collect())))
    }

    /// True when `key` no longer holds the record read as `seq` (overwritten, deleted, evicted
    /// while we were reading it): a failed read is then a race, not corruption.
    fn record_changed(&self, key: &str, seq: u64) -> Result<bool> {
        Ok(self.index.artifact(key)?.is_none_or(|r| r.seq != seq))
    }

    /// The artifact, and the record's parts it was read (and checked) by.
    fn get_attempt(
        &self,
        key: &str,
        attempt: u32,
    ) -> Result<Option<(StoredArtifact, Vec<PartRef>)>> {
        let rec = match self.index.artifact(key) {
            Ok(Some(rec)) => rec,
            Ok(None) => {
                self.counters.misses.add(1);
                return Ok(None);
            }
            Err(e) => {
                let e = Error::from(e);
                if let Error::Corruption {
                    detail, in_index, ..
                } = e
                {
                    self.counters.corruption_errors.add(1);
                    return Err(Error::Corruption {
                        key: Some(key.to_owned()),
                        blob: None,
                        detail,
                        in_index,
                    });
                }
                return Err(e);
            }
        };
        let now = self.options.clock.now_ms();
        if rec.is_expired(now) {
            self.counters.misses.add(1);
            self.counters.expired_misses.add(1);
            return Ok(None);
        }
        let mut parts = Vec::with_capacity(rec.parts.len());
        for (part, located) in rec.parts.iter().zip(self.locate_parts(&rec.parts)?) {
            let blob = match located {
                Located::Read(data) => {
                    parts.push(Part {
                        name: part.name.clone(),
                        data,
                    });
                    continue;
                }
                Located::Looked(blob) => blob,
            };
            let Some(blob) = blob.filter(|b| b.refs > 0) else {
                if attempt < 3 && self.record_changed(key, rec.seq)? {
                    return self.get_attempt(key, attempt + 1);
                }
                self.counters.corruption_errors.add(1);
                return Err(Error::corruption(
                    Some(key),
                    Some(part.hash),
                    "blob is missing from the index",
                ));
            };
            let data = match self.read_blob_quiet(part.hash, &blob) {
                Ok(data) => data,
                Err(first) => {
                    // Compaction may have moved the blob (and removed its old chunk) between
                    // the index lookup and the read: look again before calling it corrupt.
                    match self.index.blob(&part.hash)? {
                        Some(now)
                            if now.refs > 0
                                && (now.chunk, now.offset) != (blob.chunk, blob.offset) =>
                        {
                            match self.read_blob_quiet(part.hash, &now) {
                                Ok(data) => data,
                                // Moved again (and its chunk removed) before this read: start
                                // over from the index rather than call a race corruption.
                                Err(_) if attempt < 3 => {
                                    return self.get_attempt(key, attempt + 1);
                                }
                                Err(_) => self.read_blob(Some(key), part.hash, &now)?,
                            }
                        }
                        _ if attempt < 3 && self.record_changed(key, rec.seq)? => {
                            return self.get_attempt(key, attempt + 1);
                        }
                        _ => {
                            return Err(self.count(Error::from_format(
                                first,
                                Some(key),
                                Some(part.hash),
                            )));
                        }
                    }
                }
            };
            parts.push(Part {
                name: part.name.clone(),
                data,
            });
        }
        self.counters.hits.add(1);
        // A read-only store has no writer to record access times.
        if !self.read_only {
            self.access
                .lock()
                .expect("access map poisoned")
                .insert(key.to_owned(), now);
        }
        let stored = StoredArtifact {
            artifact: Artifact {
                kind: rec.kind,
                parts,
                meta: rec.meta,
            },
            created_ms: rec.created_ms,
            expires_ms: rec.expires_ms,
        };
        Ok(Some((stored, rec.parts)))
    }

    /// Each part's bytes read from its location hint (see `PartRef::at`: a keyframes
    /// artifact's 320 blob lookups were most of its get in a 3M-blob store), or, where the
    /// hint is missing or fails (its blob moved), its blob record, looked up in one
    /// multi-get; a real fault is then reported from the looked-up path.
    fn locate_parts(&self, parts: &[PartRef]) -> Result<Vec<Located>> {
        let mut located: Vec<Located> = parts
            .iter()
            .map(|p| {
                self.read_hinted(p)
                    .map_or(Located::Looked(None), Located::Read)
            })
            .collect();
        let unhinted: Vec<BlobHash> = parts
            .iter()
            .zip(&located)
            .filter(|(_, l)| matches!(l, Located::Looked(_)))
            .map(|(p, _)| p.hash)
            .collect();
        if !unhinted.is_empty() {
            let mut blobs = self.index.blobs(&unhinted)?.into_iter();
            for l in &mut located {
                if let Located::Looked(slot) = l {
                    *slot = blobs.next().flatten();
                }
            }
        }
        Ok(located)
    }

    /// The part's bytes from its location hint, checked (frame hash and blake3); `None`
    /// when there is no hint or it fails, so the caller looks the blob up.
    fn read_hinted(&self, part: &PartRef) -> Option<Vec<u8>> {
        let at = part.at?;
        let stored_len = at.len.checked_sub(FRAME_HEADER_LEN as u64)?;
        self.reader(at.chunk)
            .and_then(|r| r.read_blob(at.offset, part.hash, stored_len))
            .ok()
    }

    pub(crate) fn prepare(
        &self,
        parts: Vec<Part>,
        policy: &pipecache_format::CompressionPolicy,
    ) -> Result<Vec<PreparedPart>> {
        let hashes: Vec<BlobHash> = parts.iter().map(|p| BlobHash::of(&p.data)).collect();
        let known = self.index.blobs(&hashes)?;
        let mut encoded_once = HashSet::new();
        parts
            .into_iter()
            .zip(hashes)
            .zip(known)
            .map(|((p, hash), known)| {
                // Compress here, on the caller's blocking thread, so the writer thread only
                // appends; blobs the store already has are never compressed again.
                let encoded = if known.is_none() && encoded_once.insert(hash) {
                    Some(policy.encode(&p.data)?)
                } else {
                    None
                };
                Ok(PreparedPart {
                    name: p.name,
                    hash,
                    raw: p.data,
                    encoded,
                    direct: None,
                })
            })
            .collect()
    }
}

/// Writes the new blobs of `parts` stored at `direct_write_min` bytes or more into a direct
/// chunk (see `direct`), on the caller's thread, and records where each went.
pub(crate) fn write_large_parts(
    shared: &Arc<Shared>,
    parts: &mut [PreparedPart],
) -> Result<Option<DirectChunk>> {
    let min = shared.options.direct_write_min;
    let large: Vec<usize> = (0..parts.len())
        .filter(|&i| {
            let p = &parts[i];
            p.encoded.as_ref().is_some_and(|(_, stored)| {
                stored.as_ref().map_or(p.raw.len(), Vec::len) as u64 >= min
            })
        })
        .collect();
    if large.is_empty() {
        return Ok(None);
    }
    let frames: Vec<(FrameHeader, &[u8])> = large
        .iter()
        .map(|&i| {
            let p = &parts[i];
            let (codec, stored) = p.encoded.as_ref().expect("selected for being encoded");
            let stored = stored.as_deref().unwrap_or(&p.raw);
            (
                FrameHeader::blob(p.hash, *codec, p.raw.len() as u64, stored),
                stored,
            )
        })
        .collect();
    let (chunk, placed) = write_direct(shared, &frames)?;
    for (i, at) in large.into_iter().zip(placed) {
        parts[i].direct = Some(at);
    }
    Ok(Some(chunk))
}
