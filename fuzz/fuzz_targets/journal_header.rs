//! `JournalHeader::decode` on arbitrary bytes and file lengths (the change journal is read
//! from the store directory by every client of a server): never panics, and whatever it
//! accepts names a ring the file holds whole and re-encodes to the same fixed bytes.
#![no_main]

use libfuzzer_sys::fuzz_target;
use pipecache_format::journal::{GENERATION_AT, JournalHeader};

fuzz_target!(|input: (u64, &[u8])| {
    let (file_len, data) = input;
    let Ok(header) = JournalHeader::decode(data, file_len) else {
        return;
    };
    assert_eq!(header.file_len(), file_len, "accepted a file of the wrong length");
    // The fixed bytes (magic, version, ring size) round-trip; the counters after them are
    // live words, not decoded.
    assert_eq!(header.encode()[..GENERATION_AT], data[..GENERATION_AT]);
});
