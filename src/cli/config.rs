//! The CLI's configuration file: a [`CacheConfig`] in TOML (`--config FILE` or
//! `$PIPECACHE_CONFIG`), overridden by flags. Unknown fields and bad values are errors that
//! name the file and the field; nothing is silently ignored.

use std::path::Path;

use anyhow::{Context, Result};
use pipecache::tier::{BackendConfig, CacheConfig};

/// Reads and parses a config file.
pub fn load(path: &Path) -> Result<CacheConfig> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("cannot read config {}", path.display()))?;
    Ok(CacheConfig::from_toml(&text, &path.display().to_string())?)
}

/// `--dir` wins over the filesystem backend's `path`.
pub fn override_dir(config: &mut CacheConfig, dir: &Path) {
    for b in &mut config.backends {
        if let BackendConfig::Filesystem { path, .. } = b {
            *path = Some(dir.to_owned());
        }
    }
}

/// `--max-size` wins over the file, wherever the file sets it.
pub fn override_max_size(config: &mut CacheConfig, bytes: u64) {
    config.max_size = Some(bytes.to_string());
    for b in &mut config.backends {
        if let BackendConfig::Filesystem { max_size, .. } = b {
            *max_size = Some(bytes.to_string());
        }
    }
}
