//! The pipeline layer's behaviours, one per module, in one test binary: keys, fingerprints,
//! typed artifacts and codecs, segments, the pipeline on one, two and three tiers, and the
//! video-kind costs in a size-budget GC.

mod eviction_policy;
mod pipeline_artifacts;
mod pipeline_bad_artifact;
mod pipeline_codecs;
mod pipeline_fingerprint;
mod pipeline_fingerprint_memo;
mod pipeline_invalidate_remote;
mod pipeline_keys;
mod pipeline_object_video;
mod pipeline_segments;
mod pipeline_three_tiers;
mod pipeline_tiered;
