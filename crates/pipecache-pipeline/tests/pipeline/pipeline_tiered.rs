//! The same pipeline code on two tiers: machine A computes and stores a transcript (S3
//! write-through), machine B with its own local tier gets it from S3 and `get_all_artifacts`
//! counts it as cached.

use pipecache_pipeline::{FingerprintMode, PipelineArtifactCache, PipelineConfig};
use pipecache_test_support::pipeline::{fake_video, one_segment_transcript};
use pipecache_test_support::servers::S3Server;
use pipecache_test_support::tiers::open_s3_reader;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_transcript_computed_on_one_machine_is_a_hit_on_another() {
    let s3 = S3Server::start();
    let work = tempfile::tempdir().unwrap();
    let video = fake_video(work.path(), "talk.mp4", 1, 100_000);
    let transcript = one_segment_transcript("hello world", 1200);

    let (_da, a) = open_s3_reader(&s3).await;
    let cache_a = PipelineArtifactCache::new(a, FingerprintMode::Content);
    cache_a
        .set_transcript(&video, &transcript, "base", "en")
        .await
        .unwrap();

    let (_db, b) = open_s3_reader(&s3).await;
    let cache_b = PipelineArtifactCache::new(b, FingerprintMode::Content);
    assert_eq!(
        cache_b.get_transcript(&video, "base", "en").await.unwrap(),
        Some(transcript)
    );
    let s3_tier = &cache_b.manager().unwrap().tier_stats()[1];
    assert_eq!(s3_tier.hits, 1, "{s3_tier:?}");
    let transcript_only = PipelineConfig {
        transcript: PipelineConfig::full().transcript,
        ..PipelineConfig::default()
    };
    let all = cache_b
        .get_all_artifacts(&video, &transcript_only)
        .await
        .unwrap();
    assert!(all.is_complete(&transcript_only), "{all:?}");
    assert!(!all.is_complete(&PipelineConfig::full()));
}
