//! Crash safety of puts and deletes: a child process doing concurrent puts and deletes is
//! SIGKILLed at random moments, 50 times over one store. After every kill the store opens,
//! `verify` is clean, and every acknowledged operation is visible (a key may also show the one
//! operation that had begun but was not acknowledged when the child died).

use std::path::Path;
use std::time::Duration;

use pipecache::StoreOptions;
use pipecache_test_support::{AckLog, run_and_kill};
use rand::{Rng, SeedableRng, rngs::StdRng};

const KILLS: u64 = 50;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_during_puts_loses_no_acknowledged_entry() {
    let dir = tempfile::tempdir().unwrap();
    let mut rng = StdRng::seed_from_u64(0x5EED);
    let mut log = AckLog::default();
    let bin = Path::new(env!("CARGO_BIN_EXE_pipecache"));
    for round in 0..KILLS {
        // Random kill moments: some right after start (during open/recovery), most mid-stream.
        let wait_ms = if rng.random_range(0..5) == 0 {
            rng.random_range(0..40)
        } else {
            rng.random_range(50..400)
        };
        let seed = round.to_string();
        let args = [
            "stress-put",
            "--seed",
            &seed,
            "--keys",
            "48",
            "--concurrency",
            "4",
        ];
        log.apply(&run_and_kill(
            bin,
            dir.path(),
            &args,
            Duration::from_millis(wait_ms),
        ));
        let options = StoreOptions {
            gc_interval: None,
            ..StoreOptions::default()
        };
        log.check_store(dir.path(), options, round).await;
    }
    assert!(
        log.acks > 200,
        "the child acknowledged only {} operations in {KILLS} rounds",
        log.acks
    );
}
