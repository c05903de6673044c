//! Bytes under a pipeline key that do not decode as the key's kind are a clear error naming
//! the key and the part, never a panic, a garbage value or an unbounded allocation (a stored
//! embeddings header claiming 2^60 zero-width vectors).

use pipecache::Artifact;
use pipecache_pipeline::{EmbeddingsConfig, PipelineError, TranscriptConfig};
use pipecache_test_support::pipeline::LocalPipeline;

/// CBOR of the embeddings header `{model: "m", dim: 0, count: 2^60}`, written by hand.
fn huge_zero_width_header() -> Vec<u8> {
    let mut out = vec![0xa3, 0x65];
    out.extend_from_slice(b"model");
    out.extend_from_slice(&[0x61, b'm', 0x63]);
    out.extend_from_slice(b"dim");
    out.extend_from_slice(&[0x00, 0x65]);
    out.extend_from_slice(b"count");
    out.push(0x1b);
    out.extend_from_slice(&(1u64 << 60).to_be_bytes());
    out
}

#[tokio::test]
async fn undecodable_artifacts_are_named_errors() {
    let p = LocalPipeline::new().await;
    let (cache, ts) = (&p.cache, &p.store);
    let video = p.video("v.mp4", 3, 4_000);
    let fp = cache.fingerprint(&video).await.unwrap();

    // Junk where a transcript belongs.
    let config = TranscriptConfig {
        model_size: "base".into(),
        language: "en".into(),
    };
    let key = config.key(&fp).unwrap().to_string();
    ts.store()
        .put(&key, Artifact::single(b"junk".to_vec()))
        .await
        .unwrap();
    let err = cache
        .get_transcript(&video, "base", "en")
        .await
        .unwrap_err();
    assert!(matches!(err, PipelineError::BadArtifact { .. }), "{err:?}");
    let text = err.to_string();
    assert!(text.contains(&key) && text.contains("transcript"), "{text}");

    // An embeddings header whose count has no bytes behind it.
    let key = EmbeddingsConfig { model: "m".into() }
        .key(&fp)
        .unwrap()
        .to_string();
    let forged = Artifact::default()
        .with_kind("embeddings")
        .with_part("embeddings.cbor", huge_zero_width_header())
        .with_part("vectors.f32le", Vec::new());
    ts.store().put(&key, forged).await.unwrap();
    let err = cache.get_embeddings(&video, "m").await.unwrap_err();
    assert!(matches!(err, PipelineError::BadArtifact { .. }), "{err:?}");
}
