/// A configuration that cannot be used: a bad value, an unknown field, a missing one. The
/// reason names the field and the file or source it came from.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ConfigError {
    /// A value or a field is unusable.
    #[error("invalid option: {reason}")]
    Invalid {
        /// Why, naming the field and its origin.
        reason: String,
    },
}

impl ConfigError {
    /// An invalid value or structure in the configuration from `origin` (a file name, or
    /// where the values came from): the one place the origin is written into a message.
    pub fn in_file(origin: &str, reason: impl std::fmt::Display) -> Self {
        Self::Invalid {
            reason: format!("config {origin}: {reason}"),
        }
    }
}

/// Result alias for this crate.
pub type Result<T, E = ConfigError> = std::result::Result<T, E>;
