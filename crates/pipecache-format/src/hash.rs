use std::fmt;

use serde::de::{self, Visitor};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::FormatError;

/// Blobs at least this large are hashed in parallel: below it, handing work to other
/// threads costs more than it saves (blake3's own advice is 128 KiB at the least).
pub const PARALLEL_HASH_MIN: usize = 1 << 20;

/// The name of a blob: the blake3-256 hash of its raw (uncompressed) bytes.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct BlobHash(pub [u8; 32]);

impl BlobHash {
    /// Hashes `bytes`; from [`PARALLEL_HASH_MIN`] bytes on, on every core (rayon's pool).
    pub fn of(bytes: &[u8]) -> Self {
        if bytes.len() >= PARALLEL_HASH_MIN {
            let mut hasher = blake3::Hasher::new();
            hasher.update_rayon(bytes);
            return Self(*hasher.finalize().as_bytes());
        }
        Self(*blake3::hash(bytes).as_bytes())
    }

    /// The 32 hash bytes.
    pub fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }

    /// Builds a hash from a 32-byte slice (for example a RocksDB key).
    pub fn from_slice(bytes: &[u8]) -> Result<Self, FormatError> {
        let arr: [u8; 32] = bytes.try_into().map_err(|_| {
            FormatError::corrupt(
                "blob hash",
                format!("expected 32 bytes, got {}", bytes.len()),
            )
        })?;
        Ok(Self(arr))
    }

    /// Lower-case hex, 64 characters.
    pub fn to_hex(&self) -> String {
        blake3::Hash::from_bytes(self.0).to_hex().to_string()
    }

    /// Parses 64 hex characters.
    pub fn from_hex(hex: &str) -> Result<Self, FormatError> {
        blake3::Hash::from_hex(hex)
            .map(|h| Self(*h.as_bytes()))
            .map_err(|e| FormatError::corrupt("blob hash", e.to_string()))
    }
}

/// A set of blob hashes for membership tests at millions of entries: one sorted `Vec` plus a
/// table of where each leading-bits bucket starts. blake3 spreads hashes evenly, so a
/// lookup reads one table slot and a bucket of ~2 hashes: two cache misses, where a binary
/// search over 3M hashes (96 MB) took ~22 (`verify` spent 29% of its time there). Costs 32
/// bytes per hash plus 4 bytes per ~2 hashes, against ~45 for a hash set. Hand-written:
/// sorted-array sets in crates.io search by comparison, not by the key's uniform bits.
#[derive(Clone, Debug, Default)]
pub struct BlobHashSet {
    hashes: Vec<BlobHash>,
    /// `starts[b]..starts[b + 1]` are the hashes whose first `bits` bits are `b`.
    starts: Vec<u32>,
    bits: u32,
}

impl BlobHashSet {
    /// Builds the set from `hashes`, in any order, duplicates allowed.
    pub fn new(mut hashes: Vec<BlobHash>) -> Self {
        hashes.sort_unstable();
        hashes.dedup();
        // ~2 hashes per bucket; at least one bucket, at most 2^26 (256 MiB of starts would
        // mean 128M hashes: beyond any store this serves).
        let bits = (hashes.len() / 2).max(1).ilog2().min(26);
        let buckets = 1usize << bits;
        let mut starts = Vec::with_capacity(buckets + 1);
        let mut at = 0usize;
        for bucket in 0..buckets {
            starts.push(u32::try_from(at).expect("fewer than 2^32 hashes"));
            while at < hashes.len() && Self::bucket_of(&hashes[at], bits) == bucket {
                at += 1;
            }
        }
        starts.push(u32::try_from(hashes.len()).expect("fewer than 2^32 hashes"));
        Self {
            hashes,
            starts,
            bits,
        }
    }

    fn bucket_of(hash: &BlobHash, bits: u32) -> usize {
        let lead = u64::from_be_bytes(hash.0[..8].try_into().expect("8 bytes"));
        // The leading `bits` bits (none for one bucket: a shift by 64 is no shift).
        lead.checked_shr(64 - bits).unwrap_or(0) as usize
    }

    /// Whether `hash` is in the set.
    pub fn contains(&self, hash: &BlobHash) -> bool {
        let bucket = Self::bucket_of(hash, self.bits);
        match (self.starts.get(bucket), self.starts.get(bucket + 1)) {
            (Some(&from), Some(&to)) => self.hashes[from as usize..to as usize].contains(hash),
            _ => false, // the empty default set has no table
        }
    }

    /// Number of distinct hashes.
    pub fn len(&self) -> usize {
        self.hashes.len()
    }

    /// Whether the set is empty.
    pub fn is_empty(&self) -> bool {
        self.hashes.is_empty()
    }
}

impl fmt::Debug for BlobHash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "BlobHash({})", &self.to_hex()[..16])
    }
}

impl fmt::Display for BlobHash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_hex())
    }
}

// Serialized as a CBOR byte string (34 bytes) rather than serde's default array of 32 integers
// (up to 64 bytes): the blobs CF holds one per blob and artifact records one per part.
impl Serialize for BlobHash {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_bytes(&self.0)
    }
}

impl<'de> Deserialize<'de> for BlobHash {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct HashVisitor;
        impl<'de> Visitor<'de> for HashVisitor {
            type Value = BlobHash;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("32 bytes of blake3 hash")
            }
            fn visit_bytes<E: de::Error>(self, v: &[u8]) -> Result<BlobHash, E> {
                let arr: [u8; 32] = v
                    .try_into()
                    .map_err(|_| E::invalid_length(v.len(), &self))?;
                Ok(BlobHash(arr))
            }
            fn visit_byte_buf<E: de::Error>(self, v: Vec<u8>) -> Result<BlobHash, E> {
                self.visit_bytes(&v)
            }
        }
        d.deserialize_bytes(HashVisitor)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn empty_and_tiny_sets() {
        let none = BlobHash::of(b"none");
        assert!(!BlobHashSet::default().contains(&none));
        assert!(!BlobHashSet::new(Vec::new()).contains(&none));
        let one = BlobHash::of(b"one");
        let set = BlobHashSet::new(vec![one, one]);
        assert_eq!(set.len(), 1);
        assert!(set.contains(&one) && !set.contains(&none));
        // Hashes at both ends of the bucket range.
        let (low, high) = (BlobHash([0; 32]), BlobHash([0xFF; 32]));
        let set = BlobHashSet::new(
            (0..100u32)
                .map(|i| BlobHash::of(&i.to_le_bytes()))
                .chain([low, high])
                .collect(),
        );
        assert!(set.contains(&low) && set.contains(&high));
    }

    proptest! {
        #[test]
        fn membership_matches_a_btreeset(
            members in proptest::collection::vec(any::<[u8; 32]>(), 0..2000),
            probes in proptest::collection::vec(any::<[u8; 32]>(), 0..200),
        ) {
            let model: std::collections::BTreeSet<BlobHash> =
                members.iter().copied().map(BlobHash).collect();
            let set = BlobHashSet::new(members.iter().copied().map(BlobHash).collect());
            prop_assert_eq!(set.len(), model.len());
            for h in &model {
                prop_assert!(set.contains(h));
            }
            for p in probes {
                prop_assert_eq!(set.contains(&BlobHash(p)), model.contains(&BlobHash(p)));
            }
        }
    }
}
