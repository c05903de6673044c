//! # pipecache-format: every byte pipecache keeps at rest
//!
//! This crate owns the on-disk encodings of a pipecache store and nothing else:
//!
//! - [`frame`]: the 64-byte frame header that precedes every blob in a chunk file;
//! - [`chunk`]: chunk files (header, append-only [`ChunkWriter`], positioned [`ChunkReader`],
//!   stand-alone [`ChunkScanner`]);
//! - [`codec`]: the per-blob codec choice (raw, zstd or LZ4);
//! - [`record`]: the versioned CBOR values stored in the RocksDB index;
//! - [`document`]: JSON-like documents (transcripts, descriptions, metadata) as CBOR parts.
//! - [`blob_table`]: a pack remote's blob locations, kept in the store directory;
//! - [`journal`]: the change journal near caches are invalidated through, and [`key_hash`];
//! - [`remote`] and [`wire`]: remote tiers' objects, and an artifact between `pipecache serve`
//!   and its clients.
//!
//! It must not depend on RocksDB, tokio or opendal: the fuzz harness links it alone, and a chunk
//! file must stay readable without an index. Every decoder here takes untrusted bytes and returns
//! a [`FormatError`] instead of panicking; `docs/format.md` is the normative description of these
//! layouts, and the two must change together.

pub mod blob_table;
pub mod chunk;
pub mod codec;
pub mod document;
mod error;
pub mod frame;
mod hash;
pub mod journal;
pub mod record;
pub mod remote;
pub mod wire;

pub use chunk::{
    ChunkHeader, ChunkReader, ChunkScanner, ChunkWriter, ScannedFrame, chunk_file_name,
    parse_chunk_file_name, replace_file, sync_dir, write_chunk_file,
};
pub use codec::{Algorithm, Codec, CompressionPolicy};
pub use error::FormatError;
pub use frame::{FRAME_HEADER_LEN, FrameHeader, FrameKind, decode_frame};
pub use hash::{BlobHash, BlobHashSet};
pub use journal::key_hash;

/// Result alias for this crate.
pub type Result<T, E = FormatError> = std::result::Result<T, E>;

/// Largest payload a frame may declare. Decoders reject anything above it before allocating, so
/// a corrupt length field can never make a reader allocate gigabytes.
pub const MAX_BLOB_LEN: u64 = 1 << 32;
