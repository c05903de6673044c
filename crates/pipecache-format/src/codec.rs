//! Per-blob codec: raw, or zstd when compression pays.

use std::cell::RefCell;

use crate::{FormatError, MAX_BLOB_LEN};

/// How a blob's payload is stored in its frame. The value is the frame's codec byte.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[repr(u8)]
pub enum Codec {
    /// Stored as is (JPEG and PNG frames, already-compressed data).
    Raw = 0,
    /// A single zstd frame.
    Zstd = 1,
}

impl Codec {
    /// Decodes the codec byte of a frame header.
    pub fn from_byte(b: u8) -> Result<Self, FormatError> {
        match b {
            0 => Ok(Self::Raw),
            1 => Ok(Self::Zstd),
            other => Err(FormatError::corrupt(
                "codec",
                format!("unknown codec byte {other}"),
            )),
        }
    }

    /// Short lower-case name, as shown in reports.
    pub fn name(self) -> &'static str {
        match self {
            Self::Raw => "raw",
            Self::Zstd => "zstd",
        }
    }

    /// Like [`Codec::decode`] but takes ownership, so a raw payload is returned without a copy
    /// (the 10 MB read path depends on that).
    pub fn decode_vec(self, stored: Vec<u8>, raw_len: u64) -> Result<Vec<u8>, FormatError> {
        match self {
            Self::Raw if stored.len() as u64 == raw_len => Ok(stored),
            _ => self.decode(&stored, raw_len),
        }
    }

    /// Turns a stored payload back into the raw bytes; `raw_len` comes from the frame header and
    /// bounds the output, so a corrupt payload cannot decompress into an unbounded allocation.
    pub fn decode(self, stored: &[u8], raw_len: u64) -> Result<Vec<u8>, FormatError> {
        if raw_len > MAX_BLOB_LEN {
            return Err(FormatError::corrupt(
                "payload",
                format!("raw length {raw_len} too large"),
            ));
        }
        match self {
            Self::Raw => {
                if stored.len() as u64 != raw_len {
                    return Err(FormatError::corrupt(
                        "payload",
                        format!(
                            "raw payload is {} bytes, header says {raw_len}",
                            stored.len()
                        ),
                    ));
                }
                Ok(stored.to_vec())
            }
            Self::Zstd => {
                let out = if raw_len <= BULK_DECODE_MAX {
                    // Small blobs (transcripts, descriptions): one-shot decode into a buffer of
                    // exactly raw_len. Pre-allocating is harmless at this size.
                    with_decompressor(|d| d.decompress(stored, raw_len as usize))
                        .map_err(|e| FormatError::corrupt("zstd payload", e.to_string()))?
                } else {
                    // Stream, never `bulk::decompress(stored, raw_len)`: that pre-allocates
                    // `raw_len`, so a checksummed header claiming 4 GiB would allocate 4 GiB for
                    // an 8-byte payload (found by the `frame` fuzz target). Here memory grows with
                    // real output only, capped at raw_len + 1 to detect overlong frames.
                    use std::io::Read;
                    let cap = (raw_len as usize).min(stored.len().saturating_mul(8) + 4096);
                    let mut out = Vec::with_capacity(cap);
                    zstd::stream::read::Decoder::with_buffer(stored)
                        .map_err(|e| FormatError::corrupt("zstd payload", e.to_string()))?
                        .take(raw_len + 1)
                        .read_to_end(&mut out)
                        .map_err(|e| FormatError::corrupt("zstd payload", e.to_string()))?;
                    out
                };
                if out.len() as u64 != raw_len {
                    return Err(FormatError::corrupt(
                        "zstd payload",
                        format!("decompressed to {} bytes, header says {raw_len}", out.len()),
                    ));
                }
                Ok(out)
            }
        }
    }
}

thread_local! {
    // One zstd context per thread, reused: creating and freeing a context per 50 KB blob cost
    // ~15% of the encode and decode time (measured on this machine's 2 cores).
    static DECOMPRESSOR: RefCell<Option<zstd::bulk::Decompressor<'static>>> =
        const { RefCell::new(None) };
    static COMPRESSOR: RefCell<Option<(i32, zstd::bulk::Compressor<'static>)>> =
        const { RefCell::new(None) };
}

fn with_decompressor<T>(
    f: impl FnOnce(&mut zstd::bulk::Decompressor<'static>) -> std::io::Result<T>,
) -> std::io::Result<T> {
    DECOMPRESSOR.with(|cell| {
        let mut slot = cell.borrow_mut();
        if slot.is_none() {
            *slot = Some(zstd::bulk::Decompressor::new()?);
        }
        f(slot.as_mut().expect("set above"))
    })
}

/// zstd of `raw` at `level` with this thread's reused context.
fn compress(raw: &[u8], level: i32) -> std::io::Result<Vec<u8>> {
    COMPRESSOR.with(|cell| {
        let mut slot = cell.borrow_mut();
        match slot.as_mut() {
            None => *slot = Some((level, zstd::bulk::Compressor::new(level)?)),
            // Kinds with different levels alternate on one thread: keep the context.
            Some((l, c)) if *l != level => {
                c.set_compression_level(level)?;
                *l = level;
            }
            Some(_) => {}
        }
        slot.as_mut().expect("set above").1.compress(raw)
    })
}

/// Largest raw length decoded with a one-shot, pre-allocated zstd call; above it decoding
/// streams, so memory follows real output rather than a (possibly corrupt) header's claim.
const BULK_DECODE_MAX: u64 = 16 << 20;

/// When to pay for zstd.
///
/// Compression is tried on a prefix sample first, so incompressible data (JPEG frames, the bulk
/// of a keyframe set) costs one small trial instead of a full compression pass.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct CompressionPolicy {
    /// False stores every blob raw.
    pub enabled: bool,
    /// zstd level (1..=19). Level 1-3 gives ~4x on JSON transcripts at ~1 GB/s.
    pub level: i32,
    /// Keep the zstd form only when `stored <= raw * max_ratio` (0.9 = must save at least 10%).
    pub max_ratio: f64,
    /// Blobs smaller than this are stored raw: the frame header dominates anyway.
    pub min_size: usize,
}

impl CompressionPolicy {
    /// The default policy (a `const`, so per-kind policies can be built from it).
    pub const DEFAULT: Self = Self {
        enabled: true,
        level: 3,
        max_ratio: 0.9,
        min_size: 512,
    };
}

impl Default for CompressionPolicy {
    fn default() -> Self {
        Self::DEFAULT
    }
}

/// Size of the prefix sample compressed to decide whether a large blob is worth compressing.
const SAMPLE_LEN: usize = 16 * 1024;

impl CompressionPolicy {
    /// Encodes `raw` under this policy and returns the codec chosen and the stored bytes
    /// (`None` means "store `raw` itself", which avoids a copy).
    pub fn encode(&self, raw: &[u8]) -> Result<(Codec, Option<Vec<u8>>), FormatError> {
        if !self.enabled || raw.len() < self.min_size {
            return Ok((Codec::Raw, None));
        }
        if raw.len() > 4 * SAMPLE_LEN {
            let sample =
                compress(&raw[..SAMPLE_LEN], self.level).map_err(|e| FormatError::Encode {
                    what: "zstd sample",
                    detail: e.to_string(),
                })?;
            if (sample.len() as f64) > (SAMPLE_LEN as f64) * self.max_ratio {
                return Ok((Codec::Raw, None));
            }
        }
        let packed = compress(raw, self.level).map_err(|e| FormatError::Encode {
            what: "zstd payload",
            detail: e.to_string(),
        })?;
        if (packed.len() as f64) <= (raw.len() as f64) * self.max_ratio {
            Ok((Codec::Zstd, Some(packed)))
        } else {
            Ok((Codec::Raw, None))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_like_data_is_compressed_and_round_trips() {
        let raw: Vec<u8> = (0..20_000)
            .flat_map(|i| format!("{{\"start\":{i},\"text\":\"hello world\"}},").into_bytes())
            .collect();
        let (codec, stored) = CompressionPolicy::default().encode(&raw).unwrap();
        assert_eq!(codec, Codec::Zstd);
        let stored = stored.unwrap();
        assert!(stored.len() * 4 < raw.len());
        assert_eq!(codec.decode(&stored, raw.len() as u64).unwrap(), raw);
    }

    #[test]
    fn the_reused_context_follows_level_changes() {
        // Two kinds with different levels on one thread share the context: each blob must
        // still be compressed at its own level (same bytes as a fresh one-shot call).
        let raw: Vec<u8> = (0..5_000)
            .flat_map(|i| format!("{{\"t\":{},\"w\":\"frame {}\"}},", i * 7, i % 13).into_bytes())
            .collect();
        let (fast, best) = (
            zstd::bulk::compress(&raw, 1).unwrap(),
            zstd::bulk::compress(&raw, 19).unwrap(),
        );
        assert_ne!(
            fast, best,
            "the levels must differ for this test to mean anything"
        );
        for _ in 0..2 {
            assert_eq!(compress(&raw, 1).unwrap(), fast);
            assert_eq!(compress(&raw, 19).unwrap(), best);
        }
    }

    #[test]
    fn incompressible_data_stays_raw() {
        let mut x = 0x9E37_79B9_7F4A_7C15u64;
        let raw: Vec<u8> = (0..100_000)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                x as u8
            })
            .collect();
        let (codec, stored) = CompressionPolicy::default().encode(&raw).unwrap();
        assert_eq!(codec, Codec::Raw);
        assert!(stored.is_none());
    }

    #[test]
    fn huge_declared_length_does_not_allocate_it() {
        // 8 bytes of garbage claiming to decode to 4 GiB: an error, quickly, without a 4 GiB
        // allocation (the fuzz-found regression).
        assert!(
            Codec::Zstd
                .decode(b"<g3hnotz", crate::MAX_BLOB_LEN)
                .is_err()
        );
        let packed = zstd::bulk::compress(&[1u8; 1000], 3).unwrap();
        let err = Codec::Zstd
            .decode(&packed, crate::MAX_BLOB_LEN)
            .unwrap_err();
        assert!(err.to_string().contains("header says"), "{err}");
    }

    #[test]
    fn disabled_policy_never_compresses() {
        let raw = vec![0u8; 10_000];
        let policy = CompressionPolicy {
            enabled: false,
            ..Default::default()
        };
        assert_eq!(policy.encode(&raw).unwrap().0, Codec::Raw);
    }

    #[test]
    fn zstd_decode_rejects_wrong_length_and_garbage() {
        let raw = vec![7u8; 10_000];
        let packed = zstd::bulk::compress(&raw, 3).unwrap();
        assert!(Codec::Zstd.decode(&packed, 9_999).is_err());
        assert!(Codec::Zstd.decode(b"not zstd at all", 100).is_err());
        assert!(Codec::Raw.decode(b"abc", 4).is_err());
        assert!(Codec::from_byte(9).is_err());
    }
}
