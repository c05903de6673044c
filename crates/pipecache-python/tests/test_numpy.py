"""numpy: keyframe images and embeddings come back as the types, dtypes, shapes and exact
bytes they went in as; CacheManager stores arrays of any non-object dtype."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Dict, List

import numpy as np
import pipecache
import pytest
from support import write_video


@pytest.fixture
def cache(manager: pipecache.CacheManager) -> pipecache.PipelineArtifactCache:
    return pipecache.PipelineArtifactCache(manager)


@pytest.fixture
def video(tmp_path: Path) -> Path:
    return write_video(tmp_path / "v.mp4")


def _assert_same_array(got: Any, want: np.ndarray[Any, Any]) -> None:
    assert isinstance(got, np.ndarray), type(got)
    assert got.dtype == want.dtype, (got.dtype, want.dtype)
    assert got.shape == want.shape, (got.shape, want.shape)
    assert got.tobytes() == want.tobytes()


async def test_keyframe_images_mixed_types(
    cache: pipecache.PipelineArtifactCache, video: Path
) -> None:
    """uint8 H x W x C arrays, bytes and bytearray in one call each come back as their own
    type, with the same dtype, shape and bytes."""
    rng = np.random.default_rng(7)
    images: List[Any] = [
        rng.integers(0, 256, (36, 64, 3), dtype=np.uint8),
        b"\xff\xd8\xff\xe0 a jpeg " + bytes(range(256)),
        rng.integers(0, 256, (20, 10, 4), dtype=np.uint8),
        bytearray(b"png\x00bytes"),
        np.zeros((1, 1, 3), dtype=np.uint8),
        b"",
        rng.integers(0, 256, (8, 8), dtype=np.uint8),  # grayscale H x W
    ]
    await cache.set_keyframes(video, [{"index": i} for i in range(len(images))], images)
    got = await cache.get_keyframes(video)
    assert got is not None
    assert len(got.images) == len(images)
    for g, want in zip(got.images, images):
        if isinstance(want, np.ndarray):
            _assert_same_array(g, want)
        else:
            assert type(g) is type(want)
            assert g == want


async def test_keyframe_non_contiguous_array(
    cache: pipecache.PipelineArtifactCache, video: Path
) -> None:
    """A strided view (every other row, BGR->RGB flip) is stored as its values in C order."""
    base = np.arange(40 * 30 * 3, dtype=np.uint8).reshape(40, 30, 3)
    view = base[::2, :, ::-1]
    assert not view.flags.c_contiguous
    await cache.set_keyframes(video, None, [view])
    got = await cache.get_keyframes(video)
    assert got is not None
    _assert_same_array(got.images[0], np.ascontiguousarray(view))
    assert np.array_equal(got.images[0], view)


async def test_keyframe_images_must_be_a_list(
    cache: pipecache.PipelineArtifactCache, video: Path
) -> None:
    """One image (bytes or an array) instead of a list of them is refused, as is a str image."""
    with pytest.raises(pipecache.InvalidInputError):
        await cache.set_keyframes(video, None, b"one image")
    with pytest.raises(pipecache.InvalidInputError):
        await cache.set_keyframes(video, None, np.zeros((4, 4, 3), np.uint8))  # type: ignore[arg-type]
    with pytest.raises(pipecache.InvalidInputError):
        await cache.set_keyframes(video, None, ["not bytes"])
    assert await cache.get_keyframes(video) is None


def _special_floats() -> np.ndarray[Any, Any]:
    bits = np.array(
        [
            0x7FC00000,  # quiet NaN
            0x7FC12345,  # quiet NaN with a payload
            0xFFC00001,  # negative NaN with a payload
            0x7F800001,  # signalling NaN
            0x80000000,  # -0.0
            0x00000000,  # +0.0
            0x7F800000,  # +inf
            0xFF800000,  # -inf
            0x00000001,  # smallest subnormal
            0x7F7FFFFF,  # largest finite
        ],
        dtype=np.uint32,
    )
    return bits.view(np.float32)


async def test_embeddings_bit_exact(cache: pipecache.PipelineArtifactCache, video: Path) -> None:
    """float32 embeddings come back bit for bit, NaN payloads and -0.0 included, as a
    read-only float32 (n x dim) array."""
    special = _special_floats()
    vectors = np.random.default_rng(3).standard_normal((5, 10)).astype(np.float32)
    vectors[0, :] = special
    vectors[4, ::-1] = special
    await cache.set_embeddings(video, vectors)
    got = await cache.get_embeddings(video)
    assert got is not None
    assert got.dtype == np.float32 and got.shape == (5, 10)
    assert got.tobytes() == vectors.tobytes()
    assert not got.flags.writeable
    copy = got.copy()
    copy[0, 0] = 1.0  # a copy is writable
    assert np.signbit(got[0, 4]) and got[0, 4] == 0


async def test_embeddings_big_endian_and_strided(
    cache: pipecache.PipelineArtifactCache, video: Path
) -> None:
    """Big-endian or non-contiguous float32 input comes back as the same values (native
    little-endian float32, C order)."""
    values = np.arange(24, dtype=np.float32).reshape(6, 4) / 7
    await cache.set_embeddings(video, values.astype(">f4"), model="be")
    await cache.set_embeddings(video, np.asfortranarray(values), model="fortran")
    for model in ("be", "fortran"):
        got = await cache.get_embeddings(video, model=model)
        assert got is not None
        assert got.dtype == np.dtype("<f4") and got.shape == (6, 4)
        assert got.tobytes() == values.tobytes()


async def test_embeddings_empty(cache: pipecache.PipelineArtifactCache, video: Path) -> None:
    """Zero vectors (0 x dim) are a valid, cached result."""
    await cache.set_embeddings(video, np.zeros((0, 16), np.float32))
    got = await cache.get_embeddings(video)
    assert got is not None and got.shape == (0, 16) and got.dtype == np.float32


@pytest.mark.parametrize(
    "bad",
    [
        np.zeros((2, 4), np.float64),
        np.zeros((2, 4), np.float16),
        np.zeros((2, 4), np.int32),
        np.zeros(4, np.float32),
        np.zeros((2, 2, 2), np.float32),
        np.zeros((3, 0), np.float32),
        [[0.0, 1.0]],
    ],
    ids=["float64", "float16", "int32", "1-D", "3-D", "dim-0", "list"],
)
async def test_embeddings_refused(
    cache: pipecache.PipelineArtifactCache, video: Path, bad: Any
) -> None:
    """Embeddings that are not a 2-D float32 array raise InvalidInputError, storing nothing."""
    with pytest.raises(pipecache.InvalidInputError) as info:
        await cache.set_embeddings(video, bad)
    assert isinstance(info.value, ValueError)
    assert await cache.get_embeddings(video) is None


ARRAYS: Dict[str, np.ndarray[Any, Any]] = {
    "uint8-image": np.arange(2 * 3 * 3, dtype=np.uint8).reshape(2, 3, 3),
    "int16": np.array([-32768, 0, 32767], dtype=np.int16),
    "int64": np.array([[-(2**63), 2**63 - 1]], dtype=np.int64),
    "uint64": np.array([2**64 - 1], dtype=np.uint64),
    "float16": np.array([1.5, -0.0, np.inf], dtype=np.float16),
    "float32-nan": _special_floats(),
    "float64": np.linspace(0, 1, 12).reshape(3, 4),
    "complex128": np.array([1 + 2j, -0.0 - 1j]),
    "bool": np.array([True, False, True]),
    "big-endian": np.arange(6, dtype=">i4").reshape(2, 3),
    "fortran": np.asfortranarray(np.arange(12, dtype=np.int32).reshape(3, 4)),
    "0-d": np.array(3.25),
    "empty": np.zeros((0, 5), dtype=np.float32),
    "unicode": np.array(["ab", "視頻"]),
    "datetime64": np.array(["2024-01-02T03:04:05"], dtype="datetime64[s]"),
}


@pytest.mark.parametrize(
    "array",
    [
        np.array([(1, 2.5), (3, 4.5)], dtype=[("id", "<i4"), ("score", "<f8")]),
        np.array([object(), 1], dtype=object),
    ],
    ids=["structured", "object"],
)
async def test_unstorable_arrays_are_refused(
    manager: pipecache.CacheManager, array: np.ndarray[Any, Any]
) -> None:
    """Structured and object arrays, whose bytes alone cannot bring them back, raise
    InvalidInputError instead of coming back as something else."""
    with pytest.raises(pipecache.InvalidInputError, match="dtype"):
        await manager.set("arr/bad", array)
    assert await manager.get("arr/bad") is None


@pytest.mark.parametrize("name", list(ARRAYS))
async def test_manager_array_roundtrip(manager: pipecache.CacheManager, name: str) -> None:
    """CacheManager.set of an array of any (non-object) dtype gets back an equal array of
    the same dtype and shape, read-only."""
    want = ARRAYS[name]
    await manager.set(f"arr/{name}", want)
    got = await manager.get(f"arr/{name}")
    assert isinstance(got, np.ndarray)
    assert got.dtype == want.dtype, (got.dtype, want.dtype)
    assert got.shape == want.shape
    assert got.tobytes() == np.ascontiguousarray(want).tobytes()
    assert np.array_equal(got, want, equal_nan=want.dtype.kind in "fc")
    assert not got.flags.writeable


async def test_manager_object_array_refused(manager: pipecache.CacheManager) -> None:
    """An array of Python objects cannot be stored: InvalidInputError."""
    with pytest.raises(pipecache.InvalidInputError):
        await manager.set("obj", np.array([object(), 1], dtype=object))
    assert await manager.get("obj") is None


async def test_manager_large_array(manager: pipecache.CacheManager) -> None:
    """A 3000 x 1024 float32 array (12 MB) round-trips exactly."""
    want = np.random.default_rng(5).standard_normal((3000, 1024)).astype(np.float32)
    await manager.set("large", want)
    got = await manager.get("large")
    assert got.dtype == want.dtype and got.shape == want.shape
    assert got.tobytes() == want.tobytes()
