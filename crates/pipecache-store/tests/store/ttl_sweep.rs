//! A GC pass removes exactly the artifacts whose TTL has passed (injected clock, no sleeps):
//! per-put TTLs and the default TTL, an overwrite that extends a TTL, a re-put after expiry,
//! the exact expiry instant, and `dry_run`.

use std::collections::BTreeSet;
use std::time::Duration;

use pipecache_store::{
    Artifact, GcOptions, GcReport, ManualClock, PutOptions, Store, StoreOptions,
};
use pipecache_test_support::{TempStore, assert_reads_back, lifecycle_options, random_bytes};

const T0: u64 = 1_700_000_000_000;
const MIN: u64 = 60_000;
const PART: usize = 20_000;

fn art(seed: u64) -> Artifact {
    Artifact::default()
        .with_kind("transcript")
        .with_part("data", random_bytes(seed, PART))
}

fn ttl(minutes: u64) -> PutOptions {
    PutOptions {
        ttl: Some(Duration::from_secs(minutes * 60)),
        ..PutOptions::default()
    }
}

fn keys(v: &[String]) -> BTreeSet<String> {
    v.iter().cloned().collect()
}

fn set(v: &[&str]) -> BTreeSet<String> {
    v.iter().map(|s| s.to_string()).collect()
}

async fn sweep(store: &Store) -> GcReport {
    let r = store.gc(GcOptions::default()).await.unwrap();
    assert!(!r.dry_run);
    assert!(r.evicted.is_empty(), "no budget, nothing to evict: {r:?}");
    assert_eq!(
        r.expired.len(),
        keys(&r.expired).len(),
        "a key reported twice: {r:?}"
    );
    r
}

#[tokio::test]
async fn gc_removes_exactly_the_expired_artifacts() {
    let clock = ManualClock::new(T0);
    let mut ts = TempStore::new(StoreOptions {
        default_ttl: Some(Duration::from_secs(3600)),
        ..lifecycle_options(64 << 10, clock.clone())
    })
    .await;
    let store = ts.store().clone();

    // t0: put everything.
    let a = art(1);
    let shared = random_bytes(100, PART);
    let b = art(2).with_part("shared", shared.clone());
    let m20 = art(3);
    let default = art(4);
    let d = art(5).with_part("shared", shared.clone());
    let renewed_old = art(6);
    let reput_old = art(7);
    store
        .put_with("ttl:10m:a", a.clone(), ttl(10))
        .await
        .unwrap();
    store
        .put_with("ttl:10m:b", b.clone(), ttl(10))
        .await
        .unwrap();
    store
        .put_with("ttl:20m", m20.clone(), ttl(20))
        .await
        .unwrap();
    store.put("ttl:default", default.clone()).await.unwrap();
    store
        .put_with("ttl:2h:d", d.clone(), ttl(120))
        .await
        .unwrap();
    store
        .put_with("ttl:renewed", renewed_old.clone(), ttl(10))
        .await
        .unwrap();
    store
        .put_with("ttl:reput", reput_old.clone(), ttl(10))
        .await
        .unwrap();
    assert_eq!(store.stats().await.unwrap().artifacts, 7);

    // t0+5m: "ttl:renewed" is overwritten before it expires, with a 3 h TTL and new bytes.
    clock.advance(Duration::from_secs(5 * 60));
    let renewed = art(8);
    store
        .put_with("ttl:renewed", renewed.clone(), ttl(180))
        .await
        .unwrap();
    let renewed_expiry = T0 + 5 * MIN + 180 * MIN;

    // t0+25m: "ttl:reput" expired 15 minutes ago but no sweep ran yet; it is put again.
    clock.advance(Duration::from_secs(20 * 60));
    assert!(store.get("ttl:reput").await.unwrap().is_none());
    let reput = art(9);
    store.put("ttl:reput", reput.clone()).await.unwrap(); // default TTL: t0+85m

    // t0+30m: a, b (10 min) and the 20-minute artifact are due.
    clock.advance(Duration::from_secs(5 * 60));
    let due = set(&["ttl:10m:a", "ttl:10m:b", "ttl:20m"]);

    // A dry run reports them and changes nothing.
    let before = store.stats().await.unwrap();
    let dry = store
        .gc(GcOptions {
            dry_run: true,
            ..GcOptions::default()
        })
        .await
        .unwrap();
    assert!(dry.dry_run);
    assert_eq!(keys(&dry.expired), due, "dry run: {dry:?}");
    assert!(dry.evicted.is_empty());
    let after_dry = store.stats().await.unwrap();
    assert_eq!(after_dry.artifacts, before.artifacts);
    assert_eq!(after_dry.logical_bytes, before.logical_bytes);
    assert_eq!(after_dry.blobs, before.blobs);
    assert_eq!(after_dry.disk_bytes, before.disk_bytes);
    assert_eq!(after_dry.chunk_files, before.chunk_files);
    assert_eq!(after_dry.expired, 0, "a dry run removed something");
    let dry_again = store
        .gc(GcOptions {
            dry_run: true,
            ..GcOptions::default()
        })
        .await
        .unwrap();
    assert_eq!(keys(&dry_again.expired), due, "a dry run is repeatable");

    // The real sweep removes exactly those.
    let r = sweep(&store).await;
    assert_eq!(keys(&r.expired), due, "sweep at t0+30m: {r:?}");
    let s = store.stats().await.unwrap();
    assert_eq!(s.expired, 3);
    assert_eq!(s.artifacts, 4);
    assert_eq!(
        s.logical_bytes,
        default.logical_size() + d.logical_size() + renewed.logical_size() + reput.logical_size()
    );
    // default, d (own + shared), renewed (new bytes), reput (new bytes); the rest is collected.
    assert_eq!(s.blobs, 5, "{s:?}");
    assert_eq!(
        s.dead_blobs, 0,
        "gc drops zero-reference blob records: {s:?}"
    );
    for k in &due {
        assert!(store.get(k).await.unwrap().is_none(), "{k} still readable");
        assert!(!store.contains(k).await.unwrap());
    }
    assert_reads_back(&store, "ttl:default", &default).await;
    assert_reads_back(&store, "ttl:2h:d", &d).await; // shares a blob with swept "ttl:10m:b"
    assert_reads_back(&store, "ttl:renewed", &renewed).await;
    assert_reads_back(&store, "ttl:reput", &reput).await;
    assert!(store.verify().await.unwrap().is_clean());

    // A second pass at the same instant finds nothing, also after a restart.
    assert!(sweep(&store).await.expired.is_empty());
    drop(store);
    ts.reopen().await;
    let store = ts.store().clone();
    assert!(sweep(&store).await.expired.is_empty());
    assert_eq!(
        store.stats().await.unwrap().expired,
        3,
        "lifetime count persists"
    );
    assert!(store.get("ttl:10m:a").await.unwrap().is_none());

    // t0+65m: the default TTL (1 h) has passed for "ttl:default" only ("ttl:reput" was re-put
    // at t0+25m, so its default TTL ends at t0+85m).
    clock.set(T0 + 65 * MIN);
    let r = sweep(&store).await;
    assert_eq!(keys(&r.expired), set(&["ttl:default"]), "{r:?}");
    assert_reads_back(&store, "ttl:reput", &reput).await;

    // 1 ms before "ttl:renewed" expires: d (2 h) and the re-put key are due, renewed is not.
    clock.set(renewed_expiry - 1);
    let r = sweep(&store).await;
    assert_eq!(keys(&r.expired), set(&["ttl:2h:d", "ttl:reput"]), "{r:?}");
    assert_reads_back(&store, "ttl:renewed", &renewed).await;

    // At exactly created + ttl it is expired (as `get` already treats it), and swept.
    clock.set(renewed_expiry);
    let r = sweep(&store).await;
    assert_eq!(keys(&r.expired), set(&["ttl:renewed"]), "{r:?}");

    let s = store.stats().await.unwrap();
    assert_eq!(s.expired, 7);
    assert_eq!(s.artifacts, 0);
    assert_eq!(s.logical_bytes, 0);
    assert_eq!(s.blobs, 0);
    assert_eq!(s.dead_blobs, 0);
    assert!(store.list("").await.unwrap().is_empty());
    assert!(store.verify().await.unwrap().is_clean());
}
