//! Per-kind counters: what every tier counts for each artifact kind (hits, misses,
//! failures, bytes, latency), the kind table they are indexed by, and the subjects (videos)
//! with the most misses.
//!
//! Kinds come from the store options' [`KeyClassifier`]; a key it does not classify, or
//! every key when there is none, counts as [`OTHER`]. A counter is a slot in a fixed array
//! indexed by the kind, so counting on the hit path is a key scan and relaxed atomic adds:
//! no lock, no map lookup, no allocation.

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use pipecache_store::KeyClassifier;
use serde::{Deserialize, Serialize};

use crate::{Latency, LatencyHistogram};

/// The kind of keys no classifier claims.
pub const OTHER: &str = "other";

/// Most subjects the most-missed table tracks; misses of subjects beyond it are not
/// tracked (a fleet's working set of videos with recent misses is far smaller).
const MAX_SUBJECTS: usize = 10_000;

/// Subjects `stats` lists as most missed.
const MOST_MISSED: usize = 10;

/// The kinds metrics are labelled with, and what a hit of each saves.
#[derive(Debug)]
pub struct KindTable {
    classifier: Option<Arc<dyn KeyClassifier>>,
    /// The classifier's kinds, then [`OTHER`].
    names: Vec<String>,
    /// Recompute seconds per kind (0 for `other`: nothing says what it costs).
    costs: Vec<f64>,
}

impl KindTable {
    /// The table of `classifier`'s kinds; `cost_hints` (seconds per kind name) override
    /// its costs.
    pub fn new(
        classifier: Option<Arc<dyn KeyClassifier>>,
        cost_hints: &BTreeMap<String, f64>,
    ) -> Self {
        let own: Vec<&'static str> = classifier
            .as_ref()
            .map_or(Vec::new(), |c| c.kinds().to_vec());
        let mut names: Vec<String> = own.iter().map(|k| (*k).to_owned()).collect();
        let mut costs: Vec<f64> = (0..own.len())
            .map(|i| {
                cost_hints
                    .get(own[i])
                    .copied()
                    .or_else(|| classifier.as_ref().map(|c| c.recompute_seconds(i)))
                    .unwrap_or(0.0)
            })
            .collect();
        names.push(OTHER.to_owned());
        costs.push(cost_hints.get(OTHER).copied().unwrap_or(0.0));
        Self {
            classifier,
            names,
            costs,
        }
    }

    /// Number of kinds, [`OTHER`] included.
    pub fn len(&self) -> usize {
        self.names.len()
    }

    /// The kinds' names, in index order.
    pub fn names(&self) -> &[String] {
        &self.names
    }

    /// Always false: [`OTHER`] is always there.
    pub fn is_empty(&self) -> bool {
        false
    }

    /// The kind index of `key` and its subject.
    pub fn classify<'k>(&self, key: &'k str) -> (usize, Option<&'k str>) {
        match self.classifier.as_ref().and_then(|c| c.classify(key)) {
            Some(class) if class.kind < self.names.len() - 1 => (class.kind, class.subject),
            _ => (self.names.len() - 1, None),
        }
    }

    /// The kind index of `key`.
    pub fn kind_of(&self, key: &str) -> usize {
        self.classify(key).0
    }
}

/// What one tier counts for one kind.
#[derive(Debug, Default)]
pub struct KindCounters {
    pub(crate) hits: AtomicU64,
    pub(crate) misses: AtomicU64,
    pub(crate) errors: AtomicU64,
    pub(crate) timeouts: AtomicU64,
    /// Reads not sent while the tier was paused after consecutive failures.
    pub(crate) skipped: AtomicU64,
    pub(crate) puts: AtomicU64,
    /// Logical bytes of the artifacts its hits returned.
    pub(crate) read_bytes: AtomicU64,
    /// Logical bytes of the artifacts written to it.
    pub(crate) written_bytes: AtomicU64,
    /// Raw bytes of written parts whose blob the tier already held.
    pub(crate) deduplicated_bytes: AtomicU64,
    pub(crate) get_seconds: LatencyHistogram,
    pub(crate) put_seconds: LatencyHistogram,
}

/// One tier's counters, a slot per kind.
#[derive(Debug)]
pub struct ByKind(Box<[KindCounters]>);

fn add(c: &AtomicU64, n: u64) {
    c.fetch_add(n, Ordering::Relaxed);
}

impl ByKind {
    /// Counters for `kinds` kinds.
    pub fn new(kinds: usize) -> Self {
        Self((0..kinds).map(|_| KindCounters::default()).collect())
    }

    /// The counters of kind `kind`.
    pub fn of(&self, kind: usize) -> &KindCounters {
        &self.0[kind.min(self.0.len() - 1)]
    }

    /// A get of kind `kind` that found `bytes` (a hit) or nothing, in `took`.
    pub fn count_lookup(&self, kind: usize, found: Option<u64>, took: Duration) {
        let c = self.of(kind);
        match found {
            Some(bytes) => {
                add(&c.hits, 1);
                add(&c.read_bytes, bytes);
            }
            None => add(&c.misses, 1),
        }
        c.get_seconds.observe(took);
    }

    /// `n` gets of kind `kind` that found `bytes` in all, `each` taking `took`: hits
    /// another process answered and reported in bulk (a server client's near cache).
    pub fn count_hits(&self, kind: usize, n: u64, bytes: u64, took: Duration) {
        let c = self.of(kind);
        add(&c.hits, n);
        add(&c.read_bytes, bytes);
        c.get_seconds.observe_n(took, n);
    }

    /// A get of kind `kind` that found nothing, its time observed elsewhere.
    pub fn count_miss(&self, kind: usize) {
        add(&self.of(kind).misses, 1);
    }

    /// Adds counts carried over from an earlier process (see `manager::totals`).
    pub(crate) fn seed(&self, kind: usize, hits: u64, misses: u64, errors: u64, timeouts: u64) {
        let c = self.of(kind);
        add(&c.hits, hits);
        add(&c.misses, misses);
        add(&c.errors, errors);
        add(&c.timeouts, timeouts);
    }

    /// A read of kind `kind` not sent: the tier is paused after consecutive failures.
    pub fn count_skipped(&self, kind: usize) {
        add(&self.of(kind).skipped, 1);
    }

    /// A put of kind `kind` of `bytes` logical bytes, of which `deduplicated` raw bytes
    /// reused blobs the tier held.
    pub fn count_put(&self, kind: usize, bytes: u64, deduplicated: u64) {
        let c = self.of(kind);
        add(&c.puts, 1);
        add(&c.written_bytes, bytes);
        add(&c.deduplicated_bytes, deduplicated);
    }

    /// A failed call of kind `kind`.
    pub fn count_failure(&self, kind: usize, timeout: bool) {
        let c = self.of(kind);
        add(if timeout { &c.timeouts } else { &c.errors }, 1);
    }

    /// The figures per kind, named by `table`, each with what its hits saved.
    pub fn snapshot(&self, table: &KindTable) -> Vec<KindStats> {
        let r = |c: &AtomicU64| c.load(Ordering::Relaxed);
        self.0
            .iter()
            .zip(table.names.iter().zip(&table.costs))
            .map(|(c, (name, cost))| KindStats {
                kind: name.clone(),
                hits: r(&c.hits),
                misses: r(&c.misses),
                errors: r(&c.errors),
                timeouts: r(&c.timeouts),
                skipped: r(&c.skipped),
                puts: r(&c.puts),
                read_bytes: r(&c.read_bytes),
                written_bytes: r(&c.written_bytes),
                deduplicated_bytes: r(&c.deduplicated_bytes),
                recompute_seconds_saved: r(&c.hits) as f64 * cost,
                get_seconds: c.get_seconds.snapshot(),
                put_seconds: c.put_seconds.snapshot(),
            })
            .collect()
    }
}

/// One tier's figures for one kind, as `stats --json` reports them.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct KindStats {
    /// The kind (`other` for keys outside the pipeline's scheme).
    pub kind: String,
    /// Reads of this kind the tier answered.
    pub hits: u64,
    /// Reads it did not.
    pub misses: u64,
    /// Failed calls other than timeouts.
    pub errors: u64,
    /// Calls past their deadline.
    pub timeouts: u64,
    /// Reads not sent because the tier was paused after consecutive failures (each one a
    /// miss there that cost nothing).
    #[serde(default)]
    pub skipped: u64,
    /// Artifacts written.
    pub puts: u64,
    /// Logical bytes its hits returned.
    pub read_bytes: u64,
    /// Logical bytes written.
    pub written_bytes: u64,
    /// Raw bytes of written parts whose blob the tier already held: what dedup spared it
    /// (content-addressed tiers: the local store and packs; Redis and a server seen from its
    /// client store each artifact whole, so 0 there).
    #[serde(default)]
    pub deduplicated_bytes: u64,
    /// Hits × the kind's recompute cost: the time this tier's answers saved.
    pub recompute_seconds_saved: f64,
    /// Latency of its gets.
    pub get_seconds: Latency,
    /// Latency of its puts.
    pub put_seconds: Latency,
}

/// The sum of `kinds`' figures (a tier's totals).
pub(crate) fn total(kinds: &[KindStats]) -> KindStats {
    let mut t = KindStats::default();
    for k in kinds {
        t.hits += k.hits;
        t.misses += k.misses;
        t.errors += k.errors;
        t.timeouts += k.timeouts;
        t.skipped += k.skipped;
        t.puts += k.puts;
        t.read_bytes += k.read_bytes;
        t.written_bytes += k.written_bytes;
        t.deduplicated_bytes += k.deduplicated_bytes;
        t.recompute_seconds_saved += k.recompute_seconds_saved;
        t.get_seconds = t.get_seconds.merged(&k.get_seconds);
        t.put_seconds = t.put_seconds.merged(&k.put_seconds);
    }
    t
}

/// Misses per subject (video): what the pipeline had to recompute.
#[derive(Debug, Default)]
pub struct MissedSubjects(Mutex<HashMap<String, u64>>);

/// A subject and its misses.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct MissedSubject {
    /// What the missed keys were about (a video's fingerprint).
    pub subject: String,
    /// Gets of its keys that no tier answered.
    pub misses: u64,
}

impl MissedSubjects {
    /// A get of a key of `subject` that no tier answered. Called on misses only, which
    /// cost a recompute, so the lock is not on any hit path.
    pub fn count(&self, subject: &str) {
        let mut map = self.0.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(n) = map.get_mut(subject) {
            *n += 1;
        } else if map.len() < MAX_SUBJECTS {
            map.insert(subject.to_owned(), 1);
        }
    }

    /// The subjects with the most misses, most first (ties by name).
    pub fn most_missed(&self) -> Vec<MissedSubject> {
        let map = self.0.lock().unwrap_or_else(|e| e.into_inner());
        let mut all: Vec<MissedSubject> = map
            .iter()
            .map(|(s, &n)| MissedSubject {
                subject: s.clone(),
                misses: n,
            })
            .collect();
        all.sort_by(|a, b| {
            b.misses
                .cmp(&a.misses)
                .then_with(|| a.subject.cmp(&b.subject))
        });
        all.truncate(MOST_MISSED);
        all
    }
}

/// Where the running total of recompute seconds saved stood when the current UTC day
/// began, for "saved today".
#[derive(Debug)]
pub struct DayStart(Mutex<(u64, f64)>);

const DAY_MS: u64 = 86_400_000;

impl DayStart {
    /// Counting from `now_ms`, with nothing saved yet.
    pub fn new(now_ms: u64) -> Self {
        Self(Mutex::new((now_ms / DAY_MS, 0.0)))
    }

    /// The day counted (days since the Unix epoch, UTC) and the running total when it began.
    pub fn state(&self) -> (u64, f64) {
        *self.0.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Continues a count an earlier process kept: `state` from [`DayStart::state`] if it
    /// is still that day, else today starts at `total`, the running total carried over.
    pub fn restore(&self, state: (u64, f64), total: f64) {
        let mut start = self.0.lock().unwrap_or_else(|e| e.into_inner());
        *start = if start.0 == state.0 {
            state
        } else {
            (start.0, total)
        };
    }

    /// Seconds saved today, given the running total `total` at `now_ms`. The first call
    /// of a new day starts its count from there: no timer marks midnight, so what a day's
    /// first minutes saved before anyone asked counts to the day before.
    pub fn saved_today(&self, now_ms: u64, total: f64) -> f64 {
        let mut start = self.0.lock().unwrap_or_else(|e| e.into_inner());
        let day = now_ms / DAY_MS;
        if start.0 != day {
            *start = (day, total);
        }
        (total - start.1).max(0.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// "Saved today" counts from the day's first report: what was saved before midnight
    /// belongs to the day before.
    #[test]
    fn saved_today_restarts_each_utc_day() {
        let start = 10 * DAY_MS + 5_000;
        let day = DayStart::new(start);
        assert_eq!(day.saved_today(start + 1, 40.0), 40.0);
        assert_eq!(day.saved_today(start + 2, 55.0), 55.0);
        assert_eq!(day.saved_today(11 * DAY_MS + 1, 60.0), 0.0);
        assert_eq!(day.saved_today(11 * DAY_MS + 2, 75.0), 15.0);
    }

    /// Past the table's bound, new subjects are not tracked; known ones still count.
    #[test]
    fn missed_subjects_stay_bounded() {
        let missed = MissedSubjects::default();
        for i in 0..MAX_SUBJECTS + 5 {
            missed.count(&format!("v{i}"));
        }
        missed.count("v0");
        let map = missed.0.lock().unwrap();
        assert_eq!(map.len(), MAX_SUBJECTS);
        assert_eq!(map["v0"], 2);
    }
}
