//! Content fingerprints are remembered per file: a video is read once per version, not on
//! every call, and any rewrite (even one that puts the old mtime back, or a replacement by
//! rename) is read again. A file written within the timestamp-granularity slack of the read
//! is never remembered (git's "racily clean" rule). The store's clock stands in for "now".

use std::time::Duration;

use pipecache::{ManualClock, StoreOptions};
use pipecache_test_support::pipeline::{LocalPipeline, one_segment_transcript, set_mtime};
use pipecache_test_support::tiers::wall_ms;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_video_is_read_once_per_version() {
    let clock = ManualClock::new(wall_ms());
    let p = LocalPipeline::with_options(StoreOptions {
        gc_interval: None,
        clock: clock.clone(),
        ..StoreOptions::default()
    })
    .await;
    let (cache, video) = (&p.cache, p.video("clip.mp4", 1, 300_000));

    // Just written: racily clean, read on every call.
    let fp0 = cache.fingerprint(&video).await.unwrap();
    assert_eq!(cache.fingerprint(&video).await.unwrap(), fp0);
    assert_eq!(cache.videos_hashed(), 2);

    // Once its timestamps are older than the slack, one read serves every later call. (The
    // clock now runs 10 s ahead of the file system's: every later write counts as settled.)
    clock.advance(Duration::from_secs(10));
    assert_eq!(cache.fingerprint(&video).await.unwrap(), fp0);
    let t = one_segment_transcript("hello", 1_000);
    cache
        .set_transcript(&video, &t, "base", "en")
        .await
        .unwrap();
    assert_eq!(
        cache.get_transcript(&video, "base", "en").await.unwrap(),
        Some(t)
    );
    assert_eq!(cache.videos_hashed(), 3, "set and get read the video again");

    // Same size, old mtime put back, different bytes: the change time gives it away.
    let mtime = std::fs::metadata(&video).unwrap().modified().unwrap();
    p.video("clip.mp4", 2, 300_000);
    set_mtime(&video, mtime);
    let fp1 = cache.fingerprint(&video).await.unwrap();
    assert_ne!(fp1, fp0);
    assert_eq!(
        cache.get_transcript(&video, "base", "en").await.unwrap(),
        None
    );
    assert_eq!(cache.videos_hashed(), 4);

    // Replaced by rename with the same bytes, size and mtime: a new file (new inode and change
    // time), read again.
    clock.advance(Duration::from_secs(10));
    assert_eq!(cache.fingerprint(&video).await.unwrap(), fp1);
    assert_eq!(cache.videos_hashed(), 4);
    let other = p.video("next.mp4", 2, 300_000);
    set_mtime(&other, mtime);
    std::fs::rename(&other, &video).unwrap();
    clock.advance(Duration::from_secs(10));
    assert_eq!(cache.fingerprint(&video).await.unwrap(), fp1);
    assert_eq!(cache.videos_hashed(), 5);
    assert_eq!(cache.fingerprint(&video).await.unwrap(), fp1);
    assert_eq!(cache.videos_hashed(), 5);
}
