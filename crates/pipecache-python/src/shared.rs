//! The cache every Python handle of one `CacheManager` shares: opened on the first call (so
//! opening, which reads the index, happens inside a coroutine, not in a constructor that
//! would block the event loop), closed once for all of them.

use std::path::PathBuf;

use pipecache::{Cache, CacheConfig, StoreOptions};
use pipecache_pipeline::{FingerprintMode, PipelineArtifactCache};
use pyo3::PyResult;

use crate::errors::{ClosedError, tier_error};

/// What opening needs.
#[derive(Debug)]
pub(crate) struct OpenSpec {
    /// The parsed, validated configuration.
    pub(crate) config: CacheConfig,
    /// The store's directory when the config names none.
    pub(crate) default_dir: PathBuf,
    /// Names the config in errors (`CacheConfig`, or the TOML file's path).
    pub(crate) origin: String,
}

#[derive(Debug)]
enum State {
    Unopened,
    Open {
        manager: Cache,
        /// One per fingerprint mode, so each keeps its fingerprint memo across calls.
        pipelines: Vec<(FingerprintMode, PipelineArtifactCache)>,
    },
    Closed,
}

/// The lazily opened manager.
#[derive(Debug)]
pub(crate) struct Shared {
    spec: OpenSpec,
    state: tokio::sync::Mutex<State>,
}

impl Shared {
    pub(crate) fn new(spec: OpenSpec) -> Self {
        Self {
            spec,
            state: tokio::sync::Mutex::new(State::Unopened),
        }
    }

    /// The store's directory.
    pub(crate) fn dir(&self) -> PathBuf {
        self.spec
            .config
            .local_path(&self.spec.origin)
            .ok()
            .flatten()
            .map(PathBuf::from)
            .unwrap_or_else(|| self.spec.default_dir.clone())
    }

    async fn open_locked(&self, state: &mut State) -> PyResult<()> {
        match state {
            State::Open { .. } => Ok(()),
            State::Closed => Err(ClosedError::new_err("the cache was closed")),
            State::Unopened => {
                // The store in this process, or the `pipecache serve` holding it.
                let manager = Cache::open(
                    &self.spec.config,
                    &self.spec.default_dir,
                    StoreOptions {
                        key_classifier: Some(pipecache_pipeline::key_classifier()),
                        ..StoreOptions::default()
                    },
                    &self.spec.origin,
                )
                .await
                .map_err(tier_error)?;
                *state = State::Open {
                    manager,
                    pipelines: Vec::new(),
                };
                Ok(())
            }
        }
    }

    /// The open manager (opening it on first use).
    pub(crate) async fn cache(&self) -> PyResult<Cache> {
        let mut state = self.state.lock().await;
        self.open_locked(&mut state).await?;
        match &*state {
            State::Open { manager, .. } => Ok(manager.clone()),
            _ => unreachable!("open_locked leaves the state open or fails"),
        }
    }

    /// The open manager, without waiting: `None` before the first call opened it, after
    /// close, or while another call holds the state.
    pub(crate) fn try_cache(&self) -> Option<Cache> {
        match &*self.state.try_lock().ok()? {
            State::Open { manager, .. } => Some(manager.clone()),
            _ => None,
        }
    }

    /// The pipeline cache of `mode`, without waiting (as [`Shared::try_cache`]).
    pub(crate) fn try_pipeline(&self, mode: FingerprintMode) -> Option<PipelineArtifactCache> {
        match &*self.state.try_lock().ok()? {
            State::Open { pipelines, .. } => pipelines
                .iter()
                .find(|(m, _)| *m == mode)
                .map(|(_, p)| p.clone()),
            _ => None,
        }
    }

    /// The pipeline cache fingerprinting with `mode` (opening the manager on first use).
    pub(crate) async fn pipeline(&self, mode: FingerprintMode) -> PyResult<PipelineArtifactCache> {
        let mut state = self.state.lock().await;
        self.open_locked(&mut state).await?;
        let State::Open { manager, pipelines } = &mut *state else {
            unreachable!("open_locked leaves the state open or fails")
        };
        if let Some((_, p)) = pipelines.iter().find(|(m, _)| *m == mode) {
            return Ok(p.clone());
        }
        let p = PipelineArtifactCache::new(manager.clone(), mode);
        pipelines.push((mode, p.clone()));
        Ok(p)
    }

    /// Closes the manager (waits for promotions, stops write-back workers, closes the store
    /// once calls still running have let go of it). Closing twice is a no-op.
    pub(crate) async fn close(&self) -> PyResult<()> {
        let mut state = self.state.lock().await;
        match std::mem::replace(&mut *state, State::Closed) {
            State::Open { manager, pipelines } => {
                drop(pipelines);
                manager.close().await.map_err(tier_error)
            }
            State::Unopened | State::Closed => Ok(()),
        }
    }
}
