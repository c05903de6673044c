//! A store whose filesystem another program filled: puts fail with NoSpace, the store still
//! opens and serves every acknowledged entry, `rm` and `gc` (from the CLI, each its own
//! process opening the store) free space, and puts work again. Nothing acknowledged is lost.

use std::collections::BTreeMap;
use std::path::Path;

use pipecache::{Artifact, Store, StoreOptions};
use pipecache_test_support::operations::SmallFs;
use pipecache_test_support::{manual_gc_options, random_bytes, run_cli};

fn options() -> StoreOptions {
    StoreOptions {
        default_ttl: None,
        // Puts may fill the disk: this test is about what happens then.
        min_free_space: Some(0),
        ..manual_gc_options(1 << 20)
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_full_disk_opens_frees_space_and_loses_nothing() {
    let fs = SmallFs::mount(40);
    let dir = fs.path().join("store");
    let store = Store::open(&dir, options()).await.unwrap();
    let mut acked: BTreeMap<String, Artifact> = BTreeMap::new();
    for i in 0..60u64 {
        let key = format!("video:{i:03}:keyframes");
        let a = Artifact::single(random_bytes(i, 200_000)).with_kind("keyframes");
        store.put(&key, a.clone()).await.unwrap();
        acked.insert(key, a);
    }
    // Another program fills what is left.
    let filler = fs.fill("filler");
    let err = store
        .put(
            "video:late:keyframes",
            Artifact::single(random_bytes(999, 200_000)),
        )
        .await
        .unwrap_err();
    assert!(err.is_no_space(), "{err:?}");
    store.close().await.unwrap();
    assert!(fs.free_bytes() < 64 << 10, "the filesystem is full");

    // The store opens on the full disk and serves every acknowledged entry.
    let store = Store::open(&dir, options()).await.unwrap();
    for (key, a) in &acked {
        assert_eq!(store.get(key).await.unwrap().as_ref(), Some(a), "{key}");
    }
    store.close().await.unwrap();

    // `rm` and `gc` free space, each in a process of its own.
    let bin = Path::new(env!("CARGO_BIN_EXE_pipecache"));
    let removed: Vec<String> = acked.keys().take(40).cloned().collect();
    for key in &removed[..5] {
        let out = run_cli(bin, &dir, &["rm", key], None);
        assert!(
            out.status.success(),
            "rm: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        acked.remove(key);
    }
    let before_gc = fs.free_bytes();
    let out = run_cli(bin, &dir, &["gc", "--max-size", "4MiB"], None);
    assert!(
        out.status.success(),
        "gc: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        fs.free_bytes() > before_gc + (4 << 20),
        "gc --max-size freed space: {} -> {}",
        before_gc,
        fs.free_bytes()
    );

    // Puts work again; eviction took some keys, the rest are intact.
    let store = Store::open(&dir, options()).await.unwrap();
    store
        .put("video:new:transcript", Artifact::single(b"{}".to_vec()))
        .await
        .unwrap();
    let mut kept = 0;
    for (key, a) in &acked {
        if let Some(got) = store.get(key).await.unwrap() {
            assert_eq!(&got, a, "{key}");
            kept += 1;
        }
    }
    assert!(kept > 0, "gc --max-size 4MiB keeps some artifacts");
    assert!(store.verify().await.unwrap().is_clean());
    store.close().await.unwrap();
    std::fs::remove_file(filler).unwrap();
}

#[tokio::test(flavor = "multi_thread")]
async fn a_store_without_its_reserve_still_opens_and_serves_gets() {
    let fs = SmallFs::mount(24);
    let dir = fs.path().join("store");
    let store = Store::open(&dir, options()).await.unwrap();
    let a = Artifact::single(random_bytes(5, 100_000));
    store.put("video:a:keyframes", a.clone()).await.unwrap();
    store.close().await.unwrap();
    // Without the reserve, nothing is left to release once the disk is full.
    std::fs::remove_file(dir.join("reserve")).unwrap();
    fs.fill("filler");
    let store = Store::open(&dir, options()).await.unwrap();
    assert_eq!(store.get("video:a:keyframes").await.unwrap(), Some(a));
    let stats = store.stats().await.unwrap();
    if stats.read_only {
        let err = store
            .put("video:b:keyframes", Artifact::single(vec![1; 10]))
            .await
            .unwrap_err();
        assert!(err.is_no_space(), "{err:?}");
    }
    store.close().await.unwrap();
}
