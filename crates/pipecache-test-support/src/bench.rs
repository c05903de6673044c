//! Helpers for the benches in `benches/`: the `pipecache` CLI run as a child process with its
//! wall time and peak RSS, fields of its JSON reports, percentiles of timed calls, and where
//! the benches find the release binary and write their markdown tables.

use std::ffi::OsStr;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

/// One child run of the `pipecache` CLI.
#[derive(Debug)]
pub struct Run {
    /// Wall time from spawn to exit.
    pub secs: f64,
    /// Peak resident set (`VmHWM`) in KiB, as last sampled before the child exited.
    pub peak_rss_kib: u64,
    /// What the child wrote to stdout (empty unless the run kept it).
    pub stdout: Vec<u8>,
    /// What the child wrote to stderr.
    pub stderr: Vec<u8>,
}

impl Run {
    /// Peak RSS in MiB.
    pub fn peak_rss_mib(&self) -> f64 {
        self.peak_rss_kib as f64 / 1024.0
    }
}

/// Peak resident set (`VmHWM` of `/proc/<pid>/status`) of process `pid` in KiB; `None` once
/// the process is gone (or on a system without procfs).
pub fn vm_hwm_kib(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
}

/// Runs `bin args` (every flag included: `--dir`, `--max-size`, `--config`), sampling its
/// `VmHWM` every 5 ms until it exits. `$PIPECACHE_DIR` and `$PIPECACHE_CONFIG` are not passed
/// on, so only `args` choose the store. Stdout is kept when `keep_stdout`, else discarded
/// (a large `ls` would only cost the bench memory). Panics, with the child's stderr, unless
/// it exits successfully: a bench must not time a failure.
pub fn run_child<S: AsRef<OsStr>>(bin: &Path, args: &[S], keep_stdout: bool) -> Run {
    run_child_env(bin, args, &[], keep_stdout)
}

/// [`run_child`] with `env` added to the child's environment (e.g. `PIPECACHE_LOG`).
pub fn run_child_env<S: AsRef<OsStr>>(
    bin: &Path,
    args: &[S],
    env: &[(&str, &str)],
    keep_stdout: bool,
) -> Run {
    let mut cmd = Command::new(bin);
    cmd.args(args)
        .env_remove("PIPECACHE_DIR")
        .env_remove("PIPECACHE_CONFIG")
        .envs(env.iter().copied())
        .stdin(Stdio::null())
        .stdout(if keep_stdout {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stderr(Stdio::piped());
    let t = Instant::now();
    let mut child = cmd.spawn().expect("spawn pipecache");
    let pid = child.id();
    // Pipes are drained by threads: a child blocked on a full pipe would never exit.
    let drain = |r: Option<Box<dyn Read + Send>>| {
        std::thread::spawn(move || {
            let mut buf = Vec::new();
            if let Some(mut r) = r {
                r.read_to_end(&mut buf).expect("read child output");
            }
            buf
        })
    };
    let out = drain(child.stdout.take().map(|s| Box::new(s) as _));
    let err = drain(child.stderr.take().map(|s| Box::new(s) as _));
    let mut peak = 0;
    let status = loop {
        // VmHWM is a high-water mark: the last value read before exit is the peak.
        if let Some(v) = vm_hwm_kib(pid) {
            peak = peak.max(v);
        }
        if let Some(status) = child.try_wait().expect("wait for pipecache") {
            break status;
        }
        std::thread::sleep(Duration::from_millis(5));
    };
    let secs = t.elapsed().as_secs_f64();
    let stdout = out.join().expect("stdout reader");
    let stderr = err.join().expect("stderr reader");
    let shown: Vec<_> = args.iter().map(|a| a.as_ref().to_string_lossy()).collect();
    assert!(
        status.success(),
        "pipecache {shown:?} failed with {status}: {}",
        String::from_utf8_lossy(&stderr)
    );
    Run {
        secs,
        peak_rss_kib: peak,
        stdout,
        stderr,
    }
}

/// The run's stdout as JSON (a `--json` report).
pub fn json(run: &Run) -> Value {
    serde_json::from_slice(&run.stdout).expect("pipecache printed JSON")
}

/// The number at `path` in a JSON report, or the length of the array there (reports list
/// keys and damage; benches count them). Panics when the field is missing.
pub fn u(v: &Value, path: &[&str]) -> u64 {
    let mut v = v;
    for p in path {
        v = &v[*p];
    }
    v.as_u64()
        .or_else(|| v.as_array().map(|a| a.len() as u64))
        .unwrap_or_else(|| panic!("report field {path:?} missing: {v}"))
}

/// The `p` quantile (0.0 to 1.0) of `sorted` samples: the sample at the nearest rank.
pub fn percentile<T: Copy>(sorted: &[T], p: f64) -> T {
    sorted[((sorted.len() - 1) as f64 * p).round() as usize]
}

/// Sorts `samples` and returns the quantiles `ps` of them ([`percentile`]), e.g.
/// `let [p50, p99] = percentiles(&mut times, [0.5, 0.99]);`.
pub fn percentiles<T: Copy + Ord, const N: usize>(samples: &mut [T], ps: [f64; N]) -> [T; N] {
    samples.sort_unstable();
    ps.map(|p| percentile(samples, p))
}

/// The workspace root (this crate sits in `crates/`).
fn workspace_root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .ancestors()
        .nth(2)
        .expect("the test-support crate sits in <root>/crates/")
}

/// The cargo target directory: `$CARGO_TARGET_DIR`, else the one the running bench lives
/// in (benches run from `<target>/release/deps/`), else `<workspace>/target`.
pub fn target_dir() -> PathBuf {
    if let Some(d) = std::env::var_os("CARGO_TARGET_DIR") {
        return PathBuf::from(d);
    }
    let exe = std::env::current_exe().expect("bench executable path");
    exe.ancestors()
        .nth(3)
        .map(Path::to_owned)
        .unwrap_or_else(|| workspace_root().join("target"))
}

/// The release `pipecache` binary. `built` is the caller's
/// `option_env!("CARGO_BIN_EXE_pipecache")` (cargo sets it only while compiling the root
/// package's benches and tests, not this crate): when it names a file, that is the binary.
/// Otherwise `<target>/release/pipecache`, built first (`cargo build --release --bin
/// pipecache`) when it is missing.
pub fn pipecache_bin(target: &Path, built: Option<&str>) -> PathBuf {
    if let Some(p) = built.map(PathBuf::from)
        && p.is_file()
    {
        return p;
    }
    let bin = target.join("release/pipecache");
    if !bin.is_file() {
        println!(
            "{} is missing: building it (cargo build --release --bin pipecache)",
            bin.display()
        );
        let status = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()))
            .args(["build", "--release", "--bin", "pipecache"])
            .env("CARGO_TARGET_DIR", target)
            .current_dir(workspace_root())
            .status()
            .expect("run cargo build");
        assert!(status.success(), "cargo build --release failed: {status}");
    }
    assert!(bin.is_file(), "{} not found after building", bin.display());
    bin
}

/// Writes a bench's markdown `report` to `<target>/pipecache-bench/<name>` and returns the
/// path.
pub fn write_report(target: &Path, name: &str, report: &str) -> PathBuf {
    let out_dir = target.join("pipecache-bench");
    std::fs::create_dir_all(&out_dir).expect("create bench output dir");
    let path = out_dir.join(name);
    std::fs::write(&path, report).unwrap_or_else(|e| panic!("write {}: {e}", path.display()));
    path
}

/// Runs `op(i)` for `i` in `0..n` as tokio tasks, at most `in_flight` at a time (how the
/// benches put many artifacts concurrently, as an ingest service would). Panics when a task
/// panics.
pub async fn bounded<F, Fut>(n: usize, in_flight: usize, op: F)
where
    F: Fn(usize) -> Fut,
    Fut: std::future::Future<Output = ()> + Send + 'static,
{
    let mut set = tokio::task::JoinSet::new();
    for i in 0..n {
        if set.len() >= in_flight {
            set.join_next()
                .await
                .expect("a task")
                .expect("task panicked");
        }
        set.spawn(op(i));
    }
    while let Some(r) = set.join_next().await {
        r.expect("task panicked");
    }
}
