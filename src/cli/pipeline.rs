//! `pipecache key` and `pipecache status`: the pipeline layer from the command line.

use std::io::Write;
use std::path::Path;

use anyhow::{Context, Result, bail};
use pipecache::Store;
use pipecache_pipeline::{
    ArtifactKey, ArtifactKind, Fingerprint, FingerprintMode, ParamValue, PipelineConfig,
};
use serde::Serialize;

/// Prints the canonical key of `kind` for `video` with `params` (`name=value` each).
pub fn key(video: &Path, kind: &str, params: &[String], mode: FingerprintMode) -> Result<()> {
    let kind: ArtifactKind = kind.parse()?;
    let fp = Fingerprint::of_file(video, mode)?;
    let mut key = ArtifactKey::new(fp, kind);
    for p in params {
        let Some((name, text)) = p.split_once('=') else {
            bail!("invalid parameter {p:?}: expected name=value");
        };
        key = key.param(name, ParamValue::from_user(kind, name, text)?)?;
    }
    let text = key.to_string();
    pipecache::validate_key(&text)?;
    println!("{text}");
    Ok(())
}

/// Loads a pipeline config file of its own (`status --pipeline`; TOML, unknown fields are
/// errors).
pub fn load_config(path: &Path) -> Result<PipelineConfig> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("cannot read pipeline config {}", path.display()))?;
    toml::from_str(&text)
        .map_err(|e| anyhow::anyhow!("pipeline config {}: {}", path.display(), e.message()))
}

#[derive(Serialize)]
struct StageStatus {
    kind: ArtifactKind,
    key: String,
    cached: bool,
    size: Option<u64>,
}

#[derive(Serialize)]
struct VideoStatus {
    video: String,
    fingerprint: String,
    stages: Vec<StageStatus>,
    missing: Vec<ArtifactKind>,
    complete: bool,
}

/// Lists, per stage of `config`, whether `video` (as it is now) has its artifact cached.
pub async fn status(
    store: &Store,
    video: &Path,
    config: &PipelineConfig,
    mode: FingerprintMode,
    json: bool,
) -> Result<bool> {
    let fp = Fingerprint::of_file(video, mode)?;
    let mut stages = Vec::new();
    for kind in config.kinds() {
        let key = config
            .key(&fp, kind)?
            .expect("kind comes from the config")
            .to_string();
        let entry = store.list(&key).await?.into_iter().find(|e| e.key == key);
        stages.push(StageStatus {
            kind,
            cached: entry.is_some(),
            size: entry.map(|e| e.size),
            key,
        });
    }
    let missing: Vec<ArtifactKind> = stages
        .iter()
        .filter(|s| !s.cached)
        .map(|s| s.kind)
        .collect();
    let report = VideoStatus {
        video: video.display().to_string(),
        fingerprint: fp.to_string(),
        complete: missing.is_empty(),
        missing,
        stages,
    };
    let mut out = std::io::stdout().lock();
    if json {
        serde_json::to_writer_pretty(&mut out, &report)?;
        writeln!(out)?;
    } else {
        writeln!(out, "{} ({})", report.video, report.fingerprint)?;
        for s in &report.stages {
            match s.size {
                Some(size) => writeln!(
                    out,
                    "  cached   {:<13} {size:>10} bytes  {}",
                    s.kind.as_str(),
                    s.key
                )?,
                None => writeln!(
                    out,
                    "  missing  {:<13} {:>10}        {}",
                    s.kind.as_str(),
                    "-",
                    s.key
                )?,
            }
        }
    }
    Ok(report.complete)
}
