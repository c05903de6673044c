//! Each artifact kind chooses its codec: keyframe images are stored raw even when they would
//! compress (JPEG does not, and the trial would be wasted), transcripts are LZ4'd (every
//! later stage reads them, and LZ4 decodes several times faster than zstd); a store
//! configured with compression off keeps it off even for a kind whose own policy asks for
//! LZ4 (transcripts; the store's setting is applied to every kind's policy alike).

use pipecache::{BlobHash, CompressionPolicy};
use pipecache_pipeline::{FrameInfo, TypedArtifact};
use pipecache_test_support::pipeline::{LocalPipeline, one_segment_transcript};
use pipecache_test_support::{blob_codecs, json_like};

#[tokio::test]
async fn codec_follows_the_artifact_kind() {
    let p = LocalPipeline::new().await;
    let (cache, ts) = (&p.cache, &p.store);
    // The store's own default would compress everything that shrinks.
    assert_eq!(
        ts.store().options().compression,
        CompressionPolicy::default()
    );
    let video = p.video("v.mp4", 1, 4096);

    let frame = FrameInfo {
        index: 0,
        timestamp_ms: 0,
        score: 1.0,
        width: 8,
        height: 8,
        format: "jpeg".into(),
    };
    let compressible_image = vec![0u8; 200_000];
    let image_hash = BlobHash::of(&compressible_image);
    cache
        .set_keyframes(&video, vec![frame], vec![compressible_image], 0.9, 10)
        .await
        .unwrap();
    let s = cache.store().unwrap().stats().await.unwrap();
    assert_eq!(
        s.stored_bytes, s.unique_bytes,
        "keyframe parts are stored raw"
    );

    let t = put_compressible_transcript(cache, &video).await;
    let after = cache.store().unwrap().stats().await.unwrap();
    let transcript_raw = after.unique_bytes - s.unique_bytes;
    let transcript_stored = after.stored_bytes - s.stored_bytes;
    assert!(
        transcript_stored * 3 < transcript_raw * 2,
        "transcript compressed: {transcript_stored} of {transcript_raw}"
    );
    let codecs = blob_codecs(ts.path());
    let transcript_part = &t.to_artifact().unwrap().parts[0].data;
    assert_eq!(codecs[&BlobHash::of(transcript_part)], "lz4");
    assert_eq!(codecs[&image_hash], "raw");
    assert_eq!(
        cache.get_transcript(&video, "base", "en").await.unwrap(),
        Some(t)
    );
}

#[tokio::test]
async fn a_store_with_compression_off_never_compresses() {
    let p = LocalPipeline::with_options(pipecache::StoreOptions {
        gc_interval: None,
        compression: CompressionPolicy {
            enabled: false,
            ..CompressionPolicy::default()
        },
        ..pipecache::StoreOptions::default()
    })
    .await;
    let (cache, video) = (&p.cache, p.video("v.mp4", 1, 4096));
    // The transcript kind's own policy asks for zstd; the store's setting wins.
    let t = put_compressible_transcript(cache, &video).await;
    let s = p.store.store().stats().await.unwrap();
    assert_eq!(s.stored_bytes, s.unique_bytes, "stored raw: {s:?}");
    assert_eq!(
        cache.get_transcript(&video, "base", "en").await.unwrap(),
        Some(t)
    );
}

/// Stores a 200 KB JSON-like transcript for `video` (model base, en) and returns it.
async fn put_compressible_transcript(
    cache: &pipecache_pipeline::PipelineArtifactCache,
    video: &std::path::Path,
) -> pipecache_pipeline::Transcript {
    let text = String::from_utf8(json_like(3, 200_000)).unwrap();
    let t = one_segment_transcript(&text, 1);
    cache.set_transcript(video, &t, "base", "en").await.unwrap();
    t
}
