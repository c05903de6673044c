//! A scale run: a store of millions of blobs, measured the way it is used.
//!
//! Builds, in process through the `pipecache::Store` API (32 puts in flight), a store of
//! `PIPECACHE_SCALE_VIDEOS` (default 10,000) synthetic videos, each four artifacts:
//! - `video:{v:05}:keyframes`: 300 unique frames plus 20 intro frames drawn from a pool of
//!   50 intros shared by every video (identical bytes: dedup stores each once);
//! - `video:{v:05}:transcript` (~4 KB) and `video:{v:05}:descriptions` (~8 KB), JSON-like;
//! - `video:{v:05}:embeddings`: 300 x 64 float32 little-endian (76,800 bytes), random.
//!
//! At the defaults that is 3,030,050 blobs (300 x videos + 50 + 3 x videos). Frames are
//! `PIPECACHE_SCALE_FRAME_BYTES` (default 1024) long, not the issue's ~20 KB: 3M x 20 KB is
//! 60 GB, more than the bench machine's free disk (~25 GB) holds, with the remote copy the
//! push makes beside it. The blob count, which index size, open, gc and verify grow with, is
//! kept. The build uses `Durability::OsBuffered` (no fsync per group commit) to save time:
//! the shape of the store is what is measured, not the build. A second store of
//! `PIPECACHE_SCALE_SMALL_VIDEOS` (default 1,000) videos from the same generator is the
//! reference the big store's open and get figures are compared with.
//!
//! Measured:
//! 1. open: `Store::open` in process (median of 3, closed in between) and, as a child
//!    process, `pipecache --dir D get video:00042:transcript -o /dev/null` (wall, peak RSS),
//!    on both stores;
//! 2. get latency in process: 20,000 gets of random transcripts and 2,000 of random keyframes
//!    artifacts (320 parts) per store, each timed alone, the two stores open side by side
//!    and taking turns (so background work lands on both alike); p50 and p99 on both
//!    stores, each store's files read once before (both fit in the page cache: the store's
//!    work is measured, not the disk's);
//! 3. gc: 1% of the videos (all four artifacts) deleted in process, then `pipecache gc
//!    --json` as a child (wall, peak RSS, phase timings from its debug log), and again with
//!    nothing to do;
//! 4. verify: `pipecache verify --json` as a child, which must report the store clean;
//! 5. sync push (unless `PIPECACHE_SCALE_PUSH=0`): `pipecache --config C sync push` of
//!    everything to an `fs-remote` tier beside the store, then of a 1% change (transcripts
//!    and descriptions of 1% of the videos put again with new content).
//!
//! Children's peak RSS is `/proc/<pid>/status` `VmHWM`, polled every 5 ms. The bench checks
//! what it measures (blob counts, get lengths, gc's dropped records, verify clean, push
//! counts) and fails rather than report a wrong store.
//!
//! Env: `PIPECACHE_SCALE_VIDEOS`, `PIPECACHE_SCALE_FRAME_BYTES`, `PIPECACHE_SCALE_SMALL_VIDEOS`
//! (counts), `PIPECACHE_SCALE_DIR=<dir>` (build the stores, remote and config in this new or
//! empty directory and keep them, instead of a temp dir), `PIPECACHE_SCALE_PUSH=0` (skip 5).
//! A markdown report is printed and written to `<target dir>/pipecache-bench/scale.md`.
//!
//! Targets (issue, figures not assertions): open < 1 s at 3M blobs; peak RSS < 1 GiB; get
//! p99 <= 1.5x the small store's; gc <= 10 s per million blobs.

// The generator and the report are modules of this bench in `benches/scale/` (named by
// path: cargo would take a `benches/*.rs` file for a bench of its own).
#[path = "scale/generator.rs"]
mod generator;
#[path = "scale/report.rs"]
mod report;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use pipecache::{Artifact, Durability, Stats, Store, StoreOptions};
use pipecache_test_support::bench::{
    Run, bounded, json, percentiles, pipecache_bin, run_child, run_child_env, target_dir, u,
    vm_hwm_kib, write_report,
};
use rand::{Rng, SeedableRng, rngs::StdRng};
use serde_json::Value;

use generator::{
    FRAMES, Generator, INTROS_PER_VIDEO, SEED_GETS, TRANSCRIPT_BYTES, UNIQUE_BLOBS_PER_VIDEO,
    changed_videos, deleted_videos, expected_blobs, key, seed,
};
use report::{Job, Results, human, markdown};

const IN_FLIGHT: usize = 32;
const PROGRESS_EVERY: usize = 1_000;
const OPENS: usize = 3;
const TRANSCRIPT_GETS: usize = 20_000;
const KEYFRAME_GETS: usize = 2_000;
/// The video whose transcript the `get` child reads (the issue's `video:00042`).
const PROBE_VIDEO: usize = 42;
const MIB: f64 = 1024.0 * 1024.0;

/// The bench's settings, from the environment.
struct Knobs {
    videos: usize,
    frame_bytes: usize,
    small_videos: usize,
    dir: Option<PathBuf>,
    push: bool,
}

fn env_count(name: &str, default: usize) -> usize {
    std::env::var(name).ok().map_or(default, |v| {
        v.replace('_', "")
            .parse()
            .unwrap_or_else(|_| panic!("{name}: a count, got {v:?}"))
    })
}

impl Knobs {
    fn from_env() -> Self {
        let knobs = Self {
            videos: env_count("PIPECACHE_SCALE_VIDEOS", 10_000),
            frame_bytes: env_count("PIPECACHE_SCALE_FRAME_BYTES", 1024),
            small_videos: env_count("PIPECACHE_SCALE_SMALL_VIDEOS", 1_000),
            dir: std::env::var_os("PIPECACHE_SCALE_DIR").map(PathBuf::from),
            push: env_count("PIPECACHE_SCALE_PUSH", 1) != 0,
        };
        // 10 videos leave room for a deleted and a changed video that differ.
        assert!(
            knobs.videos >= 10 && knobs.small_videos >= 10,
            "PIPECACHE_SCALE_VIDEOS and PIPECACHE_SCALE_SMALL_VIDEOS: at least 10"
        );
        // A frame starts with its 8-byte number; the rest keeps it incompressible.
        assert!(
            knobs.frame_bytes >= 16,
            "PIPECACHE_SCALE_FRAME_BYTES: at least 16"
        );
        knobs
    }
}

/// Options for building: no fsync per commit, nothing expires, no background GC.
fn build_options() -> StoreOptions {
    StoreOptions {
        durability: Durability::OsBuffered,
        gc_interval: None,
        default_ttl: None,
        ..StoreOptions::default()
    }
}

/// Options for measuring: the defaults, without a background GC thread working meanwhile.
fn read_options() -> StoreOptions {
    StoreOptions {
        gc_interval: None,
        ..StoreOptions::default()
    }
}

/// A store the generator built, closed again.
struct Built {
    /// Wall time of the puts.
    secs: f64,
    stats: Stats,
    index: IndexFiles,
}

/// SST, blob and WAL files of a store's RocksDB index: what an open loads and replays
/// (blob files hold the large artifact records, keyframes', outside the SSTs).
#[derive(Clone, Copy, Default)]
struct IndexFiles {
    sst: u64,
    sst_bytes: u64,
    blob: u64,
    blob_bytes: u64,
    wal: u64,
    wal_bytes: u64,
}

/// The index files of the store in `store`, counted by kind.
fn index_files(store: &Path) -> IndexFiles {
    let mut f = IndexFiles::default();
    for entry in std::fs::read_dir(store.join("index")).expect("list the index directory") {
        let entry = entry.expect("index directory entry");
        let len = entry.metadata().expect("stat index file").len();
        let name = entry.file_name();
        let name = name.to_string_lossy();
        if name.ends_with(".sst") {
            f.sst += 1;
            f.sst_bytes += len;
        } else if name.ends_with(".blob") {
            f.blob += 1;
            f.blob_bytes += len;
        } else if name.ends_with(".log") {
            f.wal += 1;
            f.wal_bytes += len;
        }
    }
    f
}

/// Puts `videos` videos into a new store in `dir`, `IN_FLIGHT` at a time, checks its blob
/// and artifact counts against the generator and closes it.
async fn build(dir: &Path, videos: usize, generator: &Generator, label: &'static str) -> Built {
    let store = Store::open(dir, build_options())
        .await
        .expect("create store");
    let done = Arc::new(AtomicUsize::new(0));
    let started = Instant::now();
    let (s, g, d) = (store.clone(), generator.clone(), done.clone());
    bounded(videos, IN_FLIGHT, move |v| {
        let (s, g, d) = (s.clone(), g.clone(), d.clone());
        async move {
            for (key, artifact) in g.video(v) {
                s.put(&key, artifact)
                    .await
                    .unwrap_or_else(|e| panic!("put {key}: {e}"));
            }
            let n = d.fetch_add(1, Ordering::Relaxed) + 1;
            if n.is_multiple_of(PROGRESS_EVERY) {
                let secs = started.elapsed().as_secs_f64();
                println!(
                    "{label}: {n} videos in {secs:.0} s ({:.0} parts/s)",
                    (n * (UNIQUE_BLOBS_PER_VIDEO + INTROS_PER_VIDEO)) as f64 / secs
                );
            }
        }
    })
    .await;
    let secs = started.elapsed().as_secs_f64();
    let stats = store.stats().await.expect("stats");
    store.close().await.expect("close store");
    assert_eq!(
        stats.blobs,
        expected_blobs(0..videos),
        "{label}: blob count differs from what the generator put"
    );
    assert_eq!(
        stats.artifacts,
        4 * videos as u64,
        "{label}: artifact count"
    );
    println!(
        "{label}: built {videos} videos in {secs:.1} s ({:.0} videos/s, {:.0} blobs/s); {} blobs, \
         {:.1} MiB on disk",
        videos as f64 / secs,
        stats.blobs as f64 / secs,
        stats.blobs,
        stats.disk_bytes as f64 / MIB
    );
    Built {
        secs,
        stats,
        index: index_files(dir),
    }
}

/// Median wall time of `OPENS` in-process opens, closing in between.
async fn open_median(dir: &Path) -> Duration {
    let mut times = Vec::with_capacity(OPENS);
    for _ in 0..OPENS {
        let t = Instant::now();
        let store = Store::open(dir, read_options()).await.expect("open store");
        times.push(t.elapsed());
        store.close().await.expect("close store");
    }
    let [median] = percentiles(&mut times, [0.5]);
    median
}

/// p50 and p99 of gets, each timed alone.
#[derive(Clone, Copy)]
struct Latency {
    transcript: [Duration; 2],
    keyframes: [Duration; 2],
}

/// p50 and p99 of `n` gets per store of the `kind` artifact of random videos (below each
/// store's video count), each read back checked by `expected` (outside the timing). The
/// stores take turns, one get each, in alternating order, so whatever else the machine does
/// meanwhile (a background flush, another process) falls on every store alike.
async fn timed_gets(
    stores: &[(Store, usize)],
    kind: &str,
    n: usize,
    rng: &mut StdRng,
    expected: impl Fn(&Artifact) -> bool,
) -> Vec<[Duration; 2]> {
    let mut times = vec![Vec::with_capacity(n); stores.len()];
    for i in 0..n {
        for turn in 0..stores.len() {
            let s = if i % 2 == 0 {
                turn
            } else {
                stores.len() - 1 - turn
            };
            let (store, videos) = &stores[s];
            let key = key(rng.random_range(0..*videos), kind);
            let t = Instant::now();
            let got = store.get(&key).await;
            times[s].push(t.elapsed());
            let artifact = got
                .unwrap_or_else(|e| panic!("get {key}: {e}"))
                .unwrap_or_else(|| panic!("{key} missed"));
            assert!(expected(&artifact), "{key} read back with the wrong shape");
        }
    }
    times
        .iter_mut()
        .map(|t| percentiles(t, [0.5, 0.99]))
        .collect()
}

/// Reads every file under `dir` once, so that both stores are timed with their files in the
/// page cache (this machine's RAM holds both; other work between the builds and the timing
/// evicts different shares of each): the gets then measure the store's work, not the disk's.
/// Returns the bytes read.
fn warm_page_cache(dir: &Path) -> u64 {
    let mut total = 0;
    for entry in std::fs::read_dir(dir).expect("list store dir") {
        let path = entry.expect("dir entry").path();
        if path.is_dir() {
            total += warm_page_cache(&path);
        } else if let Ok(mut f) = std::fs::File::open(&path) {
            total += std::io::copy(&mut f, &mut std::io::sink()).unwrap_or(0);
        }
    }
    total
}

/// Opens every store of `stores` (directory, video count) with its files in the page cache
/// and times gets of transcripts and keyframes on them, taking turns (see `timed_gets`).
async fn get_latencies(stores: &[(&Path, usize)], generator: &Generator) -> Vec<Latency> {
    for (dir, _) in stores {
        let warmed = warm_page_cache(dir);
        println!(
            "{}: {} MiB read into the page cache",
            dir.display(),
            warmed >> 20
        );
    }
    let mut opened = Vec::with_capacity(stores.len());
    for &(dir, videos) in stores {
        let store = Store::open(dir, read_options()).await.expect("open store");
        // One video read back whole against the generator: the store holds what it was
        // given.
        let probe = PROBE_VIDEO % videos;
        for (key, artifact) in generator.video(probe) {
            let got = store.get(&key).await.expect("get probe");
            assert!(got == Some(artifact), "{key} read back different bytes");
        }
        opened.push((store, videos));
    }
    let mut rng = StdRng::seed_from_u64(seed(SEED_GETS, 0, 0));
    let transcript = timed_gets(&opened, "transcript", TRANSCRIPT_GETS, &mut rng, |a| {
        a.parts.len() == 1 && a.parts[0].data.len() == TRANSCRIPT_BYTES
    })
    .await;
    let frame_bytes = generator.frame_bytes;
    let keyframes = timed_gets(&opened, "keyframes", KEYFRAME_GETS, &mut rng, |a| {
        a.parts.len() == INTROS_PER_VIDEO + FRAMES
            && a.parts.iter().all(|p| p.data.len() == frame_bytes)
    })
    .await;
    for (store, _) in opened {
        store.close().await.expect("close store");
    }
    transcript
        .into_iter()
        .zip(keyframes)
        .map(|(transcript, keyframes)| Latency {
            transcript,
            keyframes,
        })
        .collect()
}

/// Deletes every artifact of `videos`; returns the store's stats afterwards.
async fn delete_videos(dir: &Path, videos: &[usize]) -> Stats {
    let store = Store::open(dir, read_options()).await.expect("open store");
    for &v in videos {
        for kind in ["keyframes", "transcript", "descriptions", "embeddings"] {
            let key = key(v, kind);
            let removed = store.delete(&key).await.expect("delete");
            assert!(removed, "{key} was not there to delete");
        }
    }
    let stats = store.stats().await.expect("stats");
    store.close().await.expect("close store");
    stats
}

/// Puts new transcripts and descriptions for `videos` (the 1% change the second push
/// uploads).
async fn change_videos(dir: &Path, videos: &[usize]) {
    let store = Store::open(dir, build_options()).await.expect("open store");
    for &v in videos {
        store
            .put(&key(v, "transcript"), Generator::transcript(v, 1))
            .await
            .expect("put changed transcript");
        store
            .put(&key(v, "descriptions"), Generator::descriptions(v, 1))
            .await
            .expect("put changed descriptions");
    }
    store.close().await.expect("close store");
}

/// `p` as a CLI argument (the bench's own temp paths are UTF-8).
fn path_str(p: &Path) -> &str {
    p.to_str().expect("a UTF-8 path")
}

/// `pipecache --dir D get video:00042:transcript -o /dev/null` as a child.
fn child_get(bin: &Path, dir: &Path, videos: usize) -> Run {
    let key = key(PROBE_VIDEO % videos, "transcript");
    run_child(
        bin,
        &["--dir", path_str(dir), "get", &key, "-o", "/dev/null"],
        false,
    )
}

/// `gc --json` as a child with debug logging; its report and its phase timings (elapsed ms
/// at the end of each phase, from the "gc phase done" lines).
fn child_gc(bin: &Path, dir: &Path) -> (Run, Value, Vec<(String, u64)>) {
    let run = run_child_env(
        bin,
        &["--dir", path_str(dir), "gc", "--json"],
        &[("PIPECACHE_LOG", "pipecache=debug")],
        true,
    );
    let report = json(&run);
    let log = String::from_utf8_lossy(&run.stderr);
    // Lines read `... gc phase done phase="drop dead blobs" elapsed_ms=250`.
    let phases = log
        .lines()
        .filter(|l| l.contains("gc phase done"))
        .filter_map(|l| {
            let phase = l.split_once("phase=\"")?.1.split_once('"')?.0;
            let ms = l.split_once("elapsed_ms=")?.1.split_whitespace().next()?;
            Some((phase.to_owned(), ms.parse().ok()?))
        })
        .collect();
    (run, report, phases)
}

/// The config of the push: the big store as the local tier, `remote` as an fs-remote tier.
fn write_push_config(root: &Path, store: &Path, remote: &Path) -> PathBuf {
    std::fs::create_dir_all(remote).expect("create remote dir");
    let config = root.join("scale.toml");
    let text = format!(
        "[[backends]]\ntype = \"filesystem\"\npriority = 0\npath = {:?}\n\n\
         [[backends]]\ntype = \"fs-remote\"\npriority = 1\npath = {:?}\n",
        path_str(store),
        path_str(remote)
    );
    std::fs::write(&config, text).expect("write push config");
    config
}

/// `pipecache --config C sync push --json` as a child, and its report.
fn child_push(bin: &Path, config: &Path) -> (Run, Value) {
    let run = run_child(
        bin,
        &["--config", path_str(config), "sync", "push", "--json"],
        true,
    );
    let report = json(&run);
    (run, report)
}

fn main() {
    // `cargo bench` passes `--bench`; this one-shot job takes no arguments.
    let knobs = Knobs::from_env();
    let target = target_dir();
    let bin = pipecache_bin(&target, option_env!("CARGO_BIN_EXE_pipecache"));
    let tmp = tempfile::Builder::new()
        .prefix("pipecache-scale")
        .tempdir()
        .expect("temp dir");
    let root = knobs.dir.clone().unwrap_or_else(|| tmp.path().to_owned());
    let (big, small) = (root.join("big"), root.join("small"));
    for d in [&big, &small] {
        assert!(
            !d.exists(),
            "{} exists: PIPECACHE_SCALE_DIR must be a new or empty directory",
            d.display()
        );
    }
    println!(
        "scale bench: {} videos ({} blobs) and {} videos, {} B frames, in {}",
        knobs.videos,
        expected_blobs(0..knobs.videos),
        knobs.small_videos,
        knobs.frame_bytes,
        root.display()
    );
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("tokio runtime");
    let generator = Generator::new(knobs.frame_bytes);
    let built_big = rt.block_on(build(&big, knobs.videos, &generator, "big store"));
    let built_small = rt.block_on(build(&small, knobs.small_videos, &generator, "small store"));

    let open = [&big, &small].map(|d| rt.block_on(open_median(d)));
    println!("open in process: big {:?}, small {:?}", open[0], open[1]);
    let get_child =
        [(&big, knobs.videos), (&small, knobs.small_videos)].map(|(d, n)| child_get(&bin, d, n));
    let latency: [Latency; 2] = rt
        .block_on(get_latencies(
            &[(&big, knobs.videos), (&small, knobs.small_videos)],
            &generator,
        ))
        .try_into()
        .unwrap_or_else(|v: Vec<Latency>| panic!("{} latencies for 2 stores", v.len()));
    println!("gets timed");

    let mut jobs = Vec::new();
    let (gc_phases, gc_secs_per_m) = gc_and_verify(&rt, &bin, &big, &knobs, &mut jobs);
    if knobs.push {
        push(&rt, &bin, (&root, &big), &knobs, &mut jobs);
    }
    drop(rt);
    let results = Results {
        knobs,
        big: built_big,
        small: built_small,
        open,
        get_child,
        latency,
        gc_phases,
        gc_secs_per_m,
        jobs,
        bench_peak_rss_kib: vm_hwm_kib(std::process::id()).unwrap_or(0),
    };
    let report = markdown(&results);
    println!("\n{report}");
    let written = write_report(&target, "scale.md", &report);
    println!("written to {}", written.display());
    if results.knobs.dir.is_some() {
        println!("stores kept in {}", root.display());
    }
}

/// Deletes 1% of the videos, runs gc twice and verify as children, checks their reports;
/// returns gc's phase timings and its seconds per million blobs.
fn gc_and_verify(
    rt: &tokio::runtime::Runtime,
    bin: &Path,
    dir: &Path,
    knobs: &Knobs,
    jobs: &mut Vec<Job>,
) -> (Vec<(String, u64)>, f64) {
    let deleted = deleted_videos(knobs.videos);
    let kept: Vec<usize> = (0..knobs.videos)
        .filter(|v| deleted.binary_search(v).is_err())
        .collect();
    let all_blobs = expected_blobs(0..knobs.videos);
    let live_blobs = expected_blobs(kept.iter().copied());
    let dead = all_blobs - live_blobs;
    let stats = rt.block_on(delete_videos(dir, &deleted));
    assert_eq!(stats.blobs, live_blobs, "live blobs after deleting");
    assert_eq!(stats.dead_blobs, dead, "dead blobs after deleting");

    let (gc1, r1, phases) = child_gc(bin, dir);
    let dropped = u(&r1, &["dead_blobs_dropped"]) + u(&r1, &["compaction", "dead_blobs_dropped"]);
    assert_eq!(
        (u(&r1, &["expired"]), u(&r1, &["evicted"]), dropped),
        (0, 0, dead),
        "gc: expected no expiry or eviction and {dead} dead blob records dropped: {r1}"
    );
    let secs_per_m = gc1.secs / (all_blobs as f64 / 1e6);
    jobs.push(Job {
        name: format!(
            "`gc` ({} of {} videos deleted: {} artifacts, {dead} dead blobs)",
            deleted.len(),
            knobs.videos,
            4 * deleted.len()
        ),
        result: format!(
            "{dropped} dead blob records dropped, {} chunks compacted ({} blobs moved), \
             {:.1} MiB reclaimed",
            u(&r1, &["compaction", "chunks_compacted"]),
            u(&r1, &["compaction", "blobs_moved"]),
            u(&r1, &["bytes_reclaimed"]) as f64 / MIB
        ),
        run: gc1,
    });
    let (gc2, r2, _) = child_gc(bin, dir);
    let work = u(&r2, &["expired"])
        + u(&r2, &["evicted"])
        + u(&r2, &["dead_blobs_dropped"])
        + u(&r2, &["compaction", "chunks_compacted"]);
    assert_eq!(work, 0, "a second gc found work: {r2}");
    jobs.push(Job {
        name: "`gc` again (nothing to do)".into(),
        result: "no work".into(),
        run: gc2,
    });

    let verify = run_child(bin, &["--dir", path_str(dir), "verify", "--json"], true);
    let v = json(&verify);
    let damage: u64 = [
        "damaged_blobs",
        "damaged_keys",
        "refcount_mismatches",
        "live_bytes_mismatches",
        "missing_chunk_files",
        "missing_record_frames",
        "orphan_chunk_files",
    ]
    .iter()
    .map(|f| u(&v, &[f]))
    .sum();
    assert!(
        damage == 0 && v["index_damage"].is_null(),
        "verify: not clean: {v}"
    );
    let counts = (u(&v, &["artifacts_checked"]), u(&v, &["blobs_checked"]));
    assert_eq!(counts, (4 * kept.len() as u64, live_blobs), "verify counts");
    jobs.push(Job {
        name: "`verify` (reads every byte)".into(),
        result: format!(
            "clean: {} artifacts, {} blobs, {:.1} MiB read",
            counts.0,
            counts.1,
            u(&v, &["bytes_checked"]) as f64 / MIB
        ),
        run: verify,
    });
    (phases, secs_per_m)
}

/// Pushes everything to an fs-remote tier, changes 1% of the videos, pushes again.
fn push(
    rt: &tokio::runtime::Runtime,
    bin: &Path,
    (root, dir): (&Path, &Path),
    knobs: &Knobs,
    jobs: &mut Vec<Job>,
) {
    let config = write_push_config(root, dir, &root.join("remote"));
    let live = 4 * (knobs.videos - deleted_videos(knobs.videos).len()) as u64;
    let (first, r1) = child_push(bin, &config);
    assert_eq!(u(&r1, &["pushed"]), live, "first push: {r1}");
    let rate = |run: &Run, r: &Value| {
        format!(
            "{} artifacts, {} blobs ({} reused) in {} packs, {} up: {:.0} blobs/s, \
             {:.1} MiB/s",
            u(r, &["pushed"]),
            u(r, &["blobs_uploaded"]),
            u(r, &["blobs_reused"]),
            u(r, &["packs"]),
            human(u(r, &["bytes_up"])),
            u(r, &["blobs_uploaded"]) as f64 / run.secs,
            u(r, &["bytes_up"]) as f64 / MIB / run.secs
        )
    };
    jobs.push(Job {
        name: "`sync push` (everything, to fs-remote)".into(),
        result: rate(&first, &r1),
        run: first,
    });

    let changed = changed_videos(knobs.videos);
    rt.block_on(change_videos(dir, &changed));
    let (second, r2) = child_push(bin, &config);
    let want = 2 * changed.len() as u64;
    assert_eq!(
        (u(&r2, &["pushed"]), u(&r2, &["already_remote"])),
        (want, live - want),
        "second push: {r2}"
    );
    jobs.push(Job {
        name: format!(
            "`sync push` (1% change: {} videos' transcript + descriptions)",
            changed.len()
        ),
        result: rate(&second, &r2),
        run: second,
    });
}
