//! A TCP forwarder that can simulate an outage of the server behind it.

use std::collections::HashMap;
use std::fmt;
use std::io;
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::Duration;

use super::{START_LOCK, used_ports};

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
