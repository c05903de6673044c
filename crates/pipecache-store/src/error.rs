use std::io;
use std::path::PathBuf;

use pipecache_format::{BlobHash, FormatError};
use pipecache_index::IndexError;

/// Errors of the local store.
///
/// A miss is not an error: `get` returns `Ok(None)`. Corruption, I/O failure and "not found"
/// (something that must exist does not) are distinct variants so callers can count and react
/// to each differently.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StoreError {
    /// The artifact key is empty, too long, or otherwise unusable.
    #[error("invalid key: {reason}")]
    InvalidKey {
        /// Why.
        reason: String,
    },
    /// The artifact (parts, names, metadata) is unusable.
    #[error("invalid artifact: {reason}")]
    InvalidArtifact {
        /// Why.
        reason: String,
    },
    /// One artifact is larger than the store's whole size budget.
    #[error("artifact is {size} bytes, larger than the store's max_size of {max_size} bytes")]
    TooLarge {
        /// Logical size of the artifact.
        size: u64,
        /// The budget.
        max_size: u64,
    },
    /// Invalid options or configuration.
    #[error("invalid option: {reason}")]
    InvalidOption {
        /// Why.
        reason: String,
    },
    /// Another process (or another open `Store` in this one) owns the store directory.
    #[error(
        "store {path} is in use by another process; one process owns a store directory at a time"
    )]
    StoreInUse {
        /// Store directory.
        path: PathBuf,
    },
    /// The store path cannot be a store (it is a file, or a foreign non-empty directory).
    #[error("{path} is not a usable store directory: {reason}")]
    InvalidStoreDir {
        /// The path given.
        path: PathBuf,
        /// Why.
        reason: String,
    },
    /// Chunk files exist but their index does not; opening would shadow committed data.
    #[error(
        "store {path} has chunk files but no index; run `pipecache rebuild-index` to recover it"
    )]
    IndexMissing {
        /// Store directory.
        path: PathBuf,
    },
    /// Bytes written by a newer pipecache.
    #[error(
        "{what} has format version {found}; this pipecache reads up to {supported}: upgrade pipecache"
    )]
    UnsupportedVersion {
        /// Which structure.
        what: String,
        /// Version found.
        found: u32,
        /// Highest supported.
        supported: u32,
    },
    /// Stored bytes failed a check; they were not returned.
    #[error("corrupt data{}{}{}: {detail}", if *in_index { " in the index" } else { "" }, key.as_ref().map(|k| format!(" in key {k:?}")).unwrap_or_default(), blob.map(|b| format!(" blob {b}")).unwrap_or_default())]
    Corruption {
        /// The artifact key being read, when known.
        key: Option<String>,
        /// The damaged blob, when known.
        blob: Option<BlobHash>,
        /// What check failed (for RocksDB's own files, its message, which names the file).
        detail: String,
        /// The damage is in the index (RocksDB's files or its records), which
        /// `rebuild-index --force` restores from the chunk files; otherwise it is in a chunk
        /// file.
        in_index: bool,
    },
    /// The filesystem is full, or a put would leave less than `min_free_space` free. A
    /// refused put wrote and committed nothing; reads, deletes and gc still work.
    #[error("no space: {detail}")]
    NoSpace {
        /// What was refused, and the free space seen.
        detail: String,
    },
    /// Something that must exist does not (for example a store opened without `create`).
    #[error("not found: {what}")]
    NotFound {
        /// What was missing.
        what: String,
    },
    /// An operating-system I/O error.
    #[error("{context}: {source}")]
    Io {
        /// What was being done.
        context: String,
        /// The OS error.
        #[source]
        source: io::Error,
    },
    /// RocksDB failed.
    #[error(transparent)]
    Index(IndexError),
    /// The store was closed or its writer thread stopped.
    #[error("store is closed")]
    Closed,
    /// Another consumer on this store already holds the outbox queue (a remote tier name
    /// used by two managers at once: each would upload and count the other's entries).
    #[error(
        "upload queue {queue:?} is already served by another manager on this store; close it first (a dropped one lets go once its workers stop), or clone that manager to share it"
    )]
    QueueInUse {
        /// Queue name (`write-back:<tier name>`).
        queue: String,
    },
}

/// Result alias for this crate.
pub type Result<T, E = StoreError> = std::result::Result<T, E>;

impl StoreError {
    /// An I/O error; a full filesystem (or quota) is [`StoreError::NoSpace`], wherever it happens.
    pub(crate) fn io(context: impl Into<String>, source: io::Error) -> Self {
        match source.kind() {
            io::ErrorKind::StorageFull | io::ErrorKind::QuotaExceeded => Self::NoSpace {
                detail: format!("{}: {source}", context.into()),
            },
            _ => Self::Io {
                context: context.into(),
                source,
            },
        }
    }

    /// Corruption of a blob (`blob`) of artifact `key`, outside the index.
    pub fn corruption(
        key: Option<&str>,
        blob: Option<BlobHash>,
        detail: impl Into<String>,
    ) -> Self {
        Self::Corruption {
            key: key.map(str::to_owned),
            blob,
            detail: detail.into(),
            in_index: false,
        }
    }

    /// Maps a format error met while reading `blob` of `key`.
    pub fn from_format(e: FormatError, key: Option<&str>, blob: Option<BlobHash>) -> Self {
        match e {
            FormatError::UnsupportedVersion {
                what,
                found,
                supported,
            } => Self::UnsupportedVersion {
                what: what.to_owned(),
                found,
                supported,
            },
            FormatError::Io { context, source } if source.kind() == io::ErrorKind::NotFound => {
                Self::corruption(key, blob, format!("{context}: chunk file is missing"))
            }
            FormatError::Io { context, source } => Self::io(context, source),
            other => Self::corruption(key, blob, other.to_string()),
        }
    }

    /// True for corruption of stored data.
    pub fn is_corruption(&self) -> bool {
        matches!(self, Self::Corruption { .. })
    }

    /// True when the index is damaged or lost (chunk files without it): `rebuild-index
    /// --force` restores it from the chunk files.
    pub fn is_index_damage(&self) -> bool {
        matches!(
            self,
            Self::Corruption { in_index: true, .. } | Self::IndexMissing { .. }
        )
    }

    /// True when the filesystem is full or a put would cross `min_free_space`.
    pub fn is_no_space(&self) -> bool {
        matches!(self, Self::NoSpace { .. })
    }

    /// A copy for fanning one batch failure out to every request of the batch: same variant,
    /// same fields (an I/O error keeps its kind and message).
    pub(crate) fn duplicate(&self) -> Self {
        match self {
            Self::InvalidKey { reason } => Self::InvalidKey {
                reason: reason.clone(),
            },
            Self::InvalidArtifact { reason } => Self::InvalidArtifact {
                reason: reason.clone(),
            },
            Self::TooLarge { size, max_size } => Self::TooLarge {
                size: *size,
                max_size: *max_size,
            },
            Self::InvalidOption { reason } => Self::InvalidOption {
                reason: reason.clone(),
            },
            Self::StoreInUse { path } => Self::StoreInUse { path: path.clone() },
            Self::InvalidStoreDir { path, reason } => Self::InvalidStoreDir {
                path: path.clone(),
                reason: reason.clone(),
            },
            Self::IndexMissing { path } => Self::IndexMissing { path: path.clone() },
            Self::UnsupportedVersion {
                what,
                found,
                supported,
            } => Self::UnsupportedVersion {
                what: what.clone(),
                found: *found,
                supported: *supported,
            },
            Self::Corruption {
                key,
                blob,
                detail,
                in_index,
            } => Self::Corruption {
                key: key.clone(),
                blob: *blob,
                detail: detail.clone(),
                in_index: *in_index,
            },
            Self::NoSpace { detail } => Self::NoSpace {
                detail: detail.clone(),
            },
            Self::NotFound { what } => Self::NotFound { what: what.clone() },
            Self::Io { context, source } => Self::Io {
                context: context.clone(),
                source: io::Error::new(source.kind(), source.to_string()),
            },
            Self::Index(e) => Self::Index(e.duplicate()),
            Self::Closed => Self::Closed,
            Self::QueueInUse { queue } => Self::QueueInUse {
                queue: queue.clone(),
            },
        }
    }
}

impl From<IndexError> for StoreError {
    fn from(e: IndexError) -> Self {
        match e {
            IndexError::Record {
                source: e @ FormatError::UnsupportedVersion { .. },
                ..
            } => Self::from_format(e, None, None),
            e if e.is_corruption() => Self::Corruption {
                key: None,
                blob: None,
                detail: e.to_string(),
                in_index: true,
            },
            e if e.is_no_space() => Self::NoSpace {
                detail: e.to_string(),
            },
            other => Self::Index(other),
        }
    }
}

impl From<FormatError> for StoreError {
    fn from(e: FormatError) -> Self {
        Self::from_format(e, None, None)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use StoreError as Error;

    /// ENOSPC on Linux (errno 28), which std maps to `ErrorKind::StorageFull`.
    fn libc_enospc() -> i32 {
        28
    }

    #[test]
    fn duplicates_keep_their_variant() {
        let index = Error::Corruption {
            key: None,
            blob: None,
            detail: "x".into(),
            in_index: true,
        };
        assert!(index.duplicate().is_index_damage());
        let io = Error::io(
            "append",
            io::Error::new(io::ErrorKind::PermissionDenied, "no"),
        );
        match io.duplicate() {
            Error::Io { context, source } => {
                assert_eq!(context, "append");
                assert_eq!(source.kind(), io::ErrorKind::PermissionDenied);
            }
            other => panic!("{other:?}"),
        }
        let full = Error::io("append", io::Error::from_raw_os_error(libc_enospc()));
        assert!(full.duplicate().is_no_space(), "{full:?}");
        let tl = Error::TooLarge {
            size: 5,
            max_size: 4,
        };
        assert!(matches!(
            tl.duplicate(),
            Error::TooLarge {
                size: 5,
                max_size: 4
            }
        ));
    }
}
