//! The change journal's layout: a file in the store directory (`changes`) through which the
//! process that writes the store tells every client holding a near cache which keys changed
//! (docs/format.md, "Change journal").
//!
//! It is shared memory, not a log: a 64-byte header, then a ring of [`key_hash`]es. The
//! header's first 24 bytes are fixed (magic, version, ring size) and decoded here; the three
//! words after them are live counters the writer moves and readers load atomically (by the
//! offsets below), so they are not part of what [`JournalHeader::decode`] checks.

use crate::FormatError;

const MAGIC: &[u8; 8] = b"PCCHANGE";
const WHAT: &str = "change journal";
/// Layout version this build writes and reads.
pub const JOURNAL_VERSION: u32 = 1;
/// Bytes before the ring.
pub const JOURNAL_HEADER_LEN: usize = 64;
/// Byte offset of the generation: moved when every near cache must drop everything (a
/// store opened for writing, a commit changing more keys than half the ring).
pub const GENERATION_AT: usize = 24;
/// Byte offset of the claimed sequence: the last one whose slot the writer may be writing.
pub const CLAIMED_AT: usize = 32;
/// Byte offset of the published sequence: every slot up to it holds its key's hash.
pub const PUBLISHED_AT: usize = 40;
/// The generation of a journal a writer replaced (with one of another layout or ring
/// size): its readers must keep nothing from then on. Every layout keeps the magic and this
/// word's offset, so any build can retire any other's journal.
pub const RETIRED: u64 = u64::MAX;
/// Slots in the ring this build creates: 16,384 changes (128 KiB) before a client that has
/// not looked drops its whole near cache instead of the changed keys.
pub const DEFAULT_SLOTS: u64 = 1 << 14;
/// Largest ring a reader maps.
const MAX_SLOTS: u64 = 1 << 24;

/// The fixed part of a journal's header.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct JournalHeader {
    /// Slots in the ring; sequence `s` is in slot `s % slots`.
    pub slots: u64,
}

impl JournalHeader {
    /// The header's fixed bytes, with the counters at zero.
    pub fn encode(&self) -> [u8; JOURNAL_HEADER_LEN] {
        let mut out = [0u8; JOURNAL_HEADER_LEN];
        out[..8].copy_from_slice(MAGIC);
        out[8..12].copy_from_slice(&JOURNAL_VERSION.to_le_bytes());
        out[16..24].copy_from_slice(&self.slots.to_le_bytes());
        out
    }

    /// Checks the fixed bytes of a journal of `file_len` bytes: magic, version, a ring size
    /// within bounds that the file holds whole.
    pub fn decode(bytes: &[u8], file_len: u64) -> Result<Self, FormatError> {
        if bytes.len() < JOURNAL_HEADER_LEN {
            return Err(FormatError::Truncated {
                what: WHAT,
                needed: JOURNAL_HEADER_LEN as u64,
                available: bytes.len() as u64,
            });
        }
        if &bytes[..8] != MAGIC {
            return Err(corrupt("bad magic"));
        }
        let version = u32::from_le_bytes(bytes[8..12].try_into().expect("4 bytes"));
        if version != JOURNAL_VERSION {
            return Err(FormatError::UnsupportedVersion {
                what: WHAT,
                found: version,
                supported: JOURNAL_VERSION,
            });
        }
        if bytes[12..16] != [0; 4] {
            return Err(corrupt("reserved bytes are not zero"));
        }
        let slots = u64::from_le_bytes(bytes[16..24].try_into().expect("8 bytes"));
        if slots == 0 || slots > MAX_SLOTS {
            return Err(corrupt(format!("ring of {slots} slots")));
        }
        let needed = JOURNAL_HEADER_LEN as u64 + slots * 8;
        if file_len != needed {
            return Err(corrupt(format!(
                "{file_len} bytes for a ring of {slots} slots ({needed} expected)"
            )));
        }
        Ok(Self { slots })
    }

    /// The file's length: header and ring.
    pub fn file_len(&self) -> u64 {
        JOURNAL_HEADER_LEN as u64 + self.slots * 8
    }
}

fn corrupt(detail: impl Into<String>) -> FormatError {
    FormatError::Corrupt {
        what: WHAT,
        detail: detail.into(),
    }
}

/// The 64-bit name of a key in the journal and in memory tiers: XXH3-64 of the key's UTF-8
/// bytes, seed 0. Fixed by its specification (every process must compute the same one),
/// unlike a `HashMap`'s seeded hasher, and ~20 ns for a key, where blake3's was ~130 ns on
/// every memory-tier hit. Not a checksum: two keys sharing one only cost an extra
/// invalidation, or a miss in a memory tier.
pub fn key_hash(key: &str) -> u64 {
    xxhash_rust::xxh3::xxh3_64(key.as_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_round_trips_and_refuses_damage() {
        let h = JournalHeader {
            slots: DEFAULT_SLOTS,
        };
        let bytes = h.encode();
        assert_eq!(JournalHeader::decode(&bytes, h.file_len()).unwrap(), h);
        // A file shorter than its ring, a bad magic, a newer version, a zero ring.
        assert!(JournalHeader::decode(&bytes, h.file_len() - 8).is_err());
        let mut bad = bytes;
        bad[0] ^= 1;
        assert!(matches!(
            JournalHeader::decode(&bad, h.file_len()),
            Err(FormatError::Corrupt { .. })
        ));
        let mut newer = bytes;
        newer[8] = 2;
        assert!(matches!(
            JournalHeader::decode(&newer, h.file_len()),
            Err(FormatError::UnsupportedVersion { found: 2, .. })
        ));
        let mut reserved = bytes;
        reserved[12] = 6;
        assert!(JournalHeader::decode(&reserved, h.file_len()).is_err());
        let zero = JournalHeader { slots: 0 }.encode();
        assert!(JournalHeader::decode(&zero, 64).is_err());
        assert!(JournalHeader::decode(&bytes[..10], h.file_len()).is_err());
    }

    #[test]
    fn key_hash_is_xxh3_64() {
        // The value every build must compute: clients and servers of different builds share
        // the journal. XXH3-64 of the empty input, seed 0, from the specification's vectors.
        assert_eq!(key_hash(""), 0x2D06_8005_38D3_94C2);
        assert_eq!(
            key_hash("video/abc/transcript"),
            key_hash("video/abc/transcript")
        );
        assert_ne!(key_hash("a"), key_hash("b"));
    }
}
