//! # pipecache-python: the Python package's native module, `pipecache._native`
//!
//! Owns the boundary between Python and the engine: opening a [`pipecache::CacheManager`]
//! from a config the Python side built, running every I/O call on a tokio runtime (the GIL
//! released while Rust works) and resolving an asyncio future when it ends (`bridge`: no
//! Rust thread ever takes the GIL), turning
//! Python documents into CBOR parts and back (pythonize), and mapping the engine's errors
//! onto the exception hierarchy of `pipecache._errors`.
//!
//! It must not hold policy of its own: keys come from the pipeline crate's stage configs
//! (so Python and the CLI name an artifact alike), codecs per kind from its
//! `TypedArtifact` policies. The user-facing API (config classes, `CacheManager`,
//! `PipelineArtifactCache`, numpy handling, docstrings) is the pure-Python layer in
//! `python/pipecache/`, which calls only what this module exports (`_native.pyi`).
//!
//! Layers, bottom up: `errors` (engine error -> exception), `bridge` (futures to asyncio),
//! `convert` (documents, parts), `documents` (decoded documents kept for repeated reads),
//! `shared` (the lazily opened manager every handle shares), `cache` (key-level calls),
//! `pipeline` (video-level calls).

mod bridge;
mod cache;
mod convert;
mod documents;
mod errors;
mod pipeline;
mod shared;

use pyo3::prelude::*;

/// A call that does nothing on the runtime: what crossing into Rust and back costs.
#[pyfunction]
fn ping(done: &Bound<'_, bridge::Completions>, token: u64) {
    bridge::spawn(done.get(), token, async { Ok(()) }, bridge::into_py);
}

/// The native half of the `pipecache` package; use the `pipecache` module instead.
#[pymodule]
fn _native(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_class::<bridge::Completions>()?;
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
