//! The hash-verification layer alone, over a real fs-remote pack tier (opendal's fs service):
//! a record whose digest does not match the bytes it leads to is passed through by the bare
//! tier (every blob on its own is intact) and rejected, counted, by `Verified`. The same tier
//! also serves as a `fs-remote` backend from a config.

use pipecache::config::RemoteCommon;
use pipecache::tier::{
    BackendConfig, BackendKind, CacheBackend, CacheConfig, PackTier, Verified, WritePolicy,
};
use pipecache::{Artifact, CacheManager, StoredArtifact};
use pipecache_format::BlobHash;
use pipecache_format::record::Record;
use pipecache_format::remote::RemoteRecord;
use pipecache_test_support::random_bytes;
use pipecache_test_support::tiers::{fs_pack_tier, tier_options};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn verified_rejects_what_the_bare_tier_would_return() {
    let share = tempfile::tempdir().unwrap();
    let key = "video:s1-00000000000000cc:embeddings:model=clip";
    let art = Artifact::single(random_bytes(5, 40_000)).with_kind("embeddings");
    let item = StoredArtifact {
        artifact: art.clone(),
        created_ms: 1,
        expires_ms: None,
    };
    let bare = fs_pack_tier("share", share.path());
    bare.put(key, &item).await.unwrap();
    let checked = Verified::new(fs_pack_tier("share", share.path()));
    assert_eq!(
        checked.get(key).await.unwrap().map(|f| f.stored.artifact),
        Some(art.clone())
    );
    assert_eq!(checked.rejected(), 0);

    // Rewrite the record with another artifact's digest: blobs intact, artifact wrong.
    let path = PackTier::record_path(key);
    let raw = bare.store().get(&path).await.unwrap().unwrap();
    let mut rec = RemoteRecord::decode(&raw).unwrap();
    rec.digest = BlobHash::of(b"something else");
    bare.store().put(&path, rec.encode()).await.unwrap();

    let passed = bare
        .get(key)
        .await
        .unwrap()
        .expect("the bare tier checks blobs only");
    assert_eq!(passed.stored.artifact, art);
    let err = checked.get(key).await.unwrap_err();
    assert!(err.is_corruption(), "{err}");
    assert_eq!(checked.rejected(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fs_remote_backend_shares_artifacts_between_two_stores() {
    let share = tempfile::tempdir().unwrap();
    let config = CacheConfig {
        backends: vec![BackendConfig::FsRemote {
            remote: RemoteCommon {
                name: Some("share".into()),
                priority: 1,
                write_policy: WritePolicy::WriteThrough,
                timeout: None,
                queue_capacity: None,
            },
            path: share.path().to_owned(),
            gc_grace: None,
        }],
        ..CacheConfig::default()
    };
    let (da, db) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let a = CacheManager::open(&config, da.path(), tier_options(None), "t")
        .await
        .unwrap();
    let art = Artifact::single(random_bytes(6, 10_000));
    a.put("k", art.clone()).await.unwrap();
    a.close().await.unwrap();
    let b = CacheManager::open(&config, db.path(), tier_options(None), "t")
        .await
        .unwrap();
    assert_eq!(b.get("k").await.unwrap(), Some(art));
    // The config's default memory tier walks first, then the local tier, then the share.
    let s = b.tier_stats();
    assert_eq!(
        (
            s[0].kind,
            s[1].kind,
            s[2].name.as_str(),
            s[2].kind,
            s[2].hits
        ),
        (
            BackendKind::Memory,
            BackendKind::Local,
            "share",
            BackendKind::FsRemote,
            1
        )
    );
    b.close().await.unwrap();
}
