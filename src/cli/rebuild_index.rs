//! `pipecache rebuild-index [--force]`: the index from the chunk files alone.

use std::io::Write;
use std::process::ExitCode;

use anyhow::{Context, Result};
use pipecache::{RebuildReport, Store};

use super::env::{Env, GlobalArgs};
use super::progress;
use super::report::{self, Report};

/// Rebuild the index from the chunk files alone (after the index was lost or damaged).
#[derive(Debug, clap::Args)]
pub struct RebuildIndexArgs {
    /// Replace an index that looks complete (or does not open at all).
    #[arg(long)]
    force: bool,
    /// JSON report.
    #[arg(long)]
    json: bool,
}

impl Report for RebuildReport {
    fn write_text(&self, out: &mut dyn Write) -> std::io::Result<()> {
        writeln!(
            out,
            "restored {} artifacts and {} blobs from {} chunk files; {} lost, {} damaged chunk(s)",
            self.artifacts_restored,
            self.blobs_found,
            self.chunks_scanned,
            self.lost_keys.len(),
            self.chunks_damaged.len()
        )?;
        for k in &self.lost_keys {
            writeln!(out, "lost key {k}")?;
        }
        Ok(())
    }
}

impl RebuildIndexArgs {
    pub async fn run(self, global: &GlobalArgs) -> Result<ExitCode> {
        let env = Env::load(global)?;
        let mut options = env.options(false);
        env.config.apply(&mut options, &env.origin)?;
        let bar = progress::Bar::new("rebuild-index");
        let report = Store::rebuild_index(&env.dir, options, self.force, move |done, total| {
            bar.set(done, total)
        })
        .await
        .with_context(|| format!("rebuild index of {}", env.dir.display()))?;
        report::print(&report, self.json)?;
        Ok(ExitCode::SUCCESS)
    }
}
