"""Videos named by URI: file:// is the local file; s3://bucket/key is fingerprinted from
the object (reached through the AWS_* variables)."""

from __future__ import annotations

from pathlib import Path

import pipecache
import pytest
from conftest import S3Bucket
from support import write_video


async def test_file_uri_is_the_path(manager: pipecache.CacheManager, tmp_path: Path) -> None:
    """A file:// URI and the plain path have the same fingerprint and artifacts."""
    video = write_video(tmp_path / "v.mp4")
    for mode in ("stat", "content"):
        cache = pipecache.PipelineArtifactCache(manager, fingerprint=mode)
        assert await cache.fingerprint(video.as_uri()) == await cache.fingerprint(video)
    cache = pipecache.PipelineArtifactCache(manager)
    await cache.set_transcript(video.as_uri(), {"via": "uri"})
    assert await cache.get_transcript(video) == {"via": "uri"}


async def test_s3_object_video(
    manager: pipecache.CacheManager, s3_bucket: S3Bucket, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An s3:// video is fingerprinted from the object: artifacts round-trip under it, a
    changed object gets new keys (a miss), a missing object raises VideoError."""
    s3 = s3_bucket.server
    monkeypatch.setenv("AWS_ENDPOINT_URL", s3.endpoint)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", s3.access_key)
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", s3.secret_key)
    monkeypatch.setenv("AWS_REGION", s3.region)
    (s3_bucket.dir / "videos").mkdir()
    obj = write_video(s3_bucket.dir / "videos" / "clip.mp4", 5000)
    uri = f"s3://{s3_bucket.name}/videos/clip.mp4"

    cache = pipecache.PipelineArtifactCache(manager)
    fp = await cache.fingerprint(uri)
    assert fp.startswith("s1-")
    await cache.set_transcript(uri, {"from": "s3"})
    assert await cache.get_transcript(uri) == {"from": "s3"}

    write_video(obj, 6000, seed=3)
    assert await cache.fingerprint(uri) != fp
    assert await cache.get_transcript(uri) is None

    with pytest.raises(pipecache.VideoError):
        await cache.get_transcript(f"s3://{s3_bucket.name}/videos/absent.mp4")


async def test_unsupported_scheme(manager: pipecache.CacheManager) -> None:
    """A URI with another scheme raises InvalidInputError."""
    cache = pipecache.PipelineArtifactCache(manager)
    with pytest.raises(pipecache.InvalidInputError):
        await cache.get_transcript("ftp://host/video.mp4")
