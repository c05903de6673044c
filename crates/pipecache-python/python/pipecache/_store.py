"""``Store``: the low-level API for non-pipeline users: bytes or named parts under keys."""

from __future__ import annotations

import os
from types import TracebackType
from typing import Any, Dict, List, Mapping, Optional, Type, Union

from . import _native
from ._bridge import call
from ._errors import InvalidInputError
from ._values import Ttl, as_bytes, parts_dict, ttl_seconds

__all__ = ["Store"]


class Store:
    """One local store directory (chunk files and a RocksDB index), no remote tiers.

    Open it with ``store = await Store.open(path)``; it is an async context manager.
    Keys follow the CLI's rules: any non-empty text of at most 1024 bytes (UTF-8).
    """

    def __init__(self, native: Any, path: str) -> None:
        self._native = native
        self.path = path

    @classmethod
    async def open(cls, path: Union[str, os.PathLike[str]], create: bool = True) -> Store:
        """Opens (by default creating) the store in ``path``."""
        path = os.fspath(path)
        if not create and not os.path.isdir(path):
            raise InvalidInputError(f"path: {path} is not a store directory")
        native = _native.NativeCache(
            {"backends": [{"type": "filesystem", "path": path}]}, "Store.open", path
        )
        await call(native.open)
        return cls(native, path)

    async def __aenter__(self) -> Store:
        return self

    async def __aexit__(
        self,
        exc_type: Optional[Type[BaseException]],
        exc: Optional[BaseException],
        tb: Optional[TracebackType],
    ) -> None:
        await self.close()

    async def put(
        self,
        key: str,
        value: Union[bytes, bytearray, memoryview, Mapping[str, Any]],
        ttl: Ttl = None,
        *,
        kind: str = "",
        compress: Optional[bool] = None,
    ) -> None:
        """Stores ``value`` (bytes, or a dict of named parts) under ``key``, durably.

        Args:
            ttl: seconds, or ``"90s"``/``"12h"``/``"7d"``; ``None`` for the store's default.
            kind: artifact kind (for cost-weighted eviction and stats).
            compress: ``False`` stores new blobs raw; ``True`` or ``None`` compresses them
                where it pays, with the store's codec (``compression_codec``).
        """
        if isinstance(value, Mapping):
            parts = [
                (str(name), as_bytes(data, f"parts[{name!r}]")) for name, data in value.items()
            ]
        else:
            parts = [("data", as_bytes(value, "value"))]
        await call(self._native.put, key, kind, [], parts, ttl_seconds(ttl), compress)

    async def get(self, key: str) -> Optional[bytes]:
        """The bytes of a one-part artifact, or ``None``; :meth:`get_parts` for several."""
        found = self._native.get_memory(key) or await call(self._native.get, key)
        if found is None:
            return None
        parts = found[2]
        if len(parts) != 1:
            raise InvalidInputError(f"{key}: has {len(parts)} parts; use get_parts")
        return bytes(parts[0][1])

    async def get_parts(self, key: str) -> Optional[Dict[str, bytes]]:
        """Every part by name, or ``None``."""
        found = self._native.get_memory(key) or await call(self._native.get, key)
        return None if found is None else parts_dict(found[2])

    async def delete(self, key: str) -> bool:
        """Removes ``key``; whether it was there."""
        return bool(await call(self._native.delete, key))

    async def exists(self, key: str) -> bool:
        """Whether ``key`` is held (and not expired)."""
        return bool(await call(self._native.exists, key))

    async def list(self, prefix: str = "") -> List[str]:
        """Keys starting with ``prefix``."""
        return list(await call(self._native.list_keys, prefix))

    async def stats(self) -> Dict[str, Any]:
        """The figures ``pipecache stats --json`` shows for this store."""
        return dict((await call(self._native.stats))["local"])

    async def close(self) -> None:
        """Closes the store. Idempotent."""
        await call(self._native.close)
