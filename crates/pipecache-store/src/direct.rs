//! Direct chunks: a put's large new blobs, written by the putting thread.
//!
//! The writer thread appends every frame of a group to one open chunk, so a 10 MB blob
//! waits behind every other put's bytes and one thread's write rate caps every put. A put
//! whose new blobs are stored at `direct_write_min` bytes or more writes them instead into a
//! chunk file of its own, on the caller's blocking thread, in parallel with other puts, and
//! fsyncs the file before the put reaches the writer. The writer fsyncs the chunk directory
//! once for every direct chunk of a group, then commits the blobs' records pointing into
//! those chunks (sealed from birth) in the group's batch, like any other put. So invariant 1 (frames durable before the commit that
//! references them) and invariant 3 (one index writer) hold as before.
//!
//! A direct chunk its put's commit does not adopt (the put failed or was refused, or every
//! blob in it was found present by then) is deleted when its [`DirectChunk`] guard drops. A
//! crash before the commit leaves an orphan chunk file, removed at the next open like any
//! other. Until then the chunk is "in flight" (`Shared::is_direct_in_flight`), so orphan
//! removal and verify leave it alone.

use std::sync::Arc;

use pipecache_format::chunk::CHUNK_HEADER_LEN;
use pipecache_format::{FRAME_HEADER_LEN, FrameHeader, chunk_file_name, write_chunk_file};

use crate::options::Durability;
use crate::space::write_room;
use crate::state::Shared;
use crate::{Error, Result};

/// Where one blob of a put was written directly.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct DirectFrame {
    pub chunk: u64,
    pub offset: u64,
    /// Length of the whole direct chunk file (its committed length).
    pub chunk_len: u64,
}

/// A direct chunk on its way to the writer. Dropped without [`DirectChunk::adopt`], it
/// deletes its file; either way it stops being in flight.
#[derive(Debug)]
pub(crate) struct DirectChunk {
    shared: Arc<Shared>,
    id: u64,
    adopted: bool,
}

impl DirectChunk {
    pub(crate) fn id(&self) -> u64 {
        self.id
    }

    /// The index now references the chunk: keep its file.
    pub(crate) fn adopt(mut self) {
        self.adopted = true;
    }
}

impl Drop for DirectChunk {
    fn drop(&mut self) {
        if !self.adopted {
            let path = self.shared.chunk_dir.join(chunk_file_name(self.id));
            match std::fs::remove_file(&path) {
                Ok(()) => {}
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                // Left for the next open's (or gc's) orphan removal.
                Err(e) => {
                    tracing::warn!(path = %path.display(), error = %e, "unused direct chunk not removed")
                }
            }
        }
        self.shared.set_direct_in_flight(self.id, false);
    }
}

/// Writes `frames` into a new direct chunk and returns its guard and where each frame went.
/// Refused with [`Error::NoSpace`] before anything is written when the chunk would leave
/// less than `min_free_space` free.
pub(crate) fn write_direct(
    shared: &Arc<Shared>,
    frames: &[(FrameHeader, &[u8])],
) -> Result<(DirectChunk, Vec<DirectFrame>)> {
    let need = CHUNK_HEADER_LEN
        + frames
            .iter()
            .map(|(_, p)| (FRAME_HEADER_LEN + p.len()) as u64)
            .sum::<u64>();
    check_room(shared, need)?;
    let id = shared.take_chunk_id();
    // In flight before the file exists: orphan removal lists the directory, then asks.
    shared.set_direct_in_flight(id, true);
    let guard = DirectChunk {
        shared: shared.clone(),
        id,
        adopted: false,
    };
    let sync = shared.options.durability == Durability::Fsync;
    let now = shared.options.clock.now_ms();
    let (chunk_len, offsets) = write_chunk_file(&shared.chunk_dir, id, now, frames, sync)?;
    let placed = offsets
        .into_iter()
        .map(|offset| DirectFrame {
            chunk: id,
            offset,
            chunk_len,
        })
        .collect();
    Ok((guard, placed))
}

/// The `min_free_space` check the writer makes for its own appends (`refuse_puts_over_space`).
fn check_room(shared: &Shared, need: u64) -> Result<()> {
    match write_room(&shared.chunk_dir, shared.options.min_free_space) {
        Some(r) if r.room < need => Err(Error::NoSpace {
            detail: format!(
                "a put's large blobs need {need} bytes; {} bytes are free on the store's filesystem and min_free_space keeps {}",
                r.free_bytes, r.min_free
            ),
        }),
        _ => Ok(()),
    }
}
