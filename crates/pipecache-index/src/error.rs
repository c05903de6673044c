//! The index's error type, and how RocksDB's errors map onto it: by status code, never by
//! what the rest of a message says.

use pipecache_format::FormatError;

/// Errors of the index layer.
///
/// RocksDB's errors are classified by their status code (and, for a full disk, its
/// subcode), never by what the rest of the message says: RocksDB's own texts mention
/// "lock" in corruption reports ("block checksum mismatch").
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum IndexError {
    /// RocksDB refused an operation for a reason other than the ones below (an I/O error,
    /// an invalid argument, ...).
    #[error("index {context}: {source}")]
    RocksDb {
        /// What was being done.
        context: String,
        /// RocksDB's error.
        #[source]
        source: rocksdb::Error,
    },
    /// RocksDB found its own files damaged (status code Corruption): a checksum mismatch in
    /// an SST, a truncated MANIFEST, a missing CURRENT file. RocksDB's message names the file.
    #[error("index {context}: the index is damaged: {detail}")]
    Corruption {
        /// What was being done (for an open, the index directory).
        context: String,
        /// What RocksDB (or the open's own check) found.
        detail: String,
    },
    /// The filesystem is full (I/O error with subcode NoSpace).
    #[error("index {context}: no space left on the device: {source}")]
    NoSpace {
        /// What was being done.
        context: String,
        /// RocksDB's error.
        #[source]
        source: rocksdb::Error,
    },
    /// A stored value or key did not decode.
    #[error("index {cf} entry {key}: {source}")]
    Record {
        /// Column family.
        cf: &'static str,
        /// Printable form of the key.
        key: String,
        /// The decoder's error.
        #[source]
        source: FormatError,
    },
}

impl IndexError {
    /// A copy with the same variant (see [`FormatError::duplicate`]).
    pub fn duplicate(&self) -> Self {
        match self {
            Self::RocksDb { context, source } => Self::RocksDb {
                context: context.clone(),
                source: source.clone(),
            },
            Self::Corruption { context, detail } => Self::Corruption {
                context: context.clone(),
                detail: detail.clone(),
            },
            Self::NoSpace { context, source } => Self::NoSpace {
                context: context.clone(),
                source: source.clone(),
            },
            Self::Record { cf, key, source } => Self::Record {
                cf,
                key: key.clone(),
                source: source.duplicate(),
            },
        }
    }
    /// True when the index's files or a stored record are damaged (or from a newer version).
    pub fn is_corruption(&self) -> bool {
        matches!(self, Self::Record { .. } | Self::Corruption { .. })
    }

    /// True when the filesystem holding the index is full.
    pub fn is_no_space(&self) -> bool {
        matches!(self, Self::NoSpace { .. })
    }
}

/// What a RocksDB status means to the store.
#[derive(Debug, PartialEq, Eq)]
enum StatusClass {
    Corruption,
    NoSpace,
    Other,
}

/// Reads the code and subcode of a RocksDB status from its text. The binding hands a status
/// over only as `Status::ToString`'s string, whose layout is fixed (util/status.cc): the
/// code's prefix ("Corruption: ", "IO error: "), then the subcode's text
/// ("No space left on device"), then the state. `rocksdb::Error::kind` reads the code the
/// same way; the subcode it does not read.
fn status_class(status: &str) -> StatusClass {
    let (code, rest) = status.split_once(": ").unwrap_or((status, ""));
    match code {
        "Corruption" => StatusClass::Corruption,
        "IO error" if rest.starts_with("No space left on device") => StatusClass::NoSpace,
        _ => StatusClass::Other,
    }
}

/// Classifies a RocksDB error by status code.
pub(crate) fn classify(context: String, source: rocksdb::Error) -> IndexError {
    match status_class(source.as_ref()) {
        StatusClass::Corruption => IndexError::Corruption {
            context,
            detail: source.into_string(),
        },
        StatusClass::NoSpace => IndexError::NoSpace { context, source },
        StatusClass::Other => IndexError::RocksDb { context, source },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statuses_are_classified_by_code_and_subcode() {
        // RocksDB's corruption texts contain "lock": not a lock conflict.
        assert_eq!(
            status_class(
                "Corruption: block checksum mismatch: stored = 1, computed = 2 in /i/000012.sst"
            ),
            StatusClass::Corruption
        );
        assert_eq!(
            status_class(
                "IO error: No space left on device: While appending to file: /i/000009.log"
            ),
            StatusClass::NoSpace
        );
        // Only the store's own lock file means "in use"; RocksDB's is an I/O error.
        assert_eq!(
            status_class("IO error: While lock file: /i/LOCK: Resource temporarily unavailable"),
            StatusClass::Other
        );
        // The subcode's text elsewhere in the message is not the subcode.
        assert_eq!(
            status_class("IO error: While open /x/No space left on device: not found"),
            StatusClass::Other
        );
        assert_eq!(status_class("Corruption"), StatusClass::Corruption);
    }
}
