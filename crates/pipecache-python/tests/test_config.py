"""CacheConfig: built from the config classes or read from the CLI's TOML file, it opens a
working CacheManager with the settings it says."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pipecache
import pytest
from conftest import RedisDb, S3Bucket
from support import fs_manager


async def test_from_toml_filesystem(tmp_path: Path) -> None:
    """A TOML file with default_ttl = "7d" and a filesystem backend: the manager uses that
    directory and round-trips values."""
    store = tmp_path / "toml-store"
    path = tmp_path / "pipecache.toml"
    path.write_text(
        f'default_ttl = "7d"\nenable_compression = true\n\n'
        f'[[backends]]\ntype = "filesystem"\npriority = 0\npath = "{store}"\nmax_size = "50MB"\n'
        f'eviction_policy = "lru"\n',
        encoding="utf-8",
    )
    config = pipecache.CacheConfig.from_toml(path)
    assert config.to_dict()["default_ttl"] == "7d"
    assert config.to_dict()["backends"][0]["path"] == str(store)
    async with pipecache.CacheManager(config) as m:
        assert Path(m.dir) == store
        await m.set("k", {"from": "toml"})
        assert await m.get("k") == {"from": "toml"}
        assert (await m.stats())["local"]["max_size"] == 50_000_000
    assert (store / "PIPECACHE").is_file()
    async with fs_manager(store) as again:
        assert await again.get("k") == {"from": "toml"}


async def test_from_toml_default_ttl_applies(tmp_path: Path) -> None:
    """default_ttl from the file is the lifetime of values set without a TTL."""
    store = tmp_path / "s"
    path = tmp_path / "c.toml"
    path.write_text(
        f'default_ttl = "1s"\n[[backends]]\ntype = "filesystem"\npath = "{store}"\n',
        encoding="utf-8",
    )
    async with pipecache.CacheManager(pipecache.CacheConfig.from_toml(path)) as m:
        await m.set("short", b"v")
        await m.set("long", b"v", ttl="1h")
        assert await m.get("short") == b"v"
        await asyncio.sleep(1.3)
        assert await m.get("short") is None
        assert await m.get("long") == b"v"


async def test_from_toml_with_remote_tiers(
    tmp_path: Path, s3_bucket: S3Bucket, redis_db: RedisDb
) -> None:
    """A TOML file with filesystem, redis and s3 backends (as in the README) works: values
    land in Redis and S3, and a manager on an empty local store reads them back."""
    s3 = s3_bucket.server

    def toml(store: Path) -> str:
        return (
            'default_ttl = "7d"\n\n'
            f'[[backends]]\ntype = "filesystem"\npath = "{store}"\n\n'
            f'[[backends]]\ntype = "redis"\npriority = 1\nurl = "{redis_db.url}"\n'
            'max_object_size = "1MiB"\nwrite_policy = "write-through"\n\n'
            f'[[backends]]\ntype = "s3"\npriority = 2\nbucket = "{s3_bucket.name}"\n'
            f'prefix = "pc"\nregion = "{s3.region}"\nendpoint = "{s3.endpoint}"\n'
            f'access_key_id = "{s3.access_key}"\nsecret_access_key = "{s3.secret_key}"\n'
            'write_policy = "write-through"\ntimeout = "10s"\n'
        )

    first = tmp_path / "first.toml"
    first.write_text(toml(tmp_path / "a"), encoding="utf-8")
    async with pipecache.CacheManager(pipecache.CacheConfig.from_toml(first)) as m:
        await m.set("shared", {"v": 1})
        names = [t["name"] for t in (await m.stats())["tiers"]]
        assert names == ["memory", "local", "redis", "s3"]
    assert redis_db.keys("pipecache:*")
    assert any(o.startswith("pc/records/") for o in s3_bucket.objects()), s3_bucket.objects()

    second = tmp_path / "second.toml"
    second.write_text(toml(tmp_path / "b"), encoding="utf-8")
    async with pipecache.CacheManager(pipecache.CacheConfig.from_toml(second)) as m:
        assert await m.get("shared") == {"v": 1}


def test_config_classes_to_toml_shape(tmp_path: Path) -> None:
    """The config classes turn into the TOML file's shape (sizes in MB, durations kept,
    remote priorities by rank)."""
    config = pipecache.CacheConfig(
        backends=[
            pipecache.FilesystemCacheConfig(
                tmp_path, max_size_mb=500, eviction_policy="cost-weighted"
            ),
            pipecache.RedisCacheConfig(url="redis://127.0.0.1:1/0", max_object_size_mb=2),
            pipecache.S3CacheConfig(
                bucket="b", prefix="p/", write_policy="write-back", timeout="30s"
            ),
        ],
        default_ttl="7d",
        enable_compression=False,
        min_free_space="2GiB",
        cost_hints={"keyframes": 60.0},
    )
    d = config.to_dict()
    assert (
        d["default_ttl"] == "7d"
        and d["enable_compression"] is False
        and d["min_free_space"] == "2GiB"
    )
    fs, redis, s3 = d["backends"]
    assert fs == {
        "type": "filesystem",
        "path": str(tmp_path),
        "max_size": "500MB",
        "eviction_policy": "cost-weighted",
    }
    assert (
        redis["type"] == "redis" and redis["priority"] == 1 and redis["max_object_size"] == "2MB"
    )
    assert (
        s3["type"] == "s3"
        and s3["priority"] == 2
        and s3["write_policy"] == "write-back"
        and s3["timeout"] == "30s"
    )


def test_secret_not_in_repr() -> None:
    """repr() of configs does not show the S3 secret or the Redis URL (which may hold a
    password)."""
    s3 = pipecache.S3CacheConfig(bucket="b", access_key_id="AKIA", secret_access_key="very-secret")
    redis = pipecache.RedisCacheConfig(url="redis://:hunter2@h:1/0")
    text = repr(pipecache.CacheConfig(backends=[s3, redis]))
    assert "very-secret" not in text and "hunter2" not in text


async def test_default_dir_from_environment(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Without a filesystem backend the store lives in $PIPECACHE_DIR."""
    monkeypatch.setenv("PIPECACHE_DIR", str(tmp_path / "env-store"))
    assert pipecache.default_store_dir() == str(tmp_path / "env-store")
    async with pipecache.CacheManager() as m:
        assert Path(m.dir) == tmp_path / "env-store"
        await m.set("k", b"v")
    assert (tmp_path / "env-store" / "PIPECACHE").is_file()


async def test_compression_setting(tmp_path: Path) -> None:
    """enable_compression=False stores compressible data raw; True shrinks it."""
    text = b"the same words again and again " * 10_000
    sizes = {}
    for enabled in (True, False):
        async with fs_manager(tmp_path / f"c-{enabled}", enable_compression=enabled) as m:
            await m.set("t", text)
            assert await m.get("t") == text
            sizes[enabled] = (await m.stats())["local"]["stored_bytes"]
    assert sizes[False] >= len(text)
    assert sizes[True] < len(text) // 4


async def test_compression_codec(tmp_path: Path) -> None:
    """compression_codec="lz4" stores values LZ4'd: smaller than raw, larger than zstd's."""
    line = b"segment %d: the video shows a person near a river. "
    text = b"".join(line % i for i in range(4000))
    sizes = {}
    for codec in ("zstd", "lz4"):
        async with fs_manager(tmp_path / codec, compression_codec=codec) as m:
            await m.set("t", text)
            assert await m.get("t") == text
            sizes[codec] = (await m.stats())["local"]["stored_bytes"]
    assert sizes["zstd"] < sizes["lz4"] < len(text) * 0.9, sizes


async def test_durability_os_buffered(tmp_path: Path) -> None:
    """durability="os-buffered" is part of the configuration the engine gets, and its puts
    read back after a reopen (the engine's mapping to the store's options is a config unit
    test in Rust)."""
    config = pipecache.CacheConfig(
        backends=[pipecache.FilesystemCacheConfig(tmp_path / "s")], durability="os-buffered"
    )
    assert config.to_dict()["durability"] == "os-buffered"
    async with pipecache.CacheManager(config) as m:
        await m.set("k", b"v" * 1000)
    async with fs_manager(tmp_path / "s") as m:
        assert await m.get("k") == b"v" * 1000


async def test_max_size_budget_reported(tmp_path: Path) -> None:
    """max_size_mb of the filesystem backend is the store's budget."""
    async with pipecache.CacheManager(
        pipecache.CacheConfig(
            backends=[pipecache.FilesystemCacheConfig(tmp_path / "s", max_size_mb=12.5)]
        )
    ) as m:
        assert (await m.stats())["local"]["max_size"] == 12_500_000
