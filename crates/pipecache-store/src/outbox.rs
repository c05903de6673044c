//! The outbox: durable queues of keys whose value another tier must receive (or lose),
//! committed in the same index batch as the put or delete that queues them, so a crash
//! never keeps one without the other. The store only keeps the queues; what a queue means
//! and who delivers it is the tiers crate's business, through this named API:
//! [`OutboxSlot`] on a put or delete ([`Store::put_with_outbox`],
//! [`Store::delete_with_outbox`]), [`Store::claim_outbox`], [`Store::outbox_peek`] and
//! [`Store::outbox_remove_delivered`] (the one index write outside the writer thread).
//!
//! [`Store::put_with_outbox`]: crate::Store::put_with_outbox
//! [`Store::delete_with_outbox`]: crate::Store::delete_with_outbox
//! [`Store::claim_outbox`]: crate::Store::claim_outbox
//! [`Store::outbox_peek`]: crate::Store::outbox_peek
//! [`Store::outbox_remove_delivered`]: crate::Store::outbox_remove_delivered

use std::sync::Weak;

pub use pipecache_index::{QueueEntry, QueueOp};

use crate::state::Shared;

/// One entry a put or delete adds to an outbox queue, in its own commit.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OutboxSlot {
    /// Queue name.
    pub queue: String,
    /// Sequence number within the queue, chosen by the queue's owner (never reused).
    pub seq: u64,
    /// Upload the key's current value, or delete it.
    pub op: QueueOp,
}

/// A hold on one outbox queue ([`Store::claim_outbox`](crate::Store::claim_outbox)), released on drop: one consumer
/// per queue, since two would deliver its entries twice and count them wrong.
#[derive(Debug)]
pub struct OutboxClaim {
    /// Weak: a claim must not keep a closed store's index open.
    shared: Weak<Shared>,
    queue: String,
}

impl Drop for OutboxClaim {
    fn drop(&mut self) {
        if let Some(shared) = self.shared.upgrade() {
            shared
                .claimed_queues
                .lock()
                .expect("queue claims poisoned")
                .remove(&self.queue);
        }
    }
}

impl OutboxClaim {
    pub(crate) fn new(shared: Weak<Shared>, queue: String) -> Self {
        Self { shared, queue }
    }
}
