//! Multi-tier managers over the real servers of [`crate::servers`].

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use pipecache::config::{ByteSize, RemoteCommon, TimeSpan};
use pipecache::tier::{BackendConfig, CacheConfig, WritePolicy};
use pipecache::{Artifact, CacheManager, ManualClock, StoreOptions};

use crate::random_bytes;
use crate::servers::{S3_ACCESS_KEY, S3_REGION, S3_SECRET_KEY};

/// A bare fs-remote pack tier named `name` over the directory `root` (the builder API's
/// way in, and for layers tested alone): default compression and grace, 5 s deadline.
pub fn fs_pack_tier(name: &str, root: &Path) -> pipecache::tier::PackTier {
    let store = pipecache_remote::ObjectStore::filesystem(root, std::time::Duration::from_secs(5))
        .expect("an fs-remote directory");
    pipecache::tier::PackTier::new(
        name,
        pipecache::tier::BackendKind::FsRemote,
        store,
        pipecache::CompressionPolicy::DEFAULT,
        Arc::new(pipecache::SystemClock),
        pipecache::tier::DEFAULT_GRACE,
    )
}

/// Waits until tier `tier` of `m` has counted `failures` errors or timeouts (a write-back
/// worker against a down tier: its retries back off from 0.1 s, doubling, so after seven
/// failures the next attempt is 6.4 s away). Panics after 60 s.
pub async fn wait_for_tier_failures(m: &CacheManager, tier: usize, failures: u64) {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    loop {
        let s = &m.tier_stats()[tier];
        if s.errors + s.timeouts >= failures {
            return;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "tier {tier} failed fewer than {failures} times in 60 s: {s:?}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    }
}

/// `backend` (a remote one) with a write-back queue of `capacity` entries.
pub fn with_queue_capacity(mut backend: BackendConfig, capacity: u64) -> BackendConfig {
    backend
        .remote_mut()
        .expect("a remote backend")
        .queue_capacity = Some(capacity);
    backend
}

/// `backend` (a remote one) at `priority` (lower is asked first; the local tier is 0).
pub fn with_priority(mut backend: BackendConfig, priority: u32) -> BackendConfig {
    backend.remote_mut().expect("a remote backend").priority = priority;
    backend
}

/// `backend` (a remote one) with a deadline of `timeout` per call.
pub fn with_timeout(mut backend: BackendConfig, timeout: Duration) -> BackendConfig {
    backend.remote_mut().expect("a remote backend").timeout = Some(TimeSpan(timeout));
    backend
}

/// The settings of a remote test tier at priority 1.
fn remote_common(policy: WritePolicy, timeout: Option<Duration>) -> RemoteCommon {
    RemoteCommon {
        name: None,
        priority: 1,
        write_policy: policy,
        timeout: timeout.map(TimeSpan),
        queue_capacity: None,
    }
}

/// An `s3` backend at `endpoint`/`bucket` with test credentials and a 10 s deadline: moto
/// can take seconds for a multi-MB pack on a loaded machine, and the outages tests make are
/// closed connections, which fail at once (deadline tests set their own).
pub fn s3_backend(endpoint: &str, bucket: &str, policy: WritePolicy) -> BackendConfig {
    BackendConfig::S3 {
        remote: remote_common(policy, Some(Duration::from_secs(10))),
        bucket: bucket.into(),
        prefix: "cache".into(),
        endpoint: Some(endpoint.into()),
        region: Some(S3_REGION.into()),
        access_key_id: Some(S3_ACCESS_KEY.into()),
        secret_access_key: Some(S3_SECRET_KEY.into()),
        gc_grace: None,
    }
}

/// An `s3` backend on an [`S3sServer`](crate::servers::S3sServer) (signature-checking
/// S3 server), its default bucket, with the credentials it accepts.
pub fn s3s_backend(server: &crate::servers::S3sServer, policy: WritePolicy) -> BackendConfig {
    BackendConfig::S3 {
        remote: remote_common(policy, Some(Duration::from_secs(10))),
        bucket: crate::servers::S3_DEFAULT_BUCKET.into(),
        prefix: "cache".into(),
        endpoint: Some(server.endpoint()),
        region: Some(S3_REGION.into()),
        access_key_id: Some(crate::servers::S3S_ACCESS_KEY.into()),
        secret_access_key: Some(crate::servers::S3S_SECRET_KEY.into()),
        gc_grace: None,
    }
}

/// A `redis` backend at `url`, priority 1 (in front of S3 at 2 when both are used).
pub fn redis_backend(url: &str, policy: WritePolicy) -> BackendConfig {
    BackendConfig::Redis {
        remote: remote_common(policy, Some(Duration::from_secs(3))),
        url: url.into(),
        max_object_size: Some(ByteSize(64 << 10)),
    }
}

/// An fs-remote tier (an opendal fs directory, as on a mounted share) at `path`.
pub fn fs_remote_backend(path: &Path, policy: WritePolicy) -> BackendConfig {
    BackendConfig::FsRemote {
        remote: remote_common(policy, None),
        path: path.to_owned(),
        gc_grace: None,
    }
}

/// Writes a `pipecache --config` file at `path` with `backends` (e.g. [`s3_backend`]), so
/// the command sees the same tiers as a manager opened with [`open_manager`].
pub fn write_cli_config(path: &Path, backends: Vec<BackendConfig>) {
    let config = CacheConfig {
        backends,
        ..CacheConfig::default()
    };
    let text = toml::to_string(&config).expect("serialize the configuration as TOML");
    std::fs::write(path, text).unwrap_or_else(|e| panic!("write config {}: {e}", path.display()));
}

/// Store options for a tiered test store: created on open, no background GC, and the
/// given clock (tests that move time pass a [`ManualClock`]).
pub fn tier_options(clock: Option<Arc<ManualClock>>) -> StoreOptions {
    let mut o = StoreOptions {
        gc_interval: None,
        ..StoreOptions::default()
    };
    if let Some(c) = clock {
        o.clock = c;
    }
    o
}

/// Opens a manager with its local store in `dir` and `backends` behind it. Without a
/// memory tier: these tests read the tiers behind it, and a hit in memory would answer
/// before them (the memory tier has tests of its own).
pub async fn open_manager(
    dir: &Path,
    backends: Vec<BackendConfig>,
    clock: Option<Arc<ManualClock>>,
) -> CacheManager {
    let config = CacheConfig {
        backends,
        memory_size: Some(pipecache::config::FreeSpace(0)),
        ..CacheConfig::default()
    };
    CacheManager::open(&config, dir, tier_options(clock), "test")
        .await
        .expect("open tiered store")
}

/// [`open_manager`] with [`crate::SlashKeys`] classifying the keys (`cheap/<video>/...`,
/// `dear/<video>/...`, the rest `other`), for tests of what is counted per kind.
pub async fn open_classified_manager(dir: &Path, backends: Vec<BackendConfig>) -> CacheManager {
    let config = CacheConfig {
        backends,
        memory_size: Some(pipecache::config::FreeSpace(0)),
        ..CacheConfig::default()
    };
    let options = StoreOptions {
        key_classifier: Some(Arc::new(crate::SlashKeys)),
        ..tier_options(None)
    };
    CacheManager::open(&config, dir, options, "test")
        .await
        .expect("open tiered store")
}

/// A keyframes-like artifact: `frames` unique ~`frame_len`-byte images plus the `shared`
/// ones (an intro every video has).
pub fn frames_artifact(seed: u64, frames: usize, frame_len: usize, shared: &[Vec<u8>]) -> Artifact {
    let mut a = Artifact::default().with_kind("keyframes");
    for (i, s) in shared.iter().enumerate() {
        a = a.with_part(format!("intro{i:03}.jpg"), s.clone());
    }
    for i in 0..frames {
        a = a.with_part(
            format!("frame{i:04}.jpg"),
            random_bytes(seed * 10_000 + i as u64, frame_len),
        );
    }
    a.with_meta("seed", seed.to_string())
}

/// Real wall-clock now, unix ms (remote object times come from the servers' clocks).
pub fn wall_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock after 1970")
        .as_millis() as u64
}

/// [`open_manager`] on a fresh temporary directory, returned with it (keep it alive).
pub async fn open_temp_manager(
    backends: Vec<BackendConfig>,
    clock: Option<Arc<ManualClock>>,
) -> (tempfile::TempDir, CacheManager) {
    let dir = tempfile::tempdir().expect("temp dir");
    let m = open_manager(dir.path(), backends, clock).await;
    (dir, m)
}

/// A manager in `dir` with one tier on `s3`'s bucket, reached directly or through `proxy`.
pub async fn open_s3_manager(
    dir: &Path,
    s3: &crate::servers::S3Server,
    proxy: Option<&crate::servers::TcpProxy>,
    policy: WritePolicy,
) -> CacheManager {
    let endpoint = proxy.map_or_else(|| s3.endpoint(), |p| p.endpoint());
    open_manager(dir, vec![s3_backend(&endpoint, s3.bucket(), policy)], None).await
}

/// Another machine: a fresh local tier in front of `s3`'s bucket directly (no proxy),
/// write-through.
pub async fn open_s3_reader(s3: &crate::servers::S3Server) -> (tempfile::TempDir, CacheManager) {
    let dir = tempfile::tempdir().expect("temp dir");
    let m = open_s3_manager(dir.path(), s3, None, WritePolicy::WriteThrough).await;
    (dir, m)
}

/// What another machine reads from the Redis tier at `url` (a fresh manager, empty local
/// tier): each key's artifact is `expected` (`None`: absent), else the test fails with `why`.
pub async fn assert_redis_holds(url: &str, expected: &[(&str, Option<Artifact>, &str)]) {
    let (_dir, other) =
        open_temp_manager(vec![redis_backend(url, WritePolicy::WriteThrough)], None).await;
    for (key, want, why) in expected {
        assert_eq!(&other.get(key).await.unwrap(), want, "{key}: {why}");
    }
    other.close().await.unwrap();
}
