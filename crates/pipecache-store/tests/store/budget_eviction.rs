//! A store over its size budget is brought back under it by one GC pass: whole artifacts are
//! evicted least-recently-used first, recently read artifacts survive, every survivor reads back
//! byte-identical, and chunk files shrink to the budget (plus at most the open chunk). An
//! artifact larger than the whole budget is refused without changing anything.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use pipecache_store::{Artifact, GcOptions, ManualClock, StoreError as Error, StoreOptions};
use pipecache_test_support::{
    TempStore, assert_reads_back, json_like, lifecycle_options, list_keys, random_bytes,
};

const T0: u64 = 1_700_000_000_000;
const BUDGET: u64 = 2 << 20;
const CHUNK: u64 = 64 << 10;
const N: u64 = 100;
const OWN: usize = 20_000;
const SHARED: usize = 12_000;

fn key(i: u64) -> String {
    format!("video:{i:03}:frames")
}

/// Three parts of its own plus one of five blobs shared across artifacts: ~60 KB unique each,
/// ~6 MB (about 3x the budget) for all of them.
fn artifact(i: u64) -> Artifact {
    let kind = ["keyframes", "transcript", "embeddings"][(i % 3) as usize];
    let own = |n: u64| {
        if kind == "transcript" {
            json_like(i * 10 + n, OWN)
        } else {
            random_bytes(i * 10 + n, OWN)
        }
    };
    Artifact::default()
        .with_kind(kind)
        .with_part("p0", own(0))
        .with_part("p1", own(1))
        .with_part("p2", own(2))
        .with_part("shared", random_bytes(1_000_000 + i % 5, SHARED))
        .with_meta("i", i.to_string())
}

#[tokio::test]
async fn gc_evicts_least_recently_used_until_under_budget() {
    let clock = ManualClock::new(T0);
    let ts = TempStore::new(StoreOptions {
        max_size: Some(BUDGET),
        ..lifecycle_options(CHUNK, clock.clone())
    })
    .await;
    let store = ts.store().clone();

    let mut model = BTreeMap::new();
    for i in 0..N {
        clock.advance(Duration::from_secs(1));
        let a = artifact(i);
        store.put(&key(i), a.clone()).await.unwrap();
        model.insert(key(i), a);
    }
    let s = store.stats().await.unwrap();
    assert_eq!(s.artifacts, N);
    assert!(
        s.disk_bytes > 5 * BUDGET / 2,
        "the workload should be ~3x the budget: {s:?}"
    );

    // An hour later the "recent" subset is read, one second apart: newest access times.
    clock.advance(Duration::from_secs(3600));
    let recent: BTreeSet<String> = (3..N).step_by(7).map(key).collect();
    let mut read_at = BTreeMap::new();
    for k in &recent {
        clock.advance(Duration::from_secs(1));
        assert_reads_back(&store, k, &model[k]).await;
        read_at.insert(k.clone(), clock_now(&clock));
    }
    store.flush_access_times().await.unwrap();
    for (k, t) in &read_at {
        assert_eq!(store.last_access_ms(k).await.unwrap(), Some(*t), "{k}");
    }

    let report = store.gc(GcOptions::default()).await.unwrap();
    let s = store.stats().await.unwrap();

    // Under budget on disk, allowing for one open chunk.
    assert!(
        s.disk_bytes <= BUDGET + CHUNK,
        "disk_bytes {} > budget {BUDGET} + chunk {CHUNK}; report {report:?}; stats {s:?}",
        s.disk_bytes
    );
    assert!(report.disk_bytes_after <= BUDGET + CHUNK, "{report:?}");
    assert!(report.live_bytes <= BUDGET, "{report:?}");
    assert!(report.bytes_reclaimed > 0, "{report:?}");
    assert!(report.expired.is_empty(), "{report:?}");
    assert_eq!(report.max_size, Some(BUDGET));

    // Evictions happened, are counted, and name each key once.
    let evicted: BTreeSet<String> = report.evicted.iter().cloned().collect();
    assert!(!evicted.is_empty(), "{report:?}");
    assert_eq!(evicted.len(), report.evicted.len(), "a key evicted twice");
    assert_eq!(s.evicted, evicted.len() as u64);
    assert_eq!(s.expired, 0);

    // Survivors: every recently read artifact, plus the newest of the others (the store is not
    // emptied beyond what the budget needs).
    let survivors: BTreeSet<String> = list_keys(&store, "").await.into_iter().collect();
    assert_eq!(s.artifacts, survivors.len() as u64);
    assert!(
        evicted.is_disjoint(&survivors),
        "listed after eviction: {:?}",
        evicted.intersection(&survivors).collect::<Vec<_>>()
    );
    assert_eq!(
        evicted.union(&survivors).cloned().collect::<BTreeSet<_>>(),
        model.keys().cloned().collect::<BTreeSet<_>>(),
        "an artifact vanished without being reported as evicted"
    );
    for k in &recent {
        assert!(survivors.contains(k), "recently read {k} was evicted");
    }
    assert!(
        survivors.len() > recent.len(),
        "everything but the recent set was evicted: {} survivors",
        survivors.len()
    );
    // LRU: never read, so last access = put order; every evicted artifact is older than every
    // surviving one.
    let idx = |k: &String| k[6..9].parse::<u64>().unwrap();
    let newest_evicted = evicted.iter().map(idx).max().unwrap();
    let oldest_kept = survivors
        .iter()
        .filter(|k| !recent.contains(*k))
        .map(idx)
        .min()
        .unwrap();
    assert!(
        newest_evicted < oldest_kept,
        "LRU order violated: evicted #{newest_evicted} but kept #{oldest_kept}"
    );

    // Every survivor reads back exactly; evicted keys are misses.
    for k in &survivors {
        assert_reads_back(&store, k, &model[k]).await;
    }
    for k in &evicted {
        assert!(store.get(k).await.unwrap().is_none(), "{k} still readable");
    }
    let v = store.verify().await.unwrap();
    assert!(v.is_clean(), "{v:?}");
    assert_eq!(s.counters.corruption_errors, 0);

    // A put larger than the whole budget is refused and changes nothing, also over an
    // existing key.
    let before = store.stats().await.unwrap();
    let huge = Artifact::default()
        .with_kind("keyframes")
        .with_part("a", random_bytes(7, (BUDGET / 2) as usize))
        .with_part("b", random_bytes(8, (BUDGET / 2) as usize + 1));
    match store.put("video:huge", huge.clone()).await {
        Err(Error::TooLarge { size, max_size }) => {
            assert_eq!(size, BUDGET + 1);
            assert_eq!(max_size, BUDGET);
        }
        other => panic!("expected TooLarge, got {other:?}"),
    }
    let victim = recent.iter().next().unwrap();
    assert!(matches!(
        store.put(victim, huge).await,
        Err(Error::TooLarge { .. })
    ));
    let after = store.stats().await.unwrap();
    assert!(!store.contains("video:huge").await.unwrap());
    assert_reads_back(&store, victim, &model[victim]).await;
    assert_eq!(after.artifacts, before.artifacts);
    assert_eq!(after.logical_bytes, before.logical_bytes);
    assert_eq!(after.blobs, before.blobs);
    assert_eq!(after.stored_bytes, before.stored_bytes);
    assert_eq!(after.disk_bytes, before.disk_bytes);
    assert_eq!(after.chunk_files, before.chunk_files);
    assert_eq!(after.counters.puts, before.counters.puts);
    assert_eq!(after.counters.bytes_written, before.counters.bytes_written);
}

fn clock_now(clock: &ManualClock) -> u64 {
    use pipecache_store::Clock;
    clock.now_ms()
}
