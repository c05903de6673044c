//! Pipeline-layer fixtures: a `PipelineArtifactCache` over a fresh local store, stand-in video
//! files, a small transcript, and stand-in outputs of every pipeline stage.

use std::path::{Path, PathBuf};

use pipecache::StoreOptions;
use pipecache_pipeline::{
    Embeddings, FingerprintMode, FrameDescription, FrameDescriptions, FrameInfo, Keyframes,
    PipelineArtifactCache, PipelineArtifacts, Transcript, TranscriptSegment,
};

use crate::{TempStore, json_like, random_bytes};

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

/// What every stage of a pipeline computed for one video (stand-ins for model outputs).
#[derive(Clone, Debug, PartialEq)]
pub struct StageOutputs {
    /// Keyframes: incompressible images (JPEG-like).
    pub keyframes: Keyframes,
    /// A transcript of compressible text.
    pub transcript: Transcript,
    /// One description per keyframe, compressible text.
    pub descriptions: FrameDescriptions,
    /// One vector per keyframe, arbitrary f32 bit patterns (NaN payloads and -0.0 included).
    pub embeddings: Embeddings,
}

/// Width of the vectors of [`stage_outputs`].
pub const STAGE_EMBEDDING_DIM: u32 = 64;

/// Deterministic stage outputs from `seed`: `frames` keyframes of `frame_len` bytes each, a
/// transcript of about `transcript_len` bytes of text, and one description and one
/// [`STAGE_EMBEDDING_DIM`]-wide vector per keyframe.
pub fn stage_outputs(
    seed: u64,
    frames: u32,
    frame_len: usize,
    transcript_len: usize,
) -> StageOutputs {
    let text =
        |s: u64, len: usize| String::from_utf8(json_like(s, len)).expect("json_like writes ASCII");
    let infos: Vec<FrameInfo> = (0..frames)
        .map(|i| FrameInfo {
            index: i * 25,
            timestamp_ms: u64::from(i) * 1000,
            score: 0.5 + i as f32 / (2 * frames) as f32,
            width: 1280,
            height: 720,
            format: "jpeg".into(),
        })
        .collect();
    let images = (0..u64::from(frames))
        .map(|i| random_bytes(seed * 100_000 + i, frame_len))
        .collect();
    let transcript_text = text(seed, transcript_len);
    let vectors = (0..u64::from(frames))
        .map(|i| {
            random_bytes(
                seed * 100_000 + 50_000 + i,
                STAGE_EMBEDDING_DIM as usize * 4,
            )
            .chunks_exact(4)
            .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
            .collect()
        })
        .collect();
    StageOutputs {
        keyframes: Keyframes {
            frames: infos.clone(),
            images,
        },
        transcript: Transcript {
            segments: vec![TranscriptSegment {
                start_ms: 0,
                end_ms: u64::from(frames) * 1000,
                text: transcript_text.clone(),
            }],
            text: transcript_text,
            language: "en".into(),
            model: "whisper-base".into(),
        },
        descriptions: FrameDescriptions {
            model: "Qwen2-VL".into(),
            prompt_version: "v1".into(),
            frames: infos
                .iter()
                .map(|f| FrameDescription {
                    index: f.index,
                    text: text(seed * 100_000 + u64::from(f.index), 200),
                })
                .collect(),
        },
        embeddings: Embeddings {
            model: "clip-vit-b32".into(),
            dim: STAGE_EMBEDDING_DIM,
            vectors,
        },
    }
}

impl StageOutputs {
    /// These outputs as `get_all_artifacts` returns them when every stage is cached.
    pub fn artifacts(&self) -> PipelineArtifacts {
        PipelineArtifacts {
            keyframes: Some(self.keyframes.clone()),
            transcript: Some(self.transcript.clone()),
            descriptions: Some(self.descriptions.clone()),
            embeddings: Some(self.embeddings.clone()),
        }
    }
}
