//! Lookup totals kept across restarts. A manager built over a store adds the counts in the
//! store directory's `lookups.json` to its own at start, and writes its running totals back
//! every [`SAVE_EVERY`] and when it stops, so lookups per kind and the recompute time they
//! saved (in total and today) count since the store began counting, not since this process
//! started (the interval is [`crate::ManagerBuilder::totals_save_interval`]). Latency
//! histograms and the most-missed table stay this process's own. A lost
//! or damaged file only loses counts (logged); it never keeps the store from opening.
//! Format: docs/format.md, "Lookup totals".

use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use tokio::sync::watch;

use super::shared::Inner;
use crate::KindStats;

/// The file, in the store directory.
const FILE: &str = "lookups.json";
const VERSION: u32 = 1;
/// How often a running manager writes its totals by default (what a crash can lose).
pub(super) const SAVE_EVERY: Duration = Duration::from_secs(30);

#[derive(Debug, Default, PartialEq, Serialize, Deserialize)]
struct Totals {
    version: u32,
    /// Days since the Unix epoch (UTC) of `saved_at_day_start`.
    day: u64,
    /// Recompute seconds saved in total when that day began.
    saved_at_day_start: f64,
    /// Per kind name.
    kinds: BTreeMap<String, KindTotals>,
}

#[derive(Debug, Default, PartialEq, Serialize, Deserialize)]
struct KindTotals {
    hits: u64,
    misses: u64,
    errors: u64,
    timeouts: u64,
}

/// Gets as callers see them, per kind (what `CacheManager::lookup_stats` reports): the
/// lookups counted, plus the memory tier's hits, which are counted there only.
pub(super) fn lookup_stats(inner: &Inner) -> Vec<KindStats> {
    let kinds = &inner.kinds;
    let mut lookups = inner.lookups.snapshot(kinds);
    if inner.memory.is_some() {
        // A memory hit is counted once, on the memory tier: it is also a lookup the
        // cache answered, timed end to end by the same observation.
        let memory = inner.memory_counters.snapshot(kinds);
        for (l, m) in lookups.iter_mut().zip(memory) {
            l.hits += m.hits;
            l.read_bytes += m.read_bytes;
            l.recompute_seconds_saved += m.recompute_seconds_saved;
            l.get_seconds = l.get_seconds.merged(&m.get_seconds);
        }
    }
    lookups
}

fn current(inner: &Inner) -> Totals {
    let (day, saved_at_day_start) = inner.day_start.state();
    let kinds = lookup_stats(inner)
        .into_iter()
        .filter(|k| k.hits + k.misses + k.errors + k.timeouts > 0)
        .map(|k| {
            let t = KindTotals {
                hits: k.hits,
                misses: k.misses,
                errors: k.errors,
                timeouts: k.timeouts,
            };
            (k.kind, t)
        })
        .collect();
    Totals {
        version: VERSION,
        day,
        saved_at_day_start,
        kinds,
    }
}

/// Adds the totals an earlier process left in the store directory (kinds this table does
/// not know are dropped).
pub(super) fn load(inner: &Inner) {
    let path = inner.local.dir().join(FILE);
    let bytes = match std::fs::read(&path) {
        Ok(b) => b,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return,
        Err(e) => {
            tracing::warn!(path = %path.display(), error = %e, "lookup totals not read; counting from zero");
            return;
        }
    };
    let totals = match serde_json::from_slice::<Totals>(&bytes) {
        Ok(t) if t.version == VERSION => t,
        Ok(t) => {
            tracing::warn!(path = %path.display(), version = t.version, "lookup totals of an unknown version; counting from zero");
            return;
        }
        Err(e) => {
            tracing::warn!(path = %path.display(), error = %e, "lookup totals damaged; counting from zero");
            return;
        }
    };
    for (i, name) in inner.kinds.names().iter().enumerate() {
        if let Some(k) = totals.kinds.get(name) {
            inner
                .lookups
                .seed(i, k.hits, k.misses, k.errors, k.timeouts);
        }
    }
    let total = lookup_stats(inner)
        .iter()
        .map(|k| k.recompute_seconds_saved)
        .sum();
    inner
        .day_start
        .restore((totals.day, totals.saved_at_day_start), total);
}

/// Writes `totals` to `dir` atomically.
fn write(dir: &Path, totals: &Totals) -> std::io::Result<()> {
    let bytes = serde_json::to_vec_pretty(totals).map_err(std::io::Error::other)?;
    pipecache_format::replace_file(dir, FILE, &bytes)
}

/// Writes the running totals every `every` while they change, and once more when the
/// manager stops (`shutdown`).
pub(super) async fn keep_saved(
    inner: &std::sync::Arc<Inner>,
    mut shutdown: watch::Receiver<bool>,
    every: Duration,
) {
    let mut written = Totals::default();
    let mut failing = false;
    loop {
        let stopping = tokio::select! {
            _ = tokio::time::sleep(every) => false,
            _ = shutdown.changed() => true,
        };
        let now = current(inner);
        if now != written && !now.kinds.is_empty() {
            let dir = inner.local.dir().to_owned();
            let result = tokio::task::spawn_blocking(move || write(&dir, &now).map(|()| now))
                .await
                .unwrap_or_else(|e| std::panic::resume_unwind(e.into_panic()));
            match result {
                Ok(now) => {
                    written = now;
                    failing = false;
                }
                // A full disk or a read-only store: counts are not worth failing for.
                Err(e) if !failing => {
                    failing = true;
                    tracing::warn!(error = %e, "lookup totals not written; retrying");
                }
                Err(_) => {}
            }
        }
        if stopping || *shutdown.borrow() {
            return;
        }
    }
}
