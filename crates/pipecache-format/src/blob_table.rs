//! The remote blob table: a pack tier's index objects as seen from one machine, kept in the
//! store directory (docs/format.md, "Remote blob table"), so a process that uploads to the
//! tier reads only the index objects that appeared since, instead of every one of them
//! (242 objects and 3M blob locations for a 3M-blob remote).
//!
//! Index objects are named by the blake3 of their bytes, so what the table says of a name
//! never goes stale; a name the remote no longer lists is ignored by readers.
//!
//! Binary rather than CBOR: the table holds millions of fixed-width entries, read in one pass
//! and searched in place by binary search (CBOR decoding of the same entries was a sixth of
//! a push's time). Whole-file blake3 trailer; every field is checked on decode.

use crate::remote::check_frame_location;
use crate::{BlobHash, FormatError};

const MAGIC: &[u8; 8] = b"PCBTAB01";
const WHAT: &str = "remote blob table";
/// Bytes per entry: hash, index ordinal, stored length, offset.
pub const ENTRY_LEN: usize = 48;
const TRAILER_LEN: usize = 32;

/// One index object of the remote.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TableIndex {
    /// The object's name (`index/<hex>`).
    pub name: String,
    /// The pack it describes; `None` for an index of keys only.
    pub pack: Option<BlobHash>,
    /// When its batch started, unix ms.
    pub created_ms: u64,
}

/// Where one blob is: in the pack of `indexes[index]`, at `offset`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TableEntry {
    /// blake3 of the blob's raw bytes.
    pub hash: BlobHash,
    /// Ordinal of the index object naming it (its pack).
    pub index: u32,
    /// Stored payload length (blobs of 4 GiB or more are not tabled).
    pub stored_len: u32,
    /// Offset of the blob's frame header in the pack.
    pub offset: u64,
}

/// The index objects of one remote, and the blobs their packs hold, sorted by hash with no
/// hash twice.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct BlobTable {
    /// The remote's target (a table naming another is not used).
    pub remote: String,
    /// Index objects seen, with or without tabled blobs.
    pub indexes: Vec<TableIndex>,
    /// Strictly increasing by hash; every `index` names an index with a pack.
    pub entries: Vec<TableEntry>,
}

impl BlobTable {
    /// The entry of `hash`, if tabled.
    pub fn find(&self, hash: &BlobHash) -> Option<&TableEntry> {
        self.entries
            .binary_search_by(|e| e.hash.cmp(hash))
            .ok()
            .map(|i| &self.entries[i])
    }

    /// The bytes of the table file.
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(
            64 + self.remote.len()
                + self.indexes.len() * 128
                + self.entries.len() * ENTRY_LEN
                + TRAILER_LEN,
        );
        out.extend_from_slice(MAGIC);
        out.extend_from_slice(&(self.remote.len() as u32).to_le_bytes());
        out.extend_from_slice(self.remote.as_bytes());
        out.extend_from_slice(&(self.indexes.len() as u32).to_le_bytes());
        for idx in &self.indexes {
            out.extend_from_slice(&(idx.name.len() as u16).to_le_bytes());
            out.extend_from_slice(idx.name.as_bytes());
            out.extend_from_slice(&idx.created_ms.to_le_bytes());
            out.push(u8::from(idx.pack.is_some()));
            out.extend_from_slice(&idx.pack.map_or([0; 32], |p| p.0));
        }
        out.extend_from_slice(&(self.entries.len() as u64).to_le_bytes());
        for e in &self.entries {
            out.extend_from_slice(&e.hash.0);
            out.extend_from_slice(&e.index.to_le_bytes());
            out.extend_from_slice(&e.stored_len.to_le_bytes());
            out.extend_from_slice(&e.offset.to_le_bytes());
        }
        let sum = BlobHash::of(&out);
        out.extend_from_slice(&sum.0);
        out
    }

    /// Decodes a table file; any damage is an error, never a partial table.
    pub fn decode(bytes: &[u8]) -> Result<Self, FormatError> {
        let corrupt = |detail: String| FormatError::corrupt(WHAT, detail);
        if bytes.len() < MAGIC.len() + TRAILER_LEN {
            return Err(FormatError::Truncated {
                what: WHAT,
                needed: (MAGIC.len() + TRAILER_LEN) as u64,
                available: bytes.len() as u64,
            });
        }
        if &bytes[..MAGIC.len()] != MAGIC {
            return Err(corrupt("bad magic".into()));
        }
        let (body, trailer) = bytes.split_at(bytes.len() - TRAILER_LEN);
        if BlobHash::of(body).0 != trailer {
            return Err(corrupt("checksum mismatch".into()));
        }
        let mut r = Reader {
            rest: &body[MAGIC.len()..],
        };
        let remote_len = r.u32()? as usize;
        let remote = r.text(remote_len)?;
        let index_count = r.u32()? as usize;
        // Each index takes at least 43 bytes: a count beyond that is damage, not a reason
        // to allocate.
        if index_count > r.rest.len() / 43 {
            return Err(corrupt(format!(
                "{index_count} indexes in {} bytes",
                r.rest.len()
            )));
        }
        let mut indexes = Vec::with_capacity(index_count);
        for _ in 0..index_count {
            let name_len = r.u16()? as usize;
            let name = r.text(name_len)?;
            let created_ms = r.u64()?;
            let has_pack = r.take(1)?[0];
            let pack = BlobHash::from_slice(r.take(32)?)?;
            let pack = match has_pack {
                0 if pack.0 == [0; 32] => None,
                1 => Some(pack),
                _ => return Err(corrupt(format!("index {name}: bad pack field"))),
            };
            indexes.push(TableIndex {
                name,
                pack,
                created_ms,
            });
        }
        let entry_count = r.u64()?;
        if entry_count.checked_mul(ENTRY_LEN as u64) != Some(r.rest.len() as u64) {
            return Err(corrupt(format!(
                "{entry_count} entries in {} bytes",
                r.rest.len()
            )));
        }
        let mut entries: Vec<TableEntry> = Vec::with_capacity(entry_count as usize);
        for raw in r.rest.chunks_exact(ENTRY_LEN) {
            let word = |at: usize| u32::from_le_bytes(raw[at..at + 4].try_into().expect("4"));
            let e = TableEntry {
                hash: BlobHash::from_slice(&raw[..32])?,
                index: word(32),
                stored_len: word(36),
                offset: u64::from_le_bytes(raw[40..48].try_into().expect("8")),
            };
            if entries.last().is_some_and(|prev| prev.hash >= e.hash) {
                return Err(corrupt("entries not strictly sorted by hash".into()));
            }
            if indexes
                .get(e.index as usize)
                .is_none_or(|i| i.pack.is_none())
            {
                return Err(corrupt(format!(
                    "entry names index {} without a pack",
                    e.index
                )));
            }
            check_frame_location(e.offset, u64::from(e.stored_len))?;
            entries.push(e);
        }
        Ok(Self {
            remote,
            indexes,
            entries,
        })
    }
}

/// Fields read front to back; each read fails on too few bytes.
struct Reader<'a> {
    rest: &'a [u8],
}

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], FormatError> {
        if self.rest.len() < n {
            return Err(FormatError::Truncated {
                what: WHAT,
                needed: n as u64,
                available: self.rest.len() as u64,
            });
        }
        let (head, rest) = self.rest.split_at(n);
        self.rest = rest;
        Ok(head)
    }

    fn u16(&mut self) -> Result<u16, FormatError> {
        Ok(u16::from_le_bytes(self.take(2)?.try_into().expect("2")))
    }

    fn u32(&mut self) -> Result<u32, FormatError> {
        Ok(u32::from_le_bytes(self.take(4)?.try_into().expect("4")))
    }

    fn u64(&mut self) -> Result<u64, FormatError> {
        Ok(u64::from_le_bytes(self.take(8)?.try_into().expect("8")))
    }

    fn text(&mut self, n: usize) -> Result<String, FormatError> {
        let raw = self.take(n)?;
        String::from_utf8(raw.to_vec())
            .map_err(|_| FormatError::corrupt(WHAT, "a name is not UTF-8"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> BlobTable {
        let mut entries: Vec<TableEntry> = (0..50u32)
            .map(|i| TableEntry {
                hash: BlobHash::of(&i.to_le_bytes()),
                index: i % 2,
                stored_len: 100 + i,
                offset: 64 + u64::from(i) * 1000,
            })
            .collect();
        entries.sort_by_key(|e| e.hash);
        BlobTable {
            remote: "fs:/remote".into(),
            indexes: vec![
                TableIndex {
                    name: "index/a".into(),
                    pack: Some(BlobHash::of(b"pack a")),
                    created_ms: 7,
                },
                TableIndex {
                    name: "index/b".into(),
                    pack: Some(BlobHash::of(b"pack b")),
                    created_ms: 9,
                },
                TableIndex {
                    name: "index/keys".into(),
                    pack: None,
                    created_ms: 11,
                },
            ],
            entries,
        }
    }

    #[test]
    fn a_table_round_trips_and_finds_every_entry() {
        let table = sample();
        let back = BlobTable::decode(&table.encode()).unwrap();
        assert_eq!(back, table);
        for e in &table.entries {
            assert_eq!(back.find(&e.hash), Some(e));
        }
        assert_eq!(back.find(&BlobHash::of(b"absent")), None);
    }

    #[test]
    fn any_flipped_or_missing_byte_is_refused() {
        let bytes = sample().encode();
        for at in (0..bytes.len()).step_by(7) {
            let mut bad = bytes.clone();
            bad[at] ^= 0x20;
            assert!(BlobTable::decode(&bad).is_err(), "flip at {at} accepted");
        }
        for len in [0, 8, 39, bytes.len() - 1] {
            assert!(
                BlobTable::decode(&bytes[..len]).is_err(),
                "{len} bytes accepted"
            );
        }
    }

    #[test]
    fn unsorted_entries_or_dangling_ordinals_are_refused_even_with_a_valid_checksum() {
        let mut unsorted = sample();
        unsorted.entries.swap(0, 1);
        assert!(BlobTable::decode(&unsorted.encode()).is_err());
        let mut dangling = sample();
        dangling.entries[0].index = 2; // the index without a pack
        assert!(BlobTable::decode(&dangling.encode()).is_err());
        dangling.entries[0].index = 3;
        assert!(BlobTable::decode(&dangling.encode()).is_err());
    }
}
