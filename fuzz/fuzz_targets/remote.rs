//! Bytes read back from a remote tier: records, pack indexes, Redis inline values, pack frames
//! fetched by ranged reads, and whole packs. The first byte picks the decoder. Decoding never
//! panics; accepted records survive encode -> decode unchanged; an accepted inline value
//! re-encodes to the same bytes.
#![no_main]

use libfuzzer_sys::fuzz_target;
use pipecache_format::record::Record;
use pipecache_format::remote::{
    PackIndex, RemoteRecord, decode_inline_value, decode_pack_frame, encode_inline_value,
    scan_pack,
};
use pipecache_format::{BlobHash, Codec};

fn round_trip<R: Record + PartialEq + std::fmt::Debug>(bytes: &[u8]) -> Option<R> {
    let record = R::decode(bytes).ok()?;
    let again = R::decode(&record.encode()).expect("re-encoded record decodes");
    assert_eq!(again, record, "{} changed across encode/decode", R::WHAT);
    Some(record)
}

fuzz_target!(|data: &[u8]| {
    let Some((&which, bytes)) = data.split_first() else {
        return;
    };
    match which % 5 {
        0 => {
            // Readers do range arithmetic on every accepted location: it must not overflow.
            if let Some(rec) = round_trip::<RemoteRecord>(bytes) {
                for at in rec.parts.iter().filter_map(|p| p.at) {
                    let r = at.frame_range();
                    assert!(r.start < r.end);
                }
            }
        }
        1 => {
            if let Some(index) = round_trip::<PackIndex>(bytes) {
                for e in index.blobs {
                    assert!(e.offset.checked_add(64 + e.stored_len).is_some());
                }
            }
        }
        2 => {
            if let Ok((record, parts)) = decode_inline_value(bytes) {
                assert_eq!(record.parts.len(), parts.len());
                for (p, raw) in record.parts.iter().zip(&parts) {
                    assert_eq!(BlobHash::of(raw), p.hash, "inline part failed its hash");
                }
                // Raw re-encoding matches byte for byte when every part was stored raw.
                let raw: Vec<(Codec, &[u8])> = parts.iter().map(|p| (Codec::Raw, &p[..])).collect();
                let again = encode_inline_value(&record, &raw);
                let (r2, p2) = decode_inline_value(&again).expect("re-encoded value decodes");
                assert_eq!((r2, p2), (record, parts));
            }
        }
        3 => {
            // The expected hash is the frame's own (bytes 8..40 of its header) when present.
            let expected = bytes
                .get(8..40)
                .and_then(|h| BlobHash::from_slice(h).ok())
                .unwrap_or(BlobHash([0; 32]));
            if let Ok(raw) = decode_pack_frame(bytes, expected) {
                assert_eq!(BlobHash::of(&raw), expected);
            }
        }
        _ => {
            if let Ok(entries) = scan_pack(bytes) {
                for e in entries {
                    assert!(e.offset + 64 + e.stored_len <= bytes.len() as u64);
                }
            }
        }
    }
});
