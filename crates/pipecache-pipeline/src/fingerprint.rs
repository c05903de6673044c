//! Source-video fingerprints: what makes an artifact key belong to one version of one video.

use std::fmt;
use std::io::Read;
use std::path::Path;
use std::time::UNIX_EPOCH;

use crate::error::{PipelineError, Result};

/// How a video is fingerprinted.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum FingerprintMode {
    /// Canonical path + size + modification time (the seed's default): free to compute, but a
    /// touched file gets a new fingerprint and a rewrite within the same mtime tick keeps it.
    #[default]
    Stat,
    /// blake3 of the bytes: a touched but unchanged file keeps its fingerprint, any byte change
    /// gets a new one, wherever the file lives. Costs one read of the video.
    Content,
}

impl FingerprintMode {
    /// `stat` or `content` (what [`str::parse`] takes).
    pub fn name(self) -> &'static str {
        match self {
            Self::Stat => "stat",
            Self::Content => "content",
        }
    }

    /// The letter of this mode's fingerprint tokens (`s1-...`, `c1-...`).
    fn letter(self) -> char {
        match self {
            Self::Stat => 's',
            Self::Content => 'c',
        }
    }
}

impl std::str::FromStr for FingerprintMode {
    type Err = PipelineError;
    fn from_str(s: &str) -> Result<Self> {
        [Self::Stat, Self::Content]
            .into_iter()
            .find(|m| m.name() == s)
            .ok_or_else(|| {
                crate::error::invalid("fingerprint mode", format!("{s:?} (use stat or content)"))
            })
    }
}

/// A video fingerprint as it appears in keys: `s1-<32 hex>` (stat) or `c1-<32 hex>` (content).
/// The digit is the key-schema version: keys of another schema never collide with these.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Fingerprint(String);

/// Key-schema version carried in every fingerprint token.
pub const KEY_SCHEMA: u32 = 1;

impl Fingerprint {
    /// Parses a fingerprint token.
    pub fn parse(s: &str) -> Result<Self> {
        let bad = || {
            crate::error::invalid(
                "fingerprint",
                format!("{s:?} (expected s1-<32 hex> or c1-<32 hex>)"),
            )
        };
        let (prefix, hex) = s.split_once('-').ok_or_else(bad)?;
        let mut chars = prefix.chars();
        let letter_known = chars.next().is_some_and(|c| {
            [FingerprintMode::Stat, FingerprintMode::Content]
                .iter()
                .any(|m| m.letter() == c)
        });
        if !letter_known
            || chars.as_str().parse::<u32>().ok() != Some(KEY_SCHEMA)
            || chars.as_str().starts_with(['+', '0'])
            || hex.len() != 32
            || !hex
                .bytes()
                .all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase())
        {
            return Err(bad());
        }
        Ok(Self(s.to_owned()))
    }

    /// The token.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// Fingerprints the video at `path`.
    pub fn of_file(path: &Path, mode: FingerprintMode) -> Result<Self> {
        let err = |reason: String| PipelineError::Video {
            path: path.to_owned(),
            reason,
        };
        let md = std::fs::metadata(path).map_err(|e| err(format!("cannot read it: {e}")))?;
        if md.is_dir() {
            return Err(err("is a directory, not a video file".into()));
        }
        if !md.is_file() {
            return Err(err("is not a regular file".into()));
        }
        let digest = match mode {
            FingerprintMode::Stat => {
                let canonical = std::fs::canonicalize(path)
                    .map_err(|e| err(format!("cannot resolve path: {e}")))?;
                let mtime = md
                    .modified()
                    .map_err(|e| err(format!("no modification time: {e}")))?
                    .duration_since(UNIX_EPOCH)
                    .map(|d| d.as_nanos())
                    .unwrap_or(0);
                let mut h = blake3::Hasher::new();
                h.update(b"pipecache-fingerprint-stat-1\0");
                h.update(canonical.as_os_str().as_encoded_bytes());
                h.update(b"\0");
                h.update(&md.len().to_le_bytes());
                h.update(&mtime.to_le_bytes());
                h.finalize()
            }
            FingerprintMode::Content => {
                let mut file =
                    std::fs::File::open(path).map_err(|e| err(format!("cannot open it: {e}")))?;
                let mut h = blake3::Hasher::new();
                h.update(b"pipecache-fingerprint-content-1\0");
                let mut buf = vec![0u8; 1 << 20];
                loop {
                    let n = file
                        .read(&mut buf)
                        .map_err(|e| err(format!("cannot read it: {e}")))?;
                    if n == 0 {
                        break;
                    }
                    h.update(&buf[..n]);
                }
                h.finalize()
            }
        };
        Ok(Self(format!(
            "{}{KEY_SCHEMA}-{}",
            mode.letter(),
            &digest.to_hex()[..32]
        )))
    }
}

impl fmt::Display for Fingerprint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}
