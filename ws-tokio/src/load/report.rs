//! A run's figures as k6 prints them: text, JSON (k6's summary-export shape), markdown.

use std::time::Duration;

use serde_json::{Map, Value, json};

use super::run::{K6Scenario, LoadOpts, LoadResult, Memory};
use super::stats::{Summary, Trend, fmt_duration};

/// The figures of one run, ready to print: the k6 metrics (`ws_connecting`,
/// `ws_msgs_received`, `ws_msgs_sent`, `ws_round_trip`, `ws_session_duration`, `ws_sessions`,
/// in k6's alphabetical order), with avg/min/med/max/p(90)/p(95) for the trends and count and
/// rate for the counters, then peak connections, errors and the server's memory and CPU when
/// its process was given.
#[derive(Debug, Clone)]
pub struct Report {
    /// One line saying what ran.
    pub title: String,
    /// The URL loaded.
    pub target: String,
    /// The run's settings, for the JSON report.
    params: Map<String, Value>,
    result: LoadResult,
}

/// Seconds, for JSON.
fn secs(d: Duration) -> Value {
    json!(d.as_secs_f64())
}

/// Milliseconds with microsecond precision, as k6's summary export gives times.
fn ms(d: Duration) -> f64 {
    (d.as_nanos() as f64 / 1e3).round() / 1e3
}

/// Bytes in binary units: `512 B`, `3.4 KiB`, `12.3 MiB`.
fn fmt_bytes(b: f64) -> String {
    if b < 1024.0 {
        format!("{b:.0} B")
    } else if b < 1024.0 * 1024.0 {
        format!("{:.1} KiB", b / 1024.0)
    } else if b < 1024.0 * 1024.0 * 1024.0 {
        format!("{:.1} MiB", b / (1024.0 * 1024.0))
    } else {
        format!("{:.2} GiB", b / (1024.0 * 1024.0 * 1024.0))
    }
}

enum Metric<'a> {
    Trend(&'a Trend),
    Counter(u64),
}

impl Report {
    /// The report of a [`run_k6`](super::run_k6) scenario.
    pub fn k6(s: &K6Scenario, r: &LoadResult) -> Report {
        let title = format!(
            "k6 scenario: ramp to {} virtual users over {}, {} in all; sessions of {}, a \
             {}-byte text message every {}-{}",
            s.vus,
            fmt_duration(s.ramp),
            fmt_duration(s.duration),
            fmt_duration(s.session),
            s.size,
            fmt_duration(s.interval.0),
            fmt_duration(s.interval.1),
        );
        let mut params = Map::new();
        params.insert("mode".into(), json!("k6"));
        params.insert("vus".into(), json!(s.vus));
        params.insert("ramp_s".into(), secs(s.ramp));
        params.insert("duration_s".into(), secs(s.duration));
        params.insert("session_s".into(), secs(s.session));
        params.insert(
            "interval_s".into(),
            json!([s.interval.0.as_secs_f64(), s.interval.1.as_secs_f64()]),
        );
        params.insert("size".into(), json!(s.size));
        Report {
            title,
            target: s.target.url(),
            params,
            result: r.clone(),
        }
    }

    /// The report of an echo run: `mode` is `"echo"` ([`run_echo`](super::run_echo)) or
    /// `"pipeline"` ([`run_pipeline`](super::run_pipeline)).
    pub fn echo(o: &LoadOpts, mode: &str, r: &LoadResult) -> Report {
        let inflight = if mode == "pipeline" { o.inflight } else { 1 };
        let title = format!(
            "{mode}: {} connection(s) x {}-byte {} messages, {} in flight each, {} measured \
             after {} of warm-up",
            o.conns,
            o.size,
            if o.text { "text" } else { "binary" },
            inflight,
            fmt_duration(o.duration),
            fmt_duration(o.warmup),
        );
        let mut params = Map::new();
        params.insert("mode".into(), json!(mode));
        params.insert("conns".into(), json!(o.conns));
        params.insert("size".into(), json!(o.size));
        params.insert("text".into(), json!(o.text));
        params.insert("inflight".into(), json!(inflight));
        params.insert("warmup_s".into(), secs(o.warmup));
        params.insert("duration_s".into(), secs(o.duration));
        Report {
            title,
            target: o.target.url(),
            params,
            result: r.clone(),
        }
    }

    /// The figures reported.
    pub fn result(&self) -> &LoadResult {
        &self.result
    }

    fn metrics(&self) -> [(&'static str, Metric<'_>); 6] {
        let k = &self.result.k6;
        [
            ("ws_connecting", Metric::Trend(&k.connecting)),
            ("ws_msgs_received", Metric::Counter(k.msgs_received)),
            ("ws_msgs_sent", Metric::Counter(k.msgs_sent)),
            ("ws_round_trip", Metric::Trend(&k.round_trip)),
            ("ws_session_duration", Metric::Trend(&k.session_duration)),
            ("ws_sessions", Metric::Counter(k.sessions)),
        ]
    }

    fn per_sec(&self, n: u64) -> f64 {
        if self.result.total_secs > 0.0 {
            n as f64 / self.result.total_secs
        } else {
            0.0
        }
    }

    fn is_echo(&self) -> bool {
        self.params.get("mode").and_then(Value::as_str) != Some("k6")
    }

    /// Lines after the metrics: peak connections, errors, rates, server figures.
    fn extra_lines(&self) -> Vec<(&'static str, String)> {
        let r = &self.result;
        let mut v = vec![
            ("peak connections", r.peak_connections.to_string()),
            ("errors", r.errors.to_string()),
        ];
        if self.is_echo() {
            v.push((
                "round trips in window",
                format!("{} in {:.2}s, {:.0}/s", r.count, r.secs, r.rate()),
            ));
        } else {
            v.push(("duration", format!("{:.2}s", r.total_secs)));
        }
        if let Some(m) = &r.memory {
            v.push(("server memory", memory_line(m)));
        }
        if let Some(cpu) = r.server_cpu_ns {
            let mut line = fmt_duration(Duration::from_nanos(cpu));
            if let Some(per) = cpu.checked_div(r.count) {
                // The k6 scenario's CPU time includes its connects and close handshakes.
                let what = if self.is_echo() {
                    "per round trip"
                } else {
                    "per round trip, handshakes included"
                };
                line.push_str(&format!(
                    ", {} {what}",
                    fmt_duration(Duration::from_nanos(per))
                ));
            }
            v.push(("server CPU", line));
        }
        v
    }

    /// k6's end-of-test summary: one metric a line, dotted to a column.
    pub fn text(&self) -> String {
        let mut out = format!("{}\ntarget: {}\n\n", self.title, self.target);
        let dots = |name: &str| format!("     {name:.<28}: ");
        for (name, m) in self.metrics() {
            out.push_str(&dots(name));
            match m {
                Metric::Trend(t) => {
                    let fields: Vec<String> = t
                        .summary()
                        .k6_fields()
                        .iter()
                        .map(|(k, v)| format!("{k}={:<9}", fmt_duration(*v)))
                        .collect();
                    out.push_str(fields.join(" ").trim_end());
                }
                Metric::Counter(n) => {
                    out.push_str(&format!("{n:<9} {:.2}/s", self.per_sec(n)));
                }
            }
            out.push('\n');
        }
        out.push('\n');
        for (name, line) in self.extra_lines() {
            out.push_str(&dots(name));
            out.push_str(&line);
            out.push('\n');
        }
        out
    }

    /// A markdown table: one row per metric, the trend columns k6 prints.
    pub fn markdown(&self) -> String {
        let mut out = format!(
            "**{}** (`{}`)\n\n| metric | avg | min | med | max | p(90) | p(95) | count | rate |\n\
             |---|---:|---:|---:|---:|---:|---:|---:|---:|\n",
            self.title, self.target
        );
        for (name, m) in self.metrics() {
            match m {
                Metric::Trend(t) => {
                    let s = t.summary();
                    let cells: Vec<String> = s
                        .k6_fields()
                        .iter()
                        .map(|(_, v)| fmt_duration(*v))
                        .collect();
                    out.push_str(&format!(
                        "| {name} | {} | {} | |\n",
                        cells.join(" | "),
                        s.count
                    ));
                }
                Metric::Counter(n) => out.push_str(&format!(
                    "| {name} | | | | | | | {n} | {:.2}/s |\n",
                    self.per_sec(n)
                )),
            }
        }
        out.push('\n');
        for (name, line) in self.extra_lines() {
            out.push_str(&format!("- {name}: {line}\n"));
        }
        out
    }

    /// The report as JSON, in the shape of k6's `--summary-export`: `metrics` maps each name
    /// to `{"type": "trend", "avg": ms, "min", "med", "max", "p(90)", "p(95)"}` (times in
    /// milliseconds) or `{"type": "counter", "count", "rate"}` (per second).
    pub fn json(&self) -> Value {
        let mut metrics = Map::new();
        for (name, m) in self.metrics() {
            let v = match m {
                Metric::Trend(t) => trend_json(&t.summary()),
                Metric::Counter(n) => {
                    json!({"type": "counter", "count": n, "rate": self.per_sec(n)})
                }
            };
            metrics.insert(name.into(), v);
        }
        let r = &self.result;
        let mut server = Map::new();
        if let Some(m) = &r.memory {
            server.insert("rss_before_bytes".into(), json!(m.rss_before));
            server.insert("rss_peak_bytes".into(), json!(m.rss_peak));
            server.insert("bytes_per_connection".into(), json!(m.per_connection()));
        }
        if let Some(cpu) = r.server_cpu_ns {
            server.insert("cpu_s".into(), json!(cpu as f64 / 1e9));
        }
        json!({
            "title": self.title,
            "target": self.target,
            "params": self.params,
            "duration_s": r.total_secs,
            "metrics": metrics,
            "peak_connections": r.peak_connections,
            "errors": r.errors,
            "window": {"round_trips": r.count, "rate": r.rate()},
            "server": server,
        })
    }
}

fn trend_json(s: &Summary) -> Value {
    json!({
        "type": "trend",
        "count": s.count,
        "avg": ms(s.avg),
        "min": ms(s.min),
        "med": ms(s.med),
        "max": ms(s.max),
        "p(90)": ms(s.p90),
        "p(95)": ms(s.p95),
    })
}

fn memory_line(m: &Memory) -> String {
    let mut s = format!(
        "RSS {} before, {} at peak",
        fmt_bytes(m.rss_before as f64),
        fmt_bytes(m.rss_peak as f64)
    );
    if let Some(per) = m.per_connection() {
        s.push_str(&format!(
            ", {} per connection ({} at the peak of {} connections)",
            fmt_bytes(per),
            fmt_bytes(m.rss_peak.saturating_sub(m.rss_before) as f64),
            m.peak_connections
        ));
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::load::Target;

    fn sample() -> (K6Scenario, LoadResult) {
        let s = K6Scenario::new(Target::from_addr("127.0.0.1:9".parse().unwrap()))
            .with_vus(10)
            .with_duration(Duration::from_secs(20));
        let mut r = LoadResult {
            secs: 20.0,
            total_secs: 20.0,
            peak_connections: 10,
            errors: 1,
            ..LoadResult::default()
        };
        for i in 1..=10 {
            r.k6.connecting.record(Duration::from_millis(i));
            r.k6.round_trip.record(Duration::from_micros(100 * i));
        }
        r.k6.sessions = 10;
        r.k6.msgs_sent = 40;
        r.k6.msgs_received = 40;
        r.memory = Some(Memory {
            rss_before: 1 << 20,
            rss_peak: (1 << 20) + 10 * 2048,
            peak_connections: 10,
        });
        (s, r)
    }

    #[test]
    fn text_has_every_k6_metric_with_its_fields() {
        let (s, r) = sample();
        let t = Report::k6(&s, &r).text();
        for name in [
            "ws_connecting",
            "ws_msgs_received",
            "ws_msgs_sent",
            "ws_round_trip",
            "ws_session_duration",
            "ws_sessions",
        ] {
            assert!(t.contains(name), "{name} in\n{t}");
        }
        let line = t.lines().find(|l| l.contains("ws_connecting")).unwrap();
        for f in [
            "avg=5.50ms",
            "min=1.00ms",
            "med=5.00ms",
            "max=10.00ms",
            "p(90)=9.00ms",
            "p(95)=10.00ms",
        ] {
            assert!(line.contains(f), "{f} in {line}");
        }
        let sent = t.lines().find(|l| l.contains("ws_msgs_sent")).unwrap();
        assert!(sent.contains("40") && sent.contains("2.00/s"), "{sent}");
        assert!(t.contains("2.0 KiB per connection"), "{t}");
    }

    #[test]
    fn json_follows_the_summary_export_shape() {
        let (s, r) = sample();
        let j = Report::k6(&s, &r).json();
        let c = &j["metrics"]["ws_connecting"];
        assert_eq!(c["type"], "trend");
        assert_eq!(c["min"], 1.0);
        // Quantiles are within the histogram's 0.1%.
        let med = c["med"].as_f64().unwrap();
        assert!((med - 5.0).abs() <= 0.005, "{med}");
        assert_eq!(j["metrics"]["ws_msgs_received"]["count"], 40);
        assert_eq!(j["metrics"]["ws_sessions"]["rate"], 0.5);
        assert_eq!(j["server"]["bytes_per_connection"], 2048.0);
        assert_eq!(j["params"]["vus"], 10);
        assert_eq!(j["errors"], 1);
    }

    #[test]
    fn markdown_is_a_table() {
        let (s, r) = sample();
        let m = Report::k6(&s, &r).markdown();
        let rows: Vec<&str> = m.lines().filter(|l| l.starts_with("| ws_")).collect();
        assert_eq!(rows.len(), 6, "{m}");
        // Every row has the header's 10 columns.
        for row in rows {
            assert_eq!(row.matches('|').count(), 10, "{row}");
        }
    }

    #[test]
    fn byte_units() {
        assert_eq!(fmt_bytes(512.0), "512 B");
        assert_eq!(fmt_bytes(3.5 * 1024.0), "3.5 KiB");
        assert_eq!(fmt_bytes(12.25 * 1024.0 * 1024.0), "12.2 MiB");
    }
}
