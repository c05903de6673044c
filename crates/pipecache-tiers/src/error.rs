use pipecache_config::ConfigError;
use pipecache_remote::RemoteError;
use pipecache_store::StoreError;

/// Errors of the tiers and the cache manager.
///
/// The local store's own errors pass through as [`TierError::Store`] (a miss is still
/// `Ok(None)`); what only tiers can meet has variants of its own. Classify with the `is_*`
/// methods, which look through both.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum TierError {
    /// The local store failed, or refused the request (bad key, too large, corrupt bytes,
    /// closed): the same vocabulary the remote tiers use for the same conditions.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// A remote tier failed: timeout, unreachable, refused. Never reported as a miss.
    #[error("tier {tier}: {source}")]
    Remote {
        /// The tier's name.
        tier: String,
        /// What the transport said.
        #[source]
        source: RemoteError,
    },
    /// The configuration cannot be used.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// A wait of this process's own (not a remote call) ran past its limit.
    #[error("timed out: {what}")]
    Timeout {
        /// What was still unfinished.
        what: String,
    },
}

/// Result alias for this crate.
pub type Result<T, E = TierError> = std::result::Result<T, E>;

impl TierError {
    /// Wraps a transport error of tier `tier`.
    pub(crate) fn remote(tier: &str, source: RemoteError) -> Self {
        Self::Remote {
            tier: tier.to_owned(),
            source,
        }
    }

    /// An invalid option or configuration value (a builder's, not a config file's).
    pub(crate) fn invalid(reason: impl Into<String>) -> Self {
        Self::Config(ConfigError::Invalid {
            reason: reason.into(),
        })
    }

    /// The local store's error, when this is one.
    pub fn as_store(&self) -> Option<&StoreError> {
        match self {
            Self::Store(e) => Some(e),
            _ => None,
        }
    }

    /// True for corruption of stored data, local or remote.
    pub fn is_corruption(&self) -> bool {
        self.as_store().is_some_and(StoreError::is_corruption)
    }

    /// True when the local index is damaged or lost (see [`StoreError::is_index_damage`]).
    pub fn is_index_damage(&self) -> bool {
        self.as_store().is_some_and(StoreError::is_index_damage)
    }

    /// True when the local filesystem is full or a put would cross `min_free_space`.
    pub fn is_no_space(&self) -> bool {
        self.as_store().is_some_and(StoreError::is_no_space)
    }

    /// True when a remote tier refuses its configuration (bad credentials, no such bucket):
    /// unlike an outage, retrying cannot help.
    pub fn is_misconfigured_remote(&self) -> bool {
        matches!(self, Self::Remote { source, .. } if source.is_config())
    }

    /// True when a remote call, or a wait of this process's own, ran past its deadline.
    pub fn is_timeout(&self) -> bool {
        match self {
            Self::Remote { source, .. } => source.is_timeout(),
            Self::Timeout { .. } => true,
            _ => false,
        }
    }

    /// True when a remote tier failed other than by refusing its configuration: unreachable,
    /// past its deadline, or answering with an error.
    pub fn is_remote_failure(&self) -> bool {
        matches!(self, Self::Remote { source, .. } if !source.is_config())
    }

    /// True when the store (or the manager) was closed.
    pub fn is_closed(&self) -> bool {
        matches!(self, Self::Store(StoreError::Closed))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The classifiers look through the store's error carried whole, and tell a remote
    /// tier's refused configuration, its timeouts and its failures apart from the rest.
    #[test]
    fn classification_looks_through_the_store_error() {
        let corrupt = TierError::from(StoreError::corruption(Some("k"), None, "bad"));
        assert!(corrupt.is_corruption() && !corrupt.is_timeout());
        assert!(TierError::from(StoreError::Closed).is_closed());
        let full = TierError::from(StoreError::NoSpace {
            detail: "full".into(),
        });
        assert!(full.is_no_space() && !full.is_index_damage());
        let timeout = TierError::remote(
            "s3",
            RemoteError::Timeout {
                target: "s3://b".into(),
                op: "get".into(),
                after: std::time::Duration::from_secs(1),
            },
        );
        assert!(timeout.is_timeout() && !timeout.is_misconfigured_remote());
        let refused = TierError::remote(
            "s3",
            RemoteError::Config {
                target: "s3://b".into(),
                reason: "no such bucket".into(),
            },
        );
        assert!(refused.is_misconfigured_remote() && !refused.is_timeout());
        assert!(refused.as_store().is_none());
        // What pauses a tier's reads: its failures, never a refused configuration (the
        // caller's to fix) nor corrupt data (reported, not skipped).
        assert!(timeout.is_remote_failure());
        assert!(!refused.is_remote_failure() && !corrupt.is_remote_failure());
        assert!(
            TierError::invalid("x")
                .to_string()
                .contains("invalid option: x")
        );
    }
}
