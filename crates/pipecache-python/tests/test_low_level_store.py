"""Store: one local store directory, bytes or named parts under keys."""

from __future__ import annotations

import asyncio
import os
from pathlib import Path

import pipecache
import pytest


async def test_open_put_get_delete_exists_list(store_dir: Path) -> None:
    """open/put/get/get_parts/delete/exists/list/stats/close, bytes-like values."""
    store = await pipecache.Store.open(store_dir)
    assert store.path == str(store_dir)
    assert (store_dir / "PIPECACHE").is_file()
    payload = os.urandom(70_000)
    await store.put("bin/1", payload)
    await store.put("bin/2", bytearray(b"from a bytearray"))
    await store.put("bin/3", memoryview(b"from a memoryview"))
    await store.put("other", b"")
    assert await store.get("bin/1") == payload
    assert await store.get("bin/2") == b"from a bytearray"
    assert await store.get("bin/3") == b"from a memoryview"
    assert await store.get("other") == b""
    assert isinstance(await store.get("bin/2"), bytes)
    assert await store.get_parts("bin/1") == {"data": payload}
    assert await store.exists("bin/1") and not await store.exists("bin/9")
    assert sorted(await store.list()) == ["bin/1", "bin/2", "bin/3", "other"]
    assert sorted(await store.list("bin/")) == ["bin/1", "bin/2", "bin/3"]
    stats = await store.stats()
    assert stats["artifacts"] == 4
    assert stats["logical_bytes"] == len(payload) + len(b"from a bytearray") + len(
        b"from a memoryview"
    )
    assert await store.delete("bin/1") is True
    assert await store.delete("bin/1") is False
    assert await store.get("bin/1") is None
    assert await store.get_parts("bin/1") is None
    assert (await store.stats())["artifacts"] == 3
    await store.close()
    await store.close()


async def test_named_parts(store_dir: Path) -> None:
    """A dict of named parts comes back whole from get_parts; get refuses several parts."""
    parts = {
        "frame_000.jpg": os.urandom(5000),
        "frame_001.jpg": b"second",
        "meta.json": b'{"fps": 25}',
    }
    async with await pipecache.Store.open(store_dir) as store:
        await store.put("multi", parts, kind="keyframes")
        got = await store.get_parts("multi")
        assert got == parts
        assert got is not None and list(got) == list(parts)  # part order kept
        with pytest.raises(pipecache.InvalidInputError, match="get_parts"):
            await store.get("multi")
        with pytest.raises(pipecache.InvalidInputError):
            await store.put("bad", {"name": "a str is not bytes"})


async def test_ttl_strings_and_seconds(store_dir: Path) -> None:
    """put takes a TTL as "7d"/"12h" or seconds; short ones expire, long ones stay."""
    async with await pipecache.Store.open(store_dir) as store:
        await store.put("week", b"w", ttl="7d")
        await store.put("half-day", b"h", ttl="12h")
        await store.put("seconds", b"s", ttl=86_400)
        await store.put("short-str", b"1", ttl="1s")
        await store.put("short-sec", b"2", ttl=1)
        await store.put("short-float", b"3", ttl=0.8)
        assert await store.get("short-sec") == b"2"
        await asyncio.sleep(1.3)
        for key in ("short-str", "short-sec", "short-float"):
            assert await store.get(key) is None, key
            assert not await store.exists(key), key
        for key in ("week", "half-day", "seconds"):
            assert await store.get(key) is not None, key
        assert sorted(await store.list()) == ["half-day", "seconds", "week"]
        with pytest.raises(pipecache.InvalidInputError):
            await store.put("bad", b"x", ttl="7 days")
        with pytest.raises(pipecache.InvalidInputError):
            await store.put("bad", b"x", ttl=-1)


async def test_compress_flag(store_dir: Path) -> None:
    """compress=True shrinks compressible bytes, compress=False keeps them raw; both read
    back equal."""
    text = b"abcdefgh" * 50_000
    async with await pipecache.Store.open(store_dir) as store:
        await store.put("raw", text, compress=False)
        raw_stored = (await store.stats())["stored_bytes"]
        await store.put("z", text + b"!", compress=True)
        z_stored = (await store.stats())["stored_bytes"] - raw_stored
        assert raw_stored >= len(text)
        assert z_stored < len(text) // 10
        assert await store.get("raw") == text
        assert await store.get("z") == text + b"!"


async def test_reopen_keeps_data(store_dir: Path) -> None:
    """What was put is there after close and reopen."""
    async with await pipecache.Store.open(store_dir) as store:
        await store.put("k", b"durable")
    async with await pipecache.Store.open(store_dir, create=False) as store:
        assert await store.get("k") == b"durable"


async def test_open_without_create(tmp_path: Path) -> None:
    """create=False refuses a directory that does not exist."""
    with pytest.raises(pipecache.InvalidInputError):
        await pipecache.Store.open(tmp_path / "absent", create=False)
    assert not (tmp_path / "absent").exists()


async def test_refuses_foreign_directory(tmp_path: Path) -> None:
    """A non-empty directory that is not a store is refused and left as it was (a mistyped
    path never becomes a store)."""
    foreign = tmp_path / "photos"
    foreign.mkdir()
    (foreign / "holiday.jpg").write_bytes(b"jpeg")
    with pytest.raises(pipecache.CacheError):
        await pipecache.Store.open(foreign)
    left = sorted(p.name for p in foreign.iterdir())
    assert left == ["holiday.jpg"], f"a refused open left files behind: {left}"


async def test_store_and_manager_share_the_format(store_dir: Path) -> None:
    """Bytes put with Store come back as bytes from a CacheManager on the same directory,
    and named parts as a dict."""
    async with await pipecache.Store.open(store_dir) as store:
        await store.put("one", b"single part")
        await store.put("many", {"a": b"1", "b": b"2"})
    async with pipecache.CacheManager(
        pipecache.CacheConfig(backends=[pipecache.FilesystemCacheConfig(store_dir)])
    ) as m:
        assert await m.get("one") == b"single part"
        assert await m.get("many") == {"a": b"1", "b": b"2"}
