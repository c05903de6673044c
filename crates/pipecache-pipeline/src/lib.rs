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

/// Sorts pipeline keys (`video:<fingerprint>:<kind>:...`) into their stage for the
/// engine's per-kind metrics, with each stage's recompute cost (what a hit saves) and the
/// video's fingerprint as the key's subject (the most-missed list).
#[derive(Debug, Default)]
pub struct StageKeys;

/// [`StageKeys`] as the store options take it.
pub fn key_classifier() -> std::sync::Arc<dyn pipecache::KeyClassifier> {
    std::sync::Arc::new(StageKeys)
}

/// Kind names in [`ArtifactKind::ALL`]'s order (the classifier's indexes).
const STAGE_NAMES: [&str; 4] = [
    ArtifactKind::ALL[0].as_str(),
    ArtifactKind::ALL[1].as_str(),
    ArtifactKind::ALL[2].as_str(),
    ArtifactKind::ALL[3].as_str(),
];

impl pipecache::KeyClassifier for StageKeys {
    fn kinds(&self) -> &[&'static str] {
        &STAGE_NAMES
    }

    fn recompute_seconds(&self, kind: usize) -> f64 {
        ArtifactKind::ALL
            .get(kind)
            .map_or(0.0, |k| k.recompute_seconds())
    }

    /// A scan of the key's first three fields: called on every get.
    fn classify<'k>(&self, key: &'k str) -> Option<pipecache::KeyClass<'k>> {
        let rest = key.strip_prefix("video:")?;
        let (fingerprint, rest) = rest.split_once(':')?;
        let kind = rest.split(':').next()?;
        let index = STAGE_NAMES.iter().position(|name| *name == kind)?;
        Some(pipecache::KeyClass {
            kind: index,
            subject: Some(fingerprint),
        })
    }
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
