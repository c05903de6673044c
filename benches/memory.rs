//! The memory tier: a warm 50 KB hit timed call by call (p50, p99) against the same read
//! from the local store, and hit ratios on a Zipf trace (1M requests over 100k keys, cache
//! at 1% and 10% of the keys) of the memory tier's TinyLFU admission against plain LRU
//! (moka's own LRU policy, so only the policy differs). Prints markdown and writes it to
//! `$CARGO_TARGET_DIR/pipecache-bench/memory.md`.

use std::sync::Arc;
use std::time::{Duration, Instant};

use pipecache::tier::MemoryTier;
use pipecache::{Artifact, CacheManager, Store, StoreOptions, StoredArtifact};
use pipecache_test_support::bench::{percentiles, target_dir, write_report};
use rand::distr::Distribution;
use rand::{SeedableRng, rngs::StdRng};

const KEYS: usize = 1_000;
const CALLS: usize = 20_000;

fn us(d: Duration) -> f64 {
    d.as_secs_f64() * 1e6
}

/// p50 and p99 of `CALLS` gets spread over the keys, each timed alone.
async fn time_gets<F: std::future::Future<Output = bool>>(
    mut get: impl FnMut(String) -> F,
) -> (Duration, Duration) {
    let mut times = Vec::with_capacity(CALLS);
    for i in 0..CALLS {
        let key = format!("k{}", i % KEYS);
        let start = Instant::now();
        assert!(get(key).await, "a warm key missed");
        times.push(start.elapsed());
    }
    let [p50, p99] = percentiles(&mut times, [0.5, 0.99]);
    (p50, p99)
}

/// A Zipf(1.0) trace over `keys` keys.
fn zipf_trace(keys: usize, requests: usize) -> Vec<u64> {
    let zipf = rand_distr::Zipf::new(keys as f64, 1.0).expect("zipf");
    let mut rng = StdRng::seed_from_u64(7);
    (0..requests)
        .map(|_| zipf.sample(&mut rng) as u64)
        .collect()
}

/// Hit ratio of a TinyLFU memory tier and of LRU, each holding `capacity` unit entries.
fn hit_ratios(trace: &[u64], capacity: u64) -> (f64, f64) {
    let entry = Arc::new(StoredArtifact {
        artifact: Artifact::default(),
        created_ms: 0,
        expires_ms: None,
    });
    // Each entry weighs its key plus the fixed overhead; size the budget to `capacity` of them.
    let weight = "k00000".len() as u64 + 96;
    let tier = MemoryTier::new(capacity * weight);
    let lru = moka::sync::Cache::builder()
        .max_capacity(capacity)
        .eviction_policy(moka::policy::EvictionPolicy::lru())
        .build();
    let (mut tier_hits, mut lru_hits) = (0u64, 0u64);
    for &k in trace {
        let key = format!("k{k:05}");
        match tier.get(&key, 0) {
            Some(_) => tier_hits += 1,
            None => tier.insert_if_unchanged(&key, entry.clone(), tier.generation(&key)),
        }
        match lru.get(&key) {
            Some(()) => lru_hits += 1,
            None => lru.insert(key, ()),
        }
    }
    let n = trace.len() as f64;
    (tier_hits as f64 / n, lru_hits as f64 / n)
}

fn main() {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let dir = tempfile::tempdir().expect("temp dir");
    let (memory, local) = rt.block_on(async {
        let store = Store::open(dir.path(), StoreOptions::default())
            .await
            .expect("open");
        let manager = CacheManager::builder(store.clone())
            .memory_tier(256 << 20)
            .build()
            .await
            .expect("manager");
        for i in 0..KEYS {
            let data = pipecache_test_support::random_bytes(i as u64, 50_000);
            manager
                .put(&format!("k{i}"), Artifact::single(data))
                .await
                .expect("put");
        }
        for i in 0..KEYS {
            manager
                .get(&format!("k{i}"))
                .await
                .expect("warm")
                .expect("hit");
        }
        let memory = time_gets(|k| {
            let hit = manager.get_from_memory(&k).is_some();
            async move { hit }
        })
        .await;
        let local = time_gets(|k| {
            let store = store.clone();
            async move { store.get(&k).await.expect("get").is_some() }
        })
        .await;
        manager.close().await.expect("close");
        (memory, local)
    });
    let trace = zipf_trace(100_000, 1_000_000);
    let (tiny1, lru1) = hit_ratios(&trace, 1_000);
    let (tiny10, lru10) = hit_ratios(&trace, 10_000);
    let table = format!(
        "| warm 50 KB hit | p50 | p99 |\n|---|---|---|\n\
         | memory tier (`get_from_memory`, shared, no copy) | {:.2} µs | {:.2} µs |\n\
         | local store (`Store::get`: index, chunk read, blake3) | {:.1} µs | {:.1} µs |\n\n\
         | Zipf(1.0), 1M requests over 100k keys | memory tier (TinyLFU) | LRU | difference |\n\
         |---|---|---|---|\n\
         | cache at 1% of keys | {:.1}% | {:.1}% | {:+.1} points |\n\
         | cache at 10% of keys | {:.1}% | {:.1}% | {:+.1} points |\n",
        us(memory.0),
        us(memory.1),
        us(local.0),
        us(local.1),
        tiny1 * 100.0,
        lru1 * 100.0,
        (tiny1 - lru1) * 100.0,
        tiny10 * 100.0,
        lru10 * 100.0,
        (tiny10 - lru10) * 100.0,
    );
    println!("{table}");
    write_report(&target_dir(), "memory.md", &table);
}
