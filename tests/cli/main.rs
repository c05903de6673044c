//! What runs the `pipecache` binary (`CARGO_BIN_EXE_pipecache` exists only in this
//! package): every CLI command, bad input, the CLI on tiers, and the SIGKILL crash tests,
//! whose child processes are the CLI.

mod cli_bad_input;
mod cli_config;
mod cli_lifecycle;
mod cli_pipeline;
mod cli_roundtrip;
mod cli_store_dir;
mod cli_sync;
mod cli_verify_damaged;
mod crash_gc_compact;
mod crash_kill;
mod crash_large_puts;
mod crash_write_back;
mod remote_bad_config;
mod remote_push_kill;
mod remote_s3_credentials;
mod serve_commands;
mod serve_kill;
mod serve_sync;
mod store_in_use;
