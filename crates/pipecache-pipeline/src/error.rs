use std::path::PathBuf;

/// Errors of the pipeline layer.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum PipelineError {
    /// The source video cannot be fingerprinted.
    #[error("video {path}: {reason}")]
    Video {
        /// The path given.
        path: PathBuf,
        /// Why (missing, a directory, unreadable...).
        reason: String,
    },
    /// A parameter, kind or key is malformed.
    #[error("invalid {what}: {reason}")]
    Invalid {
        /// What was being parsed.
        what: &'static str,
        /// Why.
        reason: String,
    },
    /// An artifact under a key does not decode as the kind the key names.
    #[error("artifact {key} is not a valid {kind} artifact: {reason}")]
    BadArtifact {
        /// The key.
        key: String,
        /// The kind expected.
        kind: &'static str,
        /// Why.
        reason: String,
    },
    /// The store failed (corruption, I/O, ...).
    #[error(transparent)]
    Store(#[from] pipecache::Error),
}

/// Result alias for this crate.
pub type Result<T, E = PipelineError> = std::result::Result<T, E>;

impl From<pipecache::StoreError> for PipelineError {
    fn from(e: pipecache::StoreError) -> Self {
        Self::Store(e.into())
    }
}

pub(crate) fn invalid(what: &'static str, reason: impl Into<String>) -> PipelineError {
    PipelineError::Invalid {
        what,
        reason: reason.into(),
    }
}
