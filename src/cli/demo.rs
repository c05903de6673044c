//! `pipecache demo`: synthetic pipeline output through the store, cold then warm.
//!
//! Frames are pseudo-random bytes (incompressible, like JPEG); the first and last few frames of
//! every video are shared (intro and outro), so dedup shows. Transcripts are JSON (compressible).
//! Nothing here calls a real model: the "compute" is generating bytes, and the output says so.

use std::time::{Duration, Instant};

use anyhow::{Result, ensure};
use pipecache::{Artifact, Store};

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

fn frame(video: usize, index: usize, frames: usize) -> Vec<u8> {
    let shared = index < SHARED_FRAMES || index + SHARED_FRAMES >= frames;
    let seed = if shared {
        (index as u64) << 32
    } else {
        ((video as u64 + 1) << 32) | index as u64
    };
    pseudo_random(seed ^ 0xF00D, 20_000 + (seed as usize % 20_000))
}

fn transcript(video: usize) -> Vec<u8> {
    let segments: Vec<String> = (0..200)
        .map(|i| format!(r#"{{"start":{:.1},"end":{:.1},"text":"video {video} segment {i} says something"}}"#, i as f64 * 2.5, i as f64 * 2.5 + 2.4))
        .collect();
    format!(
        r#"{{"language":"en","model":"whisper-base","segments":[{}]}}"#,
        segments.join(",")
    )
    .into_bytes()
}

fn keyframes(video: usize, frames: usize) -> Artifact {
    let mut a = Artifact::default().with_kind("keyframes");
    for i in 0..frames {
        a = a.with_part(format!("frame_{i:05}.jpg"), frame(video, i, frames));
    }
    a
}

fn mb(bytes: u64) -> f64 {
    bytes as f64 / 1e6
}

pub async fn run(store: &Store, videos: usize, frames: usize) -> Result<()> {
    ensure!(
        videos > 0 && frames > 0,
        "--videos and --frames must be positive"
    );
    println!("pipecache demo: {videos} synthetic videos x {frames} keyframes + 1 transcript each");
    println!(
        "(pipeline stages are simulated: the cold pass generates bytes instead of running models)"
    );
    println!("store: {}", store.dir().display());

    let t0 = Instant::now();
    let mut logical = 0u64;
    for v in 0..videos {
        let kf = keyframes(v, frames);
        logical += kf.logical_size();
        store
            .put(
                &format!("demo:video{v:04}:keyframes:max_frames={frames}"),
                kf,
            )
            .await?;
        let tr = Artifact::single(transcript(v)).with_kind("transcript");
        logical += tr.logical_size();
        store
            .put(&format!("demo:video{v:04}:transcript:model=base"), tr)
            .await?;
    }
    let cold = t0.elapsed();

    let t1 = Instant::now();
    let mut latencies: Vec<Duration> = Vec::with_capacity(videos * 2);
    let mut read = 0u64;
    for v in 0..videos {
        for key in [
            format!("demo:video{v:04}:keyframes:max_frames={frames}"),
            format!("demo:video{v:04}:transcript:model=base"),
        ] {
            let t = Instant::now();
            let a = store.get(&key).await?;
            latencies.push(t.elapsed());
            let a =
                a.ok_or_else(|| anyhow::anyhow!("demo artifact {key} missing right after put"))?;
            read += a.logical_size();
        }
    }
    let warm = t1.elapsed();
    latencies.sort();
    let p50 = latencies[latencies.len() / 2];
    let p99 = latencies[(latencies.len() * 99 / 100).min(latencies.len() - 1)];
    ensure!(read == logical, "read back {read} bytes, wrote {logical}");

    let s = store.stats().await?;
    println!();
    println!(
        "cold pass (generate + put): {:>8.1} ms  {:>8.1} MB/s",
        cold.as_secs_f64() * 1e3,
        mb(logical) / cold.as_secs_f64()
    );
    println!(
        "warm pass (get, verified):  {:>8.1} ms  {:>8.1} MB/s",
        warm.as_secs_f64() * 1e3,
        mb(read) / warm.as_secs_f64()
    );
    println!(
        "warm get latency per artifact: p50 {:.2} ms, p99 {:.2} ms",
        p50.as_secs_f64() * 1e3,
        p99.as_secs_f64() * 1e3
    );
    println!("hits {} misses {}", s.counters.hits, s.counters.misses);
    println!(
        "store: {} artifacts, logical {:.1} MB, unique {:.1} MB, stored {:.1} MB, {} chunk file(s), dedup {:.2}x, compression {:.2}x",
        s.artifacts,
        mb(s.logical_bytes),
        mb(s.unique_bytes),
        mb(s.stored_bytes),
        s.chunk_files,
        s.dedup_ratio,
        s.compression_ratio
    );
    Ok(())
}
