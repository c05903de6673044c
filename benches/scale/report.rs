//! The scale bench's report: markdown tables of what was measured, and each target with
//! its verdict.

use std::time::Duration;

use pipecache_test_support::bench::Run;

use crate::{Built, IndexFiles, Knobs, Latency, MIB};

/// A child job on the big store and what it reported, for the table.
pub struct Job {
    pub name: String,
    pub run: Run,
    pub result: String,
}

/// What the stores are and what measuring them gave.
pub struct Results {
    pub knobs: Knobs,
    pub big: Built,
    pub small: Built,
    pub open: [Duration; 2],
    pub get_child: [Run; 2],
    pub latency: [Latency; 2],
    pub gc_phases: Vec<(String, u64)>,
    pub gc_secs_per_m: f64,
    pub jobs: Vec<Job>,
    pub bench_peak_rss_kib: u64,
}

/// `bytes` in MiB, or in KiB when under 10 MiB.
pub fn human(bytes: u64) -> String {
    if bytes < 10 << 20 {
        format!("{:.1} KiB", bytes as f64 / 1024.0)
    } else {
        format!("{:.1} MiB", bytes as f64 / MIB)
    }
}

fn verdict(ok: bool) -> &'static str {
    if ok { "met" } else { "**NOT met**" }
}

fn us(d: Duration) -> f64 {
    d.as_secs_f64() * 1e6
}

fn ratio(a: Duration, b: Duration) -> f64 {
    a.as_secs_f64() / b.as_secs_f64()
}

/// The first table: each figure on both stores.
fn store_table(r: &Results) -> String {
    let mut out = format!(
        "| measurement | big store ({} videos) | small store ({} videos) | big / small |\n\
         |---|---:|---:|---:|\n",
        r.knobs.videos, r.knobs.small_videos
    );
    let mut row = |what: &str, big: String, small: String, ratio: f64| {
        out.push_str(&format!("| {what} | {big} | {small} | {ratio:.2}x |\n"));
    };
    let stats = [&r.big.stats, &r.small.stats];
    row(
        "blobs (artifacts)",
        format!("{} ({})", stats[0].blobs, stats[0].artifacts),
        format!("{} ({})", stats[1].blobs, stats[1].artifacts),
        stats[0].blobs as f64 / stats[1].blobs as f64,
    );
    let mib = |b: u64| format!("{:.1}", b as f64 / MIB);
    row(
        "on disk / stored MiB",
        format!(
            "{} / {}",
            mib(stats[0].disk_bytes),
            mib(stats[0].stored_bytes)
        ),
        format!(
            "{} / {}",
            mib(stats[1].disk_bytes),
            mib(stats[1].stored_bytes)
        ),
        stats[0].disk_bytes as f64 / stats[1].disk_bytes as f64,
    );
    let ix = [r.big.index, r.small.index];
    let files = |f: IndexFiles| {
        format!(
            "{} SST {} / {} blob {} / {} WAL {}",
            f.sst,
            mib(f.sst_bytes),
            f.blob,
            mib(f.blob_bytes),
            f.wal,
            mib(f.wal_bytes)
        )
    };
    let bytes = |f: IndexFiles| (f.sst_bytes + f.blob_bytes + f.wal_bytes) as f64;
    row(
        "index files (count, MiB) after the build",
        files(ix[0]),
        files(ix[1]),
        bytes(ix[0]) / bytes(ix[1]),
    );
    row(
        "build s (OsBuffered, 32 in flight)",
        format!("{:.1}", r.big.secs),
        format!("{:.1}", r.small.secs),
        r.big.secs / r.small.secs,
    );
    row(
        "`Store::open` in process, median of 3",
        format!("{:.1} ms", r.open[0].as_secs_f64() * 1e3),
        format!("{:.1} ms", r.open[1].as_secs_f64() * 1e3),
        ratio(r.open[0], r.open[1]),
    );
    let g = &r.get_child;
    row(
        "`pipecache get` child (open + get + exit): wall",
        format!("{:.1} ms", g[0].secs * 1e3),
        format!("{:.1} ms", g[1].secs * 1e3),
        g[0].secs / g[1].secs,
    );
    row(
        "`pipecache get` child: peak RSS",
        format!("{:.1} MiB", g[0].peak_rss_mib()),
        format!("{:.1} MiB", g[1].peak_rss_mib()),
        g[0].peak_rss_mib() / g[1].peak_rss_mib(),
    );
    let [big, small] = r.latency;
    let kinds = [
        ("transcript (4 KB)", big.transcript, small.transcript),
        ("keyframes (320 parts)", big.keyframes, small.keyframes),
    ];
    for (name, big, small) in kinds {
        for (i, p) in ["p50", "p99"].iter().enumerate() {
            row(
                &format!("get {name} {p}"),
                format!("{:.1} µs", us(big[i])),
                format!("{:.1} µs", us(small[i])),
                ratio(big[i], small[i]),
            );
        }
    }
    out
}

/// The second table: the child jobs on the big store.
fn job_table(r: &Results) -> String {
    let per_m = r.big.stats.blobs as f64 / 1e6;
    let mut out = String::from(
        "| job (child process, big store) | wall s | s per 1M blobs | peak RSS MiB | result |\n\
         |---|---:|---:|---:|---|\n",
    );
    for j in &r.jobs {
        out.push_str(&format!(
            "| {} | {:.2} | {:.2} | {:.1} | {} |\n",
            j.name,
            j.run.secs,
            j.run.secs / per_m,
            j.run.peak_rss_mib(),
            j.result
        ));
    }
    out
}

/// The targets, each with its figure and verdict.
fn target_table(r: &Results) -> String {
    let open_s = r.open[0].as_secs_f64();
    let (rss_job, rss) = r
        .jobs
        .iter()
        .map(|j| (j.name.as_str(), j.run.peak_rss_kib))
        .chain(std::iter::once(("`get`", r.get_child[0].peak_rss_kib)))
        .max_by_key(|(_, kib)| *kib)
        .expect("at least one child ran");
    let p99 = |of: fn(&Latency) -> Duration| ratio(of(&r.latency[0]), of(&r.latency[1]));
    let (t99, k99) = (p99(|l| l.transcript[1]), p99(|l| l.keyframes[1]));
    let blobs_m = r.big.stats.blobs as f64 / 1e6;
    format!(
        "| target | figure | verdict |\n|---|---|---|\n\
         | open < 1 s at 3M blobs | `Store::open` {open_s:.3} s at {blobs_m:.2}M blobs; `pipecache get` \
         child {:.3} s | {} |\n\
         | peak RSS < 1 GiB | {:.1} MiB (largest child: {rss_job}) | {} |\n\
         | get p99 <= 1.5x the small store's | transcript {t99:.2}x, keyframes {k99:.2}x | {} |\n\
         | gc <= 10 s per 1M blobs | {:.2} s per 1M blobs | {} |\n",
        r.get_child[0].secs,
        verdict(open_s < 1.0),
        rss as f64 / 1024.0,
        verdict(rss < 1024 * 1024),
        verdict(t99 <= 1.5 && k99 <= 1.5),
        r.gc_secs_per_m,
        verdict(r.gc_secs_per_m <= 10.0),
    )
}

pub fn markdown(r: &Results) -> String {
    let cores = std::thread::available_parallelism().map_or(0, |n| n.get());
    let scaled = if r.knobs.videos == 10_000 {
        ""
    } else {
        " (scaled down from the issue's 10,000 videos: the targets are for 3M blobs)"
    };
    let phases: Vec<String> = r
        .gc_phases
        .iter()
        .map(|(p, ms)| format!("{p} at {:.2} s", *ms as f64 / 1e3))
        .collect();
    format!(
        "Scale bench, {} videos{scaled}, {} B frames (the issue's ~20 KB would take 60 GB), \
         {cores} cores, dedup ratio {:.2}:\n\n{}\n{}\n\
         gc phases (end of each, from `PIPECACHE_LOG=pipecache=debug`): {}.\n\n\
         Bench process peak RSS (builds and in-process gets): {:.1} MiB.\n\n{}",
        r.knobs.videos,
        r.knobs.frame_bytes,
        r.big.stats.dedup_ratio,
        store_table(r),
        job_table(r),
        if phases.is_empty() {
            "none logged".to_owned()
        } else {
            phases.join(", ")
        },
        r.bench_peak_rss_kib as f64 / 1024.0,
        target_table(r),
    )
}
