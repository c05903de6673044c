//! Size and time: TTL sweeps, size-budget eviction, dead-blob collection, chunk compaction and
//! the background GC thread.
//!
//! Planning (which keys expired, which artifacts to evict, which chunks to compact, reading the
//! frames to copy) runs on the caller's thread from index scans. Every mutation is a request to
//! the writer thread, which re-checks the plan against the current state when it applies it
//! (record sequence number, expiry, refcount, blob location). That re-check at deletion, not a
//! grace period, is what keeps GC from racing concurrent puts.

use std::cmp::Ordering;
use std::collections::{BinaryHeap, HashMap};
use std::fmt::Debug;
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

use crossbeam_channel::{Receiver, Sender};
use pipecache_format::chunk::CHUNK_HEADER_LEN;
use pipecache_format::record::{Record, RecordFrame, TombstoneFrame};
use pipecache_format::{BlobHash, ChunkScanner, FrameKind, chunk_file_name};
use serde::Serialize;
use tokio::sync::oneshot;

use crate::policy::EvictionCandidate;
use crate::state::Shared;
use crate::writer::{Expect, RelocItem, RelocOutcome, RemovalReason, Request, Victim};
use crate::{Error, Result};

/// Options of one GC pass.
#[derive(Clone, Copy, Debug, Default)]
pub struct GcOptions {
    /// Report what would be removed without removing anything.
    pub dry_run: bool,
    /// Most artifacts to remove in this pass (expired + evicted); `None` = no limit.
    pub max_removals: Option<usize>,
    /// Most chunks to compact in this pass; `None` = no limit.
    pub max_compactions: Option<usize>,
}

/// What a GC pass did (or, with `dry_run`, would do).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct GcReport {
    /// Nothing was changed.
    pub dry_run: bool,
    /// Keys removed because their TTL passed.
    pub expired: Vec<String>,
    /// Keys evicted to meet the budget.
    pub evicted: Vec<String>,
    /// Zero-reference blob records dropped from the index.
    pub dead_blobs_dropped: u64,
    /// Compaction done as part of the pass.
    pub compaction: CompactReport,
    /// Chunk files no index entry referenced (left by a crash), removed.
    pub orphan_chunks_removed: Vec<u64>,
    /// Chunk bytes on disk before the pass.
    pub disk_bytes_before: u64,
    /// Chunk bytes on disk after the pass.
    pub disk_bytes_after: u64,
    /// `disk_bytes_before - disk_bytes_after`.
    pub bytes_reclaimed: u64,
    /// Frame bytes still referenced after the pass.
    pub live_bytes: u64,
    /// The budget, if any.
    pub max_size: Option<u64>,
}

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

/// Progress of a long job: `(phase, done, total)`.
pub type ProgressFn<'a> = &'a (dyn Fn(&str, u64, u64) + Send + Sync);

/// Sends a request to the writer and waits for its answer (blocking thread only).
pub(crate) fn call<T>(
    tx: &Sender<Request>,
    make: impl FnOnce(oneshot::Sender<Result<T>>) -> Request,
) -> Result<T> {
    let (reply, answer) = oneshot::channel();
    tx.send(make(reply)).map_err(|_| Error::Closed)?;
    answer.blocking_recv().map_err(|_| Error::Closed)?
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

#[derive(Debug)]
struct Scored {
    score: f64,
    key: String,
    seq: u64,
    size: u64,
}

impl PartialEq for Scored {
    fn eq(&self, o: &Self) -> bool {
        self.cmp(o) == Ordering::Equal
    }
}
impl Eq for Scored {}
impl PartialOrd for Scored {
    fn partial_cmp(&self, o: &Self) -> Option<Ordering> {
        Some(self.cmp(o))
    }
}
impl Ord for Scored {
    fn cmp(&self, o: &Self) -> Ordering {
        self.score
            .total_cmp(&o.score)
            .then_with(|| self.key.cmp(&o.key))
    }
}

/// The lowest-scored artifacts whose sizes add up to at least `excess` (at most `limit` of
/// them), lowest score first. One merged pass over the artifacts and access CFs (both in key
/// order); memory holds only the chosen candidates.
fn choose_victims(shared: &Shared, excess: u64, limit: usize) -> Result<Vec<Scored>> {
    let now = shared.options.clock.now_ms();
    let policy = &shared.options.eviction;
    let mut access = shared.index.scan_access().peekable();
    let mut heap: BinaryHeap<Scored> = BinaryHeap::new();
    let mut sum = 0u64;
    for item in shared.index.scan_artifacts("") {
        let (key, rec) = item?;
        let mut last = rec.created_ms;
        while let Some(Ok((akey, _))) = access.peek() {
            match akey.as_str().cmp(key.as_str()) {
                Ordering::Less => {
                    access.next();
                }
                Ordering::Equal => {
                    if let Some(Ok((_, a))) = access.next() {
                        last = last.max(a.last_ms);
                    }
                    break;
                }
                Ordering::Greater => break,
            }
        }
        if let Some(Err(_)) = access.peek() {
            access.next().expect("peeked")?;
        }
        let score = policy.score(&EvictionCandidate {
            key: &key,
            kind: &rec.kind,
            size: rec.logical_size,
            last_access_ms: last,
            created_ms: rec.created_ms,
            now_ms: now,
        });
        // What evicting it can free at most: every part's frame (payload as raw, header) plus its
        // record frame. Shared or compressed blobs free less, so this errs toward another
        // round, never toward evicting more than needed.
        let frees = rec.logical_size
            + rec.parts.len() as u64 * pipecache_format::FRAME_HEADER_LEN as u64
            + rec.frame.map_or(0, |f| f.len);
        sum += frees;
        heap.push(Scored {
            score,
            key,
            seq: rec.seq,
            size: frees,
        });
        while let Some(top) = heap.peek() {
            let removable = heap.len() > limit || (heap.len() > 1 && sum - top.size >= excess);
            if !removable {
                break;
            }
            sum -= top.size;
            heap.pop();
        }
    }
    Ok(heap.into_sorted_vec())
}

/// One GC pass: expired artifacts, budget, dead blob records, compaction, orphans.
#[tracing::instrument(level = "info", skip_all, fields(dry_run = opts.dry_run))]
pub(crate) fn gc(
    shared: &Shared,
    tx: &Sender<Request>,
    opts: GcOptions,
    progress: ProgressFn<'_>,
) -> Result<GcReport> {
    let mut report = GcReport {
        dry_run: opts.dry_run,
        max_size: shared.options.max_size,
        ..Default::default()
    };
    // Phase timings at debug level (`PIPECACHE_LOG=pipecache=debug`): where a pass spends time.
    let started = std::time::Instant::now();
    let phase_done = |phase: &str| {
        tracing::debug!(
            phase,
            elapsed_ms = started.elapsed().as_millis() as u64,
            "gc phase done"
        );
    };
    report.disk_bytes_before = disk_bytes(shared)?;
    let mut budget_left = opts.max_removals.unwrap_or(usize::MAX);
    call(tx, |reply| Request::FlushAccess { reply })?;
    if !opts.dry_run {
        report.orphan_chunks_removed = call(tx, |reply| Request::RemoveOrphans { reply })?;
    }

    // 1. TTL: the expiry CF in time order, up to now.
    progress("expire", 0, 1);
    let now = shared.options.clock.now_ms();
    let mut expired = Vec::new();
    for item in shared.index.scan_expiry(now) {
        if expired.len() >= budget_left {
            break;
        }
        let (t, key) = item?;
        expired.push(Victim {
            key,
            expect: Expect::Expired(t),
            reason: RemovalReason::Expired,
        });
    }
    for batch in expired.chunks(1000) {
        if opts.dry_run {
            report.expired.extend(batch.iter().map(|v| v.key.clone()));
        } else {
            let victims: Vec<Victim> = batch
                .iter()
                .map(|v| Victim {
                    key: v.key.clone(),
                    expect: v.expect,
                    reason: v.reason,
                })
                .collect();
            let removed = call(tx, |reply| Request::Evict { victims, reply })?;
            report
                .expired
                .extend(removed.into_iter().map(|(k, _, _)| k));
        }
    }
    budget_left = budget_left.saturating_sub(report.expired.len());
    progress("expire", 1, 1);
    phase_done("expire");

    // 2. Size budget: evict whole artifacts by policy until live bytes fit.
    if let Some(max) = shared.options.max_size {
        for _round in 0..64 {
            let live = live_bytes(shared)?;
            if live <= max || budget_left == 0 {
                break;
            }
            progress("evict", 0, live - max);
            let victims = choose_victims(shared, live - max, budget_left)?;
            if victims.is_empty() {
                break;
            }
            if opts.dry_run {
                report.evicted.extend(victims.into_iter().map(|v| v.key));
                break;
            }
            let victims: Vec<Victim> = victims
                .into_iter()
                .map(|v| Victim {
                    key: v.key,
                    expect: Expect::Seq(v.seq),
                    reason: RemovalReason::Evicted,
                })
                .collect();
            let removed = call(tx, |reply| Request::Evict { victims, reply })?;
            if removed.is_empty() {
                break;
            }
            budget_left = budget_left.saturating_sub(removed.len());
            report
                .evicted
                .extend(removed.into_iter().map(|(k, _, _)| k));
        }
    }

    // 3. Compaction first (it drops the dead records of the chunks it removes), then the
    // remaining dead blob records.
    phase_done("evict");
    report.compaction = compact(shared, tx, opts.dry_run, opts.max_compactions, progress)?;
    phase_done("compact");
    let mut dead = Vec::new();
    for item in shared.index.scan_blobs() {
        let (hash, rec) = item?;
        if rec.refs == 0 {
            dead.push(hash);
        }
    }
    if opts.dry_run {
        report.dead_blobs_dropped = dead.len() as u64;
    } else {
        for batch in dead.chunks(10_000) {
            let hashes = batch.to_vec();
            report.dead_blobs_dropped +=
                call(tx, |reply| Request::DropDeadBlobs { hashes, reply })?;
        }
    }
    phase_done("drop dead blobs");
    report.disk_bytes_after = disk_bytes(shared)?;
    report.bytes_reclaimed = report
        .disk_bytes_before
        .saturating_sub(report.disk_bytes_after);
    report.live_bytes = live_bytes(shared)?;
    Ok(report)
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
        match relocate_chunk(shared, tx, id, rec.total_bytes, &mut prescan) {
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
        let rank: HashMap<u64, usize> = wanted.iter().enumerate().map(|(i, id)| (*id, i)).collect();
        let mut located: HashMap<u64, Vec<Located>> = HashMap::new();
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
            let (key, shadows) = match frame.header.kind {
                FrameKind::Blob => (None, None), // checked against the index below
                FrameKind::ArtifactRecord => (Some(RecordFrame::decode(&frame.payload)?.key), None),
                FrameKind::Tombstone => {
                    let t = TombstoneFrame::decode(&frame.payload)?;
                    (Some(t.key), t.shadows)
                }
            };
            let mut item = RelocItem {
                offset: frame.offset,
                header: frame.header,
                stored: frame.stored.expect("scanner keeps stored bytes"),
                key,
                shadows,
                dead_at_scan: false,
                seen: None,
            };
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
            let sent_epoch = match (from_prescan, from_lookup) {
                (false, _) => epoch,
                (true, false) => prescan.valid_at.unwrap_or(u64::MAX),
                (true, true) if prescan.valid_at == Some(epoch) => epoch,
                (true, true) => u64::MAX,
            };
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

/// The background GC thread: one bounded pass every `interval`, or sooner when a commit takes
/// the store over budget; stops when `stop` is dropped.
pub(crate) fn spawn_background(
    shared: Arc<Shared>,
    tx: Sender<Request>,
    stop: Receiver<()>,
    wake: Receiver<()>,
    interval: Duration,
) -> std::io::Result<JoinHandle<()>> {
    std::thread::Builder::new()
        .name("pipecache-gc".into())
        .spawn(move || {
            loop {
                crossbeam_channel::select! {
                    recv(stop) -> _ => break,
                    recv(wake) -> _ => {}
                    default(interval) => {}
                }
                let opts = GcOptions {
                    dry_run: false,
                    max_removals: Some(shared.options.gc_step_removals),
                    max_compactions: Some(1),
                };
                match gc(&shared, &tx, opts, &|_, _, _| {}) {
                    Ok(r)
                        if !r.expired.is_empty()
                            || !r.evicted.is_empty()
                            || !r.compaction.chunks_compacted.is_empty() =>
                    {
                        tracing::info!(
                            expired = r.expired.len(),
                            evicted = r.evicted.len(),
                            compacted = r.compaction.chunks_compacted.len(),
                            reclaimed = r.bytes_reclaimed,
                            "background gc step"
                        );
                    }
                    Ok(_) => {}
                    Err(Error::Closed) => break,
                    Err(e) => tracing::warn!(error = %e, "background gc step failed"),
                }
            }
        })
}
