//! The single writer thread: every index mutation and every chunk append goes through it
//! (a put's large blobs come already written, in a direct chunk of their own: see `direct`;
//! the writer commits their records).
//!
//! Requests arrive on a crossbeam channel. The thread takes everything queued (up to
//! `max_batch_requests` / `max_batch_bytes`), appends the group's new blobs and record frames to
//! the open chunk, fsyncs the chunk once, then commits one RocksDB `WriteBatch` for the whole
//! group and answers every request. Maintenance requests (eviction, dropping dead blobs, chunk
//! relocation for compaction, orphan removal, repair) run after the group, each as its own
//! commit, on the same thread.
//!
//! One thread owning all mutations is what makes dedup safe against GC: a blob's liveness is
//! decided and changed in one place, in order, and every maintenance request *re-checks* the
//! state it was planned on (a key's record sequence number, a blob's refcount and location) at
//! the moment it applies. No grace period is needed. A put that saw a blob as present carries
//! the raw bytes anyway, so if the blob was collected in between it is simply written again.
//!
//! Write order (the crash-safety promise, see docs/format.md):
//! 1. append frames to the open chunk (rolling to a new chunk file when full; a sealed chunk is
//!    fsynced before the new one is used);
//! 2. fsync the open chunk;
//! 3. commit one WriteBatch: blob records and refcounts, chunk records (committed length, live
//!    bytes), artifact records, expiry and access entries, store totals;
//! 4. only then unlink chunk files that compaction emptied.
//!
//! A crash before 3 leaves bytes past the committed length of a chunk, or a chunk file the index
//! does not know: both are unreferenced and removed at the next open (or by `gc`).
//!
//! Modules, lowest first: `request` (what callers send), `state` (the open chunk, a
//! batch's pending mutations, frame and reference steps), `apply` (one request on a batch),
//! `commit`, `maintenance` (one commit per request), `run` (the thread's loop).

mod request;
mod state;

mod apply;
mod commit;

mod maintenance;
mod run;

pub(crate) use request::{Expect, PreparedPart, PutRequest, RelocItem, Request, Victim};
pub use request::{RelocOutcome, RemovalReason};
pub(crate) use state::Writer;
