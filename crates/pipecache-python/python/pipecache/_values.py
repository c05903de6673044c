"""Python values as store parts and back. Shared by the key-level and pipeline APIs.

Parts cross into Rust as ``bytes`` (read there without a copy under the GIL); numpy arrays
become their raw C-order bytes plus a small header, and come back as read-only arrays that
view the returned bytes (no copy).
"""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING, Any, Callable, Dict, List, Optional, Sequence, Tuple, Union

from . import _native
from ._errors import CorruptionError, InvalidInputError

if TYPE_CHECKING:
    import numpy as np
    import numpy.typing as npt

Parts = List[Tuple[str, bytes]]
Ttl = Union[int, float, str, None]
# A native cache's ``decode_document``: CBOR bytes and a name for errors to the document.
Decode = Callable[[bytes, str], Any]

# Converting this many bytes of numpy arrays under the GIL, the coroutine yields to the event
# loop once, so other coroutines keep running during a large put.
_YIELD_EVERY_BYTES = 4 << 20


def ttl_seconds(ttl: Ttl) -> Optional[float]:
    """Seconds of a TTL given as seconds or as ``"90s"``/``"12h"``/``"7d"``."""
    if ttl is None:
        return None
    if isinstance(ttl, str):
        return float(_native.duration_seconds(ttl, "ttl"))
    if isinstance(ttl, bool) or not isinstance(ttl, (int, float)) or not ttl > 0:
        raise InvalidInputError(
            f"ttl: must be positive seconds or a string like '7d', got {ttl!r}"
        )
    return float(ttl)


def is_ndarray(value: object) -> bool:
    """Whether ``value`` is a numpy array (without importing numpy when it is not loaded)."""
    return type(value).__module__ == "numpy" and type(value).__name__ == "ndarray"


def as_bytes(value: object, what: str) -> bytes:
    """``bytes`` of a bytes-like value; a ``bytes`` object itself is passed on, not copied."""
    if isinstance(value, bytes):
        return value
    if isinstance(value, (bytearray, memoryview)):
        return bytes(value)
    raise InvalidInputError(
        f"{what}: expected bytes-like or a numpy array, got {type(value).__name__}"
    )


def array_header(array: np.ndarray[Any, Any], what: str) -> Dict[str, Any]:
    """The dtype and shape that bring an array's raw bytes back as the same array."""
    if array.dtype.hasobject or array.dtype.fields is not None or array.dtype.subdtype is not None:
        raise InvalidInputError(
            f"{what}: only arrays of plain numbers or bytes can be stored, not dtype {array.dtype}"
        )
    return {"dtype": array.dtype.str, "shape": list(array.shape)}


def array_bytes(array: np.ndarray[Any, Any]) -> bytes:
    """An array's bytes in C order."""
    import numpy as np

    return np.ascontiguousarray(array).tobytes()


def array_from(header: Any, raw: bytes, what: str) -> npt.NDArray[Any]:
    """The array ``header`` describes, viewing ``raw`` (read-only, no copy)."""
    import numpy as np

    try:
        dtype = np.dtype(header["dtype"])
        shape = tuple(int(n) for n in header["shape"])
        return np.frombuffer(raw, dtype=dtype).reshape(shape)
    except (KeyError, TypeError, ValueError) as e:
        raise CorruptionError(f"{what}: stored array does not match its header: {e}") from None


class Yielder:
    """Yields to the event loop after every ``_YIELD_EVERY_BYTES`` converted under the GIL,
    so a coroutine converting a 100 MB put never stalls the others for long."""

    def __init__(self) -> None:
        self._since = 0

    async def converted(self, n: int) -> None:
        self._since += n
        if self._since >= _YIELD_EVERY_BYTES:
            self._since = 0
            await asyncio.sleep(0)


def parts_dict(parts: Sequence[Tuple[str, bytes]]) -> Dict[str, bytes]:
    """Parts by name."""
    return dict(parts)


def document(parts: Dict[str, bytes], name: str, what: str, decode: Decode) -> Any:
    """The document stored in part ``name``, decoded by ``decode`` (a native cache's
    ``decode_document``, which keeps decoded documents for repeated reads)."""
    raw = parts.get(name)
    if raw is None:
        raise CorruptionError(f"{what}: part {name!r} is missing")
    return decode(raw, what)


def encode_document(value: Any, what: str) -> bytes:
    """A JSON-compatible value as the CBOR a document part holds."""
    return bytes(_native.encode_document(value, what))
