"""Keyframe images are content-addressed: frames shared by two videos are stored once."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Dict, List

import numpy as np
import pipecache
import pytest
from support import write_video

FRAME_BYTES = 100_000
SHARED = 10


def _frames(kind: str, seeds: List[int]) -> List[Any]:
    """Incompressible frames of FRAME_BYTES each, one per seed (equal seeds, equal frames)."""
    out: List[Any] = []
    for seed in seeds:
        data = np.random.default_rng(seed).integers(0, 256, FRAME_BYTES, dtype=np.uint8)
        out.append(data.reshape(100, 250, 4) if kind == "ndarray" else data.tobytes())
    return out


async def _local(manager: pipecache.CacheManager) -> Dict[str, Any]:
    return dict((await manager.stats())["local"])


@pytest.mark.parametrize("kind", ["bytes", "ndarray"])
async def test_shared_frames_stored_once(
    manager: pipecache.CacheManager, tmp_path: Path, kind: str
) -> None:
    """Two videos sharing 10 identical 100 KB frames (plus 2 of their own each): the second
    set adds only its 2 own frames and its metadata document to the unique bytes."""
    a = write_video(tmp_path / "a.mp4", 1000, seed=1)
    b = write_video(tmp_path / "b.mp4", 2000, seed=2)
    shared = list(range(100, 100 + SHARED))
    frames_a = _frames(kind, shared + [1, 2])
    frames_b = _frames(kind, [3] + shared + [4])  # same frames, other positions
    cache = pipecache.PipelineArtifactCache(manager)

    s0 = await _local(manager)
    await cache.set_keyframes(a, {"video": "a"}, frames_a)
    s1 = await _local(manager)
    await cache.set_keyframes(b, {"video": "b"}, frames_b)
    s2 = await _local(manager)

    # Video a: 12 frames and one metadata document, all new.
    assert s1["blobs"] - s0["blobs"] == 12 + 1
    grow_a = s1["unique_bytes"] - s0["unique_bytes"]
    assert 12 * FRAME_BYTES <= grow_a < 12 * FRAME_BYTES + 10_000
    # Video b: only its 2 own frames and its document are new; the 10 shared are reused.
    assert s2["blobs"] - s1["blobs"] == 2 + 1
    grow_b = s2["unique_bytes"] - s1["unique_bytes"]
    assert 2 * FRAME_BYTES <= grow_b < 3 * FRAME_BYTES, f"second video added {grow_b} unique bytes"
    assert s2["counters"]["blobs_deduped"] - s1["counters"]["blobs_deduped"] == SHARED
    spared = s2["counters"]["bytes_deduped"] - s1["counters"]["bytes_deduped"]
    # Each shared frame's bytes (an array's part may carry a small header).
    assert SHARED * FRAME_BYTES <= spared < SHARED * (FRAME_BYTES + 256), spared
    # Logical bytes count every reference: both videos in full.
    assert s2["logical_bytes"] - s1["logical_bytes"] >= 12 * FRAME_BYTES
    assert s2["artifacts"] - s0["artifacts"] == 2

    got_a = await cache.get_keyframes(a)
    got_b = await cache.get_keyframes(b)
    assert got_a is not None and got_b is not None
    for got, want in ((got_a, frames_a), (got_b, frames_b)):
        assert [bytes(g) if isinstance(g, bytes) else g.tobytes() for g in got.images] == [
            w if isinstance(w, bytes) else w.tobytes() for w in want
        ]


async def test_same_frames_twice_in_one_video(
    manager: pipecache.CacheManager, tmp_path: Path
) -> None:
    """A frame repeated within one video (a static scene) is stored once too."""
    video = write_video(tmp_path / "static.mp4")
    frame = os.urandom(FRAME_BYTES)
    cache = pipecache.PipelineArtifactCache(manager)
    before = await _local(manager)
    await cache.set_keyframes(video, None, [frame] * 5)
    after = await _local(manager)
    assert FRAME_BYTES <= after["unique_bytes"] - before["unique_bytes"] < 2 * FRAME_BYTES
    got = await cache.get_keyframes(video)
    assert got is not None and got.images == [frame] * 5


async def test_shared_frames_survive_other_videos_invalidation(
    manager: pipecache.CacheManager, tmp_path: Path
) -> None:
    """Invalidating one video leaves the frames it shares with another readable there."""
    a = write_video(tmp_path / "a.mp4", 1000, seed=1)
    b = write_video(tmp_path / "b.mp4", 2000, seed=2)
    frames = _frames("bytes", list(range(5)))
    cache = pipecache.PipelineArtifactCache(manager)
    await cache.set_keyframes(a, None, frames)
    await cache.set_keyframes(b, None, frames)
    assert await cache.invalidate_video(a) == 1
    assert await cache.get_keyframes(a) is None
    got = await cache.get_keyframes(b)
    assert got is not None and got.images == frames
