//! Committing a batch (chunk fsync, then one index batch through the only
//! [`IndexWriter`](pipecache_index::IndexWriter)), writing collected access times, and
//! recovering the writer's state from the index after a failed commit.

use pipecache_format::record::{AccessRecord, RECORD_VERSION};

use super::state::{BatchState, Writer};
use crate::Result;
use crate::options::Durability;
use crate::recovery::recover_chunks;

impl Writer {
    pub(super) fn commit(&mut self, mut st: BatchState) -> Result<()> {
        let sync = self.shared.options.durability == Durability::Fsync;
        if let Some(chunk) = &mut self.chunk {
            let len = if sync { chunk.sync()? } else { chunk.flush()? };
            let id = chunk.id();
            self.chunk_state(&mut st, id)?.total_bytes = len;
        }
        let mut b = self.index_writer.batch();
        for (hash, rec) in &st.blobs {
            if !st.blob_deletes.contains(hash) {
                b.put_blob(hash, rec);
            }
        }
        for hash in &st.blob_deletes {
            b.delete_blob(hash);
        }
        for (id, rec) in &st.chunks {
            if !st.chunk_deletes.contains(id) {
                b.put_chunk(*id, rec);
            }
        }
        for id in &st.chunk_deletes {
            b.delete_chunk(*id);
        }
        // Deletions before insertions: an expiry entry deleted and re-added by two puts of the
        // same key in one batch must survive.
        for (t, key) in &st.expiry_del {
            b.delete_expiry(*t, key);
        }
        for (key, rec) in &st.artifacts {
            match rec {
                Some(rec) => b.put_artifact(key, rec),
                None => {
                    b.delete_artifact(key);
                    b.delete_access(key);
                }
            }
        }
        for (t, key) in &st.expiry_put {
            if matches!(st.artifacts.get(key), Some(Some(rec)) if rec.expires_ms == Some(*t)) {
                b.put_expiry(*t, key);
            }
        }
        for (key, now) in &st.access {
            if matches!(st.artifacts.get(key), Some(Some(_))) {
                b.put_access(
                    key,
                    &AccessRecord {
                        v: RECORD_VERSION,
                        last_ms: *now,
                    },
                );
            }
        }
        for (slot, key) in &st.queue_entries {
            b.put_queue_entry(&slot.queue, slot.seq, key, slot.op);
        }
        b.put_meta(&st.meta);
        let committed = self.index_writer.commit(b, sync);
        if let Some(journal) = &self.shared.journal {
            match &committed {
                // Before any request of this commit is answered: a process that sees the
                // answer (or a later one) then finds every changed key in the journal.
                Ok(()) => journal.publish(st.artifacts.keys().map(String::as_str)),
                // A failed commit may still have reached the index (a failed WAL sync):
                // readers drop everything rather than keep what it may have replaced.
                Err(_) => journal.publish_everything(),
            }
        }
        committed?;
        self.meta = st.meta;
        self.shared.bump_epoch();
        let c = &self.shared.counters;
        c.commits.add(1);
        c.blobs_written.add(st.blobs_written);
        c.blobs_deduped.add(st.blobs_deduped);
        c.bytes_deduped.add(st.bytes_deduped);
        c.bytes_written.add(st.bytes_written);
        self.shared.after_commit(&self.meta);
        Ok(())
    }
    /// Writes access times collected by reads, in one unsynced batch: losing the last few
    /// seconds of access times in a crash only makes LRU slightly less exact.
    pub(super) fn flush_access(&mut self) -> Result<()> {
        let pending = std::mem::take(&mut *self.shared.access.lock().expect("access map poisoned"));
        if pending.is_empty() {
            return Ok(());
        }
        let index = &self.shared.index;
        let mut b = self.index_writer.batch();
        for (key, t) in &pending {
            // A key deleted since it was read must not get an orphan access entry.
            if index.artifact(key)?.is_some() {
                b.put_access(
                    key,
                    &AccessRecord {
                        v: RECORD_VERSION,
                        last_ms: *t,
                    },
                );
            }
        }
        self.index_writer.commit(b, false)?;
        Ok(())
    }
    /// After a failed commit: forget in-memory state and reload it from the index, dropping any
    /// chunk bytes or files the failed batch left behind.
    pub(super) fn recover_after_error(&mut self) {
        self.chunk = None;
        match recover_chunks(&self.shared, &self.index_writer) {
            Ok((meta, chunk)) => {
                self.meta = meta;
                self.chunk = chunk;
            }
            Err(e) => tracing::error!(error = %e, "writer recovery failed; later writes will fail"),
        }
    }
}
