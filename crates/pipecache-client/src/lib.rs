//! # pipecache-client: a store held by `pipecache serve`, from any process
//!
//! Owns the client side of the server's HTTP API and the vocabulary both sides share:
//! - [`protocol`]: paths, headers, the server file clients discover a server by, job
//!   reports, and errors as HTTP statuses with stable codes that turn back into the engine's
//!   own error variants;
//! - [`ServerClient`]: every call of the API over the server's Unix socket (or TCP with a
//!   token), each under a deadline, idempotent ones retried once when the server went away;
//!   it implements [`pipecache_tiers::CacheBackend`] like any tier;
//! - [`Cache`]: what a process holds: the store opened in process, or the server holding it;
//! - `near`: a served client's near cache, kept current through the store's change journal;
//! - [`metrics`]: the stats report in Prometheus' text format (`/metrics`,
//!   `stats --prometheus`).
//!
//! It must not serve (the server crate does), open chunk files or the index (only through
//! [`pipecache_tiers::CacheManager`] when it opens a store in process; of a served store it
//! maps only the change journal, read-only), or know videos.
//! Errors are [`pipecache_tiers::TierError`], the facade's error: a served store reports
//! the same variants (no space, corruption, invalid key, timeouts) as one opened in process,
//! so callers classify both alike.

mod cache;
mod client;
mod http;
pub mod metrics;
mod near;
pub mod protocol;

pub use cache::Cache;
pub use client::{
    DEFAULT_DEADLINE, ServerClient, artifact_from_wire, compression_header,
    parse_compression_header, stored_from_wire, wire_record,
};
pub use http::Pieces;
