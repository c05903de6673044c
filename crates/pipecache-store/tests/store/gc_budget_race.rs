//! Budget-pressure GC racing puts: eviction and compaction of every chunk with dead bytes (the
//! open chunk included) run in a loop while writers keep appending. Evicted keys may become
//! misses, but a get never fails with corruption (which is what a blob left in a deleted chunk
//! would look like), a hit always returns the last value put, and verify ends clean.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use pipecache_store::{Artifact, CompressionPolicy, GcOptions, StoreOptions};
use pipecache_test_support::{TempStore, random_bytes};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn puts_racing_budget_gc_never_lose_bytes() {
    let ts = TempStore::new(StoreOptions {
        // Everything fits one chunk: pressure compaction keeps hitting the open chunk, the one
        // puts append to while it is being scanned.
        chunk_size: 1024 * 1024,
        max_size: Some(128 * 1024),
        gc_interval: None,
        default_ttl: None,
        compression: CompressionPolicy {
            enabled: false,
            ..CompressionPolicy::default()
        },
        ..StoreOptions::default()
    })
    .await;
    let store = ts.store().clone();
    let last: Arc<Mutex<HashMap<String, u64>>> = Arc::default();
    let done = Arc::new(std::sync::atomic::AtomicBool::new(false));

    let gc = {
        let (store, done) = (store.clone(), done.clone());
        tokio::spawn(async move {
            let mut passes = 0u32;
            while !done.load(std::sync::atomic::Ordering::SeqCst) {
                store.gc(GcOptions::default()).await.expect("gc");
                passes += 1;
            }
            passes
        })
    };
    let mut writers = Vec::new();
    for w in 0..3u64 {
        let (store, last) = (store.clone(), last.clone());
        writers.push(tokio::spawn(async move {
            for i in 0..250u64 {
                let key = format!("w{w}:k{}", i % 20);
                let seed = w * 100_000 + i;
                // Two parts: one unique, one shared with other writers (dedup under eviction).
                let a = Artifact::default()
                    .with_part("own", random_bytes(seed, 3000))
                    .with_part("shared", random_bytes(i % 7, 2000));
                store.put(&key, a).await.expect("put");
                last.lock().unwrap().insert(key.clone(), seed);
                let probe = format!("w{w}:k{}", (i * 7) % 20);
                let want = last.lock().unwrap().get(&probe).copied();
                match store.get(&probe).await {
                    Ok(Some(a)) => assert_eq!(
                        Some(a.parts[0].data.clone()),
                        want.map(|s| random_bytes(s, 3000))
                    ),
                    Ok(None) => {} // evicted
                    Err(e) => panic!("get {probe} failed while gc ran: {e}"),
                }
            }
        }));
    }
    for w in writers {
        w.await.unwrap();
    }
    done.store(true, std::sync::atomic::Ordering::SeqCst);
    let passes = gc.await.unwrap();
    assert!(passes > 5, "gc ran only {passes} passes beside the writers");
    let s = store.stats().await.unwrap();
    assert!(s.evicted > 0, "the budget must have forced evictions");
    let snapshot: Vec<(String, u64)> = last
        .lock()
        .unwrap()
        .iter()
        .map(|(k, s)| (k.clone(), *s))
        .collect();
    for (key, seed) in &snapshot {
        if let Some(a) = store.get(key).await.expect("get after race") {
            assert_eq!(a.parts[0].data, random_bytes(*seed, 3000), "{key}");
        }
    }
    let report = store.verify().await.unwrap();
    assert!(report.is_clean(), "{report:?}");
}
