//! # pipecache-server: `pipecache serve`, one store for every process on a machine
//!
//! Owns the server side of the HTTP API (`docs/server.md`): it opens a store with its tiers,
//! listens on a Unix socket in the store directory (mode 0600, or 0660 for a group) and
//! optionally on TCP with a bearer token, publishes a server file clients discover it by,
//! and answers get, head, put, delete, list, stats, metrics, health, gc/compact/verify jobs
//! and the dashboard.
//!
//! - `options`: what a server is told (addresses, token, limits);
//! - `routes`: the handlers, the concurrency limit and the token check; errors become
//!   statuses with JSON bodies through `pipecache_client::protocol`;
//! - `jobs`: long maintenance as jobs with progress;
//! - `dashboard`: `GET /`, the live dashboard page embedded in the binary;
//! - `server`: binding, the accept loop with header timeouts, readiness for systemd,
//!   graceful shutdown that drains write-back queues before closing the store.
//!
//! It must not decide storage (the store and tiers do), know videos, or define the protocol
//! (the client crate owns it, so the two sides cannot drift apart). Artifact bodies stream:
//! a get sends the store's part buffers without copying them, a put decodes its body as it
//! arrives into the parts the store takes.

mod dashboard;
mod error;
mod jobs;
mod options;
mod routes;
mod server;

pub use error::ServeError;
pub use options::ServeOptions;
pub use server::{Server, shutdown_signal};
