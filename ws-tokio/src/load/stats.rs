//! Latency histograms, their summaries (avg/min/med/max/p(90)/p(95), as k6 prints them) and
//! the k6 `k6/ws` metrics.

use std::fmt;
use std::time::Duration;

use hdrhistogram::Histogram;

/// Largest value a [`Trend`] keeps apart from the others: 1,000 s in nanoseconds. Larger
/// samples are recorded as this value.
pub const TREND_MAX_NS: u64 = 1_000_000_000_000;

/// A distribution of durations in nanoseconds, 1 ns to [`TREND_MAX_NS`]: the count, mean,
/// minimum and maximum exact, quantiles with 3 significant digits (within 0.1% of the exact
/// sample). Fixed memory however many samples
/// are recorded, and mergeable: each task keeps its own and they are added at the end.
///
/// ```
/// use std::time::Duration;
/// use ws_tokio::load::Trend;
///
/// let mut t = Trend::new();
/// for ms in 1..=100 {
///     t.record(Duration::from_millis(ms));
/// }
/// let s = t.summary();
/// assert_eq!(s.count, 100);
/// assert_eq!(s.med.as_millis(), 50);
/// assert_eq!(s.p90.as_millis(), 90);
/// ```
#[derive(Clone)]
pub struct Trend {
    hist: Histogram<u64>,
    min: u64,
    max: u64,
    sum: u128,
}

impl fmt::Debug for Trend {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&self.summary(), f)
    }
}

impl Default for Trend {
    fn default() -> Self {
        Trend::new()
    }
}

impl Trend {
    /// An empty distribution.
    pub fn new() -> Trend {
        Trend {
            // The bounds are constants that hdrhistogram accepts (low >= 1, high >= 2 * low,
            // 3 significant figures), so this cannot fail.
            hist: Histogram::new_with_bounds(1, TREND_MAX_NS, 3)
                .unwrap_or_else(|_| unreachable!("constant histogram bounds")),
            min: u64::MAX,
            max: 0,
            sum: 0,
        }
    }

    /// Records one sample.
    pub fn record(&mut self, d: Duration) {
        self.record_ns(u64::try_from(d.as_nanos()).unwrap_or(u64::MAX));
    }

    /// Records one sample in nanoseconds (0 counts as 1 ns, more than [`TREND_MAX_NS`] as
    /// that).
    pub fn record_ns(&mut self, ns: u64) {
        let ns = ns.clamp(1, TREND_MAX_NS);
        self.hist.saturating_record(ns);
        self.min = self.min.min(ns);
        self.max = self.max.max(ns);
        self.sum += u128::from(ns);
    }

    /// Adds every sample of `other`.
    pub fn merge(&mut self, other: &Trend) {
        // Same bounds on both sides: adding cannot fail.
        let _ = self.hist.add(&other.hist);
        self.min = self.min.min(other.min);
        self.max = self.max.max(other.max);
        self.sum += other.sum;
    }

    /// Samples recorded.
    pub fn count(&self) -> u64 {
        self.hist.len()
    }

    /// Whether nothing was recorded.
    pub fn is_empty(&self) -> bool {
        self.hist.is_empty()
    }

    /// The smallest recorded value at or above which a fraction `1 - q` of the samples lie
    /// (`q` in `[0, 1]`; `q = 0.5` is the median); zero when empty.
    pub fn quantile(&self, q: f64) -> Duration {
        if self.hist.is_empty() {
            return Duration::ZERO;
        }
        Duration::from_nanos(self.hist.value_at_quantile(q))
    }

    /// The figures k6 prints for a trend.
    pub fn summary(&self) -> Summary {
        if self.hist.is_empty() {
            return Summary::default();
        }
        let count = self.hist.len();
        Summary {
            count,
            avg: Duration::from_nanos((self.sum / u128::from(count)) as u64),
            min: Duration::from_nanos(self.min),
            med: self.quantile(0.5).clamp(self.min(), self.max()),
            max: Duration::from_nanos(self.max),
            p90: self.quantile(0.9).clamp(self.min(), self.max()),
            p95: self.quantile(0.95).clamp(self.min(), self.max()),
            p99: self.quantile(0.99).clamp(self.min(), self.max()),
        }
    }

    fn min(&self) -> Duration {
        Duration::from_nanos(self.min)
    }

    fn max(&self) -> Duration {
        Duration::from_nanos(self.max)
    }
}

/// A [`Trend`] many tasks record into: each holds a [`TrendBatch`] whose samples are added
/// under the lock every [`TrendBatch::CAPACITY`] samples (and when it is dropped), so that
/// 10,000 tasks need one histogram, not one each (a histogram is about 240 KiB). Clones share
/// the trend.
///
/// ```
/// use std::time::Duration;
/// use ws_tokio::load::SharedTrend;
///
/// let shared = SharedTrend::default();
/// let tasks: Vec<_> = (1..=4u64)
///     .map(|i| {
///         let mut batch = shared.batch();
///         std::thread::spawn(move || batch.record(Duration::from_millis(i)))
///     })
///     .collect();
/// for t in tasks {
///     t.join().unwrap(); // each batch is flushed when its thread drops it
/// }
/// assert_eq!(shared.snapshot().count(), 4);
/// ```
#[derive(Debug, Clone, Default)]
pub struct SharedTrend(std::sync::Arc<std::sync::Mutex<Trend>>);

impl SharedTrend {
    /// A batch for one task.
    pub fn batch(&self) -> TrendBatch {
        TrendBatch {
            shared: self.0.clone(),
            samples: Vec::new(),
        }
    }

    /// Everything recorded so far (samples still held in batches not included).
    pub fn snapshot(&self) -> Trend {
        self.0.lock().map(|t| t.clone()).unwrap_or_default()
    }
}

/// One task's samples on their way into a [`SharedTrend`]: added every
/// [`CAPACITY`](Self::CAPACITY) samples, at [`flush`](Self::flush) and when dropped.
#[derive(Debug)]
pub struct TrendBatch {
    shared: std::sync::Arc<std::sync::Mutex<Trend>>,
    samples: Vec<u64>,
}

impl TrendBatch {
    /// Samples kept before they are added to the shared trend.
    pub const CAPACITY: usize = 64;

    /// Records one sample.
    pub fn record(&mut self, d: Duration) {
        self.record_ns(u64::try_from(d.as_nanos()).unwrap_or(u64::MAX));
    }

    /// Records one sample in nanoseconds.
    pub fn record_ns(&mut self, ns: u64) {
        self.samples.push(ns);
        if self.samples.len() >= Self::CAPACITY {
            self.flush();
        }
    }

    /// Adds the kept samples to the shared trend.
    pub fn flush(&mut self) {
        if self.samples.is_empty() {
            return;
        }
        if let Ok(mut t) = self.shared.lock() {
            for &ns in &self.samples {
                t.record_ns(ns);
            }
        }
        self.samples.clear();
    }
}

impl Drop for TrendBatch {
    fn drop(&mut self) {
        self.flush();
    }
}

/// What k6 prints for a trend metric (and p(99)), from [`Trend::summary`]. All zero when no
/// sample was recorded.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct Summary {
    /// Samples.
    pub count: u64,
    /// Mean.
    pub avg: Duration,
    /// Smallest sample.
    pub min: Duration,
    /// Median.
    pub med: Duration,
    /// Largest sample.
    pub max: Duration,
    /// 90th percentile.
    pub p90: Duration,
    /// 95th percentile.
    pub p95: Duration,
    /// 99th percentile.
    pub p99: Duration,
}

impl Summary {
    /// `(name, value)` in k6's order: `avg`, `min`, `med`, `max`, `p(90)`, `p(95)`.
    pub fn k6_fields(&self) -> [(&'static str, Duration); 6] {
        [
            ("avg", self.avg),
            ("min", self.min),
            ("med", self.med),
            ("max", self.max),
            ("p(90)", self.p90),
            ("p(95)", self.p95),
        ]
    }
}

/// A duration the way k6 prints one: `812ns`, `35.2µs`, `1.52ms`, `3.01s`; `0s` for zero.
pub fn fmt_duration(d: Duration) -> String {
    let ns = d.as_nanos() as f64;
    if ns == 0.0 {
        "0s".into()
    } else if ns < 1e3 {
        format!("{ns:.0}ns")
    } else if ns < 1e6 {
        format!("{:.1}µs", ns / 1e3)
    } else if ns < 1e9 {
        format!("{:.2}ms", ns / 1e6)
    } else {
        format!("{:.2}s", ns / 1e9)
    }
}

/// The metrics k6's `k6/ws` module reports, plus the round trip of echoed messages, for one run
/// or summed over runs.
///
/// | name | what |
/// |---|---|
/// | `ws_connecting` | from the start of the TCP connect to the end of the opening handshake |
/// | `ws_sessions` | sessions started (handshakes completed) |
/// | `ws_msgs_sent` | data messages sent |
/// | `ws_msgs_received` | data messages received |
/// | `ws_session_duration` | from the start of the connect to the end of the close handshake (or of the session, when it ended abnormally) |
/// | `ws_round_trip` | from sending a message to receiving its echo (not a k6 metric: k6 has `ws_ping` for ping/pong only) |
#[derive(Debug, Clone, Default)]
#[non_exhaustive]
pub struct K6Metrics {
    /// `ws_connecting`.
    pub connecting: Trend,
    /// `ws_sessions`.
    pub sessions: u64,
    /// `ws_msgs_sent`.
    pub msgs_sent: u64,
    /// `ws_msgs_received`.
    pub msgs_received: u64,
    /// `ws_session_duration`.
    pub session_duration: Trend,
    /// `ws_round_trip`.
    pub round_trip: Trend,
}

impl K6Metrics {
    /// Adds `other` into `self`.
    pub fn merge(&mut self, other: &K6Metrics) {
        self.connecting.merge(&other.connecting);
        self.session_duration.merge(&other.session_duration);
        self.round_trip.merge(&other.round_trip);
        self.sessions += other.sessions;
        self.msgs_sent += other.msgs_sent;
        self.msgs_received += other.msgs_received;
    }

    /// One line in k6's summary style, for logs.
    pub fn summary(&self) -> String {
        let c = self.connecting.summary();
        let d = self.session_duration.summary();
        format!(
            "ws_connecting avg={} p(95)={} | ws_sessions={} | ws_msgs_sent={} | \
             ws_msgs_received={} | ws_session_duration avg={} p(95)={}",
            fmt_duration(c.avg),
            fmt_duration(c.p95),
            self.sessions,
            self.msgs_sent,
            self.msgs_received,
            fmt_duration(d.avg),
            fmt_duration(d.p95),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(v: u64) -> Duration {
        Duration::from_millis(v)
    }

    /// Within the histogram's precision (3 significant digits: 0.1%).
    fn close_to(got: Duration, want: Duration) -> bool {
        let (g, w) = (got.as_nanos() as f64, want.as_nanos() as f64);
        (g - w).abs() <= w * 1e-3
    }

    #[test]
    fn percentiles_of_one_to_a_hundred() {
        let mut t = Trend::new();
        // Recorded in a scrambled order: the summary must not depend on it.
        for i in 0..100u64 {
            t.record(ms((i * 37) % 100 + 1));
        }
        let s = t.summary();
        assert_eq!(s.count, 100);
        // Count, mean, minimum and maximum are exact.
        assert_eq!(s.avg, Duration::from_micros(50_500), "{s:?}");
        assert_eq!((s.min, s.max), (ms(1), ms(100)), "{s:?}");
        assert!(close_to(s.med, ms(50)), "{s:?}");
        assert!(close_to(s.p90, ms(90)), "{s:?}");
        assert!(close_to(s.p95, ms(95)), "{s:?}");
        assert!(close_to(s.p99, ms(99)), "{s:?}");
    }

    #[test]
    fn a_skewed_distribution_separates_median_and_tail() {
        // 900 fast samples and 100 slow ones: the median and p(90) are fast, p(95) is slow.
        let mut t = Trend::new();
        for _ in 0..900 {
            t.record(Duration::from_micros(100));
        }
        for _ in 0..100 {
            t.record(ms(20));
        }
        let s = t.summary();
        assert!(close_to(s.med, Duration::from_micros(100)), "{s:?}");
        assert!(close_to(s.p90, Duration::from_micros(100)), "{s:?}");
        assert!(close_to(s.p95, ms(20)), "{s:?}");
        // (900 * 0.1 ms + 100 * 20 ms) / 1000 = 2.09 ms
        assert_eq!(s.avg, Duration::from_micros(2090), "{s:?}");
    }

    #[test]
    fn empty_and_single() {
        let t = Trend::new();
        assert!(t.is_empty());
        assert_eq!(t.summary(), Summary::default());
        assert_eq!(t.quantile(0.5), Duration::ZERO);
        let mut t = Trend::new();
        t.record(ms(7));
        let s = t.summary();
        // A quantile never falls outside the samples: with one, every field is that sample.
        for (name, v) in s.k6_fields() {
            assert_eq!(v, ms(7), "{name}");
        }
    }

    #[test]
    fn out_of_range_samples_are_clamped() {
        let mut t = Trend::new();
        t.record(Duration::ZERO);
        t.record(Duration::from_secs(5_000));
        let s = t.summary();
        assert_eq!(s.count, 2);
        assert_eq!(s.min, Duration::from_nanos(1));
        assert_eq!(s.max, Duration::from_nanos(TREND_MAX_NS));
    }

    #[test]
    fn merging_equals_recording_in_one() {
        let (mut a, mut b, mut all) = (Trend::new(), Trend::new(), Trend::new());
        for v in 1..=50 {
            a.record(ms(v));
            all.record(ms(v));
        }
        for v in 51..=200 {
            b.record(ms(v));
            all.record(ms(v));
        }
        a.merge(&b);
        assert_eq!(a.summary(), all.summary());
        assert!(close_to(a.summary().med, ms(100)));
    }

    #[test]
    fn batches_reach_the_shared_trend() {
        let shared = SharedTrend::default();
        let mut a = shared.batch();
        let mut b = shared.batch();
        for v in 1..=100 {
            a.record(ms(v));
        }
        b.record(ms(500));
        // Past the capacity, samples are already in; the rest arrive with the drop.
        assert_eq!(shared.snapshot().count(), TrendBatch::CAPACITY as u64);
        drop(a);
        drop(b);
        let s = shared.snapshot().summary();
        assert_eq!(s.count, 101);
        assert_eq!((s.min, s.max), (ms(1), ms(500)));
    }

    #[test]
    fn k6_metrics_merge() {
        let mut a = K6Metrics::default();
        a.connecting.record(ms(1));
        a.sessions = 1;
        a.msgs_sent = 4;
        let mut b = K6Metrics::default();
        b.connecting.record(ms(3));
        b.round_trip.record(ms(2));
        b.sessions = 2;
        b.msgs_received = 5;
        a.merge(&b);
        assert_eq!((a.sessions, a.msgs_sent, a.msgs_received), (3, 4, 5));
        assert_eq!(a.connecting.count(), 2);
        assert_eq!(a.round_trip.count(), 1);
        assert!(a.summary().contains("ws_sessions=3"), "{}", a.summary());
    }

    #[test]
    fn durations_print_as_k6_does() {
        assert_eq!(fmt_duration(Duration::ZERO), "0s");
        assert_eq!(fmt_duration(Duration::from_nanos(812)), "812ns");
        assert_eq!(fmt_duration(Duration::from_nanos(35_240)), "35.2µs");
        assert_eq!(fmt_duration(Duration::from_micros(1_520)), "1.52ms");
        assert_eq!(fmt_duration(Duration::from_millis(3_010)), "3.01s");
    }
}
