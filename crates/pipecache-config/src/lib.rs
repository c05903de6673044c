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

use pipecache_store::{CostWeighted, EvictionPolicy, Lru, StoreOptions};

mod error;

use error::ConfigError as Error;
pub use error::{ConfigError, Result};

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

/// One `[[backends]]` entry.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "kebab-case", deny_unknown_fields)]
pub enum BackendConfig {
    /// The local store (chunk files + RocksDB). Exactly one, priority 0.
    Filesystem {
        /// Tier name: the local tier is always `local` (any other name is an error).
        name: Option<String>,
        /// Must be 0 (the fastest tier).
        #[serde(default)]
        priority: u32,
        /// Store directory (the CLI's `--dir` / `$PIPECACHE_DIR` win over it).
        path: Option<PathBuf>,
        /// Size budget, e.g. `50GB`.
        max_size: Option<String>,
        /// `lru` or `cost-weighted`.
        eviction_policy: Option<String>,
    },
    /// Packs and records in an S3 bucket.
    S3 {
        /// Tier name (default `s3`).
        name: Option<String>,
        /// Walk order; higher is slower.
        priority: u32,
        /// Bucket (must exist).
        bucket: String,
        /// Key prefix in the bucket.
        #[serde(default)]
        prefix: String,
        /// Endpoint URL (default: AWS).
        endpoint: Option<String>,
        /// Region (default `us-east-1`).
        region: Option<String>,
        /// Access key id; default `$AWS_ACCESS_KEY_ID`.
        access_key_id: Option<String>,
        /// Secret key; default `$AWS_SECRET_ACCESS_KEY`. Never printed.
        secret_access_key: Option<Secret>,
        /// `write-through` (default) or `write-back`.
        #[serde(default)]
        write_policy: WritePolicy,
        /// Deadline of each remote call (default `30s`).
        timeout: Option<String>,
        /// Remote GC grace period (default `24h`).
        gc_grace: Option<String>,
        /// Upload queue capacity (default 100000): write-back uploads waiting, or
        /// write-through ones not yet applied; a put past it removes the tier's copy instead.
        queue_capacity: Option<u64>,
    },
    /// Packs and records in a directory reached through opendal's fs service (a share).
    FsRemote {
        /// Tier name (default `fs-remote`).
        name: Option<String>,
        /// Walk order.
        priority: u32,
        /// Directory.
        path: PathBuf,
        /// `write-through` (default) or `write-back`.
        #[serde(default)]
        write_policy: WritePolicy,
        /// Deadline of each call (default `30s`).
        timeout: Option<String>,
        /// Remote GC grace period (default `24h`).
        gc_grace: Option<String>,
        /// Upload queue capacity (default 100000): write-back uploads waiting, or
        /// write-through ones not yet applied; a put past it removes the tier's copy instead.
        queue_capacity: Option<u64>,
    },
    /// Small artifacts whole in Redis, expiring with their TTL.
    Redis {
        /// Tier name (default `redis`).
        name: Option<String>,
        /// Walk order.
        priority: u32,
        /// `redis://[user:password@]host:port/db`.
        url: Secret,
        /// Largest artifact held (default `1MiB`).
        max_object_size: Option<String>,
        /// `write-through` (default) or `write-back`.
        #[serde(default)]
        write_policy: WritePolicy,
        /// Deadline of each call (default `5s`).
        timeout: Option<String>,
        /// Upload queue capacity (default 100000): write-back uploads waiting, or
        /// write-through ones not yet applied; a put past it removes the tier's copy instead.
        queue_capacity: Option<u64>,
    },
}

impl BackendConfig {
    /// The tier's name.
    pub fn name(&self) -> String {
        match self {
            Self::Filesystem { name, .. } => name.clone().unwrap_or_else(|| "local".into()),
            Self::S3 { name, .. } => name.clone().unwrap_or_else(|| "s3".into()),
            Self::FsRemote { name, .. } => name.clone().unwrap_or_else(|| "fs-remote".into()),
            Self::Redis { name, .. } => name.clone().unwrap_or_else(|| "redis".into()),
        }
    }

    /// A remote tier's priority, write policy and write-back queue capacity; `None` for the
    /// local (filesystem) tier.
    pub fn remote_placement(&self) -> Option<(u32, WritePolicy, Option<u64>)> {
        match self {
            Self::Filesystem { .. } => None,
            Self::S3 {
                priority,
                write_policy,
                queue_capacity,
                ..
            }
            | Self::FsRemote {
                priority,
                write_policy,
                queue_capacity,
                ..
            }
            | Self::Redis {
                priority,
                write_policy,
                queue_capacity,
                ..
            } => Some((*priority, *write_policy, *queue_capacity)),
        }
    }
}

/// The cache configuration (the seed's `CacheConfig`): store-wide settings plus the tiers.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CacheConfig {
    /// Default TTL, e.g. "7d".
    pub default_ttl: Option<String>,
    /// Size budget of the local store, e.g. "50GB".
    pub max_size: Option<String>,
    /// "lru" or "cost-weighted".
    pub eviction_policy: Option<String>,
    /// Recompute cost hints per artifact kind, seconds (cost-weighted policy).
    pub cost_hints: Option<BTreeMap<String, f64>>,
    /// Compact sealed chunks under this live fraction (0..=1).
    pub compact_threshold: Option<f64>,
    /// Chunk file size, e.g. "64MiB".
    pub chunk_size: Option<String>,
    /// Bytes one compaction batch moves, e.g. "8MiB".
    pub compact_batch_size: Option<String>,
    /// zstd for blobs that shrink enough (default true).
    pub enable_compression: Option<bool>,
    /// Free space puts leave on the store's filesystem, e.g. "2GiB" or "0" (default: the
    /// smaller of 1 GiB and 5% of the filesystem).
    pub min_free_space: Option<String>,
    /// Tiers, walked by priority (0 = fastest).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub backends: Vec<BackendConfig>,
}

/// The line to quote in a TOML error: the message alone may not name the field (a bad value
/// inside a `[[backends]]` entry points at the entry, whose type decides its fields). The
/// line holding the value the message quotes (`` `-5` ``) is preferred, within what the error
/// points at (`spanned`), then anywhere in `text`; else the first line pointed at.
fn offending_line<'t>(spanned: &'t str, text: &'t str, message: &str) -> Option<&'t str> {
    let lines = |t: &'t str| t.lines().map(str::trim).filter(|l| !l.is_empty());
    let quoted = message.split('`').nth(1).filter(|q| !q.is_empty());
    quoted
        .and_then(|q| {
            lines(spanned)
                .find(|l| l.contains(q))
                .or_else(|| lines(text).find(|l| l.contains(q)))
        })
        .or_else(|| lines(spanned).next())
}

/// Parses `90s`, `15m`, `12h`, `7d` (or plain seconds); must be positive.
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    let s = s.trim();
    let split = s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len());
    let (num, unit) = s.split_at(split);
    if num.is_empty() {
        return Err(format!(
            "invalid duration {s:?}: expected a positive number with a unit s, m, h or d (e.g. 90s, 12h, 7d)"
        ));
    }
    let n: u64 = num
        .parse()
        .map_err(|_| format!("invalid duration {s:?}: number out of range"))?;
    let secs = match unit {
        "" | "s" => 1,
        "m" => 60,
        "h" => 3600,
        "d" => 86_400,
        other => {
            return Err(format!(
                "invalid duration {s:?}: unknown unit {other:?} (use s, m, h or d)"
            ));
        }
    };
    if n == 0 {
        return Err(format!("invalid duration {s:?}: must be positive"));
    }
    n.checked_mul(secs)
        .map(Duration::from_secs)
        .ok_or_else(|| format!("invalid duration {s:?}: too large"))
}

/// Parses a free-space floor: a size as [`parse_size`] takes it, or `0` (no floor).
pub fn parse_free_space(s: &str) -> Result<u64, String> {
    if s.trim() == "0" {
        Ok(0)
    } else {
        parse_size(s)
    }
}

/// Parses `50GB` (decimal), `500MiB` (binary), `1.5GiB` or a plain byte count; must be positive.
pub fn parse_size(s: &str) -> Result<u64, String> {
    let t = s.trim();
    let split = t
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(t.len());
    let (num, unit) = t.split_at(split);
    let unit = unit.trim();
    let bad = || {
        format!(
            "invalid size {s:?}: expected a byte count or a number with B, KB, MB, GB, TB, KiB, MiB, GiB or TiB (e.g. 50GB, 500MiB)"
        )
    };
    if num.is_empty() {
        return Err(bad());
    }
    let value: f64 = num.parse().map_err(|_| bad())?;
    let mult: f64 = match unit.to_ascii_lowercase().as_str() {
        "" | "b" => 1.0,
        "kb" | "k" => 1e3,
        "mb" | "m" => 1e6,
        "gb" | "g" => 1e9,
        "tb" | "t" => 1e12,
        "kib" => 1024.0,
        "mib" => 1024.0 * 1024.0,
        "gib" => 1024.0 * 1024.0 * 1024.0,
        "tib" => 1024.0f64.powi(4),
        _ => return Err(bad()),
    };
    let bytes = value * mult;
    if !bytes.is_finite() || bytes < 1.0 || bytes > u64::MAX as f64 {
        return Err(format!("invalid size {s:?}: must be at least 1 byte"));
    }
    Ok(bytes as u64)
}

/// `d` in the largest unit that states it exactly (`7d`, `90s`), as [`parse_duration`] reads.
pub fn format_duration(d: Duration) -> String {
    let secs = d.as_secs();
    [(86_400, "d"), (3600, "h"), (60, "m")]
        .into_iter()
        .find(|(unit, _)| secs > 0 && secs.is_multiple_of(*unit))
        .map_or_else(
            || format!("{secs}s"),
            |(unit, u)| format!("{}{u}", secs / unit),
        )
}

/// `bytes` in the largest binary unit that states it exactly (`64MiB`), as [`parse_size`]
/// reads.
pub fn format_size(bytes: u64) -> String {
    [
        (1u64 << 40, "TiB"),
        (1 << 30, "GiB"),
        (1 << 20, "MiB"),
        (1 << 10, "KiB"),
    ]
    .into_iter()
    .find(|(unit, _)| bytes > 0 && bytes.is_multiple_of(*unit))
    .map_or_else(
        || bytes.to_string(),
        |(unit, u)| format!("{}{u}", bytes / unit),
    )
}

/// A backend's duration field, or `default` when unset; errors name the backend.
pub fn duration_field(backend: &str, v: Option<&String>, default: Duration) -> Result<Duration> {
    v.map_or(Ok(default), |s| {
        parse_duration(s).map_err(|e| Error::Invalid {
            reason: format!("backend {backend}: {e}"),
        })
    })
}

/// A backend's size field, or `default` when unset; errors name the backend and field.
pub fn size_field(backend: &str, field: &str, v: Option<&String>, default: u64) -> Result<u64> {
    v.map_or(Ok(default), |s| {
        parse_size(s).map_err(|e| Error::Invalid {
            reason: format!("backend {backend}: {field}: {e}"),
        })
    })
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
        let bad = |reason: &str| {
            Err(Error::Invalid {
                reason: format!("config {origin}: {reason}"),
            })
        };
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
            let spanned = e.span().and_then(|span| text.get(span)).unwrap_or("");
            let at = offending_line(spanned, text, message)
                .map(|line| format!(" (at `{line}`)"))
                .unwrap_or_default();
            Error::Invalid {
                reason: format!("config {origin}: {message}{at}"),
            }
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
        let max_size = options.max_size.map(format_size);
        if max_size.is_none() {
            notes.push("max_size: none (no size budget)".into());
        }
        let eviction_policy = Some(options.eviction.name().to_owned());
        let mut backends = vec![BackendConfig::Filesystem {
            name: Some("local".into()),
            priority: 0,
            path: Some(local_dir.to_owned()),
            max_size: max_size.clone(),
            eviction_policy: eviction_policy.clone(),
        }];
        for backend in &self.backends {
            let tier = backend.name();
            let mut b = backend.clone();
            match &mut b {
                BackendConfig::Filesystem { .. } => continue,
                BackendConfig::S3 {
                    name,
                    endpoint,
                    region,
                    access_key_id,
                    secret_access_key,
                    timeout,
                    gc_grace,
                    queue_capacity,
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
                    fill_remote(&tier, name, timeout, DEFAULT_DEADLINE, queue_capacity)?;
                    fill_grace(&tier, gc_grace)?;
                }
                BackendConfig::FsRemote {
                    name,
                    timeout,
                    gc_grace,
                    queue_capacity,
                    ..
                } => {
                    fill_remote(&tier, name, timeout, DEFAULT_DEADLINE, queue_capacity)?;
                    fill_grace(&tier, gc_grace)?;
                }
                BackendConfig::Redis {
                    name,
                    max_object_size,
                    timeout,
                    queue_capacity,
                    ..
                } => {
                    let max = size_field(
                        &tier,
                        "max_object_size",
                        max_object_size.as_ref(),
                        DEFAULT_REDIS_MAX_OBJECT,
                    )?;
                    *max_object_size = Some(format_size(max));
                    fill_remote(&tier, name, timeout, DEFAULT_REDIS_DEADLINE, queue_capacity)?;
                }
            }
            backends.push(b);
        }
        let effective = CacheConfig {
            default_ttl: options.default_ttl.map(format_duration),
            // Held by the local tier's entry, which wins over these.
            max_size: None,
            eviction_policy: None,
            cost_hints: self.cost_hints.clone(),
            compact_threshold: Some(options.compact_threshold),
            chunk_size: Some(format_size(options.chunk_size)),
            compact_batch_size: Some(format_size(options.compact_batch_bytes)),
            enable_compression: Some(options.compression.enabled),
            min_free_space: options.min_free_space.map(format_size),
            backends,
        };
        if effective.min_free_space.is_none() {
            notes.push(
                "min_free_space: the smaller of 1GiB and 5% of the store's filesystem".into(),
            );
        }
        Ok((effective, notes))
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

    /// Applies the file to `options`; `origin` names the file in errors.
    pub fn apply(&self, options: &mut StoreOptions, origin: &str) -> Result<()> {
        let field = |name: &str, e: String| Error::Invalid {
            reason: format!("config {origin}: {name}: {e}"),
        };
        if let Some(v) = &self.default_ttl {
            options.default_ttl = Some(parse_duration(v).map_err(|e| field("default_ttl", e))?);
        }
        // A `filesystem` backend's own max_size / eviction_policy win over the top level.
        let (local_max, local_policy) = match self.local_backend() {
            Some(BackendConfig::Filesystem {
                max_size,
                eviction_policy,
                ..
            }) => (max_size.clone(), eviction_policy.clone()),
            _ => (None, None),
        };
        let eviction_policy = local_policy.or_else(|| self.eviction_policy.clone());
        if let Some(v) = local_max.as_ref().or(self.max_size.as_ref()) {
            options.max_size = Some(parse_size(v).map_err(|e| field("max_size", e))?);
        }
        if let Some(v) = &self.chunk_size {
            options.chunk_size = parse_size(v).map_err(|e| field("chunk_size", e))?;
        }
        if let Some(v) = &self.compact_batch_size {
            options.compact_batch_bytes =
                parse_size(v).map_err(|e| field("compact_batch_size", e))?;
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
        if let Some(v) = &self.min_free_space {
            options.min_free_space =
                Some(parse_free_space(v).map_err(|e| field("min_free_space", e))?);
        }
        let policy: Arc<dyn EvictionPolicy> = match eviction_policy.as_deref() {
            None | Some("lru") => {
                if self.cost_hints.is_some() {
                    return Err(Error::Invalid {
                        reason: format!(
                            "config {origin}: cost_hints is only used by eviction_policy = \"cost-weighted\""
                        ),
                    });
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

/// Writes out a pack tier's remote GC grace period, checking it.
fn fill_grace(tier: &str, gc_grace: &mut Option<String>) -> Result<()> {
    let grace = duration_field(tier, gc_grace.as_ref(), DEFAULT_GRACE)?;
    *gc_grace = Some(format_duration(grace));
    Ok(())
}

/// Writes out a remote tier's name, deadline and queue capacity, checking them.
fn fill_remote(
    tier: &str,
    name: &mut Option<String>,
    timeout: &mut Option<String>,
    default_timeout: Duration,
    queue_capacity: &mut Option<u64>,
) -> Result<()> {
    *name = Some(tier.to_owned());
    let deadline = duration_field(tier, timeout.as_ref(), default_timeout)?;
    *timeout = Some(format_duration(deadline));
    *queue_capacity = Some(queue_capacity_field(tier, *queue_capacity)?);
    Ok(())
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
mod tests {
    use super::*;

    #[test]
    fn sizes() {
        assert_eq!(parse_size("50GB").unwrap(), 50_000_000_000);
        assert_eq!(parse_size("500MiB").unwrap(), 500 * 1024 * 1024);
        assert_eq!(parse_size("1.5GiB").unwrap(), 1_610_612_736);
        assert_eq!(parse_size("4096").unwrap(), 4096);
        assert_eq!(parse_size("64 KiB").unwrap(), 65536);
        for bad in ["lots", "", "0", "-5MB", "5 parsecs", "GB", "0.1"] {
            assert!(parse_size(bad).is_err(), "{bad:?} should be rejected");
        }
    }

    #[test]
    fn durations() {
        assert_eq!(parse_duration("90s").unwrap(), Duration::from_secs(90));
        assert_eq!(
            parse_duration("7d").unwrap(),
            Duration::from_secs(7 * 86_400)
        );
        for bad in ["0", "0s", "-5m", "3fortnights", "", "h", "1.5h"] {
            assert!(parse_duration(bad).is_err(), "{bad:?} should be rejected");
        }
    }

    #[test]
    fn formatted_values_read_back() {
        for (d, shown) in [
            (90, "90s"),
            (120, "2m"),
            (5400, "90m"),
            (86_400, "1d"),
            (129_600, "36h"),
        ] {
            let d = Duration::from_secs(d);
            assert_eq!(format_duration(d), shown);
            assert_eq!(parse_duration(shown).unwrap(), d);
        }
        for (b, shown) in [
            (1, "1"),
            (1000, "1000"),
            (64 << 20, "64MiB"),
            (3 << 39, "1536GiB"),
        ] {
            assert_eq!(format_size(b), shown);
            assert_eq!(parse_size(shown).unwrap(), b);
        }
    }

    #[test]
    fn config_rejects_unknown_fields_and_bad_values() {
        let parse = |t: &str| toml::from_str::<CacheConfig>(t);
        assert!(
            parse("max_sise = \"5GB\"").is_err(),
            "typo in a field name must be an error"
        );
        let cfg = parse("max_size = \"lots\"").unwrap();
        let err = cfg
            .apply(&mut StoreOptions::default(), "c.toml")
            .unwrap_err()
            .to_string();
        assert!(err.contains("max_size") && err.contains("lots"), "{err}");
        let cfg = parse("eviction_policy = \"random\"").unwrap();
        assert!(cfg.apply(&mut StoreOptions::default(), "c.toml").is_err());
        let cfg = parse("default_ttl = \"12h\"\nmax_size = \"50GB\"\neviction_policy = \"cost-weighted\"\n[cost_hints]\ndescriptions = 300.0").unwrap();
        let mut o = StoreOptions::default();
        cfg.apply(&mut o, "c.toml").unwrap();
        assert_eq!(o.max_size, Some(50_000_000_000));
        assert_eq!(o.default_ttl, Some(Duration::from_secs(12 * 3600)));
        assert_eq!(o.eviction.name(), "cost-weighted");
    }
}
