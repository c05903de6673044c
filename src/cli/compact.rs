//! `pipecache compact`.

use std::io::Write;
use std::process::ExitCode;

use anyhow::Result;
use pipecache::client::protocol::JobRequest;
use pipecache::{Cache, CompactReport};

use super::env::{Env, GlobalArgs};
use super::report::{self, JobReport, Report};
use super::{progress, served};

/// Copy live data out of mostly-dead chunk files and remove them.
#[derive(Debug, clap::Args)]
pub struct CompactArgs {
    /// Report what would be compacted without changing anything.
    #[arg(long)]
    dry_run: bool,
    /// JSON report.
    #[arg(long)]
    json: bool,
}

impl Report for JobReport<CompactReport> {
    fn write_text(&self, out: &mut dyn Write) -> std::io::Result<()> {
        let r = &self.report;
        let verb = self.verb("would compact", "compacted");
        writeln!(
            out,
            "{verb} {} chunk(s): {} blobs and {} record frames copied ({} bytes), {} bytes of chunk files removed",
            r.chunks_compacted.len(),
            r.blobs_moved,
            r.frames_moved,
            r.bytes_copied,
            r.bytes_removed
        )?;
        if !r.chunks_skipped.is_empty() {
            writeln!(
                out,
                "skipped damaged chunk(s) {:?}: run `pipecache verify`",
                r.chunks_skipped
            )?;
        }
        Ok(())
    }
}

impl CompactArgs {
    pub async fn run(self, global: &GlobalArgs) -> Result<ExitCode> {
        let manager = match Env::load(global)?.open(false).await? {
            Cache::InProcess(manager) => manager,
            Cache::Served(client) => {
                let request = JobRequest::Compact {
                    dry_run: self.dry_run,
                };
                served::print(&served::run_job(&client, request, "compact").await?)?;
                return Ok(ExitCode::SUCCESS);
            }
        };
        let bar = progress::Bar::new("compact");
        let report = manager
            .local()
            .compact_with_progress(self.dry_run, move |phase, done, total| {
                bar.phase(phase, done, total)
            })
            .await?;
        report::print(
            &JobReport {
                report,
                dry_run: self.dry_run,
            },
            self.json,
        )?;
        manager.close().await?;
        Ok(ExitCode::SUCCESS)
    }
}
