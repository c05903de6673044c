//! stub
pub use rocksdb;
