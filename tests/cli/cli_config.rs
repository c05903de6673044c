//! `pipecache config` prints the configuration as it takes effect: every default written out
//! (deadlines, region, grace period, queue capacity, TTL, chunk size), the local tier's entry
//! with the store directory in use, secrets masked, and where credentials come from, without
//! ever showing them. What it prints is itself a valid config that prints the same. A bad
//! value is the error a store would give, not printed as if fine.

use std::path::Path;
use std::process::Output;

use pipecache::config::RemoteCommon;
use pipecache::tier::{BackendConfig, CacheConfig};
use pipecache_test_support::{assert_success, pipecache_bin, run_cli_env};

const SECRET: &str = "s3cr3t-in-file";
const ENV_SECRET: &str = "s3cr3t-from-env";

/// Runs `pipecache --dir DIR --config CFG config` with only the AWS variables in `env`.
fn show_config(dir: &Path, cfg: &Path, env: &[(&str, &str)]) -> Output {
    let args = [
        "--dir".as_ref(),
        dir.as_os_str(),
        "--config".as_ref(),
        cfg.as_os_str(),
        "config".as_ref(),
    ];
    run_cli_env::<&std::ffi::OsStr>(pipecache_bin!(), &args, env)
}

/// The printed configuration, parsed, and its `#` note lines.
fn parse(out: &Output) -> (CacheConfig, Vec<String>) {
    assert_success(out);
    let text = String::from_utf8(out.stdout.clone()).unwrap();
    let notes = text
        .lines()
        .filter_map(|l| l.strip_prefix("# "))
        .map(str::to_owned)
        .collect();
    let config = CacheConfig::from_toml(&text, "printed")
        .unwrap_or_else(|e| panic!("printed config does not parse: {e}\n{text}"));
    (config, notes)
}

fn given(work: &Path) -> std::path::PathBuf {
    let cfg = work.join("given.toml");
    std::fs::write(
        &cfg,
        format!(
            r#"default_ttl = "12h"
max_size = "2GiB"

[[backends]]
type = "s3"
priority = 1
bucket = "artifacts"
endpoint = "http://127.0.0.1:9"

[[backends]]
type = "s3"
name = "archive"
priority = 3
bucket = "cold"
access_key_id = "AKIDFILE"
secret_access_key = "{SECRET}"
gc_grace = "36h"

[[backends]]
type = "redis"
priority = 2
url = "redis://user:{SECRET}@127.0.0.1:6379/0"
write_policy = "write-back"
"#
        ),
    )
    .unwrap();
    cfg
}

#[test]
fn config_prints_every_default_and_masks_secrets() {
    let work = tempfile::tempdir().unwrap();
    let dir = work.path().join("store");
    let cfg = given(work.path());
    let out = show_config(
        &dir,
        &cfg,
        &[
            ("AWS_ACCESS_KEY_ID", "AKIDENV"),
            ("AWS_SECRET_ACCESS_KEY", ENV_SECRET),
        ],
    );
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    for hidden in [SECRET, ENV_SECRET, "AKIDENV"] {
        assert!(!text.contains(hidden), "{hidden} shown:\n{text}");
    }
    let (config, notes) = parse(&out);

    assert_eq!(
        config.default_ttl.map(|v| v.to_string()).as_deref(),
        Some("12h")
    );
    assert_eq!(
        config.chunk_size.map(|v| v.to_string()).as_deref(),
        Some("64MiB")
    );
    assert_eq!(
        config.compact_batch_size.map(|v| v.to_string()).as_deref(),
        Some("8MiB")
    );
    assert_eq!(config.compact_threshold, Some(0.5));
    assert_eq!(config.enable_compression, Some(true));
    assert_eq!(config.compression_codec, Some(pipecache::Algorithm::Zstd));
    let [local, s3, archive, redis] = config.backends.as_slice() else {
        panic!("expected the local tier and three remotes:\n{text}");
    };
    match local {
        BackendConfig::Filesystem {
            name,
            priority,
            path,
            max_size,
            eviction_policy,
        } => {
            assert_eq!(name.as_deref(), Some("local"));
            assert_eq!(*priority, 0);
            assert_eq!(path.as_deref(), Some(dir.as_path()), "the --dir in use");
            assert_eq!(max_size.map(|v| v.to_string()).as_deref(), Some("2GiB"));
            assert_eq!(eviction_policy.as_deref(), Some("lru"));
        }
        other => panic!("first entry is not the local tier: {other:?}"),
    }
    match s3 {
        BackendConfig::S3 {
            remote:
                RemoteCommon {
                    name,
                    timeout,
                    queue_capacity,
                    ..
                },
            region,
            access_key_id,
            secret_access_key,
            gc_grace,
            ..
        } => {
            assert_eq!(name.as_deref(), Some("s3"));
            assert_eq!(region.as_deref(), Some("us-east-1"));
            assert_eq!(timeout.map(|v| v.to_string()).as_deref(), Some("30s"));
            assert_eq!(gc_grace.map(|v| v.to_string()).as_deref(), Some("1d"));
            assert_eq!(*queue_capacity, Some(100_000));
            // From the environment: named in a note, never written as a value.
            assert_eq!((access_key_id, secret_access_key), (&None, &None));
        }
        other => panic!("second entry is not s3: {other:?}"),
    }
    match archive {
        BackendConfig::S3 {
            remote: RemoteCommon { name, .. },
            secret_access_key,
            gc_grace,
            ..
        } => {
            assert_eq!(name.as_deref(), Some("archive"));
            assert_eq!(gc_grace.map(|v| v.to_string()).as_deref(), Some("36h"));
            assert_eq!(secret_access_key.as_ref().unwrap().expose(), "***");
        }
        other => panic!("third entry is not the archive: {other:?}"),
    }
    match redis {
        BackendConfig::Redis {
            remote:
                RemoteCommon {
                    timeout,
                    queue_capacity,
                    ..
                },
            url,
            max_object_size,
        } => {
            assert_eq!(url.expose(), "redis://user:***@127.0.0.1:6379/0");
            assert_eq!(
                max_object_size.map(|v| v.to_string()).as_deref(),
                Some("1MiB")
            );
            assert_eq!(timeout.map(|v| v.to_string()).as_deref(), Some("5s"));
            assert_eq!(*queue_capacity, Some(100_000));
        }
        other => panic!("fourth entry is not redis: {other:?}"),
    }
    for expected in [
        "s3: access_key_id: from $AWS_ACCESS_KEY_ID (set)",
        "s3: secret_access_key: from $AWS_SECRET_ACCESS_KEY (set)",
        "archive: endpoint: AWS's, for the region",
    ] {
        assert!(notes.iter().any(|n| n == expected), "{expected}:\n{text}");
    }
    assert!(
        !notes
            .iter()
            .any(|n| n.starts_with("archive: access_key_id")),
        "the archive's credentials are in the file:\n{text}"
    );

    // Without the variables the notes say so.
    let (_, notes) = parse(&show_config(&dir, &cfg, &[]));
    assert!(
        notes
            .iter()
            .any(|n| n == "s3: secret_access_key: from $AWS_SECRET_ACCESS_KEY (unset; without both keys requests go unsigned)"),
        "{notes:?}"
    );
    assert!(!dir.exists(), "printing the config created the store");
}

#[test]
fn the_printed_config_prints_the_same() {
    let work = tempfile::tempdir().unwrap();
    let dir = work.path().join("store");
    let first = show_config(&dir, &given(work.path()), &[]);
    let (config, _) = parse(&first);
    let printed = work.path().join("printed.toml");
    std::fs::write(&printed, &first.stdout).unwrap();
    let (again, _) = parse(&show_config(&dir, &printed, &[]));
    assert_eq!(again, config);
}

#[test]
fn a_bad_value_is_an_error_not_printed() {
    let work = tempfile::tempdir().unwrap();
    let cfg = work.path().join("bad.toml");
    for (entry, needle) in [
        (
            "type = \"s3\"\npriority = 1\nbucket = \"b\"\ntimeout = \"soon\"\n",
            "soon",
        ),
        (
            "type = \"redis\"\npriority = 1\nurl = \"redis://127.0.0.1:1\"\nmax_object_size = \"huge\"\n",
            "max_object_size",
        ),
        (
            "type = \"fs-remote\"\npriority = 1\npath = \"/tmp/x\"\nqueue_capacity = 0\n",
            "queue_capacity",
        ),
        // The tiers as a whole, not one value: two tiers both named `s3`.
        (
            "type = \"s3\"\npriority = 1\nbucket = \"a\"\n[[backends]]\ntype = \"s3\"\npriority = 2\nbucket = \"b\"\n",
            "used twice",
        ),
    ] {
        std::fs::write(&cfg, format!("[[backends]]\n{entry}")).unwrap();
        let out = show_config(&work.path().join("store"), &cfg, &[]);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{entry}: {stderr}");
        assert!(stderr.contains(needle), "{entry}: {stderr}");
        assert!(out.stdout.is_empty(), "{entry}: printed anyway");
    }
}
