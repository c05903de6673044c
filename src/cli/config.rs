//! `pipecache config [--check]`: the effective configuration, secrets masked.

use std::process::ExitCode;

use anyhow::Result;
use pipecache::CacheManager;

use super::env::{Env, GlobalArgs};

/// Print the effective configuration (secrets masked).
#[derive(Debug, clap::Args)]
pub struct ConfigArgs {
    /// Also contact every remote tier and report whether it answers.
    #[arg(long)]
    check: bool,
}

impl ConfigArgs {
    pub async fn run(self, global: &GlobalArgs) -> Result<ExitCode> {
        let env = Env::load(global)?;
        let origin = &env.origin;
        CacheManager::validate(&env.config, origin)?;
        let (effective, notes) = env.config.effective(&env.dir, origin)?;
        println!(
            "# pipecache: effective configuration of {origin}; defaults written out, secrets masked"
        );
        for note in notes {
            println!("# {note}");
        }
        print!("{}", effective.to_masked_toml());
        if self.check {
            // Without opening the local store: it may not exist yet, or be in use.
            CacheManager::check_config(&env.config, origin).await?;
            eprintln!("every tier answered");
        }
        Ok(ExitCode::SUCCESS)
    }
}
