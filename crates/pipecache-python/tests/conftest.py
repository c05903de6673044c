"""Fixtures: real servers (redis-server, s3s-fs) started once per session on free loopback
ports, a bucket or Redis database per test, a store directory per test, and ``async def``
tests run with ``asyncio.run`` (no plugin).

Server programs come from ``PIPECACHE_REDIS_SERVER`` and ``PIPECACHE_S3S_SERVER`` (absolute
paths; CI sets them). A test that needs a server whose variable is unset fails, saying so.
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import itertools
import os
import socket
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Dict, Iterator, List, Tuple

import pipecache
import pytest
from support import SilentListener, free_port, fs_manager, redis_command, run

START_TIMEOUT = 30.0
START_ATTEMPTS = 5

# s3s-fs checks request signatures against exactly these credentials.
S3_ACCESS_KEY = "pipecache-test-access"
S3_SECRET_KEY = "pipecache-test-secret-Zq81"
S3_REGION = "us-east-1"


@pytest.hookimpl(tryfirst=True)
def pytest_pyfunc_call(pyfuncitem: pytest.Function) -> bool | None:
    """Runs ``async def`` tests on a fresh event loop each (``asyncio.run``)."""
    if not inspect.iscoroutinefunction(pyfuncitem.obj):
        return None
    names = pyfuncitem._fixtureinfo.argnames
    asyncio.run(pyfuncitem.obj(**{name: pyfuncitem.funcargs[name] for name in names}))
    return True


# Servers


def _program(env_var: str, what: str) -> str:
    path = os.environ.get(env_var, "")
    if not path:
        pytest.fail(
            f"{env_var} is not set: it must be the absolute path of {what} "
            f"(CI sets it; e.g. {env_var}=$(command -v {what}))",
            pytrace=False,
        )
    if not (os.path.isfile(path) and os.access(path, os.X_OK)):
        pytest.fail(f"{env_var}={path!r} is not an executable file", pytrace=False)
    return path


def _connects(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.2) as s:
            # A connect to a free ephemeral port can succeed on itself (TCP simultaneous open).
            return bool(s.getsockname() != s.getpeername())
    except OSError:
        return False


def _start(
    what: str, argv: Callable[[int], List[str]], log: Path, ready: Callable[[int], bool]
) -> Tuple[subprocess.Popen[bytes], int]:
    """Starts ``argv(port)`` on a free port and waits until ``ready(port)``."""
    failures = []
    for _ in range(START_ATTEMPTS):
        port = free_port()
        with open(log, "wb") as out:
            proc = subprocess.Popen(
                argv(port), stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT
            )
        deadline = time.monotonic() + START_TIMEOUT
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                failures.append(
                    f"exited with {proc.returncode}: {log.read_text(errors='replace')}"
                )
                break
            if ready(port) and proc.poll() is None:
                return proc, port
            time.sleep(0.05)
        else:
            _stop(proc)
            pytest.fail(
                f"{what} did not get ready on port {port} in {START_TIMEOUT}s:\n"
                + log.read_text(errors="replace")
            )
    pytest.fail(f"{what} failed to start {START_ATTEMPTS} times:\n" + "\n".join(failures))


def _stop(proc: subprocess.Popen[bytes]) -> None:
    proc.terminate()
    try:
        proc.wait(timeout=10)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


@dataclass
class RedisServer:
    """A running redis-server."""

    port: int
    _next_db = itertools.count(1)

    def url(self, db: int = 0) -> str:
        return f"redis://127.0.0.1:{self.port}/{db}"

    def new_db(self) -> int:
        """A database number no other test uses (emptied)."""
        db = next(self._next_db)
        redis_command(self.port, "FLUSHDB", db=db)
        return db

    def keys(self, db: int, pattern: str = "*") -> List[str]:
        return sorted(k.decode() for k in redis_command(self.port, "KEYS", pattern, db=db))


@dataclass
class RedisDb:
    """One test's Redis database."""

    server: RedisServer
    db: int

    @property
    def url(self) -> str:
        return self.server.url(self.db)

    def keys(self, pattern: str = "*") -> List[str]:
        return self.server.keys(self.db, pattern)


@dataclass
class S3Server:
    """A running s3s-fs: buckets are directories under ``root``; requests must be signed
    with ``access_key``/``secret_key``."""

    port: int
    root: Path
    access_key: str = S3_ACCESS_KEY
    secret_key: str = S3_SECRET_KEY
    region: str = S3_REGION
    _next = itertools.count(1)

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def create_bucket(self, name: str) -> Path:
        path = self.root / name
        path.mkdir(parents=True, exist_ok=True)
        return path

    def new_bucket(self) -> S3Bucket:
        name = f"test-bucket-{next(self._next):04d}"
        return S3Bucket(self, name, self.create_bucket(name))


@dataclass
class S3Bucket:
    """One test's bucket, and the directory s3s-fs keeps its objects in."""

    server: S3Server
    name: str
    dir: Path

    def config(self, **kwargs: object) -> pipecache.S3CacheConfig:
        """An S3 tier over this bucket with the server's credentials."""
        s = self.server
        args: Dict[str, Any] = dict(
            bucket=self.name,
            endpoint=s.endpoint,
            region=s.region,
            access_key_id=s.access_key,
            secret_access_key=s.secret_key,
            timeout=10,
        )
        args.update(kwargs)
        return pipecache.S3CacheConfig(**args)

    def objects(self) -> List[str]:
        """Object keys in the bucket (s3s-fs stores each as a file under the bucket dir)."""
        return sorted(str(p.relative_to(self.dir)) for p in self.dir.rglob("*") if p.is_file())


@pytest.fixture(scope="session")
def redis_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisServer]:
    """A redis-server for the session (no persistence)."""
    program = _program("PIPECACHE_REDIS_SERVER", "redis-server")
    workdir = tmp_path_factory.mktemp("redis")

    def argv(port: int) -> List[str]:
        return [
            program,
            "--port",
            str(port),
            "--bind",
            "127.0.0.1",
            "--save",
            "",
            "--appendonly",
            "no",
            "--daemonize",
            "no",
            "--databases",
            "256",
            "--dir",
            str(workdir),
        ]

    def ready(port: int) -> bool:
        try:
            return bool(redis_command(port, "PING") == "PONG")
        except OSError:
            return False

    proc, port = _start("redis-server", argv, workdir / "redis.log", ready)
    yield RedisServer(port)
    _stop(proc)


@pytest.fixture(scope="session")
def s3_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[S3Server]:
    """An s3s-fs server for the session (objects as files, signatures checked)."""
    program = _program("PIPECACHE_S3S_SERVER", "s3s-fs")
    workdir = tmp_path_factory.mktemp("s3s")
    root = workdir / "root"
    root.mkdir()

    def argv(port: int) -> List[str]:
        return [
            program,
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--access-key",
            S3_ACCESS_KEY,
            "--secret-key",
            S3_SECRET_KEY,
            str(root),
        ]

    proc, port = _start("s3s-fs", argv, workdir / "s3s.log", _connects)
    yield S3Server(port, root)
    _stop(proc)


@pytest.fixture
def redis_db(redis_server: RedisServer) -> RedisDb:
    """A Redis database of this test's own."""
    return RedisDb(redis_server, redis_server.new_db())


@pytest.fixture
def s3_bucket(s3_server: S3Server) -> S3Bucket:
    """A bucket of this test's own."""
    return s3_server.new_bucket()


# Local things


@pytest.fixture
def store_dir(tmp_path: Path) -> Path:
    """A store directory of this test's own (not created yet)."""
    return tmp_path / "store"


@pytest.fixture
def manager(store_dir: Path) -> Iterator[pipecache.CacheManager]:
    """A manager with only the local tier in ``store_dir``, closed after the test."""
    m = fs_manager(store_dir)
    yield m
    run(m.close())


@pytest.fixture
def silent_listener() -> Iterator[SilentListener]:
    """A TCP port that accepts connections and never answers."""
    listener = SilentListener()
    yield listener
    listener.close()


@contextlib.contextmanager
def serving(
    store: Path, *args: str, log: Path, serve_args: Tuple[str, ...] = ()
) -> Iterator[Path]:
    """Runs ``pipecache serve`` (the CLI binary named by ``PIPECACHE_BIN``) on ``store``
    with the global options ``args`` and ``serve``'s own ``serve_args`` until the block
    ends; stops it with SIGTERM, which must end it cleanly."""
    binary = _program("PIPECACHE_BIN", "pipecache")
    with open(log, "wb") as out:
        proc = subprocess.Popen(
            [binary, "--dir", str(store), *args, "serve", *serve_args],
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    deadline = time.monotonic() + START_TIMEOUT
    while not _serving(store):
        if proc.poll() is not None or time.monotonic() > deadline:
            _stop(proc)
            pytest.fail("pipecache serve did not start:\n" + log.read_text(errors="replace"))
        time.sleep(0.02)
    try:
        yield store
    finally:
        proc.terminate()
        code = proc.wait(timeout=60)
        assert code == 0, f"pipecache serve exited {code}:\n" + log.read_text(errors="replace")


@pytest.fixture
def served_store(tmp_path: Path) -> Iterator[Path]:
    """A store directory held by a running ``pipecache serve``."""
    with serving(tmp_path / "served-store", log=tmp_path / "serve.log") as store:
        yield store


def _serving(store: Path) -> bool:
    """True once the server file exists and its socket accepts a connection."""
    if not (store / "server.json").exists():
        return False
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
            s.connect(str(store / "server.sock"))
        return True
    except OSError:
        return False
