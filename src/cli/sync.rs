//! `pipecache sync push|pull`: between the local store and a remote tier; through the server
//! that holds the store, as one of its jobs, when one does.

use std::io::Write;
use std::process::ExitCode;

use anyhow::Result;
use pipecache::Cache;
use pipecache::client::protocol::JobRequest;
use pipecache::tier::{PullReport, PushReport, parse_size};

use super::env::{Env, GlobalArgs};
use super::report::{self, Report};
use super::{progress, served};

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
            "pushed {} of {} artifact(s) to {} ({} already there, {} of them unchanged since the last push; {} remote record(s) read; {} left to the write-back queue): {} blob(s) in {} pack(s), {} reused, {} bytes up in {} request(s)",
            self.pushed,
            self.artifacts,
            self.tier,
            self.already_remote,
            self.unchanged_since_last_push,
            self.records_read,
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
        let cache = Env::load(global)?.open(true).await?;
        if let Cache::InProcess(manager) = &cache {
            manager.check().await?;
        }
        let code = match self.direction {
            SyncDirection::Push {
                tier,
                batch_size,
                json,
            } => {
                report::print(&push(&cache, tier, batch_size).await?, json)?;
                ExitCode::SUCCESS
            }
            SyncDirection::Pull { prefix, tier, json } => {
                pulled(&pull(&cache, tier, prefix).await?, json)?
            }
        };
        if let Cache::InProcess(manager) = cache {
            manager.close().await?;
        }
        Ok(code)
    }
}

/// Pushes here, or as a job of the server that holds the store (with the remote tiers of
/// its own configuration).
async fn push(cache: &Cache, tier: Option<String>, batch_size: Option<u64>) -> Result<PushReport> {
    Ok(match cache {
        Cache::InProcess(manager) => {
            let bar = progress::Bar::new("push");
            manager
                .sync_push(tier.as_deref(), batch_size, &move |d, t| bar.set(d, t))
                .await?
        }
        Cache::Served(client) => {
            let request = JobRequest::SyncPush { tier, batch_size };
            serde_json::from_value(served::run_job(client, request, "push").await?)?
        }
    })
}

/// [`push`]'s counterpart.
async fn pull(cache: &Cache, tier: Option<String>, prefix: String) -> Result<PullReport> {
    Ok(match cache {
        Cache::InProcess(manager) => {
            let bar = progress::Bar::new("pull");
            manager
                .sync_pull(tier.as_deref(), &prefix, &move |d, t| bar.set(d, t))
                .await?
        }
        Cache::Served(client) => {
            let request = JobRequest::SyncPull { tier, prefix };
            serde_json::from_value(served::run_job(client, request, "pull").await?)?
        }
    })
}

/// Prints a pull's report and names its corrupt copies: exit 1 if there were any.
fn pulled(r: &PullReport, json: bool) -> Result<ExitCode> {
    report::print(r, json)?;
    for k in &r.corrupt {
        eprintln!("pipecache: corrupt remote copy not pulled: {k}");
    }
    Ok(if r.corrupt.is_empty() {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}
