//! The local store as a tier.

use async_trait::async_trait;

use super::{BackendKind, CacheBackend, Capabilities, Fetched};
use crate::{PutOptions, Result, Store, StoredArtifact};

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

    /// A copy from another tier (promotion, pull): it never replaces a live local artifact,
    /// which is at least as new as any remote copy (puts reach the local tier first).
    async fn put(&self, key: &str, item: &StoredArtifact) -> Result<()> {
        if item.is_expired(self.options().clock.now_ms()) {
            // Storing it would only make a miss later.
            return Ok(());
        }
        let opts = PutOptions {
            expires_at_ms: item.expires_ms,
            if_absent: true,
            ..PutOptions::default()
        };
        self.put_with(key, item.artifact.clone(), opts).await
    }

    async fn delete(&self, key: &str) -> Result<bool> {
        Store::delete(self, key).await
    }

    async fn exists(&self, key: &str) -> Result<bool> {
        self.contains(key).await
    }

    async fn list(&self, prefix: &str) -> Result<Vec<String>> {
        Ok(Store::list(self, prefix)
            .await?
            .into_iter()
            .map(|e| e.key)
            .collect())
    }
}
