//! `sync pull --prefix video:<fp>:` warms exactly that video's artifacts.

use pipecache::Artifact;
use pipecache::tier::WritePolicy;
use pipecache_test_support::servers::S3Server;
use pipecache_test_support::tiers::open_s3_manager;
use pipecache_test_support::{json_like, list_keys};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pull_with_a_prefix_copies_only_that_video() {
    let s3 = S3Server::start();
    let (dir_a, dir_b) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let a = open_s3_manager(dir_a.path(), &s3, None, WritePolicy::WriteThrough).await;
    let mut keys = Vec::new();
    for fp in [
        "s1-aaaaaaaaaaaaaaaa",
        "s1-aaaaaaaaaaaaaaab",
        "s1-bbbbbbbbbbbbbbbb",
    ] {
        for (i, kind) in ["transcript:model_size=base", "descriptions:model=Qwen2-VL"]
            .iter()
            .enumerate()
        {
            let key = format!("video:{fp}:{kind}");
            let art = Artifact::single(json_like(keys.len() as u64 * 7 + i as u64, 30_000));
            // Write-through: the put returns once S3 has it.
            a.put(&key, art).await.unwrap();
            keys.push(key);
        }
    }
    a.close().await.unwrap();

    let b = open_s3_manager(dir_b.path(), &s3, None, WritePolicy::WriteThrough).await;
    let report = b
        .sync_pull(None, "video:s1-aaaaaaaaaaaaaaaa:", &|_, _| {})
        .await
        .unwrap();
    assert_eq!(report.pulled, 2, "{report:?}");
    assert!(report.corrupt.is_empty());
    let local = list_keys(b.local(), "").await;
    assert_eq!(
        local,
        vec![
            "video:s1-aaaaaaaaaaaaaaaa:descriptions:model=Qwen2-VL".to_owned(),
            "video:s1-aaaaaaaaaaaaaaaa:transcript:model_size=base".to_owned(),
        ],
        "a prefix of another video's fingerprint must not match"
    );
    // Pulling again copies nothing new.
    let again = b
        .sync_pull(None, "video:s1-aaaaaaaaaaaaaaaa:", &|_, _| {})
        .await
        .unwrap();
    assert_eq!((again.pulled, again.already_local), (0, 2));
    b.close().await.unwrap();
}
