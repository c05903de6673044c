//! The store publishes every key a commit changed in its change journal, before the call
//! that made the change returns: puts, deletes, GC's expiries and evictions; opening the
//! store again, and `rebuild-index`, drop everything.

use std::time::Duration;

use pipecache_format::key_hash;
use pipecache_store::{
    Artifact, Change, GcOptions, JournalReader, ManualClock, PutOptions, Store, StoreOptions,
};
use pipecache_test_support::{TempStore, lifecycle_options, random_bytes};

const T0: u64 = 1_700_000_000_000;

/// What a reader is told now, in order.
fn changes(reader: &JournalReader) -> Vec<Change> {
    let mut out = Vec::new();
    reader.catch_up(|c| out.push(c));
    out
}

fn keys(names: &[&str]) -> Vec<Change> {
    names.iter().map(|k| Change::Key(key_hash(k))).collect()
}

#[tokio::test]
async fn puts_deletes_and_gc_removals_reach_the_journal() {
    let clock = ManualClock::new(T0);
    let ts = TempStore::new(StoreOptions {
        max_size: Some(300_000),
        ..lifecycle_options(64 << 10, clock.clone())
    })
    .await;
    let store = ts.store();
    let reader = JournalReader::open(ts.path()).unwrap().expect("a journal");
    assert_eq!(changes(&reader), vec![Change::All]);

    store
        .put("a", Artifact::single(random_bytes(1, 1000)))
        .await
        .unwrap();
    assert_eq!(changes(&reader), keys(&["a"]));
    assert!(store.delete("a").await.unwrap());
    assert_eq!(changes(&reader), keys(&["a"]));
    assert!(!store.delete("a").await.unwrap());
    assert_eq!(
        changes(&reader),
        vec![],
        "nothing changed, nothing published"
    );

    // Expiry: published by the GC pass that removes it.
    let short = PutOptions {
        ttl: Some(Duration::from_secs(1)),
        ..PutOptions::default()
    };
    store
        .put_with("t", Artifact::single(random_bytes(2, 1000)), short)
        .await
        .unwrap();
    assert_eq!(changes(&reader), keys(&["t"]));
    clock.advance(Duration::from_secs(5));
    let report = store.gc(GcOptions::default()).await.unwrap();
    assert_eq!(report.expired, vec!["t".to_owned()]);
    assert_eq!(changes(&reader), keys(&["t"]));

    // Eviction over the budget: the evicted keys, and only those.
    for i in 0..6u64 {
        clock.advance(Duration::from_secs(1));
        store
            .put(
                &format!("big{i}"),
                Artifact::single(random_bytes(10 + i, 100_000)),
            )
            .await
            .unwrap();
    }
    changes(&reader);
    let report = store.gc(GcOptions::default()).await.unwrap();
    assert!(!report.evicted.is_empty());
    let told: Vec<Change> = changes(&reader)
        .into_iter()
        .filter(|c| matches!(c, Change::Key(_)))
        .collect();
    let expected: Vec<Change> = report
        .evicted
        .iter()
        .map(|k| Change::Key(key_hash(k)))
        .collect();
    // Compaction may publish the survivors it moved too (their records changed); every
    // evicted key must be there.
    assert!(
        expected.iter().all(|e| told.contains(e)),
        "{told:?} lacks {expected:?}"
    );
}

#[tokio::test]
async fn opening_and_rebuilding_the_store_drop_everything() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path(), StoreOptions::default())
        .await
        .unwrap();
    store
        .put("k", Artifact::single(b"v".to_vec()))
        .await
        .unwrap();
    let reader = JournalReader::open(dir.path()).unwrap().unwrap();
    changes(&reader);
    store.close().await.unwrap();
    assert_eq!(changes(&reader), vec![], "closing changes nothing");

    let store = Store::open(dir.path(), StoreOptions::default())
        .await
        .unwrap();
    assert_eq!(changes(&reader), vec![Change::All]);
    store.close().await.unwrap();

    Store::rebuild_index(dir.path(), StoreOptions::default(), true, |_, _| {})
        .await
        .unwrap();
    assert_eq!(changes(&reader), vec![Change::All]);
}
