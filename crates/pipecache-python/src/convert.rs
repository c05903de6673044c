//! Python values to store parts and back: documents (any JSON-compatible value) as CBOR
//! through pythonize, parts as `bytes` taken without a copy under the GIL.

use pipecache::{Artifact, Part};
use pyo3::prelude::*;
use pyo3::pybacked::PyBackedBytes;
use pyo3::types::{PyBytes, PyDict, PyList, PyTuple};

use crate::errors::{CorruptionError, invalid};

/// Parts at least this large are copied into Python with the GIL released, so a 100 MB
/// get never stalls the event loop's other coroutines for the copy.
const COPY_WITHOUT_GIL: usize = 256 * 1024;

/// A part as Python hands it over: the name and the `bytes` object, read later (off the
/// GIL) through [`PyBackedBytes`], which keeps the object alive.
pub(crate) type PyParts = Vec<(String, PyBackedBytes)>;

/// `obj` (dict, list, str, int, float, bool, None, bytes, nested) as CBOR; `what` names it
/// in the error when it holds something else (a datetime, a set, an object).
pub(crate) fn document_to_cbor(obj: &Bound<'_, PyAny>, what: &str) -> PyResult<Vec<u8>> {
    let value: ciborium::Value = pythonize::depythonize(obj).map_err(|e| {
        invalid(
            what,
            format!("not a JSON-compatible value (dict, list, str, number, bool, None): {e}"),
        )
    })?;
    let mut out = Vec::new();
    ciborium::into_writer(&value, &mut out).map_err(|e| invalid(what, e))?;
    Ok(out)
}

/// The document CBOR `bytes` hold; `what` names it when they do not decode.
pub(crate) fn cbor_to_document<'py>(
    py: Python<'py>,
    bytes: &[u8],
    what: &str,
) -> PyResult<Bound<'py, PyAny>> {
    let value: ciborium::Value = ciborium::from_reader(bytes)
        .map_err(|e| CorruptionError::new_err(format!("{what}: not a CBOR document: {e}")))?;
    value_to_py(py, value, what)
}

/// A decoded CBOR value as Python objects, built directly: through pythonize's serde path
/// the same document took twice as long (measured on a 50 KB transcript).
fn value_to_py<'py>(
    py: Python<'py>,
    value: ciborium::Value,
    what: &str,
) -> PyResult<Bound<'py, PyAny>> {
    use ciborium::Value;
    Ok(match value {
        Value::Null => py.None().into_bound(py),
        Value::Bool(b) => pyo3::types::PyBool::new(py, b).to_owned().into_any(),
        Value::Integer(i) => i128::from(i).into_pyobject(py)?.into_any(),
        Value::Float(f) => pyo3::types::PyFloat::new(py, f).into_any(),
        Value::Text(s) => pyo3::types::PyString::new(py, &s).into_any(),
        Value::Bytes(b) => PyBytes::new(py, &b).into_any(),
        Value::Array(items) => {
            let list = PyList::empty(py);
            for item in items {
                list.append(value_to_py(py, item, what)?)?;
            }
            list.into_any()
        }
        Value::Map(entries) => {
            let dict = PyDict::new(py);
            for (k, v) in entries {
                dict.set_item(value_to_py(py, k, what)?, value_to_py(py, v, what)?)?;
            }
            dict.into_any()
        }
        Value::Tag(_, inner) => value_to_py(py, *inner, what)?,
        other => {
            return Err(CorruptionError::new_err(format!(
                "{what}: unsupported CBOR value {other:?}"
            )));
        }
    })
}

/// Encodes a JSON-compatible value as CBOR, the format documents are stored in.
#[pyfunction]
pub(crate) fn encode_document<'py>(
    py: Python<'py>,
    value: &Bound<'py, PyAny>,
    what: &str,
) -> PyResult<Bound<'py, PyBytes>> {
    Ok(PyBytes::new(py, &document_to_cbor(value, what)?))
}

/// Decodes a stored CBOR document.
#[pyfunction]
pub(crate) fn decode_document<'py>(
    py: Python<'py>,
    data: &[u8],
    what: &str,
) -> PyResult<Bound<'py, PyAny>> {
    cbor_to_document(py, data, what)
}

/// An artifact from parts Python handed over; runs off the GIL (the copy into the store's
/// buffers happens here, not while Python waits).
pub(crate) fn artifact_of(kind: &str, meta: Vec<(String, String)>, parts: PyParts) -> Artifact {
    let mut artifact = Artifact::default().with_kind(kind);
    artifact.meta = meta.into_iter().collect();
    artifact.parts = parts
        .into_iter()
        .map(|(name, data)| Part::new(name, data.to_vec()))
        .collect();
    artifact
}

/// A part's bytes as a Python `bytes`, large ones copied with the GIL released.
fn part_bytes<'py>(py: Python<'py>, data: &[u8]) -> PyResult<Bound<'py, PyBytes>> {
    if data.len() < COPY_WITHOUT_GIL {
        return Ok(PyBytes::new(py, data));
    }
    // The new object is not visible to any other Python code until returned, so filling it
    // without the GIL races with nothing.
    PyBytes::new_with(py, data.len(), |buf| {
        py.detach(|| buf.copy_from_slice(data));
        Ok(())
    })
}

/// An artifact as `(kind, meta, [(name, bytes), ...])`.
pub(crate) fn artifact_to_py<'py>(
    py: Python<'py>,
    artifact: &Artifact,
) -> PyResult<Bound<'py, PyTuple>> {
    let meta = PyDict::new(py);
    for (k, v) in &artifact.meta {
        meta.set_item(k, v)?;
    }
    let parts = PyList::empty(py);
    for part in &artifact.parts {
        parts.append((part.name.as_str(), part_bytes(py, &part.data)?))?;
    }
    PyTuple::new(
        py,
        [
            artifact.kind.as_str().into_pyobject(py)?.into_any(),
            meta.into_any(),
            parts.into_any(),
        ],
    )
}
