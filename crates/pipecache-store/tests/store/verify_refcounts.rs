//! `verify` checks every blob's refcount against the artifact parts that reference it and
//! `repair` recounts it. Two refcounts are altered in the index of a closed store (a shared
//! blob under-counted, a private one over-counted); verify names both with their recorded and
//! actual counts, repair fixes both, the next verify is clean and no artifact is lost.

use std::collections::BTreeSet;

use pipecache_format::record::BlobRecord;
use pipecache_index::{Index, IndexOptions, IndexWriter};
use pipecache_store::{Artifact, BlobHash, StoreOptions, VerifyReport};
use pipecache_test_support::{TempStore, assert_reads_back, manual_gc_options, random_bytes};

fn options() -> StoreOptions {
    manual_gc_options(StoreOptions::default().chunk_size)
}

fn shared() -> Vec<u8> {
    random_bytes(1, 4_000)
}

fn own(i: u64) -> Vec<u8> {
    random_bytes(100 + i, 4_000)
}

/// `a` and `b` share one blob; `c` has only its own.
fn artifact(key: &str) -> Artifact {
    match key {
        "a" => Artifact::default()
            .with_part("shared", shared())
            .with_part("own", own(0)),
        "b" => Artifact::default()
            .with_part("shared", shared())
            .with_part("own", own(1)),
        "c" => Artifact::default().with_part("own", own(2)),
        _ => unreachable!("no artifact {key}"),
    }
}

const KEYS: [&str; 3] = ["a", "b", "c"];

/// Sets the refcount of `hash` in `index` (of a closed store); returns the old one.
fn set_refs(index: &(Index, IndexWriter), hash: BlobHash, refs: u64) -> u64 {
    let (index, writer) = index;
    let rec = index.blob(&hash).unwrap().expect("blob is in the index");
    let mut batch = writer.batch();
    batch.put_blob(&hash, &BlobRecord { refs, ..rec });
    writer.commit(batch, true).unwrap();
    rec.refs
}

fn mismatches(report: &VerifyReport) -> BTreeSet<(String, u64, u64)> {
    report
        .refcount_mismatches
        .iter()
        .map(|m| (m.hash.clone(), m.recorded, m.actual))
        .collect()
}

#[tokio::test]
async fn a_wrong_refcount_is_reported_and_repaired() {
    let mut ts = TempStore::new(options()).await;
    for key in KEYS {
        ts.store().put(key, artifact(key)).await.unwrap();
    }
    let clean = ts.store().verify().await.unwrap();
    assert!(clean.is_clean(), "{clean:?}");
    ts.close().await;

    let shared_hash = BlobHash::of(&shared());
    let c_hash = BlobHash::of(&own(2));
    {
        let index = Index::open(&ts.path().join("index"), &IndexOptions::default()).unwrap();
        assert_eq!(
            set_refs(&index, shared_hash, 1),
            2,
            "a and b share the blob"
        );
        assert_eq!(set_refs(&index, c_hash, 3), 1, "only c holds its blob");
    }

    ts.reopen().await;
    let store = ts.store();
    let report = store.verify().await.unwrap();
    assert!(!report.is_clean(), "{report:?}");
    let expected: BTreeSet<(String, u64, u64)> = [
        (shared_hash.to_hex(), 1, 2), // recorded 1, referenced by a and b
        (c_hash.to_hex(), 3, 1),      // recorded 3, referenced by c
    ]
    .into_iter()
    .collect();
    assert_eq!(mismatches(&report), expected, "{report:?}");
    assert_eq!(report.refcount_mismatches.len(), 2, "{report:?}");
    let rest = VerifyReport {
        refcount_mismatches: Vec::new(),
        ..report.clone()
    };
    assert!(rest.is_clean(), "only the refcounts are wrong: {rest:?}");

    let repaired = store.repair().await.unwrap();
    assert_eq!(repaired.refcounts_fixed, 2, "{repaired:?}");
    assert_eq!(mismatches(&repaired.before), expected, "{repaired:?}");
    assert!(repaired.dropped_keys.is_empty(), "{repaired:?}");
    assert_eq!(repaired.dropped_blobs, 0, "{repaired:?}");
    assert!(repaired.after.is_clean(), "{:?}", repaired.after);
    let v = store.verify().await.unwrap();
    assert!(v.is_clean(), "{v:?}");
    for key in KEYS {
        assert_reads_back(store, key, &artifact(key)).await;
    }

    // The counts are really right now: deleting `a` leaves the shared blob live for `b` (at
    // the under-count it would have died), and deleting the rest leaves no live blob (at the
    // over-count c's blob would have stayed live).
    assert!(store.delete("a").await.unwrap());
    assert_reads_back(store, "b", &artifact("b")).await;
    let v = store.verify().await.unwrap();
    assert!(v.is_clean(), "{v:?}");
    assert!(store.delete("b").await.unwrap());
    assert!(store.delete("c").await.unwrap());
    let s = store.stats().await.unwrap();
    assert_eq!((s.artifacts, s.blobs), (0, 0), "{s:?}");
    let v = store.verify().await.unwrap();
    assert!(v.is_clean(), "{v:?}");

    // And it holds across a restart.
    ts.reopen().await;
    let v = ts.store().verify().await.unwrap();
    assert!(v.is_clean(), "{v:?}");
}
