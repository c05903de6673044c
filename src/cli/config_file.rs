//! The CLI's configuration file (`--config FILE` or `$PIPECACHE_CONFIG`), TOML: a
//! [`CacheConfig`] (store settings and `[[backends]]`) and, optionally, the pipeline's stages
//! (`[keyframes]`, `[transcript]`, `[descriptions]`, `[embeddings]`, a [`PipelineConfig`]), so
//! one `pipeline.toml` can describe a pipeline and its cache. Flags override it. Unknown fields
//! and bad values are errors that name the file and the field; nothing is silently ignored.

use std::path::Path;

use anyhow::{Context, Result, anyhow};
use pipecache::config::ByteSize;
use pipecache::tier::{BackendConfig, CacheConfig};
use pipecache_pipeline::{ArtifactKind, PipelineConfig};

/// A parsed config file.
#[derive(Debug, Default)]
pub struct ConfigFile {
    /// Store settings and tiers.
    pub cache: CacheConfig,
    /// The pipeline stages, when the file has any stage table.
    pub pipeline: Option<PipelineConfig>,
}

/// Reads and parses a config file.
pub fn load(path: &Path) -> Result<ConfigFile> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("cannot read config {}", path.display()))?;
    parse(&text, &path.display().to_string())
}

/// Splits the stage tables (named after the artifact kinds) from the cache settings; each
/// part is then parsed strictly, so a misspelt field is an error in either.
fn parse(text: &str, origin: &str) -> Result<ConfigFile> {
    let mut table: toml::Table = text
        .parse()
        .map_err(|e: toml::de::Error| anyhow!("config {origin}: {}", e.message()))?;
    let mut stages = toml::Table::new();
    for kind in ArtifactKind::ALL {
        if let Some(v) = table.remove(kind.as_str()) {
            stages.insert(kind.as_str().to_owned(), v);
        }
    }
    let cache = CacheConfig::from_toml(&toml::to_string(&table)?, origin)?;
    let pipeline = if stages.is_empty() {
        None
    } else {
        Some(
            toml::Value::Table(stages)
                .try_into()
                .map_err(|e: toml::de::Error| anyhow!("config {origin}: {}", e.message()))?,
        )
    };
    Ok(ConfigFile { cache, pipeline })
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
    config.max_size = Some(ByteSize(bytes));
    for b in &mut config.backends {
        if let BackendConfig::Filesystem { max_size, .. } = b {
            *max_size = Some(ByteSize(bytes));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stage_tables_and_cache_settings_share_one_file() {
        let c = parse(
            "max_size = \"1GB\"\n[keyframes]\nthreshold = 0.99\nmax_frames = 10\n",
            "p.toml",
        )
        .unwrap();
        assert_eq!(c.cache.max_size, Some(ByteSize(1_000_000_000)));
        let p = c.pipeline.expect("stages");
        assert_eq!(p.keyframes.unwrap().max_frames, 10);
        assert!(p.transcript.is_none());

        let plain = parse("max_size = \"1GB\"\n", "p.toml").unwrap();
        assert!(plain.pipeline.is_none());
    }

    #[test]
    fn unknown_fields_are_errors_in_either_part() {
        let e = parse("[keyframes]\nthreshold = 0.9\nmax_frame = 3\n", "p.toml").unwrap_err();
        assert!(e.to_string().contains("max_frame"), "{e}");
        assert!(e.to_string().contains("p.toml"), "{e}");
        let e = parse("max_sise = \"1GB\"\n", "p.toml").unwrap_err();
        assert!(e.to_string().contains("max_sise"), "{e}");
    }
}
