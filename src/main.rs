//! `pipecache`: command line over a local pipecache store.
//!
//! Exit status: 0 success (or hit), 1 miss / not found / damage found, 2 error. Errors are one
//! line on stderr. This binary is the only place a tracing subscriber is installed
//! (`PIPECACHE_LOG=debug` for more).

mod cli;

use std::process::ExitCode;

fn main() -> ExitCode {
    cli::main()
}
