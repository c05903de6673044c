//! The engine's errors as the exceptions of `pipecache._errors`, classified by kind (the
//! errors' `is_*` methods and variants), never by message text.

use pipecache::{StoreError, TierError};
use pipecache_pipeline::PipelineError;
use pyo3::PyErr;

pyo3::import_exception!(pipecache._errors, CacheError);
pyo3::import_exception!(pipecache._errors, CorruptionError);
pyo3::import_exception!(pipecache._errors, StoreInUseError);
pyo3::import_exception!(pipecache._errors, NoSpaceError);
pyo3::import_exception!(pipecache._errors, RemoteError);
pyo3::import_exception!(pipecache._errors, TimeoutError);
pyo3::import_exception!(pipecache._errors, ConfigError);
pyo3::import_exception!(pipecache._errors, InvalidInputError);
pyo3::import_exception!(pipecache._errors, ClosedError);
pyo3::import_exception!(pipecache._errors, VideoError);

/// The exception for an engine error.
pub(crate) fn tier_error(e: impl Into<TierError>) -> PyErr {
    let e: TierError = e.into();
    let message = e.to_string();
    if e.is_timeout() {
        return TimeoutError::new_err(message);
    }
    if e.is_corruption() || e.is_index_damage() {
        return CorruptionError::new_err(message);
    }
    if e.is_no_space() {
        return NoSpaceError::new_err(message);
    }
    if e.is_closed() {
        return ClosedError::new_err(message);
    }
    match &e {
        TierError::Remote { .. } => RemoteError::new_err(message),
        TierError::Config(_) => ConfigError::new_err(message),
        TierError::Store(store) => match store {
            StoreError::StoreInUse { .. } => StoreInUseError::new_err(message),
            StoreError::InvalidKey { .. }
            | StoreError::InvalidArtifact { .. }
            | StoreError::TooLarge { .. } => InvalidInputError::new_err(message),
            StoreError::InvalidOption { .. } => ConfigError::new_err(message),
            _ => CacheError::new_err(message),
        },
        _ => CacheError::new_err(message),
    }
}

/// The exception for a pipeline-layer error.
pub(crate) fn pipeline_error(e: PipelineError) -> PyErr {
    match e {
        PipelineError::Store(e) => tier_error(e),
        e @ PipelineError::Video { .. } => VideoError::new_err(e.to_string()),
        e @ PipelineError::Invalid { .. } => InvalidInputError::new_err(e.to_string()),
        e @ PipelineError::BadArtifact { .. } => CorruptionError::new_err(e.to_string()),
        e => CacheError::new_err(e.to_string()),
    }
}

/// A caller's bad argument (`what` names it).
pub(crate) fn invalid(what: &str, reason: impl std::fmt::Display) -> PyErr {
    InvalidInputError::new_err(format!("{what}: {reason}"))
}
