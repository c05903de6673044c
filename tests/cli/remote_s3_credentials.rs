//! S3 credentials: taken from `AWS_ACCESS_KEY_ID` / `AWS_SECRET_ACCESS_KEY` when the config
//! file has none, or from the file; checked by a server that verifies request signatures
//! (s3s-fs); a wrong secret is a clear error naming the tier; the secret is never printed or
//! logged.
//!
//! Every command runs the `pipecache` binary as a child process with exactly the environment
//! given here (no `AWS_*` inherited from the test's own), so credentials are per process.

use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::process::Output;

use pipecache_test_support::servers::{S3_REGION, S3S_ACCESS_KEY, S3S_SECRET_KEY, S3sServer};
use pipecache_test_support::{pipecache_bin, random_bytes, run_cli_env, stdout_json};

/// A secret that is not the server's (distinctive, so output can be searched for it too).
const WRONG_SECRET: &str = "wrong-secret-Hm3Rb8Yc1Ds6Fj";
/// Key prefix of the tier inside the bucket.
const PREFIX: &str = "team";
const KEY: &str = "video:s1-00000000000000aa:embeddings";

/// Where a test keeps its config file, input file and store directories.
struct Setup {
    work: tempfile::TempDir,
    config: PathBuf,
    input: PathBuf,
    payload: Vec<u8>,
}

impl Setup {
    /// A config with one s3 tier on `s3` (prefix [`PREFIX`], 5 s deadline), the credentials
    /// in the file only when `file_credentials` is given; and an input file of incompressible
    /// bytes.
    fn new(s3: &S3sServer, file_credentials: Option<(&str, &str)>) -> Setup {
        let work = tempfile::tempdir().unwrap();
        let credentials = file_credentials
            .map(|(key, secret)| {
                format!("access_key_id = \"{key}\"\nsecret_access_key = \"{secret}\"\n")
            })
            .unwrap_or_default();
        let config = work.path().join("pipecache.toml");
        std::fs::write(
            &config,
            format!(
                "[[backends]]\ntype = \"s3\"\npriority = 1\nbucket = \"{}\"\nprefix = \"{PREFIX}\"\n\
                 endpoint = \"{}\"\nregion = \"{S3_REGION}\"\ntimeout = \"5s\"\n{credentials}",
                s3.bucket(),
                s3.endpoint()
            ),
        )
        .unwrap();
        let payload = random_bytes(7, 300_000);
        let input = work.path().join("embeddings.bin");
        std::fs::write(&input, &payload).unwrap();
        Setup {
            work,
            config,
            input,
            payload,
        }
    }

    /// Store directory `name` (created by the first command that writes).
    fn store(&self, name: &str) -> PathBuf {
        self.work.path().join(name)
    }

    /// Runs `pipecache --dir STORE --config CONFIG ARGS` with `env` as the only `AWS_*`,
    /// `PIPECACHE_*` and `RUST_LOG` variables, and fails the test if a secret shows in its
    /// output.
    fn run(&self, store: &str, env: &[(&str, &str)], args: &[&str]) -> Output {
        let out = self.run_unchecked(store, env, args);
        let leaks = secret_lines(&out);
        assert!(
            leaks.is_empty(),
            "pipecache {args:?} (env {:?}) printed a secret:\n{}",
            env.iter().map(|(k, _)| k).collect::<Vec<_>>(),
            leaks.join("\n")
        );
        out
    }

    /// [`Setup::run`] without the check for secrets.
    fn run_unchecked(&self, store: &str, env: &[(&str, &str)], args: &[&str]) -> Output {
        let mut full: Vec<OsString> = vec![
            "--dir".into(),
            self.store(store).into(),
            "--config".into(),
            self.config.clone().into(),
        ];
        full.extend(args.iter().map(OsString::from));
        run_cli_env(pipecache_bin!(), &full, env)
    }

    /// The files of the objects under [`PREFIX`] in the server's bucket directory.
    fn objects_in_bucket(&self, s3: &S3sServer) -> Vec<PathBuf> {
        let mut found = Vec::new();
        collect_files(&s3.bucket_dir(s3.bucket()).join(PREFIX), &mut found);
        found
    }
}

/// The lines of stdout and stderr that hold the server's secret or the wrong one, each
/// prefixed with its stream.
fn secret_lines(out: &Output) -> Vec<String> {
    let mut found = Vec::new();
    for (stream, bytes) in [("stdout", &out.stdout), ("stderr", &out.stderr)] {
        for line in String::from_utf8_lossy(bytes).lines() {
            if [S3S_SECRET_KEY, WRONG_SECRET]
                .iter()
                .any(|s| line.contains(s))
            {
                found.push(format!("{stream}: {line}"));
            }
        }
    }
    found
}

#[track_caller]
fn assert_success(args: &[&str], out: &Output) {
    assert!(
        out.status.success(),
        "pipecache {args:?} failed with {}:\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
}

fn collect_files(dir: &Path, out: &mut Vec<PathBuf>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in entries.map(Result::unwrap) {
        let path = entry.path();
        if path.is_dir() {
            collect_files(&path, out);
        } else {
            out.push(path);
        }
    }
}

/// Credentials in the environment, as the standard AWS variables.
fn aws_env(secret: &str) -> [(&'static str, &str); 2] {
    [
        ("AWS_ACCESS_KEY_ID", S3S_ACCESS_KEY),
        ("AWS_SECRET_ACCESS_KEY", secret),
    ]
}

/// Puts [`KEY`] into store `a` and pushes it; then store `b`, empty, reads it through from
/// the bucket. Both with `env`.
fn put_push_and_read_back(setup: &Setup, s3: &S3sServer, env: &[(&str, &str)]) {
    let input = setup.input.to_str().unwrap();
    let args = ["put", KEY, input];
    assert_success(&args, &setup.run("a", env, &args));
    let args = ["sync", "push", "--json"];
    let out = setup.run("a", env, &args);
    assert_success(&args, &out);
    let push = stdout_json(&out);
    // The write-through put may have uploaded it already.
    assert_eq!(
        push["pushed"].as_u64().unwrap() + push["already_remote"].as_u64().unwrap(),
        1,
        "{push}"
    );
    assert!(
        !setup.objects_in_bucket(s3).is_empty(),
        "the push left nothing in the bucket directory of s3s-fs"
    );

    let args = ["get", KEY];
    let out = setup.run("b", env, &args);
    assert_success(&args, &out);
    assert!(
        out.stdout == setup.payload,
        "store b read back {} bytes, not the {} put",
        out.stdout.len(),
        setup.payload.len()
    );
}

/// (a) No credentials in the file: the standard AWS variables sign the requests.
#[test]
fn credentials_from_the_aws_environment_variables() {
    let s3 = S3sServer::start();
    let setup = Setup::new(&s3, None);
    let env = aws_env(S3S_SECRET_KEY);
    put_push_and_read_back(&setup, &s3, &env);

    // `config` says where the credentials come from, without their values.
    let args = ["config"];
    let out = setup.run("a", &env, &args);
    assert_success(&args, &out);
    let shown = String::from_utf8_lossy(&out.stdout);
    assert!(
        shown.contains("secret_access_key: from $AWS_SECRET_ACCESS_KEY (set)"),
        "{shown}"
    );
}

/// The environments whose credentials the server refuses: a wrong secret in the AWS
/// variables, and none at all (unsigned requests).
fn refused_credentials() -> [(&'static str, Vec<(&'static str, &'static str)>); 2] {
    [
        ("wrong secret", aws_env(WRONG_SECRET).to_vec()),
        ("no credentials", Vec::new()),
    ]
}

/// (b) A wrong secret in the environment (and, the same, no credentials): the server rejects
/// the signature, and the commands that need the tier fail at once with an error naming the
/// tier and the refusal, not a hang. The local tier still takes puts.
#[test]
fn a_wrong_secret_is_a_clear_error_naming_the_tier() {
    let s3 = S3sServer::start();
    let setup = Setup::new(&s3, None);
    let input = setup.input.to_str().unwrap();
    for (case, env) in refused_credentials() {
        // The local tier still takes the put (the failed upload is deferred).
        let args = ["put", KEY, input];
        assert_success(&args, &setup.run("a", &env, &args));
        for (store, args) in [
            ("a", &["sync", "push"][..]),
            ("b", &["sync", "pull"][..]),
            ("a", &["config", "--check"][..]),
        ] {
            let out = setup.run(store, &env, args);
            let stderr = String::from_utf8_lossy(&out.stderr);
            assert_eq!(
                out.status.code(),
                Some(2),
                "{case}: pipecache {args:?} did not fail with an error:\n{stderr}"
            );
            assert_refusal_named(case, args, &stderr, &s3);
        }
    }
    assert_eq!(
        setup.objects_in_bucket(&s3),
        Vec::<PathBuf>::new(),
        "the server took objects from requests it should have refused"
    );
}

/// (b) A read-through to a tier that refuses the credentials is an error naming the tier and
/// the refusal (exit 2), not a miss (exit 1): a caller that takes the miss would recompute
/// every artifact, for ever, without using the shared bucket.
#[test]
fn a_wrong_secret_is_not_a_miss_on_read_through() {
    let s3 = S3sServer::start();
    let setup = Setup::new(&s3, None);
    // The artifact is in the bucket, put by a machine with the right credentials.
    let input = setup.input.to_str().unwrap();
    let right = aws_env(S3S_SECRET_KEY);
    let args = ["put", KEY, input];
    assert_success(&args, &setup.run("a", &right, &args));
    let args = ["sync", "push"];
    assert_success(&args, &setup.run("a", &right, &args));

    let mut failures = Vec::new();
    for (case, env) in refused_credentials() {
        let args = ["get", KEY];
        let out = setup.run("b", &env, &args);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(
            !out.status.success(),
            "{case}: get succeeded with refused credentials"
        );
        assert_refusal_named(case, &args, &stderr, &s3);
        if out.status.code() != Some(2) || stderr.contains("pipecache: miss") {
            failures.push(format!(
                "{case}: pipecache get exited with {} (1 is a miss, 2 an error):\n{stderr}",
                out.status
            ));
        }
    }
    assert!(
        failures.is_empty(),
        "a read-through refused by the tier is reported as a miss:\n{}",
        failures.join("\n")
    );
}

/// `stderr` names the tier and the remote, and says the server refused the request's
/// signature or credentials, rather than reporting a missing bucket.
#[track_caller]
fn assert_refusal_named(case: &str, args: &[&str], stderr: &str, s3: &S3sServer) {
    let target = format!("s3://{}/{PREFIX}", s3.bucket());
    assert!(
        stderr.contains("tier s3") && stderr.contains(&target),
        "{case}: pipecache {args:?} does not name the tier (\"tier s3\", {target:?}):\n{stderr}"
    );
    let lower = stderr.to_lowercase();
    assert!(
        [
            "signature",
            "accessdenied",
            "permissiondenied",
            "credential"
        ]
        .iter()
        .any(|w| lower.contains(w)),
        "{case}: pipecache {args:?} does not say the credentials were refused:\n{stderr}"
    );
    assert!(
        !lower.contains("does not exist"),
        "{case}: pipecache {args:?} blames the bucket for a refused signature:\n{stderr}"
    );
}

/// (c) Credentials in the config file, none in the environment.
#[test]
fn credentials_from_the_config_file() {
    let s3 = S3sServer::start();
    let setup = Setup::new(&s3, Some((S3S_ACCESS_KEY, S3S_SECRET_KEY)));
    put_push_and_read_back(&setup, &s3, &[]);

    let args = ["config"];
    let out = setup.run("a", &[], &args);
    assert_success(&args, &out);
    let shown = String::from_utf8_lossy(&out.stdout);
    assert!(shown.contains("secret_access_key = \"***\""), "{shown}");
}

/// (d) With every log line on (`PIPECACHE_LOG=trace`, the CLI's filter; `RUST_LOG=trace` as
/// well, which the CLI does not read), neither the file's nor the environment's secret is
/// printed: `config`, `config --check`, put, push and a read-through. ([`Setup::run`] checks
/// the output of every command of the other tests, logged at the default level, too.)
#[test]
fn the_secret_is_never_printed_even_when_tracing() {
    let s3 = S3sServer::start();
    let tracing = [("PIPECACHE_LOG", "trace"), ("RUST_LOG", "trace")];
    let from_env: Vec<(&str, &str)> = aws_env(S3S_SECRET_KEY).into_iter().chain(tracing).collect();
    let mut leaks = Vec::new();
    let cases = [
        ("credentials from the environment", None, &from_env[..]),
        (
            "credentials from the file",
            Some((S3S_ACCESS_KEY, S3S_SECRET_KEY)),
            &tracing[..],
        ),
    ];
    for (i, (case, file_credentials, env)) in cases.into_iter().enumerate() {
        let setup = Setup::new(&s3, file_credentials);
        let input = setup.input.to_str().unwrap().to_owned();
        let key = format!("video:s1-00000000000000bb:case{i}");
        for (store, args) in [
            ("a", vec!["config"]),
            ("a", vec!["config", "--check"]),
            ("a", vec!["put", &key, &input]),
            ("a", vec!["sync", "push"]),
            ("b", vec!["get", &key]),
        ] {
            let out = setup.run_unchecked(store, env, &args);
            assert_success(&args, &out);
            // The logs were on: otherwise there is nothing to check.
            let stderr = String::from_utf8_lossy(&out.stderr);
            if args != ["config"] {
                assert!(
                    stderr.contains("TRACE"),
                    "{case}: pipecache {args:?} logged nothing at trace level:\n{stderr}"
                );
            }
            leaks.extend(
                secret_lines(&out)
                    .into_iter()
                    .map(|line| format!("{case}: pipecache {args:?}: {line}")),
            );
        }
    }
    assert!(
        leaks.is_empty(),
        "the secret was printed {} time(s):\n{}",
        leaks.len(),
        leaks.join("\n")
    );
}
