//! # pipecache-config: the cache configuration as typed data
//!
//! [`CacheConfig`]: the seed's cache configuration as TOML (serde), with its defaults.
//! Unknown fields and bad values are errors that name the field and the file; nothing is
//! silently ignored.
//!
//! It is data only: it opens no store, builds no tier and contacts nothing (the tiers
//! crate's factory does that from a checked config). It depends on `pipecache-store` only
//! for the store options a `[[backends]]` filesystem entry fills in.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use pipecache_store::{Algorithm, CostWeighted, Durability, EvictionPolicy, Lru, StoreOptions};

mod error;
mod units;

use error::ConfigError as Error;
pub use error::{ConfigError, Result};
pub use units::{
    ByteSize, FreeSpace, TimeSpan, format_duration, format_size, parse_duration, parse_free_space,
    parse_size,
};

/// Default grace period of remote GC.
pub const DEFAULT_GRACE: Duration = Duration::from_secs(24 * 3600);
/// Default largest artifact Redis holds.
pub const DEFAULT_REDIS_MAX_OBJECT: u64 = 1 << 20;

/// Default deadline of each call to a pack tier (S3, fs-remote).
pub const DEFAULT_DEADLINE: Duration = Duration::from_secs(30);
/// Default deadline of each Redis call: a shared low-latency tier that answers fast or not at
/// all.
pub const DEFAULT_REDIS_DEADLINE: Duration = Duration::from_secs(5);
/// Default capacity of a remote tier's queue.
pub const DEFAULT_QUEUE_CAPACITY: u64 = 100_000;
/// Default S3 region.
pub const DEFAULT_REGION: &str = "us-east-1";
/// The memory tier's budget when the configuration names none.
pub const DEFAULT_MEMORY_SIZE: u64 = 256 << 20;

/// When a put reaches a remote tier.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum WritePolicy {
    /// The put returns once this tier has the artifact (an error if it cannot).
    #[default]
    WriteThrough,
    /// The put returns once the local tier has it; a persistent queue uploads it later.
    WriteBack,
}

/// A credential: serialized as given (so a config round-trips), but `Debug` never shows it,
/// so a logged configuration cannot leak it.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Secret(String);

impl Secret {
    /// The secret itself, for the one place that needs it (the transport).
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl From<&str> for Secret {
    fn from(s: &str) -> Self {
        Self(s.to_owned())
    }
}

impl From<String> for Secret {
    fn from(s: String) -> Self {
        Self(s)
    }
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // A URL keeps its scheme, user and host; anything else is hidden whole.
        match masked_url(&self.0) {
            Some(url) => write!(f, "{url:?}"),
            None => f.write_str("\"***\""),
        }
    }
}

/// A URL with its password masked; `None` for anything that is not a URL.
fn masked_url(s: &str) -> Option<String> {
    s.contains("://").then(|| pipecache_remote::mask_url(s))
}

/// What every remote tier's entry has, whatever its type: written once, flattened into
/// each remote variant of [`BackendConfig`].
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RemoteCommon {
    /// Tier name (default: the type, `s3`, `fs-remote` or `redis`).
    pub name: Option<String>,
    /// Walk order; 1 or more (0 is the local tier's), higher is slower.
    pub priority: u32,
    /// `write-through` (default) or `write-back`.
    #[serde(default)]
    pub write_policy: WritePolicy,
    /// Deadline of each remote call (default `30s`, Redis `5s`).
    pub timeout: Option<TimeSpan>,
    /// Upload queue capacity (default 100000): write-back uploads waiting, or
    /// write-through ones not yet applied; a put past it removes the tier's copy instead.
    pub queue_capacity: Option<u64>,
}

/// The keys of [`RemoteCommon`] in a `[[backends]]` table.
const REMOTE_COMMON_KEYS: [&str; 5] = [
    "name",
    "priority",
    "write_policy",
    "timeout",
    "queue_capacity",
];

/// One `[[backends]]` entry.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(tag = "type", rename_all = "kebab-case")]
pub enum BackendConfig {
    /// The local store (chunk files + RocksDB). Exactly one, priority 0.
    Filesystem {
        /// Tier name: the local tier is always `local` (any other name is an error).
        name: Option<String>,
        /// Must be 0 (the fastest tier).
        priority: u32,
        /// Store directory (the CLI's `--dir` / `$PIPECACHE_DIR` win over it).
        path: Option<PathBuf>,
        /// Size budget, e.g. `50GB`.
        max_size: Option<ByteSize>,
        /// `lru` or `cost-weighted`.
        eviction_policy: Option<String>,
    },
    /// Packs and records in an S3 bucket.
    S3 {
        /// Name, priority, write policy, deadline, queue capacity.
        #[serde(flatten)]
        remote: RemoteCommon,
        /// Bucket (must exist).
        bucket: String,
        /// Key prefix in the bucket.
        prefix: String,
        /// Endpoint URL (default: AWS).
        endpoint: Option<String>,
        /// Region (default `us-east-1`).
        region: Option<String>,
        /// Access key id; default `$AWS_ACCESS_KEY_ID`.
        access_key_id: Option<String>,
        /// Secret key; default `$AWS_SECRET_ACCESS_KEY`. Never printed.
        secret_access_key: Option<Secret>,
        /// Remote GC grace period (default `24h`).
        gc_grace: Option<TimeSpan>,
    },
    /// Packs and records in a directory reached through opendal's fs service (a share).
    FsRemote {
        /// Name, priority, write policy, deadline, queue capacity.
        #[serde(flatten)]
        remote: RemoteCommon,
        /// Directory.
        path: PathBuf,
        /// Remote GC grace period (default `24h`).
        gc_grace: Option<TimeSpan>,
    },
    /// Small artifacts whole in Redis, expiring with their TTL.
    Redis {
        /// Name, priority, write policy, deadline, queue capacity.
        #[serde(flatten)]
        remote: RemoteCommon,
        /// `redis://[user:password@]host:port/db`.
        url: Secret,
        /// Largest artifact held (default `1MiB`).
        max_object_size: Option<ByteSize>,
    },
}

/// The fields of each backend type besides [`RemoteCommon`], read with unknown fields
/// refused: serde's `flatten` cannot refuse them itself, so [`BackendConfig`]'s reader
/// takes the common keys out first and reads the rest into one of these.
mod fields {
    use std::path::PathBuf;

    use serde::Deserialize;

    use super::{ByteSize, Secret, TimeSpan};

    #[derive(Deserialize)]
    #[serde(deny_unknown_fields)]
    pub(super) struct Filesystem {
        pub(super) name: Option<String>,
        #[serde(default)]
        pub(super) priority: u32,
        pub(super) path: Option<PathBuf>,
        pub(super) max_size: Option<ByteSize>,
        pub(super) eviction_policy: Option<String>,
    }

    #[derive(Deserialize)]
    #[serde(deny_unknown_fields)]
    pub(super) struct S3 {
        pub(super) bucket: String,
        #[serde(default)]
        pub(super) prefix: String,
        pub(super) endpoint: Option<String>,
        pub(super) region: Option<String>,
        pub(super) access_key_id: Option<String>,
        pub(super) secret_access_key: Option<Secret>,
        pub(super) gc_grace: Option<TimeSpan>,
    }

    #[derive(Deserialize)]
    #[serde(deny_unknown_fields)]
    pub(super) struct FsRemote {
        pub(super) path: PathBuf,
        pub(super) gc_grace: Option<TimeSpan>,
    }

    #[derive(Deserialize)]
    #[serde(deny_unknown_fields)]
    pub(super) struct Redis {
        pub(super) url: Secret,
        pub(super) max_object_size: Option<ByteSize>,
    }
}

impl<'de> Deserialize<'de> for BackendConfig {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        use serde::de::Error as _;
        let mut table = toml::Table::deserialize(d)?;
        let kind = match table.remove("type") {
            Some(toml::Value::String(kind)) => kind,
            Some(other) => {
                return Err(D::Error::custom(format!(
                    "`type` must be a string, not `{other}`"
                )));
            }
            None => return Err(D::Error::missing_field("type")),
        };
        fn read<T: serde::de::DeserializeOwned>(
            table: toml::Table,
        ) -> std::result::Result<T, toml::de::Error> {
            toml::Value::Table(table).try_into()
        }
        // The common keys out first, so the type's own reader refuses whatever is left over.
        let common: toml::Table = REMOTE_COMMON_KEYS
            .iter()
            .filter(|_| kind != "filesystem")
            .filter_map(|k| table.remove(*k).map(|v| ((*k).to_owned(), v)))
            .collect();
        let remote = move || read::<RemoteCommon>(common);
        let backend = match kind.as_str() {
            "filesystem" => read(table).map(|f: fields::Filesystem| Self::Filesystem {
                name: f.name,
                priority: f.priority,
                path: f.path,
                max_size: f.max_size,
                eviction_policy: f.eviction_policy,
            }),
            "s3" => remote().and_then(|remote| {
                read(table).map(|f: fields::S3| Self::S3 {
                    remote,
                    bucket: f.bucket,
                    prefix: f.prefix,
                    endpoint: f.endpoint,
                    region: f.region,
                    access_key_id: f.access_key_id,
                    secret_access_key: f.secret_access_key,
                    gc_grace: f.gc_grace,
                })
            }),
            "fs-remote" => remote().and_then(|remote| {
                read(table).map(|f: fields::FsRemote| Self::FsRemote {
                    remote,
                    path: f.path,
                    gc_grace: f.gc_grace,
                })
            }),
            "redis" => remote().and_then(|remote| {
                read(table).map(|f: fields::Redis| Self::Redis {
                    remote,
                    url: f.url,
                    max_object_size: f.max_object_size,
                })
            }),
            other => {
                return Err(D::Error::unknown_variant(
                    other,
                    &["filesystem", "s3", "fs-remote", "redis"],
                ));
            }
        };
        backend.map_err(|e| D::Error::custom(e.message()))
    }
}

impl BackendConfig {
    /// The tier's name.
    pub fn name(&self) -> String {
        match self {
            Self::Filesystem { name, .. } => name.clone().unwrap_or_else(|| "local".into()),
            Self::S3 { remote, .. } => remote.name.clone().unwrap_or_else(|| "s3".into()),
            Self::FsRemote { remote, .. } => {
                remote.name.clone().unwrap_or_else(|| "fs-remote".into())
            }
            Self::Redis { remote, .. } => remote.name.clone().unwrap_or_else(|| "redis".into()),
        }
    }

    /// A remote tier's common settings; `None` for the local (filesystem) tier.
    pub fn remote(&self) -> Option<&RemoteCommon> {
        match self {
            Self::Filesystem { .. } => None,
            Self::S3 { remote, .. }
            | Self::FsRemote { remote, .. }
            | Self::Redis { remote, .. } => Some(remote),
        }
    }

    /// [`BackendConfig::remote`], to change.
    pub fn remote_mut(&mut self) -> Option<&mut RemoteCommon> {
        match self {
            Self::Filesystem { .. } => None,
            Self::S3 { remote, .. }
            | Self::FsRemote { remote, .. }
            | Self::Redis { remote, .. } => Some(remote),
        }
    }

    /// A remote tier's deadline per call, the default when unset.
    pub fn deadline(&self) -> Option<Duration> {
        let default = match self {
            Self::Filesystem { .. } => return None,
            Self::Redis { .. } => DEFAULT_REDIS_DEADLINE,
            Self::S3 { .. } | Self::FsRemote { .. } => DEFAULT_DEADLINE,
        };
        self.remote()
            .map(|r| r.timeout.map_or(default, TimeSpan::duration))
    }

    /// A pack tier's remote GC grace period, the default when unset.
    pub fn gc_grace(&self) -> Option<Duration> {
        match self {
            Self::S3 { gc_grace, .. } | Self::FsRemote { gc_grace, .. } => {
                Some(gc_grace.map_or(DEFAULT_GRACE, TimeSpan::duration))
            }
            Self::Filesystem { .. } | Self::Redis { .. } => None,
        }
    }
}

/// The cache configuration (the seed's `CacheConfig`): store-wide settings plus the tiers.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CacheConfig {
    /// Default TTL, e.g. "7d".
    pub default_ttl: Option<TimeSpan>,
    /// Size budget of the local store, e.g. "50GB".
    pub max_size: Option<ByteSize>,
    /// "lru" or "cost-weighted".
    pub eviction_policy: Option<String>,
    /// Recompute cost hints per artifact kind, seconds (cost-weighted policy).
    pub cost_hints: Option<BTreeMap<String, f64>>,
    /// Compact sealed chunks under this live fraction (0..=1).
    pub compact_threshold: Option<f64>,
    /// Chunk file size, e.g. "64MiB".
    pub chunk_size: Option<ByteSize>,
    /// Bytes one compaction batch moves, e.g. "8MiB".
    pub compact_batch_size: Option<ByteSize>,
    /// Compress blobs that shrink enough (default true).
    pub enable_compression: Option<bool>,
    /// The compressor: "zstd" (default; the better ratio) or "lz4" (the faster read). The
    /// pipeline's own kinds keep their codecs (documents LZ4, embeddings zstd).
    pub compression_codec: Option<Algorithm>,
    /// Free space puts leave on the store's filesystem, e.g. "2GiB" or "0" (default: the
    /// smaller of 1 GiB and 5% of the filesystem).
    pub min_free_space: Option<FreeSpace>,
    /// "fsync" (default: an acknowledged put survives power loss) or "os-buffered" (it
    /// survives a crash of the process, not of the machine; puts wait for no disk flush).
    pub durability: Option<Durability>,
    /// Byte budget of the memory tier in front of the local store, e.g. "256MiB"; "0" turns
    /// it off (default [`DEFAULT_MEMORY_SIZE`]).
    pub memory_size: Option<FreeSpace>,
    /// Tiers, walked by priority (0 = fastest).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub backends: Vec<BackendConfig>,
}

/// The line to quote in a TOML error: the message alone may not name the field (a bad value
/// inside a `[[backends]]` entry points at the entry, whose type decides its fields). The
/// whole line holding the value the message quotes (`` `-5` ``) is preferred, among the lines
/// the error points at (`span`), then anywhere in `text`; else the first line pointed at.
fn offending_line<'t>(
    text: &'t str,
    span: Option<std::ops::Range<usize>>,
    message: &str,
) -> Option<&'t str> {
    let mut at = 0;
    let lines: Vec<(std::ops::Range<usize>, &str)> = text
        .split_inclusive('\n')
        .map(|l| {
            let range = at..at + l.len();
            at += l.len();
            (range, l.trim())
        })
        .filter(|(_, l)| !l.is_empty())
        .collect();
    let pointed: Vec<&str> = match &span {
        Some(span) => lines
            .iter()
            .filter(|(r, _)| r.start < span.end.max(span.start + 1) && span.start < r.end)
            .map(|(_, l)| *l)
            .collect(),
        None => Vec::new(),
    };
    let quoted = message.split('`').nth(1).filter(|q| !q.is_empty());
    quoted
        .and_then(|q| {
            pointed
                .iter()
                .copied()
                .find(|l| l.contains(q))
                .or_else(|| lines.iter().map(|(_, l)| *l).find(|l| l.contains(q)))
        })
        .or_else(|| pointed.first().copied())
}

/// What [`CacheConfig::effective`] cannot write as a value: each line says why a field is
/// absent or where a value comes from (printed as comments).
pub type ConfigNotes = Vec<String>;

impl CacheConfig {
    /// The `filesystem` backend's `path` (the local store's directory), after checking the
    /// tier structure: at most one `filesystem` backend, at priority 0, named `local` if
    /// named at all. `origin` names the file in errors.
    pub fn local_path(&self, origin: &str) -> Result<Option<&std::path::Path>> {
        let locals: Vec<&BackendConfig> = self
            .backends
            .iter()
            .filter(|b| matches!(b, BackendConfig::Filesystem { .. }))
            .collect();
        let bad = |reason: &str| Err(Error::in_file(origin, reason));
        match locals.as_slice() {
            [] => Ok(None),
            [
                BackendConfig::Filesystem {
                    name,
                    priority,
                    path,
                    ..
                },
            ] => {
                if *priority != 0 {
                    return bad("the filesystem backend must have priority 0");
                }
                if name.as_deref().is_some_and(|n| n != "local") {
                    return bad("the filesystem backend is the local tier, always named \"local\"");
                }
                Ok(path.as_deref())
            }
            _ => bad("more than one filesystem backend"),
        }
    }

    /// Parses TOML; `origin` (a file name) prefixes errors.
    pub fn from_toml(text: &str, origin: &str) -> Result<Self> {
        toml::from_str(text).map_err(|e| {
            let message = e.message().trim_end();
            let at = offending_line(text, e.span(), message)
                .map(|line| format!(" (at `{line}`)"))
                .unwrap_or_default();
            Error::in_file(origin, format!("{message}{at}"))
        })
    }

    /// The configuration as TOML with secrets replaced by `***`.
    pub fn to_masked_toml(&self) -> String {
        let mut c = self.clone();
        mask_secrets(&mut c);
        toml::to_string_pretty(&c).expect("a config always serializes")
    }

    /// The configuration as it takes effect on a store in `local_dir`: the store-wide values
    /// checked (`CacheManager::validate` checks the tiers too), every default written out,
    /// the local tier's entry present and holding the store-wide `max_size` and
    /// `eviction_policy`. Secrets are kept as given (print [`CacheConfig::to_masked_toml`]).
    /// The notes say what no value can show: no size budget, AWS's own endpoint, credentials
    /// read from the environment (whether they are set, never what they are).
    pub fn effective(&self, local_dir: &Path, origin: &str) -> Result<(Self, ConfigNotes)> {
        let mut options = StoreOptions::default();
        self.apply(&mut options, origin)?;
        self.local_path(origin)?;
        let mut notes = ConfigNotes::new();
        let max_size = options.max_size.map(ByteSize);
        if max_size.is_none() {
            notes.push("max_size: none (no size budget)".into());
        }
        let eviction_policy = Some(options.eviction.name().to_owned());
        let mut backends = vec![BackendConfig::Filesystem {
            name: Some("local".into()),
            priority: 0,
            path: Some(local_dir.to_owned()),
            max_size,
            eviction_policy,
        }];
        for backend in &self.backends {
            let tier = backend.name();
            let mut b = backend.clone();
            let deadline = b.deadline();
            if let Some(remote) = b.remote_mut() {
                remote.name = Some(tier.clone());
                remote.timeout = deadline.map(TimeSpan);
                remote.queue_capacity = Some(queue_capacity_field(&tier, remote.queue_capacity)?);
            }
            let grace = b.gc_grace();
            match &mut b {
                BackendConfig::Filesystem { .. } => continue,
                BackendConfig::S3 {
                    endpoint,
                    region,
                    access_key_id,
                    secret_access_key,
                    gc_grace,
                    ..
                } => {
                    if endpoint.is_none() {
                        notes.push(format!("{tier}: endpoint: AWS's, for the region"));
                    }
                    region.get_or_insert_with(|| DEFAULT_REGION.into());
                    let from_env = |field: &str, var: &str| {
                        let set = std::env::var(var).is_ok_and(|v| !v.is_empty());
                        format!(
                            "{tier}: {field}: from ${var} ({})",
                            if set {
                                "set"
                            } else {
                                "unset; without both keys requests go unsigned"
                            }
                        )
                    };
                    if access_key_id.is_none() {
                        notes.push(from_env("access_key_id", "AWS_ACCESS_KEY_ID"));
                    }
                    if secret_access_key.is_none() {
                        notes.push(from_env("secret_access_key", "AWS_SECRET_ACCESS_KEY"));
                    }
                    *gc_grace = grace.map(TimeSpan);
                }
                BackendConfig::FsRemote { gc_grace, .. } => *gc_grace = grace.map(TimeSpan),
                BackendConfig::Redis {
                    max_object_size, ..
                } => {
                    max_object_size.get_or_insert(ByteSize(DEFAULT_REDIS_MAX_OBJECT));
                }
            }
            backends.push(b);
        }
        let effective = CacheConfig {
            default_ttl: options.default_ttl.map(TimeSpan),
            // Held by the local tier's entry, which wins over these.
            max_size: None,
            eviction_policy: None,
            cost_hints: self.cost_hints.clone(),
            compact_threshold: Some(options.compact_threshold),
            chunk_size: Some(ByteSize(options.chunk_size)),
            compact_batch_size: Some(ByteSize(options.compact_batch_bytes)),
            enable_compression: Some(options.compression.enabled),
            compression_codec: Some(options.compression.algorithm),
            min_free_space: options.min_free_space.map(FreeSpace),
            durability: Some(options.durability),
            memory_size: Some(FreeSpace(self.memory_budget())),
            backends,
        };
        if effective.min_free_space.is_none() {
            notes.push(
                "min_free_space: the smaller of 1GiB and 5% of the store's filesystem".into(),
            );
        }
        Ok((effective, notes))
    }

    /// The memory tier's byte budget (0: none).
    pub fn memory_budget(&self) -> u64 {
        self.memory_size.map_or(DEFAULT_MEMORY_SIZE, |m| m.0)
    }

    /// The local (`filesystem`) backend entry, if any.
    pub fn local_backend(&self) -> Option<&BackendConfig> {
        self.backends
            .iter()
            .find(|b| matches!(b, BackendConfig::Filesystem { .. }))
    }

    /// The eviction policy's name in effect for the local store: the `filesystem`
    /// backend's own, else the top level's (`None`: the default, LRU).
    pub fn eviction_policy_name(&self) -> Option<&str> {
        match self.local_backend() {
            Some(BackendConfig::Filesystem {
                eviction_policy: Some(p),
                ..
            }) => Some(p),
            _ => self.eviction_policy.as_deref(),
        }
    }

    /// Applies the file to `options`; `origin` names the file in errors. Sizes and
    /// durations were checked when the file was read.
    pub fn apply(&self, options: &mut StoreOptions, origin: &str) -> Result<()> {
        let field = |name: &str, e: String| Error::in_file(origin, format!("{name}: {e}"));
        if let Some(v) = self.default_ttl {
            options.default_ttl = Some(v.duration());
        }
        // A `filesystem` backend's own max_size / eviction_policy win over the top level.
        let (local_max, local_policy) = match self.local_backend() {
            Some(BackendConfig::Filesystem {
                max_size,
                eviction_policy,
                ..
            }) => (*max_size, eviction_policy.clone()),
            _ => (None, None),
        };
        let eviction_policy = local_policy.or_else(|| self.eviction_policy.clone());
        if let Some(v) = local_max.or(self.max_size) {
            options.max_size = Some(v.bytes());
        }
        if let Some(v) = self.chunk_size {
            options.chunk_size = v.bytes();
        }
        if let Some(v) = self.compact_batch_size {
            options.compact_batch_bytes = v.bytes();
        }
        if let Some(v) = self.compact_threshold {
            if !(0.0..=1.0).contains(&v) {
                return Err(field(
                    "compact_threshold",
                    format!("{v} is not within 0..=1"),
                ));
            }
            options.compact_threshold = v;
        }
        if let Some(v) = self.enable_compression {
            options.compression.enabled = v;
        }
        if let Some(v) = self.compression_codec {
            options.compression.algorithm = v;
        }
        if let Some(v) = self.min_free_space {
            options.min_free_space = Some(v.0);
        }
        if let Some(v) = self.durability {
            options.durability = v;
        }
        let policy: Arc<dyn EvictionPolicy> = match eviction_policy.as_deref() {
            None | Some("lru") => {
                if self.cost_hints.is_some() {
                    return Err(Error::in_file(
                        origin,
                        "cost_hints is only used by eviction_policy = \"cost-weighted\"",
                    ));
                }
                Arc::new(Lru)
            }
            Some("cost-weighted") => {
                let mut p = CostWeighted::default();
                for (kind, cost) in self.cost_hints.clone().unwrap_or_default() {
                    if !(cost.is_finite() && cost > 0.0) {
                        return Err(field(
                            "cost_hints",
                            format!("cost of {kind:?} must be a positive number"),
                        ));
                    }
                    p.costs.insert(kind, cost);
                }
                Arc::new(p)
            }
            Some(other) => {
                return Err(field(
                    "eviction_policy",
                    format!("unknown policy {other:?} (use \"lru\" or \"cost-weighted\")"),
                ));
            }
        };
        options.eviction = policy;
        Ok(())
    }
}

/// A remote tier's queue capacity, or the default when unset.
pub fn queue_capacity_field(tier: &str, v: Option<u64>) -> Result<u64> {
    let capacity = v.unwrap_or(DEFAULT_QUEUE_CAPACITY);
    // Zero would drop every upload (and turn every put into a removal on the tier).
    if capacity == 0 {
        return Err(Error::Invalid {
            reason: format!("tier {tier}: queue_capacity must be at least 1"),
        });
    }
    Ok(capacity)
}

/// Replaces every secret in `config` (S3 secret keys, Redis passwords) with `***`.
fn mask_secrets(config: &mut CacheConfig) {
    for b in &mut config.backends {
        match b {
            BackendConfig::S3 {
                secret_access_key: Some(s),
                ..
            } => *s = "***".into(),
            BackendConfig::Redis { url, .. } => {
                if let Some(m) = masked_url(&url.0) {
                    *url = Secret(m);
                }
            }
            _ => {}
        }
    }
}

#[cfg(test)]
mod tests;
