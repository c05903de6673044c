//! The `pipecache` command line: one module per command, each with its clap arguments and a
//! `run`; this module parses and dispatches. Shared pieces: `env` (global flags, config file,
//! store directory), `report` (JSON or text output), `files` (files and directories as
//! artifacts), `progress` (bars for long jobs).

use std::process::ExitCode;

use anyhow::Result;
use clap::{Parser, Subcommand};
use pipecache::{StoreError, TierError};
use pipecache_pipeline::PipelineError;

mod compact;
mod config;
mod config_file;
mod demo;
mod env;
mod files;
mod gc;
mod get;
mod key;
mod ls;
mod progress;
mod put;
mod rebuild_index;
mod report;
mod rm;
mod serve;
mod served;
mod stats;
mod status;
mod stress;
mod sync;
mod verify;

#[derive(Debug, Parser)]
#[command(
    name = "pipecache",
    version,
    about = "Content-addressed artifact cache for video pipelines"
)]
struct Cli {
    #[command(flatten)]
    global: env::GlobalArgs,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    Put(put::PutArgs),
    Get(get::GetArgs),
    Rm(rm::RmArgs),
    Ls(ls::LsArgs),
    Stats(stats::StatsArgs),
    Verify(verify::VerifyArgs),
    Gc(gc::GcArgs),
    Sync(sync::SyncArgs),
    Config(config::ConfigArgs),
    Compact(compact::CompactArgs),
    RebuildIndex(rebuild_index::RebuildIndexArgs),
    #[command(hide = true)]
    StressPut(stress::StressPutArgs),
    Demo(demo::DemoArgs),
    Key(key::KeyArgs),
    Status(status::StatusArgs),
    Serve(serve::ServeArgs),
}

pub fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) if !e.use_stderr() => {
            // --help, --version
            let _ = e.print();
            return ExitCode::SUCCESS;
        }
        Err(e) => {
            // One line, like every other error; `--help` has the details.
            let text = e.to_string();
            let first = text.lines().next().unwrap_or("invalid arguments");
            eprintln!("pipecache: {first} (see --help)");
            return ExitCode::from(2);
        }
    };
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("PIPECACHE_LOG")
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn")),
        )
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .init();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("pipecache: error: cannot start runtime: {e}");
            return ExitCode::from(2);
        }
    };
    match runtime.block_on(run(cli)) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("pipecache: error: {}", error_chain(&e));
            if let Some(hint) = next_step(&e) {
                eprintln!("pipecache: {hint}");
            }
            ExitCode::from(2)
        }
    }
}

const INDEX_DAMAGE_HINT: &str = "the index is damaged; run `pipecache rebuild-index --force` (it rebuilds it from the chunk files)";

/// What to do next, for the errors an operator can act on (classified by kind).
fn next_step(e: &anyhow::Error) -> Option<&'static str> {
    let store_error = e.chain().find_map(store_error_of)?;
    if matches!(store_error, StoreError::IndexMissing { .. }) {
        None // its message names the command already
    } else if matches!(store_error, StoreError::StoreInUse { .. }) {
        Some(
            "to share a store between processes, run `pipecache serve` on it: every command then goes through the server (docs/server.md)",
        )
    } else if store_error.is_index_damage() {
        Some(INDEX_DAMAGE_HINT)
    } else if store_error.is_no_space() {
        Some(
            "the disk is full or under min_free_space; free space with `pipecache rm KEY`, `pipecache gc` or `pipecache gc --max-size SIZE`",
        )
    } else {
        None
    }
}

/// The local store's error `cause` is or carries (the tiers' and the pipeline's errors wrap
/// it transparently, so it is not a cause of its own in the chain).
fn store_error_of<'e>(cause: &'e (dyn std::error::Error + 'static)) -> Option<&'e StoreError> {
    let tier_error = |e: &'e TierError| e.as_store();
    cause
        .downcast_ref::<StoreError>()
        .or_else(|| cause.downcast_ref::<TierError>().and_then(tier_error))
        .or_else(|| match cause.downcast_ref::<PipelineError>() {
            Some(PipelineError::Store(e)) => tier_error(e),
            _ => None,
        })
}

/// `e` and its causes joined by ": ", leaving out a cause the message before it already
/// quotes (library errors such as "tier s3: {source}" show their source themselves).
fn error_chain(e: &anyhow::Error) -> String {
    let mut out = String::new();
    for cause in e.chain() {
        let text = cause.to_string();
        if out.contains(&text) {
            continue;
        }
        if !out.is_empty() {
            out.push_str(": ");
        }
        out.push_str(&text);
    }
    out
}

async fn run(cli: Cli) -> Result<ExitCode> {
    let g = &cli.global;
    match cli.command {
        Command::Put(args) => args.run(g).await,
        Command::Get(args) => args.run(g).await,
        Command::Rm(args) => args.run(g).await,
        Command::Ls(args) => args.run(g).await,
        Command::Stats(args) => args.run(g).await,
        Command::Verify(args) => args.run(g).await,
        Command::Gc(args) => args.run(g).await,
        Command::Sync(args) => args.run(g).await,
        Command::Config(args) => args.run(g).await,
        Command::Compact(args) => args.run(g).await,
        Command::RebuildIndex(args) => args.run(g).await,
        Command::StressPut(args) => args.run(g).await,
        Command::Demo(args) => args.run(g).await,
        Command::Key(args) => args.run().await,
        Command::Status(args) => args.run(g).await,
        Command::Serve(args) => args.run(g).await,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_error_chain_names_each_cause_once() {
        let remote = pipecache_remote::RemoteError::Config {
            target: "s3://b/p".into(),
            reason: "list /: PermissionDenied".into(),
        };
        let e = anyhow::Error::new(pipecache::Error::Remote {
            tier: "s3".into(),
            source: remote,
        })
        .context("sync push");
        let shown = error_chain(&e);
        assert_eq!(
            shown,
            "sync push: tier s3: remote s3://b/p: invalid configuration: list /: PermissionDenied"
        );
    }
}
