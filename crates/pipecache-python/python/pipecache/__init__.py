"""pipecache: a content-addressed artifact cache for video pipelines.

Keyframes, transcripts, frame descriptions and embeddings are cached by video fingerprint
and stage parameters, so a second run of a pipeline costs micro- to milliseconds instead of
minutes. The engine is Rust (blake3-addressed blobs in chunk files, a RocksDB index, S3 and
Redis tiers); every I/O method here is a coroutine that releases the GIL and never blocks
the event loop.

    >>> cache = CacheManager(CacheConfig(backends=[FilesystemCacheConfig("/tmp/cache")]))
    >>> pipeline = PipelineArtifactCache(cache)
    >>> await pipeline.set_transcript("v.mp4", {"text": "hi"}, model_size="base", language="en")
    >>> await pipeline.get_transcript("v.mp4", model_size="base", language="en")
    {'text': 'hi'}

Main names: :class:`CacheConfig` and the backend configs, :class:`CacheManager` (key-level),
:class:`PipelineArtifactCache` (video-level), :class:`Store` (one local store, low level),
and the exceptions under :class:`CacheError`.
"""

from ._config import (
    BackendConfig,
    CacheConfig,
    FilesystemCacheConfig,
    RedisCacheConfig,
    S3CacheConfig,
    default_store_dir,
)
from ._errors import (
    CacheError,
    ClosedError,
    ConfigError,
    CorruptionError,
    InvalidInputError,
    NoSpaceError,
    RemoteError,
    StoreInUseError,
    TimeoutError,
    VideoError,
)
from ._manager import CacheManager
from ._native import __version__
from ._pipeline import (
    PIPELINE_CONFIG_KEYS,
    Keyframes,
    PipelineArtifactCache,
    PipelineConfig,
    SegmentCoverage,
    VideoArtifacts,
    VideoPath,
)
from ._store import Store

__all__ = [
    "PIPELINE_CONFIG_KEYS",
    "BackendConfig",
    "CacheConfig",
    "CacheError",
    "CacheManager",
    "ClosedError",
    "ConfigError",
    "CorruptionError",
    "FilesystemCacheConfig",
    "InvalidInputError",
    "Keyframes",
    "NoSpaceError",
    "PipelineArtifactCache",
    "PipelineConfig",
    "RedisCacheConfig",
    "RemoteError",
    "S3CacheConfig",
    "SegmentCoverage",
    "Store",
    "StoreInUseError",
    "TimeoutError",
    "VideoArtifacts",
    "VideoError",
    "VideoPath",
    "__version__",
    "default_store_dir",
]
