//! `pipecache status VIDEO`: per pipeline stage, whether the video (as it is now) has its
//! artifact cached. Exit 0 when every stage is.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{Context, Result, bail};
use pipecache::Cache;
use pipecache_pipeline::{ArtifactKind, Fingerprint, FingerprintMode, PipelineConfig};
use serde::Serialize;

use super::env::{Env, GlobalArgs};
use super::report::{self, Report};

/// What is cached for a video (as it is now) and what is missing, per pipeline stage.
#[derive(Debug, clap::Args)]
pub struct StatusArgs {
    /// The source video: a path, file:///... or s3://bucket/key.
    video: PathBuf,
    /// Stages to check, from a file of their own (TOML: [keyframes] threshold,
    /// max_frames; [transcript] model_size, language; [descriptions] model, batch_size;
    /// [embeddings] model). The same tables may instead sit in the --config file next to
    /// the cache settings (`status VIDEO --config pipeline.toml`). Default: all stages at
    /// the seed's defaults.
    #[arg(long = "pipeline")]
    pipeline: Option<PathBuf>,
    /// How the video is fingerprinted.
    #[arg(long, default_value = "stat")]
    fingerprint: String,
    /// JSON output.
    #[arg(long)]
    json: bool,
}

impl StatusArgs {
    pub async fn run(self, global: &GlobalArgs) -> Result<ExitCode> {
        let mode: FingerprintMode = self.fingerprint.parse()?;
        let env = Env::load(global)?;
        let config = match (&self.pipeline, &env.stages) {
            (Some(_), Some(_)) => bail!(
                "pipeline stages given twice: in --pipeline and in the config file {}",
                env.origin
            ),
            (Some(path), None) => load_config(path)?,
            (None, Some(stages)) => stages.clone(),
            (None, None) => PipelineConfig::full(),
        };
        let cache = env.open(false).await?;
        let status = status(&cache, &self.video, &config, mode).await?;
        report::print(&status, self.json)?;
        cache.close().await?;
        Ok(if status.complete {
            ExitCode::SUCCESS
        } else {
            ExitCode::from(1)
        })
    }
}

/// Loads a pipeline config file of its own (`status --pipeline`; TOML, unknown fields are
/// errors).
fn load_config(path: &Path) -> Result<PipelineConfig> {
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
async fn status(
    cache: &Cache,
    video: &Path,
    config: &PipelineConfig,
    mode: FingerprintMode,
) -> Result<VideoStatus> {
    let fp = Fingerprint::of_video(video, mode).await?;
    let mut stages = Vec::new();
    for kind in config.kinds() {
        let key = config
            .key(&fp, kind)?
            .expect("kind comes from the config")
            .to_string();
        let entry = cache
            .list_entries(&key)
            .await?
            .into_iter()
            .find(|e| e.key == key);
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
    Ok(VideoStatus {
        video: video.display().to_string(),
        fingerprint: fp.to_string(),
        complete: missing.is_empty(),
        missing,
        stages,
    })
}

impl Report for VideoStatus {
    fn write_text(&self, out: &mut dyn Write) -> std::io::Result<()> {
        writeln!(out, "{} ({})", self.video, self.fingerprint)?;
        for s in &self.stages {
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
        Ok(())
    }
}
