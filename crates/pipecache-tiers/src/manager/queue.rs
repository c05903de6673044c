//! The bookkeeping of one remote tier's upload queue: capacity, the keys with entries
//! waiting (reads skip the tier for them), entries a write-through call is applying itself,
//! and the worker's wake-up. The entries themselves live in the local store's outbox.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};

use pipecache_store::outbox::{OutboxSlot as QueueSlot, QueueEntry, QueueOp};
use tokio::sync::Notify;

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

/// One remote tier's queue, as this process counts it: the entries are in the local
/// store's outbox (`pipecache_store::outbox`); this keeps who is pending, the capacity and
/// the wake-up of the tier's worker.
#[derive(Debug)]
pub(super) struct Queue {
    pub(super) name: String,
    capacity: u64,
    next_seq: AtomicU64,
    /// Upload entries waiting: what the capacity bounds.
    uploads: AtomicU64,
    pub(super) dropped: AtomicU64,
    pub(super) notify: Notify,
    /// Keys with entries waiting (reserved or committed), with their entry counts and the
    /// last entry reserved. The tier's copy of such a key may be older than the local value,
    /// so reads skip the tier for it when the local tier misses (evicted or damaged before
    /// the upload).
    pending: std::sync::Mutex<HashMap<String, PendingKey>>,
}

impl Queue {
    pub(super) fn new(name: String, capacity: u64) -> Self {
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
    pub(super) fn set_in_flight(&self, key: &str, seq: u64, on: bool) {
        if let Some(p) = self.pending().get_mut(key) {
            if on {
                p.in_flight.insert(seq);
            } else {
                p.in_flight.remove(&seq);
            }
        }
    }

    /// Entries of `entries` this queue does not count as pending.
    pub(super) fn uncounted(&self, entries: &[QueueEntry]) -> Vec<u64> {
        let pending = self.pending();
        entries
            .iter()
            .filter(|e| !pending.get(&e.key).is_some_and(|p| p.seqs.contains(&e.seq)))
            .map(|e| e.seq)
            .collect()
    }

    /// Counts an entry found in the index that no reservation counts (a commit that reported
    /// an error although its batch landed): the worker applies it like any other.
    pub(super) fn adopt(&self, e: &QueueEntry) {
        if e.op == QueueOp::Upload {
            self.uploads.fetch_add(1, Ordering::Relaxed);
        }
        self.add_pending(&e.key, e.seq);
        tracing::warn!(queue = %self.name, key = %e.key, seq = e.seq, "uncounted queue entry found; applying it");
    }

    /// Keeps the entries the worker may apply: pending (a peek may still show an entry a
    /// call has just settled) and not in flight, judged in one step under the lock.
    pub(super) fn retain_workable(&self, entries: &mut Vec<QueueEntry>) {
        let pending = self.pending();
        entries.retain(|e| {
            pending
                .get(&e.key)
                .is_some_and(|p| p.seqs.contains(&e.seq) && !p.in_flight.contains(&e.seq))
        });
    }

    /// True when entry `seq` is the only one waiting for `key` and no later one was
    /// reserved: whatever this entry's call wrote to the tier is the key's last write.
    pub(super) fn is_last(&self, key: &str, seq: u64) -> bool {
        self.pending()
            .get(key)
            .is_some_and(|p| p.seqs.len() == 1 && p.seqs.contains(&seq) && p.last_seq == seq)
    }

    fn pending(&self) -> std::sync::MutexGuard<'_, HashMap<String, PendingKey>> {
        self.pending.lock().expect("pending keys poisoned")
    }

    /// Entries waiting, uploads and removals (the pending keys' counts).
    pub(super) fn len(&self) -> u64 {
        self.pending().values().map(|p| p.seqs.len() as u64).sum()
    }

    /// Takes in the entries found in the index when the manager opens.
    pub(super) fn load(&self, entries: &[QueueEntry]) {
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
    pub(super) fn settled<'e>(&self, entries: impl IntoIterator<Item = (&'e str, u64, QueueOp)>) {
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
    pub(super) fn is_pending(&self, key: &str) -> bool {
        self.pending().contains_key(key)
    }

    /// Counts entry `seq` of `key`; true when the key had no other entry waiting.
    pub(super) fn add_pending(&self, key: &str, seq: u64) -> bool {
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
    pub(super) fn reserve(&self, key: &str, op: QueueOp) -> Option<(QueueSlot, bool)> {
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
    pub(super) fn count_drop(&self, tier: &str) {
        if self.dropped.fetch_add(1, Ordering::Relaxed) == 0 {
            tracing::warn!(
                tier,
                capacity = self.capacity,
                "upload queue full; uploads are dropped and counted (the tier's copies of their keys are removed)"
            );
        }
    }
}

#[cfg(test)]
pub(super) mod tests {
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

    pub(in crate::manager) fn entry(seq: u64, key: &str, op: QueueOp) -> QueueEntry {
        QueueEntry {
            seq,
            key: key.to_owned(),
            op,
        }
    }
}
