//! Size and time: a GC pass (TTL sweep, size-budget eviction, compaction, dead-blob
//! collection) and the background GC thread.
//!
//! Planning (which keys expired, which artifacts to evict, which chunks to compact, reading the
//! frames to copy) runs on the caller's thread from index scans. Every mutation is a request to
//! the writer thread, which re-checks the plan against the current state when it applies it
//! (record sequence number, expiry, refcount, blob location). That re-check at deletion, not a
//! grace period, is what keeps GC from racing concurrent puts.

use std::cmp::Ordering;
use std::collections::BinaryHeap;
use std::fmt::Debug;
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

use crossbeam_channel::{Receiver, Sender};
use serde::Serialize;

use crate::accounting::{disk_bytes, live_bytes};
use crate::compaction::{CompactReport, compact};
use crate::job::{ProgressFn, call};
use crate::policy::EvictionCandidate;
use crate::state::Shared;
use crate::writer::{Expect, RemovalReason, Request, Victim};
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
    progress("expire", 0, 1);
    report.expired = expire(shared, tx, opts.dry_run, budget_left)?;
    budget_left = budget_left.saturating_sub(report.expired.len());
    progress("expire", 1, 1);
    phase_done("expire");
    if let Some(max) = shared.options.max_size {
        report.evicted = evict_over_budget(shared, tx, opts.dry_run, max, budget_left, progress)?;
    }
    phase_done("evict");
    // Compaction first (it drops the dead records of the chunks it removes), then the
    // remaining dead blob records.
    report.compaction = compact(shared, tx, opts.dry_run, opts.max_compactions, progress)?;
    phase_done("compact");
    report.dead_blobs_dropped = drop_dead_blobs(shared, tx, opts.dry_run)?;
    phase_done("drop dead blobs");
    report.disk_bytes_after = disk_bytes(shared)?;
    report.bytes_reclaimed = report
        .disk_bytes_before
        .saturating_sub(report.disk_bytes_after);
    report.live_bytes = live_bytes(shared)?;
    if !opts.dry_run {
        shared.counters.gc_runs.add(1);
        shared
            .counters
            .gc_reclaimed_bytes
            .add(report.bytes_reclaimed);
        let c = &shared.counters;
        c.last_gc_reclaimed_bytes.set(report.bytes_reclaimed);
        // Never 0, which means "none yet".
        c.last_gc_ms.set(shared.options.clock.now_ms().max(1));
    }
    Ok(report)
}

/// TTL: removes (or, dry, lists) up to `limit` expired artifacts, from the expiry CF in
/// time order up to now.
fn expire(
    shared: &Shared,
    tx: &Sender<Request>,
    dry_run: bool,
    limit: usize,
) -> Result<Vec<String>> {
    let now = shared.options.clock.now_ms();
    let mut expired = Vec::new();
    for item in shared.index.scan_expiry(now) {
        if expired.len() >= limit {
            break;
        }
        let (t, key) = item?;
        expired.push(Victim {
            key,
            expect: Expect::Expired(t),
            reason: RemovalReason::Expired,
        });
    }
    if dry_run {
        return Ok(expired.into_iter().map(|v| v.key).collect());
    }
    let mut removed_keys = Vec::new();
    let mut expired = expired.into_iter().peekable();
    while expired.peek().is_some() {
        let victims: Vec<Victim> = expired.by_ref().take(1000).collect();
        let removed = call(tx, |reply| Request::Evict { victims, reply })?;
        removed_keys.extend(removed.into_iter().map(|(k, _, _)| k));
    }
    Ok(removed_keys)
}

/// Size budget: evicts whole artifacts by policy (up to `limit`) until live bytes fit
/// `max`, in rounds, since a round's victims may have been rewritten meanwhile.
fn evict_over_budget(
    shared: &Shared,
    tx: &Sender<Request>,
    dry_run: bool,
    max: u64,
    mut limit: usize,
    progress: ProgressFn<'_>,
) -> Result<Vec<String>> {
    let mut evicted = Vec::new();
    for _round in 0..64 {
        let live = live_bytes(shared)?;
        if live <= max || limit == 0 {
            break;
        }
        progress("evict", 0, live - max);
        let victims = choose_victims(shared, live - max, limit)?;
        if victims.is_empty() {
            break;
        }
        if dry_run {
            evicted.extend(victims.into_iter().map(|v| v.key));
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
        limit = limit.saturating_sub(removed.len());
        evicted.extend(removed.into_iter().map(|(k, _, _)| k));
    }
    Ok(evicted)
}

/// Drops the records of blobs no artifact references (or, dry, counts them).
fn drop_dead_blobs(shared: &Shared, tx: &Sender<Request>, dry_run: bool) -> Result<u64> {
    let mut dead = Vec::new();
    for item in shared.index.scan_blobs() {
        let (hash, rec) = item?;
        if rec.refs == 0 {
            dead.push(hash);
        }
    }
    if dry_run {
        return Ok(dead.len() as u64);
    }
    let mut dropped = 0;
    for batch in dead.chunks(10_000) {
        let hashes = batch.to_vec();
        dropped += call(tx, |reply| Request::DropDeadBlobs { hashes, reply })?;
    }
    Ok(dropped)
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
