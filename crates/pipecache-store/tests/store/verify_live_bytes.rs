//! `verify` checks every chunk's live-byte count (what compaction decides from) against the
//! frames that live artifacts and blobs hold in it, and `repair` recounts it. The count is
//! altered in the index of a closed store; verify names the chunk, repair restores it.

use pipecache_format::record::ChunkRecord;
use pipecache_index::{Index, IndexOptions};
use pipecache_store::{Artifact, StoreOptions};
use pipecache_test_support::{TempStore, manual_gc_options, random_bytes};

fn options() -> StoreOptions {
    manual_gc_options(16 * 1024)
}

#[tokio::test]
async fn a_wrong_live_byte_count_is_reported_and_repaired() {
    let mut ts = TempStore::new(options()).await;
    for i in 0..8u64 {
        let a = Artifact::single(random_bytes(i, 5_000));
        ts.store().put(&format!("k{i}"), a).await.unwrap();
    }
    assert!(ts.store().delete("k2").await.unwrap());
    let clean = ts.store().verify().await.unwrap();
    assert!(clean.is_clean(), "{clean:?}");
    ts.close().await;

    let (chunk, recorded) = {
        let (index, writer) =
            Index::open(&ts.path().join("index"), &IndexOptions::default()).unwrap();
        let (id, rec) = index.chunks().unwrap()[0];
        let altered = ChunkRecord {
            live_bytes: rec.live_bytes + 4_096,
            ..rec
        };
        let mut batch = writer.batch();
        batch.put_chunk(id, &altered);
        writer.commit(batch, true).unwrap();
        (id, rec.live_bytes)
    };

    ts.reopen().await;
    let report = ts.store().verify().await.unwrap();
    assert!(!report.is_clean());
    assert_eq!(report.live_bytes_mismatches.len(), 1, "{report:?}");
    let m = &report.live_bytes_mismatches[0];
    assert_eq!(
        (m.chunk, m.recorded, m.actual),
        (chunk, recorded + 4_096, recorded)
    );
    let repaired = ts.store().repair().await.unwrap();
    assert!(repaired.after.is_clean(), "{repaired:?}");
    assert!(repaired.dropped_keys.is_empty());
    for i in [0u64, 1, 3, 7] {
        assert_eq!(
            ts.store().get(&format!("k{i}")).await.unwrap(),
            Some(Artifact::single(random_bytes(i, 5_000)))
        );
    }
}
