//! Typed artifacts through the pipeline cache: all four kinds round-trip, embeddings bit-exact
//! (NaN payloads, -0.0), frames shared by two videos are stored once, `get_all_artifacts` tells
//! what is missing, and a changed video (new fingerprint) misses.

use pipecache_pipeline::{
    Embeddings, FrameDescription, FrameDescriptions, FrameInfo, PipelineConfig,
};
use pipecache_test_support::pipeline::{LocalPipeline, one_segment_transcript};
use pipecache_test_support::random_bytes;

fn frames(n: u32) -> Vec<FrameInfo> {
    (0..n)
        .map(|i| FrameInfo {
            index: i * 30,
            timestamp_ms: u64::from(i) * 1000,
            score: 0.5 + i as f32 / 100.0,
            width: 1280,
            height: 720,
            format: "jpeg".into(),
        })
        .collect()
}

#[tokio::test]
async fn typed_artifacts_round_trip_and_share_frames() {
    let p = LocalPipeline::new().await;
    let cache = &p.cache;
    let (va, vb) = (p.video("a.mp4", 1, 10_000), p.video("b.mp4", 2, 10_000));
    let config = PipelineConfig::full();
    let all = cache.get_all_artifacts(&va, &config).await.unwrap();
    assert!(!all.is_complete(&config));
    assert_eq!(all.missing(&config).len(), 4);

    // Both videos share an intro and an outro of 3 frames each; 4 own frames in between.
    let shared: Vec<Vec<u8>> = (0..6).map(|i| random_bytes(100 + i, 30_000)).collect();
    let images = |video: u64| -> Vec<Vec<u8>> {
        let mut v: Vec<Vec<u8>> = shared[..3].to_vec();
        v.extend((0..4).map(|i| random_bytes(video * 1000 + i, 30_000)));
        v.extend(shared[3..].iter().cloned());
        v
    };
    cache
        .set_keyframes(&va, frames(10), images(1), 0.999, 3000)
        .await
        .unwrap();
    cache
        .set_keyframes(&vb, frames(10), images(2), 0.999, 3000)
        .await
        .unwrap();
    let s = cache.store().unwrap().stats().await.unwrap();
    // frames.cbor is identical for both videos too (same metadata): 6 shared + 8 own + 1.
    assert_eq!(s.blobs, 6 + 8 + 1, "shared frames are stored once");
    let kf = cache
        .get_keyframes(&va, 0.999, 3000)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(kf.frames, frames(10));
    assert_eq!(kf.images, images(1));
    assert!(
        cache
            .get_keyframes(&va, 0.99, 3000)
            .await
            .unwrap()
            .is_none(),
        "other threshold, other key"
    );

    let transcript = one_segment_transcript("hello world", 1500);
    cache
        .set_transcript(&va, &transcript, "base", "en")
        .await
        .unwrap();
    assert_eq!(
        cache.get_transcript(&va, "base", "en").await.unwrap(),
        Some(transcript)
    );
    assert!(
        cache
            .get_transcript(&va, "base", "de")
            .await
            .unwrap()
            .is_none()
    );

    let descriptions = FrameDescriptions {
        model: "Qwen2-VL".into(),
        prompt_version: "v3".into(),
        frames: (0..10)
            .map(|i| FrameDescription {
                index: i,
                text: format!("a person walking, frame {i}"),
            })
            .collect(),
    };
    cache
        .set_descriptions(&va, &descriptions, "Qwen2-VL", 8)
        .await
        .unwrap();
    assert_eq!(
        cache.get_descriptions(&va, "Qwen2-VL", 8).await.unwrap(),
        Some(descriptions)
    );

    let odd = [
        f32::from_bits(0x7fc0_1234),
        -0.0,
        f32::INFINITY,
        f32::MIN_POSITIVE / 2.0,
        1.5,
    ];
    let embeddings = Embeddings {
        model: "clip-vit-b32".into(),
        dim: 5,
        vectors: vec![
            odd.to_vec(),
            vec![0.25; 5],
            odd.iter().map(|x| -x).collect(),
        ],
    };
    cache
        .set_embeddings(&va, &embeddings, "clip-vit-b32")
        .await
        .unwrap();
    let back = cache
        .get_embeddings(&va, "clip-vit-b32")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(back, embeddings, "bit-exact");
    assert_eq!(
        back.vectors[0][0].to_bits(),
        0x7fc0_1234,
        "NaN payload kept"
    );
    assert!(back.vectors[0][1].is_sign_negative());

    let all = cache.get_all_artifacts(&va, &config).await.unwrap();
    assert!(
        all.is_complete(&config),
        "missing {:?}",
        all.missing(&config)
    );
    let only_b = cache.get_all_artifacts(&vb, &config).await.unwrap();
    assert_eq!(only_b.missing(&config).len(), 3, "b has keyframes only");

    // The source changes: a new fingerprint, so every artifact is a miss.
    std::fs::write(&va, random_bytes(99, 10_000)).unwrap();
    let all = cache.get_all_artifacts(&va, &config).await.unwrap();
    assert_eq!(
        all.missing(&config).len(),
        4,
        "a changed video gets new keys"
    );

    // Bad input: a vector of the wrong length, mismatched frames and images.
    let bad = Embeddings {
        model: "m".into(),
        dim: 4,
        vectors: vec![vec![1.0; 3]],
    };
    assert!(cache.set_embeddings(&vb, &bad, "m").await.is_err());
    assert!(
        cache
            .set_keyframes(&vb, frames(2), vec![vec![1]], 0.5, 10)
            .await
            .is_err()
    );
    assert!(
        cache.get_keyframes(p.videos_dir(), 0.5, 10).await.is_err(),
        "a directory is not a video"
    );
}
