//! `Codec::decode` on an arbitrary stored payload. Input layout: byte 0 picks the codec (modulo
//! 3: raw, zstd, LZ4), bytes 1..5 are raw_len (u32 LE, wrapped into 0..=1 MiB so one execution
//! never asks for more), the rest is the stored payload. Decoding never panics, and what it
//! accepts has exactly raw_len bytes.
#![no_main]

use libfuzzer_sys::fuzz_target;
use pipecache_format::Codec;

const RAW_LEN_CAP: u32 = 1 << 20;

fuzz_target!(|data: &[u8]| {
    let Some((&which, rest)) = data.split_first() else {
        return;
    };
    let Some((len_bytes, stored)) = rest.split_first_chunk::<4>() else {
        return;
    };
    let codec = match which % 3 {
        0 => Codec::Raw,
        1 => Codec::Zstd,
        _ => Codec::Lz4,
    };
    let raw_len = u64::from(u32::from_le_bytes(*len_bytes) % (RAW_LEN_CAP + 1));
    let Ok(out) = codec.decode(stored, raw_len) else {
        assert!(
            codec.decode_vec(stored.to_vec(), raw_len).is_err(),
            "decode_vec accepts what decode rejects"
        );
        return;
    };
    assert_eq!(
        out.len() as u64,
        raw_len,
        "{codec:?} output length != raw_len"
    );
    if codec == Codec::Raw {
        assert_eq!(out, stored);
    }
    assert_eq!(
        codec
            .decode_vec(stored.to_vec(), raw_len)
            .expect("decode_vec accepts what decode accepts"),
        out
    );
});
