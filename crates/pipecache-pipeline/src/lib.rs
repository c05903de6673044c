//! # pipecache-pipeline: videos and pipeline stages on top of the store
//!
//! Owns what ingest services think in: source-video fingerprints ([`Fingerprint`], stat or
//! content mode), canonical typed artifact keys ([`ArtifactKey`]:
//! `video:<fingerprint>:<kind>:<param>=<value>...`), typed artifacts per pipeline stage
//! ([`Keyframes`], [`Transcript`], [`FrameDescriptions`], [`Embeddings`]) each with its own codec
//! policy, time segments of long videos, and [`PipelineArtifactCache`], the seed's API.
//!
//! It must not touch chunk files, RocksDB or remote tiers (it only uses `pipecache::Store`'s
//! public API), must never drop a parameter from a key, and must not install a tracing
//! subscriber.

mod artifacts;
mod cache;
mod error;
mod fingerprint;
mod key;

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

/// The README's Rust examples, compiled as doctests so they stay true.
#[doc = include_str!("../../../README.md")]
#[cfg(doctest)]
pub struct ReadmeDoctests;
