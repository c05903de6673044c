//! A store compressing with LZ4 (store-wide, or per put) writes LZ4 frames beside zstd ones,
//! reads both back byte-identical across a reopen, verifies clean, and reports a flipped byte
//! in an LZ4 payload as corruption of that blob, never as data.

use pipecache_format::{ChunkScanner, Codec, FRAME_HEADER_LEN};
use pipecache_store::{
    Algorithm, Artifact, BlobHash, CompressionPolicy, PutOptions, StoreError as Error, StoreOptions,
};
use pipecache_test_support::{TempStore, blob_codecs, chunk_files, flip_byte, json_like};

#[tokio::test]
async fn lz4_and_zstd_blobs_live_side_by_side() {
    let mut options = StoreOptions::default();
    options.compression.algorithm = Algorithm::Lz4;
    let mut ts = TempStore::new(options).await;
    let (fast, dense) = (json_like(1, 50_000), json_like(2, 50_000));
    let store = ts.store();
    store
        .put("doc/lz4", Artifact::single(fast.clone()))
        .await
        .unwrap();
    store
        .put_with(
            "doc/zstd",
            Artifact::single(dense.clone()),
            PutOptions {
                compression: Some(CompressionPolicy::DEFAULT),
                ..PutOptions::default()
            },
        )
        .await
        .unwrap();
    ts.close().await;

    let codecs = blob_codecs(ts.path());
    assert_eq!(codecs[&BlobHash::of(&fast)], "lz4", "the store's codec");
    assert_eq!(codecs[&BlobHash::of(&dense)], "zstd", "the put's codec");

    ts.reopen().await;
    let store = ts.store();
    for (key, bytes) in [("doc/lz4", &fast), ("doc/zstd", &dense)] {
        let got = store.get(key).await.unwrap().expect("a hit");
        assert_eq!(&got.parts[0].data, bytes, "{key}");
    }
    let report = store.verify().await.unwrap();
    assert!(report.is_clean(), "{report:?}");
    ts.close().await;

    // Damage the LZ4 payload in the middle: the get names the blob, zstd's key still serves.
    let chunk = chunk_files(ts.path()).pop().expect("one chunk file");
    let mut scanner = ChunkScanner::open(&chunk).unwrap();
    let mut lz4_frame = None;
    while let Some(f) = scanner.next_frame().unwrap() {
        if f.header.codec == Codec::Lz4 {
            lz4_frame = Some((f.offset, f.header.stored_len));
        }
    }
    let (offset, stored_len) = lz4_frame.expect("the LZ4 frame");
    flip_byte(
        &chunk,
        offset + FRAME_HEADER_LEN as u64 + stored_len / 2,
        0x10,
    );
    ts.reopen().await;
    let store = ts.store();
    match store.get("doc/lz4").await {
        Err(Error::Corruption { key, blob, .. }) => {
            assert_eq!(key.as_deref(), Some("doc/lz4"));
            assert_eq!(blob, Some(BlobHash::of(&fast)));
        }
        other => panic!("a damaged LZ4 blob must be a corruption error, got {other:?}"),
    }
    let got = store.get("doc/zstd").await.unwrap().expect("a hit");
    assert_eq!(got.parts[0].data, dense);
    assert!(!store.verify().await.unwrap().is_clean());
}
