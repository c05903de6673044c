//! An index whose metadata is gone, unreadable or from a newer version (truncated MANIFEST,
//! deleted CURRENT, a file where the directory was, a newer meta record) is refused with an
//! error that says so (the CLI names `rebuild-index --force`), and `rebuild-index --force`
//! restores every artifact without opening it; a rebuild killed after its new index was
//! complete is finished by the next open.

use std::path::Path;

use pipecache::{Store, StoreError as Error, StoreOptions};

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

/// Fills a store, lets `damage` break its index, checks that open refuses it as
/// `refused` says, then rebuilds with `--force` and checks every artifact came back.
async fn rebuild_after(damage: impl FnOnce(&Path), refused: impl FnOnce(&Error) -> bool) {
    let dir = tempfile::tempdir().unwrap();
    let model = filled_store(dir.path(), 40).await;
    damage(dir.path());
    let err = Store::open(dir.path(), StoreOptions::default())
        .await
        .unwrap_err();
    assert!(refused(&err), "{err:?}");
    rebuild_force(dir.path()).await;
    assert_all_restored(dir.path(), &model).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn truncated_manifest() {
    rebuild_after(
        |dir| {
            let m = manifest(dir);
            let len = std::fs::metadata(&m).unwrap().len();
            let file = std::fs::OpenOptions::new().write(true).open(&m).unwrap();
            file.set_len(len / 2).unwrap();
        },
        Error::is_index_damage,
    )
    .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn deleted_current_file() {
    rebuild_after(
        |dir| std::fs::remove_file(dir.join("index/CURRENT")).unwrap(),
        Error::is_index_damage,
    )
    .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn index_replaced_by_a_file() {
    rebuild_after(
        |dir| {
            std::fs::remove_dir_all(dir.join("index")).unwrap();
            std::fs::write(dir.join("index"), b"not a directory").unwrap();
        },
        Error::is_index_damage,
    )
    .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn index_from_a_newer_version() {
    use pipecache_format::record::{StoreMeta, Totals};
    use pipecache_index::{Index, IndexOptions};
    rebuild_after(
        |dir| {
            let (_index, writer) =
                Index::open(&dir.join("index"), &IndexOptions::default()).unwrap();
            let mut batch = writer.batch();
            batch.put_meta(&StoreMeta {
                v: 99,
                next_chunk_id: 1,
                open_chunk: None,
                totals: Totals::default(),
                created_ms: 0,
                next_seq: 1,
            });
            writer.commit(batch, true).unwrap();
        },
        |e| matches!(e, Error::UnsupportedVersion { .. }),
    )
    .await;
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

#[tokio::test(flavor = "multi_thread")]
async fn the_cli_names_the_next_step() {
    let dir = tempfile::tempdir().unwrap();
    let model = filled_store(dir.path(), 10).await;
    std::fs::remove_file(dir.path().join("index/CURRENT")).unwrap();
    let bin = Path::new(env!("CARGO_BIN_EXE_pipecache"));
    let key = model.keys().next().unwrap();
    let get = pipecache_test_support::run_cli(bin, dir.path(), &["get", key], None);
    assert_eq!(get.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&get.stderr);
    assert!(!stderr.contains("in use"), "{stderr}");
    assert!(
        stderr.contains("the index is damaged; run `pipecache rebuild-index --force`"),
        "{stderr}"
    );
    let rebuild =
        pipecache_test_support::run_cli(bin, dir.path(), &["rebuild-index", "--force"], None);
    assert!(
        rebuild.status.success(),
        "{}",
        String::from_utf8_lossy(&rebuild.stderr)
    );
    assert_all_restored(dir.path(), &model).await;
}
