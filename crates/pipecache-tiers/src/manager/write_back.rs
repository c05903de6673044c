//! The write-back worker of a remote tier: takes its queue's entries in order, plans each
//! batch from the keys' current local records (upload the current value, or remove the
//! tier's copy), applies it with backoff while the tier fails, and settles the entries.

use std::collections::HashMap;
use std::time::Duration;

use pipecache_store::outbox::{QueueEntry, QueueOp};
use pipecache_store::{Store, StoredArtifact};
use tokio::sync::watch;

use super::shared::Inner;
use super::tier::RemoteTier;
use crate::{Result, Written, for_each_bounded};

/// Queue entries uploaded per batch by a write-back worker.
const QUEUE_BATCH: usize = 64;
/// A write-back batch stops taking entries once its artifacts hold this many bytes, so 64
/// keyframe sets never sit in memory at once.
const QUEUE_BATCH_BYTES: u64 = 64 << 20;
/// Removals a write-back worker sends at once.
const WRITE_BACK_DELETES: usize = 8;
/// Longest wait between retries of a failing write-back upload.
const MAX_BACKOFF: Duration = Duration::from_secs(30);

/// What one write-back batch does, decided from index records alone (no blob is read
/// before the plan says it will be sent).
#[derive(Debug, Default, PartialEq, Eq)]
pub(super) struct WriteBackPlan {
    /// Queue entries the batch settles once it succeeds.
    pub(super) done: Vec<QueueEntry>,
    /// Keys whose current local artifact goes to the tier.
    pub(super) uploads: Vec<String>,
    /// Keys whose copy in the tier must go.
    pub(super) deletes: Vec<String>,
}

/// Plans a batch over `entries` (in queue order) from each key's current local size
/// (`sizes`: `None` when absent or expired here). The tier must end up holding the key's
/// current local value or nothing: a queued key means the tier's copy, if any, may be older.
/// A key with an upload entry in the batch follows its local state: present here and fitting
/// the tier is uploaded, anything else (deleted, evicted or expired here, too large for the
/// tier) is deleted there. A key queued only for removal (deleted, too large, or its upload
/// dropped on a full queue) is deleted there even if present here: sending it would spend
/// the upload the full queue refused, and nothing is the other answer the tier may give.
///
/// Entries of a key already planned are settled with it. The batch stops taking entries once
/// its uploads hold `max_bytes` (the first upload always goes, however large).
pub(super) fn plan_write_back(
    entries: Vec<QueueEntry>,
    sizes: &HashMap<String, Option<u64>>,
    fits: impl Fn(u64) -> bool,
    max_bytes: u64,
) -> WriteBackPlan {
    let wants_upload: std::collections::HashSet<String> = entries
        .iter()
        .filter(|e| e.op == QueueOp::Upload)
        .map(|e| e.key.clone())
        .collect();
    let mut plan = WriteBackPlan::default();
    let mut planned = std::collections::HashSet::new();
    let mut bytes = 0u64;
    for entry in entries {
        if bytes >= max_bytes {
            break;
        }
        if planned.insert(entry.key.clone()) {
            let size = sizes.get(&entry.key).copied().flatten();
            match size.filter(|_| wants_upload.contains(&entry.key)) {
                Some(size) if fits(size) => {
                    bytes += size;
                    plan.uploads.push(entry.key.clone());
                }
                _ => plan.deletes.push(entry.key.clone()),
            }
        }
        plan.done.push(entry);
    }
    plan
}

/// Sleeps `backoff`, then doubles it (up to [`MAX_BACKOFF`]); false when shutdown came first.
async fn wait(shutdown: &mut watch::Receiver<bool>, backoff: &mut Duration) -> bool {
    tokio::select! {
        _ = tokio::time::sleep(*backoff) => {}
        _ = shutdown.changed() => return false,
    }
    *backoff = (*backoff * 2).min(MAX_BACKOFF);
    true
}

pub(super) async fn write_back_worker(
    inner: &Inner,
    index: usize,
    mut shutdown: watch::Receiver<bool>,
) {
    let tier = &inner.remotes[index];
    let q = &tier.queue;
    let mut backoff = Duration::from_millis(100);
    loop {
        if *shutdown.borrow() {
            return;
        }
        // Local failures (reading or settling the queue, reading artifacts) are retried
        // like remote ones, not counted against the tier: a worker that stopped would leave
        // its keys pending until a restart.
        let entries = match inner.local.outbox_peek(&q.name, QUEUE_BATCH).await {
            // Entries a write-through call is still applying are that call's.
            Ok(mut e) => {
                // An entry not counted is either one a call settled after this read (its
                // removal landed first: a second read no longer shows it) or an orphan (a
                // second read still does), which is adopted rather than skipped forever.
                let uncounted = q.uncounted(&e);
                if !uncounted.is_empty()
                    && let Ok(again) = inner.local.outbox_peek(&q.name, QUEUE_BATCH).await
                {
                    for orphan in again.iter().filter(|a| uncounted.contains(&a.seq)) {
                        q.adopt(orphan);
                    }
                }
                q.retain_workable(&mut e);
                e
            }
            Err(e) => {
                tracing::error!(tier = tier.backend.name(), error = %e, "cannot read the write-back queue; retrying");
                if !wait(&mut shutdown, &mut backoff).await {
                    return;
                }
                continue;
            }
        };
        if entries.is_empty() {
            tokio::select! {
                _ = q.notify.notified() => {}
                _ = tokio::time::sleep(Duration::from_secs(1)) => {}
                _ = shutdown.changed() => return,
            }
            continue;
        }
        // Each key's current local state decides, read once per batch.
        let (done, uploads, deletes) = match read_write_back_batch(&inner.local, tier, entries)
            .await
        {
            Ok(batch) => batch,
            Err(e) => {
                // Not knowing the local state, neither upload nor delete: retry the batch. A
                // local failure, not the tier's: not counted against it.
                tracing::error!(tier = tier.backend.name(), error = %e, "cannot read queued artifacts locally; retrying");
                if !wait(&mut shutdown, &mut backoff).await {
                    return;
                }
                continue;
            }
        };
        let result: Result<Vec<Written>> = async {
            let written = if uploads.is_empty() {
                Vec::new()
            } else {
                tier.backend.put_many(&uploads).await?
            };
            // Distinct keys (one plan per key): their order does not matter, so a backlog of
            // removals after an outage drains several at a time.
            let backend = &tier.backend;
            for_each_bounded(
                deletes.iter().cloned(),
                WRITE_BACK_DELETES,
                |key| {
                    let backend = backend.clone();
                    async move { backend.delete(&key).await }
                },
                |r| r.map(drop),
            )
            .await?;
            Ok(written)
        }
        .await;
        match result {
            Ok(written) => {
                tier.succeeded();
                for ((key, item), written) in uploads.iter().zip(written) {
                    tier.count_put(key, item.artifact.logical_size(), written);
                }
                let seqs = done.iter().map(|e| e.seq).collect();
                if let Err(e) = inner.local.outbox_remove_delivered(&q.name, seqs).await {
                    // The batch is applied again after the wait: idempotent.
                    tracing::error!(tier = tier.backend.name(), error = %e, "cannot update the write-back queue; retrying");
                    if !wait(&mut shutdown, &mut backoff).await {
                        return;
                    }
                    continue;
                }
                q.settled(done.iter().map(|e| (e.key.as_str(), e.seq, e.op)));
                backoff = Duration::from_millis(100);
            }
            Err(e) => {
                let keys = uploads.iter().map(|(k, _)| k).chain(&deletes);
                tier.failed_batch("write-back", keys.map(String::as_str), &e);
                if !wait(&mut shutdown, &mut backoff).await {
                    return;
                }
            }
        }
    }
}

/// A write-back batch ready to send: settled entries, artifacts to upload, keys to delete.
type WriteBackBatch = (Vec<QueueEntry>, Vec<(String, StoredArtifact)>, Vec<String>);

/// Plans a batch from index records, then reads only the artifacts it uploads.
async fn read_write_back_batch(
    local: &Store,
    tier: &RemoteTier,
    entries: Vec<QueueEntry>,
) -> Result<WriteBackBatch> {
    let mut keys: Vec<String> = entries.iter().map(|e| e.key.clone()).collect();
    keys.sort_unstable();
    keys.dedup();
    let records = local.records(keys.clone()).await?;
    let sizes: HashMap<String, Option<u64>> = keys
        .into_iter()
        .zip(records)
        .map(|(k, r)| (k, r.map(|r| r.logical_size)))
        .collect();
    let plan = plan_write_back(entries, &sizes, |s| tier.fits_size(s), QUEUE_BATCH_BYTES);
    let mut uploads = Vec::with_capacity(plan.uploads.len());
    let mut deletes = plan.deletes;
    for key in plan.uploads {
        // The key may have changed since its record was read; what cannot be sent now is
        // deleted there, as in the plan.
        match local.get_stored(&key).await {
            Ok(Some(item)) if tier.fits(&item) => uploads.push((key, item)),
            Ok(_) => deletes.push(key),
            // Corrupt here: never sent. The tier's copy may be of an older value, and a
            // miss is better than that.
            Err(e) if e.is_corruption() => {
                tracing::warn!(tier = tier.backend.name(), key = %key, error = %e, "queued artifact corrupt locally; not uploaded, the tier's copy removed");
                deletes.push(key);
            }
            Err(e) => return Err(e.into()),
        }
    }
    Ok((plan.done, uploads, deletes))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::manager::queue::tests::entry;

    fn seqs(plan: &WriteBackPlan) -> Vec<u64> {
        plan.done.iter().map(|e| e.seq).collect()
    }

    fn sizes(of: &[(&str, Option<u64>)]) -> HashMap<String, Option<u64>> {
        of.iter().map(|(k, s)| ((*k).to_owned(), *s)).collect()
    }

    /// A key with an upload entry follows its local state: present and fitting uploads,
    /// anything else (oversized, deleted, evicted) deletes the tier's copy. A key queued only
    /// for removal is deleted there even when present here (its upload was dropped). A key
    /// queued twice is planned once and both entries are settled.
    #[test]
    fn write_back_plan_follows_local_state() {
        let entries = vec![
            entry(1, "fits", QueueOp::Upload),
            entry(2, "oversized", QueueOp::Upload),
            entry(3, "deleted", QueueOp::Delete),
            entry(4, "evicted", QueueOp::Upload),
            entry(5, "fits", QueueOp::Delete),
            entry(6, "evicted", QueueOp::Delete),
            entry(7, "dropped", QueueOp::Delete),
            entry(8, "removed-then-put", QueueOp::Delete),
            entry(9, "removed-then-put", QueueOp::Upload),
        ];
        let local = sizes(&[
            ("fits", Some(10)),
            ("oversized", Some(1_000)),
            ("deleted", None),
            ("evicted", None),
            ("dropped", Some(5)),
            ("removed-then-put", Some(5)),
        ]);
        let plan = plan_write_back(entries.clone(), &local, |s| s <= 100, u64::MAX);
        assert_eq!(
            plan,
            WriteBackPlan {
                done: entries,
                uploads: vec!["fits".into(), "removed-then-put".into()],
                deletes: vec![
                    "oversized".into(),
                    "deleted".into(),
                    "evicted".into(),
                    "dropped".into()
                ],
            }
        );
    }

    /// A batch stops taking entries once its uploads reach the byte limit; the first upload
    /// goes whatever its size, and oversized or absent keys weigh nothing.
    #[test]
    fn write_back_plan_stops_at_the_byte_limit() {
        let mib = 1u64 << 20;
        let entries = (1..=6)
            .map(|i| entry(i, &format!("k{i}"), QueueOp::Upload))
            .collect();
        let local = sizes(&[
            ("k1", None),
            ("k2", Some(40 * mib)),
            ("k3", Some(900 * mib)),
            ("k4", Some(30 * mib)),
            ("k5", Some(mib)),
            ("k6", Some(mib)),
        ]);
        let fits = |s| s <= 100 * mib;
        let plan = plan_write_back(entries, &local, fits, QUEUE_BATCH_BYTES);
        assert_eq!(seqs(&plan), vec![1, 2, 3, 4]);
        assert_eq!(plan.uploads, vec!["k2", "k4"]);
        assert_eq!(plan.deletes, vec!["k1", "k3"]);

        let one = vec![
            entry(1, "huge", QueueOp::Upload),
            entry(2, "k", QueueOp::Upload),
        ];
        let local = sizes(&[("huge", Some(80 * mib)), ("k", Some(1))]);
        let plan = plan_write_back(one, &local, fits, QUEUE_BATCH_BYTES);
        assert_eq!(
            (seqs(&plan), plan.uploads),
            (vec![1], vec!["huge".to_owned()])
        );
    }
}
