//! A latency histogram that many threads record into without a lock.
//!
//! Buckets are fixed (Prometheus client libraries' defaults, from half a millisecond to ten
//! seconds), so recording is one comparison per bucket passed and three relaxed atomic additions.
//! A [`Snapshot`] is read bucket by bucket while others record, so its buckets, count and sum may
//! disagree by the requests recorded meanwhile, as every scrape of a live process may.

use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::time::Duration;

/// The upper bounds of the buckets, in seconds; a last bucket takes everything above.
pub const BOUNDS: [f64; 14] = [
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];

/// [`BOUNDS`] in nanoseconds, compared with a recorded duration.
const BOUNDS_NANOS: [u64; 14] = {
    let mut nanos = [0; 14];
    let mut index = 0;
    while index < nanos.len() {
        nanos[index] = (BOUNDS[index] * 1e9) as u64;
        index += 1;
    }
    nanos
};

/// Durations counted per bucket.
#[derive(Debug, Default)]
pub struct Histogram {
    /// Observations per bucket (not cumulative); the last is above every bound.
    buckets: [AtomicU64; BOUNDS.len() + 1],
    /// Sum of the observations, in nanoseconds.
    sum: AtomicU64,
}

impl Histogram {
    /// Counts one observation.
    pub fn record(&self, elapsed: Duration) {
        let nanos = u64::try_from(elapsed.as_nanos()).unwrap_or(u64::MAX);
        let bucket = BOUNDS_NANOS
            .iter()
            .position(|bound| nanos <= *bound)
            .unwrap_or(BOUNDS.len());
        self.buckets[bucket].fetch_add(1, Relaxed);
        self.sum.fetch_add(nanos, Relaxed);
    }

    /// The counts so far.
    pub fn snapshot(&self) -> Snapshot {
        let mut cumulative = [0; BOUNDS.len() + 1];
        let mut total = 0;
        for (count, bucket) in cumulative.iter_mut().zip(&self.buckets) {
            total += bucket.load(Relaxed);
            *count = total;
        }
        Snapshot {
            cumulative,
            sum_seconds: self.sum.load(Relaxed) as f64 / 1e9,
        }
    }
}

/// A histogram's counts at one moment, as Prometheus exposes them.
#[derive(Debug, Clone, PartialEq)]
pub struct Snapshot {
    /// Observations at or below each of [`BOUNDS`], then all of them.
    pub cumulative: [u64; BOUNDS.len() + 1],
    /// Sum of the observations, in seconds.
    pub sum_seconds: f64,
}

impl Snapshot {
    /// Observations in all.
    pub fn count(&self) -> u64 {
        self.cumulative[BOUNDS.len()]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn observations_fall_in_the_first_bucket_that_holds_them() {
        let histogram = Histogram::default();
        for micros in [100, 500, 501, 3_000, 20_000_000] {
            histogram.record(Duration::from_micros(micros));
        }
        let snapshot = histogram.snapshot();
        assert_eq!(snapshot.cumulative[0], 2, "0.5 ms holds 0.1 and 0.5 ms");
        assert_eq!(snapshot.cumulative[1], 3);
        assert_eq!(snapshot.cumulative[2], 3);
        assert_eq!(snapshot.cumulative[3], 4, "5 ms holds 3 ms");
        assert_eq!(snapshot.cumulative[BOUNDS.len() - 1], 4);
        assert_eq!(snapshot.count(), 5, "20 s is above every bound");
        assert!((snapshot.sum_seconds - 20.004101).abs() < 1e-9);
    }
}
