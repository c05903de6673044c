//! Bad remote configuration: an unknown backend type, a missing bucket, an unreachable or
//! silent endpoint. Each is a clear error naming the problem, within the deadline.

use std::time::{Duration, Instant};

use pipecache::tier::{CacheConfig, WritePolicy};
use pipecache::{Artifact, CacheManager};
use pipecache_test_support::servers::S3Server;
use pipecache_test_support::tiers::{open_temp_manager, s3_backend, tier_options, with_timeout};
use pipecache_test_support::{pipecache_bin, run_cli};

/// Runs `f`, asserting it answers within 5 s (the test backends' deadlines are 1-3 s).
async fn within_deadline<T>(f: impl std::future::Future<Output = T>) -> T {
    let started = Instant::now();
    let out = f.await;
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "took {:?}",
        started.elapsed()
    );
    out
}

/// Remote values that parse as TOML but mean nothing: each is refused by the CLI with exit 2
/// and a one-line message naming the value, before any remote is contacted.
#[test]
fn bad_remote_values_are_rejected() {
    let s3 = "[[backends]]\ntype = \"s3\"\npriority = 1\nendpoint = \"http://127.0.0.1:9\"\n";
    let redis = "[[backends]]\ntype = \"redis\"\npriority = 1\nurl = \"redis://127.0.0.1:9\"\n";
    let cases = [
        (format!("{s3}bucket = \"b\"\ntimeout = \"soon\"\n"), "soon"),
        (format!("{s3}bucket = \"b\"\ngc_grace = \"-1h\"\n"), "-1h"),
        (
            format!("{s3}bucket = \"b\"\nqueue_capacity = 0\n"),
            "queue_capacity",
        ),
        (
            format!("{s3}bucket = \"b\"\nqueue_capacity = -5\n"),
            "queue_capacity",
        ),
        (s3.to_owned(), "bucket"),
        (format!("{redis}max_object_size = \"huge\"\n"), "huge"),
        (format!("{redis}timeout = \"0s\"\n"), "0s"),
    ];
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("bad.toml");
    for (text, needle) in cases {
        std::fs::write(&cfg, &text).unwrap();
        let out = run_cli(
            pipecache_bin!(),
            &dir.path().join("store"),
            &["--config", cfg.to_str().unwrap(), "stats"],
            None,
        );
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{text}: {stderr}");
        assert!(
            stderr.contains(needle),
            "{text}: {stderr:?} lacks {needle:?}"
        );
        assert_eq!(stderr.trim().lines().count(), 1, "{text}: {stderr}");
    }
}

#[test]
fn unknown_backend_type_and_fields_are_rejected() {
    let err = CacheConfig::from_toml("[[backends]]\ntype = \"ftp\"\npriority = 1\n", "c.toml")
        .unwrap_err()
        .to_string();
    assert!(err.contains("c.toml") && err.contains("ftp"), "{err}");
    let err = CacheConfig::from_toml(
        "[[backends]]\ntype = \"s3\"\npriority = 1\nbucket = \"b\"\nbukket = \"c\"\n",
        "c.toml",
    )
    .unwrap_err()
    .to_string();
    assert!(err.contains("bukket"), "{err}");
    let err = CacheConfig::from_toml(
        "[[backends]]\ntype = \"s3\"\npriority = 1\nbucket = \"b\"\nwrite_policy = \"sometimes\"\n",
        "c.toml",
    )
    .unwrap_err()
    .to_string();
    assert!(err.contains("sometimes"), "{err}");

    // The CLI says the same, in one line, exit 2.
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("bad.toml");
    std::fs::write(&cfg, "[[backends]]\ntype = \"ftp\"\npriority = 1\n").unwrap();
    let out = run_cli(
        pipecache_bin!(),
        &dir.path().join("store"),
        &["--config", cfg.to_str().unwrap(), "stats"],
        None,
    );
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("ftp") && stderr.contains("bad.toml"),
        "{stderr}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_missing_bucket_is_named() {
    let s3 = S3Server::start();
    let (_d, m) = open_temp_manager(
        vec![s3_backend(
            &s3.endpoint(),
            "no-such-bucket",
            WritePolicy::WriteThrough,
        )],
        None,
    )
    .await;
    let err = m.check().await.unwrap_err().to_string();
    assert!(
        err.contains("no-such-bucket") && err.contains("does not exist"),
        "{err}"
    );
    m.close().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unreachable_and_silent_endpoints_fail_within_the_deadline() {
    // Nothing listens: refused at once.
    let free = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let refused = format!("http://{}", free.local_addr().unwrap());
    drop(free);
    // Accepts connections (the kernel's backlog) but never answers.
    let silent = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let silent_url = format!("http://{}", silent.local_addr().unwrap());
    for (endpoint, timeout_expected) in [(refused, false), (silent_url, true)] {
        let backend = with_timeout(
            s3_backend(&endpoint, "bucket", WritePolicy::WriteThrough),
            Duration::from_secs(1),
        );
        let dir = tempfile::tempdir().unwrap();
        // No memory tier: the reads below are meant to reach the tiers behind it.
        let config = CacheConfig {
            backends: vec![backend],
            memory_size: Some(pipecache::config::FreeSpace(0)),
            ..CacheConfig::default()
        };
        let m = CacheManager::open(&config, dir.path(), tier_options(None), "test")
            .await
            .expect("opening does not contact the remote");
        let err = within_deadline(m.check()).await.unwrap_err();
        assert!(matches!(err, pipecache::Error::Remote { .. }), "{err}");
        assert_eq!(err.is_timeout(), timeout_expected, "{endpoint}: {err}");
        // A write-through put returns within the deadline: stored locally, the failed upload
        // counted as deferred and left to the tier's queue (the local tier keeps putting).
        within_deadline(m.put("k", Artifact::single(b"v".to_vec())))
            .await
            .unwrap();
        assert!(m.local().contains("k").await.unwrap());
        let s = &m.tier_stats()[1];
        assert_eq!((s.deferred, s.queue_length), (1, 1), "{s:?}");
        // A read is a local hit; a miss walks to S3, fails, and is counted as an error.
        assert!(m.get("k").await.unwrap().is_some());
        assert_eq!(m.get("absent").await.unwrap(), None);
        let s = &m.tier_stats()[1];
        assert_eq!(s.misses, 0, "errors must not count as misses: {s:?}");
        assert!(s.errors + s.timeouts >= 2, "{s:?}");
        m.close().await.unwrap();
    }
    drop(silent);
}

#[test]
fn secrets_never_show_in_debug_or_printed_config() {
    let config = CacheConfig::from_toml(
        "[[backends]]\ntype = \"s3\"\npriority = 1\nbucket = \"b\"\nsecret_access_key = \"hunter2\"\n\n\
         [[backends]]\ntype = \"redis\"\npriority = 1\nurl = \"redis://me:hunter3@host:6379/0\"\n",
        "c.toml",
    )
    .unwrap();
    let debug = format!("{config:?}");
    assert!(
        !debug.contains("hunter2") && !debug.contains("hunter3"),
        "{debug}"
    );
    let shown = config.to_masked_toml();
    assert!(
        !shown.contains("hunter2") && !shown.contains("hunter3"),
        "{shown}"
    );
    assert!(shown.contains("redis://me:***@host:6379/0"), "{shown}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_silent_redis_fails_within_its_deadline() {
    let silent = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("redis://{}/", silent.local_addr().unwrap());
    let backend = with_timeout(
        pipecache_test_support::tiers::redis_backend(&url, WritePolicy::WriteThrough),
        Duration::from_secs(1),
    );
    let (_d, m) = open_temp_manager(vec![backend], None).await;
    let err = within_deadline(m.check()).await.unwrap_err();
    assert!(err.is_timeout(), "{err}");
    // A read that misses locally walks to Redis, times out, and is counted as a timeout.
    assert_eq!(within_deadline(m.get("absent")).await.unwrap(), None);
    let s = &m.tier_stats()[1];
    assert_eq!((s.timeouts, s.misses), (1, 0), "{s:?}");
    m.close().await.unwrap();
    drop(silent);
}
