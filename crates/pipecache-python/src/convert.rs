//! Python values to store parts and back: documents (any JSON-compatible value) as CBOR
//! (`pipecache_format::document`, built straight into Python objects), parts as `bytes` taken without a copy under the GIL.

use std::sync::Arc;

use pipecache::{Artifact, Part, StoredArtifact};
use pipecache_format::FormatError;
use pipecache_format::document::{DocumentBuilder, DocumentWriter, MAX_DEPTH, read_document};
use pyo3::ffi;
use pyo3::prelude::*;
use pyo3::pybacked::PyBackedBytes;
use pyo3::types::{
    PyBool, PyByteArray, PyBytes, PyDict, PyFloat, PyInt, PyList, PyString, PyTuple,
};

use std::time::Duration;

use crate::bridge::{LargeCopies, PartSource};
use crate::errors::{CorruptionError, invalid};

/// Parts at least this large are copied into their `bytes` objects off the loop thread.
const COPY_OFF_LOOP: usize = 1 << 20;

/// A part as Python hands it over: the name and the `bytes` object, read later (off the
/// GIL) through [`PyBackedBytes`], which keeps the object alive.
pub(crate) type PyParts = Vec<(String, PyBackedBytes)>;

/// `obj` (dict, list, tuple, str, int, float, bool, None, bytes, nested) as a CBOR document;
/// `what` names it in the error when it holds something else (a datetime, a set, an object).
pub(crate) fn document_to_cbor(obj: &Bound<'_, PyAny>, what: &str) -> PyResult<Vec<u8>> {
    let mut w = DocumentWriter::new();
    write_value(&mut w, obj.as_borrowed(), 0, what)?;
    Ok(w.finish())
}

/// The exact built-in type of an object, for the encoder's fast paths.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) enum Exact {
    Str,
    Dict,
    List,
    Int,
    Float,
    Other,
}

#[allow(unsafe_code)]
pub(crate) fn exact_type(obj: Borrowed<'_, '_, PyAny>) -> Exact {
    // SAFETY: `obj` is a live object (borrowed under the GIL); its type pointer is compared
    // with the addresses of the interpreter's static type objects, nothing is dereferenced.
    unsafe {
        let ty = ffi::Py_TYPE(obj.as_ptr());
        if ty == &raw mut ffi::PyUnicode_Type {
            Exact::Str
        } else if ty == &raw mut ffi::PyDict_Type {
            Exact::Dict
        } else if ty == &raw mut ffi::PyList_Type {
            Exact::List
        } else if ty == &raw mut ffi::PyLong_Type {
            Exact::Int
        } else if ty == &raw mut ffi::PyFloat_Type {
            Exact::Float
        } else {
            Exact::Other
        }
    }
}

/// Writes `obj`. The built-in types a document is made of take fast paths: an exact type
/// check, and items borrowed from their container instead of a new reference each (with
/// the stable ABI every reference count change is a function call; they were a tenth of
/// the encoding time). Why a borrowed item stays valid: the GIL is held throughout, no
/// Python code of the caller's runs (only the C API's conversions of built-in types), and
/// a key, written before its value is used, allocates no container, so not even the cyclic
/// GC (whose finalizers could change the dict) runs between the two. A list is indexed
/// anew per item, and an index past a list that shrank is an error, not a dangling read.
#[allow(unsafe_code)]
fn write_value(
    w: &mut DocumentWriter,
    obj: Borrowed<'_, '_, PyAny>,
    depth: usize,
    what: &str,
) -> PyResult<()> {
    if depth > MAX_DEPTH {
        return Err(invalid(what, format!("nested deeper than {MAX_DEPTH}")));
    }
    let py = obj.py();
    match exact_type(obj) {
        Exact::Str => {
            let s = obj.cast::<PyString>().expect("an exact str");
            // Its UTF-8 `bytes`, written as they are: `to_cow` under the 3.9 stable ABI would
            // copy them once more into a `String`.
            w.text_utf8(s.encode_utf8()?.as_bytes());
        }
        Exact::Int => {
            let mut overflow = 0;
            // SAFETY: `obj` is an exact int; the call sets `overflow` instead of raising
            // when the value does not fit.
            let v = unsafe { ffi::PyLong_AsLongLongAndOverflow(obj.as_ptr(), &mut overflow) };
            if overflow == 0 {
                w.i64(v);
            } else {
                let big: i128 = obj
                    .extract()
                    .map_err(|_| invalid(what, "an integer outside CBOR's 64-bit range"))?;
                w.int(big).map_err(|e| invalid(what, e))?;
            }
        }
        Exact::Float => {
            let f = obj.cast::<PyFloat>().expect("an exact float");
            w.float(f.value());
        }
        Exact::Dict => {
            let d = obj.cast::<PyDict>().expect("an exact dict");
            w.map(d.len() as u64);
            let mut pos: ffi::Py_ssize_t = 0;
            let mut key = std::ptr::null_mut();
            let mut value = std::ptr::null_mut();
            // SAFETY: `PyDict_Next` hands out borrowed references to the dict's entries,
            // valid while the dict is not changed; nothing runs that could change it (see
            // above), and each is used only within this iteration.
            while unsafe { ffi::PyDict_Next(d.as_ptr(), &mut pos, &mut key, &mut value) } != 0 {
                let (k, v) =
                    unsafe { (Borrowed::from_ptr(py, key), Borrowed::from_ptr(py, value)) };
                check_key(k, what)?;
                write_value(w, k, depth + 1, what)?;
                write_value(w, v, depth + 1, what)?;
            }
        }
        Exact::List => {
            let l = obj.cast::<PyList>().expect("an exact list");
            let n = l.len();
            w.list(n as u64);
            for i in 0..n {
                // SAFETY: `PyList_GetItem` returns a borrowed reference to item `i`, or NULL
                // with IndexError set (`from_ptr_or_err`), used only for this item.
                let item = unsafe {
                    Borrowed::from_ptr_or_err(
                        py,
                        ffi::PyList_GetItem(l.as_ptr(), i as ffi::Py_ssize_t),
                    )?
                };
                write_value(w, item, depth + 1, what)?;
            }
        }
        Exact::Other => write_other(w, &obj.to_owned(), depth, what)?,
    }
    Ok(())
}

/// A tuple key would read back as a list, which no dict can hold.
fn check_key(key: Borrowed<'_, '_, PyAny>, what: &str) -> PyResult<()> {
    if key.cast::<PyTuple>().is_ok() {
        return Err(invalid(
            what,
            "dict keys must be str, int, float, bool, None or bytes, not tuple",
        ));
    }
    Ok(())
}

/// Every value that is not an exact str, dict, list, int or float: None, bools, bytes,
/// tuples, and subclasses of the built-in types (an `OrderedDict`, an `IntEnum`).
fn write_other(
    w: &mut DocumentWriter,
    obj: &Bound<'_, PyAny>,
    depth: usize,
    what: &str,
) -> PyResult<()> {
    if obj.is_none() {
        w.null();
    } else if let Ok(b) = obj.cast::<PyBool>() {
        w.bool(b.is_true());
    } else if let Ok(i) = obj.cast::<PyInt>() {
        let v: i128 = match i.extract::<i64>() {
            Ok(v) => v.into(),
            Err(_) => i
                .extract()
                .map_err(|_| invalid(what, "an integer outside CBOR's 64-bit range"))?,
        };
        w.int(v).map_err(|e| invalid(what, e))?;
    } else if let Ok(f) = obj.cast::<PyFloat>() {
        w.float(f.value());
    } else if let Ok(s) = obj.cast::<PyString>() {
        w.text_utf8(s.encode_utf8()?.as_bytes());
    } else if let Ok(b) = obj.cast::<PyBytes>() {
        w.bytes(b.as_bytes());
    } else if let Ok(d) = obj.cast::<PyDict>() {
        w.map(d.len() as u64);
        for (k, v) in d.iter() {
            check_key(k.as_borrowed(), what)?;
            write_value(w, k.as_borrowed(), depth + 1, what)?;
            write_value(w, v.as_borrowed(), depth + 1, what)?;
        }
    } else if let Ok(l) = obj.cast::<PyList>() {
        w.list(l.len() as u64);
        for item in l.iter() {
            write_value(w, item.as_borrowed(), depth + 1, what)?;
        }
    } else if let Ok(t) = obj.cast::<PyTuple>() {
        w.list(t.len() as u64);
        for item in t.iter() {
            write_value(w, item.as_borrowed(), depth + 1, what)?;
        }
    } else if let Ok(b) = obj.cast::<PyByteArray>() {
        w.bytes(&b.to_vec());
    } else {
        let type_name = obj.get_type().name()?;
        return Err(invalid(
            what,
            format!(
                "a {type_name} is not JSON-compatible (use dict, list, str, int, float, bool, \
                 None or bytes)"
            ),
        ));
    }
    Ok(())
}

/// Python values from a document's contents.
struct PyBuilder<'py> {
    py: Python<'py>,
    /// Short strings already made, reused: a transcript repeats the same keys (`start`,
    /// `end`, `text`) in every segment, and one object per key saves its allocation, UTF-8
    /// check and hash each time (as pickle's memo does).
    strings: rustc_hash::FxHashMap<Box<[u8]>, Bound<'py, PyAny>>,
}

/// Longest string [`PyBuilder`] reuses, and how many it keeps.
const REUSED_STRING_LEN: usize = 24;
const REUSED_STRINGS: usize = 4096;

fn corrupt_document(detail: impl Into<String>) -> BuildError {
    BuildError::Format(FormatError::Corrupt {
        what: "document",
        detail: detail.into(),
    })
}

/// A document that does not decode, or a Python error while building its values.
enum BuildError {
    Format(FormatError),
    Python(PyErr),
}

impl From<FormatError> for BuildError {
    fn from(e: FormatError) -> Self {
        Self::Format(e)
    }
}

impl From<PyErr> for BuildError {
    fn from(e: PyErr) -> Self {
        Self::Python(e)
    }
}

type Built<'py> = Result<Bound<'py, PyAny>, BuildError>;

impl<'py> DocumentBuilder for PyBuilder<'py> {
    type Value = Bound<'py, PyAny>;
    type Error = BuildError;
    fn null(&mut self) -> Built<'py> {
        Ok(self.py.None().into_bound(self.py))
    }
    fn bool(&mut self, v: bool) -> Built<'py> {
        Ok(PyBool::new(self.py, v).to_owned().into_any())
    }
    fn int(&mut self, v: i128) -> Built<'py> {
        let py = self.py;
        Ok(match i64::try_from(v) {
            Ok(small) => small.into_pyobject(py).map(Bound::into_any),
            Err(_) => v.into_pyobject(py).map(Bound::into_any),
        }
        .unwrap_or_else(|never| match never {}))
    }
    fn float(&mut self, v: f64) -> Built<'py> {
        Ok(PyFloat::new(self.py, v).into_any())
    }
    fn text(&mut self, v: &str) -> Built<'py> {
        self.text_utf8(v.as_bytes())
    }
    #[allow(unsafe_code)]
    fn text_utf8(&mut self, utf8: &[u8]) -> Built<'py> {
        if utf8.len() <= REUSED_STRING_LEN
            && let Some(s) = self.strings.get(utf8)
        {
            return Ok(s.clone());
        }
        let len = ffi::Py_ssize_t::try_from(utf8.len())
            .map_err(|_| corrupt_document("a string too long"))?;
        // SAFETY: the pointer and length describe `utf8`, which outlives the call; the
        // result is a new reference, or NULL with a UnicodeDecodeError set when the bytes
        // are not UTF-8 (checked once, here, instead of also in Rust).
        let made = unsafe {
            Bound::from_owned_ptr_or_err(
                self.py,
                ffi::PyUnicode_DecodeUTF8(utf8.as_ptr().cast(), len, c"strict".as_ptr()),
            )
        };
        let s = match made {
            Ok(s) => s,
            Err(e) => return Err(corrupt_document(e.to_string())),
        };
        if utf8.len() <= REUSED_STRING_LEN && self.strings.len() < REUSED_STRINGS {
            self.strings.insert(utf8.into(), s.clone());
        }
        Ok(s)
    }
    fn bytes(&mut self, v: &[u8]) -> Built<'py> {
        Ok(PyBytes::new(self.py, v).into_any())
    }
    fn list(&mut self, items: std::vec::Drain<'_, Bound<'py, PyAny>>) -> Built<'py> {
        Ok(PyList::new(self.py, items)?.into_any())
    }
    fn map(&mut self, mut keys_and_values: std::vec::Drain<'_, Bound<'py, PyAny>>) -> Built<'py> {
        let dict = PyDict::new(self.py);
        while let (Some(k), Some(v)) = (keys_and_values.next(), keys_and_values.next()) {
            dict.set_item(k, v)?;
        }
        Ok(dict.into_any())
    }
}

/// The document CBOR `bytes` hold; `what` names it when they do not decode.
pub(crate) fn cbor_to_document<'py>(
    py: Python<'py>,
    bytes: &[u8],
    what: &str,
) -> PyResult<Bound<'py, PyAny>> {
    let mut builder = PyBuilder {
        py,
        strings: Default::default(),
    };
    read_document(bytes, &mut builder).map_err(|e| match e {
        BuildError::Format(e) => CorruptionError::new_err(format!("{what}: {e}")),
        BuildError::Python(e) => e,
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

/// A memory-tier hit as `(kind, meta, [(name, bytes), ...])`, built on the caller's thread
/// (copies of at most [`INLINE_HIT_MAX`] bytes in all), or `None` when it is larger: a large
/// hit takes the path that copies off the loop thread.
pub(crate) fn memory_hit_to_py<'py>(
    py: Python<'py>,
    artifact: &Artifact,
) -> PyResult<Option<Bound<'py, PyTuple>>> {
    if artifact.logical_size() > INLINE_HIT_MAX {
        return Ok(None);
    }
    let meta = PyDict::new(py);
    for (k, v) in &artifact.meta {
        meta.set_item(k, v)?;
    }
    let parts = PyList::empty(py);
    for part in &artifact.parts {
        parts.append((part.name.as_str(), PyBytes::new(py, &part.data)))?;
    }
    let tuple = PyTuple::new(
        py,
        [
            artifact.kind.as_str().into_pyobject(py)?.into_any(),
            meta.into_any(),
            parts.into_any(),
        ],
    )?;
    Ok(Some(tuple))
}

/// Largest memory-tier hit answered on the caller's thread (a copy of ~100 µs at most).
const INLINE_HIT_MAX: u64 = 1 << 20;

/// An artifact as `(kind, meta, [(name, bytes), ...])`, copied from the shared value the
/// store or the memory tier handed out (never cloned first: a memory hit of a 15 MB
/// keyframes artifact is one copy into Python, not two); parts of [`COPY_OFF_LOOP`] bytes or
/// more are filled by `copies` after this returns.
pub(crate) fn artifact_to_py<'py>(
    py: Python<'py>,
    artifact: Arc<StoredArtifact>,
    copies: &mut LargeCopies,
) -> PyResult<Bound<'py, PyTuple>> {
    let a = &artifact.artifact;
    let meta = PyDict::new(py);
    for (k, v) in &a.meta {
        meta.set_item(k, v)?;
    }
    let parts = PyList::empty(py);
    for (index, part) in a.parts.iter().enumerate() {
        let data = if part.data.len() >= COPY_OFF_LOOP {
            copies.bytes(py, PartSource::new(artifact.clone(), index))?
        } else {
            PyBytes::new(py, &part.data)
        };
        parts.append((part.name.as_str(), data))?;
    }
    PyTuple::new(
        py,
        [
            a.kind.as_str().into_pyobject(py)?.into_any(),
            meta.into_any(),
            parts.into_any(),
        ],
    )
}

/// A TTL in seconds, checked.
pub(crate) fn ttl_of(seconds: Option<f64>) -> PyResult<Option<Duration>> {
    seconds
        .map(|s| Duration::try_from_secs_f64(s).ok().filter(|d| !d.is_zero()))
        .map(|d| d.ok_or_else(|| invalid("ttl", "must be a positive number of seconds")))
        .transpose()
}
