//! The tiers' and the cache manager's behaviours, one per module, in one test binary:
//! read-through and promotion, write-through and write-back (queue, restart, outages),
//! pack and Redis tiers against real servers on loopback, sync and remote GC.
//! `log_once.rs` is a binary of its own: it installs a global tracing subscriber.

mod dedup_by_kind;
mod lookup_totals;
mod memory_tier;
mod metrics_by_kind;
mod promotion_keeps_newer;
mod promotion_layer;
mod remote_blob_table;
mod remote_builder;
mod remote_conditional_write;
mod remote_corruption;
mod remote_fs_temp_leftovers;
mod remote_gc_grace;
mod remote_list_damaged_record;
mod remote_manager_drop;
mod remote_oversized_overwrite;
mod remote_promotion_into_redis;
mod remote_push_ledger;
mod remote_push_outage;
mod remote_push_pipelined;
mod remote_push_resume;
mod remote_push_up_to_date;
mod remote_put_if_absent;
mod remote_read_breaker;
mod remote_read_through;
mod remote_redis_reconnect;
mod remote_redis_tier;
mod remote_sync_pull_prefix;
mod remote_verified_layer;
mod remote_write_back_cancelled_put;
mod remote_write_back_delete;
mod remote_write_back_full_delete;
mod remote_write_back_pending_read;
mod remote_write_back_pending_sync;
mod remote_write_back_queue_claim;
mod remote_write_back_restart;
mod remote_write_back_stale_copy;
mod remote_write_through_outage;
mod write_back_failure_kinds;
