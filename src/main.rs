//! `pipecache`: command line over a local pipecache store.
//!
//! Exit status: 0 success (or hit), 1 miss / not found / damage found, 2 error. Errors are one
//! line on stderr. This binary is the only place a tracing subscriber is installed
//! (`PIPECACHE_LOG=debug` for more).

mod cli;

use std::process::ExitCode;

fn main() -> ExitCode {
    limit_malloc_arenas();
    cli::main()
}

/// glibc gives a thread that finds the allocator busy an arena of its own (up to 8 per
/// core) and keeps what is freed in each for that arena's later use: a `sync push` of 3M
/// blobs (33 threads: runtime, blocking pool, RocksDB) peaked at 1,046 MiB RSS with 367 MiB
/// of live heap; with two arenas, 539 MiB. Set before any thread starts; RocksDB's C++
/// allocations go through glibc too, which is why this is not a Rust global allocator. A
/// `MALLOC_ARENA_MAX` in the environment wins.
#[cfg(all(target_os = "linux", target_env = "gnu"))]
#[allow(unsafe_code)]
fn limit_malloc_arenas() {
    if std::env::var_os("MALLOC_ARENA_MAX").is_none() {
        // SAFETY: `mallopt` sets an allocator parameter; no other thread exists yet.
        unsafe {
            libc::mallopt(libc::M_ARENA_MAX, 2);
        }
    }
}

#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
fn limit_malloc_arenas() {}
