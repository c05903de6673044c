//! # pipecache-test-support: helpers shared by integration tests and benches
//!
//! Temp stores, deterministic payload generators, byte-flipping, a CLI runner and (in
//! [`bench`]) what the benches share. Test-only: nothing in a library crate may depend on it,
//! and it must not hide a real component behind a mock (stores here are real RocksDB + chunk
//! files in a temp directory).

pub mod bench;
pub mod operations;
pub mod pipeline;
pub mod served;
pub mod servers;
pub mod tiers;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use pipecache::{Store, StoreOptions};
use rand::{Rng, SeedableRng, rngs::StdRng};

/// A store in a temporary directory, removed on drop.
#[derive(Debug)]
pub struct TempStore {
    /// The open store (`None` only between `close` and `reopen`).
    pub store: Option<Store>,
    /// Options used to open it.
    pub options: StoreOptions,
    dir: tempfile::TempDir,
}

impl TempStore {
    /// Opens a fresh store with `options`.
    pub async fn new(options: StoreOptions) -> Self {
        let dir = tempfile::tempdir().expect("create temp dir");
        let store = Store::open(dir.path(), options.clone())
            .await
            .expect("open fresh store");
        Self {
            store: Some(store),
            options,
            dir,
        }
    }

    /// Opens a fresh store with default options.
    pub async fn default_options() -> Self {
        Self::new(StoreOptions::default()).await
    }

    /// The open store.
    pub fn store(&self) -> &Store {
        self.store.as_ref().expect("store is open")
    }

    /// The store directory.
    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    /// Closes the store and opens it again, as a restarted process would.
    pub async fn reopen(&mut self) {
        if let Some(s) = self.store.take() {
            s.close().await.expect("close store");
        }
        self.store = Some(
            Store::open(self.dir.path(), self.options.clone())
                .await
                .expect("reopen store"),
        );
    }

    /// Closes the store, leaving the directory for inspection or another process.
    pub async fn close(&mut self) {
        if let Some(s) = self.store.take() {
            s.close().await.expect("close store");
        }
    }
}

/// A key classifier for tests of per-kind figures: keys `<kind>/<subject>/...` of two kinds,
/// `cheap` (2 s to recompute) and `dear` (60 s); other keys are `other`.
#[derive(Debug)]
pub struct SlashKeys;

impl pipecache::KeyClassifier for SlashKeys {
    fn kinds(&self) -> &[&'static str] {
        &["cheap", "dear"]
    }
    fn recompute_seconds(&self, kind: usize) -> f64 {
        [2.0, 60.0][kind]
    }
    fn classify<'k>(&self, key: &'k str) -> Option<pipecache::KeyClass<'k>> {
        let mut fields = key.split('/');
        let first = fields.next()?;
        let kind = self.kinds().iter().position(|k| *k == first)?;
        Some(pipecache::KeyClass {
            kind,
            subject: fields.next(),
        })
    }
}

/// Key of the `i`-th single-part embeddings artifact of the compaction tests.
pub fn clip_key(i: u64) -> String {
    format!("clip:{i:03}:embeddings")
}

/// The `i`-th embeddings artifact: one incompressible part of `size` bytes, so chunk fill and
/// live fractions are exact.
pub fn clip_artifact(i: u64, size: usize) -> pipecache::Artifact {
    pipecache::Artifact::default()
        .with_kind("embeddings")
        .with_part("vec", random_bytes(i, size))
}

/// Deterministic incompressible bytes (stand-in for JPEG frames, embeddings).
pub fn random_bytes(seed: u64, len: usize) -> Vec<u8> {
    let mut rng = StdRng::seed_from_u64(seed);
    let mut v = vec![0u8; len];
    rng.fill(&mut v[..]);
    v
}

/// Deterministic JSON-like compressible bytes (stand-in for transcripts, descriptions).
pub fn json_like(seed: u64, len: usize) -> Vec<u8> {
    let mut rng = StdRng::seed_from_u64(seed);
    let words = [
        "the", "video", "shows", "a", "person", "walking", "near", "river", "frame", "scene",
    ];
    let mut out = String::with_capacity(len + 64);
    out.push('[');
    let mut i = 0u64;
    while out.len() < len {
        let w: Vec<&str> = (0..8)
            .map(|_| words[rng.random_range(0..words.len())])
            .collect();
        out.push_str(&format!(
            r#"{{"start":{i},"end":{},"text":"{}"}},"#,
            i + 3,
            w.join(" ")
        ));
        i += 3;
    }
    let mut bytes = out.into_bytes();
    bytes.truncate(len);
    bytes
}

/// XORs one byte of a file with `mask`.
pub fn flip_byte(path: &Path, offset: u64, mask: u8) {
    use std::os::unix::fs::FileExt;
    let f = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open(path)
        .expect("open for flip");
    let mut b = [0u8; 1];
    f.read_exact_at(&mut b, offset).expect("read byte to flip");
    b[0] ^= mask;
    f.write_all_at(&b, offset).expect("write flipped byte");
}

/// Chunk files of the store in `dir`, sorted by name.
pub fn chunk_files(dir: &Path) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(dir.join("chunks"))
        .map(|rd| {
            rd.filter_map(|e| e.ok())
                .map(|e| e.path())
                .filter(|p| p.extension().is_some_and(|x| x == "pcc"))
                .collect()
        })
        .unwrap_or_default();
    v.sort();
    v
}

/// The codec (its name: "raw", "zstd", "lz4") each blob frame in the store at `dir` was
/// written with, by the blob's hash (every chunk file scanned to its end; a frame that does
/// not decode panics).
pub fn blob_codecs(dir: &Path) -> std::collections::HashMap<pipecache::BlobHash, &'static str> {
    let mut codecs = std::collections::HashMap::new();
    for path in chunk_files(dir) {
        let mut scanner = pipecache_format::ChunkScanner::open(&path).expect("open chunk file");
        while let Some(frame) = scanner.next_frame().expect("every frame decodes") {
            if frame.header.kind == pipecache_format::FrameKind::Blob {
                codecs.insert(frame.header.hash, frame.header.codec.name());
            }
        }
    }
    codecs
}

/// The chunk id a chunk file is named by.
pub fn chunk_id(path: &Path) -> u64 {
    let name = path.file_name().expect("chunk file name").to_string_lossy();
    pipecache_format::parse_chunk_file_name(&name).expect("a chunk file name")
}

/// Runs the `pipecache` binary at `bin` with `--dir dir` and `args`, feeding `stdin`.
pub fn run_cli(bin: &Path, dir: &Path, args: &[&str], stdin: Option<&[u8]>) -> Output {
    let mut with_dir: Vec<&std::ffi::OsStr> = vec!["--dir".as_ref(), dir.as_os_str()];
    with_dir.extend(args.iter().map(std::ffi::OsStr::new));
    run_cli_args(bin, &with_dir, stdin)
}

/// Runs `pipecache <args>` as given: no `--dir`, `$PIPECACHE_DIR` unset (the store directory
/// comes from the config file or the default).
pub fn run_cli_args<S: AsRef<std::ffi::OsStr>>(
    bin: &Path,
    args: &[S],
    stdin: Option<&[u8]>,
) -> Output {
    use std::io::Write;
    use std::process::Stdio;
    let mut cmd = Command::new(bin);
    cmd.args(args).env_remove("PIPECACHE_DIR");
    cmd.stdin(if stdin.is_some() {
        Stdio::piped()
    } else {
        Stdio::null()
    });
    cmd.stdout(Stdio::piped()).stderr(Stdio::piped());
    let mut child = cmd.spawn().expect("spawn pipecache");
    if let Some(input) = stdin {
        // A command that rejects its arguments exits without reading stdin: that is not a
        // test failure, so a broken pipe here is ignored.
        match child.stdin.take().expect("stdin").write_all(input) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => {}
            Err(e) => panic!("write stdin: {e}"),
        }
    }
    child.wait_with_output().expect("wait for pipecache")
}

/// Runs `pipecache <args>` with `env` as its only `AWS_*`, `PIPECACHE_*` and `RUST_LOG`
/// variables (none inherited from the test's own environment), capturing its output. Fails
/// the test if the command is still running after two minutes (a hang, not a slow run).
pub fn run_cli_env<S: AsRef<std::ffi::OsStr>>(
    bin: &Path,
    args: &[S],
    env: &[(&str, &str)],
) -> Output {
    use std::io::Read;
    use std::process::Stdio;
    use std::time::{Duration, Instant};
    const HANG_GUARD: Duration = Duration::from_secs(120);
    let mut cmd = Command::new(bin);
    cmd.args(args);
    for (name, _) in std::env::vars_os() {
        let n = name.to_string_lossy();
        if n.starts_with("AWS_") || n.starts_with("PIPECACHE_") || n == "RUST_LOG" {
            cmd.env_remove(&name);
        }
    }
    cmd.envs(env.iter().copied())
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = cmd.spawn().expect("spawn pipecache");
    let read_all = |mut pipe: Box<dyn Read + Send>| {
        std::thread::spawn(move || {
            let mut bytes = Vec::new();
            pipe.read_to_end(&mut bytes).expect("read child output");
            bytes
        })
    };
    let stdout = read_all(Box::new(child.stdout.take().expect("stdout")));
    let stderr = read_all(Box::new(child.stderr.take().expect("stderr")));
    let started = Instant::now();
    let status = loop {
        if let Some(status) = child.try_wait().expect("wait for pipecache") {
            break status;
        }
        if started.elapsed() > HANG_GUARD {
            let _ = child.kill();
            let _ = child.wait();
            let shown: Vec<_> = args.iter().map(|a| a.as_ref().to_string_lossy()).collect();
            panic!("pipecache {shown:?} hung: still running after {HANG_GUARD:?}");
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    Output {
        status,
        stdout: stdout.join().expect("stdout reader"),
        stderr: stderr.join().expect("stderr reader"),
    }
}

/// Fails the test, showing the command's stderr, unless it exited successfully.
#[track_caller]
pub fn assert_success(out: &Output) {
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// The keys `store` lists under `prefix`, in order.
pub async fn list_keys(store: &Store, prefix: &str) -> Vec<String> {
    store
        .list(prefix)
        .await
        .expect("list")
        .into_iter()
        .map(|e| e.key)
        .collect()
}

/// Parses JSON printed on a command's stdout.
pub fn stdout_json(out: &Output) -> serde_json::Value {
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "stdout is not JSON ({e}): {}",
            String::from_utf8_lossy(&out.stdout)
        )
    })
}

/// Options for tests that run GC themselves: `chunk_size`-byte chunks and no background GC
/// thread (it would compact or collect under the test's feet); everything else the default.
pub fn manual_gc_options(chunk_size: u64) -> StoreOptions {
    StoreOptions {
        chunk_size,
        gc_interval: None,
        ..StoreOptions::default()
    }
}

/// Options for the direct-write tests: blobs of 64 KiB or more go to direct chunks (the
/// default is 4 MiB; smaller keeps the tests fast), no TTL, no background GC thread.
pub fn direct_write_options() -> StoreOptions {
    StoreOptions {
        direct_write_min: 64 << 10,
        default_ttl: None,
        gc_interval: None,
        ..StoreOptions::default()
    }
}

/// Options for deterministic lifecycle tests: blobs stored raw (sizes on disk are exact),
/// `chunk_size`-byte chunks, no background GC thread, and `clock` for TTLs and access times.
/// Everything else is the default (7-day default TTL, no budget, LRU).
pub fn lifecycle_options(
    chunk_size: u64,
    clock: std::sync::Arc<pipecache::ManualClock>,
) -> StoreOptions {
    StoreOptions {
        chunk_size,
        compression: pipecache::CompressionPolicy {
            enabled: false,
            ..pipecache::CompressionPolicy::default()
        },
        gc_interval: None,
        clock,
        ..StoreOptions::default()
    }
}

/// Asserts that `key` reads back as exactly `expected` (kind, metadata, part names and bytes).
pub async fn assert_reads_back(store: &Store, key: &str, expected: &pipecache::Artifact) {
    let got = store
        .get(key)
        .await
        .unwrap_or_else(|e| panic!("get {key:?} failed: {e}"))
        .unwrap_or_else(|| panic!("{key:?} is a miss, expected its artifact"));
    assert!(
        got == *expected,
        "{key:?} read back a different artifact: got {got:?}, expected {expected:?}"
    );
}

/// Bookkeeping for crash tests driving `pipecache stress-put`: the child prints `BEGIN key state`
/// before and `ACK key state` after each operation (state = artifact digest or `deleted`), one
/// operation in flight per key. After a kill, a key must hold its acknowledged state or the state
/// of the operation that had begun.
#[derive(Debug, Default)]
pub struct AckLog {
    keys: std::collections::HashMap<String, (Option<String>, Option<String>)>,
    /// Operations acknowledged so far.
    pub acks: usize,
    /// `GC ...` lines seen (gc/compaction passes the child completed).
    pub gc_passes: usize,
}

impl AckLog {
    /// Applies the child's stdout lines.
    pub fn apply(&mut self, lines: &[String]) {
        for line in lines {
            let mut it = line.split(' ');
            match (it.next(), it.next(), it.next()) {
                (Some("BEGIN"), Some(key), Some(state)) => {
                    self.keys.entry(key.to_owned()).or_default().1 = Some(state.to_owned());
                }
                (Some("ACK"), Some(key), Some(state)) => {
                    let st = self.keys.entry(key.to_owned()).or_default();
                    assert_eq!(st.1.as_deref(), Some(state), "ACK without BEGIN for {key}");
                    st.0 = Some(state.to_owned());
                    st.1 = None;
                    self.acks += 1;
                }
                (Some("GC"), _, _) => self.gc_passes += 1,
                _ => {}
            }
        }
    }

    /// Checks every key against `store` and adopts what is there as the new acknowledged state.
    pub async fn check(&mut self, store: &Store, round: u64) {
        self.check_with(round, "local tier", async |key| Ok(store.get(key).await?))
            .await;
    }

    /// [`AckLog::check`] through a tier manager (`tiers` names what it reads, for messages).
    pub async fn check_manager(
        &mut self,
        m: &pipecache::tier::CacheManager,
        round: u64,
        tiers: &str,
    ) {
        self.check_with(round, tiers, async |key| m.get(key).await)
            .await;
    }

    async fn check_with(
        &mut self,
        round: u64,
        tiers: &str,
        get: impl AsyncFn(&str) -> pipecache::Result<Option<pipecache::Artifact>>,
    ) {
        let mut seen = Vec::with_capacity(self.keys.len());
        for key in self.keys.keys() {
            let got = get(key)
                .await
                .unwrap_or_else(|e| panic!("round {round}: get {key} from {tiers}: {e}"));
            seen.push((key.clone(), got));
        }
        self.adopt(seen, round, tiers);
    }

    fn adopt(&mut self, seen: Vec<(String, Option<pipecache::Artifact>)>, round: u64, tiers: &str) {
        for (key, got) in seen {
            let (acked, pending) = self.keys.get_mut(&key).expect("key from the log");
            let got = got
                .map(|a| a.digest().to_hex())
                .unwrap_or_else(|| "deleted".to_owned());
            let want = acked.clone().unwrap_or_else(|| "deleted".to_owned());
            assert!(
                got == want || pending.as_deref() == Some(got.as_str()),
                "round {round}: {key} holds {got} in {tiers}, acknowledged {want}, pending {pending:?}"
            );
            *acked = Some(got);
            *pending = None;
        }
    }
}

/// Runs `pipecache <args>` with `--dir dir`, SIGKILLs it `after` its first line of output
/// (so a slow start, exec and store open, does not eat the time the child works), and
/// returns its stdout lines. A child that prints nothing for 60 s is killed `after` that.
pub fn run_and_kill(
    bin: &Path,
    dir: &Path,
    args: &[&str],
    after: std::time::Duration,
) -> Vec<String> {
    use std::io::BufRead;
    use std::process::Stdio;
    use std::sync::mpsc;
    let mut child = Command::new(bin)
        .arg("--dir")
        .arg(dir)
        .args(args)
        .env_remove("PIPECACHE_DIR")
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn child");
    let stdout = child.stdout.take().expect("stdout");
    let (started_tx, started) = mpsc::channel();
    let reader = std::thread::spawn(move || {
        let mut lines = Vec::new();
        for line in std::io::BufReader::new(stdout)
            .lines()
            .map_while(Result::ok)
        {
            if lines.is_empty() {
                let _ = started_tx.send(());
            }
            lines.push(line);
        }
        lines
    });
    let _ = started.recv_timeout(std::time::Duration::from_secs(60));
    std::thread::sleep(after);
    child.kill().expect("SIGKILL child");
    child.wait().expect("reap child");
    reader.join().expect("reader thread")
}

/// Runs `pipecache <args>` with `--dir dir` and SIGKILLs it as soon as `ready()` holds;
/// `ready` is polled meanwhile and watches the child's progress from outside (e.g. objects
/// arriving in a bucket). Returns the killed child's output. Panics, showing the child's
/// stderr, if the child ends by itself before the kill (it finished or failed: the kill would
/// show nothing) or `ready()` stays false for 120 s. The child never outlives the call.
pub fn run_and_kill_when(
    bin: &Path,
    dir: &Path,
    args: &[&str],
    mut ready: impl FnMut() -> bool,
) -> Output {
    use std::io::Read;
    use std::os::unix::process::ExitStatusExt;
    use std::process::{Child, Stdio};
    use std::time::{Duration, Instant};
    const SIGKILL: i32 = 9;

    /// Kills and reaps the child however the call ends (a panic in `ready` included).
    struct Reaped(Child);
    impl Drop for Reaped {
        fn drop(&mut self) {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
    fn drain(mut from: impl Read + Send + 'static) -> std::thread::JoinHandle<Vec<u8>> {
        std::thread::spawn(move || {
            let mut bytes = Vec::new();
            let _ = from.read_to_end(&mut bytes);
            bytes
        })
    }

    let mut child = Reaped(
        Command::new(bin)
            .arg("--dir")
            .arg(dir)
            .args(args)
            .env_remove("PIPECACHE_DIR")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn pipecache"),
    );
    let stdout = drain(child.0.stdout.take().expect("stdout"));
    let stderr = drain(child.0.stderr.take().expect("stderr"));
    let give_up = Instant::now() + Duration::from_secs(120);
    let mut waited_too_long = false;
    let mut ended = None;
    // The child is stopped while `ready` looks (a slow probe, e.g. a LIST on a loaded
    // machine, must not let the state it waits for pass unseen) and runs between looks.
    let pid = child.0.id().to_string();
    let signal = |sig: &str| {
        // `kill` fails only for a child that has exited; the poll below sees that.
        let _ = Command::new("kill").args([sig, pid.as_str()]).status();
    };
    loop {
        signal("-STOP");
        if ready() {
            break;
        }
        signal("-CONT");
        if let Some(status) = child.0.try_wait().expect("poll child") {
            ended = Some(status);
            break;
        }
        if Instant::now() >= give_up {
            waited_too_long = true;
            break;
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    let status = match ended {
        Some(status) => status,
        None => {
            // A child that exited since the last poll is a zombie until reaped: the SIGKILL
            // cannot hit another process, and the status tells whether it is what ended it.
            child.0.kill().expect("SIGKILL child");
            child.0.wait().expect("reap child")
        }
    };
    let out = Output {
        status,
        stdout: stdout.join().expect("stdout reader"),
        stderr: stderr.join().expect("stderr reader"),
    };
    assert!(
        !waited_too_long,
        "pipecache {args:?} was not ready to be killed after 120 s; stderr:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        status.signal(),
        Some(SIGKILL),
        "pipecache {args:?} ended by itself ({status}) before it was killed; stdout:\n{}\nstderr:\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

/// Path of the `pipecache` binary built for the calling test (a macro because
/// `CARGO_BIN_EXE_pipecache` exists only in the root package's test crates).
#[macro_export]
macro_rules! pipecache_bin {
    () => {
        std::path::Path::new(env!("CARGO_BIN_EXE_pipecache"))
    };
}

impl AckLog {
    /// After a kill: opens the store, checks every key ([`AckLog::check`]), asserts `verify` is
    /// clean, closes the store and returns the verify report.
    pub async fn check_store(
        &mut self,
        dir: &Path,
        options: pipecache::StoreOptions,
        round: u64,
    ) -> pipecache::VerifyReport {
        let store = Store::open(dir, options)
            .await
            .unwrap_or_else(|e| panic!("round {round}: store does not open after SIGKILL: {e}"));
        self.check(&store, round).await;
        let report = store.verify().await.expect("verify");
        assert!(
            report.is_clean(),
            "round {round}: verify after SIGKILL: {report:?}"
        );
        store.close().await.expect("close");
        report
    }
}
