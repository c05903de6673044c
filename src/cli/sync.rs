//! `pipecache sync push|pull`: between the local store and a remote tier.

use std::io::Write;
use std::process::ExitCode;

use anyhow::Result;
use pipecache::tier::{PullReport, PushReport, parse_size};

use super::env::{Env, GlobalArgs};
use super::progress;
use super::report::{self, Report};

/// Push the local tier to a remote tier, or pull a remote tier into the local one.
#[derive(Debug, clap::Args)]
pub struct SyncArgs {
    #[command(subcommand)]
    direction: SyncDirection,
}

#[derive(Debug, clap::Subcommand)]
enum SyncDirection {
    /// Upload every local artifact the remote lacks (idempotent, resumable).
    Push {
        /// Remote tier (default: the first s3 or fs-remote tier).
        #[arg(long)]
        tier: Option<String>,
        /// Bytes of artifacts per pack uploaded, e.g. 64MiB [default: 16MiB].
        #[arg(long, value_parser = parse_size)]
        batch_size: Option<u64>,
        /// JSON report.
        #[arg(long)]
        json: bool,
    },
    /// Copy remote artifacts into the local tier (cache warming).
    Pull {
        /// Only keys starting with this prefix, e.g. video:<fingerprint>:
        #[arg(long, default_value = "")]
        prefix: String,
        /// Remote tier (default: the first s3 or fs-remote tier).
        #[arg(long)]
        tier: Option<String>,
        /// JSON report.
        #[arg(long)]
        json: bool,
    },
}

impl Report for PushReport {
    fn write_text(&self, out: &mut dyn Write) -> std::io::Result<()> {
        writeln!(
            out,
            "pushed {} of {} artifact(s) to {} ({} already there, {} left to the write-back queue): {} blob(s) in {} pack(s), {} reused, {} bytes up in {} request(s)",
            self.pushed,
            self.artifacts,
            self.tier,
            self.already_remote,
            self.pending_upload,
            self.blobs_uploaded,
            self.packs,
            self.blobs_reused,
            self.bytes_up,
            self.put_requests
        )
    }
}

impl Report for PullReport {
    fn write_text(&self, out: &mut dyn Write) -> std::io::Result<()> {
        writeln!(
            out,
            "pulled {} artifact(s) from {} ({} already local, {} gone, {} awaiting upload, {} corrupt), {} bytes down",
            self.pulled,
            self.tier,
            self.already_local,
            self.gone,
            self.pending_upload,
            self.corrupt.len(),
            self.bytes_down
        )
    }
}

impl SyncArgs {
    pub async fn run(self, global: &GlobalArgs) -> Result<ExitCode> {
        let manager = Env::load(global)?.open_owned(true, "sync").await?;
        manager.check().await?;
        let code = match self.direction {
            SyncDirection::Push {
                tier,
                batch_size,
                json,
            } => {
                let bar = progress::Bar::new("push");
                let r = manager
                    .sync_push(tier.as_deref(), batch_size, &move |d, t| bar.set(d, t))
                    .await?;
                report::print(&r, json)?;
                ExitCode::SUCCESS
            }
            SyncDirection::Pull { prefix, tier, json } => {
                let bar = progress::Bar::new("pull");
                let r = manager
                    .sync_pull(tier.as_deref(), &prefix, &move |d, t| bar.set(d, t))
                    .await?;
                report::print(&r, json)?;
                for k in &r.corrupt {
                    eprintln!("pipecache: corrupt remote copy not pulled: {k}");
                }
                if r.corrupt.is_empty() {
                    ExitCode::SUCCESS
                } else {
                    ExitCode::from(1)
                }
            }
        };
        manager.close().await?;
        Ok(code)
    }
}
