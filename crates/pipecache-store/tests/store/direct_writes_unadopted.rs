//! A direct chunk its put's commit does not reference is deleted: a large blob the store
//! already holds, a put `if_absent` refuses, and two puts racing with the same new blob
//! leave exactly one copy and no stray chunk file.

use pipecache_store::{Artifact, PutOptions};
use pipecache_test_support::{TempStore, chunk_files, direct_write_options, random_bytes};

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn unreferenced_direct_chunks_are_removed() {
    let ts = TempStore::new(direct_write_options()).await;
    let store = ts.store().clone();
    let big = random_bytes(1, 300_000);
    store
        .put("first", Artifact::single(big.clone()))
        .await
        .unwrap();
    assert_eq!(
        chunk_files(ts.path()).len(),
        2,
        "a direct chunk and the open chunk"
    );

    // Already present: deduplicated before any direct write.
    store
        .put("second", Artifact::single(big.clone()))
        .await
        .unwrap();
    // Refused by if_absent after its direct chunk was written.
    let refused = Artifact::single(random_bytes(2, 300_000));
    store
        .put_with(
            "first",
            refused,
            PutOptions {
                if_absent: true,
                ..PutOptions::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(chunk_files(ts.path()).len(), 2);

    // Many puts of one new blob at once: each may write a direct chunk before any commits.
    let racing = random_bytes(3, 300_000);
    let puts: Vec<_> = (0..6)
        .map(|i| {
            let (store, racing) = (store.clone(), racing.clone());
            tokio::spawn(async move {
                store
                    .put(&format!("race{i}"), Artifact::single(racing))
                    .await
            })
        })
        .collect();
    for p in puts {
        p.await.unwrap().unwrap();
    }
    assert_eq!(
        chunk_files(ts.path()).len(),
        3,
        "one copy of the racing blob"
    );
    let stats = store.stats().await.unwrap();
    assert_eq!(stats.blobs, 2);
    assert_eq!(stats.artifacts, 8);
    assert_eq!(
        store.get("first").await.unwrap().unwrap().parts[0].data,
        big
    );
    let report = store.verify().await.unwrap();
    assert!(report.is_clean(), "{report:?}");
}
