//! `pipecache sync push|pull`: between the local store and a remote tier; through the server
//! that holds the store, as one of its jobs, when one does.

use std::io::Write;
use std::process::ExitCode;

use anyhow::Result;
use pipecache::client::protocol::JobRequest;
use pipecache::tier::{PullReport, PushReport, parse_size};
use pipecache::{Cache, CacheManager, ServerClient};

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
        match Env::load(global)?.open(true).await? {
            Cache::InProcess(manager) => {
                manager.check().await?;
                let code = self.run_here(&manager).await?;
                manager.close().await?;
                Ok(code)
            }
            // The server holding the store runs it as a job, with the tiers of its own
            // configuration.
            Cache::Served(client) => self.run_in_server(&client).await,
        }
    }

    async fn run_here(self, manager: &CacheManager) -> Result<ExitCode> {
        Ok(match self.direction {
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
                pulled(&r, json)?
            }
        })
    }

    async fn run_in_server(self, client: &ServerClient) -> Result<ExitCode> {
        Ok(match self.direction {
            SyncDirection::Push {
                tier,
                batch_size,
                json,
            } => {
                let request = JobRequest::SyncPush { tier, batch_size };
                let r: PushReport =
                    serde_json::from_value(served::run_job(client, request, "push").await?)?;
                report::print(&r, json)?;
                ExitCode::SUCCESS
            }
            SyncDirection::Pull { prefix, tier, json } => {
                let request = JobRequest::SyncPull { tier, prefix };
                let r: PullReport =
                    serde_json::from_value(served::run_job(client, request, "pull").await?)?;
                pulled(&r, json)?
            }
        })
    }
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
