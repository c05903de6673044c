//! What the artifact records imply for the rest of the index: references per blob, live
//! bytes per chunk, artifact count and logical bytes. `verify` compares the index with it,
//! and the writer's `repair` and recount write it. Also the chunk files' bytes on disk and
//! the live bytes compaction cannot free.

use std::collections::HashMap;

use pipecache_format::chunk::CHUNK_HEADER_LEN;
use pipecache_format::{BlobHash, chunk_file_name};

use crate::Result;
use crate::state::Shared;

/// What the artifact records say the index should hold; `verify` compares with it and
/// `repair` writes it.
pub(crate) struct RecordCounts {
    /// References per blob.
    pub refs: HashMap<BlobHash, u64>,
    /// Live bytes per chunk from artifact-record frames alone; the frames of blobs with at
    /// least one reference are added from their blob records.
    pub live: HashMap<u64, u64>,
    /// Artifact records.
    pub artifacts: u64,
    /// Sum of their logical sizes.
    pub logical: u64,
}

pub(crate) fn record_counts(index: &pipecache_index::Index) -> Result<RecordCounts> {
    let mut counts = RecordCounts {
        refs: HashMap::new(),
        live: HashMap::new(),
        artifacts: 0,
        logical: 0,
    };
    for item in index.scan_artifacts("") {
        let (_, rec) = item?;
        counts.artifacts += 1;
        counts.logical += rec.logical_size;
        for p in &rec.parts {
            *counts.refs.entry(p.hash).or_default() += 1;
        }
        if let Some(f) = rec.frame {
            *counts.live.entry(f.chunk).or_default() += f.len;
        }
    }
    Ok(counts)
}

/// Bytes of chunk files on disk.
pub(crate) fn disk_bytes(shared: &Shared) -> Result<u64> {
    let mut total = 0;
    for (id, _) in shared.index.chunks()? {
        let path = shared.chunk_dir.join(chunk_file_name(id));
        total += std::fs::metadata(&path).map(|m| m.len()).unwrap_or(0);
    }
    Ok(total)
}

/// Frame bytes still referenced, plus one chunk header per chunk: what compaction cannot free.
pub(crate) fn live_bytes(shared: &Shared) -> Result<u64> {
    Ok(shared
        .index
        .chunks()?
        .iter()
        .map(|(_, c)| c.live_bytes + CHUNK_HEADER_LEN)
        .sum())
}
