//! [`CacheManager`]: the local store in front of remote tiers.
//!
//! - `get` walks tiers by priority; a hit below the top is returned at once and promoted to
//!   the faster tiers in the background. Remote errors and timeouts are counted apart from
//!   misses and logged once per episode (first failure, then recovery).
//! - `put` always writes the local tier first, with an entry per remote tier on a persistent
//!   queue (the local index's `queue` CF) in the same commit. A `write-back` tier's worker
//!   uploads it, with retries and exponential backoff, surviving restarts. A `write-through`
//!   put uploads it itself and has the tier holding the artifact when it returns; when the
//!   tier fails, the put still succeeds locally and the entry stays for the worker (counted
//!   as deferred), so a tier that is down never stops puts and never keeps a replaced value.
//!   A full queue drops the upload, never the put, and counts the drop.
//! - `sync_push`, `sync_pull` and `remote_gc` are the jobs behind `pipecache sync` and
//!   `gc --remote`.

use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use pipecache_remote::{ObjectStore, RedisStore, S3Options, TransferSnapshot};
use serde::Serialize;
use tokio::sync::{Notify, watch};
use tokio::task::JoinHandle;

mod sync;
mod write_back;

pub use sync::{PullReport, PushReport};
use write_back::write_back_worker;

use crate::pack::{BatchReport, PackGcReport, PackTier, record_path};
use crate::promotion::{PromotionOutcome, Promotions, promote};
use crate::redis::RedisTier;
use crate::{BackendKind, CacheBackend, Capabilities, Error, Result, Verified, for_each_bounded};
use pipecache_config::{
    BackendConfig, CacheConfig, DEFAULT_DEADLINE, DEFAULT_GRACE, DEFAULT_REDIS_DEADLINE,
    DEFAULT_REDIS_MAX_OBJECT, DEFAULT_REGION, WritePolicy, duration_field, queue_capacity_field,
    size_field,
};
use pipecache_format::record::ArtifactRecord;
use pipecache_format::remote::RemoteRecord;
use pipecache_store::outbox::{
    OutboxClaim as QueueClaim, OutboxSlot as QueueSlot, QueueEntry, QueueOp,
};
use pipecache_store::{
    Artifact, PutOptions, Store, StoreError, StoreOptions, StoredArtifact, validate_key,
};

/// Report of a remote GC pass.
pub type RemoteGcReport = PackGcReport;

/// Queue entries uploaded per batch by a write-back worker.
const QUEUE_BATCH: usize = 64;
/// A write-back batch stops taking entries once its artifacts hold this many bytes, so 64
/// keyframe sets never sit in memory at once.
const QUEUE_BATCH_BYTES: u64 = 64 << 20;
/// Removals a write-back worker sends at once.
const WRITE_BACK_DELETES: usize = 8;
/// Longest wait between retries of a failing write-back upload.
const MAX_BACKOFF: Duration = Duration::from_secs(30);
/// Artifacts fetched at once by `sync pull`.
const PULL_CONCURRENCY: usize = 8;
/// Default bytes per push batch (one pack).
const DEFAULT_PUSH_BATCH: u64 = 16 << 20;
/// Local artifacts compared with their remote records per round of `sync push`.
const PUSH_WINDOW: usize = 256;

#[derive(Debug, Default)]
struct TierCounters {
    hits: AtomicU64,
    misses: AtomicU64,
    errors: AtomicU64,
    timeouts: AtomicU64,
    corrupt: AtomicU64,
    promotions: AtomicU64,
    puts: AtomicU64,
    skipped_too_large: AtomicU64,
    deferred: AtomicU64,
}

fn bump(c: &AtomicU64) {
    c.fetch_add(1, Ordering::Relaxed);
}

fn bump_by(c: &AtomicU64, n: u64) {
    c.fetch_add(n, Ordering::Relaxed);
}

/// A key's entries waiting in one queue.
#[derive(Debug, Default)]
struct PendingKey {
    /// Entries reserved or committed and not settled yet.
    seqs: std::collections::HashSet<u64>,
    /// Those a write-through call is applying itself: the worker leaves them alone until
    /// that call has ended (see [`SyncAttempts`]).
    in_flight: std::collections::HashSet<u64>,
    /// The highest entry reserved for the key while it has been pending.
    last_seq: u64,
}

#[derive(Debug)]
struct Queue {
    name: String,
    capacity: u64,
    next_seq: AtomicU64,
    /// Upload entries waiting: what the capacity bounds.
    uploads: AtomicU64,
    dropped: AtomicU64,
    notify: Notify,
    /// Keys with entries waiting (reserved or committed), with their entry counts and the
    /// last entry reserved. The tier's copy of such a key may be older than the local value,
    /// so reads skip the tier for it when the local tier misses (evicted or damaged before
    /// the upload).
    pending: std::sync::Mutex<HashMap<String, PendingKey>>,
}

impl Queue {
    fn new(name: String, capacity: u64) -> Self {
        Queue {
            name,
            capacity,
            next_seq: AtomicU64::new(1),
            uploads: AtomicU64::new(0),
            dropped: AtomicU64::new(0),
            notify: Notify::new(),
            pending: std::sync::Mutex::default(),
        }
    }

    /// Marks entry `seq` of `key` as applied by its own call, or no longer.
    fn set_in_flight(&self, key: &str, seq: u64, on: bool) {
        if let Some(p) = self.pending().get_mut(key) {
            if on {
                p.in_flight.insert(seq);
            } else {
                p.in_flight.remove(&seq);
            }
        }
    }

    /// Entries of `entries` this queue does not count as pending.
    fn uncounted(&self, entries: &[QueueEntry]) -> Vec<u64> {
        let pending = self.pending();
        entries
            .iter()
            .filter(|e| !pending.get(&e.key).is_some_and(|p| p.seqs.contains(&e.seq)))
            .map(|e| e.seq)
            .collect()
    }

    /// Counts an entry found in the index that no reservation counts (a commit that reported
    /// an error although its batch landed): the worker applies it like any other.
    fn adopt(&self, e: &QueueEntry) {
        if e.op == QueueOp::Upload {
            self.uploads.fetch_add(1, Ordering::Relaxed);
        }
        self.add_pending(&e.key, e.seq);
        tracing::warn!(queue = %self.name, key = %e.key, seq = e.seq, "uncounted queue entry found; applying it");
    }

    /// Keeps the entries the worker may apply: pending (a peek may still show an entry a
    /// call has just settled) and not in flight, judged in one step under the lock.
    fn retain_workable(&self, entries: &mut Vec<QueueEntry>) {
        let pending = self.pending();
        entries.retain(|e| {
            pending
                .get(&e.key)
                .is_some_and(|p| p.seqs.contains(&e.seq) && !p.in_flight.contains(&e.seq))
        });
    }

    /// True when entry `seq` is the only one waiting for `key` and no later one was
    /// reserved: whatever this entry's call wrote to the tier is the key's last write.
    fn is_last(&self, key: &str, seq: u64) -> bool {
        self.pending()
            .get(key)
            .is_some_and(|p| p.seqs.len() == 1 && p.seqs.contains(&seq) && p.last_seq == seq)
    }

    fn pending(&self) -> std::sync::MutexGuard<'_, HashMap<String, PendingKey>> {
        self.pending.lock().expect("pending keys poisoned")
    }

    /// Entries waiting, uploads and removals (the pending keys' counts).
    fn len(&self) -> u64 {
        self.pending().values().map(|p| p.seqs.len() as u64).sum()
    }

    /// Takes in the entries found in the index when the manager opens.
    fn load(&self, entries: &[QueueEntry]) {
        let last = entries.last().map_or(0, |e| e.seq);
        self.next_seq.store(last + 1, Ordering::Relaxed);
        for e in entries {
            if e.op == QueueOp::Upload {
                self.uploads.fetch_add(1, Ordering::Relaxed);
            }
            self.add_pending(&e.key, e.seq);
        }
    }

    /// Uncounts entries (applied, or reserved for a commit that failed). The upload count
    /// never goes below zero: one that wrapped would refuse every later reservation.
    fn settled<'e>(&self, entries: impl IntoIterator<Item = (&'e str, u64, QueueOp)>) {
        let mut pending = self.pending();
        for (key, seq, op) in entries {
            // Each entry is settled once: a second settling (none is expected) changes nothing.
            let Some(p) = pending.get_mut(key) else {
                continue;
            };
            if !p.seqs.remove(&seq) {
                continue;
            }
            p.in_flight.remove(&seq);
            if p.seqs.is_empty() {
                pending.remove(key);
            }
            if op == QueueOp::Upload {
                let _ = self
                    .uploads
                    .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |n| {
                        Some(n.saturating_sub(1))
                    });
            }
        }
    }

    /// True while `key` has an entry waiting in this queue.
    fn is_pending(&self, key: &str) -> bool {
        self.pending().contains_key(key)
    }

    /// Counts entry `seq` of `key`; true when the key had no other entry waiting.
    fn add_pending(&self, key: &str, seq: u64) -> bool {
        let mut pending = self.pending();
        let p = pending.entry(key.to_owned()).or_default();
        p.seqs.insert(seq);
        p.last_seq = p.last_seq.max(seq);
        p.seqs.len() == 1
    }

    /// Reserves the next entry of this queue for a put or delete of `key` about to commit.
    /// An upload gets `None` when the queue is full; a removal always gets its entry
    /// (bypassing the queue could race an upload of an older value already under way, and
    /// removals cost the tier no upload, so the capacity bounds uploads only).
    /// With the slot comes whether it is the key's only entry (see [`SyncAttempts::finish`]).
    fn reserve(&self, key: &str, op: QueueOp) -> Option<(QueueSlot, bool)> {
        // Counted before the entry exists: the worker may upload and uncount it before the
        // commit's reply arrives, and the counts must never wrap below zero. Checked and
        // counted in one step, so concurrent puts cannot pass the capacity together.
        if op == QueueOp::Upload {
            self.uploads
                .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |n| {
                    (n < self.capacity).then_some(n + 1)
                })
                .ok()?;
        }
        // Pending from the reservation on: the worker settles an entry only after it
        // commits, so the count never goes below zero.
        let seq = self.next_seq.fetch_add(1, Ordering::Relaxed);
        let sole = self.add_pending(key, seq);
        Some((
            QueueSlot {
                queue: self.name.clone(),
                seq,
                op,
            },
            sole,
        ))
    }

    /// Counts an upload dropped because the queue was full (logged once).
    fn count_drop(&self, tier: &str) {
        if self.dropped.fetch_add(1, Ordering::Relaxed) == 0 {
            tracing::warn!(
                tier,
                capacity = self.capacity,
                "upload queue full; uploads are dropped and counted (the tier's copies of their keys are removed)"
            );
        }
    }
}

/// Queue entries reserved for one local commit of `key`: released if the commit fails,
/// announced to the workers if it succeeds. Owned (not borrowed from the manager) so the
/// commit and its settling can run in a task of their own ([`Reservations::commit`]).
struct Reservations {
    inner: Arc<Inner>,
    key: String,
    /// Tier index, slot, and whether it was the key's only entry when reserved.
    taken: Vec<(usize, QueueSlot, bool)>,
}

impl Reservations {
    fn new(inner: &Arc<Inner>, key: &str) -> Self {
        Self {
            inner: inner.clone(),
            key: key.to_owned(),
            taken: Vec::new(),
        }
    }

    /// Reserves an entry in the queue of tier `index`; false when the tier has none or, for
    /// an upload, it is full (see [`Queue::reserve`]). On a write-through tier the entry is
    /// marked in flight: the call applies it itself once the local commit is done, and the
    /// worker takes it only if that fails (or the call is dropped, or the process dies).
    fn reserve(&mut self, index: usize, op: QueueOp) -> bool {
        let tier = &self.inner.tiers[index];
        let Some(q) = &tier.queue else {
            return false;
        };
        let Some((slot, sole)) = q.reserve(&self.key, op) else {
            return false;
        };
        if tier.policy == Some(WritePolicy::WriteThrough) {
            q.set_in_flight(&self.key, slot.seq, true);
        }
        self.taken.push((index, slot, sole));
        true
    }

    /// The write-through entries among those reserved, to apply after the commit.
    fn sync_attempts(&self) -> SyncAttempts {
        SyncAttempts {
            inner: self.inner.clone(),
            key: self.key.clone(),
            entries: self
                .taken
                .iter()
                .filter(|(i, _, _)| self.inner.tiers[*i].policy == Some(WritePolicy::WriteThrough))
                .cloned()
                .collect(),
        }
    }

    /// Runs the local commit `commit` (given the reserved slots) to its end in a task of its
    /// own, then settles: `written` says from its result whether the entries were committed.
    /// A caller that stops waiting (a timeout around a put) cannot leave slots counted and
    /// keys pending without an entry.
    async fn commit<T, F>(
        self,
        commit: impl FnOnce(Vec<QueueSlot>) -> F,
        written: impl FnOnce(&Result<T>) -> bool + Send + 'static,
    ) -> Result<T>
    where
        T: Send + 'static,
        F: std::future::Future<Output = Result<T>> + Send + 'static,
    {
        let slots: Vec<QueueSlot> = self.taken.iter().map(|(_, slot, _)| slot.clone()).collect();
        if slots.is_empty() {
            // Nothing to settle: no task needed.
            return commit(slots).await;
        }
        let fut = commit(slots);
        let task = tokio::spawn(async move {
            let r = fut.await;
            self.settle(written(&r));
            r
        });
        match task.await {
            Ok(r) => r,
            Err(e) if e.is_panic() => std::panic::resume_unwind(e.into_panic()),
            Err(_) => Err(Error::Store(StoreError::Closed)),
        }
    }

    fn settle(self, written: bool) {
        for (index, slot, _) in &self.taken {
            let q = self.inner.tiers[*index]
                .queue
                .as_ref()
                .expect("reserved in a queue");
            if written {
                // A write-through entry is its call's until released (which wakes the
                // worker then): waking it now would only read entries it must skip.
                if self.inner.tiers[*index].policy != Some(WritePolicy::WriteThrough) {
                    q.notify.notify_one();
                }
            } else {
                q.settled([(self.key.as_str(), slot.seq, slot.op)]);
            }
        }
    }
}

/// A put's or delete's entries on write-through tiers, applied by the call itself after the
/// local commit. Each entry is queued in the same WriteBatch as the local change, so a
/// failed or interrupted call leaves the worker to bring the tier to the key's local state:
/// a tier that is down never fails a put (the local tier keeps putting), and never keeps the
/// value the put replaced.
struct SyncAttempts {
    inner: Arc<Inner>,
    key: String,
    /// Tier index, entry, and whether it was the key's only entry when reserved; each
    /// removed from here once its attempt has ended.
    entries: Vec<(usize, QueueSlot, bool)>,
}

impl SyncAttempts {
    /// Applies each entry on its tier: the upload of `item` (absent when nothing is
    /// uploaded) or a delete. Returns whether some tier had the key (deletes).
    async fn run(mut self, item: Option<&StoredArtifact>) -> bool {
        let mut existed = false;
        // Each entry leaves `entries` only once its attempt has ended: dropped midway, the
        // guard hands the current one and the rest to the worker.
        while let Some((index, slot, sole)) = self.entries.first().cloned() {
            let tier = &self.inner.tiers[index];
            let result = match (slot.op, item) {
                (QueueOp::Upload, Some(item)) => tier.backend.put(&self.key, item).await,
                (QueueOp::Upload, None) => unreachable!("an upload entry comes with its artifact"),
                (QueueOp::Delete, _) => tier.backend.delete(&self.key).await.map(|e| {
                    existed |= e;
                }),
            };
            let applied = match result {
                Ok(()) => {
                    if slot.op == QueueOp::Upload {
                        bump(&tier.counters.puts);
                    }
                    tier.succeeded();
                    true
                }
                Err(e) => {
                    tier.failed(
                        if slot.op == QueueOp::Upload {
                            "put"
                        } else {
                            "delete"
                        },
                        &self.key,
                        &e,
                    );
                    bump(&tier.counters.deferred);
                    false
                }
            };
            // Out of the guard's hands first: `finish` settles or releases it to the end,
            // even if this call is dropped while it waits.
            self.entries.remove(0);
            self.finish(index, slot, applied && sole).await;
        }
        existed
    }

    /// Ends one attempt. An applied entry is removed only when no other write of the key
    /// can have raced it: it was the key's only entry when reserved (no earlier write under
    /// way, by a call or the worker) and still is, with no later one reserved since. Any
    /// other entry of the key means this call's write may have landed after a newer one;
    /// the worker, which follows the key's local state, settles it instead.
    async fn finish(&self, index: usize, slot: QueueSlot, applied_alone: bool) {
        let (inner, key) = (self.inner.clone(), self.key.clone());
        // In a task of its own: a caller that stops waiting during the removal must not leave
        // the entry removed from the index but counted as pending (a drain would never end).
        let task = tokio::spawn(async move {
            Self::settle_or_release(&inner, index, &key, slot, applied_alone).await;
            release_off_runtime(inner).await;
        });
        if let Err(e) = task.await
            && e.is_panic()
        {
            std::panic::resume_unwind(e.into_panic());
        }
    }

    async fn settle_or_release(
        inner: &Inner,
        index: usize,
        key: &str,
        slot: QueueSlot,
        applied_alone: bool,
    ) {
        let tier = &inner.tiers[index];
        let q = tier.queue.as_ref().expect("reserved in a queue");
        // Still in flight while it is removed: the worker must never pick up an entry
        // this call is settling (it would upload a value read now, which could land
        // after a later put of the key).
        if applied_alone && q.is_last(key, slot.seq) {
            match inner
                .local
                .outbox_remove_delivered(&q.name, vec![slot.seq])
                .await
            {
                Ok(()) => {
                    // Settled and out of flight in one step: the worker never sees it
                    // as workable, even from a peek made before the removal.
                    q.settled([(key, slot.seq, slot.op)]);
                    return;
                }
                Err(e) => {
                    tracing::error!(tier = tier.backend.name(), error = %e, "cannot update the upload queue; the worker applies the entry again")
                }
            }
        }
        q.set_in_flight(key, slot.seq, false);
        q.notify.notify_one();
    }
}

impl Drop for SyncAttempts {
    /// A call dropped before its attempts ended (its caller stopped waiting): the worker
    /// takes the entries left.
    fn drop(&mut self) {
        for (index, slot, _) in &self.entries {
            let q = self.inner.tiers[*index]
                .queue
                .as_ref()
                .expect("reserved in a queue");
            q.set_in_flight(&self.key, slot.seq, false);
            q.notify.notify_one();
        }
    }
}

#[derive(Debug)]
enum Remote {
    Local,
    Pack(Arc<Verified<PackTier>>),
    Redis(Arc<Verified<RedisTier>>),
}

#[derive(Debug)]
struct Tier {
    backend: Arc<dyn CacheBackend>,
    remote: Remote,
    priority: u32,
    policy: Option<WritePolicy>,
    counters: TierCounters,
    degraded: AtomicBool,
    queue: Option<Queue>,
}

impl Tier {
    fn failed(&self, op: &str, key: &str, e: &Error) {
        if e.is_corruption() {
            bump(&self.counters.corrupt);
            tracing::warn!(tier = self.backend.name(), %key, error = %e, "corrupt remote data rejected");
            return;
        }
        if e.is_timeout() {
            bump(&self.counters.timeouts);
        } else {
            bump(&self.counters.errors);
        }
        if !self.degraded.swap(true, Ordering::Relaxed) {
            tracing::warn!(
                tier = self.backend.name(),
                %op,
                %key,
                error = %e,
                "tier failing; further errors are counted, not logged, until it recovers"
            );
        }
    }

    fn succeeded(&self) {
        if self.degraded.swap(false, Ordering::Relaxed) {
            tracing::info!(tier = self.backend.name(), "tier recovered");
        }
    }

    /// True while this tier's queue holds an entry for `key` (a write-back upload or
    /// removal, or a write-through call not applied yet).
    fn is_pending(&self, key: &str) -> bool {
        self.queue.as_ref().is_some_and(|q| q.is_pending(key))
    }

    fn fits(&self, item: &StoredArtifact) -> bool {
        self.fits_size(item.artifact.logical_size())
    }

    fn fits_size(&self, size: u64) -> bool {
        self.backend
            .capabilities()
            .max_object_size
            .is_none_or(|max| size <= max)
    }

    fn transfer(&self) -> Option<TransferSnapshot> {
        match &self.remote {
            Remote::Local => None,
            Remote::Pack(p) => Some(p.inner().store().stats().snapshot()),
            Remote::Redis(r) => Some(r.inner().store().stats().snapshot()),
        }
    }
}

/// Per-tier figures for `stats --json`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct TierStats {
    /// Tier name.
    pub name: String,
    /// Tier kind.
    pub kind: BackendKind,
    /// Priority (0 = fastest).
    pub priority: u32,
    /// Write policy (remote tiers).
    pub write_policy: Option<WritePolicy>,
    /// What the tier can do (ranged reads, native TTL, largest object, listing).
    pub capabilities: Capabilities,
    /// Reads answered.
    pub hits: u64,
    /// Reads not answered (absent or expired).
    pub misses: u64,
    /// Failed calls other than timeouts (not misses).
    pub errors: u64,
    /// Calls past their deadline.
    pub timeouts: u64,
    /// Reads rejected by a hash check (never promoted).
    pub corrupt: u64,
    /// Artifacts promoted into this tier from a slower one.
    pub promotions: u64,
    /// Artifacts written (puts, write-back uploads).
    pub puts: u64,
    /// Artifacts not written because they exceed the tier's max_object_size.
    pub skipped_too_large: u64,
    /// Write-through puts and deletes that failed on this tier and were left to its queue
    /// (the call still succeeded locally; the worker retries them).
    pub deferred: u64,
    /// Queue entries waiting (write-back uploads and removals; write-through calls not yet
    /// applied).
    pub queue_length: u64,
    /// Uploads dropped because the queue was full (each queued a removal of the tier's
    /// copy instead).
    pub queue_dropped: u64,
    /// Bytes uploaded.
    pub bytes_up: u64,
    /// Bytes downloaded.
    pub bytes_down: u64,
    /// Requests by type (remote tiers).
    pub requests: Option<TransferSnapshot>,
}

#[derive(Debug)]
struct Inner {
    local: Store,
    tiers: Vec<Tier>,
    shutdown: watch::Sender<bool>,
    workers: std::sync::Mutex<Vec<JoinHandle<()>>>,
    /// Background promotions; shared with their tasks, which drop their `Inner` handle
    /// before counting themselves done, so `close` never finds one still holding it.
    promotions: Arc<Promotions>,
    /// This manager's write-back queues, held until the last handle and worker are gone.
    _queue_claims: Vec<QueueClaim>,
}

/// The tiers of a cache, walked by priority: the local store first, then remote tiers.
///
/// Clones share one manager. [`CacheManager::close`] stops it and closes the local store;
/// dropping the last clone without it stops the write-back workers too (queued entries stay
/// queued), and the store closes once they have exited.
#[derive(Clone, Debug)]
pub struct CacheManager {
    inner: Arc<Inner>,
    _handles: Arc<StopOnDrop>,
}

/// Held by every clone of a [`CacheManager`] (never by its own tasks): the last one dropped
/// stops the workers, which would otherwise keep the manager and its store alive for good.
#[derive(Debug)]
struct StopOnDrop(std::sync::Weak<Inner>);

impl Drop for StopOnDrop {
    fn drop(&mut self) {
        if let Some(inner) = self.0.upgrade() {
            let _ = inner.shutdown.send(true);
        }
    }
}

impl CacheManager {
    fn with_inner(inner: Arc<Inner>) -> Self {
        CacheManager {
            _handles: Arc::new(StopOnDrop(Arc::downgrade(&inner))),
            inner,
        }
    }
}

/// Builds a [`CacheManager`] tier by tier.
#[derive(Debug)]
pub struct ManagerBuilder {
    local: Store,
    tiers: Vec<Tier>,
}

impl Tier {
    fn remote(
        remote: Remote,
        backend: Arc<dyn CacheBackend>,
        priority: u32,
        policy: WritePolicy,
        queue_capacity: u64,
    ) -> Self {
        // Every remote tier has a queue: write-back tiers upload through it; write-through
        // tiers record each call in it and remove the entry once the call has applied it.
        // One name for both policies, so entries survive a change of policy.
        let queue = Some(Queue::new(
            format!("write-back:{}", backend.name()),
            queue_capacity,
        ));
        Tier {
            backend,
            remote,
            priority,
            policy: Some(policy),
            counters: TierCounters::default(),
            degraded: AtomicBool::new(false),
            queue,
        }
    }

    fn pack(tier: PackTier, priority: u32, policy: WritePolicy, queue_capacity: u64) -> Self {
        Self::verified(tier, Remote::Pack, priority, policy, queue_capacity)
    }

    fn redis(tier: RedisTier, priority: u32, policy: WritePolicy, queue_capacity: u64) -> Self {
        Self::verified(tier, Remote::Redis, priority, policy, queue_capacity)
    }

    /// `tier` behind the hash-verifying layer, kept typed in `remote` for the calls only
    /// that kind of tier has (sync, remote GC, transfer figures).
    fn verified<B: CacheBackend + 'static>(
        tier: B,
        remote: fn(Arc<Verified<B>>) -> Remote,
        priority: u32,
        policy: WritePolicy,
        queue_capacity: u64,
    ) -> Self {
        let t = Arc::new(Verified::new(tier));
        Self::remote(remote(t.clone()), t, priority, policy, queue_capacity)
    }

    /// Contacts the tier once: reachable, bucket present. Errors name the tier.
    async fn check(&self) -> Result<()> {
        let r = match &self.remote {
            Remote::Local => Ok(()),
            Remote::Pack(p) => p.inner().store().check().await,
            Remote::Redis(r) => r.inner().store().check().await,
        };
        r.map_err(|e| Error::remote(self.backend.name(), e))
    }
}

impl ManagerBuilder {
    /// Adds a pack tier (fs-remote or S3), hash-verified.
    pub fn pack_tier(
        mut self,
        tier: PackTier,
        priority: u32,
        policy: WritePolicy,
        queue_capacity: u64,
    ) -> Self {
        self.tiers
            .push(Tier::pack(tier, priority, policy, queue_capacity));
        self
    }

    /// Adds a Redis tier, hash-verified.
    pub fn redis_tier(
        mut self,
        tier: RedisTier,
        priority: u32,
        policy: WritePolicy,
        queue_capacity: u64,
    ) -> Self {
        self.tiers
            .push(Tier::redis(tier, priority, policy, queue_capacity));
        self
    }

    /// Starts the manager: loads queue lengths and starts the write-back workers.
    pub async fn build(mut self) -> Result<CacheManager> {
        check_tiers(&self.tiers)?;
        self.tiers.sort_by_key(|t| t.priority);
        self.tiers.insert(0, local_tier(&self.local));
        let queue_claims = self
            .tiers
            .iter()
            .filter_map(|t| t.queue.as_ref())
            .map(|q| self.local.claim_outbox(&q.name))
            .collect::<Result<Vec<_>, StoreError>>()?;
        // Leftovers of crashed fs-remote writes (never on a config check, which builds no
        // manager).
        for t in &self.tiers {
            if let Remote::Pack(p) = &t.remote {
                p.inner().store().remove_stale_temp_files().await;
            }
        }
        for t in &self.tiers {
            if let Some(q) = &t.queue {
                q.load(&self.local.outbox_peek(&q.name, usize::MAX).await?);
            }
        }
        let (shutdown, _) = watch::channel(false);
        let inner = Arc::new(Inner {
            local: self.local,
            tiers: self.tiers,
            shutdown,
            workers: std::sync::Mutex::default(),
            promotions: Arc::default(),
            _queue_claims: queue_claims,
        });
        let mut workers = Vec::new();
        for i in 0..inner.tiers.len() {
            if inner.tiers[i].queue.is_some() {
                let rx = inner.shutdown.subscribe();
                let inner = inner.clone();
                workers.push(tokio::spawn(async move {
                    write_back_worker(&inner, i, rx).await;
                    release_off_runtime(inner).await;
                }));
            }
        }
        *inner.workers.lock().expect("workers poisoned") = workers;
        Ok(CacheManager::with_inner(inner))
    }
}

fn local_tier(store: &Store) -> Tier {
    Tier {
        backend: Arc::new(store.clone()),
        remote: Remote::Local,
        priority: 0,
        policy: None,
        counters: TierCounters::default(),
        degraded: AtomicBool::new(false),
        queue: None,
    }
}

impl From<Store> for CacheManager {
    /// A manager with only the local tier.
    fn from(store: Store) -> Self {
        let (shutdown, _) = watch::channel(false);
        CacheManager::with_inner(Arc::new(Inner {
            tiers: vec![local_tier(&store)],
            local: store,
            shutdown,
            workers: std::sync::Mutex::default(),
            promotions: Arc::default(),
            _queue_claims: Vec::new(),
        }))
    }
}

/// Remote tiers sit behind the local one (priority 1 or more); their names are unique,
/// never `local`, and usable in queue names.
fn check_tiers(tiers: &[Tier]) -> Result<()> {
    if tiers.iter().any(|t| t.priority == 0) {
        return Err(Error::invalid(
            "priority 0 belongs to the local (filesystem) tier; give remote tiers 1 or more",
        ));
    }
    let mut names = std::collections::HashSet::new();
    names.insert("local");
    for t in tiers {
        if !names.insert(t.backend.name()) || t.backend.name().contains('\0') {
            return Err(Error::invalid(format!(
                "tier name {:?} is used twice or invalid",
                t.backend.name()
            )));
        }
    }
    Ok(())
}

/// The remote tiers `config` describes, built and checked ([`check_tiers`]) but not
/// contacted.
fn remote_tiers(config: &CacheConfig, options: &StoreOptions) -> Result<Vec<Tier>> {
    let compression = options.compression;
    let clock = options.clock.clone();
    let mut tiers = Vec::new();
    for backend in &config.backends {
        let name = backend.name();
        let Some((priority, policy, capacity)) = backend.remote_placement() else {
            continue;
        };
        let capacity = queue_capacity_field(&name, capacity)?;
        let remote = |e| Error::remote(&name, e);
        // Pack tiers (S3, fs-remote) differ only in their object store.
        let (kind, store, gc_grace) = match backend {
            BackendConfig::Filesystem { .. } => continue,
            BackendConfig::S3 {
                bucket,
                prefix,
                endpoint,
                region,
                access_key_id,
                secret_access_key,
                timeout,
                gc_grace,
                ..
            } => {
                let env = |v: &str| std::env::var(v).ok().filter(|s| !s.is_empty());
                let opts = S3Options {
                    bucket: bucket.clone(),
                    prefix: prefix.clone(),
                    endpoint: endpoint.clone(),
                    region: region.clone().unwrap_or_else(|| DEFAULT_REGION.into()),
                    access_key_id: access_key_id.clone().or_else(|| env("AWS_ACCESS_KEY_ID")),
                    secret_access_key: secret_access_key
                        .as_ref()
                        .map(|s| s.expose().to_owned())
                        .or_else(|| env("AWS_SECRET_ACCESS_KEY")),
                };
                let deadline = duration_field(&name, timeout.as_ref(), DEFAULT_DEADLINE)?;
                let store = ObjectStore::s3(&opts, deadline).map_err(remote)?;
                (BackendKind::S3, store, gc_grace)
            }
            BackendConfig::FsRemote {
                path,
                timeout,
                gc_grace,
                ..
            } => {
                let deadline = duration_field(&name, timeout.as_ref(), DEFAULT_DEADLINE)?;
                let store = ObjectStore::filesystem(path, deadline).map_err(remote)?;
                (BackendKind::FsRemote, store, gc_grace)
            }
            BackendConfig::Redis {
                url,
                max_object_size,
                timeout,
                ..
            } => {
                let deadline = duration_field(&name, timeout.as_ref(), DEFAULT_REDIS_DEADLINE)?;
                let max = size_field(
                    &name,
                    "max_object_size",
                    max_object_size.as_ref(),
                    DEFAULT_REDIS_MAX_OBJECT,
                )?;
                let store = RedisStore::new(url.expose(), RedisTier::KEY_PREFIX, deadline)
                    .map_err(remote)?;
                let tier = RedisTier::new(&name, store, max, compression, clock.clone());
                tiers.push(Tier::redis(tier, priority, policy, capacity));
                continue;
            }
        };
        let grace = duration_field(&name, gc_grace.as_ref(), DEFAULT_GRACE)?;
        let tier = PackTier::new(&name, kind, store, compression, clock.clone(), grace);
        tiers.push(Tier::pack(tier, priority, policy, capacity));
    }
    check_tiers(&tiers)?;
    Ok(tiers)
}

impl CacheManager {
    /// Starts building a manager in front of `store`.
    pub fn builder(store: Store) -> ManagerBuilder {
        ManagerBuilder {
            local: store,
            tiers: Vec::new(),
        }
    }

    /// Opens the tiers `config` describes. The local store lives in the `filesystem`
    /// backend's `path`, else in `default_dir`; `options` are the local store's, with the
    /// config applied on top. Remote tiers are not contacted here (see
    /// [`CacheManager::check`]), so a store opens while a remote is down.
    pub async fn open(
        config: &CacheConfig,
        default_dir: &Path,
        mut options: StoreOptions,
        origin: &str,
    ) -> Result<Self> {
        config.apply(&mut options, origin)?;
        let dir = config.local_path(origin)?.unwrap_or(default_dir).to_owned();
        let tiers = remote_tiers(config, &options)?;
        let store = Store::open(&dir, options).await?;
        ManagerBuilder {
            local: store,
            tiers,
        }
        .build()
        .await
    }

    /// Checks `config` without opening the local store (which may not exist yet, or be in
    /// use): every field parses, the tier structure holds, and every remote tier answers.
    pub async fn check_config(config: &CacheConfig, origin: &str) -> Result<()> {
        for t in &Self::validate_config(config, origin)? {
            t.check().await?;
        }
        Ok(())
    }

    /// Checks `config` as opening a manager would (values, tier structure, names, every
    /// remote tier built), without contacting any tier or opening the local store.
    pub fn validate(config: &CacheConfig, origin: &str) -> Result<()> {
        Self::validate_config(config, origin).map(drop)
    }

    fn validate_config(config: &CacheConfig, origin: &str) -> Result<Vec<Tier>> {
        let mut options = StoreOptions::default();
        config.apply(&mut options, origin)?;
        config.local_path(origin)?;
        remote_tiers(config, &options)
    }

    /// The local store.
    pub fn local(&self) -> &Store {
        &self.inner.local
    }

    /// Contacts every remote tier once: reachable, bucket present. Errors name the tier.
    pub async fn check(&self) -> Result<()> {
        for t in &self.inner.tiers {
            t.check().await?;
        }
        Ok(())
    }

    /// The artifact under `key` from the fastest tier that has it.
    pub async fn get(&self, key: &str) -> Result<Option<Artifact>> {
        Ok(self.get_stored(key).await?.map(|s| s.artifact))
    }

    /// [`CacheManager::get`] with the artifact's times.
    #[tracing::instrument(level = "debug", skip(self))]
    pub async fn get_stored(&self, key: &str) -> Result<Option<StoredArtifact>> {
        validate_key(key)?;
        let mut error = None;
        for (i, tier) in self.inner.tiers.iter().enumerate() {
            // Reached only when the local tier missed: a tier still owed this key's upload
            // may answer with the value the local put replaced.
            if tier.is_pending(key) {
                continue;
            }
            match tier.backend.get(key).await {
                Ok(Some(f)) => {
                    bump(&tier.counters.hits);
                    tier.succeeded();
                    if i > 0 {
                        self.promote(i, key, f.stored.clone());
                    }
                    return Ok(Some(f.stored));
                }
                Ok(None) => {
                    bump(&tier.counters.misses);
                    tier.succeeded();
                }
                Err(e) => {
                    tier.failed("get", key, &e);
                    // A local failure that no remote tier can answer for is the caller's:
                    // damage included (an error naming the key and blob, never a quiet miss).
                    // So is a remote tier refusing its configuration (credentials, bucket):
                    // a miss would have the caller recompute forever beside a cache it can
                    // never reach. An outage or timeout stays a (counted) miss: the local
                    // tier keeps serving.
                    if (i == 0 || e.is_misconfigured_remote()) && error.is_none() {
                        error = Some(e);
                    }
                }
            }
        }
        error.map_or(Ok(None), Err)
    }

    /// Copies a hit in tier `from` into the faster tiers, nearest first, in the background.
    fn promote(&self, from: usize, key: &str, item: StoredArtifact) {
        let inner = self.inner.clone();
        let key = key.to_owned();
        self.inner.promotions.spawn(async move {
            let faster = &inner.tiers[..from];
            let targets: Vec<&dyn CacheBackend> =
                faster.iter().rev().map(|t| &*t.backend).collect();
            // A put or delete queued for the source tier since the read: the copy is older
            // than what this machine now holds (or deleted).
            let source = &inner.tiers[from];
            let outcomes = promote(&key, &item, &targets, || !source.is_pending(&key)).await;
            for (tier, outcome) in faster.iter().rev().zip(outcomes) {
                match outcome {
                    PromotionOutcome::Copied => bump(&tier.counters.promotions),
                    PromotionOutcome::TooLarge => bump(&tier.counters.skipped_too_large),
                    PromotionOutcome::Failed(e) => tier.failed("promote", &key, &e),
                    PromotionOutcome::Stale => {}
                }
            }
            drop(targets);
            release_off_runtime(inner).await;
        });
    }

    /// Waits until every background promotion started so far has finished.
    #[cfg(feature = "test-hooks")]
    pub async fn wait_promotions(&self) {
        self.wait_promotions_inner().await;
    }

    async fn wait_promotions_inner(&self) {
        self.inner.promotions.wait().await;
    }

    /// Stores `artifact` under `key` with the default TTL.
    pub async fn put(&self, key: &str, artifact: Artifact) -> Result<()> {
        self.put_with(key, artifact, PutOptions::default()).await
    }

    /// Stores `artifact` in the local tier, then per remote tier by its write policy.
    #[tracing::instrument(level = "debug", skip(self, artifact, options))]
    pub async fn put_with(&self, key: &str, artifact: Artifact, options: PutOptions) -> Result<()> {
        let remotes = &self.inner.tiers[1..];
        if remotes.is_empty() {
            return Ok(self.inner.local.put_with(key, artifact, options).await?);
        }
        let local = &self.inner.local;
        let now = local.options().clock.now_ms();
        // Computed once, so every tier records the same expiry.
        let expires_ms = options.expiry(now, local.options().default_ttl);
        let options = PutOptions {
            expires_at_ms: expires_ms,
            ..options
        };
        // Every remote tier gets its queue entry in the local put's own commit, so a crash
        // can never keep the artifact and lose its upload: a write-back tier's worker
        // uploads it; a write-through put uploads it itself below and removes the entry, and
        // when that fails (the tier is down) the entry stays for the worker. The local tier
        // keeps putting through an outage, and the tier never keeps the value this put
        // replaced.
        //
        // An artifact too large for a tier is not sent there, but the tier's copy of an older
        // value under the key must go: after a local eviction it would come back through
        // read-through, and other machines would read it. The tier gets a removal entry
        // (never dropped) instead of an upload. An upload dropped because the queue is full
        // queues a removal the same way: the tier ends up without the key rather than with
        // the value this put replaced.
        //
        // Every oversized put does so, a new key included: the tier may hold a value this
        // machine never had (another machine's put, or one evicted here). The cost is one
        // queue entry (and, write-through, one delete) per oversized put, next to a put that
        // took seconds of pipeline work (keyframe sets are routinely over a Redis tier's
        // limit).
        let size = artifact.logical_size();
        let mut reserved = Reservations::new(&self.inner, key);
        for (i, tier) in remotes.iter().enumerate() {
            let q = tier.queue.as_ref().expect("remote tiers have a queue");
            if !tier.fits_size(size) {
                bump(&tier.counters.skipped_too_large);
                reserved.reserve(i + 1, QueueOp::Delete);
            } else if !reserved.reserve(i + 1, QueueOp::Upload) {
                q.count_drop(tier.backend.name());
                reserved.reserve(i + 1, QueueOp::Delete);
            }
        }
        // Made before the commit: a caller that stops waiting leaves the entries to the worker.
        let attempts = reserved.sync_attempts();
        let uploads = attempts
            .entries
            .iter()
            .any(|(_, slot, _)| slot.op == QueueOp::Upload);
        let copy = uploads.then(|| artifact.clone());
        let (store, owned_key) = (local.clone(), key.to_owned());
        let written = reserved
            .commit(
                move |slots| async move {
                    Ok(store
                        .put_with_outbox(&owned_key, artifact, options, slots)
                        .await?)
                },
                |w| matches!(w, Ok(true)),
            )
            .await;
        // Refused by `if_absent`: nothing was written locally, so nothing goes anywhere else.
        if !written? {
            return Ok(());
        }
        let item = copy.map(|artifact| StoredArtifact {
            artifact,
            created_ms: now,
            expires_ms,
        });
        attempts.run(item.as_ref()).await;
        Ok(())
    }

    /// Waits until every write-back queue is empty, or `timeout` passes (then an error
    /// saying how many entries wait).
    pub async fn drain_queues(&self, timeout: Duration) -> Result<()> {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            let waiting: u64 = self
                .inner
                .tiers
                .iter()
                .filter_map(|t| t.queue.as_ref())
                .map(Queue::len)
                .sum();
            if waiting == 0 {
                return Ok(());
            }
            if tokio::time::Instant::now() >= deadline {
                return Err(Error::Timeout {
                    what: format!(
                        "{waiting} queue entries (uploads and removals) still waiting after {timeout:?}"
                    ),
                });
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Removes `key` from every tier (a copy left remotely would come back through
    /// read-through). Returns whether any tier had it.
    pub async fn delete(&self, key: &str) -> Result<bool> {
        validate_key(key)?;
        // Every remote tier deletes through its queue, in order with the uploads before it:
        // deleting directly could race an upload of the old value already under way. A
        // write-through delete is applied by this call once the local one committed (the
        // worker retries it if the tier is down).
        let mut reserved = Reservations::new(&self.inner, key);
        for i in 1..self.inner.tiers.len() {
            reserved.reserve(i, QueueOp::Delete);
        }
        let attempts = reserved.sync_attempts();
        let (store, owned_key) = (self.inner.local.clone(), key.to_owned());
        let existed = reserved
            .commit(
                move |slots| async move { Ok(store.delete_with_outbox(&owned_key, slots).await?) },
                Result::is_ok,
            )
            .await?;
        Ok(attempts.run(None).await || existed)
    }

    /// Live keys starting with `prefix` in any tier that can list (the local store and the
    /// pack tiers; Redis cannot, and its values expire on their own). A tier that fails to
    /// answer is an error, not an empty listing.
    pub async fn list_keys(&self, prefix: &str) -> Result<std::collections::BTreeSet<String>> {
        let mut keys = std::collections::BTreeSet::new();
        for tier in &self.inner.tiers {
            if !tier.backend.capabilities().list {
                continue;
            }
            let listed = tier
                .backend
                .list(prefix)
                .await
                .inspect_err(|e| tier.failed("list", prefix, e))?;
            keys.extend(listed);
        }
        Ok(keys)
    }

    /// Per-tier figures, fastest first.
    pub fn tier_stats(&self) -> Vec<TierStats> {
        self.inner
            .tiers
            .iter()
            .map(|t| {
                let r = |c: &AtomicU64| c.load(Ordering::Relaxed);
                let transfer = t.transfer();
                TierStats {
                    name: t.backend.name().to_owned(),
                    kind: t.backend.kind(),
                    priority: t.priority,
                    write_policy: t.policy,
                    capabilities: t.backend.capabilities(),
                    hits: r(&t.counters.hits),
                    misses: r(&t.counters.misses),
                    errors: r(&t.counters.errors),
                    timeouts: r(&t.counters.timeouts),
                    corrupt: r(&t.counters.corrupt),
                    promotions: r(&t.counters.promotions),
                    puts: r(&t.counters.puts),
                    skipped_too_large: r(&t.counters.skipped_too_large),
                    deferred: r(&t.counters.deferred),
                    queue_length: t.queue.as_ref().map_or(0, Queue::len),
                    queue_dropped: t.queue.as_ref().map_or(0, |q| r(&q.dropped)),
                    bytes_up: transfer.map_or(0, |s| s.bytes_up),
                    bytes_down: transfer.map_or(0, |s| s.bytes_down),
                    requests: transfer,
                }
            })
            .collect()
    }

    /// The pack tier `name` (default: the first), with its index in the tier list.
    fn pack_tier(&self, name: Option<&str>) -> Result<(usize, &Tier, &PackTier)> {
        self.inner
            .tiers
            .iter()
            .enumerate()
            .find_map(|(i, t)| match &t.remote {
                Remote::Pack(p) if name.is_none_or(|n| n == t.backend.name()) => {
                    Some((i, t, p.inner()))
                }
                _ => None,
            })
            .ok_or_else(|| {
                Error::invalid(match name {
                    Some(n) => format!("no s3 or fs-remote tier named {n:?} is configured"),
                    None => {
                        "no s3 or fs-remote tier is configured (add one under [[backends]])".into()
                    }
                })
            })
    }

    /// The pack tier `name` (default: the first s3 or fs-remote tier), for tests and
    /// benches that look at the remote layout directly.
    #[cfg(feature = "test-hooks")]
    pub fn remote_packs(&self, name: Option<&str>) -> Result<&PackTier> {
        self.pack_tier(name).map(|(_, _, p)| p)
    }

    /// Stops the write-back workers (queued entries stay queued for the next open), waits
    /// for promotions, and closes the local store when this was its last handle.
    pub async fn close(self) -> Result<()> {
        self.wait_promotions_inner().await;
        let _ = self.inner.shutdown.send(true);
        let workers = std::mem::take(&mut *self.inner.workers.lock().expect("workers poisoned"));
        for w in workers {
            let _ = w.await;
        }
        let CacheManager {
            inner,
            _handles: handles,
        } = self;
        drop(handles);
        match Arc::try_unwrap(inner) {
            Ok(inner) => {
                let Inner { local, tiers, .. } = inner;
                drop(tiers);
                Ok(local.close().await?)
            }
            Err(_) => Ok(()),
        }
    }
}

/// Drops a task's manager handle on a blocking thread: after the last user handle is gone
/// (dropped without `close`) a task may hold the last one, and dropping it closes the local
/// store, which joins its writer and GC threads.
async fn release_off_runtime(inner: Arc<Inner>) {
    let _ = tokio::task::spawn_blocking(move || drop(inner)).await;
}

#[cfg(test)]
mod tests {
    use super::write_back::{WriteBackPlan, plan_write_back};
    use super::*;

    /// Concurrent reservations never pass the capacity: the check and the count are one
    /// atomic step. Removals may.
    #[test]
    fn queue_reservations_stop_exactly_at_capacity() {
        let q = Queue::new("write-back:t".into(), 1_000);
        let granted = AtomicU64::new(0);
        std::thread::scope(|s| {
            for _ in 0..8 {
                s.spawn(|| {
                    for _ in 0..1_000 {
                        if q.reserve("k", QueueOp::Upload).is_some() {
                            granted.fetch_add(1, Ordering::Relaxed);
                        }
                    }
                });
            }
        });
        assert_eq!(granted.load(Ordering::Relaxed), 1_000);
        assert_eq!(q.len(), 1_000);
        assert!(q.reserve("k", QueueOp::Upload).is_none());
        let (removal, _) = q
            .reserve("k", QueueOp::Delete)
            .expect("removals queue past capacity");
        assert_eq!(q.len(), 1_001);
        // Settling a removal frees no upload slot; settling an upload does, once.
        q.settled([("k", removal.seq, QueueOp::Delete)]);
        assert!(q.reserve("k", QueueOp::Upload).is_none());
        q.settled([("k", 1, QueueOp::Upload)]);
        q.settled([("k", 1, QueueOp::Upload)]);
        assert!(q.reserve("k", QueueOp::Upload).is_some());
        assert!(q.reserve("k", QueueOp::Upload).is_none());
        assert_eq!((q.len(), q.uploads.load(Ordering::Relaxed)), (1_000, 1_000));
    }

    /// The worker takes only entries still pending and not being applied by their own call,
    /// and a call removes its entry only while no other write of the key was reserved.
    #[test]
    fn write_through_entries_are_the_calls_until_released() {
        let q = Queue::new("write-back:t".into(), 10);
        let (a, sole) = q.reserve("k", QueueOp::Upload).unwrap();
        assert!(sole);
        q.set_in_flight("k", a.seq, true);
        let peek = || {
            let mut e = vec![entry(a.seq, "k", QueueOp::Upload)];
            q.retain_workable(&mut e);
            e.len()
        };
        assert_eq!(peek(), 0, "in flight: the call's");
        assert!(q.is_last("k", a.seq));
        // A later write of the key: the first call must leave its entry to the worker.
        let (b, sole) = q.reserve("k", QueueOp::Delete).unwrap();
        assert!(!sole);
        q.settled([("k", b.seq, QueueOp::Delete)]);
        assert!(
            !q.is_last("k", a.seq),
            "a later write was reserved meanwhile"
        );
        q.set_in_flight("k", a.seq, false);
        assert_eq!(peek(), 1, "released: the worker's");
        // Settled by its call: a peek made before the removal must not offer it.
        q.set_in_flight("k", a.seq, true);
        q.settled([("k", a.seq, QueueOp::Upload)]);
        assert_eq!(peek(), 0, "settled entries are never workable");
        assert_eq!(q.len(), 0);
        // An entry found in the index that nothing counts (a commit that reported an error
        // but landed): adopted, then workable, never skipped for good.
        let orphan = entry(99, "o", QueueOp::Upload);
        assert_eq!(q.uncounted(std::slice::from_ref(&orphan)), [99]);
        q.adopt(&orphan);
        let mut e = vec![orphan];
        q.retain_workable(&mut e);
        assert_eq!((e.len(), q.len()), (1, 1));
    }

    fn entry(seq: u64, key: &str, op: QueueOp) -> QueueEntry {
        QueueEntry {
            seq,
            key: key.to_owned(),
            op,
        }
    }

    fn seqs(plan: &WriteBackPlan) -> Vec<u64> {
        plan.done.iter().map(|e| e.seq).collect()
    }

    fn sizes(of: &[(&str, Option<u64>)]) -> HashMap<String, Option<u64>> {
        of.iter().map(|(k, s)| ((*k).to_owned(), *s)).collect()
    }

    /// A key with an upload entry follows its local state: present and fitting uploads,
    /// anything else (oversized, deleted, evicted) deletes the tier's copy. A key queued only
    /// for removal is deleted there even when present here (its upload was dropped). A key
    /// queued twice is planned once and both entries are settled.
    #[test]
    fn write_back_plan_follows_local_state() {
        let entries = vec![
            entry(1, "fits", QueueOp::Upload),
            entry(2, "oversized", QueueOp::Upload),
            entry(3, "deleted", QueueOp::Delete),
            entry(4, "evicted", QueueOp::Upload),
            entry(5, "fits", QueueOp::Delete),
            entry(6, "evicted", QueueOp::Delete),
            entry(7, "dropped", QueueOp::Delete),
            entry(8, "removed-then-put", QueueOp::Delete),
            entry(9, "removed-then-put", QueueOp::Upload),
        ];
        let local = sizes(&[
            ("fits", Some(10)),
            ("oversized", Some(1_000)),
            ("deleted", None),
            ("evicted", None),
            ("dropped", Some(5)),
            ("removed-then-put", Some(5)),
        ]);
        let plan = plan_write_back(entries.clone(), &local, |s| s <= 100, u64::MAX);
        assert_eq!(
            plan,
            WriteBackPlan {
                done: entries,
                uploads: vec!["fits".into(), "removed-then-put".into()],
                deletes: vec![
                    "oversized".into(),
                    "deleted".into(),
                    "evicted".into(),
                    "dropped".into()
                ],
            }
        );
    }

    /// A batch stops taking entries once its uploads reach the byte limit; the first upload
    /// goes whatever its size, and oversized or absent keys weigh nothing.
    #[test]
    fn write_back_plan_stops_at_the_byte_limit() {
        let mib = 1u64 << 20;
        let entries = (1..=6)
            .map(|i| entry(i, &format!("k{i}"), QueueOp::Upload))
            .collect();
        let local = sizes(&[
            ("k1", None),
            ("k2", Some(40 * mib)),
            ("k3", Some(900 * mib)),
            ("k4", Some(30 * mib)),
            ("k5", Some(mib)),
            ("k6", Some(mib)),
        ]);
        let fits = |s| s <= 100 * mib;
        let plan = plan_write_back(entries, &local, fits, QUEUE_BATCH_BYTES);
        assert_eq!(seqs(&plan), vec![1, 2, 3, 4]);
        assert_eq!(plan.uploads, vec!["k2", "k4"]);
        assert_eq!(plan.deletes, vec!["k1", "k3"]);

        let one = vec![
            entry(1, "huge", QueueOp::Upload),
            entry(2, "k", QueueOp::Upload),
        ];
        let local = sizes(&[("huge", Some(80 * mib)), ("k", Some(1))]);
        let plan = plan_write_back(one, &local, fits, QUEUE_BATCH_BYTES);
        assert_eq!(
            (seqs(&plan), plan.uploads),
            (vec![1], vec!["huge".to_owned()])
        );
    }
}
