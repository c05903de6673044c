//! `pipecache stress-put` (hidden): the workload the crash tests kill at random moments.
//! It goes through the tier manager, so with `--config` it also feeds remote tiers (and their
//! write-back queues).
//!
//! Each task owns the keys `k` with `k % concurrency == task` and works on them one operation
//! at a time, so for every key at most one operation is in flight: after a kill, a key holds
//! either its last acknowledged state or the state of the operation that had begun.

use std::io::Write;
use std::sync::Arc;

use std::process::ExitCode;

use anyhow::Result;
use pipecache::Artifact;
use pipecache::tier::CacheManager;
use rand::{Rng, SeedableRng, rngs::StdRng};

use super::env::{Env, GlobalArgs};

/// A shared pool of payloads so artifacts share blobs (dedup and refcounts get exercised).
fn payload(id: u64) -> Vec<u8> {
    let mut rng = StdRng::seed_from_u64(id);
    let len = match id % 4 {
        0 => 0,
        1 => rng.random_range(1..512),
        2 => rng.random_range(512..64 * 1024),
        _ => rng.random_range(64 * 1024..300 * 1024),
    };
    if id.is_multiple_of(3) {
        // Compressible.
        (0..len).map(|i| b"{\"text\":\"frame\"}"[i % 16]).collect()
    } else {
        let mut v = vec![0u8; len];
        rng.fill(&mut v[..]);
        v
    }
}

/// Concurrent puts and deletes of generated artifacts until killed, printing `BEGIN key` before
/// and `ACK key digest|deleted` after each operation (used by the crash test).
#[derive(Debug, clap::Args)]
pub struct StressPutArgs {
    /// Seed of the generator.
    #[arg(long)]
    seed: u64,
    /// Distinct keys.
    #[arg(long, default_value_t = 64)]
    keys: usize,
    /// Concurrent writer tasks (each owns a disjoint set of keys).
    #[arg(long, default_value_t = 4)]
    concurrency: usize,
    /// Stop after this many operations (default: run until killed).
    #[arg(long)]
    ops: Option<u64>,
    /// Also run gc and compaction in a loop beside the writers.
    #[arg(long)]
    gc: bool,
    /// Give every put one new 4-6 MiB part, which the store writes directly (in parallel,
    /// into a chunk of its own) instead of through the writer thread's open chunk.
    #[arg(long)]
    large: bool,
}

impl StressPutArgs {
    pub async fn run(self, global: &GlobalArgs) -> Result<ExitCode> {
        let manager = Env::load(global)?.open_owned(true, "stress-put").await?;
        run(
            &manager,
            self.seed,
            self.keys,
            self.concurrency,
            self.ops,
            Workload {
                gc: self.gc,
                large: self.large,
            },
        )
        .await?;
        manager.close().await?;
        Ok(ExitCode::SUCCESS)
    }
}

/// What runs beside the plain puts and deletes.
#[derive(Clone, Copy)]
struct Workload {
    gc: bool,
    large: bool,
}

/// A part no other put has, larger than the store's default `direct_write_min` (4 MiB).
fn large_part(rng: &mut StdRng) -> Vec<u8> {
    let mut v = vec![0u8; rng.random_range(4 << 20..6 << 20)];
    rng.fill(&mut v[..]);
    v
}

async fn run(
    manager: &CacheManager,
    seed: u64,
    keys: usize,
    concurrency: usize,
    ops: Option<u64>,
    Workload { gc, large }: Workload,
) -> Result<()> {
    anyhow::ensure!(
        keys > 0 && concurrency > 0,
        "--keys and --concurrency must be positive"
    );
    let out = Arc::new(std::sync::Mutex::new(std::io::stdout()));
    let mut tasks = Vec::new();
    for task in 0..concurrency {
        let manager = manager.clone();
        let out = out.clone();
        tasks.push(tokio::spawn(async move {
            let mut rng = StdRng::seed_from_u64(seed.wrapping_mul(1000).wrapping_add(task as u64));
            let mine: Vec<usize> = (0..keys).filter(|k| k % concurrency == task).collect();
            if mine.is_empty() {
                return Ok::<(), anyhow::Error>(());
            }
            let mut done = 0u64;
            loop {
                if ops.is_some_and(|n| done >= n) {
                    return Ok(());
                }
                let key = format!("stress:{}", mine[rng.random_range(0..mine.len())]);
                let line = |s: String| {
                    let mut o = out.lock().expect("stdout lock");
                    // One write per line: the parent parses whole lines only.
                    let _ = writeln!(o, "{s}");
                    let _ = o.flush();
                };
                if rng.random_range(0..10) == 0 {
                    line(format!("BEGIN {key} deleted"));
                    manager.delete(&key).await?;
                    line(format!("ACK {key} deleted"));
                } else {
                    let mut a = Artifact::default().with_kind("stress");
                    for j in 0..rng.random_range(1..8) {
                        a = a.with_part(format!("p{j}"), payload(rng.random_range(0..64)));
                    }
                    if large {
                        a = a.with_part("large", large_part(&mut rng));
                    }
                    let digest = a.digest();
                    line(format!("BEGIN {key} {digest}"));
                    manager.put(&key, a).await?;
                    line(format!("ACK {key} {digest}"));
                }
                done += 1;
            }
        }));
    }
    let collector = gc.then(|| {
        let store = manager.local().clone();
        tokio::spawn(async move {
            loop {
                let r = store.gc(pipecache::GcOptions::default()).await?;
                let c = store.compact().await?;
                println!(
                    "GC {} {}",
                    r.compaction.chunks_compacted.len() + c.chunks_compacted.len(),
                    r.dead_blobs_dropped
                );
            }
            #[allow(unreachable_code)]
            Ok::<(), anyhow::Error>(())
        })
    });
    for t in tasks {
        t.await??;
    }
    if let Some(c) = collector {
        c.abort();
    }
    Ok(())
}
