"""The server's metrics per stage and tier after a scripted pipeline workload with a failing
remote tier, and the dashboard showing them in headless Chromium.

The workload: three artifacts written with no server, then a server whose config adds a
Redis tier nothing listens on, and through it gets with known answers. Every number is
then known exactly: lookups per stage, each tier's hits, misses and errors per stage, the
recompute time saved and the videos missed most.
"""

from __future__ import annotations

import json
import os
import subprocess
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any, Dict, List, Tuple

import numpy as np
import pipecache
from browser import Browser
from conftest import serving
from support import PYTHON, free_port, fs_manager, write_video
from test_metrics import Labels, samples, total

TOKEN = "dashboard-test-token-5b1e"

# What one phase-2 get of each stage returns, in order (see the module docstring).
EXPECTED_LOOKUPS = {
    ("transcript", "hit"): 2,
    ("embeddings", "hit"): 1,
    ("embeddings", "miss"): 1,
    ("descriptions", "miss"): 3,
}
RESULTS = (("hit", "hits"), ("miss", "misses"), ("error", "errors"))
# Recompute costs of the pipeline's stages (ArtifactKind::recompute_seconds).
COST = {"transcript": 20.0, "embeddings": 30.0}


def http(port: int, path: str) -> Tuple[int, str]:
    request = urllib.request.Request(
        f"http://127.0.0.1:{port}{path}", headers={"Authorization": f"Bearer {TOKEN}"}
    )
    with urllib.request.urlopen(request, timeout=30) as r:
        return r.status, r.read().decode()


def output_dir(tmp_path: Path) -> Path:
    """Where screenshots go: ``PIPECACHE_TEST_OUTPUT`` (CI sets it), else the test's tmp."""
    return Path(os.environ.get("PIPECACHE_TEST_OUTPUT", str(tmp_path)))


async def write_phase(store: Path, a: Path, b: Path) -> None:
    """Three artifacts, in process (no server yet)."""
    async with fs_manager(store) as manager:
        cache = pipecache.PipelineArtifactCache(manager)
        await cache.set_transcript(a, {"text": "video a", "segments": []})
        await cache.set_embeddings(a, np.ones((4, 8), dtype=np.float32))
        await cache.set_transcript(b, {"text": "video b", "segments": []})


async def read_phase(store: Path, a: Path, b: Path) -> Dict[str, str]:
    """The scripted gets through the server; the videos' fingerprints."""
    async with fs_manager(store) as manager:
        cache = pipecache.PipelineArtifactCache(manager)
        assert (await cache.get_transcript(a))["text"] == "video a"
        assert (await cache.get_transcript(a))["text"] == "video a"
        assert await cache.get_embeddings(a) is not None
        assert await cache.get_descriptions(a) is None
        assert await cache.get_descriptions(b) is None
        assert await cache.get_descriptions(b) is None
        assert await cache.get_embeddings(b) is None
        # Python's stats() is the same report: lookups per stage as the script made them.
        stats = await manager.stats()
        lookups = {(k["kind"], r): k[f] for k in stats["lookups"] for r, f in RESULTS}
        assert {k: n for k, n in lookups.items() if n} == EXPECTED_LOOKUPS
        assert [m["misses"] for m in stats["most_missed"]] == [3, 1]
        return {"a": await cache.fingerprint(a), "b": await cache.fingerprint(b)}


def failing_redis_config(path: Path) -> Path:
    path.write_text(
        f"""
[[backends]]
type = "redis"
name = "redis"
priority = 1
url = "redis://127.0.0.1:{free_port()}/0"
"""
    )
    return path


def check_metrics(got: Dict[Tuple[str, Labels], float], fingerprints: Dict[str, str]) -> None:
    """Every per-stage and per-tier counter equals the workload's numbers."""
    for (kind, result), n in EXPECTED_LOOKUPS.items():
        assert got[("pipecache_lookups_total", (("kind", kind), ("result", result)))] == n
    assert total(got, "pipecache_lookups_total", result="error") == 0
    assert total(got, "pipecache_lookups_total") == sum(EXPECTED_LOOKUPS.values())
    assert total(got, "pipecache_lookup_seconds_count") == sum(EXPECTED_LOOKUPS.values())
    for kind, cost in COST.items():
        hits = EXPECTED_LOOKUPS[(kind, "hit")]
        assert got[("pipecache_recompute_saved_seconds_total", (("kind", kind),))] == hits * cost

    def per(name: str, tier: str, kind: str) -> float:
        return total(got, f"pipecache_{name}", tier=tier, kind=kind)

    expected = {
        # The first transcript get reads the local store and fills memory; the second
        # hits memory. Everything else misses memory.
        ("hits_total", "memory", "transcript"): 1,
        ("misses_total", "memory", "transcript"): 1,
        ("misses_total", "memory", "embeddings"): 2,
        ("misses_total", "memory", "descriptions"): 3,
        ("hits_total", "local", "transcript"): 1,
        ("hits_total", "local", "embeddings"): 1,
        ("misses_total", "local", "embeddings"): 1,
        ("misses_total", "local", "descriptions"): 3,
        # Local misses go on to Redis, which is down: errors, never misses. Three failed
        # reads in a row pause it, so the fourth is skipped (checked below: an error
        # instead if the pause ran out first on a slow machine).
        ("errors_total", "redis", "descriptions"): 3,
        ("misses_total", "redis", "descriptions"): 0,
        ("hits_total", "redis", "transcript"): 0,
        # One latency observation per call on each tier.
        ("get_seconds_count", "memory", "transcript"): 1,
        ("get_seconds_count", "memory", "descriptions"): 0,
        ("get_seconds_count", "local", "embeddings"): 2,
        ("get_seconds_count", "redis", "descriptions"): 3,
    }
    for (name, tier, kind), n in expected.items():
        assert per(name, tier, kind) == n, (name, tier, kind)
    assert total(got, "pipecache_errors_total", tier="local") == 0
    skipped = total(got, "pipecache_skipped_total", tier="redis")
    assert total(got, "pipecache_errors_total", tier="redis") + skipped == 4
    assert (
        per("errors_total", "redis", "embeddings") + per("skipped_total", "redis", "embeddings")
        == 1
    )
    assert skipped <= 1 and total(got, "pipecache_skipped_total", tier="local") == 0
    assert total(got, "pipecache_timeouts_total") == 0
    assert total(got, "pipecache_queue_length", tier="redis") == 0
    assert total(got, "pipecache_last_success_timestamp_seconds", tier="redis") == 0
    assert total(got, "pipecache_last_failure_timestamp_seconds", tier="redis") > 0
    assert total(got, "pipecache_last_failure_timestamp_seconds", tier="local") == 0
    assert got[("pipecache_artifacts", ())] == 3
    assert fingerprints["a"] != fingerprints["b"]


async def test_metrics_and_dashboard_after_a_scripted_workload(tmp_path: Path) -> None:
    store = tmp_path / "store"
    a = write_video(tmp_path / "a.mp4", seed=1)
    b = write_video(tmp_path / "b.mp4", seed=2)
    await write_phase(store, a, b)
    config = failing_redis_config(tmp_path / "pipecache.toml")
    token_file = tmp_path / "token"
    token_file.write_text(TOKEN)
    port = free_port()
    with serving(
        store,
        "--config",
        str(config),
        log=tmp_path / "serve.log",
        serve_args=("--tcp", f"127.0.0.1:{port}", "--token-file", str(token_file)),
    ):
        fingerprints = await read_phase(store, a, b)
        status, text = http(port, "/metrics")
        assert status == 200
        got = samples(text)
        check_metrics(got, fingerprints)
        _, body = http(port, "/v1/stats")
        stats = json.loads(body)
        assert [(m["subject"], m["misses"]) for m in stats["most_missed"]] == [
            (fingerprints["b"], 3),
            (fingerprints["a"], 1),
        ]
        # The CLI's stats --json, through the server, is the same report.
        cli = subprocess.run(
            [os.environ["PIPECACHE_BIN"], "--dir", str(store), "stats", "--json"],
            capture_output=True,
            check=True,
        )
        by_cli = json.loads(cli.stdout)

        def counts(report: Dict[str, Any]) -> List[Tuple[Any, ...]]:
            # Counts only: a float crossing JSON twice may move by one ulp.
            return [
                (k["kind"], k["hits"], k["misses"], k["errors"], k["get_seconds"]["count"])
                for k in report["lookups"]
            ]

        assert counts(by_cli) == counts(stats)
        assert by_cli["most_missed"] == stats["most_missed"]
        with Browser(tmp_path / "chromium-profile") as browser:
            check_dashboard(browser, port, got, fingerprints, tmp_path)


def check_dashboard(
    browser: Browser,
    port: int,
    got: Dict[Tuple[str, Labels], float],
    fingerprints: Dict[str, str],
    tmp_path: Path,
) -> None:
    """The page loads clean, shows /metrics' numbers, and reads at a phone's width."""
    origin = f"http://127.0.0.1:{port}/"
    # The page itself needs no token (it holds no data) and may reach only the server;
    # its data does need the token.
    with urllib.request.urlopen(origin, timeout=30) as page:
        assert page.status == 200
        policy = page.headers["Content-Security-Policy"]
        assert "default-src 'none'" in policy and "connect-src 'self'" in policy, policy
    try:
        urllib.request.urlopen(f"{origin}v1/stats", timeout=30)
        raise AssertionError("/v1/stats answered without the token")
    except urllib.error.HTTPError as e:
        assert e.code == 401
    browser.resize(1280, 900)
    browser.navigate(f"{origin}#token={TOKEN}")
    browser.wait_until("document.getElementById('status').textContent.startsWith('live')")

    cells = browser.evaluate(
        "[...document.querySelectorAll('td[data-field]')].map(td => "
        "({kind: td.dataset.kind || null, tier: td.dataset.tier || null, "
        "field: td.dataset.field, text: td.textContent}))"
    )
    shown = {
        (c["kind"] or c["tier"], c["field"]): int(c["text"].replace(",", ""))
        for c in cells
        if c["field"] != "last_failure"
    }
    # The dead tier is marked failing (its last call failed); the others are not.
    states = browser.evaluate(
        "Object.fromEntries([...document.querySelectorAll('#tiers tbody tr')].map(tr => "
        "[tr.cells[0].textContent, tr.querySelector('.dot').className]))"
    )
    assert states == {"memory": "dot ok", "local": "dot ok", "redis": "dot failing"}, states
    for kind in ("keyframes", "transcript", "descriptions", "embeddings"):
        for field, result in (("hits", "hit"), ("misses", "miss"), ("errors", "error")):
            labels = (("kind", kind), ("result", result))
            assert shown[(kind, field)] == got[("pipecache_lookups_total", labels)], (kind, field)
    for tier in ("memory", "local", "redis"):
        for field in ("hits", "misses", "errors", "timeouts", "skipped"):
            expected = total(got, f"pipecache_{field}_total", tier=tier)
            assert shown[(tier, field)] == expected, (tier, field)
        assert shown[(tier, "queue_length")] == total(got, "pipecache_queue_length", tier=tier)
    missed = browser.evaluate(
        "[...document.querySelectorAll('td[data-subject]')].map(td => "
        "[td.dataset.subject, td.textContent])"
    )
    assert missed == [[fingerprints["b"], "3"], [fingerprints["a"], "1"]]
    # 2 transcript hits × 20 s + 1 embeddings hit × 30 s, today and in total.
    for figure in ("saved-total", "saved-today"):
        shown_saved = browser.evaluate(
            f"[document.getElementById('{figure}').textContent, "
            f"document.getElementById('{figure}').dataset.seconds]"
        )
        assert shown_saved == ["1.2 min", "70"], (figure, shown_saved)

    # Live traffic for the charts, then the screenshots.
    traffic = subprocess.Popen([PYTHON, "-c", TRAFFIC, str(tmp_path / "store"), "8"])
    time.sleep(9)
    assert traffic.wait(timeout=60) == 0
    browser.wait_until("document.querySelectorAll('#hit-chart path').length > 0")
    out = output_dir(tmp_path)
    browser.screenshot(out / "dashboard.png")
    browser.resize(390, 844, mobile=True)
    time.sleep(0.5)
    overflow = browser.evaluate("document.documentElement.scrollWidth - window.innerWidth")
    assert overflow <= 0, f"the page is {overflow}px wider than a phone"
    browser.screenshot(out / "dashboard-phone.png")

    assert browser.console_errors() == []
    outside = [u for u in browser.requested_urls() if not u.startswith(origin)]
    assert outside == [], outside


# Gets through the server for `seconds`, so the charts have lines: hits on the stored
# transcripts and embeddings, and now and then a descriptions miss, which waits on the
# Redis tier that is down.
TRAFFIC = """
import asyncio, sys, time
from pathlib import Path
import pipecache

async def main(store, seconds):
    cfg = pipecache.CacheConfig(backends=[pipecache.FilesystemCacheConfig(store)])
    async with pipecache.CacheManager(cfg) as manager:
        cache = pipecache.PipelineArtifactCache(manager)
        videos = sorted(Path(store).parent.glob("*.mp4"))
        end = time.monotonic() + seconds

        async def hits():
            i = 0
            while time.monotonic() < end:
                await cache.get_transcript(videos[i % len(videos)])
                if i % 4 == 0:
                    await cache.get_embeddings(videos[0])
                i += 1
                await asyncio.sleep(0.005)

        async def misses():
            while time.monotonic() < end:
                await cache.get_descriptions(videos[1])
                await asyncio.sleep(0.5)

        await asyncio.gather(hits(), misses())

asyncio.run(main(sys.argv[1], float(sys.argv[2])))
"""
