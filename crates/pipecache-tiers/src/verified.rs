//! The hash-verification layer: wraps any backend and checks the whole artifact against the
//! digest its writer recorded. A mismatch is a corruption error (counted), never a hit, so the
//! manager never promotes it.

use std::sync::atomic::{AtomicU64, Ordering};

use async_trait::async_trait;

use super::{BackendKind, CacheBackend, Capabilities, Fetched, Written};
use crate::Result;
use pipecache_store::{StoreError, StoredArtifact};

/// A backend whose reads are checked end to end.
#[derive(Debug)]
pub struct Verified<B> {
    inner: B,
    rejected: AtomicU64,
}

impl<B: CacheBackend> Verified<B> {
    /// Wraps `inner`.
    pub fn new(inner: B) -> Self {
        Self {
            inner,
            rejected: AtomicU64::new(0),
        }
    }

    /// Reads rejected for a digest mismatch.
    pub fn rejected(&self) -> u64 {
        self.rejected.load(Ordering::Relaxed)
    }

    /// The wrapped backend.
    pub fn inner(&self) -> &B {
        &self.inner
    }
}

#[async_trait]
impl<B: CacheBackend> CacheBackend for Verified<B> {
    fn name(&self) -> &str {
        self.inner.name()
    }

    fn kind(&self) -> BackendKind {
        self.inner.kind()
    }

    fn capabilities(&self) -> Capabilities {
        self.inner.capabilities()
    }

    async fn get(&self, key: &str) -> Result<Option<Fetched>> {
        let Some(fetched) = self.inner.get(key).await? else {
            return Ok(None);
        };
        if let Some(expected) = fetched.digest {
            let found = fetched.stored.artifact.digest();
            if found != expected {
                self.rejected.fetch_add(1, Ordering::Relaxed);
                return Err(StoreError::corruption(
                    Some(key),
                    None,
                    format!(
                        "tier {}: artifact digest {found} differs from the recorded {expected}",
                        self.inner.name()
                    ),
                )
                .into());
            }
        }
        Ok(Some(fetched))
    }

    async fn put(&self, key: &str, item: &StoredArtifact) -> Result<Written> {
        self.inner.put(key, item).await
    }

    async fn put_copy(&self, key: &str, item: &StoredArtifact) -> Result<Written> {
        self.inner.put_copy(key, item).await
    }

    async fn put_many(&self, items: &[(String, StoredArtifact)]) -> Result<Vec<Written>> {
        self.inner.put_many(items).await
    }

    async fn delete(&self, key: &str) -> Result<bool> {
        self.inner.delete(key).await
    }

    async fn exists(&self, key: &str) -> Result<bool> {
        self.inner.exists(key).await
    }

    async fn list(&self, prefix: &str) -> Result<Vec<String>> {
        self.inner.list(prefix).await
    }
}
