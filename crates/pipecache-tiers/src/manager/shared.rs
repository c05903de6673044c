//! The manager's shared state ([`Inner`]) and its handle ([`CacheManager`]): the local
//! store and its tier, the remote tiers, the workers and promotions in flight. The modules
//! that act on it (operations, write-through, write-back, sync, the factory) sit above.

use std::sync::{Arc, Mutex};

use pipecache_store::Store;
use pipecache_store::outbox::OutboxClaim as QueueClaim;
use tokio::sync::watch;
use tokio::task::JoinHandle;

use super::tier::{RemoteTier, Tier};
use crate::kinds::{ByKind, DayStart, KindTable, MissedSubjects};
use crate::promotion::Promotions;

/// What every clone of a manager and its tasks share.
#[derive(Debug)]
pub(super) struct Inner {
    pub(super) local: Store,
    /// Hot artifacts in memory, in front of the local store (absent when its budget is 0).
    pub(super) memory: Option<Arc<crate::MemoryTier>>,
    /// The local store as the walk's first tier.
    pub(super) local_tier: Tier,
    /// Remote tiers by priority, fastest first.
    pub(super) remotes: Vec<RemoteTier>,
    /// The kinds every tier counts by.
    pub(super) kinds: Arc<KindTable>,
    /// The memory tier's hits and misses per kind.
    pub(super) memory_counters: ByKind,
    /// Hits server clients answered from their near caches and reported
    /// ([`CacheManager::count_near_hits`]); also in `memory_counters`.
    pub(super) near_hits: std::sync::atomic::AtomicU64,
    /// Gets as callers see them: hits (some tier answered), misses, failures, end to end.
    pub(super) lookups: ByKind,
    /// Subjects (videos) whose gets no tier answered.
    pub(super) missed: MissedSubjects,
    /// For the recompute time saved today.
    pub(super) day_start: DayStart,
    pub(super) shutdown: watch::Sender<bool>,
    pub(super) workers: Mutex<Vec<JoinHandle<()>>>,
    /// Background promotions; shared with their tasks, which drop their `Inner` handle
    /// before counting themselves done, so `close` never finds one still holding it.
    pub(super) promotions: Arc<Promotions>,
    /// This manager's write-back queues, held until the last handle and worker are gone.
    _queue_claims: Vec<QueueClaim>,
}

impl Inner {
    pub(super) fn new(
        local: Store,
        memory: Option<Arc<crate::MemoryTier>>,
        remotes: Vec<RemoteTier>,
        kinds: Arc<KindTable>,
        claims: Vec<QueueClaim>,
    ) -> Self {
        let (shutdown, _) = watch::channel(false);
        let now_ms = local.options().clock.now_ms();
        if let Some(m) = &memory {
            // GC's expiries and evictions reach the memory tier at once.
            let m = Arc::downgrade(m);
            local.on_removal(Arc::new(move |key| {
                if let Some(m) = m.upgrade() {
                    m.invalidate(key);
                }
            }));
        }
        Inner {
            local_tier: Tier::local(&local, &kinds),
            memory,
            local,
            remotes,
            memory_counters: ByKind::new(kinds.len()),
            near_hits: std::sync::atomic::AtomicU64::new(0),
            lookups: ByKind::new(kinds.len()),
            kinds,
            missed: MissedSubjects::default(),
            day_start: DayStart::new(now_ms),
            shutdown,
            workers: Mutex::default(),
            promotions: Arc::default(),
            _queue_claims: claims,
        }
    }

    /// Every tier in walk order: the local one, then the remote ones by priority.
    pub(super) fn walk(&self) -> impl Iterator<Item = &Tier> {
        std::iter::once(&self.local_tier).chain(self.remotes.iter().map(|r| &r.tier))
    }
}

/// The tiers of a cache, walked by priority: the local store first, then remote tiers.
///
/// Clones share one manager. [`CacheManager::close`] stops it and closes the local store;
/// dropping the last clone without it stops the write-back workers too (queued entries stay
/// queued), and the store closes once they have exited.
#[derive(Clone, Debug)]
pub struct CacheManager {
    pub(super) inner: Arc<Inner>,
    pub(super) _handles: Arc<StopOnDrop>,
}

/// Held by every clone of a [`CacheManager`] (never by its own tasks): the last one dropped
/// stops the workers, which would otherwise keep the manager and its store alive for good.
#[derive(Debug)]
pub(super) struct StopOnDrop(std::sync::Weak<Inner>);

impl Drop for StopOnDrop {
    fn drop(&mut self) {
        if let Some(inner) = self.0.upgrade() {
            let _ = inner.shutdown.send(true);
        }
    }
}

impl CacheManager {
    pub(super) fn with_inner(inner: Arc<Inner>) -> Self {
        CacheManager {
            _handles: Arc::new(StopOnDrop(Arc::downgrade(&inner))),
            inner,
        }
    }
}

/// Drops a task's manager handle on a blocking thread: after the last user handle is gone
/// (dropped without `close`) a task may hold the last one, and dropping it closes the local
/// store, which joins its writer and GC threads.
pub(super) async fn release_off_runtime(inner: Arc<Inner>) {
    let _ = tokio::task::spawn_blocking(move || drop(inner)).await;
}
