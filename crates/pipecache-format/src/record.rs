//! Versioned CBOR values stored in the RocksDB index (and, for artifact records, in chunk
//! frames). Field names are short on purpose: the blobs CF holds one record per unique blob.
//!
//! Every record carries `v`, its record version. A decoder accepts `1..=RECORD_VERSION`; a
//! higher version is [`FormatError::UnsupportedVersion`], anything undecodable is
//! [`FormatError::Corrupt`]. Trailing bytes after the CBOR item are corruption too.

use std::collections::BTreeMap;
use std::io::Cursor;

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use crate::{BlobHash, Codec, FormatError};

mod canonical;

/// Record version written by this build.
pub const RECORD_VERSION: u32 = 1;

/// A CBOR-encoded index value.
pub trait Record: Serialize + DeserializeOwned {
    /// Name used in error messages.
    const WHAT: &'static str;

    /// The record's version field.
    fn version(&self) -> u32;

    /// Checks what the schema cannot say (ranges that later arithmetic relies on). Runs on
    /// every decode, so a forged record is corrupt at the decoder, not an overflow later.
    fn check(&self) -> Result<(), FormatError> {
        Ok(())
    }

    /// Encodes to CBOR.
    fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(64);
        ciborium::into_writer(self, &mut out).expect("CBOR encoding into a Vec cannot fail");
        out
    }

    /// Decodes the encoding this build writes, faster than the generic path; `None` for
    /// anything else, which the generic path then decodes (or refuses). Must accept only
    /// bytes the generic path decodes to the same value.
    fn decode_canonical(_bytes: &[u8]) -> Option<Self> {
        None
    }

    /// Decodes untrusted bytes.
    fn decode(bytes: &[u8]) -> Result<Self, FormatError> {
        if let Some(rec) = Self::decode_canonical(bytes)
            && check_version(Self::WHAT, rec.version()).is_ok()
        {
            rec.check()?;
            return Ok(rec);
        }
        let mut cursor = Cursor::new(bytes);
        match ciborium::from_reader::<Self, _>(&mut cursor) {
            Ok(rec) => {
                if cursor.position() != bytes.len() as u64 {
                    return Err(FormatError::corrupt(
                        Self::WHAT,
                        "trailing bytes after record",
                    ));
                }
                check_version(Self::WHAT, rec.version())?;
                rec.check()?;
                Ok(rec)
            }
            Err(e) => {
                // A record from a newer pipecache may not fit this struct: say so instead of
                // calling it corrupt.
                #[derive(Deserialize)]
                struct VersionOnly {
                    v: u32,
                }
                if let Ok(VersionOnly { v }) = ciborium::from_reader::<VersionOnly, _>(bytes) {
                    check_version(Self::WHAT, v)?;
                }
                Err(FormatError::corrupt(Self::WHAT, e.to_string()))
            }
        }
    }
}

/// `impl Record` for a struct whose version field is `v`.
macro_rules! impl_record {
    ($t:ty, $what:literal) => {
        impl $crate::record::Record for $t {
            const WHAT: &'static str = $what;
            fn version(&self) -> u32 {
                self.v
            }
        }
    };
    // With an inherent `fn check_fields(&self) -> Result<(), FormatError>` run on decode.
    ($t:ty, $what:literal, checked) => {
        impl $crate::record::Record for $t {
            const WHAT: &'static str = $what;
            fn version(&self) -> u32 {
                self.v
            }
            fn check(&self) -> Result<(), $crate::FormatError> {
                self.check_fields()
            }
        }
    };
}
pub(crate) use impl_record;

fn check_version(what: &'static str, v: u32) -> Result<(), FormatError> {
    if v == 0 || v > RECORD_VERSION {
        return Err(FormatError::UnsupportedVersion {
            what,
            found: v,
            supported: RECORD_VERSION,
        });
    }
    Ok(())
}

/// One named part of an artifact: a reference to a blob.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PartRef {
    /// Part name, unique within the artifact (a file name for directory artifacts).
    #[serde(rename = "n")]
    pub name: String,
    /// The blob holding the part's bytes.
    #[serde(rename = "h")]
    pub hash: BlobHash,
    /// Raw length of the part.
    #[serde(rename = "l")]
    pub len: u64,
    /// Where the blob's frame was when the record was written: a read tries it first and
    /// looks the blob up only when that frame is gone (compaction moved the blob) or is not
    /// the blob (the frame's hash and the bytes' blake3 are checked either way, so a stale
    /// hint costs a failed read, never wrong bytes). Absent in records written before
    /// hints.
    #[serde(rename = "a", default, skip_serializing_if = "Option::is_none")]
    pub at: Option<FrameRef>,
}

/// Value of the `artifacts` CF: what an artifact key maps to.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ArtifactRecord {
    /// Record version.
    pub v: u32,
    /// Artifact kind (e.g. `keyframes`, `transcript`; free-form at this layer).
    #[serde(rename = "k")]
    pub kind: String,
    /// Ordered parts.
    #[serde(rename = "p")]
    pub parts: Vec<PartRef>,
    /// Sum of the parts' raw lengths.
    #[serde(rename = "s")]
    pub logical_size: u64,
    /// Creation time, unix ms.
    #[serde(rename = "c")]
    pub created_ms: u64,
    /// Expiry time, unix ms; `None` never expires.
    #[serde(rename = "e")]
    pub expires_ms: Option<u64>,
    /// Small user metadata.
    #[serde(rename = "m")]
    pub meta: BTreeMap<String, String>,
    /// Write sequence number: orders this record against other records and tombstones of the
    /// same key when the index is rebuilt from chunk files.
    #[serde(rename = "q", default)]
    pub seq: u64,
    /// Where this record's copy lives in a chunk file (a [`RecordFrame`] frame).
    #[serde(rename = "f", default)]
    pub frame: Option<FrameRef>,
}

/// Location of a frame in a chunk file.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct FrameRef {
    /// Chunk id.
    #[serde(rename = "c")]
    pub chunk: u64,
    /// Offset of the frame header.
    #[serde(rename = "o")]
    pub offset: u64,
    /// Frame length (header + stored payload).
    #[serde(rename = "l")]
    pub len: u64,
}

/// Payload of an artifact-record frame (kind 1): the record as committed, so `rebuild-index`
/// can restore artifacts from chunk files alone. The highest `seq` per key wins.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RecordFrame {
    /// Record version.
    pub v: u32,
    /// Artifact key.
    #[serde(rename = "k")]
    pub key: String,
    /// The record (its `frame` field is `None` here).
    #[serde(rename = "r")]
    pub record: ArtifactRecord,
}

impl_record!(RecordFrame, "record frame");

/// Payload of a tombstone frame (kind 2): `key` was deleted at `seq`. Needed only while the
/// chunk holding the key's older record frame (`shadows`) still exists; compaction drops it
/// after that.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct TombstoneFrame {
    /// Record version.
    pub v: u32,
    /// Artifact key.
    #[serde(rename = "k")]
    pub key: String,
    /// Sequence number of the deletion.
    #[serde(rename = "q")]
    pub seq: u64,
    /// Chunk holding the record frame this tombstone shadows.
    #[serde(rename = "s")]
    pub shadows: Option<u64>,
}

impl_record!(TombstoneFrame, "tombstone frame");

impl Record for ArtifactRecord {
    const WHAT: &'static str = "artifact record";
    fn version(&self) -> u32 {
        self.v
    }
    fn decode_canonical(bytes: &[u8]) -> Option<Self> {
        canonical::artifact_record(bytes)
    }
}

impl ArtifactRecord {
    /// True when the artifact is expired at `now_ms`.
    pub fn is_expired(&self, now_ms: u64) -> bool {
        self.expires_ms.is_some_and(|e| now_ms >= e)
    }
}

/// Value of the `blobs` CF: where a blob lives and how many artifact parts reference it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct BlobRecord {
    /// Record version.
    pub v: u32,
    /// Chunk id.
    #[serde(rename = "c")]
    pub chunk: u64,
    /// Offset of the frame header in the chunk file.
    #[serde(rename = "o")]
    pub offset: u64,
    /// Payload bytes as stored (after compression), excluding the frame header.
    #[serde(rename = "s")]
    pub stored_len: u64,
    /// Payload bytes once decoded.
    #[serde(rename = "r")]
    pub raw_len: u64,
    /// Codec byte (see [`Codec`]).
    #[serde(rename = "z")]
    pub codec: u8,
    /// Number of artifact parts referencing this blob.
    #[serde(rename = "n")]
    pub refs: u64,
}

impl Record for BlobRecord {
    const WHAT: &'static str = "blob record";
    fn version(&self) -> u32 {
        self.v
    }
    fn decode_canonical(bytes: &[u8]) -> Option<Self> {
        canonical::blob_record(bytes)
    }
}

impl BlobRecord {
    /// Decoded codec.
    pub fn codec(&self) -> Result<Codec, FormatError> {
        Codec::from_byte(self.codec)
    }

    /// Bytes the frame occupies in its chunk (header + stored payload).
    pub fn frame_len(&self) -> u64 {
        crate::FRAME_HEADER_LEN as u64 + self.stored_len
    }
}

/// Value of the `chunks` CF.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChunkRecord {
    /// Record version.
    pub v: u32,
    /// Committed length of the chunk file (header included). Bytes past it are uncommitted.
    #[serde(rename = "t")]
    pub total_bytes: u64,
    /// Bytes of frames still referenced (header + payload of live blobs).
    #[serde(rename = "l")]
    pub live_bytes: u64,
    /// A sealed chunk is never appended to again.
    #[serde(rename = "s")]
    pub sealed: bool,
    /// Creation time, unix ms.
    #[serde(rename = "c")]
    pub created_ms: u64,
}

impl_record!(ChunkRecord, "chunk record");

/// Value of the `access` CF: when an artifact was last read, coarsely.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct AccessRecord {
    /// Record version.
    pub v: u32,
    /// Last access, unix ms.
    #[serde(rename = "a")]
    pub last_ms: u64,
}

impl_record!(AccessRecord, "access record");

/// Store-wide totals, kept in the `meta` CF so `stats` is O(1).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Totals {
    /// Artifact records.
    #[serde(rename = "a")]
    pub artifacts: u64,
    /// Sum of artifact logical sizes.
    #[serde(rename = "l")]
    pub logical_bytes: u64,
    /// Blob records.
    #[serde(rename = "b")]
    pub blobs: u64,
    /// Sum of live blobs' raw lengths.
    #[serde(rename = "u")]
    pub unique_bytes: u64,
    /// Sum of live blobs' stored lengths.
    #[serde(rename = "s")]
    pub stored_bytes: u64,
    /// Blob records with zero references (their bytes wait for compaction).
    #[serde(rename = "db", default)]
    pub dead_blobs: u64,
    /// Artifacts removed because they expired (lifetime count).
    #[serde(rename = "xe", default)]
    pub expired: u64,
    /// Artifacts evicted to meet the size budget (lifetime count).
    #[serde(rename = "xv", default)]
    pub evicted: u64,
}

/// Value of the `meta` CF's `store` key.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct StoreMeta {
    /// Record version.
    pub v: u32,
    /// Chunk id the next new chunk file gets.
    #[serde(rename = "n")]
    pub next_chunk_id: u64,
    /// The chunk currently appended to, if any.
    #[serde(rename = "o")]
    pub open_chunk: Option<u64>,
    /// Running totals.
    #[serde(rename = "t")]
    pub totals: Totals,
    /// Store creation time, unix ms.
    #[serde(rename = "c")]
    pub created_ms: u64,
    /// Sequence number the next artifact record or tombstone gets.
    #[serde(rename = "q", default)]
    pub next_seq: u64,
}

impl_record!(StoreMeta, "store meta record");

/// Key of the `expiry` CF: expiry time (big-endian, so RocksDB orders by time) then the key.
pub fn expiry_key(expires_ms: u64, artifact_key: &str) -> Vec<u8> {
    let mut k = Vec::with_capacity(8 + artifact_key.len());
    k.extend_from_slice(&expires_ms.to_be_bytes());
    k.extend_from_slice(artifact_key.as_bytes());
    k
}

/// Inverse of [`expiry_key`].
pub fn parse_expiry_key(bytes: &[u8]) -> Result<(u64, String), FormatError> {
    if bytes.len() < 8 {
        return Err(FormatError::Truncated {
            what: "expiry key",
            needed: 8,
            available: bytes.len() as u64,
        });
    }
    let t = u64::from_be_bytes(bytes[..8].try_into().expect("8 bytes"));
    let key = std::str::from_utf8(&bytes[8..])
        .map_err(|e| FormatError::corrupt("expiry key", e.to_string()))?;
    Ok((t, key.to_owned()))
}

/// Key of the `chunks` CF: the chunk id, big-endian.
pub fn chunk_key(id: u64) -> [u8; 8] {
    id.to_be_bytes()
}

/// Inverse of [`chunk_key`].
pub fn parse_chunk_key(bytes: &[u8]) -> Result<u64, FormatError> {
    let arr: [u8; 8] = bytes.try_into().map_err(|_| {
        FormatError::corrupt("chunk key", format!("{} bytes, expected 8", bytes.len()))
    })?;
    Ok(u64::from_be_bytes(arr))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn artifact() -> ArtifactRecord {
        ArtifactRecord {
            v: RECORD_VERSION,
            kind: "keyframes".into(),
            parts: vec![PartRef {
                name: "frame_0001.jpg".into(),
                hash: BlobHash::of(b"x"),
                len: 1,
                at: Some(FrameRef {
                    chunk: 3,
                    offset: 64,
                    len: 65,
                }),
            }],
            logical_size: 1,
            created_ms: 5,
            expires_ms: Some(10),
            meta: BTreeMap::from([("fps".into(), "30".into())]),
            seq: 3,
            frame: Some(FrameRef {
                chunk: 1,
                offset: 64,
                len: 100,
            }),
        }
    }

    #[test]
    fn records_round_trip() {
        let a = artifact();
        assert_eq!(ArtifactRecord::decode(&a.encode()).unwrap(), a);
        let b = BlobRecord {
            v: 1,
            chunk: 3,
            offset: 64,
            stored_len: 10,
            raw_len: 20,
            codec: 1,
            refs: 2,
        };
        assert_eq!(BlobRecord::decode(&b.encode()).unwrap(), b);
        let c = ChunkRecord {
            v: 1,
            total_bytes: 100,
            live_bytes: 50,
            sealed: true,
            created_ms: 1,
        };
        assert_eq!(ChunkRecord::decode(&c.encode()).unwrap(), c);
        let m = StoreMeta {
            v: 1,
            next_chunk_id: 4,
            open_chunk: Some(3),
            totals: Totals::default(),
            created_ms: 9,
            next_seq: 5,
        };
        assert_eq!(StoreMeta::decode(&m.encode()).unwrap(), m);
        let acc = AccessRecord { v: 1, last_ms: 77 };
        assert_eq!(AccessRecord::decode(&acc.encode()).unwrap(), acc);
        let rf = RecordFrame {
            v: 1,
            key: "k".into(),
            record: artifact(),
        };
        assert_eq!(RecordFrame::decode(&rf.encode()).unwrap(), rf);
        let t = TombstoneFrame {
            v: 1,
            key: "k".into(),
            seq: 9,
            shadows: Some(2),
        };
        assert_eq!(TombstoneFrame::decode(&t.encode()).unwrap(), t);
    }

    #[test]
    fn newer_record_version_is_unsupported_not_corrupt() {
        let mut a = artifact();
        a.v = RECORD_VERSION + 1;
        assert!(matches!(
            ArtifactRecord::decode(&a.encode()),
            Err(FormatError::UnsupportedVersion { .. })
        ));
        // A future record with a different shape still reports its version.
        #[derive(Serialize)]
        struct Future {
            v: u32,
            other: String,
        }
        let mut bytes = Vec::new();
        ciborium::into_writer(
            &Future {
                v: 9,
                other: "x".into(),
            },
            &mut bytes,
        )
        .unwrap();
        assert!(matches!(
            BlobRecord::decode(&bytes),
            Err(FormatError::UnsupportedVersion { found: 9, .. })
        ));
    }

    #[test]
    fn garbage_and_trailing_bytes_are_corrupt() {
        assert!(
            BlobRecord::decode(b"\xff\x00garbage")
                .unwrap_err()
                .is_corruption()
        );
        let mut bytes = artifact().encode();
        bytes.push(0);
        assert!(ArtifactRecord::decode(&bytes).unwrap_err().is_corruption());
        assert!(ArtifactRecord::decode(&[]).unwrap_err().is_corruption());
    }

    #[test]
    fn expiry_keys_sort_by_time() {
        let a = expiry_key(5, "zzz");
        let b = expiry_key(256, "aaa");
        assert!(a < b);
        assert_eq!(parse_expiry_key(&b).unwrap(), (256, "aaa".to_string()));
        assert!(parse_expiry_key(b"short").is_err());
        assert_eq!(parse_chunk_key(&chunk_key(42)).unwrap(), 42);
    }

    proptest! {
        #[test]
        fn decoders_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..256)) {
            let _ = ArtifactRecord::decode(&bytes);
            let _ = BlobRecord::decode(&bytes);
            let _ = ChunkRecord::decode(&bytes);
            let _ = StoreMeta::decode(&bytes);
            let _ = AccessRecord::decode(&bytes);
            let _ = RecordFrame::decode(&bytes);
            let _ = TombstoneFrame::decode(&bytes);
        }

        #[test]
        fn the_hand_written_artifact_decoder_agrees_with_serde(
            parts in proptest::collection::vec(
                (".{1,20}", any::<[u8; 32]>(), any::<u64>(), proptest::option::of(any::<(u64, u64, u64)>())),
                0..6,
            ),
            expires in proptest::option::of(any::<u64>()),
            frame in proptest::option::of(any::<(u64, u64, u64)>()),
            meta in proptest::collection::btree_map(".{0,8}", ".{0,8}", 0..3),
            (seq, size, flip_at, flip) in (any::<u64>(), any::<u64>(), any::<usize>(), 1..=255u8),
        ) {
            let at = |(chunk, offset, len)| FrameRef { chunk, offset, len };
            let rec = ArtifactRecord {
                v: RECORD_VERSION,
                kind: "keyframes".into(),
                parts: parts
                    .into_iter()
                    .map(|(name, h, len, a)| PartRef { name, hash: BlobHash(h), len, at: a.map(at) })
                    .collect(),
                logical_size: size,
                created_ms: 7,
                expires_ms: expires,
                meta,
                seq,
                frame: frame.map(at),
            };
            let bytes = rec.encode();
            prop_assert_eq!(ArtifactRecord::decode_canonical(&bytes), Some(rec.clone()));
            let generic: ArtifactRecord = ciborium::from_reader(&bytes[..]).unwrap();
            prop_assert_eq!(&generic, &rec);
            // What the hand-written decoder accepts of damaged bytes, serde decodes alike.
            let mut damaged = bytes.clone();
            let i = flip_at % damaged.len();
            damaged[i] ^= flip;
            if let Some(fast) = ArtifactRecord::decode_canonical(&damaged) {
                let mut cursor = Cursor::new(&damaged[..]);
                let slow: ArtifactRecord = ciborium::from_reader(&mut cursor).unwrap();
                prop_assert_eq!(cursor.position(), damaged.len() as u64);
                prop_assert_eq!(fast, slow);
            }
            for cut in [bytes.len() / 2, bytes.len() - 1] {
                prop_assert_eq!(ArtifactRecord::decode_canonical(&bytes[..cut]), None);
            }
        }

        #[test]
        fn artifact_records_round_trip(
            kind in ".{0,20}",
            parts in proptest::collection::vec((".{1,30}", any::<[u8; 32]>(), any::<u64>()), 0..8),
            expires in proptest::option::of(any::<u64>()),
            meta in proptest::collection::btree_map(".{0,10}", ".{0,10}", 0..4),
        ) {
            let rec = ArtifactRecord {
                v: RECORD_VERSION,
                kind,
                parts: parts.into_iter().map(|(name, h, len)| PartRef { name, hash: BlobHash(h), len, at: None }).collect(),
                logical_size: 0,
                created_ms: 1,
                expires_ms: expires,
                meta,
                seq: 0,
                frame: None,
            };
            prop_assert_eq!(ArtifactRecord::decode(&rec.encode()).unwrap(), rec);
        }

        /// The hand-written blob record decoder takes every record this build writes, and
        /// agrees with the generic decoder on any bytes it takes at all.
        #[test]
        fn blob_record_fast_path_agrees_with_serde(
            fields in any::<(u64, u64, u64, u64, u8, u64)>(),
            noise in proptest::collection::vec(any::<u8>(), 0..40),
            cut in any::<prop::sample::Index>(),
        ) {
            let (chunk, offset, stored_len, raw_len, codec, refs) = fields;
            let rec = BlobRecord { v: RECORD_VERSION, chunk, offset, stored_len, raw_len, codec, refs };
            let bytes = rec.encode();
            prop_assert_eq!(BlobRecord::decode_canonical(&bytes), Some(rec));
            // Damaged or altered encodings: taken by both decoders identically, or not taken.
            let mut altered = bytes.clone();
            let at = cut.index(altered.len());
            altered.splice(at..at, noise);
            if let Some(fast) = BlobRecord::decode_canonical(&altered) {
                let generic: BlobRecord = ciborium::from_reader(&altered[..]).unwrap();
                prop_assert_eq!(fast, generic);
            }
        }
    }

    #[test]
    fn blob_records_in_other_encodings_still_decode() {
        // An extra field (as a later version might add) and the keys in another order: not
        // the canonical form, so the generic path decodes them.
        #[derive(Serialize)]
        struct Extra {
            n: u64,
            z: u8,
            r: u64,
            s: u64,
            o: u64,
            c: u64,
            v: u32,
            x: String,
        }
        let bytes = {
            let mut out = Vec::new();
            let e = Extra {
                n: 2,
                z: 0,
                r: 5,
                s: 5,
                o: 64,
                c: 3,
                v: 1,
                x: "later".into(),
            };
            ciborium::into_writer(&e, &mut out).unwrap();
            out
        };
        assert_eq!(BlobRecord::decode_canonical(&bytes), None);
        let rec = BlobRecord::decode(&bytes).unwrap();
        assert_eq!((rec.chunk, rec.offset, rec.refs), (3, 64, 2));
    }

    #[test]
    fn artifact_records_in_other_encodings_still_decode() {
        // Written before `q` and `f` existed (seven keys), and with a repeated metadata key:
        // not the canonical form, so the generic path decodes them as it always has.
        #[derive(Serialize)]
        struct Older {
            v: u32,
            k: String,
            p: Vec<PartRef>,
            s: u64,
            c: u64,
            e: Option<u64>,
            m: BTreeMap<String, String>,
        }
        let part = PartRef {
            name: "a".into(),
            hash: BlobHash::of(b"a"),
            len: 1,
            at: None,
        };
        let mut bytes = Vec::new();
        let older = Older {
            v: 1,
            k: "t".into(),
            p: vec![part.clone()],
            s: 1,
            c: 2,
            e: None,
            m: BTreeMap::from([("x".into(), "1".into())]),
        };
        ciborium::into_writer(&older, &mut bytes).unwrap();
        assert_eq!(ArtifactRecord::decode_canonical(&bytes), None);
        let rec = ArtifactRecord::decode(&bytes).unwrap();
        assert_eq!((rec.parts, rec.seq, rec.frame), (vec![part], 0, None));

        let mut twice = Vec::new();
        let entries = [("x", "1"), ("x", "2")];
        let mut value =
            ciborium::Value::serialized(&ArtifactRecord::decode(&bytes).unwrap()).unwrap();
        if let ciborium::Value::Map(fields) = &mut value {
            for (k, v) in fields.iter_mut() {
                if k.as_text() == Some("m") {
                    *v = ciborium::Value::Map(
                        entries
                            .iter()
                            .map(|(k, v)| ((*k).into(), (*v).into()))
                            .collect(),
                    );
                }
            }
        }
        ciborium::into_writer(&value, &mut twice).unwrap();
        assert_eq!(ArtifactRecord::decode_canonical(&twice), None);
        let generic: Option<ArtifactRecord> = ciborium::from_reader(&twice[..]).ok();
        assert_eq!(ArtifactRecord::decode(&twice).ok(), generic);
    }
}
