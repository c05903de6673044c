//! `NativePipeline`: video-level calls. Keys come from the pipeline crate's stage configs,
//! so an artifact set from Python has the key the CLI's `key` and `status` compute; each
//! call is one awaitable (fingerprint, key and read in one trip across the boundary).

use std::path::PathBuf;
use std::sync::Arc;

use pipecache::{CompressionPolicy, PutOptions};
use pipecache_pipeline::{
    ArtifactKey, ArtifactKind, DescriptionsConfig, Embeddings, EmbeddingsConfig, Fingerprint,
    FingerprintMode, FrameDescriptions, Keyframes, KeyframesConfig, ParamValue,
    PipelineArtifactCache, Transcript, TranscriptConfig, TypedArtifact,
};
use pyo3::prelude::*;
use pyo3::types::PyDict;

use crate::bridge::{Completions, into_py, spawn};
use crate::convert::{PyParts, artifact_of, artifact_to_py, memory_hit_to_py, ttl_of};
use crate::errors::{invalid, pipeline_error, tier_error};
use crate::shared::Shared;

/// One stage's parameters, checked against the stage's config (unknown names refused).
#[derive(Clone, Debug)]
enum StageParams {
    Keyframes(KeyframesConfig),
    Transcript(TranscriptConfig),
    Descriptions(DescriptionsConfig),
    Embeddings(EmbeddingsConfig),
}

impl StageParams {
    fn parse(kind: &str, params: &Bound<'_, PyAny>) -> PyResult<Self> {
        let kind: ArtifactKind = kind.parse().map_err(pipeline_error)?;
        let what = format!("{kind} parameters");
        let bad = |e: pythonize::PythonizeError| invalid(&what, e);
        Ok(match kind {
            ArtifactKind::Keyframes => {
                Self::Keyframes(pythonize::depythonize(params).map_err(bad)?)
            }
            ArtifactKind::Transcript => {
                Self::Transcript(pythonize::depythonize(params).map_err(bad)?)
            }
            ArtifactKind::Descriptions => {
                Self::Descriptions(pythonize::depythonize(params).map_err(bad)?)
            }
            ArtifactKind::Embeddings => {
                Self::Embeddings(pythonize::depythonize(params).map_err(bad)?)
            }
        })
    }

    fn kind(&self) -> ArtifactKind {
        match self {
            Self::Keyframes(_) => ArtifactKind::Keyframes,
            Self::Transcript(_) => ArtifactKind::Transcript,
            Self::Descriptions(_) => ArtifactKind::Descriptions,
            Self::Embeddings(_) => ArtifactKind::Embeddings,
        }
    }

    /// The kind's codec policy, as the Rust pipeline API uses it.
    fn compression(&self) -> CompressionPolicy {
        match self {
            Self::Keyframes(_) => Keyframes::compression(),
            Self::Transcript(_) => Transcript::compression(),
            Self::Descriptions(_) => FrameDescriptions::compression(),
            Self::Embeddings(_) => Embeddings::compression(),
        }
    }

    /// The key for video `fp`, of one time segment when `segment` is given.
    fn key(&self, fp: &Fingerprint, segment: Option<(u64, u64)>) -> PyResult<ArtifactKey> {
        let key = match self {
            Self::Keyframes(c) => c.key(fp),
            Self::Transcript(c) => c.key(fp),
            Self::Descriptions(c) => c.key(fp),
            Self::Embeddings(c) => c.key(fp),
        }
        .map_err(pipeline_error)?;
        match segment {
            None => Ok(key),
            Some((s, e)) if s < e => key
                .param("segment", ParamValue::Segment(s, e))
                .map_err(pipeline_error),
            Some((s, e)) => Err(invalid(
                "segment",
                format!("({s}, {e}): start must be before end"),
            )),
        }
    }
}

/// A video as given: a path (`str` or `os.PathLike`, made a `str` by the Python layer).
fn video_path(video: &str) -> PyResult<PathBuf> {
    if video.is_empty() {
        return Err(invalid("video_path", "is empty"));
    }
    Ok(PathBuf::from(video))
}

/// The pipeline cache of one `NativeCache`, with one fingerprint mode.
#[pyclass(frozen, module = "pipecache._native")]
pub(crate) struct NativePipeline {
    shared: Arc<Shared>,
    mode: FingerprintMode,
}

impl NativePipeline {
    pub(crate) fn new(shared: Arc<Shared>, mode: &str) -> PyResult<Self> {
        let mode = mode.parse().map_err(pipeline_error)?;
        Ok(Self { shared, mode })
    }
}

/// Fingerprints `video` and gives the key `stage` has for it.
async fn key_of(
    cache: &PipelineArtifactCache,
    video: &std::path::Path,
    stage: &StageParams,
    segment: Option<(u64, u64)>,
) -> PyResult<ArtifactKey> {
    let fp = cache.fingerprint(video).await.map_err(pipeline_error)?;
    stage.key(&fp, segment)
}

#[pymethods]
impl NativePipeline {
    /// `stat` or `content`.
    #[getter]
    fn mode(&self) -> &'static str {
        self.mode.name()
    }

    /// The video's fingerprint token (`s1-...`, `c1-...`).
    fn fingerprint(&self, done: &Bound<'_, Completions>, token: u64, video: &str) -> PyResult<()> {
        let (shared, mode, video) = (self.shared.clone(), self.mode, video_path(video)?);
        let fingerprint = async move {
            let cache = shared.pipeline(mode).await?;
            let fp = cache.fingerprint(&video).await.map_err(pipeline_error)?;
            Ok(fp.as_str().to_owned())
        };
        spawn(done.get(), token, fingerprint, into_py);
        Ok(())
    }

    /// The key of a stage's artifact for the video as it is now.
    #[pyo3(signature = (done, token, video, kind, params, segment=None))]
    fn key(
        &self,
        done: &Bound<'_, Completions>,
        token: u64,
        video: &str,
        kind: &str,
        params: &Bound<'_, PyAny>,
        segment: Option<(u64, u64)>,
    ) -> PyResult<()> {
        let (shared, mode, video) = (self.shared.clone(), self.mode, video_path(video)?);
        let stage = StageParams::parse(kind, params)?;
        let key = async move {
            let cache = shared.pipeline(mode).await?;
            Ok(key_of(&cache, &video, &stage, segment).await?.to_string())
        };
        spawn(done.get(), token, key, into_py);
        Ok(())
    }

    /// A memory-tier hit of a stage's artifact (up to 1 MiB), answered without a thread
    /// crossing: only when the fingerprint costs no more than a stat (see
    /// `PipelineArtifactCache::fingerprint_now`); `None` otherwise (then `get`).
    #[pyo3(signature = (video, kind, params, segment=None))]
    fn get_memory<'py>(
        &self,
        py: Python<'py>,
        video: &str,
        kind: &str,
        params: &Bound<'py, PyAny>,
        segment: Option<(u64, u64)>,
    ) -> PyResult<Option<Bound<'py, pyo3::types::PyTuple>>> {
        let Some(cache) = self.shared.try_pipeline(self.mode) else {
            return Ok(None);
        };
        let Some(fp) = cache.fingerprint_now(&video_path(video)?) else {
            return Ok(None);
        };
        let key = StageParams::parse(kind, params)?.key(&fp, segment)?;
        match cache.cache().get_from_memory(&key.to_string()) {
            Some(hit) => memory_hit_to_py(py, &hit.artifact),
            None => Ok(None),
        }
    }

    /// `(kind, meta, [(name, bytes)])` of a stage's artifact, or `None`.
    #[pyo3(signature = (done, token, video, kind, params, segment=None))]
    fn get(
        &self,
        done: &Bound<'_, Completions>,
        token: u64,
        video: &str,
        kind: &str,
        params: &Bound<'_, PyAny>,
        segment: Option<(u64, u64)>,
    ) -> PyResult<()> {
        let (shared, mode, video) = (self.shared.clone(), self.mode, video_path(video)?);
        let stage = StageParams::parse(kind, params)?;
        let read = async move {
            let cache = shared.pipeline(mode).await?;
            let key = key_of(&cache, &video, &stage, segment).await?;
            cache
                .cache()
                .get_shared(&key.to_string())
                .await
                .map_err(tier_error)
        };
        spawn(done.get(), token, read, |py, found, copies| match found {
            Some(a) => Ok(artifact_to_py(py, a, copies)?.into_any().unbind()),
            None => Ok(py.None()),
        });
        Ok(())
    }

    /// Stores a stage's artifact (parts built by the Python layer) with the kind's codec.
    #[pyo3(signature = (done, token, video, kind, params, meta, parts, segment=None, ttl=None))]
    #[allow(clippy::too_many_arguments)]
    fn put(
        &self,
        done: &Bound<'_, Completions>,
        token: u64,
        video: &str,
        kind: &str,
        params: &Bound<'_, PyAny>,
        meta: Vec<(String, String)>,
        parts: PyParts,
        segment: Option<(u64, u64)>,
        ttl: Option<f64>,
    ) -> PyResult<()> {
        let (shared, mode, video) = (self.shared.clone(), self.mode, video_path(video)?);
        let stage = StageParams::parse(kind, params)?;
        let ttl = ttl_of(ttl)?;
        let write = async move {
            let cache = shared.pipeline(mode).await?;
            let key = key_of(&cache, &video, &stage, segment).await?;
            let artifact = artifact_of(stage.kind().as_str(), meta, parts);
            let options = PutOptions {
                ttl,
                compression: Some(stage.compression()),
                ..PutOptions::default()
            };
            cache
                .cache()
                .put_with(&key.to_string(), artifact, options)
                .await
                .map_err(tier_error)
        };
        spawn(done.get(), token, write, into_py);
        Ok(())
    }

    /// `{kind: (kind, meta, parts) or None}` for each stage `stages` maps to its
    /// parameters, read concurrently under one fingerprint.
    fn get_all(
        &self,
        done: &Bound<'_, Completions>,
        token: u64,
        video: &str,
        stages: &Bound<'_, PyDict>,
    ) -> PyResult<()> {
        let (shared, mode, video) = (self.shared.clone(), self.mode, video_path(video)?);
        let stages = stages
            .iter()
            .map(|(kind, params)| StageParams::parse(&kind.extract::<String>()?, &params))
            .collect::<PyResult<Vec<_>>>()?;
        let read = async move {
            let cache = shared.pipeline(mode).await?;
            let fp = cache.fingerprint(&video).await.map_err(pipeline_error)?;
            let mut reads = tokio::task::JoinSet::new();
            for (i, stage) in stages.iter().enumerate() {
                let key = stage.key(&fp, None)?.to_string();
                let manager = cache.cache().clone();
                reads.spawn(async move { (i, manager.get_shared(&key).await) });
            }
            let mut found = vec![None; stages.len()];
            while let Some(done) = reads.join_next().await {
                let (i, result) = done.map_err(|e| invalid("get_all_artifacts", e))?;
                found[i] = result.map_err(tier_error)?;
            }
            Ok(stages
                .iter()
                .map(|s| s.kind().as_str())
                .zip(found)
                .collect::<Vec<_>>())
        };
        spawn(done.get(), token, read, |py, found, copies| {
            let out = PyDict::new(py);
            for (kind, artifact) in found {
                let value = match artifact {
                    Some(a) => Some(artifact_to_py(py, a, copies)?),
                    None => None,
                };
                out.set_item(kind, value)?;
            }
            Ok(out.into_any().unbind())
        });
        Ok(())
    }

    /// Removes every artifact of the video as it is now, from every tier; how many went.
    fn invalidate(&self, done: &Bound<'_, Completions>, token: u64, video: &str) -> PyResult<()> {
        let (shared, mode, video) = (self.shared.clone(), self.mode, video_path(video)?);
        let invalidate = async move {
            let cache = shared.pipeline(mode).await?;
            cache.invalidate(&video).await.map_err(pipeline_error)
        };
        spawn(done.get(), token, invalidate, into_py);
        Ok(())
    }

    /// `(cached, missing)`: the cached segments of a stage overlapping
    /// `[start_ms, end_ms)`, and the gaps none covers.
    #[allow(clippy::too_many_arguments)]
    fn coverage(
        &self,
        done: &Bound<'_, Completions>,
        token: u64,
        video: &str,
        kind: &str,
        params: &Bound<'_, PyAny>,
        start_ms: u64,
        end_ms: u64,
    ) -> PyResult<()> {
        let (shared, mode, video) = (self.shared.clone(), self.mode, video_path(video)?);
        let stage = StageParams::parse(kind, params)?;
        let coverage = async move {
            let cache = shared.pipeline(mode).await?;
            let base = key_of(&cache, &video, &stage, None).await?;
            let coverage = cache
                .segment_coverage(&base, start_ms, end_ms)
                .await
                .map_err(pipeline_error)?;
            Ok((coverage.cached, coverage.missing))
        };
        spawn(done.get(), token, coverage, into_py);
        Ok(())
    }
}
