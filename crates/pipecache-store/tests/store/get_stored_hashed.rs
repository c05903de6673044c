//! `get_stored_hashed` hands back each part's blake3 as the read checked it (the read path
//! of `get`, whose corruption tests cover it): equal to the hash of the bytes returned, in
//! part order (a part repeated in one artifact included), and `None` for an absent key.

use pipecache_format::BlobHash;
use pipecache_store::Artifact;
use pipecache_test_support::{TempStore, manual_gc_options, random_bytes};

#[tokio::test]
async fn hashes_are_those_of_the_parts_returned() {
    let ts = TempStore::new(manual_gc_options(1 << 20)).await;
    let store = ts.store().clone();
    let shared = random_bytes(1, 30_000);
    let artifact = Artifact::default()
        .with_kind("keyframes")
        .with_part("a.jpg", shared.clone())
        .with_part("b.jpg", random_bytes(2, 70_000))
        .with_part("c.jpg", shared)
        .with_part("d.json", b"{\"x\": 1}".repeat(2_000));
    store
        .put("video:v1:keyframes", artifact.clone())
        .await
        .unwrap();

    let (stored, hashes) = store
        .get_stored_hashed("video:v1:keyframes")
        .await
        .unwrap()
        .expect("present");
    assert_eq!(stored.artifact, artifact);
    let expected: Vec<BlobHash> = artifact
        .parts
        .iter()
        .map(|p| BlobHash::of(&p.data))
        .collect();
    assert_eq!(hashes, expected);
    assert_eq!(hashes[0], hashes[2], "a repeated part has its hash twice");
    assert!(
        store
            .get_stored_hashed("video:absent:keyframes")
            .await
            .unwrap()
            .is_none()
    );
}
