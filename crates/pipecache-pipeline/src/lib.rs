//! # pipecache-pipeline: videos and pipeline stages on top of the store
//!
//! Owns what ingest services think in: source-video fingerprints ([`Fingerprint`], stat or
//! content mode) of videos given as paths or URIs ([`VideoSource`]: `file://`, or
//! `s3://bucket/key`, fingerprinted from the object's ETag, size and modification time),
//! canonical typed artifact keys ([`ArtifactKey`]:
//! `video:<fingerprint>:<kind>:<param>=<value>...`), typed artifacts per pipeline stage
//! ([`Keyframes`], [`Transcript`], [`FrameDescriptions`], [`Embeddings`]) each with its own codec
//! policy, time segments of long videos, and [`PipelineArtifactCache`], the seed's API.
//!
//! It also owns what the engine must not know about videos: the stages' recompute costs
//! that cost-weighted eviction weighs kinds by ([`cost_weighted_policy`],
//! [`add_stage_costs`]).
//!
//! It must not touch chunk files, RocksDB or remote tiers (it uses the facade's public API:
//! `pipecache::Store`, or a `CacheManager` for tiered caches; `pipecache-remote` only to
//! stat a video's object), must never drop a parameter
//! from a key, and must not install a tracing subscriber.

mod artifacts;
mod cache;
mod error;
mod fingerprint;
mod key;
mod source;

pub use artifacts::{
    Embeddings, FrameDescription, FrameDescriptions, FrameInfo, Keyframes, Transcript,
    TranscriptSegment, TypedArtifact,
};
pub use cache::{
    DescriptionsConfig, EmbeddingsConfig, KeyframesConfig, PipelineArtifactCache,
    PipelineArtifacts, PipelineConfig, SegmentCoverage, TranscriptConfig,
};
pub use error::{PipelineError, Result};
pub use fingerprint::{Fingerprint, FingerprintMode, KEY_SCHEMA};
pub use key::{ArtifactKey, ArtifactKind, ParamValue};
pub use source::{S3Access, VideoSource};

/// The cost-weighted eviction policy weighing each pipeline stage by
/// [`ArtifactKind::recompute_seconds`].
pub fn cost_weighted_policy() -> pipecache::CostWeighted {
    let mut policy = pipecache::CostWeighted::default();
    for kind in ArtifactKind::ALL {
        policy
            .costs
            .insert(kind.as_str().to_owned(), kind.recompute_seconds());
    }
    policy
}

/// Gives a configuration that asks for cost-weighted eviction the pipeline stages' costs
/// for every kind its `cost_hints` leave out (hints win).
pub fn add_stage_costs(config: &mut pipecache::CacheConfig) {
    if config.eviction_policy_name() != Some("cost-weighted") {
        return;
    }
    let hints = config.cost_hints.get_or_insert_with(Default::default);
    for kind in ArtifactKind::ALL {
        hints
            .entry(kind.as_str().to_owned())
            .or_insert_with(|| kind.recompute_seconds());
    }
}

/// The README's Rust examples, compiled as doctests so they stay true.
#[doc = include_str!("../../../README.md")]
#[cfg(doctest)]
pub struct ReadmeDoctests;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stage_costs_fill_what_hints_leave_out_and_only_for_cost_weighted() {
        let mut config = pipecache::CacheConfig::from_toml(
            "eviction_policy = \"cost-weighted\"\n[cost_hints]\ndescriptions = 300.0\n",
            "t.toml",
        )
        .unwrap();
        add_stage_costs(&mut config);
        let hints = config.cost_hints.clone().unwrap();
        assert_eq!(hints["descriptions"], 300.0, "a hint wins");
        assert_eq!(
            hints["keyframes"],
            ArtifactKind::Keyframes.recompute_seconds()
        );
        assert_eq!(hints.len(), ArtifactKind::ALL.len());

        let mut lru =
            pipecache::CacheConfig::from_toml("eviction_policy = \"lru\"\n", "t.toml").unwrap();
        add_stage_costs(&mut lru);
        assert!(lru.cost_hints.is_none(), "cost_hints with LRU is an error");
        assert!(pipecache::CostWeighted::default().costs.is_empty());
    }
}
