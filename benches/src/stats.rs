//! Histograms, medians and k6-style session metrics.

use hdrhistogram::Histogram;

/// A latency histogram in nanoseconds (1 ns to 100 s, 3 significant digits).
pub fn latency_histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, 100_000_000_000, 3).unwrap_or_else(|_| unreachable!())
}

/// Records `ns` (clamped into the histogram's range).
pub fn record(h: &mut Histogram<u64>, ns: u64) {
    h.saturating_record(ns.max(1));
}

/// The median of `v` (mean of the middle two for an even count); `NaN` when empty.
pub fn median(v: &[f64]) -> f64 {
    let mut v: Vec<f64> = v.iter().copied().filter(|x| !x.is_nan()).collect();
    if v.is_empty() {
        return f64::NAN;
    }
    v.sort_by(|a, b| a.total_cmp(b));
    let n = v.len();
    if n % 2 == 1 {
        v[n / 2]
    } else {
        (v[n / 2 - 1] + v[n / 2]) / 2.0
    }
}

/// The figures k6's `k6/ws` module reports, for one run or summed over runs.
///
/// - `ws_connecting`: time from starting the TCP connect to the end of the opening handshake;
/// - `ws_sessions`: sessions started;
/// - `ws_msgs_sent` / `ws_msgs_received`: data messages sent / received;
/// - `ws_session_duration`: time from the start of the connect to the end of the close
///   handshake (or of the session, when it ended abnormally).
#[derive(Debug, Clone)]
pub struct K6Metrics {
    /// `ws_connecting`, nanoseconds.
    pub connecting: Histogram<u64>,
    /// `ws_sessions`.
    pub sessions: u64,
    /// `ws_msgs_sent`.
    pub msgs_sent: u64,
    /// `ws_msgs_received`.
    pub msgs_received: u64,
    /// `ws_session_duration`, nanoseconds.
    pub session_duration: Histogram<u64>,
}

impl Default for K6Metrics {
    fn default() -> Self {
        K6Metrics {
            connecting: latency_histogram(),
            sessions: 0,
            msgs_sent: 0,
            msgs_received: 0,
            session_duration: latency_histogram(),
        }
    }
}

impl K6Metrics {
    /// Adds `other` into `self`.
    pub fn merge(&mut self, other: &K6Metrics) {
        let _ = self.connecting.add(&other.connecting);
        let _ = self.session_duration.add(&other.session_duration);
        self.sessions += other.sessions;
        self.msgs_sent += other.msgs_sent;
        self.msgs_received += other.msgs_received;
    }

    /// One line in k6's summary style.
    pub fn summary(&self) -> String {
        format!(
            "ws_connecting avg={} p(95)={} | ws_sessions={} | ws_msgs_sent={} | \
             ws_msgs_received={} | ws_session_duration avg={} p(95)={}",
            fmt_ns(self.connecting.mean()),
            fmt_ns(self.connecting.value_at_quantile(0.95) as f64),
            self.sessions,
            self.msgs_sent,
            self.msgs_received,
            fmt_ns(self.session_duration.mean()),
            fmt_ns(self.session_duration.value_at_quantile(0.95) as f64),
        )
    }

    /// A markdown table row: `| connecting avg | p95 | sessions | sent | received | dur avg | p95 |`.
    pub fn row_cells(&self) -> String {
        format!(
            "{} | {} | {} | {} | {} | {} | {}",
            fmt_ns(self.connecting.mean()),
            fmt_ns(self.connecting.value_at_quantile(0.95) as f64),
            self.sessions,
            self.msgs_sent,
            self.msgs_received,
            fmt_ns(self.session_duration.mean()),
            fmt_ns(self.session_duration.value_at_quantile(0.95) as f64),
        )
    }
}

/// A duration in nanoseconds, k6-style (`812µs`, `1.52ms`, `3.01s`).
pub fn fmt_ns(ns: f64) -> String {
    if ns.is_nan() || ns == 0.0 {
        "-".into()
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn medians() {
        assert_eq!(median(&[3.0, 1.0, 2.0]), 2.0);
        assert_eq!(median(&[4.0, 1.0, 2.0, 3.0]), 2.5);
        assert!(median(&[]).is_nan());
    }

    #[test]
    fn k6_merge() {
        let mut a = K6Metrics::default();
        record(&mut a.connecting, 1000);
        a.sessions = 1;
        let mut b = K6Metrics::default();
        record(&mut b.connecting, 3000);
        b.sessions = 2;
        a.merge(&b);
        assert_eq!(a.sessions, 3);
        assert_eq!(a.connecting.len(), 2);
        assert!(a.summary().contains("ws_sessions=3"));
    }
}
