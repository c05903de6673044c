//! Segments of long videos: with [0-60 s] and [120-180 s] cached for a 200 s video, the cache
//! reports [60-120 s] and [180-200 s] missing and assembles the cached ones in order.

use pipecache_pipeline::{ArtifactKey, ArtifactKind, ParamValue, Transcript};
use pipecache_test_support::pipeline::{LocalPipeline, one_segment_transcript};

fn transcript(text: &str) -> Transcript {
    one_segment_transcript(text, 1000)
}

#[tokio::test]
async fn cached_segments_and_gaps() {
    let p = LocalPipeline::new().await;
    let cache = &p.cache;
    let video = p.video("long.mp4", 5, 50_000);
    let fp = cache.fingerprint(&video).await.unwrap();
    let base = ArtifactKey::new(fp, ArtifactKind::Transcript)
        .param("model_size", "base")
        .unwrap()
        .param("language", "en")
        .unwrap();
    // Stored out of order; a segment with other parameters must not count.
    for (s, e, text) in [(120_000, 180_000, "second"), (0, 60_000, "first")] {
        let key = base
            .clone()
            .param("segment", ParamValue::Segment(s, e))
            .unwrap();
        cache.set_typed(&key, &transcript(text)).await.unwrap();
    }
    let other = base
        .clone()
        .param("beam", 5i64)
        .unwrap()
        .param("segment", ParamValue::Segment(60_000, 120_000))
        .unwrap();
    cache
        .set_typed(&other, &transcript("other params"))
        .await
        .unwrap();

    let cov = cache.segment_coverage(&base, 0, 200_000).await.unwrap();
    assert_eq!(cov.cached, vec![(0, 60_000), (120_000, 180_000)]);
    assert_eq!(cov.missing, vec![(60_000, 120_000), (180_000, 200_000)]);
    let parts = cache
        .get_segments::<Transcript>(&base, 0, 200_000)
        .await
        .unwrap();
    let texts: Vec<&str> = parts.iter().map(|(_, t)| t.text.as_str()).collect();
    assert_eq!(texts, ["first", "second"]);

    let cov = cache
        .segment_coverage(&base, 30_000, 130_000)
        .await
        .unwrap();
    assert_eq!(cov.cached, vec![(0, 60_000), (120_000, 180_000)]);
    assert_eq!(cov.missing, vec![(60_000, 120_000)]);
    assert!(cache.segment_coverage(&base, 10, 10).await.is_err());
}
