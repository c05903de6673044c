//! S3-protocol servers: moto (any credentials) and s3s-fs (checks signatures).

use std::path::PathBuf;
use std::process::{Child, Command};
use std::time::Duration;

use super::{dirs_home, find_program, http_request, read_log, spawn_on_free_port};

/// Access key for [`S3Server`] (moto accepts any credentials).
pub const S3_ACCESS_KEY: &str = "testing";
/// Secret key for [`S3Server`] (moto accepts any credentials).
pub const S3_SECRET_KEY: &str = "testing";
/// Region for [`S3Server`].
pub const S3_REGION: &str = "us-east-1";
/// Name of the bucket [`S3Server::start`] creates.
pub const S3_DEFAULT_BUCKET: &str = "pipecache-test";

/// Access key [`S3sServer`] accepts (the only one).
pub const S3S_ACCESS_KEY: &str = "pipecache-s3s-access";
/// Secret key [`S3sServer`] checks signatures with. Distinctive, so a test can search output
/// for it.
pub const S3S_SECRET_KEY: &str = "s3s-secret-Qv7Xw2Lk9Pz4Tn";

/// What both S3 servers are to a test: a child process on a loopback port with a bucket
/// created at start. Killed (and waited for) on drop.
#[derive(Debug)]
pub struct S3Process {
    child: Child,
    port: u16,
    bucket: String,
}

impl S3Process {
    fn new(child: Child, port: u16) -> Self {
        Self {
            child,
            port,
            bucket: S3_DEFAULT_BUCKET.to_owned(),
        }
    }

    /// `http://127.0.0.1:PORT`.
    pub fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// The loopback port the server listens on.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// The bucket created at start ([`S3_DEFAULT_BUCKET`]).
    pub fn bucket(&self) -> &str {
        &self.bucket
    }
}

impl Drop for S3Process {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A real S3-protocol server (`moto_server`) on a free loopback port, with one bucket created.
///
/// Killed on drop. Use [`S3_ACCESS_KEY`], [`S3_SECRET_KEY`] and [`S3_REGION`] as credentials,
/// path-style addressing, and [`S3Server::endpoint`] as the endpoint.
#[derive(Debug)]
pub struct S3Server {
    process: S3Process,
    log: PathBuf,
    _dir: tempfile::TempDir,
}

impl S3Server {
    /// Starts `moto_server` on a free loopback port, waits until it accepts connections and
    /// creates the bucket [`S3_DEFAULT_BUCKET`]. Blocking; panics if the program is missing or
    /// does not come up within 30 s.
    pub fn start() -> S3Server {
        let program = find_program(
            "PIPECACHE_MOTO_SERVER",
            "moto_server",
            dirs_home().map(|h| h.join(".cache/pipecache-build/moto-venv/bin/moto_server")),
        );
        let dir = tempfile::tempdir().expect("create temp dir for moto_server");
        let log = dir.path().join("moto_server.log");
        let (child, port) = spawn_on_free_port("moto_server", &log, |port| {
            let mut cmd = Command::new(&program);
            cmd.args(["-H", "127.0.0.1", "-p", &port.to_string()]);
            cmd
        });
        let server = S3Server {
            process: S3Process::new(child, port),
            log,
            _dir: dir,
        };
        server.create_bucket(S3_DEFAULT_BUCKET);
        server
    }

    /// A direct connection to the bucket under the test tiers' prefix (`cache`), for looking
    /// at (or damaging) what a pack tier wrote.
    pub fn raw_store(&self) -> pipecache_remote::ObjectStore {
        pipecache_remote::ObjectStore::s3(
            &pipecache_remote::S3Options {
                bucket: self.bucket.clone(),
                prefix: "cache".into(),
                endpoint: Some(self.endpoint()),
                region: S3_REGION.into(),
                access_key_id: Some(S3_ACCESS_KEY.into()),
                secret_access_key: Some(S3_SECRET_KEY.into()),
            },
            Duration::from_secs(5),
        )
        .expect("a store over the test bucket")
    }

    /// Creates bucket `name` with a raw `PUT /name`; panics unless the server answers 200.
    pub fn create_bucket(&self, name: &str) {
        let (status, response) = http_request(self.port, "PUT", &format!("/{name}"))
            .unwrap_or_else(|e| {
                panic!(
                    "PUT /{name} to moto_server on port {}: {e}\n--- log ---\n{}",
                    self.port,
                    read_log(&self.log)
                )
            });
        assert_eq!(
            status,
            200,
            "creating bucket {name:?} on moto_server (port {}) failed:\n{response}\n--- log ---\n{}",
            self.port,
            read_log(&self.log)
        );
    }
}

impl std::ops::Deref for S3Server {
    type Target = S3Process;

    fn deref(&self) -> &S3Process {
        &self.process
    }
}

/// A real S3-protocol server that checks SigV4 request signatures (`s3s-fs`, objects as files
/// under a temporary root) on a free loopback port, with one bucket created.
///
/// Unlike moto it refuses unsigned requests and requests signed with any credentials but
/// [`S3S_ACCESS_KEY`] / [`S3S_SECRET_KEY`], so credentials handling can be tested. Use
/// [`S3_REGION`], path-style addressing and [`S3sServer::endpoint`]. Killed on drop.
#[derive(Debug)]
pub struct S3sServer {
    process: S3Process,
    root: PathBuf,
    _dir: tempfile::TempDir,
}

impl S3sServer {
    /// Starts `s3s-fs` on a free loopback port with [`S3S_ACCESS_KEY`] / [`S3S_SECRET_KEY`]
    /// over a fresh root holding the bucket [`S3_DEFAULT_BUCKET`], and waits until it accepts
    /// connections. Blocking; panics if the program is missing or does not come up within
    /// 30 s.
    pub fn start() -> S3sServer {
        let program = find_program(
            "PIPECACHE_S3S_SERVER",
            "s3s-fs",
            dirs_home().map(|h| h.join(".cache/pipecache-build/s3s/bin/s3s-fs")),
        );
        let dir = tempfile::tempdir().expect("create temp dir for s3s-fs");
        let root = dir.path().join("root");
        let log = dir.path().join("s3s-fs.log");
        // The root must exist before the server starts; its bucket may be added any time.
        std::fs::create_dir(&root).expect("create s3s-fs root");
        let (child, port) = spawn_on_free_port("s3s-fs", &log, |port| {
            let mut cmd = Command::new(&program);
            cmd.args(["--host", "127.0.0.1", "--port", &port.to_string()])
                .args([
                    "--access-key",
                    S3S_ACCESS_KEY,
                    "--secret-key",
                    S3S_SECRET_KEY,
                ])
                .arg(&root);
            cmd
        });
        let server = S3sServer {
            process: S3Process::new(child, port),
            root,
            _dir: dir,
        };
        server.create_bucket(S3_DEFAULT_BUCKET);
        server
    }

    /// The directory holding bucket `name`'s objects, one file per object (keys with `/` in
    /// subdirectories).
    pub fn bucket_dir(&self, name: &str) -> PathBuf {
        self.root.join(name)
    }

    /// Creates bucket `name` (s3s-fs serves every directory under its root as a bucket).
    pub fn create_bucket(&self, name: &str) {
        std::fs::create_dir_all(self.bucket_dir(name))
            .unwrap_or_else(|e| panic!("create bucket directory {name:?} for s3s-fs: {e}"));
    }
}

impl std::ops::Deref for S3sServer {
    type Target = S3Process;

    fn deref(&self) -> &S3Process {
        &self.process
    }
}
