//! What every command that touches a store shares: the global flags, the config file they
//! point at, and the store directory and options they resolve to.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use pipecache::tier::{BackendConfig, CacheConfig, parse_free_space, parse_size};
use pipecache::{Cache, CacheManager, StoreOptions};
use pipecache_pipeline::PipelineConfig;

use super::config_file;

/// Flags every command takes.
#[derive(Debug, clap::Args)]
pub struct GlobalArgs {
    /// Store directory [default: $PIPECACHE_DIR, else the config's filesystem `path`, else
    /// the user cache dir + /pipecache]. Wins over the config's `path`.
    #[arg(long, global = true, env = "PIPECACHE_DIR")]
    pub dir: Option<PathBuf>,
    /// Configuration file (TOML) [env: PIPECACHE_CONFIG]
    #[arg(long, global = true, env = "PIPECACHE_CONFIG")]
    pub config: Option<PathBuf>,
    /// Size budget of the store, e.g. 50GB, 500MiB or a byte count (overrides the config file)
    #[arg(long, global = true, value_parser = parse_size)]
    pub max_size: Option<u64>,
    /// Free space puts must leave on the store's filesystem, e.g. 2GiB, or 0 [default: the
    /// smaller of 1GiB and 5% of the filesystem] (overrides the config file)
    #[arg(long, global = true, value_parser = parse_free_space)]
    pub min_free_space: Option<u64>,
}

/// The configuration in effect: the file with the flags applied, and the store directory.
#[derive(Debug)]
pub struct Env {
    /// Store settings and tiers.
    pub config: CacheConfig,
    /// The config file's name for messages, or "(defaults)".
    pub origin: String,
    /// The store directory every command uses.
    pub dir: PathBuf,
    /// Pipeline stages from the config file, if it has any.
    pub stages: Option<PipelineConfig>,
    /// Flags that configure the store (`--max-size`, `--min-free-space`), which a server
    /// holding the store does not take from its clients.
    store_flags: Vec<&'static str>,
}

impl Env {
    /// Loads the config file and resolves the store directory: --dir (or $PIPECACHE_DIR),
    /// else the config's filesystem path, else the default. The tier structure is checked
    /// here, for every command.
    pub fn load(global: &GlobalArgs) -> Result<Self> {
        let (file, origin) = match &global.config {
            Some(path) => (config_file::load(path)?, path.display().to_string()),
            None => (config_file::ConfigFile::default(), "(defaults)".to_owned()),
        };
        let mut config = file.cache;
        if let Some(max) = global.max_size {
            config_file::override_max_size(&mut config, max);
        }
        if let Some(min_free) = global.min_free_space {
            config.min_free_space = Some(pipecache::config::FreeSpace(min_free));
        }
        pipecache_pipeline::add_stage_costs(&mut config);
        let configured = config.local_path(&origin)?.map(Path::to_owned);
        let dir = match &global.dir {
            Some(d) => {
                config_file::override_dir(&mut config, d);
                d.clone()
            }
            None => match configured {
                Some(p) => p,
                None => default_dir()?,
            },
        };
        let store_flags = [
            (global.max_size.is_some(), "--max-size"),
            (global.min_free_space.is_some(), "--min-free-space"),
        ]
        .into_iter()
        .filter_map(|(given, flag)| given.then_some(flag))
        .collect();
        Ok(Self {
            config,
            origin,
            dir,
            stages: file.pipeline,
            store_flags,
        })
    }

    /// Store options for a short-lived command: GC runs when a command asks for it (`gc`, or
    /// a put over budget), never in a background thread.
    pub fn options(&self, create: bool) -> StoreOptions {
        StoreOptions {
            create_if_missing: create,
            gc_interval: None,
            key_classifier: Some(pipecache_pipeline::key_classifier()),
            ..StoreOptions::default()
        }
    }

    /// Whether any tier besides the local store is configured.
    pub fn has_remotes(&self) -> bool {
        self.config
            .backends
            .iter()
            .any(|b| !matches!(b, BackendConfig::Filesystem { .. }))
    }

    /// Opens the store and its tiers, creating the store only when `create`; when a
    /// `pipecache serve` holds the store, its client instead.
    pub async fn open(&self, create: bool) -> Result<Cache> {
        let cache = self
            .open_raw(create)
            .await
            .with_context(|| format!("open store {}", self.dir.display()))?;
        if let (Cache::Served(client), false) = (&cache, self.store_flags.is_empty()) {
            eprintln!(
                "pipecache: warning: {} holds the store with its own settings; {} ignored",
                client.name(),
                self.store_flags.join(" and ")
            );
        }
        Ok(cache)
    }

    /// [`Env::open`] with the library's error as it is (for commands that react to its kind).
    pub async fn open_raw(&self, create: bool) -> pipecache::Result<Cache> {
        Cache::open(
            &self.short_lived_config(),
            &self.dir,
            self.options(create),
            &self.origin,
        )
        .await
    }

    /// Opens the store in this process, for commands that need it to themselves (sync,
    /// repair, the demo): a store held by a server is refused, naming the server.
    pub async fn open_owned(&self, create: bool, what: &str) -> Result<CacheManager> {
        match self.open(create).await? {
            Cache::InProcess(manager) => Ok(manager),
            Cache::Served(client) => bail!(
                "{what} needs the store to itself, and {} holds {}; stop the server first",
                client.name(),
                self.dir.display()
            ),
        }
    }

    /// One command, one process: nothing is read twice, so a memory tier would only cost.
    fn short_lived_config(&self) -> CacheConfig {
        pipecache::CacheConfig {
            memory_size: Some(pipecache::config::FreeSpace(0)),
            ..self.config.clone()
        }
    }
}

fn default_dir() -> Result<PathBuf> {
    let base =
        dirs::cache_dir().context("no user cache directory; pass --dir or set PIPECACHE_DIR")?;
    Ok(base.join("pipecache"))
}
