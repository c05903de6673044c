//! What a job planning on its own thread (gc, compaction, repair) needs to talk to the
//! writer: a progress callback type and a blocking request/answer.

use crossbeam_channel::Sender;
use tokio::sync::oneshot;

use crate::writer::Request;
use crate::{Error, Result};

/// Progress of a long job: `(phase, done, total)`.
pub type ProgressFn<'a> = &'a (dyn Fn(&str, u64, u64) + Send + Sync);

/// Sends a request to the writer and waits for its answer (blocking thread only).
pub(crate) fn call<T>(
    tx: &Sender<Request>,
    make: impl FnOnce(oneshot::Sender<Result<T>>) -> Request,
) -> Result<T> {
    let (reply, answer) = oneshot::channel();
    tx.send(make(reply)).map_err(|_| Error::Closed)?;
    answer.blocking_recv().map_err(|_| Error::Closed)?
}
