//! Compaction: chunks whose live share fell under `compact_threshold` (and, over budget, any
//! chunk with dead bytes) have their live frames moved to the open chunk in bounded batches,
//! then their files unlinked, by the writer. Planning and reading the frames to copy run on
//! the caller's thread; the writer re-checks every frame's location when it applies a batch.

use std::collections::HashMap;

use crossbeam_channel::Sender;
use pipecache_format::chunk::CHUNK_HEADER_LEN;
use pipecache_format::record::{Record, RecordFrame, TombstoneFrame};
use pipecache_format::{BlobHash, ChunkScanner, FrameKind, chunk_file_name};
use rustc_hash::FxHashMap;
use serde::Serialize;

use crate::accounting::disk_bytes;
use crate::job::{ProgressFn, call};
use crate::state::Shared;
use crate::writer::{RelocItem, RelocOutcome, Request};
use crate::{Error, Result};

/// What compaction did.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct CompactReport {
    /// Chunks whose live frames were copied out and whose files were removed.
    pub chunks_compacted: Vec<u64>,
    /// Chunks that needed compaction but were left in place: they did not read back completely
    /// (see `verify`), or puts appended to them while they were being scanned (next pass).
    pub chunks_skipped: Vec<u64>,
    /// Live blobs copied.
    pub blobs_moved: u64,
    /// Record and tombstone frames copied.
    pub frames_moved: u64,
    /// Dead blob records dropped with their chunks.
    pub dead_blobs_dropped: u64,
    /// Bytes written into the open chunk.
    pub bytes_copied: u64,
    /// Bytes of chunk files removed.
    pub bytes_removed: u64,
}

impl CompactReport {
    fn add(&mut self, id: u64, o: RelocOutcome) {
        self.chunks_compacted.push(id);
        self.blobs_moved += o.blobs_moved;
        self.frames_moved += o.frames_moved;
        self.dead_blobs_dropped += o.dead_blobs_dropped;
        self.bytes_copied += o.bytes_copied;
        self.bytes_removed += o.file_bytes_removed;
    }
}

/// Dead bytes at which the open chunk becomes a compaction candidate like a sealed one.
const OPEN_CHUNK_MIN_DEAD: u64 = 1 << 20;

/// Compacts chunks: sealed chunks (and an open chunk with at least a MiB dead) under
/// `compact_threshold` live, and, while the store is over its budget on disk, any chunk with
/// dead bytes (most dead first, the open chunk included).
#[tracing::instrument(level = "info", skip_all)]
pub(crate) fn compact(
    shared: &Shared,
    tx: &Sender<Request>,
    dry_run: bool,
    limit: Option<usize>,
    progress: ProgressFn<'_>,
) -> Result<CompactReport> {
    let mut report = CompactReport::default();
    let chunks = shared.index.chunks()?;
    let threshold = shared.options.compact_threshold;
    let dead_of = |c: &pipecache_format::record::ChunkRecord| {
        c.total_bytes
            .saturating_sub(CHUNK_HEADER_LEN)
            .saturating_sub(c.live_bytes)
    };
    let open = shared.index.meta()?.and_then(|m| m.open_chunk);
    let mut plan: Vec<(u64, u64)> = chunks
        .iter()
        .filter(|(id, c)| {
            let payload = c.total_bytes.saturating_sub(CHUNK_HEADER_LEN);
            // The open chunk too once it holds a MiB of dead bytes: a batch of puts that was
            // deleted again (a demo, a cancelled job) would otherwise sit there until the
            // chunk fills, which on a quiet store is never.
            let candidate = c.sealed || (Some(*id) == open && dead_of(c) >= OPEN_CHUNK_MIN_DEAD);
            candidate && dead_of(c) > 0 && (c.live_bytes as f64) < threshold * payload as f64
        })
        .map(|(id, c)| (*id, dead_of(c)))
        .collect();
    if let Some(max) = shared.options.max_size {
        // Under budget pressure dead bytes count in any chunk, not only in mostly-dead ones:
        // above max_size, chunks at least 10% dead; above max_size + one chunk (the documented
        // bound), any chunk with dead bytes. Rewriting a whole chunk to reclaim 2% of it is
        // only worth it when the bound demands it.
        let hard = max.saturating_add(shared.options.chunk_size);
        let mut disk = disk_bytes(shared)?;
        let mut pressured: Vec<(u64, u64)> = chunks
            .iter()
            .filter(|(id, c)| dead_of(c) > 0 && !plan.iter().any(|(p, _)| p == id))
            .map(|(id, c)| (*id, dead_of(c)))
            .collect();
        pressured.sort_by_key(|(_, dead)| std::cmp::Reverse(*dead));
        disk = disk.saturating_sub(plan.iter().map(|(_, d)| d).sum::<u64>());
        for (id, dead) in pressured {
            if disk <= max {
                break;
            }
            let payload = chunks
                .iter()
                .find(|(c, _)| *c == id)
                .map_or(0, |(_, c)| c.total_bytes - CHUNK_HEADER_LEN);
            if disk <= hard && dead * 10 < payload {
                continue;
            }
            plan.push((id, dead));
            disk = disk.saturating_sub(dead);
        }
    }
    // The open chunk first (when planned): everything compacted after it is copied into a fresh
    // chunk that is not in the plan, so no byte is copied twice. Then most dead bytes first.
    plan.sort_by_key(|(id, dead)| (Some(*id) != open, std::cmp::Reverse(*dead)));
    if let Some(limit) = limit {
        plan.truncate(limit);
    }
    let total = plan.len() as u64;
    let ids: Vec<u64> = plan.iter().map(|(id, _)| *id).collect();
    let mut prescan = Prescan::empty();
    for (i, (id, dead)) in plan.into_iter().enumerate() {
        progress("compact", i as u64, total);
        if dry_run {
            report.chunks_compacted.push(id);
            report.bytes_removed += dead;
            continue;
        }
        if !prescan.covers(id) {
            prescan = Prescan::read(shared, &ids[i..])?;
        }
        let Some(rec) = shared.index.chunk(id)? else {
            continue;
        };
        let started = std::time::Instant::now();
        let relocated = relocate_chunk(shared, tx, id, rec.total_bytes, &mut prescan);
        tracing::debug!(
            chunk = id,
            elapsed_ms = started.elapsed().as_millis() as u64,
            "chunk compacted"
        );
        match relocated {
            Ok(Some(outcome)) => report.add(id, outcome),
            Ok(None) => report.chunks_skipped.push(id),
            // A damaged chunk stays where it is (verify names its keys); compacting the rest
            // is still worth it. Anything else (the writer failing, an I/O error) is the
            // caller's to see, not a skipped chunk.
            Err(e) if e.is_corruption() => {
                tracing::error!(chunk = id, error = %e, "chunk cannot be compacted: it does not read back completely");
                report.chunks_skipped.push(id);
            }
            Err(e) => return Err(e),
        }
    }
    progress("compact", total, total);
    Ok(report)
}

/// Share of all chunk bytes the chunks of a compaction plan must hold for one scan of the
/// `blobs` CF to replace per-frame lookups. From docs/performance.md ("GC"): ~1M random
/// lookups cost ~6 s, a sequential scan of 1M records well under 1 s: break-even near a
/// plan holding 1/12 to 1/16 of all blobs, so 1/16 scans whenever it is likely to pay.
const PRESCAN_MIN_SHARE: f64 = 1.0 / 16.0;

/// Frames per multi-get when filtering blob frames against the index.
const FILTER_BATCH: usize = 4096;
/// Frames per relocation request (bytes are bounded by `StoreOptions::compact_batch_bytes`).
const RELOCATE_BATCH_ITEMS: usize = 32 * 1024;

/// Where the index located one blob of a chunk about to be compacted, and its refcount. The
/// record's other fields (lengths, codec) are the frame header's, which relocation copies
/// verbatim.
#[derive(Clone, Copy, Debug)]
struct Located {
    offset: u64,
    refs: u64,
    /// First 8 bytes of the blob hash: the frame found at `offset` must carry this hash.
    hash_prefix: u64,
}

fn hash_prefix(hash: &pipecache_format::BlobHash) -> u64 {
    u64::from_le_bytes(hash.0[..8].try_into().expect("8 bytes"))
}

/// The blob records of one chunk, by offset, as of the prescan.
#[derive(Debug, Default)]
struct ChunkPrescan {
    /// The chunk's committed length before the scan began: every frame below it was committed
    /// before the snapshot, so the snapshot locates it if anything does. Frames past it (puts
    /// appended to the open chunk since) are filtered by point lookups.
    covered_len: u64,
    located: Vec<Located>,
}

impl ChunkPrescan {
    /// The record of the blob frame at `offset` with `hash`, if the snapshot locates it there.
    /// `cursor` walks `located` forward: frames are looked up in offset order.
    fn find(&self, cursor: &mut usize, offset: u64, hash: &BlobHash) -> Option<&Located> {
        while *cursor < self.located.len() && self.located[*cursor].offset < offset {
            *cursor += 1;
        }
        self.located
            .get(*cursor)
            .filter(|l| l.offset == offset && l.hash_prefix == hash_prefix(hash))
    }
}

/// The blob records of the chunks about to be compacted, from one scan of the `blobs` CF in
/// key order, bucketed by chunk and sorted by offset. Filtering a chunk's frames against it
/// replaces a random point lookup per frame (the dominant cost of a pass over many small
/// blobs, see docs/performance.md).
///
/// Filtering never needs the snapshot current: a frame the snapshot does not locate at its
/// (chunk, offset) is never located there later (writes append past `covered_len`), and a
/// blob dead in the snapshot but revived since is caught by the writer's re-check. Handing
/// the records to the writer as already read does: they are the index's state at `valid_at`.
/// Relocation commits change only the records of the frames they carry, never those of
/// frames still to come, so after each batch the writer reports (`RelocReply::seen_current`)
/// whether its commit was the only one since; while it was, `valid_at` moves to the epoch
/// after it. Any other commit (a concurrent put or delete) makes it `None`, and the writer
/// reads the records again.
struct Prescan {
    valid_at: Option<u64>,
    /// Chunks this prescan decided: `Some` = their blob records, `None` = too many for
    /// `StoreOptions::gc_prescan_max_blobs` on their own, filter by point lookups.
    chunks: HashMap<u64, Option<ChunkPrescan>>,
}

impl Prescan {
    fn empty() -> Self {
        Self {
            valid_at: None,
            chunks: HashMap::new(),
        }
    }

    /// Scans the blobs CF once for chunks `wanted` (in plan order), keeping the longest prefix
    /// of them whose blobs fit in `StoreOptions::gc_prescan_max_blobs` together (the first one
    /// is always decided, if need be as "too many").
    ///
    /// A scan reads every blob record of the store, so it pays only when the chunks wanted
    /// hold a good share of them ([`PRESCAN_MIN_SHARE`] of all chunk bytes); otherwise (a
    /// background step compacting one chunk of many) every wanted chunk is decided as
    /// "filter by point lookups", which cost one lookup per frame of those chunks only.
    fn read(shared: &Shared, wanted: &[u64]) -> Result<Self> {
        let max = shared.options.gc_prescan_max_blobs;
        let started = std::time::Instant::now();
        let before = shared.epoch();
        // Read here, not taken from `compact`'s plan: a later round runs after earlier
        // chunks moved their blobs, and each chunk's covered length must be current.
        let lens: HashMap<u64, u64> = shared
            .index
            .chunks()?
            .into_iter()
            .map(|(id, c)| (id, c.total_bytes))
            .collect();
        let all: u64 = lens.values().sum();
        let planned: u64 = wanted.iter().filter_map(|id| lens.get(id)).sum();
        if (planned as f64) < all as f64 * PRESCAN_MIN_SHARE {
            return Ok(Self {
                valid_at: None,
                chunks: wanted.iter().map(|id| (*id, None)).collect(),
            });
        }
        let rank: FxHashMap<u64, usize> =
            wanted.iter().enumerate().map(|(i, id)| (*id, i)).collect();
        let mut located: FxHashMap<u64, Vec<Located>> = FxHashMap::default();
        let mut held = 0usize;
        let mut cutoff = wanted.len(); // chunks ranked at or after this are left for later
        let mut first_too_big = false;
        for item in shared.index.scan_blobs() {
            let (hash, rec) = item?;
            let Some(&r) = rank.get(&rec.chunk) else {
                continue;
            };
            if r >= cutoff || (r == 0 && first_too_big) {
                continue;
            }
            located.entry(rec.chunk).or_default().push(Located {
                offset: rec.offset,
                refs: rec.refs,
                hash_prefix: hash_prefix(&hash),
            });
            held += 1;
            while held > max {
                if cutoff > 1 {
                    // Leave the lowest-ranked chunk held for a later round.
                    cutoff -= 1;
                    held -= located.remove(&wanted[cutoff]).map_or(0, |v| v.len());
                } else {
                    first_too_big = true;
                    held -= located.remove(&wanted[0]).map_or(0, |v| v.len());
                }
            }
        }
        let mut chunks: HashMap<u64, Option<ChunkPrescan>> = HashMap::new();
        for id in &wanted[..cutoff] {
            let mut located = located.remove(id).unwrap_or_default();
            located.sort_unstable_by_key(|l| l.offset);
            let covered_len = lens.get(id).copied().unwrap_or(0);
            chunks.insert(
                *id,
                Some(ChunkPrescan {
                    covered_len,
                    located,
                }),
            );
        }
        if first_too_big {
            chunks.insert(wanted[0], None);
        }
        let valid_at = (shared.epoch() == before).then_some(before);
        tracing::debug!(
            chunks = chunks.len(),
            located = held,
            elapsed_ms = started.elapsed().as_millis() as u64,
            "prescan of the blobs CF done"
        );
        Ok(Self { valid_at, chunks })
    }

    fn covers(&self, id: u64) -> bool {
        self.chunks.contains_key(&id)
    }
}

/// Compacts chunk `id`: streams its frames (hash-checked) up to the committed length and sends
/// them to the writer in bounded batches. Every batch commits its moves on its own (a crash
/// between batches leaves moved blobs pointing at their new copies and stale copies in the old
/// chunk, both consistent); only the last batch, sent after the whole chunk read back, drops
/// the chunk. `Ok(None)`: the chunk changed under us (appended to, or a dead blob revived);
/// what moved stays moved and the next pass finishes it.
// tidy: long function, on purpose (~120 lines): the batch being built (`ready`, `lookup`,
// `records`) and the epochs its records were read at change together on every frame;
// split across functions, the invariants between them would be harder to see.
fn relocate_chunk(
    shared: &Shared,
    tx: &Sender<Request>,
    id: u64,
    committed: u64,
    prescan: &mut Prescan,
) -> Result<Option<RelocOutcome>> {
    let path = shared.chunk_dir.join(chunk_file_name(id));
    let mut scanner = ChunkScanner::open(&path)?.keep_stored(true);
    let chunk_prescan = prescan.chunks.remove(&id).flatten();
    let mut cursor = 0usize;
    // Frames the prescan does not cover, waiting for one multi-get. Frames come in offset
    // order and uncovered ones only after covered ones, so `ready` stays in chunk order.
    let mut lookup: Vec<RelocItem> = Vec::new();
    let mut lookup_bytes = 0u64;
    let mut ready: Vec<RelocItem> = Vec::new();
    let mut ready_bytes = 0u64;
    // Artifact record frames wait for the last batch, which also drops the chunk: moved
    // earlier, a record would leave a stale copy behind if a later batch never applied (a
    // damaged frame further on), and once that record's key was deleted and its tombstone
    // compacted away, `rebuild-index` could bring the key back from the stale copy.
    let mut records: Vec<RelocItem> = Vec::new();
    // What the records handed to the writer in `ready` were read from.
    let (mut from_prescan, mut from_lookup) = (false, false);
    let mut total = RelocOutcome::default();
    // The epoch before this batch's point lookups.
    let mut epoch = shared.epoch();
    loop {
        let frame = if scanner.offset() < committed {
            scanner.next_frame()?
        } else {
            None
        };
        let done = frame.is_none();
        if let Some(frame) = frame {
            let mut item = relocation_item(frame)?;
            match &chunk_prescan {
                _ if item.header.kind == FrameKind::ArtifactRecord => records.push(item),
                Some(p) if item.offset < p.covered_len => {
                    let keep = item.header.kind == FrameKind::Tombstone
                        || match p.find(&mut cursor, item.offset, &item.header.hash) {
                            Some(l) => {
                                keep_located(&mut item, id, l.refs);
                                from_prescan = true;
                                true
                            }
                            None => false, // the index uses another copy, or none
                        };
                    if keep {
                        ready_bytes += item.stored.len() as u64;
                        ready.push(item);
                    }
                }
                _ => {
                    lookup_bytes += item.stored.len() as u64;
                    lookup.push(item);
                }
            }
        }
        // Bounded by bytes too: frames waiting for their lookup hold their payloads.
        if lookup.len() >= FILTER_BATCH
            || lookup_bytes >= shared.options.compact_batch_bytes
            || (done && !lookup.is_empty())
        {
            lookup_bytes = 0;
            filter_blob_items(shared, id, &mut lookup)?;
            from_lookup = true;
            for item in lookup.drain(..) {
                ready_bytes += item.stored.len() as u64;
                ready.push(item);
            }
        }
        if done && scanner.offset() != committed {
            return Err(Error::corruption(
                None,
                None,
                format!(
                    "chunk {id}: frames end at {}, committed length is {committed}",
                    scanner.offset()
                ),
            ));
        }
        if done
            || ready_bytes >= shared.options.compact_batch_bytes
            || ready.len() >= RELOCATE_BATCH_ITEMS
        {
            let mut items = std::mem::take(&mut ready);
            if done {
                items.append(&mut records);
            }
            ready_bytes = 0;
            // The epoch at which every `seen` record in the batch was the index's state, or
            // one no commit matches when the prescan's and the lookups' disagree.
            let sent_epoch = batch_epoch(from_prescan, from_lookup, epoch, prescan.valid_at);
            (from_prescan, from_lookup) = (false, false);
            let request = |reply| Request::Relocate {
                chunk: id,
                scanned_len: committed,
                items,
                last: done,
                epoch: sent_epoch,
                reply,
            };
            let answer = call(tx, request);
            prescan.valid_at = match &answer {
                Ok(a) if a.seen_current && prescan.valid_at == Some(sent_epoch) => {
                    Some(a.epoch_after)
                }
                _ => None,
            };
            let answer = answer?;
            // The next batch's lookups start after this commit.
            epoch = shared.epoch();
            match answer.outcome {
                Some(outcome) => total += outcome,
                None => return Ok(None),
            }
            if done {
                return Ok(Some(total));
            }
        }
    }
}

/// A scanned frame as the writer relocates it; a record or tombstone names its key.
fn relocation_item(frame: pipecache_format::ScannedFrame) -> Result<RelocItem> {
    let (key, shadows) = match frame.header.kind {
        FrameKind::Blob => (None, None), // checked against the index by the caller
        FrameKind::ArtifactRecord => (Some(RecordFrame::decode(&frame.payload)?.key), None),
        FrameKind::Tombstone => {
            let t = TombstoneFrame::decode(&frame.payload)?;
            (Some(t.key), t.shadows)
        }
    };
    Ok(RelocItem {
        offset: frame.offset,
        header: frame.header,
        stored: frame.stored.expect("scanner keeps stored bytes"),
        key,
        shadows,
        dead_at_scan: false,
        seen: None,
    })
}

/// The epoch at which every `seen` record of a batch was the index's state: the lookups'
/// (`lookup_epoch`), the prescan's (`prescan_at`), or one no commit matches when both
/// contributed and disagree.
fn batch_epoch(
    from_prescan: bool,
    from_lookup: bool,
    lookup_epoch: u64,
    prescan_at: Option<u64>,
) -> u64 {
    match (from_prescan, from_lookup) {
        (false, _) => lookup_epoch,
        (true, false) => prescan_at.unwrap_or(u64::MAX),
        (true, true) if prescan_at == Some(lookup_epoch) => lookup_epoch,
        (true, true) => u64::MAX,
    }
}

/// Marks a blob frame the prescan located here (see [`keep_seen`]).
fn keep_located(item: &mut RelocItem, chunk: u64, refs: u64) {
    let rec = pipecache_format::record::BlobRecord {
        v: pipecache_format::record::RECORD_VERSION,
        chunk,
        offset: item.offset,
        stored_len: item.header.stored_len,
        raw_len: item.header.raw_len,
        codec: item.header.codec as u8,
        refs,
    };
    keep_seen(item, rec);
}

/// Marks a blob frame the index locates here: its record travels with it to the writer, its
/// bytes only if it is live (the writer needs only the hash of a dead one to drop it).
fn keep_seen(item: &mut RelocItem, rec: pipecache_format::record::BlobRecord) {
    item.seen = Some(rec);
    if rec.refs == 0 {
        item.stored = Vec::new();
        item.dead_at_scan = true;
    }
}

/// Keeps blob frames the index still locates here and drops the bytes of dead ones (most of a
/// chunk worth compacting): the writer only needs their hash to drop their records.
fn filter_blob_items(shared: &Shared, id: u64, items: &mut Vec<RelocItem>) -> Result<()> {
    let blob_idx: Vec<usize> = (0..items.len())
        .filter(|&i| items[i].header.kind == FrameKind::Blob)
        .collect();
    let hashes: Vec<_> = blob_idx.iter().map(|&i| items[i].header.hash).collect();
    let mut keep = vec![true; items.len()];
    for (&i, rec) in blob_idx.iter().zip(shared.index.blobs(&hashes)?) {
        match rec {
            Some(b) if b.chunk == id && b.offset == items[i].offset => keep_seen(&mut items[i], b),
            _ => keep[i] = false, // the index uses another copy, or none
        }
    }
    let mut keep = keep.into_iter();
    items.retain(|_| keep.next().expect("one flag per item"));
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::batch_epoch;

    /// The records a relocation batch hands the writer are trusted only at an epoch that
    /// matches how they were read: the lookups' own, the prescan's, or none at all when the
    /// two disagree (the writer then reads them again).
    #[test]
    fn a_batch_claims_only_the_epoch_its_records_were_read_at() {
        assert_eq!(batch_epoch(false, false, 7, Some(3)), 7);
        assert_eq!(batch_epoch(false, true, 7, Some(3)), 7);
        assert_eq!(batch_epoch(true, false, 7, Some(3)), 3);
        assert_eq!(batch_epoch(true, false, 7, None), u64::MAX);
        assert_eq!(batch_epoch(true, true, 7, Some(7)), 7);
        assert_eq!(batch_epoch(true, true, 7, Some(3)), u64::MAX);
    }
}
