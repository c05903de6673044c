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
