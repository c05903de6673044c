//! `pipecache serve` in the test process: the real server on a real socket and store,
//! driven by the real client and by raw HTTP. Multi-process tests (the CLI, SIGKILL) are in
//! the CLI's test binary.

mod bad_requests;
mod compression_header;
mod idle_exit;
mod jobs;
mod near_cache;
mod round_trip;
mod served_cache;
mod shutdown;
mod socket_mode;
