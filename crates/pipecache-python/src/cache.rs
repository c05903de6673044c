//! `NativeCache`: key-level calls on a cache manager, each an asyncio awaitable.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use pipecache::{CacheConfig, CacheManager, CompressionPolicy, PutOptions};
use pyo3::prelude::*;
use pyo3::types::PyTuple;

use crate::bridge::{Completions, into_py, spawn};
use crate::convert::{PyParts, artifact_of, artifact_to_py, memory_hit_to_py, ttl_of};
use crate::documents::DocumentCache;
use crate::errors::{ConfigError, invalid, tier_error};
use crate::shared::{OpenSpec, Shared};

/// A config dict (the TOML file's shape) as the engine's config, read through the same
/// TOML reader the CLI uses so errors name the same fields.
fn parse_config(config: &Bound<'_, PyAny>, origin: &str) -> PyResult<CacheConfig> {
    let table: toml::Table = pythonize::depythonize(config)
        .map_err(|e| ConfigError::new_err(format!("{origin}: {e}")))?;
    let text =
        toml::to_string(&table).map_err(|e| ConfigError::new_err(format!("{origin}: {e}")))?;
    let mut config =
        CacheConfig::from_toml(&text, origin).map_err(|e| ConfigError::new_err(e.to_string()))?;
    pipecache_pipeline::add_stage_costs(&mut config);
    CacheManager::validate(&config, origin).map_err(tier_error)?;
    Ok(config)
}

/// Checks a config dict as opening would, without opening anything.
#[pyfunction]
pub(crate) fn validate_config(config: &Bound<'_, PyAny>, origin: &str) -> PyResult<()> {
    parse_config(config, origin).map(drop)
}

/// Reads and checks a TOML config file as the CLI does; its table as a dict.
#[pyfunction]
pub(crate) fn read_config_file(py: Python<'_>, path: PathBuf) -> PyResult<Py<PyAny>> {
    let origin = path.display().to_string();
    let text = std::fs::read_to_string(&path)
        .map_err(|e| ConfigError::new_err(format!("{origin}: cannot read it: {e}")))?;
    let mut config =
        CacheConfig::from_toml(&text, &origin).map_err(|e| ConfigError::new_err(e.to_string()))?;
    pipecache_pipeline::add_stage_costs(&mut config);
    CacheManager::validate(&config, &origin).map_err(tier_error)?;
    let table: toml::Table =
        toml::from_str(&text).map_err(|e| ConfigError::new_err(format!("{origin}: {e}")))?;
    pythonize::pythonize(py, &table)
        .map(Bound::unbind)
        .map_err(|e| ConfigError::new_err(format!("{origin}: {e}")))
}

/// Seconds in a duration the CLI accepts (`90s`, `12h`, `7d`); `what` names it in errors.
#[pyfunction]
pub(crate) fn duration_seconds(text: &str, what: &str) -> PyResult<f64> {
    pipecache::tier::parse_duration(text)
        .map(|d| d.as_secs_f64())
        .map_err(|e| invalid(what, e))
}

/// Sets `out[name]` to `value` as Python objects (a stats report's sections).
fn set_pythonized<T: serde::Serialize>(
    out: &Bound<'_, pyo3::types::PyDict>,
    name: &str,
    value: &T,
) -> PyResult<()> {
    let value = pythonize::pythonize(out.py(), value).map_err(|e| invalid("stats", e))?;
    out.set_item(name, value)
}

/// The decoded documents kept for repeated reads get this fraction of the config's
/// `memory_size`, on top of it (estimated Python bytes; 32 MiB at the default 256 MiB).
const DOCUMENTS_SHARE_OF_MEMORY: u64 = 8;

/// The key-level cache over one manager.
#[pyclass(frozen, module = "pipecache._native")]
pub(crate) struct NativeCache {
    pub(crate) shared: Arc<Shared>,
    /// Decoded documents kept for repeated reads (the Python pipelines over this cache
    /// decode through it too).
    documents: DocumentCache,
}

#[pymethods]
impl NativeCache {
    /// Validates `config` (a dict shaped like the TOML file); opens nothing.
    #[new]
    fn new(config: &Bound<'_, PyAny>, origin: String, default_dir: PathBuf) -> PyResult<Self> {
        let config = parse_config(config, &origin)?;
        let documents = DocumentCache::new(config.memory_budget() / DOCUMENTS_SHARE_OF_MEMORY);
        Ok(Self {
            shared: Arc::new(Shared::new(OpenSpec {
                config,
                default_dir,
                origin,
            })),
            documents,
        })
    }

    /// The local store's directory.
    #[getter]
    fn dir(&self) -> PathBuf {
        self.shared.dir()
    }

    /// Opens the store now (otherwise the first call does).
    fn open(&self, done: &Bound<'_, Completions>, token: u64) {
        let shared = self.shared.clone();
        spawn(
            done.get(),
            token,
            async move { shared.cache().await.map(drop) },
            into_py,
        );
    }

    /// A memory-tier hit of `key` (up to 1 MiB), answered without I/O or a thread crossing;
    /// `None` otherwise (then `get`).
    fn get_memory<'py>(&self, py: Python<'py>, key: &str) -> PyResult<Option<Bound<'py, PyTuple>>> {
        let Some(hit) = self.shared.try_cache().and_then(|m| m.get_from_memory(key)) else {
            return Ok(None);
        };
        memory_hit_to_py(py, &hit.artifact)
    }

    /// `(kind, meta, [(name, bytes)])` or `None`.
    fn get(&self, done: &Bound<'_, Completions>, token: u64, key: String) {
        let shared = self.shared.clone();
        let read = async move {
            let cache = shared.cache().await?;
            cache.get_shared(&key).await.map_err(tier_error)
        };
        spawn(done.get(), token, read, |py, found, copies| match found {
            Some(a) => Ok(artifact_to_py(py, a, copies)?.into_any().unbind()),
            None => Ok(py.None()),
        });
    }

    /// Stores parts under `key`.
    #[pyo3(signature = (done, token, key, kind, meta, parts, ttl=None, compress=None))]
    #[allow(clippy::too_many_arguments)]
    fn put(
        &self,
        done: &Bound<'_, Completions>,
        token: u64,
        key: String,
        kind: String,
        meta: Vec<(String, String)>,
        parts: PyParts,
        ttl: Option<f64>,
        compress: Option<bool>,
    ) -> PyResult<()> {
        let shared = self.shared.clone();
        let options = PutOptions {
            ttl: ttl_of(ttl)?,
            // `True` is the store's own policy (its codec and level); a store with
            // compression off keeps it off either way.
            compression: (compress == Some(false)).then_some(CompressionPolicy {
                enabled: false,
                ..CompressionPolicy::DEFAULT
            }),
            ..PutOptions::default()
        };
        let write = async move {
            let cache = shared.cache().await?;
            let artifact = artifact_of(&kind, meta, parts);
            cache
                .put_with(&key, artifact, options)
                .await
                .map_err(tier_error)
        };
        spawn(done.get(), token, write, into_py);
        Ok(())
    }

    /// Removes `key` from every tier; whether it was there.
    fn delete(&self, done: &Bound<'_, Completions>, token: u64, key: String) {
        let shared = self.shared.clone();
        let delete = async move {
            let cache = shared.cache().await?;
            cache.delete(&key).await.map_err(tier_error)
        };
        spawn(done.get(), token, delete, into_py);
    }

    /// Whether `key` is held locally, or by a slower tier (which a read would promote).
    fn exists(&self, done: &Bound<'_, Completions>, token: u64, key: String) {
        let shared = self.shared.clone();
        let exists = async move {
            let cache = shared.cache().await?;
            if cache.contains_local(&key).await.map_err(tier_error)? {
                return Ok(true);
            }
            Ok(cache.get(&key).await.map_err(tier_error)?.is_some())
        };
        spawn(done.get(), token, exists, into_py);
    }

    /// Keys starting with `prefix`, from every tier that can list.
    fn list_keys(&self, done: &Bound<'_, Completions>, token: u64, prefix: String) {
        let shared = self.shared.clone();
        let list = async move {
            let cache = shared.cache().await?;
            let keys = cache.list_keys(&prefix).await.map_err(tier_error)?;
            Ok(keys.into_iter().collect::<Vec<_>>())
        };
        spawn(done.get(), token, list, into_py);
    }

    /// Removes every key starting with `prefix` from every tier; how many went.
    fn clear(&self, done: &Bound<'_, Completions>, token: u64, prefix: String) {
        let shared = self.shared.clone();
        let clear = async move {
            let cache = shared.cache().await?;
            let keys = cache.list_keys(&prefix).await.map_err(tier_error)?;
            let mut removed = 0usize;
            for key in &keys {
                if cache.delete(key).await.map_err(tier_error)? {
                    removed += 1;
                }
            }
            Ok(removed)
        };
        spawn(done.get(), token, clear, into_py);
    }

    /// Waits until the write-back queues are empty (every queued upload done), up to
    /// `timeout` seconds.
    fn flush(&self, done: &Bound<'_, Completions>, token: u64, timeout: f64) -> PyResult<()> {
        let shared = self.shared.clone();
        let timeout = Duration::try_from_secs_f64(timeout)
            .map_err(|_| invalid("timeout", "must be a non-negative number of seconds"))?;
        let flush = async move {
            let cache = shared.cache().await?;
            cache.drain_queues(timeout).await.map_err(tier_error)
        };
        spawn(done.get(), token, flush, into_py);
        Ok(())
    }

    /// `{"local": <store stats>, "tiers": [<per-tier stats>]}`, as `stats --json` prints.
    fn stats(&self, done: &Bound<'_, Completions>, token: u64) {
        let shared = self.shared.clone();
        let stats = async move {
            let cache = shared.cache().await?;
            cache.stats().await.map_err(tier_error)
        };
        spawn(done.get(), token, stats, |py, report, _| {
            let out = pyo3::types::PyDict::new(py);
            let r = &report;
            set_pythonized(&out, "local", &r.stats)?;
            set_pythonized(&out, "tiers", &r.tiers)?;
            set_pythonized(&out, "lookups", &r.lookups)?;
            set_pythonized(&out, "most_missed", &r.most_missed)?;
            set_pythonized(&out, "near_cache", &r.near_cache)?;
            out.set_item(
                "recompute_seconds_saved_today",
                r.recompute_seconds_saved_today,
            )?;
            Ok(out.into_any().unbind())
        });
    }

    /// Closes the cache; later calls raise `ClosedError`.
    fn close(&self, done: &Bound<'_, Completions>, token: u64) {
        let shared = self.shared.clone();
        spawn(
            done.get(),
            token,
            async move { shared.close().await },
            into_py,
        );
    }

    /// The video-level cache over this one, fingerprinting with `mode` (`stat` or `content`).
    fn pipeline(&self, mode: &str) -> PyResult<crate::pipeline::NativePipeline> {
        crate::pipeline::NativePipeline::new(self.shared.clone(), mode)
    }

    /// Decodes a stored CBOR document, through the decoded documents kept for repeated
    /// reads (see `documents`).
    fn decode_document<'py>(
        &self,
        py: Python<'py>,
        data: &[u8],
        what: &str,
    ) -> PyResult<Bound<'py, PyAny>> {
        self.documents.decode(py, data, what)
    }

    /// What the decoded documents kept for repeated reads did and hold.
    fn document_stats<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, pyo3::types::PyDict>> {
        let s = self.documents.stats();
        let out = pyo3::types::PyDict::new(py);
        out.set_item("hits", s.hits)?;
        out.set_item("misses", s.misses)?;
        out.set_item("bytes", s.bytes)?;
        out.set_item("budget", s.budget)?;
        Ok(out)
    }
}
