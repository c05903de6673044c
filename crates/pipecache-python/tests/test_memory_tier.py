"""The memory tier from Python: a hot hit is answered without a trip through the store
(counted as the memory tier's hit), a set or delete takes effect at once, and
``memory_size_mb=0`` turns the tier off."""

from __future__ import annotations

from pathlib import Path

import pipecache
from support import fs_manager, write_video


def _tier(stats: dict[str, object], name: str) -> dict[str, int]:
    tiers = stats["tiers"]
    assert isinstance(tiers, list)
    found = next(t for t in tiers if t["name"] == name)
    assert isinstance(found, dict)
    return found


async def test_hot_gets_come_from_memory_and_writes_replace_them(store_dir: Path) -> None:
    """A small value set is read back from memory; a set and a delete after it are seen by
    the very next get."""
    async with fs_manager(store_dir) as m:
        await m.set("k", {"v": 1})
        assert await m.get("k") == {"v": 1}
        assert await m.get("k") == {"v": 1}
        stats = await m.stats()
        assert _tier(stats, "memory")["hits"] == 2
        assert _tier(stats, "local")["hits"] == 0
        await m.set("k", {"v": 2})
        assert await m.get("k") == {"v": 2}
        assert await m.get("k") == {"v": 2}
        await m.delete("k")
        assert await m.get("k") is None


async def test_pipeline_hits_come_from_memory(store_dir: Path, tmp_path: Path) -> None:
    """A hot get_transcript is a memory hit; a changed video misses at once."""
    video = write_video(tmp_path / "v.mp4")
    async with fs_manager(store_dir) as m:
        p = pipecache.PipelineArtifactCache(m)
        await p.set_transcript(video, {"text": "one"})
        for _ in range(3):
            assert await p.get_transcript(video) == {"text": "one"}
        assert _tier(await m.stats(), "memory")["hits"] == 3
        write_video(video, size=8192, seed=1)
        assert await p.get_transcript(video) is None


async def test_memory_size_zero_turns_the_tier_off(store_dir: Path) -> None:
    """With memory_size_mb=0 there is no memory tier, and gets read the store."""
    async with fs_manager(store_dir, memory_size_mb=0) as m:
        await m.set("k", b"v")
        assert await m.get("k") == b"v"
        assert await m.get("k") == b"v"
        tiers = (await m.stats())["tiers"]
        assert [t["name"] for t in tiers] == ["local"]
        assert tiers[0]["hits"] == 2
