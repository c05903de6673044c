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

/// Result alias for this crate.
pub type Result<T, E = ConfigError> = std::result::Result<T, E>;
