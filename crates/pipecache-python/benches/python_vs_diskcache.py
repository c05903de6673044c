"""pipecache from Python, side by side with diskcache 5.6 in the same run.

Workloads (as the Rust store bench): 1,000 x 50 KB incompressible, 1,000 x 50 KB JSON-like
(documents: a dict per value, pickled by diskcache, CBOR in pipecache), 100 x 10 MB
incompressible; then single-call latency of a 50 KB ``get_transcript`` hit, and stored bytes
of a keyframe workload with shared intros (half of each video's frames).

pipecache's puts are fsynced (group commit, 32 in flight, as an asyncio pipeline would issue
them); diskcache's are not (SQLite in its default mode, one file per large value). Gets run
one at a time in both. Each figure is the median of ``ROUNDS`` rounds; the table's last
column is pipecache / diskcache (above 1: pipecache is faster, or smaller for bytes).

Usage: python python_vs_diskcache.py [--quick] [--out FILE.md]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Callable, Dict, List, Tuple

import diskcache
import numpy as np
import pipecache

ROUNDS = 3
IN_FLIGHT = 32


def incompressible(n: int, size: int, seed: int) -> List[bytes]:
    rng = random.Random(seed)
    return [rng.randbytes(size) for _ in range(n)]


def json_like(n: int, size: int, seed: int) -> List[Dict[str, Any]]:
    """Whisper-like transcripts of about ``size`` bytes each."""
    rng = random.Random(seed)
    words = [
        "the",
        "speaker",
        "explains",
        "slide",
        "model",
        "frame",
        "video",
        "next",
        "detail",
        "cache",
    ]
    out = []
    for i in range(n):
        segments = []
        length = 0
        while length < size:
            text = " ".join(rng.choice(words) for _ in range(12))
            seg = {
                "id": len(segments),
                "start": length / 100.0,
                "end": length / 100.0 + 1.5,
                "text": text,
                "tokens": [rng.randrange(50_000) for _ in range(8)],
                "avg_logprob": -rng.random(),
            }
            segments.append(seg)
            length += len(text) + 90
        out.append({"text": f"video {i}", "language": "en", "segments": segments})
    return out


async def pc_put_all(cache: pipecache.CacheManager, keys: List[str], values: List[Any]) -> None:
    sem = asyncio.Semaphore(IN_FLIGHT)

    async def one(k: str, v: Any) -> None:
        async with sem:
            await cache.set(k, v)

    await asyncio.gather(*(one(k, v) for k, v in zip(keys, values)))


async def pc_get_all(cache: pipecache.CacheManager, keys: List[str]) -> None:
    for k in keys:
        if await cache.get(k) is None:
            raise AssertionError(f"pipecache lost {k}")


def dc_put_all(cache: diskcache.Cache, keys: List[str], values: List[Any]) -> None:
    for k, v in zip(keys, values):
        cache.set(k, v)


def dc_get_all(cache: diskcache.Cache, keys: List[str]) -> None:
    for k in keys:
        if cache.get(k) is None:
            raise AssertionError(f"diskcache lost {k}")


def timed(f: Callable[[], Any]) -> float:
    start = time.perf_counter()
    f()
    return time.perf_counter() - start


def throughput(
    name: str, values: List[Any], size: int, work: Path
) -> List[Tuple[str, float, float]]:
    """Median puts/s and gets/s of both systems over ROUNDS fresh stores: every value read
    once after all the puts, then every value read again (pipecache's memory tier keeps
    what it read; diskcache has the page cache for both)."""
    keys = [f"bench:{name}:{i}" for i in range(len(values))]
    pc_put, pc_get, pc_again, dc_put, dc_get, dc_again = [], [], [], [], [], []
    for r in range(ROUNDS):
        d = work / f"{name}-{r}"
        cfg = pipecache.CacheConfig(backends=[pipecache.FilesystemCacheConfig(d / "pipecache")])

        async def run_pc(cfg: pipecache.CacheConfig) -> Tuple[float, float, float]:
            async with pipecache.CacheManager(cfg) as cache:
                t0 = time.perf_counter()
                await pc_put_all(cache, keys, values)
                t1 = time.perf_counter()
                await pc_get_all(cache, keys)
                t2 = time.perf_counter()
                await pc_get_all(cache, keys)
                t3 = time.perf_counter()
            return t1 - t0, t2 - t1, t3 - t2

        put_s, get_s, again_s = asyncio.run(run_pc(cfg))
        pc_put.append(len(values) / put_s)
        pc_get.append(len(values) / get_s)
        pc_again.append(len(values) / again_s)
        with diskcache.Cache(str(d / "diskcache")) as dc:
            dc_put.append(len(values) / timed(lambda: dc_put_all(dc, keys, values)))
            dc_get.append(len(values) / timed(lambda: dc_get_all(dc, keys)))
            dc_again.append(len(values) / timed(lambda: dc_get_all(dc, keys)))
        shutil.rmtree(d)
    med = statistics.median
    return [
        (f"{name} put/s", med(pc_put), med(dc_put)),
        (f"{name} get/s", med(pc_get), med(dc_get)),
        (f"{name} get/s, read again", med(pc_again), med(dc_again)),
    ]


def transcript_latency(work: Path, calls: int) -> Tuple[float, float, float, float]:
    """p50/p99 of one 50 KB get_transcript hit from Python, and of diskcache's get of the
    same dict, in µs. A repeated hit copies the containers of the document decoded at the
    first (the decoded documents kept for repeated reads); ``first_read_decode`` times what
    the first read in a process pays instead."""
    doc = json_like(1, 50_000, 7)[0]
    video = work / "talk.mp4"
    video.write_bytes(b"\x07" * (1 << 20))
    cfg = pipecache.CacheConfig(backends=[pipecache.FilesystemCacheConfig(work / "latency-pc")])

    async def run() -> List[float]:
        async with pipecache.CacheManager(cfg) as cache:
            p = pipecache.PipelineArtifactCache(cache)
            await p.set_transcript(video, doc, model_size="base", language="en")
            times = []
            for i in range(calls + 500):
                t = time.perf_counter_ns()
                got = await p.get_transcript(video, model_size="base", language="en")
                took = time.perf_counter_ns() - t
                if got is None:
                    raise AssertionError("miss")
                if i >= 500:
                    times.append(took / 1000)
            return times

    ours = sorted(asyncio.run(run()))
    theirs = []
    with diskcache.Cache(str(work / "latency-dc")) as dc:
        dc.set("t", doc)
        for i in range(calls + 500):
            t = time.perf_counter_ns()
            dc.get("t")
            took = time.perf_counter_ns() - t
            if i >= 500:
                theirs.append(took / 1000)
    theirs.sort()

    def pct(xs: List[float], p: float) -> float:
        return xs[int((len(xs) - 1) * p)]

    return pct(ours, 0.5), pct(ours, 0.99), pct(theirs, 0.5), pct(theirs, 0.99)


def first_read_decode(calls: int) -> Tuple[float, float]:
    """p50 of decoding the 50 KB transcript with nothing kept (what the first get of a
    document in a process pays), and of ``pickle.loads`` of the same dict, in µs."""
    import pickle

    from pipecache import _native

    doc = json_like(1, 50_000, 7)[0]
    raw = bytes(_native.encode_document(doc, "transcript"))
    pickled = pickle.dumps(doc)

    def p50(f: Callable[[], Any]) -> float:
        times = []
        for i in range(calls + 500):
            t = time.perf_counter_ns()
            f()
            if i >= 500:
                times.append((time.perf_counter_ns() - t) / 1000)
        return sorted(times)[calls // 2]

    return p50(lambda: _native.decode_document(raw, "transcript")), p50(
        lambda: pickle.loads(pickled)
    )


def crossing_latency(calls: int) -> float:
    """p50 of a native call that does nothing: the cost of crossing into Rust and back."""
    from pipecache import _native
    from pipecache._bridge import call

    async def run() -> List[float]:
        times = []
        for i in range(calls + 500):
            t = time.perf_counter_ns()
            await call(_native.ping)
            if i >= 500:
                times.append((time.perf_counter_ns() - t) / 1000)
        return sorted(times)

    return asyncio.run(run())[calls // 2]


def du(path: Path) -> int:
    return sum(f.stat().st_size for f in path.rglob("*") if f.is_file())


def keyframe_bytes(work: Path, videos: int, frames: int) -> Tuple[int, int, int]:
    """Bytes on disk after caching keyframes of ``videos`` videos sharing a 30-frame intro:
    pipecache (frames deduplicated), diskcache (one pickled artifact per video), and the
    logical size."""
    rng = np.random.default_rng(3)
    intro = [rng.integers(0, 256, 20_000, dtype=np.uint8).tobytes() for _ in range(30)]
    sets = []
    for _ in range(videos):
        own = [rng.integers(0, 256, 20_000, dtype=np.uint8).tobytes() for _ in range(frames - 30)]
        meta = [{"index": i, "timestamp": i * 2.0} for i in range(frames)]
        sets.append((meta, intro + own))
    logical = sum(len(img) for _, imgs in sets for img in imgs)
    cfg = pipecache.CacheConfig(backends=[pipecache.FilesystemCacheConfig(work / "kf-pc")])

    async def run() -> None:
        async with pipecache.CacheManager(cfg) as cache:
            p = pipecache.PipelineArtifactCache(cache)
            for v, (meta, imgs) in enumerate(sets):
                path = work / f"video{v}.mp4"
                path.write_bytes(str(v).encode())
                await p.set_keyframes(path, meta, imgs)

    asyncio.run(run())
    with diskcache.Cache(str(work / "kf-dc")) as dc:
        for v, (meta, imgs) in enumerate(sets):
            dc.set(f"video{v}:keyframes", (meta, imgs))
    # The store keeps a fixed reserve file (16 MiB) so it can always free space on a full
    # disk; it does not grow with the data, so it is reported apart.
    reserve = work / "kf-pc" / "reserve"
    reserved = reserve.stat().st_size if reserve.exists() else 0
    return du(work / "kf-pc") - reserved, du(work / "kf-dc"), logical


def rust_figure(root: Path) -> str:
    """The Rust row of the same call, from `cargo bench --bench pipeline` when it ran."""
    target = Path(os.environ.get("CARGO_TARGET_DIR", root / "target"))
    f = target / "pipecache-bench" / "pipeline.md"
    return (
        f.read_text() if f.exists() else "(run `cargo bench --bench pipeline` for the Rust row)\n"
    )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--quick", action="store_true", help="50 KB workloads only, fewer calls")
    ap.add_argument("--out", type=Path, help="also write the tables to this markdown file")
    args = ap.parse_args()
    work = Path(tempfile.mkdtemp(prefix="pipecache-pybench-"))
    try:
        rows = []
        rows += throughput("50KB-incompressible", incompressible(1000, 50_000, 1), 50_000, work)
        rows += throughput("50KB-json", json_like(1000, 50_000, 2), 50_000, work)
        if not args.quick:
            rows += throughput(
                "10MB-incompressible", incompressible(100, 10_000_000, 3), 10_000_000, work
            )
        p50, p99, dc50, dc99 = transcript_latency(work, 1000 if args.quick else 5000)
        crossing = crossing_latency(1000 if args.quick else 5000)
        decode, unpickle = first_read_decode(1000 if args.quick else 5000)
        pc_bytes, dc_bytes, logical = keyframe_bytes(work, 20 if args.quick else 50, 60)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    lines = [
        f"pipecache {pipecache.__version__} vs diskcache {diskcache.__version__}, "
        f"Python {sys.version.split()[0]}, median of {ROUNDS} rounds",
        "",
        "| workload | pipecache | diskcache | pipecache / diskcache |",
        "|---|---|---|---|",
    ]
    for name, ours, theirs in rows:
        lines.append(f"| {name} | {ours:,.0f} | {theirs:,.0f} | {ours / theirs:.2f}x |")
    lines += [
        "",
        "| call | p50 | p99 |",
        "|---|---|---|",
        f"| Python `get_transcript`, 50 KB hit | {p50:.1f} µs | {p99:.1f} µs |",
        f"| diskcache `get` of the same dict | {dc50:.1f} µs | {dc99:.1f} µs |",
        f"| a first read in the process: decoding the 50 KB transcript | {decode:.1f} µs | |",
        f"| `pickle.loads` of the same dict | {unpickle:.1f} µs | |",
        f"| a native call that does nothing (the crossing) | {crossing:.1f} µs | |",
        rust_figure(Path(__file__).resolve().parents[3]).rstrip("\n"),
        "",
        "| keyframes: 60 per video, the first 30 a shared intro | bytes on disk |",
        "|---|---|",
        f"| logical (every frame of every video) | {logical:,} |",
        f"| pipecache (chunks + index; plus a fixed 16 MiB reserve file) | {pc_bytes:,} "
        f"({pc_bytes / logical:.2f} of logical) |",
        f"| diskcache | {dc_bytes:,} ({dc_bytes / logical:.2f} of logical) |",
    ]
    text = "\n".join(lines) + "\n"
    print(text)
    if args.out:
        args.out.write_text(text)


if __name__ == "__main__":
    main()
