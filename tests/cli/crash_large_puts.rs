//! Crash safety of direct writes: a child process puts artifacts that each carry a new 4-6 MiB
//! part (written by the putting thread into a chunk file of its own, several in parallel),
//! beside deletes and a gc and compaction loop, and is SIGKILLed at random moments. After
//! every kill the store opens, `verify` is clean (no orphan chunk file either), and no
//! acknowledged artifact is lost.

use std::path::Path;
use std::time::Duration;

use pipecache::StoreOptions;
use pipecache_test_support::{AckLog, chunk_files, run_and_kill};
use rand::{Rng, SeedableRng, rngs::StdRng};

const KILLS: u64 = 30;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_during_parallel_large_puts_loses_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let store_dir = dir.path().join("store");
    let bin = Path::new(env!("CARGO_BIN_EXE_pipecache"));
    let mut rng = StdRng::seed_from_u64(0x1A26E);
    let mut log = AckLog::default();
    let options = StoreOptions {
        gc_interval: None,
        ..StoreOptions::default()
    };
    for round in 0..KILLS {
        let seed = round.to_string();
        let args = [
            "stress-put",
            "--seed",
            &seed,
            "--keys",
            "8",
            "--concurrency",
            "4",
            "--large",
            "--gc",
        ];
        let wait = Duration::from_millis(rng.random_range(100..700));
        log.apply(&run_and_kill(bin, &store_dir, &args, wait));
        let report = log.check_store(&store_dir, options.clone(), round).await;
        assert!(report.orphan_chunk_files.is_empty());
        assert_eq!(report.chunks_checked, chunk_files(&store_dir).len() as u64);
    }
    assert!(log.acks > 60, "only {} acknowledged operations", log.acks);
}
