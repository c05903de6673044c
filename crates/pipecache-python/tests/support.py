"""Helpers shared by the tests: paths, free ports, a blocking TCP listener, a tiny Redis
client, the README example, strict value comparison and small value factories."""

from __future__ import annotations

import asyncio
import os
import re
import socket
import subprocess
import sys
import threading
from pathlib import Path
from typing import Any, Awaitable, Coroutine, Dict, List, Optional, TypeVar, Union

import pipecache

T = TypeVar("T")

TESTS_DIR = Path(__file__).resolve().parent
PACKAGE_ROOT = TESTS_DIR.parent  # crates/pipecache-python
REPO_ROOT = PACKAGE_ROOT.parent.parent
PACKAGE_DIR = PACKAGE_ROOT / "python" / "pipecache"
README = REPO_ROOT / "README.md"
PYTHON = sys.executable  # the venv's python, which has pipecache installed


def run(coro: Coroutine[Any, Any, T]) -> T:
    """Runs a coroutine on a fresh event loop (what an ``async def`` test gets too)."""
    return asyncio.run(coro)


def fs_config(path: Union[str, os.PathLike[str]], **kwargs: Any) -> pipecache.CacheConfig:
    """A config with only the local tier, in ``path``."""
    return pipecache.CacheConfig(backends=[pipecache.FilesystemCacheConfig(path)], **kwargs)


def fs_manager(path: Union[str, os.PathLike[str]], **kwargs: Any) -> pipecache.CacheManager:
    """An (unopened) manager with only the local tier, in ``path``."""
    return pipecache.CacheManager(fs_config(path, **kwargs))


def write_video(path: Path, size: int = 4096, seed: int = 0) -> Path:
    """A stand-in video file of ``size`` bytes (content depends on ``seed``)."""
    block = (seed.to_bytes(4, "little") + b"video-bytes-") * (size // 16 + 1)
    path.write_bytes(block[:size])
    return path


def free_port() -> int:
    """A loopback port nothing listens on (at the moment of the call)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class SilentListener:
    """A TCP listener that accepts every connection and never answers: a hung server."""

    def __init__(self) -> None:
        self._sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._sock.bind(("127.0.0.1", 0))
        self._sock.listen(128)
        self.port = int(self._sock.getsockname()[1])
        self._conns: List[socket.socket] = []
        self._thread = threading.Thread(target=self._accept, daemon=True)
        self._thread.start()

    def _accept(self) -> None:
        while True:
            try:
                conn, _ = self._sock.accept()
            except OSError:
                return
            self._conns.append(conn)

    def close(self) -> None:
        try:
            self._sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        self._sock.close()
        self._thread.join(timeout=5)
        for conn in self._conns:
            conn.close()


def redis_command(port: int, *args: Union[str, int], db: int = 0) -> Any:
    """Sends one command to redis-server on ``port`` (after ``SELECT db``); its reply."""
    with socket.create_connection(("127.0.0.1", port), timeout=10) as s:
        f = s.makefile("rwb")
        for command in (("SELECT", db), args):
            f.write(b"*%d\r\n" % len(command))
            for a in command:
                data = str(a).encode()
                f.write(b"$%d\r\n%s\r\n" % (len(data), data))
        f.flush()
        _read_reply(f)  # SELECT's +OK
        return _read_reply(f)


def _read_reply(f: Any) -> Any:
    line = f.readline()
    if not line:
        raise ConnectionError("redis-server closed the connection")
    kind, rest = line[:1], line[1:-2]
    if kind == b"+":
        return rest.decode()
    if kind == b"-":
        raise RuntimeError(f"redis error: {rest.decode()}")
    if kind == b":":
        return int(rest)
    if kind == b"$":
        n = int(rest)
        if n < 0:
            return None
        data = f.read(n + 2)[:-2]
        return data
    if kind == b"*":
        n = int(rest)
        return None if n < 0 else [_read_reply(f) for _ in range(n)]
    raise RuntimeError(f"unexpected redis reply {line!r}")


def readme_python_example() -> str:
    """The first ```python block under the heading ``## Use it from Python`` of README.md."""
    text = README.read_text(encoding="utf-8")
    heading = re.search(r"^## Use it from Python[ \t]*$", text, re.MULTILINE)
    assert heading, "README.md has no '## Use it from Python' heading"
    section = text[heading.end() :]
    next_heading = re.search(r"^## ", section, re.MULTILINE)
    if next_heading:
        section = section[: next_heading.start()]
    block = re.search(r"^```python[ \t]*\n(.*?)^```[ \t]*$", section, re.MULTILINE | re.DOTALL)
    assert block, "no ```python block under '## Use it from Python' in README.md"
    return block.group(1)


def run_python(
    code_or_path: Union[str, Path],
    *args: str,
    cwd: Path,
    env: Optional[Dict[str, str]] = None,
    timeout: float = 120,
) -> subprocess.CompletedProcess[str]:
    """Runs the venv's python on a file (a ``Path``) or on source (a ``str``) with ``args``."""
    argv = (
        [PYTHON, str(code_or_path)]
        if isinstance(code_or_path, Path)
        else [PYTHON, "-c", code_or_path]
    )
    full_env = dict(os.environ)
    full_env.update(env or {})
    full_env.setdefault("PYTHONFAULTHANDLER", "1")
    return subprocess.run(
        [*argv, *args], cwd=cwd, env=full_env, capture_output=True, text=True, timeout=timeout
    )


def describe(proc: subprocess.CompletedProcess[str]) -> str:
    """Exit code and output of a finished process, for assertion messages."""
    return (
        f"exit code {proc.returncode}\n"
        f"--- stdout ---\n{proc.stdout}\n"
        f"--- stderr ---\n{proc.stderr}"
    )


def assert_same(actual: Any, expected: Any, path: str = "value") -> None:
    """``actual == expected`` and, all the way down, of the same types (``True`` is not
    ``1``, ``1.0`` is not ``1``), floats compared bit for bit (so ``-0.0`` and NaN count)."""
    assert type(actual) is type(expected), (
        f"{path}: {type(actual).__name__} {actual!r} != {type(expected).__name__} {expected!r}"
    )
    if isinstance(expected, dict):
        assert list(actual) == list(expected), (
            f"{path}: keys {list(actual)!r} != {list(expected)!r}"
        )
        for k in expected:
            assert_same(actual[k], expected[k], f"{path}[{k!r}]")
    elif isinstance(expected, list):
        assert len(actual) == len(expected), f"{path}: length {len(actual)} != {len(expected)}"
        for i, (a, e) in enumerate(zip(actual, expected)):
            assert_same(a, e, f"{path}[{i}]")
    elif isinstance(expected, float):
        assert actual.hex() == expected.hex() or (actual != actual and expected != expected), (
            f"{path}: {actual!r} != {expected!r}"
        )
    else:
        assert actual == expected, f"{path}: {actual!r} != {expected!r}"


def whisper_transcript(words: str = "hello world, this is a test") -> Dict[str, Any]:
    """A transcript shaped like openai-whisper's ``transcribe()`` output."""
    return {
        "text": f" {words}",
        "language": "en",
        "segments": [
            {
                "id": 0,
                "seek": 0,
                "start": 0.0,
                "end": 2.48,
                "text": f" {words}",
                "tokens": [50364, 2425, 1002, 11, 341, 307, 257, 1500, 50488],
                "temperature": 0.0,
                "avg_logprob": -0.2134567890123,
                "compression_ratio": 0.8571428571428571,
                "no_speech_prob": 0.0123,
                "words": [
                    {"word": " hello", "start": 0.0, "end": 0.42, "probability": 0.98},
                    {"word": " world,", "start": 0.42, "end": 0.9, "probability": 0.87},
                ],
            },
            {
                "id": 1,
                "seek": 248,
                "start": 2.48,
                "end": 4.0,
                "text": " 世界、こんにちは 🎬",
                "tokens": [],
                "temperature": 0.2,
                "avg_logprob": -1.5,
                "compression_ratio": 1.0,
                "no_speech_prob": 0.5,
            },
        ],
    }


async def gather_all(*aws: Awaitable[T]) -> List[T]:
    """``asyncio.gather`` that returns a list (typed)."""
    return list(await asyncio.gather(*aws))
