//! Remote tiers against real servers on loopback (moto and s3s-fs for S3, redis-server),
//! started by the bench itself.
//!
//! Setup: a local store of synthetic videos (`PIPECACHE_BENCH_REMOTE_MB`, default 256 MB of
//! artifacts; the issue's figure is 1024): per video a keyframe set of 60 unique ~25 KB frames
//! plus a 10-frame intro every video shares, a 50 KB transcript, a 100 KB description set and
//! 120 KB of embeddings.
//!
//! Measured, wall-clock, each with a baseline from the same run:
//! - `sync push` of the whole store to S3: MB/s, PUT requests per frame (target < 0.1);
//!   baseline: the same bytes PUT as 64 MiB objects straight through the transport, right
//!   after each of three pushes into empty prefixes (the median ratio, and each round's);
//! - `sync push` again with the remote up to date; baseline: the first push;
//! - `sync pull` of everything into an empty store: MB/s; baseline: those objects read back;
//! - those three against moto and again against s3s-fs (both started here);
//! - read-through latency of a 50 KB artifact (local miss, remote hit, promotion off the
//!   critical path), p50/p99 over 200 reads, from Redis and from S3; baseline: a local hit;
//! - GET requests per artifact of the pull;
//! - a 50 KB put with a Redis tier, write-through and write-back; baseline: a local-only put
//!   plus a bare Redis tier put (the queue entry's cost is the rest).
//!
//! `PIPECACHE_BENCH_PACK_MB` sets the push batch (pack) size; default 16 MiB.
//!
//! Prints a markdown table and writes it to `<target dir>/pipecache-bench/remote.md`.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use std::sync::Arc;

use pipecache::tier::{
    BackendConfig, CacheBackend, CacheConfig, PushReport, RedisTier, WritePolicy,
};
use pipecache::{Artifact, CacheManager, CompressionPolicy, StoredArtifact, SystemClock};
use pipecache_remote::RedisStore;
use pipecache_test_support::bench::percentiles;
use pipecache_test_support::servers::{RedisServer, S3Server, S3sServer};
use pipecache_test_support::tiers::{
    frames_artifact, open_manager, redis_backend, s3_backend, s3s_backend, tier_options,
};
use pipecache_test_support::{json_like, random_bytes};

const FRAMES: usize = 60;
const INTRO: usize = 10;
const FRAME_LEN: usize = 25_000;

fn video(v: u64, intro: &[Vec<u8>]) -> Vec<(String, Artifact)> {
    let fp = format!("s1-{v:016x}");
    let kf = frames_artifact(v, FRAMES, FRAME_LEN, intro);
    vec![
        (
            format!("video:{fp}:keyframes:max_frames=3000:threshold=0.999"),
            kf,
        ),
        (
            format!("video:{fp}:transcript:model_size=base"),
            Artifact::single(json_like(v * 3, 50_000)).with_kind("transcript"),
        ),
        (
            format!("video:{fp}:descriptions:model=Qwen2-VL"),
            Artifact::single(json_like(v * 3 + 1, 100_000)).with_kind("descriptions"),
        ),
        (
            format!("video:{fp}:embeddings:model=clip"),
            Artifact::single(random_bytes(v * 3 + 2, 120_000)).with_kind("embeddings"),
        ),
    ]
}

fn mbps(bytes: u64, d: Duration) -> f64 {
    bytes as f64 / 1e6 / d.as_secs_f64()
}

async fn latencies(m: &CacheManager, key: &str, fresh: bool, n: usize) -> Vec<Duration> {
    let mut out = Vec::with_capacity(n);
    for _ in 0..n {
        if fresh {
            // Make it a local miss again so every read goes through to the remote tier.
            m.wait_promotions().await;
            m.local().delete(key).await.unwrap();
        }
        let t = Instant::now();
        assert!(m.get(key).await.unwrap().is_some());
        out.push(t.elapsed());
    }
    out
}

/// p50 of a put of a fresh 50 KB transcript, `n` times, on `m`.
async fn put_p50(m: &CacheManager, seed: u64, n: u64) -> Duration {
    let mut lat = Vec::with_capacity(n as usize);
    for i in 0..n {
        let art = Artifact::single(json_like(seed + i, 50_000)).with_kind("transcript");
        let key = format!("video:s1-{:016x}:transcript:model_size=base", seed + i);
        let t = Instant::now();
        m.put(&key, art).await.unwrap();
        lat.push(t.elapsed());
    }
    let [p50] = percentiles(&mut lat, [0.5]);
    p50
}

/// What a put costs with a Redis tier behind the local one, per write policy. Baseline: a
/// local-only put plus a bare Redis tier's put of the same artifact (what write-through must
/// at least do); the ratio is the queue entry's share (committed with the local change,
/// removed after the upload).
async fn put_costs(redis: &RedisServer, dir: &std::path::Path) -> Vec<String> {
    let n = 300;
    let local = open_manager(&dir.join("local"), vec![], None).await;
    let local_p50 = put_p50(&local, 10_000_000, n).await;
    local.close().await.unwrap();
    let store =
        RedisStore::new(&redis.url(), RedisTier::KEY_PREFIX, Duration::from_secs(5)).unwrap();
    let bare = RedisTier::new(
        "bare",
        store,
        1 << 20,
        CompressionPolicy::DEFAULT,
        Arc::new(SystemClock),
    );
    let mut lat = Vec::with_capacity(n as usize);
    for i in 0..n {
        let item = StoredArtifact {
            artifact: Artifact::single(json_like(20_000_000 + i, 50_000)).with_kind("transcript"),
            created_ms: 0,
            expires_ms: None,
        };
        let t = Instant::now();
        bare.put(&format!("bare{i}"), &item).await.unwrap();
        lat.push(t.elapsed());
    }
    let [bare_p50] = percentiles(&mut lat, [0.5]);
    let baseline = local_p50 + bare_p50;
    let mut rows = Vec::new();
    for (policy, seed) in [
        (WritePolicy::WriteThrough, 30_000_000),
        (WritePolicy::WriteBack, 40_000_000),
    ] {
        let m = open_manager(
            &dir.join(format!("{policy:?}")),
            vec![redis_backend(&redis.url(), policy)],
            None,
        )
        .await;
        let p50 = put_p50(&m, seed, n).await;
        m.drain_queues(Duration::from_secs(60)).await.unwrap();
        m.close().await.unwrap();
        rows.push(format!(
            "| 50 KB put, local + Redis {policy:?} | p50 {:.0} us | | local put p50 {:.0} us + bare Redis put p50 {:.0} us | {:.2} |",
            p50.as_secs_f64() * 1e6,
            local_p50.as_secs_f64() * 1e6,
            bare_p50.as_secs_f64() * 1e6,
            p50.as_secs_f64() / baseline.as_secs_f64(),
        ));
    }
    rows
}

/// The local store the remote measurements push from.
struct Corpus {
    dir: PathBuf,
    logical: u64,
    artifacts: u64,
    frames: u64,
    target_mb: u64,
}

/// What [`push_and_pull`] reports besides its table rows.
struct PushPull {
    push: PushReport,
    pull_gets: u64,
    pull_lists: u64,
}

/// How many times the first push is measured, each into an empty prefix of the bucket with
/// its own baseline right after it: single readings here move by up to 2x with the
/// machine's load (the two servers share its two cores with the push), so the table gives
/// the median ratio and every round's.
const PUSH_ROUNDS: usize = 3;

/// `backend` (an `s3` one) with its objects under `prefix` instead.
fn under_prefix(backend: &BackendConfig, prefix: &str) -> BackendConfig {
    let mut b = backend.clone();
    if let BackendConfig::S3 { prefix: p, .. } = &mut b {
        *p = prefix.into();
    }
    b
}

/// Writes every dirty page back to disk (`sync`), so a measurement does not pay for the
/// writes of the one before it: the servers write objects without fsync, and the kernel's
/// writeback of a previous round's 256 MB (or a previous run's gigabytes) halved the next
/// push here.
fn write_back_dirty_pages() {
    let status = std::process::Command::new("sync")
        .status()
        .expect("run sync");
    assert!(status.success(), "sync failed");
}

/// One round of the first push: the push, then the same number of bytes as 64 MiB PUTs
/// straight through the transport.
struct PushRound {
    push: PushReport,
    time: Duration,
    raw_bytes: u64,
    raw_put: Duration,
}

impl PushRound {
    fn ratio(&self) -> f64 {
        mbps(self.push.bytes_up, self.time) / mbps(self.raw_bytes, self.raw_put)
    }
}

/// Pushes the whole corpus to `backend` ([`PUSH_ROUNDS`] times, each into an empty prefix,
/// each followed by its baseline: the bare transport's 64 MiB PUTs), then again with the
/// remote up to date, measures the transport's 64 MiB GETs, and pulls everything into an
/// empty store at `pull_dir`.
async fn push_and_pull(
    corpus: &Corpus,
    server: &str,
    backend: BackendConfig,
    pull_dir: &std::path::Path,
    pack_bytes: Option<u64>,
) -> (PushPull, Vec<String>) {
    let Corpus {
        logical,
        artifacts,
        frames,
        target_mb,
        ..
    } = *corpus;
    let chunk = vec![0x5a_u8; 64 << 20];
    let round_backend = |round: usize| under_prefix(&backend, &format!("cache-{round}"));
    let mut rounds = Vec::with_capacity(PUSH_ROUNDS);
    for round in 0..PUSH_ROUNDS {
        let a = open_manager(&corpus.dir, vec![round_backend(round)], None).await;
        write_back_dirty_pages();
        let t = Instant::now();
        let push = a.sync_push(None, pack_bytes, &|_, _| {}).await.unwrap();
        let time = t.elapsed();
        assert_eq!(push.pushed, artifacts, "{push:?}");
        let raw = a.remote_packs(None).unwrap().store().clone();
        let objects = push.bytes_up.div_ceil(chunk.len() as u64);
        write_back_dirty_pages();
        let t = Instant::now();
        for i in 0..objects {
            raw.put(&format!("baseline/{i}"), chunk.clone())
                .await
                .unwrap();
        }
        let raw_put = t.elapsed();
        for i in 0..objects {
            raw.delete(&format!("baseline/{i}")).await.unwrap();
        }
        a.close().await.unwrap();
        rounds.push(PushRound {
            push,
            time,
            raw_bytes: objects * chunk.len() as u64,
            raw_put,
        });
    }
    // Again, with the last round's remote up to date: decided from records alone.
    let last = round_backend(PUSH_ROUNDS - 1);
    let a = open_manager(&corpus.dir, vec![last.clone()], None).await;
    let t = Instant::now();
    let again = a.sync_push(None, pack_bytes, &|_, _| {}).await.unwrap();
    let again_time = t.elapsed();
    assert_eq!(again.already_remote, artifacts, "{again:?}");
    // The GET baseline: the same number of bytes as 64 MiB objects.
    let raw = a.remote_packs(None).unwrap().store().clone();
    let objects = rounds[0].raw_bytes / chunk.len() as u64;
    for i in 0..objects {
        raw.put(&format!("baseline/{i}"), chunk.clone())
            .await
            .unwrap();
    }
    let t = Instant::now();
    for i in 0..objects {
        raw.get(&format!("baseline/{i}")).await.unwrap().unwrap();
    }
    let raw_get = t.elapsed();
    let raw_bytes = objects * chunk.len() as u64;
    for i in 0..objects {
        raw.delete(&format!("baseline/{i}")).await.unwrap();
    }
    a.close().await.unwrap();

    // Pull into an empty store.
    let b = open_manager(pull_dir, vec![last], None).await;
    let requests = || b.remote_packs(None).unwrap().store().stats().snapshot();
    let before = requests();
    let t = Instant::now();
    let pull = b.sync_pull(None, "", &|_, _| {}).await.unwrap();
    let pull_time = t.elapsed();
    assert_eq!(pull.pulled, artifacts, "{pull:?}");
    let after = requests();
    b.close().await.unwrap();

    // The round with the median ratio stands for the push; every round's ratio is listed.
    let mut by_ratio: Vec<&PushRound> = rounds.iter().collect();
    by_ratio.sort_by(|x, y| x.ratio().total_cmp(&y.ratio()));
    let median = by_ratio[by_ratio.len() / 2];
    let all: Vec<String> = rounds.iter().map(|r| format!("{:.2}", r.ratio())).collect();
    let rows = vec![
        format!(
            "| {server}: push {target_mb} MB ({artifacts} artifacts, {frames} keyframes), median of {PUSH_ROUNDS} | {:.1} s | {:.0} MB/s logical | {:.0} MB/s (64 MiB PUTs) | {:.2} (rounds: {}) |",
            median.time.as_secs_f64(),
            mbps(logical, median.time),
            mbps(median.raw_bytes, median.raw_put),
            median.ratio(),
            all.join(", "),
        ),
        format!(
            "| {server}: push again, remote up to date | {:.2} s | {:.0} artifacts/s | first push {:.1} s | {:.3} |",
            again_time.as_secs_f64(),
            artifacts as f64 / again_time.as_secs_f64(),
            median.time.as_secs_f64(),
            again_time.as_secs_f64() / median.time.as_secs_f64(),
        ),
        format!(
            "| {server}: pull everything | {:.1} s | {:.0} MB/s logical | {:.0} MB/s (64 MiB GETs) | {:.2} |",
            pull_time.as_secs_f64(),
            mbps(logical, pull_time),
            mbps(raw_bytes, raw_get),
            mbps(pull.bytes_down, pull_time) / mbps(raw_bytes, raw_get),
        ),
    ];
    let report = PushPull {
        push: rounds.swap_remove(0).push,
        pull_gets: after.gets - before.gets,
        pull_lists: after.lists - before.lists,
    };
    (report, rows)
}

fn main() {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(run());
}

async fn run() {
    let target_mb: u64 = std::env::var("PIPECACHE_BENCH_REMOTE_MB")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(256);
    let s3 = S3Server::start();
    let redis = RedisServer::start();
    let work = tempfile::tempdir().unwrap();
    let s3b = || s3_backend(&s3.endpoint(), s3.bucket(), WritePolicy::WriteBack);

    // Setup: the local store, no remote traffic.
    let local = open_manager(&work.path().join("a"), vec![], None).await;
    let intro: Vec<Vec<u8>> = (0..INTRO as u64)
        .map(|i| random_bytes(7_000_000 + i, FRAME_LEN))
        .collect();
    let (mut logical, mut frames, mut artifacts, mut v) = (0u64, 0u64, 0u64, 0u64);
    while logical < target_mb * 1_000_000 {
        for (k, a) in video(v, &intro) {
            logical += a.logical_size();
            if a.kind == "keyframes" {
                frames += a.parts.len() as u64;
            }
            artifacts += 1;
            local.put(&k, a).await.unwrap();
        }
        v += 1;
    }
    local.close().await.unwrap();
    let mut rows = Vec::new();

    let pack_bytes = std::env::var("PIPECACHE_BENCH_PACK_MB")
        .ok()
        .and_then(|s| s.parse::<u64>().ok())
        .map(|mb| mb << 20);
    let store = Corpus {
        dir: work.path().join("a"),
        logical,
        artifacts,
        frames,
        target_mb,
    };
    // The same store pushed to and pulled from both servers: moto (Python, the reference
    // implementation of the protocol's semantics) and s3s-fs (Rust, objects as files).
    let (push, moto_rows) = push_and_pull(
        &store,
        "moto",
        s3b(),
        &work.path().join("b-moto"),
        pack_bytes,
    )
    .await;
    rows.extend(moto_rows);
    let s3s = S3sServer::start();
    let (_, s3s_rows) = push_and_pull(
        &store,
        "s3s-fs",
        s3s_backend(&s3s, WritePolicy::WriteBack),
        &work.path().join("b-s3s"),
        pack_bytes,
    )
    .await;
    rows.extend(s3s_rows);
    let pull_gets = push.pull_gets;
    let pull_lists = push.pull_lists;
    let push = push.push;
    let puts_per_frame = push.put_requests as f64 / frames as f64;

    // Read-through latency of a 50 KB transcript.
    let key = "video:s1-00000000000000aa:transcript:model_size=base";
    let art = Artifact::single(json_like(424242, 50_000)).with_kind("transcript");
    let writer = CacheManager::open(
        &CacheConfig {
            backends: vec![
                redis_backend(&redis.url(), WritePolicy::WriteThrough),
                s3_backend(&s3.endpoint(), s3.bucket(), WritePolicy::WriteThrough),
            ],
            ..CacheConfig::default()
        },
        &work.path().join("w"),
        tier_options(None),
        "bench",
    )
    .await
    .unwrap();
    // The redis backend's default test cap is 64 KiB: the 50 KB transcript fits.
    writer.put(key, art).await.unwrap();
    writer.close().await.unwrap();
    let n = 200;
    let via_redis = open_manager(
        &work.path().join("r"),
        vec![redis_backend(&redis.url(), WritePolicy::WriteThrough)],
        None,
    )
    .await;
    let redis_lat = latencies(&via_redis, key, true, n).await;
    let local_lat = latencies(&via_redis, key, false, n).await;
    via_redis.close().await.unwrap();
    let via_s3 = open_manager(&work.path().join("s"), vec![s3b()], None).await;
    let s3_lat = latencies(&via_s3, key, true, n).await;
    via_s3.close().await.unwrap();
    let [local_p50] = percentiles(&mut local_lat.clone(), [0.5]);
    for (name, lat) in [
        ("Redis", redis_lat),
        ("S3", s3_lat),
        ("local hit (baseline)", local_lat),
    ] {
        let mut lat = lat;
        let [p50, p99] = percentiles(&mut lat, [0.5, 0.99]);
        rows.push(format!(
            "| 50 KB read-through from {name} | p50 {:.0} us | p99 {:.0} us | | {:.0}x local |",
            p50.as_secs_f64() * 1e6,
            p99.as_secs_f64() * 1e6,
            p50.as_secs_f64() / local_p50.as_secs_f64()
        ));
    }

    rows.extend(put_costs(&redis, &work.path().join("p")).await);

    let mut table = String::from(
        "| workload | time | throughput | baseline (same run) | ratio |\n|---|---|---|---|---|\n",
    );
    for r in &rows {
        table.push_str(r);
        table.push('\n');
    }
    table.push_str(&format!(
        "\nPUT requests: {} for {frames} keyframes in {artifacts} artifacts = {puts_per_frame:.4} per frame (target < 0.1); {} packs, {} blobs uploaded, {} reused (shared intro).\n",
        push.put_requests, push.packs, push.blobs_uploaded, push.blobs_reused
    ));
    table.push_str(&format!(
        "GET requests of the pull: {pull_gets} for {artifacts} artifacts = {:.2} per artifact, plus {pull_lists} list requests (index objects found by listing).\n",
        pull_gets as f64 / artifacts as f64
    ));
    println!("{table}");
    let out = PathBuf::from(std::env::var("CARGO_TARGET_DIR").unwrap_or_else(|_| "target".into()))
        .join("pipecache-bench");
    std::fs::create_dir_all(&out).unwrap();
    std::fs::write(out.join("remote.md"), &table).unwrap();
    assert!(puts_per_frame < 0.1, "more than one PUT per 10 frames");
}
