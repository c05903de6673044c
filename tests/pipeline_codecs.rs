//! Each artifact kind chooses its codec: keyframe images are stored raw even when they would
//! compress (JPEG does not, and the trial would be wasted), transcripts are zstd'd.

use pipecache::{CompressionPolicy, StoreOptions};
use pipecache_pipeline::{
    FingerprintMode, FrameInfo, PipelineArtifactCache, Transcript, TranscriptSegment,
};
use pipecache_test_support::{TempStore, json_like, random_bytes};

#[tokio::test]
async fn codec_follows_the_artifact_kind() {
    // The store's own default would compress everything that shrinks.
    let ts = TempStore::new(StoreOptions {
        gc_interval: None,
        compression: CompressionPolicy::default(),
        ..StoreOptions::default()
    })
    .await;
    let cache = PipelineArtifactCache::new(ts.store().clone(), FingerprintMode::Content);
    let dir = tempfile::tempdir().unwrap();
    let video = dir.path().join("v.mp4");
    std::fs::write(&video, random_bytes(1, 4096)).unwrap();

    let frame = FrameInfo {
        index: 0,
        timestamp_ms: 0,
        score: 1.0,
        width: 8,
        height: 8,
        format: "jpeg".into(),
    };
    let compressible_image = vec![0u8; 200_000];
    cache
        .set_keyframes(&video, vec![frame], vec![compressible_image], 0.9, 10)
        .await
        .unwrap();
    let s = cache.store().stats().await.unwrap();
    assert_eq!(
        s.stored_bytes, s.unique_bytes,
        "keyframe parts are stored raw"
    );

    let text = String::from_utf8(json_like(3, 200_000)).unwrap();
    let t = Transcript {
        text: text.clone(),
        language: "en".into(),
        model: "whisper-base".into(),
        segments: vec![TranscriptSegment {
            start_ms: 0,
            end_ms: 1,
            text,
        }],
    };
    cache
        .set_transcript(&video, &t, "base", "en")
        .await
        .unwrap();
    let after = cache.store().stats().await.unwrap();
    let transcript_raw = after.unique_bytes - s.unique_bytes;
    let transcript_stored = after.stored_bytes - s.stored_bytes;
    assert!(
        transcript_stored * 2 < transcript_raw,
        "transcript zstd'd: {transcript_stored} of {transcript_raw}"
    );
    assert_eq!(
        cache.get_transcript(&video, "base", "en").await.unwrap(),
        Some(t)
    );
}
