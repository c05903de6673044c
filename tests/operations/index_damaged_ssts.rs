//! Bytes flipped in the index's SST files: every get returns the right bytes or a
//! corruption error (never wrong bytes, never "in use"), `verify` reports the damage, and
//! `rebuild-index --force` restores every artifact from the chunk files.

use std::collections::BTreeMap;
use std::path::Path;

use pipecache::{Artifact, Store, StoreError as Error, StoreOptions};
use pipecache_test_support::operations::{damage_index_ssts, flush_index};
use pipecache_test_support::{manual_gc_options, random_bytes, run_cli};

fn options() -> StoreOptions {
    manual_gc_options(256 << 10)
}

/// Puts `n` artifacts into a new store in `dir` and returns them by key.
pub(crate) async fn filled_store(dir: &Path, n: u64) -> BTreeMap<String, Artifact> {
    let store = Store::open(dir, options()).await.unwrap();
    let mut model = BTreeMap::new();
    for i in 0..n {
        let a = Artifact::default()
            .with_kind("keyframes")
            .with_part("shared.jpg", random_bytes(1, 2000))
            .with_part("own.jpg", random_bytes(100 + i, 3000 + i as usize))
            .with_meta("i", i.to_string());
        let key = format!("video:{i:04}:keyframes");
        store.put(&key, a.clone()).await.unwrap();
        model.insert(key, a);
    }
    store.close().await.unwrap();
    model
}

pub(crate) async fn assert_all_restored(dir: &Path, model: &BTreeMap<String, Artifact>) {
    let store = Store::open(dir, options()).await.unwrap();
    for (key, a) in model {
        assert_eq!(store.get(key).await.unwrap().as_ref(), Some(a), "{key}");
    }
    assert_eq!(store.stats().await.unwrap().artifacts, model.len() as u64);
    assert!(store.verify().await.unwrap().is_clean());
    store.close().await.unwrap();
}

#[tokio::test(flavor = "multi_thread")]
async fn damaged_ssts_are_corruption_and_rebuild_restores_everything() {
    let dir = tempfile::tempdir().unwrap();
    let model = filled_store(dir.path(), 300).await;
    flush_index(dir.path());
    assert!(
        damage_index_ssts(dir.path(), 97) > 0,
        "the index has SST files"
    );

    let mut errors = 0;
    match Store::open(dir.path(), options()).await {
        Err(e) => {
            assert!(e.is_index_damage(), "open: {e:?}");
            errors += 1;
        }
        Ok(store) => {
            for (key, a) in &model {
                match store.get(key).await {
                    Ok(Some(got)) => assert_eq!(&got, a, "{key}: wrong bytes"),
                    Ok(None) => panic!("{key}: a damaged index answered a miss"),
                    Err(e) => {
                        assert!(e.is_corruption(), "{key}: {e:?}");
                        assert!(!matches!(e, Error::StoreInUse { .. }));
                        errors += 1;
                    }
                }
            }
            let report = store.verify().await.unwrap();
            assert!(report.index_damage.is_some(), "{report:?}");
            store.close().await.unwrap();
        }
    }
    assert!(errors > 0, "flipped bytes in every SST went unnoticed");

    let bin = Path::new(env!("CARGO_BIN_EXE_pipecache"));
    let key = model.keys().next().unwrap();
    let get = run_cli(bin, dir.path(), &["get", key, "-o", "/dev/null"], None);
    let stderr = String::from_utf8_lossy(&get.stderr);
    if !get.status.success() {
        assert!(!stderr.contains("in use"), "{stderr}");
        assert!(
            stderr.contains("rebuild-index --force"),
            "the CLI names the next step: {stderr}"
        );
    }
    let verify = run_cli(bin, dir.path(), &["verify"], None);
    assert_eq!(
        verify.status.code(),
        Some(1),
        "verify reports the damage: {}",
        String::from_utf8_lossy(&verify.stderr)
    );

    let rebuild = run_cli(bin, dir.path(), &["rebuild-index", "--force"], None);
    assert!(
        rebuild.status.success(),
        "{}",
        String::from_utf8_lossy(&rebuild.stderr)
    );
    assert_all_restored(dir.path(), &model).await;
}
