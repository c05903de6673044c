//! Redis as a tier: small artifacts held whole, one value per key, expiring with the
//! artifact's TTL.

use std::time::Duration;

use async_trait::async_trait;
use pipecache_format::remote::{RemotePart, decode_inline_value, encode_inline_value};
use pipecache_format::{BlobHash, Codec, CompressionPolicy};
use pipecache_remote::RedisStore;

use super::{
    BackendKind, CacheBackend, Capabilities, Fetched, Written, from_record, key_hash, remote_record,
};
use crate::{Error, Result};
use pipecache_store::{Clock, StoreError, StoredArtifact};

/// A Redis tier.
#[derive(Debug)]
pub struct RedisTier {
    name: String,
    store: RedisStore,
    max_object_size: u64,
    compression: CompressionPolicy,
    clock: std::sync::Arc<dyn Clock>,
}

impl RedisTier {
    /// Prefix of every Redis key pipecache writes (the rest is [`RedisTier::object_name`]).
    pub const KEY_PREFIX: &str = "pipecache:";

    /// A tier over `store`.
    pub fn new(
        name: impl Into<String>,
        store: RedisStore,
        max_object_size: u64,
        compression: CompressionPolicy,
        clock: std::sync::Arc<dyn Clock>,
    ) -> Self {
        Self {
            name: name.into(),
            store,
            max_object_size,
            compression,
            clock,
        }
    }

    /// The transport (for stats and tests).
    pub fn store(&self) -> &RedisStore {
        &self.store
    }

    /// The Redis key of an artifact key.
    pub fn object_name(key: &str) -> String {
        format!("a:{}", key_hash(key))
    }

    /// The Redis value of `item` and its TTL; `None` when it has already expired.
    fn encode(
        &self,
        key: &str,
        item: &StoredArtifact,
    ) -> Result<Option<(Vec<u8>, Option<Duration>)>> {
        if item.artifact.logical_size() > self.max_object_size {
            return Err(StoreError::InvalidArtifact {
                reason: format!(
                    "{} bytes is over tier {}'s max_object_size of {}",
                    item.artifact.logical_size(),
                    self.name,
                    self.max_object_size
                ),
            }
            .into());
        }
        let now = self.clock.now_ms();
        if item.is_expired(now) {
            return Ok(None);
        }
        let ttl = item.expires_ms.map(|e| Duration::from_millis(e - now));
        let mut parts = Vec::with_capacity(item.artifact.parts.len());
        let mut stored: Vec<(Codec, Vec<u8>)> = Vec::with_capacity(parts.capacity());
        for p in &item.artifact.parts {
            parts.push(RemotePart {
                name: p.name.clone(),
                hash: BlobHash::of(&p.data),
                len: p.data.len() as u64,
                at: None,
            });
            let (codec, packed) = self
                .compression
                .encode(&p.data)
                .map_err(|e| StoreError::from_format(e, Some(key), None))?;
            stored.push((codec, packed.unwrap_or_else(|| p.data.clone())));
        }
        let record = remote_record(key, item, parts);
        let refs: Vec<(Codec, &[u8])> = stored.iter().map(|(c, b)| (*c, b.as_slice())).collect();
        Ok(Some((encode_inline_value(&record, &refs), ttl)))
    }

    fn remote(&self, e: pipecache_remote::RemoteError) -> Error {
        Error::remote(&self.name, e)
    }
}

#[async_trait]
impl CacheBackend for RedisTier {
    fn name(&self) -> &str {
        &self.name
    }

    fn kind(&self) -> BackendKind {
        BackendKind::Redis
    }

    fn capabilities(&self) -> Capabilities {
        Capabilities {
            ranged_reads: false,
            native_ttl: true,
            max_object_size: Some(self.max_object_size),
            list: false,
        }
    }

    async fn get(&self, key: &str) -> Result<Option<Fetched>> {
        let Some(bytes) = self
            .store
            .get(&Self::object_name(key))
            .await
            .map_err(|e| self.remote(e))?
        else {
            return Ok(None);
        };
        let (record, data) = decode_inline_value(&bytes).map_err(|e| {
            StoreError::corruption(Some(key), None, format!("tier {}: {e}", self.name))
        })?;
        if record.key != key {
            return Err(StoreError::corruption(
                Some(key),
                None,
                format!("tier {}: value holds key {:?}", self.name, record.key),
            )
            .into());
        }
        if record.is_expired(self.clock.now_ms()) {
            return Ok(None);
        }
        let digest = record.digest;
        Ok(Some(Fetched {
            stored: from_record(record, data),
            digest: Some(digest),
        }))
    }

    // An artifact is one value here, stored whole: nothing deduplicated.
    async fn put(&self, key: &str, item: &StoredArtifact) -> Result<Written> {
        let Some((value, ttl)) = self.encode(key, item)? else {
            return Ok(Written::default());
        };
        self.store
            .set(&Self::object_name(key), value, ttl)
            .await
            .map_err(|e| self.remote(e))?;
        Ok(Written::default())
    }

    /// `SET NX`: a value written since the copy was read (a newer put) stays.
    async fn put_copy(&self, key: &str, item: &StoredArtifact) -> Result<Written> {
        let Some((value, ttl)) = self.encode(key, item)? else {
            return Ok(Written::default());
        };
        self.store
            .set_if_absent(&Self::object_name(key), value, ttl)
            .await
            .map_err(|e| self.remote(e))?;
        Ok(Written::default())
    }

    async fn delete(&self, key: &str) -> Result<bool> {
        self.store
            .delete(&Self::object_name(key))
            .await
            .map_err(|e| self.remote(e))
    }

    async fn exists(&self, key: &str) -> Result<bool> {
        self.store
            .exists(&Self::object_name(key))
            .await
            .map_err(|e| self.remote(e))
    }

    async fn list(&self, _prefix: &str) -> Result<Vec<String>> {
        // Values are named by a hash of the key; Redis is a read-through cache, not a
        // catalogue. Sync jobs list the pack tiers instead.
        Ok(Vec::new())
    }
}
