//! Helpers for the "real operations" tests: a small filesystem that fills up, and the
//! index's files (SSTs to damage, counts that must stay bounded).

use std::path::{Path, PathBuf};
use std::process::Command;

/// A tmpfs of a chosen size mounted on a temporary directory, unmounted on drop: a
/// filesystem the test can fill. Mounting needs root (CI and this project's machines run
/// tests as root); without it the test fails, saying so, rather than pass untested.
#[derive(Debug)]
pub struct SmallFs {
    dir: tempfile::TempDir,
}

impl SmallFs {
    /// Mounts a tmpfs of `mib` MiB.
    pub fn mount(mib: u64) -> Self {
        let dir = tempfile::tempdir().expect("create mount point");
        let out = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={mib}m"), "tmpfs"])
            .arg(dir.path())
            .output()
            .expect("run mount");
        assert!(
            out.status.success(),
            "the full-disk tests mount a {mib} MiB tmpfs and need root for it: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        Self { dir }
    }

    /// The mount point.
    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    /// Bytes free on the filesystem.
    pub fn free_bytes(&self) -> u64 {
        let out = Command::new("df")
            .args(["--output=avail", "-B1"])
            .arg(self.path())
            .output()
            .expect("run df");
        String::from_utf8_lossy(&out.stdout)
            .lines()
            .nth(1)
            .and_then(|l| l.trim().parse().ok())
            .expect("df prints the free bytes")
    }

    /// Writes a file of zeroes until the filesystem refuses more, as another program
    /// filling the disk would. Returns its path (delete it to give the space back).
    pub fn fill(&self, name: &str) -> PathBuf {
        use std::io::Write;
        let path = self.path().join(name);
        let mut f = std::fs::File::create(&path).expect("create filler");
        for block in [1 << 20, 4096, 1] {
            let zeros = vec![0u8; block];
            loop {
                match f.write_all(&zeros) {
                    Ok(()) => {}
                    Err(e) if e.kind() == std::io::ErrorKind::StorageFull => break,
                    Err(e) => panic!("fill: {e}"),
                }
            }
        }
        let _ = f.sync_all();
        path
    }
}

impl Drop for SmallFs {
    fn drop(&mut self) {
        // Lazy: a store a failed test left open must not leave the mount behind.
        let _ = Command::new("umount")
            .arg("-l")
            .arg(self.dir.path())
            .status();
    }
}

/// Files in a store's index directory, by suffix.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct IndexFiles {
    /// `*.sst` table files.
    pub sst: usize,
    /// `*.log` write-ahead logs.
    pub wal: usize,
    /// Every file (MANIFEST, OPTIONS, info logs, ...).
    pub total: usize,
}

/// Counts the files of the index of the store in `store_dir`.
pub fn index_files(store_dir: &Path) -> IndexFiles {
    let mut n = IndexFiles::default();
    for entry in std::fs::read_dir(store_dir.join("index")).expect("list index") {
        let name = entry.expect("index entry").file_name();
        let name = name.to_string_lossy();
        n.total += 1;
        if name.ends_with(".sst") {
            n.sst += 1;
        } else if name.ends_with(".log") {
            n.wal += 1;
        }
    }
    n
}

/// Moves everything the index holds into SST files (as a long-running process eventually
/// does), with the store closed: the index is opened directly and flushed.
pub fn flush_index(store_dir: &Path) {
    let (index, _writer) = pipecache_index::Index::open(
        &store_dir.join("index"),
        &pipecache_index::IndexOptions::default(),
    )
    .expect("open index to flush");
    index.flush().expect("flush index");
}

/// Flips every `stride`-th byte of every SST file of the store's index. Returns how many
/// files it damaged.
pub fn damage_index_ssts(store_dir: &Path, stride: u64) -> usize {
    let mut damaged = 0;
    for entry in std::fs::read_dir(store_dir.join("index")).expect("list index") {
        let path = entry.expect("index entry").path();
        if path.extension().is_some_and(|x| x == "sst") {
            let len = std::fs::metadata(&path).expect("stat sst").len();
            let mut at = stride / 2;
            while at < len {
                crate::flip_byte(&path, at, 0x5A);
                at += stride;
            }
            damaged += 1;
        }
    }
    damaged
}
