//! The frame header written in front of every payload in a chunk file.
//!
//! ```text
//! offset size field
//!      0    4 magic "PCFR"
//!      4    1 frame format version (1; 2 for codecs from version 2 on: LZ4)
//!      5    1 kind (0 = blob; 1 = artifact record, 2 = tombstone: reserved for rebuild-index)
//!      6    1 codec (0 = raw, 1 = zstd, 2 = LZ4 block)
//!      7    1 flags (0; non-zero is rejected)
//!      8   32 blake3-256 of the raw payload
//!     40    8 raw length, u64 little-endian
//!     48    8 stored length, u64 little-endian (bytes that follow this header)
//!     56    4 reserved (0)
//!     60    4 header checksum: first 4 bytes of blake3(bytes 0..60), little-endian u32
//! ```
//! A scanner can walk a chunk file frame by frame without the index: each header says how far
//! the next one is, and its checksum tells a real header from torn or random bytes.

use crate::{BlobHash, Codec, FormatError, MAX_BLOB_LEN};

/// Bytes in an encoded [`FrameHeader`].
pub const FRAME_HEADER_LEN: usize = 64;
/// Magic at the start of every frame.
pub const FRAME_MAGIC: [u8; 4] = *b"PCFR";
/// Newest frame format version this build reads; decoders accept `1..=FRAME_VERSION`. A frame
/// is written with the oldest version that knows its codec ([`Codec::min_frame_version`]).
pub const FRAME_VERSION: u8 = 2;

/// What a frame's payload is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[repr(u8)]
pub enum FrameKind {
    /// A content-addressed blob (an artifact part).
    Blob = 0,
    /// A CBOR artifact record, so the index can be rebuilt from chunk files alone.
    ArtifactRecord = 1,
    /// A CBOR tombstone recording the deletion of an artifact key.
    Tombstone = 2,
}

impl FrameKind {
    fn from_byte(b: u8) -> Result<Self, FormatError> {
        match b {
            0 => Ok(Self::Blob),
            1 => Ok(Self::ArtifactRecord),
            2 => Ok(Self::Tombstone),
            other => Err(FormatError::corrupt(
                "frame header",
                format!("unknown kind {other}"),
            )),
        }
    }
}

/// A decoded frame header.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FrameHeader {
    /// Payload kind.
    pub kind: FrameKind,
    /// Payload codec.
    pub codec: Codec,
    /// blake3 of the raw payload.
    pub hash: BlobHash,
    /// Length of the payload once decoded.
    pub raw_len: u64,
    /// Length of the payload as stored after this header.
    pub stored_len: u64,
}

impl FrameHeader {
    /// The header of a blob frame: `stored` is the payload as encoded with `codec`, `raw_len`
    /// its length once decoded, `hash` the blake3 of the raw bytes.
    pub fn blob(hash: BlobHash, codec: Codec, raw_len: u64, stored: &[u8]) -> Self {
        Self {
            kind: FrameKind::Blob,
            codec,
            hash,
            raw_len,
            stored_len: stored.len() as u64,
        }
    }

    /// The header of an uncompressed `kind` frame (records, tombstones) carrying `payload`.
    pub fn raw(kind: FrameKind, payload: &[u8]) -> Self {
        Self {
            kind,
            codec: Codec::Raw,
            hash: BlobHash::of(payload),
            raw_len: payload.len() as u64,
            stored_len: payload.len() as u64,
        }
    }

    /// Total bytes this frame occupies in the chunk file (header + payload).
    pub fn frame_len(&self) -> u64 {
        FRAME_HEADER_LEN as u64 + self.stored_len
    }

    /// Turns this frame's stored payload into its raw bytes and checks them against the
    /// header's blake3. Every reader of frames (positioned reads, scans, fuzzing) goes through
    /// here, so no path can return bytes that failed the check.
    pub fn decode_payload(&self, stored: Vec<u8>) -> Result<Vec<u8>, FormatError> {
        let raw = self.codec.decode_vec(stored, self.raw_len)?;
        if BlobHash::of(&raw) != self.hash {
            return Err(FormatError::corrupt("frame payload", "blake3 mismatch"));
        }
        Ok(raw)
    }

    /// Encodes the header into its 64-byte form.
    pub fn encode(&self) -> [u8; FRAME_HEADER_LEN] {
        let mut b = [0u8; FRAME_HEADER_LEN];
        b[0..4].copy_from_slice(&FRAME_MAGIC);
        b[4] = self.codec.min_frame_version();
        b[5] = self.kind as u8;
        b[6] = self.codec as u8;
        b[7] = 0;
        b[8..40].copy_from_slice(self.hash.as_bytes());
        b[40..48].copy_from_slice(&self.raw_len.to_le_bytes());
        b[48..56].copy_from_slice(&self.stored_len.to_le_bytes());
        let sum = header_checksum(&b[..60]);
        b[60..64].copy_from_slice(&sum.to_le_bytes());
        b
    }

    /// Decodes and validates a header from the first 64 bytes of `bytes`.
    pub fn decode(bytes: &[u8]) -> Result<Self, FormatError> {
        if bytes.len() < FRAME_HEADER_LEN {
            return Err(FormatError::Truncated {
                what: "frame header",
                needed: FRAME_HEADER_LEN as u64,
                available: bytes.len() as u64,
            });
        }
        let b = &bytes[..FRAME_HEADER_LEN];
        if b[0..4] != FRAME_MAGIC {
            return Err(FormatError::corrupt("frame header", "bad magic"));
        }
        let stored_sum = u32::from_le_bytes(b[60..64].try_into().expect("4 bytes"));
        if stored_sum != header_checksum(&b[..60]) {
            return Err(FormatError::corrupt(
                "frame header",
                "header checksum mismatch",
            ));
        }
        // The version is checked after the checksum: a flipped version byte is corruption,
        // a checksummed higher version is a file from a newer pipecache.
        if b[4] == 0 || b[4] > FRAME_VERSION {
            return Err(FormatError::UnsupportedVersion {
                what: "frame",
                found: u32::from(b[4]),
                supported: u32::from(FRAME_VERSION),
            });
        }
        let kind = FrameKind::from_byte(b[5])?;
        let codec = Codec::from_byte(b[6])?;
        if codec.min_frame_version() > b[4] {
            return Err(FormatError::corrupt(
                "frame header",
                format!("codec {} in a version {} frame", b[6], b[4]),
            ));
        }
        if b[7] != 0 || b[56..60] != [0, 0, 0, 0] {
            return Err(FormatError::corrupt("frame header", "reserved bits set"));
        }
        let hash = BlobHash::from_slice(&b[8..40])?;
        let raw_len = u64::from_le_bytes(b[40..48].try_into().expect("8 bytes"));
        let stored_len = u64::from_le_bytes(b[48..56].try_into().expect("8 bytes"));
        if raw_len > MAX_BLOB_LEN || stored_len > MAX_BLOB_LEN {
            return Err(FormatError::corrupt(
                "frame header",
                "length beyond MAX_BLOB_LEN",
            ));
        }
        if codec == Codec::Raw && raw_len != stored_len {
            return Err(FormatError::corrupt(
                "frame header",
                "raw frame with raw_len != stored_len",
            ));
        }
        Ok(Self {
            kind,
            codec,
            hash,
            raw_len,
            stored_len,
        })
    }
}

pub(crate) fn header_checksum(bytes: &[u8]) -> u32 {
    let h = blake3::hash(bytes);
    u32::from_le_bytes(h.as_bytes()[..4].try_into().expect("4 bytes"))
}

/// Decodes a whole frame (header + payload) held in memory, checks its payload against the
/// header's hash and returns the header and the raw payload: frames from remote packs, and
/// the fuzzer's entry. Frames in chunk files are read in two steps by `ChunkReader` and
/// `ChunkScanner` (header, then payload at its offset), through the same
/// [`FrameHeader::decode`] and [`FrameHeader::decode_payload`] checks.
pub fn decode_frame(bytes: &[u8]) -> Result<(FrameHeader, Vec<u8>), FormatError> {
    let header = FrameHeader::decode(bytes)?;
    let end = FRAME_HEADER_LEN as u64 + header.stored_len;
    if (bytes.len() as u64) < end {
        return Err(FormatError::Truncated {
            what: "frame payload",
            needed: end,
            available: bytes.len() as u64,
        });
    }
    let raw = header.decode_payload(bytes[FRAME_HEADER_LEN..end as usize].to_vec())?;
    Ok((header, raw))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> FrameHeader {
        FrameHeader {
            kind: FrameKind::Blob,
            codec: Codec::Raw,
            hash: BlobHash::of(b"hello"),
            raw_len: 5,
            stored_len: 5,
        }
    }

    #[test]
    fn header_round_trips() {
        let h = sample();
        assert_eq!(FrameHeader::decode(&h.encode()).unwrap(), h);
    }

    #[test]
    fn every_single_byte_flip_is_detected() {
        let enc = sample().encode();
        for i in 0..FRAME_HEADER_LEN {
            let mut b = enc;
            b[i] ^= 0x01;
            assert!(
                FrameHeader::decode(&b).is_err(),
                "flip at byte {i} went unnoticed"
            );
        }
    }

    #[test]
    fn newer_version_is_reported_as_unsupported() {
        let mut b = sample().encode();
        b[4] = FRAME_VERSION + 1;
        let sum = header_checksum(&b[..60]);
        b[60..64].copy_from_slice(&sum.to_le_bytes());
        assert!(matches!(
            FrameHeader::decode(&b),
            Err(FormatError::UnsupportedVersion { found: 3, .. })
        ));
    }

    /// Re-checksums a header after a test edits its bytes.
    fn resealed(mut b: [u8; FRAME_HEADER_LEN]) -> [u8; FRAME_HEADER_LEN] {
        let sum = header_checksum(&b[..60]);
        b[60..64].copy_from_slice(&sum.to_le_bytes());
        b
    }

    #[test]
    fn frames_carry_the_oldest_version_that_knows_their_codec() {
        // Raw and zstd frames stay version 1, so builds from before LZ4 read such stores; an
        // LZ4 frame is version 2, which those builds refuse as too new instead of corrupt.
        let zstd = FrameHeader {
            codec: Codec::Zstd,
            stored_len: 3,
            ..sample()
        };
        assert_eq!(sample().encode()[4], 1);
        assert_eq!(zstd.encode()[4], 1);
        let lz4 = FrameHeader {
            codec: Codec::Lz4,
            ..zstd
        };
        let enc = lz4.encode();
        assert_eq!((enc[4], enc[6]), (2, 2));
        assert_eq!(FrameHeader::decode(&enc).unwrap(), lz4);
        let mut v1 = enc;
        v1[4] = 1;
        let err = FrameHeader::decode(&resealed(v1)).unwrap_err();
        assert!(err.is_corruption(), "{err}");
    }

    #[test]
    fn truncated_header_and_payload_are_errors() {
        let h = sample();
        let mut frame = h.encode().to_vec();
        assert!(matches!(
            FrameHeader::decode(&frame[..10]),
            Err(FormatError::Truncated { .. })
        ));
        assert!(matches!(
            decode_frame(&frame),
            Err(FormatError::Truncated { .. })
        ));
        frame.extend_from_slice(b"hello");
        assert_eq!(decode_frame(&frame).unwrap().1, b"hello");
        let last = frame.len() - 1;
        frame[last] ^= 1;
        assert!(decode_frame(&frame).unwrap_err().is_corruption());
    }
}
