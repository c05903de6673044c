//! The store's and the tiers' figures in Prometheus' text exposition format (0.0.4): what a
//! server's `/metrics` answers and `pipecache stats --prometheus` prints. Both render the
//! same [`StatsReport`] as `stats --json`, so the three never disagree.
//!
//! Names follow Prometheus' conventions: a `pipecache_` prefix, base units in the name
//! (`_bytes`), counters ending in `_total`. Per-tier series carry `tier` (the configured
//! name) and `tier_kind` (`memory`, `local`, `fs-remote`, `s3`, `redis`, `server`).

use std::fmt;

use pipecache_store::Stats;
use pipecache_tiers::{KindStats, Latency, TierStats};
use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeGaugeValue, EncodeMetric, NoLabelSet};
use prometheus_client::metrics::MetricType;
use prometheus_client::metrics::counter::ConstCounter;
use prometheus_client::metrics::gauge::ConstGauge;
use prometheus_client::registry::{Registry, Unit};

use crate::protocol::StatsReport;

/// The media type of [`encode`]'s output.
pub const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

/// `report` in Prometheus' text format.
pub fn encode(report: &StatsReport) -> String {
    let mut registry = Registry::with_prefix("pipecache");
    registry.register_collector(Box::new(Snapshot(report.clone())));
    let mut out = String::new();
    prometheus_client::encoding::prometheus_text::encode(&mut out, &registry)
        .expect("writing to a String cannot fail");
    out
}

/// One report, encoded on each scrape.
#[derive(Debug)]
struct Snapshot(StatsReport);

/// A per-tier figure: its name, help, unit and how to read it.
type TierFigure = (
    &'static str,
    &'static str,
    Option<Unit>,
    fn(&TierStats) -> u64,
);

/// A per-tier, per-kind figure.
type KindFigure = (
    &'static str,
    &'static str,
    Option<Unit>,
    fn(&KindStats) -> u64,
);

/// Counters per tier and artifact kind.
const KIND_COUNTERS: &[KindFigure] = &[
    ("hits", "Reads the tier answered.", None, |k| k.hits),
    (
        "misses",
        "Reads the tier did not answer (absent or expired).",
        None,
        |k| k.misses,
    ),
    (
        "errors",
        "Calls that failed, other than timeouts (never counted as misses).",
        None,
        |k| k.errors,
    ),
    (
        "timeouts",
        "Calls that ran past their deadline.",
        None,
        |k| k.timeouts,
    ),
    (
        "skipped",
        "Reads not sent: the tier was paused after consecutive failures.",
        None,
        |k| k.skipped,
    ),
    ("puts", "Artifacts written to the tier.", None, |k| k.puts),
    (
        "artifact_read",
        "Logical bytes of the artifacts the tier's hits returned.",
        Some(Unit::Bytes),
        |k| k.read_bytes,
    ),
    (
        "artifact_written",
        "Logical bytes of the artifacts written to the tier.",
        Some(Unit::Bytes),
        |k| k.written_bytes,
    ),
    (
        "artifact_deduplicated",
        "Raw bytes of written parts whose blob the tier already held (content-addressed tiers).",
        Some(Unit::Bytes),
        |k| k.deduplicated_bytes,
    ),
];

/// Counters per tier.
const TIER_COUNTERS: &[TierFigure] = &[
    (
        "corrupt_reads",
        "Reads refused by a hash check.",
        None,
        |t| t.corrupt,
    ),
    (
        "promotions",
        "Artifacts promoted into the tier from a slower one.",
        None,
        |t| t.promotions,
    ),
    (
        "near_hits",
        "Of the tier's hits, those server clients' near caches answered and reported.",
        None,
        |t| t.near_hits,
    ),
    (
        "pushed",
        "Artifacts sync push uploaded to the tier.",
        None,
        |t| t.pushed,
    ),
    (
        "skipped_too_large",
        "Artifacts not written: larger than the tier's max_object_size.",
        None,
        |t| t.skipped_too_large,
    ),
    (
        "deferred",
        "Write-through calls left to the tier's queue after a failure.",
        None,
        |t| t.deferred,
    ),
    (
        "queue_dropped",
        "Uploads dropped because the tier's queue was full.",
        None,
        |t| t.queue_dropped,
    ),
    (
        "read",
        "Bytes the tier's transport read (remote tiers).",
        Some(Unit::Bytes),
        |t| t.bytes_down,
    ),
    (
        "written",
        "Bytes the tier's transport wrote (remote tiers).",
        Some(Unit::Bytes),
        |t| t.bytes_up,
    ),
];

impl Collector for Snapshot {
    fn encode(&self, mut encoder: DescriptorEncoder<'_>) -> fmt::Result {
        store_gauges(&self.0.stats, &mut encoder)?;
        store_counters(&self.0.stats, &mut encoder)?;
        lookup_series(&self.0.lookups, &mut encoder)?;
        kind_series(&self.0.tiers, &mut encoder)?;
        tier_series(&self.0.tiers, &mut encoder)
    }
}

/// The local store's sizes, space and ratios.
fn store_gauges(s: &Stats, encoder: &mut DescriptorEncoder<'_>) -> fmt::Result {
    let gauges: [(&str, &str, Option<Unit>, u64); 11] = [
        (
            "artifacts",
            "Live artifacts in the local store.",
            None,
            s.artifacts,
        ),
        ("blobs", "Live blobs in the local store.", None, s.blobs),
        (
            "logical",
            "Sum of live artifacts' sizes.",
            Some(Unit::Bytes),
            s.logical_bytes,
        ),
        (
            "unique",
            "Raw bytes of live blobs (after dedup, before compression).",
            Some(Unit::Bytes),
            s.unique_bytes,
        ),
        (
            "stored",
            "Stored bytes of live blobs (after dedup and compression).",
            Some(Unit::Bytes),
            s.stored_bytes,
        ),
        (
            "dead",
            "Chunk bytes nothing references, reclaimed by compaction.",
            Some(Unit::Bytes),
            s.dead_bytes,
        ),
        (
            "disk",
            "Bytes of chunk files on disk.",
            Some(Unit::Bytes),
            s.disk_bytes,
        ),
        ("chunk_files", "Chunk files on disk.", None, s.chunk_files),
        (
            "fs_free",
            "Free bytes of the store's filesystem.",
            Some(Unit::Bytes),
            s.fs.free_bytes,
        ),
        (
            "fs_size",
            "Size of the store's filesystem.",
            Some(Unit::Bytes),
            s.fs.total_bytes,
        ),
        (
            "min_free_space",
            "Free space puts leave on the filesystem.",
            Some(Unit::Bytes),
            s.min_free_space,
        ),
    ];
    for (name, help, unit, v) in gauges {
        encode_gauge(encoder, name, help, unit.as_ref(), v)?;
    }
    if let Some(max) = s.max_size {
        encode_gauge(
            encoder,
            "max_size",
            "The store's size budget.",
            Some(&Unit::Bytes),
            max,
        )?;
    }
    if let Some(ms) = s.counters.last_gc_ms {
        encode_gauge(
            encoder,
            "last_gc_timestamp",
            "When the last GC pass since open ended (Unix time).",
            Some(&Unit::Seconds),
            ms as f64 / 1000.0,
        )?;
        encode_gauge(
            encoder,
            "last_gc_reclaimed",
            "Chunk-file bytes the last GC pass reclaimed.",
            Some(&Unit::Bytes),
            s.counters.last_gc_reclaimed_bytes,
        )?;
    }
    for (name, help, v) in [
        (
            "dedup_ratio",
            "logical_bytes / unique_bytes: what dedup saves.",
            s.dedup_ratio,
        ),
        (
            "compression_ratio",
            "unique_bytes / stored_bytes: what compression saves.",
            s.compression_ratio,
        ),
    ] {
        encode_gauge(encoder, name, help, None, v)?;
    }
    Ok(())
}

/// The local store's lifetime and since-open counters.
fn store_counters(s: &Stats, encoder: &mut DescriptorEncoder<'_>) -> fmt::Result {
    let c = &s.counters;
    let counters: [(&str, &str, Option<Unit>, u64); 11] = [
        (
            "expired",
            "Artifacts removed because their TTL passed (lifetime of the store).",
            None,
            s.expired,
        ),
        (
            "evicted",
            "Artifacts evicted to meet the size budget (lifetime of the store).",
            None,
            s.evicted,
        ),
        (
            "group_commits",
            "Group commits of the local store since it was opened.",
            None,
            c.group_commits,
        ),
        (
            "blobs_written",
            "New blobs written to chunk files since open.",
            None,
            c.blobs_written,
        ),
        (
            "blobs_deduplicated",
            "Parts that referenced an existing blob instead of writing one, since open.",
            None,
            c.blobs_deduped,
        ),
        (
            "deduplicated",
            "Raw bytes of parts that referenced an existing blob instead of writing one, since open.",
            Some(Unit::Bytes),
            c.bytes_deduped,
        ),
        (
            "chunk_written",
            "Frame bytes appended to chunk files since open.",
            Some(Unit::Bytes),
            c.bytes_written,
        ),
        (
            "write_errors",
            "Group commits that failed since open.",
            None,
            c.write_errors,
        ),
        (
            "corruption_errors",
            "Local reads that found corrupt bytes since open.",
            None,
            c.corruption_errors,
        ),
        (
            "gc_runs",
            "GC passes that ran since open (background and requested; not dry runs).",
            None,
            c.gc_runs,
        ),
        (
            "gc_reclaimed",
            "Chunk-file bytes GC passes reclaimed since open.",
            Some(Unit::Bytes),
            c.gc_reclaimed_bytes,
        ),
    ];
    for (name, help, unit, v) in counters {
        let metric = ConstCounter::new(v);
        metric.encode(encoder.encode_descriptor(
            name,
            help,
            unit.as_ref(),
            metric.metric_type(),
        )?)?;
    }
    Ok(())
}

/// The labels of tier `t`'s series of kind `k`.
fn kind_labels<'a>(t: &'a TierStats, k: &'a KindStats) -> [(&'static str, &'a str); 3] {
    [
        ("tier", t.name.as_str()),
        ("tier_kind", kind_name(t)),
        ("kind", k.kind.as_str()),
    ]
}

/// Every tier's counters and latency histograms per artifact kind.
fn kind_series(tiers: &[TierStats], encoder: &mut DescriptorEncoder<'_>) -> fmt::Result {
    for (name, help, unit, read) in KIND_COUNTERS {
        let mut family =
            encoder.encode_descriptor(name, help, unit.as_ref(), MetricType::Counter)?;
        for t in tiers {
            for k in &t.by_kind {
                ConstCounter::new(read(k)).encode(family.encode_family(&kind_labels(t, k))?)?;
            }
        }
    }
    type Read = fn(&KindStats) -> &Latency;
    let histograms: [(&str, &str, Read); 2] = [
        (
            "get",
            "Time of the tier's gets (hits, misses and failures).",
            |k| &k.get_seconds,
        ),
        (
            "put",
            "Time of the tier's puts (the local one as its caller waits).",
            |k| &k.put_seconds,
        ),
    ];
    for (name, help, read) in histograms {
        let mut family =
            encoder.encode_descriptor(name, help, Some(&Unit::Seconds), MetricType::Histogram)?;
        for t in tiers {
            for k in &t.by_kind {
                encode_latency(family.encode_family(&kind_labels(t, k))?, read(k))?;
            }
        }
    }
    Ok(())
}

/// Gets as callers see them, per kind, and the recompute time their hits saved.
fn lookup_series(lookups: &[KindStats], encoder: &mut DescriptorEncoder<'_>) -> fmt::Result {
    let mut family = encoder.encode_descriptor(
        "lookups",
        "Gets by result: hit (some tier answered), miss (none did) or error.",
        None,
        MetricType::Counter,
    )?;
    for k in lookups {
        for (result, n) in [
            ("hit", k.hits),
            ("miss", k.misses),
            ("error", k.errors + k.timeouts),
        ] {
            let labels = [("kind", k.kind.as_str()), ("result", result)];
            ConstCounter::new(n).encode(family.encode_family(&labels)?)?;
        }
    }
    let mut family = encoder.encode_descriptor(
        "lookup",
        "Time of gets end to end, through every tier they walked.",
        Some(&Unit::Seconds),
        MetricType::Histogram,
    )?;
    for k in lookups {
        encode_latency(
            family.encode_family(&[("kind", k.kind.as_str())])?,
            &k.get_seconds,
        )?;
    }
    let mut family = encoder.encode_descriptor(
        "recompute_saved",
        "Recompute time hits saved: hits of each kind times its cost hint.",
        Some(&Unit::Seconds),
        MetricType::Counter,
    )?;
    for k in lookups {
        let labels = [("kind", k.kind.as_str())];
        ConstCounter::new(k.recompute_seconds_saved).encode(family.encode_family(&labels)?)?;
    }
    Ok(())
}

/// One histogram from a report's latency (cumulative buckets).
fn encode_latency(
    mut encoder: prometheus_client::encoding::MetricEncoder<'_>,
    latency: &Latency,
) -> fmt::Result {
    // The report's buckets are cumulative; the encoder takes each bucket's own.
    let mut below = 0;
    let buckets: Vec<(f64, u64)> = latency
        .buckets
        .iter()
        .map(|b| {
            let own = b.count - below;
            below = b.count;
            (b.le, own)
        })
        .collect();
    encoder.encode_histogram::<NoLabelSet>(latency.sum_seconds, latency.count, &buckets, None)
}

/// Every tier's own counters, queue length, pause and last success.
fn tier_series(tiers: &[TierStats], encoder: &mut DescriptorEncoder<'_>) -> fmt::Result {
    for (name, help, unit, read) in TIER_COUNTERS {
        let mut family =
            encoder.encode_descriptor(name, help, unit.as_ref(), MetricType::Counter)?;
        for t in tiers {
            let labels = [("tier", t.name.as_str()), ("tier_kind", kind_name(t))];
            ConstCounter::new(read(t)).encode(family.encode_family(&labels)?)?;
        }
    }
    let mut family = encoder.encode_descriptor(
        "queue_length",
        "Queue entries waiting (write-back uploads and removals).",
        None,
        MetricType::Gauge,
    )?;
    for t in tiers {
        let labels = [("tier", t.name.as_str()), ("tier_kind", kind_name(t))];
        ConstGauge::new(t.queue_length).encode(family.encode_family(&labels)?)?;
    }
    let mut family = encoder.encode_descriptor(
        "tier_paused",
        "1 while reads skip the tier after consecutive failures, else 0.",
        None,
        MetricType::Gauge,
    )?;
    for t in tiers {
        let labels = [("tier", t.name.as_str()), ("tier_kind", kind_name(t))];
        ConstGauge::new(i64::from(t.paused)).encode(family.encode_family(&labels)?)?;
    }
    type When = fn(&TierStats) -> Option<u64>;
    let times: [(&str, &str, When); 2] = [
        (
            "last_success_timestamp",
            "When a call on the tier last succeeded (Unix time; absent before the first).",
            |t| t.last_success_ms,
        ),
        (
            "last_failure_timestamp",
            "When a call on the tier last failed (Unix time; absent before the first).",
            |t| t.last_failure_ms,
        ),
    ];
    for (name, help, when) in times {
        let mut family =
            encoder.encode_descriptor(name, help, Some(&Unit::Seconds), MetricType::Gauge)?;
        for t in tiers {
            if let Some(ms) = when(t) {
                let labels = [("tier", t.name.as_str()), ("tier_kind", kind_name(t))];
                ConstGauge::new(ms as f64 / 1000.0).encode(family.encode_family(&labels)?)?;
            }
        }
    }
    Ok(())
}

fn encode_gauge<N: EncodeGaugeValue + fmt::Debug>(
    encoder: &mut DescriptorEncoder<'_>,
    name: &str,
    help: &str,
    unit: Option<&Unit>,
    v: N,
) -> fmt::Result {
    let metric = ConstGauge::new(v);
    metric.encode(encoder.encode_descriptor(name, help, unit, metric.metric_type())?)
}

/// The tier kind as `stats --json` spells it.
fn kind_name(t: &TierStats) -> &'static str {
    use pipecache_tiers::BackendKind;
    match t.kind {
        BackendKind::Memory => "memory",
        BackendKind::Local => "local",
        BackendKind::FsRemote => "fs-remote",
        BackendKind::S3 => "s3",
        BackendKind::Redis => "redis",
        BackendKind::Server => "server",
    }
}
