//! What dedup spared is counted per tier and kind: a put whose parts the tier already held
//! (from an earlier put of any kind, or an earlier part of the same put) adds their raw bytes
//! to that kind's `deduplicated_bytes`, on the local store and on a pack tier alike.

use pipecache::Artifact;
use pipecache::tier::{KindStats, OTHER, WritePolicy};
use pipecache_test_support::random_bytes;
use pipecache_test_support::tiers::{fs_remote_backend, open_classified_manager};

fn deduplicated(stats: &[KindStats], kind: &str) -> u64 {
    stats
        .iter()
        .find(|k| k.kind == kind)
        .map(|k| k.deduplicated_bytes)
        .expect("every kind is reported")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_kind_counts_the_bytes_dedup_spared_each_tier() {
    let dir = tempfile::tempdir().unwrap();
    let remote = tempfile::tempdir().unwrap();
    let m = open_classified_manager(
        dir.path(),
        vec![fs_remote_backend(remote.path(), WritePolicy::WriteThrough)],
    )
    .await;
    let intro = random_bytes(1, 10_000);
    let twice = random_bytes(2, 700);
    let puts = [
        // Nothing held yet.
        (
            "cheap/v1/frames",
            vec![intro.clone(), random_bytes(3, 5_000)],
        ),
        // The intro again.
        (
            "cheap/v2/frames",
            vec![intro.clone(), random_bytes(4, 3_000)],
        ),
        // The intro, from another kind.
        ("dear/v1/frames", vec![intro.clone()]),
        // One part twice in the same put.
        ("other-key", vec![twice.clone(), twice.clone()]),
    ];
    for (key, parts) in puts {
        let mut a = Artifact::default().with_kind("frames");
        for (i, p) in parts.into_iter().enumerate() {
            a = a.with_part(format!("p{i}"), p);
        }
        m.put(key, a).await.unwrap();
    }

    let tiers = m.tier_stats();
    assert_eq!(tiers.len(), 2, "local and the pack tier: {tiers:?}");
    for tier in &tiers {
        let by_kind = &tier.by_kind;
        assert_eq!(
            (
                deduplicated(by_kind, "cheap"),
                deduplicated(by_kind, "dear"),
                deduplicated(by_kind, OTHER)
            ),
            (10_000, 10_000, 700),
            "{}: {by_kind:?}",
            tier.name
        );
        assert_eq!(tier.by_kind.iter().map(|k| k.puts).sum::<u64>(), 4);
    }
    // The store-wide figure is the local tier's sum.
    assert_eq!(
        m.local().stats().await.unwrap().counters.bytes_deduped,
        20_700
    );
    m.close().await.unwrap();
}
