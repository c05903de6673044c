"""get_all_artifacts / is_complete / missing against the seed's pipeline_config dict."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Dict, List

import numpy as np
import pipecache
import pytest
from support import assert_same, whisper_transcript, write_video

CONFIG: Dict[str, Any] = {
    "extract_keyframes": True,
    "threshold": 0.95,
    "max_frames": 500,
    "transcribe_audio": True,
    "model_size": "small",
    "language": "fr",
    "generate_descriptions": True,
    "description_model": "llava-1.6",
    "batch_size": 16,
    "generate_embeddings": True,
    "embedding_model": "siglip",
}
ALL = ["keyframes", "transcript", "descriptions", "embeddings"]


@pytest.fixture
def cache(manager: pipecache.CacheManager) -> pipecache.PipelineArtifactCache:
    return pipecache.PipelineArtifactCache(manager)


@pytest.fixture
def video(tmp_path: Path) -> Path:
    return write_video(tmp_path / "lecture.mp4", 50_000)


KEYFRAMES_META = [{"index": 0, "timestamp": 0.0}, {"index": 1, "timestamp": 3.2}]
IMAGES: List[Any] = [np.full((4, 6, 3), 9, np.uint8), b"jpeg"]
DESCRIPTIONS = [{"index": 0, "text": "a slide"}, {"index": 1, "text": "un tableau"}]
VECTORS = np.arange(12, dtype=np.float32).reshape(2, 6)


async def _set_keyframes_and_transcript(
    cache: pipecache.PipelineArtifactCache, video: Path
) -> None:
    await cache.set_keyframes(video, KEYFRAMES_META, IMAGES, threshold=0.95, max_frames=500)
    await cache.set_transcript(video, whisper_transcript(), model_size="small", language="fr")


async def _set_rest(cache: pipecache.PipelineArtifactCache, video: Path) -> None:
    await cache.set_descriptions(video, DESCRIPTIONS, model="llava-1.6", batch_size=16)
    await cache.set_embeddings(video, VECTORS, model="siglip")


async def test_nothing_cached(cache: pipecache.PipelineArtifactCache, video: Path) -> None:
    """With nothing cached every enabled stage is missing and every field is None."""
    found = await cache.get_all_artifacts(video, CONFIG)
    assert not found.is_complete(CONFIG)
    assert found.missing(CONFIG) == ALL
    assert found.keyframes is None and found.audio_transcript is None
    assert found.frame_descriptions is None and found.embeddings is None


async def test_partial_then_complete(cache: pipecache.PipelineArtifactCache, video: Path) -> None:
    """Two stages cached: the other two are missing; all four: complete, with the values set."""
    await _set_keyframes_and_transcript(cache, video)
    found = await cache.get_all_artifacts(video, CONFIG)
    assert not found.is_complete(CONFIG)
    assert found.missing(CONFIG) == ["descriptions", "embeddings"]
    assert found.keyframes is not None and found.audio_transcript is not None

    await _set_rest(cache, video)
    found = await cache.get_all_artifacts(video, CONFIG)
    assert found.is_complete(CONFIG)
    assert found.missing(CONFIG) == []
    assert found.keyframes is not None
    assert_same(found.keyframes.metadata, KEYFRAMES_META)
    assert found.keyframes.images[1] == b"jpeg"
    assert isinstance(found.keyframes.images[0], np.ndarray)
    assert found.keyframes.images[0].tobytes() == IMAGES[0].tobytes()
    assert_same(found.audio_transcript, whisper_transcript())
    assert_same(found.frame_descriptions, DESCRIPTIONS)
    assert found.embeddings is not None and found.embeddings.tobytes() == VECTORS.tobytes()
    assert "keyframes" in repr(found)


async def test_disabled_stages_are_not_missing(
    cache: pipecache.PipelineArtifactCache, video: Path
) -> None:
    """A stage the config turns off (or leaves out) is neither read nor missing."""
    await _set_keyframes_and_transcript(cache, video)
    config = dict(CONFIG, generate_descriptions=False)
    del config["generate_embeddings"]
    found = await cache.get_all_artifacts(video, config)
    assert found.is_complete(config)
    assert found.missing(config) == []
    assert found.frame_descriptions is None and found.embeddings is None
    assert found.missing(CONFIG) == ["descriptions", "embeddings"]


async def test_defaults_match_getters(cache: pipecache.PipelineArtifactCache, video: Path) -> None:
    """A config with flags only uses the get_*/set_* default parameters."""
    await cache.set_keyframes(video, None, [])
    await cache.set_transcript(video, "t")
    await cache.set_descriptions(video, [])
    await cache.set_embeddings(video, np.zeros((1, 2), np.float32))
    flags = {
        "extract_keyframes": True,
        "transcribe_audio": True,
        "generate_descriptions": True,
        "generate_embeddings": True,
    }
    assert (await cache.get_all_artifacts(video, flags)).is_complete(flags)
    defaults = {
        **flags,
        **{k: v for params in pipecache.PIPELINE_CONFIG_KEYS.values() for k, v in params.items()},
    }
    assert (await cache.get_all_artifacts(video, defaults)).is_complete(defaults)
    assert not (await cache.get_all_artifacts(video, CONFIG)).is_complete(CONFIG)


@pytest.mark.parametrize(
    "change, stage",
    [
        ({"threshold": 0.9}, "keyframes"),
        ({"max_frames": 501}, "keyframes"),
        ({"model_size": "medium"}, "transcript"),
        ({"language": "en"}, "transcript"),
        ({"description_model": "Qwen2-VL"}, "descriptions"),
        ({"batch_size": 8}, "descriptions"),
        ({"embedding_model": "clip-vit-b32"}, "embeddings"),
    ],
)
async def test_other_parameters_miss(
    cache: pipecache.PipelineArtifactCache, video: Path, change: Dict[str, Any], stage: str
) -> None:
    """Parameters other than those the artifacts were set with mean a miss for that stage."""
    await _set_keyframes_and_transcript(cache, video)
    await _set_rest(cache, video)
    config = {**CONFIG, **change}
    found = await cache.get_all_artifacts(video, config)
    assert found.missing(config) == [stage]
    assert not found.is_complete(config)


@pytest.mark.parametrize(
    "bad",
    [
        {**CONFIG, "extract_keyframe": True},
        {**CONFIG, "model": "base"},
        {"unknown": 1},
        {"transcribe_audio": "yes"},
    ],
    ids=["typo", "engine-name", "only-unknown", "flag-not-bool"],
)
async def test_bad_config_raises(
    cache: pipecache.PipelineArtifactCache, video: Path, bad: Dict[str, Any]
) -> None:
    """An unknown key (or a flag that is not a bool) raises InvalidInputError, from
    get_all_artifacts, is_complete and missing alike."""
    with pytest.raises(pipecache.InvalidInputError) as info:
        await cache.get_all_artifacts(video, bad)
    assert isinstance(info.value, ValueError)
    found = await cache.get_all_artifacts(video, CONFIG)
    with pytest.raises(pipecache.InvalidInputError):
        found.is_complete(bad)
    with pytest.raises(pipecache.InvalidInputError):
        found.missing(bad)


async def test_unknown_key_is_named(cache: pipecache.PipelineArtifactCache, video: Path) -> None:
    """The error names the unknown key."""
    with pytest.raises(pipecache.InvalidInputError, match="extract_keyframe'"):
        await cache.get_all_artifacts(video, {**CONFIG, "extract_keyframe": True})


async def test_changed_video_misses(cache: pipecache.PipelineArtifactCache, video: Path) -> None:
    """Rewriting the video (another size) makes every artifact a miss."""
    await _set_keyframes_and_transcript(cache, video)
    await _set_rest(cache, video)
    assert (await cache.get_all_artifacts(video, CONFIG)).is_complete(CONFIG)
    write_video(video, 50_001, seed=5)
    found = await cache.get_all_artifacts(video, CONFIG)
    assert found.missing(CONFIG) == ALL
    assert await cache.get_transcript(video, model_size="small", language="fr") is None


async def test_missing_video_raises(
    cache: pipecache.PipelineArtifactCache, tmp_path: Path
) -> None:
    """get_all_artifacts of a video that does not exist raises VideoError."""
    with pytest.raises(pipecache.VideoError):
        await cache.get_all_artifacts(tmp_path / "gone.mp4", CONFIG)
