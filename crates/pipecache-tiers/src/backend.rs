use async_trait::async_trait;
use pipecache_format::BlobHash;

use crate::Result;
use pipecache_store::StoredArtifact;

/// What kind of tier a backend is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum BackendKind {
    /// Hot artifacts in this process's memory.
    Memory,
    /// The local store (chunk files + RocksDB).
    Local,
    /// Packs and records in an opendal filesystem directory.
    FsRemote,
    /// Packs and records in an S3 bucket.
    S3,
    /// Whole small artifacts in Redis.
    Redis,
    /// A store owned by a `pipecache serve` process, reached over its socket.
    Server,
}

/// What a tier can do; the manager plans around it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Capabilities {
    /// Blobs are fetched with ranged reads of larger objects.
    pub ranged_reads: bool,
    /// The tier expires entries itself (Redis); others rely on the recorded expiry.
    pub native_ttl: bool,
    /// Largest artifact (logical bytes) the tier accepts; larger ones are skipped.
    pub max_object_size: Option<u64>,
    /// Keys can be listed by prefix.
    pub list: bool,
}

/// An artifact read from a tier, with the digest its writer recorded (checked by
/// [`crate::Verified`]).
#[derive(Clone, Debug)]
pub struct Fetched {
    /// The artifact and its times.
    pub stored: StoredArtifact,
    /// Digest recorded at write time ([`crate::Artifact::digest`]); `None` when the tier
    /// checks its bytes itself (the local store checks every blob's blake3).
    pub digest: Option<BlobHash>,
}

/// What one write to a tier did.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct Written {
    /// Raw bytes of the artifact's parts whose blob the tier already held: what dedup
    /// spared it. Content-addressed tiers (the local store, packs) count them; tiers that
    /// store each artifact whole (Redis, a server seen from its client) report 0.
    pub deduplicated_bytes: u64,
}

impl Written {
    /// A write that deduplicated `bytes`.
    pub fn deduplicated(bytes: u64) -> Self {
        Self {
            deduplicated_bytes: bytes,
        }
    }
}

/// One tier of a cache. All methods are async and bounded by the tier's deadline.
///
/// `get` returns `Ok(None)` for a miss (absent or expired); errors are never misses.
#[async_trait]
pub trait CacheBackend: Send + Sync + std::fmt::Debug {
    /// The tier's name (from the configuration).
    fn name(&self) -> &str;
    /// Which kind of tier this is.
    fn kind(&self) -> BackendKind;
    /// What the tier can do.
    fn capabilities(&self) -> Capabilities;
    /// Reads `key`.
    async fn get(&self, key: &str) -> Result<Option<Fetched>>;
    /// Writes `key`, replacing what is there; the recorded expiry travels with it.
    async fn put(&self, key: &str, item: &StoredArtifact) -> Result<Written>;
    /// Writes a copy taken from another tier (promotion, pull) only where `key` holds no live
    /// artifact: a put that reached this tier while the copy was in flight is newer and stays.
    /// The default checks, then writes (a put landing in between is overwritten); tiers that
    /// can decide atomically (the local store, Redis `SET NX`) override it.
    async fn put_copy(&self, key: &str, item: &StoredArtifact) -> Result<Written> {
        if self.exists(key).await? {
            return Ok(Written::default());
        }
        self.put(key, item).await
    }
    /// Writes many artifacts, saying what each write did (in `items`' order); tiers that
    /// batch (packs) override it.
    async fn put_many(&self, items: &[(String, StoredArtifact)]) -> Result<Vec<Written>> {
        let mut written = Vec::with_capacity(items.len());
        for (key, item) in items {
            written.push(self.put(key, item).await?);
        }
        Ok(written)
    }
    /// Removes `key`; returns whether it was there.
    async fn delete(&self, key: &str) -> Result<bool>;
    /// True when `key` holds a live artifact.
    async fn exists(&self, key: &str) -> Result<bool>;
    /// Keys starting with `prefix` (empty when the tier cannot list).
    async fn list(&self, prefix: &str) -> Result<Vec<String>>;
}
