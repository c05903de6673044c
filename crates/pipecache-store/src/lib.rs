//! # pipecache-store: the local store
//!
//! Owns one store directory: its layout and lock, the chunk files, the single writer thread
//! that group-commits puts (chunk append, fsync, then one RocksDB batch through the index's
//! only [`IndexWriter`](pipecache_index::IndexWriter)), the read path (index lookup,
//! positioned read, decompression, blake3 check), the lifecycle (TTL, size budget, GC,
//! compaction), `verify`, `repair`, `rebuild-index`, `stats`, and the outbox (durable queues
//! committed with puts and deletes, see [`outbox`]).
//!
//! It builds on `pipecache-format` (bytes at rest) and `pipecache-index` (RocksDB). It knows
//! no tiers and no videos: it must not contact anything remote, must never use an artifact
//! key as a file path, must never return bytes that failed their hash check, and must not
//! install a tracing subscriber.
//!
//! Modules form one-way layers, lowest first, in the order `mod` declares them below; a
//! module imports only modules declared before it (the workspace's tidy test checks that no
//! two import each other):
//! - `error`, `artifact`, `layout`: vocabulary;
//! - `policy`, then `options`: what the caller chooses;
//! - `open`, `space`, `stats`: the directory and its lock, free space, reports;
//! - `journal`: the change journal other processes' near caches are invalidated through;
//! - `state`: what every thread shares (read handle of the index, counters, reader cache);
//! - `outbox`: queue slots and claims (the tiers' door into the index);
//! - `direct`: a put's large blobs, written by the putting thread into a chunk of their own;
//! - `recovery`, `accounting`: reconciling chunk files and counts with the index;
//! - `writer`: the one thread that commits;
//! - `read`: the read path (and a put's hashing on the caller's thread);
//! - `job`, then `compaction`, `lifecycle` (GC), `verify`, `rebuild`: jobs that plan on
//!   their own thread and ask the writer;
//! - `store`: the [`Store`] facade.
//!
//! ```no_run
//! # async fn demo() -> pipecache_store::Result<()> {
//! use pipecache_store::{Artifact, Store, StoreOptions};
//! let store = Store::open("/tmp/cache", StoreOptions::default()).await?;
//! store.put("video:abc:transcript:model=base", Artifact::single(b"{\"text\":\"hi\"}".to_vec())).await?;
//! let hit = store.get("video:abc:transcript:model=base").await?;
//! assert!(hit.is_some());
//! store.close().await?;
//! # Ok(()) }
//! ```

mod error;

mod artifact;
mod layout;

mod classify;
mod policy;

mod options;

mod open;
mod space;
mod stats;

mod journal;

mod state;

pub mod outbox;

mod direct;

mod accounting;
mod recovery;

mod writer;

mod read;

mod job;

mod compaction;
mod lifecycle;
mod rebuild;
mod verify;

mod store;

pub use artifact::{
    Artifact, ListEntry, MAX_KEY_LEN, MAX_META_BYTES, MAX_PARTS, Part, PutOptions, PutOutcome,
    StoredArtifact, validate_key,
};
pub use classify::{KeyClass, KeyClassifier};
pub use compaction::CompactReport;
use error::StoreError as Error;
pub use error::{Result, StoreError};
pub use journal::{Change, JOURNAL_FILE, JournalReader};
pub use layout::{MARKER_FILE, STORE_VERSION};
pub use lifecycle::{GcOptions, GcReport};
pub use options::{
    Algorithm, Clock, CompressionPolicy, DEFAULT_TTL, Durability, ManualClock, StoreOptions,
    SystemClock,
};
pub use outbox::{OutboxClaim, OutboxSlot};
pub use pipecache_format::BlobHash;
pub use policy::{CostWeighted, EvictionCandidate, EvictionPolicy, Lru};
pub use rebuild::RebuildReport;
pub use space::FsSpace;
pub use state::RemovalListener;
pub use stats::{CounterSnapshot, Footprint, Stats};
pub use store::Store;
pub use verify::{DamagedBlob, LiveBytesMismatch, RefcountMismatch, RepairReport, VerifyReport};
pub use writer::{RelocOutcome, RemovalReason};
