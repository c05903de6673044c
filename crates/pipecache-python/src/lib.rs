//! # pipecache-python: the Python package's native module, `pipecache._native`
//!
//! Owns the boundary between Python and the engine: opening a [`pipecache::CacheManager`]
//! from a config the Python side built, bridging every I/O call to an asyncio awaitable
//! (pyo3-async-runtimes on the tokio runtime, the GIL released while Rust works), turning
//! Python documents into CBOR parts and back (pythonize), and mapping the engine's errors
//! onto the exception hierarchy of `pipecache._errors`.
//!
//! It must not hold policy of its own: keys come from the pipeline crate's stage configs
//! (so Python and the CLI name an artifact alike), codecs per kind from its
//! `TypedArtifact` policies. The user-facing API (config classes, `CacheManager`,
//! `PipelineArtifactCache`, numpy handling, docstrings) is the pure-Python layer in
//! `python/pipecache/`, which calls only what this module exports (`_native.pyi`).
//!
//! Layers, bottom up: `errors` (engine error -> exception), `convert` (documents, parts),
//! `shared` (the lazily opened manager every handle shares), `cache` (key-level calls),
//! `pipeline` (video-level calls).

mod cache;
mod convert;
mod errors;
mod pipeline;
mod shared;

use pyo3::prelude::*;

/// An awaitable that does nothing on the runtime: what crossing into Rust and back costs.
#[pyfunction]
fn ping(py: Python<'_>) -> PyResult<Bound<'_, PyAny>> {
    pyo3_async_runtimes::tokio::future_into_py(py, async { Ok(()) })
}

/// The native half of the `pipecache` package; use the `pipecache` module instead.
#[pymodule]
fn _native(m: &Bound<'_, PyModule>) -> PyResult<()> {
    let mut builder = tokio::runtime::Builder::new_multi_thread();
    builder.worker_threads(1).enable_all();
    pyo3_async_runtimes::tokio::init(builder);
    m.add_class::<cache::NativeCache>()?;
    m.add_class::<pipeline::NativePipeline>()?;
    m.add_function(wrap_pyfunction!(convert::encode_document, m)?)?;
    m.add_function(wrap_pyfunction!(convert::decode_document, m)?)?;
    m.add_function(wrap_pyfunction!(cache::validate_config, m)?)?;
    m.add_function(wrap_pyfunction!(cache::read_config_file, m)?)?;
    m.add_function(wrap_pyfunction!(cache::duration_seconds, m)?)?;
    m.add_function(wrap_pyfunction!(ping, m)?)?;
    m.add("__version__", env!("CARGO_PKG_VERSION"))?;
    Ok(())
}
