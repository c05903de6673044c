use std::io;
use std::path::PathBuf;

use pipecache_format::{BlobHash, FormatError};
use pipecache_index::IndexError;

/// Errors of the pipecache store.
///
/// A miss is not an error: `get` returns `Ok(None)`. Corruption, I/O failure and "not found"
/// (something that must exist does not) are distinct variants so callers can count and react
/// to each differently.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
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
    #[error("corrupt data{}{}: {detail}", key.as_ref().map(|k| format!(" in key {k:?}")).unwrap_or_default(), blob.map(|b| format!(" blob {b}")).unwrap_or_default())]
    Corruption {
        /// The artifact key being read, when known.
        key: Option<String>,
        /// The damaged blob, when known.
        blob: Option<BlobHash>,
        /// What check failed.
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
    /// A remote tier failed: timeout, unreachable, refused. Never reported as a miss.
    #[error("tier {tier}: {source}")]
    Remote {
        /// The tier's name.
        tier: String,
        /// What the transport said.
        #[source]
        source: pipecache_remote::RemoteError,
    },
    /// A wait of this process's own (not a remote call) ran past its limit.
    #[error("timed out: {what}")]
    Timeout {
        /// What was still unfinished.
        what: String,
    },
    /// The store was closed or its writer thread stopped.
    #[error("store is closed")]
    Closed,
    /// Another manager on this store already serves the tier's queue (a remote tier name
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
pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    pub(crate) fn io(context: impl Into<String>, source: io::Error) -> Self {
        Self::Io {
            context: context.into(),
            source,
        }
    }

    pub(crate) fn corruption(
        key: Option<&str>,
        blob: Option<BlobHash>,
        detail: impl Into<String>,
    ) -> Self {
        Self::Corruption {
            key: key.map(str::to_owned),
            blob,
            detail: detail.into(),
        }
    }

    /// Maps a format error met while reading `blob` of `key`.
    pub(crate) fn from_format(e: FormatError, key: Option<&str>, blob: Option<BlobHash>) -> Self {
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
            FormatError::Io { context, source } => Self::Io { context, source },
            other => Self::corruption(key, blob, other.to_string()),
        }
    }

    /// True for corruption of stored data.
    pub fn is_corruption(&self) -> bool {
        matches!(self, Self::Corruption { .. })
    }

    /// True when a remote tier refuses its configuration (bad credentials, no such bucket):
    /// unlike an outage, retrying cannot help.
    pub fn is_misconfigured_remote(&self) -> bool {
        matches!(self, Self::Remote { source, .. } if source.is_config())
    }

    /// True when a remote call ran past its deadline.
    pub fn is_timeout(&self) -> bool {
        match self {
            Self::Remote { source, .. } => source.is_timeout(),
            Self::Timeout { .. } => true,
            _ => false,
        }
    }

    /// Wraps a transport error of tier `tier`.
    pub(crate) fn remote(tier: &str, source: pipecache_remote::RemoteError) -> Self {
        Self::Remote {
            tier: tier.to_owned(),
            source,
        }
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
            Self::Corruption { key, blob, detail } => Self::Corruption {
                key: key.clone(),
                blob: *blob,
                detail: detail.clone(),
            },
            Self::NotFound { what } => Self::NotFound { what: what.clone() },
            Self::Timeout { what } => Self::Timeout { what: what.clone() },
            Self::Io { context, source } => Self::Io {
                context: context.clone(),
                source: io::Error::new(source.kind(), source.to_string()),
            },
            Self::Index(e) => Self::Index(e.duplicate()),
            Self::Remote { tier, source } => Self::Remote {
                tier: tier.clone(),
                source: source.clone(),
            },
            Self::Closed => Self::Closed,
            Self::QueueInUse { queue } => Self::QueueInUse {
                queue: queue.clone(),
            },
        }
    }
}

impl From<IndexError> for Error {
    fn from(e: IndexError) -> Self {
        match e {
            IndexError::InUse { path } => Self::StoreInUse { path },
            IndexError::Record {
                source: e @ FormatError::UnsupportedVersion { .. },
                ..
            } => Self::from_format(e, None, None),
            e @ IndexError::Record { .. } => Self::Corruption {
                key: None,
                blob: None,
                detail: e.to_string(),
            },
            other => Self::Index(other),
        }
    }
}

impl From<FormatError> for Error {
    fn from(e: FormatError) -> Self {
        Self::from_format(e, None, None)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn duplicates_keep_their_variant() {
        let index = Error::Index(IndexError::InUse {
            path: PathBuf::from("/x"),
        });
        assert!(matches!(
            index.duplicate(),
            Error::Index(IndexError::InUse { path }) if path == std::path::Path::new("/x")
        ));
        let io = Error::io("append", io::Error::new(io::ErrorKind::StorageFull, "full"));
        match io.duplicate() {
            Error::Io { context, source } => {
                assert_eq!(context, "append");
                assert_eq!(source.kind(), io::ErrorKind::StorageFull);
            }
            other => panic!("{other:?}"),
        }
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
