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
//!
//! Modules, lowest first (each imports only those before it): `queue` (one tier's queue
//! bookkeeping), `tier` (what the walk keeps per tier), `shared` (the state every handle
//! and task shares), `totals` (lookup counts kept across restarts), `write_through`, `write_back` (the worker), `factory` (builder and
//! config), `ops` (get, put, delete...), `remote_gc`, `sync` (push, pull).

mod queue;
mod tier;

mod shared;
mod totals;

mod write_back;
mod write_through;

mod factory;
mod ops;
mod remote_gc;
mod sync;

pub use factory::ManagerBuilder;
pub use remote_gc::RemoteGcReport;
pub use shared::CacheManager;
pub use sync::{PullReport, PushReport};
pub use tier::{ReadBreaker, TierStats};
