//! What `pipecache serve` and its clients agree on: paths, headers, the server file, job
//! reports, and errors as HTTP statuses with stable codes (`docs/server.md`).
//!
//! The server imports this module to speak; nothing here opens a socket.

use std::path::{Path, PathBuf};

use pipecache_remote::RemoteError;
use pipecache_store::StoreError;
use pipecache_tiers::TierError;
use serde::{Deserialize, Serialize};

/// The file a server writes into the store directory once it listens; clients find it there.
pub const SERVER_FILE: &str = "server.json";
/// The server's Unix socket in the store directory, unless told otherwise.
pub const SOCKET_FILE: &str = "server.sock";
/// Version of [`ServerFile`] and of the `/v1` API. 2: `pipecache-compression` may name
/// `lz4`, which a version 1 server refuses; a client and a server of different versions
/// refuse each other at discovery, clearly, instead of failing on the first such put.
/// 3: clients keep near caches, invalidated through the store's change journal (which a
/// version 2 server does not publish), and report their hits (`POST /v1/hits`).
pub const PROTOCOL_VERSION: u32 = 3;

/// `POST` path where a client reports the hits its near cache answered.
pub const HITS_PATH: &str = "/v1/hits";

/// Request header: the artifact's TTL in milliseconds (absent: the store's default).
pub const HEADER_TTL_MS: &str = "pipecache-ttl-ms";
/// Request header: `1` writes only where the key holds no live artifact.
pub const HEADER_IF_ABSENT: &str = "pipecache-if-absent";
/// Request header: the codec policy for the artifact's new blobs, `off` or
/// `<zstd or lz4>:<level>:<max_ratio>:<min_size>` (absent: the store's).
pub const HEADER_COMPRESSION: &str = "pipecache-compression";

/// Path of an artifact: `/v1/artifacts/<key, percent-encoded>`.
pub fn artifact_path(key: &str) -> String {
    format!(
        "/v1/artifacts/{}",
        percent_encoding::utf8_percent_encode(key, KEY_SET)
    )
}

/// Every byte outside RFC 3986's unreserved set is escaped, `/` included, so a key is one
/// path segment whatever it holds.
const KEY_SET: &percent_encoding::AsciiSet = &percent_encoding::NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'_')
    .remove(b'.')
    .remove(b'~');

/// A query value, escaped the same way.
pub fn query_value(v: &str) -> String {
    percent_encoding::utf8_percent_encode(v, KEY_SET).to_string()
}

/// What a running server publishes in [`SERVER_FILE`].
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ServerFile {
    /// [`PROTOCOL_VERSION`] of the server.
    pub protocol: u32,
    /// The server's process id.
    pub pid: u32,
    /// Its Unix socket.
    pub socket: PathBuf,
    /// Its TCP address, when it also listens there (a token is then required on it).
    pub tcp: Option<String>,
    /// When it started, unix ms.
    pub started_ms: u64,
    /// The pipecache version it runs.
    pub version: String,
    /// Set while the server shuts down: it serves no new client but still holds the store,
    /// which it closes by this time (unix ms) and then removes the file. A client that
    /// finds the store locked waits until then instead of failing with `StoreInUse`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stopping_until_ms: Option<u64>,
}

impl ServerFile {
    /// The server file of `dir`, `None` when there is none.
    pub fn read(dir: &Path) -> std::io::Result<Option<Self>> {
        match std::fs::read(dir.join(SERVER_FILE)) {
            Ok(bytes) => serde_json::from_slice(&bytes)
                .map(Some)
                .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidData, e)),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// Writes it into `dir` atomically (a temporary file renamed over it), so a client never
    /// reads half a file.
    pub fn write(&self, dir: &Path) -> std::io::Result<()> {
        let bytes = serde_json::to_vec_pretty(self).map_err(std::io::Error::other)?;
        pipecache_format::replace_file(dir, SERVER_FILE, &bytes)
    }
}

/// A job the server runs for a client: `POST /v1/jobs` takes it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "kebab-case")]
pub enum JobRequest {
    /// Expiry, eviction, dead blobs and compaction (`pipecache gc`).
    Gc {
        /// Report what would go, remove nothing.
        #[serde(default)]
        dry_run: bool,
        /// List every expired and evicted key in the report, not only their counts.
        #[serde(default)]
        keys: bool,
    },
    /// Compaction alone (`pipecache compact`).
    Compact {
        /// Report what would move, move nothing.
        #[serde(default)]
        dry_run: bool,
    },
    /// Every check of `pipecache verify`.
    Verify,
    /// Upload every local artifact a pack tier lacks (`pipecache sync push`).
    SyncPush {
        /// The pack tier (default: the first s3 or fs-remote tier).
        #[serde(default)]
        tier: Option<String>,
        /// Bytes of artifacts per pack (default 16 MiB).
        #[serde(default)]
        batch_size: Option<u64>,
    },
    /// Copy a pack tier's artifacts into the local tier (`pipecache sync pull`).
    SyncPull {
        /// The pack tier (default: the first s3 or fs-remote tier).
        #[serde(default)]
        tier: Option<String>,
        /// Only keys starting with this prefix.
        #[serde(default)]
        prefix: String,
    },
    /// Mark and sweep a pack tier's unreferenced packs (`pipecache gc --remote`).
    RemoteGc {
        /// The pack tier (default: the first s3 or fs-remote tier).
        #[serde(default)]
        tier: Option<String>,
        /// Never delete an object younger than this many seconds (default: the tier's
        /// `gc_grace`).
        #[serde(default)]
        grace_seconds: Option<u64>,
        /// Report what would go, delete nothing.
        #[serde(default)]
        dry_run: bool,
    },
}

/// The GC report as `gc --json` prints it and the server's gc job reports it: the key lists
/// become counts (megabytes of keys at a large store's scale), and come along in full as
/// `expired_keys` and `evicted_keys` only when asked.
pub fn gc_report_json(r: &pipecache_store::GcReport, keys: bool) -> serde_json::Value {
    let mut v = serde_json::to_value(r).expect("a GC report serializes");
    let fields = v.as_object_mut().expect("GcReport serializes to an object");
    fields.insert("expired".into(), r.expired.len().into());
    fields.insert("evicted".into(), r.evicted.len().into());
    if keys {
        fields.insert("expired_keys".into(), r.expired.clone().into());
        fields.insert("evicted_keys".into(), r.evicted.clone().into());
    }
    v
}

/// Where a job is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum JobState {
    /// Still running.
    Running,
    /// Finished; `report` holds its report.
    Done,
    /// Failed; `error` says why.
    Failed,
}

/// A job as `GET /v1/jobs/<id>` reports it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct JobStatus {
    /// Its id.
    pub id: u64,
    /// What was asked.
    pub request: JobRequest,
    /// Where it is.
    pub state: JobState,
    /// The phase running (`expire`, `evict`, `compact`, `verify`, ...).
    pub phase: String,
    /// Work done in this phase, of `total`.
    pub done: u64,
    /// Work of this phase.
    pub total: u64,
    /// The report (the same JSON as the CLI's `--json`) once done.
    pub report: Option<serde_json::Value>,
    /// Why it failed.
    pub error: Option<ErrorBody>,
}

/// `POST /v1/hits` body: what a client's near cache answered since its last report, so the
/// server counts them (metrics, recompute time saved) and keeps their keys' access times
/// (LRU) as if it had answered them.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct HitReport {
    /// One entry per key hit at least once.
    pub hits: Vec<KeyHits>,
}

/// A key's near-cache hits in one [`HitReport`].
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct KeyHits {
    /// The key.
    pub key: String,
    /// Hits since the last report.
    pub count: u64,
    /// Logical bytes those hits returned.
    pub bytes: u64,
    /// Time those hits took, summed, in seconds.
    pub seconds: f64,
}

/// `GET /v1/keys` answer.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct KeyList {
    /// Keys, in order.
    pub keys: Vec<String>,
}

/// `GET /v1/stats` answer: the store's figures and each tier's, as `pipecache stats --json`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct StatsReport {
    /// The local store.
    #[serde(flatten)]
    pub stats: pipecache_store::Stats,
    /// Every tier the server walks.
    pub tiers: Vec<pipecache_tiers::TierStats>,
    /// Gets as callers see them, per artifact kind: hits (some tier answered), misses,
    /// failures, end-to-end latency, and the recompute time the hits saved.
    #[serde(default)]
    pub lookups: Vec<pipecache_tiers::KindStats>,
    /// Recompute seconds hits saved since 00:00 UTC today (all kinds).
    #[serde(default)]
    pub recompute_seconds_saved_today: f64,
    /// The subjects (videos) with the most gets no tier answered, most first.
    #[serde(default)]
    pub most_missed: Vec<pipecache_tiers::MissedSubject>,
    /// The asking client's near cache, when it keeps one (filled in by the client; a
    /// server never sends it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub near_cache: Option<NearCacheStats>,
}

/// A served client's near cache, as [`StatsReport::near_cache`] shows it.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct NearCacheStats {
    /// Gets it answered (also counted by the server as memory-tier hits once reported).
    pub hits: u64,
    /// Gets it passed on to the server.
    pub misses: u64,
    /// Bytes it holds now.
    pub bytes: u64,
    /// Its byte budget.
    pub budget: u64,
}

impl StatsReport {
    /// The figures of the store `manager` holds, and of its tiers.
    pub async fn of(manager: &pipecache_tiers::CacheManager) -> pipecache_tiers::Result<Self> {
        Ok(Self {
            stats: manager.local().stats().await?,
            tiers: manager.tier_stats(),
            lookups: manager.lookup_stats(),
            recompute_seconds_saved_today: manager.recompute_seconds_saved_today(),
            most_missed: manager.most_missed(),
            near_cache: None,
        })
    }
}

/// The JSON body of every refusal: `{"error": {...}}`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ErrorEnvelope {
    /// The error.
    pub error: ErrorBody,
}

/// An error as it travels: a stable code (what clients classify by), a message for people,
/// and the fields a client needs to rebuild the engine's error.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ErrorBody {
    /// Stable code: see [`ErrorCode`].
    pub code: ErrorCode,
    /// What happened, for people.
    pub message: String,
    /// The tier that failed (remote tier errors).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tier: Option<String>,
    /// The key concerned, when known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key: Option<String>,
}

/// Stable error codes, each with one HTTP status.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum ErrorCode {
    /// 400: the key breaks the key rules.
    InvalidKey,
    /// 400: the artifact or an option is unusable.
    InvalidArtifact,
    /// 400: the request is malformed (body, headers, query).
    BadRequest,
    /// 401: a TCP request without the right bearer token.
    Unauthorized,
    /// 404: no such route or job.
    NotFound,
    /// 408: the client sent too slowly.
    RequestTimeout,
    /// 413: the body is over the server's limit, or the artifact over the store's budget.
    TooLarge,
    /// 415: a body that is not `application/vnd.pipecache.artifact`.
    UnsupportedMediaType,
    /// 500: stored bytes failed a check; they were not returned.
    Corruption,
    /// 500: anything else that failed inside the server.
    Internal,
    /// 502: a remote tier failed.
    Remote,
    /// 503: too many requests at once, or the server is shutting down.
    Unavailable,
    /// 504: a remote tier, or the server's own wait, ran past its deadline.
    Timeout,
    /// 507: the store's filesystem is full or a put would cross `min_free_space`.
    NoSpace,
}

impl ErrorCode {
    /// The HTTP status this code travels with.
    pub fn status(self) -> u16 {
        match self {
            Self::InvalidKey | Self::InvalidArtifact | Self::BadRequest => 400,
            Self::Unauthorized => 401,
            Self::NotFound => 404,
            Self::RequestTimeout => 408,
            Self::TooLarge => 413,
            Self::UnsupportedMediaType => 415,
            Self::Corruption | Self::Internal => 500,
            Self::Remote => 502,
            Self::Unavailable => 503,
            Self::Timeout => 504,
            Self::NoSpace => 507,
        }
    }
}

impl ErrorBody {
    /// An error with a code and a message.
    pub fn new(code: ErrorCode, message: impl Into<String>) -> Self {
        Self {
            code,
            message: message.into(),
            tier: None,
            key: None,
        }
    }

    /// How the server reports an engine error, classified by variant.
    pub fn from_tier_error(e: &TierError) -> Self {
        let code = match e {
            TierError::Store(s) => match s {
                StoreError::InvalidKey { .. } => ErrorCode::InvalidKey,
                StoreError::InvalidArtifact { .. } | StoreError::InvalidOption { .. } => {
                    ErrorCode::InvalidArtifact
                }
                StoreError::TooLarge { .. } => ErrorCode::TooLarge,
                StoreError::NoSpace { .. } => ErrorCode::NoSpace,
                StoreError::Corruption { .. } => ErrorCode::Corruption,
                StoreError::Closed => ErrorCode::Unavailable,
                _ => ErrorCode::Internal,
            },
            TierError::Remote { source, .. } if source.is_timeout() => ErrorCode::Timeout,
            TierError::Remote { .. } => ErrorCode::Remote,
            TierError::Timeout { .. } => ErrorCode::Timeout,
            _ => ErrorCode::Internal,
        };
        let mut body = Self::new(code, e.to_string());
        if let TierError::Remote { tier, .. } = e {
            body.tier = Some(tier.clone());
        }
        if let TierError::Store(StoreError::Corruption { key, .. }) = e {
            body.key.clone_from(key);
        }
        body
    }

    /// The engine error a client raises for it, so callers classify a served store's errors
    /// as they classify their own (`is_no_space`, `is_corruption`, `is_timeout`, ...). The
    /// tier is the remote tier the server names, else `server`; `server` (the client's name
    /// for it) is the target.
    pub fn into_tier_error(self, server: &str) -> TierError {
        let message = self.message;
        match self.code {
            ErrorCode::InvalidKey => StoreError::InvalidKey { reason: message }.into(),
            // Too large for the body limit or for the store's budget: this artifact cannot be
            // put here, like any other unusable artifact.
            ErrorCode::InvalidArtifact | ErrorCode::TooLarge => {
                StoreError::InvalidArtifact { reason: message }.into()
            }
            ErrorCode::NoSpace => StoreError::NoSpace { detail: message }.into(),
            ErrorCode::Corruption => StoreError::Corruption {
                key: self.key,
                blob: None,
                detail: message,
                in_index: false,
            }
            .into(),
            ErrorCode::Timeout => TierError::Remote {
                tier: self.tier.unwrap_or_else(|| "server".to_owned()),
                source: RemoteError::Timeout {
                    target: server.to_owned(),
                    op: message,
                    after: std::time::Duration::ZERO,
                },
            },
            ErrorCode::Remote => TierError::Remote {
                tier: self.tier.unwrap_or_else(|| "server".to_owned()),
                source: RemoteError::Backend {
                    target: server.to_owned(),
                    op: "request".into(),
                    detail: message,
                },
            },
            ErrorCode::Unavailable => TierError::Remote {
                tier: "server".to_owned(),
                source: RemoteError::Unavailable {
                    target: server.to_owned(),
                    op: "request".into(),
                    detail: message,
                },
            },
            code => TierError::Remote {
                tier: "server".to_owned(),
                source: RemoteError::Backend {
                    target: server.to_owned(),
                    op: format!("request refused ({})", code.status()),
                    detail: message,
                },
            },
        }
    }
}
