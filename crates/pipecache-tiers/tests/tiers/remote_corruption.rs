//! A remote object's bytes are altered: the read is a counted miss, never garbage, and the bad
//! copy is not promoted into the local tier. Covers a pack (S3) and a whole value (Redis).

use pipecache::Artifact;
use pipecache::tier::{RedisTier, WritePolicy};
use pipecache_test_support::random_bytes;
use pipecache_test_support::servers::{RedisServer, S3Server};
use pipecache_test_support::tiers::{
    open_s3_manager, open_s3_reader, open_temp_manager, redis_backend,
};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn altered_pack_bytes_are_rejected_counted_and_not_promoted() {
    let s3 = S3Server::start();
    let key = "video:s1-0123456789abcdef:keyframes:threshold=0.999";
    let art = Artifact::default()
        .with_part("f0.jpg", random_bytes(1, 50_000))
        .with_part("f1.jpg", random_bytes(2, 50_000));
    let (_dir_a, a) = open_s3_reader(&s3).await;
    a.put(key, art.clone()).await.unwrap();
    a.close().await.unwrap();

    // Flip one byte inside the second frame's payload, in the bucket itself.
    let raw = s3.raw_store();
    let packs = raw.list("packs/").await.unwrap();
    assert_eq!(packs.len(), 1);
    let mut bytes = raw.get(&packs[0].path).await.unwrap().unwrap();
    let at = bytes.len() - 100;
    bytes[at] ^= 0x01;
    raw.put(&packs[0].path, bytes).await.unwrap();

    let dir_b = tempfile::tempdir().unwrap();
    let b = open_s3_manager(dir_b.path(), &s3, None, WritePolicy::WriteThrough).await;
    assert_eq!(
        b.get(key).await.unwrap(),
        None,
        "corrupt bytes must not be returned"
    );
    b.wait_promotions().await;
    let stats = b.tier_stats();
    assert_eq!(stats[1].corrupt, 1, "{:?}", stats[1]);
    assert_eq!((stats[1].hits, stats[1].misses), (0, 0));
    assert_eq!(stats[0].promotions, 0);
    assert!(
        !b.local().contains(key).await.unwrap(),
        "a bad copy was promoted"
    );
    // Pull reports it by key and stores nothing.
    let pull = b.sync_pull(None, "", &|_, _| {}).await.unwrap();
    assert_eq!(pull.corrupt, vec![key.to_owned()]);
    assert_eq!(pull.pulled, 0);
    b.close().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn altered_redis_values_are_rejected_and_counted() {
    let redis = RedisServer::start();
    let key = "video:s1-0123456789abcdef:transcript:model_size=base";
    let art = Artifact::single(b"{\"text\":\"hello world\"}".to_vec()).with_kind("transcript");
    let (_dir_a, a) = open_temp_manager(
        vec![redis_backend(&redis.url(), WritePolicy::WriteThrough)],
        None,
    )
    .await;
    a.put(key, art).await.unwrap();
    a.close().await.unwrap();

    let raw = redis.raw_store();
    let name = RedisTier::object_name(key);
    let mut v = raw
        .get(&name)
        .await
        .unwrap()
        .expect("value written through");
    let last = v.len() - 1;
    v[last] ^= 0x20;
    raw.set(&name, v, None).await.unwrap();

    let (_dir_b, b) = open_temp_manager(
        vec![redis_backend(&redis.url(), WritePolicy::WriteThrough)],
        None,
    )
    .await;
    assert_eq!(b.get(key).await.unwrap(), None);
    b.wait_promotions().await;
    let stats = b.tier_stats();
    assert_eq!(stats[1].corrupt, 1, "{:?}", stats[1]);
    assert!(!b.local().contains(key).await.unwrap());
    b.close().await.unwrap();
}
