//! Per-blob codec: raw, or zstd or LZ4 when compression pays.
//!
//! zstd shrinks JSON ~4x but decodes at ~1 GB/s here (~50 us of a 50 KB get); LZ4 shrinks it
//! ~2x and decodes several times faster, so documents every stage reads (transcripts,
//! descriptions) can trade disk for read latency. Both are C libraries behind well-kept
//! crates (`zstd`, `lz4`, the latter already built for RocksDB's blocks).

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
    /// One LZ4 block (no frame, no size prefix: the frame header holds the raw length).
    Lz4 = 2,
}

/// Which compressor a [`CompressionPolicy`] tries.
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize,
)]
#[serde(rename_all = "lowercase")]
pub enum Algorithm {
    /// zstd at the policy's level: the better ratio.
    #[default]
    Zstd,
    /// LZ4 (its default acceleration; the policy's level is not used): the faster decode.
    Lz4,
}

impl Algorithm {
    /// Lower-case name, as written in configs and headers.
    pub fn name(self) -> &'static str {
        match self {
            Self::Zstd => "zstd",
            Self::Lz4 => "lz4",
        }
    }

    /// Parses [`Algorithm::name`]'s output.
    pub fn from_name(name: &str) -> Option<Self> {
        match name {
            "zstd" => Some(Self::Zstd),
            "lz4" => Some(Self::Lz4),
            _ => None,
        }
    }

    fn codec(self) -> Codec {
        match self {
            Self::Zstd => Codec::Zstd,
            Self::Lz4 => Codec::Lz4,
        }
    }
}

impl Codec {
    /// Decodes the codec byte of a frame header.
    pub fn from_byte(b: u8) -> Result<Self, FormatError> {
        match b {
            0 => Ok(Self::Raw),
            1 => Ok(Self::Zstd),
            2 => Ok(Self::Lz4),
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
            Self::Lz4 => "lz4",
        }
    }

    /// The oldest frame format version that knows this codec: frames are written with it, so
    /// a store holding no LZ4 frames stays readable by builds from before LZ4, and a build
    /// that does not know a codec refuses its frame as too new rather than corrupt.
    pub fn min_frame_version(self) -> u8 {
        match self {
            Self::Raw | Self::Zstd => 1,
            Self::Lz4 => 2,
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
            Self::Lz4 => decode_lz4(stored, raw_len),
        }
    }
}

/// The most an LZ4 block can expand: a match token covers at most 255 bytes per input byte.
/// A header claiming more than this for its payload is refused before anything is allocated.
const LZ4_MAX_EXPANSION: u64 = 255;

fn decode_lz4(stored: &[u8], raw_len: u64) -> Result<Vec<u8>, FormatError> {
    let corrupt = |detail: String| FormatError::corrupt("lz4 payload", detail);
    if raw_len > (stored.len() as u64).saturating_mul(LZ4_MAX_EXPANSION) + 16 {
        return Err(corrupt(format!(
            "{} stored bytes cannot decode to the {raw_len} the header says",
            stored.len()
        )));
    }
    let expected = i32::try_from(raw_len).map_err(|_| corrupt(format!("raw length {raw_len}")))?;
    let mut out = vec![0u8; raw_len as usize];
    let n = lz4::block::decompress_to_buffer(stored, Some(expected), &mut out)
        .map_err(|e| corrupt(e.to_string()))?;
    if n as u64 != raw_len {
        return Err(corrupt(format!(
            "decompressed to {n} bytes, header says {raw_len}"
        )));
    }
    Ok(out)
}

/// LZ4's largest input (`LZ4_MAX_INPUT_SIZE`); larger blobs fall back to zstd.
const LZ4_MAX_INPUT: usize = 0x7E00_0000;

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

/// When to pay for compression, and which.
///
/// Compression is tried on a prefix sample first, so incompressible data (JPEG frames, the bulk
/// of a keyframe set) costs one small trial instead of a full compression pass.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct CompressionPolicy {
    /// False stores every blob raw.
    pub enabled: bool,
    /// The compressor tried.
    pub algorithm: Algorithm,
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
        algorithm: Algorithm::Zstd,
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
        let algorithm = match self.algorithm {
            Algorithm::Lz4 if raw.len() > LZ4_MAX_INPUT => Algorithm::Zstd,
            a => a,
        };
        let compress = |data: &[u8], what: &'static str| {
            match algorithm {
                Algorithm::Zstd => compress(data, self.level),
                Algorithm::Lz4 => lz4::block::compress(data, None, false),
            }
            .map_err(|e| FormatError::Encode {
                what,
                detail: e.to_string(),
            })
        };
        if raw.len() > 4 * SAMPLE_LEN {
            let sample = compress(&raw[..SAMPLE_LEN], "compression sample")?;
            if (sample.len() as f64) > (SAMPLE_LEN as f64) * self.max_ratio {
                return Ok((Codec::Raw, None));
            }
        }
        let packed = compress(raw, "compressed payload")?;
        if (packed.len() as f64) <= (raw.len() as f64) * self.max_ratio {
            Ok((algorithm.codec(), Some(packed)))
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

    /// `len` bytes of xorshift noise from `seed`: nothing compresses it.
    fn noise(seed: u64, len: usize) -> Vec<u8> {
        let mut x = seed;
        (0..len)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                x as u8
            })
            .collect()
    }

    #[test]
    fn incompressible_data_stays_raw() {
        let raw = noise(0x9E37_79B9_7F4A_7C15, 100_000);
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

    fn lz4_policy() -> CompressionPolicy {
        CompressionPolicy {
            algorithm: Algorithm::Lz4,
            ..CompressionPolicy::DEFAULT
        }
    }

    #[test]
    fn lz4_policy_compresses_documents_and_round_trips() {
        let raw: Vec<u8> = (0..20_000)
            .flat_map(|i| format!("{{\"start\":{i},\"text\":\"hello world\"}},").into_bytes())
            .collect();
        let (codec, stored) = lz4_policy().encode(&raw).unwrap();
        assert_eq!(codec, Codec::Lz4);
        let stored = stored.unwrap();
        assert!(stored.len() * 2 < raw.len());
        assert_eq!(codec.decode(&stored, raw.len() as u64).unwrap(), raw);
        assert_eq!(
            codec.decode_vec(stored.clone(), raw.len() as u64).unwrap(),
            raw
        );
    }

    #[test]
    fn lz4_policy_keeps_incompressible_and_small_blobs_raw() {
        let noise = noise(0x2545_F491_4F6C_DD1D, 100_000);
        assert_eq!(lz4_policy().encode(&noise).unwrap(), (Codec::Raw, None));
        assert_eq!(
            lz4_policy().encode(&[0u8; 100]).unwrap(),
            (Codec::Raw, None)
        );
    }

    #[test]
    fn lz4_decode_rejects_wrong_length_garbage_and_impossible_claims() {
        let raw = vec![7u8; 10_000];
        let packed = lz4::block::compress(&raw, None, false).unwrap();
        assert_eq!(Codec::Lz4.decode(&packed, 10_000).unwrap(), raw);
        assert!(Codec::Lz4.decode(&packed, 9_999).is_err());
        assert!(Codec::Lz4.decode(&packed, 10_001).is_err());
        assert!(Codec::Lz4.decode(b"\xff\xff\xff\xff not lz4", 100).is_err());
        // 8 bytes cannot expand to 4 GiB: refused before allocating (as for zstd above).
        let err = Codec::Lz4
            .decode(b"<g3hnotz", crate::MAX_BLOB_LEN)
            .unwrap_err();
        assert!(err.is_corruption(), "{err}");
        assert_eq!(Codec::from_byte(2).unwrap(), Codec::Lz4);
    }

    #[test]
    fn algorithm_names_round_trip() {
        for a in [Algorithm::Zstd, Algorithm::Lz4] {
            assert_eq!(Algorithm::from_name(a.name()), Some(a));
        }
        assert_eq!(Algorithm::from_name("gzip"), None);
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
