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

use std::collections::HashSet;
use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant};

mod proxy;
mod redis;
mod s3;

pub use proxy::TcpProxy;
pub use redis::RedisServer;
pub use s3::{
    S3_ACCESS_KEY, S3_DEFAULT_BUCKET, S3_REGION, S3_SECRET_KEY, S3Process, S3S_ACCESS_KEY,
    S3S_SECRET_KEY, S3Server, S3sServer,
};

/// How long a server may take to accept TCP connections after it is spawned.
const START_TIMEOUT: Duration = Duration::from_secs(30);
/// Attempts at starting a server when its port was taken between picking and binding it.
const START_ATTEMPTS: usize = 5;

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
        // Nothing listens there now. A connect to a port nobody listens on can still
        // succeed onto itself (TCP simultaneous open, when the kernel picks that same port
        // as the source): that is no listener either.
        let listening = TcpStream::connect(("127.0.0.1", port))
            .is_ok_and(|s| s.local_addr().ok() != s.peer_addr().ok());
        assert!(!listening, "the dropped proxy still accepts on {port}");
    }
}
