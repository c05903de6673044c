//! `decode_frame` (header + payload held in memory) on arbitrary bytes: never panics, never
//! allocates without bound, and a frame it accepts really carries the payload its header names.
#![no_main]

use libfuzzer_sys::fuzz_target;
use pipecache_format::{BlobHash, decode_frame};

fuzz_target!(|data: &[u8]| {
    let Ok((header, payload)) = decode_frame(data) else {
        return;
    };
    assert_eq!(
        BlobHash::of(&payload),
        header.hash,
        "accepted frame's payload does not hash to header.hash"
    );
    assert_eq!(
        payload.len() as u64,
        header.raw_len,
        "accepted frame's payload length != raw_len"
    );
});
