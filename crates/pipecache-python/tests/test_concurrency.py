"""Concurrent use loses nothing, one CacheManager works from several threads' event loops,
and the event loop stays responsive during 100 MB transfers."""

from __future__ import annotations

import asyncio
import os
import threading
import time
from pathlib import Path
from typing import Any, Awaitable, Callable, List, Tuple

import numpy as np
import pipecache
from support import assert_same, run, whisper_transcript, write_video

COROUTINES = 64
THREADS = 4
PER_THREAD = 32
MAX_GAP_S = 0.050
BIG = 100 * 1024 * 1024


def _frames(i: int) -> List[Any]:
    return [np.full((8, 8, 3), i % 256, np.uint8), f"frame-{i}".encode()]


async def test_64_coroutines_lose_nothing(manager: pipecache.CacheManager, tmp_path: Path) -> None:
    """64 coroutines at once each set and get their own transcript and keyframes; every
    value reads back equal, during the run and afterwards."""
    cache = pipecache.PipelineArtifactCache(manager)
    videos = [write_video(tmp_path / f"v{i}.mp4", 1000 + i, seed=i) for i in range(COROUTINES)]

    async def one(i: int) -> None:
        transcript = whisper_transcript(f"video number {i}")
        await asyncio.gather(
            cache.set_transcript(videos[i], transcript),
            cache.set_keyframes(videos[i], {"video": i}, _frames(i)),
            manager.set(f"plain/{i}", {"i": i}),
        )
        assert_same(await cache.get_transcript(videos[i]), transcript)
        kf = await cache.get_keyframes(videos[i])
        assert kf is not None and kf.metadata == {"video": i}
        assert kf.images[0].tobytes() == _frames(i)[0].tobytes() and kf.images[1] == _frames(i)[1]
        assert await manager.get(f"plain/{i}") == {"i": i}

    await asyncio.gather(*(one(i) for i in range(COROUTINES)))

    for i in range(COROUTINES):
        assert_same(await cache.get_transcript(videos[i]), whisper_transcript(f"video number {i}"))
        kf = await cache.get_keyframes(videos[i])
        assert kf is not None and kf.metadata == {"video": i}
    assert len(await manager.keys()) == 3 * COROUTINES
    assert (await manager.stats())["local"]["artifacts"] == 3 * COROUTINES


def test_one_manager_from_four_threads(manager: pipecache.CacheManager, tmp_path: Path) -> None:
    """4 threads, each with its own event loop (asyncio.run), share one CacheManager: no
    errors, and every value each wrote reads back equal from every thread."""
    cache = pipecache.PipelineArtifactCache(manager)
    errors: List[str] = []
    videos = [write_video(tmp_path / f"t{t}.mp4", 500 + t, seed=t) for t in range(THREADS)]
    start = threading.Barrier(THREADS)

    async def work(t: int) -> None:
        for i in range(PER_THREAD):
            await manager.set(f"t{t}/{i}", {"thread": t, "i": i, "data": "x" * i})
            assert await manager.get(f"t{t}/{i}") == {"thread": t, "i": i, "data": "x" * i}
        await cache.set_transcript(videos[t], {"thread": t})
        await cache.set_embeddings(videos[t], np.full((2, 3), t, np.float32))

    def thread_main(t: int) -> None:
        try:
            start.wait(timeout=30)
            asyncio.run(work(t))
        except BaseException as e:  # noqa: BLE001 - reported below
            errors.append(f"thread {t}: {type(e).__name__}: {e}")

    threads = [threading.Thread(target=thread_main, args=(t,)) for t in range(THREADS)]
    for th in threads:
        th.start()
    for th in threads:
        th.join(timeout=120)
    assert not any(th.is_alive() for th in threads), "a thread hung"
    assert not errors, errors

    async def check() -> None:
        for t in range(THREADS):
            for i in range(PER_THREAD):
                assert await manager.get(f"t{t}/{i}") == {"thread": t, "i": i, "data": "x" * i}
            assert await cache.get_transcript(videos[t]) == {"thread": t}
            emb = await cache.get_embeddings(videos[t])
            assert emb is not None and emb.tobytes() == np.full((2, 3), t, np.float32).tobytes()

    run(check())


async def _max_gap_during(op: Callable[[], Awaitable[Any]], label: str) -> Tuple[float, Any]:
    """Runs ``op`` while a ticker sleeps 1 ms in a loop; the longest gap between ticks."""
    done = asyncio.Event()
    gaps: List[float] = []

    async def ticker() -> None:
        last = time.perf_counter()
        while not done.is_set():
            await asyncio.sleep(0.001)
            now = time.perf_counter()
            gaps.append(now - last)
            last = now

    task = asyncio.create_task(ticker())
    await asyncio.sleep(0.02)  # the ticker is running
    started = time.perf_counter()
    result = await op()
    took = time.perf_counter() - started
    done.set()
    await task
    worst = max(gaps)
    print(
        f"\n{label}: took {took * 1000:.0f} ms, "
        f"max event-loop gap {worst * 1000:.1f} ms ({len(gaps)} ticks)"
    )
    return worst, result


async def test_loop_responsive_during_100mb_set_and_get(manager: pipecache.CacheManager) -> None:
    """A 1 ms ticker keeps ticking (max gap < 50 ms) during a 100 MB set and a 100 MB get,
    and the bytes come back intact."""
    data = os.urandom(BIG)
    await manager.open()
    await manager.set("warm-up", b"x")
    gap_set, _ = await _max_gap_during(lambda: manager.set("big", data), "set 100 MB")
    gap_get, got = await _max_gap_during(lambda: manager.get("big"), "get 100 MB")
    assert got == data
    assert gap_set < MAX_GAP_S, f"event loop blocked {gap_set * 1000:.1f} ms during a 100 MB set"
    assert gap_get < MAX_GAP_S, f"event loop blocked {gap_get * 1000:.1f} ms during a 100 MB get"


async def test_loop_responsive_during_100mb_of_keyframe_arrays(
    manager: pipecache.CacheManager, tmp_path: Path
) -> None:
    """The same for set_keyframes/get_keyframes of 100 MB of numpy frames (25 x 4 MB)."""
    video = write_video(tmp_path / "v.mp4")
    cache = pipecache.PipelineArtifactCache(manager)
    rng = np.random.default_rng(0)
    frames = [rng.integers(0, 256, (1024, 1024, 4), dtype=np.uint8) for _ in range(25)]
    await manager.open()
    gap_set, _ = await _max_gap_during(
        lambda: cache.set_keyframes(video, None, frames), "set_keyframes 100 MB"
    )
    gap_get, got = await _max_gap_during(
        lambda: cache.get_keyframes(video), "get_keyframes 100 MB"
    )
    assert got is not None and len(got.images) == 25
    assert all(g.tobytes() == f.tobytes() for g, f in zip(got.images, frames))
    assert gap_set < MAX_GAP_S, f"event loop blocked {gap_set * 1000:.1f} ms during set_keyframes"
    assert gap_get < MAX_GAP_S, f"event loop blocked {gap_get * 1000:.1f} ms during get_keyframes"
