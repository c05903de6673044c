//! `pipecache serve` from Rust: a single 50 KB get timed call by call (p50, p99) through
//! the Unix socket, with and without the client's near cache, against the same get in
//! process, then gets (with and without near caches) and puts per second from 1, 4 and 16
//! client processes (this bench binary started again as a client) against one server. The server is the real `pipecache serve` process. Prints markdown and writes it
//! to `$CARGO_TARGET_DIR/pipecache-bench/server.md`. The Python side (the package through
//! the server against diskcache from as many processes) is
//! `crates/pipecache-python/benches/server_vs_diskcache.py`.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use pipecache::{Artifact, CacheConfig, CacheManager, ServerClient, StoreOptions};
use pipecache_test_support::bench::{percentiles, pipecache_bin, target_dir, write_report};
use pipecache_test_support::random_bytes;

const KEYS: u64 = 1_000;
const VALUE: usize = 50 * 1024;
const CALLS: usize = 20_000;
const PROCESSES: [usize; 3] = [1, 4, 16];
/// How long each client process runs its loop.
const SPELL: Duration = Duration::from_secs(3);
/// A near cache's budget: the default memory budget, which holds every key here.
const NEAR_BUDGET: u64 = 256 << 20;

fn key(i: u64) -> String {
    format!("bench/{i}")
}

fn us(d: Duration) -> f64 {
    d.as_secs_f64() * 1e6
}

/// A client process: gets (or puts) for `SPELL`, prints how many it did.
async fn client_child(socket: &Path, op: &str, id: u64) {
    let client = ServerClient::unix(socket);
    let client = match op {
        "get-near" => client.with_near_cache(socket.parent().expect("store dir"), NEAR_BUDGET),
        _ => client,
    };
    if op == "get-near" {
        // Filled before the clock starts, as the Python side does.
        for i in 0..KEYS {
            client.get_shared(&key(i)).await.expect("get");
        }
    }
    let value = random_bytes(id, VALUE);
    let started = Instant::now();
    let mut n = 0u64;
    while started.elapsed() < SPELL {
        if op.starts_with("get") {
            let got = client.get_shared(&key(n * 7919 % KEYS)).await.expect("get");
            assert!(got.is_some(), "a preloaded key missed");
        } else {
            let k = format!("put/{id}/{n}");
            client
                .put(&k, Artifact::single(value.clone()), Default::default())
                .await
                .expect("put");
        }
        n += 1;
    }
    println!("{n}");
}

/// Calls per second of `processes` client processes doing `op` at once.
fn throughput(socket: &Path, op: &str, processes: usize) -> f64 {
    let exe = std::env::current_exe().expect("bench binary");
    let children: Vec<Child> = (0..processes)
        .map(|i| {
            Command::new(&exe)
                .env("PIPECACHE_BENCH_CLIENT", format!("{op}:{i}"))
                .env("PIPECACHE_BENCH_SOCKET", socket)
                .stdout(Stdio::piped())
                .spawn()
                .expect("spawn a client process")
        })
        .collect();
    let total: u64 = children
        .into_iter()
        .map(|c| {
            let out = c.wait_with_output().expect("client process");
            assert!(out.status.success(), "a client process failed");
            String::from_utf8_lossy(&out.stdout)
                .trim()
                .parse::<u64>()
                .expect("a count")
        })
        .sum();
    total as f64 / SPELL.as_secs_f64()
}

async fn time_gets<F: std::future::Future<Output = bool>>(
    mut get: impl FnMut(String) -> F,
) -> (f64, f64) {
    let mut times = Vec::with_capacity(CALLS);
    for i in 0..CALLS {
        let k = key(i as u64 % KEYS);
        let t = Instant::now();
        assert!(get(k).await, "a warm key missed");
        times.push(t.elapsed());
    }
    let [p50, p99] = percentiles(&mut times, [0.5, 0.99]);
    (us(p50), us(p99))
}

fn start_server(bin: &Path, dir: &Path) -> (Child, PathBuf) {
    let child = Command::new(bin)
        .args(["serve", "--dir"])
        .arg(dir)
        .env_remove("PIPECACHE_DIR")
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn pipecache serve");
    let socket = dir.join("server.sock");
    let started = Instant::now();
    while !dir.join("server.json").exists()
        || std::os::unix::net::UnixStream::connect(&socket).is_err()
    {
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "the server never started"
        );
        std::thread::sleep(Duration::from_millis(10));
    }
    (child, socket)
}

fn main() {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime");
    if let Ok(spec) = std::env::var("PIPECACHE_BENCH_CLIENT") {
        let (op, id) = spec.split_once(':').expect("op:id");
        let socket = PathBuf::from(std::env::var_os("PIPECACHE_BENCH_SOCKET").expect("socket"));
        let (op, id) = (op.to_owned(), id.parse().expect("id"));
        runtime
            .block_on(runtime.spawn(async move { client_child(&socket, &op, id).await }))
            .expect("client task");
        return;
    }
    let target = target_dir();
    let bin = pipecache_bin(&target, option_env!("CARGO_BIN_EXE_pipecache"));
    let tmp = tempfile::tempdir().expect("temp dir");

    // In process: the same store and memory tier as the server's, opened here first.
    let in_process = runtime.block_on(async {
        let cache = CacheManager::open(
            &CacheConfig::default(),
            tmp.path(),
            StoreOptions::default(),
            "(bench)",
        )
        .await
        .expect("open");
        for i in 0..KEYS {
            let a = Artifact::single(random_bytes(i, VALUE));
            cache.put(&key(i), a).await.expect("put");
        }
        let result = time_gets(|k| {
            let cache = cache.clone();
            async move { cache.get_shared(&k).await.expect("get").is_some() }
        })
        .await;
        cache.close().await.expect("close");
        result
    });

    let (mut server, socket) = start_server(&bin, tmp.path());
    // On a runtime worker, as the CLI's commands and the Python package's calls run (a
    // future run by `block_on` itself would add a thread hop per wake-up).
    let client = ServerClient::unix(&socket);
    let near = client.clone().with_near_cache(tmp.path(), NEAR_BUDGET);
    let [socket_gets, near_gets] = [client, near].map(|client| {
        runtime
            .block_on(runtime.spawn(async move {
                time_gets(|k| {
                    let client = client.clone();
                    async move { client.get_shared(&k).await.expect("get").is_some() }
                })
                .await
            }))
            .expect("timing task")
    });
    // Every get spell before any put, as the Python side does.
    let gets: Vec<(f64, f64)> = PROCESSES
        .iter()
        .map(|&n| {
            (
                throughput(&socket, "get", n),
                throughput(&socket, "get-near", n),
            )
        })
        .collect();
    let rates: Vec<(usize, f64, f64, f64)> = PROCESSES
        .iter()
        .zip(gets)
        .map(|(&n, (far, near))| (n, far, near, throughput(&socket, "put", n)))
        .collect();
    // SIGTERM: the server drains and closes the store.
    let _ = Command::new("kill").arg(server.id().to_string()).status();
    server.wait().expect("server exit");

    let mut report = String::new();
    report.push_str(&format!(
        "pipecache serve on a Unix socket; {KEYS} keys x 50 KB, {CALLS} single gets timed one by one, {}-second spells per process count\n\n",
        SPELL.as_secs()
    ));
    report.push_str("| single 50 KB get | p50 | p99 |\n|---|---|---|\n");
    report.push_str(&format!(
        "| in process (`CacheManager::get_shared`, memory tier) | {:.1} µs | {:.1} µs |\n",
        in_process.0, in_process.1
    ));
    report.push_str(&format!(
        "| through the socket (`ServerClient::get_shared`, no near cache) | {:.1} µs | {:.1} µs |\n",
        socket_gets.0, socket_gets.1
    ));
    report.push_str(&format!(
        "| through the socket with a near cache (each key read {} times) | {:.1} µs | {:.1} µs |\n\n",
        CALLS as u64 / KEYS,
        near_gets.0,
        near_gets.1
    ));
    report.push_str(
        "| client processes | gets/s | gets/s with near caches | puts/s (fsynced) |\n|---|---|---|---|\n",
    );
    for (n, gets, near, puts) in &rates {
        report.push_str(&format!("| {n} | {gets:.0} | {near:.0} | {puts:.0} |\n"));
    }
    print!("{report}");
    write_report(&target, "server", &report);
}
