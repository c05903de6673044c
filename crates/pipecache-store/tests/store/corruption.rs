//! Corrupt bytes are never returned: flipping a payload byte or a frame-header byte makes `get`
//! fail with an error naming the key and blob, `verify` names the damaged keys, a counter goes
//! up, and the rest of the store still serves.

use pipecache_format::{ChunkScanner, FRAME_HEADER_LEN};
use pipecache_store::{Artifact, CompressionPolicy, StoreError as Error, StoreOptions};
use pipecache_test_support::{TempStore, chunk_files, flip_byte, random_bytes};

#[tokio::test]
async fn flipped_bytes_are_errors_never_data() {
    let opts = StoreOptions {
        compression: CompressionPolicy {
            enabled: false,
            ..CompressionPolicy::default()
        },
        ..StoreOptions::default()
    };
    let mut ts = TempStore::new(opts).await;
    let a1 = random_bytes(1, 5000);
    let a2 = random_bytes(2, 5000);
    let b = random_bytes(3, 7000);
    let c = random_bytes(4, 3000);
    let store = ts.store();
    store
        .put(
            "A",
            Artifact::default()
                .with_part("a1", a1.clone())
                .with_part("a2", a2.clone()),
        )
        .await
        .unwrap();
    store.put("B", Artifact::single(b.clone())).await.unwrap();
    store
        .put(
            "C",
            Artifact::single(c.clone()).with_part("shared", a1.clone()),
        )
        .await
        .unwrap();
    ts.close().await;

    // Locate frames with the stand-alone scanner (no index involved).
    let chunk = chunk_files(ts.path()).pop().expect("one chunk file");
    let mut scanner = ChunkScanner::open(&chunk).unwrap();
    let mut frames = Vec::new();
    while let Some(f) = scanner.next_frame().unwrap() {
        frames.push(f);
    }
    let frame_of = |data: &[u8]| {
        frames
            .iter()
            .find(|f| f.payload == data)
            .expect("frame")
            .offset
    };
    let (b_off, a2_off) = (frame_of(&b), frame_of(&a2));
    flip_byte(&chunk, b_off + FRAME_HEADER_LEN as u64 + 100, 0x40); // B's payload
    flip_byte(&chunk, a2_off + 45, 0x01); // a2's frame header (raw length field)

    ts.reopen().await;
    let store = ts.store();
    let b_hash = pipecache_store::BlobHash::of(&b);
    match store.get("B").await {
        Err(Error::Corruption { key, blob, .. }) => {
            assert_eq!(key.as_deref(), Some("B"));
            assert_eq!(blob, Some(b_hash));
        }
        other => panic!("B must be a corruption error, got {other:?}"),
    }
    let err = store.get("A").await.unwrap_err();
    assert!(err.is_corruption(), "{err}");
    assert!(
        err.to_string().contains("\"A\""),
        "error names the key: {err}"
    );
    // C shares a1 with A (undamaged) and must still serve.
    let got_c = store.get("C").await.unwrap().unwrap();
    assert_eq!(got_c.parts[0].data, c);
    assert_eq!(got_c.parts[1].data, a1);
    assert_eq!(store.stats().await.unwrap().counters.corruption_errors, 2);

    let report = store.verify().await.unwrap();
    assert!(!report.is_clean());
    assert_eq!(report.damaged_keys, vec!["A".to_string(), "B".to_string()]);
    assert_eq!(report.damaged_blobs.len(), 2);
}
