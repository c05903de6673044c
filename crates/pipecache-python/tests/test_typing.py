"""The package is typed: mypy --strict passes on it and on the README example, and the
native module's stubs match the compiled module."""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import List

import pytest
from support import PACKAGE_DIR, PYTHON, readme_python_example

# stubtest findings that are not stub errors: aliases that exist only for type checking,
# and the constructor, which pyo3 makes a __new__ while the stub declares it as __init__
# (the same call type-checks either way).
STUBTEST_ALLOWLIST = """
pipecache._native.__all__
pipecache._native.Found
pipecache._native.Parts
pipecache._native.Segment
pipecache._native.NativeCache.__init__
pipecache._native.NativeCache.__new__
"""


@pytest.fixture(scope="module")
def mypy_cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("mypy-cache")


def _mypy(args: List[str], cwd: Path, cache: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [PYTHON, "-m", "mypy", "--strict", "--cache-dir", str(cache), "--no-error-summary", *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=300,
    )


def test_mypy_strict_package(tmp_path: Path, mypy_cache: Path) -> None:
    """mypy --strict finds no error in the package (its .py files and _native.pyi)."""
    proc = _mypy([str(PACKAGE_DIR)], tmp_path, mypy_cache)
    print(proc.stdout, proc.stderr)
    assert proc.returncode == 0, f"mypy --strict {PACKAGE_DIR}:\n{proc.stdout}{proc.stderr}"


def test_mypy_strict_readme_example(tmp_path: Path, mypy_cache: Path) -> None:
    """mypy --strict finds no error in the README's Python example (using the installed
    package's types)."""
    example = tmp_path / "readme_example.py"
    example.write_text(readme_python_example(), encoding="utf-8")
    proc = _mypy([str(example)], tmp_path, mypy_cache)
    print(proc.stdout, proc.stderr)
    assert proc.returncode == 0, (
        f"mypy --strict on the README example:\n{proc.stdout}{proc.stderr}"
    )


def test_stubs_match_native_module(tmp_path: Path, mypy_cache: Path) -> None:
    """mypy's stubtest finds every function, class, method and parameter of
    pipecache._native as _native.pyi declares it."""
    allowlist = tmp_path / "allowlist.txt"
    allowlist.write_text(STUBTEST_ALLOWLIST, encoding="utf-8")
    proc = subprocess.run(
        [
            PYTHON,
            "-m",
            "mypy.stubtest",
            "pipecache._native",
            "--allowlist",
            str(allowlist),
            "--ignore-disjoint-bases",
            "--concise",
        ],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=300,
    )
    # pyo3 classes cannot be subclassed; the stub not saying @final is not a mismatch.
    errors = [
        line
        for line in proc.stdout.splitlines()
        if line.strip()
        and "isn't marked with @final" not in line
        and not line.startswith("Found ")
    ]
    print(proc.stdout, proc.stderr)
    assert not errors, "stubtest pipecache._native:\n" + "\n".join(errors) + proc.stderr
