//! [`Cache`]: a store opened in this process, or the server that holds it.

use std::path::Path;
use std::sync::Arc;

use pipecache_config::CacheConfig;
use pipecache_store::{
    Artifact, ListEntry, PutOptions, Store, StoreError, StoreOptions, StoredArtifact,
};
use pipecache_tiers::{CacheManager, Result, TierError};

use crate::client::ServerClient;
use crate::protocol::StatsReport;

/// A cache as a process uses it: the [`CacheManager`] it opened itself, or a client of the
/// `pipecache serve` process that holds the store directory.
///
/// [`Cache::open`] decides: when a server holds the store (its server file names a socket
/// that answers), it talks to it; otherwise it opens the store in process. So N processes
/// opening one store directory all work once a server holds it, including processes that
/// may connect to the socket but not write the store's files. The server's configuration (its tiers, budget, TTL) rules what it holds;
/// the caller's is used only when it opens the store itself.
#[derive(Clone, Debug)]
pub enum Cache {
    /// This process owns the store.
    InProcess(CacheManager),
    /// A server owns the store; calls go over its socket.
    Served(ServerClient),
}

/// How often a client waiting for a stopping server looks again.
const STOPPING_POLL: std::time::Duration = std::time::Duration::from_millis(50);

/// Whether store `dir`'s server file says its server is shutting down and will have closed
/// the store by a time still to come. A file left by a server killed while stopping stops
/// counting at that time.
fn server_stopping(dir: &Path) -> bool {
    let now_ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64);
    matches!(
        crate::protocol::ServerFile::read(dir),
        Ok(Some(crate::protocol::ServerFile { stopping_until_ms: Some(until), .. })) if now_ms < until
    )
}

impl From<CacheManager> for Cache {
    fn from(m: CacheManager) -> Self {
        Self::InProcess(m)
    }
}

impl From<Store> for Cache {
    fn from(s: Store) -> Self {
        Self::InProcess(CacheManager::from(s))
    }
}

impl From<ServerClient> for Cache {
    fn from(c: ServerClient) -> Self {
        Self::Served(c)
    }
}

impl Cache {
    /// Opens the store `config` describes (in `default_dir` unless the config names a path),
    /// or connects to the server holding it; see the type's documentation.
    pub async fn open(
        config: &CacheConfig,
        default_dir: &Path,
        options: StoreOptions,
        origin: &str,
    ) -> Result<Self> {
        let dir = config.local_path(origin)?.unwrap_or(default_dir).to_owned();
        loop {
            // The server first: opening the store would wait on its lock before failing.
            if let Some(client) = Self::served(&dir, config.memory_budget()).await? {
                return Ok(client);
            }
            match CacheManager::open(config, default_dir, options.clone(), origin).await {
                Ok(m) => return Ok(Self::InProcess(m)),
                Err(TierError::Store(StoreError::StoreInUse { path })) => {
                    // A server that started meanwhile.
                    if let Some(client) = Self::served(&path, config.memory_budget()).await? {
                        return Ok(client);
                    }
                    // A server shutting down holds the store until the time its file
                    // names (its drain deadline): wait for it, then open the store (or the
                    // server that replaced it), rather than fail.
                    if server_stopping(&path) {
                        tokio::time::sleep(STOPPING_POLL).await;
                        continue;
                    }
                    return Err(StoreError::StoreInUse { path }.into());
                }
                Err(e) => return Err(e),
            }
        }
    }

    /// The server holding store `dir`, if any, with a near cache of `near_budget` bytes
    /// (the budget this process would give its memory tier in process).
    async fn served(dir: &Path, near_budget: u64) -> Result<Option<Self>> {
        Ok(ServerClient::discover(dir).await?.map(|(client, file)| {
            tracing::debug!(pid = file.pid, socket = %file.socket.display(), "the store is held by a server; using it");
            Self::Served(client.with_near_cache(dir, near_budget))
        }))
    }

    /// The manager, when this process owns the store.
    pub fn manager(&self) -> Option<&CacheManager> {
        match self {
            Self::InProcess(m) => Some(m),
            Self::Served(_) => None,
        }
    }

    /// The server client, when a server owns the store.
    pub fn server(&self) -> Option<&ServerClient> {
        match self {
            Self::InProcess(_) => None,
            Self::Served(c) => Some(c),
        }
    }

    /// The artifact under `key`.
    pub async fn get(&self, key: &str) -> Result<Option<Artifact>> {
        Ok(self.get_stored(key).await?.map(|s| s.artifact))
    }

    /// The artifact under `key`, with its times.
    pub async fn get_stored(&self, key: &str) -> Result<Option<StoredArtifact>> {
        match self {
            Self::InProcess(m) => m.get_stored(key).await,
            Self::Served(c) => c.get(key).await,
        }
    }

    /// [`Cache::get_stored`], shared with the memory tier when in process.
    pub async fn get_shared(&self, key: &str) -> Result<Option<Arc<StoredArtifact>>> {
        match self {
            Self::InProcess(m) => m.get_shared(key).await,
            Self::Served(c) => c.get_shared(key).await,
        }
    }

    /// A memory-tier hit (served: a near-cache hit), answered without waiting; `None`
    /// when not held there.
    pub fn get_from_memory(&self, key: &str) -> Option<Arc<StoredArtifact>> {
        match self {
            Self::InProcess(m) => m.get_from_memory(key),
            Self::Served(c) => c.get_from_near(key),
        }
    }

    /// Writes `artifact` under `key`.
    pub async fn put(&self, key: &str, artifact: Artifact) -> Result<()> {
        self.put_with(key, artifact, PutOptions::default()).await
    }

    /// Writes `artifact` under `key` with per-put options.
    pub async fn put_with(&self, key: &str, artifact: Artifact, options: PutOptions) -> Result<()> {
        match self {
            Self::InProcess(m) => m.put_with(key, artifact, options).await,
            Self::Served(c) => c.put(key, artifact, options).await,
        }
    }

    /// Removes `key` from every tier; whether it was there.
    pub async fn delete(&self, key: &str) -> Result<bool> {
        match self {
            Self::InProcess(m) => m.delete(key).await,
            Self::Served(c) => c.delete(key).await,
        }
    }

    /// True when the local store holds a live artifact under `key` (in process, no remote
    /// walk); served, the server's answer to `HEAD`, which also asks its slower tiers.
    pub async fn contains_local(&self, key: &str) -> Result<bool> {
        match self {
            Self::InProcess(m) => Ok(m.local().contains(key).await?),
            Self::Served(c) => c.contains(key).await,
        }
    }

    /// Keys starting with `prefix`, in order, over every tier that lists.
    pub async fn list_keys(&self, prefix: &str) -> Result<Vec<String>> {
        match self {
            Self::InProcess(m) => Ok(m.list_keys(prefix).await?.into_iter().collect()),
            Self::Served(c) => c.list_keys(prefix).await,
        }
    }

    /// The local store's entries (key, size, parts, kind) starting with `prefix`.
    pub async fn list_entries(&self, prefix: &str) -> Result<Vec<ListEntry>> {
        match self {
            Self::InProcess(m) => Ok(m.local().list(prefix).await?),
            Self::Served(c) => c.list_entries(prefix).await,
        }
    }

    /// The store's figures and every tier's.
    pub async fn stats(&self) -> Result<StatsReport> {
        match self {
            Self::InProcess(m) => StatsReport::of(m).await,
            Self::Served(c) => c.stats().await,
        }
    }

    /// Waits until the write queues are empty, up to `timeout` (served: the server drains
    /// its own queues; nothing to wait for here).
    pub async fn drain_queues(&self, timeout: std::time::Duration) -> Result<()> {
        match self {
            Self::InProcess(m) => m.drain_queues(timeout).await,
            Self::Served(_) => Ok(()),
        }
    }

    /// Closes the store when this process owns it; a served cache reports its near hits
    /// and drops its connections (the server keeps the store open for others).
    pub async fn close(self) -> Result<()> {
        match self {
            Self::InProcess(m) => m.close().await,
            Self::Served(c) => c.report_hits().await,
        }
    }

    /// A description of where the store is: `in process` or the server's name.
    pub fn describe(&self) -> String {
        match self {
            Self::InProcess(m) => format!("in process ({})", m.local().dir().display()),
            Self::Served(c) => c.name().to_owned(),
        }
    }
}
