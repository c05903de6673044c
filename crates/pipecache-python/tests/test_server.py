"""Several processes share one store through ``pipecache serve``: the Python package and the
CLI find the server by themselves and every artifact reads back byte-identical."""

from __future__ import annotations

import hashlib
import os
import subprocess
import threading
from pathlib import Path
from typing import List

import pipecache
from support import PYTHON, describe, fs_manager

KEYS_PER_WORKER = 12

PYTHON_WORKER = """
import asyncio, hashlib, sys
import pipecache

def value(key: str) -> bytes:
    seed = hashlib.sha256(key.encode()).digest()
    return seed * (200 + seed[0] * 40)

async def main() -> None:
    store, worker = sys.argv[1], sys.argv[2]
    config = pipecache.CacheConfig(backends=[pipecache.FilesystemCacheConfig(store)])
    async with pipecache.CacheManager(config) as cache:
        for i in range(int(sys.argv[3])):
            key = f"py/{worker}/{i}"
            await cache.set(key, value(key))
            assert await cache.get(key) == value(key), key
        assert (await cache.stats())["tiers"][0]["kind"] == "memory"
    print("ok", flush=True)

asyncio.run(main())
"""


def value(key: str) -> bytes:
    """The bytes every worker stores under ``key`` (the same formula as the Python worker)."""
    seed = hashlib.sha256(key.encode()).digest()
    return seed * (200 + seed[0] * 40)


def cli_worker(store: Path, worker: int, scratch: Path, failures: List[str]) -> None:
    """Puts and gets keys with the ``pipecache`` CLI, one process per call."""
    binary = os.environ["PIPECACHE_BIN"]
    scratch.mkdir()
    for i in range(KEYS_PER_WORKER):
        key = f"cli/{worker}/{i}"
        src, out = scratch / f"{i}.in", scratch / f"{i}.out"
        src.write_bytes(value(key))
        for argv in (["put", key, str(src)], ["get", key, "-o", str(out)]):
            proc = subprocess.run(
                [binary, "--dir", str(store), *argv], capture_output=True, text=True, timeout=60
            )
            if proc.returncode != 0:
                failures.append(f"{argv}: {describe(proc)}")
                return
        if out.read_bytes() != value(key):
            failures.append(f"{key} read back different bytes")


async def test_eight_processes_cli_and_python_share_one_server(
    served_store: Path, tmp_path: Path
) -> None:
    """4 Python processes and 4 CLI workers put and get the same store at once through one
    server; afterwards every artifact of every worker reads back byte-identical."""
    python_workers = [
        subprocess.Popen(
            [PYTHON, "-c", PYTHON_WORKER, str(served_store), str(w), str(KEYS_PER_WORKER)],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for w in range(4)
    ]
    failures: List[str] = []
    threads = [
        threading.Thread(target=cli_worker, args=(served_store, w, tmp_path / f"cli{w}", failures))
        for w in range(4)
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for p in python_workers:
        out, err = p.communicate(timeout=120)
        assert p.returncode == 0 and out.strip() == "ok", f"{out}\n{err}"
    assert failures == []

    async with fs_manager(served_store) as cache:
        keys = await cache.keys("")
        expected = {
            f"{who}/{w}/{i}"
            for who in ("py", "cli")
            for w in range(4)
            for i in range(KEYS_PER_WORKER)
        }
        assert set(keys) == expected
        for key in sorted(expected):
            assert await cache.get(key) == value(key), key


async def test_errors_cross_the_server_as_their_own_kinds(served_store: Path) -> None:
    """A key the store refuses raises the same exception through the server as in process,
    and a deleted key is a miss for every process."""
    async with fs_manager(served_store) as cache:
        try:
            await cache.set("", b"x")
        except pipecache.InvalidInputError:
            pass
        else:
            raise AssertionError("an empty key was accepted")
        await cache.set("gone", b"x")
        assert await cache.delete("gone")
        assert await cache.get("gone") is None
        assert not await cache.exists("gone")
