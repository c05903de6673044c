//! Invalidating a video removes its artifacts from every tier, including remote copies the
//! invalidating machine never read: afterwards no machine gets them through read-through.

use pipecache_pipeline::{FingerprintMode, PipelineArtifactCache, Transcript};
use pipecache_test_support::pipeline::fake_video;
use pipecache_test_support::servers::S3Server;
use pipecache_test_support::tiers::open_s3_reader;

fn transcript(model: &str) -> Transcript {
    Transcript {
        text: format!("said by {model}"),
        language: "en".into(),
        model: model.into(),
        segments: vec![],
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn invalidate_reaches_remote_copies_this_machine_never_read() {
    let s3 = S3Server::start();
    let work = tempfile::tempdir().unwrap();
    let video = fake_video(work.path(), "talk.mp4", 1, 50_000);
    let other = fake_video(work.path(), "other.mp4", 2, 50_000);

    // Machine A computes two transcripts of the video and one of another video (S3 write-through).
    let (_da, a) = open_s3_reader(&s3).await;
    let a = PipelineArtifactCache::new(a, FingerprintMode::Content);
    for model in ["base", "small"] {
        a.set_transcript(&video, &transcript(model), model, "en")
            .await
            .unwrap();
    }
    a.set_transcript(&other, &transcript("base"), "base", "en")
        .await
        .unwrap();

    // Machine B has read nothing, and invalidates the video.
    let (_db, b) = open_s3_reader(&s3).await;
    let b = PipelineArtifactCache::new(b, FingerprintMode::Content);
    assert_eq!(b.invalidate(&video).await.unwrap(), 2);

    // Machine C finds neither transcript of the video, and still the other video's.
    let (_dc, c) = open_s3_reader(&s3).await;
    let c = PipelineArtifactCache::new(c, FingerprintMode::Content);
    for model in ["base", "small"] {
        assert_eq!(c.get_transcript(&video, model, "en").await.unwrap(), None);
    }
    assert_eq!(
        c.get_transcript(&other, "base", "en").await.unwrap(),
        Some(transcript("base"))
    );
}
