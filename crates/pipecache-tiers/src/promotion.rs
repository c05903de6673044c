//! The promotion layer: a hit in a slower tier is copied into faster tiers, so the next
//! read is served nearer. It works over any [`CacheBackend`]s and is tested alone
//! (`tests/promotion_layer.rs`); the manager decides when to promote (a read-through hit,
//! `sync pull`) and turns the outcomes into its counters.
//!
//! Two rules keep a copy from ever replacing newer data:
//! - copies go through [`CacheBackend::put_copy`]: a tier takes one only where it holds no
//!   live artifact, so a put that lands while the copy is in flight stays;
//! - `still_current` is asked before every copy: once the source's value is no longer this
//!   machine's latest (the source tier is owed a write of the key), nothing more is copied.

use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use tokio::sync::Notify;

use super::CacheBackend;
use crate::Error;
use pipecache_store::StoredArtifact;

/// What became of one target of a promotion.
#[derive(Debug)]
#[non_exhaustive]
pub enum PromotionOutcome {
    /// The target holds the copy (or already held a live artifact, which it keeps).
    Copied,
    /// Larger than the target's `max_object_size`; not sent.
    TooLarge,
    /// Not attempted: the source's value stopped being current first.
    Stale,
    /// The target refused or failed.
    Failed(Error),
}

/// Copies `item` under `key` into each of `targets` in the order given, one outcome per
/// target. A failure does not stop the others (a tier that is down does not keep the copy
/// from the tiers that are up); a stale source stops them all.
pub async fn promote(
    key: &str,
    item: &StoredArtifact,
    targets: &[&dyn CacheBackend],
    still_current: impl Fn() -> bool,
) -> Vec<PromotionOutcome> {
    let size = item.artifact.logical_size();
    let mut outcomes = Vec::with_capacity(targets.len());
    for target in targets {
        let outcome = if !still_current() {
            PromotionOutcome::Stale
        } else if target
            .capabilities()
            .max_object_size
            .is_some_and(|max| size > max)
        {
            PromotionOutcome::TooLarge
        } else {
            match target.put_copy(key, item).await {
                Ok(_) => PromotionOutcome::Copied,
                Err(e) => PromotionOutcome::Failed(e),
            }
        };
        outcomes.push(outcome);
    }
    outcomes
}

/// Promotions running in the background, and a way to wait for their end (tests, shutdown).
#[derive(Debug, Default)]
pub struct Promotions {
    in_flight: AtomicUsize,
    done: Notify,
}

impl Promotions {
    /// Runs `copy` on the runtime, counted as in flight until it has finished; what it holds
    /// is dropped before it stops counting, so [`Promotions::wait`] never returns while a
    /// finished copy still holds a store.
    pub fn spawn(self: &Arc<Self>, copy: impl Future<Output = ()> + Send + 'static) {
        self.in_flight.fetch_add(1, Ordering::SeqCst);
        // Counted done on drop, so a copy that panics does not leave `wait` waiting forever.
        let finished = Finished(self.clone());
        tokio::spawn(async move {
            copy.await;
            drop(finished);
        });
    }

    /// Promotions started and not finished.
    pub fn in_flight(&self) -> usize {
        self.in_flight.load(Ordering::SeqCst)
    }

    /// Waits until every promotion started so far has finished.
    pub async fn wait(&self) {
        loop {
            let done = self.done.notified();
            if self.in_flight() == 0 {
                return;
            }
            done.await;
        }
    }
}

/// Marks one promotion finished when dropped (after its copy, or while a panic unwinds).
struct Finished(Arc<Promotions>);

impl Drop for Finished {
    fn drop(&mut self) {
        if self.0.in_flight.fetch_sub(1, Ordering::SeqCst) == 1 {
            self.0.done.notify_waiters();
        }
    }
}
