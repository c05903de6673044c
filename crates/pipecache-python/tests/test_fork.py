"""A process forked from one that used pipecache inherits none of its threads: a call that
needs them fails at once with CacheError, naming the fix, instead of waiting forever (a hit
in the memory tier needs none and still answers)."""

from __future__ import annotations

import asyncio
import os
import time
from pathlib import Path

import pipecache
from support import fs_manager


async def test_a_forked_child_fails_fast(store_dir: Path) -> None:
    """The child's read of the store raises CacheError within seconds; the parent keeps
    working."""
    m = fs_manager(store_dir)
    await m.set("k", b"v")
    pid = os.fork()
    if pid == 0:  # the child: report through the exit code, never return into pytest
        code = 1
        try:
            asyncio.run(asyncio.wait_for(m.get("not-in-memory"), timeout=10))
        except pipecache.CacheError as e:
            code = 0 if "fork" in str(e) else 2
        except BaseException:
            code = 3
        os._exit(code)
    deadline = time.monotonic() + 30
    while True:
        done, status = os.waitpid(pid, os.WNOHANG)
        if done:
            break
        if time.monotonic() > deadline:
            os.kill(pid, 9)
            os.waitpid(pid, 0)
            raise AssertionError("the forked child hung")
        await asyncio.sleep(0.05)
    assert os.WIFEXITED(status) and os.WEXITSTATUS(status) == 0, status
    assert await m.get("k") == b"v"
    await m.close()
