//! Remote GC of a pack tier: mark (read every record), sweep expired records (each read
//! again before its delete), sweep unreferenced packs past the grace period, and fold old
//! index objects into one.

use std::collections::{BTreeSet, HashSet};
use std::time::Duration;

use pipecache_format::BlobHash;
use pipecache_format::record::Record;
use pipecache_format::remote::{PackIndex, RemoteRecord};
use pipecache_remote::{ObjectEntry, RemoteError};
use serde::{Deserialize, Serialize};

use super::{CONCURRENCY, PackTier};
use crate::{Result, for_each_bounded};

/// What one remote GC pass did.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct PackGcReport {
    /// Live records seen.
    pub records: u64,
    /// Expired records deleted (expired longer than the grace period).
    pub expired_records: u64,
    /// Expired records found rewritten (put again) before their deletion, and kept.
    pub expired_rewritten: u64,
    /// Records that did not decode (kept, reported).
    pub corrupt_records: Vec<String>,
    /// Packs seen.
    pub packs: u64,
    /// Unreferenced packs deleted.
    pub packs_deleted: u64,
    /// Bytes of the deleted packs.
    pub bytes_reclaimed: u64,
    /// Unreferenced packs kept because they are younger than the grace period.
    pub packs_in_grace: u64,
    /// Index objects deleted (their keys moved to one consolidated index).
    pub indexes_deleted: u64,
    /// Nothing was deleted.
    pub dry_run: bool,
}

/// What the mark phase found in the records.
#[derive(Default)]
struct Marked {
    /// Packs the live records name.
    referenced: HashSet<BlobHash>,
    /// Keys of the live records.
    live_keys: BTreeSet<String>,
    /// Records expired past the grace period, with the bytes read.
    expired: Vec<(String, Vec<u8>)>,
}

/// An expired record's fate: deleted, or found rewritten (kept, with what it holds now).
enum Sweep {
    Deleted,
    Rewritten(Option<Vec<u8>>),
}

impl PackTier {
    /// Mark and sweep: deletes expired records, then packs no record names that are older
    /// than `grace`, then folds old index objects into one. A record that does not decode
    /// (damaged, or written by a newer pipecache) could name any pack, so a pass that meets
    /// one deletes nothing and reports it.
    pub async fn gc(&self, grace: Duration, dry_run: bool) -> Result<PackGcReport> {
        let now = self.clock.now_ms();
        let grace_ms = grace.as_millis() as u64;
        // A modification time of 0 means the backend did not say: treat it as young.
        let old =
            |modified_ms: u64| modified_ms != 0 && modified_ms.saturating_add(grace_ms) <= now;
        let mut report = PackGcReport {
            dry_run,
            ..PackGcReport::default()
        };
        // Listing packs and indexes before reading records: an object created after this
        // point is young and untouched whatever the records say.
        let packs = self
            .store
            .list("packs/")
            .await
            .map_err(|e| self.remote(e))?;
        let indexes = self
            .store
            .list("index/")
            .await
            .map_err(|e| self.remote(e))?;
        let mut marked = self.mark(now, grace_ms, &mut report).await?;
        report.packs = packs.len() as u64;
        if !report.corrupt_records.is_empty() {
            tracing::warn!(
                tier = %self.name,
                undecodable = report.corrupt_records.len(),
                "remote gc deleted nothing: records that do not decode may reference any pack"
            );
            return Ok(report);
        }
        let expired = std::mem::take(&mut marked.expired);
        if dry_run {
            report.expired_records += expired.len() as u64;
        } else {
            self.sweep_expired(expired, &mut marked, &mut report)
                .await?;
        }
        if !report.corrupt_records.is_empty() {
            return Ok(report);
        }
        self.sweep_packs(&packs, &marked.referenced, &old, dry_run, &mut report)
            .await?;
        let stale: Vec<&str> = indexes
            .iter()
            .filter(|i| old(i.modified_ms))
            .map(|i| i.path.as_str())
            .collect();
        if !stale.is_empty() && !dry_run {
            report.indexes_deleted = self.fold_indexes(&stale, marked.live_keys, now).await?;
        } else {
            report.indexes_deleted = stale.len() as u64;
        }
        Ok(report)
    }

    /// Reads every record: live ones mark their packs, expired ones (past the grace) are
    /// kept for the sweep, undecodable ones are reported.
    async fn mark(&self, now: u64, grace_ms: u64, report: &mut PackGcReport) -> Result<Marked> {
        let names: Vec<String> = self.record_names().await?.into_iter().collect();
        let mut marked = Marked::default();
        for (path, bytes) in self.get_many(names).await? {
            let Some(bytes) = bytes else { continue };
            let rec = match RemoteRecord::decode(&bytes) {
                Ok(r) => r,
                Err(e) => {
                    report.corrupt_records.push(format!("{path}: {e}"));
                    continue;
                }
            };
            if rec
                .expires_ms
                .is_some_and(|e| e.saturating_add(grace_ms) <= now)
            {
                marked.expired.push((path, bytes));
                continue;
            }
            report.records += 1;
            marked.referenced.extend(rec.packs());
            marked.live_keys.insert(rec.key);
        }
        Ok(marked)
    }

    /// Per expired record: read it again, delete it only if unchanged. Another machine may
    /// have put the key again since the pass read it; object stores have no conditional
    /// delete, so a re-put landing between this read and the delete is still lost (a later
    /// push of that machine writes it again). The window is one round trip per record, not
    /// the whole pass; records go several at a time. A rewritten record's packs are live.
    async fn sweep_expired(
        &self,
        expired: Vec<(String, Vec<u8>)>,
        marked: &mut Marked,
        report: &mut PackGcReport,
    ) -> Result<()> {
        let store = &self.store;
        let mut rewritten = Vec::new();
        for_each_bounded(
            expired,
            CONCURRENCY,
            |(path, seen)| {
                let store = store.clone();
                async move {
                    let now_there = store.get(&path).await?;
                    if now_there.as_deref() != Some(&seen[..]) {
                        return Ok((path, Sweep::Rewritten(now_there)));
                    }
                    store.delete(&path).await?;
                    Ok((path, Sweep::Deleted))
                }
            },
            |r: std::result::Result<(String, Sweep), RemoteError>| {
                match r.map_err(|e| self.remote(e))? {
                    (_, Sweep::Deleted) => report.expired_records += 1,
                    (path, Sweep::Rewritten(bytes)) => {
                        report.expired_rewritten += 1;
                        rewritten.push((path, bytes));
                    }
                }
                Ok(())
            },
        )
        .await?;
        for (path, bytes) in rewritten {
            match bytes.map(|b| RemoteRecord::decode(&b)) {
                Some(Ok(rec)) => marked.referenced.extend(rec.packs()),
                Some(Err(e)) => report.corrupt_records.push(format!("{path}: {e}")),
                None => {}
            }
        }
        Ok(())
    }

    /// Deletes the packs no live record names, once older than the grace period.
    async fn sweep_packs(
        &self,
        packs: &[ObjectEntry],
        referenced: &HashSet<BlobHash>,
        old: &(dyn Fn(u64) -> bool + Sync),
        dry_run: bool,
        report: &mut PackGcReport,
    ) -> Result<()> {
        for p in packs {
            let Some(id) = p
                .path
                .strip_prefix("packs/")
                .and_then(|h| BlobHash::from_hex(h).ok())
            else {
                continue;
            };
            if referenced.contains(&id) {
                continue;
            }
            if !old(p.modified_ms) {
                report.packs_in_grace += 1;
                continue;
            }
            report.packs_deleted += 1;
            report.bytes_reclaimed += p.size;
            if !dry_run {
                self.store
                    .delete(&p.path)
                    .await
                    .map_err(|e| self.remote(e))?;
            }
        }
        Ok(())
    }

    /// Blob entries of old indexes are past the reuse window; their keys live on in one
    /// consolidated index, written before any old index goes. Returns the indexes deleted.
    async fn fold_indexes(
        &self,
        stale: &[&str],
        live_keys: BTreeSet<String>,
        now: u64,
    ) -> Result<u64> {
        let idx = PackIndex::new(None, Vec::new(), live_keys.into_iter().collect(), now).encode();
        let name = format!("index/{}", BlobHash::of(&idx).to_hex());
        self.store
            .put(&name, idx)
            .await
            .map_err(|e| self.remote(e))?;
        let mut deleted = 0;
        for path in stale {
            if *path != name {
                self.store.delete(path).await.map_err(|e| self.remote(e))?;
                deleted += 1;
            }
        }
        // The next upload lists the indexes again: the deleted ones name nothing.
        self.map.lock().await.listed_ms = None;
        Ok(deleted)
    }
}
