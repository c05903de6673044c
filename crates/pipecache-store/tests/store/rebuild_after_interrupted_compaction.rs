//! A compaction interrupted partway through a chunk (a damaged frame stops it after earlier
//! batches moved blobs) must not leave a stale artifact record behind: once that key is
//! deleted and its tombstone compacted away, `rebuild-index` would otherwise bring it back.
//! Records move only with a chunk's last batch, so the chunk keeps the current record and
//! the tombstone that shadows it survives compaction.

use pipecache_format::{ChunkScanner, FrameKind};
use pipecache_store::{Artifact, ManualClock, Store, StoreOptions};
use pipecache_test_support::{
    TempStore, chunk_files, chunk_id, flip_byte, lifecycle_options, random_bytes,
};

fn key(i: u64) -> String {
    format!("clip:{i}:embeddings")
}

fn artifact(i: u64) -> Artifact {
    Artifact::single(random_bytes(i, 20_000))
}

fn options(clock: std::sync::Arc<ManualClock>) -> StoreOptions {
    StoreOptions {
        compact_threshold: 0.9,
        // One frame per batch: every chunk compacts in many batches.
        compact_batch_bytes: 1,
        default_ttl: None,
        ..lifecycle_options(64 << 10, clock)
    }
}

#[tokio::test]
async fn a_key_deleted_after_an_interrupted_compaction_stays_deleted_after_rebuild() {
    let clock = ManualClock::new(1_700_000_000_000);
    let mut ts = TempStore::new(options(clock.clone())).await;
    let store = ts.store().clone();
    // Three 20 KB artifacts per 64 KiB chunk: A = {0, 1, 2}, B = {3, 4, 5}.
    for i in 0..6 {
        store.put(&key(i), artifact(i)).await.unwrap();
    }
    let a = chunk_files(ts.path())[0].clone();
    let a_id = chunk_id(&a);
    assert!(store.delete(&key(1)).await.unwrap());
    // Damage the header of A's last blob frame (key 2's): compaction moves key 0's blob in
    // an early batch, then stops there.
    let mut scanner = ChunkScanner::open(&a).unwrap();
    let mut blob_offsets = Vec::new();
    while let Some(f) = scanner.next_frame().unwrap() {
        if f.header.kind == FrameKind::Blob {
            blob_offsets.push(f.offset);
        }
    }
    assert_eq!(blob_offsets.len(), 3);
    flip_byte(&a, blob_offsets[2] + 12, 0x10);
    let r = store.compact().await.unwrap();
    assert_eq!(r.chunks_skipped, vec![a_id], "{r:?}");
    // The batches that did move blobs moved their live bytes off chunk A too.
    let v = store.verify().await.unwrap();
    assert!(v.live_bytes_mismatches.is_empty(), "{v:?}");

    // Key 0 is deleted; then everything compactable is compacted again, more than once, so
    // any tombstone that is not needed goes.
    assert!(store.delete(&key(0)).await.unwrap());
    for i in 6..12 {
        store.put(&key(i), artifact(i)).await.unwrap();
    }
    for _ in 0..3 {
        store.compact().await.unwrap();
    }
    drop(store);
    ts.close().await;

    std::fs::remove_dir_all(ts.path().join("index")).unwrap();
    let report = Store::rebuild_index(ts.path(), options(clock.clone()), false, |_, _| {})
        .await
        .unwrap();
    assert!(report.chunks_damaged.contains(&a_id), "{report:?}");
    ts.reopen().await;
    let store = ts.store();
    assert_eq!(
        store.get(&key(0)).await.unwrap(),
        None,
        "a deleted key came back"
    );
    assert_eq!(store.get(&key(1)).await.unwrap(), None);
    for i in [3, 4, 5, 6, 11] {
        assert_eq!(
            store.get(&key(i)).await.unwrap(),
            Some(artifact(i)),
            "{}",
            key(i)
        );
    }
}
