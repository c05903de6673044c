//! The pipeline layer's hot read: one 50 KB `get_transcript` hit, timed call by call, p50 and
//! p99, on a fresh store with stat fingerprints, opened as the Python package opens it
//! (`Cache::open` with the default configuration: the 256 MiB memory tier in front of the
//! store, the pipeline's key classifier). The Python package's benchmark
//! (`crates/pipecache-python/benches/python_vs_diskcache.py`) times the same call from
//! Python; the gap between the two is what crossing into Python costs (and building Python
//! objects instead of Rust ones). A second row reads the store alone (no memory tier), as
//! this bench did before the sixteenth session. Prints markdown rows and writes them to
//! `target/pipecache-bench/pipeline.md`.

use std::path::Path;
use std::time::{Duration, Instant};

use pipecache::{Cache, CacheConfig, StoreOptions};
use pipecache_pipeline::{FingerprintMode, PipelineArtifactCache, Transcript, TranscriptSegment};
use pipecache_test_support::bench::{percentiles, target_dir, write_report};

const CALLS: usize = 5_000;
const WARMUP: usize = 500;

/// A transcript whose stored (CBOR) form is about `bytes` long, in segments as Whisper
/// gives them.
fn transcript(bytes: usize) -> Transcript {
    let mut t = Transcript {
        text: String::new(),
        language: "en".into(),
        model: "base".into(),
        segments: Vec::new(),
    };
    let mut i = 0u64;
    while cbor_len(&t) < bytes {
        for _ in 0..10 {
            let text = format!("segment {i}: the speaker explains the next slide in some detail");
            t.text.push_str(&text);
            t.segments.push(TranscriptSegment {
                start_ms: i * 1500,
                end_ms: i * 1500 + 1400,
                text,
            });
            i += 1;
        }
    }
    t
}

fn cbor_len(t: &Transcript) -> usize {
    let mut out = Vec::new();
    ciborium::into_writer(t, &mut out).expect("CBOR into a Vec");
    out.len()
}

/// Mean time of `n` runs of `f`.
async fn mean<F: std::future::Future>(n: u32, mut f: impl FnMut() -> F) -> Duration {
    let start = Instant::now();
    for _ in 0..n {
        f().await;
    }
    start.elapsed() / n
}

/// p50 and p99 of `get_transcript` hits through `cache`, each call timed alone after a
/// warm-up; every hit is checked for its `segments` segments.
async fn time_gets(
    cache: &PipelineArtifactCache,
    video: &Path,
    segments: usize,
) -> (Duration, Duration) {
    let mut times = Vec::with_capacity(CALLS);
    for i in 0..WARMUP + CALLS {
        let start = Instant::now();
        let hit = cache
            .get_transcript(video, "base", "en")
            .await
            .expect("get");
        let took = start.elapsed();
        assert!(hit.is_some_and(|h| h.segments.len() == segments));
        if i >= WARMUP {
            times.push(took);
        }
    }
    let [p50, p99] = percentiles(&mut times, [0.5, 0.99]);
    (p50, p99)
}

fn main() {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let dir = tempfile::tempdir().expect("temp dir");
    let video = dir.path().join("talk.mp4");
    std::fs::write(&video, vec![7u8; 1 << 20]).expect("write video");
    let (p50, p99, store_p50, store_p99, breakdown) = rt.block_on(async {
        let options = StoreOptions {
            key_classifier: Some(pipecache_pipeline::key_classifier()),
            ..StoreOptions::default()
        };
        let opened = Cache::open(
            &CacheConfig::default(),
            &dir.path().join("store"),
            options,
            "bench",
        )
        .await
        .expect("open store");
        let store = opened.manager().expect("in process").local().clone();
        let cache = PipelineArtifactCache::new(opened.clone(), FingerprintMode::Stat);
        let t = transcript(50_000);
        cache
            .set_transcript(Path::new(&video), &t, "base", "en")
            .await
            .expect("set");
        let (p50, p99) = time_gets(&cache, &video, t.segments.len()).await;
        let store_only = PipelineArtifactCache::new(store.clone(), FingerprintMode::Stat);
        let (store_p50, store_p99) = time_gets(&store_only, &video, t.segments.len()).await;
        // Where the time goes: the fingerprint (a stat), the store read (index, chunk read,
        // blake3, zstd), the CBOR decode.
        let key = pipecache_pipeline::TranscriptConfig {
            model_size: "base".into(),
            language: "en".into(),
        }
        .key(&cache.fingerprint(&video).await.expect("fingerprint"))
        .expect("key")
        .to_string();
        let fingerprint = mean(1000, || cache.fingerprint(&video)).await;
        let read = mean(1000, || opened.get_shared(&key)).await;
        let read_store = mean(1000, || store.get(&key)).await;
        let part = store.get(&key).await.expect("get").expect("hit").parts[0]
            .data
            .clone();
        let decode = mean(1000, || async {
            let _: Transcript = ciborium::from_reader(part.as_slice()).expect("decode");
        })
        .await;
        let breakdown = (fingerprint, read, read_store, decode, part.len());
        opened.close().await.expect("close");
        (p50, p99, store_p50, store_p99, breakdown)
    });
    let us = |d: Duration| d.as_secs_f64() * 1e6;
    let (fingerprint, read, read_store, decode, len) = breakdown;
    let row = format!(
        "| Rust `get_transcript`, {} KB hit (memory tier, as Python opens it) | {:.1} µs | {:.1} µs |\n\
         | of which: fingerprint (mean) | {:.1} µs | |\n\
         | of which: read, a memory-tier hit (mean) | {:.1} µs | |\n\
         | of which: CBOR decode into Rust (mean) | {:.1} µs | |\n\
         | Rust `get_transcript` from the store alone (no memory tier) | {:.1} µs | {:.1} µs |\n\
         | of which: store read (mean) | {:.1} µs | |\n",
        len / 1000,
        us(p50),
        us(p99),
        us(fingerprint),
        us(read),
        us(decode),
        us(store_p50),
        us(store_p99),
        us(read_store),
    );
    println!("| call | p50 | p99 |\n|---|---|---|\n{row}");
    write_report(&target_dir(), "pipeline.md", &row);
}
