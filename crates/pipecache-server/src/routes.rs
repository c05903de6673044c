//! The HTTP API (`docs/server.md`): one handler per request, each answering with the
//! store's result or a JSON error body whose status says what went wrong.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use axum::body::Body;
use axum::extract::rejection::PathRejection;
use axum::extract::{Path, Query, Request, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use bytes::Bytes;
use http_body_util::BodyExt;
use pipecache::{CacheManager, PutOptions, StoredArtifact, validate_key};
use pipecache_client::protocol::{
    self, ErrorBody, ErrorCode, ErrorEnvelope, HEADER_COMPRESSION, HEADER_IF_ABSENT, HEADER_TTL_MS,
    HitReport, JobRequest, KeyList, StatsReport,
};
use pipecache_client::{Pieces, artifact_from_wire, parse_compression_header, wire_record};
use pipecache_format::wire::{self, WireDecoder};
use tokio::sync::Semaphore;

use crate::jobs::Jobs;
use crate::options::ServeOptions;

/// What every handler shares.
#[derive(Clone, Debug)]
pub(crate) struct AppState {
    inner: Arc<StateInner>,
}

#[derive(Debug)]
struct StateInner {
    cache: CacheManager,
    jobs: Jobs,
    options: ServeOptions,
    permits: Arc<Semaphore>,
    started: Instant,
    /// Milliseconds since `started` of the last request's end (idle exit).
    last_seen_ms: AtomicU64,
}

impl AppState {
    pub(crate) fn new(cache: CacheManager, options: ServeOptions) -> Self {
        Self {
            inner: Arc::new(StateInner {
                cache,
                jobs: Jobs::default(),
                permits: Arc::new(Semaphore::new(options.max_concurrent)),
                options,
                started: Instant::now(),
                last_seen_ms: AtomicU64::new(0),
            }),
        }
    }

    pub(crate) fn cache(&self) -> &CacheManager {
        &self.inner.cache
    }

    /// How long since the last request ended, with none in flight; `None` while busy.
    pub(crate) fn idle_for(&self) -> Option<Duration> {
        let s = &self.inner;
        if s.permits.available_permits() < s.options.max_concurrent || s.jobs.running() {
            return None;
        }
        let since_request = s.started.elapsed().saturating_sub(Duration::from_millis(
            s.last_seen_ms.load(Ordering::Relaxed),
        ));
        // A job's end counts as activity: its client still has the report to read.
        Some(match s.jobs.last_finished() {
            Some(end) => since_request.min(end.elapsed()),
            None => since_request,
        })
    }
}

/// A refusal: its status comes from its code.
#[derive(Debug)]
pub(crate) struct ApiError(pub(crate) ErrorBody);

impl ApiError {
    pub(crate) fn new(code: ErrorCode, message: impl Into<String>) -> Self {
        Self(ErrorBody::new(code, message))
    }
}

impl From<pipecache::Error> for ApiError {
    fn from(e: pipecache::Error) -> Self {
        Self(ErrorBody::from_tier_error(&e))
    }
}

impl From<pipecache::StoreError> for ApiError {
    fn from(e: pipecache::StoreError) -> Self {
        Self::from(pipecache::Error::from(e))
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let status = StatusCode::from_u16(self.0.code.status()).expect("a valid status");
        let mut response = (status, Json(ErrorEnvelope { error: self.0 })).into_response();
        if status == StatusCode::UNAUTHORIZED {
            response
                .headers_mut()
                .insert(header::WWW_AUTHENTICATE, "Bearer".parse().expect("header"));
        }
        response
    }
}

type ApiResult<T> = Result<T, ApiError>;

/// The routes, with the concurrency limit around them (and, for TCP, the token check).
pub(crate) fn router(state: AppState, token: Option<String>) -> Router {
    let routes = Router::new()
        .route(
            "/v1/artifacts/{*key}",
            get(get_artifact)
                .head(head_artifact)
                .put(put_artifact)
                .delete(delete_artifact),
        )
        .route("/v1/keys", get(list_keys))
        .route("/v1/entries", get(list_entries))
        .route("/v1/stats", get(stats))
        .route("/metrics", get(metrics))
        .route(protocol::HITS_PATH, post(report_hits))
        .route("/v1/jobs", post(start_job))
        .route("/v1/jobs/{id}", get(job))
        .fallback(|| async { ApiError::new(ErrorCode::NotFound, "no such route") })
        .method_not_allowed_fallback(|| async {
            ApiError::new(ErrorCode::BadRequest, "method not allowed on this route")
        })
        .layer(axum::middleware::from_fn_with_state(state.clone(), limit))
        // Outside the limit: clients discovering a busy server must still find it.
        .route("/v1/health", get(health))
        .with_state(state);
    // The dashboard page carries no data: no token for it.
    let page = Router::new().route("/", get(crate::dashboard::page));
    let routes = match token {
        Some(token) => {
            let expected: Arc<str> = format!("Bearer {token}").into();
            routes.layer(axum::middleware::from_fn(
                move |req: Request, next: Next| {
                    let expected = expected.clone();
                    async move {
                        let given = req
                            .headers()
                            .get(header::AUTHORIZATION)
                            .map(|v| v.as_bytes());
                        if given.is_some_and(|g| constant_time_eq(g, expected.as_bytes())) {
                            next.run(req).await
                        } else {
                            ApiError::new(
                                ErrorCode::Unauthorized,
                                "a bearer token is required on TCP (Authorization: Bearer <token>)",
                            )
                            .into_response()
                        }
                    }
                },
            ))
        }
        None => routes,
    };
    routes.merge(page)
}

/// Compares without stopping at the first difference, so timing tells nothing of the token.
fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// At most `max_concurrent` requests at once; the rest get 503 at once rather than queue
/// behind a slow one.
async fn limit(State(state): State<AppState>, req: Request, next: Next) -> Response {
    let s = &state.inner;
    let Ok(permit) = s.permits.clone().try_acquire_owned() else {
        let mut r = ApiError::new(
            ErrorCode::Unavailable,
            format!(
                "{} requests in flight, the server's limit; retry shortly",
                s.options.max_concurrent
            ),
        )
        .into_response();
        r.headers_mut()
            .insert(header::RETRY_AFTER, "1".parse().expect("header"));
        return r;
    };
    let response = next.run(req).await;
    drop(permit);
    s.last_seen_ms
        .store(s.started.elapsed().as_millis() as u64, Ordering::Relaxed);
    response
}

async fn health() -> Json<serde_json::Value> {
    Json(serde_json::json!({
        "status": "ok",
        "pid": std::process::id(),
        "version": env!("CARGO_PKG_VERSION"),
        "protocol": protocol::PROTOCOL_VERSION,
    }))
}

fn key_of(path: Result<Path<String>, PathRejection>) -> ApiResult<String> {
    let Path(key) = path.map_err(|e| ApiError::new(ErrorCode::InvalidKey, e.body_text()))?;
    validate_key(&key)?;
    Ok(key)
}

/// A part of a shared artifact, handed to the response body without a copy.
struct SharedPart(Arc<StoredArtifact>, usize);

impl AsRef<[u8]> for SharedPart {
    fn as_ref(&self) -> &[u8] {
        &self.0.artifact.parts[self.1].data
    }
}

async fn get_artifact(
    State(state): State<AppState>,
    path: Result<Path<String>, PathRejection>,
) -> ApiResult<Response> {
    let key = key_of(path)?;
    let Some(stored) = state.cache().get_shared(&key).await? else {
        // A miss has an empty body; a JSON body on 404 is a refusal (no such route).
        return Ok(StatusCode::NOT_FOUND.into_response());
    };
    let mut record = wire_record(&key, &stored.artifact, stored.expires_ms);
    record.created_ms = stored.created_ms;
    let mut body = Pieces::default();
    body.push(Bytes::from(wire::encode_head(&record)));
    for (i, part) in record.parts.iter().enumerate() {
        body.push(Bytes::copy_from_slice(&wire::part_header(
            part.hash, part.len,
        )));
        body.push(Bytes::from_owner(SharedPart(stored.clone(), i)));
    }
    Ok((
        [(header::CONTENT_TYPE, wire::CONTENT_TYPE)],
        Body::new(body),
    )
        .into_response())
}

async fn head_artifact(
    State(state): State<AppState>,
    path: Result<Path<String>, PathRejection>,
) -> ApiResult<StatusCode> {
    let key = key_of(path)?;
    let cache = state.cache();
    let found = cache.local().contains(&key).await? || cache.get_shared(&key).await?.is_some();
    Ok(if found {
        StatusCode::OK
    } else {
        StatusCode::NOT_FOUND
    })
}

fn header_str<'a>(headers: &'a HeaderMap, name: &str) -> ApiResult<Option<&'a str>> {
    headers
        .get(name)
        .map(|v| {
            v.to_str().map_err(|_| {
                ApiError::new(ErrorCode::BadRequest, format!("header {name} is not text"))
            })
        })
        .transpose()
}

/// Per-put options from the request's headers.
fn put_options(headers: &HeaderMap, expires_ms: Option<u64>) -> ApiResult<PutOptions> {
    let bad = |name: &str, v: &str| {
        ApiError::new(
            ErrorCode::BadRequest,
            format!("header {name}: {v:?} is not valid"),
        )
    };
    let ttl = match header_str(headers, HEADER_TTL_MS)? {
        Some(v) => Some(Duration::from_millis(
            v.parse().map_err(|_| bad(HEADER_TTL_MS, v))?,
        )),
        None => None,
    };
    let if_absent = match header_str(headers, HEADER_IF_ABSENT)? {
        None | Some("0") => false,
        Some("1") => true,
        Some(v) => return Err(bad(HEADER_IF_ABSENT, v)),
    };
    let compression = match header_str(headers, HEADER_COMPRESSION)? {
        Some(v) => Some(parse_compression_header(v).ok_or_else(|| bad(HEADER_COMPRESSION, v))?),
        None => None,
    };
    Ok(PutOptions {
        ttl,
        compression,
        expires_at_ms: expires_ms,
        if_absent,
    })
}

/// Reads a put's body into its parts as it arrives: one copy, from the socket's buffers into
/// each part's `Vec`. A body over `limit` is refused as soon as it crosses it; a body that
/// stalls for `idle` is refused with 408.
async fn read_body(
    body: Body,
    limit: u64,
    idle: Duration,
) -> ApiResult<(pipecache_format::remote::RemoteRecord, Vec<Vec<u8>>)> {
    let mut body = body;
    let mut decoder = WireDecoder::new(limit);
    let mut seen = 0u64;
    loop {
        let frame = match tokio::time::timeout(idle, body.frame()).await {
            Err(_) => {
                return Err(ApiError::new(
                    ErrorCode::RequestTimeout,
                    format!("the body sent nothing for {idle:?}"),
                ));
            }
            Ok(None) => break,
            Ok(Some(Err(e))) => {
                return Err(ApiError::new(
                    ErrorCode::BadRequest,
                    format!("reading the body: {e}"),
                ));
            }
            Ok(Some(Ok(frame))) => frame,
        };
        let Ok(data) = frame.into_data() else {
            continue;
        };
        seen += data.len() as u64;
        if seen > limit {
            return Err(ApiError::new(
                ErrorCode::TooLarge,
                format!("the body is longer than {limit} bytes"),
            ));
        }
        decoder
            .push(&data)
            .map_err(|e| ApiError::new(ErrorCode::BadRequest, format!("artifact body: {e}")))?;
    }
    decoder
        .finish()
        .map_err(|e| ApiError::new(ErrorCode::BadRequest, format!("artifact body: {e}")))
}

async fn put_artifact(
    State(state): State<AppState>,
    path: Result<Path<String>, PathRejection>,
    headers: HeaderMap,
    body: Body,
) -> ApiResult<StatusCode> {
    let key = key_of(path)?;
    let options = &state.inner.options;
    match header_str(&headers, header::CONTENT_TYPE.as_str())? {
        Some(t) if t == wire::CONTENT_TYPE => {}
        other => {
            return Err(ApiError::new(
                ErrorCode::UnsupportedMediaType,
                format!("a put's body is {}, not {other:?}", wire::CONTENT_TYPE),
            ));
        }
    }
    let declared = match header_str(&headers, header::CONTENT_LENGTH.as_str())? {
        Some(v) => Some(v.parse::<u64>().map_err(|_| {
            ApiError::new(
                ErrorCode::BadRequest,
                format!("Content-Length {v:?} is not a number"),
            )
        })?),
        None => None,
    };
    if let Some(len) = declared.filter(|&l| l > options.max_body) {
        return Err(ApiError::new(
            ErrorCode::TooLarge,
            format!(
                "a body of {len} bytes is over the server's limit of {} bytes",
                options.max_body
            ),
        ));
    }
    let limit = declared.unwrap_or(options.max_body);
    let (record, parts) = read_body(body, limit, options.body_idle_timeout).await?;
    if record.key != key {
        return Err(ApiError::new(
            ErrorCode::BadRequest,
            format!(
                "the body is for key {:?}, the path names {key:?}",
                record.key
            ),
        ));
    }
    let put = put_options(&headers, record.expires_ms)?;
    let artifact = artifact_from_wire(record, parts);
    state.cache().put_with(&key, artifact, put).await?;
    Ok(StatusCode::NO_CONTENT)
}

async fn delete_artifact(
    State(state): State<AppState>,
    path: Result<Path<String>, PathRejection>,
) -> ApiResult<StatusCode> {
    let key = key_of(path)?;
    Ok(if state.cache().delete(&key).await? {
        StatusCode::NO_CONTENT
    } else {
        StatusCode::NOT_FOUND
    })
}

#[derive(Debug, serde::Deserialize)]
struct ListQuery {
    #[serde(default)]
    prefix: String,
}

async fn list_keys(
    State(state): State<AppState>,
    query: Result<Query<ListQuery>, axum::extract::rejection::QueryRejection>,
) -> ApiResult<Json<KeyList>> {
    let Query(q) = query.map_err(|e| ApiError::new(ErrorCode::BadRequest, e.body_text()))?;
    let keys = state.cache().list_keys(&q.prefix).await?;
    Ok(Json(KeyList {
        keys: keys.into_iter().collect(),
    }))
}

async fn list_entries(
    State(state): State<AppState>,
    query: Result<Query<ListQuery>, axum::extract::rejection::QueryRejection>,
) -> ApiResult<Json<Vec<pipecache::ListEntry>>> {
    let Query(q) = query.map_err(|e| ApiError::new(ErrorCode::BadRequest, e.body_text()))?;
    Ok(Json(state.cache().local().list(&q.prefix).await?))
}

async fn report(state: &AppState) -> ApiResult<StatsReport> {
    Ok(StatsReport::of(state.cache()).await?)
}

async fn stats(State(state): State<AppState>) -> ApiResult<Json<StatsReport>> {
    Ok(Json(report(&state).await?))
}

/// The same figures in Prometheus' text format, for scrapers.
async fn metrics(State(state): State<AppState>) -> ApiResult<Response> {
    let text = pipecache_client::metrics::encode(&report(&state).await?);
    Ok((
        [(
            header::CONTENT_TYPE,
            pipecache_client::metrics::CONTENT_TYPE,
        )],
        text,
    )
        .into_response())
}

/// A client's near-cache hits: counted as this server's memory-tier hits, their keys'
/// access times noted (`protocol::HitReport`).
async fn report_hits(
    State(state): State<AppState>,
    body: Result<Json<HitReport>, axum::extract::rejection::JsonRejection>,
) -> ApiResult<Json<serde_json::Value>> {
    let Json(report) = body.map_err(|e| ApiError::new(ErrorCode::BadRequest, e.body_text()))?;
    let mut counted = 0u64;
    let mut checked = Vec::with_capacity(report.hits.len());
    for h in &report.hits {
        validate_key(&h.key)?;
        let took = Duration::try_from_secs_f64(h.seconds).map_err(|_| {
            ApiError::new(
                ErrorCode::BadRequest,
                format!(
                    "hits of {:?}: {} is not a duration in seconds",
                    h.key, h.seconds
                ),
            )
        })?;
        checked.push((h, took));
    }
    for (h, took) in checked {
        state
            .cache()
            .count_near_hits(&h.key, h.count, h.bytes, took);
        counted = counted.saturating_add(h.count);
    }
    Ok(Json(serde_json::json!({ "counted": counted })))
}

async fn start_job(
    State(state): State<AppState>,
    body: Result<Json<JobRequest>, axum::extract::rejection::JsonRejection>,
) -> ApiResult<(StatusCode, Json<protocol::JobStatus>)> {
    let Json(request) = body.map_err(|e| ApiError::new(ErrorCode::BadRequest, e.body_text()))?;
    let status = state.inner.jobs.start(state.cache().clone(), request);
    Ok((StatusCode::ACCEPTED, Json(status)))
}

async fn job(State(state): State<AppState>, Path(id): Path<String>) -> ApiResult<Response> {
    let id: u64 = id.parse().map_err(|_| {
        ApiError::new(
            ErrorCode::BadRequest,
            format!("job id {id:?} is not a number"),
        )
    })?;
    // Like a miss, an unknown job is a 404 with an empty body.
    Ok(match state.inner.jobs.status(id) {
        Some(status) => Json(status).into_response(),
        None => StatusCode::NOT_FOUND.into_response(),
    })
}
