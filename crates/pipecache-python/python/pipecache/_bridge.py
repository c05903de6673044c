"""Native calls as asyncio futures.

A native call runs on pipecache's tokio runtime with the GIL released. When it ends, the
Rust side queues its outcome and writes a byte to a pipe this module registered with the
running loop (``loop.add_reader``); the loop thread then builds the Python values and
resolves the futures. No Rust thread ever takes the GIL, so the interpreter can exit at any
moment (see ``src/bridge.rs`` for why this is not pyo3-async-runtimes).

Cancelling the returned future does not stop the native call: a put may still complete.
"""

from __future__ import annotations

import asyncio
import itertools
import os
import weakref
from typing import Any, Callable, Dict

from . import _native

__all__ = ["call"]


class _Notifier:
    """The completions of one event loop."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.completions = _native.Completions()
        self.pending: Dict[int, asyncio.Future[Any]] = {}
        self.tokens = itertools.count()
        fd = self.completions.fileno()
        os.set_blocking(fd, False)
        loop.add_reader(fd, self._drain)

    def _drain(self) -> None:
        for token, ok, value in self.completions.take():
            future = self.pending.pop(token, None)
            if future is None or future.done():
                continue  # cancelled meanwhile
            if ok:
                future.set_result(value)
            else:
                future.set_exception(value)


_notifiers: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, _Notifier] = (
    weakref.WeakKeyDictionary()
)


def call(start: Callable[..., None], *args: Any) -> asyncio.Future[Any]:
    """Starts the native call ``start(completions, token, *args)``; its future."""
    loop = asyncio.get_running_loop()
    notifier = _notifiers.get(loop)
    if notifier is None:
        notifier = _notifiers[loop] = _Notifier(loop)
    token = next(notifier.tokens)
    future = loop.create_future()
    notifier.pending[token] = future
    try:
        start(notifier.completions, token, *args)
    except BaseException:
        del notifier.pending[token]
        raise
    return future
