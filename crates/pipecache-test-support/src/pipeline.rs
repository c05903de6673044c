//! Pipeline-layer fixtures: a `PipelineArtifactCache` over a fresh local store, stand-in video
//! files, and a small transcript.

use std::path::{Path, PathBuf};

use pipecache::StoreOptions;
use pipecache_pipeline::{FingerprintMode, PipelineArtifactCache, Transcript, TranscriptSegment};

use crate::{TempStore, random_bytes};

/// A pipeline cache (content fingerprints) over a fresh local store with no background GC,
/// and a temporary directory for videos. Keep it alive for the test's length.
#[derive(Debug)]
pub struct LocalPipeline {
    /// The cache under test.
    pub cache: PipelineArtifactCache,
    /// The store behind it.
    pub store: TempStore,
    videos: tempfile::TempDir,
}

impl LocalPipeline {
    /// Opens one.
    pub async fn new() -> Self {
        Self::with_options(StoreOptions {
            gc_interval: None,
            ..StoreOptions::default()
        })
        .await
    }

    /// Opens one over a store with `options` (a clock, a compression policy).
    pub async fn with_options(options: StoreOptions) -> Self {
        let store = TempStore::new(options).await;
        let cache = PipelineArtifactCache::new(store.store().clone(), FingerprintMode::Content);
        let videos = tempfile::tempdir().expect("temp dir for videos");
        Self {
            cache,
            store,
            videos,
        }
    }

    /// Writes a stand-in video `name` of `len` bytes from `seed`; returns its path.
    pub fn video(&self, name: &str, seed: u64, len: usize) -> PathBuf {
        fake_video(self.videos.path(), name, seed, len)
    }

    /// The directory the videos are in.
    pub fn videos_dir(&self) -> &Path {
        self.videos.path()
    }
}

/// Writes `len` seeded random bytes to `dir/name`, standing in for a video file.
pub fn fake_video(dir: &Path, name: &str, seed: u64, len: usize) -> PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, random_bytes(seed, len)).expect("write stand-in video");
    path
}

/// Sets `path`'s modification time to `t` (as `touch -d` would).
pub fn set_mtime(path: &Path, t: std::time::SystemTime) {
    std::fs::OpenOptions::new()
        .write(true)
        .open(path)
        .expect("open video to set its mtime")
        .set_modified(t)
        .expect("set mtime");
}

/// A Whisper-style English transcript of `text` in one segment `[0, end_ms)`.
pub fn one_segment_transcript(text: &str, end_ms: u64) -> Transcript {
    Transcript {
        text: text.into(),
        language: "en".into(),
        model: "whisper-base".into(),
        segments: vec![TranscriptSegment {
            start_ms: 0,
            end_ms,
            text: text.into(),
        }],
    }
}
