"""The Python package through ``pipecache serve``, side by side with diskcache 5.6 used from
the same number of processes, in the same run.

- A single 50 KB get, timed call by call (p50, p99): pipecache in process (the store opened
  by this process, its memory tier answering), pipecache through the server with the
  client's near cache (the default: each key is read five times, the first read fills it)
  and without it (``memory_size_mb=0``: every get crosses to the server), diskcache.
- Gets and puts per second from 1, 4 and 16 processes at once, each process looping for a
  few seconds over 1,000 preloaded 50 KB values (gets) or writing new ones (puts), with and
  without near caches (a process with one reads every key once before its clock starts).
  pipecache's puts are fsynced by the server; diskcache's are not (SQLite's default mode),
  so puts are measured a second time against a server with ``durability = "os-buffered"``
  (acknowledged puts survive a crash of the process, not of the machine: diskcache's
  guarantee).

The server is the real ``pipecache serve`` binary (``PIPECACHE_BIN``, else
``target/release/pipecache``). The last column is pipecache / diskcache.

Usage: python server_vs_diskcache.py [--quick] [--out FILE.md]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import List, Optional, Tuple

import diskcache
import pipecache

KEYS = 1_000
VALUE = 50 * 1024
CALLS = 5_000
PROCESSES = [1, 4, 16]

WORKER = """
import asyncio, os, sys, time
kind, op, where, seconds, ident = sys.argv[1:6]
seconds, ident = float(seconds), int(ident)
value = os.urandom(50 * 1024)
keys = [f"k{i}" for i in range(1000)]

async def pipecache_loop() -> int:
    import pipecache
    memory = 0 if kind == "pipecache-far" else None
    config = pipecache.CacheConfig(
        backends=[pipecache.FilesystemCacheConfig(where)], memory_size_mb=memory
    )
    async with pipecache.CacheManager(config) as cache:
        # Connect before the clock starts, and fill the near cache (when there is one):
        # diskcache's workers find its values in the page cache, warm from the preload.
        for key in keys if kind == "pipecache" else keys[:1]:
            await cache.get(key)
        n, end = 0, time.monotonic() + seconds
        while time.monotonic() < end:
            if op == "get":
                assert await cache.get(keys[n * 7919 % 1000]) is not None
            else:
                await cache.set(f"put/{ident}/{n}", value)
            n += 1
        return n

def diskcache_loop() -> int:
    import diskcache
    cache = diskcache.Cache(where, size_limit=2**40)
    n, end = 0, time.monotonic() + seconds
    while time.monotonic() < end:
        if op == "get":
            assert cache.get(keys[n * 7919 % 1000]) is not None
        else:
            cache.set(f"put/{ident}/{n}", value)
        n += 1
    cache.close()
    return n

n = diskcache_loop() if kind == "diskcache" else asyncio.run(pipecache_loop())
print(n, flush=True)
"""


def percentiles(times: List[float]) -> Tuple[float, float]:
    times = sorted(times)
    return times[len(times) // 2] * 1e6, times[int(len(times) * 0.99)] * 1e6


def latency_row(what: str, p50_p99: Tuple[float, float]) -> str:
    return f"| {what} | {p50_p99[0]:.1f} µs | {p50_p99[1]:.1f} µs |"


def binary() -> str:
    given = os.environ.get("PIPECACHE_BIN")
    if given:
        return given
    root = Path(__file__).resolve().parents[3]
    target = Path(os.environ.get("CARGO_TARGET_DIR", root / "target"))
    return str(target / "release" / "pipecache")


def start_server(store: Path, config: Optional[Path] = None) -> subprocess.Popen[bytes]:
    flags = ["--config", str(config)] if config else []
    proc = subprocess.Popen(
        [binary(), "--dir", str(store), *flags, "serve"],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 60
    while True:
        if proc.poll() is not None or time.monotonic() > deadline:
            raise SystemExit("pipecache serve did not start")
        try:
            with socket.socket(socket.AF_UNIX) as s:
                s.connect(str(store / "server.sock"))
            if (store / "server.json").exists():
                return proc
        except OSError:
            pass
        time.sleep(0.02)


async def pipecache_latency(
    store: Path, values: List[bytes], memory_size_mb: Optional[float] = None
) -> Tuple[float, float]:
    config = pipecache.CacheConfig(
        backends=[pipecache.FilesystemCacheConfig(str(store))], memory_size_mb=memory_size_mb
    )
    async with pipecache.CacheManager(config) as cache:
        for i, v in enumerate(values):
            if not await cache.exists(f"k{i}"):
                await cache.set(f"k{i}", v)
        times = []
        for n in range(CALLS):
            t = time.perf_counter()
            assert await cache.get(f"k{n % KEYS}") is not None
            times.append(time.perf_counter() - t)
    return percentiles(times)


def diskcache_latency(where: Path, values: List[bytes]) -> Tuple[float, float]:
    cache = diskcache.Cache(str(where), size_limit=2**40)
    for i, v in enumerate(values):
        cache.set(f"k{i}", v)
    times = []
    for n in range(CALLS):
        t = time.perf_counter()
        assert cache.get(f"k{n % KEYS}") is not None
        times.append(time.perf_counter() - t)
    cache.close()
    return percentiles(times)


def rate(kind: str, op: str, where: Path, processes: int, seconds: float) -> float:
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", WORKER, kind, op, str(where), str(seconds), str(i)],
            stdout=subprocess.PIPE,
            text=True,
        )
        for i in range(processes)
    ]
    total = 0
    for p in procs:
        out, _ = p.communicate(timeout=seconds + 120)
        if p.returncode != 0:
            raise SystemExit(f"a {kind} {op} worker failed")
        total += int(out.strip())
    return total / seconds


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()
    seconds = 1.0 if args.quick else 3.0
    rng = random.Random(3)
    values = [rng.randbytes(VALUE) for _ in range(KEYS)]
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        in_process = asyncio.run(pipecache_latency(root / "in-process", values))
        served_store, dc_dir = root / "served", root / "diskcache"
        server = start_server(served_store)
        try:
            served = asyncio.run(pipecache_latency(served_store, values))
            far = asyncio.run(pipecache_latency(served_store, values, memory_size_mb=0))
            dc = diskcache_latency(dc_dir, values)
            # Every get spell before any put: puts would push the preloaded values out of
            # the server's memory tier (and, past diskcache's size limit, out of diskcache).
            gets = {
                n: (
                    rate("pipecache", "get", served_store, n, seconds),
                    rate("pipecache-far", "get", served_store, n, seconds),
                    rate("diskcache", "get", dc_dir, n, seconds),
                )
                for n in PROCESSES
            }
            puts = {
                n: (
                    rate("pipecache", "put", served_store, n, seconds),
                    rate("diskcache", "put", dc_dir, n, seconds),
                )
                for n in PROCESSES
            }
        finally:
            server.terminate()
            server.wait(timeout=60)
        buffered_store, config = root / "buffered", root / "buffered.toml"
        config.write_text('durability = "os-buffered"\n')
        server = start_server(buffered_store, config)
        try:
            buffered = {n: rate("pipecache", "put", buffered_store, n, seconds) for n in PROCESSES}
        finally:
            server.terminate()
            server.wait(timeout=60)
        rows = [(n, *gets[n], *puts[n], buffered[n]) for n in PROCESSES]
    lines = [
        f"pipecache {pipecache.__version__} through `pipecache serve` vs diskcache "
        f"{diskcache.__version__}, Python {sys.version.split()[0]}; {KEYS} x 50 KB, "
        f"{CALLS} single gets, {seconds:.0f}-second spells per process count",
        "",
        "| single 50 KB get from Python | p50 | p99 |",
        "|---|---|---|",
        latency_row("pipecache in process (memory tier)", in_process),
        latency_row("pipecache through the server, near cache", served),
        latency_row("pipecache through the server, no near cache", far),
        latency_row("diskcache", dc),
        "",
        "| processes | pipecache gets/s (near cache) | ratio | no near cache | ratio "
        "| diskcache gets/s |",
        "|---|---|---|---|---|---|",
    ]
    for n, pg, fg, dg, _, _, _ in rows:
        lines.append(
            f"| {n} | {pg:,.0f} | {pg / dg:.2f}x | {fg:,.0f} | {fg / dg:.2f}x | {dg:,.0f} |"
        )
    lines += [
        "",
        "| processes | pipecache puts/s (fsynced) | ratio | pipecache puts/s (os-buffered) "
        "| ratio | diskcache puts/s |",
        "|---|---|---|---|---|---|",
    ]
    for n, _, _, _, pp, dp, bp in rows:
        lines.append(
            f"| {n} | {pp:,.0f} | {pp / dp:.2f}x | {bp:,.0f} | {bp / dp:.2f}x | {dp:,.0f} |"
        )
    text = "\n".join(lines) + "\n"
    print(text)
    if args.out:
        args.out.write_text(text)


if __name__ == "__main__":
    main()
