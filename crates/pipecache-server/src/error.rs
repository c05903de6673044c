//! Why a server could not start or stopped badly.

use std::path::PathBuf;

/// Errors of `pipecache serve`.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ServeError {
    /// Opening or closing the store and its tiers failed.
    #[error(transparent)]
    Cache(#[from] pipecache::Error),
    /// Another server holds the store.
    #[error("store {dir} is already served by pid {pid} on {socket}; one server per store")]
    AlreadyServed {
        /// Store directory.
        dir: PathBuf,
        /// The running server's process id.
        pid: u32,
        /// Its socket.
        socket: PathBuf,
    },
    /// The options cannot be used.
    #[error("invalid option: {reason}")]
    InvalidOption {
        /// Why.
        reason: String,
    },
    /// Binding, configuring or publishing the socket failed.
    #[error("{context}: {source}")]
    Io {
        /// What was being done.
        context: String,
        /// The OS error.
        #[source]
        source: std::io::Error,
    },
}

impl ServeError {
    pub(crate) fn io(context: impl Into<String>, source: std::io::Error) -> Self {
        Self::Io {
            context: context.into(),
            source,
        }
    }
}
