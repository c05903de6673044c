//! Real servers on loopback for the remote tiers' tests: an S3-protocol server (moto's
//! `moto_server`), an S3-protocol server that checks request signatures (`s3s-fs`), Redis
//! (`redis-server`) and a TCP forwarder that can simulate an outage.
//!
//! No mocks: each launcher spawns the real program as a child process on a free port, so every
//! test gets its own servers and tests stay independent and parallel-safe. Everything here is
//! blocking (std::process, std::net, std threads) and needs no tokio runtime, so it can be used
//! from sync and async tests alike. Dropping a server kills its process and waits for it.
//!
//! The programs are found through `PIPECACHE_MOTO_SERVER` / `PIPECACHE_S3S_SERVER` /
//! `PIPECACHE_REDIS_SERVER` (which `cargo xtask test` sets after installing them), else on
//! `PATH`.

use std::collections::{HashMap, HashSet};
use std::fmt;
use std::io::{self, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

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

/// How long a server may take to accept TCP connections after it is spawned.
const START_TIMEOUT: Duration = Duration::from_secs(30);
/// Attempts at starting a server when its port was taken between picking and binding it.
const START_ATTEMPTS: usize = 5;

/// A real S3-protocol server (`moto_server`) on a free loopback port, with one bucket created.
///
/// Killed on drop. Use [`S3_ACCESS_KEY`], [`S3_SECRET_KEY`] and [`S3_REGION`] as credentials,
/// path-style addressing, and [`S3Server::endpoint`] as the endpoint.
#[derive(Debug)]
pub struct S3Server {
    child: Child,
    port: u16,
    bucket: String,
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
            child,
            port,
            bucket: S3_DEFAULT_BUCKET.to_owned(),
            log,
            _dir: dir,
        };
        server.create_bucket(S3_DEFAULT_BUCKET);
        server
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

impl Drop for S3Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
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
    child: Child,
    port: u16,
    bucket: String,
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
            child,
            port,
            bucket: S3_DEFAULT_BUCKET.to_owned(),
            root,
            _dir: dir,
        };
        server.create_bucket(S3_DEFAULT_BUCKET);
        server
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

impl Drop for S3sServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A real `redis-server` on a free loopback port, without persistence. Killed on drop.
#[derive(Debug)]
pub struct RedisServer {
    child: Child,
    port: u16,
    _dir: tempfile::TempDir,
}

impl RedisServer {
    /// Starts `redis-server` (not daemonized, no RDB or AOF) on a free loopback port and waits
    /// until it accepts connections. Blocking; panics if the program is missing or does not come
    /// up within 30 s.
    pub fn start() -> RedisServer {
        let program = find_program("PIPECACHE_REDIS_SERVER", "redis-server", None);
        let dir = tempfile::tempdir().expect("create temp dir for redis-server");
        let log = dir.path().join("redis-server.log");
        let (child, port) = spawn_on_free_port("redis-server", &log, |port| {
            let mut cmd = Command::new(&program);
            cmd.arg("--port")
                .arg(port.to_string())
                .args(["--bind", "127.0.0.1", "--save", "", "--appendonly", "no"])
                .args(["--daemonize", "no"])
                .arg("--dir")
                .arg(dir.path());
            cmd
        });
        RedisServer {
            child,
            port,
            _dir: dir,
        }
    }

    /// `redis://127.0.0.1:PORT/`.
    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}/", self.port)
    }

    /// The loopback port the server listens on.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// A direct connection under pipecache's key prefix, for looking at (or damaging) what
    /// the Redis tier wrote, by [`pipecache::tier::RedisTier::object_name`].
    pub fn raw_store(&self) -> pipecache_remote::RedisStore {
        pipecache_remote::RedisStore::new(
            &self.url(),
            pipecache::tier::RedisTier::KEY_PREFIX,
            std::time::Duration::from_secs(5),
        )
        .expect("connect to the test redis-server")
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A loopback TCP forwarder in front of a server, to simulate a remote outage while the real
/// server keeps its data.
///
/// While up it forwards every connection to `127.0.0.1:upstream_port`. [`TcpProxy::set_down`]
/// with `true` shuts down every forwarded connection at once and then accepts and immediately
/// closes new ones; with `false` forwarding resumes on the same port. Dropping it stops
/// accepting and closes every forwarded connection.
pub struct TcpProxy {
    port: u16,
    upstream_port: u16,
    shared: Arc<ProxyShared>,
    accept_thread: Option<JoinHandle<()>>,
}

struct ProxyShared {
    state: Mutex<ProxyState>,
    stop: AtomicBool,
    connections: AtomicU64,
}

#[derive(Default)]
struct ProxyState {
    down: bool,
    next_id: u64,
    /// Clones of both ends of every live forwarded connection, by id.
    live: HashMap<u64, (TcpStream, TcpStream)>,
}

impl ProxyShared {
    fn state(&self) -> MutexGuard<'_, ProxyState> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }
}

impl fmt::Debug for TcpProxy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let state = self.shared.state();
        f.debug_struct("TcpProxy")
            .field("port", &self.port)
            .field("upstream_port", &self.upstream_port)
            .field("down", &state.down)
            .field("live", &state.live.len())
            .field("connections", &self.connections())
            .finish()
    }
}

impl TcpProxy {
    /// Starts forwarding a free loopback port to `127.0.0.1:upstream_port` (up).
    pub fn start(upstream_port: u16) -> TcpProxy {
        let (listener, port) = {
            let _starting = START_LOCK.lock().unwrap_or_else(|e| e.into_inner());
            let listener = TcpListener::bind("127.0.0.1:0").expect("bind proxy port on loopback");
            let port = listener.local_addr().expect("proxy local addr").port();
            used_ports()
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .insert(port);
            (listener, port)
        };
        let shared = Arc::new(ProxyShared {
            state: Mutex::new(ProxyState::default()),
            stop: AtomicBool::new(false),
            connections: AtomicU64::new(0),
        });
        let accept_shared = Arc::clone(&shared);
        let accept_thread = std::thread::Builder::new()
            .name(format!("tcp-proxy-{port}"))
            .spawn(move || accept_loop(listener, upstream_port, accept_shared))
            .expect("spawn proxy accept thread");
        TcpProxy {
            port,
            upstream_port,
            shared,
            accept_thread: Some(accept_thread),
        }
    }

    /// The loopback port the proxy listens on.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// `http://127.0.0.1:PORT` (the proxy's port).
    pub fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// `redis://127.0.0.1:PORT/` (the proxy's port), for a proxy in front of Redis.
    pub fn redis_url(&self) -> String {
        format!("redis://127.0.0.1:{}/", self.port)
    }

    /// Takes the "remote" down (`true`): every forwarded connection is shut down immediately
    /// and new connections are accepted and closed at once. `false` resumes forwarding.
    pub fn set_down(&self, down: bool) {
        let mut state = self.shared.state();
        state.down = down;
        if down {
            for (_, (client, upstream)) in state.live.drain() {
                let _ = client.shutdown(Shutdown::Both);
                let _ = upstream.shutdown(Shutdown::Both);
            }
        }
    }

    /// Whether the proxy is down.
    pub fn is_down(&self) -> bool {
        self.shared.state().down
    }

    /// How many connections were accepted while up (whether or not the upstream took them).
    pub fn connections(&self) -> u64 {
        self.shared.connections.load(Ordering::SeqCst)
    }
}

impl Drop for TcpProxy {
    fn drop(&mut self) {
        self.shared.stop.store(true, Ordering::SeqCst);
        // Wake the blocking accept.
        let _ = TcpStream::connect_timeout(
            &SocketAddr::from(([127, 0, 0, 1], self.port)),
            Duration::from_secs(1),
        );
        if let Some(t) = self.accept_thread.take() {
            let _ = t.join();
        }
        for (_, (client, upstream)) in self.shared.state().live.drain() {
            let _ = client.shutdown(Shutdown::Both);
            let _ = upstream.shutdown(Shutdown::Both);
        }
    }
}

fn accept_loop(listener: TcpListener, upstream_port: u16, shared: Arc<ProxyShared>) {
    loop {
        let accepted = listener.accept();
        if shared.stop.load(Ordering::SeqCst) {
            return;
        }
        let client = match accepted {
            Ok((client, _)) => client,
            Err(_) => {
                // E.g. out of file descriptors: back off instead of spinning.
                std::thread::sleep(Duration::from_millis(10));
                continue;
            }
        };
        if shared.state().down {
            let _ = client.shutdown(Shutdown::Both);
            continue;
        }
        shared.connections.fetch_add(1, Ordering::SeqCst);
        let Ok(upstream) = TcpStream::connect(("127.0.0.1", upstream_port)) else {
            let _ = client.shutdown(Shutdown::Both);
            continue;
        };
        let _ = client.set_nodelay(true);
        let _ = upstream.set_nodelay(true);
        let clones = (|| {
            Ok::<_, io::Error>((
                client.try_clone()?,
                upstream.try_clone()?,
                client.try_clone()?,
                upstream.try_clone()?,
            ))
        })();
        let Ok((client_r, upstream_r, client_keep, upstream_keep)) = clones else {
            let _ = client.shutdown(Shutdown::Both);
            let _ = upstream.shutdown(Shutdown::Both);
            continue;
        };
        // Register under the lock that `set_down` takes, so no connection outlives going down.
        let id = {
            let mut state = shared.state();
            if state.down {
                let _ = client.shutdown(Shutdown::Both);
                let _ = upstream.shutdown(Shutdown::Both);
                continue;
            }
            let id = state.next_id;
            state.next_id += 1;
            state.live.insert(id, (client_keep, upstream_keep));
            id
        };
        let remaining = Arc::new(AtomicU64::new(2));
        for (from, to) in [(client_r, upstream), (upstream_r, client)] {
            let pump_shared = Arc::clone(&shared);
            let remaining = Arc::clone(&remaining);
            let spawned = std::thread::Builder::new()
                .name("tcp-proxy-pump".into())
                .spawn(move || {
                    pump(from, to);
                    if remaining.fetch_sub(1, Ordering::SeqCst) == 1 {
                        pump_shared.state().live.remove(&id);
                    }
                });
            if spawned.is_err() {
                if let Some((c, u)) = shared.state().live.remove(&id) {
                    let _ = c.shutdown(Shutdown::Both);
                    let _ = u.shutdown(Shutdown::Both);
                }
                break;
            }
        }
    }
}

/// Copies `from` to `to` until EOF, then half-closes `to`; on an error closes both entirely.
fn pump(mut from: TcpStream, mut to: TcpStream) {
    match io::copy(&mut from, &mut to) {
        Ok(_) => {
            let _ = to.shutdown(Shutdown::Write);
        }
        Err(_) => {
            let _ = from.shutdown(Shutdown::Both);
            let _ = to.shutdown(Shutdown::Both);
        }
    }
}

fn dirs_home() -> Option<PathBuf> {
    std::env::var_os("HOME")
        .filter(|h| !h.is_empty())
        .map(PathBuf::from)
}

/// The program named by `env_var`, else `name` on `PATH`, else `fallback` if it exists.
fn find_program(env_var: &str, name: &str, fallback: Option<PathBuf>) -> PathBuf {
    if let Some(p) = std::env::var_os(env_var).filter(|p| !p.is_empty()) {
        return PathBuf::from(p);
    }
    if let Some(p) = which(name) {
        return p;
    }
    if let Some(p) = fallback.filter(|p| is_executable(p)) {
        return p;
    }
    panic!(
        "{name} not found: {env_var} is unset and there is no {name} on PATH. \
         Run the tests with `cargo xtask test`, which installs it and sets {env_var}, \
         or set {env_var} to the program's path."
    );
}

fn which(name: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|dir| dir.join(name))
        .find(|p| is_executable(p))
}

fn is_executable(p: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(p).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
}

/// Held from picking a port until the server listens on it (and by [`TcpProxy::start`] while
/// it binds): otherwise a proxy of a parallel test can be given the port a server was promised
/// but has not bound yet, and the server's readiness probe then reaches the proxy.
static START_LOCK: Mutex<()> = Mutex::new(());

/// Ports handed out by this process, so parallel tests never pick the same one.
fn reserve_free_port() -> u16 {
    let used = used_ports();
    loop {
        let port = TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("bind a free loopback port")
            .port();
        if used.lock().unwrap_or_else(|e| e.into_inner()).insert(port) {
            return port;
        }
    }
}

/// Ports handed out in this process (so two servers never race for one).
fn used_ports() -> &'static Mutex<HashSet<u16>> {
    static USED: OnceLock<Mutex<HashSet<u16>>> = OnceLock::new();
    USED.get_or_init(Default::default)
}

/// Spawns `make(port)` on a free port with output to `log`, and waits until the port accepts
/// TCP connections. Retries on another port when the child exits early (port taken meanwhile).
fn spawn_on_free_port(what: &str, log: &Path, make: impl Fn(u16) -> Command) -> (Child, u16) {
    let _starting = START_LOCK.lock().unwrap_or_else(|e| e.into_inner());
    let mut last_failure = String::new();
    for _ in 0..START_ATTEMPTS {
        let port = reserve_free_port();
        let out = std::fs::File::create(log).expect("create server log file");
        let err = out.try_clone().expect("clone server log file");
        let mut cmd = make(port);
        cmd.stdin(Stdio::null()).stdout(out).stderr(err);
        let mut child = cmd
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {what} ({:?}): {e}", cmd.get_program()));
        let deadline = Instant::now() + START_TIMEOUT;
        loop {
            if let Ok(Some(status)) = child.try_wait() {
                last_failure = format!(
                    "{what} exited with {status} before listening on port {port}\n--- log ---\n{}",
                    read_log(log)
                );
                break;
            }
            // A connect to a port in the ephemeral range can succeed with nobody listening:
            // Linux's TCP simultaneous open connects a socket to itself when the source port
            // it picks equals the destination. Only a connection to another socket counts.
            let connected = TcpStream::connect_timeout(
                &SocketAddr::from(([127, 0, 0, 1], port)),
                Duration::from_millis(200),
            )
            .is_ok_and(|s| s.local_addr().ok() != s.peer_addr().ok());
            if connected {
                // Make sure it is our child listening, not someone who took the port.
                std::thread::sleep(Duration::from_millis(20));
                if let Ok(None) = child.try_wait() {
                    return (child, port);
                }
                continue;
            }
            if Instant::now() >= deadline {
                let _ = child.kill();
                let _ = child.wait();
                panic!(
                    "{what} ({:?}) did not accept connections on 127.0.0.1:{port} within {}s\n\
                     --- log ---\n{}",
                    cmd.get_program(),
                    START_TIMEOUT.as_secs(),
                    read_log(log)
                );
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }
    panic!("{what} failed to start {START_ATTEMPTS} times; last failure: {last_failure}");
}

fn read_log(log: &Path) -> String {
    std::fs::read_to_string(log).unwrap_or_else(|e| format!("(cannot read {}: {e})", log.display()))
}

/// A raw HTTP/1.1 request without a body; returns the status code and the whole response.
fn http_request(port: u16, method: &str, path: &str) -> io::Result<(u16, String)> {
    let mut stream = TcpStream::connect(("127.0.0.1", port))?;
    stream.set_read_timeout(Some(Duration::from_secs(30)))?;
    stream.set_write_timeout(Some(Duration::from_secs(30)))?;
    write!(
        stream,
        "{method} {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nContent-Length: 0\r\n\
         Connection: close\r\n\r\n"
    )?;
    stream.flush()?;
    let mut response = Vec::new();
    stream.read_to_end(&mut response)?;
    let response = String::from_utf8_lossy(&response).into_owned();
    let status = response
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| {
            io::Error::new(
                io::ErrorKind::InvalidData,
                format!("not an HTTP response: {response:?}"),
            )
        })?;
    Ok((status, response))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn redis_ping(port: u16) -> io::Result<String> {
        let mut s = TcpStream::connect(("127.0.0.1", port))?;
        s.set_read_timeout(Some(Duration::from_secs(10)))?;
        ping_on(&mut s)
    }

    fn ping_on(s: &mut TcpStream) -> io::Result<String> {
        s.write_all(b"*1\r\n$4\r\nPING\r\n")?;
        let mut buf = [0u8; 64];
        let n = s.read(&mut buf)?;
        if n == 0 {
            return Err(io::Error::new(io::ErrorKind::UnexpectedEof, "closed"));
        }
        Ok(String::from_utf8_lossy(&buf[..n]).into_owned())
    }

    #[test]
    fn s3_server_creates_buckets_and_stops_on_drop() {
        let s3 = S3Server::start();
        assert_eq!(s3.bucket(), S3_DEFAULT_BUCKET);
        assert_eq!(s3.endpoint(), format!("http://127.0.0.1:{}", s3.port()));
        // ListObjects on the created bucket succeeds, an unknown bucket is a 404.
        let (status, body) = http_request(s3.port(), "GET", "/pipecache-test").unwrap();
        assert_eq!(status, 200, "{body}");
        let (status, body) = http_request(s3.port(), "GET", "/no-such-bucket").unwrap();
        assert_eq!(status, 404, "{body}");
        s3.create_bucket("second");
        let (status, body) = http_request(s3.port(), "GET", "/").unwrap();
        assert_eq!(status, 200, "{body}");
        assert!(body.contains("<Name>second</Name>"), "{body}");
        assert!(body.contains("<Name>pipecache-test</Name>"), "{body}");

        // Through a proxy, S3 requests work while up and fail while down.
        let proxy = TcpProxy::start(s3.port());
        let (status, _) = http_request(proxy.port(), "PUT", "/via-proxy").unwrap();
        assert_eq!(status, 200);
        proxy.set_down(true);
        assert!(http_request(proxy.port(), "GET", "/via-proxy").is_err());
        proxy.set_down(false);
        let (status, _) = http_request(proxy.port(), "GET", "/via-proxy").unwrap();
        assert_eq!(status, 200, "bucket survives the outage");

        let port = s3.port();
        drop(s3);
        assert!(TcpStream::connect(("127.0.0.1", port)).is_err());
    }

    #[test]
    fn s3s_server_checks_signatures_and_stops_on_drop() {
        let s3 = S3sServer::start();
        assert_eq!(s3.bucket(), S3_DEFAULT_BUCKET);
        assert_eq!(s3.endpoint(), format!("http://127.0.0.1:{}", s3.port()));
        // Unsigned: refused.
        let (status, body) = http_request(s3.port(), "GET", "/pipecache-test").unwrap();
        assert_eq!(status, 403, "{body}");
        assert!(body.contains("AccessDenied"), "{body}");

        let store = |secret: &str| {
            pipecache_remote::ObjectStore::s3(
                &pipecache_remote::S3Options {
                    bucket: s3.bucket().to_owned(),
                    prefix: "cache".into(),
                    endpoint: Some(s3.endpoint()),
                    region: S3_REGION.into(),
                    access_key_id: Some(S3S_ACCESS_KEY.into()),
                    secret_access_key: Some(secret.into()),
                },
                Duration::from_secs(5),
            )
            .unwrap()
        };
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async {
            // Signed with the right secret: the bucket answers and objects are files.
            let good = store(S3S_SECRET_KEY);
            good.check().await.unwrap();
            good.put("probe", b"bytes".to_vec()).await.unwrap();
            assert_eq!(
                good.get("probe").await.unwrap().as_deref(),
                Some(&b"bytes"[..])
            );
            let file = s3.bucket_dir(S3_DEFAULT_BUCKET).join("cache/probe");
            assert_eq!(std::fs::read(&file).unwrap(), b"bytes");
            // Signed with another secret: refused.
            assert!(store("not-the-secret").check().await.is_err());
        });

        s3.create_bucket("second");
        assert!(s3.bucket_dir("second").is_dir());

        let port = s3.port();
        drop(s3);
        assert!(TcpStream::connect(("127.0.0.1", port)).is_err());
    }

    #[test]
    fn redis_server_answers_ping_and_stops_on_drop() {
        let redis = RedisServer::start();
        assert_eq!(redis.url(), format!("redis://127.0.0.1:{}/", redis.port()));
        assert_eq!(redis_ping(redis.port()).unwrap(), "+PONG\r\n");
        let port = redis.port();
        drop(redis);
        assert!(TcpStream::connect(("127.0.0.1", port)).is_err());
    }

    #[test]
    fn proxy_goes_down_and_comes_back_on_the_same_port() {
        let redis = RedisServer::start();
        let proxy = TcpProxy::start(redis.port());
        assert_ne!(proxy.port(), redis.port());
        assert_eq!(proxy.connections(), 0);

        // A long-lived connection through the proxy works...
        let mut held = TcpStream::connect(("127.0.0.1", proxy.port())).unwrap();
        held.set_read_timeout(Some(Duration::from_secs(10)))
            .unwrap();
        assert_eq!(ping_on(&mut held).unwrap(), "+PONG\r\n");
        assert_eq!(ping_on(&mut held).unwrap(), "+PONG\r\n");
        assert_eq!(proxy.connections(), 1);

        // ...is cut when the proxy goes down, and new ones are refused service.
        proxy.set_down(true);
        assert!(proxy.is_down());
        assert!(
            ping_on(&mut held).is_err(),
            "held connection survived set_down"
        );
        assert!(redis_ping(proxy.port()).is_err());
        assert_eq!(
            proxy.connections(),
            1,
            "connections while down are not counted"
        );
        // The server itself is still up.
        assert_eq!(redis_ping(redis.port()).unwrap(), "+PONG\r\n");

        proxy.set_down(false);
        assert_eq!(redis_ping(proxy.port()).unwrap(), "+PONG\r\n");
        assert_eq!(proxy.connections(), 2);
        assert_eq!(
            proxy.redis_url(),
            format!("redis://127.0.0.1:{}/", proxy.port())
        );

        let port = proxy.port();
        drop(proxy);
        assert!(TcpStream::connect(("127.0.0.1", port)).is_err());
    }
}
