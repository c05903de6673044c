//! # pipecache-test-support: helpers shared by integration tests and benches
//!
//! Temp stores, deterministic payload generators, byte-flipping and a CLI runner. Test-only:
//! nothing in a library crate may depend on it, and it must not hide a real component behind a
//! mock (stores here are real RocksDB + chunk files in a temp directory).

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

/// Runs the `pipecache` binary at `bin` with `--dir dir` and `args`, feeding `stdin`.
pub fn run_cli(bin: &Path, dir: &Path, args: &[&str], stdin: Option<&[u8]>) -> Output {
    use std::io::Write;
    use std::process::Stdio;
    let mut cmd = Command::new(bin);
    cmd.arg("--dir")
        .arg(dir)
        .args(args)
        .env_remove("PIPECACHE_DIR");
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

/// Parses JSON printed on a command's stdout.
pub fn stdout_json(out: &Output) -> serde_json::Value {
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "stdout is not JSON ({e}): {}",
            String::from_utf8_lossy(&out.stdout)
        )
    })
}
