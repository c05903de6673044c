"""A script that uses the cache and ends right after its last call exits cleanly (no crash
while the interpreter shuts down with the engine's threads still finishing)."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Optional

from support import describe, run_python

# The crash this guards against hit 10-50% of runs; 40 runs miss it with < 2% chance.
RUNS = 40
PARALLEL = 4

SCRIPT = """
import asyncio, sys
from pipecache import CacheConfig, CacheManager, FilesystemCacheConfig

async def main() -> None:
    async with CacheManager(CacheConfig(backends=[FilesystemCacheConfig(sys.argv[1])])) as m:
        await m.set("k", b"v")
        assert await m.get("k") == b"v"

asyncio.run(main())
"""


def test_exit_right_after_close_is_clean(tmp_path: Path) -> None:
    """40 short processes (open, set, get, close, then the interpreter exits) all exit 0."""
    script = tmp_path / "short.py"
    script.write_text(SCRIPT, encoding="utf-8")

    def one(i: int) -> Optional[str]:
        proc = run_python(
            script, str(tmp_path / f"store-{i % PARALLEL}"), cwd=tmp_path, timeout=60
        )
        return None if proc.returncode == 0 else f"run {i}: {describe(proc)}"

    # Runs i and i + PARALLEL share a store directory, never at the same time.
    with ThreadPoolExecutor(PARALLEL) as pool:
        failures = []
        for start in range(0, RUNS, PARALLEL):
            failures += [f for f in pool.map(one, range(start, start + PARALLEL)) if f]
    assert not failures, f"{len(failures)} of {RUNS} runs crashed:\n" + "\n".join(failures[:3])
