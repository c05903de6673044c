//! # pipecache-remote: the transports of pipecache's remote tiers
//!
//! Owns the connections to remote storage and nothing about what is stored there:
//!
//! - [`ObjectStore`]: an opendal operator over a filesystem directory (`fs-remote`, e.g. a
//!   mounted share) or an S3 bucket, with whole-object and ranged reads, writes, listing with
//!   modification times, and deletes (a directory's whole objects are read with std: see
//!   `ObjectStore::get`);
//! - [`RedisStore`]: a Redis connection for small whole values with a per-value expiry (opendal's
//!   Redis service has no per-object TTL, so this one speaks Redis through the `redis` crate).
//!
//! Every call has a deadline; errors come back classified ([`RemoteError`]: timeout,
//! unavailable, not found, configuration, other backend error) so the tier manager can count
//! them apart from misses. Byte and request counters live in [`TransferStats`].
//!
//! It must not know the store's layout (packs, records: the store engine decides object names
//! and encodings), must not retry on its own (the manager owns retry policy and backoff), must
//! never log credentials, and must not install a tracing subscriber.

mod error;
mod object;
mod redis_store;

pub use error::{RemoteError, Result};
pub use object::{ObjectEntry, ObjectMeta, ObjectStore, S3Options};
pub use redis_store::{RedisStore, mask_url};

use std::sync::atomic::{AtomicU64, Ordering};

/// Requests and bytes moved by one remote, since it was opened.
#[derive(Debug, Default)]
pub struct TransferStats {
    /// Bytes uploaded.
    pub bytes_up: AtomicU64,
    /// Bytes downloaded.
    pub bytes_down: AtomicU64,
    /// Write requests (PUT, SET).
    pub puts: AtomicU64,
    /// Read requests (GET, ranged GET).
    pub gets: AtomicU64,
    /// List and stat requests.
    pub lists: AtomicU64,
    /// Delete requests.
    pub deletes: AtomicU64,
}

/// A copy of [`TransferStats`].
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct TransferSnapshot {
    /// Bytes uploaded.
    pub bytes_up: u64,
    /// Bytes downloaded.
    pub bytes_down: u64,
    /// Write requests.
    pub puts: u64,
    /// Read requests.
    pub gets: u64,
    /// List and stat requests.
    pub lists: u64,
    /// Delete requests.
    pub deletes: u64,
}

impl TransferStats {
    /// A consistent-enough copy (each counter read once).
    pub fn snapshot(&self) -> TransferSnapshot {
        let r = |c: &AtomicU64| c.load(Ordering::Relaxed);
        TransferSnapshot {
            bytes_up: r(&self.bytes_up),
            bytes_down: r(&self.bytes_down),
            puts: r(&self.puts),
            gets: r(&self.gets),
            lists: r(&self.lists),
            deletes: r(&self.deletes),
        }
    }

    pub(crate) fn add(counter: &AtomicU64, n: u64) {
        counter.fetch_add(n, Ordering::Relaxed);
    }
}
