//! The push ledger (docs/format.md, "Push ledger"): what `sync push` verified of a pack tier,
//! kept in the local store directory, so a push reads a remote record only for keys that
//! changed on either side since.
//!
//! An entry says: the record object of `key`, in the version (size, time, entity tag) the
//! remote described, held the artifact whose identity is `identity`. A later push skips the
//! record read when the local artifact still has that identity and the listing still shows
//! that version. An entry is written only from what this push saw: a record it read and
//! found equal, or a record it wrote (the version the write made). It is only a shortcut:
//! anything that does not match, a lost file or a damaged one costs reads, never a wrong
//! skip, since every field of the entry must match again.

use std::collections::{BTreeMap, HashMap};
use std::path::Path;

use pipecache_format::BlobHash;
use pipecache_format::record::{ArtifactRecord, Record};
use pipecache_format::remote::{LedgerEntry, PushLedger, RemoteRecord};
use pipecache_remote::ObjectMeta;

/// The verified entries of one remote, by key.
#[derive(Debug, Default)]
pub(crate) struct Ledger {
    entries: HashMap<String, LedgerEntry>,
}

/// The ledger file of `remote` (a pack tier's target) in the store directory.
fn file_name(remote: &str) -> String {
    super::state_file_name("push-ledger", remote)
}

impl Ledger {
    /// The ledger `dir` holds for `remote`; empty when there is none, and (logged) when it is
    /// damaged or names another remote.
    pub(crate) fn load(dir: &Path, remote: &str) -> Self {
        let path = dir.join(file_name(remote));
        let bytes = match std::fs::read(&path) {
            Ok(b) => b,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Self::default(),
            Err(e) => {
                tracing::warn!(path = %path.display(), error = %e, "push ledger not read; this push reads every remote record");
                return Self::default();
            }
        };
        match PushLedger::decode(&bytes) {
            Ok(ledger) if ledger.remote == remote => Self {
                entries: ledger
                    .entries
                    .into_iter()
                    .map(|e| (e.key.clone(), e))
                    .collect(),
            },
            Ok(ledger) => {
                tracing::warn!(path = %path.display(), found = %ledger.remote, "push ledger of another remote; ignored");
                Self::default()
            }
            Err(e) => {
                tracing::warn!(path = %path.display(), error = %e, "push ledger damaged; this push reads every remote record");
                Self::default()
            }
        }
    }

    /// True when the ledger verified that `key`'s record, in the version `listed`, holds
    /// the artifact of `identity`.
    pub(crate) fn vouches(&self, key: &str, identity: &BlobHash, listed: &ObjectMeta) -> bool {
        self.entries.get(key).is_some_and(|e| {
            e.identity == *identity
                && same_version(
                    &ObjectMeta {
                        size: e.size,
                        modified_ms: e.modified_ms,
                        etag: e.etag.clone(),
                    },
                    listed,
                )
        })
    }

    /// This ledger's entries with `newer` replacing those of the same keys.
    pub(crate) fn merged(mut self, newer: Vec<LedgerEntry>) -> Vec<LedgerEntry> {
        for e in newer {
            self.entries.insert(e.key.clone(), e);
        }
        self.entries.into_values().collect()
    }

    /// Replaces `remote`'s ledger in `dir` by `entries`, atomically.
    pub(crate) fn save(dir: &Path, remote: &str, entries: Vec<LedgerEntry>) -> std::io::Result<()> {
        let bytes = PushLedger::new(remote.to_owned(), entries).encode();
        pipecache_format::replace_file(dir, &file_name(remote), &bytes)
    }
}

/// An entry for `key`: its record, in `version`, holds the artifact of `identity`.
pub(crate) fn entry(key: String, identity: BlobHash, version: &ObjectMeta) -> LedgerEntry {
    LedgerEntry {
        key,
        identity,
        size: version.size,
        modified_ms: version.modified_ms,
        etag: version.etag.clone(),
    }
}

/// True when two descriptions surely name the same write of an object: same size, and the
/// same entity tag when both have one (S3's is the MD5 of the bytes: equal tags mean equal
/// records even across writes), else the same known modification time. A listing and a
/// write response may differ in what they carry (an S3 PUT answers no time); unknown never
/// matches.
pub(crate) fn same_version(a: &ObjectMeta, b: &ObjectMeta) -> bool {
    a.size == b.size
        && match (&a.etag, &b.etag) {
            (Some(x), Some(y)) => x == y,
            _ => a.modified_ms != 0 && a.modified_ms == b.modified_ms,
        }
}

/// The identity of a local artifact, as a push compares it (see `same_artifact`): kind,
/// metadata, expiry, and each part's name, hash and length.
pub(crate) fn local_identity(rec: &ArtifactRecord) -> BlobHash {
    identity(
        &rec.kind,
        &rec.meta,
        rec.expires_ms,
        rec.parts.iter().map(|p| (p.name.as_str(), &p.hash, p.len)),
    )
}

/// The identity of the artifact a remote record holds; equal to [`local_identity`] of the
/// local record it was pushed from.
pub(crate) fn remote_identity(rec: &RemoteRecord) -> BlobHash {
    identity(
        &rec.kind,
        &rec.meta,
        rec.expires_ms,
        rec.parts.iter().map(|p| (p.name.as_str(), &p.hash, p.len)),
    )
}

fn identity<'a>(
    kind: &str,
    meta: &BTreeMap<String, String>,
    expires_ms: Option<u64>,
    parts: impl Iterator<Item = (&'a str, &'a BlobHash, u64)>,
) -> BlobHash {
    // Every field length-prefixed, so no two different artifacts hash the same bytes.
    let mut h = blake3::Hasher::new();
    let mut field = |b: &[u8]| {
        h.update(&(b.len() as u64).to_le_bytes());
        h.update(b);
    };
    field(kind.as_bytes());
    field(&(meta.len() as u64).to_le_bytes());
    for (k, v) in meta {
        field(k.as_bytes());
        field(v.as_bytes());
    }
    match expires_ms {
        None => field(&[]),
        Some(e) => field(&e.to_le_bytes()),
    }
    for (name, hash, len) in parts {
        field(name.as_bytes());
        field(&hash.0);
        field(&len.to_le_bytes());
    }
    BlobHash(*h.finalize().as_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn meta(size: u64, modified_ms: u64, etag: Option<&str>) -> ObjectMeta {
        ObjectMeta {
            size,
            modified_ms,
            etag: etag.map(str::to_owned),
        }
    }

    #[test]
    fn versions_match_by_etag_when_both_have_one_else_by_known_time() {
        assert!(same_version(
            &meta(10, 0, Some("a")),
            &meta(10, 5, Some("a"))
        ));
        assert!(!same_version(
            &meta(10, 5, Some("a")),
            &meta(10, 5, Some("b"))
        ));
        assert!(!same_version(
            &meta(10, 5, Some("a")),
            &meta(11, 5, Some("a"))
        ));
        assert!(same_version(&meta(10, 5, None), &meta(10, 5, Some("a"))));
        assert!(!same_version(&meta(10, 5, None), &meta(10, 6, None)));
        assert!(!same_version(&meta(10, 0, None), &meta(10, 0, None)));
    }

    #[test]
    fn a_ledger_vouches_only_for_the_identity_and_version_it_saw() {
        let dir = tempfile::tempdir().unwrap();
        let id = BlobHash::of(b"artifact");
        let seen = meta(100, 7, None);
        Ledger::save(dir.path(), "fs:/r", vec![entry("k".into(), id, &seen)]).unwrap();
        let ledger = Ledger::load(dir.path(), "fs:/r");
        assert!(ledger.vouches("k", &id, &seen));
        assert!(!ledger.vouches("k", &BlobHash::of(b"other"), &seen));
        assert!(!ledger.vouches("k", &id, &meta(100, 8, None)));
        assert!(!ledger.vouches("other", &id, &seen));
        // Another remote's ledger file, or a damaged one, vouches for nothing.
        assert!(!Ledger::load(dir.path(), "fs:/elsewhere").vouches("k", &id, &seen));
        std::fs::write(dir.path().join(file_name("fs:/r")), b"\xff\x00damaged").unwrap();
        assert!(!Ledger::load(dir.path(), "fs:/r").vouches("k", &id, &seen));
    }

    #[test]
    fn identities_differ_in_every_field() {
        let h = BlobHash::of(b"x");
        let base = |kind: &str, m: &[(&str, &str)], e: Option<u64>, name: &str, len: u64| {
            let meta = m
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                .collect();
            identity(kind, &meta, e, std::iter::once((name, &h, len)))
        };
        let a = base("t", &[("a", "b")], None, "p", 1);
        for other in [
            base("u", &[("a", "b")], None, "p", 1),
            base("t", &[("a", "c")], None, "p", 1),
            base("t", &[("ab", "")], None, "p", 1),
            base("t", &[("a", "b")], Some(0), "p", 1),
            base("t", &[("a", "b")], None, "q", 1),
            base("t", &[("a", "b")], None, "p", 2),
        ] {
            assert_ne!(a, other);
        }
        assert_eq!(a, base("t", &[("a", "b")], None, "p", 1));
    }
}
