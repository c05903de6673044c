use std::time::Duration;

/// Errors of a remote transport. A missing object on a read is not an error (`Ok(None)`);
/// [`RemoteError::NotFound`] is for things that must exist (a bucket, a pack a record names).
#[derive(Clone, Debug, thiserror::Error)]
#[non_exhaustive]
pub enum RemoteError {
    /// The remote's configuration is unusable (bad URL, missing bucket, bad credentials).
    #[error("remote {target}: invalid configuration: {reason}")]
    Config {
        /// Which remote (endpoint and bucket or path; never credentials).
        target: String,
        /// Why.
        reason: String,
    },
    /// The call did not finish within its deadline.
    #[error("remote {target}: {op} timed out after {after:?}")]
    Timeout {
        /// Which remote.
        target: String,
        /// What was being done.
        op: String,
        /// The deadline.
        after: Duration,
    },
    /// The remote could not be reached or refused the connection; retrying later may work.
    #[error("remote {target}: {op} failed, remote unavailable: {detail}")]
    Unavailable {
        /// Which remote.
        target: String,
        /// What was being done.
        op: String,
        /// The transport's message.
        detail: String,
    },
    /// An object that must exist does not.
    #[error("remote {target}: {path} not found")]
    NotFound {
        /// Which remote.
        target: String,
        /// Object path.
        path: String,
    },
    /// Any other failure reported by the remote (permission denied, unexpected response).
    #[error("remote {target}: {op} failed: {detail}")]
    Backend {
        /// Which remote.
        target: String,
        /// What was being done.
        op: String,
        /// The remote's message.
        detail: String,
    },
}

impl RemoteError {
    /// True for timeouts.
    pub fn is_timeout(&self) -> bool {
        matches!(self, Self::Timeout { .. })
    }

    /// True when the remote refuses how it is configured (credentials, bucket, URL): waiting
    /// will not help, someone must fix the configuration.
    pub fn is_config(&self) -> bool {
        matches!(self, Self::Config { .. })
    }
}

/// Result alias for this crate.
pub type Result<T, E = RemoteError> = std::result::Result<T, E>;
