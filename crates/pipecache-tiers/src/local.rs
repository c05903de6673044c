//! The local store as a tier.

use async_trait::async_trait;

use super::{BackendKind, CacheBackend, Capabilities, Fetched, Written};
use crate::Result;
use pipecache_store::{PutOptions, Store, StoredArtifact};

#[async_trait]
impl CacheBackend for Store {
    fn name(&self) -> &str {
        "local"
    }

    fn kind(&self) -> BackendKind {
        BackendKind::Local
    }

    fn capabilities(&self) -> Capabilities {
        Capabilities {
            ranged_reads: true,
            native_ttl: true,
            max_object_size: self.options().max_size,
            list: true,
        }
    }

    async fn get(&self, key: &str) -> Result<Option<Fetched>> {
        Ok(self.get_stored(key).await?.map(|stored| Fetched {
            stored,
            // Every blob was blake3-checked on the way out of the chunk file.
            digest: None,
        }))
    }

    async fn put(&self, key: &str, item: &StoredArtifact) -> Result<Written> {
        put_stored(self, key, item, false).await
    }

    /// Decided on the writer thread when the copy commits, so no local put is ever replaced
    /// by an older remote copy (puts reach the local tier first).
    async fn put_copy(&self, key: &str, item: &StoredArtifact) -> Result<Written> {
        put_stored(self, key, item, true).await
    }

    async fn delete(&self, key: &str) -> Result<bool> {
        Ok(Store::delete(self, key).await?)
    }

    async fn exists(&self, key: &str) -> Result<bool> {
        Ok(self.contains(key).await?)
    }

    async fn list(&self, prefix: &str) -> Result<Vec<String>> {
        Ok(Store::list(self, prefix)
            .await?
            .into_iter()
            .map(|e| e.key)
            .collect())
    }
}

/// Writes an artifact read from another tier into `store`, keeping its expiry.
async fn put_stored(
    store: &Store,
    key: &str,
    item: &StoredArtifact,
    if_absent: bool,
) -> Result<Written> {
    if item.is_expired(store.options().clock.now_ms()) {
        // Storing it would only make a miss later.
        return Ok(Written::default());
    }
    let opts = PutOptions {
        expires_at_ms: item.expires_ms,
        if_absent,
        ..PutOptions::default()
    };
    let put = store
        .put_with_outbox(key, item.artifact.clone(), opts, Vec::new())
        .await?;
    Ok(Written::deduplicated(put.deduplicated_bytes))
}
