//! The memory tier: hot artifacts in this process's memory, in front of the local store.
//!
//! foyer's in-memory cache with S3-FIFO eviction (a new entry waits in a small queue and
//! reaches the main one only if read again there, so a scan of one-off reads cannot flush
//! the hot artifacts, as it does under LRU) and a byte budget. Values are shared
//! (`Arc<StoredArtifact>`), never copied per hit by [`MemoryTier::get`]. On the Zipf trace
//! of `benches/memory.rs` (1M reads over 100k keys, cache at 1% of them) S3-FIFO hit 59.7%
//! against moka's TinyLFU 55.0% and LRU 50.2%.
//!
//! It never serves a value a later write replaced. Every put and delete through the manager
//! invalidates the key before it writes (and no read fills it while the write is in flight,
//! [`MemoryTier::begin_write`]), and after (a small put keeps its value instead,
//! [`MemoryTier::insert_written`], unless another write intervened), GC's expiries and evictions invalidate
//! it from the store's writer thread ([`pipecache_store::Store::on_removal`]), and expiry is
//! also checked on every hit. A read that missed fills the tier only if no write
//! invalidated its key's stripe since the read began ([`MemoryTier::insert_if_unchanged`]):
//! the check and the insert hold the stripe's lock, which every invalidation takes after
//! moving the stripe's generation, so a slow reader can never put back a value a write
//! replaced. Generations are per stripe, not global: with one counter, 32 puts in flight
//! kept each other (and every concurrent read) from filling the tier at all.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use pipecache_format::key_hash;
use pipecache_store::StoredArtifact;

/// Stripes ordering inserts against invalidations of the same key; many, so that
/// concurrent writes to other keys rarely share one (a shared stripe only costs a fill).
const STRIPES: usize = 4096;

/// One stripe: its lock, its generation, which moves on every invalidation of a key in it,
/// and how many writes of its keys are in flight ([`MemoryTier::begin_write`]).
#[derive(Default)]
struct Stripe {
    lock: Mutex<()>,
    generation: AtomicU64,
    writing: AtomicU64,
}

/// Artifacts larger than this enter on their second read, not their first: a fill needs
/// fresh memory for all its bytes (the tier keeps them), and on this project's VM the page
/// faults of fresh memory cost ~0.6 ms per MB, more than reading and checking the same
/// bytes again (~0.45 ms per MB). A fill pays off only if the artifact is read again, so
/// the first read only notes it ([`MemoryTier::read_before`], a doorkeeper as TinyLFU
/// admission uses). Small artifacts (transcripts, descriptions) enter on the first read.
pub const SECOND_READ_MIN: u64 = 1 << 20;

/// Slots of the doorkeeper noting large first reads.
const DOORKEEPER_SLOTS: usize = 1024;

/// Entry overhead counted against the budget besides key and bytes.
const ENTRY_OVERHEAD: u64 = 96;

/// Shards of the cache, each with its lock and a share of the budget: few, since each
/// evicts within its share, so the largest entry kept is a quarter of one shard.
const SHARDS: usize = 4;

/// What the tier holds per key: the key itself (entries are found by [`key_hash`], so a
/// change journal naming only hashes can drop them), the artifact, and the key's kind (so a
/// hit is counted by kind without classifying its key again: that was a third of what
/// counting a memory hit cost).
#[derive(Clone, Debug)]
struct Held {
    key: Box<str>,
    artifact: Arc<StoredArtifact>,
    kind: usize,
}

type Entries = foyer_memory::Cache<u64, Held>;

/// Hot artifacts in memory. See the module docs for why it is never stale.
pub struct MemoryTier {
    cache: Entries,
    stripes: Box<[Stripe]>,
    budget: u64,
    /// Largest artifact kept: a quarter of a shard's share of the budget, so one large
    /// read cannot flush every hot small one, and a shard never holds more than its share.
    max_entry: u64,
    /// Hashes of keys whose large artifact was read once and not kept (see
    /// [`SECOND_READ_MIN`]); 0 is empty.
    doorkeeper: Box<[AtomicU64]>,
}

impl std::fmt::Debug for MemoryTier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MemoryTier")
            .field("budget", &self.budget)
            .field("usage", &self.cache.usage())
            .finish_non_exhaustive()
    }
}

fn weight(key: &str, value: &StoredArtifact) -> u64 {
    key.len() as u64 + value.artifact.logical_size() + ENTRY_OVERHEAD
}

impl MemoryTier {
    /// A tier holding at most `budget` bytes (keys, parts and per-entry overhead).
    pub fn new(budget: u64) -> Self {
        let cache = Entries::builder(usize::try_from(budget).unwrap_or(usize::MAX))
            .with_name("pipecache-memory")
            .with_shards(SHARDS)
            .with_eviction_config(foyer_memory::S3FifoConfig::default())
            .with_weighter(|_: &u64, v: &Held| {
                usize::try_from(weight(&v.key, &v.artifact)).unwrap_or(usize::MAX)
            })
            .build();
        Self {
            cache,
            stripes: (0..STRIPES).map(|_| Stripe::default()).collect(),
            budget,
            max_entry: budget / (4 * SHARDS as u64),
            doorkeeper: (0..DOORKEEPER_SLOTS).map(|_| AtomicU64::new(0)).collect(),
        }
    }

    /// The byte budget.
    pub fn budget(&self) -> u64 {
        self.budget
    }

    /// Bytes held now (evictions run within each insert).
    pub fn weighted_size(&self) -> u64 {
        self.cache.usage() as u64
    }

    fn stripe(&self, hash: u64) -> &Stripe {
        &self.stripes[(hash % STRIPES as u64) as usize]
    }

    /// The artifact under `key`, unless absent or expired at `now_ms` (an expired one is
    /// dropped). Counts nothing: the manager counts hits and misses per kind.
    pub fn get(&self, key: &str, now_ms: u64) -> Option<Arc<StoredArtifact>> {
        self.get_with_kind(key, now_ms)
            .map(|(artifact, _)| artifact)
    }

    /// [`MemoryTier::get`] with the kind the artifact was kept under.
    pub fn get_with_kind(&self, key: &str, now_ms: u64) -> Option<(Arc<StoredArtifact>, usize)> {
        let hash = key_hash(key);
        match self.cache.get(&hash) {
            // Another key of the same hash: not this one's.
            Some(entry) if *entry.value().key != *key => None,
            Some(entry) if !entry.value().artifact.is_expired(now_ms) => {
                let held = entry.value();
                Some((held.artifact.clone(), held.kind))
            }
            Some(_) => {
                self.invalidate_hash(hash);
                None
            }
            None => None,
        }
    }

    /// The generation of `key`'s stripe, taken by a read before it reads a slower tier.
    pub fn generation(&self, key: &str) -> u64 {
        self.stripe(key_hash(key)).generation.load(Ordering::SeqCst)
    }

    /// Keeps `value` read under `key` (of kind `kind`, an index of the manager's kind
    /// table), unless an invalidation happened since the read
    /// began (`seen`, from [`MemoryTier::generation`]), it is larger than the largest entry
    /// kept (see `max_entry`), or it is larger than [`SECOND_READ_MIN`] and this is not its second read
    /// in a row.
    pub fn insert_if_unchanged(
        &self,
        key: &str,
        value: Arc<StoredArtifact>,
        kind: usize,
        seen: u64,
    ) {
        let weight = weight(key, &value);
        let hash = key_hash(key);
        if weight > self.max_entry || (weight > SECOND_READ_MIN && !self.read_before(hash)) {
            return;
        }
        let stripe = self.stripe(hash);
        let _held = stripe.lock.lock().expect("memory tier stripe poisoned");
        // A write in flight may commit at any moment: what the read found may already be
        // replaced in the store, and nothing would invalidate it here afterwards.
        if stripe.generation.load(Ordering::SeqCst) == seen
            && stripe.writing.load(Ordering::SeqCst) == 0
        {
            let held = Held {
                key: key.into(),
                artifact: value,
                kind,
            };
            self.cache.insert(hash, held);
        }
    }

    /// Whether an artifact of `size` logical bytes under `key` is small enough to keep.
    pub fn fits(&self, key: &str, size: u64) -> bool {
        key.len() as u64 + size + ENTRY_OVERHEAD <= self.max_entry
    }

    /// Whether `key` was the last large read noted in its doorkeeper slot (then the slot is
    /// cleared); otherwise notes it. A collision only costs a fill too many or too few.
    fn read_before(&self, hash: u64) -> bool {
        // Never 0, the empty slot.
        let h = hash | 1;
        let slot = &self.doorkeeper[(h % DOORKEEPER_SLOTS as u64) as usize];
        if slot.load(Ordering::Relaxed) == h {
            slot.store(0, Ordering::Relaxed);
            true
        } else {
            slot.store(h, Ordering::Relaxed);
            false
        }
    }

    /// Starts a write (put or delete) of `key`: drops it, and keeps reads from filling its
    /// stripe until the returned guard ends the write ([`WriteGuard::keep`], or dropping
    /// it, which drops the key again). Without this, a read that began after the write's
    /// invalidation could keep the value the write replaces, between the write's commit and
    /// its end, and serve it to whoever already saw the commit (a near cache filling from
    /// this server after the change journal named the key).
    pub fn begin_write(&self, key: &str) -> WriteGuard<'_> {
        let hash = key_hash(key);
        let stripe = self.stripe(hash);
        stripe.writing.fetch_add(1, Ordering::SeqCst);
        self.invalidate_hash(hash);
        WriteGuard {
            tier: self,
            key: key.to_owned(),
            seen: stripe.generation.load(Ordering::SeqCst),
            kept: false,
        }
    }

    /// Drops `key` now; reads that began before are kept from filling it back.
    pub fn invalidate(&self, key: &str) {
        self.invalidate_hash(key_hash(key));
    }

    /// Drops whatever key has [`key_hash`] `hash` (what a change journal names).
    pub fn invalidate_hash(&self, hash: u64) {
        let stripe = self.stripe(hash);
        stripe.generation.fetch_add(1, Ordering::SeqCst);
        let _held = stripe.lock.lock().expect("memory tier stripe poisoned");
        self.cache.remove(&hash);
    }

    /// Drops everything; reads that began before are kept from filling anything back.
    pub fn clear(&self) {
        for stripe in self.stripes.iter() {
            stripe.generation.fetch_add(1, Ordering::SeqCst);
        }
        // A fill that checked its stripe's generation before it moved holds the stripe's
        // lock until it has inserted: wait for each, then clear after them.
        for stripe in self.stripes.iter() {
            drop(stripe.lock.lock().expect("memory tier stripe poisoned"));
        }
        self.cache.clear();
    }
}

/// A write of one key in flight ([`MemoryTier::begin_write`]).
#[derive(Debug)]
pub struct WriteGuard<'t> {
    tier: &'t MemoryTier,
    key: String,
    /// The stripe's generation right after the write's own invalidation.
    seen: u64,
    /// Set by [`WriteGuard::keep`]; otherwise dropping the guard drops the key.
    kept: bool,
}

impl WriteGuard<'_> {
    /// Ends the write, keeping `value` (what it wrote, of kind `kind`) only if nothing else
    /// was invalidated since it began (another write to the key may have committed after
    /// this one), else dropping the key. Either way the generation moves, so a read that
    /// began before cannot put the older value back.
    pub fn keep(mut self, value: Arc<StoredArtifact>, kind: usize) {
        let tier = self.tier;
        let hash = key_hash(&self.key);
        let stripe = tier.stripe(hash);
        let _held = stripe.lock.lock().expect("memory tier stripe poisoned");
        let unchanged = stripe.generation.fetch_add(1, Ordering::SeqCst) == self.seen;
        if unchanged && weight(&self.key, &value) <= tier.max_entry {
            let held = Held {
                key: self.key.as_str().into(),
                artifact: value,
                kind,
            };
            tier.cache.insert(hash, held);
        } else {
            tier.cache.remove(&hash);
        }
        // Dropped under the stripe's lock: the write ends after its value is in place.
        self.kept = true;
        drop(self);
    }
}

impl Drop for WriteGuard<'_> {
    fn drop(&mut self) {
        let hash = key_hash(&self.key);
        if !self.kept {
            // The write failed or removed the key (or its future was dropped): whatever it
            // committed, memory keeps nothing of the key. Before the write ends, so no read
            // that overlapped it can fill.
            self.tier.invalidate_hash(hash);
        }
        self.tier
            .stripe(hash)
            .writing
            .fetch_sub(1, Ordering::SeqCst);
    }
}
