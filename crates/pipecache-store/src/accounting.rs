//! What the artifact records imply for the rest of the index: references per blob, live
//! bytes per chunk, artifact count and logical bytes. `verify` compares the index with it,
//! and the writer's `repair` and recount write it.

use std::collections::HashMap;

use pipecache_format::BlobHash;

use crate::Result;

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
