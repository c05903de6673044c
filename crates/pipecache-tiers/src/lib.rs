//! # pipecache-tiers: tiers and the cache manager
//!
//! The [`CacheBackend`] trait every tier implements, the backends (the local store, opendal
//! packs on a filesystem or S3, Redis), the [`MemoryTier`] in front of them all, the cross-cutting layers around them (hash
//! verification, promotion) and the [`CacheManager`] that walks them by priority, writes
//! through or back, syncs and collects remote garbage.
//!
//! It reaches the local store only through `pipecache-store`'s public API, the outbox among
//! it (write-back queues committed with puts); it never touches chunk files or the index,
//! and knows no videos. It builds tiers from a `pipecache-config` [`CacheConfig`] and talks
//! to remotes through `pipecache-remote`. It must never return bytes that failed their hash
//! check, never use a key as an object name (keys are hashed), and must not install a
//! tracing subscriber.
//!
//! Layout of remote bytes: `docs/format.md`, "Remote layout".

mod error;

mod backend;
mod kinds;
mod latency;

mod local;
mod memory;
mod verified;

mod pack;
mod promotion;
mod redis;

mod manager;

pub use backend::{BackendKind, CacheBackend, Capabilities, Fetched, Written};
use error::TierError as Error;
pub use error::{Result, TierError};
pub use kinds::{KindStats, KindTable, MissedSubject, OTHER};
pub use latency::{BUCKETS_SECONDS, Bucket, Latency, LatencyHistogram};
pub use manager::{
    CacheManager, ManagerBuilder, PullReport, PushReport, ReadBreaker, RemoteGcReport, TierStats,
};
pub use memory::{MemoryTier, SECOND_READ_MIN, WriteGuard};
pub use pack::{BatchReport, PackGcReport, PackTier};
pub use pipecache_config::CacheConfig;
pub use promotion::{PromotionOutcome, Promotions, promote};
pub use redis::RedisTier;
pub use verified::Verified;

/// Runs `task` on every item on the runtime's threads, at most `limit` at once, handing each
/// output to `each` as it finishes (completion order). The first error from `each` stops the
/// run; tasks still in flight are aborted. A task that panicked re-raises its panic here
/// rather than turning into an unrelated error.
pub(crate) async fn for_each_bounded<T, R, Fut>(
    items: impl IntoIterator<Item = T>,
    limit: usize,
    mut task: impl FnMut(T) -> Fut,
    mut each: impl FnMut(R) -> crate::Result<()>,
) -> crate::Result<()>
where
    Fut: std::future::Future<Output = R> + Send + 'static,
    R: Send + 'static,
{
    let mut set = tokio::task::JoinSet::new();
    let mut items = items.into_iter();
    loop {
        while set.len() < limit.max(1) {
            let Some(item) = items.next() else { break };
            set.spawn(task(item));
        }
        match set.join_next().await {
            None => return Ok(()),
            Some(Ok(r)) => each(r)?,
            Some(Err(e)) if e.is_panic() => std::panic::resume_unwind(e.into_panic()),
            // Cancelled: only a runtime shutting down cancels these tasks.
            Some(Err(_)) => return Err(pipecache_store::StoreError::Closed.into()),
        }
    }
}

/// The object name of an artifact key in a remote tier: keys are never used as paths.
pub(crate) fn key_hash(key: &str) -> String {
    blake3::hash(key.as_bytes()).to_hex().to_string()
}

use pipecache_format::record::RECORD_VERSION;
use pipecache_format::remote::{RemotePart, RemoteRecord};

use pipecache_store::{Artifact, Part, StoredArtifact};

/// The remote record of `item` under `key`, with `parts` already placed.
pub(crate) fn remote_record(
    key: &str,
    item: &StoredArtifact,
    parts: Vec<RemotePart>,
) -> RemoteRecord {
    RemoteRecord {
        v: RECORD_VERSION,
        key: key.to_owned(),
        kind: item.artifact.kind.clone(),
        parts,
        created_ms: item.created_ms,
        expires_ms: item.expires_ms,
        meta: item.artifact.meta.clone(),
        digest: item.artifact.digest(),
    }
}

/// Rebuilds the artifact a record describes from its parts' raw bytes (in record order).
pub(crate) fn from_record(record: RemoteRecord, data: Vec<Vec<u8>>) -> StoredArtifact {
    StoredArtifact {
        artifact: Artifact {
            kind: record.kind,
            parts: record
                .parts
                .into_iter()
                .zip(data)
                .map(|(p, d)| Part {
                    name: p.name,
                    data: d,
                })
                .collect(),
            meta: record.meta,
        },
        created_ms: record.created_ms,
        expires_ms: record.expires_ms,
    }
}
