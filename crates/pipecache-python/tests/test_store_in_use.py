"""One process holds a store directory at a time: another gets StoreInUseError."""

from __future__ import annotations

from pathlib import Path

import pipecache
import pytest
from support import describe, fs_manager, run_python

OPEN_IN_CHILD = """
import asyncio, sys
import pipecache

async def main() -> None:
    if sys.argv[2] == "manager":
        opener = pipecache.CacheManager(pipecache.CacheConfig(
            backends=[pipecache.FilesystemCacheConfig(sys.argv[1])])).open()
    else:
        opener = pipecache.Store.open(sys.argv[1])
    try:
        opened = await opener
    except pipecache.CacheError as e:
        print(type(e).__name__, flush=True)
        print(e, file=sys.stderr)
        return
    if sys.argv[2] == "manager":
        await opened.set("from-child", b"x")
    else:
        await opened.put("from-child", b"x")
    await opened.close()
    print("opened", flush=True)

asyncio.run(main())
"""


@pytest.mark.parametrize("how", ["manager", "store"])
async def test_second_process_gets_store_in_use(store_dir: Path, tmp_path: Path, how: str) -> None:
    """While this process holds the store open, a child process opening it (with a
    CacheManager or Store.open) gets StoreInUseError; after close it can open it."""
    manager = fs_manager(store_dir)
    await manager.open()
    await manager.set("held", b"by the parent")
    try:
        child = run_python(OPEN_IN_CHILD, str(store_dir), how, cwd=tmp_path)
        assert child.stdout.strip() == "StoreInUseError", describe(child)
        assert await manager.get("held") == b"by the parent"  # the parent is unaffected
    finally:
        await manager.close()

    child = run_python(OPEN_IN_CHILD, str(store_dir), how, cwd=tmp_path)
    assert child.stdout.strip() == "opened", describe(child)
    async with fs_manager(store_dir) as again:
        assert await again.get("from-child") == b"x"


async def test_second_open_in_same_process(store_dir: Path) -> None:
    """A second manager or Store on a directory this process holds gets StoreInUseError too."""
    async with await pipecache.Store.open(store_dir):
        with pytest.raises(pipecache.StoreInUseError):
            await fs_manager(store_dir).open()
        with pytest.raises(pipecache.StoreInUseError):
            await pipecache.Store.open(store_dir)
