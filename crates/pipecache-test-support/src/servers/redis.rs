//! `redis-server` on a free loopback port.

use std::process::{Child, Command};

use super::{find_program, spawn_on_free_port};

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
