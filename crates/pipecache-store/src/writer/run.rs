//! The writer thread's loop: takes every request queued, refuses puts the free-space floor
//! forbids, applies the group in one commit, then runs maintenance requests one commit each.

use std::time::{Duration, Instant};

use crossbeam_channel::{Receiver, RecvTimeoutError};
use pipecache_format::{FRAME_HEADER_LEN, sync_dir};

use super::request::Request;
use super::state::Writer;
use crate::direct::DirectChunk;
use crate::options::Durability;
use crate::space::{WriteRoom, write_room};
use crate::{Error, PutOutcome, Result};

/// Bytes a put's record frame and chunk roll-over may add beyond its parts' frames, for the
/// `min_free_space` check (keys are at most 1 KiB, metadata at most `MAX_META_BYTES`).
const PUT_RECORD_ALLOWANCE: u64 = 80 << 10;

impl Writer {
    /// The thread body: runs until every sender is gone, then flushes access times.
    pub(crate) fn run(mut self, rx: Receiver<Request>) {
        let flush_every = self.shared.options.access_flush_interval;
        let mut last_access_flush = Instant::now();
        loop {
            let timeout = flush_every
                .saturating_sub(last_access_flush.elapsed())
                .max(Duration::from_millis(1));
            match rx.recv_timeout(timeout) {
                Ok(first) => {
                    let mut batch = vec![first];
                    let mut bytes = batch[0].payload_bytes();
                    while batch.len() < self.shared.options.max_batch_requests
                        && bytes < self.shared.options.max_batch_bytes
                    {
                        match rx.try_recv() {
                            Ok(r) => {
                                bytes += r.payload_bytes();
                                batch.push(r);
                            }
                            Err(_) => break,
                        }
                    }
                    let (group, maintenance): (Vec<Request>, Vec<Request>) =
                        batch.into_iter().partition(Request::is_group);
                    if !group.is_empty() {
                        self.run_group(group);
                    }
                    if !maintenance.is_empty() {
                        for req in maintenance {
                            self.run_maintenance(req);
                        }
                        // GC removed chunk files: the reserve may fit again (or a full disk
                        // may need it released).
                        self.adjust_reserve();
                    }
                }
                Err(RecvTimeoutError::Timeout) => {}
                Err(RecvTimeoutError::Disconnected) => break,
            }
            if last_access_flush.elapsed() >= flush_every {
                if let Err(e) = self.flush_access() {
                    tracing::warn!(error = %e, "writing access times failed");
                }
                last_access_flush = Instant::now();
            }
        }
        if let Err(e) = self.flush_access() {
            tracing::warn!(error = %e, "writing access times at close failed");
        }
        tracing::debug!("writer thread stopped");
    }
    /// Refuses, before anything is written, the puts that would leave less than
    /// `min_free_space` free on the store's filesystem; the rest of the group goes on
    /// (deletes in it are what frees space). Counted against one `statvfs` per group, with
    /// each put's bytes as if none were deduplicated.
    pub(super) fn refuse_puts_over_space(&self, batch: Vec<Request>) -> Vec<Request> {
        if !batch.iter().any(|r| matches!(r, Request::Put(_))) {
            return batch;
        }
        let Some(WriteRoom {
            free_bytes,
            min_free,
            mut room,
        }) = write_room(&self.shared.chunk_dir, self.shared.options.min_free_space)
        else {
            return batch;
        };
        let mut kept = Vec::with_capacity(batch.len());
        for req in batch {
            let Request::Put(p) = req else {
                kept.push(req);
                continue;
            };
            // Direct blobs are on disk already (and were checked by their caller).
            let need = p
                .parts
                .iter()
                .filter(|x| x.direct.is_none())
                .map(|x| (x.raw.len() + FRAME_HEADER_LEN) as u64)
                .sum::<u64>()
                + PUT_RECORD_ALLOWANCE;
            if need <= room {
                room -= need;
                kept.push(Request::Put(p));
            } else {
                let _ = p.reply.send(Err(Error::NoSpace {
                    detail: format!(
                        "put of {:?} needs up to {need} bytes; {} bytes are free on the store's filesystem and min_free_space keeps {min_free}",
                        p.key, free_bytes
                    ),
                }));
            }
        }
        kept
    }
    fn sync_chunk_dir(&self) -> Result<()> {
        if self.shared.options.durability != Durability::Fsync {
            return Ok(());
        }
        sync_dir(&self.shared.chunk_dir).map_err(Error::from)
    }
    /// Keeps the direct chunks the index now references and deletes the others (their put
    /// failed or was refused, or found every blob present). Asking the index, not the batch,
    /// is what keeps a commit that failed after RocksDB applied it from losing a chunk.
    fn settle_direct(&self, direct: Vec<DirectChunk>) {
        for chunk in direct {
            match self.shared.index.chunk(chunk.id()) {
                Ok(Some(_)) => chunk.adopt(),
                Ok(None) => drop(chunk),
                Err(e) => {
                    // Unknown: keep the file; the next open removes it if it is an orphan.
                    tracing::warn!(chunk = chunk.id(), error = %e, "direct chunk's fate unknown; kept");
                    chunk.adopt();
                }
            }
        }
    }
    /// Releases or restores the reserve file after space changed (see `space`).
    pub(super) fn adjust_reserve(&self) {
        if let Err(e) = self
            .shared
            .reserve
            .adjust(self.shared.options.min_free_space)
        {
            tracing::warn!(error = %e, "reserve file not adjusted");
        }
    }
    #[tracing::instrument(level = "debug", skip_all, fields(requests = batch.len()))]
    pub(super) fn run_group(&mut self, batch: Vec<Request>) {
        let batch = self.refuse_puts_over_space(batch);
        let mut st = self.new_state();
        let mut put_replies = Vec::new();
        let mut delete_replies = Vec::new();
        let mut flush_replies = Vec::new();
        let mut direct = Vec::new();
        let mut outcome: Result<()> = Ok(());
        for req in batch {
            match req {
                Request::Put(mut p) => {
                    direct.extend(p.direct.take());
                    let mut put = PutOutcome::default();
                    if outcome.is_ok() {
                        let deduplicated_before = st.bytes_deduped;
                        match self.apply_put(&mut st, &p) {
                            Ok(w) => {
                                put.written = w;
                                put.deduplicated_bytes = st.bytes_deduped - deduplicated_before;
                            }
                            Err(e) => outcome = Err(e),
                        }
                    }
                    put_replies.push((p.reply, put));
                }
                Request::Delete { key, queue, reply } => {
                    let mut existed = false;
                    if outcome.is_ok() {
                        match self.remove_artifact(&mut st, &key, None) {
                            Ok(removed) => existed = removed.is_some(),
                            Err(e) => outcome = Err(e),
                        }
                        // Queued even when nothing was here locally: a remote tier may hold
                        // the key (evicted here, or put by another machine).
                        for slot in queue {
                            st.queue_entries.push((slot, key.clone()));
                        }
                    }
                    delete_replies.push((reply, existed));
                }
                Request::FlushAccess { reply } => flush_replies.push(reply),
                other => unreachable!("maintenance request {other:?} in a group"),
            }
        }
        if outcome.is_ok() && !direct.is_empty() {
            // Direct chunks' directory entries, durable before the commit names them
            // (invariant 1): one directory fsync for the whole group.
            outcome = self.sync_chunk_dir();
        }
        if outcome.is_ok() {
            outcome = self.commit(st);
        }
        if outcome.is_err() {
            // Reload first: the direct chunks' fate is what the index now says.
            self.recover_after_error();
        }
        self.settle_direct(direct);
        match &outcome {
            Ok(()) => {
                for (r, put) in put_replies {
                    if put.written {
                        self.shared.counters.puts.add(1);
                    }
                    let _ = r.send(Ok(put));
                }
                for (r, existed) in delete_replies {
                    if existed {
                        self.shared.counters.deletes.add(1);
                    }
                    let _ = r.send(Ok(existed));
                }
            }
            Err(e) => {
                tracing::error!(error = %e, "group commit failed; recovering writer state");
                if e.is_no_space() {
                    // Another program filled the disk: give deletes and gc room.
                    self.adjust_reserve();
                }
                self.shared.counters.write_errors.add(1);
                for (r, _) in put_replies {
                    let _ = r.send(Err(e.duplicate()));
                }
                for (r, _) in delete_replies {
                    let _ = r.send(Err(e.duplicate()));
                }
            }
        }
        if !flush_replies.is_empty() {
            let res = self.flush_access();
            for r in flush_replies {
                let _ = r.send(res.as_ref().map(|_| ()).map_err(Error::duplicate));
            }
        }
    }
}
