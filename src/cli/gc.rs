//! `pipecache gc`: the local store's GC pass, or with `--remote` a remote tier's mark and
//! sweep.

use std::io::Write;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::Result;
use pipecache::client::protocol::{JobRequest, gc_report_json};
use pipecache::tier::{RemoteGcReport, parse_duration};
use pipecache::{Cache, GcOptions, GcReport};
use serde::Serialize;

use super::env::{Env, GlobalArgs};
use super::report::{self, JobReport, Report};
use super::{progress, served};

/// Remove expired artifacts, evict to the size budget, compact chunks, drop dead blobs.
/// With --remote: mark and sweep a remote tier's unreferenced packs instead.
#[derive(Debug, clap::Args)]
pub struct GcArgs {
    /// Report what would be removed without removing anything.
    #[arg(long)]
    dry_run: bool,
    /// JSON report: counts, without the keys (megabytes at a large store's scale).
    #[arg(long)]
    json: bool,
    /// With --json: also list every expired and evicted key (`expired_keys`, `evicted_keys`).
    #[arg(long, requires = "json")]
    keys: bool,
    /// Collect a remote (s3 or fs-remote) tier instead of the local store.
    #[arg(long)]
    remote: bool,
    /// With --remote: never delete an object younger than this (default: the tier's
    /// gc_grace, 24h). Longer only: pushers reuse packs up to half of gc_grace old.
    #[arg(long, value_parser = parse_duration, requires = "remote")]
    grace: Option<Duration>,
    /// With --remote: which tier (default: the first s3 or fs-remote tier).
    #[arg(long, requires = "remote")]
    tier: Option<String>,
}

/// The local GC report as `gc` prints it: the key lists become counts, and come along in
/// full only with `--keys`.
struct GcSummary {
    report: GcReport,
    keys: bool,
}

impl Serialize for GcSummary {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        gc_report_json(&self.report, self.keys).serialize(serializer)
    }
}

impl Report for JobReport<GcSummary> {
    fn write_text(&self, out: &mut dyn Write) -> std::io::Result<()> {
        let r = &self.report.report;
        let verb = self.verb("would remove", "removed");
        writeln!(
            out,
            "gc {verb} {} expired and {} evicted artifact(s), {} dead blob record(s); compacted {} chunk(s); reclaimed {} bytes ({} -> {} on disk)",
            r.expired.len(),
            r.evicted.len(),
            r.dead_blobs_dropped + r.compaction.dead_blobs_dropped,
            r.compaction.chunks_compacted.len(),
            r.bytes_reclaimed,
            r.disk_bytes_before,
            r.disk_bytes_after
        )
    }
}

impl Report for JobReport<RemoteGcReport> {
    fn write_text(&self, out: &mut dyn Write) -> std::io::Result<()> {
        let r = &self.report;
        let verb = self.verb("would delete", "deleted");
        writeln!(
            out,
            "remote gc {verb} {} unreferenced pack(s) ({} bytes) and {} expired record(s); kept {} pack(s) inside the grace period; {} live record(s)",
            r.packs_deleted, r.bytes_reclaimed, r.expired_records, r.packs_in_grace, r.records
        )?;
        for c in &r.corrupt_records {
            writeln!(out, "corrupt record {c}")?;
        }
        Ok(())
    }
}

impl GcArgs {
    pub async fn run(self, global: &GlobalArgs) -> Result<ExitCode> {
        let env = Env::load(global)?;
        let dry_run = self.dry_run;
        let manager = match env.open(false).await? {
            Cache::InProcess(manager) => manager,
            Cache::Served(client) if !self.remote => {
                let request = JobRequest::Gc {
                    dry_run,
                    keys: self.keys,
                };
                served::print(&served::run_job(&client, request, "gc").await?)?;
                return Ok(ExitCode::SUCCESS);
            }
            // The server collects the remote tier of its own configuration.
            Cache::Served(client) => {
                let request = JobRequest::RemoteGc {
                    tier: self.tier,
                    grace_seconds: self.grace.map(|g| g.as_secs()),
                    dry_run,
                };
                let job = served::run_job(&client, request, "remote gc").await?;
                let report: RemoteGcReport = serde_json::from_value(job)?;
                report::print(&JobReport { report, dry_run }, self.json)?;
                return Ok(ExitCode::SUCCESS);
            }
        };
        if self.remote {
            manager.check().await?;
            let report = manager
                .remote_gc(self.tier.as_deref(), self.grace, dry_run)
                .await?;
            report::print(&JobReport { report, dry_run }, self.json)?;
        } else {
            let bar = progress::Bar::new("gc");
            let report = manager
                .local()
                .gc_with_progress(
                    GcOptions {
                        dry_run,
                        ..GcOptions::default()
                    },
                    move |phase, done, total| bar.phase(phase, done, total),
                )
                .await?;
            let report = GcSummary {
                report,
                keys: self.keys,
            };
            report::print(&JobReport { report, dry_run }, self.json)?;
        }
        manager.close().await?;
        Ok(ExitCode::SUCCESS)
    }
}
