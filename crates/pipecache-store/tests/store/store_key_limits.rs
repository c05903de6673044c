//! Key limits of the library API: `put`, `get`, `delete` and `contains` refuse an empty key and
//! a key over 1024 bytes with `Error::InvalidKey` (bytes, not characters, are counted); a key
//! of exactly 1024 bytes works; and keys that look like paths are plain keys that never name a
//! file or directory, inside the store directory or outside it.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use pipecache_store::{Artifact, MAX_KEY_LEN, Store, StoreError as Error, StoreOptions};
use pipecache_test_support::{TempStore, list_keys, random_bytes};

/// Every path under `root`, relative to it.
fn walk(root: &Path) -> BTreeSet<PathBuf> {
    fn go(root: &Path, dir: &Path, out: &mut BTreeSet<PathBuf>) {
        for entry in std::fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            out.insert(path.strip_prefix(root).unwrap().to_owned());
            if path.is_dir() && !path.is_symlink() {
                go(root, &path, out);
            }
        }
    }
    let mut out = BTreeSet::new();
    go(root, root, &mut out);
    out
}

#[track_caller]
fn assert_invalid_key<T: std::fmt::Debug>(what: &str, r: pipecache_store::Result<T>) {
    assert!(
        matches!(r, Err(Error::InvalidKey { .. })),
        "{what}: expected Error::InvalidKey, got {r:?}"
    );
}

async fn round_trip(store: &Store, key: &str, artifact: &Artifact) {
    store.put(key, artifact.clone()).await.unwrap();
    assert!(store.contains(key).await.unwrap(), "{key:?} not contained");
    let got = store.get(key).await.unwrap();
    assert!(got.as_ref() == Some(artifact), "{key:?} read back {got:?}");
}

#[tokio::test]
async fn empty_and_over_long_keys_are_invalid() {
    let ts = TempStore::default_options().await;
    let store = ts.store();
    // 1025 bytes but only 342 characters: the limit counts bytes.
    let over = format!("{}é", "日".repeat(341));
    assert_eq!(over.len(), MAX_KEY_LEN + 1);
    assert_eq!(over.chars().count(), 342);
    let ascii_over = "k".repeat(MAX_KEY_LEN + 1);
    for key in ["", over.as_str(), ascii_over.as_str()] {
        let what = format!("key of {} bytes", key.len());
        assert_invalid_key(
            &format!("put {what}"),
            store.put(key, Artifact::single(b"x".to_vec())).await,
        );
        assert_invalid_key(&format!("get {what}"), store.get(key).await);
        assert_invalid_key(&format!("delete {what}"), store.delete(key).await);
        assert_invalid_key(&format!("contains {what}"), store.contains(key).await);
    }
    // A refused put wrote nothing.
    assert!(list_keys(store, "").await.is_empty());
    assert_eq!(store.stats().await.unwrap().artifacts, 0);
}

#[tokio::test]
async fn a_key_of_exactly_1024_bytes_round_trips() {
    let ts = TempStore::default_options().await;
    let store = ts.store();
    // 341 three-byte characters and one ASCII byte: exactly 1024 bytes.
    let key = format!("{}a", "日".repeat(341));
    assert_eq!(key.len(), MAX_KEY_LEN);
    let artifact = Artifact::single(random_bytes(1, 4000));
    round_trip(store, &key, &artifact).await;
    assert_eq!(list_keys(store, "日").await, [key.as_str()]);
    assert!(store.delete(&key).await.unwrap());
    assert!(!store.contains(&key).await.unwrap());
    assert_eq!(store.get(&key).await.unwrap(), None);
}

#[tokio::test]
async fn path_like_keys_are_plain_keys() {
    // The store sits two levels down, so `../../x` from the store directory (or from its
    // `chunks`/`index` subdirectories) would land inside `root`, where it would be seen.
    let root = tempfile::tempdir().unwrap();
    let dir = root.path().join("x").join("y").join("store");
    let store = Store::open(&dir, StoreOptions::default()).await.unwrap();
    // A first artifact, so the store's own files exist before the listing is taken.
    store
        .put("warm-up", Artifact::single(b"w".to_vec()))
        .await
        .unwrap();
    let keys = ["../../etc/passwd", "a/b", "/abs", ".", "..", "./a/../b"];
    let abs_existed = Path::new("/abs").exists();
    let before = walk(root.path());
    let top_before: BTreeSet<_> = before
        .iter()
        .filter(|p| p.parent() == Some(Path::new("x/y/store")))
        .cloned()
        .collect();

    let mut artifacts = Vec::new();
    for (i, key) in keys.iter().enumerate() {
        let artifact = Artifact::default()
            .with_part("data", random_bytes(10 + i as u64, 3000))
            .with_part("name", key.as_bytes().to_vec());
        round_trip(&store, key, &artifact).await;
        artifacts.push(artifact);
    }
    // Distinct keys, all listed as given.
    let mut want: Vec<String> = keys.iter().map(|k| k.to_string()).collect();
    want.push("warm-up".into());
    want.sort();
    assert_eq!(list_keys(&store, "").await, want);
    assert_eq!(list_keys(&store, "a/").await, ["a/b"]);
    for (key, artifact) in keys.iter().zip(&artifacts) {
        assert_eq!(store.get(key).await.unwrap().as_ref(), Some(artifact));
    }
    store.close().await.unwrap();
    // They survive a reopen; delete removes exactly the key asked for.
    let store = Store::open(&dir, StoreOptions::default()).await.unwrap();
    for (key, artifact) in keys.iter().zip(&artifacts) {
        assert_eq!(
            store.get(key).await.unwrap().as_ref(),
            Some(artifact),
            "{key:?}"
        );
    }
    assert!(store.delete("a/b").await.unwrap());
    assert!(!store.contains("a/b").await.unwrap());
    assert!(store.contains("./a/../b").await.unwrap());
    assert!(store.contains("..").await.unwrap());
    store.close().await.unwrap();

    // Nothing outside the store directory changed, the store's top level is the same, and
    // nothing under it is named after a key or a piece of one (its own files are RocksDB
    // files and numbered chunk files).
    let after = walk(root.path());
    let outside = |set: &BTreeSet<PathBuf>| -> BTreeSet<PathBuf> {
        set.iter()
            .filter(|p| !p.starts_with("x/y/store/"))
            .cloned()
            .collect()
    };
    assert_eq!(
        outside(&after),
        outside(&before),
        "entries outside the store changed"
    );
    let top_after: BTreeSet<_> = after
        .iter()
        .filter(|p| p.parent() == Some(Path::new("x/y/store")))
        .cloned()
        .collect();
    assert_eq!(top_after, top_before, "the store's top level changed");
    let pieces = ["etc", "passwd", "a", "b", "abs"];
    for p in after.difference(&before) {
        let name = p.file_name().unwrap().to_string_lossy();
        assert!(
            !pieces.contains(&name.as_ref()),
            "{} is named after a key",
            p.display()
        );
    }
    assert_eq!(Path::new("/abs").exists(), abs_existed, "/abs appeared");
}
