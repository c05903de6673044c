//! One write-back queue, one manager: a second manager built on a clone of the same store
//! with a write-back tier of the same name is refused (both would upload and settle the same
//! entries) until the first is closed; other tier names are unaffected.

use pipecache::tier::WritePolicy;
use pipecache::{CacheManager, Error, StoreError};
use pipecache_test_support::TempStore;
use pipecache_test_support::tiers::{fs_pack_tier, tier_options};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_write_back_queue_is_served_by_one_manager_at_a_time() {
    let share = tempfile::tempdir().unwrap();
    let ts = TempStore::new(tier_options(None)).await;
    let build = |name: &str, policy: WritePolicy| {
        CacheManager::builder(ts.store().clone())
            .pack_tier(fs_pack_tier(name, share.path()), 1, policy, 100)
            .build()
    };

    let first = build("share", WritePolicy::WriteBack).await.unwrap();
    match build("share", WritePolicy::WriteBack).await {
        Err(Error::Store(StoreError::QueueInUse { queue })) => {
            assert_eq!(queue, "write-back:share")
        }
        other => panic!("a second manager on the same queue was not refused: {other:?}"),
    }
    // A write-through tier has the same queue (its calls are recorded there until applied).
    match build("share", WritePolicy::WriteThrough).await {
        Err(Error::Store(StoreError::QueueInUse { queue })) => {
            assert_eq!(queue, "write-back:share")
        }
        other => panic!("a write-through manager on the same queue was not refused: {other:?}"),
    }
    let other_name = build("mirror", WritePolicy::WriteBack).await.unwrap();
    let write_through = build("mirror2", WritePolicy::WriteThrough).await.unwrap();
    // A clone shares the first manager's queue and claim: it is not a second manager.
    let clone = first.clone();
    drop(clone);

    first.close().await.unwrap();
    let again = build("share", WritePolicy::WriteBack).await.unwrap();
    for m in [again, other_name, write_through] {
        m.close().await.unwrap();
    }
}
