//! `FrameHeader::decode` on arbitrary bytes: never panics, and whatever it accepts re-encodes to
//! exactly the 64 bytes it was decoded from (so no two encodings mean the same header).
#![no_main]

use libfuzzer_sys::fuzz_target;
use pipecache_format::{FRAME_HEADER_LEN, FrameHeader};

fuzz_target!(|data: &[u8]| {
    let Ok(header) = FrameHeader::decode(data) else {
        return;
    };
    let encoded = header.encode();
    assert_eq!(
        encoded[..],
        data[..FRAME_HEADER_LEN],
        "re-encoded frame header differs from its input"
    );
    assert_eq!(
        FrameHeader::decode(&encoded).expect("re-encoded frame header decodes"),
        header
    );
});
