//! Opening a store directory: what may be a store, its lock (one process at a time), and
//! its marker file (format version, creation).

use std::fs::{self, File, OpenOptions, TryLockError};
use std::io::ErrorKind;
use std::path::Path;
use std::time::Duration;

use pipecache_format::{replace_file, sync_dir};

use crate::layout::{CHUNK_DIR, INDEX_DIR, LOCK_FILE, MARKER_FILE, STORE_VERSION};
use crate::{Error, Result, StoreOptions};

pub(crate) fn check_store_dir(dir: &Path, options: &StoreOptions) -> Result<()> {
    match fs::metadata(dir) {
        Ok(m) if !m.is_dir() => {
            return Err(Error::InvalidStoreDir {
                path: dir.to_owned(),
                reason: "it is a file, not a directory".into(),
            });
        }
        Ok(_) => {}
        Err(e) if e.kind() == ErrorKind::NotFound => {
            if !options.create_if_missing {
                return Err(Error::NotFound {
                    what: format!("store directory {}", dir.display()),
                });
            }
            fs::create_dir_all(dir)
                .map_err(|e| Error::io(format!("create store directory {}", dir.display()), e))?;
        }
        Err(e) => return Err(Error::io(format!("stat {}", dir.display()), e)),
    }
    Ok(())
}

fn lock_store(dir: &Path) -> Result<File> {
    let path = dir.join(LOCK_FILE);
    let file = OpenOptions::new()
        .create(true)
        .truncate(false)
        .read(true)
        .write(true)
        .open(&path)
        .map_err(|e| Error::io(format!("open lock file {}", path.display()), e))?;
    // A lock released by `close` can look held for a moment: a child process this process
    // forked (any `Command::spawn`, in any thread) shares the lock's open file until it execs.
    // So a busy lock is tried again for a short while before the store counts as in use.
    let deadline = std::time::Instant::now() + LOCK_RETRY;
    loop {
        match file.try_lock() {
            Ok(()) => return Ok(file),
            Err(TryLockError::WouldBlock) if std::time::Instant::now() < deadline => {
                std::thread::sleep(Duration::from_millis(5));
            }
            Err(TryLockError::WouldBlock) => {
                return Err(Error::StoreInUse {
                    path: dir.to_owned(),
                });
            }
            Err(TryLockError::Error(e)) => {
                return Err(Error::io(format!("lock {}", path.display()), e));
            }
        }
    }
}

/// Locks `dir` and checks it is a store (or adopts it, see [`check_marker`]). When the check
/// refuses, a lock file this call created is removed again: a refused directory (a mistyped
/// path, a directory of someone's files) is left as it was found.
pub(crate) fn lock_and_check(dir: &Path, options: &StoreOptions) -> Result<File> {
    let lock_existed = dir.join(LOCK_FILE).exists();
    let lock = lock_store(dir)?;
    if let Err(e) = check_marker(dir, options) {
        if !lock_existed {
            let _ = fs::remove_file(dir.join(LOCK_FILE));
        }
        return Err(e);
    }
    Ok(lock)
}

/// How long a busy store lock is retried (see `lock_store`).
const LOCK_RETRY: Duration = Duration::from_millis(250);

fn check_marker(dir: &Path, options: &StoreOptions) -> Result<()> {
    let path = dir.join(MARKER_FILE);
    match fs::read_to_string(&path) {
        Ok(text) => {
            let version = text
                .trim()
                .strip_prefix("pipecache-store ")
                .and_then(|v| v.parse::<u32>().ok())
                .ok_or_else(|| Error::InvalidStoreDir {
                    path: dir.to_owned(),
                    reason: format!("{MARKER_FILE} marker is malformed: {:?}", text.trim()),
                })?;
            if version == 0 || version > STORE_VERSION {
                return Err(Error::UnsupportedVersion {
                    what: "store layout".into(),
                    found: version,
                    supported: STORE_VERSION,
                });
            }
            Ok(())
        }
        Err(e) if e.kind() == ErrorKind::NotFound => {
            // Adopt only an empty directory (or one a crash left half-initialized by us), so a
            // mistyped --dir never turns someone's directory into a store.
            let entries =
                fs::read_dir(dir).map_err(|e| Error::io(format!("list {}", dir.display()), e))?;
            for entry in entries {
                let entry = entry.map_err(|e| Error::io(format!("list {}", dir.display()), e))?;
                let name = entry.file_name();
                if ![LOCK_FILE, INDEX_DIR, CHUNK_DIR, "PIPECACHE.tmp"]
                    .iter()
                    .any(|n| name == *n)
                {
                    return Err(Error::InvalidStoreDir {
                        path: dir.to_owned(),
                        reason: format!(
                            "it is not empty and has no {MARKER_FILE} marker (found {:?}); refusing to turn it into a store",
                            name
                        ),
                    });
                }
            }
            if !options.create_if_missing {
                return Err(Error::NotFound {
                    what: format!("store in {}", dir.display()),
                });
            }
            let marker = format!("pipecache-store {STORE_VERSION}\n");
            replace_file(dir, MARKER_FILE, marker.as_bytes())
                .map_err(|e| Error::io(format!("write {}", path.display()), e))?;
            sync_dir(dir)?;
            Ok(())
        }
        Err(e) => Err(Error::io(format!("read {}", path.display()), e)),
    }
}
