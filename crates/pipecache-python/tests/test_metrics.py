"""Prometheus' text format: a server's ``/metrics`` after a scripted workload, and
``pipecache stats --prometheus``, parse with prometheus_client's parser and carry exactly
the numbers of the workload and of ``stats --json``."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import time
from pathlib import Path
from typing import Dict, Tuple

from prometheus_client.parser import text_string_to_metric_families
from support import fs_manager

Labels = Tuple[Tuple[str, str], ...]


def samples(text: str) -> Dict[Tuple[str, Labels], float]:
    """Every sample of a Prometheus text exposition, by name and sorted labels."""
    out: Dict[Tuple[str, Labels], float] = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            out[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return out


def http_get(sock: Path, path: str) -> Tuple[int, Dict[str, str], str]:
    """A GET over the server's Unix socket: status, headers, body."""
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
        s.connect(str(sock))
        s.sendall(f"GET {path} HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n".encode())
        data = b""
        while chunk := s.recv(65536):
            data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    lines = head.decode().split("\r\n")
    headers = dict(line.split(": ", 1) for line in lines[1:])
    return int(lines[0].split()[1]), headers, body.decode()


def tier(kind: str, artifact_kind: str = "other") -> Labels:
    """Labels of a tier's series for one artifact kind (plain keys are ``other``)."""
    return tuple(sorted((("tier", kind), ("tier_kind", kind), ("kind", artifact_kind))))


def total(got: Dict[Tuple[str, Labels], float], name: str, **labels: str) -> float:
    """The sum of ``name``'s samples whose labels include ``labels`` (e.g. over kinds)."""
    return sum(
        value
        for (metric, have), value in got.items()
        if metric == name and all(dict(have).get(k) == v for k, v in labels.items())
    )


async def test_metrics_count_a_scripted_workload_exactly(served_store: Path) -> None:
    """3 puts, 2 hits and 1 miss through the server: /metrics says exactly that, parses,
    and agrees with /v1/stats."""
    async with fs_manager(served_store) as cache:
        for key in ("a", "b", "c"):
            await cache.set(key, key.encode() * 100)
        assert await cache.get("a") == b"a" * 100
        assert await cache.get("b") == b"b" * 100
        assert await cache.get("nope") is None

    # One GC pass through the server (the CLI runs it as a server job): 1 run, and the
    # bytes its report says it reclaimed.
    gc = subprocess.run(
        [os.environ["PIPECACHE_BIN"], "--dir", str(served_store), "gc", "--json"],
        capture_output=True,
        check=True,
    )
    reclaimed = json.loads(gc.stdout)["bytes_reclaimed"]

    status, headers, text = http_get(served_store / "server.sock", "/metrics")
    assert status == 200
    assert headers["content-type"].startswith("text/plain; version=0.0.4")
    got = samples(text)
    assert got[("pipecache_artifacts", ())] == 3
    assert got[("pipecache_gc_runs_total", ())] == 1
    assert got[("pipecache_gc_reclaimed_bytes_total", ())] == reclaimed
    # The one pass is the last: when it ended (Unix time, seconds) and what it reclaimed.
    assert abs(got[("pipecache_last_gc_timestamp_seconds", ())] - time.time()) < 600
    assert got[("pipecache_last_gc_reclaimed_bytes", ())] == reclaimed
    assert got[("pipecache_logical_bytes", ())] == 300
    # Puts reach the memory tier as they are written, so both hits come from it; the miss
    # passes through memory to the local store.
    assert got[("pipecache_hits_total", tier("memory"))] == 2
    assert got[("pipecache_misses_total", tier("memory"))] == 1
    assert got[("pipecache_hits_total", tier("local"))] == 0
    assert got[("pipecache_misses_total", tier("local"))] == 1
    assert got[("pipecache_errors_total", tier("local"))] == 0

    # One latency observation per call: 2 memory hits (a memory miss is timed as the lookup
    # that goes on), 1 local read (the miss), 3 puts.
    assert got[("pipecache_get_seconds_count", tier("memory"))] == 2
    assert got[("pipecache_get_seconds_count", tier("local"))] == 1
    assert got[("pipecache_put_seconds_count", tier("local"))] == 3
    for name, kind in (("get", "memory"), ("get", "local"), ("put", "local")):
        buckets = sorted(
            (float(dict(labels)["le"]), value)
            for (metric, labels), value in got.items()
            if metric == f"pipecache_{name}_seconds_bucket"
            and dict(labels)["tier"] == kind
            and dict(labels)["kind"] == "other"
        )
        counts = [value for _, value in buckets]
        assert counts == sorted(counts), (name, kind, buckets)
        assert buckets[-1] == (float("inf"), got[(f"pipecache_{name}_seconds_count", tier(kind))])
        assert got[(f"pipecache_{name}_seconds_sum", tier(kind))] > 0

    _, _, body = http_get(served_store / "server.sock", "/v1/stats")
    stats = json.loads(body)
    for t in stats["tiers"]:
        for field in ("hits", "misses", "puts"):
            metric = f"pipecache_{field}_total"
            assert total(got, metric, tier=t["name"]) == t[field], (t["name"], field)


def test_stats_prometheus_matches_stats_json(tmp_path: Path) -> None:
    """``stats --prometheus`` of a store with content parses and carries the figures of
    ``stats --json``."""
    binary = os.environ["PIPECACHE_BIN"]
    store = str(tmp_path / "store")

    def cli(*args: str, stdin: bytes = b"") -> str:
        proc = subprocess.run(
            [binary, "--dir", store, *args], input=stdin, capture_output=True, check=True
        )
        return proc.stdout.decode()

    for i in range(5):
        cli("put", f"k{i}", "-", stdin=b"x" * (1000 + i))
    got = samples(cli("stats", "--prometheus"))
    stats = json.loads(cli("stats", "--json"))
    assert {"tiers", "lookups", "recompute_seconds_saved_today", "most_missed"} <= set(stats)
    for field in ("artifacts", "blobs", "chunk_files"):
        assert got[(f"pipecache_{field}", ())] == stats[field], field
    for field in ("logical", "unique", "stored", "disk"):
        assert got[(f"pipecache_{field}_bytes", ())] == stats[f"{field}_bytes"], field
    assert got[("pipecache_expired_total", ())] == stats["expired"]
    assert got[("pipecache_dedup_ratio", ())] == stats["dedup_ratio"]
    assert got[("pipecache_fs_size_bytes", ())] == stats["fs"]["total_bytes"]
    assert total(got, "pipecache_hits_total", tier="local") == stats["tiers"][0]["hits"]
