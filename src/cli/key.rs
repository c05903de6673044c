//! `pipecache key VIDEO KIND [param=value ...]`: the canonical cache key.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Result, bail};
use pipecache_pipeline::{ArtifactKey, ArtifactKind, Fingerprint, FingerprintMode, ParamValue};

/// Print the canonical cache key of a video's artifact.
#[derive(Debug, clap::Args)]
pub struct KeyArgs {
    /// The source video: a path, file:///... or s3://bucket/key.
    video: PathBuf,
    /// keyframes, transcript, descriptions or embeddings.
    kind: String,
    /// Parameters, name=value (e.g. threshold=0.999 max_frames=3000).
    params: Vec<String>,
    /// How the video is fingerprinted.
    #[arg(long, default_value = "stat")]
    fingerprint: String,
}

impl KeyArgs {
    pub async fn run(self) -> Result<ExitCode> {
        let mode: FingerprintMode = self.fingerprint.parse()?;
        let kind: ArtifactKind = self.kind.parse()?;
        let fp = Fingerprint::of_video(&self.video, mode).await?;
        let mut key = ArtifactKey::new(fp, kind);
        for p in &self.params {
            let Some((name, text)) = p.split_once('=') else {
                bail!("invalid parameter {p:?}: expected name=value");
            };
            key = key.param(name, ParamValue::from_user(kind, name, text)?)?;
        }
        let text = key.to_string();
        pipecache::validate_key(&text)?;
        println!("{text}");
        Ok(ExitCode::SUCCESS)
    }
}
