"""``PipelineArtifactCache``: the seed's video-level API.

Keys are computed by the engine from the video's fingerprint and the stage's parameters, so
an artifact set here has the key ``pipecache key`` prints and ``pipecache status`` checks.
"""

from __future__ import annotations

import os
from typing import (
    TYPE_CHECKING,
    Any,
    Dict,
    List,
    Mapping,
    NamedTuple,
    Optional,
    Sequence,
    Tuple,
    Union,
)

from ._bridge import call
from ._errors import CorruptionError, InvalidInputError
from ._manager import CacheManager
from ._values import (
    Decode,
    Ttl,
    Yielder,
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

if TYPE_CHECKING:
    import numpy.typing as npt

__all__ = [
    "Keyframes",
    "PipelineArtifactCache",
    "PipelineConfig",
    "SegmentCoverage",
    "VideoArtifacts",
    "VideoPath",
]

VideoPath = Union[str, "os.PathLike[str]"]
"""A local path (``str`` or ``pathlib.Path``) or a URI: ``file:///...``, ``s3://bucket/key``."""

Segment = Tuple[int, int]
PipelineConfig = Mapping[str, Any]
"""The seed's pipeline config dict: see :data:`PIPELINE_CONFIG_KEYS`."""

# The seed's pipeline_config: a flag per stage, then each stage's parameters with their
# defaults (the values `PipelineConfig::full()` uses in Rust).
_STAGES: Dict[str, Tuple[str, Dict[str, Tuple[str, Any]]]] = {
    "keyframes": (
        "extract_keyframes",
        {"threshold": ("threshold", 0.999), "max_frames": ("max_frames", 3000)},
    ),
    "transcript": (
        "transcribe_audio",
        {"model_size": ("model_size", "base"), "language": ("language", "en")},
    ),
    "descriptions": (
        "generate_descriptions",
        {"description_model": ("model", "Qwen2-VL"), "batch_size": ("batch_size", 8)},
    ),
    "embeddings": ("generate_embeddings", {"embedding_model": ("model", "clip-vit-b32")}),
}

PIPELINE_CONFIG_KEYS: Dict[str, Any] = {
    flag: {name: default for name, (_, default) in params.items()}
    for flag, params in _STAGES.values()
}
"""Every key a pipeline config may hold: a stage flag each, with its parameters' defaults."""

_KEYFRAMES_DOC = "keyframes.cbor"
_EMBEDDINGS_DOC = "embeddings.cbor"
_VECTORS = "vectors.f32le"


def _stages_of(config: PipelineConfig) -> Dict[str, Dict[str, Any]]:
    """The stages ``config`` turns on, each with its parameters (in the engine's names)."""
    if not isinstance(config, Mapping):
        raise InvalidInputError(f"pipeline_config: expected a dict, got {type(config).__name__}")
    known = {f for f, _ in _STAGES.values()} | {p for _, ps in _STAGES.values() for p in ps}
    unknown = sorted(set(config) - known)
    if unknown:
        raise InvalidInputError(
            f"pipeline_config: unknown key(s) {', '.join(map(repr, unknown))}; "
            f"known: {', '.join(sorted(known))}"
        )
    stages = {}
    for kind, (flag, params) in _STAGES.items():
        on = config.get(flag, False)
        if not isinstance(on, bool):
            raise InvalidInputError(f"pipeline_config: {flag} must be a bool, got {on!r}")
        if on:
            stages[kind] = {
                engine: config.get(name, default) for name, (engine, default) in params.items()
            }
    return stages


class Keyframes(NamedTuple):
    """Cached keyframes: the metadata as it was set, and the images, each the type it was
    set as (``bytes``, or a numpy array of the same dtype and shape)."""

    metadata: Any
    images: List[Any]


class SegmentCoverage(NamedTuple):
    """Cached segments of a time range, and the gaps none covers, as ``(start_ms, end_ms)``."""

    cached: List[Segment]
    missing: List[Segment]


class VideoArtifacts:
    """What :meth:`PipelineArtifactCache.get_all_artifacts` found for one video."""

    def __init__(
        self,
        keyframes: Optional[Keyframes] = None,
        audio_transcript: Any = None,
        frame_descriptions: Any = None,
        embeddings: Optional[npt.NDArray[Any]] = None,
    ) -> None:
        self.keyframes = keyframes
        self.audio_transcript = audio_transcript
        self.frame_descriptions = frame_descriptions
        self.embeddings = embeddings

    def _has(self, kind: str) -> bool:
        value = {
            "keyframes": self.keyframes,
            "transcript": self.audio_transcript,
            "descriptions": self.frame_descriptions,
            "embeddings": self.embeddings,
        }[kind]
        return value is not None

    def missing(self, config: PipelineConfig) -> List[str]:
        """Stages ``config`` turns on that have nothing cached (``keyframes``,
        ``transcript``, ``descriptions``, ``embeddings``): what is left to compute."""
        return [kind for kind in _stages_of(config) if not self._has(kind)]

    def is_complete(self, config: PipelineConfig) -> bool:
        """Whether every stage ``config`` turns on is cached."""
        return not self.missing(config)

    def __repr__(self) -> str:
        held = [k for k in _STAGES if self._has(k)]
        return f"VideoArtifacts(cached={held})"


def _video(video_path: VideoPath) -> str:
    if isinstance(video_path, str):
        return video_path
    if isinstance(video_path, os.PathLike):
        return os.fspath(video_path)
    raise InvalidInputError(
        f"video_path: expected str, pathlib.Path or a URI, got {type(video_path).__name__}"
    )


class PipelineArtifactCache:
    """Typed gets and sets of pipeline artifacts, keyed by video and stage parameters.

    Args:
        manager: the cache to store in.
        fingerprint: ``"stat"`` (path, size and modification time; free) or ``"content"``
            (a hash of the bytes, read once per version of the file; survives a touch or a
            move). A changed video gets new keys, so stale artifacts are never returned.

    Every ``get_*`` returns ``None`` on a miss. Documents (transcripts, descriptions,
    keyframe metadata) are any JSON-compatible value and come back equal, unknown fields
    included. Keyframe images are bytes-like or numpy ``uint8`` arrays; each is stored as its
    own deduplicated part, so frames shared by videos are stored once. Embeddings are numpy
    ``float32`` arrays (n × dim), returned bit-exact as read-only views (no copy).
    """

    def __init__(self, manager: CacheManager, fingerprint: str = "stat") -> None:
        self.manager = manager
        self._native = manager._native.pipeline(fingerprint)
        # The manager's decoded documents, shared by every pipeline over it.
        self._decode = manager._native.decode_document

    async def _get(
        self, video: str, kind: str, params: Dict[str, Any], segment: Optional[Segment] = None
    ) -> Any:
        """A stage's stored parts: from the memory tier on this thread when hot, else read."""
        found = self._native.get_memory(video, kind, params, segment)
        if found is None:
            found = await call(self._native.get, video, kind, params, segment)
        return found

    async def fingerprint(self, video_path: VideoPath) -> str:
        """The video's fingerprint token, as it appears in keys."""
        return str(await call(self._native.fingerprint, _video(video_path)))

    async def key(
        self, video_path: VideoPath, stage: str, segment: Optional[Segment] = None, **params: Any
    ) -> str:
        """The key of ``stage``'s artifact (``keyframes``, ``transcript``, ``descriptions``,
        ``embeddings``) with ``params`` (the engine's names: ``threshold``, ``max_frames``,
        ``model_size``, ``language``, ``model``, ``batch_size``)."""
        return str(await call(self._native.key, _video(video_path), stage, params, segment))

    # Keyframes

    async def get_keyframes(
        self, video_path: VideoPath, threshold: float = 0.999, max_frames: int = 3000
    ) -> Optional[Keyframes]:
        """Keyframes extracted with these parameters, or ``None``."""
        params = {"threshold": threshold, "max_frames": max_frames}
        found = await self._get(_video(video_path), "keyframes", params)
        return None if found is None else _keyframes_of(found[2], self._decode)

    async def set_keyframes(
        self,
        video_path: VideoPath,
        keyframes_metadata: Any,
        keyframe_images: Sequence[Any],
        threshold: float = 0.999,
        max_frames: int = 3000,
        ttl: Ttl = None,
    ) -> None:
        """Stores keyframes: JSON-compatible metadata and one image per frame."""
        if isinstance(keyframe_images, (bytes, bytearray, str)) or is_ndarray(keyframe_images):
            raise InvalidInputError("keyframe_images: expected a list of images, one per frame")
        yielder = Yielder()
        headers: List[Any] = []
        images: List[Tuple[str, bytes]] = []
        for i, image in enumerate(keyframe_images):
            what = f"keyframe_images[{i}]"
            if is_ndarray(image):
                headers.append({"type": "ndarray", **array_header(image, what)})
                data = array_bytes(image)
            else:
                headers.append({"type": "bytearray" if isinstance(image, bytearray) else "bytes"})
                data = as_bytes(image, what)
            images.append((f"frame_{i:06}", data))
            await yielder.converted(len(data))
        doc = encode_document(
            {"metadata": keyframes_metadata, "images": headers}, "keyframes_metadata"
        )
        params = {"threshold": threshold, "max_frames": max_frames}
        await call(
            self._native.put,
            _video(video_path),
            "keyframes",
            params,
            [],
            [(_KEYFRAMES_DOC, doc), *images],
            None,
            ttl_seconds(ttl),
        )

    # Transcripts

    async def get_transcript(
        self,
        video_path: VideoPath,
        model_size: str = "base",
        language: str = "en",
        segment: Optional[Segment] = None,
    ) -> Any:
        """The transcript made with these parameters (of one ``(start_ms, end_ms)``
        segment when given), or ``None``."""
        params = {"model_size": model_size, "language": language}
        found = await self._get(_video(video_path), "transcript", params, segment)
        return (
            None
            if found is None
            else document(
                parts_dict(found[2]),
                "transcript.cbor",
                "transcript",
                self._decode,
            )
        )

    async def set_transcript(
        self,
        video_path: VideoPath,
        transcript: Any,
        model_size: str = "base",
        language: str = "en",
        segment: Optional[Segment] = None,
        ttl: Ttl = None,
    ) -> None:
        """Stores a transcript (any JSON-compatible value: Whisper's output as it is)."""
        params = {"model_size": model_size, "language": language}
        part = encode_document(transcript, "transcript")
        await call(
            self._native.put,
            _video(video_path),
            "transcript",
            params,
            [],
            [("transcript.cbor", part)],
            segment,
            ttl_seconds(ttl),
        )

    # Frame descriptions

    async def get_descriptions(
        self,
        video_path: VideoPath,
        model: str = "Qwen2-VL",
        batch_size: int = 8,
        segment: Optional[Segment] = None,
    ) -> Any:
        """The frame descriptions made with these parameters, or ``None``."""
        params = {"model": model, "batch_size": batch_size}
        found = await self._get(_video(video_path), "descriptions", params, segment)
        return (
            None
            if found is None
            else document(
                parts_dict(found[2]),
                "descriptions.cbor",
                "descriptions",
                self._decode,
            )
        )

    async def set_descriptions(
        self,
        video_path: VideoPath,
        descriptions: Any,
        model: str = "Qwen2-VL",
        batch_size: int = 8,
        segment: Optional[Segment] = None,
        ttl: Ttl = None,
    ) -> None:
        """Stores frame descriptions (any JSON-compatible value)."""
        params = {"model": model, "batch_size": batch_size}
        part = encode_document(descriptions, "descriptions")
        await call(
            self._native.put,
            _video(video_path),
            "descriptions",
            params,
            [],
            [("descriptions.cbor", part)],
            segment,
            ttl_seconds(ttl),
        )

    # Embeddings

    async def get_embeddings(
        self, video_path: VideoPath, model: str = "clip-vit-b32", segment: Optional[Segment] = None
    ) -> Optional[npt.NDArray[Any]]:
        """The embeddings made with ``model``: a read-only ``float32`` array (n × dim)
        viewing the cached bytes, or ``None``."""
        found = await self._get(_video(video_path), "embeddings", {"model": model}, segment)
        return None if found is None else _embeddings_of(parts_dict(found[2]), self._decode)

    async def set_embeddings(
        self,
        video_path: VideoPath,
        embeddings: npt.NDArray[Any],
        model: str = "clip-vit-b32",
        segment: Optional[Segment] = None,
        ttl: Ttl = None,
    ) -> None:
        """Stores embeddings: a numpy ``float32`` array of shape (n, dim), bit-exact."""
        if not is_ndarray(embeddings):
            raise InvalidInputError(
                f"embeddings: expected a numpy float32 array, got {type(embeddings).__name__}"
            )
        if embeddings.dtype.kind != "f" or embeddings.dtype.itemsize != 4:
            raise InvalidInputError(
                f"embeddings: must be float32, got {embeddings.dtype} "
                "(convert with .astype(numpy.float32))"
            )
        if embeddings.ndim != 2:
            raise InvalidInputError(
                f"embeddings: must be 2-D (n x dim), got shape {embeddings.shape}"
            )
        count, dim = embeddings.shape
        if dim == 0 and count > 0:
            raise InvalidInputError("embeddings: dim is 0: vectors must have at least one value")
        meta = encode_document({"model": model, "dim": dim, "count": count}, "embeddings")
        raw = array_bytes(embeddings.astype("<f4", copy=False))
        await call(
            self._native.put,
            _video(video_path),
            "embeddings",
            {"model": model},
            [],
            [(_EMBEDDINGS_DOC, meta), (_VECTORS, raw)],
            segment,
            ttl_seconds(ttl),
        )

    # Whole videos

    async def get_all_artifacts(
        self, video_path: VideoPath, pipeline_config: PipelineConfig
    ) -> VideoArtifacts:
        """Every artifact ``pipeline_config`` asks for, read concurrently.

        ``pipeline_config`` is the seed's dict: ``extract_keyframes``, ``transcribe_audio``,
        ``generate_descriptions`` and ``generate_embeddings`` turn stages on; each stage's
        parameters (``threshold``, ``max_frames``, ``model_size``, ``language``,
        ``description_model``, ``batch_size``, ``embedding_model``) default as the
        ``get_*`` methods do. Unknown keys raise :class:`InvalidInputError`.
        """
        stages = _stages_of(pipeline_config)
        found = await call(self._native.get_all, _video(video_path), stages)
        out = VideoArtifacts()
        keyframes, transcript = found.get("keyframes"), found.get("transcript")
        descriptions, embeddings = found.get("descriptions"), found.get("embeddings")
        if keyframes is not None:
            out.keyframes = _keyframes_of(keyframes[2], self._decode)
        if transcript is not None:
            out.audio_transcript = document(
                parts_dict(transcript[2]),
                "transcript.cbor",
                "transcript",
                self._decode,
            )
        if descriptions is not None:
            out.frame_descriptions = document(
                parts_dict(descriptions[2]),
                "descriptions.cbor",
                "descriptions",
                self._decode,
            )
        if embeddings is not None:
            out.embeddings = _embeddings_of(parts_dict(embeddings[2]), self._decode)
        return out

    async def invalidate_video(self, video_path: VideoPath) -> int:
        """Removes every artifact of the video as it is now, from every tier; how many."""
        return int(await call(self._native.invalidate, _video(video_path)))

    async def segment_coverage(
        self, video_path: VideoPath, stage: str, start_ms: int, end_ms: int, **params: Any
    ) -> SegmentCoverage:
        """Which parts of ``[start_ms, end_ms)`` of a long video have ``stage`` cached as
        segments (set with ``segment=(start_ms, end_ms)``), and which are missing.
        ``params`` are the stage's, in the engine's names (see :meth:`key`)."""
        cached, missing = await call(
            self._native.coverage, _video(video_path), stage, params, start_ms, end_ms
        )
        return SegmentCoverage(
            [(int(s), int(e)) for s, e in cached], [(int(s), int(e)) for s, e in missing]
        )


def _keyframes_of(parts_list: Sequence[Tuple[str, bytes]], decode: Decode) -> Keyframes:
    parts = parts_dict(parts_list)
    doc = document(parts, _KEYFRAMES_DOC, "keyframes", decode)
    try:
        metadata, headers = doc["metadata"], doc["images"]
    except (KeyError, TypeError):
        raise CorruptionError(
            "keyframes: not written by the Python package (no metadata/images)"
        ) from None
    images: List[Any] = []
    for i, header in enumerate(headers):
        what = f"keyframe_images[{i}]"
        raw = parts.get(f"frame_{i:06}")
        if raw is None:
            raise CorruptionError(f"keyframes: {what} is missing")
        kind = header.get("type") if isinstance(header, dict) else None
        if kind == "ndarray":
            images.append(array_from(header, raw, what))
        elif kind == "bytearray":
            images.append(bytearray(raw))
        else:
            images.append(raw)
    return Keyframes(metadata, images)


def _embeddings_of(parts: Dict[str, bytes], decode: Decode) -> npt.NDArray[Any]:
    meta = document(parts, _EMBEDDINGS_DOC, "embeddings", decode)
    raw = parts.get(_VECTORS)
    if raw is None:
        raise CorruptionError(f"embeddings: part {_VECTORS!r} is missing")
    try:
        count, dim = int(meta["count"]), int(meta["dim"])
    except (KeyError, TypeError, ValueError):
        raise CorruptionError("embeddings: bad header") from None
    if count * dim * 4 != len(raw):
        raise CorruptionError(f"embeddings: {len(raw)} bytes of vectors for {count} x {dim}")
    return array_from({"dtype": "<f4", "shape": [count, dim]}, raw, "embeddings")
