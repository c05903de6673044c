//! Write-through: a put's or delete's queue entries reserved before the local commit and
//! committed with it ([`Reservations`]), then applied on each write-through tier by the call
//! itself ([`SyncAttempts`]), the entry left to the tier's worker when that fails.

use std::sync::Arc;

use pipecache_store::outbox::{OutboxSlot as QueueSlot, QueueOp};
use pipecache_store::{StoreError, StoredArtifact};

use super::shared::{Inner, release_off_runtime};
use super::tier::bump;
use crate::{Error, Result};

/// Queue entries reserved for one local commit of `key`: released if the commit fails,
/// announced to the workers if it succeeds. Owned (not borrowed from the manager) so the
/// commit and its settling can run in a task of their own ([`Reservations::commit`]).
pub(super) struct Reservations {
    inner: Arc<Inner>,
    key: String,
    /// Remote tier index, slot, and whether it was the key's only entry when reserved.
    taken: Vec<(usize, QueueSlot, bool)>,
}

impl Reservations {
    pub(super) fn new(inner: &Arc<Inner>, key: &str) -> Self {
        Self {
            inner: inner.clone(),
            key: key.to_owned(),
            taken: Vec::new(),
        }
    }

    /// Reserves an entry in the queue of remote tier `index`; false when, for an upload,
    /// it is full (see `Queue::reserve`). On a write-through tier the entry is
    /// marked in flight: the call applies it itself once the local commit is done, and the
    /// worker takes it only if that fails (or the call is dropped, or the process dies).
    pub(super) fn reserve(&mut self, index: usize, op: QueueOp) -> bool {
        let tier = &self.inner.remotes[index];
        let q = &tier.queue;
        let Some((slot, sole)) = q.reserve(&self.key, op) else {
            return false;
        };
        if tier.is_write_through() {
            q.set_in_flight(&self.key, slot.seq, true);
        }
        self.taken.push((index, slot, sole));
        true
    }

    /// The write-through entries among those reserved, to apply after the commit.
    pub(super) fn sync_attempts(&self) -> SyncAttempts {
        SyncAttempts {
            inner: self.inner.clone(),
            key: self.key.clone(),
            entries: self
                .taken
                .iter()
                .filter(|(i, _, _)| self.inner.remotes[*i].is_write_through())
                .cloned()
                .collect(),
        }
    }

    /// Runs the local commit `commit` (given the reserved slots) to its end in a task of its
    /// own, then settles: `written` says from its result whether the entries were committed.
    /// A caller that stops waiting (a timeout around a put) cannot leave slots counted and
    /// keys pending without an entry.
    pub(super) async fn commit<T, F>(
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
            let tier = &self.inner.remotes[*index];
            let q = &tier.queue;
            if written {
                // A write-through entry is its call's until released (which wakes the
                // worker then): waking it now would only read entries it must skip.
                if !tier.is_write_through() {
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
pub(super) struct SyncAttempts {
    inner: Arc<Inner>,
    key: String,
    /// Remote tier index, entry, and whether it was the key's only entry when reserved; each
    /// removed from here once its attempt has ended.
    pub(super) entries: Vec<(usize, QueueSlot, bool)>,
}

impl SyncAttempts {
    /// Applies each entry on its tier: the upload of `item` (absent when nothing is
    /// uploaded) or a delete. Returns whether some tier had the key (deletes).
    pub(super) async fn run(mut self, item: Option<&StoredArtifact>) -> bool {
        let mut existed = false;
        // Each entry leaves `entries` only once its attempt has ended: dropped midway, the
        // guard hands the current one and the rest to the worker.
        while let Some((index, slot, sole)) = self.entries.first().cloned() {
            let tier = &self.inner.remotes[index];
            let result = match (slot.op, item) {
                (QueueOp::Upload, Some(item)) => {
                    let started = std::time::Instant::now();
                    let put = tier.backend.put(&self.key, item).await;
                    let kind = tier.kinds.kind_of(&self.key);
                    let by_kind = &tier.counters.by_kind;
                    by_kind.of(kind).put_seconds.observe(started.elapsed());
                    if let Ok(written) = &put {
                        let size = item.artifact.logical_size();
                        by_kind.count_put(kind, size, written.deduplicated_bytes);
                    }
                    put.map(drop)
                }
                (QueueOp::Upload, None) => unreachable!("an upload entry comes with its artifact"),
                (QueueOp::Delete, _) => tier.backend.delete(&self.key).await.map(|e| {
                    existed |= e;
                }),
            };
            let applied = match result {
                Ok(()) => {
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
        let tier = &inner.remotes[index];
        let q = &tier.queue;
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
            let q = &self.inner.remotes[*index].queue;
            q.set_in_flight(&self.key, slot.seq, false);
            q.notify.notify_one();
        }
    }
}
