//! `pipecache rm KEY`: exit 1 when there was nothing to remove.

use std::process::ExitCode;

use anyhow::Result;

use super::env::{Env, GlobalArgs};

/// Remove KEY.
#[derive(Debug, clap::Args)]
pub struct RmArgs {
    /// Artifact key.
    key: String,
}

impl RmArgs {
    pub async fn run(self, global: &GlobalArgs) -> Result<ExitCode> {
        pipecache::validate_key(&self.key)?;
        let manager = Env::load(global)?.open(false).await?;
        let code = if manager.delete(&self.key).await? {
            ExitCode::SUCCESS
        } else {
            eprintln!("pipecache: not found: {}", self.key);
            ExitCode::from(1)
        };
        manager.close().await?;
        Ok(code)
    }
}
