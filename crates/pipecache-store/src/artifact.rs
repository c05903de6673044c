use std::collections::BTreeMap;
use std::collections::HashSet;
use std::time::Duration;

use crate::{Error, Result};

/// Longest artifact key, in bytes.
pub const MAX_KEY_LEN: usize = 1024;
/// Longest part name, in bytes.
pub const MAX_PART_NAME_LEN: usize = 1024;
/// Most parts in one artifact.
pub const MAX_PARTS: usize = 100_000;
/// Most bytes of metadata (names + values) in one artifact.
pub const MAX_META_BYTES: usize = 64 * 1024;
/// Longest artifact kind, in bytes.
pub const MAX_KIND_LEN: usize = 64;

/// One named part of an artifact.
#[derive(Clone, PartialEq, Eq)]
pub struct Part {
    /// Name, unique within the artifact.
    pub name: String,
    /// Bytes.
    pub data: Vec<u8>,
}

impl std::fmt::Debug for Part {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Part")
            .field("name", &self.name)
            .field("len", &self.data.len())
            .finish()
    }
}

impl Part {
    /// A part.
    pub fn new(name: impl Into<String>, data: impl Into<Vec<u8>>) -> Self {
        Self {
            name: name.into(),
            data: data.into(),
        }
    }
}

/// What the store keeps under a key: an ordered list of named parts plus small metadata.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Artifact {
    /// Kind, e.g. `keyframes` or `transcript`; empty when the caller has none.
    pub kind: String,
    /// Ordered parts.
    pub parts: Vec<Part>,
    /// Small string metadata.
    pub meta: BTreeMap<String, String>,
}

impl Artifact {
    /// An artifact with a single part named `data`.
    pub fn single(data: impl Into<Vec<u8>>) -> Self {
        Self {
            parts: vec![Part::new("data", data)],
            ..Self::default()
        }
    }

    /// Adds a part (builder style).
    pub fn with_part(mut self, name: impl Into<String>, data: impl Into<Vec<u8>>) -> Self {
        self.parts.push(Part::new(name, data));
        self
    }

    /// Sets the kind (builder style).
    pub fn with_kind(mut self, kind: impl Into<String>) -> Self {
        self.kind = kind.into();
        self
    }

    /// Adds a metadata entry (builder style).
    pub fn with_meta(mut self, name: impl Into<String>, value: impl Into<String>) -> Self {
        self.meta.insert(name.into(), value.into());
        self
    }

    /// Sum of the parts' lengths.
    pub fn logical_size(&self) -> u64 {
        self.parts.iter().map(|p| p.data.len() as u64).sum()
    }

    /// A digest of the whole artifact (kind, metadata, part names and bytes, in order): equal
    /// digests mean equal artifacts. Used to compare copies across processes and tiers.
    pub fn digest(&self) -> pipecache_format::BlobHash {
        let mut h = blake3::Hasher::new();
        let mut field = |b: &[u8]| {
            h.update(&(b.len() as u64).to_le_bytes());
            h.update(b);
        };
        field(self.kind.as_bytes());
        field(&(self.meta.len() as u64).to_le_bytes());
        for (k, v) in &self.meta {
            field(k.as_bytes());
            field(v.as_bytes());
        }
        field(&(self.parts.len() as u64).to_le_bytes());
        for p in &self.parts {
            field(p.name.as_bytes());
            field(&p.data);
        }
        pipecache_format::BlobHash(*h.finalize().as_bytes())
    }

    /// The part called `name`.
    pub fn part(&self, name: &str) -> Option<&Part> {
        self.parts.iter().find(|p| p.name == name)
    }

    pub(crate) fn validate(&self) -> Result<()> {
        let bad = |reason: String| Err(Error::InvalidArtifact { reason });
        if self.parts.len() > MAX_PARTS {
            return bad(format!(
                "{} parts, at most {MAX_PARTS} allowed",
                self.parts.len()
            ));
        }
        if self.kind.len() > MAX_KIND_LEN {
            return bad(format!(
                "kind is {} bytes, at most {MAX_KIND_LEN} allowed",
                self.kind.len()
            ));
        }
        let mut names = HashSet::with_capacity(self.parts.len());
        for p in &self.parts {
            if p.name.is_empty() {
                return bad("a part has an empty name".into());
            }
            if p.name.len() > MAX_PART_NAME_LEN {
                return bad(format!(
                    "part name is {} bytes, at most {MAX_PART_NAME_LEN}",
                    p.name.len()
                ));
            }
            if !names.insert(p.name.as_str()) {
                return bad(format!("part name {:?} appears twice", p.name));
            }
            if p.data.len() as u64 > pipecache_format::MAX_BLOB_LEN {
                return bad(format!(
                    "part {:?} is {} bytes, larger than a blob may be",
                    p.name,
                    p.data.len()
                ));
            }
        }
        let meta_bytes: usize = self.meta.iter().map(|(k, v)| k.len() + v.len()).sum();
        if meta_bytes > MAX_META_BYTES {
            return bad(format!(
                "metadata is {meta_bytes} bytes, at most {MAX_META_BYTES}"
            ));
        }
        Ok(())
    }
}

/// Checks an artifact key: UTF-8 (guaranteed by `&str`), non-empty, at most [`MAX_KEY_LEN`]
/// bytes. Keys are never used as file names, so no other character is special.
pub fn validate_key(key: &str) -> Result<()> {
    if key.is_empty() {
        return Err(Error::InvalidKey {
            reason: "key is empty".into(),
        });
    }
    if key.len() > MAX_KEY_LEN {
        return Err(Error::InvalidKey {
            reason: format!("key is {} bytes, at most {MAX_KEY_LEN} allowed", key.len()),
        });
    }
    Ok(())
}

/// Per-put options.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct PutOptions {
    /// TTL of this artifact; `None` uses the store's default TTL.
    pub ttl: Option<Duration>,
    /// Codec policy for this artifact's new blobs; `None` uses the store's. Lets each artifact
    /// kind choose (JPEG frames raw, JSON transcripts zstd); a store with compression
    /// disabled never compresses, whatever the policy here says.
    pub compression: Option<pipecache_format::CompressionPolicy>,
    /// Absolute expiry, unix ms; wins over `ttl`. Tiers copying an artifact keep the expiry
    /// it already has instead of restarting its TTL.
    pub expires_at_ms: Option<u64>,
    /// Write only if the key holds no live artifact, decided on the writer thread when the
    /// put commits. Copies from another tier (promotion, pull) use it, so a stale remote copy
    /// arriving after a newer local put never overwrites it.
    pub if_absent: bool,
}

impl PutOptions {
    /// The expiry of a put made at `now_ms` under `default_ttl`: `expires_at_ms`, else
    /// `now + (ttl or default_ttl)`, `None` for never.
    pub fn expiry(&self, now_ms: u64, default_ttl: Option<Duration>) -> Option<u64> {
        self.expires_at_ms.or_else(|| {
            self.ttl
                .or(default_ttl)
                .map(|t| now_ms.saturating_add(u64::try_from(t.as_millis()).unwrap_or(u64::MAX)))
        })
    }
}

/// What a put did ([`crate::Store::put_with_outbox`]).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct PutOutcome {
    /// False when [`PutOptions::if_absent`] refused the put: nothing was written.
    pub written: bool,
    /// Raw bytes of the put's parts whose blob the store already held (or an earlier part
    /// of the same put held): what dedup spared the disk.
    pub deduplicated_bytes: u64,
}

/// One entry of [`crate::Store::list`].
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct ListEntry {
    /// Artifact key.
    pub key: String,
    /// Kind.
    pub kind: String,
    /// Number of parts.
    pub parts: usize,
    /// Logical size in bytes.
    pub size: u64,
    /// Creation time, unix ms.
    pub created_ms: u64,
    /// Expiry time, unix ms.
    pub expires_ms: Option<u64>,
}

/// An artifact as a tier holds it: the bytes plus the times that travel with it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StoredArtifact {
    /// The artifact.
    pub artifact: Artifact,
    /// Creation time, unix ms.
    pub created_ms: u64,
    /// Expiry time, unix ms; `None` never expires.
    pub expires_ms: Option<u64>,
}

impl StoredArtifact {
    /// True when the artifact has expired at `now_ms`.
    pub fn is_expired(&self, now_ms: u64) -> bool {
        self.expires_ms.is_some_and(|e| e <= now_ms)
    }
}
