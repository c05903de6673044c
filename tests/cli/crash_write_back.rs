//! Crash safety of remote writes: a child process doing concurrent puts and deletes through a
//! manager with a write-back (or write-through) fs-remote tier is SIGKILLed at random moments. After every kill
//! the queue drains, and the remote tier holds exactly what the local tier holds: no
//! acknowledged put is missing upstream (its queue entry commits with it) and no deleted key
//! is brought back upstream by an upload that raced the delete.

use std::path::Path;
use std::time::Duration;

use pipecache::StoreOptions;
use pipecache::tier::WritePolicy;
use pipecache_test_support::tiers::{fs_remote_backend, open_manager, open_temp_manager};
use pipecache_test_support::{AckLog, run_and_kill};
use rand::{Rng, SeedableRng, rngs::StdRng};

const KILLS: u64 = 20;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_never_separates_a_put_from_its_upload() {
    kill_rounds(WritePolicy::WriteBack, KILLS, 0xB4C4).await;
}

/// A write-through put records its upload in the local commit too: a kill between the commit
/// and the upload (or during it) leaves the entry, and the restarted manager sends it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_never_separates_a_write_through_put_from_its_upload() {
    kill_rounds(WritePolicy::WriteThrough, KILLS / 2, 0x7C4).await;
}

async fn kill_rounds(policy: WritePolicy, kills: u64, seed: u64) {
    let policy_name = match policy {
        WritePolicy::WriteBack => "write-back",
        WritePolicy::WriteThrough => "write-through",
    };
    let dir = tempfile::tempdir().unwrap();
    let store_dir = dir.path().join("store");
    let remote_dir = dir.path().join("remote");
    let cfg = dir.path().join("pipecache.toml");
    std::fs::write(
        &cfg,
        format!(
            "[[backends]]\ntype = \"fs-remote\"\npriority = 1\npath = {:?}\nwrite_policy = \"{policy_name}\"\n",
            remote_dir.display().to_string()
        ),
    )
    .unwrap();
    let cfg = cfg.display().to_string();
    let bin = Path::new(env!("CARGO_BIN_EXE_pipecache"));
    let mut rng = StdRng::seed_from_u64(seed);
    let mut log = AckLog::default();
    let mut uploaded = 0;
    for round in 0..kills {
        let seed = round.to_string();
        let args = [
            "--config",
            &cfg,
            "stress-put",
            "--seed",
            &seed,
            "--keys",
            "24",
            "--concurrency",
            "4",
        ];
        let wait = Duration::from_millis(rng.random_range(100..500));
        log.apply(&run_and_kill(bin, &store_dir, &args, wait));

        // Restart: what the child queued is still queued, and drains.
        let m = open_manager(
            &store_dir,
            vec![fs_remote_backend(&remote_dir, policy)],
            None,
        )
        .await;
        m.drain_queues(Duration::from_secs(60))
            .await
            .unwrap_or_else(|e| panic!("round {round}: drain: {e}"));
        uploaded += m.tier_stats()[1].puts;
        m.close().await.unwrap();

        let options = StoreOptions {
            gc_interval: None,
            ..StoreOptions::default()
        };
        log.check_store(&store_dir, options, round).await;
        // A machine with an empty local tier sees exactly the local tier's state (a fresh
        // reader each round, so nothing it promoted earlier can hide the remote's state).
        let (_reader_dir, reader) = open_temp_manager(
            vec![fs_remote_backend(&remote_dir, WritePolicy::WriteThrough)],
            None,
        )
        .await;
        log.check_manager(&reader, round, "the remote tier").await;
        reader.close().await.unwrap();
    }
    assert!(
        log.acks as u64 > 5 * kills,
        "the child acknowledged only {} operations in {kills} rounds",
        log.acks
    );
    assert!(
        uploaded > 0,
        "{policy_name}: no round left uploads for the restart to drain"
    );
}
