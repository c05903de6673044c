//! Videos in a bucket (`s3://bucket/key`), against a real S3-protocol server: fingerprinted
//! from the object's metadata with one stat, so artifacts hit while the object is unchanged
//! and miss once it is rewritten; content fingerprints follow the bytes, not the name; a
//! missing object is a clear video error.

use std::path::Path;

use pipecache_pipeline::{
    FingerprintMode, PipelineArtifactCache, PipelineError, S3Access, Transcript,
};
use pipecache_test_support::TempStore;
use pipecache_test_support::servers::{S3_ACCESS_KEY, S3_REGION, S3_SECRET_KEY, S3Server};

fn access(s3: &S3Server) -> S3Access {
    S3Access::new(
        Some(s3.endpoint()),
        S3_REGION,
        Some(S3_ACCESS_KEY.into()),
        Some(S3_SECRET_KEY.into()),
    )
}

fn transcript(text: &str) -> Transcript {
    Transcript {
        text: text.into(),
        language: "en".into(),
        model: "base".into(),
        segments: vec![],
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn object_videos_hit_until_rewritten() {
    let s3 = S3Server::start();
    let bucket = s3.raw_store(); // the bucket under the prefix `cache`
    let store = TempStore::new(Default::default()).await;
    let stat = PipelineArtifactCache::new(store.store().clone(), FingerprintMode::Stat)
        .with_s3_access(access(&s3));
    let content = PipelineArtifactCache::new(store.store().clone(), FingerprintMode::Content)
        .with_s3_access(access(&s3));
    let uri = format!("s3://{}/cache/videos/talk.mp4", s3.bucket());
    let video = Path::new(&uri);

    bucket
        .put("videos/talk.mp4", vec![1u8; 4096])
        .await
        .unwrap();
    let fp = stat.fingerprint(video).await.unwrap();
    assert!(fp.as_str().starts_with("s1-"), "{fp}");
    assert_eq!(
        stat.fingerprint(video).await.unwrap(),
        fp,
        "stable while unchanged"
    );

    stat.set_transcript(video, &transcript("v1"), "base", "en")
        .await
        .unwrap();
    assert_eq!(
        stat.get_transcript(video, "base", "en").await.unwrap(),
        Some(transcript("v1"))
    );

    // The same bytes under another name: the same content fingerprint, another stat one.
    bucket
        .put("videos/copy.mp4", vec![1u8; 4096])
        .await
        .unwrap();
    let copy_uri = format!("s3://{}/cache/videos/copy.mp4", s3.bucket());
    let copy = Path::new(&copy_uri);
    assert_eq!(
        content.fingerprint(video).await.unwrap(),
        content.fingerprint(copy).await.unwrap()
    );
    assert_ne!(stat.fingerprint(copy).await.unwrap(), fp);

    // Rewritten in its bucket: new fingerprints, so the old transcript is not returned.
    let content_before = content.fingerprint(video).await.unwrap();
    bucket
        .put("videos/talk.mp4", vec![2u8; 4096])
        .await
        .unwrap();
    assert_ne!(stat.fingerprint(video).await.unwrap(), fp);
    assert_ne!(content.fingerprint(video).await.unwrap(), content_before);
    assert_eq!(
        stat.get_transcript(video, "base", "en").await.unwrap(),
        None
    );

    let missing_uri = format!("s3://{}/cache/videos/none.mp4", s3.bucket());
    match stat.fingerprint(Path::new(&missing_uri)).await {
        Err(PipelineError::Video { reason, .. }) => {
            assert!(reason.contains("no such object"), "{reason}")
        }
        other => panic!("expected a video error, got {other:?}"),
    }
}
