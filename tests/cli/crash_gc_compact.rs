//! Crash safety of GC and compaction: a child process runs gc and compaction in a loop beside
//! concurrent puts and deletes (small chunks, so there is always something to compact) and is
//! SIGKILLed at random moments. After every kill the store opens, `verify` is clean, no chunk
//! file is left that the index does not know, and no acknowledged artifact is lost.

use std::path::Path;
use std::time::Duration;

use pipecache::StoreOptions;
use pipecache_test_support::{AckLog, chunk_files, run_and_kill};
use rand::{Rng, SeedableRng, rngs::StdRng};

const KILLS: u64 = 30;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_during_gc_and_compaction_loses_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("pipecache.toml");
    // 4 KiB compaction batches: a kill can land between the batches of one chunk.
    std::fs::write(
        &cfg,
        "chunk_size = \"64KiB\"\ncompact_threshold = 0.9\ncompact_batch_size = \"4KiB\"\n",
    )
    .unwrap();
    let store_dir = dir.path().join("store");
    let bin = Path::new(env!("CARGO_BIN_EXE_pipecache"));
    let mut rng = StdRng::seed_from_u64(0xC0FFEE);
    let mut log = AckLog::default();
    let options = StoreOptions {
        gc_interval: None,
        chunk_size: 64 * 1024,
        ..StoreOptions::default()
    };
    for round in 0..KILLS {
        let seed = round.to_string();
        let args = [
            "--config",
            cfg.to_str().unwrap(),
            "stress-put",
            "--seed",
            &seed,
            "--keys",
            "32",
            "--concurrency",
            "3",
            "--gc",
        ];
        let wait = Duration::from_millis(rng.random_range(100..600));
        log.apply(&run_and_kill(bin, &store_dir, &args, wait));
        let report = log.check_store(&store_dir, options.clone(), round).await;
        // Open removed whatever an interrupted compaction left behind (verify reports chunk
        // files the index does not know as orphans, so is_clean covers it); check it directly too.
        assert!(report.orphan_chunk_files.is_empty());
        assert_eq!(report.chunks_checked, chunk_files(&store_dir).len() as u64);
    }
    assert!(log.acks > 100, "only {} acknowledged operations", log.acks);
    assert!(
        log.gc_passes > 20,
        "only {} gc passes completed: the kills did not land during gc",
        log.gc_passes
    );
}
