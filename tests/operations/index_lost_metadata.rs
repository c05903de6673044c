//! An index whose metadata is gone or unreadable (truncated MANIFEST, deleted CURRENT, a
//! file where the directory was) is index damage, and `rebuild-index --force` restores every
//! artifact without opening it; a rebuild killed after its new index was complete is
//! finished by the next open.

use std::path::Path;

use pipecache::{Store, StoreOptions};

use super::index_damaged_ssts::{assert_all_restored, filled_store};

fn manifest(dir: &Path) -> std::path::PathBuf {
    std::fs::read_dir(dir.join("index"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| {
            p.file_name()
                .unwrap()
                .to_string_lossy()
                .starts_with("MANIFEST-")
        })
        .expect("a MANIFEST file")
}

async fn rebuild_force(dir: &Path) {
    let report = Store::rebuild_index(dir, StoreOptions::default(), true, |_, _| {})
        .await
        .unwrap();
    assert!(report.lost_keys.is_empty(), "{report:?}");
}

#[tokio::test(flavor = "multi_thread")]
async fn truncated_manifest() {
    let dir = tempfile::tempdir().unwrap();
    let model = filled_store(dir.path(), 40).await;
    let m = manifest(dir.path());
    let len = std::fs::metadata(&m).unwrap().len();
    std::fs::OpenOptions::new()
        .write(true)
        .open(&m)
        .unwrap()
        .set_len(len / 2)
        .unwrap();
    let err = Store::open(dir.path(), StoreOptions::default())
        .await
        .unwrap_err();
    assert!(err.is_index_damage(), "{err:?}");
    rebuild_force(dir.path()).await;
    assert_all_restored(dir.path(), &model).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn deleted_current_file() {
    let dir = tempfile::tempdir().unwrap();
    let model = filled_store(dir.path(), 40).await;
    std::fs::remove_file(dir.path().join("index/CURRENT")).unwrap();
    let err = Store::open(dir.path(), StoreOptions::default())
        .await
        .unwrap_err();
    assert!(err.is_index_damage(), "{err:?}");
    rebuild_force(dir.path()).await;
    assert_all_restored(dir.path(), &model).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn index_replaced_by_a_file() {
    let dir = tempfile::tempdir().unwrap();
    let model = filled_store(dir.path(), 40).await;
    std::fs::remove_dir_all(dir.path().join("index")).unwrap();
    std::fs::write(dir.path().join("index"), b"not a directory").unwrap();
    assert!(
        Store::open(dir.path(), StoreOptions::default())
            .await
            .is_err()
    );
    rebuild_force(dir.path()).await;
    assert_all_restored(dir.path(), &model).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_rebuild_killed_mid_swap_is_finished_by_open() {
    let dir = tempfile::tempdir().unwrap();
    let model = filled_store(dir.path(), 40).await;
    rebuild_force(dir.path()).await;
    // The state between the swap's renames: a complete `index.new`, a damaged `index`.
    std::fs::rename(dir.path().join("index"), dir.path().join("index.new")).unwrap();
    std::fs::create_dir(dir.path().join("index")).unwrap();
    std::fs::write(dir.path().join("index/CURRENT"), b"garbage").unwrap();
    assert_all_restored(dir.path(), &model).await;
    assert!(!dir.path().join("index.new").exists());
    assert!(!dir.path().join("index.old").exists());
}
