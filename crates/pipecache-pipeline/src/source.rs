//! Where a video lives: a local file, or an object in a bucket named by a URI. An object's
//! fingerprint comes from what the bucket says of it (ETag, size, last modification), read
//! with one stat request, so a video that changes in its bucket gets new keys.

use std::path::{Path, PathBuf};
use std::time::Duration;

use pipecache_remote::{ObjectStore, S3Options};

use crate::error::{PipelineError, Result, invalid};
use crate::{Fingerprint, FingerprintMode, KEY_SCHEMA};

/// Deadline of the stat request that fingerprints an object.
const STAT_DEADLINE: Duration = Duration::from_secs(30);

/// How videos in S3 buckets are reached: by default the standard AWS variables
/// ([`S3Access::from_env`]). Holds the transport's [`S3Options`] without a bucket, whose
/// `Debug` never shows the credentials.
#[derive(Clone, Debug)]
pub struct S3Access(S3Options);

impl S3Access {
    /// An endpoint (`None`: AWS's own), a region and optional credentials (both or
    /// neither; without them requests go unsigned).
    pub fn new(
        endpoint: Option<String>,
        region: impl Into<String>,
        access_key_id: Option<String>,
        secret_access_key: Option<String>,
    ) -> Self {
        Self(S3Options {
            endpoint,
            region: region.into(),
            access_key_id,
            secret_access_key,
            ..S3Options::default()
        })
    }

    /// From the standard AWS variables, read now: `AWS_ENDPOINT_URL`, `AWS_REGION` (else
    /// `AWS_DEFAULT_REGION`, else `us-east-1`), `AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY`.
    pub fn from_env() -> Self {
        let env = |name: &str| std::env::var(name).ok().filter(|v| !v.is_empty());
        Self::new(
            env("AWS_ENDPOINT_URL"),
            env("AWS_REGION")
                .or_else(|| env("AWS_DEFAULT_REGION"))
                .unwrap_or_else(|| "us-east-1".into()),
            env("AWS_ACCESS_KEY_ID"),
            env("AWS_SECRET_ACCESS_KEY"),
        )
    }

    fn options(&self, bucket: &str) -> S3Options {
        S3Options {
            bucket: bucket.to_owned(),
            ..self.0.clone()
        }
    }
}

/// A video as named by the caller.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum VideoSource {
    /// A local file (a plain path, or a `file://` URI).
    File(PathBuf),
    /// An object in an S3 bucket (`s3://bucket/key`), reached as an [`S3Access`] says.
    S3 {
        /// Bucket.
        bucket: String,
        /// Object key.
        key: String,
    },
}

impl VideoSource {
    /// Reads `video`: `s3://bucket/key`, `file:///abs/path`, or a path.
    pub fn parse(video: &Path) -> Result<Self> {
        let Some(text) = video.to_str() else {
            return Ok(Self::File(video.to_owned()));
        };
        let Some((scheme, rest)) = text.split_once("://").filter(|(s, _)| is_scheme(s)) else {
            return Ok(Self::File(video.to_owned()));
        };
        let bad = |reason: &str| invalid("video URI", format!("{text}: {reason}"));
        match scheme.to_ascii_lowercase().as_str() {
            "file" => {
                let path = rest.strip_prefix("localhost").unwrap_or(rest).to_owned();
                if !path.starts_with('/') {
                    return Err(bad("a file URI needs an absolute path (file:///...)"));
                }
                Ok(Self::File(PathBuf::from(
                    percent_decode(&path).map_err(|r| bad(&r))?,
                )))
            }
            "s3" => {
                let (bucket, key) = rest
                    .split_once('/')
                    .filter(|(b, k)| !b.is_empty() && !k.is_empty())
                    .ok_or_else(|| bad("expected s3://bucket/key"))?;
                Ok(Self::S3 {
                    bucket: bucket.to_owned(),
                    key: percent_decode(key).map_err(|r| bad(&r))?,
                })
            }
            other => Err(bad(&format!(
                "scheme {other:?} is not supported (use a path, file:// or s3://)"
            ))),
        }
    }

    /// The object's fingerprint: in stat mode from its URI, ETag, size and modification
    /// time; in content mode from its ETag and size alone (S3's ETag is derived from the
    /// bytes), so a copy of the same bytes elsewhere keeps its fingerprint.
    pub(crate) async fn object_fingerprint(
        bucket: &str,
        key: &str,
        mode: FingerprintMode,
        access: &S3Access,
    ) -> Result<Fingerprint> {
        let uri = format!("s3://{bucket}/{key}");
        let video_err = |reason: String| PipelineError::Video {
            path: PathBuf::from(&uri),
            reason,
        };
        let options = access.options(bucket);
        let bucket_store =
            ObjectStore::s3(&options, STAT_DEADLINE).map_err(|e| video_err(e.to_string()))?;
        let meta = bucket_store
            .stat(key)
            .await
            .map_err(|e| video_err(format!("cannot stat it: {e}")))?
            .ok_or_else(|| video_err("no such object".into()))?;
        let etag = meta.etag.unwrap_or_default();
        let mut h = blake3::Hasher::new();
        match mode {
            FingerprintMode::Stat => {
                h.update(b"pipecache-fingerprint-object-stat-1\0");
                h.update(uri.as_bytes());
                h.update(b"\0");
                h.update(etag.as_bytes());
                h.update(b"\0");
                h.update(&meta.size.to_le_bytes());
                h.update(&meta.modified_ms.to_le_bytes());
            }
            FingerprintMode::Content => {
                if etag.is_empty() {
                    return Err(video_err(
                        "the bucket gives no ETag: use stat fingerprints for it".into(),
                    ));
                }
                h.update(b"pipecache-fingerprint-object-content-1\0");
                h.update(etag.as_bytes());
                h.update(b"\0");
                h.update(&meta.size.to_le_bytes());
            }
        }
        Fingerprint::parse(&format!(
            "{}{KEY_SCHEMA}-{}",
            mode.letter(),
            &h.finalize().to_hex()[..32]
        ))
    }
}

/// RFC 3986's scheme: a letter, then letters, digits, `+`, `-`, `.`.
fn is_scheme(s: &str) -> bool {
    let mut chars = s.chars();
    chars.next().is_some_and(|c| c.is_ascii_alphabetic())
        && chars.all(|c| c.is_ascii_alphanumeric() || matches!(c, '+' | '-' | '.'))
}

/// `%XX` escapes decoded (a URI's path may carry them; no crate in the tree decodes them).
fn percent_decode(s: &str) -> std::result::Result<String, String> {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = bytes
                .get(i + 1..i + 3)
                .and_then(|h| std::str::from_utf8(h).ok())
                .and_then(|h| u8::from_str_radix(h, 16).ok())
                .ok_or_else(|| format!("bad escape at byte {i}"))?;
            out.push(hex);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).map_err(|_| "escapes decode to invalid UTF-8".to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn uris_and_paths_are_told_apart() {
        let parse = |s: &str| VideoSource::parse(Path::new(s));
        assert_eq!(
            parse("talk.mp4").unwrap(),
            VideoSource::File("talk.mp4".into())
        );
        assert_eq!(
            parse("/v/a b.mp4").unwrap(),
            VideoSource::File("/v/a b.mp4".into())
        );
        assert_eq!(
            parse("file:///v/a%20b.mp4").unwrap(),
            VideoSource::File("/v/a b.mp4".into())
        );
        assert_eq!(
            parse("file://localhost/v/x.mp4").unwrap(),
            VideoSource::File("/v/x.mp4".into())
        );
        assert_eq!(
            parse("s3://bucket/videos/talk%2B1.mp4").unwrap(),
            VideoSource::S3 {
                bucket: "bucket".into(),
                key: "videos/talk+1.mp4".into()
            }
        );
        for bad in [
            "s3://bucket",
            "s3:///key",
            "file://host/x",
            "http://h/v.mp4",
            "file:///%zz",
        ] {
            assert!(
                matches!(parse(bad), Err(PipelineError::Invalid { .. })),
                "{bad} must be refused"
            );
        }
    }
}
