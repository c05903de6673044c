"""Cache configuration: the seed's config classes, turned into the TOML file's shape.

Each class checks its own fields and raises :class:`ConfigError` naming the field; the
engine then reads the result with the same reader as ``pipecache --config FILE``.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass, field
from typing import Any, Dict, List, Optional, Sequence, Union

from . import _native
from ._errors import ConfigError

__all__ = [
    "BackendConfig",
    "CacheConfig",
    "FilesystemCacheConfig",
    "RedisCacheConfig",
    "S3CacheConfig",
]

PathLike = Union[str, "os.PathLike[str]"]
Duration = Union[int, str]
"""Seconds (an ``int``) or a duration string the CLI accepts: ``"90s"``, ``"12h"``, ``"7d"``."""

_WRITE_POLICIES = ("write-through", "write-back")
_EVICTION_POLICIES = ("lru", "cost-weighted")
_COMPRESSION_CODECS = ("zstd", "lz4")
_DURABILITIES = ("fsync", "os-buffered")


def _fail(owner: str, name: str, reason: str) -> ConfigError:
    return ConfigError(f"{owner}.{name}: {reason}")


def _size_mb(owner: str, name: str, value: Optional[float]) -> Optional[str]:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise _fail(owner, name, f"must be a number of megabytes, got {value!r}")
    if not math.isfinite(value) or value <= 0:
        raise _fail(owner, name, f"must be positive, got {value!r}")
    return f"{value}MB"


def _duration(owner: str, name: str, value: Optional[Duration]) -> Optional[Union[int, str]]:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, str)):
        raise _fail(
            owner, name, f"must be whole seconds (int) or a string like '7d', got {value!r}"
        )
    if isinstance(value, int) and value <= 0:
        raise _fail(owner, name, f"must be positive, got {value!r}")
    if isinstance(value, str):
        try:
            _native.duration_seconds(value, f"{owner}.{name}")
        except ValueError as e:
            raise ConfigError(str(e)) from None
    return value


def _choice(owner: str, name: str, value: str, allowed: Sequence[str]) -> str:
    if value not in allowed:
        raise _fail(owner, name, f"{value!r} is not one of {', '.join(allowed)}")
    return value


def _priority(owner: str, value: Optional[int]) -> None:
    if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < 0):
        raise _fail(owner, "priority", f"must be a non-negative int, got {value!r}")


def _drop_none(d: Dict[str, Any]) -> Dict[str, Any]:
    return {k: v for k, v in d.items() if v is not None}


@dataclass(frozen=True)
class FilesystemCacheConfig:
    """The local tier: chunk files and a RocksDB index in ``base_path``.

    Args:
        base_path: the store's directory (created on first use).
        max_size_mb: size budget in megabytes (10^6 bytes); ``None`` for no budget.
        eviction_policy: ``"lru"`` or ``"cost-weighted"`` (keeps what is dear to recompute).
        priority: must be 0: the local tier is always the fastest.
    """

    base_path: PathLike
    max_size_mb: Optional[float] = None
    eviction_policy: str = "lru"
    priority: int = 0

    def __post_init__(self) -> None:
        owner = type(self).__name__
        if not isinstance(self.base_path, (str, os.PathLike)) or not os.fspath(self.base_path):
            raise _fail(owner, "base_path", f"must be a non-empty path, got {self.base_path!r}")
        _size_mb(owner, "max_size_mb", self.max_size_mb)
        _choice(owner, "eviction_policy", self.eviction_policy, _EVICTION_POLICIES)
        if self.priority != 0:
            raise _fail(owner, "priority", f"the local tier has priority 0, got {self.priority!r}")

    def _table(self, rank: int) -> Dict[str, Any]:
        owner = type(self).__name__
        return _drop_none(
            {
                "type": "filesystem",
                "path": os.fspath(self.base_path),
                "max_size": _size_mb(owner, "max_size_mb", self.max_size_mb),
                "eviction_policy": self.eviction_policy,
            }
        )


def _check_remote(c: Union[S3CacheConfig, RedisCacheConfig]) -> None:
    owner = type(c).__name__
    _priority(owner, c.priority)
    _choice(owner, "write_policy", c.write_policy, _WRITE_POLICIES)
    _duration(owner, "timeout", c.timeout)
    q = c.queue_capacity
    if q is not None and (isinstance(q, bool) or not isinstance(q, int) or q <= 0):
        raise _fail(owner, "queue_capacity", f"must be a positive int, got {q!r}")


def _remote_table(c: Union[S3CacheConfig, RedisCacheConfig], rank: int) -> Dict[str, Any]:
    return {
        "name": c.name,
        "priority": rank if c.priority is None else c.priority,
        "write_policy": c.write_policy,
        "timeout": c.timeout,
        "queue_capacity": c.queue_capacity,
    }


@dataclass(frozen=True)
class S3CacheConfig:
    """A shared tier in an S3 bucket (AWS, MinIO, any S3-protocol server).

    Args:
        bucket: the bucket (must exist).
        prefix: key prefix inside the bucket.
        region: region (default ``us-east-1``).
        endpoint: endpoint URL; ``None`` for AWS's own.
        priority: order in the walk, 1 and up (0 is the local store); default: the
            backend's rank among the remote tiers, 1 for the first.
        write_policy: ``"write-through"`` (a put returns once this tier has it, or has
            queued it when the tier is unreachable) or ``"write-back"`` (queued on disk,
            uploaded in the background; :meth:`CacheManager.flush` waits for it).
        access_key_id, secret_access_key: credentials; default ``$AWS_ACCESS_KEY_ID`` and
            ``$AWS_SECRET_ACCESS_KEY``.
        timeout: deadline of each call to this tier: seconds or ``"30s"``.
        name: the tier's name in stats and errors (default ``s3``).
        queue_capacity: most write-back entries queued.
        gc_grace: how long an unreferenced pack survives remote GC (default ``"24h"``).
    """

    bucket: str
    prefix: str = ""
    region: Optional[str] = None
    endpoint: Optional[str] = None
    priority: Optional[int] = None
    write_policy: str = "write-through"
    access_key_id: Optional[str] = None
    secret_access_key: Optional[str] = field(default=None, repr=False)
    timeout: Optional[Duration] = None
    name: Optional[str] = None
    queue_capacity: Optional[int] = None
    gc_grace: Optional[Duration] = None

    def __post_init__(self) -> None:
        owner = type(self).__name__
        if not isinstance(self.bucket, str) or not self.bucket:
            raise _fail(owner, "bucket", "is required")
        _check_remote(self)
        _duration(owner, "gc_grace", self.gc_grace)

    def _table(self, rank: int) -> Dict[str, Any]:
        return _drop_none(
            {
                "type": "s3",
                **_remote_table(self, rank),
                "bucket": self.bucket,
                "prefix": self.prefix,
                "region": self.region,
                "endpoint": self.endpoint,
                "access_key_id": self.access_key_id,
                "secret_access_key": self.secret_access_key,
                "gc_grace": self.gc_grace,
            }
        )


@dataclass(frozen=True)
class RedisCacheConfig:
    """A shared tier in Redis for small artifacts, expiring with their TTL.

    Args:
        url: ``redis://[user:password@]host:port/db``.
        priority, write_policy, timeout, name, queue_capacity: as for
            :class:`S3CacheConfig` (default name ``redis``).
        max_object_size_mb: largest artifact held, in megabytes (default 1 MiB).
    """

    url: str = field(repr=False)
    priority: Optional[int] = None
    write_policy: str = "write-through"
    max_object_size_mb: Optional[float] = None
    timeout: Optional[Duration] = None
    name: Optional[str] = None
    queue_capacity: Optional[int] = None

    def __post_init__(self) -> None:
        owner = type(self).__name__
        if not isinstance(self.url, str) or not self.url.startswith(("redis://", "rediss://")):
            raise _fail(owner, "url", "must be a redis:// or rediss:// URL")
        _check_remote(self)
        _size_mb(owner, "max_object_size_mb", self.max_object_size_mb)

    def _table(self, rank: int) -> Dict[str, Any]:
        owner = type(self).__name__
        return _drop_none(
            {
                "type": "redis",
                **_remote_table(self, rank),
                "url": self.url,
                "max_object_size": _size_mb(owner, "max_object_size_mb", self.max_object_size_mb),
            }
        )


BackendConfig = Union[FilesystemCacheConfig, S3CacheConfig, RedisCacheConfig]


def default_store_dir() -> str:
    """``$PIPECACHE_DIR``, else the user cache directory's ``pipecache`` (as the CLI uses)."""
    explicit = os.environ.get("PIPECACHE_DIR")
    if explicit:
        return explicit
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return os.path.join(base, "pipecache")


@dataclass(frozen=True)
class CacheConfig:
    """Which tiers a :class:`CacheManager` walks, and the store-wide settings.

    Args:
        backends: tiers, fastest first: at most one :class:`FilesystemCacheConfig` (the local
            store; without one it lives in :func:`default_store_dir`), then any
            :class:`S3CacheConfig` and :class:`RedisCacheConfig`.
        default_ttl: lifetime of an entry put without a TTL: seconds or ``"7d"``; ``None``
            for the engine's default (30 days).
        enable_compression: compress blobs where it pays (default on).
        max_size_mb, eviction_policy: store-wide budget and policy, for configs without a
            filesystem backend (the backend's own win).
        min_free_space: free space puts must leave, e.g. ``"2GiB"``.
        cost_hints: recompute seconds per artifact kind, for ``cost-weighted`` eviction.
        memory_size_mb: the memory tier's budget in megabytes: hot artifacts answered
            from this process's memory (default 256 MiB; 0 turns it off). Through a
            server, the budget of this process's near cache (copies of what it read,
            dropped as soon as any process changes their keys).
        compression_codec: ``"zstd"`` (default: the better ratio) or ``"lz4"`` (the faster
            read) for values put with :meth:`CacheManager.set`; the pipeline's artifacts keep
            their own codecs (transcripts and descriptions LZ4, embeddings zstd).
        durability: ``"fsync"`` (default: an acknowledged put survives power loss) or
            ``"os-buffered"`` (it survives a crash of the process, not of the machine, as
            diskcache's puts do; puts wait for no disk flush).
    """

    backends: List[BackendConfig] = field(default_factory=list)
    default_ttl: Optional[Duration] = None
    enable_compression: Optional[bool] = None
    max_size_mb: Optional[float] = None
    eviction_policy: Optional[str] = None
    min_free_space: Optional[str] = None
    cost_hints: Optional[Dict[str, float]] = None
    memory_size_mb: Optional[float] = None
    compression_codec: Optional[str] = None
    durability: Optional[str] = None
    _file_table: Optional[Dict[str, Any]] = field(default=None, repr=False, compare=False)
    _origin: str = field(default="CacheConfig", repr=False, compare=False)

    def __post_init__(self) -> None:
        owner = type(self).__name__
        if not isinstance(self.backends, (list, tuple)):
            raise _fail(owner, "backends", f"must be a list, got {type(self.backends).__name__}")
        for i, b in enumerate(self.backends):
            if not isinstance(b, (FilesystemCacheConfig, S3CacheConfig, RedisCacheConfig)):
                raise _fail(owner, f"backends[{i}]", f"is not a backend config: {b!r}")
        _duration(owner, "default_ttl", self.default_ttl)
        if self.enable_compression is not None and not isinstance(self.enable_compression, bool):
            raise _fail(
                owner, "enable_compression", f"must be a bool, got {self.enable_compression!r}"
            )
        _size_mb(owner, "max_size_mb", self.max_size_mb)
        if self.eviction_policy is not None:
            _choice(owner, "eviction_policy", self.eviction_policy, _EVICTION_POLICIES)
        if self.memory_size_mb != 0:
            _size_mb(owner, "memory_size_mb", self.memory_size_mb)
        if self.compression_codec is not None:
            _choice(owner, "compression_codec", self.compression_codec, _COMPRESSION_CODECS)
        if self.durability is not None:
            _choice(owner, "durability", self.durability, _DURABILITIES)
        # The engine checks the rest (tier structure, names, sizes) as it does a TOML file.
        _native.validate_config(self.to_dict(), self._origin)

    def _backend_tables(self) -> List[Dict[str, Any]]:
        tables = []
        rank = 0
        for b in self.backends:
            if not isinstance(b, FilesystemCacheConfig):
                rank += 1
            tables.append(b._table(rank))
        return tables

    @classmethod
    def from_toml(cls, path: PathLike) -> CacheConfig:
        """Reads the same TOML file as ``pipecache --config FILE``."""
        origin = os.fspath(path)
        table = _native.read_config_file(origin)
        return cls(_file_table=table, _origin=origin)

    def to_dict(self) -> Dict[str, Any]:
        """The configuration in the TOML file's shape (secrets included)."""
        if self._file_table is not None:
            return dict(self._file_table)
        return _drop_none(
            {
                "default_ttl": self.default_ttl,
                "enable_compression": self.enable_compression,
                "compression_codec": self.compression_codec,
                "durability": self.durability,
                "max_size": _size_mb("CacheConfig", "max_size_mb", self.max_size_mb),
                "eviction_policy": self.eviction_policy,
                "min_free_space": self.min_free_space,
                "cost_hints": self.cost_hints,
                "memory_size": (
                    "0"
                    if self.memory_size_mb == 0
                    else _size_mb("CacheConfig", "memory_size_mb", self.memory_size_mb)
                ),
                "backends": self._backend_tables() or None,
            }
        )
