//! GC and compaction over a store of many small blobs, run as users run it: the offline
//! `pipecache gc` job in its own process, timed wall-clock, with its peak RSS.
//!
//! Setup (in-process, not measured but reported): a temp store of `PIPECACHE_BENCH_BLOBS`
//! (default 1,000,000) unique 64-byte blobs, as artifacts of 10 parts each, put 32 in flight
//! with `Durability::OsBuffered`. Then half of the artifacts are deleted, another 10% carry a
//! 1 s TTL (expired by the time gc runs), and the store is closed.
//!
//! Measured, each as a child process (`pipecache --dir D ...`), peak RSS from
//! `/proc/<pid>/status` `VmHWM` polled every 5 ms:
//! - `gc --json` with `--max-size` at ~80% of the live bytes left after expiry, so the pass
//!   expires, evicts, compacts every chunk and drops dead blob records;
//! - a second `gc --json` on the collected store (steady-state cost of a pass with no work);
//! - baselines on the same store: `verify --json` (reads every byte) and `ls --json` (one scan
//!   of the artifacts CF, output to /dev/null).
//!
//! A markdown table (wall seconds, seconds per million generated blobs, peak RSS, ratio to the
//! `ls` index scan) is printed and written to `<target dir>/pipecache-bench/gc.md`. The report's
//! counts are checked against what setup did; a mismatch is printed and fails the run.
//!
//! `PIPECACHE_BENCH_DIR=<new dir>` generates the store there and keeps it;
//! `PIPECACHE_BENCH_SETUP_ONLY=1` stops after setup (to time `gc` sub-phases by hand).
//!
//! Target (issue): a gc pass over 1M blobs in under 10 s and under 256 MB RSS on a 2-core box.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use pipecache::{Artifact, Durability, Part, PutOptions, Store, StoreOptions};
use pipecache_test_support::bench::{
    Run, bounded, json, pipecache_bin, run_child, target_dir, u, write_report,
};
use rand::{Rng, SeedableRng, rngs::StdRng};

const PARTS: usize = 10;
const BLOB_LEN: usize = 64;
const IN_FLIGHT: usize = 32;
const TTL: Duration = Duration::from_secs(1);

fn key(i: usize) -> String {
    format!("bench/video-{i:08}/keyframes")
}

/// Artifact `i`: 10 parts of 64 bytes, each unique (global blob number, then random bytes).
fn artifact(i: usize, rng: &mut StdRng) -> Artifact {
    let parts = (0..PARTS)
        .map(|p| {
            let mut data = vec![0u8; BLOB_LEN];
            data[..8].copy_from_slice(&((i * PARTS + p) as u64).to_le_bytes());
            rng.fill(&mut data[8..]);
            Part::new(format!("frame-{p}"), data)
        })
        .collect();
    Artifact {
        kind: "keyframes".into(),
        parts,
        ..Artifact::default()
    }
}

/// Artifacts deleted by setup.
fn deleted(i: usize) -> bool {
    i.is_multiple_of(2)
}

/// Artifacts put with a 1 s TTL (disjoint from the deleted ones).
fn expiring(i: usize) -> bool {
    i % 10 == 1
}

struct Setup {
    artifacts: usize,
    deleted: usize,
    expiring: usize,
    put_secs: f64,
    delete_secs: f64,
    /// Frame bytes the index references after expiry (what the budget is computed from).
    live_after_expiry: u64,
    disk_bytes: u64,
    chunk_files: u64,
}

async fn generate(dir: &Path, blobs: usize) -> Setup {
    let artifacts = blobs.div_ceil(PARTS);
    let options = StoreOptions {
        durability: Durability::OsBuffered,
        gc_interval: None,
        default_ttl: None,
        ..StoreOptions::default()
    };
    let store = Store::open(dir, options).await.expect("open bench store");

    let t = Instant::now();
    let s = store.clone();
    bounded(artifacts, IN_FLIGHT, move |i| {
        let s = s.clone();
        async move {
            let mut rng = StdRng::seed_from_u64(i as u64);
            let ttl = expiring(i).then_some(TTL);
            s.put_with(
                &key(i),
                artifact(i, &mut rng),
                PutOptions {
                    ttl,
                    ..PutOptions::default()
                },
            )
            .await
            .expect("put");
        }
    })
    .await;
    let put_secs = t.elapsed().as_secs_f64();
    let expiry_deadline = Instant::now() + TTL + Duration::from_millis(200);

    let t = Instant::now();
    let s = store.clone();
    bounded(artifacts, IN_FLIGHT, move |i| {
        let s = s.clone();
        async move {
            if deleted(i) {
                assert!(
                    s.delete(&key(i)).await.expect("delete"),
                    "{} absent",
                    key(i)
                );
            }
        }
    })
    .await;
    let delete_secs = t.elapsed().as_secs_f64();

    let n_deleted = (0..artifacts).filter(|&i| deleted(i)).count();
    let n_expiring = (0..artifacts).filter(|&i| expiring(i)).count();
    let stats = store.stats().await.expect("stats");
    // Every artifact has the same shape (fixed-width keys, 10 x 64 B raw parts), so the live
    // bytes left after expiry are the kept artifacts' share of the live bytes now
    // (disk - dead = live frames + one header per chunk, gc's own measure).
    let live_now = stats.disk_bytes.saturating_sub(stats.dead_bytes);
    let kept = (artifacts - n_deleted - n_expiring) as u64;
    let live_after_expiry = live_now * kept / (kept + n_expiring as u64);
    store.close().await.expect("close bench store");
    if let Some(wait) = expiry_deadline.checked_duration_since(Instant::now()) {
        std::thread::sleep(wait);
    }
    Setup {
        artifacts,
        deleted: n_deleted,
        expiring: n_expiring,
        put_secs,
        delete_secs,
        live_after_expiry,
        disk_bytes: stats.disk_bytes,
        chunk_files: stats.chunk_files,
    }
}

struct Row {
    phase: &'static str,
    run: Run,
}

fn table(rows: &[Row], blobs: usize, baseline: f64) -> String {
    let mut out = String::from(
        "| phase | wall s | s per 1M blobs | peak RSS MiB | vs `ls` index scan |\n|---|---:|---:|---:|---:|\n",
    );
    let per_m = blobs as f64 / 1e6;
    for r in rows {
        out.push_str(&format!(
            "| {} | {:.2} | {:.2} | {:.1} | {:.1}x |\n",
            r.phase,
            r.run.secs,
            r.run.secs / per_m,
            r.run.peak_rss_kib as f64 / 1024.0,
            r.run.secs / baseline,
        ));
    }
    out
}

fn main() {
    // `cargo bench` passes `--bench`; this one-shot job takes no arguments.
    let blobs: usize = std::env::var("PIPECACHE_BENCH_BLOBS")
        .ok()
        .map(|v| {
            v.replace('_', "")
                .parse()
                .expect("PIPECACHE_BENCH_BLOBS: a count")
        })
        .unwrap_or(1_000_000);
    let target = target_dir();
    let bin = pipecache_bin(&target, option_env!("CARGO_BIN_EXE_pipecache"));
    let tmp = tempfile::tempdir().expect("temp dir");
    // PIPECACHE_BENCH_DIR keeps the generated store there (a new directory) for inspection.
    let dir = std::env::var_os("PIPECACHE_BENCH_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| tmp.path().join("store"));

    println!("gc bench: generating {blobs} blobs ({PARTS} x {BLOB_LEN} B per artifact)...");
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("tokio runtime");
    let setup = rt.block_on(generate(&dir, blobs));
    drop(rt);
    let max_size = setup.live_after_expiry * 8 / 10;
    let kept = setup.artifacts - setup.deleted - setup.expiring;
    let setup_line = format!(
        "setup: {} artifacts / {} blobs put in {:.1} s ({:.0} blobs/s, 32 in flight, OsBuffered), \
         {} deleted in {:.1} s, {} with a 1 s TTL; {} chunk files, {:.1} MiB on disk; \
         live after expiry {:.1} MiB, gc --max-size {} ({:.1} MiB)",
        setup.artifacts,
        setup.artifacts * PARTS,
        setup.put_secs,
        (setup.artifacts * PARTS) as f64 / setup.put_secs,
        setup.deleted,
        setup.delete_secs,
        setup.expiring,
        setup.chunk_files,
        setup.disk_bytes as f64 / 1048576.0,
        setup.live_after_expiry as f64 / 1048576.0,
        max_size,
        max_size as f64 / 1048576.0,
    );
    println!("{setup_line}");
    if std::env::var_os("PIPECACHE_BENCH_SETUP_ONLY").is_some() {
        println!(
            "PIPECACHE_BENCH_SETUP_ONLY: stopping after setup; store in {}",
            dir.display()
        );
        return;
    }

    let d = dir.to_str().expect("a UTF-8 store path");
    let max = max_size.to_string();
    let gc_args = ["--dir", d, "--max-size", &max, "gc", "--json"];
    let gc1 = run_child(&bin, &gc_args, true);
    let gc2 = run_child(&bin, &gc_args, true);
    let verify = run_child(&bin, &["--dir", d, "verify", "--json"], true);
    let ls = run_child(&bin, &["--dir", d, "ls", "--json"], false);

    // Check the reports against what setup did.
    let (r1, r2, v) = (json(&gc1), json(&gc2), json(&verify));
    let mut problems = Vec::new();
    let mut check = |what: &str, ok: bool, detail: String| {
        if !ok {
            problems.push(format!("{what}: {detail}"));
        }
    };
    let expired = u(&r1, &["expired"]);
    let evicted = u(&r1, &["evicted"]);
    let dead_top = u(&r1, &["dead_blobs_dropped"]);
    let dead_compact = u(&r1, &["compaction", "dead_blobs_dropped"]);
    let live_left = kept as u64 - evicted;
    let freed_blobs = (setup.deleted as u64 + expired + evicted) * PARTS as u64;
    check(
        "expired",
        expired == setup.expiring as u64,
        format!("{expired}, expected {}", setup.expiring),
    );
    check(
        "evicted",
        evicted > 0 && evicted < kept as u64,
        format!("{evicted} of {kept} kept artifacts"),
    );
    // Every kept artifact has the same footprint, so the budget needs about this many gone.
    let per_artifact = setup.live_after_expiry as f64 / kept as f64;
    let needed = kept as u64 - (max_size as f64 / per_artifact).floor() as u64;
    let mut findings = Vec::new();
    if evicted as f64 > needed as f64 * 1.25 + 2.0 {
        findings.push(format!(
            "over-eviction: {evicted} artifacts evicted where about {needed} free the budget \
             ({:.0} bytes of live frames each); live bytes after gc {} for a budget of {max_size}",
            per_artifact,
            u(&r1, &["live_bytes"]),
        ));
    }
    check(
        "dead blobs dropped",
        dead_top + dead_compact == freed_blobs,
        format!("{dead_top} + {dead_compact} by compaction, expected {freed_blobs}"),
    );
    check(
        "budget",
        u(&r1, &["live_bytes"]) <= max_size,
        format!("live {} > max {max_size}", u(&r1, &["live_bytes"])),
    );
    check(
        "second pass",
        u(&r2, &["expired"]) + u(&r2, &["evicted"]) + u(&r2, &["dead_blobs_dropped"]) == 0,
        format!("did work: {r2}"),
    );
    check(
        "verify",
        u(&v, &["damaged_blobs"])
            + u(&v, &["damaged_keys"])
            + u(&v, &["refcount_mismatches"])
            + u(&v, &["missing_chunk_files"])
            + u(&v, &["orphan_chunk_files"])
            == 0,
        format!("not clean: {v}"),
    );
    check(
        "verify counts",
        u(&v, &["artifacts_checked"]) == live_left
            && u(&v, &["blobs_checked"]) == live_left * PARTS as u64,
        format!(
            "{} artifacts / {} blobs, expected {live_left} / {}",
            u(&v, &["artifacts_checked"]),
            u(&v, &["blobs_checked"]),
            live_left * PARTS as u64
        ),
    );

    let gc_line = format!(
        "gc pass 1: expired {expired}, evicted {evicted}, dead blob records dropped {} \
         ({dead_top} + {dead_compact} with compacted chunks), chunks compacted {}, blobs moved {}, \
         bytes copied {:.1} MiB, reclaimed {:.1} MiB ({:.1} -> {:.1} MiB on disk); \
         pass 2: compacted {} chunk(s), reclaimed {} bytes; verify: {} artifacts, {} blobs checked",
        dead_top + dead_compact,
        u(&r1, &["compaction", "chunks_compacted"]),
        u(&r1, &["compaction", "blobs_moved"]),
        u(&r1, &["compaction", "bytes_copied"]) as f64 / 1048576.0,
        u(&r1, &["bytes_reclaimed"]) as f64 / 1048576.0,
        u(&r1, &["disk_bytes_before"]) as f64 / 1048576.0,
        u(&r1, &["disk_bytes_after"]) as f64 / 1048576.0,
        u(&r2, &["compaction", "chunks_compacted"]),
        u(&r2, &["bytes_reclaimed"]),
        u(&v, &["artifacts_checked"]),
        u(&v, &["blobs_checked"]),
    );
    let baseline = ls.secs;
    let verdict = format!(
        "{} ({:.2} s per 1M blobs, {:.0} MiB peak{})",
        if gc1.secs * 1e6 / blobs as f64 <= 10.0 && gc1.peak_rss_kib <= 256 * 1024 {
            "met"
        } else {
            "NOT met"
        },
        gc1.secs * 1e6 / blobs as f64,
        gc1.peak_rss_kib as f64 / 1024.0,
        if blobs == 1_000_000 {
            ""
        } else {
            "; scaled from a smaller store: fixed process and fsync costs dominate small runs"
        },
    );
    let rows = [
        Row {
            phase: "`gc` (expire + evict + compact + drop dead)",
            run: gc1,
        },
        Row {
            phase: "`gc` again (nothing to do)",
            run: gc2,
        },
        Row {
            phase: "`verify` (reads every byte)",
            run: verify,
        },
        Row {
            phase: "`ls --json` (index scan, baseline)",
            run: ls,
        },
    ];
    let mut report = format!(
        "GC bench, {blobs} blobs, {} cores:\n\n{}\n{setup_line}.\n\n{gc_line}.\n\n\
         Target (a gc pass over 1M blobs in < 10 s and < 256 MiB peak RSS): {}.\n",
        std::thread::available_parallelism().map_or(0, |n| n.get()),
        table(&rows, blobs, baseline),
        verdict,
    );
    if !findings.is_empty() {
        report.push_str("\nFindings:\n");
        for f in &findings {
            report.push_str(&format!("- {f}\n"));
        }
    }
    if !problems.is_empty() {
        report.push_str("\nWrong counts:\n");
        for p in &problems {
            report.push_str(&format!("- {p}\n"));
        }
    }
    println!("\n{report}");
    let written = write_report(&target, "gc.md", &report);
    println!("written to {}", written.display());
    assert!(problems.is_empty(), "gc bench found wrong counts");
}
