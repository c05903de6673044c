//! Names in a store directory (docs/format.md, "Store directory"). The lowest module of the
//! crate: it imports nothing, so the store, the rebuild and the space accounting can all
//! name the same files without importing each other.

/// Name of the marker file that makes a directory a pipecache store.
pub const MARKER_FILE: &str = "PIPECACHE";
/// Store layout version written in the marker.
pub const STORE_VERSION: u32 = 1;
/// The lock file the owning process holds.
pub(crate) const LOCK_FILE: &str = "LOCK";
/// The RocksDB index.
pub(crate) const INDEX_DIR: &str = "index";
/// Chunk files.
pub(crate) const CHUNK_DIR: &str = "chunks";
/// Where a rebuild writes its index until it is complete.
pub(crate) const INDEX_PARTIAL_DIR: &str = "index.partial";
/// A complete rebuilt index waiting to replace `index`.
pub(crate) const INDEX_NEW_DIR: &str = "index.new";
/// The replaced index, until the swap is done.
pub(crate) const INDEX_OLD_DIR: &str = "index.old";
/// The reserve file (see `space`).
pub(crate) const RESERVE_FILE: &str = "reserve";
