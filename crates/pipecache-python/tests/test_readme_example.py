"""The README's Python example runs as written, against a real S3 server and Redis."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Dict

from conftest import RedisDb, S3Server
from support import describe, readme_python_example, run_python


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


def test_readme_example_runs_twice(tmp_path: Path, s3_server: S3Server, redis_db: RedisDb) -> None:
    """First run computes and caches (objects land in S3 and Redis); a second run, and a
    run on another machine's empty local store, find everything cached."""
    example = tmp_path / "readme_example.py"
    example.write_text(readme_python_example(), encoding="utf-8")
    bucket = s3_server.create_bucket("pipecache")
    env = _env(s3_server, redis_db, tmp_path / "local-store")

    first = run_python(example, cwd=tmp_path, env=env)
    assert first.returncode == 0, describe(first)
    assert "to compute" in first.stdout, describe(first)
    assert "cached:" in first.stdout, describe(first)
    assert (tmp_path / "talk.mp4").is_file()
    assert (tmp_path / "local-store" / "PIPECACHE").is_file()

    # Write-back to S3 finished by close: records and packs under the example's prefix.
    objects = sorted(str(p.relative_to(bucket)) for p in bucket.rglob("*") if p.is_file())
    records = [o for o in objects if o.startswith("team/records/")]
    packs = [o for o in objects if o.startswith("team/packs/")]
    assert len(records) >= 3 and packs, f"objects in the bucket: {objects}"
    # Write-through to Redis: the small artifacts (transcript, embeddings).
    assert redis_db.keys("pipecache:*"), "nothing was written to Redis"

    second = run_python(example, cwd=tmp_path, env=env)
    assert second.returncode == 0, describe(second)
    assert "to compute" not in second.stdout, describe(second)
    assert "cached:" in second.stdout, describe(second)

    # Another machine: an empty local store, the same S3 bucket and Redis.
    env_other = dict(env, PIPECACHE_DIR=str(tmp_path / "other-machine"))
    third = run_python(example, cwd=tmp_path, env=env_other)
    assert third.returncode == 0, describe(third)
    assert "to compute" not in third.stdout, describe(third)
