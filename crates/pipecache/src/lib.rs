//! # pipecache: the facade
//!
//! The crate ingest services depend on. It holds no code of its own: it re-exports the
//! layers, in foyer's manner, so a user names one crate.
//! - [`pipecache_store`]: the local store ([`Store`]): chunk files, the RocksDB index, the
//!   writer thread, lifecycle, verify, rebuild, the outbox.
//! - [`pipecache_tiers`] (as [`tier`]): the [`CacheBackend`] trait, pack and Redis tiers,
//!   hash verification, promotion, and the [`CacheManager`] that walks them.
//! - [`pipecache_config`] (as [`config`]): [`CacheConfig`] and its defaults, typed data.
//! - [`pipecache_client`] (as [`client`]): [`Cache`], a store opened in process or held by
//!   `pipecache serve`, and the [`ServerClient`] that talks to such a server.
//!
//! [`Error`] is the tiers' error, which carries the store's ([`StoreError`]) whole: a
//! `Store` call's error converts into it with `?`. It must not gain code of its own: a
//! function belongs in the layer it works on.
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

pub use pipecache_client::{Cache, ServerClient};
pub use pipecache_config::ConfigError;
pub use pipecache_remote::RemoteError;
pub use pipecache_store::{
    Algorithm, Artifact, BlobHash, Clock, CompactReport, CompressionPolicy, CostWeighted,
    CounterSnapshot, DEFAULT_TTL, DamagedBlob, Durability, EvictionCandidate, EvictionPolicy,
    Footprint, FsSpace, GcOptions, GcReport, KeyClass, KeyClassifier, ListEntry, LiveBytesMismatch,
    Lru, MARKER_FILE, MAX_KEY_LEN, MAX_META_BYTES, MAX_PARTS, ManualClock, Part, PutOptions,
    RebuildReport, RefcountMismatch, RelocOutcome, RemovalReason, RepairReport, STORE_VERSION,
    Stats, Store, StoreError, StoreOptions, StoredArtifact, SystemClock, VerifyReport,
    validate_key,
};
pub use pipecache_tiers::{CacheBackend, CacheConfig, CacheManager, TierError};

/// Every error a pipecache call returns: the tiers' error, which carries the store's.
pub type Error = TierError;
/// Result alias of the facade.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// The tiers and the cache manager (`pipecache-tiers`), with the configuration types they
/// are built from.
pub mod tier {
    pub use pipecache_config::{
        BackendConfig, CacheConfig, ConfigNotes, DEFAULT_DEADLINE, DEFAULT_GRACE,
        DEFAULT_QUEUE_CAPACITY, DEFAULT_REDIS_DEADLINE, DEFAULT_REDIS_MAX_OBJECT, DEFAULT_REGION,
        Secret, WritePolicy, format_duration, format_size, parse_duration, parse_free_space,
        parse_size,
    };
    pub use pipecache_tiers::*;
}

/// The cache configuration (`pipecache-config`).
pub mod config {
    pub use pipecache_config::*;
}

/// The client of `pipecache serve` and the protocol it speaks (`pipecache-client`).
pub mod client {
    pub use pipecache_client::*;
}
