//! Compaction meets a damaged chunk: that chunk is skipped and reported (its bytes stay for
//! `verify` to name), every other candidate is still compacted, and the pass succeeds.

use pipecache_store::{Artifact, ManualClock};
use pipecache_test_support::{
    TempStore, assert_reads_back, chunk_files, chunk_id, flip_byte, lifecycle_options, random_bytes,
};

fn key(i: u64) -> String {
    format!("clip:{i}:embeddings")
}

fn artifact(i: u64) -> Artifact {
    Artifact::single(random_bytes(i, 20_000))
}

#[tokio::test]
async fn a_damaged_chunk_is_skipped_and_the_rest_compacted() {
    let clock = ManualClock::new(1_700_000_000_000);
    let ts = TempStore::new(lifecycle_options(64 << 10, clock)).await;
    let store = ts.store().clone();
    // Three 20 KB artifacts per 64 KiB chunk: chunks {0,1,2}, {3,4,5}, {6,7,8}.
    for i in 0..9 {
        store.put(&key(i), artifact(i)).await.unwrap();
    }
    let files = chunk_files(ts.path());
    assert_eq!(files.len(), 3, "{files:?}");
    let (damaged, healthy) = (chunk_id(&files[0]), chunk_id(&files[1]));
    for i in [1, 2, 4, 5] {
        assert!(store.delete(&key(i)).await.unwrap());
    }
    // The first frame header of chunk 0 (key 0's blob) no longer matches its checksum.
    flip_byte(&files[0], 64 + 12, 0x10);

    let r = store
        .compact()
        .await
        .expect("a damaged chunk does not fail the pass");
    assert_eq!(r.chunks_skipped, vec![damaged], "{r:?}");
    assert!(r.chunks_compacted.contains(&healthy), "{r:?}");
    assert!(
        files[0].exists(),
        "the damaged chunk stays for verify and repair"
    );
    assert!(!files[1].exists());

    assert_reads_back(&store, &key(3), &artifact(3)).await;
    assert_reads_back(&store, &key(7), &artifact(7)).await;
    let err = store.get(&key(0)).await.unwrap_err();
    assert!(err.is_corruption(), "{err}");
    let v = store.verify().await.unwrap();
    assert_eq!(v.damaged_keys, vec![key(0)], "{v:?}");
}
