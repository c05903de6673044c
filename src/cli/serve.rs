//! `pipecache serve`: hold the store and serve it to every process on this machine.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::{Context, Result, bail};
use pipecache::tier::{parse_duration, parse_size};
use pipecache_server::{ServeOptions, Server, shutdown_signal};

use super::env::{Env, GlobalArgs};

/// Serve the store over HTTP on a Unix socket in the store directory, so that every
/// process on this machine shares it: the CLI, the Rust library and the Python package use
/// a running server by themselves. Stops on SIGTERM or SIGINT after draining.
#[derive(Debug, clap::Args)]
pub struct ServeArgs {
    /// Unix socket path [default: server.sock in the store directory].
    #[arg(long)]
    socket: Option<PathBuf>,
    /// Let this group (name or id) connect: the socket becomes mode 0660 (else 0600).
    #[arg(long)]
    group: Option<String>,
    /// Also listen on this TCP address (e.g. 127.0.0.1:7070); requires --token-file.
    #[arg(long, requires = "token_file")]
    tcp: Option<SocketAddr>,
    /// File holding the bearer token TCP clients must send.
    #[arg(long)]
    token_file: Option<PathBuf>,
    /// Largest request body, e.g. 4GiB.
    #[arg(long, value_parser = parse_size, default_value = "4GiB")]
    max_body: u64,
    /// Time a client has to send a request's headers.
    #[arg(long, value_parser = parse_duration, default_value = "10s")]
    header_timeout: Duration,
    /// A request body that sends nothing for this long is refused (408).
    #[arg(long, value_parser = parse_duration, default_value = "30s")]
    body_idle_timeout: Duration,
    /// Requests served at once; more are refused with 503.
    #[arg(long, default_value_t = 256)]
    max_concurrent: usize,
    /// On SIGTERM, time for in-flight requests and write-back queues to finish.
    #[arg(long, value_parser = parse_duration, default_value = "30s")]
    drain_deadline: Duration,
    /// Exit after this long without requests (for a server started on demand).
    #[arg(long, value_parser = parse_duration)]
    idle_exit: Option<Duration>,
}

impl ServeArgs {
    pub async fn run(self, global: &GlobalArgs) -> Result<ExitCode> {
        let env = Env::load(global)?;
        let token = match &self.token_file {
            Some(path) => {
                let text = std::fs::read_to_string(path)
                    .with_context(|| format!("read token file {}", path.display()))?;
                let token = text.trim().to_owned();
                if token.is_empty() {
                    bail!("token file {} is empty", path.display());
                }
                Some(token)
            }
            None => None,
        };
        let options = ServeOptions {
            socket: self.socket,
            group: self.group,
            tcp: self.tcp,
            token,
            max_body: self.max_body,
            header_timeout: self.header_timeout,
            body_idle_timeout: self.body_idle_timeout,
            max_concurrent: self.max_concurrent,
            drain_deadline: self.drain_deadline,
            idle_exit: self.idle_exit,
            key_classifier: Some(pipecache_pipeline::key_classifier()),
        };
        let server = Server::open(&env.config, &env.dir, &env.origin, options)
            .await
            .with_context(|| format!("serve store {}", env.dir.display()))?;
        match server.tcp_addr() {
            Some(addr) => eprintln!(
                "pipecache: serving {} on {} and {addr}",
                env.dir.display(),
                server.socket().display()
            ),
            None => eprintln!(
                "pipecache: serving {} on {}",
                env.dir.display(),
                server.socket().display()
            ),
        }
        server.run(shutdown_signal()).await?;
        eprintln!("pipecache: stopped");
        Ok(ExitCode::SUCCESS)
    }
}
