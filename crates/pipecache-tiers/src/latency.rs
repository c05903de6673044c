//! Latency histograms of a tier's gets and puts, in Prometheus' bucket layout.
//!
//! Written by hand rather than with prometheus-client's `Histogram`, which takes a lock on
//! every observation: a memory-tier hit is a fraction of a microsecond and is observed on
//! every call, from every thread. Here an observation is two relaxed atomic adds (its
//! bucket and the sum; the count is the buckets' sum, taken when a report is made).

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use serde::{Deserialize, Serialize};

/// Upper bounds of the buckets, in seconds: a memory hit (~1 µs) to a slow remote (10 s).
pub const BUCKETS_SECONDS: [f64; 16] = [
    1e-6, 5e-6, 2.5e-5, 1e-4, 2.5e-4, 5e-4, 1e-3, 2.5e-3, 5e-3, 1e-2, 2.5e-2, 0.1, 0.25, 1.0, 2.5,
    10.0,
];

/// [`BUCKETS_SECONDS`] in nanoseconds: an observation finds its bucket by integer
/// compares, without converting to floating point.
const BUCKETS_NANOS: [u64; BUCKETS_SECONDS.len()] = [
    1_000,
    5_000,
    25_000,
    100_000,
    250_000,
    500_000,
    1_000_000,
    2_500_000,
    5_000_000,
    10_000_000,
    25_000_000,
    100_000_000,
    250_000_000,
    1_000_000_000,
    2_500_000_000,
    10_000_000_000,
];

/// Observations of one kind of call on one tier.
#[derive(Debug, Default)]
pub struct LatencyHistogram {
    /// Observations per bucket (not cumulative); the last slot is above every bound.
    buckets: [AtomicU64; BUCKETS_SECONDS.len() + 1],
    sum_nanos: AtomicU64,
}

impl LatencyHistogram {
    /// Records one call that took `d`.
    pub fn observe(&self, d: Duration) {
        self.observe_n(d, 1);
    }

    /// `n` observations of `d` each (hits another process timed and reported in bulk).
    pub fn observe_n(&self, d: Duration, n: u64) {
        let nanos = u64::try_from(d.as_nanos()).unwrap_or(u64::MAX);
        let slot = BUCKETS_NANOS.partition_point(|&le| le < nanos);
        self.buckets[slot].fetch_add(n, Ordering::Relaxed);
        self.sum_nanos
            .fetch_add(nanos.saturating_mul(n), Ordering::Relaxed);
    }

    /// The figures so far.
    pub fn snapshot(&self) -> Latency {
        let mut cumulative = 0;
        let buckets = BUCKETS_SECONDS
            .iter()
            .zip(&self.buckets)
            .map(|(&le, n)| {
                cumulative += n.load(Ordering::Relaxed);
                Bucket {
                    le,
                    count: cumulative,
                }
            })
            .collect();
        // The last slot (above every bound) completes the count.
        let count = cumulative + self.buckets[BUCKETS_SECONDS.len()].load(Ordering::Relaxed);
        Latency {
            count,
            sum_seconds: self.sum_nanos.load(Ordering::Relaxed) as f64 / 1e9,
            buckets,
        }
    }
}

/// A latency histogram as `stats --json` and `/metrics` report it.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Latency {
    /// Calls observed.
    pub count: u64,
    /// Their total time.
    pub sum_seconds: f64,
    /// Cumulative counts: calls that took at most `le` seconds (the `+Inf` bucket is
    /// `count`).
    pub buckets: Vec<Bucket>,
}

impl Latency {
    /// The histogram of both `self`'s and `other`'s calls (same buckets; an empty default
    /// takes the other's).
    pub fn merged(&self, other: &Latency) -> Latency {
        if self.buckets.is_empty() {
            return other.clone();
        }
        if other.buckets.is_empty() {
            return self.clone();
        }
        Latency {
            count: self.count + other.count,
            sum_seconds: self.sum_seconds + other.sum_seconds,
            buckets: self
                .buckets
                .iter()
                .zip(&other.buckets)
                .map(|(a, b)| Bucket {
                    le: a.le,
                    count: a.count + b.count,
                })
                .collect(),
        }
    }
}

/// One cumulative bucket.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct Bucket {
    /// Upper bound, seconds.
    pub le: f64,
    /// Calls that took at most `le`.
    pub count: u64,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nanosecond_bounds_are_the_second_bounds() {
        for (ns, s) in BUCKETS_NANOS.iter().zip(BUCKETS_SECONDS) {
            assert_eq!(*ns as f64 / 1e9, s);
        }
    }

    /// Each observation lands in the first bucket whose bound holds it; buckets are
    /// cumulative; a call slower than every bound counts only in the total.
    #[test]
    fn observations_fill_cumulative_buckets() {
        let h = LatencyHistogram::default();
        h.observe(Duration::from_nanos(500));
        h.observe(Duration::from_micros(5));
        h.observe(Duration::from_millis(3));
        h.observe(Duration::from_secs(60));
        let s = h.snapshot();
        assert_eq!(s.count, 4);
        assert!((s.sum_seconds - 60.003_005_5).abs() < 1e-9);
        let at = |le: f64| s.buckets.iter().find(|b| b.le == le).unwrap().count;
        assert_eq!(at(1e-6), 1);
        assert_eq!(at(5e-6), 2);
        assert_eq!(at(2.5e-3), 2);
        assert_eq!(at(5e-3), 3);
        assert_eq!(at(10.0), 3);
    }
}
