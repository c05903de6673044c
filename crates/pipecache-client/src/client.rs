//! [`ServerClient`]: the calls of `pipecache serve`'s API, and the [`CacheBackend`] they make.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;
use hyper::{Method, Request};
use pipecache_format::record::RECORD_VERSION;
use pipecache_format::remote::{RemotePart, RemoteRecord};
use pipecache_format::wire::{self, WireDecoder};
use pipecache_format::{Algorithm, BlobHash, CompressionPolicy, MAX_BLOB_LEN};
use pipecache_remote::RemoteError;
use pipecache_store::{
    Artifact, ListEntry, Part, PutOptions, StoreError, StoredArtifact, validate_key,
};
use pipecache_tiers::{
    BackendKind, CacheBackend, Capabilities, Fetched, Result, TierError, Written,
};
use serde::de::DeserializeOwned;

use crate::http::{Connections, Endpoint, Failure, Pieces};
use crate::near::{NearCache, REPORT_EVERY};
use crate::protocol::{
    self, ErrorEnvelope, HEADER_COMPRESSION, HEADER_IF_ABSENT, HEADER_TTL_MS, HitReport,
    JobRequest, JobStatus, KeyList, ServerFile, StatsReport,
};

/// How long a call may take, unless the client is told otherwise: long enough for a
/// multi-gigabyte part over a local socket, short enough that nothing hangs.
pub const DEFAULT_DEADLINE: Duration = Duration::from_secs(300);
/// How long discovery waits for a server's health answer.
const HEALTH_DEADLINE: Duration = Duration::from_secs(2);

/// A client of one `pipecache serve` process.
///
/// Every call has a deadline; a call that found the server gone (connection refused or
/// broken before the answer) is retried once on a new connection when it is idempotent
/// (everything but starting a job), then reported as [`RemoteError::Unavailable`] of tier
/// `server`. Errors the server reports come back as the engine's own variants (a full disk is
/// `is_no_space`, damaged bytes `is_corruption`), classified by code.
#[derive(Clone, Debug)]
pub struct ServerClient {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    name: String,
    connections: Connections,
    deadline: Duration,
    /// Copies of what this client read, when it keeps them (see `near`).
    near: Option<Arc<NearCache>>,
}

/// Raw parts of a decoded answer.
type Decoded = (RemoteRecord, Vec<Vec<u8>>);

impl ServerClient {
    /// A client of the server listening on the Unix socket `socket`.
    pub fn unix(socket: impl Into<PathBuf>) -> Self {
        let socket = socket.into();
        Self::new(
            format!("server {}", socket.display()),
            Endpoint::Unix(socket),
        )
    }

    /// A client of a server's TCP address, with its bearer token.
    pub fn tcp(addr: impl Into<String>, token: impl Into<String>) -> Self {
        let addr = addr.into();
        Self::new(
            format!("server {addr}"),
            Endpoint::Tcp {
                addr,
                token: token.into(),
            },
        )
    }

    fn new(name: String, endpoint: Endpoint) -> Self {
        Self {
            inner: Arc::new(Inner {
                name,
                connections: Connections::new(endpoint),
                deadline: DEFAULT_DEADLINE,
                near: None,
            }),
        }
    }

    /// The same client with another per-call deadline.
    pub fn with_deadline(self, deadline: Duration) -> Self {
        let inner = &self.inner;
        let endpoint = inner.connections.endpoint().clone();
        Self {
            inner: Arc::new(Inner {
                name: inner.name.clone(),
                connections: Connections::new(endpoint),
                deadline,
                near: inner.near.clone(),
            }),
        }
    }

    /// The same client keeping a near cache of up to `budget` bytes of what it reads from
    /// the server of store `dir` (see the `near` module): later gets of an unchanged key are
    /// answered in this process. Without the store's change journal (or with a budget of
    /// 0) it keeps nothing. Its hits are reported to the server every second (from a task
    /// on the current tokio runtime, when there is one), before [`ServerClient::stats`], and
    /// by [`ServerClient::report_hits`].
    pub fn with_near_cache(self, dir: &Path, budget: u64) -> Self {
        let Some(near) = NearCache::open(dir, budget) else {
            return self;
        };
        let inner = &self.inner;
        let client = Self {
            inner: Arc::new(Inner {
                name: inner.name.clone(),
                connections: Connections::new(inner.connections.endpoint().clone()),
                deadline: inner.deadline,
                near: Some(Arc::new(near)),
            }),
        };
        if let Ok(runtime) = tokio::runtime::Handle::try_current() {
            // Follows the near cache, not this handle: clones and `with_deadline` copies
            // share it, and the reporter stops once the last of them is gone.
            let near = Arc::downgrade(client.inner.near.as_ref().expect("just set"));
            let poster = Self::new(inner.name.clone(), inner.connections.endpoint().clone());
            runtime.spawn(async move {
                loop {
                    tokio::time::sleep(REPORT_EVERY).await;
                    let Some(near) = near.upgrade() else { break };
                    if let Err(e) = poster.post_hits(&near).await {
                        tracing::debug!(error = %e, "near-cache hits not reported yet");
                    }
                }
            });
        }
        client
    }

    /// Whether this client keeps a near cache.
    pub fn has_near_cache(&self) -> bool {
        self.inner.near.is_some()
    }

    /// Reports the near cache's hits since the last report to the server (`POST
    /// /v1/hits`); hits it could not deliver are kept for the next report.
    pub async fn report_hits(&self) -> Result<()> {
        match &self.inner.near {
            Some(near) => self.post_hits(near).await,
            None => Ok(()),
        }
    }

    /// Sends `near`'s hits since its last report; hits not delivered are put back.
    async fn post_hits(&self, near: &NearCache) -> Result<()> {
        let hits = near.take_hits();
        if hits.is_empty() {
            return Ok(());
        }
        let report = HitReport { hits };
        let body = serde_json::to_vec(&report).expect("a hit report serializes");
        match self
            .json::<serde_json::Value>("report hits", Method::POST, protocol::HITS_PATH, Some(body))
            .await
        {
            Ok(_) => Ok(()),
            Err(e) => {
                near.restore_hits(report.hits);
                Err(e)
            }
        }
    }

    /// The near cache's copy of `key`, answered without waiting; `None` when this client
    /// keeps none or does not hold the key (then [`ServerClient::get_shared`] asks).
    pub fn get_from_near(&self, key: &str) -> Option<Arc<StoredArtifact>> {
        self.inner.near.as_ref()?.get(key)
    }

    /// The server that holds store `dir`, when one runs and answers: its server file names
    /// its socket. `Ok(None)` when there is no readable server file, or its server does not
    /// answer (a server killed without cleaning up leaves the file behind). A server that
    /// speaks another protocol version is an error, not a store to open.
    pub async fn discover(dir: &Path) -> Result<Option<(Self, ServerFile)>> {
        let file = match ServerFile::read(dir) {
            // A stopping server takes no new client.
            Ok(Some(file)) if file.stopping_until_ms.is_some() => return Ok(None),
            Ok(Some(file)) => file,
            Ok(None) => return Ok(None),
            Err(e) => {
                tracing::debug!(dir = %dir.display(), error = %e, "unreadable server file; no server");
                return Ok(None);
            }
        };
        let client = Self::unix(&file.socket).with_deadline(HEALTH_DEADLINE);
        if client.health().await.is_err() {
            return Ok(None);
        }
        if file.protocol != protocol::PROTOCOL_VERSION {
            return Err(TierError::Remote {
                tier: "server".into(),
                source: RemoteError::Config {
                    target: client.name().to_owned(),
                    reason: format!(
                        "the server (pid {}, pipecache {}) speaks protocol {}, this client {}",
                        file.pid,
                        file.version,
                        file.protocol,
                        protocol::PROTOCOL_VERSION
                    ),
                },
            });
        }
        Ok(Some((client.with_deadline(DEFAULT_DEADLINE), file)))
    }

    /// The name errors and stats use for this server.
    pub fn name(&self) -> &str {
        &self.inner.name
    }

    fn gone(&self, op: &str, detail: String) -> TierError {
        TierError::Remote {
            tier: "server".into(),
            source: RemoteError::Unavailable {
                target: self.inner.name.clone(),
                op: op.to_owned(),
                detail: format!("the server went away: {detail}"),
            },
        }
    }

    /// One call; `sink` takes a 2xx body. A refusal's JSON body becomes the engine's error.
    async fn call(
        &self,
        op: &str,
        build: &(dyn Fn() -> Request<Pieces> + Sync),
        idempotent: bool,
        sink: &mut (dyn FnMut(Bytes) -> std::result::Result<(), String> + Send),
    ) -> Result<u16> {
        let mut refusal = Vec::new();
        let mut attempt = 0;
        loop {
            attempt += 1;
            refusal.clear();
            let mut route = |status: u16, piece: Bytes| {
                if (200..300).contains(&status) {
                    sink(piece)
                } else {
                    refusal.extend_from_slice(&piece);
                    Ok(())
                }
            };
            let outcome = self
                .inner
                .connections
                .call(build(), self.inner.deadline, &mut route)
                .await;
            match outcome {
                Ok(response) => {
                    let status = response.status().as_u16();
                    if (200..300).contains(&status) || status == 404 && refusal.is_empty() {
                        return Ok(status);
                    }
                    return Err(self.refused(status, &refusal));
                }
                Err(Failure::Gone(detail)) => {
                    self.inner.connections.reset();
                    if !idempotent || attempt > 1 {
                        return Err(self.gone(op, detail));
                    }
                }
                Err(Failure::Deadline) => {
                    self.inner.connections.reset();
                    return Err(TierError::Remote {
                        tier: "server".into(),
                        source: RemoteError::Timeout {
                            target: self.inner.name.clone(),
                            op: op.to_owned(),
                            after: self.inner.deadline,
                        },
                    });
                }
                Err(Failure::Body(detail)) => {
                    self.inner.connections.reset();
                    return Err(StoreError::corruption(None, None, detail).into());
                }
            }
        }
    }

    fn refused(&self, status: u16, body: &[u8]) -> TierError {
        match serde_json::from_slice::<ErrorEnvelope>(body) {
            Ok(envelope) => envelope.error.into_tier_error(&self.inner.name),
            Err(_) => TierError::Remote {
                tier: "server".into(),
                source: RemoteError::Backend {
                    target: self.inner.name.clone(),
                    op: format!("request refused ({status})"),
                    detail: String::from_utf8_lossy(body).into_owned(),
                },
            },
        }
    }

    async fn json<T: DeserializeOwned>(
        &self,
        op: &str,
        method: Method,
        path: &str,
        body: Option<Vec<u8>>,
    ) -> Result<Option<T>> {
        let mut out = Vec::new();
        let build = || {
            let mut pieces = Pieces::default();
            if let Some(b) = &body {
                pieces.push(Bytes::copy_from_slice(b));
            }
            request(method.clone(), path)
                .header(hyper::header::CONTENT_TYPE, "application/json")
                .body(pieces)
                .expect("valid request")
        };
        let idempotent = method != Method::POST;
        let status = self
            .call(op, &build, idempotent, &mut |b: Bytes| {
                out.extend_from_slice(&b);
                Ok(())
            })
            .await?;
        if status == 404 {
            return Ok(None);
        }
        serde_json::from_slice(&out)
            .map(Some)
            .map_err(|e| self.gone(op, format!("unreadable answer: {e}")))
    }

    /// `GET /v1/health`: the server answers.
    pub async fn health(&self) -> Result<()> {
        self.json::<serde_json::Value>("health", Method::GET, "/v1/health", None)
            .await
            .map(|_| ())
    }

    /// Reads `key`: the artifact with its times, `None` on a miss.
    pub async fn get(&self, key: &str) -> Result<Option<StoredArtifact>> {
        Ok(self.get_shared(key).await?.map(Arc::unwrap_or_clone))
    }

    /// [`ServerClient::get`], shared with the near cache: a near hit is not copied, and a
    /// read from the server is kept there (when this client keeps a near cache).
    pub async fn get_shared(&self, key: &str) -> Result<Option<Arc<StoredArtifact>>> {
        validate_key(key)?;
        let Some(near) = &self.inner.near else {
            return Ok(self.fetch(key).await?.map(Arc::new));
        };
        if let Some(hit) = near.get(key) {
            return Ok(Some(hit));
        }
        let seen = near.before_read(key);
        let found = self.fetch(key).await?.map(Arc::new);
        if let Some(f) = &found {
            near.keep(key, f.clone(), seen);
        }
        Ok(found)
    }

    /// Reads `key` from the server.
    async fn fetch(&self, key: &str) -> Result<Option<StoredArtifact>> {
        let path = protocol::artifact_path(key);
        let mut decoder = WireDecoder::new(MAX_BLOB_LEN * 4);
        let build = || {
            request(Method::GET, &path)
                .body(Pieces::default())
                .expect("request")
        };
        let status = self
            .call("get", &build, true, &mut |b: Bytes| {
                decoder.push(&b).map_err(|e| e.to_string())
            })
            .await?;
        if status == 404 {
            return Ok(None);
        }
        let decoded = decoder
            .finish()
            .map_err(|e| StoreError::corruption(Some(key), None, e.to_string()))?;
        stored_from_wire(key, decoded).map(Some)
    }

    /// True when `key` holds a live artifact (`HEAD`).
    pub async fn contains(&self, key: &str) -> Result<bool> {
        validate_key(key)?;
        let path = protocol::artifact_path(key);
        let build = || {
            request(Method::HEAD, &path)
                .body(Pieces::default())
                .expect("request")
        };
        let status = self.call("head", &build, true, &mut |_| Ok(())).await?;
        Ok(status != 404)
    }

    /// Writes `artifact` under `key` with `options` (TTL, expiry, codec policy, if-absent).
    /// The parts are moved into the request body, not copied.
    pub async fn put(&self, key: &str, artifact: Artifact, options: PutOptions) -> Result<()> {
        validate_key(key)?;
        let record = wire_record(key, &artifact, options.expires_at_ms);
        let mut body = Pieces::default();
        body.push(Bytes::from(wire::encode_head(&record)));
        for (part, meta) in artifact.parts.into_iter().zip(&record.parts) {
            body.push(Bytes::copy_from_slice(&wire::part_header(
                meta.hash, meta.len,
            )));
            body.push(Bytes::from(part.data));
        }
        let path = protocol::artifact_path(key);
        let build = || {
            let mut r =
                request(Method::PUT, &path).header(hyper::header::CONTENT_TYPE, wire::CONTENT_TYPE);
            if let Some(ttl) = options.ttl {
                r = r.header(HEADER_TTL_MS, ttl.as_millis().to_string());
            }
            if options.if_absent {
                r = r.header(HEADER_IF_ABSENT, "1");
            }
            if let Some(policy) = &options.compression {
                r = r.header(HEADER_COMPRESSION, compression_header(policy));
            }
            r.body(body.clone()).expect("request")
        };
        self.call("put", &build, true, &mut |_| Ok(())).await?;
        Ok(())
    }

    /// Removes `key`; whether it was there.
    pub async fn delete(&self, key: &str) -> Result<bool> {
        validate_key(key)?;
        let path = protocol::artifact_path(key);
        let build = || {
            request(Method::DELETE, &path)
                .body(Pieces::default())
                .expect("request")
        };
        let status = self.call("delete", &build, true, &mut |_| Ok(())).await?;
        Ok(status != 404)
    }

    /// Keys starting with `prefix`, in every tier the server lists.
    pub async fn list_keys(&self, prefix: &str) -> Result<Vec<String>> {
        let path = format!("/v1/keys?prefix={}", protocol::query_value(prefix));
        Ok(self
            .json::<KeyList>("list", Method::GET, &path, None)
            .await?
            .unwrap_or_default()
            .keys)
    }

    /// The local store's entries (key, size, parts, kind) starting with `prefix`.
    pub async fn list_entries(&self, prefix: &str) -> Result<Vec<ListEntry>> {
        let path = format!("/v1/entries?prefix={}", protocol::query_value(prefix));
        Ok(self
            .json::<Vec<ListEntry>>("list", Method::GET, &path, None)
            .await?
            .unwrap_or_default())
    }

    /// The store's figures and every tier's (with this client's near hits reported
    /// first, so they are counted).
    pub async fn stats(&self) -> Result<StatsReport> {
        self.report_hits().await?;
        let mut report = self
            .json::<StatsReport>("stats", Method::GET, "/v1/stats", None)
            .await?
            .ok_or_else(|| self.gone("stats", "no stats route".into()))?;
        report.near_cache = self.inner.near.as_ref().map(|n| n.stats());
        Ok(report)
    }

    /// Starts a job; its first status.
    pub async fn start_job(&self, job: &JobRequest) -> Result<JobStatus> {
        let body = serde_json::to_vec(job).expect("a job serializes");
        self.json::<JobStatus>("start job", Method::POST, "/v1/jobs", Some(body))
            .await?
            .ok_or_else(|| self.gone("start job", "no jobs route".into()))
    }

    /// A job's status; `None` when the server knows no such job.
    pub async fn job(&self, id: u64) -> Result<Option<JobStatus>> {
        self.json("job", Method::GET, &format!("/v1/jobs/{id}"), None)
            .await
    }

    /// Runs a job to its end, calling `progress(phase, done, total)` as it goes.
    pub async fn run_job(
        &self,
        job: &JobRequest,
        mut progress: impl FnMut(&str, u64, u64) + Send,
    ) -> Result<JobStatus> {
        let mut status = self.start_job(job).await?;
        loop {
            progress(&status.phase, status.done, status.total);
            if status.state != protocol::JobState::Running {
                return Ok(status);
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
            status = self
                .job(status.id)
                .await?
                .ok_or_else(|| self.gone("job", "the server forgot the job (restarted?)".into()))?;
        }
    }
}

fn request(method: Method, path: &str) -> hyper::http::request::Builder {
    // The Host header is required by HTTP/1.1; a Unix socket has no host name.
    Request::builder()
        .method(method)
        .uri(path)
        .header(hyper::header::HOST, "pipecache")
}

/// The `pipecache-compression` header for a codec policy.
pub fn compression_header(p: &CompressionPolicy) -> String {
    if p.enabled {
        let algorithm = p.algorithm.name();
        format!("{algorithm}:{}:{}:{}", p.level, p.max_ratio, p.min_size)
    } else {
        "off".into()
    }
}

/// Parses a `pipecache-compression` header; `None` when malformed.
pub fn parse_compression_header(v: &str) -> Option<CompressionPolicy> {
    if v == "off" {
        return Some(CompressionPolicy {
            enabled: false,
            ..CompressionPolicy::DEFAULT
        });
    }
    let mut it = v.split(':');
    let policy = CompressionPolicy {
        enabled: true,
        algorithm: Algorithm::from_name(it.next()?)?,
        level: it.next()?.parse().ok()?,
        max_ratio: it.next()?.parse().ok()?,
        min_size: it.next()?.parse().ok()?,
    };
    it.next().is_none().then_some(policy)
}

/// The record a body opens with: what `artifact` is, with each part's hash and length.
pub fn wire_record(key: &str, artifact: &Artifact, expires_ms: Option<u64>) -> RemoteRecord {
    RemoteRecord {
        v: RECORD_VERSION,
        key: key.to_owned(),
        kind: artifact.kind.clone(),
        parts: artifact
            .parts
            .iter()
            .map(|p| RemotePart {
                name: p.name.clone(),
                hash: BlobHash::of(&p.data),
                len: p.data.len() as u64,
                at: None,
            })
            .collect(),
        created_ms: 0,
        expires_ms,
        meta: artifact.meta.clone(),
        // Each part's frame carries its own blake3, checked on arrival; the digest over the
        // whole artifact is for tiers that store it, which the wire is not.
        digest: BlobHash([0; 32]),
    }
}

/// The artifact a decoded body carries; its key must be the one asked for.
pub fn stored_from_wire(key: &str, (record, parts): Decoded) -> Result<StoredArtifact> {
    if record.key != key {
        return Err(StoreError::corruption(
            Some(key),
            None,
            format!("the server answered with key {:?}", record.key),
        )
        .into());
    }
    let (created_ms, expires_ms) = (record.created_ms, record.expires_ms);
    Ok(StoredArtifact {
        artifact: artifact_from_wire(record, parts),
        created_ms,
        expires_ms,
    })
}

/// The artifact a decoded body carries: the record's kind, metadata and part names with
/// the parts' bytes (both sides of the wire build it the same way).
pub fn artifact_from_wire(record: RemoteRecord, parts: Vec<Vec<u8>>) -> Artifact {
    Artifact {
        kind: record.kind,
        parts: record
            .parts
            .into_iter()
            .zip(parts)
            .map(|(p, data)| Part { name: p.name, data })
            .collect(),
        meta: record.meta,
    }
}

#[async_trait]
impl CacheBackend for ServerClient {
    fn name(&self) -> &str {
        &self.inner.name
    }

    fn kind(&self) -> BackendKind {
        BackendKind::Server
    }

    fn capabilities(&self) -> Capabilities {
        Capabilities {
            ranged_reads: false,
            native_ttl: true,
            max_object_size: None,
            list: true,
        }
    }

    async fn get(&self, key: &str) -> Result<Option<Fetched>> {
        // Every part was checked against its blake3 on arrival.
        Ok(ServerClient::get(self, key).await?.map(|stored| Fetched {
            stored,
            digest: None,
        }))
    }

    // The server's own local tier counts what dedup spared it; seen from here, a write is
    // whole.
    async fn put(&self, key: &str, item: &StoredArtifact) -> Result<Written> {
        let options = PutOptions {
            expires_at_ms: item.expires_ms,
            ..PutOptions::default()
        };
        ServerClient::put(self, key, item.artifact.clone(), options).await?;
        Ok(Written::default())
    }

    async fn put_copy(&self, key: &str, item: &StoredArtifact) -> Result<Written> {
        let options = PutOptions {
            expires_at_ms: item.expires_ms,
            if_absent: true,
            ..PutOptions::default()
        };
        ServerClient::put(self, key, item.artifact.clone(), options).await?;
        Ok(Written::default())
    }

    async fn delete(&self, key: &str) -> Result<bool> {
        ServerClient::delete(self, key).await
    }

    async fn exists(&self, key: &str) -> Result<bool> {
        self.contains(key).await
    }

    async fn list(&self, prefix: &str) -> Result<Vec<String>> {
        self.list_keys(prefix).await
    }
}
