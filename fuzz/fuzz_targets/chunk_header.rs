//! `ChunkHeader::decode` on arbitrary bytes: never panics, and whatever it accepts re-encodes to
//! exactly the 64 bytes it was decoded from and decodes back to the same header.
#![no_main]

use libfuzzer_sys::fuzz_target;
use pipecache_format::ChunkHeader;
use pipecache_format::chunk::CHUNK_HEADER_LEN;

fuzz_target!(|data: &[u8]| {
    let Ok(header) = ChunkHeader::decode(data) else {
        return;
    };
    let encoded = header.encode();
    assert_eq!(
        encoded[..],
        data[..CHUNK_HEADER_LEN as usize],
        "re-encoded chunk header differs from its input"
    );
    assert_eq!(
        ChunkHeader::decode(&encoded).expect("re-encoded chunk header decodes"),
        header
    );
});
