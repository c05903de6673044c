//! `pipecache put KEY PATH`.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::Result;
use pipecache::PutOptions;
use pipecache::tier::parse_duration;

use super::env::{Env, GlobalArgs};
use super::files::read_input;

/// Store a file, stdin (`-`) or a directory (one part per file) under KEY.
#[derive(Debug, clap::Args)]
pub struct PutArgs {
    /// Artifact key (UTF-8, 1..=1024 bytes).
    key: String,
    /// File, `-` for stdin, or a directory.
    path: PathBuf,
    /// Artifact kind recorded with it (e.g. keyframes, transcript).
    #[arg(long, default_value = "")]
    kind: String,
    /// Time to live, e.g. 90s, 12h, 7d.
    #[arg(long, value_parser = parse_duration, allow_hyphen_values = true)]
    ttl: Option<Duration>,
    /// Metadata entry NAME=VALUE (repeatable).
    #[arg(long = "meta", value_parser = parse_meta)]
    meta: Vec<(String, String)>,
}

fn parse_meta(s: &str) -> Result<(String, String), String> {
    let (k, v) = s
        .split_once('=')
        .ok_or_else(|| format!("invalid --meta {s:?}: expected NAME=VALUE"))?;
    if k.is_empty() {
        return Err(format!("invalid --meta {s:?}: empty name"));
    }
    Ok((k.to_owned(), v.to_owned()))
}

impl PutArgs {
    pub async fn run(self, global: &GlobalArgs) -> Result<ExitCode> {
        // Bad input is refused before a store is opened (or created).
        pipecache::validate_key(&self.key)?;
        let artifact = read_input(&self.path, &self.kind, &self.meta)?;
        let manager = Env::load(global)?.open(true).await?;
        let (parts, size) = (artifact.parts.len(), artifact.logical_size());
        let options = PutOptions {
            ttl: self.ttl,
            ..PutOptions::default()
        };
        manager.put_with(&self.key, artifact, options).await?;
        eprintln!("stored {} ({parts} part(s), {size} bytes)", self.key);
        // No background GC in a CLI process: the put that crossed the budget collects.
        // A server collects in the background.
        let over_budget = match manager.manager() {
            Some(m) => m.local().gc_if_over_budget().await?,
            None => None,
        };
        if let Some(r) = over_budget {
            eprintln!(
                "over budget: evicted {} artifact(s), reclaimed {} bytes",
                r.evicted.len(),
                r.bytes_reclaimed
            );
        }
        manager.close().await?;
        Ok(ExitCode::SUCCESS)
    }
}
