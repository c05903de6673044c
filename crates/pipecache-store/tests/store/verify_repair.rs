//! `verify` reconciles the index with the chunk files and `repair` fixes what can be fixed: an
//! artifact whose bytes are lost becomes a miss (reported by key), refcounts are corrected, and
//! the rest of the store is untouched.

use pipecache_format::{ChunkScanner, FRAME_HEADER_LEN, chunk_file_name};
use pipecache_store::{Artifact, CompressionPolicy, StoreOptions};
use pipecache_test_support::{
    TempStore, chunk_files, chunk_id, flip_byte, manual_gc_options, random_bytes,
};

fn options() -> StoreOptions {
    StoreOptions {
        compression: CompressionPolicy {
            enabled: false,
            ..CompressionPolicy::default()
        },
        ..manual_gc_options(16 * 1024)
    }
}

#[tokio::test]
async fn repair_drops_lost_artifacts_and_keeps_the_rest() {
    let mut ts = TempStore::new(options()).await;
    let store = ts.store().clone();
    let shared = random_bytes(1, 3000);
    for i in 0..12u64 {
        let a = Artifact::default()
            .with_part("shared", shared.clone())
            .with_part("own", random_bytes(100 + i, 3000));
        store.put(&format!("k{i}"), a).await.unwrap();
    }
    drop(store);
    ts.close().await;

    // Damage the own-part of k3 (flip a payload byte) and remove one whole chunk file that does
    // not hold the shared blob.
    let k3 = random_bytes(103, 3000);
    let files = chunk_files(ts.path());
    assert!(
        files.len() >= 3,
        "scenario needs several chunks, got {}",
        files.len()
    );
    let mut flipped = false;
    for f in &files {
        let mut s = ChunkScanner::open(f).unwrap();
        while let Ok(Some(frame)) = s.next_frame() {
            if frame.payload == k3 {
                flip_byte(f, frame.offset + FRAME_HEADER_LEN as u64 + 10, 0x80);
                flipped = true;
            }
        }
    }
    assert!(flipped);
    let shared_hash = pipecache_store::BlobHash::of(&shared);
    let victim = files
        .iter()
        .rev()
        .find(|f| {
            let mut s = ChunkScanner::open(f).unwrap();
            let mut holds_shared = false;
            let mut holds_blob = false;
            while let Ok(Some(frame)) = s.next_frame() {
                holds_shared |= frame.header.hash == shared_hash;
                holds_blob |= frame.header.kind == pipecache_format::FrameKind::Blob;
            }
            holds_blob && !holds_shared
        })
        .expect("a chunk without the shared blob")
        .clone();
    std::fs::remove_file(&victim).unwrap();
    let victim_id = chunk_id(&victim);
    assert_eq!(
        victim,
        ts.path().join("chunks").join(chunk_file_name(victim_id))
    );

    ts.reopen().await;
    let store = ts.store();
    let report = store.verify().await.unwrap();
    assert!(!report.is_clean());
    assert!(
        report.damaged_keys.contains(&"k3".to_string()),
        "{:?}",
        report.damaged_keys
    );
    assert!(report.missing_chunk_files.contains(&victim_id));
    let damaged = report.damaged_keys.clone();

    let repaired = store.repair().await.unwrap();
    assert_eq!(
        repaired.dropped_keys, damaged,
        "every damaged key is dropped and reported"
    );
    assert!(repaired.after.is_clean(), "{:?}", repaired.after);
    for i in 0..12u64 {
        let key = format!("k{i}");
        let got = store.get(&key).await.unwrap();
        if damaged.contains(&key) {
            assert!(got.is_none(), "{key} is a miss after repair");
        } else {
            let got = got.unwrap_or_else(|| panic!("{key} must survive repair"));
            assert_eq!(got.parts[0].data, shared);
            assert_eq!(got.parts[1].data, random_bytes(100 + i, 3000));
        }
    }
    // The shared blob's refcount was recounted: deleting every survivor leaves no live blob.
    for i in 0..12u64 {
        store.delete(&format!("k{i}")).await.unwrap();
    }
    let s = store.stats().await.unwrap();
    assert_eq!((s.artifacts, s.blobs), (0, 0));
    assert!(store.verify().await.unwrap().is_clean());
}
