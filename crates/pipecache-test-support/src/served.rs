//! A `pipecache serve` running inside the test process (the real server on a real socket
//! and store), and raw HTTP for requests no well-behaved client sends.

use std::path::{Path, PathBuf};
use std::time::Duration;

use pipecache::ServerClient;
use pipecache_server::{ServeError, ServeOptions, Server};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// A server on a store directory, stopped by [`RunningServer::stop`].
#[derive(Debug)]
pub struct RunningServer {
    /// Its Unix socket.
    pub socket: PathBuf,
    /// Its TCP address, when it listens there.
    pub tcp: Option<std::net::SocketAddr>,
    stop: tokio::sync::oneshot::Sender<()>,
    task: tokio::task::JoinHandle<Result<(), ServeError>>,
}

/// Opens a server on the store in `dir` (created when missing) with the default
/// configuration, without serving yet: for tests of what `Server::open` refuses.
pub async fn open_server(dir: &Path, options: ServeOptions) -> Result<Server, ServeError> {
    Server::open(&pipecache::CacheConfig::default(), dir, "(test)", options).await
}

/// What a process gets from `Cache::open` on store `dir` with the default configuration
/// (a 256 MiB memory budget, which a served client gives its near cache): the server's
/// client when one holds the store, else the store in process.
pub async fn open_cache(dir: &Path) -> pipecache::Result<pipecache::Cache> {
    pipecache::Cache::open(
        &pipecache::CacheConfig::default(),
        dir,
        pipecache::StoreOptions::default(),
        "(test)",
    )
    .await
}

impl RunningServer {
    /// Opens the store in `dir` (created when missing) with the default configuration and
    /// serves it with `options`.
    pub async fn start(dir: &Path, options: ServeOptions) -> Self {
        let server = open_server(dir, options).await.expect("start the server");
        let socket = server.socket().to_owned();
        let tcp = server.tcp_addr();
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let task = tokio::spawn(server.run(async move {
            let _ = stopped.await;
        }));
        Self {
            socket,
            tcp,
            stop,
            task,
        }
    }

    /// A client of its socket.
    pub fn client(&self) -> ServerClient {
        ServerClient::unix(&self.socket)
    }

    /// True once the server has ended by itself (`--idle-exit`), waiting up to `within`.
    pub async fn ended_within(&self, within: Duration) -> bool {
        let started = std::time::Instant::now();
        while !self.task.is_finished() {
            if started.elapsed() > within {
                return false;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        true
    }

    /// Stops it as SIGTERM would, and waits until the store is closed.
    pub async fn stop(self) {
        let _ = self.stop.send(());
        self.task
            .await
            .expect("server task")
            .expect("server stopped cleanly");
    }
}

/// Starts `pipecache --dir dir serve` (the binary `bin`) as a child process.
pub fn spawn_serve(bin: &Path, dir: &Path) -> std::process::Child {
    spawn_serve_with(bin, dir, &[])
}

/// [`spawn_serve`] with global options before `serve` (e.g. `--config FILE`).
pub fn spawn_serve_with(bin: &Path, dir: &Path, global: &[&str]) -> std::process::Child {
    std::process::Command::new(bin)
        .arg("--dir")
        .arg(dir)
        .args(global)
        .arg("serve")
        .env_remove("PIPECACHE_DIR")
        .env_remove("PIPECACHE_CONFIG")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("spawn pipecache serve")
}

/// A client of the server process `server` once it holds `dir` and answers. Panics if it
/// exits first or does not answer within a minute.
pub async fn wait_for_server(dir: &Path, server: &mut std::process::Child) -> ServerClient {
    let started = std::time::Instant::now();
    loop {
        if let Some((client, file)) = ServerClient::discover(dir).await.expect("discover")
            && file.pid == server.id()
        {
            return client;
        }
        assert!(
            server.try_wait().expect("poll the server").is_none(),
            "the server exited at start"
        );
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "the server never answered"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// Sends `request` as it is over a new connection to `socket`, then reads until the server
/// closes it or `wait` passes. Returns the status (`None` when no answer came) and the body
/// text.
pub async fn raw_request(socket: &Path, request: &[u8], wait: Duration) -> (Option<u16>, String) {
    let mut stream = tokio::net::UnixStream::connect(socket)
        .await
        .expect("connect to the server");
    stream.write_all(request).await.expect("send");
    raw_answer(&mut stream, wait).await
}

/// Reads an answer from `stream` (see [`raw_request`]).
pub async fn raw_answer(
    stream: &mut (impl tokio::io::AsyncRead + Unpin),
    wait: Duration,
) -> (Option<u16>, String) {
    let mut answer = Vec::new();
    let _ = tokio::time::timeout(wait, async {
        let mut buf = [0u8; 4096];
        loop {
            match stream.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(n) => {
                    answer.extend_from_slice(&buf[..n]);
                    // One answer is enough: stop once its body (Content-Length) is in.
                    if complete(&answer) {
                        break;
                    }
                }
            }
        }
    })
    .await;
    let text = String::from_utf8_lossy(&answer).into_owned();
    let status = text
        .strip_prefix("HTTP/1.1 ")
        .and_then(|rest| rest.get(..3))
        .and_then(|code| code.parse().ok());
    let body = text
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_owned())
        .unwrap_or_default();
    (status, body)
}

fn complete(answer: &[u8]) -> bool {
    let text = String::from_utf8_lossy(answer);
    let Some((head, body)) = text.split_once("\r\n\r\n") else {
        return false;
    };
    let length = head.lines().find_map(|l| {
        let (name, value) = l.split_once(':')?;
        name.eq_ignore_ascii_case("content-length")
            .then(|| value.trim().parse::<usize>().ok())
            .flatten()
    });
    length.is_some_and(|n| body.len() >= n)
}
