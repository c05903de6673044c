//! The CBOR index records, the push ledger (a CBOR file in the store directory) and the remote
//! blob table (a binary file there): the first byte picks the type, the rest is decoded. Decoding never panics, an accepted
//! record survives encode -> decode unchanged, and what a hand-written fast decoder
//! (`decode_canonical`) accepts, the generic serde path decodes to the same record.
#![no_main]

use std::fmt::Debug;

use libfuzzer_sys::fuzz_target;
use pipecache_format::blob_table::BlobTable;
use pipecache_format::record::{
    AccessRecord, ArtifactRecord, BlobRecord, ChunkRecord, Record, RecordFrame, StoreMeta,
    TombstoneFrame,
};
use pipecache_format::remote::PushLedger;

fn round_trip<R: Record + PartialEq + Debug>(bytes: &[u8]) {
    if let Some(fast) = R::decode_canonical(bytes) {
        let mut cursor = std::io::Cursor::new(bytes);
        let slow: R = ciborium::from_reader(&mut cursor)
            .unwrap_or_else(|e| panic!("{} fast path accepts what serde refuses: {e}", R::WHAT));
        assert_eq!(
            cursor.position(),
            bytes.len() as u64,
            "{} fast path ignores trailing bytes",
            R::WHAT
        );
        assert_eq!(fast, slow, "{} fast path and serde disagree", R::WHAT);
    }
    let Ok(record) = R::decode(bytes) else { return };
    let encoded = record.encode();
    let again = R::decode(&encoded).unwrap_or_else(|e| {
        panic!(
            "re-encoded {} does not decode: {e}; record {record:?}",
            R::WHAT
        )
    });
    assert_eq!(again, record, "{} changed across encode/decode", R::WHAT);
    assert_eq!(
        again.encode(),
        encoded,
        "{} encoding is not deterministic",
        R::WHAT
    );
}

fuzz_target!(|data: &[u8]| {
    let Some((&which, bytes)) = data.split_first() else {
        return;
    };
    match which % 9 {
        0 => round_trip::<ArtifactRecord>(bytes),
        1 => round_trip::<BlobRecord>(bytes),
        2 => round_trip::<ChunkRecord>(bytes),
        3 => round_trip::<AccessRecord>(bytes),
        4 => round_trip::<StoreMeta>(bytes),
        // Record and tombstone frames are read from chunk files by rebuild-index and compaction.
        5 => round_trip::<RecordFrame>(bytes),
        6 => round_trip::<TombstoneFrame>(bytes),
        7 => round_trip::<PushLedger>(bytes),
        // The remote blob table, read from the store directory by every uploading process.
        _ => {
            if let Ok(table) = BlobTable::decode(bytes) {
                let again = BlobTable::decode(&table.encode()).expect("re-encoded table decodes");
                assert_eq!(
                    again, table,
                    "remote blob table changed across encode/decode"
                );
                for e in &table.entries {
                    assert_eq!(table.find(&e.hash), Some(e), "a tabled blob is not found");
                }
            }
        }
    }
});
