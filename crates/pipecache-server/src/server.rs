//! [`Server`]: opens the store, listens, publishes itself, serves until told to stop, then
//! drains and closes.

use std::future::Future;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use axum::Router;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use hyper_util::service::TowerToHyperService;
use pipecache::{CacheConfig, CacheManager, StoreError, StoreOptions};
use pipecache_client::protocol::{PROTOCOL_VERSION, SERVER_FILE, SOCKET_FILE, ServerFile};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::{TcpListener, UnixListener};

use crate::error::ServeError;
use crate::options::ServeOptions;
use crate::routes::{AppState, router};

/// Longest Unix socket path the kernel takes (`sun_path` minus its terminating NUL).
const MAX_SOCKET_PATH: usize = 107;

/// A server holding one store, listening, not yet serving.
#[derive(Debug)]
pub struct Server {
    dir: PathBuf,
    socket: PathBuf,
    unix: UnixListener,
    tcp: Option<TcpListener>,
    state: AppState,
    options: ServeOptions,
}

impl Server {
    /// Opens the store `config` describes (in `dir` unless the config names a path) with
    /// its tiers and background GC, binds the socket (mode 0600, or 0660 for `group`) and
    /// the TCP address if any, and writes the server file clients find it by.
    ///
    /// A store already held refuses: [`ServeError::AlreadyServed`] when a server holds it,
    /// the store's `StoreInUse` when another process has it open.
    pub async fn open(
        config: &CacheConfig,
        dir: &Path,
        origin: &str,
        options: ServeOptions,
    ) -> Result<Self, ServeError> {
        if options.tcp.is_some() && options.token.is_none() {
            return Err(ServeError::InvalidOption {
                reason: "listening on TCP requires a token (--token-file)".into(),
            });
        }
        if options.max_concurrent == 0 {
            return Err(ServeError::InvalidOption {
                reason: "max_concurrent must be at least 1".into(),
            });
        }
        let store_options = StoreOptions {
            create_if_missing: true,
            key_classifier: options.key_classifier.clone(),
            ..StoreOptions::default()
        };
        let cache = match CacheManager::open(config, dir, store_options, origin).await {
            Ok(c) => c,
            Err(pipecache::Error::Store(StoreError::StoreInUse { path })) => {
                return Err(match ServerFile::read(&path).ok().flatten() {
                    Some(f) if process_alive(f.pid) => ServeError::AlreadyServed {
                        dir: path,
                        pid: f.pid,
                        socket: f.socket,
                    },
                    _ => pipecache::Error::from(StoreError::StoreInUse { path }).into(),
                });
            }
            Err(e) => return Err(e.into()),
        };
        let dir = cache.local().dir().to_owned();
        // Absolute, since clients in any working directory read it from the server file.
        let socket = match &options.socket {
            Some(s) => std::path::absolute(s)
                .map_err(|e| ServeError::io(format!("resolve {}", s.display()), e))?,
            None => dir.join(SOCKET_FILE),
        };
        let bound = async {
            let unix = bind_unix(&socket, options.group.as_deref())?;
            let tcp = match options.tcp {
                Some(addr) => Some(
                    TcpListener::bind(addr)
                        .await
                        .map_err(|e| ServeError::io(format!("listen on {addr}"), e))?,
                ),
                None => None,
            };
            Ok::<_, ServeError>((unix, tcp))
        }
        .await;
        let (unix, tcp) = match bound {
            Ok(b) => b,
            Err(e) => {
                cache.close().await?;
                return Err(e);
            }
        };
        let file = ServerFile {
            protocol: PROTOCOL_VERSION,
            pid: std::process::id(),
            socket: socket.clone(),
            tcp: tcp
                .as_ref()
                .and_then(|t| t.local_addr().ok())
                .map(|a| a.to_string()),
            started_ms: std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_millis() as u64),
            version: env!("CARGO_PKG_VERSION").to_owned(),
            stopping_until_ms: None,
        };
        file.write(&dir)
            .map_err(|e| ServeError::io(format!("write {}", dir.join(SERVER_FILE).display()), e))?;
        Ok(Self {
            dir,
            socket,
            unix,
            tcp,
            state: AppState::new(cache, options.clone()),
            options,
        })
    }

    /// The Unix socket it listens on.
    pub fn socket(&self) -> &Path {
        &self.socket
    }

    /// The TCP address it listens on, if any.
    pub fn tcp_addr(&self) -> Option<std::net::SocketAddr> {
        self.tcp.as_ref().and_then(|t| t.local_addr().ok())
    }

    /// Serves until `shutdown` resolves (or the idle exit passes): then stops accepting,
    /// lets in-flight requests finish and the write-back queues drain within the drain
    /// deadline, closes the store and removes the server file and the socket. Tells systemd
    /// it is ready once serving (`Type=notify`), and that it stops.
    pub async fn run(self, shutdown: impl Future<Output = ()>) -> Result<(), ServeError> {
        let Self {
            dir,
            socket,
            unix,
            tcp,
            state,
            options,
        } = self;
        let unix_routes = router(state.clone(), None);
        let tcp_routes = router(state.clone(), options.token.clone());
        let mut http = hyper::server::conn::http1::Builder::new();
        http.timer(TokioTimer::new())
            .header_read_timeout(options.header_timeout)
            .keep_alive(true);
        let graceful = GracefulShutdown::new();
        // Not under systemd, NOTIFY_SOCKET is unset and this does nothing.
        let _ = sd_notify::notify(&[sd_notify::NotifyState::Ready]);
        tracing::info!(socket = %socket.display(), tcp = ?tcp.as_ref().and_then(|t| t.local_addr().ok()), "serving");
        tokio::pin!(shutdown);
        let mut idle_tick = tokio::time::interval(Duration::from_secs(1));
        loop {
            tokio::select! {
                () = &mut shutdown => break,
                accepted = unix.accept() => match accepted {
                    Ok((stream, _)) => spawn_connection(&http, &graceful, stream, unix_routes.clone()),
                    Err(e) => tracing::warn!(error = %e, "accept on the Unix socket failed"),
                },
                accepted = accept_tcp(tcp.as_ref()) => match accepted {
                    Ok(stream) => spawn_connection(&http, &graceful, stream, tcp_routes.clone()),
                    Err(e) => tracing::warn!(error = %e, "accept on TCP failed"),
                },
                _ = idle_tick.tick() => {
                    if let (Some(limit), Some(idle)) = (options.idle_exit, state.idle_for())
                        && idle >= limit
                    {
                        tracing::info!(?idle, "no request for the idle limit; exiting");
                        break;
                    }
                }
            }
        }
        let _ = sd_notify::notify(&[sd_notify::NotifyState::Stopping]);
        // From here new clients find no server to use; the server file says until when the
        // store stays locked, so they wait for it instead of failing with `StoreInUse`
        // (docs/server.md, "Shutdown"). Closing takes little next to the drain; 5 s spare.
        mark_stopping_if_ours(&dir, options.drain_deadline + Duration::from_secs(5));
        drop(unix);
        drop(tcp);
        let _ = std::fs::remove_file(&socket);
        let started = Instant::now();
        if tokio::time::timeout(options.drain_deadline, graceful.shutdown())
            .await
            .is_err()
        {
            tracing::warn!(deadline = ?options.drain_deadline, "requests still running at the drain deadline; closing anyway");
        }
        let cache = state.cache().clone();
        drop(state);
        let left = options.drain_deadline.saturating_sub(started.elapsed());
        if let Err(e) = cache.drain_queues(left).await {
            tracing::warn!(error = %e, "write-back queues not drained; they resume at the next start");
        }
        let closed = cache.close().await;
        remove_if_ours(&dir);
        closed?;
        tracing::info!("stopped");
        Ok(())
    }
}

/// Resolves on SIGTERM or SIGINT.
pub async fn shutdown_signal() {
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .expect("install a SIGTERM handler");
    tokio::select! {
        _ = term.recv() => {}
        _ = tokio::signal::ctrl_c() => {}
    }
}

async fn accept_tcp(tcp: Option<&TcpListener>) -> std::io::Result<tokio::net::TcpStream> {
    match tcp {
        Some(t) => {
            let (stream, _) = t.accept().await?;
            stream.set_nodelay(true)?;
            Ok(stream)
        }
        None => std::future::pending().await,
    }
}

fn spawn_connection<S>(
    http: &hyper::server::conn::http1::Builder,
    graceful: &GracefulShutdown,
    stream: S,
    routes: Router,
) where
    S: AsyncRead + AsyncWrite + Send + Unpin + 'static,
{
    let conn = http.serve_connection(TokioIo::new(stream), TowerToHyperService::new(routes));
    let conn = graceful.watch(conn);
    tokio::spawn(async move {
        if let Err(e) = conn.await {
            // A client that hung up, sent garbage or stalled on its headers: its own trouble.
            tracing::debug!(error = %e, "connection ended with an error");
        }
    });
}

/// Binds the Unix socket under a temporary name, sets its mode (and group), then renames
/// it into place, so no one can connect while it still has the umask's permissions.
fn bind_unix(socket: &Path, group: Option<&str>) -> Result<UnixListener, ServeError> {
    let text = socket.as_os_str().len();
    if text > MAX_SOCKET_PATH {
        return Err(ServeError::InvalidOption {
            reason: format!(
                "socket path {} is {text} bytes, longer than the {MAX_SOCKET_PATH} a Unix socket allows; pass --socket with a shorter path",
                socket.display()
            ),
        });
    }
    let tmp = socket.with_extension("sock.tmp");
    for stale in [&tmp, &socket.to_path_buf()] {
        // Left by a server that was killed: this process holds the store's lock, so no
        // other server listens there.
        match std::fs::remove_file(stale) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(ServeError::io(format!("remove {}", stale.display()), e)),
        }
    }
    let listener = UnixListener::bind(&tmp)
        .map_err(|e| ServeError::io(format!("bind {}", tmp.display()), e))?;
    let mode = match group {
        Some(g) => {
            let gid = group_id(g)?;
            rustix::fs::chown(&tmp, None, Some(rustix::fs::Gid::from_raw(gid))).map_err(|e| {
                ServeError::io(format!("chown {} to group {g}", tmp.display()), e.into())
            })?;
            0o660
        }
        None => 0o600,
    };
    rustix::fs::chmod(&tmp, rustix::fs::Mode::from_raw_mode(mode))
        .map_err(|e| ServeError::io(format!("chmod {}", tmp.display()), e.into()))?;
    std::fs::rename(&tmp, socket)
        .map_err(|e| ServeError::io(format!("rename {} into place", tmp.display()), e))?;
    Ok(listener)
}

/// A group's id from its name (read from /etc/group: the libc lookup needs unsafe code) or
/// its number.
fn group_id(group: &str) -> Result<u32, ServeError> {
    if let Ok(id) = group.parse() {
        return Ok(id);
    }
    let groups =
        std::fs::read_to_string("/etc/group").map_err(|e| ServeError::io("read /etc/group", e))?;
    groups
        .lines()
        .filter_map(|l| {
            let mut f = l.split(':');
            Some((f.next()?, f.nth(1)?))
        })
        .find(|(name, _)| *name == group)
        .and_then(|(_, id)| id.parse().ok())
        .ok_or_else(|| ServeError::InvalidOption {
            reason: format!("no group {group:?} in /etc/group"),
        })
}

/// True when process `pid` exists (one of another user's, which may not be signalled, too).
fn process_alive(pid: u32) -> bool {
    rustix::process::Pid::from_raw(pid as i32).is_some_and(|p| {
        matches!(
            rustix::process::test_kill_process(p),
            Ok(()) | Err(rustix::io::Errno::PERM)
        )
    })
}

/// Marks the server file, when it names this process, as stopping: the store stays
/// locked for at most `within` more.
fn mark_stopping_if_ours(dir: &Path, within: Duration) {
    if let Ok(Some(mut f)) = ServerFile::read(dir)
        && f.pid == std::process::id()
    {
        let until = std::time::SystemTime::now() + within;
        f.stopping_until_ms = until
            .duration_since(std::time::UNIX_EPOCH)
            .ok()
            .map(|d| d.as_millis() as u64);
        if let Err(e) = f.write(dir) {
            tracing::warn!(error = %e, "cannot mark the server file stopping; removing it");
            let _ = std::fs::remove_file(dir.join(SERVER_FILE));
        }
    }
}

/// Removes the server file when it names this process.
fn remove_if_ours(dir: &Path) {
    if let Ok(Some(f)) = ServerFile::read(dir)
        && f.pid == std::process::id()
    {
        let _ = std::fs::remove_file(dir.join(SERVER_FILE));
    }
}
