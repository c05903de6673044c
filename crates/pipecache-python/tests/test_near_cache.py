"""Through ``pipecache serve``, a Python process answers repeated gets from its own near
cache, never returns a value another process replaced since, and its hits reach the
server's figures."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

from support import describe, fs_manager
from test_metrics import http_get, samples


def cli_put(store: Path, key: str, data: bytes) -> None:
    """A put by another process: the CLI, through the same server."""
    proc = subprocess.run(
        [os.environ["PIPECACHE_BIN"], "--dir", str(store), "put", key, "-"],
        input=data,
        capture_output=True,
        timeout=60,
    )
    assert proc.returncode == 0, describe(proc)


async def test_near_cache_sees_other_processes_writes_at_once(served_store: Path) -> None:
    async with fs_manager(served_store) as cache:
        cli_put(served_store, "k", b"first")
        assert await cache.get("k") == b"first"
        before = (await cache.stats())["tiers"][0]
        assert before["kind"] == "memory"
        for _ in range(10):
            assert await cache.get("k") == b"first"
        # Answered in this process: the server counts them once the client reports them,
        # which stats() does first.
        stats = await cache.stats()
        after = stats["tiers"][0]
        assert after["hits"] == before["hits"] + 10
        assert after["misses"] == before["misses"]
        near = stats["near_cache"]
        assert near["hits"] == 10 and near["misses"] == 1, near
        assert 0 < near["bytes"] <= near["budget"] == 256 * 2**20
        assert after["near_hits"] == before["near_hits"] + 10
        status, _, text = http_get(served_store / "server.sock", "/metrics")
        assert status == 200
        memory = (("tier", "memory"), ("tier_kind", "memory"))
        assert samples(text)[("pipecache_near_hits_total", memory)] == after["near_hits"]

        cli_put(served_store, "k", b"second")
        assert await cache.get("k") == b"second"
        proc = subprocess.run(
            [os.environ["PIPECACHE_BIN"], "--dir", str(served_store), "rm", "k"],
            capture_output=True,
            timeout=60,
        )
        assert proc.returncode == 0, describe(proc)
        assert await cache.get("k") is None


async def test_no_near_cache_without_a_memory_budget(served_store: Path) -> None:
    async with fs_manager(served_store, memory_size_mb=0) as cache:
        await cache.set("k", b"v")
        assert await cache.get("k") == b"v"
        before = (await cache.stats())["tiers"][0]["hits"]
        assert await cache.get("k") == b"v"
        # Every get asked the server, whose own memory tier answered it.
        stats = await cache.stats()
        assert stats["tiers"][0]["hits"] == before + 1
        assert stats["near_cache"] is None
