//! `pipecache ls`.

use std::io::Write;
use std::process::ExitCode;

use anyhow::Result;
use pipecache::ListEntry;
use serde::Serialize;

use super::env::{Env, GlobalArgs};
use super::report::{self, Report};

/// List artifacts.
#[derive(Debug, clap::Args)]
pub struct LsArgs {
    /// Only keys starting with this prefix.
    #[arg(long, default_value = "")]
    prefix: String,
    /// JSON output.
    #[arg(long)]
    json: bool,
}

#[derive(Serialize)]
#[serde(transparent)]
struct Listing(Vec<ListEntry>);

impl Report for Listing {
    fn write_text(&self, out: &mut dyn Write) -> std::io::Result<()> {
        for e in &self.0 {
            writeln!(out, "{}\t{}\t{}\t{}", e.key, e.size, e.parts, e.kind)?;
        }
        Ok(())
    }
}

impl LsArgs {
    pub async fn run(self, global: &GlobalArgs) -> Result<ExitCode> {
        let manager = Env::load(global)?.open(false).await?;
        let entries = manager.list_entries(&self.prefix).await?;
        report::print(&Listing(entries), self.json)?;
        manager.close().await?;
        Ok(ExitCode::SUCCESS)
    }
}
