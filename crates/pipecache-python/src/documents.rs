//! Decoded documents kept for repeated reads. A transcript or a description set is read by
//! every stage after the one that made it, and building its Python objects (~170 µs for a
//! 50 KB transcript, as long as `pickle.loads` takes) was most of what a memory hit cost
//! from Python; copying the containers of a value decoded before takes a fraction of that.
//!
//! Entries are found by the document's bytes (XXH3-64, then compared whole), never by key,
//! so none can be stale: the same bytes decode to the same value whatever key they came
//! from, and a put that changes a key changes the bytes the next get hands in. A hit
//! returns new dicts and lists all the way down and shares only the immutable leaves (str,
//! int, float, bool, None, bytes) with the kept value, so a caller that changes what it got
//! changes nothing kept, and no caller ever holds a kept container.
//!
//! Every call runs under the GIL (the kept values are Python objects), so the cache has one
//! shard and its evictions drop their values with the GIL held.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use pyo3::ffi;
use pyo3::prelude::*;
use pyo3::types::{PyDict, PyList};

use crate::convert::{Exact, cbor_to_document, exact_type};

/// Python bytes per CBOR byte of a decoded document, to weigh an entry: 4.8 measured with
/// tracemalloc on the bench's 50 KB transcript (a dict, a float and a list per segment).
const PYTHON_BYTES_PER_CBOR_BYTE: u64 = 5;

/// Documents shorter than this are decoded each time: hashing and comparing them would
/// cost about what decoding does.
const SMALLEST_KEPT: usize = 256;

/// A decoded document and the bytes it came from.
struct Decoded {
    raw: Box<[u8]>,
    value: Py<PyAny>,
}

type Entries = foyer_memory::Cache<u64, Arc<Decoded>>;

/// What a [`DocumentCache`] did since it was made.
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct DocumentCacheStats {
    pub(crate) hits: u64,
    pub(crate) misses: u64,
    /// Estimated Python bytes held.
    pub(crate) bytes: u64,
    pub(crate) budget: u64,
}

/// Decoded documents by their bytes, within a budget of estimated Python bytes.
pub(crate) struct DocumentCache {
    /// `None` when the budget is 0.
    entries: Option<Entries>,
    budget: u64,
    /// Largest entry kept (a quarter of the budget): one large document cannot flush the rest.
    max_entry: u64,
    hits: AtomicU64,
    misses: AtomicU64,
    /// Admission: a decoded document is kept only if its bytes missed recently too (its
    /// second read). Written by hand because foyer and moka decide admission after the
    /// value is built, and building a kept value (a copy, and fresh memory for it) is the
    /// cost saved here: documents read once cost one XXH3 of their bytes, nothing more.
    recent_misses: Mutex<RecentMisses>,
}

/// How many recent misses [`RecentMisses`] remembers: a document read again within this
/// many other misses is kept. A loop over more distinct documents than this (each read
/// once per round) keeps nothing and churns nothing.
const RECENT_MISSES: usize = 64;

/// The hashes of the last [`RECENT_MISSES`] misses.
struct RecentMisses {
    hashes: [u64; RECENT_MISSES],
    next: usize,
}

impl RecentMisses {
    /// Whether `hash` missed recently; remembers this miss.
    fn seen(&mut self, hash: u64) -> bool {
        let seen = self.hashes.contains(&hash);
        self.hashes[self.next] = hash;
        self.next = (self.next + 1) % RECENT_MISSES;
        seen
    }
}

fn weight(raw_len: usize) -> u64 {
    (raw_len as u64).saturating_mul(PYTHON_BYTES_PER_CBOR_BYTE)
}

impl DocumentCache {
    /// A cache of at most `budget` estimated Python bytes; 0 keeps nothing.
    pub(crate) fn new(budget: u64) -> Self {
        let entries = (budget > 0).then(|| {
            Entries::builder(usize::try_from(budget).unwrap_or(usize::MAX))
                .with_name("pipecache-documents")
                .with_shards(1)
                .with_eviction_config(foyer_memory::S3FifoConfig::default())
                .with_weighter(|_: &u64, d: &Arc<Decoded>| {
                    usize::try_from(weight(d.raw.len())).unwrap_or(usize::MAX)
                })
                .build()
        });
        Self {
            entries,
            budget,
            max_entry: budget / 4,
            hits: AtomicU64::new(0),
            misses: AtomicU64::new(0),
            recent_misses: Mutex::new(RecentMisses {
                hashes: [0; RECENT_MISSES],
                next: 0,
            }),
        }
    }

    /// The document `raw` holds, as new Python objects; `what` names it in errors.
    pub(crate) fn decode<'py>(
        &self,
        py: Python<'py>,
        raw: &[u8],
        what: &str,
    ) -> PyResult<Bound<'py, PyAny>> {
        let Some(entries) = &self.entries else {
            return cbor_to_document(py, raw, what);
        };
        if raw.len() < SMALLEST_KEPT || weight(raw.len()) > self.max_entry {
            return cbor_to_document(py, raw, what);
        }
        let hash = xxhash_rust::xxh3::xxh3_64(raw);
        if let Some(entry) = entries.get(&hash)
            && *entry.value().raw == *raw
        {
            self.hits.fetch_add(1, Ordering::Relaxed);
            return fresh_containers(entry.value().value.bind_borrowed(py));
        }
        self.misses.fetch_add(1, Ordering::Relaxed);
        let kept = cbor_to_document(py, raw, what)?;
        if !self.recent_misses.lock().is_ok_and(|mut r| r.seen(hash)) {
            // A first read: no sign of reuse yet, so it is handed out as decoded.
            return Ok(kept);
        }
        let fresh = fresh_containers(kept.as_borrowed())?;
        untrack_containers(kept.as_borrowed());
        entries.insert(
            hash,
            Arc::new(Decoded {
                raw: raw.into(),
                value: kept.unbind(),
            }),
        );
        Ok(fresh)
    }

    pub(crate) fn stats(&self) -> DocumentCacheStats {
        DocumentCacheStats {
            hits: self.hits.load(Ordering::Relaxed),
            misses: self.misses.load(Ordering::Relaxed),
            bytes: self.entries.as_ref().map_or(0, |e| e.usage() as u64),
            budget: self.budget,
        }
    }
}

/// Takes every dict and list of a kept value out of the cyclic GC's lists. A kept value
/// is a tree (decoded documents have no cycles) that no caller ever holds, so reference
/// counting frees it on eviction; tracked, the GC walked every kept object at each full
/// collection, and churning a full cache of 50 KB transcripts (~2,000 containers each)
/// made a get ~4x slower. A copy of an untracked dict starts untracked
/// (`PyDict_Copy` follows the original), as CPython keeps any dict of atomic values;
/// putting a container in it, as `fresh_containers` then does, tracks it again.
#[allow(unsafe_code)]
fn untrack_containers(value: Borrowed<'_, '_, PyAny>) {
    let py = value.py();
    match exact_type(value) {
        Exact::Dict => {
            let (mut pos, mut k, mut v) = (0, std::ptr::null_mut(), std::ptr::null_mut());
            // SAFETY: as in `fresh_containers`: the kept dict is walked, not changed;
            // untracking a tracked or untracked container is allowed at any time.
            while unsafe { ffi::PyDict_Next(value.as_ptr(), &mut pos, &mut k, &mut v) } != 0 {
                untrack_containers(unsafe { Borrowed::from_ptr(py, v) });
            }
            unsafe { ffi::PyObject_GC_UnTrack(value.as_ptr().cast()) };
        }
        Exact::List => {
            // SAFETY: the kept list is walked within its length, not changed.
            let n = unsafe { ffi::PyList_Size(value.as_ptr()) };
            for i in 0..n {
                untrack_containers(unsafe {
                    Borrowed::from_ptr(py, ffi::PyList_GetItem(value.as_ptr(), i))
                });
            }
            unsafe { ffi::PyObject_GC_UnTrack(value.as_ptr().cast()) };
        }
        _ => {}
    }
}

fn is_container(value: Borrowed<'_, '_, PyAny>) -> bool {
    matches!(exact_type(value), Exact::Dict | Exact::List)
}

/// `value` with new dicts and lists all the way down, sharing its other objects (which a
/// decoded document only has immutable: str, int, float, bool, None, bytes). Recursion is
/// as deep as the decoder's, which refuses documents nested deeper than `MAX_DEPTH`.
#[allow(unsafe_code)]
fn fresh_containers<'py>(value: Borrowed<'_, 'py, PyAny>) -> PyResult<Bound<'py, PyAny>> {
    let py = value.py();
    match exact_type(value) {
        Exact::Dict => {
            // SAFETY: `exact_type` saw a `dict`.
            let dict = unsafe { value.cast_unchecked::<PyDict>() };
            // `PyDict_Copy` clones the hash table as it is (no key is hashed or inserted
            // again); only the values that are containers are then replaced.
            let copy = dict.copy()?;
            let (mut pos, mut k, mut v) = (0, std::ptr::null_mut(), std::ptr::null_mut());
            // SAFETY: `PyDict_Next` walks the kept dict, which nothing else can change (no
            // caller ever holds it), handing out borrowed references valid while it lives;
            // `PyDict_SetItem` on the copy replaces the value of a key it already has.
            while unsafe { ffi::PyDict_Next(dict.as_ptr(), &mut pos, &mut k, &mut v) } != 0 {
                let value = unsafe { Borrowed::from_ptr(py, v) };
                if is_container(value) {
                    let fresh = fresh_containers(value)?;
                    if unsafe { ffi::PyDict_SetItem(copy.as_ptr(), k, fresh.as_ptr()) } != 0 {
                        return Err(PyErr::fetch(py));
                    }
                }
            }
            Ok(copy.into_any())
        }
        Exact::List => {
            // SAFETY: `exact_type` saw a `list`.
            let list = unsafe { value.cast_unchecked::<PyList>() };
            let n = ffi::Py_ssize_t::try_from(list.len()).expect("a list's length fits Py_ssize_t");
            // SAFETY: a new reference or NULL with an exception set; its slots start NULL,
            // which the list's deallocation accepts if an error leaves some unset.
            let out = unsafe { Bound::from_owned_ptr_or_err(py, ffi::PyList_New(n))? };
            for i in 0..n {
                // SAFETY: `i` is within the kept list, which nothing else can change; the
                // item is a borrowed reference valid while the list lives.
                let item = unsafe { Borrowed::from_ptr(py, ffi::PyList_GetItem(list.as_ptr(), i)) };
                let item = if is_container(item) {
                    fresh_containers(item)?
                } else {
                    item.to_owned()
                };
                // SAFETY: `out` is a new list of `n` slots and `i < n`; `PyList_SetItem`
                // takes the reference `into_ptr` gives up.
                unsafe {
                    ffi::PyList_SetItem(out.as_ptr(), i, item.into_ptr());
                }
            }
            Ok(out)
        }
        _ => Ok(value.to_owned()),
    }
}
