//! Medians over rounds and the duration format of the reports. The load generator's own
//! statistics (latency trends, k6 metrics) are `ws_tokio::load`'s.

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

/// A duration in nanoseconds, k6-style (`812µs`, `1.52ms`, `3.01s`); `-` for none (`NaN` or 0).
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
        assert_eq!(median(&[f64::NAN, 5.0]), 5.0);
        assert!(median(&[]).is_nan());
    }

    #[test]
    fn durations() {
        assert_eq!(fmt_ns(f64::NAN), "-");
        assert_eq!(fmt_ns(812.0), "812ns");
        assert_eq!(fmt_ns(1_520_000.0), "1.52ms");
        assert_eq!(fmt_ns(3.01e9), "3.01s");
    }
}
