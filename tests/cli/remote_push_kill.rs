//! `pipecache sync push` (pipelined: the next batch is packed while one uploads) SIGKILLed
//! part-way through a push to S3: the local store still
//! verifies, a second push sends only what had not arrived, a third sends nothing, and another
//! machine reads every artifact back byte-identical.

use pipecache::tier::WritePolicy;
use pipecache_test_support::servers::S3Server;
use pipecache_test_support::tiers::{open_manager, open_s3_reader, s3_backend, write_cli_config};
use pipecache_test_support::{
    assert_success, clip_artifact, clip_key, pipecache_bin, run_and_kill_when, run_cli, stdout_json,
};

/// Artifacts in the store, one incompressible part each (so bytes up are exact to a margin).
const N: u64 = 320;
const SIZE: usize = 16 * 1024;
/// Artifacts per pack: the push is N / PER_BATCH batches one after another, each a pack, then
/// its index, then its records (a few at a time).
const PER_BATCH: u64 = 32;
/// Upper bound on what a pushed artifact costs besides its part's bytes (frame header in the
/// pack, its share of the pack index, its record: a few hundred bytes).
const OVERHEAD: u64 = 1024;

#[test]
fn a_killed_push_resumes_without_resending_what_arrived() {
    let rt = tokio::runtime::Runtime::new().unwrap();
    let s3 = S3Server::start();
    let work = tempfile::tempdir().unwrap();
    let store = work.path().join("store");
    rt.block_on(async {
        let local = open_manager(&store, vec![], None).await;
        for i in 0..N {
            local
                .put(&clip_key(i), clip_artifact(i, SIZE))
                .await
                .unwrap();
        }
        local.close().await.unwrap();
    });
    let cfg = work.path().join("pipecache.toml");
    write_cli_config(
        &cfg,
        vec![s3_backend(
            &s3.endpoint(),
            s3.bucket(),
            WritePolicy::WriteThrough,
        )],
    );
    let batch = (PER_BATCH * SIZE as u64).to_string();
    let push = [
        "--config",
        cfg.to_str().unwrap(),
        "sync",
        "push",
        "--json",
        "--batch-size",
        &batch,
    ];

    // The bucket as the tier lays it out, watched from here while the child pushes.
    let bucket = s3.raw_store();
    let records = || {
        rt.block_on(bucket.list("records/"))
            .expect("list the bucket's records")
            .len()
    };
    // Killed after a batch has landed whole, while the next one's records are arriving:
    // its pack and index are there, some of its records are not.
    run_and_kill_when(pipecache_bin!(), &store, &push, || {
        let n = records() as u64;
        n > PER_BATCH && (1..PER_BATCH / 2).contains(&(n % PER_BATCH))
    });
    // Requests the server had whole when the child died may still land; none can start.
    let at_kill = records() as u64;

    // The store the child was killed in opens and verifies clean (exit 0).
    let out = run_cli(pipecache_bin!(), &store, &["verify", "--json"], None);
    assert_success(&out);
    let verify = stdout_json(&out);
    assert_eq!(verify["artifacts_checked"], N, "{verify}");

    let out = run_cli(pipecache_bin!(), &store, &push, None);
    assert_success(&out);
    let second = stdout_json(&out);
    let field = |r: &serde_json::Value, name: &str| {
        r[name]
            .as_u64()
            .unwrap_or_else(|| panic!("no {name} in {r}"))
    };
    let (pushed, already) = (field(&second, "pushed"), field(&second, "already_remote"));
    assert_eq!(field(&second, "artifacts"), N, "{second}");
    assert_eq!(field(&second, "pending_upload"), 0, "{second}");
    assert_eq!(pushed + already, N, "{second}");
    assert!(
        already >= at_kill,
        "{at_kill} records had arrived before the resumed push, which found only {already}: {second}"
    );
    assert!(
        already < N,
        "the kill landed after the push had finished, not part-way: {second}"
    );
    // Nothing that arrived is sent again. Keys go in order, a batch at a time, so at most
    // one batch was cut: if some of its records had landed, its pack and index had too and
    // the rest of it is pushed with blobs from that pack; if none had, its pack may have
    // landed with or without its index (reused whole, or uploaded again).
    let (uploaded, reused) = (
        field(&second, "blobs_uploaded"),
        field(&second, "blobs_reused"),
    );
    assert_eq!(uploaded + reused, pushed, "{second}");
    let cut = already % PER_BATCH;
    if cut == 0 {
        assert!(reused == 0 || reused == PER_BATCH, "{second}");
    } else {
        assert_eq!(
            reused,
            PER_BATCH - cut,
            "the cut batch's blobs must come from its pack: {second}"
        );
    }
    let bytes_up = field(&second, "bytes_up");
    assert!(
        bytes_up >= uploaded * SIZE as u64
            && bytes_up <= uploaded * SIZE as u64 + pushed * OVERHEAD,
        "{bytes_up} bytes up for {pushed} artifacts pushed, {uploaded} blobs uploaded: {second}"
    );
    assert_eq!(records(), N as usize, "the resumed push left records out");

    let out = run_cli(pipecache_bin!(), &store, &push, None);
    assert_success(&out);
    let third = stdout_json(&out);
    assert_eq!(
        (
            field(&third, "pushed"),
            field(&third, "already_remote"),
            field(&third, "packs"),
            field(&third, "bytes_up"),
            field(&third, "put_requests"),
        ),
        (0, N, 0, 0, 0),
        "a push after a complete one uploaded something: {third}"
    );

    // Another machine with an empty local tier reads each artifact from the bucket.
    rt.block_on(async {
        let (_dir, reader) = open_s3_reader(&s3).await;
        for i in 0..N {
            assert_eq!(
                reader.get(&clip_key(i)).await.unwrap(),
                Some(clip_artifact(i, SIZE)),
                "{}",
                clip_key(i)
            );
        }
        let stats = reader.tier_stats();
        assert_eq!((stats[0].hits, stats[1].hits), (0, N), "{stats:?}");
        reader.close().await.unwrap();
    });
}
