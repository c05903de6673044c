//! `rebuild-index` restores every live artifact from the chunk files alone after the index
//! directory is deleted: overwrites keep their latest value, deletes stay deleted, compaction
//! moves do not lose records.

use std::collections::BTreeMap;

use pipecache_store::{Artifact, Store, StoreOptions};
use pipecache_test_support::{TempStore, json_like, manual_gc_options, random_bytes};

fn options() -> StoreOptions {
    StoreOptions {
        default_ttl: None,
        compact_threshold: 0.95,
        ..manual_gc_options(64 * 1024)
    }
}

#[tokio::test]
async fn rebuild_restores_every_live_artifact() {
    let mut ts = TempStore::new(options()).await;
    let mut model: BTreeMap<String, Artifact> = BTreeMap::new();
    let store = ts.store().clone();
    for i in 0..60u64 {
        let a = Artifact::default()
            .with_kind(if i % 2 == 0 {
                "keyframes"
            } else {
                "transcript"
            })
            .with_part("shared.jpg", random_bytes(7, 3000))
            .with_part(
                "own",
                if i % 3 == 0 {
                    json_like(i, 5000)
                } else {
                    random_bytes(i, 4000)
                },
            )
            .with_meta("i", i.to_string());
        store.put(&format!("video:{i}"), a.clone()).await.unwrap();
        model.insert(format!("video:{i}"), a);
    }
    // Overwrites, deletes, then compaction moves records and blobs between chunk files.
    for i in (0..60u64).step_by(5) {
        let a = Artifact::single(random_bytes(1000 + i, 2500)).with_kind("v2");
        store.put(&format!("video:{i}"), a.clone()).await.unwrap();
        model.insert(format!("video:{i}"), a);
    }
    for i in (1..60u64).step_by(4) {
        assert!(store.delete(&format!("video:{i}")).await.unwrap());
        model.remove(&format!("video:{i}"));
    }
    let compacted = store.compact().await.unwrap();
    assert!(
        !compacted.chunks_compacted.is_empty(),
        "the scenario should exercise compaction"
    );
    drop(store);
    ts.close().await;

    std::fs::remove_dir_all(ts.path().join("index")).unwrap();
    let report = Store::rebuild_index(ts.path(), options(), false, |_, _| {})
        .await
        .unwrap();
    assert_eq!(report.artifacts_restored, model.len() as u64);
    assert!(report.lost_keys.is_empty(), "{:?}", report.lost_keys);
    // A complete index is not replaced without force.
    assert!(
        Store::rebuild_index(ts.path(), options(), false, |_, _| {})
            .await
            .is_err()
    );

    ts.reopen().await;
    let store = ts.store();
    for i in 0..60u64 {
        let key = format!("video:{i}");
        assert_eq!(
            store.get(&key).await.unwrap().as_ref(),
            model.get(&key),
            "{key}"
        );
    }
    let stats = store.stats().await.unwrap();
    assert_eq!(stats.artifacts, model.len() as u64);
    let report = store.verify().await.unwrap();
    assert!(report.is_clean(), "{report:?}");
    // The rebuilt store keeps working: new puts, deletes, gc.
    store
        .put("after", Artifact::single(b"x".to_vec()))
        .await
        .unwrap();
    assert!(store.delete("video:0").await.unwrap());
    store.gc(Default::default()).await.unwrap();
    assert!(store.verify().await.unwrap().is_clean());
}
