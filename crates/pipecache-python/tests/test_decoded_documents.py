"""Decoded documents kept for repeated reads: a document read a second time soon after its
first is kept, and later gets copy the containers of the value decoded before instead of
decoding again. What a caller gets is its
own (changing it changes no later get), a changed value is never served from what was
kept, the estimated size stays within the budget, and ``memory_size_mb=0`` keeps nothing."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any, Dict

import pipecache
from support import fs_manager, write_video


def _transcript(n: int, tag: str = "") -> Dict[str, Any]:
    return {
        "text": f"talk {tag}",
        "language": "en",
        "segments": [
            {
                "id": i,
                "start": i * 1.5,
                "end": i * 1.5 + 1.5,
                "text": f"{tag} segment {i} " * 4,
                "tokens": [i, i + 1, i + 2],
                "words": [{"w": "a", "p": 0.5}, {"w": "b", "p": None}],
            }
            for i in range(n)
        ],
    }


def _containers(value: Any) -> list[Any]:
    """Every dict and list inside ``value``, outermost first."""
    out: list[Any] = []
    stack = [value]
    while stack:
        v = stack.pop()
        if isinstance(v, dict):
            out.append(v)
            stack.extend(v.values())
        elif isinstance(v, list):
            out.append(v)
            stack.extend(v)
    return out


async def test_a_repeated_get_is_a_hit_and_equal(store_dir: Path, tmp_path: Path) -> None:
    """The third and later gets of a transcript are hits of the decoded documents (the
    second keeps it) and equal to what was set."""
    video = write_video(tmp_path / "v.mp4")
    doc = _transcript(40)
    async with fs_manager(store_dir) as m:
        p = pipecache.PipelineArtifactCache(m)
        await p.set_transcript(video, doc)
        for _ in range(5):
            assert await p.get_transcript(video) == doc
        kept = (await m.stats())["decoded_documents"]
        assert (kept["misses"], kept["hits"]) == (2, 3)
        assert 0 < kept["bytes"] <= kept["budget"]


async def test_what_a_get_returns_is_the_callers_own(store_dir: Path, tmp_path: Path) -> None:
    """Changing every container of one get's result (top level, a segment, a nested list)
    changes nothing the next get returns, and no container is shared between two gets."""
    video = write_video(tmp_path / "v.mp4")
    doc = _transcript(10)
    async with fs_manager(store_dir) as m:
        p = pipecache.PipelineArtifactCache(m)
        await p.set_transcript(video, doc)
        first = await p.get_transcript(video)
        await p.get_transcript(video)
        second = await p.get_transcript(video)
        assert (await m.stats())["decoded_documents"]["hits"] >= 1
        ids = {id(c) for c in _containers(first)}
        assert not ids & {id(c) for c in _containers(second)}
        second["text"] = "changed"
        second["segments"][0]["tokens"].append(99)
        second["segments"][1]["words"][0]["w"] = "z"
        del second["segments"][2:]
        third = await p.get_transcript(video)
        assert third == doc
        assert first == doc


async def test_a_changed_value_is_never_served_from_what_was_kept(store_dir: Path) -> None:
    """A set of a new value under the same key is what the next get decodes, and two keys
    holding the same bytes share an entry without mixing up their values."""
    async with fs_manager(store_dir) as m:
        one, two = _transcript(20, "one"), _transcript(20, "two")
        await m.set("k", one)
        for _ in range(3):
            assert await m.get("k") == one
        assert (await m.stats())["decoded_documents"]["hits"] == 1
        await m.set("k", two)
        for _ in range(3):
            assert await m.get("k") == two
        await m.set("same", copy.deepcopy(two))
        assert await m.get("same") == two
        assert await m.get("k") == two
        assert (await m.stats())["decoded_documents"]["hits"] == 4


async def test_the_budget_holds(store_dir: Path) -> None:
    """Many documents each read twice (so each is kept) keep the estimated size within the
    budget (an eighth of memory_size: 1 MB of 8 here)."""
    async with fs_manager(store_dir, memory_size_mb=8) as m:
        docs = {f"k{i}": _transcript(60, str(i)) for i in range(60)}
        for k, v in docs.items():
            await m.set(k, v)
        for k, v in docs.items():
            for _ in range(2):
                assert await m.get(k) == v
        kept = (await m.stats())["decoded_documents"]
        assert kept["budget"] == 8_000_000 // 8
        assert 0 < kept["bytes"] <= kept["budget"]
        assert kept["hits"] + kept["misses"] == 120


async def test_a_document_over_a_quarter_of_the_budget_is_not_kept(store_dir: Path) -> None:
    """One large document cannot take the whole budget: a document whose estimated size
    is over a quarter of it (125 KB of estimated Python bytes at memory_size_mb=1) is
    decoded at every read and never kept, while a small one is."""
    async with fs_manager(store_dir, memory_size_mb=1) as m:
        large, small = _transcript(60, "large"), _transcript(3, "small")
        await m.set("large", large)
        await m.set("small", small)
        for _ in range(3):
            assert await m.get("large") == large
            assert await m.get("small") == small
        kept = (await m.stats())["decoded_documents"]
        assert kept["budget"] == 1_000_000 // 8
        assert kept["hits"] == 1, "the small one hits at its third read, the large one never"


async def test_memory_size_zero_keeps_nothing(store_dir: Path) -> None:
    """With memory_size_mb=0 every get decodes."""
    async with fs_manager(store_dir, memory_size_mb=0) as m:
        doc = _transcript(20)
        await m.set("k", doc)
        for _ in range(3):
            assert await m.get("k") == doc
        kept = (await m.stats())["decoded_documents"]
        assert kept == {"hits": 0, "misses": 0, "bytes": 0, "budget": 0}


async def test_deeply_nested_documents_copy(store_dir: Path) -> None:
    """A document nested 200 deep (the decoder's limit is 256) reads back equal twice, its
    innermost list the caller's own."""
    nested: Any = ["x" * 300]
    for _ in range(200):
        nested = {"d": nested}
    async with fs_manager(store_dir) as m:
        await m.set("deep", nested)
        await m.get("deep")
        first = await m.get("deep")
        second = await m.get("deep")
        assert first == nested and second == nested
        assert (await m.stats())["decoded_documents"]["hits"] == 1
        inner_first, inner_second = first, second
        while isinstance(inner_first, dict):
            inner_first, inner_second = inner_first["d"], inner_second["d"]
        assert inner_first is not inner_second


async def test_only_documents_read_again_soon_are_kept(store_dir: Path) -> None:
    """A document read once is not kept, so a scan evicts nothing kept (a document kept
    before it still hits after it); one read again within 64 other misses is kept (its
    third read hits), one read again later is not."""
    async with fs_manager(store_dir) as m:
        docs = {f"k{i:03}": _transcript(60, str(i)) for i in range(100)}
        for k, v in docs.items():
            await m.set(k, v)
        for _ in range(2):
            assert await m.get("k000") == docs["k000"]
        for k, v in docs.items():
            assert await m.get(k) == v
        after_scan = (await m.stats())["decoded_documents"]
        assert (after_scan["hits"], after_scan["misses"]) == (1, 101)
        for _ in range(2):
            assert await m.get("k099") == docs["k099"]
        assert await m.get("k001") == docs["k001"]
        last = (await m.stats())["decoded_documents"]
        assert (last["hits"], last["misses"]) == (2, 103), "k099 kept, k001 (99 misses ago) not"
        assert last["bytes"] <= last["budget"]
