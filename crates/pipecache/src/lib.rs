//! # pipecache: the store engine
//!
//! The library ingest services depend on. It owns the local tier of a pipecache store: the
//! directory layout and its lock, the single writer thread that group-commits puts (chunk
//! append, fsync, then one RocksDB batch), the read path (index lookup, positioned read,
//! decompression, blake3 check), `verify` and `stats`.
//!
//! It also owns the tiers ([`tier`]): the [`CacheBackend`] trait, the pack (fs-remote, S3) and
//! Redis tiers, the hash-verification layer, and the [`CacheManager`] that walks tiers by
//! priority, promotes, queues write-back uploads and runs sync and remote GC.
//!
//! It builds on `pipecache-format` (bytes at rest, local and remote), `pipecache-index`
//! (RocksDB) and `pipecache-remote` (transports). It must not know about video pipelines (that
//! layer sits on top), must never use an artifact key as a file path or object name, must never
//! return bytes that failed their hash check (local or remote), and must not install a tracing
//! subscriber.
//!
//! ```no_run
//! # async fn demo() -> pipecache::Result<()> {
//! use pipecache::{Artifact, Store, StoreOptions};
//! let store = Store::open("/tmp/cache", StoreOptions::default()).await?;
//! store.put("video:abc:transcript:model=base", Artifact::single(b"{\"text\":\"hi\"}".to_vec())).await?;
//! let hit = store.get("video:abc:transcript:model=base").await?;
//! assert!(hit.is_some());
//! store.close().await?;
//! # Ok(()) }
//! ```

mod artifact;
mod error;
mod layout;
mod lifecycle;
mod options;
mod rebuild;
mod space;
mod stats;
mod store;
pub mod tier;
mod verify;
mod writer;

pub use artifact::{
    Artifact, ListEntry, MAX_KEY_LEN, MAX_META_BYTES, MAX_PARTS, Part, PutOptions, StoredArtifact,
    validate_key,
};
pub use error::{Error, Result};
pub use layout::{MARKER_FILE, STORE_VERSION};
pub use lifecycle::{
    CompactReport, CostWeighted, EvictionCandidate, EvictionPolicy, GcOptions, GcReport, Lru,
};
pub use options::{
    Clock, CompressionPolicy, DEFAULT_TTL, Durability, ManualClock, StoreOptions, SystemClock,
};
pub use pipecache_format::BlobHash;
pub use pipecache_remote::RemoteError;
pub use rebuild::RebuildReport;
pub use space::FsSpace;
pub use stats::{CounterSnapshot, Footprint, Stats};
pub use store::Store;
pub use tier::{CacheBackend, CacheConfig, CacheManager};
pub use verify::{DamagedBlob, LiveBytesMismatch, RefcountMismatch, RepairReport, VerifyReport};
pub use writer::{RelocOutcome, RemovalReason};
