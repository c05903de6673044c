use std::future::Future;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use opendal::{ErrorKind, Operator, options};
use reqsign_core::{ProvideCredential, ProvideCredentialChain};

use crate::{RemoteError, Result, TransferStats};

/// Fixed S3 keys for the signer; `Debug` shows neither (the signer logs providers).
#[derive(Clone)]
struct StaticKeys {
    access_key_id: String,
    secret_access_key: String,
}

impl std::fmt::Debug for StaticKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StaticKeys")
            .field("access_key_id", &"***")
            .field("secret_access_key", &"***")
            .finish()
    }
}

impl ProvideCredential for StaticKeys {
    type Credential = reqsign_aws_v4::Credential;

    async fn provide_credential(
        &self,
        _: &reqsign_core::Context,
    ) -> reqsign_core::Result<Option<Self::Credential>> {
        Ok(Some(reqsign_aws_v4::Credential {
            access_key_id: self.access_key_id.clone(),
            secret_access_key: self.secret_access_key.clone(),
            ..Default::default()
        }))
    }
}

/// How to reach an S3-protocol bucket.
#[derive(Clone, Default)]
pub struct S3Options {
    /// Bucket name (must exist; pipecache never creates buckets).
    pub bucket: String,
    /// Key prefix inside the bucket ("" for the bucket root).
    pub prefix: String,
    /// Endpoint URL, e.g. `http://127.0.0.1:9000`; `None` uses AWS's.
    pub endpoint: Option<String>,
    /// Region, e.g. `us-east-1`.
    pub region: String,
    /// Access key id.
    pub access_key_id: Option<String>,
    /// Secret access key.
    pub secret_access_key: Option<String>,
}

impl std::fmt::Debug for S3Options {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Credentials never reach a log line.
        f.debug_struct("S3Options")
            .field("bucket", &self.bucket)
            .field("prefix", &self.prefix)
            .field("endpoint", &self.endpoint)
            .field("region", &self.region)
            .field("access_key_id", &self.access_key_id.as_ref().map(|_| "***"))
            .field(
                "secret_access_key",
                &self.secret_access_key.as_ref().map(|_| "***"),
            )
            .finish()
    }
}

/// One object found by [`ObjectStore::list`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ObjectEntry {
    /// Path relative to the store's root, e.g. `packs/ab12...`.
    pub path: String,
    /// Size in bytes.
    pub size: u64,
    /// Last modification, unix ms (0 when the remote does not say).
    pub modified_ms: u64,
    /// The entity tag, when the listing gives one (S3 does).
    pub etag: Option<String>,
}

/// What [`ObjectStore::stat`] says of one object.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ObjectMeta {
    /// Size in bytes.
    pub size: u64,
    /// Last modification, unix ms (0 when the remote does not say).
    pub modified_ms: u64,
    /// The entity tag (S3: the MD5 of a single-part upload), when the remote gives one.
    pub etag: Option<String>,
}

/// A bucket or directory of objects reached through opendal, every call under a deadline.
#[derive(Clone, Debug)]
pub struct ObjectStore {
    op: Operator,
    target: Arc<str>,
    deadline: Duration,
    stats: Arc<TransferStats>,
    /// A filesystem store's temporary-write directory ([`ATOMIC_WRITE_DIR`]).
    temp_dir: Option<Arc<Path>>,
}

/// Directory under a filesystem store's root where objects are written before their rename
/// into place (outside every listed prefix).
const ATOMIC_WRITE_DIR: &str = ".pipecache-tmp";

/// A file in [`ATOMIC_WRITE_DIR`] untouched for this long is a crashed write's leftover (a
/// live write ends within its deadline, far sooner; machines sharing the directory may be
/// writing right now, so nothing younger is touched). See
/// [`ObjectStore::remove_stale_temp_files`].
const STALE_TEMP_AGE: Duration = Duration::from_secs(60 * 60);

/// Removes leftovers of crashed writes from `dir` (see [`STALE_TEMP_AGE`]); returns how many.
/// Housekeeping: a file it cannot remove is logged and left, never an error.
fn remove_stale_temp_files(dir: &Path, min_age: Duration) -> usize {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return 0; // no write has happened yet
    };
    let now = SystemTime::now();
    let mut removed = 0;
    for entry in entries.flatten() {
        let stale = entry
            .metadata()
            .and_then(|m| m.modified())
            .is_ok_and(|t| now.duration_since(t).is_ok_and(|age| age >= min_age));
        if !stale {
            continue;
        }
        match std::fs::remove_file(entry.path()) {
            Ok(()) => removed += 1,
            Err(e) => {
                tracing::warn!(path = %entry.path().display(), error = %e, "cannot remove a leftover temporary object file")
            }
        }
    }
    if removed > 0 {
        tracing::info!(dir = %dir.display(), removed, "removed leftover temporary object files of crashed writes");
    }
    removed
}

impl ObjectStore {
    /// A directory on a filesystem (a mounted share, say), created when missing.
    pub fn filesystem(path: &Path, deadline: Duration) -> Result<Self> {
        let target = format!("fs:{}", path.display());
        let root = path.to_str().ok_or_else(|| RemoteError::Config {
            target: target.clone(),
            reason: "path is not UTF-8".into(),
        })?;
        std::fs::create_dir_all(path).map_err(|e| RemoteError::Config {
            target: target.clone(),
            reason: format!("cannot create {}: {e}", path.display()),
        })?;
        // Written to a temporary file and renamed into place: a reader on another machine
        // never sees a half-written object (records are rewritten in place otherwise).
        let builder = opendal::services::Fs::default()
            .root(root)
            .atomic_write_dir(&format!("{root}/{ATOMIC_WRITE_DIR}"));
        let op = Operator::new(builder).map_err(|e| RemoteError::Config {
            target: target.clone(),
            reason: e.to_string(),
        })?;
        Ok(Self {
            temp_dir: Some(path.join(ATOMIC_WRITE_DIR).into()),
            ..Self::with_operator(op, target, deadline)
        })
    }

    /// Removes what crashed writes left in a filesystem store's temporary-write directory:
    /// files untouched for an hour, or twice the deadline if longer (younger ones may be a
    /// live write of another machine sharing the directory). Returns how many; a no-op for
    /// other stores. Housekeeping: a file it cannot remove is logged and left.
    pub async fn remove_stale_temp_files(&self) -> usize {
        let Some(dir) = self.temp_dir.clone() else {
            return 0;
        };
        let min_age = STALE_TEMP_AGE.max(self.deadline.saturating_mul(2));
        // A directory listing on a possibly slow network share: off the async threads.
        tokio::task::spawn_blocking(move || remove_stale_temp_files(&dir, min_age))
            .await
            .unwrap_or(0)
    }

    /// An S3-protocol bucket. Does not touch the network; call [`ObjectStore::check`].
    pub fn s3(opts: &S3Options, deadline: Duration) -> Result<Self> {
        let target = format!(
            "s3://{}/{}{}",
            opts.bucket,
            opts.prefix,
            opts.endpoint
                .as_deref()
                .map(|e| format!(" at {e}"))
                .unwrap_or_default()
        );
        let config = |reason: &str| RemoteError::Config {
            target: target.clone(),
            reason: reason.into(),
        };
        if opts.bucket.is_empty() {
            return Err(config("bucket is empty"));
        }
        if opts.region.is_empty() {
            return Err(config("region is empty"));
        }
        let mut builder = opendal::services::S3::default()
            .bucket(&opts.bucket)
            .region(&opts.region)
            .root(&format!("/{}", opts.prefix.trim_matches('/')))
            // Credentials come from the options only (the CLI reads the standard AWS
            // variables); no profile files or instance metadata lookups that can hang.
            .disable_config_load()
            .disable_ec2_metadata();
        if let Some(e) = &opts.endpoint {
            builder = builder.endpoint(e);
        }
        match (&opts.access_key_id, &opts.secret_access_key) {
            (Some(k), Some(s)) => {
                // Not `builder.access_key_id(k).secret_access_key(s)`: the signer logs each
                // credential provider it tries at debug level, and the static provider
                // opendal builds from those prints the secret.
                let keys = StaticKeys {
                    access_key_id: k.clone(),
                    secret_access_key: s.clone(),
                };
                builder =
                    builder.credential_provider_chain(ProvideCredentialChain::new().push(keys));
            }
            (None, None) => builder = builder.skip_signature(),
            _ => {
                return Err(config(
                    "set both access_key_id and secret_access_key, or neither",
                ));
            }
        }
        let op = Operator::new(builder).map_err(|e| config(&e.to_string()))?;
        Ok(Self::with_operator(op, target, deadline))
    }

    fn with_operator(op: Operator, target: String, deadline: Duration) -> Self {
        Self {
            op,
            target: target.into(),
            deadline,
            stats: Arc::default(),
            temp_dir: None,
        }
    }

    /// Printable name of the remote (no credentials).
    pub fn target(&self) -> &str {
        &self.target
    }

    /// Requests and bytes so far.
    pub fn stats(&self) -> &TransferStats {
        &self.stats
    }

    /// Runs `fut` under the deadline. A not-found answer comes back as `Ok(Err(_))` for the
    /// caller to read; every other error is classified.
    async fn call<T>(
        &self,
        op: &str,
        path: &str,
        fut: impl Future<Output = opendal::Result<T>>,
    ) -> Result<std::result::Result<T, opendal::Error>> {
        match self.within_deadline(op, path, fut).await? {
            Ok(v) => Ok(Ok(v)),
            Err(e) if e.kind() == ErrorKind::NotFound => Ok(Err(e)),
            Err(e) => Err(self.classify(op, path, &e)),
        }
    }

    /// Runs `fut` under the deadline, leaving its errors to the caller.
    async fn within_deadline<T>(
        &self,
        op: &str,
        path: &str,
        fut: impl Future<Output = opendal::Result<T>>,
    ) -> Result<opendal::Result<T>> {
        tokio::time::timeout(self.deadline, fut)
            .await
            .map_err(|_| RemoteError::Timeout {
                target: self.target.to_string(),
                op: format!("{op} {path}"),
                after: self.deadline,
            })
    }

    fn classify(&self, op: &str, path: &str, e: &opendal::Error) -> RemoteError {
        let target = self.target.to_string();
        let op = format!("{op} {path}");
        let detail = e.to_string();
        match e.kind() {
            ErrorKind::ConfigInvalid | ErrorKind::PermissionDenied => RemoteError::Config {
                target,
                reason: format!("{op}: {detail}"),
            },
            // opendal marks what failed to reach the remote (refused, reset, DNS) as
            // temporary: classified by that mark, never by the message's words.
            _ if e.is_temporary() => RemoteError::Unavailable { target, op, detail },
            _ => RemoteError::Backend { target, op, detail },
        }
    }

    fn not_found(&self, path: &str) -> RemoteError {
        RemoteError::NotFound {
            target: self.target.to_string(),
            path: path.to_owned(),
        }
    }

    /// Checks that the remote answers and the bucket (or directory) exists.
    pub async fn check(&self) -> Result<()> {
        TransferStats::add(&self.stats.lists, 1);
        let opts = options::ListOptions {
            limit: Some(1),
            ..Default::default()
        };
        match self
            .call("list", "/", self.op.list_options("/", opts))
            .await?
        {
            Ok(_) => Ok(()),
            Err(_) => Err(RemoteError::Config {
                target: self.target.to_string(),
                reason: "the bucket does not exist (pipecache never creates buckets)".into(),
            }),
        }
    }

    /// Writes `bytes` to `path`, replacing any object there.
    pub async fn put(&self, path: &str, bytes: Vec<u8>) -> Result<()> {
        self.write(path, bytes).await.map(drop)
    }

    /// Like [`ObjectStore::put`], and says which version of the object the write made:
    /// the write response's entity tag and time (S3 answers a PUT with its ETag), completed
    /// by a stat when the response names neither (opendal's filesystem service, where a
    /// stat is one local system call).
    pub async fn put_versioned(&self, path: &str, bytes: Vec<u8>) -> Result<ObjectMeta> {
        let size = bytes.len() as u64;
        let written = self.write(path, bytes).await?;
        let meta = ObjectMeta {
            size,
            modified_ms: modified_ms(&written),
            etag: written.etag().map(str::to_owned),
        };
        if meta.etag.is_none() && meta.modified_ms == 0 {
            return self.stat(path).await?.ok_or_else(|| self.not_found(path));
        }
        Ok(meta)
    }

    async fn write(&self, path: &str, bytes: Vec<u8>) -> Result<opendal::Metadata> {
        let len = bytes.len() as u64;
        TransferStats::add(&self.stats.puts, 1);
        match self.call("put", path, self.op.write(path, bytes)).await? {
            Ok(meta) => {
                TransferStats::add(&self.stats.bytes_up, len);
                Ok(meta)
            }
            Err(_) => Err(self.not_found(path)),
        }
    }

    /// Writes `bytes` at `path` only if no object is there; `Ok(false)` when one is. On S3
    /// the condition is the server's (`If-None-Match: *`); on a filesystem opendal checks it
    /// when the write starts and the final rename replaces whatever is there by then (the
    /// window is one object write).
    pub async fn put_if_absent(&self, path: &str, bytes: Vec<u8>) -> Result<bool> {
        let len = bytes.len() as u64;
        TransferStats::add(&self.stats.puts, 1);
        let opts = options::WriteOptions {
            if_not_exists: true,
            ..Default::default()
        };
        let write = self.op.write_options(path, bytes, opts);
        match self.within_deadline("put", path, write).await? {
            Ok(_) => {
                TransferStats::add(&self.stats.bytes_up, len);
                Ok(true)
            }
            Err(e) if e.kind() == ErrorKind::ConditionNotMatch => Ok(false),
            Err(e) => Err(self.classify("put", path, &e)),
        }
    }

    /// The whole object at `path`; `Ok(None)` when there is none.
    pub async fn get(&self, path: &str) -> Result<Option<Vec<u8>>> {
        TransferStats::add(&self.stats.gets, 1);
        if let Some(root) = self.temp_dir.as_deref().and_then(Path::parent) {
            return self.get_file(root.join(path), path).await;
        }
        match self.call("get", path, self.op.read(path)).await? {
            Ok(buf) => {
                let v = buf.to_vec();
                TransferStats::add(&self.stats.bytes_down, v.len() as u64);
                Ok(Some(v))
            }
            Err(_) => Ok(None),
        }
    }

    /// [`ObjectStore::get`] on a filesystem store, read with std rather than opendal: its fs
    /// service reads an object of unknown length in 2 MiB steps, each into a freshly
    /// zero-filled 2 MiB buffer, so every small record cost a 2 MiB memset (28% of the CPU of
    /// a `sync push` that compared 40,000 records). `std::fs::read` sizes its buffer from the
    /// open file, the one an atomic rename of a new version cannot change under it.
    async fn get_file(&self, file: PathBuf, path: &str) -> Result<Option<Vec<u8>>> {
        let read = tokio::task::spawn_blocking(move || std::fs::read(file));
        let read = tokio::time::timeout(self.deadline, read)
            .await
            .map_err(|_| RemoteError::Timeout {
                target: self.target.to_string(),
                op: format!("get {path}"),
                after: self.deadline,
            })?;
        let backend = |detail: String| RemoteError::Backend {
            target: self.target.to_string(),
            op: format!("get {path}"),
            detail,
        };
        match read.map_err(|e| backend(e.to_string()))? {
            Ok(v) => {
                TransferStats::add(&self.stats.bytes_down, v.len() as u64);
                Ok(Some(v))
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) if e.kind() == std::io::ErrorKind::PermissionDenied => {
                Err(RemoteError::Config {
                    target: self.target.to_string(),
                    reason: format!("get {path}: {e}"),
                })
            }
            Err(e) => Err(backend(e.to_string())),
        }
    }

    /// Bytes `range` of the object at `path`, which must exist.
    pub async fn get_range(&self, path: &str, range: std::ops::Range<u64>) -> Result<Vec<u8>> {
        TransferStats::add(&self.stats.gets, 1);
        let opts = options::ReadOptions {
            range: range.into(),
            ..Default::default()
        };
        match self
            .call("ranged get", path, self.op.read_options(path, opts))
            .await?
        {
            Ok(buf) => {
                let v = buf.to_vec();
                TransferStats::add(&self.stats.bytes_down, v.len() as u64);
                Ok(v)
            }
            Err(_) => Err(self.not_found(path)),
        }
    }

    /// Size, modification time and ETag of the object at `path`; `None` when there is none.
    pub async fn stat(&self, path: &str) -> Result<Option<ObjectMeta>> {
        TransferStats::add(&self.stats.lists, 1);
        Ok(self
            .call("stat", path, self.op.stat(path))
            .await?
            .ok()
            .map(|m| ObjectMeta {
                size: m.content_length(),
                modified_ms: modified_ms(&m),
                etag: m.etag().map(str::to_owned),
            }))
    }

    /// True when an object exists at `path`.
    pub async fn exists(&self, path: &str) -> Result<bool> {
        TransferStats::add(&self.stats.lists, 1);
        match self.call("stat", path, self.op.stat(path)).await? {
            Ok(_) => Ok(true),
            Err(_) => Ok(false),
        }
    }

    /// Deletes `path`; deleting a missing object is not an error.
    pub async fn delete(&self, path: &str) -> Result<()> {
        TransferStats::add(&self.stats.deletes, 1);
        match self.call("delete", path, self.op.delete(path)).await? {
            Ok(()) | Err(_) => Ok(()),
        }
    }

    /// Every object under the directory `dir` (e.g. `packs/`), recursively, with sizes and
    /// modification times.
    pub async fn list(&self, dir: &str) -> Result<Vec<ObjectEntry>> {
        TransferStats::add(&self.stats.lists, 1);
        let opts = options::ListOptions {
            recursive: true,
            ..Default::default()
        };
        let entries = match self
            .call("list", dir, self.op.list_options(dir, opts))
            .await?
        {
            Ok(e) => e,
            Err(_) => return Ok(Vec::new()),
        };
        let mut out = Vec::with_capacity(entries.len());
        for e in entries {
            if !e.metadata().is_file() {
                continue;
            }
            let mut meta = e.metadata().clone();
            if meta.last_modified().is_none() {
                // Some services list names only; one stat fills in the time.
                TransferStats::add(&self.stats.lists, 1);
                match self.call("stat", e.path(), self.op.stat(e.path())).await? {
                    Ok(m) => meta = m,
                    Err(_) => continue,
                }
            }
            out.push(ObjectEntry {
                path: e.path().trim_start_matches('/').to_owned(),
                size: meta.content_length(),
                modified_ms: modified_ms(&meta),
                etag: meta.etag().map(str::to_owned),
            });
        }
        Ok(out)
    }
}

/// An object's last modification, unix ms (0 when the remote does not say).
fn modified_ms(meta: &opendal::Metadata) -> u64 {
    meta.last_modified()
        .map(SystemTime::from)
        .and_then(|t| t.duration_since(UNIX_EPOCH).ok())
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::{ObjectStore, S3Options};
    use crate::RemoteError;

    /// A filesystem store's `get` (std, not opendal) returns each object whole, whatever its
    /// length (empty, small, past opendal's 2 MiB read step), and `None` for a missing one.
    #[tokio::test]
    async fn filesystem_get_reads_whole_objects() {
        let dir = tempfile::tempdir().unwrap();
        let store = ObjectStore::filesystem(dir.path(), Duration::from_secs(10)).unwrap();
        for (name, len) in [("empty", 0usize), ("small", 700), ("large", (5 << 20) + 3)] {
            let bytes: Vec<u8> = (0..len).map(|i| (i % 251) as u8).collect();
            let path = format!("records/ab/{name}");
            store.put(&path, bytes.clone()).await.unwrap();
            assert_eq!(store.get(&path).await.unwrap(), Some(bytes), "{name}");
        }
        assert_eq!(store.get("records/ab/missing").await.unwrap(), None);
        assert_eq!(store.stats().snapshot().gets, 4);
    }

    /// An S3 endpoint nothing listens on is unavailable (opendal marks the failed connection
    /// temporary), not a backend error.
    #[tokio::test]
    async fn a_refused_connection_is_unavailable() {
        // Port 1: nothing listens there, and outside the ephemeral range a freed port could
        // be reused from (a connection to itself).
        let port = 1;
        let store = ObjectStore::s3(
            &S3Options {
                bucket: "b".into(),
                prefix: String::new(),
                endpoint: Some(format!("http://127.0.0.1:{port}")),
                region: "us-east-1".into(),
                access_key_id: Some("k".into()),
                secret_access_key: Some("s".into()),
            },
            Duration::from_secs(10),
        )
        .unwrap();
        let err = store.get("records/ab/x").await.unwrap_err();
        assert!(matches!(err, RemoteError::Unavailable { .. }), "{err:?}");
    }
}
