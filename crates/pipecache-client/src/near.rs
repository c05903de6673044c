//! The near cache: a client's own copies of artifacts it read from its server, answered
//! in its own process with no round trip (a served 50 KB get costs ~120 µs of socket,
//! wake-ups and copies; a near hit well under a microsecond).
//!
//! Never stale, by the store's change journal (`pipecache_store::JournalReader`): the
//! process writing the store publishes every changed key there before it acknowledges the
//! change, and every lookup here first drops the keys published since the last one. A copy
//! enters only if no change of its key was published between the moment the read began
//! and the moment it is kept ([`pipecache_tiers::MemoryTier::insert_if_unchanged`], whose
//! generation every drop moves). This is Redis' client-side caching, with the invalidation
//! messages in shared memory instead of on a connection.
//!
//! The server does not see these hits, so they are tallied here and reported to it
//! (`POST /v1/hits`) every [`REPORT_EVERY`], before the client asks for stats and when it
//! closes: the server counts them as memory-tier hits and keeps their keys' access times
//! for LRU.

use std::collections::HashMap;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use pipecache_store::{Change, JournalReader, StoredArtifact};
use pipecache_tiers::MemoryTier;

use crate::protocol::{KeyHits, NearCacheStats};

/// How often a client reports its near-cache hits to the server.
pub(crate) const REPORT_EVERY: Duration = Duration::from_secs(1);

/// Copies of artifacts read from the server, dropped as the journal names their keys.
pub(crate) struct NearCache {
    journal: JournalReader,
    memory: MemoryTier,
    /// Hits not yet reported to the server, by key.
    hits: Mutex<HashMap<String, KeyHits>>,
    hit_count: AtomicU64,
    miss_count: AtomicU64,
}

impl std::fmt::Debug for NearCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NearCache")
            .field("journal", &self.journal)
            .field("memory", &self.memory)
            .finish_non_exhaustive()
    }
}

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

impl NearCache {
    /// A near cache of `budget` bytes for the store in `dir`; `None` when the budget is 0
    /// or the store has no journal this process can read (then every get asks the server).
    pub(crate) fn open(dir: &Path, budget: u64) -> Option<Self> {
        if budget == 0 {
            return None;
        }
        let journal = match JournalReader::open(dir) {
            Ok(Some(j)) => j,
            Ok(None) => return None,
            Err(e) => {
                tracing::debug!(error = %e, "change journal not mapped; no near cache");
                return None;
            }
        };
        Some(Self {
            journal,
            memory: MemoryTier::new(budget),
            hits: Mutex::new(HashMap::new()),
            hit_count: AtomicU64::new(0),
            miss_count: AtomicU64::new(0),
        })
    }

    /// Drops every copy whose key changed since the last look.
    fn catch_up(&self) {
        self.journal.catch_up(|change| match change {
            Change::Key(hash) => self.memory.invalidate_hash(hash),
            Change::All => self.memory.clear(),
        });
    }

    /// The copy of `key`, if held and current; the hit is tallied for the server.
    pub(crate) fn get(&self, key: &str) -> Option<Arc<StoredArtifact>> {
        let started = quanta::Instant::now();
        self.catch_up();
        // A miss is counted once, by `before_read`: a caller may look here twice (first
        // without waiting) before it asks the server.
        let hit = self.memory.get(key, now_ms())?;
        self.hit_count.fetch_add(1, Ordering::Relaxed);
        let bytes = hit.artifact.logical_size();
        let seconds = started.elapsed().as_secs_f64();
        tally(
            &mut self.hits.lock().expect("near hits poisoned"),
            key,
            1,
            bytes,
            seconds,
        );
        Some(hit)
    }

    /// Taken before reading `key` from the server, for [`NearCache::keep`].
    pub(crate) fn before_read(&self, key: &str) -> u64 {
        self.miss_count.fetch_add(1, Ordering::Relaxed);
        self.catch_up();
        self.memory.generation(key)
    }

    /// Keeps `value`, read from the server since `seen` ([`NearCache::before_read`]),
    /// unless a change of its key was published meanwhile.
    pub(crate) fn keep(&self, key: &str, value: Arc<StoredArtifact>, seen: u64) {
        if self.journal.retired() {
            return;
        }
        self.catch_up();
        self.memory.insert_if_unchanged(key, value, 0, seen);
    }

    /// Its figures now.
    pub(crate) fn stats(&self) -> NearCacheStats {
        NearCacheStats {
            hits: self.hit_count.load(Ordering::Relaxed),
            misses: self.miss_count.load(Ordering::Relaxed),
            bytes: self.memory.weighted_size(),
            budget: self.memory.budget(),
        }
    }

    /// The hits tallied since the last call.
    pub(crate) fn take_hits(&self) -> Vec<KeyHits> {
        let mut hits = self.hits.lock().expect("near hits poisoned");
        std::mem::take(&mut *hits).into_values().collect()
    }

    /// Puts back hits a report could not deliver, so the next one carries them.
    pub(crate) fn restore_hits(&self, undelivered: Vec<KeyHits>) {
        let mut hits = self.hits.lock().expect("near hits poisoned");
        for h in undelivered {
            tally(&mut hits, &h.key, h.count, h.bytes, h.seconds);
        }
    }
}

/// Adds `count` hits of `key` (`bytes` and `seconds` in all) to `hits`; the key is copied
/// only the first time.
fn tally(hits: &mut HashMap<String, KeyHits>, key: &str, count: u64, bytes: u64, seconds: f64) {
    let t = match hits.get_mut(key) {
        Some(t) => t,
        None => hits.entry(key.to_owned()).or_insert_with(|| KeyHits {
            key: key.to_owned(),
            ..KeyHits::default()
        }),
    };
    t.count += count;
    t.bytes += bytes;
    t.seconds += seconds;
}
