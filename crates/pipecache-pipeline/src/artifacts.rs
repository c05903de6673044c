//! Typed pipeline artifacts and how each maps to store parts. Each kind picks its own codec
//! policy: keyframe images are stored raw (JPEG does not shrink), one image per part so frames
//! shared across videos are stored once; transcripts and descriptions are CBOR in LZ4 (every
//! later stage reads them: decode speed first); embeddings are little-endian f32 (bit-exact: NaN payloads and -0.0 survive).

use pipecache::{Algorithm, Artifact, CompressionPolicy, Part};
use serde::{Deserialize, Serialize, de::DeserializeOwned};

use crate::ArtifactKind;
use crate::error::{PipelineError, Result};

/// Metadata of one keyframe.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct FrameInfo {
    /// Frame index in the video.
    pub index: u32,
    /// Presentation time, ms.
    pub timestamp_ms: u64,
    /// Scene-change score that selected it.
    pub score: f32,
    /// Width in pixels.
    pub width: u32,
    /// Height in pixels.
    pub height: u32,
    /// Image format (`jpeg`, `png`).
    pub format: String,
}

/// Keyframes: per-frame metadata and one image per frame.
#[derive(Clone, Debug, PartialEq)]
pub struct Keyframes {
    /// Metadata, parallel to `images`.
    pub frames: Vec<FrameInfo>,
    /// Encoded images.
    pub images: Vec<Vec<u8>>,
}

/// One timed transcript segment.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct TranscriptSegment {
    /// Start, ms.
    pub start_ms: u64,
    /// End, ms.
    pub end_ms: u64,
    /// Text.
    pub text: String,
}

/// A transcript.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Transcript {
    /// Full text.
    pub text: String,
    /// Language code.
    pub language: String,
    /// Model that produced it.
    pub model: String,
    /// Timed segments.
    pub segments: Vec<TranscriptSegment>,
}

/// One frame's description.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct FrameDescription {
    /// Frame index.
    pub index: u32,
    /// Description text.
    pub text: String,
}

/// VLM frame descriptions.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct FrameDescriptions {
    /// Model that produced them.
    pub model: String,
    /// Prompt version used.
    pub prompt_version: String,
    /// Per-frame descriptions.
    pub frames: Vec<FrameDescription>,
}

/// Embedding vectors (one per frame or segment).
#[derive(Clone, Debug)]
pub struct Embeddings {
    /// Model that produced them.
    pub model: String,
    /// Vector dimension.
    pub dim: u32,
    /// The vectors, each `dim` long.
    pub vectors: Vec<Vec<f32>>,
}

/// Bit-exact equality (NaN payloads and -0.0 included), which is what a cache must preserve.
impl PartialEq for Embeddings {
    fn eq(&self, o: &Self) -> bool {
        self.model == o.model
            && self.dim == o.dim
            && self.vectors.len() == o.vectors.len()
            && self.vectors.iter().zip(&o.vectors).all(|(a, b)| {
                a.len() == b.len() && a.iter().zip(b).all(|(x, y)| x.to_bits() == y.to_bits())
            })
    }
}

#[derive(Serialize, Deserialize)]
struct EmbeddingsMeta {
    model: String,
    dim: u32,
    count: u64,
}

fn cbor<T: Serialize>(v: &T) -> Vec<u8> {
    let mut out = Vec::new();
    ciborium::into_writer(v, &mut out).expect("CBOR into a Vec cannot fail");
    out
}

/// A typed artifact of one pipeline kind.
pub trait TypedArtifact: Sized {
    /// Its kind.
    const KIND: ArtifactKind;
    /// The codec policy for its parts.
    fn compression() -> CompressionPolicy;
    /// To store parts.
    fn to_artifact(&self) -> Result<Artifact>;
    /// [`TypedArtifact::to_artifact`] that may move its bytes instead of copying them.
    fn into_artifact(self) -> Result<Artifact> {
        self.to_artifact()
    }
    /// From store parts; `key` names it in errors.
    fn from_artifact(key: &str, a: Artifact) -> Result<Self>;
}

fn bad(key: &str, kind: ArtifactKind, reason: impl Into<String>) -> PipelineError {
    PipelineError::BadArtifact {
        key: key.to_owned(),
        kind: kind.as_str(),
        reason: reason.into(),
    }
}

fn decode_part<T: DeserializeOwned>(
    key: &str,
    kind: ArtifactKind,
    a: &Artifact,
    name: &str,
) -> Result<T> {
    let part = a
        .part(name)
        .ok_or_else(|| bad(key, kind, format!("part {name:?} is missing")))?;
    ciborium::from_reader(part.data.as_slice())
        .map_err(|e| bad(key, kind, format!("part {name:?}: {e}")))
}

impl TypedArtifact for Keyframes {
    const KIND: ArtifactKind = ArtifactKind::Keyframes;
    fn compression() -> CompressionPolicy {
        CompressionPolicy {
            enabled: false,
            ..CompressionPolicy::DEFAULT
        }
    }
    fn to_artifact(&self) -> Result<Artifact> {
        self.clone().into_artifact()
    }
    fn into_artifact(self) -> Result<Artifact> {
        if self.frames.len() != self.images.len() {
            return Err(crate::error::invalid(
                "keyframes",
                format!(
                    "{} frame records but {} images",
                    self.frames.len(),
                    self.images.len()
                ),
            ));
        }
        let mut a = Artifact::default().with_kind(Self::KIND.as_str());
        a.parts.push(Part::new("frames.cbor", cbor(&self.frames)));
        for (f, img) in self.frames.iter().zip(self.images) {
            a.parts
                .push(Part::new(format!("frame_{:06}.{}", f.index, f.format), img));
        }
        Ok(a)
    }
    fn from_artifact(key: &str, a: Artifact) -> Result<Self> {
        let frames: Vec<FrameInfo> = decode_part(key, Self::KIND, &a, "frames.cbor")?;
        if a.parts.len() != frames.len() + 1 {
            return Err(bad(
                key,
                Self::KIND,
                format!(
                    "{} frame records, {} images",
                    frames.len(),
                    a.parts.len() - 1
                ),
            ));
        }
        let images = a.parts.into_iter().skip(1).map(|p| p.data).collect();
        Ok(Self { frames, images })
    }
}

macro_rules! single_cbor {
    ($t:ty, $kind:expr, $part:literal) => {
        impl TypedArtifact for $t {
            const KIND: ArtifactKind = $kind;
            fn compression() -> CompressionPolicy {
                // LZ4: every later stage reads these documents, and LZ4 decodes a 50 KB
                // transcript several times faster than zstd; the ~2x ratio it gives up is
                // small beside the keyframes' bytes (docs/performance.md, "lz4").
                CompressionPolicy {
                    algorithm: Algorithm::Lz4,
                    ..CompressionPolicy::DEFAULT
                }
            }
            fn to_artifact(&self) -> Result<Artifact> {
                Ok(Artifact::default()
                    .with_kind(Self::KIND.as_str())
                    .with_part($part, cbor(self)))
            }
            fn from_artifact(key: &str, a: Artifact) -> Result<Self> {
                decode_part(key, Self::KIND, &a, $part)
            }
        }
    };
}

single_cbor!(Transcript, ArtifactKind::Transcript, "transcript.cbor");
single_cbor!(
    FrameDescriptions,
    ArtifactKind::Descriptions,
    "descriptions.cbor"
);

impl TypedArtifact for Embeddings {
    const KIND: ArtifactKind = ArtifactKind::Embeddings;
    fn compression() -> CompressionPolicy {
        // f32 noise barely shrinks; level 1 keeps the trial cheap when it does not pay.
        CompressionPolicy {
            level: 1,
            ..CompressionPolicy::DEFAULT
        }
    }
    fn to_artifact(&self) -> Result<Artifact> {
        if self.dim == 0 && !self.vectors.is_empty() {
            return Err(crate::error::invalid(
                "embeddings",
                "dim is 0: vectors must have at least one value",
            ));
        }
        let mut raw = Vec::with_capacity(self.vectors.len() * self.dim as usize * 4);
        for (i, v) in self.vectors.iter().enumerate() {
            if v.len() != self.dim as usize {
                return Err(crate::error::invalid(
                    "embeddings",
                    format!("vector {i} has {} values, dim is {}", v.len(), self.dim),
                ));
            }
            for x in v {
                raw.extend_from_slice(&x.to_le_bytes());
            }
        }
        let meta = EmbeddingsMeta {
            model: self.model.clone(),
            dim: self.dim,
            count: self.vectors.len() as u64,
        };
        Ok(Artifact::default()
            .with_kind(Self::KIND.as_str())
            .with_part("embeddings.cbor", cbor(&meta))
            .with_part("vectors.f32le", raw))
    }
    fn from_artifact(key: &str, a: Artifact) -> Result<Self> {
        let meta: EmbeddingsMeta = decode_part(key, Self::KIND, &a, "embeddings.cbor")?;
        let raw = &a
            .part("vectors.f32le")
            .ok_or_else(|| bad(key, Self::KIND, "part vectors.f32le is missing"))?
            .data;
        // dim 0 with a count would be `count` empty vectors from no bytes at all: a stored
        // count of 2^60 must not allocate, so it is refused like any other mismatch.
        let want = meta.count.checked_mul(u64::from(meta.dim) * 4);
        if want != Some(raw.len() as u64) || (meta.dim == 0 && meta.count > 0) {
            return Err(bad(
                key,
                Self::KIND,
                format!(
                    "{} bytes of vectors for {} x {}",
                    raw.len(),
                    meta.count,
                    meta.dim
                ),
            ));
        }
        let vectors = if meta.dim == 0 {
            Vec::new()
        } else {
            raw.chunks_exact(meta.dim as usize * 4)
                .map(|v| {
                    v.chunks_exact(4)
                        .map(|b| f32::from_le_bytes(b.try_into().expect("4 bytes")))
                        .collect()
                })
                .collect()
        };
        Ok(Self {
            model: meta.model,
            dim: meta.dim,
            vectors,
        })
    }
}
