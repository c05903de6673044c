//! Store put/get throughput against two baselines measured in the same run:
//! - `fs`: one file per blob, written with std::fs + fsync + rename, read back + blake3 check;
//! - `cacache` 13 (tokio runtime, mmap; SHA-256 integrity, no fsync);
//! - `foyer` 0.22's hybrid cache: a 16 MiB memory tier (so most gets reach its disk) over a
//!   block engine in the bench's directory, written on insertion, flush buffers sized to
//!   keep every insert; no fsync, no integrity check on read; a put round ends with
//!   `close()`, which waits for its disk writes;
//! - `pipecache, lz4`: the store with LZ4 instead of zstd, on the JSON-like workload only;
//! - for puts only, `disk`: every blob appended to one file by one thread, one fsync at the
//!   end: what this disk writes sequentially, with no per-blob cost at all.
//!
//! Workloads: 1,000 x 50 KB incompressible, 1,000 x 50 KB JSON-like, 100 x 10 MB incompressible.
//! Puts run 32 in flight for every system (pipecache group-commits them); gets run one at a
//! time. At the end a markdown table of medians and ratios is printed and written to
//! `target/pipecache-bench/store.md` (copy figures into docs/performance.md).
//!
//! `PIPECACHE_BENCH_QUICK=1` runs only the 50 KB workloads.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use criterion::{Criterion, Throughput};
use pipecache::{Artifact, Store, StoreOptions};
use pipecache_test_support::{json_like, random_bytes};
use tokio::runtime::Runtime;

const IN_FLIGHT: usize = 32;

#[derive(Clone, Copy)]
struct Workload {
    name: &'static str,
    count: usize,
    size: usize,
    json: bool,
}

fn data(w: Workload, round: u64) -> Vec<Vec<u8>> {
    (0..w.count as u64)
        .map(|i| {
            let seed = round * 1_000_000 + i;
            if w.json {
                json_like(seed, w.size)
            } else {
                random_bytes(seed, w.size)
            }
        })
        .collect()
}

fn count_files(dir: &Path) -> u64 {
    std::fs::read_dir(dir)
        .map(|rd| {
            rd.filter_map(|e| e.ok())
                .map(|e| {
                    let p = e.path();
                    if p.is_dir() { count_files(&p) } else { 1 }
                })
                .sum()
        })
        .unwrap_or(0)
}

#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Debug)]
enum System {
    Pipecache,
    Fs,
    Cacache,
    Foyer,
    Disk,
    /// pipecache with direct writes off: every blob through the writer thread's open chunk
    /// (the design before direct writes), for the 10 MB puts.
    PipecacheOneWriter,
    /// pipecache compressing with LZ4 instead of zstd (`compression_codec = "lz4"`, the
    /// pipeline's codec for transcripts and descriptions), for the JSON-like workload.
    PipecacheLz4,
}

/// Systems the puts are measured on (`Disk` has no gets: it keeps no index).
const PUT_SYSTEMS: [System; 7] = [
    System::Pipecache,
    System::PipecacheOneWriter,
    System::PipecacheLz4,
    System::Fs,
    System::Cacache,
    System::Foyer,
    System::Disk,
];

impl System {
    fn name(self) -> &'static str {
        match self {
            System::Pipecache => "pipecache",
            System::Fs => "fs+fsync+rename",
            System::Cacache => "cacache",
            System::Foyer => "foyer hybrid",
            System::Disk => "disk: one file, sequential write + fsync",
            System::PipecacheOneWriter => "pipecache, direct writes off",
            System::PipecacheLz4 => "pipecache, lz4",
        }
    }
}

/// A target that can put and get a workload.
enum Target {
    Pipecache(Store),
    Fs(PathBuf),
    Cacache(PathBuf),
    Foyer(foyer::HybridCache<String, Vec<u8>>),
    Disk(PathBuf),
}

/// foyer's hybrid cache in `dir`: 16 MiB of memory, 4 GiB of disk (more than a workload).
async fn open_foyer(dir: &Path) -> foyer::HybridCache<String, Vec<u8>> {
    use foyer::{BlockEngineConfig, DeviceBuilder, FsDeviceBuilder, HybridCacheBuilder};
    std::fs::create_dir_all(dir).unwrap();
    let device = FsDeviceBuilder::new(dir)
        .with_capacity(4 << 30)
        .build()
        .unwrap();
    HybridCacheBuilder::new()
        .with_policy(foyer::HybridCachePolicy::WriteOnInsertion)
        .memory(16 << 20)
        .with_weighter(|_key: &String, value: &Vec<u8>| value.len())
        .storage()
        // foyer drops inserts beyond its flush buffers (a cache may): sized to hold a whole
        // workload, so every put reaches its disk and every get finds its value.
        .with_engine_config(
            BlockEngineConfig::new(device)
                .with_buffer_pool_size(256 << 20)
                .with_submit_queue_size_threshold(2 << 30),
        )
        .build()
        .await
        .unwrap()
}

impl Target {
    async fn open(system: System, dir: &Path) -> Target {
        match system {
            System::Pipecache => {
                Target::Pipecache(Store::open(dir, StoreOptions::default()).await.unwrap())
            }
            System::PipecacheOneWriter => {
                let options = StoreOptions {
                    direct_write_min: u64::MAX,
                    ..StoreOptions::default()
                };
                Target::Pipecache(Store::open(dir, options).await.unwrap())
            }
            System::PipecacheLz4 => {
                let mut options = StoreOptions::default();
                options.compression.algorithm = pipecache::Algorithm::Lz4;
                Target::Pipecache(Store::open(dir, options).await.unwrap())
            }
            System::Fs => {
                std::fs::create_dir_all(dir).unwrap();
                Target::Fs(dir.to_owned())
            }
            System::Cacache => Target::Cacache(dir.to_owned()),
            System::Foyer => Target::Foyer(open_foyer(dir).await),
            System::Disk => {
                std::fs::create_dir_all(dir).unwrap();
                Target::Disk(dir.join("all"))
            }
        }
    }

    async fn close(self) {
        match self {
            Target::Pipecache(s) => s.close().await.unwrap(),
            Target::Foyer(f) => f.close().await.unwrap(),
            _ => {}
        }
    }

    /// Puts every blob. Systems whose put takes the value (pipecache, foyer) are handed each
    /// blob's own buffer, as a pipeline hands over a buffer it produced; the others borrow
    /// from one shared list. (Until the eighteenth session pipecache's puts were timed
    /// with a copy of each value made inside the timed loop, which no user pays.)
    async fn put_all(&self, blobs: Vec<Vec<u8>>) {
        let count = blobs.len();
        let takes_values = matches!(self, Target::Pipecache(_) | Target::Foyer(_));
        let (owned, blobs) = if takes_values {
            (blobs, Arc::new(Vec::new()))
        } else {
            (Vec::new(), Arc::new(blobs))
        };
        let mut owned = owned.into_iter();
        if let Target::Disk(path) = self {
            let path = path.clone();
            return tokio::task::spawn_blocking(move || {
                use std::io::Write;
                let mut f = std::fs::File::create(&path).unwrap();
                for b in blobs.iter() {
                    f.write_all(b).unwrap();
                }
                f.sync_all().unwrap();
            })
            .await
            .unwrap();
        }
        let sem = Arc::new(tokio::sync::Semaphore::new(IN_FLIGHT));
        let mut tasks = Vec::with_capacity(count);
        for i in 0..count {
            let permit = sem.clone().acquire_owned().await.unwrap();
            let blobs = blobs.clone();
            let key = format!("k{i}");
            tasks.push(match self {
                Target::Pipecache(s) => {
                    let s = s.clone();
                    let blob = owned.next().expect("one blob per key");
                    tokio::spawn(async move {
                        s.put(&key, Artifact::single(blob)).await.unwrap();
                        drop(permit);
                    })
                }
                Target::Fs(dir) => {
                    let dir = dir.clone();
                    tokio::task::spawn_blocking(move || {
                        use std::io::Write;
                        let name = blake3::hash(&blobs[i]).to_hex();
                        let tmp = dir.join(format!("{name}.tmp"));
                        let mut f = std::fs::File::create(&tmp).unwrap();
                        f.write_all(&blobs[i]).unwrap();
                        f.sync_all().unwrap();
                        std::fs::rename(&tmp, dir.join(name.as_str())).unwrap();
                        std::fs::write(dir.join(format!("{key}.ref")), name.as_bytes()).unwrap();
                        drop(permit);
                    })
                }
                Target::Cacache(dir) => {
                    let dir = dir.clone();
                    tokio::spawn(async move {
                        cacache::write(&dir, &key, &blobs[i]).await.unwrap();
                        drop(permit);
                    })
                }
                Target::Foyer(f) => {
                    // foyer's insert is synchronous (its disk write happens behind it): a
                    // finished task keeps the loop's join below uniform.
                    f.insert(key, owned.next().expect("one blob per key"));
                    drop(permit);
                    tokio::spawn(async {})
                }
                Target::Disk(_) => unreachable!("written above"),
            });
        }
        for t in tasks {
            t.await.unwrap();
        }
    }

    async fn get(&self, i: usize) -> usize {
        let key = format!("k{i}");
        match self {
            Target::Pipecache(s) => s.get(&key).await.unwrap().unwrap().parts[0].data.len(),
            Target::Fs(dir) => {
                let dir = dir.clone();
                tokio::task::spawn_blocking(move || {
                    let name = std::fs::read_to_string(dir.join(format!("{key}.ref"))).unwrap();
                    let bytes = std::fs::read(dir.join(&name)).unwrap();
                    assert_eq!(blake3::hash(&bytes).to_hex().as_str(), name);
                    bytes.len()
                })
                .await
                .unwrap()
            }
            Target::Cacache(dir) => cacache::read(dir, &key).await.unwrap().len(),
            Target::Foyer(f) => f.get(&key).await.unwrap().unwrap().value().len(),
            Target::Disk(_) => unreachable!("no gets from the disk baseline"),
        }
    }
}

#[derive(Default)]
struct Results {
    /// (workload, op, system) -> per-iteration durations.
    times: BTreeMap<(&'static str, &'static str, System), Vec<Duration>>,
    files: BTreeMap<(&'static str, System), u64>,
    latency: BTreeMap<System, (Duration, Duration)>,
    /// Per workload: values foyer still had when the gets began, of those put.
    foyer_kept: BTreeMap<&'static str, (usize, usize)>,
    /// Bytes pipecache's chunk files hold for a workload (after compression), per system.
    stored: BTreeMap<(&'static str, System), u64>,
}

fn median(v: &[Duration]) -> Duration {
    let mut v = v.to_vec();
    v.sort();
    v[v.len() / 2]
}

fn bench_workload(c: &mut Criterion, rt: &Runtime, w: Workload, results: &Arc<Mutex<Results>>) {
    let total = (w.count * w.size) as u64;
    let mut group = c.benchmark_group(format!("store/{}", w.name));
    group
        .sample_size(10)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(if w.size > 1 << 20 { 20 } else { 5 }));
    group.throughput(Throughput::Bytes(total));
    for system in PUT_SYSTEMS {
        if system == System::PipecacheOneWriter
            && w.size < StoreOptions::default().direct_write_min as usize
        {
            continue; // the same code path as `Pipecache` at this size
        }
        if system == System::PipecacheLz4 && !w.json {
            continue; // the codec is tried on a sample and dropped: `Pipecache`'s path
        }
        let round = Arc::new(Mutex::new(0u64));
        group.bench_function(format!("put/{}", system.name()), |b| {
            b.iter_custom(|iters| {
                let mut elapsed = Duration::ZERO;
                for _ in 0..iters {
                    let r = {
                        let mut r = round.lock().unwrap();
                        *r += 1;
                        *r
                    };
                    let blobs = data(w, r);
                    let dir = tempfile::tempdir().unwrap();
                    let store_dir = dir.path().join("s");
                    let took = rt.block_on(async {
                        let target = Target::open(system, &store_dir).await;
                        let t = Instant::now();
                        target.put_all(blobs).await;
                        // foyer's inserts return before its disk writes: its round ends
                        // once `close` waited for them.
                        let writes_on_close = matches!(target, Target::Foyer(_));
                        let took = t.elapsed();
                        target.close().await;
                        if writes_on_close { t.elapsed() } else { took }
                    });
                    let mut res = results.lock().unwrap();
                    res.times
                        .entry((w.name, "put", system))
                        .or_default()
                        .push(took);
                    res.files.insert((w.name, system), count_files(&store_dir));
                    elapsed += took;
                }
                elapsed
            })
        });

        if matches!(system, System::Disk | System::PipecacheOneWriter) {
            continue;
        }
        // Gets from one warm store.
        let dir = tempfile::tempdir().unwrap();
        let store_dir = dir.path().join("s");
        let (target, keys) = rt.block_on(async {
            let target = Target::open(system, &store_dir).await;
            target.put_all(data(w, 0)).await;
            let mut keys: Vec<usize> = (0..w.count).collect();
            if let Target::Pipecache(s) = &target {
                let stored = s.stats().await.unwrap().stored_bytes;
                results
                    .lock()
                    .unwrap()
                    .stored
                    .insert((w.name, system), stored);
            }
            if let Target::Foyer(f) = &target {
                // foyer may drop values (block reclaim, full queues): its gets skip what it
                // dropped, and the report says how many that was.
                f.storage().wait().await;
                let mut kept = Vec::with_capacity(w.count);
                for i in keys {
                    if f.get(&format!("k{i}")).await.unwrap().is_some() {
                        kept.push(i);
                    }
                }
                results
                    .lock()
                    .unwrap()
                    .foyer_kept
                    .insert(w.name, (kept.len(), w.count));
                keys = kept;
            }
            (target, keys)
        });
        group.bench_function(format!("get/{}", system.name()), |b| {
            b.iter_custom(|iters| {
                let mut elapsed = Duration::ZERO;
                for _ in 0..iters {
                    let took = rt.block_on(async {
                        let t = Instant::now();
                        let mut n = 0;
                        for &i in &keys {
                            n += target.get(i).await;
                        }
                        assert_eq!(n, keys.len() * w.size);
                        // Per workload: as if every value had been there.
                        t.elapsed() * w.count as u32 / keys.len().max(1) as u32
                    });
                    results
                        .lock()
                        .unwrap()
                        .times
                        .entry((w.name, "get", system))
                        .or_default()
                        .push(took);
                    elapsed += took;
                }
                elapsed
            })
        });
        if w.size == 50_000 && !w.json {
            // Latency of single warm gets of one 50 KB part.
            let lat = rt.block_on(async {
                let mut v = Vec::with_capacity(5000);
                for round in 0..5 {
                    for i in 0..1000 {
                        let t = Instant::now();
                        std::hint::black_box(target.get(keys[(i * 7 + round) % keys.len()]).await);
                        v.push(t.elapsed());
                    }
                }
                v.sort();
                (v[v.len() / 2], v[v.len() * 99 / 100])
            });
            results.lock().unwrap().latency.insert(system, lat);
        }
        rt.block_on(target.close());
    }
    group.finish();
}

fn report(results: &Results, workloads: &[Workload]) -> String {
    let mut out = String::new();
    out.push_str(
        "| workload | op | system | median time | MB/s | ops/s | vs pipecache | files |\n",
    );
    out.push_str("|---|---|---|---:|---:|---:|---:|---:|\n");
    for w in workloads {
        for op in ["put", "get"] {
            let Some(base) = results
                .times
                .get(&(w.name, op, System::Pipecache))
                .map(|v| median(v))
            else {
                continue;
            };
            for system in PUT_SYSTEMS {
                let Some(v) = results.times.get(&(w.name, op, system)) else {
                    continue;
                };
                let m = median(v);
                let mbs = (w.count * w.size) as f64 / 1e6 / m.as_secs_f64();
                let ops = w.count as f64 / m.as_secs_f64();
                let files = if op == "put" {
                    results
                        .files
                        .get(&(w.name, system))
                        .map(|f| f.to_string())
                        .unwrap_or_default()
                } else {
                    String::new()
                };
                out.push_str(&format!(
                    "| {} | {op} | {} | {:.1} ms | {mbs:.0} | {ops:.0} | pipecache is {:.2}x faster | {files} |\n",
                    w.name,
                    system.name(),
                    m.as_secs_f64() * 1e3,
                    m.as_secs_f64() / base.as_secs_f64(),
                ));
            }
        }
    }
    for (w, (kept, put)) in &results.foyer_kept {
        if kept < put {
            out.push_str(&format!(
                "\nfoyer dropped {} of the {put} values of {w} before they were read (a cache \
                 may); its get time is scaled to {put} gets.\n",
                put - kept
            ));
        }
    }
    for ((w, system), stored) in &results.stored {
        if let Some(wl) = workloads.iter().find(|x| x.name == *w && x.json) {
            out.push_str(&format!(
                "\n{}: {w} stored in {:.1} MB of {:.1} MB ({:.2}x smaller).\n",
                system.name(),
                *stored as f64 / 1e6,
                (wl.count * wl.size) as f64 / 1e6,
                (wl.count * wl.size) as f64 / (*stored).max(1) as f64
            ));
        }
    }
    out.push_str("\nWarm single get of one 50 KB part (5,000 gets):\n\n| system | p50 | p99 |\n|---|---:|---:|\n");
    for (system, (p50, p99)) in &results.latency {
        out.push_str(&format!(
            "| {} | {:.1} us | {:.1} us |\n",
            system.name(),
            p50.as_secs_f64() * 1e6,
            p99.as_secs_f64() * 1e6
        ));
    }
    out
}

fn main() {
    let mut c = Criterion::default().configure_from_args();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let mut workloads = vec![
        Workload {
            name: "1000x50KB-random",
            count: 1000,
            size: 50_000,
            json: false,
        },
        Workload {
            name: "1000x50KB-json",
            count: 1000,
            size: 50_000,
            json: true,
        },
    ];
    if std::env::var_os("PIPECACHE_BENCH_QUICK").is_none() {
        workloads.push(Workload {
            name: "100x10MB-random",
            count: 100,
            size: 10_000_000,
            json: false,
        });
    }
    let results = Arc::new(Mutex::new(Results::default()));
    for w in &workloads {
        bench_workload(&mut c, &rt, *w, &results);
    }
    c.final_summary();
    let table = report(&results.lock().unwrap(), &workloads);
    println!("\n{table}");
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("target/pipecache-bench");
    let dir = std::env::var_os("CARGO_TARGET_DIR")
        .map(|d| PathBuf::from(d).join("pipecache-bench"))
        .unwrap_or(dir);
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("store.md"), table).unwrap();
}
