//! The local store's behaviours, one per module, in one test binary (RocksDB linked once):
//! puts and gets, dedup, corruption, TTL, the size budget, GC and compaction, verify and
//! repair, rebuilding the index, recovery at open, and the model-based property test.

mod access_times;
mod background_gc;
mod budget_eviction;
mod compaction_damaged_chunk;
mod compaction_open_chunk_race;
mod compaction_reclaims;
mod compaction_threshold;
mod corruption;
mod dedup;
mod direct_writes;
mod direct_writes_unadopted;
mod gc_budget_race;
mod gc_concurrent;
mod get_stored_hashed;
mod group_commit;
mod journal_publishes;
mod lz4_blobs;
mod model_proptest;
mod open_recovery;
mod part_location_hints;
mod rebuild_after_interrupted_compaction;
mod rebuild_index;
mod store_key_limits;
mod ttl_expiry;
mod ttl_sweep;
mod verify_live_bytes;
mod verify_refcounts;
mod verify_repair;
