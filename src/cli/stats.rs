//! `pipecache stats`: sizes, dedup, free space and, per tier, the counters of this process.

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Result;
use pipecache::client::protocol::StatsReport;
use serde::Serialize;

use super::env::{Env, GlobalArgs};
use super::report::{self, Report};

/// Sizes and dedup figures.
#[derive(Debug, clap::Args)]
pub struct StatsArgs {
    /// JSON output.
    #[arg(long)]
    json: bool,
    /// Prometheus' text format (for a node-exporter textfile collector): the same figures
    /// as --json.
    #[arg(long, conflicts_with = "json")]
    prometheus: bool,
}

/// The report `/v1/stats`, `--prometheus` and Python's `stats()` carry, with the directory.
#[derive(Serialize)]
struct StoreStats {
    #[serde(skip)]
    dir: PathBuf,
    #[serde(flatten)]
    report: StatsReport,
}

impl Report for StoreStats {
    fn write_text(&self, out: &mut dyn Write) -> std::io::Result<()> {
        let s = &self.report.stats;
        writeln!(out, "store          {}", self.dir.display())?;
        writeln!(out, "artifacts      {}", s.artifacts)?;
        writeln!(out, "blobs          {}", s.blobs)?;
        writeln!(out, "logical_bytes  {}", s.logical_bytes)?;
        writeln!(out, "unique_bytes   {}", s.unique_bytes)?;
        writeln!(out, "stored_bytes   {}", s.stored_bytes)?;
        writeln!(out, "dead_bytes     {}", s.dead_bytes)?;
        writeln!(out, "expired        {}", s.expired)?;
        writeln!(out, "evicted        {}", s.evicted)?;
        match s.max_size {
            Some(m) => writeln!(out, "max_size       {m}")?,
            None => writeln!(out, "max_size       unlimited")?,
        }
        writeln!(out, "chunk_files    {}", s.chunk_files)?;
        writeln!(out, "disk_bytes     {}", s.disk_bytes)?;
        writeln!(out, "dedup_ratio    {:.2}", s.dedup_ratio)?;
        writeln!(out, "compression    {:.2}", s.compression_ratio)?;
        writeln!(out, "fs_free_bytes  {}", s.fs.free_bytes)?;
        writeln!(out, "fs_total_bytes {}", s.fs.total_bytes)?;
        writeln!(out, "min_free_space {}", s.min_free_space)?;
        if s.read_only {
            writeln!(out, "read_only      true (the filesystem was full at open)")?;
        }
        // Gets counted by the process holding the store: a server's since it started (a
        // command that opened the store itself has made none).
        let lookups = &self.report.lookups;
        if lookups
            .iter()
            .any(|k| k.hits + k.misses + k.errors + k.timeouts > 0)
        {
            writeln!(
                out,
                "lookups        stage: hits / misses / errors, recompute saved"
            )?;
            for k in lookups {
                writeln!(
                    out,
                    "  {:<12} {} / {} / {}, {:.0} s",
                    k.kind,
                    k.hits,
                    k.misses,
                    k.errors + k.timeouts,
                    k.recompute_seconds_saved
                )?;
            }
            let today = self.report.recompute_seconds_saved_today;
            writeln!(out, "saved_today    {today:.0} s (since 00:00 UTC)")?;
        }
        Ok(())
    }
}

impl StatsArgs {
    pub async fn run(self, global: &GlobalArgs) -> Result<ExitCode> {
        let env = Env::load(global)?;
        let manager = env.open(false).await?;
        let figures = manager.stats().await?;
        if self.prometheus {
            print!("{}", pipecache::client::metrics::encode(&figures));
            manager.close().await?;
            return Ok(ExitCode::SUCCESS);
        }
        let report = StoreStats {
            dir: env.dir.clone(),
            report: figures,
        };
        report::print(&report, self.json)?;
        manager.close().await?;
        Ok(ExitCode::SUCCESS)
    }
}
