"""The exceptions pipecache raises. Every one derives from :class:`CacheError`.

A cache miss is never an exception: reads return ``None``.
"""

from __future__ import annotations

import builtins

__all__ = [
    "CacheError",
    "ClosedError",
    "ConfigError",
    "CorruptionError",
    "InvalidInputError",
    "NoSpaceError",
    "RemoteError",
    "StoreInUseError",
    "TimeoutError",
    "VideoError",
]


class CacheError(Exception):
    """Base class of every pipecache error."""


class CorruptionError(CacheError):
    """Stored bytes failed their checksum, or an artifact does not decode as its kind.

    Corrupt bytes are never returned; run ``pipecache verify`` / ``repair`` on the store.
    """


class StoreInUseError(CacheError):
    """Another process holds the store directory open."""


class NoSpaceError(CacheError):
    """The store's filesystem is full, or a put would cross ``min_free_space``."""


class RemoteError(CacheError):
    """A remote tier (S3, a shared directory, Redis) failed or refused a request."""


class TimeoutError(RemoteError, builtins.TimeoutError):  # noqa: A001 - the seed's name
    """A remote call, or a wait of this process's own, ran past its deadline."""


class ConfigError(CacheError, ValueError):
    """A configuration value is invalid; the message names the field."""


class InvalidInputError(CacheError, ValueError):
    """An argument is invalid (a malformed key, a value of the wrong type, ...)."""


class ClosedError(CacheError):
    """The cache was closed."""


class VideoError(CacheError):
    """The source video cannot be fingerprinted (missing, a directory, unreadable)."""
