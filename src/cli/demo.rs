//! `pipecache demo`: a synthetic video pipeline through the cache, cold then warm.
//!
//! It writes N small synthetic "video" files, then runs four stages per video through
//! [`PipelineArtifactCache`]: keyframes (images with an intro and outro shared by every video,
//! so dedup shows), a transcript, frame descriptions and embeddings. No model runs: on a miss the
//! stage's output is generated, and the time the real stage would take is *simulated* (taken
//! from the seed's measured costs) and labelled so. The second pass is all hits. At the end the
//! demo's artifacts are removed from the store unless `--keep`.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::{Duration, Instant};

use anyhow::{Result, ensure};
use pipecache::Store;
use pipecache_pipeline::{
    ArtifactKind, Embeddings, FingerprintMode, FrameDescription, FrameDescriptions, FrameInfo,
    PipelineArtifactCache, PipelineConfig, Transcript, TranscriptSegment,
};

use super::env::{Env, GlobalArgs};
use super::progress::Bar;

const SHARED_FRAMES: usize = 5;

fn pseudo_random(seed: u64, len: usize) -> Vec<u8> {
    let mut x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    let mut out = Vec::with_capacity(len + 8);
    while out.len() < len {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        out.extend_from_slice(&x.to_le_bytes());
    }
    out.truncate(len);
    out
}

fn frame_image(video: usize, index: usize, frames: usize) -> Vec<u8> {
    let shared = index < SHARED_FRAMES || index + SHARED_FRAMES >= frames;
    let seed = if shared {
        (index as u64) << 32
    } else {
        ((video as u64 + 1) << 32) | index as u64
    };
    pseudo_random(seed ^ 0xF00D, 20_000 + (seed as usize % 20_000))
}

fn compute_keyframes(video: usize, frames: usize) -> (Vec<FrameInfo>, Vec<Vec<u8>>) {
    let info = (0..frames)
        .map(|i| FrameInfo {
            index: i as u32 * 30,
            timestamp_ms: i as u64 * 1000,
            score: 0.999,
            width: 1280,
            height: 720,
            format: "jpeg".into(),
        })
        .collect();
    (
        info,
        (0..frames).map(|i| frame_image(video, i, frames)).collect(),
    )
}

fn compute_transcript(video: usize) -> Transcript {
    let segments: Vec<TranscriptSegment> = (0..200)
        .map(|i| TranscriptSegment {
            start_ms: i * 2500,
            end_ms: i * 2500 + 2400,
            text: format!(
                "video {video} segment {i}: the speaker describes the scene in some detail"
            ),
        })
        .collect();
    let text = segments
        .iter()
        .map(|s| s.text.as_str())
        .collect::<Vec<_>>()
        .join(" ");
    Transcript {
        text,
        language: "en".into(),
        model: "whisper-base".into(),
        segments,
    }
}

fn compute_descriptions(video: usize, frames: usize) -> FrameDescriptions {
    FrameDescriptions {
        model: "Qwen2-VL".into(),
        prompt_version: "v1".into(),
        frames: (0..frames as u32)
            .map(|i| FrameDescription {
                index: i * 30,
                text: format!("video {video}, frame {i}: a person walks along a river at dusk"),
            })
            .collect(),
    }
}

fn compute_embeddings(video: usize, frames: usize) -> Embeddings {
    let raw = pseudo_random(video as u64 ^ 0xE3B, frames * 512 * 4);
    let vectors = raw
        .chunks_exact(512 * 4)
        .map(|v| {
            v.chunks_exact(4)
                .map(|b| (b[0] as f32 - 128.0) / 128.0)
                .collect()
        })
        .collect();
    Embeddings {
        model: "clip-vit-b32".into(),
        dim: 512,
        vectors,
    }
}

#[derive(Default, Clone, Copy)]
struct StageTally {
    hits: u64,
    misses: u64,
    cache_time: Duration,
    simulated_s: f64,
}

/// One stage for one video, timed: a hit is counted; a miss is counted, "computed" (its
/// simulated cost added) and stored.
async fn stage(
    tally: &mut StageTally,
    kind: ArtifactKind,
    hit: impl std::future::Future<Output = Result<bool>>,
    compute_and_store: impl AsyncFnOnce() -> Result<()>,
) -> Result<()> {
    let start = Instant::now();
    if hit.await? {
        tally.hits += 1;
    } else {
        tally.misses += 1;
        tally.simulated_s += kind.recompute_seconds();
        compute_and_store().await?;
    }
    tally.cache_time += start.elapsed();
    Ok(())
}

/// One pass over every video: returns per-stage tallies.
async fn pass(
    cache: &PipelineArtifactCache,
    videos: &[PathBuf],
    frames: usize,
    config: &PipelineConfig,
    label: &str,
) -> Result<[StageTally; 4]> {
    let mut t = [StageTally::default(); 4];
    let kf = config.keyframes.clone().expect("full config");
    let tr = config.transcript.clone().expect("full config");
    let de = config.descriptions.clone().expect("full config");
    let em = config.embeddings.clone().expect("full config");
    let bar = Bar::new(label);
    for (v, path) in videos.iter().enumerate() {
        bar.set(v as u64, videos.len() as u64);
        let [kf_t, tr_t, de_t, em_t] = &mut t;
        stage(
            kf_t,
            ArtifactKind::Keyframes,
            async {
                Ok(cache
                    .get_keyframes(path, kf.threshold, kf.max_frames)
                    .await?
                    .is_some())
            },
            async || {
                let (info, images) = compute_keyframes(v, frames);
                cache
                    .set_keyframes(path, info, images, kf.threshold, kf.max_frames)
                    .await?;
                Ok(())
            },
        )
        .await?;
        stage(
            tr_t,
            ArtifactKind::Transcript,
            async {
                Ok(cache
                    .get_transcript(path, &tr.model_size, &tr.language)
                    .await?
                    .is_some())
            },
            async || {
                let transcript = compute_transcript(v);
                cache
                    .set_transcript(path, &transcript, &tr.model_size, &tr.language)
                    .await?;
                Ok(())
            },
        )
        .await?;
        stage(
            de_t,
            ArtifactKind::Descriptions,
            async {
                Ok(cache
                    .get_descriptions(path, &de.model, de.batch_size)
                    .await?
                    .is_some())
            },
            async || {
                let descriptions = compute_descriptions(v, frames);
                cache
                    .set_descriptions(path, &descriptions, &de.model, de.batch_size)
                    .await?;
                Ok(())
            },
        )
        .await?;
        stage(
            em_t,
            ArtifactKind::Embeddings,
            async { Ok(cache.get_embeddings(path, &em.model).await?.is_some()) },
            async || {
                let embeddings = compute_embeddings(v, frames);
                cache.set_embeddings(path, &embeddings, &em.model).await?;
                Ok(())
            },
        )
        .await?;
    }
    Ok(t)
}

fn write_videos(dir: &Path, n: usize) -> Result<Vec<PathBuf>> {
    std::fs::create_dir_all(dir)?;
    (0..n)
        .map(|v| {
            let p = dir.join(format!("video{v:04}.mp4"));
            std::fs::write(&p, pseudo_random(v as u64 ^ 0xBEEF, 64 * 1024))?;
            Ok(p)
        })
        .collect()
}

/// Run a synthetic video pipeline through the cache twice (the main job of the README's
/// first command).
#[derive(Debug, clap::Args)]
pub struct DemoArgs {
    /// Number of synthetic videos.
    #[arg(long, default_value_t = 20)]
    videos: usize,
    /// Keyframes per video.
    #[arg(long, default_value_t = 60)]
    frames: usize,
    /// Keep the demo's artifacts in the store afterwards.
    #[arg(long)]
    keep: bool,
}

impl DemoArgs {
    pub async fn run(self, global: &GlobalArgs) -> Result<ExitCode> {
        let manager = Env::load(global)?.open_owned(true, "demo").await?;
        run(manager.local(), self.videos, self.frames, self.keep).await?;
        manager.close().await?;
        Ok(ExitCode::SUCCESS)
    }
}

async fn run(store: &Store, videos: usize, frames: usize, keep: bool) -> Result<()> {
    ensure!(
        videos > 0 && frames > SHARED_FRAMES * 2,
        "--videos must be positive and --frames above {}",
        SHARED_FRAMES * 2
    );
    let dir = std::env::temp_dir().join(format!("pipecache-demo-{}", std::process::id()));
    let paths = write_videos(&dir, videos)?;
    // Stat fingerprints of freshly written files: every demo run starts cold.
    let cache = PipelineArtifactCache::new(store.clone(), FingerprintMode::Stat);
    let config = PipelineConfig::full();
    println!(
        "pipecache demo: {videos} synthetic videos x 4 stages ({frames} keyframes each) through {}",
        store.dir().display()
    );
    println!(
        "stage outputs are generated, not computed by models; compute times are SIMULATED from the seed's figures\n"
    );

    let cold = pass(&cache, &paths, frames, &config, "cold pass").await?;
    let warm = pass(&cache, &paths, frames, &config, "warm pass").await?;
    let complete = {
        let mut n = 0;
        for p in &paths {
            n += usize::from(
                cache
                    .get_all_artifacts(p, &config)
                    .await?
                    .is_complete(&config),
            );
        }
        n
    };

    // Per stage, what the demo's own artifacts take after dedup (not the whole store's).
    let mut footprints = Vec::with_capacity(ArtifactKind::ALL.len());
    let mut all_keys = Vec::new();
    for kind in ArtifactKind::ALL {
        let mut keys = Vec::with_capacity(paths.len());
        for p in &paths {
            if let Some(key) = config.key(&cache.fingerprint(p).await?, kind)? {
                keys.push(key.to_string());
            }
        }
        all_keys.extend(keys.iter().cloned());
        footprints.push(store.footprint(keys).await?);
    }

    print_stage_table(&cold, &warm, &footprints, videos);
    let simulated: f64 = cold.iter().map(|t| t.simulated_s).sum();
    let warm_total: f64 = warm.iter().map(|t| t.cache_time.as_secs_f64()).sum();
    println!(
        "\nsecond run: {:.1} ms for all {videos} videos (vs {simulated:.0} s SIMULATED compute on the first); {complete}/{videos} videos complete",
        warm_total * 1e3
    );
    let demo = store.footprint(all_keys).await?;
    println!(
        "demo artifacts: logical {:.1} MB, unique {:.1} MB after dedup ({:.2}x)",
        demo.logical_bytes as f64 / 1e6,
        demo.unique_bytes as f64 / 1e6,
        demo.dedup_ratio
    );
    let s = store.stats().await?;
    println!(
        "whole store: {} artifacts, logical {:.1} MB, unique {:.1} MB, stored {:.1} MB on disk in {} chunk file(s); dedup {:.2}x, compression {:.2}x",
        s.artifacts,
        s.logical_bytes as f64 / 1e6,
        s.unique_bytes as f64 / 1e6,
        s.stored_bytes as f64 / 1e6,
        s.chunk_files,
        s.dedup_ratio,
        s.compression_ratio
    );
    ensure!(
        warm.iter().all(|t| t.misses == 0),
        "the warm pass missed: the cache lost artifacts"
    );
    if !keep {
        for p in &paths {
            cache.invalidate(p).await?;
        }
        // Give their bytes back too: without compaction they stay as dead bytes in the
        // chunk file they were written to.
        let compacted = store.compact().await?;
        println!(
            "(demo artifacts removed from the store, {:.1} MB of chunk files reclaimed; pass --keep to keep them)",
            compacted.bytes_removed as f64 / 1e6
        );
    }
    let _ = std::fs::remove_dir_all(&dir);
    Ok(())
}

/// One row per stage: the cold and warm passes' hits, misses and times, and the dedup of
/// the demo's artifacts.
fn print_stage_table(
    cold: &[StageTally],
    warm: &[StageTally],
    footprints: &[pipecache::Footprint],
    videos: usize,
) {
    println!(
        "{:<13} {:>24} {:>18} {:>33} {:>7}",
        "", "------ cold pass -------", "", "---------- warm pass ------------", ""
    );
    println!(
        "{:<13} {:>5} {:>6} {:>11} {:>18} {:>5} {:>6} {:>9} {:>10} {:>7}",
        "stage",
        "hits",
        "misses",
        "time",
        "compute SIMULATED",
        "hits",
        "misses",
        "time",
        "per video",
        "dedup"
    );
    for (i, kind) in ArtifactKind::ALL.iter().enumerate() {
        let (c, w) = (cold[i], warm[i]);
        println!(
            "{:<13} {:>5} {:>6} {:>9.1}ms {:>17.0}s {:>5} {:>6} {:>7.1}ms {:>8.2}ms {:>6.2}x",
            kind.as_str(),
            c.hits,
            c.misses,
            c.cache_time.as_secs_f64() * 1e3,
            c.simulated_s,
            w.hits,
            w.misses,
            w.cache_time.as_secs_f64() * 1e3,
            w.cache_time.as_secs_f64() * 1e3 / videos as f64,
            footprints[i].dedup_ratio,
        );
    }
}
