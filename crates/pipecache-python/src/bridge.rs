//! Rust futures as asyncio futures, without any Rust thread touching Python.
//!
//! Why not pyo3-async-runtimes: its `future_into_py` sets each result from a tokio thread
//! holding the GIL, and when the interpreter starts finalizing meanwhile (a script that
//! returns right after its last await) that thread aborts the process ("PyGILState_Release:
//! thread state must be current"; PyO3/pyo3-async-runtimes#40, open). Measured here: 9 of 60
//! runs of a three-line script crashed under load. Here a finished call only queues its
//! outcome and writes one byte to a pipe the event loop watches (`loop.add_reader`, in
//! `python/pipecache/_bridge.py`); the loop thread, which holds the GIL anyway, turns queued
//! outcomes into Python values and resolves the futures. Tokio threads never attach, so
//! exit is safe at any moment, and a call costs one wake-up of the loop instead of a GIL
//! hand-over between threads.

use std::future::Future;
use std::io::{Read, Write};
use std::os::fd::AsRawFd;
use std::sync::{Arc, Mutex, OnceLock};

use pyo3::IntoPyObjectExt;
use pyo3::exceptions::PyRuntimeError;
use pyo3::prelude::*;

/// Turns a finished call's value into Python, on the loop thread; copies of large parts it
/// leaves to [`LargeCopies`].
type Outcome = Box<dyn FnOnce(Python<'_>, &mut LargeCopies) -> PyResult<Py<PyAny>> + Send>;

/// Large parts whose `bytes` objects exist (allocated on the loop thread, contents not yet
/// written) and whose copies run on the blocking pool before the future resolves: the loop
/// thread would otherwise spend the copy and the page faults of a fresh 100 MB buffer
/// (measured: the loop stalled 88 ms during a 100 MB get).
#[derive(Default)]
pub(crate) struct LargeCopies {
    jobs: Vec<(PartSource, UninitBytes)>,
}

/// A large part to copy into Python off the loop thread: part `index` of `owner`, the
/// artifact as the store or the memory tier shares it (never cloned on the way).
pub(crate) struct PartSource {
    owner: std::sync::Arc<pipecache::StoredArtifact>,
    index: usize,
}

impl PartSource {
    pub(crate) fn new(owner: std::sync::Arc<pipecache::StoredArtifact>, index: usize) -> Self {
        Self { owner, index }
    }

    fn bytes(&self) -> &[u8] {
        &self.owner.artifact.parts[self.index].data
    }
}

/// The buffer of a `bytes` object nobody else can reach yet.
struct UninitBytes {
    ptr: *mut u8,
    len: usize,
}

// SAFETY: the buffer belongs to a `bytes` object created by `LargeCopies::bytes` and held
// only inside the value of an outcome that resolves its future after the copy ends: no
// Python code can read it meanwhile, and one thread writes it.
#[allow(unsafe_code)]
unsafe impl Send for UninitBytes {}

impl LargeCopies {
    /// A `bytes` object that will hold `data` once the copies ran.
    #[allow(unsafe_code)]
    pub(crate) fn bytes<'py>(
        &mut self,
        py: Python<'py>,
        data: PartSource,
    ) -> PyResult<Bound<'py, pyo3::types::PyBytes>> {
        let len = isize::try_from(data.bytes().len())
            .map_err(|_| PyRuntimeError::new_err("a part too large for a bytes object"))?;
        // SAFETY: `PyBytes_FromStringAndSize(NULL, n)` returns a new reference to a bytes
        // object of `n` uninitialized bytes (or NULL with an exception set, which
        // `from_owned_ptr_or_err` turns into the error); `PyBytes_AsString` of a bytes object
        // is its buffer, valid while the object lives, which the outcome's value ensures.
        unsafe {
            let raw = pyo3::ffi::PyBytes_FromStringAndSize(std::ptr::null(), len);
            let obj = Bound::from_owned_ptr_or_err(py, raw)?.cast_into_unchecked();
            let ptr = pyo3::ffi::PyBytes_AsString(raw).cast::<u8>();
            self.jobs.push((
                data,
                UninitBytes {
                    ptr,
                    len: len as usize,
                },
            ));
            Ok(obj)
        }
    }

    /// Runs the copies (off the loop thread).
    #[allow(unsafe_code)]
    fn run(self) {
        for (data, dst) in self.jobs {
            // SAFETY: `dst` is `data.bytes().len()` writable bytes no one else touches (see
            // `UninitBytes`), distinct from `data`'s own allocation.
            unsafe { std::ptr::copy_nonoverlapping(data.bytes().as_ptr(), dst.ptr, dst.len) };
        }
    }
}

/// The runtime every call runs on, and the process that started it. One async worker: the
/// store's work runs on tokio's blocking pool, and a second worker only added wake-ups
/// (measured: 181 -> 51 µs per call).
fn runtime() -> &'static (tokio::runtime::Runtime, u32) {
    static RUNTIME: OnceLock<(tokio::runtime::Runtime, u32)> = OnceLock::new();
    RUNTIME.get_or_init(|| {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .thread_name("pipecache-io")
            .enable_all()
            .build()
            .expect("the tokio runtime starts");
        (rt, std::process::id())
    })
}

/// A forked child inherits the runtime but none of its threads (nor the store's writer): a
/// call there would wait forever, so it fails at once instead.
fn forked() -> bool {
    runtime().1 != std::process::id()
}

struct Queue {
    outcomes: Mutex<Vec<(u64, Outcome)>>,
    wake: Mutex<std::io::PipeWriter>,
}

impl Queue {
    /// Queues `outcome`; wakes the loop when the queue was empty (a byte is then pending
    /// until the loop drains, so later outcomes need none).
    fn complete(&self, token: u64, outcome: Outcome) {
        let was_empty = {
            let mut q = self.outcomes.lock().expect("completion queue poisoned");
            q.push((token, outcome));
            q.len() == 1
        };
        if was_empty {
            // A full pipe means a wake-up is already pending; nothing is lost.
            let _ = self.wake.lock().expect("wake pipe poisoned").write(&[1]);
        }
    }
}

/// The completions of one event loop: a queue and the pipe that wakes the loop.
#[pyclass(frozen, module = "pipecache._native")]
pub(crate) struct Completions {
    queue: Arc<Queue>,
    reader: Mutex<std::io::PipeReader>,
    fd: i32,
}

#[pymethods]
impl Completions {
    #[new]
    fn new() -> PyResult<Self> {
        let (reader, writer) = std::io::pipe()
            .map_err(|e| PyRuntimeError::new_err(format!("cannot create a pipe: {e}")))?;
        Ok(Self {
            fd: reader.as_raw_fd(),
            queue: Arc::new(Queue {
                outcomes: Mutex::new(Vec::new()),
                wake: Mutex::new(writer),
            }),
            reader: Mutex::new(reader),
        })
    }

    /// The pipe's read end, for `loop.add_reader` (set non-blocking by the caller).
    fn fileno(&self) -> i32 {
        self.fd
    }

    /// Drains the pipe and returns the finished calls as `(token, ok, value or exception)`.
    /// A value with large parts comes back later, once they are copied.
    fn take(&self, py: Python<'_>) -> Vec<(u64, bool, Py<PyAny>)> {
        let mut buf = [0u8; 256];
        // Non-blocking: an empty pipe answers WouldBlock at once.
        let _ = self
            .reader
            .lock()
            .expect("wake pipe poisoned")
            .read(&mut buf);
        let outcomes = std::mem::take(&mut *self.queue.outcomes.lock().expect("poisoned"));
        let mut ready = Vec::with_capacity(outcomes.len());
        for (token, outcome) in outcomes {
            let mut copies = LargeCopies::default();
            match outcome(py, &mut copies) {
                Ok(value) if copies.jobs.is_empty() => ready.push((token, true, value)),
                Ok(value) => {
                    let queue = self.queue.clone();
                    runtime().0.spawn_blocking(move || {
                        copies.run();
                        queue.complete(token, Box::new(move |_, _| Ok(value)));
                    });
                }
                Err(e) => ready.push((token, false, e.into_value(py).into_any())),
            }
        }
        ready
    }
}

/// Runs `fut` on the runtime; its value, through `convert`, or its error resolves the
/// Python future waiting under `token`. A panic in `fut` resolves it with a RuntimeError.
pub(crate) fn spawn<T, F, C>(done: &Completions, token: u64, fut: F, convert: C)
where
    T: Send + 'static,
    F: Future<Output = PyResult<T>> + Send + 'static,
    C: FnOnce(Python<'_>, T, &mut LargeCopies) -> PyResult<Py<PyAny>> + Send + 'static,
{
    let queue = done.queue.clone();
    if forked() {
        queue.complete(
            token,
            Box::new(|_, _| {
                Err(crate::errors::CacheError::new_err(
                    "pipecache was started in the parent of this forked process; its threads \
                     do not exist here. Open the cache in the child (multiprocessing's \
                     \"spawn\" or \"forkserver\" start method, or import after the fork)",
                ))
            }),
        );
        return;
    }
    let rt = &runtime().0;
    let call = rt.spawn(fut);
    rt.spawn(async move {
        let outcome: Outcome = match call.await {
            Ok(Ok(value)) => Box::new(move |py, copies| convert(py, value, copies)),
            Ok(Err(e)) => Box::new(move |_, _| Err(e)),
            Err(e) => {
                let message = format!("pipecache call failed: {e}");
                Box::new(move |_, _| Err(PyRuntimeError::new_err(message)))
            }
        };
        queue.complete(token, outcome);
    });
}

/// Converts a value that needs no Python objects of its own.
pub(crate) fn into_py<T>(py: Python<'_>, value: T, _: &mut LargeCopies) -> PyResult<Py<PyAny>>
where
    T: for<'py> IntoPyObject<'py>,
{
    value.into_bound_py_any(py).map(Bound::unbind)
}
