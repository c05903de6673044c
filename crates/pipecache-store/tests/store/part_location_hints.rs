//! Every part of a record names where its blob's frame was when the record was written
//! (`PartRef::at`), and a get reads from there first. A hint gone stale (compaction moved
//! the blob and removed the old chunk) costs a lookup, never an error or other bytes:
//! survivors read back identically, nothing is counted as corruption, also after a restart.
//! A hint naming another blob's frame, a missing chunk or an impossible length is refused
//! by the checks every read makes, and the blob is looked up instead.

use pipecache_format::chunk_file_name;
use pipecache_format::record::FrameRef;
use pipecache_index::{Index, IndexOptions};
use pipecache_store::{Artifact, ManualClock, StoreOptions};
use pipecache_test_support::{
    TempStore, assert_reads_back, clip_artifact, clip_key, lifecycle_options,
};

const N: u64 = 60;
const SIZE: usize = 20_000;
const CHUNK: u64 = 64 << 10;

fn kept(i: u64) -> bool {
    i.is_multiple_of(4)
}

#[tokio::test]
async fn reads_follow_hints_and_fall_back_once_compaction_moved_the_blobs() {
    let clock = ManualClock::new(1_700_000_000_000);
    let mut ts = TempStore::new(lifecycle_options(CHUNK, clock)).await;
    let store = ts.store().clone();
    for i in 0..N {
        store
            .put(&clip_key(i), clip_artifact(i, SIZE))
            .await
            .unwrap();
    }
    let keys: Vec<String> = (0..N).filter(|i| kept(*i)).map(clip_key).collect();
    let written = store.records(keys.clone()).await.unwrap();
    for (key, rec) in keys.iter().zip(&written) {
        let rec = rec.as_ref().unwrap();
        for part in &rec.parts {
            let at = part
                .at
                .unwrap_or_else(|| panic!("{key}: part {} has no hint", part.name));
            assert!(
                ts.path()
                    .join("chunks")
                    .join(chunk_file_name(at.chunk))
                    .exists(),
                "{key}: hint names chunk {} that is not there",
                at.chunk
            );
        }
    }
    for i in 0..N {
        assert_reads_back(&store, &clip_key(i), &clip_artifact(i, SIZE)).await;
    }

    // Most artifacts go; compaction moves the survivors' blobs and removes their chunks.
    for i in (0..N).filter(|i| !kept(*i)) {
        assert!(store.delete(&clip_key(i)).await.unwrap());
    }
    let r = store.compact().await.unwrap();
    assert!(!r.chunks_compacted.is_empty(), "{r:?}");
    let stale = written
        .iter()
        .flatten()
        .flat_map(|rec| &rec.parts)
        .filter(|p| {
            let at = p.at.unwrap();
            !ts.path()
                .join("chunks")
                .join(chunk_file_name(at.chunk))
                .exists()
        })
        .count();
    assert!(stale > 0, "compaction left every hinted chunk in place");
    drop(store);
    for _ in 0..2 {
        for i in (0..N).filter(|i| kept(*i)) {
            assert_reads_back(ts.store(), &clip_key(i), &clip_artifact(i, SIZE)).await;
        }
        let stats = ts.store().stats().await.unwrap();
        assert_eq!(stats.counters.corruption_errors, 0);
        ts.reopen().await;
    }
}

#[tokio::test]
async fn a_hint_that_names_the_wrong_frame_is_never_believed() {
    let mut ts = TempStore::new(StoreOptions::default()).await;
    let art = |seed: u64| Artifact::single(pipecache_test_support::random_bytes(seed, 20_000));
    let keys = ["video:a:transcript", "video:b:transcript"];
    for (i, key) in keys.iter().enumerate() {
        ts.store().put(key, art(i as u64)).await.unwrap();
    }
    let recs = ts
        .store()
        .records(keys.map(String::from).to_vec())
        .await
        .unwrap();
    let (a, b) = (recs[0].clone().unwrap(), recs[1].clone().unwrap());
    let b_frame = b.parts[0].at.unwrap();
    ts.close().await;

    // The other blob's frame (same stored length, so only the hash check stands between),
    // a chunk that does not exist, a length shorter than a frame header.
    let forged = [
        b_frame,
        FrameRef {
            chunk: 9_999,
            ..b_frame
        },
        FrameRef { len: 3, ..b_frame },
    ];
    for at in forged {
        {
            let (_index, writer) =
                Index::open(&ts.path().join("index"), &IndexOptions::default()).unwrap();
            let mut rec = a.clone();
            rec.parts[0].at = Some(at);
            let mut batch = writer.batch();
            batch.put_artifact(keys[0], &rec);
            writer.commit(batch, true).unwrap();
        }
        ts.reopen().await;
        assert_reads_back(ts.store(), keys[0], &art(0)).await;
        assert_reads_back(ts.store(), keys[1], &art(1)).await;
        let stats = ts.store().stats().await.unwrap();
        assert_eq!(stats.counters.corruption_errors, 0, "{at:?}");
        ts.close().await;
    }
}
