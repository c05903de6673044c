//! What callers ask of the writer thread: the requests and the types they carry.

use std::collections::BTreeMap;

use pipecache_format::record::BlobRecord;
use pipecache_format::{BlobHash, Codec, FrameHeader};
use tokio::sync::oneshot;

use crate::direct::{DirectChunk, DirectFrame};
use crate::outbox::OutboxSlot;
use crate::{PutOutcome, Result};

/// A blob's bytes as prepared by the caller's thread (hashed, maybe compressed).
#[derive(Debug)]
pub(crate) struct PreparedPart {
    pub name: String,
    pub hash: BlobHash,
    pub raw: Vec<u8>,
    /// `Some` when the caller already chose a codec (the blob looked new when prepared).
    pub encoded: Option<(Codec, Option<Vec<u8>>)>,
    /// Where the caller already wrote the blob (see `direct`); `encoded` is `Some` then.
    pub direct: Option<DirectFrame>,
}

#[derive(Debug)]
pub(crate) struct PutRequest {
    pub key: String,
    pub kind: String,
    pub meta: BTreeMap<String, String>,
    pub parts: Vec<PreparedPart>,
    pub expires_ms: Option<u64>,
    /// `PutOptions::if_absent`.
    pub if_absent: bool,
    /// Write-back queue entries committed with the put (none when `if_absent` refuses it).
    pub queue: Vec<OutboxSlot>,
    /// The chunk the caller wrote this put's large blobs into, adopted by the commit.
    pub direct: Option<DirectChunk>,
    /// `written: false`: `if_absent` refused the put (nothing written, no queue entry).
    pub reply: oneshot::Sender<Result<PutOutcome>>,
}

/// What a maintenance request expects to find, re-checked when it applies.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Expect {
    /// The record still has this sequence number (not overwritten since it was chosen).
    Seq(u64),
    /// The record still expires at this time, and that time has passed.
    Expired(u64),
}

/// Why an artifact is removed by maintenance.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum RemovalReason {
    /// Its TTL passed.
    Expired,
    /// The size budget needed room.
    Evicted,
    /// Its bytes are lost (verify --repair).
    Lost,
}

#[derive(Debug)]
pub(crate) struct Victim {
    pub key: String,
    pub expect: Expect,
    pub reason: RemovalReason,
}

/// One frame of a chunk being compacted, read (and hash-checked) by the GC thread.
#[derive(Debug)]
pub(crate) struct RelocItem {
    pub offset: u64,
    pub header: FrameHeader,
    pub stored: Vec<u8>,
    /// Key named by a record or tombstone frame.
    pub key: Option<String>,
    /// Chunk a tombstone shadows.
    pub shadows: Option<u64>,
    /// A blob that was dead when scanned: `stored` is empty (its record only needs dropping).
    pub dead_at_scan: bool,
    /// The blob record the GC thread read for this frame.
    pub seen: Option<BlobRecord>,
}

/// What relocating one chunk did.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize)]
pub struct RelocOutcome {
    /// Live blobs copied.
    pub blobs_moved: u64,
    /// Record and tombstone frames copied.
    pub frames_moved: u64,
    /// Dead blob records dropped with the chunk.
    pub dead_blobs_dropped: u64,
    /// Bytes appended to the open chunk.
    pub bytes_copied: u64,
    /// Size of the chunk file that was removed.
    pub file_bytes_removed: u64,
}

impl std::ops::AddAssign for RelocOutcome {
    fn add_assign(&mut self, o: Self) {
        self.blobs_moved += o.blobs_moved;
        self.frames_moved += o.frames_moved;
        self.dead_blobs_dropped += o.dead_blobs_dropped;
        self.bytes_copied += o.bytes_copied;
        self.file_bytes_removed += o.file_bytes_removed;
    }
}

/// The writer's answer to one relocation batch.
#[derive(Debug)]
pub(crate) struct RelocReply {
    /// `None`: refused (the chunk grew since it was scanned, or a put revived a blob that was
    /// dead at scan time); what earlier batches moved stays moved.
    pub outcome: Option<RelocOutcome>,
    /// The batch's `epoch` was current when the writer took it: no commit but this batch's own
    /// happened since the sender's records were read, so records of frames the batch did not
    /// carry are still current at `epoch_after`.
    pub seen_current: bool,
    /// `Shared::commit_epoch` once the batch is done.
    pub epoch_after: u64,
}

#[derive(Debug)]
pub(crate) enum Request {
    Put(PutRequest),
    Delete {
        key: String,
        /// Write-back queue entries committed with the delete.
        queue: Vec<OutboxSlot>,
        reply: oneshot::Sender<Result<bool>>,
    },
    /// Write pending access times now (close, gc, tests).
    FlushAccess {
        reply: oneshot::Sender<Result<()>>,
    },
    Evict {
        victims: Vec<Victim>,
        reply: oneshot::Sender<Result<Vec<(String, u64, RemovalReason)>>>,
    },
    DropDeadBlobs {
        hashes: Vec<BlobHash>,
        reply: oneshot::Sender<Result<u64>>,
    },
    Relocate {
        chunk: u64,
        /// Committed length of the chunk when it was scanned: if the chunk has grown since (it
        /// was the open chunk and puts appended to it), the relocation is refused, because the
        /// new frames are not in `items`.
        scanned_len: u64,
        items: Vec<RelocItem>,
        /// The chunk's last batch: drop the chunk record and unlink the file.
        last: bool,
        /// `Shared::commit_epoch` at which the items' `seen` blob records were the index's
        /// state (`u64::MAX`: unknown, read them again).
        epoch: u64,
        reply: oneshot::Sender<Result<RelocReply>>,
    },
    RemoveOrphans {
        reply: oneshot::Sender<Result<Vec<u64>>>,
    },
    /// Drop keys and blob records, then recount refcounts, chunk live bytes and totals.
    Repair {
        drop_keys: Vec<String>,
        drop_blobs: Vec<BlobHash>,
        drop_chunks: Vec<u64>,
        /// Keys whose record frame is lost: append a fresh copy.
        rewrite_records: Vec<String>,
        reply: oneshot::Sender<Result<(Vec<String>, u64)>>,
    },
}

impl Request {
    pub(super) fn payload_bytes(&self) -> u64 {
        match self {
            // Bytes the writer appends: direct blobs are written already.
            Request::Put(p) => p
                .parts
                .iter()
                .filter(|x| x.direct.is_none())
                .map(|x| x.raw.len() as u64)
                .sum(),
            _ => 0,
        }
    }

    pub(super) fn is_group(&self) -> bool {
        matches!(
            self,
            Request::Put(_) | Request::Delete { .. } | Request::FlushAccess { .. }
        )
    }
}
