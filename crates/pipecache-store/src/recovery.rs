//! Reconciling chunk files with the index: at open (the store meta of a fresh index,
//! orphan chunk files, the open chunk's committed length) and after a writer error.

use std::collections::HashSet;
use std::fs;

use pipecache_format::record::{RECORD_VERSION, StoreMeta, Totals};
use pipecache_format::{ChunkWriter, FormatError, parse_chunk_file_name, sync_dir};
use pipecache_index::IndexWriter;

use crate::state::Shared;
use crate::{Error, Result};

/// Removes chunk files the index does not reference: left by a crash before their batch
/// committed, or by a compaction that committed but did not get to unlink. Only the writer
/// thread (or open, before it starts) may call this: a chunk being created by an uncommitted
/// batch would look like an orphan.
pub(crate) fn remove_orphan_chunks(shared: &Shared) -> Result<Vec<u64>> {
    let known: HashSet<u64> = shared
        .index
        .chunks()?
        .into_iter()
        .map(|(id, _)| id)
        .collect();
    let mut removed = Vec::new();
    let list_err = |e| Error::io(format!("list {}", shared.chunk_dir.display()), e);
    for entry in fs::read_dir(&shared.chunk_dir).map_err(list_err)? {
        let entry = entry.map_err(list_err)?;
        let Some(id) = entry.file_name().to_str().and_then(parse_chunk_file_name) else {
            continue;
        };
        // A direct chunk's file exists before its put commits (see `direct`).
        if !known.contains(&id) && !shared.is_direct_in_flight(id) {
            let path = entry.path();
            tracing::info!(chunk = id, path = %path.display(), "removing chunk file no committed entry references");
            shared.forget_reader(id);
            fs::remove_file(&path)
                .map_err(|e| Error::io(format!("remove {}", path.display()), e))?;
            removed.push(id);
        }
    }
    if !removed.is_empty() {
        sync_dir(&shared.chunk_dir)?;
    }
    Ok(removed)
}

/// Reconciles chunk files with the index: creates the store meta on a fresh index, removes chunk
/// files the index does not reference (left by a crash before their batch committed), and
/// reopens the open chunk after its committed length (dropping any uncommitted tail).
pub(crate) fn recover_chunks(
    shared: &Shared,
    index_writer: &IndexWriter,
) -> Result<(StoreMeta, Option<ChunkWriter>)> {
    let index = &shared.index;
    let mut files = Vec::new();
    for entry in fs::read_dir(&shared.chunk_dir)
        .map_err(|e| Error::io(format!("list {}", shared.chunk_dir.display()), e))?
    {
        let entry =
            entry.map_err(|e| Error::io(format!("list {}", shared.chunk_dir.display()), e))?;
        if let Some(id) = entry.file_name().to_str().and_then(parse_chunk_file_name) {
            files.push((id, entry.path()));
        }
    }
    let meta = match index.meta()? {
        Some(meta) => meta,
        None => {
            if !files.is_empty() {
                return Err(Error::IndexMissing {
                    path: shared.dir.clone(),
                });
            }
            let meta = StoreMeta {
                v: RECORD_VERSION,
                next_chunk_id: 1,
                open_chunk: None,
                totals: Totals::default(),
                created_ms: shared.options.clock.now_ms(),
                next_seq: 1,
            };
            let mut b = index_writer.batch();
            b.put_meta(&meta);
            index_writer.commit(b, true)?;
            meta
        }
    };
    drop(files);
    remove_orphan_chunks(shared)?;
    shared.chunk_ids_from(meta.next_chunk_id);
    let chunk = match meta.open_chunk {
        None => None,
        Some(id) => match index.chunk(id)? {
            Some(rec) if !rec.sealed => {
                match ChunkWriter::open_append(&shared.chunk_dir, id, rec.total_bytes) {
                    Ok(w) => Some(w),
                    Err(e @ FormatError::UnsupportedVersion { .. }) => {
                        // Written by a newer pipecache: appending to it would mix formats.
                        return Err(Error::from(e));
                    }
                    Err(e) => {
                        // The committed part of this chunk is damaged or gone: never append to it
                        // (verify reports the loss); new blobs go to a fresh chunk.
                        tracing::error!(chunk = id, error = %e, "open chunk is unusable; starting a new one");
                        None
                    }
                }
            }
            _ => None,
        },
    };
    Ok((meta, chunk))
}
