"""Every exception type is raised where it should be, and a miss is None, never an error."""

from __future__ import annotations

import builtins
import os
import time
from pathlib import Path
from typing import Any, Callable, Dict, List, Tuple

import numpy as np
import pipecache
import pytest
from conftest import RedisDb, S3Bucket
from support import SilentListener, free_port, fs_manager, write_video


def test_hierarchy() -> None:
    """Every error is a CacheError; ConfigError and InvalidInputError are ValueErrors;
    TimeoutError is a RemoteError and the builtin TimeoutError."""
    for cls in (
        pipecache.CorruptionError,
        pipecache.StoreInUseError,
        pipecache.NoSpaceError,
        pipecache.RemoteError,
        pipecache.TimeoutError,
        pipecache.ConfigError,
        pipecache.InvalidInputError,
        pipecache.ClosedError,
        pipecache.VideoError,
    ):
        assert issubclass(cls, pipecache.CacheError)
    assert issubclass(pipecache.ConfigError, ValueError)
    assert issubclass(pipecache.InvalidInputError, ValueError)
    assert issubclass(pipecache.TimeoutError, pipecache.RemoteError)
    assert issubclass(pipecache.TimeoutError, builtins.TimeoutError)


# ConfigError

CONFIG_ERRORS: Dict[str, Tuple[Callable[[], object], str]] = {
    "negative-max-size": (
        lambda: pipecache.FilesystemCacheConfig("/tmp/x", max_size_mb=-1),
        "max_size_mb",
    ),
    "zero-max-size": (
        lambda: pipecache.FilesystemCacheConfig("/tmp/x", max_size_mb=0),
        "max_size_mb",
    ),
    "unknown-eviction": (
        lambda: pipecache.FilesystemCacheConfig("/tmp/x", eviction_policy="fifo"),
        "eviction_policy",
    ),
    "store-eviction": (lambda: pipecache.CacheConfig(eviction_policy="random"), "eviction_policy"),
    "s3-write-policy": (
        lambda: pipecache.S3CacheConfig(bucket="b", write_policy="sometimes"),
        "write_policy",
    ),
    "redis-write-policy": (
        lambda: pipecache.RedisCacheConfig(url="redis://h:1/0", write_policy="x"),
        "write_policy",
    ),
    "redis-url": (lambda: pipecache.RedisCacheConfig(url="http://h:1/0"), "url"),
    "s3-bucket": (lambda: pipecache.S3CacheConfig(bucket=""), "bucket"),
    "s3-timeout": (lambda: pipecache.S3CacheConfig(bucket="b", timeout="forever"), "timeout"),
    "negative-ttl": (lambda: pipecache.CacheConfig(default_ttl=-5), "default_ttl"),
    "bad-ttl-string": (lambda: pipecache.CacheConfig(default_ttl="soon"), "default_ttl"),
    "min-free-space": (lambda: pipecache.CacheConfig(min_free_space="lots"), "min_free_space"),
    "queue-capacity": (
        lambda: pipecache.RedisCacheConfig(url="redis://h:1/0", queue_capacity=0),
        "queue_capacity",
    ),
    "compression": (lambda: pipecache.CacheConfig(enable_compression="yes"), "enable_compression"),  # type: ignore[arg-type]
    "codec": (lambda: pipecache.CacheConfig(compression_codec="gzip"), "compression_codec"),
    "durability": (lambda: pipecache.CacheConfig(durability="sometimes"), "durability"),
    "local-priority": (lambda: pipecache.FilesystemCacheConfig("/tmp/x", priority=1), "priority"),
}


@pytest.mark.parametrize("name", list(CONFIG_ERRORS))
def test_config_error_names_field(name: str) -> None:
    """A bad config field raises ConfigError, a ValueError whose message names the field."""
    make, field = CONFIG_ERRORS[name]
    with pytest.raises(pipecache.ConfigError) as info:
        make()
    assert isinstance(info.value, ValueError)
    assert field in str(info.value), str(info.value)


def test_config_error_two_local_tiers() -> None:
    """Two filesystem backends are refused."""
    with pytest.raises(pipecache.ConfigError, match="filesystem"):
        pipecache.CacheConfig(
            backends=[pipecache.FilesystemCacheConfig("/a"), pipecache.FilesystemCacheConfig("/b")]
        )


@pytest.mark.parametrize("kind", ["s3", "redis"])
def test_unknown_write_policy_is_refused(kind: str) -> None:
    """A write policy other than write-through and write-back raises ConfigError naming
    the field."""
    with pytest.raises(pipecache.ConfigError, match="write_policy"):
        if kind == "s3":
            pipecache.S3CacheConfig(bucket="b", write_policy="read-only")
        else:
            pipecache.RedisCacheConfig(url="redis://h:1/0", write_policy="read-only")


TOML_ERRORS = {
    "unknown-field": ('default_ttl = "7d"\nmax_sise = "1GB"\n', "max_sise"),
    "bad-ttl": ('default_ttl = "soon"\n', "default_ttl"),
    "bad-eviction": ('eviction_policy = "fifo"\n', "eviction_policy"),
    "bad-backend-size": (
        '[[backends]]\ntype = "filesystem"\npath = "/tmp/x"\nmax_size = -3\n',
        "max_size",
    ),
    "bad-backend-type": ('[[backends]]\ntype = "ftp"\npath = "/tmp/x"\n', "type"),
    "bad-write-policy": (
        '[[backends]]\ntype = "s3"\nbucket = "b"\nwrite_policy = "sometimes"\n',
        "write_policy",
    ),
    "syntax": ("default_ttl = \n", "default_ttl"),
}


@pytest.mark.parametrize("name", list(TOML_ERRORS))
def test_config_error_from_toml(tmp_path: Path, name: str) -> None:
    """A bad TOML file raises ConfigError naming the file and the field."""
    text, field = TOML_ERRORS[name]
    path = tmp_path / f"{name}.toml"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(pipecache.ConfigError) as info:
        pipecache.CacheConfig.from_toml(path)
    assert isinstance(info.value, ValueError)
    assert field in str(info.value) and str(path) in str(info.value), str(info.value)


def test_config_error_missing_toml(tmp_path: Path) -> None:
    """A TOML file that does not exist raises ConfigError naming it."""
    path = tmp_path / "absent.toml"
    with pytest.raises(pipecache.ConfigError, match="absent.toml"):
        pipecache.CacheConfig.from_toml(path)


# InvalidInputError


@pytest.mark.parametrize(
    "key",
    ["", "x" * 1025, "x" * 2000, "é" * 513],
    ids=["empty", "1025-bytes", "2000-bytes", "1026-utf8-bytes"],
)
async def test_malformed_key(manager: pipecache.CacheManager, key: str) -> None:
    """A malformed key (empty, or longer than 1024 bytes of UTF-8) raises InvalidInputError
    from set, get, exists and delete."""
    for call in (
        lambda: manager.set(key, b"v"),
        lambda: manager.get(key),
        lambda: manager.exists(key),
        lambda: manager.delete(key),
    ):
        with pytest.raises(pipecache.InvalidInputError) as info:
            await call()
        assert isinstance(info.value, ValueError)
    assert await manager.keys() == []


async def test_longest_key_is_fine(manager: pipecache.CacheManager) -> None:
    """A 1024-byte key is valid, and so is any text: the CLI's rules."""
    for key in ["k" * 1024, "line\nbreak", "tab\tkey", "ключ/視頻"]:
        await manager.set(key, b"v")
        assert await manager.get(key) == b"v"


@pytest.mark.parametrize(
    "ttl",
    [0, -1, -0.5, "soon", "0s", "-5s", True, float("nan"), float("inf"), [1]],
    ids=["0", "-1", "-0.5", "soon", "0s", "-5s", "True", "nan", "inf", "list"],
)
async def test_bad_ttl(manager: pipecache.CacheManager, tmp_path: Path, ttl: Any) -> None:
    """A TTL that is not positive seconds or a duration string raises InvalidInputError
    from CacheManager.set and the pipeline setters, storing nothing."""
    with pytest.raises(pipecache.InvalidInputError):
        await manager.set("k", b"v", ttl=ttl)
    cache = pipecache.PipelineArtifactCache(manager)
    video = write_video(tmp_path / "v.mp4")
    with pytest.raises(pipecache.InvalidInputError):
        await cache.set_transcript(video, {"t": 1}, ttl=ttl)
    with pytest.raises(pipecache.InvalidInputError):
        await cache.set_keyframes(video, None, [b"f"], ttl=ttl)
    assert await manager.keys() == []


async def test_bad_values(manager: pipecache.CacheManager, tmp_path: Path) -> None:
    """Wrong argument types raise InvalidInputError: a video given as an int, an image that
    is a str, a segment whose start is not before its end, an unknown stage."""
    cache = pipecache.PipelineArtifactCache(manager)
    video = write_video(tmp_path / "v.mp4")
    with pytest.raises(pipecache.InvalidInputError):
        await cache.get_transcript(42)  # type: ignore[arg-type]
    with pytest.raises(pipecache.InvalidInputError):
        await cache.set_keyframes(video, None, [b"ok", "not an image"])
    with pytest.raises(pipecache.InvalidInputError):
        await cache.set_transcript(video, "t", segment=(2000, 1000))
    with pytest.raises(pipecache.InvalidInputError):
        await cache.key(video, "thumbnails")
    with pytest.raises(pipecache.InvalidInputError):
        await cache.key(video, "keyframes", threshold=0.5, max_frames=10, colour="red")
    assert await manager.keys() == []


# VideoError


async def test_video_error_missing_file(manager: pipecache.CacheManager, tmp_path: Path) -> None:
    """A video that does not exist (or is a directory) raises VideoError from gets, sets
    and fingerprint; it is not a miss."""
    cache = pipecache.PipelineArtifactCache(manager)
    missing = tmp_path / "missing.mp4"
    calls: List[Callable[[], Any]] = [
        lambda: cache.get_transcript(missing),
        lambda: cache.set_transcript(missing, {"t": 1}),
        lambda: cache.get_keyframes(missing),
        lambda: cache.set_embeddings(missing, np.zeros((1, 2), np.float32)),
        lambda: cache.fingerprint(missing),
        lambda: cache.fingerprint(tmp_path),
        lambda: cache.invalidate_video(missing),
    ]
    for call in calls:
        with pytest.raises(pipecache.VideoError):
            await call()
    content = pipecache.PipelineArtifactCache(manager, fingerprint="content")
    with pytest.raises(pipecache.VideoError):
        await content.get_transcript(missing)


# ClosedError


async def test_closed_error(manager: pipecache.CacheManager, tmp_path: Path) -> None:
    """Every call after close raises ClosedError."""
    cache = pipecache.PipelineArtifactCache(manager)
    video = write_video(tmp_path / "v.mp4")
    await manager.set("k", b"v")
    await manager.close()
    calls: List[Callable[[], Any]] = [
        lambda: manager.get("k"),
        lambda: manager.set("k", b"v"),
        lambda: manager.delete("k"),
        lambda: manager.exists("k"),
        lambda: manager.keys(),
        lambda: manager.clear(),
        lambda: manager.stats(),
        lambda: manager.open(),
        lambda: cache.get_transcript(video),
        lambda: cache.set_transcript(video, {"t": 1}),
        lambda: cache.fingerprint(video),
        lambda: pipecache.PipelineArtifactCache(manager).get_keyframes(video),
    ]
    for call in calls:
        with pytest.raises(pipecache.ClosedError):
            await call()


async def test_closed_error_store(store_dir: Path) -> None:
    """A Store's calls after close raise ClosedError."""
    store = await pipecache.Store.open(store_dir)
    await store.put("k", b"v")
    await store.close()
    with pytest.raises(pipecache.ClosedError):
        await store.get("k")
    with pytest.raises(pipecache.ClosedError):
        await store.put("k", b"v")


# CorruptionError


def _flip_inside(store_dir: Path, payload: bytes) -> None:
    """Flips one byte in the middle of ``payload`` where it sits in a chunk file."""
    probe = payload[len(payload) // 2 : len(payload) // 2 + 64]
    hits = []
    for chunk in sorted((store_dir / "chunks").glob("chunk-*.pcc")):
        data = bytearray(chunk.read_bytes())
        at = data.find(probe)
        if at >= 0:
            data[at + 10] ^= 0x5A
            chunk.write_bytes(bytes(data))
            hits.append(chunk)
    assert hits, "the payload was not found in any chunk file"


async def test_corruption_error_store(store_dir: Path) -> None:
    """A chunk file damaged while the store was closed: get raises CorruptionError and
    never returns the damaged bytes."""
    payload = os.urandom(256 * 1024)
    async with await pipecache.Store.open(store_dir) as store:
        await store.put("k", payload)
        await store.put("other", b"untouched")
    _flip_inside(store_dir, payload)
    async with await pipecache.Store.open(store_dir) as store:
        with pytest.raises(pipecache.CorruptionError):
            await store.get("k")
        with pytest.raises(pipecache.CorruptionError):
            await store.get_parts("k")
        assert await store.get("other") == b"untouched"
        assert (await store.stats())["counters"]["corruption_errors"] >= 1


async def test_corruption_error_manager(store_dir: Path, tmp_path: Path) -> None:
    """The same through CacheManager.get and a pipeline get."""
    payload = os.urandom(256 * 1024)
    vectors = np.frombuffer(os.urandom(64 * 1024), dtype=np.float32).reshape(128, 128).copy()
    video = write_video(tmp_path / "v.mp4")
    async with fs_manager(store_dir) as m:
        await m.set("k", payload)
        await pipecache.PipelineArtifactCache(m).set_embeddings(video, vectors)
    _flip_inside(store_dir, payload)
    _flip_inside(store_dir, vectors.tobytes())
    async with fs_manager(store_dir) as m:
        with pytest.raises(pipecache.CorruptionError):
            await m.get("k")
        with pytest.raises(pipecache.CorruptionError):
            await pipecache.PipelineArtifactCache(m).get_embeddings(video)


# NoSpaceError


async def test_no_space_error(store_dir: Path, tmp_path: Path) -> None:
    """With min_free_space larger than the disk, a put raises NoSpaceError and stores
    nothing; reads still work."""
    async with fs_manager(store_dir, min_free_space="1000TB") as m:
        with pytest.raises(pipecache.NoSpaceError):
            await m.set("k", b"v")
        cache = pipecache.PipelineArtifactCache(m)
        with pytest.raises(pipecache.NoSpaceError):
            await cache.set_transcript(write_video(tmp_path / "v.mp4"), {"t": 1})
        assert await m.get("k") is None
        assert await m.keys() == []
    async with await pipecache.Store.open(tmp_path / "store2") as store:
        await store.put("fine", b"v")  # the default floor is no problem
        assert await store.get("fine") == b"v"


# RemoteError and TimeoutError


async def test_remote_error_refused_credentials(store_dir: Path, s3_bucket: S3Bucket) -> None:
    """An S3 tier that refuses the credentials: a get raises RemoteError (never a quiet
    miss), and so does listing keys."""
    tier = s3_bucket.config(secret_access_key="wrong-secret", timeout=5)
    async with pipecache.CacheManager(
        pipecache.CacheConfig(backends=[pipecache.FilesystemCacheConfig(store_dir), tier])
    ) as m:
        with pytest.raises(pipecache.RemoteError) as info:
            await m.get("absent")
        assert not isinstance(info.value, pipecache.TimeoutError)
        with pytest.raises(pipecache.RemoteError):
            await m.keys()


async def test_remote_error_unreachable_s3(store_dir: Path) -> None:
    """S3 at a port where nothing listens (write-through, timeout 2 s): as documented, the
    put succeeds locally and its upload is deferred (counted), listing keys raises
    RemoteError, and the local tier keeps serving."""
    tier = pipecache.S3CacheConfig(
        bucket="b",
        endpoint=f"http://127.0.0.1:{free_port()}",
        access_key_id="k",
        secret_access_key="s",
        write_policy="write-through",
        timeout=2,
    )
    async with pipecache.CacheManager(
        pipecache.CacheConfig(backends=[pipecache.FilesystemCacheConfig(store_dir), tier])
    ) as m:
        started = time.monotonic()
        await m.set("k", b"v")
        assert time.monotonic() - started < 10
        assert await m.get("k") == b"v"
        with pytest.raises(pipecache.RemoteError) as info:
            await m.keys()
        assert not isinstance(info.value, pipecache.TimeoutError)
        s3 = next(t for t in (await m.stats())["tiers"] if t["name"] == "s3")
        assert s3["errors"] >= 1
        assert s3["deferred"] == 1


async def test_timeout_error_silent_s3(store_dir: Path, silent_listener: SilentListener) -> None:
    """An S3 endpoint that accepts and never answers (timeout 1 s): a call that must reach
    it raises pipecache.TimeoutError (a RemoteError and a builtins.TimeoutError) after
    about the deadline; a put is bounded by it too."""
    tier = pipecache.S3CacheConfig(
        bucket="b",
        endpoint=f"http://127.0.0.1:{silent_listener.port}",
        access_key_id="k",
        secret_access_key="s",
        timeout=1,
    )
    async with pipecache.CacheManager(
        pipecache.CacheConfig(backends=[pipecache.FilesystemCacheConfig(store_dir), tier])
    ) as m:
        started = time.monotonic()
        with pytest.raises(pipecache.TimeoutError) as info:
            await m.keys()
        assert time.monotonic() - started < 10
        assert isinstance(info.value, pipecache.RemoteError)
        assert isinstance(info.value, builtins.TimeoutError)
        started = time.monotonic()
        await m.set("k", b"v")
        assert time.monotonic() - started < 10
        assert await m.get("k") == b"v"
        s3 = next(t for t in (await m.stats())["tiers"] if t["name"] == "s3")
        assert s3["timeouts"] >= 1


async def test_timeout_silent_redis_is_bounded(
    store_dir: Path, silent_listener: SilentListener
) -> None:
    """A Redis url that accepts and never answers (timeout 1 s): put and get each return
    within a few deadlines, and the tier counts timeouts."""
    tier = pipecache.RedisCacheConfig(url=f"redis://127.0.0.1:{silent_listener.port}/0", timeout=1)
    async with pipecache.CacheManager(
        pipecache.CacheConfig(backends=[pipecache.FilesystemCacheConfig(store_dir), tier])
    ) as m:
        started = time.monotonic()
        await m.set("k", b"v")
        assert await m.get("k") == b"v"
        assert await m.get("absent") is None
        assert time.monotonic() - started < 15
        redis = next(t for t in (await m.stats())["tiers"] if t["name"] == "redis")
        assert redis["timeouts"] >= 1


async def test_remote_tiers_working(
    store_dir: Path, s3_bucket: S3Bucket, redis_db: RedisDb
) -> None:
    """With both remote tiers up, put and get raise nothing and both tiers receive the
    value (the control case for the error tests above)."""
    config = pipecache.CacheConfig(
        backends=[
            pipecache.FilesystemCacheConfig(store_dir),
            pipecache.RedisCacheConfig(url=redis_db.url),
            s3_bucket.config(write_policy="write-through"),
        ]
    )
    async with pipecache.CacheManager(config) as m:
        await m.set("k", {"v": 1})
        assert await m.get("k") == {"v": 1}
        tiers = {t["name"]: t for t in (await m.stats())["tiers"]}
        assert tiers["s3"]["puts"] == 1 and tiers["redis"]["puts"] == 1
        assert tiers["s3"]["errors"] == 0 and tiers["redis"]["errors"] == 0
    assert redis_db.keys("pipecache:*")
    assert any(o.startswith("records/") for o in s3_bucket.objects())


# A miss is None


async def test_misses_are_none(
    manager: pipecache.CacheManager, tmp_path: Path, store_dir: Path
) -> None:
    """Every getter returns None for something never stored."""
    cache = pipecache.PipelineArtifactCache(manager)
    video = write_video(tmp_path / "v.mp4")
    assert await manager.get("never") is None
    assert await cache.get_keyframes(video) is None
    assert await cache.get_transcript(video) is None
    assert await cache.get_transcript(video, segment=(0, 1000)) is None
    assert await cache.get_descriptions(video) is None
    assert await cache.get_embeddings(video) is None
    await manager.close()
    async with await pipecache.Store.open(tmp_path / "s") as store:
        assert await store.get("never") is None
        assert await store.get_parts("never") is None
