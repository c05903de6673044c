//! What the manager keeps per tier: the walk's view of every tier (backend, priority,
//! counters, the once-per-episode failure log) and, for a remote tier, its kind, write
//! policy and queue, which every remote tier has.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use pipecache_config::WritePolicy;
use pipecache_remote::TransferSnapshot;
use pipecache_store::{Store, StoredArtifact};
use serde::Serialize;

use super::queue::Queue;
use crate::pack::PackTier;
use crate::redis::RedisTier;
use crate::{
    BackendKind, CacheBackend, Capabilities, Error, Fetched, Latency, LatencyHistogram, Result,
    Verified,
};

/// What a tier's calls came to, for `tier_stats`.
#[derive(Debug, Default)]
pub(super) struct TierCounters {
    pub(super) hits: AtomicU64,
    pub(super) misses: AtomicU64,
    pub(super) errors: AtomicU64,
    pub(super) timeouts: AtomicU64,
    pub(super) corrupt: AtomicU64,
    pub(super) promotions: AtomicU64,
    pub(super) puts: AtomicU64,
    pub(super) skipped_too_large: AtomicU64,
    pub(super) deferred: AtomicU64,
    /// Time of every get on the tier (hits, misses and failures).
    pub(super) get_seconds: LatencyHistogram,
    /// Time of every put: the local tier's as the caller waits for it, a remote tier's
    /// upload when the put makes it itself (write-through).
    pub(super) put_seconds: LatencyHistogram,
}

pub(super) fn bump(c: &AtomicU64) {
    c.fetch_add(1, Ordering::Relaxed);
}

pub(super) fn bump_by(c: &AtomicU64, n: u64) {
    c.fetch_add(n, Ordering::Relaxed);
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
    degraded: AtomicBool,
}

/// A remote tier: the walk's view, plus its kind, write policy and queue.
#[derive(Debug)]
pub(super) struct RemoteTier {
    pub(super) tier: Tier,
    pub(super) kind: RemoteKind,
    pub(super) policy: WritePolicy,
    pub(super) queue: Queue,
}

impl Tier {
    fn new(backend: Arc<dyn CacheBackend>, priority: u32) -> Self {
        Tier {
            backend,
            priority,
            counters: TierCounters::default(),
            degraded: AtomicBool::new(false),
        }
    }

    /// The local store as the first tier of the walk.
    pub(super) fn local(store: &Store) -> Self {
        Self::new(Arc::new(store.clone()), 0)
    }

    /// Counts a `get` on this tier: a hit, a miss, or a failure (logged once per episode).
    pub(super) fn count_get(&self, key: &str, result: &Result<Option<Fetched>>) {
        match result {
            Ok(Some(_)) => {
                bump(&self.counters.hits);
                self.succeeded();
            }
            Ok(None) => {
                bump(&self.counters.misses);
                self.succeeded();
            }
            Err(e) => self.failed("get", key, e),
        }
    }

    pub(super) fn failed(&self, op: &str, key: &str, e: &Error) {
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

    pub(super) fn succeeded(&self) {
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
    ) -> Self {
        // Every remote tier has a queue: write-back tiers upload through it; write-through
        // tiers record each call in it and remove the entry once the call has applied it.
        // One name for both policies, so entries survive a change of policy.
        let queue = Queue::new(format!("write-back:{}", backend.name()), queue_capacity);
        RemoteTier {
            tier: Tier::new(backend, priority),
            kind,
            policy,
            queue,
        }
    }

    pub(super) fn pack(
        tier: PackTier,
        priority: u32,
        policy: WritePolicy,
        queue_capacity: u64,
    ) -> Self {
        Self::verified(tier, RemoteKind::Pack, priority, policy, queue_capacity)
    }

    pub(super) fn redis(
        tier: RedisTier,
        priority: u32,
        policy: WritePolicy,
        queue_capacity: u64,
    ) -> Self {
        Self::verified(tier, RemoteKind::Redis, priority, policy, queue_capacity)
    }

    /// `tier` behind the hash-verifying layer, kept typed in `remote` for the calls only
    /// that kind of tier has (sync, remote GC, transfer figures).
    fn verified<B: CacheBackend + 'static>(
        tier: B,
        kind: fn(Arc<Verified<B>>) -> RemoteKind,
        priority: u32,
        policy: WritePolicy,
        queue_capacity: u64,
    ) -> Self {
        let t = Arc::new(Verified::new(tier));
        Self::new(kind(t.clone()), t, priority, policy, queue_capacity)
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
    /// Latency of the tier's gets.
    #[serde(default)]
    pub get_seconds: Latency,
    /// Latency of the tier's puts (none for the memory tier).
    #[serde(default)]
    pub put_seconds: Latency,
}

impl TierStats {
    /// The memory tier's figures (it is walked first; reported at priority 0 with the
    /// local tier, which it sits in front of).
    pub(super) fn of_memory(m: &crate::MemoryTier) -> Self {
        let r = |c: &AtomicU64| c.load(Ordering::Relaxed);
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
            hits: r(&m.hits),
            misses: r(&m.misses),
            errors: 0,
            timeouts: 0,
            corrupt: 0,
            promotions: 0,
            puts: 0,
            skipped_too_large: 0,
            deferred: 0,
            queue_length: 0,
            queue_dropped: 0,
            bytes_up: 0,
            bytes_down: 0,
            requests: None,
            get_seconds: m.get_seconds.snapshot(),
            put_seconds: Latency::default(),
        }
    }

    /// The figures of `tier`; `remote` adds a remote tier's policy, queue and transfers.
    pub(super) fn of(tier: &Tier, remote: Option<&RemoteTier>) -> Self {
        let r = |c: &AtomicU64| c.load(Ordering::Relaxed);
        let transfer = remote.map(RemoteTier::transfer);
        TierStats {
            name: tier.backend.name().to_owned(),
            kind: tier.backend.kind(),
            priority: tier.priority,
            write_policy: remote.map(|t| t.policy),
            capabilities: tier.backend.capabilities(),
            hits: r(&tier.counters.hits),
            misses: r(&tier.counters.misses),
            errors: r(&tier.counters.errors),
            timeouts: r(&tier.counters.timeouts),
            corrupt: r(&tier.counters.corrupt),
            promotions: r(&tier.counters.promotions),
            puts: r(&tier.counters.puts),
            skipped_too_large: r(&tier.counters.skipped_too_large),
            deferred: r(&tier.counters.deferred),
            queue_length: remote.map_or(0, |t| t.queue.len()),
            queue_dropped: remote.map_or(0, |t| r(&t.queue.dropped)),
            bytes_up: transfer.map_or(0, |s| s.bytes_up),
            bytes_down: transfer.map_or(0, |s| s.bytes_down),
            requests: transfer,
            get_seconds: tier.counters.get_seconds.snapshot(),
            put_seconds: tier.counters.put_seconds.snapshot(),
        }
    }
}
