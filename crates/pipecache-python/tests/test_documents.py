"""Documents (transcripts, descriptions, keyframe metadata, CacheManager values) are any
JSON-compatible value and come back equal, types and unknown fields included; anything else
raises InvalidInputError."""

from __future__ import annotations

import collections
import datetime
import decimal
import enum
import uuid
from pathlib import Path
from typing import Any, Callable, Dict

import pipecache
import pytest
from support import assert_same, whisper_transcript, write_video

DOCUMENTS: Dict[str, Any] = {
    "unknown-fields": {
        "text": "t",
        "x_custom": {"nested": [1, 2, {"deep": ["x"]}]},
        "__weird key__": 1,
    },
    "nested-lists": [[[], [1, [2, [3, [4, []]]]]], [{"a": [None, [True]]}]],
    "unicode": {
        "emoji": "🎬🎥👩‍💻🇯🇵",
        "cjk": "视频缓存・キャッシュ・캐시",
        "rtl": "مرحبا",
        "combining": "e\u0301",
        "nul": "a\x00b",
        "key 🔑 名前": "value",
    },
    "none-and-bools": {"none": None, "t": True, "f": False, "list": [None, True, False, 0, 1]},
    "ints": [0, 1, -1, 2**31, 2**53 + 1, 2**63 - 1, -(2**63), 2**64 - 1, -(2**64)],
    "floats": [
        0.0,
        -0.0,
        0.1,
        1.0,
        -2.5,
        1e308,
        5e-324,
        1 / 3,
        2.0**60,
        float("inf"),
        float("-inf"),
    ],
    "empty-containers": {"d": {}, "l": [], "s": ""},
    "top-level-list": [1, "a", None],
    "top-level-str": "just text",
    "top-level-int": 7,
    "top-level-float": 7.0,
    "top-level-bool": False,
    "whisper": whisper_transcript(),
    "long-text": {"text": "word " * 50_000},
}

NOT_JSON: Dict[str, Any] = {
    "set": {1, 2, 3},
    "frozenset": frozenset({"a"}),
    "set-inside": {"tags": {"a", "b"}},
    "datetime": datetime.datetime(2024, 1, 2, 3, 4, 5),
    "date-inside": {"when": datetime.date(2024, 1, 2)},
    "decimal": decimal.Decimal("1.5"),
    "uuid": uuid.UUID(int=1),
    "complex": 1 + 2j,
    "object": object(),
    "tuple-key": {(1, 2): "x"},
}


@pytest.fixture
def cache(manager: pipecache.CacheManager) -> pipecache.PipelineArtifactCache:
    return pipecache.PipelineArtifactCache(manager)


@pytest.fixture
def video(tmp_path: Path) -> Path:
    return write_video(tmp_path / "v.mp4")


@pytest.mark.parametrize("name", list(DOCUMENTS))
async def test_manager_value_roundtrip(manager: pipecache.CacheManager, name: str) -> None:
    """CacheManager.set/get of a JSON-compatible value gives back an equal value of the
    same types all the way down."""
    await manager.set(f"doc/{name}", DOCUMENTS[name])
    assert_same(await manager.get(f"doc/{name}"), DOCUMENTS[name])


@pytest.mark.parametrize("name", list(DOCUMENTS))
async def test_transcript_roundtrip(
    cache: pipecache.PipelineArtifactCache, video: Path, name: str
) -> None:
    """A transcript of any JSON-compatible shape comes back equal."""
    await cache.set_transcript(video, DOCUMENTS[name])
    assert_same(await cache.get_transcript(video), DOCUMENTS[name])


async def test_descriptions_and_keyframe_metadata_roundtrip(
    cache: pipecache.PipelineArtifactCache, video: Path
) -> None:
    """Descriptions and keyframe metadata keep unknown fields, unicode and every scalar type."""
    descriptions = [
        {
            "index": i,
            "text": DOCUMENTS["unicode"]["cjk"],
            "objects": ["🐈", None],
            "conf": 0.25 * i,
        }
        for i in range(4)
    ]
    metadata = {
        "fps": 29.97,
        "frames": [{"i": 0, "ts": 0.0, "scene_cut": True}],
        "source": {"codec": "h264"},
        "big": 2**64 - 1,
    }
    await cache.set_descriptions(video, descriptions)
    await cache.set_keyframes(video, metadata, [b"jpeg-bytes"])
    assert_same(await cache.get_descriptions(video), descriptions)
    kf = await cache.get_keyframes(video)
    assert kf is not None
    assert_same(kf.metadata, metadata)


class _Stage(enum.IntEnum):
    TRANSCRIPT = 2


class _Label(str):
    pass


async def test_subclasses_and_tuples_come_back_as_the_builtin_type(
    manager: pipecache.CacheManager,
) -> None:
    """Subclasses of dict, list, str, int and float (an OrderedDict, an IntEnum) and tuples
    are written as the built-in type they extend (the encoder's fast paths take only the
    exact types; these take the general one) and come back equal, as that type."""
    value = collections.OrderedDict(
        [
            ("stage", _Stage.TRANSCRIPT),
            ("label", _Label("speech")),
            ("span", (0.5, 1.5)),
            ("nested", [collections.OrderedDict(b=(1, [2]))]),
            (_Label("key"), True),
        ]
    )
    expected = {
        "stage": 2,
        "label": "speech",
        "span": [0.5, 1.5],
        "nested": [{"b": [1, [2]]}],
        "key": True,
    }
    await manager.set("subclasses", value)
    assert_same(await manager.get("subclasses"), expected)


async def test_big_ints_beyond_64_bits(manager: pipecache.CacheManager) -> None:
    """Python ints outside the 64-bit range come back as the same int, or are refused at
    set: never turned into something else."""
    for value in [2**64, 2**100, -(2**64) - 1, -(2**100)]:
        try:
            await manager.set("big", {"n": value})
        except pipecache.InvalidInputError:
            continue
        assert_same(await manager.get("big"), {"n": value})


async def test_nan_roundtrip(manager: pipecache.CacheManager) -> None:
    """NaN inside a document comes back as a NaN float."""
    await manager.set("nan", {"x": float("nan")})
    got = await manager.get("nan")
    assert isinstance(got["x"], float) and got["x"] != got["x"]


@pytest.mark.parametrize("name", list(NOT_JSON))
async def test_not_json_raises_on_manager_set(manager: pipecache.CacheManager, name: str) -> None:
    """A value that is not JSON-compatible raises InvalidInputError (a ValueError) and
    stores nothing."""
    with pytest.raises(pipecache.InvalidInputError) as info:
        await manager.set("bad", NOT_JSON[name])
    assert isinstance(info.value, ValueError)
    assert await manager.get("bad") is None


@pytest.mark.parametrize(
    "setter",
    [
        lambda c, v, x: c.set_transcript(v, x),
        lambda c, v, x: c.set_descriptions(v, x),
        lambda c, v, x: c.set_keyframes(v, x, [b"img"]),
    ],
    ids=["transcript", "descriptions", "keyframe-metadata"],
)
@pytest.mark.parametrize("name", ["set", "datetime", "object"])
async def test_not_json_raises_on_pipeline_set(
    cache: pipecache.PipelineArtifactCache, video: Path, setter: Callable[..., Any], name: str
) -> None:
    """set_transcript/set_descriptions/set_keyframes refuse non-JSON documents."""
    with pytest.raises(pipecache.InvalidInputError):
        await setter(cache, video, NOT_JSON[name])
    assert await cache.get_transcript(video) is None
    assert await cache.get_descriptions(video) is None
    assert await cache.get_keyframes(video) is None


async def test_maps_sharing_keys_come_back_as_independent_dicts(
    manager: pipecache.CacheManager,
) -> None:
    """Many dicts with one set of keys (a transcript's segments) come back equal, in their
    key order, each its own object: changing one changes no other."""
    segments = [
        {"id": i, "start": i / 2, "end": i / 2 + 1.5, "text": f"w{i}", "tokens": [i], "p": -i}
        for i in range(50)
    ]
    reordered = [{"end": 1.0, "start": 0.0, "id": 7}, {"id": 8, "start": 2.0, "end": 3.0}]
    value = {"segments": segments, "reordered": reordered}
    await manager.set("doc/shared-keys", value)
    got = await manager.get("doc/shared-keys")
    assert_same(got, value)
    assert [list(d) for d in got["reordered"]] == [["end", "start", "id"], ["id", "start", "end"]]
    assert all(list(d) == list(segments[0]) for d in got["segments"])
    got["segments"][0]["text"] = "changed"
    got["segments"][0]["tokens"].append(-1)
    assert [s["text"] for s in got["segments"][1:]] == [f"w{i}" for i in range(1, 50)]
    assert [s["tokens"] for s in got["segments"][1:]] == [[i] for i in range(1, 50)]


def test_a_repeated_key_keeps_its_last_value_in_every_map() -> None:
    """CBOR maps may repeat a key (other encoders write them): the last value wins, in the
    first map of a key set and in the ones after it alike."""
    from pipecache import _native

    # [{"a": 1, "a": 2}, {"a": 3, "a": 4}, {"a": 5}]
    data = bytes.fromhex("83a2616101616102a2616103616104a1616105")
    assert _native.decode_document(data, "doc") == [{"a": 2}, {"a": 4}, {"a": 5}]
