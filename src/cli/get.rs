//! `pipecache get KEY [-o PATH]`: exit 0 on a hit, 1 on a miss.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Result;

use super::env::{Env, GlobalArgs};
use super::files::write_output;

/// Write the artifact under KEY to stdout, or to PATH (a directory for directory artifacts).
#[derive(Debug, clap::Args)]
pub struct GetArgs {
    /// Artifact key.
    key: String,
    /// Output file or directory.
    #[arg(short = 'o', long = "output")]
    output: Option<PathBuf>,
}

impl GetArgs {
    pub async fn run(self, global: &GlobalArgs) -> Result<ExitCode> {
        pipecache::validate_key(&self.key)?;
        let env = Env::load(global)?;
        // Reads create the local store only when remote tiers can fill it (read-through).
        let manager = env.open(env.has_remotes()).await?;
        let code = match manager.get(&self.key).await? {
            None => {
                eprintln!("pipecache: miss: {}", self.key);
                ExitCode::from(1)
            }
            Some(artifact) => {
                write_output(&self.key, &artifact, self.output.as_deref())?;
                ExitCode::SUCCESS
            }
        };
        manager.close().await?;
        Ok(code)
    }
}
