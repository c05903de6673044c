//! Building a manager: [`ManagerBuilder`] tier by tier, or from a [`CacheConfig`] (the
//! factory: each `[[backends]]` entry becomes a tier, checked but not contacted), and the
//! local-only manager of a bare [`Store`].

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use pipecache_config::{
    BackendConfig, ByteSize, CacheConfig, DEFAULT_GRACE, DEFAULT_REDIS_MAX_OBJECT, DEFAULT_REGION,
    WritePolicy, queue_capacity_field,
};
use pipecache_remote::{ObjectStore, RedisStore, S3Options};
use pipecache_store::{Store, StoreError, StoreOptions};

use super::shared::{CacheManager, Inner, release_off_runtime};
use super::tier::{ReadBreaker, RemoteKind, RemoteTier};
use super::write_back::write_back_worker;
use crate::kinds::KindTable;
use crate::pack::PackTier;
use crate::redis::RedisTier;
use crate::{BackendKind, Error, Result};

/// Builds a [`CacheManager`] tier by tier.
#[derive(Debug)]
pub struct ManagerBuilder {
    local: Store,
    remotes: Vec<RemoteTier>,
    memory: u64,
    kinds: Arc<KindTable>,
    read_breaker: ReadBreaker,
    totals_every: Duration,
}

impl ManagerBuilder {
    /// When reads skip a failing remote tier (every remote tier; the default pauses after
    /// 3 failed reads in a row, for 1 s doubling to 30 s).
    pub fn read_breaker(mut self, breaker: ReadBreaker) -> Self {
        self.read_breaker = breaker;
        self
    }

    /// How often the lookup totals are written to the store directory while they change
    /// (what a crash can lose of them; default 30 s). They are written at close too.
    pub fn totals_save_interval(mut self, every: Duration) -> Self {
        self.totals_every = every;
        self
    }

    /// Puts a memory tier of `budget` bytes in front of the local store (0: none, the
    /// builder's default).
    pub fn memory_tier(mut self, budget: u64) -> Self {
        self.memory = budget;
        self
    }

    /// Adds a pack tier (fs-remote or S3), hash-verified.
    pub fn pack_tier(
        mut self,
        tier: PackTier,
        priority: u32,
        policy: WritePolicy,
        queue_capacity: u64,
    ) -> Self {
        let t = RemoteTier::pack(tier, priority, policy, queue_capacity, &self.kinds);
        self.remotes.push(t);
        self
    }

    /// Adds a Redis tier, hash-verified.
    pub fn redis_tier(
        mut self,
        tier: RedisTier,
        priority: u32,
        policy: WritePolicy,
        queue_capacity: u64,
    ) -> Self {
        let t = RemoteTier::redis(tier, priority, policy, queue_capacity, &self.kinds);
        self.remotes.push(t);
        self
    }

    /// Starts the manager: loads queue lengths and starts the write-back workers.
    pub async fn build(mut self) -> Result<CacheManager> {
        check_tiers(&self.remotes)?;
        self.remotes.sort_by_key(|t| t.priority);
        self.read_breaker.check()?;
        if self.totals_every.is_zero() {
            return Err(Error::invalid("totals_save_interval must be positive"));
        }
        for t in &mut self.remotes {
            t.set_read_breaker(self.read_breaker);
        }
        let queue_claims = self
            .remotes
            .iter()
            .map(|t| self.local.claim_outbox(&t.queue.name))
            .collect::<Result<Vec<_>, StoreError>>()?;
        // Leftovers of crashed fs-remote writes (never on a config check, which builds no
        // manager). Pack tiers keep their remote blob table next to the store.
        for t in &self.remotes {
            if let RemoteKind::Pack(p) = &t.kind {
                p.inner().keep_blob_table_in(self.local.dir());
                p.inner().store().remove_stale_temp_files().await;
            }
        }
        for t in &self.remotes {
            let q = &t.queue;
            q.load(&self.local.outbox_peek(&q.name, usize::MAX).await?);
        }
        let memory = (self.memory > 0).then(|| Arc::new(crate::MemoryTier::new(self.memory)));
        let inner = Arc::new(Inner::new(
            self.local,
            memory,
            self.remotes,
            self.kinds,
            queue_claims,
        ));
        super::totals::load(&inner);
        let saver = {
            let every = self.totals_every;
            let rx = inner.shutdown.subscribe();
            let inner = inner.clone();
            tokio::spawn(async move {
                super::totals::keep_saved(&inner, rx, every).await;
                release_off_runtime(inner).await;
            })
        };
        let workers = (0..inner.remotes.len())
            .map(|i| {
                let rx = inner.shutdown.subscribe();
                let inner = inner.clone();
                tokio::spawn(async move {
                    write_back_worker(&inner, i, rx).await;
                    release_off_runtime(inner).await;
                })
            })
            .chain(std::iter::once(saver))
            .collect();
        *inner.workers.lock().expect("workers poisoned") = workers;
        Ok(CacheManager::with_inner(inner))
    }
}

impl From<Store> for CacheManager {
    /// A manager with only the local tier.
    fn from(store: Store) -> Self {
        let kinds = kind_table(store.options(), None);
        let inner = Inner::new(store, None, Vec::new(), kinds, Vec::new());
        CacheManager::with_inner(Arc::new(inner))
    }
}

/// Remote tiers sit behind the local one (priority 1 or more); their names are unique,
/// never `local`, and usable in queue names.
fn check_tiers(tiers: &[RemoteTier]) -> Result<()> {
    if tiers.iter().any(|t| t.priority == 0) {
        return Err(Error::invalid(
            "priority 0 belongs to the local (filesystem) tier; give remote tiers 1 or more",
        ));
    }
    let mut names = std::collections::HashSet::new();
    names.insert("local");
    for t in tiers {
        if !names.insert(t.backend.name()) || t.backend.name().contains('\0') {
            return Err(Error::invalid(format!(
                "tier name {:?} is used twice or invalid",
                t.backend.name()
            )));
        }
    }
    Ok(())
}

/// The kinds of `options`' key classifier, with `config`'s cost hints.
fn kind_table(options: &StoreOptions, config: Option<&CacheConfig>) -> Arc<KindTable> {
    let no_hints = std::collections::BTreeMap::new();
    let hints = config
        .and_then(|c| c.cost_hints.as_ref())
        .unwrap_or(&no_hints);
    Arc::new(KindTable::new(options.key_classifier.clone(), hints))
}

/// The remote tiers `config` describes, built and checked ([`check_tiers`]) but not
/// contacted.
fn remote_tiers(
    config: &CacheConfig,
    options: &StoreOptions,
    kinds: &Arc<KindTable>,
) -> Result<Vec<RemoteTier>> {
    let compression = options.compression;
    let clock = options.clock.clone();
    let mut tiers = Vec::new();
    for backend in &config.backends {
        let (Some(common), Some(deadline)) = (backend.remote(), backend.deadline()) else {
            continue; // the local tier
        };
        let name = backend.name();
        let capacity = queue_capacity_field(&name, common.queue_capacity)?;
        let (priority, policy) = (common.priority, common.write_policy);
        let remote = |e| Error::remote(&name, e);
        // Pack tiers (S3, fs-remote) differ only in their object store.
        let (kind, store) = match backend {
            BackendConfig::Filesystem { .. } => continue,
            BackendConfig::S3 {
                bucket,
                prefix,
                endpoint,
                region,
                access_key_id,
                secret_access_key,
                ..
            } => {
                let env = |v: &str| std::env::var(v).ok().filter(|s| !s.is_empty());
                let opts = S3Options {
                    bucket: bucket.clone(),
                    prefix: prefix.clone(),
                    endpoint: endpoint.clone(),
                    region: region.clone().unwrap_or_else(|| DEFAULT_REGION.into()),
                    access_key_id: access_key_id.clone().or_else(|| env("AWS_ACCESS_KEY_ID")),
                    secret_access_key: secret_access_key
                        .as_ref()
                        .map(|s| s.expose().to_owned())
                        .or_else(|| env("AWS_SECRET_ACCESS_KEY")),
                };
                let store = ObjectStore::s3(&opts, deadline).map_err(remote)?;
                (BackendKind::S3, store)
            }
            BackendConfig::FsRemote { path, .. } => {
                let store = ObjectStore::filesystem(path, deadline).map_err(remote)?;
                (BackendKind::FsRemote, store)
            }
            BackendConfig::Redis {
                url,
                max_object_size,
                ..
            } => {
                let max = max_object_size.map_or(DEFAULT_REDIS_MAX_OBJECT, ByteSize::bytes);
                let store = RedisStore::new(url.expose(), RedisTier::KEY_PREFIX, deadline)
                    .map_err(remote)?;
                let tier = RedisTier::new(&name, store, max, compression, clock.clone());
                tiers.push(RemoteTier::redis(tier, priority, policy, capacity, kinds));
                continue;
            }
        };
        let grace = backend.gc_grace().unwrap_or(DEFAULT_GRACE);
        let tier = PackTier::new(&name, kind, store, compression, clock.clone(), grace);
        tiers.push(RemoteTier::pack(tier, priority, policy, capacity, kinds));
    }
    check_tiers(&tiers)?;
    Ok(tiers)
}

impl CacheManager {
    /// Starts building a manager in front of `store`.
    pub fn builder(store: Store) -> ManagerBuilder {
        ManagerBuilder {
            kinds: kind_table(store.options(), None),
            local: store,
            remotes: Vec::new(),
            memory: 0,
            read_breaker: ReadBreaker::default(),
            totals_every: super::totals::SAVE_EVERY,
        }
    }

    /// Opens the tiers `config` describes. The local store lives in the `filesystem`
    /// backend's `path`, else in `default_dir`; `options` are the local store's, with the
    /// config applied on top. Remote tiers are not contacted here (see
    /// [`CacheManager::check`]), so a store opens while a remote is down.
    pub async fn open(
        config: &CacheConfig,
        default_dir: &Path,
        mut options: StoreOptions,
        origin: &str,
    ) -> Result<Self> {
        config.apply(&mut options, origin)?;
        let dir = config.local_path(origin)?.unwrap_or(default_dir).to_owned();
        let kinds = kind_table(&options, Some(config));
        let tiers = remote_tiers(config, &options, &kinds)?;
        let store = Store::open(&dir, options).await?;
        ManagerBuilder {
            local: store,
            remotes: tiers,
            memory: config.memory_budget(),
            kinds,
            read_breaker: ReadBreaker::default(),
            totals_every: super::totals::SAVE_EVERY,
        }
        .build()
        .await
    }

    /// Checks `config` without opening the local store (which may not exist yet, or be in
    /// use): every field parses, the tier structure holds, and every remote tier answers.
    pub async fn check_config(config: &CacheConfig, origin: &str) -> Result<()> {
        for t in &Self::validate_config(config, origin)? {
            t.check().await?;
        }
        Ok(())
    }

    /// Checks `config` as opening a manager would (values, tier structure, names, every
    /// remote tier built), without contacting any tier or opening the local store.
    pub fn validate(config: &CacheConfig, origin: &str) -> Result<()> {
        Self::validate_config(config, origin).map(drop)
    }

    fn validate_config(config: &CacheConfig, origin: &str) -> Result<Vec<RemoteTier>> {
        let mut options = StoreOptions::default();
        config.apply(&mut options, origin)?;
        config.local_path(origin)?;
        remote_tiers(config, &options, &kind_table(&options, Some(config)))
    }
}
