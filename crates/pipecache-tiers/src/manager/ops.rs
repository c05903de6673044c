//! The manager's operations: the read walk with promotion, puts and deletes on every tier
//! by its write policy, listing, draining the queues, per-tier figures and closing.

use std::sync::Arc;
use std::time::{Duration, Instant};

use pipecache_store::outbox::QueueOp;
use pipecache_store::{Artifact, PutOptions, PutOutcome, Store, StoredArtifact, validate_key};

use super::shared::{CacheManager, Inner, release_off_runtime};
use super::tier::{RemoteKind, RemoteTier, Tier, TierStats, bump};
use super::write_through::Reservations;
use crate::pack::PackTier;
use crate::promotion::{PromotionOutcome, promote};
use crate::{CacheBackend, Error, Result};

/// Largest artifact a put keeps in the memory tier as it writes it: keeping costs a copy on
/// the put path, worth it for the small documents the next stages read, not for large
/// parts (those enter memory when read, from `SECOND_READ_MIN` on when read twice).
const KEEP_ON_PUT: u64 = 1 << 20;

impl CacheManager {
    /// The local store.
    pub fn local(&self) -> &Store {
        &self.inner.local
    }

    /// Contacts every remote tier once: reachable, bucket present. Errors name the tier.
    pub async fn check(&self) -> Result<()> {
        for t in &self.inner.remotes {
            t.check().await?;
        }
        Ok(())
    }

    /// The artifact under `key` from the fastest tier that has it.
    pub async fn get(&self, key: &str) -> Result<Option<Artifact>> {
        Ok(self.get_stored(key).await?.map(|s| s.artifact))
    }

    /// [`CacheManager::get`] with the artifact's times.
    pub async fn get_stored(&self, key: &str) -> Result<Option<StoredArtifact>> {
        Ok(self.get_shared(key).await?.map(Arc::unwrap_or_clone))
    }

    /// [`CacheManager::get_stored`], shared with the memory tier: a memory hit is not
    /// copied, and a read from a slower tier fills the memory tier.
    #[tracing::instrument(level = "debug", skip(self))]
    pub async fn get_shared(&self, key: &str) -> Result<Option<Arc<StoredArtifact>>> {
        validate_key(key)?;
        let started = quanta::Instant::now();
        let (kind, subject) = self.inner.kinds.classify(key);
        let found = match &self.inner.memory {
            None => self
                .get_from_tiers(key, kind)
                .await
                .map(|f| f.map(Arc::new)),
            Some(memory) => {
                if let Some(hit) = self.memory_lookup(memory, key, kind, started) {
                    return Ok(Some(hit));
                }
                let seen = memory.generation(key);
                let found = self
                    .get_from_tiers(key, kind)
                    .await
                    .map(|f| f.map(Arc::new));
                if let Ok(Some(f)) = &found {
                    memory.insert_if_unchanged(key, f.clone(), kind, seen);
                }
                found
            }
        };
        let lookups = &self.inner.lookups;
        match &found {
            Ok(f) => {
                let bytes = f.as_ref().map(|f| f.artifact.logical_size());
                lookups.count_lookup(kind, bytes, started.elapsed());
                if let (None, Some(subject)) = (f, subject) {
                    self.inner.missed.count(subject);
                }
            }
            Err(e) => {
                lookups.of(kind).get_seconds.observe(started.elapsed());
                lookups.count_failure(kind, e.is_timeout());
            }
        }
        found
    }

    /// Looks `key` (of kind `kind`) up in `memory`, counting a hit or a miss. A hit is
    /// counted once, on the memory tier (with its latency); [`CacheManager::lookup_stats`]
    /// adds the memory tier's hits to the lookups. A miss's time is the lookup's that goes
    /// on through the slower tiers.
    fn memory_lookup(
        &self,
        memory: &crate::MemoryTier,
        key: &str,
        kind: usize,
        started: quanta::Instant,
    ) -> Option<Arc<StoredArtifact>> {
        let hit = memory.get(key, self.inner.local.options().clock.now_ms());
        let counters = &self.inner.memory_counters;
        match &hit {
            Some(h) => {
                let bytes = h.artifact.logical_size();
                counters.count_lookup(kind, Some(bytes), started.elapsed());
            }
            None => counters.count_miss(kind),
        }
        hit
    }

    /// The memory tier's copy of `key`, without I/O: `None` when there is no memory tier
    /// or it does not hold the key (then [`CacheManager::get_shared`] reads the others, and
    /// counts the miss). Counts a hit.
    pub fn get_from_memory(&self, key: &str) -> Option<Arc<StoredArtifact>> {
        let memory = self.inner.memory.as_ref()?;
        let started = quanta::Instant::now();
        // The kind comes with the entry: a hit's key is not classified again.
        let now_ms = self.inner.local.options().clock.now_ms();
        let (hit, kind) = memory.get_with_kind(key, now_ms)?;
        let bytes = hit.artifact.logical_size();
        let counters = &self.inner.memory_counters;
        counters.count_lookup(kind, Some(bytes), started.elapsed());
        Some(hit)
    }

    /// Counts `count` hits of `key` that another process answered from its own copy (a
    /// server client's near cache), returning `bytes` in `took` all told, as hits of the
    /// memory tier (its row in stats, the lookups and the recompute time they saved), and
    /// notes the key's access time for LRU.
    pub fn count_near_hits(&self, key: &str, count: u64, bytes: u64, took: Duration) {
        if count == 0 {
            return;
        }
        let (kind, _) = self.inner.kinds.classify(key);
        // In O(1) whatever `count` says: a client's report is not trusted to be small.
        let each = Duration::from_secs_f64(took.as_secs_f64() / count as f64);
        self.inner
            .memory_counters
            .count_hits(kind, count, bytes, each);
        self.inner
            .near_hits
            .fetch_add(count, std::sync::atomic::Ordering::Relaxed);
        self.inner.local.record_access(key);
    }

    /// The walk below the memory tier: the local tier, then the remote ones by priority.
    async fn get_from_tiers(&self, key: &str, kind: usize) -> Result<Option<StoredArtifact>> {
        let local = &self.inner.local_tier;
        let started = Instant::now();
        let found = local.backend.get(key).await;
        local.count_get(key, kind, &found, started.elapsed());
        // A local failure that no remote tier can answer for is the caller's: damage
        // included (an error naming the key and blob, never a quiet miss).
        let mut error = match found {
            Ok(Some(f)) => return Ok(Some(f.stored)),
            Ok(None) => None,
            Err(e) => Some(e),
        };
        for (i, tier) in self.inner.remotes.iter().enumerate() {
            // Reached only when the local tier missed: a tier still owed this key's upload
            // may answer with the value the local put replaced.
            if tier.is_pending(key) || !tier.read_permitted(key) {
                continue;
            }
            let started = Instant::now();
            let found = tier.backend.get(key).await;
            tier.read_done(&found);
            tier.count_get(key, kind, &found, started.elapsed());
            match found {
                Ok(Some(f)) => {
                    self.promote(i, key, f.stored.clone());
                    return Ok(Some(f.stored));
                }
                Ok(None) => {}
                // A remote tier refusing its configuration (credentials, bucket) is the
                // caller's too: a miss would have the caller recompute forever beside a
                // cache it can never reach. An outage or timeout stays a (counted) miss:
                // the local tier keeps serving.
                Err(e) if e.is_misconfigured_remote() && error.is_none() => error = Some(e),
                Err(_) => {}
            }
        }
        error.map_or(Ok(None), Err)
    }

    /// Copies a hit in remote tier `from` into the faster tiers (the local one and the
    /// remote ones before it), nearest first, in the background.
    fn promote(&self, from: usize, key: &str, item: StoredArtifact) {
        let inner = self.inner.clone();
        let key = key.to_owned();
        self.inner.promotions.spawn(async move {
            let faster: Vec<&Tier> = inner.walk().take(from + 1).collect();
            let targets: Vec<&dyn CacheBackend> =
                faster.iter().rev().map(|t| &*t.backend).collect();
            // A put or delete queued for the source tier since the read: the copy is older
            // than what this machine now holds (or deleted).
            let source = &inner.remotes[from];
            let outcomes = promote(&key, &item, &targets, || !source.is_pending(&key)).await;
            for (tier, outcome) in faster.iter().rev().zip(outcomes) {
                match outcome {
                    PromotionOutcome::Copied => bump(&tier.counters.promotions),
                    PromotionOutcome::TooLarge => bump(&tier.counters.skipped_too_large),
                    PromotionOutcome::Failed(e) => tier.failed("promote", &key, &e),
                    PromotionOutcome::Stale => {}
                }
            }
            drop(targets);
            release_off_runtime(inner).await;
        });
    }

    /// Waits until every background promotion started so far has finished.
    #[cfg(feature = "test-hooks")]
    pub async fn wait_promotions(&self) {
        self.wait_promotions_inner().await;
    }

    pub(super) async fn wait_promotions_inner(&self) {
        self.inner.promotions.wait().await;
    }

    /// Stores `artifact` under `key` with the default TTL.
    pub async fn put(&self, key: &str, artifact: Artifact) -> Result<()> {
        self.put_with(key, artifact, PutOptions::default()).await
    }

    /// Stores `artifact` in the local tier, then per remote tier by its write policy. The
    /// memory tier drops its copy before and after, so no read returns the value replaced.
    #[tracing::instrument(level = "debug", skip(self, artifact, options))]
    pub async fn put_with(&self, key: &str, artifact: Artifact, options: PutOptions) -> Result<()> {
        let Some(memory) = &self.inner.memory else {
            return self.put_in_tiers(key, artifact, options).await;
        };
        // A small artifact is kept in memory as it is written: the stages after the one
        // that computed it read it next (a conditional copy may write nothing, so not it).
        let local = self.inner.local.options();
        let now = local.clock.now_ms();
        // One expiry for the store and memory alike.
        let options = PutOptions {
            expires_at_ms: options.expiry(now, local.default_ttl),
            ..options
        };
        let size = artifact.logical_size();
        let keep =
            (!options.if_absent && size <= KEEP_ON_PUT && memory.fits(key, size)).then(|| {
                StoredArtifact {
                    artifact: artifact.clone(),
                    created_ms: now,
                    expires_ms: options.expires_at_ms,
                }
            });
        let write = memory.begin_write(key);
        let written = self.put_in_tiers(key, artifact, options).await;
        // Otherwise dropping `write` drops the key.
        if let (Some(value), Ok(_)) = (keep, &written) {
            write.keep(Arc::new(value), self.inner.kinds.kind_of(key));
        }
        written
    }

    async fn put_in_tiers(&self, key: &str, artifact: Artifact, options: PutOptions) -> Result<()> {
        let started = Instant::now();
        let size = artifact.logical_size();
        let put = self.put_in_tiers_untimed(key, artifact, options).await;
        let local = &self.inner.local_tier;
        let kind = self.inner.kinds.kind_of(key);
        let by_kind = &local.counters.by_kind;
        by_kind.of(kind).put_seconds.observe(started.elapsed());
        match &put {
            Ok(put) if put.written => by_kind.count_put(kind, size, put.deduplicated_bytes),
            // Refused by `if_absent`: nothing written.
            Ok(_) => {}
            Err(e) => by_kind.count_failure(kind, e.is_timeout()),
        }
        put.map(drop)
    }

    async fn put_in_tiers_untimed(
        &self,
        key: &str,
        artifact: Artifact,
        options: PutOptions,
    ) -> Result<PutOutcome> {
        let remotes = &self.inner.remotes;
        if remotes.is_empty() {
            return Ok(self
                .inner
                .local
                .put_with_outbox(key, artifact, options, Vec::new())
                .await?);
        }
        let local = &self.inner.local;
        let now = local.options().clock.now_ms();
        // Computed once, so every tier records the same expiry.
        let expires_ms = options.expiry(now, local.options().default_ttl);
        let options = PutOptions {
            expires_at_ms: expires_ms,
            ..options
        };
        // Every remote tier gets its queue entry in the local put's own commit, so a crash
        // can never keep the artifact and lose its upload: a write-back tier's worker
        // uploads it; a write-through put uploads it itself below and removes the entry, and
        // when that fails (the tier is down) the entry stays for the worker. The local tier
        // keeps putting through an outage, and the tier never keeps the value this put
        // replaced.
        //
        // An artifact too large for a tier is not sent there, but the tier's copy of an older
        // value under the key must go: after a local eviction it would come back through
        // read-through, and other machines would read it. The tier gets a removal entry
        // (never dropped) instead of an upload. An upload dropped because the queue is full
        // queues a removal the same way: the tier ends up without the key rather than with
        // the value this put replaced.
        //
        // Every oversized put does so, a new key included: the tier may hold a value this
        // machine never had (another machine's put, or one evicted here). The cost is one
        // queue entry (and, write-through, one delete) per oversized put, next to a put that
        // took seconds of pipeline work (keyframe sets are routinely over a Redis tier's
        // limit).
        let size = artifact.logical_size();
        let mut reserved = Reservations::new(&self.inner, key);
        for (i, tier) in remotes.iter().enumerate() {
            if !tier.fits_size(size) {
                bump(&tier.counters.skipped_too_large);
                reserved.reserve(i, QueueOp::Delete);
            } else if !reserved.reserve(i, QueueOp::Upload) {
                tier.queue.count_drop(tier.backend.name());
                reserved.reserve(i, QueueOp::Delete);
            }
        }
        // Made before the commit: a caller that stops waiting leaves the entries to the worker.
        let attempts = reserved.sync_attempts();
        let uploads = attempts
            .entries
            .iter()
            .any(|(_, slot, _)| slot.op == QueueOp::Upload);
        let copy = uploads.then(|| artifact.clone());
        let (store, owned_key) = (local.clone(), key.to_owned());
        let written = reserved
            .commit(
                move |slots| async move {
                    Ok(store
                        .put_with_outbox(&owned_key, artifact, options, slots)
                        .await?)
                },
                |w| matches!(w, Ok(put) if put.written),
            )
            .await?;
        // Refused by `if_absent`: nothing was written locally, so nothing goes anywhere else.
        if !written.written {
            return Ok(written);
        }
        let item = copy.map(|artifact| StoredArtifact {
            artifact,
            created_ms: now,
            expires_ms,
        });
        attempts.run(item.as_ref()).await;
        Ok(written)
    }

    /// Waits until every write-back queue is empty, or `timeout` passes (then an error
    /// saying how many entries wait).
    pub async fn drain_queues(&self, timeout: Duration) -> Result<()> {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            let waiting: u64 = self.inner.remotes.iter().map(|t| t.queue.len()).sum();
            if waiting == 0 {
                return Ok(());
            }
            if tokio::time::Instant::now() >= deadline {
                return Err(Error::Timeout {
                    what: format!(
                        "{waiting} queue entries (uploads and removals) still waiting after {timeout:?}"
                    ),
                });
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Removes `key` from every tier (a copy left remotely would come back through
    /// read-through). Returns whether any tier had it.
    pub async fn delete(&self, key: &str) -> Result<bool> {
        validate_key(key)?;
        // No read fills the key while the delete is in flight; it is dropped again at the end.
        let _write = self.inner.memory.as_ref().map(|m| m.begin_write(key));
        self.delete_in_tiers(key).await
    }

    async fn delete_in_tiers(&self, key: &str) -> Result<bool> {
        // Every remote tier deletes through its queue, in order with the uploads before it:
        // deleting directly could race an upload of the old value already under way. A
        // write-through delete is applied by this call once the local one committed (the
        // worker retries it if the tier is down).
        let mut reserved = Reservations::new(&self.inner, key);
        for i in 0..self.inner.remotes.len() {
            reserved.reserve(i, QueueOp::Delete);
        }
        let attempts = reserved.sync_attempts();
        let (store, owned_key) = (self.inner.local.clone(), key.to_owned());
        let existed = reserved
            .commit(
                move |slots| async move { Ok(store.delete_with_outbox(&owned_key, slots).await?) },
                Result::is_ok,
            )
            .await?;
        Ok(attempts.run(None).await || existed)
    }

    /// Live keys starting with `prefix` in any tier that can list (the local store and the
    /// pack tiers; Redis cannot, and its values expire on their own). A tier that fails to
    /// answer is an error, not an empty listing.
    pub async fn list_keys(&self, prefix: &str) -> Result<std::collections::BTreeSet<String>> {
        let mut keys = std::collections::BTreeSet::new();
        for tier in self.inner.walk() {
            if !tier.backend.capabilities().list {
                continue;
            }
            let listed = tier
                .backend
                .list(prefix)
                .await
                .inspect_err(|e| tier.failed("list", prefix, e))?;
            keys.extend(listed);
        }
        Ok(keys)
    }

    /// Per-tier figures, fastest first.
    pub fn tier_stats(&self) -> Vec<TierStats> {
        let memory = self.inner.memory.as_deref().map(|m| {
            let near = self
                .inner
                .near_hits
                .load(std::sync::atomic::Ordering::Relaxed);
            TierStats::of_memory(m, &self.inner.memory_counters, &self.inner.kinds, near)
        });
        let local = TierStats::of(&self.inner.local_tier, None);
        let remotes = self.inner.remotes.iter().map(|t| TierStats::of(t, Some(t)));
        memory
            .into_iter()
            .chain(std::iter::once(local))
            .chain(remotes)
            .collect()
    }

    /// Gets as callers see them, per kind: answered by some tier (hits), by none (misses)
    /// or failed, their latency end to end, and the recompute time the hits saved. A
    /// manager built over a store counts since the store began counting (the counts
    /// persist in the store directory); latency is this process's own.
    pub fn lookup_stats(&self) -> Vec<crate::KindStats> {
        super::totals::lookup_stats(&self.inner)
    }

    /// Recompute seconds hits saved since the UTC day began (all kinds).
    pub fn recompute_seconds_saved_today(&self) -> f64 {
        let total = self
            .lookup_stats()
            .iter()
            .map(|k| k.recompute_seconds_saved)
            .sum();
        let now_ms = self.inner.local.options().clock.now_ms();
        self.inner.day_start.saved_today(now_ms, total)
    }

    /// The subjects (videos) whose gets no tier answered most often since the manager
    /// started, most first: what the pipeline recomputes.
    pub fn most_missed(&self) -> Vec<crate::MissedSubject> {
        self.inner.missed.most_missed()
    }

    /// The pack tier `name` (default: the first), with its index among the remote tiers.
    pub(super) fn pack_tier(&self, name: Option<&str>) -> Result<(usize, &RemoteTier, &PackTier)> {
        self.inner
            .remotes
            .iter()
            .enumerate()
            .find_map(|(i, t)| match &t.kind {
                RemoteKind::Pack(p) if name.is_none_or(|n| n == t.backend.name()) => {
                    Some((i, t, p.inner()))
                }
                _ => None,
            })
            .ok_or_else(|| {
                Error::invalid(match name {
                    Some(n) => format!("no s3 or fs-remote tier named {n:?} is configured"),
                    None => {
                        "no s3 or fs-remote tier is configured (add one under [[backends]])".into()
                    }
                })
            })
    }

    /// The pack tier `name` (default: the first s3 or fs-remote tier), for tests and
    /// benches that look at the remote layout directly.
    #[cfg(feature = "test-hooks")]
    pub fn remote_packs(&self, name: Option<&str>) -> Result<&PackTier> {
        self.pack_tier(name).map(|(_, _, p)| p)
    }

    /// Stops the write-back workers (queued entries stay queued for the next open), waits
    /// for promotions, and closes the local store when this was its last handle.
    pub async fn close(self) -> Result<()> {
        self.wait_promotions_inner().await;
        let _ = self.inner.shutdown.send(true);
        let workers = std::mem::take(&mut *self.inner.workers.lock().expect("workers poisoned"));
        for w in workers {
            let _ = w.await;
        }
        let CacheManager {
            inner,
            _handles: handles,
        } = self;
        drop(handles);
        match Arc::try_unwrap(inner) {
            Ok(inner) => {
                let Inner {
                    local,
                    local_tier,
                    remotes,
                    ..
                } = inner;
                // Their handles on the store go first: closing needs the last one.
                drop((local_tier, remotes));
                Ok(local.close().await?)
            }
            Err(_) => Ok(()),
        }
    }
}
