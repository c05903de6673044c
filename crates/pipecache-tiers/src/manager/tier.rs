//! What the manager keeps per tier: the walk's view of every tier (backend, priority,
//! counters, the once-per-episode failure log) and, for a remote tier, its kind, write
//! policy and queue, which every remote tier has.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use failsafe::backoff::{Exponential, exponential};
use failsafe::failure_policy::{ConsecutiveFailures, consecutive_failures};

use pipecache_config::WritePolicy;
use pipecache_remote::TransferSnapshot;
use pipecache_store::{Store, StoredArtifact};
use serde::Serialize;

use super::queue::Queue;
use crate::kinds::{ByKind, KindStats, KindTable, total};
use crate::pack::PackTier;
use crate::redis::RedisTier;
use crate::{BackendKind, CacheBackend, Capabilities, Error, Fetched, Latency, Result, Verified};

/// What a tier's calls came to, for `tier_stats`.
#[derive(Debug)]
pub(super) struct TierCounters {
    /// Hits, misses, failures, bytes and latency per kind. Get latency: every get on the
    /// tier (hits, misses and failures). Put latency: the local tier's as the caller waits
    /// for it, a remote tier's upload when the put makes it itself (write-through).
    pub(super) by_kind: ByKind,
    pub(super) corrupt: AtomicU64,
    pub(super) promotions: AtomicU64,
    pub(super) skipped_too_large: AtomicU64,
    pub(super) deferred: AtomicU64,
    /// Artifacts `sync push` uploaded (in packs, not per key: in no kind's counts).
    pub(super) pushed: AtomicU64,
}

pub(super) fn bump(c: &AtomicU64) {
    c.fetch_add(1, Ordering::Relaxed);
}

pub(super) fn bump_by(c: &AtomicU64, n: u64) {
    c.fetch_add(n, Ordering::Relaxed);
}

/// Now, Unix ms (the tiers' health times: wall clock, for people).
fn unix_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

/// A remote tier's backend, typed for the calls only that kind of tier has (sync, remote
/// GC, transfer figures).
#[derive(Debug)]
pub(super) enum RemoteKind {
    Pack(Arc<Verified<PackTier>>),
    Redis(Arc<Verified<RedisTier>>),
}

/// What the walk needs of every tier, the local one included.
#[derive(Debug)]
pub(super) struct Tier {
    pub(super) backend: Arc<dyn CacheBackend>,
    pub(super) priority: u32,
    pub(super) counters: TierCounters,
    pub(super) kinds: Arc<KindTable>,
    degraded: AtomicBool,
    /// Unix ms of the last call that succeeded, and that failed (0: none yet).
    last_success_ms: AtomicU64,
    last_failure_ms: AtomicU64,
}

/// When reads skip a failing remote tier: after `failures` reads in a row failed
/// (unreachable, past their deadline, an error answer), the walk leaves the tier out for
/// `pause`, then lets reads through again; if they fail, the next pause is longer
/// (doubling up to `max_pause`; whole seconds, at least 1: failsafe's backoff counts
/// seconds). A down tier then costs a local miss nothing instead of a refused connection
/// or a whole deadline, and a tier that comes back is used again within one pause. Writes
/// are not paused: the queue already retries them.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ReadBreaker {
    /// Consecutive failed reads that pause the tier (0: never pause).
    pub failures: u32,
    /// The first pause.
    pub pause: Duration,
    /// The longest pause.
    pub max_pause: Duration,
}

impl Default for ReadBreaker {
    fn default() -> Self {
        Self {
            failures: 3,
            pause: Duration::from_secs(1),
            max_pause: Duration::from_secs(30),
        }
    }
}

impl ReadBreaker {
    /// Pauses are whole seconds, at least 1, the longest no shorter than the first.
    pub(super) fn check(&self) -> Result<()> {
        let whole = |d: Duration| d.subsec_nanos() == 0 && d.as_secs() > 0;
        if self.failures > 0
            && !(whole(self.pause) && whole(self.max_pause) && self.max_pause >= self.pause)
        {
            return Err(Error::invalid(format!(
                "read breaker pauses must be whole seconds, at least 1, max_pause >= pause: {self:?}"
            )));
        }
        Ok(())
    }
}

/// Tells the tier when its breaker opens (reads paused) and closes.
#[derive(Debug)]
struct PauseFlag(Arc<AtomicBool>);

impl failsafe::Instrument for PauseFlag {
    fn on_call_rejected(&self) {}
    fn on_open(&self) {
        self.0.store(true, Ordering::Relaxed);
    }
    fn on_half_open(&self) {}
    fn on_closed(&self) {
        self.0.store(false, Ordering::Relaxed);
    }
}

type Breaker = failsafe::StateMachine<ConsecutiveFailures<Exponential>, PauseFlag>;

/// A remote tier: the walk's view, plus its kind, write policy and queue.
pub(super) struct RemoteTier {
    pub(super) tier: Tier,
    pub(super) kind: RemoteKind,
    pub(super) policy: WritePolicy,
    pub(super) queue: Queue,
    /// `None` when reads are never paused.
    breaker: Option<Breaker>,
    /// True while reads are paused (the breaker is open or probing).
    paused: Arc<AtomicBool>,
}

impl std::fmt::Debug for RemoteTier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RemoteTier")
            .field("tier", &self.tier)
            .field("policy", &self.policy)
            .field("paused", &self.paused)
            .finish_non_exhaustive()
    }
}

impl Tier {
    fn new(backend: Arc<dyn CacheBackend>, priority: u32, kinds: &Arc<KindTable>) -> Self {
        Tier {
            backend,
            priority,
            counters: TierCounters {
                by_kind: ByKind::new(kinds.len()),
                corrupt: AtomicU64::new(0),
                promotions: AtomicU64::new(0),
                skipped_too_large: AtomicU64::new(0),
                deferred: AtomicU64::new(0),
                pushed: AtomicU64::new(0),
            },
            kinds: kinds.clone(),
            degraded: AtomicBool::new(false),
            last_success_ms: AtomicU64::new(0),
            last_failure_ms: AtomicU64::new(0),
        }
    }

    /// The local store as the first tier of the walk.
    pub(super) fn local(store: &Store, kinds: &Arc<KindTable>) -> Self {
        Self::new(Arc::new(store.clone()), 0, kinds)
    }

    /// Counts a `get` of kind `kind` on this tier that took `took`: a hit, a miss, or a
    /// failure (logged once per episode).
    pub(super) fn count_get(
        &self,
        key: &str,
        kind: usize,
        result: &Result<Option<Fetched>>,
        took: std::time::Duration,
    ) {
        let by_kind = &self.counters.by_kind;
        match result {
            Ok(found) => {
                let bytes = found.as_ref().map(|f| f.stored.artifact.logical_size());
                by_kind.count_lookup(kind, bytes, took);
                self.succeeded();
            }
            Err(e) => {
                by_kind.of(kind).get_seconds.observe(took);
                self.failed("get", key, e);
            }
        }
    }

    /// Counts an artifact of `bytes` under `key` written to this tier.
    pub(super) fn count_put(&self, key: &str, bytes: u64, written: crate::Written) {
        self.counters
            .by_kind
            .count_put(self.kinds.kind_of(key), bytes, written.deduplicated_bytes);
    }

    /// A failed call carrying several keys (a write-back batch): one failure for each kind
    /// among them, since each kind's writes failed; logged as [`Tier::failed`] does.
    pub(super) fn failed_batch<'k>(
        &self,
        op: &str,
        keys: impl IntoIterator<Item = &'k str>,
        e: &Error,
    ) {
        let mut kinds = Vec::new();
        for key in keys {
            let kind = self.kinds.kind_of(key);
            if kinds.contains(&kind) {
                continue;
            }
            if kinds.is_empty() {
                self.failed(op, key, e);
            } else if !e.is_corruption() {
                self.counters.by_kind.count_failure(kind, e.is_timeout());
            }
            kinds.push(kind);
        }
    }

    pub(super) fn failed(&self, op: &str, key: &str, e: &Error) {
        self.last_failure_ms.store(unix_ms(), Ordering::Relaxed);
        if e.is_corruption() {
            bump(&self.counters.corrupt);
            tracing::warn!(tier = self.backend.name(), %key, error = %e, "corrupt remote data rejected");
            return;
        }
        self.counters
            .by_kind
            .count_failure(self.kinds.kind_of(key), e.is_timeout());
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

    pub(super) fn succeeded(&self) {
        self.last_success_ms.store(unix_ms(), Ordering::Relaxed);
        if self.degraded.swap(false, Ordering::Relaxed) {
            tracing::info!(tier = self.backend.name(), "tier recovered");
        }
    }

    pub(super) fn fits(&self, item: &StoredArtifact) -> bool {
        self.fits_size(item.artifact.logical_size())
    }

    pub(super) fn fits_size(&self, size: u64) -> bool {
        self.backend
            .capabilities()
            .max_object_size
            .is_none_or(|max| size <= max)
    }
}

impl RemoteTier {
    fn new(
        kind: RemoteKind,
        backend: Arc<dyn CacheBackend>,
        priority: u32,
        policy: WritePolicy,
        queue_capacity: u64,
        kinds: &Arc<KindTable>,
    ) -> Self {
        // Every remote tier has a queue: write-back tiers upload through it; write-through
        // tiers record each call in it and remove the entry once the call has applied it.
        // One name for both policies, so entries survive a change of policy.
        let queue = Queue::new(format!("write-back:{}", backend.name()), queue_capacity);
        let mut t = RemoteTier {
            tier: Tier::new(backend, priority, kinds),
            kind,
            policy,
            queue,
            breaker: None,
            paused: Arc::default(),
        };
        t.set_read_breaker(ReadBreaker::default());
        t
    }

    /// Replaces the tier's read breaker (a fresh one, closed); `b` passed
    /// [`ReadBreaker::check`].
    pub(super) fn set_read_breaker(&mut self, b: ReadBreaker) {
        self.paused.store(false, Ordering::Relaxed);
        self.breaker = (b.failures > 0).then(|| {
            let policy = consecutive_failures(b.failures, exponential(b.pause, b.max_pause));
            failsafe::Config::new()
                .failure_policy(policy)
                .instrument(PauseFlag(self.paused.clone()))
                .build()
        });
    }

    /// Whether the walk may read from this tier now; a read it may not is counted as
    /// skipped (of `key`'s kind).
    pub(super) fn read_permitted(&self, key: &str) -> bool {
        let permitted = self.breaker.as_ref().is_none_or(|b| b.is_call_permitted());
        if !permitted {
            self.counters.by_kind.count_skipped(self.kinds.kind_of(key));
        }
        permitted
    }

    /// Tells the breaker how a permitted read went: a failure of the tier counts against
    /// it (unreachable, past its deadline, an error answer). A refused configuration is
    /// the caller's error and a corrupt answer the data's; skipping the tier would only
    /// make either quieter.
    pub(super) fn read_done<T>(&self, result: &Result<T>) {
        let Some(b) = &self.breaker else { return };
        match result {
            Err(e) if e.is_remote_failure() => b.on_error(),
            _ => b.on_success(),
        }
    }

    /// True while reads skip this tier.
    pub(super) fn is_paused(&self) -> bool {
        self.paused.load(Ordering::Relaxed)
    }

    pub(super) fn pack(
        tier: PackTier,
        priority: u32,
        policy: WritePolicy,
        queue_capacity: u64,
        kinds: &Arc<KindTable>,
    ) -> Self {
        let kind = RemoteKind::Pack;
        Self::verified(tier, kind, priority, policy, queue_capacity, kinds)
    }

    pub(super) fn redis(
        tier: RedisTier,
        priority: u32,
        policy: WritePolicy,
        queue_capacity: u64,
        kinds: &Arc<KindTable>,
    ) -> Self {
        let kind = RemoteKind::Redis;
        Self::verified(tier, kind, priority, policy, queue_capacity, kinds)
    }

    /// `tier` behind the hash-verifying layer, kept typed in `remote` for the calls only
    /// that kind of tier has (sync, remote GC, transfer figures).
    fn verified<B: CacheBackend + 'static>(
        tier: B,
        kind: fn(Arc<Verified<B>>) -> RemoteKind,
        priority: u32,
        policy: WritePolicy,
        queue_capacity: u64,
        kinds: &Arc<KindTable>,
    ) -> Self {
        let t = Arc::new(Verified::new(tier));
        Self::new(kind(t.clone()), t, priority, policy, queue_capacity, kinds)
    }

    /// Contacts the tier once: reachable, bucket present. Errors name the tier.
    pub(super) async fn check(&self) -> Result<()> {
        let r = match &self.kind {
            RemoteKind::Pack(p) => p.inner().store().check().await,
            RemoteKind::Redis(r) => r.inner().store().check().await,
        };
        r.map_err(|e| Error::remote(self.backend.name(), e))
    }

    /// True while this tier's queue holds an entry for `key` (a write-back upload or
    /// removal, or a write-through call not applied yet).
    pub(super) fn is_pending(&self, key: &str) -> bool {
        self.queue.is_pending(key)
    }

    /// True when its puts and deletes are applied by the calls themselves.
    pub(super) fn is_write_through(&self) -> bool {
        self.policy == WritePolicy::WriteThrough
    }

    /// Requests and bytes of its transport.
    pub(super) fn transfer(&self) -> TransferSnapshot {
        match &self.kind {
            RemoteKind::Pack(p) => p.inner().store().stats().snapshot(),
            RemoteKind::Redis(r) => r.inner().store().stats().snapshot(),
        }
    }
}

impl std::ops::Deref for RemoteTier {
    type Target = Tier;

    fn deref(&self) -> &Tier {
        &self.tier
    }
}

/// Per-tier figures for `stats --json`.
#[derive(Clone, Debug, PartialEq, Serialize, serde::Deserialize)]
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
    /// Reads not sent because the tier was paused after consecutive failures
    /// ([`ReadBreaker`]).
    #[serde(default)]
    pub skipped: u64,
    /// True while reads skip the tier (paused after consecutive failures).
    #[serde(default)]
    pub paused: bool,
    /// Reads rejected by a hash check (never promoted).
    pub corrupt: u64,
    /// Artifacts promoted into this tier from a slower one.
    pub promotions: u64,
    /// Of `hits`, those server clients' near caches answered and reported (memory tier).
    #[serde(default)]
    pub near_hits: u64,
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
    /// Latency of the tier's gets.
    #[serde(default)]
    pub get_seconds: Latency,
    /// Latency of the tier's puts (none for the memory tier).
    #[serde(default)]
    pub put_seconds: Latency,
    /// Artifacts `sync push` uploaded to it (in packs; not in `puts` nor in any kind's).
    #[serde(default)]
    pub pushed: u64,
    /// Logical bytes its hits returned.
    #[serde(default)]
    pub read_bytes: u64,
    /// Logical bytes written to it.
    #[serde(default)]
    pub written_bytes: u64,
    /// When a call on the tier last succeeded, Unix ms (`None`: not since the process
    /// holding the store started).
    #[serde(default)]
    pub last_success_ms: Option<u64>,
    /// When a call on the tier last failed (error, timeout or corrupt data), Unix ms.
    #[serde(default)]
    pub last_failure_ms: Option<u64>,
    /// The figures above per artifact kind (the totals are their sums).
    #[serde(default)]
    pub by_kind: Vec<KindStats>,
}

impl TierStats {
    /// The memory tier's figures, counted per kind in `by_kind` (it is walked first;
    /// reported at priority 0 with the local tier, which it sits in front of).
    pub(super) fn of_memory(
        m: &crate::MemoryTier,
        by_kind: &ByKind,
        kinds: &KindTable,
        near_hits: u64,
    ) -> Self {
        let by_kind = by_kind.snapshot(kinds);
        let t = total(&by_kind);
        TierStats {
            name: "memory".into(),
            kind: crate::BackendKind::Memory,
            priority: 0,
            write_policy: None,
            capabilities: crate::Capabilities {
                ranged_reads: false,
                native_ttl: false,
                max_object_size: Some(m.budget() / 4),
                list: false,
            },
            hits: t.hits,
            misses: t.misses,
            errors: 0,
            timeouts: 0,
            skipped: 0,
            paused: false,
            corrupt: 0,
            promotions: 0,
            near_hits,
            puts: 0,
            pushed: 0,
            skipped_too_large: 0,
            deferred: 0,
            queue_length: 0,
            queue_dropped: 0,
            bytes_up: 0,
            bytes_down: 0,
            requests: None,
            get_seconds: t.get_seconds,
            put_seconds: Latency::default(),
            read_bytes: t.read_bytes,
            written_bytes: 0,
            // Memory never fails.
            last_success_ms: None,
            last_failure_ms: None,
            by_kind,
        }
    }

    /// The figures of `tier`; `remote` adds a remote tier's policy, queue and transfers.
    pub(super) fn of(tier: &Tier, remote: Option<&RemoteTier>) -> Self {
        let r = |c: &AtomicU64| c.load(Ordering::Relaxed);
        let transfer = remote.map(RemoteTier::transfer);
        let by_kind = tier.counters.by_kind.snapshot(&tier.kinds);
        let t = total(&by_kind);
        TierStats {
            name: tier.backend.name().to_owned(),
            kind: tier.backend.kind(),
            priority: tier.priority,
            write_policy: remote.map(|t| t.policy),
            capabilities: tier.backend.capabilities(),
            hits: t.hits,
            misses: t.misses,
            errors: t.errors,
            timeouts: t.timeouts,
            skipped: t.skipped,
            paused: remote.is_some_and(RemoteTier::is_paused),
            corrupt: r(&tier.counters.corrupt),
            promotions: r(&tier.counters.promotions),
            near_hits: 0,
            puts: t.puts,
            pushed: r(&tier.counters.pushed),
            skipped_too_large: r(&tier.counters.skipped_too_large),
            deferred: r(&tier.counters.deferred),
            queue_length: remote.map_or(0, |t| t.queue.len()),
            queue_dropped: remote.map_or(0, |t| r(&t.queue.dropped)),
            bytes_up: transfer.map_or(0, |s| s.bytes_up),
            bytes_down: transfer.map_or(0, |s| s.bytes_down),
            requests: transfer,
            get_seconds: t.get_seconds,
            put_seconds: t.put_seconds,
            read_bytes: t.read_bytes,
            written_bytes: t.written_bytes,
            last_success_ms: Some(r(&tier.last_success_ms)).filter(|&ms| ms > 0),
            last_failure_ms: Some(r(&tier.last_failure_ms)).filter(|&ms| ms > 0),
            by_kind,
        }
    }
}
