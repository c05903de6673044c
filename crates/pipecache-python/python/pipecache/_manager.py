"""``CacheManager``: the key-level cache over every configured tier."""

from __future__ import annotations

from types import TracebackType
from typing import Any, Dict, List, Optional, Type

from . import _native
from ._bridge import call
from ._config import CacheConfig, default_store_dir
from ._values import (
    Decode,
    Ttl,
    array_bytes,
    array_from,
    array_header,
    as_bytes,
    document,
    encode_document,
    is_ndarray,
    parts_dict,
    ttl_seconds,
)

__all__ = ["CacheManager"]

# How `set` recorded the value's Python type, so `get` returns the same type.
_TYPE_META = "py-type"


class CacheManager:
    """A cache over the tiers of a :class:`CacheConfig`, read through with promotion.

    The local store opens on the first call (or ``await manager.open()``); use the manager
    as an async context manager, or ``await manager.close()``, to close it. One process
    holds a store at a time: another gets :class:`StoreInUseError`.

    Values come back as the type they went in as: ``bytes`` and ``bytearray`` as
    themselves, numpy arrays as arrays of the same dtype and shape (read-only views of the
    cached bytes), anything else JSON-compatible (dict, list, str, number, bool, None) as an
    equal value.
    """

    def __init__(self, config: Optional[CacheConfig] = None) -> None:
        self.config = config if config is not None else CacheConfig()
        self._native = _native.NativeCache(
            self.config.to_dict(), self.config._origin, default_store_dir()
        )

    @property
    def dir(self) -> str:
        """The local store's directory."""
        return str(self._native.dir)

    async def open(self) -> CacheManager:
        """Opens the local store now instead of on the first call."""
        await call(self._native.open)
        return self

    async def __aenter__(self) -> CacheManager:
        return await self.open()

    async def __aexit__(
        self,
        exc_type: Optional[Type[BaseException]],
        exc: Optional[BaseException],
        tb: Optional[TracebackType],
    ) -> None:
        await self.close()

    async def get(self, key: str) -> Any:
        """The value under ``key``, or ``None`` on a miss."""
        # A hot hit comes from the memory tier on this thread, without a crossing.
        found = self._native.get_memory(key)
        if found is None:
            found = await call(self._native.get, key)
        if found is None:
            return None
        _kind, meta, parts = found
        return _decode_value(key, meta, parts_dict(parts), self._native.decode_document)

    async def set(self, key: str, value: Any, ttl: Ttl = None, *, kind: str = "") -> None:
        """Stores ``value`` under ``key``, durably, in every write-through tier.

        Args:
            ttl: seconds, or ``"90s"``/``"12h"``/``"7d"``; ``None`` for the default TTL.
            kind: an artifact kind for cost-weighted eviction and stats.
        """
        meta, parts = _encode_value(key, value)
        await call(self._native.put, key, kind, meta, parts, ttl_seconds(ttl))

    async def delete(self, key: str) -> bool:
        """Removes ``key`` from every tier; whether it was cached."""
        return bool(await call(self._native.delete, key))

    async def exists(self, key: str) -> bool:
        """Whether ``key`` is cached in any tier."""
        return bool(await call(self._native.exists, key))

    async def keys(self, prefix: str = "") -> List[str]:
        """Keys starting with ``prefix``, from every tier that can list."""
        return list(await call(self._native.list_keys, prefix))

    async def clear(self, prefix: str = "") -> int:
        """Removes every key starting with ``prefix`` (all keys for ``""``); how many."""
        return int(await call(self._native.clear, prefix))

    async def stats(self) -> Dict[str, Any]:
        """The figures ``pipecache stats --json`` shows: ``local`` (the store), ``tiers``
        (each with ``by_kind``), ``lookups`` (gets per stage: hits, misses, errors, latency,
        ``recompute_seconds_saved``), ``recompute_seconds_saved_today``, ``most_missed``
        (the videos whose gets missed most) and ``near_cache`` (through a server, this
        process's near cache: ``hits``, ``misses``, ``bytes``, ``budget``; else ``None``),
        and ``decoded_documents``: this process's decoded documents kept for repeated reads
        (``hits``, ``misses``, estimated Python ``bytes`` held, ``budget``: an eighth of
        ``memory_size``, on top of it)."""
        out = dict(await call(self._native.stats))
        out["decoded_documents"] = self._native.document_stats()
        return out

    async def flush(self, timeout: float = 60.0) -> None:
        """Waits until every write-back tier has uploaded what it queued, up to
        ``timeout`` seconds (then :class:`TimeoutError`). ``close`` does not wait: queued
        uploads stay queued on disk and resume at the next open."""
        await call(self._native.flush, float(timeout))

    async def close(self) -> None:
        """Closes the cache; later calls raise :class:`ClosedError`. Idempotent."""
        await call(self._native.close)


def _encode_value(key: str, value: Any) -> tuple[List[tuple[str, str]], List[tuple[str, bytes]]]:
    if isinstance(value, (bytes, memoryview)):
        return [(_TYPE_META, "bytes")], [("data", as_bytes(value, key))]
    if isinstance(value, bytearray):
        return [(_TYPE_META, "bytearray")], [("data", bytes(value))]
    if is_ndarray(value):
        header = encode_document(array_header(value, key), key)
        return [(_TYPE_META, "ndarray")], [
            ("array.cbor", header),
            ("array.raw", array_bytes(value)),
        ]
    return [(_TYPE_META, "document")], [("value.cbor", encode_document(value, key))]


def _decode_value(key: str, meta: Dict[str, str], parts: Dict[str, bytes], decode: Decode) -> Any:
    kind = meta.get(_TYPE_META)
    if kind == "bytes":
        return parts["data"]
    if kind == "bytearray":
        return bytearray(parts["data"])
    if kind == "ndarray":
        return array_from(document(parts, "array.cbor", key, decode), parts["array.raw"], key)
    if kind == "document":
        return document(parts, "value.cbor", key, decode)
    # Put by the CLI or the Rust API: one part is its bytes, several a dict of them.
    if len(parts) == 1:
        return next(iter(parts.values()))
    return parts
