//! The same pipeline code runs on one tier or three: `run_pipeline` is called unchanged over a
//! local-only manager and over local + Redis + S3, where machine B then finds everything
//! machine A computed (the small artifacts in Redis, the keyframes, too large for Redis, in
//! S3), then reads it all from its own local tier once promoted.

use std::path::Path;
use std::time::Duration;

use pipecache::tier::{BackendKind, RedisTier, WritePolicy};
use pipecache_pipeline::{
    ArtifactKind, FingerprintMode, PipelineArtifactCache, PipelineArtifacts, PipelineConfig,
    TypedArtifact,
};
use pipecache_test_support::pipeline::{StageOutputs, fake_video, stage_outputs};
use pipecache_test_support::servers::{RedisServer, S3Server};
use pipecache_test_support::tiers::{open_temp_manager, redis_backend, s3_backend, with_priority};

// Sizes of the stand-in outputs: 24 keyframes of 12 KB are over the test Redis tier's 64 KiB
// limit; the transcript, descriptions and embeddings are each under it (checked below).
/// Keyframes per video.
const FRAMES: u32 = 24;
/// Bytes per keyframe image.
const FRAME_LEN: usize = 12_000;
/// Bytes of transcript text.
const TRANSCRIPT_LEN: usize = 12_000;

/// Tier indexes of the three-tier manager, fastest first.
const LOCAL: usize = 0;
const REDIS: usize = 1;
const S3: usize = 2;

/// What one run of the pipeline did for a video.
#[derive(Debug)]
struct Run {
    /// What the cache held for the video when the run started.
    found: PipelineArtifacts,
    /// Stages that were not cached, which this run computed and stored.
    computed: Vec<ArtifactKind>,
}

/// The pipeline: asks the cache for every stage of `config`, computes what is missing
/// (`outputs` stands in for the models) and stores it, then waits until every remote tier
/// has it. Nothing here knows which tiers are behind `cache`.
async fn run_pipeline(
    cache: &PipelineArtifactCache,
    video: &Path,
    config: &PipelineConfig,
    outputs: &StageOutputs,
) -> Run {
    let found = cache.get_all_artifacts(video, config).await.unwrap();
    let computed = found.missing(config);
    let stage = "missing() only names configured stages";
    for kind in &computed {
        match kind {
            ArtifactKind::Keyframes => {
                let c = config.keyframes.as_ref().expect(stage);
                let kf = &outputs.keyframes;
                cache
                    .set_keyframes(
                        video,
                        kf.frames.clone(),
                        kf.images.clone(),
                        c.threshold,
                        c.max_frames,
                    )
                    .await
            }
            ArtifactKind::Transcript => {
                let c = config.transcript.as_ref().expect(stage);
                cache
                    .set_transcript(video, &outputs.transcript, &c.model_size, &c.language)
                    .await
            }
            ArtifactKind::Descriptions => {
                let c = config.descriptions.as_ref().expect(stage);
                cache
                    .set_descriptions(video, &outputs.descriptions, &c.model, c.batch_size)
                    .await
            }
            ArtifactKind::Embeddings => {
                let c = config.embeddings.as_ref().expect(stage);
                cache
                    .set_embeddings(video, &outputs.embeddings, &c.model)
                    .await
            }
        }
        .unwrap_or_else(|e| panic!("storing {kind}: {e}"));
    }
    cache
        .manager()
        .unwrap()
        .drain_queues(Duration::from_secs(60))
        .await
        .unwrap();
    Run { found, computed }
}

fn tier_kinds(cache: &PipelineArtifactCache) -> Vec<BackendKind> {
    cache
        .manager()
        .unwrap()
        .tier_stats()
        .iter()
        .map(|t| t.kind)
        .collect()
}

fn logical_size<T: TypedArtifact>(value: &T) -> u64 {
    value.to_artifact().unwrap().logical_size()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_pipeline_runs_on_a_local_tier_alone() {
    let work = tempfile::tempdir().unwrap();
    let video = fake_video(work.path(), "talk.mp4", 1, 100_000);
    let config = PipelineConfig::full();
    let outputs = stage_outputs(1, FRAMES, FRAME_LEN, TRANSCRIPT_LEN);
    let (_dir, m) = open_temp_manager(vec![], None).await;
    let cache = PipelineArtifactCache::new(m, FingerprintMode::Content);
    assert_eq!(tier_kinds(&cache), [BackendKind::Local]);

    let first = run_pipeline(&cache, &video, &config, &outputs).await;
    assert_eq!(first.computed, config.kinds());
    assert_eq!(first.found, PipelineArtifacts::default());

    let second = run_pipeline(&cache, &video, &config, &outputs).await;
    assert!(
        second.computed.is_empty(),
        "recomputed {:?}",
        second.computed
    );
    assert!(second.found.is_complete(&config), "{:?}", second.found);
    assert!(
        second.found == outputs.artifacts(),
        "read back different artifacts"
    );
    let local = &cache.manager().unwrap().tier_stats()[LOCAL];
    assert_eq!((local.misses, local.hits), (4, 4), "{local:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_pipeline_runs_on_local_redis_and_s3_across_two_machines() {
    let s3 = S3Server::start();
    let redis = RedisServer::start();
    let backends = || {
        vec![
            redis_backend(&redis.url(), WritePolicy::WriteThrough),
            with_priority(
                s3_backend(&s3.endpoint(), s3.bucket(), WritePolicy::WriteThrough),
                2,
            ),
        ]
    };
    let work = tempfile::tempdir().unwrap();
    let video = fake_video(work.path(), "talk.mp4", 1, 100_000);
    let config = PipelineConfig::full();
    let outputs = stage_outputs(1, FRAMES, FRAME_LEN, TRANSCRIPT_LEN);

    // Machine A computes every stage; write-through puts reach Redis and S3.
    let (_dir_a, a) = open_temp_manager(backends(), None).await;
    let a = PipelineArtifactCache::new(a, FingerprintMode::Content);
    assert_eq!(
        tier_kinds(&a),
        [BackendKind::Local, BackendKind::Redis, BackendKind::S3]
    );
    // The premise: keyframes are over Redis's max_object_size, the other stages under it.
    let max = a.manager().unwrap().tier_stats()[REDIS]
        .capabilities
        .max_object_size
        .expect("the Redis tier has a size limit");
    let keyframes_size = logical_size(&outputs.keyframes);
    let small_sizes = [
        logical_size(&outputs.transcript),
        logical_size(&outputs.descriptions),
        logical_size(&outputs.embeddings),
    ];
    assert!(keyframes_size > max, "{keyframes_size} fits in {max}");
    assert!(
        small_sizes.iter().all(|s| *s <= max),
        "{small_sizes:?} > {max}"
    );

    let run_a = run_pipeline(&a, &video, &config, &outputs).await;
    assert_eq!(run_a.computed, config.kinds());
    let sa = a.manager().unwrap().tier_stats();
    for t in &sa[REDIS..] {
        assert_eq!(
            (t.errors, t.timeouts, t.corrupt, t.deferred, t.queue_length),
            (0, 0, 0, 0, 0),
            "{t:?}"
        );
    }
    assert_eq!(
        (sa[REDIS].puts, sa[REDIS].skipped_too_large),
        (3, 1),
        "{:?}",
        sa[REDIS]
    );
    assert_eq!(
        (sa[S3].puts, sa[S3].skipped_too_large),
        (4, 0),
        "{:?}",
        sa[S3]
    );

    // Transfer counters count the bytes on the wire: what each tier stores after its own
    // compression and framing, not the artifacts' logical size. For Redis that is exactly
    // the three values written; for S3 exactly the packs, indexes and records in the bucket.
    let fp = a.fingerprint(&video).await.unwrap();
    let key = |kind| {
        config
            .key(&fp, kind)
            .unwrap()
            .expect("a configured stage")
            .to_string()
    };
    let raw_redis = redis.raw_store();
    let mut redis_values = 0u64;
    for kind in [
        ArtifactKind::Transcript,
        ArtifactKind::Descriptions,
        ArtifactKind::Embeddings,
    ] {
        let value = raw_redis
            .get(&RedisTier::object_name(&key(kind)))
            .await
            .unwrap()
            .unwrap_or_else(|| panic!("{kind} is not in Redis"));
        redis_values += value.len() as u64;
    }
    let keyframes_in_redis = raw_redis
        .get(&RedisTier::object_name(&key(ArtifactKind::Keyframes)))
        .await
        .unwrap();
    assert!(
        keyframes_in_redis.is_none(),
        "keyframes were written to Redis"
    );
    assert_eq!(sa[REDIS].bytes_up, redis_values, "{:?}", sa[REDIS]);
    // Transcript and descriptions are text, compressed on the way: less than logical.
    assert!(
        sa[REDIS].bytes_up < small_sizes.iter().sum::<u64>(),
        "{:?} vs logical {small_sizes:?}",
        sa[REDIS]
    );
    let bucket: u64 = s3
        .raw_store()
        .list("")
        .await
        .unwrap()
        .iter()
        .map(|o| o.size)
        .sum();
    assert_eq!(sa[S3].bytes_up, bucket, "{:?}", sa[S3]);
    // Keyframe images do not compress: every byte of them went up.
    let image_bytes = u64::from(FRAMES) * FRAME_LEN as u64;
    assert!(sa[S3].bytes_up > image_bytes, "{:?}", sa[S3]);

    // Machine B: its own empty local tier, the same Redis and bucket, the same code.
    let (_dir_b, b) = open_temp_manager(backends(), None).await;
    let b = PipelineArtifactCache::new(b, FingerprintMode::Content);
    let run_b = run_pipeline(&b, &video, &config, &outputs).await;
    assert!(
        run_b.computed.is_empty(),
        "B recomputed {:?}",
        run_b.computed
    );
    assert!(run_b.found.is_complete(&config), "{:?}", run_b.found);
    assert!(
        run_b.found == outputs.artifacts(),
        "B read back different artifacts"
    );
    let sb = b.manager().unwrap().tier_stats();
    for t in &sb[REDIS..] {
        assert_eq!((t.errors, t.timeouts, t.corrupt), (0, 0, 0), "{t:?}");
    }
    assert_eq!(
        (sb[LOCAL].misses, sb[LOCAL].hits),
        (4, 0),
        "{:?}",
        sb[LOCAL]
    );
    // The three small artifacts were Redis hits; only the keyframes reached S3.
    assert_eq!(
        (sb[REDIS].hits, sb[REDIS].misses),
        (3, 1),
        "{:?}",
        sb[REDIS]
    );
    assert_eq!((sb[S3].hits, sb[S3].misses), (1, 0), "{:?}", sb[S3]);

    b.manager().unwrap().wait_promotions().await;
    let sb = b.manager().unwrap().tier_stats();
    // Everything lands in B's local tier; the keyframes are again too large for Redis.
    assert_eq!(sb[LOCAL].promotions, 4, "{:?}", sb[LOCAL]);
    assert_eq!(
        (sb[REDIS].promotions, sb[REDIS].skipped_too_large),
        (0, 1),
        "{:?}",
        sb[REDIS]
    );
    for kind in config.kinds() {
        assert!(
            b.store().unwrap().contains(&key(kind)).await.unwrap(),
            "{kind}"
        );
    }
    // B downloaded exactly the three Redis values, and at least the keyframe images from
    // S3; it uploaded nothing.
    assert_eq!(sb[REDIS].bytes_down, redis_values, "{:?}", sb[REDIS]);
    assert!(sb[S3].bytes_down > image_bytes, "{:?}", sb[S3]);
    assert_eq!((sb[REDIS].bytes_up, sb[S3].bytes_up), (0, 0), "{sb:?}");

    // Second run on B: the local tier answers every stage; no remote tier is asked.
    let again = run_pipeline(&b, &video, &config, &outputs).await;
    assert!(
        again.computed.is_empty(),
        "B recomputed {:?}",
        again.computed
    );
    assert!(
        again.found == outputs.artifacts(),
        "B's local copies differ"
    );
    let sb2 = b.manager().unwrap().tier_stats();
    assert_eq!(
        (sb2[LOCAL].hits, sb2[LOCAL].misses),
        (4, 4),
        "{:?}",
        sb2[LOCAL]
    );
    for t in [REDIS, S3] {
        assert_eq!(
            (sb2[t].hits, sb2[t].misses, sb2[t].bytes_down),
            (sb[t].hits, sb[t].misses, sb[t].bytes_down),
            "{} was asked again: {:?}",
            sb2[t].name,
            sb2[t]
        );
    }
}
