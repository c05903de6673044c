//! A put or delete whose caller stops waiting (a timeout around it) still settles its
//! queue reservation (write-back, and write-through): the queue length returns to zero and
//! the queue drains.
//! Before, a put refused by `if_absent` and cancelled after reserving left its slot counted
//! forever (`drain_queues` timed out) and its key pending.

use std::time::Duration;

use pipecache::tier::WritePolicy;
use pipecache::{Artifact, PutOptions};
use pipecache_test_support::json_like;
use pipecache_test_support::tiers::{fs_remote_backend, open_temp_manager};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cancelled_puts_and_deletes_leave_no_slot_behind() {
    cancelled_calls(WritePolicy::WriteBack, |_| Duration::ZERO).await;
}

/// A write-through call applies its own entry after the local commit: cancelled at any point
/// (timeouts from zero to a few milliseconds land before, during and after its upload and
/// the entry's removal), the entry is settled or left to the worker, never counted forever.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cancelled_write_through_calls_leave_no_entry_behind() {
    cancelled_calls(WritePolicy::WriteThrough, |i| {
        Duration::from_micros(i % 5 * 900)
    })
    .await;
}

async fn cancelled_calls(policy: WritePolicy, timeout: impl Fn(u64) -> Duration) {
    let share = tempfile::tempdir().unwrap();
    let (_dir, m) = open_temp_manager(vec![fs_remote_backend(share.path(), policy)], None).await;
    let key = |i: u64| format!("video:c-{i:016x}:transcript:model_size=base");
    let art = |i: u64| Artifact::single(json_like(i, 2_000)).with_kind("transcript");
    m.put(&key(0), art(0)).await.unwrap();
    let refused = PutOptions {
        if_absent: true,
        ..PutOptions::default()
    };
    // A zero timeout polls the call once (it reserves its queue slot), then drops it, most
    // of the time; counted, so the test knows the window was hit.
    let mut cancelled = [0u64; 3];
    for i in 1..=50u64 {
        let t = timeout(i);
        let r = tokio::time::timeout(t, m.put_with(&key(0), art(i), refused)).await;
        cancelled[0] += u64::from(r.is_err());
        let r = tokio::time::timeout(t, m.put(&key(i), art(i))).await;
        cancelled[1] += u64::from(r.is_err());
        let r = tokio::time::timeout(t, m.delete(&key(i + 1_000))).await;
        cancelled[2] += u64::from(r.is_err());
    }
    assert!(
        cancelled.iter().all(|&n| n >= 1),
        "cancelled: {cancelled:?}"
    );
    m.drain_queues(Duration::from_secs(30)).await.unwrap();
    assert_eq!(m.tier_stats()[1].queue_length, 0);
    // The refused puts changed nothing; the cancelled new puts landed everywhere.
    assert_eq!(m.get(&key(0)).await.unwrap(), Some(art(0)));
    m.close().await.unwrap();
    let (_other_dir, other) = open_temp_manager(
        vec![fs_remote_backend(share.path(), WritePolicy::WriteThrough)],
        None,
    )
    .await;
    assert_eq!(other.get(&key(0)).await.unwrap(), Some(art(0)));
    for i in 1..=50u64 {
        assert_eq!(
            other.get(&key(i)).await.unwrap(),
            Some(art(i)),
            "{}",
            key(i)
        );
    }
    other.close().await.unwrap();
}
