"""Segments of long videos: artifacts per (start_ms, end_ms) and segment_coverage."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pipecache
import pytest
from support import write_video

TRANSCRIPT = {"model_size": "base", "language": "en"}


@pytest.fixture
def cache(manager: pipecache.CacheManager) -> pipecache.PipelineArtifactCache:
    return pipecache.PipelineArtifactCache(manager)


@pytest.fixture
def video(tmp_path: Path) -> Path:
    return write_video(tmp_path / "long.mp4", 100_000)


async def test_segment_artifacts_are_separate(
    cache: pipecache.PipelineArtifactCache, video: Path
) -> None:
    """A segment's transcript, descriptions and embeddings are their own artifacts: the whole
    video's and other segments' are misses."""
    await cache.set_transcript(video, {"text": "first minute"}, segment=(0, 60_000))
    await cache.set_descriptions(video, ["d"], segment=(0, 60_000))
    await cache.set_embeddings(video, np.ones((2, 3), np.float32), segment=(0, 60_000))
    assert await cache.get_transcript(video, segment=(0, 60_000)) == {"text": "first minute"}
    assert await cache.get_descriptions(video, segment=(0, 60_000)) == ["d"]
    emb = await cache.get_embeddings(video, segment=(0, 60_000))
    assert emb is not None and emb.shape == (2, 3)
    assert await cache.get_transcript(video) is None
    assert await cache.get_transcript(video, segment=(0, 59_999)) is None
    assert await cache.get_transcript(video, segment=(60_000, 120_000)) is None
    assert await cache.get_embeddings(video) is None


async def test_coverage(cache: pipecache.PipelineArtifactCache, video: Path) -> None:
    """segment_coverage lists the cached segments overlapping the range and the gaps."""
    for start, end in [(0, 10_000), (20_000, 30_000), (30_000, 45_000)]:
        await cache.set_transcript(video, {"seg": [start, end]}, segment=(start, end))
    cov = await cache.segment_coverage(video, "transcript", 0, 60_000, **TRANSCRIPT)
    assert isinstance(cov, pipecache.SegmentCoverage)
    assert cov.cached == [(0, 10_000), (20_000, 30_000), (30_000, 45_000)]
    assert cov.missing == [(10_000, 20_000), (45_000, 60_000)]
    inner = await cache.segment_coverage(video, "transcript", 5_000, 25_000, **TRANSCRIPT)
    assert inner.missing == [(10_000, 20_000)]
    assert set(inner.cached) == {(0, 10_000), (20_000, 30_000)}


async def test_coverage_respects_parameters(
    cache: pipecache.PipelineArtifactCache, video: Path
) -> None:
    """Segments set with other parameters (another language) do not count."""
    await cache.set_transcript(video, {"t": 1}, segment=(0, 10_000), language="de")
    cov = await cache.segment_coverage(video, "transcript", 0, 10_000, **TRANSCRIPT)
    assert cov.cached == [] and cov.missing == [(0, 10_000)]
    de = await cache.segment_coverage(
        video, "transcript", 0, 10_000, model_size="base", language="de"
    )
    assert de.cached == [(0, 10_000)] and de.missing == []


async def test_coverage_of_nothing(cache: pipecache.PipelineArtifactCache, video: Path) -> None:
    """With nothing cached the whole range is missing."""
    cov = await cache.segment_coverage(video, "embeddings", 0, 5_000, model="clip-vit-b32")
    assert cov == pipecache.SegmentCoverage([], [(0, 5_000)])


async def test_invalidate_removes_segments(
    cache: pipecache.PipelineArtifactCache, video: Path
) -> None:
    """invalidate_video removes segment artifacts too."""
    await cache.set_transcript(video, {"t": 1}, segment=(0, 1_000))
    await cache.set_transcript(video, {"t": 2}, segment=(1_000, 2_000))
    assert await cache.invalidate_video(video) == 2
    cov = await cache.segment_coverage(video, "transcript", 0, 2_000, **TRANSCRIPT)
    assert cov.cached == []


@pytest.mark.parametrize("segment", [(1_000, 1_000), (2_000, 1_000)])
async def test_bad_segment(
    cache: pipecache.PipelineArtifactCache, video: Path, segment: tuple[int, int]
) -> None:
    """A segment whose start is not before its end raises InvalidInputError."""
    with pytest.raises(pipecache.InvalidInputError):
        await cache.set_transcript(video, {"t": 1}, segment=segment)
    with pytest.raises(pipecache.InvalidInputError):
        await cache.get_transcript(video, segment=segment)
