//! Bytes pipecache keeps in remote tiers (see `docs/format.md`, "Remote layout").
//!
//! - A **pack** is a sealed chunk file built in memory: the 64-byte chunk header (id 0; a pack
//!   is named by the blake3 of its bytes instead) followed by blob frames. Readers fetch one
//!   frame with a ranged read and check it with [`decode_pack_frame`].
//! - A [`RemoteRecord`] is what an artifact key maps to remotely: its parts, each with the
//!   pack, offset and stored length of its blob, plus the artifact's digest.
//! - A [`PackIndex`] is written once per push batch, after its pack and before its records: the
//!   blobs the pack holds (for dedup by other pushers) and the keys the batch pushed (so
//!   `sync pull --prefix` finds records without reading every one).
//! - A Redis value ([`encode_inline_value`]) holds a small artifact whole: a record frame
//!   followed by one blob frame per part, all checked on decode.
//!
//! Every decoder here takes untrusted bytes from a remote and is covered by a fuzz target.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::chunk::{CHUNK_HEADER_LEN, ChunkHeader, ChunkScanner};
use crate::frame::{FRAME_HEADER_LEN, FrameHeader, FrameKind, decode_frame};
use crate::record::{RECORD_VERSION, Record, impl_record};
use crate::{BlobHash, Codec, FormatError, MAX_BLOB_LEN};

/// Where a blob lives in a remote pack.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct PackLocation {
    /// Pack id: blake3 of the pack object's bytes.
    #[serde(rename = "p")]
    pub pack: BlobHash,
    /// Offset of the blob's frame header in the pack.
    #[serde(rename = "o")]
    pub offset: u64,
    /// Stored payload length (the frame is `FRAME_HEADER_LEN + stored_len` bytes).
    #[serde(rename = "s")]
    pub stored_len: u64,
}

impl PackLocation {
    /// The byte range of the whole frame in the pack. Decoded locations are checked (see
    /// [`check_frame_location`]), so this cannot overflow for them.
    pub fn frame_range(&self) -> std::ops::Range<u64> {
        self.offset..self.offset + FRAME_HEADER_LEN as u64 + self.stored_len
    }
}

/// Checks a frame location read from a remote: after the pack's chunk header, a payload no
/// longer than [`MAX_BLOB_LEN`], and an end that fits in a u64.
pub fn check_frame_location(offset: u64, stored_len: u64) -> Result<(), FormatError> {
    let bad = |detail: String| Err(FormatError::corrupt("pack location", detail));
    if offset < CHUNK_HEADER_LEN {
        return bad(format!("offset {offset} is inside the pack header"));
    }
    if stored_len > MAX_BLOB_LEN {
        return bad(format!("stored length {stored_len} exceeds {MAX_BLOB_LEN}"));
    }
    if offset
        .checked_add(FRAME_HEADER_LEN as u64 + stored_len)
        .is_none()
    {
        return bad(format!("offset {offset} + frame overflows"));
    }
    Ok(())
}

/// One part of a [`RemoteRecord`].
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RemotePart {
    /// Part name.
    #[serde(rename = "n")]
    pub name: String,
    /// blake3 of the part's raw bytes.
    #[serde(rename = "h")]
    pub hash: BlobHash,
    /// Raw length.
    #[serde(rename = "l")]
    pub len: u64,
    /// Where the blob lives; `None` in an inline (Redis) value, whose blob frames follow the
    /// record in part order.
    #[serde(rename = "a")]
    pub at: Option<PackLocation>,
}

/// What an artifact key maps to in a remote tier.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RemoteRecord {
    /// Record version.
    pub v: u32,
    /// The artifact key (object names are a hash of it; this is the truth).
    #[serde(rename = "key")]
    pub key: String,
    /// Artifact kind.
    #[serde(rename = "k")]
    pub kind: String,
    /// Ordered parts.
    #[serde(rename = "p")]
    pub parts: Vec<RemotePart>,
    /// Creation time, unix ms.
    #[serde(rename = "c")]
    pub created_ms: u64,
    /// Expiry time, unix ms; `None` never expires.
    #[serde(rename = "e")]
    pub expires_ms: Option<u64>,
    /// Small user metadata.
    #[serde(rename = "m")]
    pub meta: BTreeMap<String, String>,
    /// Digest of the whole artifact (kind, metadata, names, bytes), checked end to end by the
    /// reader after the per-blob checks.
    #[serde(rename = "d")]
    pub digest: BlobHash,
}

impl_record!(RemoteRecord, "remote record", checked);

impl RemoteRecord {
    fn check_fields(&self) -> Result<(), FormatError> {
        for at in self.parts.iter().filter_map(|p| p.at.as_ref()) {
            check_frame_location(at.offset, at.stored_len)?;
        }
        Ok(())
    }

    /// True when the record has expired at `now_ms`.
    pub fn is_expired(&self, now_ms: u64) -> bool {
        self.expires_ms.is_some_and(|e| e <= now_ms)
    }

    /// The packs this record's blobs live in.
    pub fn packs(&self) -> impl Iterator<Item = BlobHash> + '_ {
        self.parts.iter().filter_map(|p| p.at.map(|a| a.pack))
    }
}

/// One blob of a pack, as listed in its [`PackIndex`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PackEntry {
    /// blake3 of the blob's raw bytes.
    #[serde(rename = "h")]
    pub hash: BlobHash,
    /// Offset of the frame header in the pack.
    #[serde(rename = "o")]
    pub offset: u64,
    /// Stored payload length.
    #[serde(rename = "s")]
    pub stored_len: u64,
}

/// Written once per push batch: which blobs its pack holds and which keys it pushed.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PackIndex {
    /// Record version.
    pub v: u32,
    /// The pack this batch uploaded; `None` when every blob was already remote.
    #[serde(rename = "p")]
    pub pack: Option<BlobHash>,
    /// The pack's blobs.
    #[serde(rename = "b")]
    pub blobs: Vec<PackEntry>,
    /// Artifact keys whose records the batch wrote (a record may since be gone: readers treat
    /// a missing record as "not there", never as an error).
    #[serde(rename = "k")]
    pub keys: Vec<String>,
    /// When the batch started, unix ms.
    #[serde(rename = "c")]
    pub created_ms: u64,
}

impl_record!(PackIndex, "pack index", checked);

impl PackIndex {
    fn check_fields(&self) -> Result<(), FormatError> {
        for e in &self.blobs {
            check_frame_location(e.offset, e.stored_len)?;
        }
        Ok(())
    }

    /// An index for `pack` listing `blobs` and `keys`.
    pub fn new(
        pack: Option<BlobHash>,
        blobs: Vec<PackEntry>,
        keys: Vec<String>,
        created_ms: u64,
    ) -> Self {
        Self {
            v: RECORD_VERSION,
            pack,
            blobs,
            keys,
            created_ms,
        }
    }
}

/// What `sync push` last verified of one key of a pack tier: the remote record object, in
/// the version its listing showed, held the artifact whose push identity is `identity`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct LedgerEntry {
    /// The artifact key.
    #[serde(rename = "k")]
    pub key: String,
    /// The pushing side's identity of the artifact (kind, metadata, expiry, parts' names,
    /// hashes and lengths), computed by `pipecache-tiers`.
    #[serde(rename = "i")]
    pub identity: BlobHash,
    /// The record object's size when verified.
    #[serde(rename = "s")]
    pub size: u64,
    /// Its last modification, unix ms (0 when the remote does not say).
    #[serde(rename = "m")]
    pub modified_ms: u64,
    /// Its entity tag, when the remote gives one (S3: the MD5 of the record's bytes).
    #[serde(rename = "t")]
    pub etag: Option<String>,
}

/// A push ledger: a file in the local store directory per pack tier (docs/format.md, "Push
/// ledger"), so a `sync push` reads a remote record only for keys that changed on either
/// side since a push verified them. Only ever a shortcut: an entry that does not match
/// costs a read, never a wrong skip.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PushLedger {
    /// Record version.
    pub v: u32,
    /// The remote it describes (its target, e.g. `s3://bucket/prefix`); a ledger naming
    /// another remote is ignored.
    #[serde(rename = "r")]
    pub remote: String,
    /// One entry per verified key.
    #[serde(rename = "e")]
    pub entries: Vec<LedgerEntry>,
}

impl_record!(PushLedger, "push ledger");

impl PushLedger {
    /// A ledger of `remote` holding `entries`.
    pub fn new(remote: String, entries: Vec<LedgerEntry>) -> Self {
        Self {
            v: RECORD_VERSION,
            remote,
            entries,
        }
    }
}

/// Builds a pack in memory: a chunk header, then blob frames.
#[derive(Debug)]
pub struct PackBuilder {
    bytes: Vec<u8>,
    entries: Vec<PackEntry>,
}

impl PackBuilder {
    /// An empty pack stamped with `created_ms`.
    pub fn new(created_ms: u64) -> Self {
        let mut bytes = Vec::with_capacity(1 << 20);
        bytes.extend_from_slice(&ChunkHeader { id: 0, created_ms }.encode());
        Self {
            bytes,
            entries: Vec::new(),
        }
    }

    /// Appends a blob frame; `stored` is the payload as encoded with `codec`.
    pub fn push(&mut self, hash: BlobHash, codec: Codec, raw_len: u64, stored: &[u8]) -> PackEntry {
        let header = FrameHeader::blob(hash, codec, raw_len, stored);
        let entry = PackEntry {
            hash,
            offset: self.bytes.len() as u64,
            stored_len: stored.len() as u64,
        };
        self.bytes.extend_from_slice(&header.encode());
        self.bytes.extend_from_slice(stored);
        self.entries.push(entry);
        entry
    }

    /// Bytes so far, header included.
    pub fn len(&self) -> u64 {
        self.bytes.len() as u64
    }

    /// True when no blob was pushed.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// The pack's id (blake3 of its bytes), its bytes and its entries.
    pub fn finish(self) -> (BlobHash, Vec<u8>, Vec<PackEntry>) {
        (BlobHash::of(&self.bytes), self.bytes, self.entries)
    }
}

/// Checks a whole pack: its header, then every frame (a pack is a chunk file of blob frames,
/// so this is a [`ChunkScanner`] that refuses other frame kinds). Returns the entries found.
/// Used by tests and the fuzz target; readers fetch single frames.
pub fn scan_pack(bytes: &[u8]) -> Result<Vec<PackEntry>, FormatError> {
    let mut scanner = ChunkScanner::new(bytes)?;
    let mut out = Vec::new();
    while let Some(frame) = scanner.next_frame()? {
        if frame.header.kind != FrameKind::Blob {
            return Err(FormatError::corrupt("pack", "non-blob frame in a pack"));
        }
        out.push(PackEntry {
            hash: frame.header.hash,
            offset: frame.offset,
            stored_len: frame.header.stored_len,
        });
    }
    Ok(out)
}

/// Decodes one frame fetched from a pack by a ranged read and checks that it is the blob
/// `expected` (the frame's own blake3 check runs first).
pub fn decode_pack_frame(bytes: &[u8], expected: BlobHash) -> Result<Vec<u8>, FormatError> {
    let (header, raw) = decode_frame(bytes)?;
    if header.kind != FrameKind::Blob {
        return Err(FormatError::corrupt("pack frame", "not a blob frame"));
    }
    if header.hash != expected {
        return Err(FormatError::corrupt(
            "pack frame",
            format!("holds blob {} where {} was expected", header.hash, expected),
        ));
    }
    if FRAME_HEADER_LEN as u64 + header.stored_len != bytes.len() as u64 {
        return Err(FormatError::corrupt(
            "pack frame",
            "frame length differs from the range read",
        ));
    }
    Ok(raw)
}

/// Encodes an artifact whole for an inline tier (Redis): a record frame, then one blob frame
/// per part in order. `parts` gives each part's codec and stored bytes; `record.parts[i].at`
/// must be `None`.
pub fn encode_inline_value(record: &RemoteRecord, parts: &[(Codec, &[u8])]) -> Vec<u8> {
    debug_assert_eq!(record.parts.len(), parts.len());
    let rec = record.encode();
    let total: usize = FRAME_HEADER_LEN
        + rec.len()
        + parts
            .iter()
            .map(|(_, s)| FRAME_HEADER_LEN + s.len())
            .sum::<usize>();
    let mut out = Vec::with_capacity(total);
    let header = FrameHeader::raw(FrameKind::ArtifactRecord, &rec);
    out.extend_from_slice(&header.encode());
    out.extend_from_slice(&rec);
    for (part, (codec, stored)) in record.parts.iter().zip(parts) {
        let header = FrameHeader::blob(part.hash, *codec, part.len, stored);
        out.extend_from_slice(&header.encode());
        out.extend_from_slice(stored);
    }
    out
}

/// Decodes an inline value: the record and each part's raw bytes, every frame checked
/// against its blake3 and every blob against the record's part hash and length.
pub fn decode_inline_value(bytes: &[u8]) -> Result<(RemoteRecord, Vec<Vec<u8>>), FormatError> {
    let (header, rec_bytes) = decode_frame(bytes)?;
    if header.kind != FrameKind::ArtifactRecord {
        return Err(FormatError::corrupt(
            "inline value",
            "does not start with a record frame",
        ));
    }
    let record = RemoteRecord::decode(&rec_bytes)?;
    let mut offset = header.frame_len() as usize;
    let mut parts = Vec::with_capacity(record.parts.len().min(1024));
    for part in &record.parts {
        if part.at.is_some() {
            return Err(FormatError::corrupt(
                "inline value",
                "part points into a pack",
            ));
        }
        let rest = bytes.get(offset..).unwrap_or_default();
        let (header, raw) = decode_frame(rest)?;
        if header.kind != FrameKind::Blob || header.hash != part.hash || header.raw_len != part.len
        {
            return Err(FormatError::corrupt(
                "inline value",
                format!("part {:?} does not match its frame", part.name),
            ));
        }
        offset += header.frame_len() as usize;
        parts.push(raw);
    }
    if offset != bytes.len() {
        return Err(FormatError::corrupt(
            "inline value",
            "trailing bytes after the last part",
        ));
    }
    Ok((record, parts))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(parts: &[&[u8]]) -> RemoteRecord {
        RemoteRecord {
            v: RECORD_VERSION,
            key: "video:x:transcript".into(),
            kind: "transcript".into(),
            parts: parts
                .iter()
                .enumerate()
                .map(|(i, p)| RemotePart {
                    name: format!("p{i}"),
                    hash: BlobHash::of(p),
                    len: p.len() as u64,
                    at: None,
                })
                .collect(),
            created_ms: 1,
            expires_ms: Some(2),
            meta: BTreeMap::new(),
            digest: BlobHash::of(b"d"),
        }
    }

    #[test]
    fn forged_pack_locations_are_corrupt_at_decode() {
        let located = |offset: u64, stored_len: u64| {
            let mut rec = record(&[b"frame"]);
            rec.parts[0].at = Some(PackLocation {
                pack: BlobHash::of(b"pack"),
                offset,
                stored_len,
            });
            RemoteRecord::decode(&rec.encode())
        };
        let ok = located(CHUNK_HEADER_LEN, 5).unwrap();
        assert_eq!(ok.parts[0].at.unwrap().frame_range(), 64..64 + 64 + 5);
        for (offset, stored_len) in [
            (u64::MAX - 10, 5),
            (64, u64::MAX),
            (64, MAX_BLOB_LEN + 1),
            (3, 5),
        ] {
            let err = located(offset, stored_len).unwrap_err();
            assert!(err.to_string().contains("pack location"), "{err}");
        }
        let index = PackIndex::new(
            Some(BlobHash::of(b"pack")),
            vec![PackEntry {
                hash: BlobHash::of(b"x"),
                offset: u64::MAX,
                stored_len: 1,
            }],
            vec![],
            0,
        );
        assert!(PackIndex::decode(&index.encode()).is_err());
    }

    #[test]
    fn inline_value_round_trips_and_rejects_any_flip() {
        let parts: [&[u8]; 2] = [b"hello", b"world!"];
        let rec = record(&parts);
        let stored: Vec<(Codec, &[u8])> = parts.iter().map(|p| (Codec::Raw, *p)).collect();
        let bytes = encode_inline_value(&rec, &stored);
        let (back, raw) = decode_inline_value(&bytes).unwrap();
        assert_eq!(back, rec);
        assert_eq!(raw, vec![b"hello".to_vec(), b"world!".to_vec()]);
        for i in 0..bytes.len() {
            let mut bad = bytes.clone();
            bad[i] ^= 0x40;
            assert!(decode_inline_value(&bad).is_err(), "flip at {i} accepted");
        }
        assert!(decode_inline_value(&bytes[..bytes.len() - 1]).is_err());
    }

    #[test]
    fn pack_frames_decode_by_range_and_scan() {
        let mut pack = PackBuilder::new(7);
        let a = pack.push(BlobHash::of(b"aaa"), Codec::Raw, 3, b"aaa");
        let b = pack.push(BlobHash::of(b"bbbb"), Codec::Raw, 4, b"bbbb");
        let (id, bytes, entries) = pack.finish();
        assert_eq!(id, BlobHash::of(&bytes));
        assert_eq!(entries, vec![a, b]);
        assert_eq!(scan_pack(&bytes).unwrap(), entries);
        let loc = PackLocation {
            pack: id,
            offset: b.offset,
            stored_len: b.stored_len,
        };
        let r = loc.frame_range();
        let frame = &bytes[r.start as usize..r.end as usize];
        assert_eq!(decode_pack_frame(frame, b.hash).unwrap(), b"bbbb");
        assert!(decode_pack_frame(frame, a.hash).is_err());
    }
}
