//! Free space: the `min_free_space` limit on puts and the reserve file that lets a store on a
//! full filesystem still open, delete and collect garbage.
//!
//! Why a reserve: a store whose filesystem another program filled cannot even open (RocksDB
//! writes a MANIFEST, an OPTIONS file and a WAL at open), nor write the tombstone a delete
//! leaves in its chunk file, so it could never free the space it holds. The store keeps a
//! preallocated file of a few MiB beside its index; when free space falls under that size the
//! file is deleted, which gives open, `rm` and `gc` room, and it is allocated again once
//! space is back. A put never uses the reserve: puts stop at `min_free_space`, which is
//! larger.
//!
//! This module only measures and manages files in the store directory; the writer decides
//! what to refuse.

use std::fs::{File, OpenOptions};
use std::io::ErrorKind;
use std::path::{Path, PathBuf};

use serde::Serialize;

use crate::layout::RESERVE_FILE;
use crate::{Error, Result};

/// The default `min_free_space`: the smaller of 1 GiB and 5% of the filesystem.
const DEFAULT_MIN_FREE_BYTES: u64 = 1 << 30;
const DEFAULT_MIN_FREE_PERCENT: u64 = 5;

/// Largest reserve, and its share of a small filesystem (1/64): a test's 40 MiB tmpfs gets a
/// 640 KiB reserve, any real disk 16 MiB. Open, a delete and a GC commit need tens of KiB.
const RESERVE_MAX_BYTES: u64 = 16 << 20;
const RESERVE_FS_SHARE: u64 = 64;

/// Space on the filesystem that holds a store.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, serde::Deserialize)]
pub struct FsSpace {
    /// Bytes an unprivileged writer may still use.
    pub free_bytes: u64,
    /// Size of the filesystem.
    pub total_bytes: u64,
}

/// Free and total bytes of the filesystem holding `path`.
pub(crate) fn fs_space(path: &Path) -> Result<FsSpace> {
    let st = rustix::fs::statvfs(path)
        .map_err(|e| Error::io(format!("statvfs {}", path.display()), e.into()))?;
    Ok(FsSpace {
        free_bytes: st.f_bavail.saturating_mul(st.f_frsize),
        total_bytes: st.f_blocks.saturating_mul(st.f_frsize),
    })
}

/// The free space puts must leave: `configured`, or by default the smaller of 1 GiB and 5%
/// of the filesystem.
pub(crate) fn effective_min_free(configured: Option<u64>, space: FsSpace) -> u64 {
    configured.unwrap_or_else(|| {
        DEFAULT_MIN_FREE_BYTES.min(space.total_bytes / 100 * DEFAULT_MIN_FREE_PERCENT)
    })
}

/// What puts may still write under `dir` without crossing `min_free_space`: the filesystem's
/// free bytes, the floor kept free, and the room between them. `None` when measuring failed
/// (logged): the write itself still meets a full disk as `NoSpace`.
pub(crate) struct WriteRoom {
    pub free_bytes: u64,
    pub min_free: u64,
    pub room: u64,
}

pub(crate) fn write_room(dir: &Path, min_free_space: Option<u64>) -> Option<WriteRoom> {
    match fs_space(dir) {
        Ok(space) => {
            let min_free = effective_min_free(min_free_space, space);
            Some(WriteRoom {
                free_bytes: space.free_bytes,
                min_free,
                room: space.free_bytes.saturating_sub(min_free),
            })
        }
        Err(e) => {
            tracing::warn!(error = %e, "free space unknown; puts not checked against min_free_space");
            None
        }
    }
}

fn reserve_bytes(space: FsSpace) -> u64 {
    RESERVE_MAX_BYTES.min(space.total_bytes / RESERVE_FS_SHARE)
}

/// The store's reserve file.
#[derive(Debug)]
pub(crate) struct Reserve {
    path: PathBuf,
}

impl Reserve {
    pub(crate) fn new(store_dir: &Path) -> Self {
        Self {
            path: store_dir.join(RESERVE_FILE),
        }
    }

    /// Releases the reserve when free space is under its size (the filesystem is full or
    /// nearly), and allocates it again when there is room for it and `min_free` beyond.
    /// Never fails on a full disk: a reserve that cannot be allocated is simply absent
    /// until space comes back.
    pub(crate) fn adjust(&self, min_free: Option<u64>) -> Result<()> {
        let dir = self
            .path
            .parent()
            .expect("the reserve lives in the store directory");
        let space = fs_space(dir)?;
        let want = reserve_bytes(space);
        let held = match std::fs::metadata(&self.path) {
            Ok(m) => m.len(),
            Err(e) if e.kind() == ErrorKind::NotFound => 0,
            Err(e) => return Err(Error::io(format!("stat {}", self.path.display()), e)),
        };
        if held > 0 && space.free_bytes < want {
            tracing::warn!(
                free_bytes = space.free_bytes,
                reserve_bytes = held,
                "filesystem full: releasing the store's reserve so it can open, delete and gc"
            );
            return std::fs::remove_file(&self.path)
                .map_err(|e| Error::io(format!("remove {}", self.path.display()), e));
        }
        let room = space.free_bytes >= want + effective_min_free(min_free, space);
        if held < want
            && room
            && let Err(e) = self.allocate(want)
        {
            // Not having a reserve is not an error; it is retried at the next adjust.
            tracing::debug!(error = %e, "reserve not allocated");
            let _ = std::fs::remove_file(&self.path);
        }
        Ok(())
    }

    fn allocate(&self, bytes: u64) -> std::io::Result<()> {
        let file: File = OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&self.path)?;
        // fallocate reserves blocks without writing them; filesystems without it get
        // zeroes written (a sparse file would reserve nothing).
        match rustix::fs::fallocate(&file, rustix::fs::FallocateFlags::empty(), 0, bytes) {
            Ok(()) => {}
            Err(rustix::io::Errno::OPNOTSUPP) => {
                use std::io::Write;
                let zeros = vec![0u8; 1 << 20];
                let mut left = bytes;
                let mut w = std::io::BufWriter::new(&file);
                while left > 0 {
                    let n = left.min(zeros.len() as u64) as usize;
                    w.write_all(&zeros[..n])?;
                    left -= n as u64;
                }
                w.flush()?;
            }
            Err(e) => return Err(e.into()),
        }
        file.sync_all()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_min_free_is_the_smaller_of_1gib_and_5_percent() {
        let small = FsSpace {
            free_bytes: 0,
            total_bytes: 40 << 20,
        };
        assert_eq!(effective_min_free(None, small), (40 << 20) / 100 * 5);
        let big = FsSpace {
            free_bytes: 0,
            total_bytes: 1 << 40,
        };
        assert_eq!(effective_min_free(None, big), 1 << 30);
        assert_eq!(effective_min_free(Some(7), big), 7);
    }

    #[test]
    fn the_reserve_is_allocated_when_space_allows() {
        let dir = tempfile::tempdir().unwrap();
        let reserve = Reserve::new(dir.path());
        reserve.adjust(Some(0)).unwrap();
        let len = std::fs::metadata(dir.path().join(RESERVE_FILE))
            .unwrap()
            .len();
        assert_eq!(len, reserve_bytes(fs_space(dir.path()).unwrap()));
        assert!(len > 0);
    }
}
