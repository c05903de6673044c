"""Every method of CacheManager and PipelineArtifactCache does what it says, end to end."""

from __future__ import annotations

import asyncio
import os
from pathlib import Path

import numpy as np
import pipecache
import pytest
from support import assert_same, fs_manager, whisper_transcript, write_video


async def test_manager_set_get_exists_delete(manager: pipecache.CacheManager) -> None:
    """set/get/exists/delete of bytes, bytearray, documents; a miss is None."""
    values = {
        "bytes": b"\x00\x01raw bytes\xff",
        "bytearray": bytearray(b"mutable \x00 bytes"),
        "empty-bytes": b"",
        "dict": {"a": 1, "b": [1, 2, {"c": None}]},
        "list": [1, "two", 3.0, None, True],
        "str": "just a string",
        "int": 42,
        "none": None,
    }
    for name, value in values.items():
        await manager.set(f"k/{name}", value)
    for name, value in values.items():
        assert await manager.exists(f"k/{name}")
        assert_same(await manager.get(f"k/{name}"), value, name)
    assert await manager.get("k/absent") is None
    assert not await manager.exists("k/absent")
    assert await manager.delete("k/dict") is True
    assert await manager.delete("k/dict") is False
    assert await manager.get("k/dict") is None
    assert not await manager.exists("k/dict")


async def test_manager_set_overwrites(manager: pipecache.CacheManager) -> None:
    """A second set of a key replaces the first value, whatever its type."""
    await manager.set("k", {"v": 1})
    await manager.set("k", b"now bytes")
    assert await manager.get("k") == b"now bytes"
    assert await manager.keys() == ["k"]


async def test_manager_keys_and_clear(manager: pipecache.CacheManager) -> None:
    """keys(prefix) lists, clear(prefix) removes exactly the keys under the prefix."""
    for k in ["a/1", "a/2", "a/3", "b/1", "ab"]:
        await manager.set(k, k.encode())
    assert sorted(await manager.keys()) == ["a/1", "a/2", "a/3", "ab", "b/1"]
    assert sorted(await manager.keys("a/")) == ["a/1", "a/2", "a/3"]
    assert await manager.keys("zzz") == []
    assert await manager.clear("a/") == 3
    assert sorted(await manager.keys()) == ["ab", "b/1"]
    assert await manager.get("b/1") == b"b/1"
    assert await manager.clear() == 2
    assert await manager.keys() == []
    assert await manager.clear() == 0


async def test_manager_ttl_seconds_and_strings(manager: pipecache.CacheManager) -> None:
    """set takes a TTL in seconds or as "7d"; a short one expires, a long one does not."""
    await manager.set("week", b"w", ttl="7d")
    await manager.set("hour", b"h", ttl=3600)
    await manager.set("float", b"f", ttl=3600.5)
    await manager.set("short-str", b"s", ttl="1s")
    await manager.set("short-int", b"i", ttl=1)
    assert await manager.get("short-str") == b"s"
    await asyncio.sleep(1.3)
    assert await manager.get("short-str") is None
    assert await manager.get("short-int") is None
    assert not await manager.exists("short-int")
    assert await manager.get("week") == b"w"
    assert await manager.get("hour") == b"h"
    assert await manager.get("float") == b"f"


async def test_manager_stats(manager: pipecache.CacheManager) -> None:
    """stats() has the local store's figures, one entry per tier and the lookups per
    stage, and they move."""
    before = await manager.stats()
    assert set(before) == {
        "local",
        "tiers",
        "lookups",
        "recompute_seconds_saved_today",
        "most_missed",
        "near_cache",
        "decoded_documents",
    }
    assert before["near_cache"] is None, "a store opened in process has no near cache"
    assert before["local"]["artifacts"] == 0
    assert [t["name"] for t in before["tiers"]] == ["memory", "local"]
    await manager.set("a", os.urandom(10_000))
    await manager.set("b", {"x": 1})
    await manager.get("a")
    await manager.get("missing")
    after = await manager.stats()
    local = after["local"]
    assert local["artifacts"] == 2
    assert local["logical_bytes"] >= 10_000
    assert local["counters"]["puts"] == 2
    # "a" was kept in memory as it was set: the get is the memory tier's hit; the miss
    # walks to the store.
    memory = after["tiers"][0]
    assert (memory["name"], memory["hits"], memory["misses"]) == ("memory", 1, 1)
    assert local["counters"]["misses"] >= 1
    # Plain keys belong to no stage: both gets are lookups of kind "other".
    other = [k for k in after["lookups"] if k["kind"] == "other"][0]
    assert (other["hits"], other["misses"]) == (1, 1)


async def test_manager_set_with_kind(manager: pipecache.CacheManager) -> None:
    """set(kind=...) (an artifact kind for eviction and stats) leaves the value unchanged."""
    await manager.set("k", b"v", kind="transcript")
    assert await manager.get("k") == b"v"


async def test_async_context_manager_and_persistence(store_dir: Path) -> None:
    """`async with` opens and closes; values survive into the next manager on the dir."""
    async with fs_manager(store_dir) as m:
        assert isinstance(m, pipecache.CacheManager)
        assert Path(m.dir) == store_dir
        await m.set("persist", {"n": 1})
    with pytest.raises(pipecache.ClosedError):
        await m.get("persist")
    async with fs_manager(store_dir) as m2:
        assert await m2.get("persist") == {"n": 1}


async def test_close_is_idempotent(manager: pipecache.CacheManager) -> None:
    """close() twice is fine; calls after it raise ClosedError."""
    await manager.set("k", b"v")
    await manager.close()
    await manager.close()
    with pytest.raises(pipecache.ClosedError):
        await manager.set("k", b"v")


async def test_open_explicitly(manager: pipecache.CacheManager, store_dir: Path) -> None:
    """open() creates the store directory now and returns the manager."""
    assert await manager.open() is manager
    assert (store_dir / "PIPECACHE").is_file()


# PipelineArtifactCache


@pytest.fixture
def video(tmp_path: Path) -> Path:
    return write_video(tmp_path / "talk.mp4", 10_000)


async def test_pipeline_keyframes(manager: pipecache.CacheManager, video: Path) -> None:
    """set_/get_keyframes round-trip metadata and images, keyed by threshold and max_frames."""
    cache = pipecache.PipelineArtifactCache(manager)
    meta = [{"index": i, "timestamp": i * 1.5, "score": 0.9} for i in range(3)]
    images = [os.urandom(1000 + i) for i in range(3)]
    assert await cache.get_keyframes(video, threshold=0.5, max_frames=10) is None
    await cache.set_keyframes(video, meta, images, threshold=0.5, max_frames=10)
    got = await cache.get_keyframes(video, threshold=0.5, max_frames=10)
    assert got is not None
    assert isinstance(got, pipecache.Keyframes)
    assert_same(got.metadata, meta)
    assert_same(got.images, images)
    assert await cache.get_keyframes(video, threshold=0.5, max_frames=11) is None
    assert await cache.get_keyframes(video, threshold=0.6, max_frames=10) is None
    assert await cache.get_keyframes(video) is None


async def test_pipeline_keyframes_empty(manager: pipecache.CacheManager, video: Path) -> None:
    """A video without keyframes (empty lists) is a hit, not a miss."""
    cache = pipecache.PipelineArtifactCache(manager)
    await cache.set_keyframes(video, [], [])
    got = await cache.get_keyframes(video)
    assert got is not None and got.metadata == [] and got.images == []


async def test_pipeline_transcript(manager: pipecache.CacheManager, video: Path) -> None:
    """set_/get_transcript round-trip, keyed by model_size and language."""
    cache = pipecache.PipelineArtifactCache(manager)
    transcript = whisper_transcript()
    await cache.set_transcript(video, transcript, model_size="large-v3", language="de")
    assert_same(
        await cache.get_transcript(video, model_size="large-v3", language="de"), transcript
    )
    assert await cache.get_transcript(video, model_size="large-v3", language="en") is None
    assert await cache.get_transcript(video) is None


async def test_pipeline_descriptions(manager: pipecache.CacheManager, video: Path) -> None:
    """set_/get_descriptions round-trip, keyed by model and batch_size."""
    cache = pipecache.PipelineArtifactCache(manager)
    descriptions = [
        {"index": i, "text": f"frame {i}: a person at a desk", "extra": {"conf": 0.5}}
        for i in range(5)
    ]
    await cache.set_descriptions(video, descriptions, model="llava", batch_size=4)
    assert_same(await cache.get_descriptions(video, model="llava", batch_size=4), descriptions)
    assert await cache.get_descriptions(video, model="llava", batch_size=8) is None
    assert await cache.get_descriptions(video) is None


async def test_pipeline_embeddings(manager: pipecache.CacheManager, video: Path) -> None:
    """set_/get_embeddings round-trip a float32 (n x dim) array, keyed by model."""
    cache = pipecache.PipelineArtifactCache(manager)
    vectors = np.random.default_rng(1).standard_normal((7, 64)).astype(np.float32)
    await cache.set_embeddings(video, vectors, model="clip-vit-l14")
    got = await cache.get_embeddings(video, model="clip-vit-l14")
    assert got is not None
    assert got.dtype == np.float32 and got.shape == (7, 64)
    assert got.tobytes() == vectors.tobytes()
    assert await cache.get_embeddings(video) is None


async def test_pipeline_get_all_and_invalidate(
    manager: pipecache.CacheManager, video: Path
) -> None:
    """get_all_artifacts reads every stage; invalidate_video removes all of them."""
    cache = pipecache.PipelineArtifactCache(manager)
    await cache.set_keyframes(video, {"n": 1}, [b"frame"])
    await cache.set_transcript(video, {"text": "t"})
    await cache.set_descriptions(video, ["d"])
    await cache.set_embeddings(video, np.ones((1, 4), np.float32))
    config = {
        "extract_keyframes": True,
        "transcribe_audio": True,
        "generate_descriptions": True,
        "generate_embeddings": True,
    }
    found = await cache.get_all_artifacts(video, config)
    assert found.is_complete(config)
    other = write_video(video.parent / "other.mp4", 500, seed=9)
    await cache.set_transcript(other, {"text": "other"})
    assert await cache.invalidate_video(video) == 4
    found = await cache.get_all_artifacts(video, config)
    assert found.missing(config) == ["keyframes", "transcript", "descriptions", "embeddings"]
    assert await cache.get_transcript(other) == {"text": "other"}
    assert await cache.invalidate_video(video) == 0


async def test_pipeline_key(manager: pipecache.CacheManager, video: Path) -> None:
    """key() names the artifact a set_* stores: the fingerprint and sorted parameters."""
    cache = pipecache.PipelineArtifactCache(manager)
    fp = await cache.fingerprint(video)
    key = await cache.key(video, "keyframes", threshold=0.5, max_frames=10)
    assert key == f"video:{fp}:keyframes:max_frames=10:threshold=0.5"
    await cache.set_keyframes(video, {"m": 1}, [b"img"], threshold=0.5, max_frames=10)
    assert await manager.keys() == [key]
    assert await manager.exists(key)
    tkey = await cache.key(video, "transcript", model_size="base", language="en")
    assert tkey == f"video:{fp}:transcript:language=en:model_size=base"
    skey = await cache.key(
        video, "transcript", segment=(0, 1000), model_size="base", language="en"
    )
    assert skey == f"video:{fp}:transcript:language=en:model_size=base:segment=0-1000"


@pytest.mark.parametrize("video_arg", ["str", "path"])
async def test_pipeline_accepts_str_and_path(
    manager: pipecache.CacheManager, video: Path, video_arg: str
) -> None:
    """A video given as str or pathlib.Path names the same artifacts."""
    cache = pipecache.PipelineArtifactCache(manager)
    given = str(video) if video_arg == "str" else video
    await cache.set_transcript(given, {"text": video_arg})
    assert await cache.get_transcript(str(video)) == {"text": video_arg}
    assert await cache.get_transcript(video) == {"text": video_arg}


async def test_fingerprint_stat(manager: pipecache.CacheManager, tmp_path: Path) -> None:
    """fingerprint="stat" hashes path, size and mtime: a touch or a copy elsewhere changes it."""
    cache = pipecache.PipelineArtifactCache(manager, fingerprint="stat")
    a = write_video(tmp_path / "a.mp4", 2000)
    b = write_video(tmp_path / "b.mp4", 2000)
    fp_a = await cache.fingerprint(a)
    assert fp_a.startswith("s1-") and len(fp_a) == 3 + 32
    assert await cache.fingerprint(a) == fp_a
    assert await cache.fingerprint(b) != fp_a
    await cache.set_transcript(a, {"text": "a"})
    st = a.stat()
    os.utime(a, ns=(st.st_atime_ns, st.st_mtime_ns + 5_000_000_000))
    assert await cache.fingerprint(a) != fp_a
    assert await cache.get_transcript(a) is None


async def test_fingerprint_content(manager: pipecache.CacheManager, tmp_path: Path) -> None:
    """fingerprint="content" hashes the bytes: equal files share artifacts, a touch keeps
    them, changed bytes lose them."""
    cache = pipecache.PipelineArtifactCache(manager, fingerprint="content")
    a = write_video(tmp_path / "a.mp4", 2000)
    b = write_video(tmp_path / "b.mp4", 2000)
    fp = await cache.fingerprint(a)
    assert fp.startswith("c1-") and len(fp) == 3 + 32
    assert await cache.fingerprint(b) == fp
    await cache.set_transcript(a, {"text": "shared"})
    assert await cache.get_transcript(b) == {"text": "shared"}
    st = a.stat()
    os.utime(a, ns=(st.st_atime_ns, st.st_mtime_ns + 5_000_000_000))
    assert await cache.fingerprint(a) == fp
    assert await cache.get_transcript(a) == {"text": "shared"}
    write_video(a, 2000, seed=1)
    assert await cache.fingerprint(a) != fp
    assert await cache.get_transcript(a) is None
    stat_cache = pipecache.PipelineArtifactCache(manager)
    assert (await stat_cache.fingerprint(b)).startswith("s1-")


async def test_unknown_fingerprint_mode(manager: pipecache.CacheManager) -> None:
    """A fingerprint mode other than stat/content is refused."""
    with pytest.raises(pipecache.InvalidInputError):
        pipecache.PipelineArtifactCache(manager, fingerprint="mtime")
