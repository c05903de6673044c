"""The README's Python example runs as written, against a real S3 server and Redis."""

from __future__ import annotations

import asyncio
import os
import time
from pathlib import Path
from typing import Any, Dict, List

import pipecache
from conftest import RedisDb, S3Server
from support import describe, readme_python_example, run_python

QUEUE_DRAIN_TIMEOUT_S = 30.0


def _env(s3_server: S3Server, redis_db: RedisDb, store: Path) -> Dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    env.update(
        PIPECACHE_S3_ENDPOINT=s3_server.endpoint,
        AWS_ACCESS_KEY_ID=s3_server.access_key,
        AWS_SECRET_ACCESS_KEY=s3_server.secret_key,
        PIPECACHE_REDIS_URL=redis_db.url,
        PIPECACHE_DIR=str(store),
    )
    return env


def _objects(bucket: Path, prefix: str) -> List[str]:
    return sorted(
        str(p.relative_to(bucket))
        for p in bucket.rglob("*")
        if p.is_file() and str(p.relative_to(bucket)).startswith(prefix)
    )


async def _drain_write_back(store: Path, s3_server: S3Server, redis_db: RedisDb) -> Dict[str, Any]:
    """Opens the example's cache (same store and tiers) until its S3 write-back queue is
    empty; the S3 tier's figures then."""
    config = pipecache.CacheConfig(
        backends=[
            pipecache.FilesystemCacheConfig(store),
            pipecache.RedisCacheConfig(url=redis_db.url),
            pipecache.S3CacheConfig(
                bucket="pipecache",
                prefix="team/",
                region="us-east-1",
                endpoint=s3_server.endpoint,
                write_policy="write-back",
                access_key_id=s3_server.access_key,
                secret_access_key=s3_server.secret_key,
            ),
        ]
    )
    async with pipecache.CacheManager(config) as m:
        deadline = time.monotonic() + QUEUE_DRAIN_TIMEOUT_S
        while True:
            s3 = next(t for t in (await m.stats())["tiers"] if t["name"] == "s3")
            if s3["queue_length"] == 0 or time.monotonic() > deadline:
                return dict(s3)
            await asyncio.sleep(0.05)


def test_readme_example_runs_twice(tmp_path: Path, s3_server: S3Server, redis_db: RedisDb) -> None:
    """First run computes and caches (write-through to Redis at once, write-back to S3);
    a second run finds everything cached; once the write-back queue has drained, S3 holds
    every artifact and a run on another machine's empty local store finds everything."""
    example = tmp_path / "readme_example.py"
    example.write_text(readme_python_example(), encoding="utf-8")
    bucket = s3_server.create_bucket("pipecache")
    store = tmp_path / "local-store"
    env = _env(s3_server, redis_db, store)

    first = run_python(example, cwd=tmp_path, env=env)
    assert first.returncode == 0, describe(first)
    assert "to compute" in first.stdout, describe(first)
    assert "cached:" in first.stdout, describe(first)
    assert (tmp_path / "talk.mp4").is_file()
    assert (store / "PIPECACHE").is_file()
    # Write-through to Redis: the artifacts under its 1 MiB limit (transcript, embeddings).
    assert len(redis_db.keys("pipecache:*")) >= 2, redis_db.keys()

    second = run_python(example, cwd=tmp_path, env=env)
    assert second.returncode == 0, describe(second)
    assert "to compute" not in second.stdout, describe(second)
    assert "cached:" in second.stdout, describe(second)

    # Write-back: what close left queued is uploaded on the next open.
    s3_figures = asyncio.run(_drain_write_back(store, s3_server, redis_db))
    assert s3_figures["queue_length"] == 0, s3_figures
    records = _objects(bucket, "team/records/")
    assert len(records) == 3, _objects(bucket, "")
    assert _objects(bucket, "team/packs/"), _objects(bucket, "")

    # Another machine: an empty local store, the same S3 bucket and Redis.
    env_other = dict(env, PIPECACHE_DIR=str(tmp_path / "other-machine"))
    third = run_python(example, cwd=tmp_path, env=env_other)
    assert third.returncode == 0, describe(third)
    assert "to compute" not in third.stdout, describe(third)
