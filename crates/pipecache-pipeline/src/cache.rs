//! `PipelineArtifactCache`: the seed's API over a store, keyed by video fingerprint and
//! canonical parameters.

use std::path::Path;

use pipecache::{Artifact, Cache, CacheManager, PutOptions, Store};
use serde::{Deserialize, Serialize};

use crate::artifacts::{
    Embeddings, FrameDescriptions, FrameInfo, Keyframes, Transcript, TypedArtifact,
};
use crate::error::{Result, invalid};
use crate::fingerprint::FingerprintMemo;
use crate::{ArtifactKey, ArtifactKind, Fingerprint, FingerprintMode, ParamValue};

/// Keyframe extraction parameters.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KeyframesConfig {
    /// Scene-change threshold.
    pub threshold: f64,
    /// Most frames kept.
    pub max_frames: u32,
}

/// Transcription parameters.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TranscriptConfig {
    /// Whisper model size (`base`, `small`...).
    pub model_size: String,
    /// Language code.
    pub language: String,
}

/// Frame-description parameters.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DescriptionsConfig {
    /// VLM model.
    pub model: String,
    /// Batch size.
    pub batch_size: u32,
}

/// Embedding parameters.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EmbeddingsConfig {
    /// Embedding model.
    pub model: String,
}

impl KeyframesConfig {
    /// The key of this stage's artifact for video `fp`.
    pub fn key(&self, fp: &Fingerprint) -> Result<ArtifactKey> {
        ArtifactKey::new(fp.clone(), ArtifactKind::Keyframes)
            .param("threshold", self.threshold)?
            .param("max_frames", self.max_frames)
    }
}

impl TranscriptConfig {
    /// The key of this stage's artifact for video `fp`.
    pub fn key(&self, fp: &Fingerprint) -> Result<ArtifactKey> {
        ArtifactKey::new(fp.clone(), ArtifactKind::Transcript)
            .param("model_size", self.model_size.as_str())?
            .param("language", self.language.as_str())
    }
}

impl DescriptionsConfig {
    /// The key of this stage's artifact for video `fp`.
    pub fn key(&self, fp: &Fingerprint) -> Result<ArtifactKey> {
        ArtifactKey::new(fp.clone(), ArtifactKind::Descriptions)
            .param("model", self.model.as_str())?
            .param("batch_size", self.batch_size)
    }
}

impl EmbeddingsConfig {
    /// The key of this stage's artifact for video `fp`.
    pub fn key(&self, fp: &Fingerprint) -> Result<ArtifactKey> {
        ArtifactKey::new(fp.clone(), ArtifactKind::Embeddings).param("model", self.model.as_str())
    }
}

/// Which stages a pipeline runs, with their parameters (a TOML file for the CLI's `status`).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PipelineConfig {
    /// Keyframes stage.
    pub keyframes: Option<KeyframesConfig>,
    /// Transcript stage.
    pub transcript: Option<TranscriptConfig>,
    /// Descriptions stage.
    pub descriptions: Option<DescriptionsConfig>,
    /// Embeddings stage.
    pub embeddings: Option<EmbeddingsConfig>,
}

impl PipelineConfig {
    /// A config with every stage at the seed's defaults.
    pub fn full() -> Self {
        Self {
            keyframes: Some(KeyframesConfig {
                threshold: 0.999,
                max_frames: 3000,
            }),
            transcript: Some(TranscriptConfig {
                model_size: "base".into(),
                language: "en".into(),
            }),
            descriptions: Some(DescriptionsConfig {
                model: "Qwen2-VL".into(),
                batch_size: 8,
            }),
            embeddings: Some(EmbeddingsConfig {
                model: "clip-vit-b32".into(),
            }),
        }
    }

    /// Kinds this config asks for.
    pub fn kinds(&self) -> Vec<ArtifactKind> {
        let mut v = Vec::new();
        if self.keyframes.is_some() {
            v.push(ArtifactKind::Keyframes);
        }
        if self.transcript.is_some() {
            v.push(ArtifactKind::Transcript);
        }
        if self.descriptions.is_some() {
            v.push(ArtifactKind::Descriptions);
        }
        if self.embeddings.is_some() {
            v.push(ArtifactKind::Embeddings);
        }
        v
    }

    /// The key of `kind` for video `fp` under this config, `None` when the stage is off.
    pub fn key(&self, fp: &Fingerprint, kind: ArtifactKind) -> Result<Option<ArtifactKey>> {
        match kind {
            ArtifactKind::Keyframes => self.keyframes.as_ref().map(|c| c.key(fp)).transpose(),
            ArtifactKind::Transcript => self.transcript.as_ref().map(|c| c.key(fp)).transpose(),
            ArtifactKind::Descriptions => self.descriptions.as_ref().map(|c| c.key(fp)).transpose(),
            ArtifactKind::Embeddings => self.embeddings.as_ref().map(|c| c.key(fp)).transpose(),
        }
    }
}

/// What `get_all_artifacts` found for one video.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct PipelineArtifacts {
    /// Keyframes, if cached.
    pub keyframes: Option<Keyframes>,
    /// Transcript, if cached.
    pub transcript: Option<Transcript>,
    /// Descriptions, if cached.
    pub descriptions: Option<FrameDescriptions>,
    /// Embeddings, if cached.
    pub embeddings: Option<Embeddings>,
}

impl PipelineArtifacts {
    fn has(&self, kind: ArtifactKind) -> bool {
        match kind {
            ArtifactKind::Keyframes => self.keyframes.is_some(),
            ArtifactKind::Transcript => self.transcript.is_some(),
            ArtifactKind::Descriptions => self.descriptions.is_some(),
            ArtifactKind::Embeddings => self.embeddings.is_some(),
        }
    }

    /// Stages of `config` with nothing cached: what is left to compute.
    pub fn missing(&self, config: &PipelineConfig) -> Vec<ArtifactKind> {
        config
            .kinds()
            .into_iter()
            .filter(|k| !self.has(*k))
            .collect()
    }

    /// True when every stage of `config` is cached.
    pub fn is_complete(&self, config: &PipelineConfig) -> bool {
        self.missing(config).is_empty()
    }
}

/// Which parts of a time range are cached as segments.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct SegmentCoverage {
    /// Cached segments overlapping the range, in order, as `(start_ms, end_ms)`.
    pub cached: Vec<(u64, u64)>,
    /// Gaps of the range no cached segment covers.
    pub missing: Vec<(u64, u64)>,
}

/// A `T` goes only under a key of its kind.
fn check_kind<T: TypedArtifact>(key: &ArtifactKey) -> Result<()> {
    if key.kind != T::KIND {
        return Err(invalid("key", format!("{key} is not a {} key", T::KIND)));
    }
    Ok(())
}

/// The pipeline cache: typed gets and sets keyed by video and parameters.
#[derive(Clone, Debug)]
pub struct PipelineArtifactCache {
    cache: Cache,
    mode: FingerprintMode,
    memo: std::sync::Arc<FingerprintMemo>,
    /// How `s3://` videos are reached; `None`: the AWS variables, read at each call.
    s3: Option<std::sync::Arc<crate::S3Access>>,
}

impl PipelineArtifactCache {
    /// A cache over a [`CacheManager`] (one tier or several), a plain [`Store`], or a
    /// [`Cache`] (possibly served by `pipecache serve`), fingerprinting videos with `mode`.
    pub fn new(cache: impl Into<Cache>, mode: FingerprintMode) -> Self {
        Self {
            cache: cache.into(),
            mode,
            memo: Default::default(),
            s3: None,
        }
    }

    /// Reaches `s3://` videos as `access` says instead of through the AWS variables.
    pub fn with_s3_access(mut self, access: crate::S3Access) -> Self {
        self.s3 = Some(std::sync::Arc::new(access));
        self
    }

    /// The local store underneath, when this process owns it (not when a server does).
    pub fn store(&self) -> Option<&Store> {
        self.cache.manager().map(CacheManager::local)
    }

    /// The tiers underneath, when this process owns the store (not when a server does).
    pub fn manager(&self) -> Option<&CacheManager> {
        self.cache.manager()
    }

    /// The cache underneath: in process or served.
    pub fn cache(&self) -> &Cache {
        &self.cache
    }

    /// Fingerprints `video`, a path or a URI ([`crate::VideoSource`]; files off the async
    /// threads: content mode reads the whole file, once
    /// per version of it; see [`PipelineArtifactCache::videos_hashed`]).
    pub async fn fingerprint(&self, video: &Path) -> Result<Fingerprint> {
        let video = match crate::VideoSource::parse(video)? {
            crate::VideoSource::File(path) => path,
            crate::VideoSource::S3 { bucket, key } => {
                let access = match &self.s3 {
                    Some(a) => a.as_ref().clone(),
                    None => crate::S3Access::from_env(),
                };
                return crate::VideoSource::object_fingerprint(&bucket, &key, self.mode, &access)
                    .await;
            }
        };
        if self.mode == FingerprintMode::Stat {
            // A stat and a path resolution: microseconds, less than the hop to a blocking
            // thread would cost (measured: 51 µs with the hop; benches/pipeline.rs).
            return Fingerprint::of_file(&video, FingerprintMode::Stat);
        }
        let (mode, memo) = (self.mode, self.memo.clone());
        // The store's clock when it is in this process (tests drive it); a served store's
        // clock is the system's, like the server's.
        let clock: std::sync::Arc<dyn pipecache::Clock> = match self.cache.manager() {
            Some(m) => m.local().options().clock.clone(),
            None => std::sync::Arc::new(pipecache::SystemClock),
        };
        tokio::task::spawn_blocking(move || memo.fingerprint(&video, mode, || clock.now_ms()))
            .await
            .map_err(|e| invalid("fingerprint task", e.to_string()))?
    }

    /// `video`'s fingerprint when it costs no more than a stat (stat mode, or a content
    /// fingerprint remembered for the unchanged file), for callers that must not wait on
    /// I/O; `None` when it would read the video or ask a bucket (then use
    /// [`PipelineArtifactCache::fingerprint`]).
    pub fn fingerprint_now(&self, video: &Path) -> Option<Fingerprint> {
        let crate::VideoSource::File(path) = crate::VideoSource::parse(video).ok()? else {
            return None;
        };
        match self.mode {
            FingerprintMode::Stat => Fingerprint::of_file(&path, FingerprintMode::Stat).ok(),
            FingerprintMode::Content => self.memo.remembered(&path),
        }
    }

    /// Videos this cache (and its clones) read whole for a content fingerprint. A file whose
    /// identity, size, modification and change times are unchanged is not read again, unless
    /// its timestamps were within 2 s of the last read (timestamp granularity: a rewrite
    /// might not have moved them).
    pub fn videos_hashed(&self) -> u64 {
        self.memo.hashed()
    }

    /// [`Self::get_typed`] for a stage the pipeline config may leave out (`None`: not
    /// configured, nothing to read).
    async fn get_configured<T: TypedArtifact>(
        &self,
        key: Option<&ArtifactKey>,
    ) -> Result<Option<T>> {
        match key {
            Some(k) => self.get_typed::<T>(k).await,
            None => Ok(None),
        }
    }

    /// Reads a typed artifact by key.
    pub async fn get_typed<T: TypedArtifact>(&self, key: &ArtifactKey) -> Result<Option<T>> {
        check_kind::<T>(key)?;
        let k = key.to_string();
        match self.cache.get(&k).await? {
            Some(a) => Ok(Some(T::from_artifact(&k, a)?)),
            None => Ok(None),
        }
    }

    /// Stores a typed artifact under `key`, with its kind's codec policy.
    pub async fn set_typed<T: TypedArtifact>(&self, key: &ArtifactKey, value: &T) -> Result<()> {
        check_kind::<T>(key)?;
        self.put_artifact::<T>(key, value.to_artifact()?).await
    }

    /// Stores `a`, built from a `T`, under `key` (whose kind the caller checked).
    async fn put_artifact<T: TypedArtifact>(&self, key: &ArtifactKey, a: Artifact) -> Result<()> {
        let options = PutOptions {
            compression: Some(T::compression()),
            ..PutOptions::default()
        };
        self.cache.put_with(&key.to_string(), a, options).await?;
        Ok(())
    }

    /// The key a stage config gives the current version of `video`.
    async fn key_of(
        &self,
        video: &Path,
        key: impl FnOnce(&Fingerprint) -> Result<ArtifactKey>,
    ) -> Result<ArtifactKey> {
        key(&self.fingerprint(video).await?)
    }

    /// Keyframes of `video` at these parameters.
    pub async fn get_keyframes(
        &self,
        video: &Path,
        threshold: f64,
        max_frames: u32,
    ) -> Result<Option<Keyframes>> {
        let k = self
            .key_of(video, |fp| {
                KeyframesConfig {
                    threshold,
                    max_frames,
                }
                .key(fp)
            })
            .await?;
        self.get_typed(&k).await
    }

    /// Stores keyframes (metadata + one image per frame).
    pub async fn set_keyframes(
        &self,
        video: &Path,
        metadata: Vec<FrameInfo>,
        images: Vec<Vec<u8>>,
        threshold: f64,
        max_frames: u32,
    ) -> Result<()> {
        let k = self
            .key_of(video, |fp| {
                KeyframesConfig {
                    threshold,
                    max_frames,
                }
                .key(fp)
            })
            .await?;
        let keyframes = Keyframes {
            frames: metadata,
            images,
        };
        self.put_artifact::<Keyframes>(&k, keyframes.into_artifact()?)
            .await
    }

    /// Transcript of `video`.
    pub async fn get_transcript(
        &self,
        video: &Path,
        model_size: &str,
        language: &str,
    ) -> Result<Option<Transcript>> {
        let c = TranscriptConfig {
            model_size: model_size.into(),
            language: language.into(),
        };
        let k = self.key_of(video, |fp| c.key(fp)).await?;
        self.get_typed(&k).await
    }

    /// Stores a transcript.
    pub async fn set_transcript(
        &self,
        video: &Path,
        transcript: &Transcript,
        model_size: &str,
        language: &str,
    ) -> Result<()> {
        let c = TranscriptConfig {
            model_size: model_size.into(),
            language: language.into(),
        };
        let k = self.key_of(video, |fp| c.key(fp)).await?;
        self.set_typed(&k, transcript).await
    }

    /// Frame descriptions of `video`.
    pub async fn get_descriptions(
        &self,
        video: &Path,
        model: &str,
        batch_size: u32,
    ) -> Result<Option<FrameDescriptions>> {
        let c = DescriptionsConfig {
            model: model.into(),
            batch_size,
        };
        let k = self.key_of(video, |fp| c.key(fp)).await?;
        self.get_typed(&k).await
    }

    /// Stores frame descriptions.
    pub async fn set_descriptions(
        &self,
        video: &Path,
        d: &FrameDescriptions,
        model: &str,
        batch_size: u32,
    ) -> Result<()> {
        let c = DescriptionsConfig {
            model: model.into(),
            batch_size,
        };
        let k = self.key_of(video, |fp| c.key(fp)).await?;
        self.set_typed(&k, d).await
    }

    /// Embeddings of `video`.
    pub async fn get_embeddings(&self, video: &Path, model: &str) -> Result<Option<Embeddings>> {
        let k = self
            .key_of(video, |fp| {
                EmbeddingsConfig {
                    model: model.into(),
                }
                .key(fp)
            })
            .await?;
        self.get_typed(&k).await
    }

    /// Stores embeddings.
    pub async fn set_embeddings(&self, video: &Path, e: &Embeddings, model: &str) -> Result<()> {
        let k = self
            .key_of(video, |fp| {
                EmbeddingsConfig {
                    model: model.into(),
                }
                .key(fp)
            })
            .await?;
        self.set_typed(&k, e).await
    }

    /// Everything `config` asks for, fetched concurrently; see
    /// [`PipelineArtifacts::is_complete`] and [`PipelineArtifacts::missing`].
    pub async fn get_all_artifacts(
        &self,
        video: &Path,
        config: &PipelineConfig,
    ) -> Result<PipelineArtifacts> {
        let fp = self.fingerprint(video).await?;
        let kf = config.key(&fp, ArtifactKind::Keyframes)?;
        let tr = config.key(&fp, ArtifactKind::Transcript)?;
        let de = config.key(&fp, ArtifactKind::Descriptions)?;
        let em = config.key(&fp, ArtifactKind::Embeddings)?;
        let (keyframes, transcript, descriptions, embeddings) = tokio::join!(
            self.get_configured::<Keyframes>(kf.as_ref()),
            self.get_configured::<Transcript>(tr.as_ref()),
            self.get_configured::<FrameDescriptions>(de.as_ref()),
            self.get_configured::<Embeddings>(em.as_ref()),
        );
        Ok(PipelineArtifacts {
            keyframes: keyframes?,
            transcript: transcript?,
            descriptions: descriptions?,
            embeddings: embeddings?,
        })
    }

    /// Which parts of `[start_ms, end_ms)` of `video` are cached as segments of `base` (a key
    /// without a `segment` parameter; segments are the same key plus `segment=<s>-<e>`).
    pub async fn segment_coverage(
        &self,
        base: &ArtifactKey,
        start_ms: u64,
        end_ms: u64,
    ) -> Result<SegmentCoverage> {
        if start_ms >= end_ms {
            return Err(invalid(
                "range",
                format!("{start_ms}-{end_ms}: start must be before end"),
            ));
        }
        let segs = self.segments_of(base).await?;
        let mut cached = Vec::new();
        let mut missing = Vec::new();
        let mut cursor = start_ms;
        for (s, e) in segs {
            if e <= start_ms || s >= end_ms {
                continue;
            }
            cached.push((s, e));
            if s > cursor {
                missing.push((cursor, s.min(end_ms)));
            }
            cursor = cursor.max(e);
        }
        if cursor < end_ms {
            missing.push((cursor, end_ms));
        }
        Ok(SegmentCoverage { cached, missing })
    }

    /// Cached segments of `base`, sorted by start.
    async fn segments_of(&self, base: &ArtifactKey) -> Result<Vec<(u64, u64)>> {
        if base.segment().is_some() {
            return Err(invalid(
                "key",
                "the base key must not have a segment parameter",
            ));
        }
        let prefix = format!(
            "{}{}:",
            ArtifactKey::video_prefix(&base.fingerprint),
            base.kind
        );
        let mut out = Vec::new();
        // Segments are listed from the local tier: remote tiers are reached by key.
        for entry in self.cache.list_entries(&prefix).await? {
            let Ok(k) = ArtifactKey::parse(&entry.key) else {
                continue;
            };
            let Some(seg) = k.segment() else { continue };
            let mut rest = k.params.clone();
            rest.remove("segment");
            if rest == base.params {
                out.push(seg);
            }
        }
        out.sort();
        Ok(out)
    }

    /// The cached segments of `base` overlapping `[start_ms, end_ms)`, in time order, decoded.
    pub async fn get_segments<T: TypedArtifact>(
        &self,
        base: &ArtifactKey,
        start_ms: u64,
        end_ms: u64,
    ) -> Result<Vec<((u64, u64), T)>> {
        let cov = self.segment_coverage(base, start_ms, end_ms).await?;
        let mut out = Vec::new();
        for (s, e) in cov.cached {
            let key = base.clone().param("segment", ParamValue::Segment(s, e))?;
            if let Some(v) = self.get_typed::<T>(&key).await? {
                out.push(((s, e), v));
            }
        }
        Ok(out)
    }

    /// Removes every artifact cached for the current version of `video`, from every tier:
    /// keys are listed in every tier that can list, since a remote copy this machine never
    /// read would otherwise come back through read-through. Returns how many keys went.
    pub async fn invalidate(&self, video: &Path) -> Result<usize> {
        let fp = self.fingerprint(video).await?;
        let keys = self
            .cache
            .list_keys(&ArtifactKey::video_prefix(&fp))
            .await?;
        for key in &keys {
            self.cache.delete(key).await?;
        }
        Ok(keys.len())
    }
}
