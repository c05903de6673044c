//! What a server is told: where to listen, who may connect, and its limits.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

/// Options of [`crate::Server::open`].
#[derive(Clone, Debug)]
pub struct ServeOptions {
    /// The Unix socket; `None` puts `server.sock` in the store directory.
    pub socket: Option<PathBuf>,
    /// Group allowed to connect: the socket is then mode 0660 and owned by it (name or
    /// numeric id); otherwise 0600, the server's user only.
    pub group: Option<String>,
    /// Also listen on this TCP address; requires `token`.
    pub tcp: Option<SocketAddr>,
    /// Bearer token every TCP request must carry (`Authorization: Bearer <token>`).
    pub token: Option<String>,
    /// Largest request body, bytes.
    pub max_body: u64,
    /// A client must send a request's headers within this time.
    pub header_timeout: Duration,
    /// A request body that sends nothing for this long is refused (408).
    pub body_idle_timeout: Duration,
    /// Requests served at once; more get 503.
    pub max_concurrent: usize,
    /// On SIGTERM: how long in-flight requests and write-back queues may take to finish.
    pub drain_deadline: Duration,
    /// Exit after this long without a request (servers started on demand).
    pub idle_exit: Option<Duration>,
    /// Sorts keys into artifact kinds for the per-kind metrics (the CLI passes the
    /// pipeline's); `None` counts every key as `other`.
    pub key_classifier: Option<std::sync::Arc<dyn pipecache::KeyClassifier>>,
}

impl Default for ServeOptions {
    fn default() -> Self {
        Self {
            socket: None,
            group: None,
            tcp: None,
            token: None,
            max_body: 4 << 30,
            header_timeout: Duration::from_secs(10),
            body_idle_timeout: Duration::from_secs(30),
            max_concurrent: 256,
            drain_deadline: Duration::from_secs(30),
            idle_exit: None,
            key_classifier: None,
        }
    }
}
