//! Identical bytes are stored once: 100 artifacts sharing 90% of their parts.

use pipecache_store::{Artifact, StoreOptions};
use pipecache_test_support::{TempStore, random_bytes};

#[tokio::test]
async fn shared_parts_are_stored_once() {
    let ts = TempStore::new(StoreOptions::default()).await;
    let store = ts.store();
    const PART: usize = 10_000;
    let shared: Vec<Vec<u8>> = (0..9).map(|i| random_bytes(1000 + i, PART)).collect();
    for a in 0..100u64 {
        let mut art = Artifact::default().with_kind("keyframes");
        for (i, s) in shared.iter().enumerate() {
            art = art.with_part(format!("shared{i}.jpg"), s.clone());
        }
        art = art.with_part("own.jpg", random_bytes(a, PART));
        store
            .put(&format!("video:{a}:keyframes"), art)
            .await
            .unwrap();
    }
    let s = store.stats().await.unwrap();
    assert_eq!(s.artifacts, 100);
    assert_eq!(s.logical_bytes, 100 * 10 * PART as u64);
    assert_eq!(s.blobs, 109, "9 shared + 100 unique blobs");
    // Random bytes stay raw: stored == unique == 109 parts.
    assert_eq!(s.stored_bytes, 109 * PART as u64);
    assert!(
        s.dedup_ratio > 9.1 && s.dedup_ratio < 9.2,
        "dedup ratio {}",
        s.dedup_ratio
    );
    assert_eq!(s.counters.blobs_written, 109);
    // Everything still reads back.
    let got = store.get("video:42:keyframes").await.unwrap().unwrap();
    assert_eq!(got.parts[9].data, random_bytes(42, PART));
    assert!(
        s.chunk_files <= 1,
        "{} chunk files for 1 MB of blobs",
        s.chunk_files
    );
}
