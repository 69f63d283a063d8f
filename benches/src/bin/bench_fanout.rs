//! The fan-out benchmark: one publisher, N subscribers, every message relayed by the server to
//! all of them; writes `benches/RESULTS-fanout.md`.
//!
//! ```text
//! cargo run --release -p benches --bin bench_fanout -- --quick   # about 5 minutes
//! cargo run --release -p benches --bin bench_fanout              # full: about 25-30 minutes
//! cargo run --release -p benches --bin bench_fanout -- --smoke   # one tiny cell, seconds
//! ```
//!
//! `--smoke` (and `--check` with any other selection) also checks the harness: it prints
//! `N passed, N failed` over the runs and exits with 1 if any run failed, lost a message,
//! saw one twice or out of order, had a broken connection or did not drain.
//!
//! ```text
//! ```
//!
//! For every cell and round, each implementation's fan-out server (`src/fanout/server.rs`)
//! is started as a child process (this binary with `--serve`), loaded by the publisher and
//! the subscribers of `src/fanout/load.rs` in this process, and stopped; the order of the
//! implementations rotates from round to round and cell to cell. Medians over the rounds go
//! into the tables, with ours divided by the best peer.
//!
//! Cells (full): steady publishing to 1,000 and 10,000 subscribers at 16 B, 1 KiB and 16 KiB;
//! bursts of 100 messages once a second to 1,000 subscribers at 16 B and 1 KiB; the same
//! steady cells with permessage-deflate (ours, sockudo-ws, yawc); and 1,000 subscribers at
//! 16 KiB of which 10% never read. The steady rate is `--deliveries` (default 30,000)
//! deliveries per second divided by the subscribers (30 msg/s to 1,000, 3 msg/s to 10,000),
//! at most `--max-bytes` (default 200 MB) of payload per second (16 KiB: 12.2 msg/s to
//! 1,000, 1.2 msg/s to 10,000); with deflate `--deflate-deliveries` (default 3,000): chosen
//! so that no server is saturated at 10,000 subscribers on two shared cores. The cell with stalled subscribers
//! publishes 16 KiB at `--slow-rate` (default 100) messages per second for `--slow-duration`
//! seconds (default 12; 4 with `--quick`).
//!
//! Options: `--rounds N`, `--duration S` (measured publishing per run), `--drain S`,
//! `--impls a,b,..`, `--only steady,burst,deflate,slow`, `--subs 1000,10000`,
//! `--workers N` (server runtime workers, default 2), `--client-threads N` (default 1),
//! `--deflate-level N` (zlib level of every compressing server, default 2: ours' default;
//! sockudo-ws's own default is 6, yawc's low-latency preset 1), `--out PATH`.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use benches::child;
use benches::cli::{Args, die, fmt_size};
use benches::fanout::load::{FanoutOpts, FanoutResult, Pattern, run_fanout};
use benches::fanout::server::{DEFLATE_LEVEL, has_deflate, serve};
use benches::procfs;
use benches::report::{fmt_bytes, fmt_rate, header, lock_version, ours_vs_best_peer, row, today};
use benches::server::Impl;
use benches::stats::{fmt_ns, median};

/// What a cell measures.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Steady,
    Burst,
    Deflate,
    Slow,
}

/// One cell of the matrix.
#[derive(Debug, Clone, Copy)]
struct Cell {
    kind: Kind,
    subs: usize,
    size: usize,
    pattern: Pattern,
    stalled: usize,
    /// Measured publishing, when not the settings' `duration`.
    duration: Option<Duration>,
}

impl Cell {
    fn deflate(&self) -> bool {
        self.kind == Kind::Deflate
    }

    fn label(&self) -> String {
        let n = if self.subs >= 1000 && self.subs.is_multiple_of(1000) {
            format!("{}k", self.subs / 1000)
        } else {
            self.subs.to_string()
        };
        let how = match self.pattern {
            Pattern::Steady { rate } if rate >= 10.0 || rate.fract() == 0.0 => {
                format!("steady {rate:.0}/s")
            }
            Pattern::Steady { rate } => format!("steady {rate:.1}/s"),
            Pattern::Burst { count, period } => {
                format!("{count} every {:.0} s", period.as_secs_f64())
            }
        };
        let extra = match self.kind {
            Kind::Deflate => ", deflate".to_string(),
            Kind::Slow => format!(
                ", 10% never read, {:.0} s",
                self.duration.unwrap_or_default().as_secs_f64()
            ),
            _ => String::new(),
        };
        format!("{n} × {}, {how}{extra}", fmt_size(self.size))
    }

    fn impls(&self, all: &[Impl]) -> Vec<Impl> {
        all.iter()
            .copied()
            .filter(|&i| !self.deflate() || has_deflate(i))
            .collect()
    }
}

#[derive(Debug, Clone)]
struct Settings {
    mode: &'static str,
    rounds: usize,
    duration: Duration,
    drain: Duration,
    impls: Vec<Impl>,
    workers: usize,
    client_threads: usize,
    cells: Vec<Cell>,
    deliveries: f64,
    deflate_deliveries: f64,
    max_bytes: f64,
    deflate_level: u8,
    out: PathBuf,
    loadavg_start: f64,
    nofile_note: Option<String>,
}

const DEFAULT_IMPLS: [Impl; 6] = [
    Impl::Ours,
    Impl::Tungstenite,
    Impl::TokioWebsockets,
    Impl::Fastwebsockets,
    Impl::SockudoWs,
    Impl::Yawc,
];

fn main() {
    let args = Args::from_env();
    if let Some(name) = args.value("serve") {
        let imp: Impl = name.parse().unwrap_or_else(|e: String| die(&e));
        let addr = SocketAddr::from(([127, 0, 0, 1], 0));
        let workers = args.get("workers", 2usize);
        let deflate = args
            .flag("deflate")
            .then(|| args.get("deflate-level", DEFLATE_LEVEL));
        if let Err(e) = serve(imp, deflate, addr, workers, Duration::from_secs(3600), true) {
            die(&format!("server failed: {e}"));
        }
        return;
    }
    if args.flag("help") {
        println!("see the module documentation at the top of benches/src/bin/bench_fanout.rs");
        return;
    }
    let s = settings(&args);
    let (results, failures) = run(&s);
    if args.flag("smoke") || args.flag("check") {
        // The harness's own test: every run ran, delivered everything, in order.
        let runs: Vec<&FanoutResult> = results.values().flatten().collect();
        let bad = runs
            .iter()
            .filter(|r| {
                r.lost > 0 || r.disorder > 0 || r.errors > 0 || !r.drained || r.delivered == 0
            })
            .count();
        let expected: usize = s
            .cells
            .iter()
            .map(|c| c.impls(&s.impls).len())
            .sum::<usize>()
            * s.rounds;
        let passed = runs.len() - bad;
        let failed = bad + failures.len() + expected.saturating_sub(runs.len() + failures.len());
        println!("{passed} passed, {failed} failed");
        if failed > 0 {
            std::process::exit(1);
        }
    }
}

fn settings(args: &Args) -> Settings {
    let quick = args.flag("quick");
    let smoke = args.flag("smoke");
    let impls: Vec<Impl> = match args.value("impls") {
        Some(list) => list
            .split(',')
            .map(|s| s.trim().parse().unwrap_or_else(|e: String| die(&e)))
            .collect(),
        None if smoke => vec![Impl::Ours, Impl::TokioWebsockets, Impl::Yawc],
        None => DEFAULT_IMPLS.to_vec(),
    };
    if impls.is_empty() {
        die("no implementation selected");
    }
    let only: Vec<String> = args
        .value("only")
        .map(|s| s.split(',').map(|x| x.trim().to_string()).collect())
        .unwrap_or_else(|| {
            ["steady", "burst", "deflate", "slow"]
                .iter()
                .map(|s| s.to_string())
                .collect()
        });
    let want = |k: &str| only.iter().any(|o| o == k);
    let deliveries: f64 = args.get("deliveries", 30_000.0);
    let deflate_deliveries: f64 = args.get("deflate-deliveries", 3_000.0);
    let slow_rate: f64 = args.get("slow-rate", 100.0);
    let max_bytes: f64 = args.get("max-bytes", 200e6);
    // Long enough for unbounded queues to outgrow a bounded one.
    let slow_duration = args.secs("slow-duration", if quick { 4.0 } else { 12.0 });
    let subs_list: Vec<usize> = match args.value("subs") {
        Some(l) => l
            .split(',')
            .map(|x| {
                x.trim()
                    .parse()
                    .unwrap_or_else(|_| die("bad --subs (a list of counts)"))
            })
            .collect(),
        None if smoke => vec![50],
        None if quick => vec![1000, 10_000],
        None => vec![1000, 10_000],
    };
    if subs_list.iter().any(|&n| n == 0 || n > 30_000) {
        die("subscriber counts must be 1..=30000");
    }
    let small = subs_list.iter().copied().min().unwrap_or(1000);
    // Deliveries per second, capped at `max_bytes` of payload per second.
    let steady = |subs: usize, size: usize, per_s: f64| Pattern::Steady {
        rate: (per_s.min(max_bytes / size as f64) / subs as f64).max(0.25),
    };
    let burst = Pattern::Burst {
        count: 100,
        period: Duration::from_secs(1),
    };
    let sizes_all = [16usize, 1024, 16 << 10];
    let mut cells = Vec::new();
    let push = |cells: &mut Vec<Cell>, kind, subs, size, pattern, stalled| {
        cells.push(Cell {
            kind,
            subs,
            size,
            pattern,
            stalled,
            duration: (kind == Kind::Slow).then_some(slow_duration),
        })
    };
    if smoke {
        push(
            &mut cells,
            Kind::Steady,
            small,
            1024,
            steady(small, 1024, 2_000.0),
            0,
        );
        push(
            &mut cells,
            Kind::Deflate,
            small,
            1024,
            steady(small, 1024, 500.0),
            0,
        );
    } else {
        for &subs in &subs_list {
            let sizes: &[usize] = if quick && subs > small {
                &[1024]
            } else {
                &sizes_all
            };
            if want("steady") {
                for &size in sizes {
                    push(
                        &mut cells,
                        Kind::Steady,
                        subs,
                        size,
                        steady(subs, size, deliveries),
                        0,
                    );
                }
            }
        }
        if want("burst") {
            let sizes: &[usize] = if quick { &[1024] } else { &[16, 1024] };
            for &size in sizes {
                push(&mut cells, Kind::Burst, small, size, burst, 0);
            }
        }
        if want("deflate") {
            for &subs in &subs_list {
                let sizes: &[usize] = if quick {
                    if subs > small { &[] } else { &[1024, 16 << 10] }
                } else {
                    &sizes_all
                };
                for &size in sizes {
                    push(
                        &mut cells,
                        Kind::Deflate,
                        subs,
                        size,
                        steady(subs, size, deflate_deliveries),
                        0,
                    );
                }
            }
        }
        if want("slow") {
            push(
                &mut cells,
                Kind::Slow,
                small,
                16 << 10,
                Pattern::Steady { rate: slow_rate },
                small / 10,
            );
        }
    }
    let max_subs = cells.iter().map(|c| c.subs).max().unwrap_or(0);
    // The driver holds one descriptor per subscriber, the server (which inherits the limit)
    // one per accepted connection.
    let need = max_subs as u64 + 4096;
    let got = procfs::raise_nofile(need);
    let mut nofile_note = None;
    if got < need {
        let fit = got.saturating_sub(4096) as usize;
        nofile_note = Some(format!(
            "RLIMIT_NOFILE could only be raised to {got}: cells with more than {fit} \
             subscribers were left out"
        ));
        cells.retain(|c| c.subs <= fit);
    }
    let rounds = args.get(
        "rounds",
        if smoke {
            1usize
        } else if quick {
            2
        } else {
            3
        },
    );
    Settings {
        mode: if smoke {
            "smoke"
        } else if quick {
            "quick"
        } else {
            "full"
        },
        rounds: rounds.max(1),
        duration: args.secs(
            "duration",
            if smoke {
                1.0
            } else if quick {
                2.0
            } else {
                4.0
            },
        ),
        drain: args.secs("drain", if smoke { 5.0 } else { 15.0 }),
        impls,
        workers: args.get("workers", 2usize),
        client_threads: args.get("client-threads", 1usize),
        cells,
        deliveries,
        deflate_deliveries,
        max_bytes,
        deflate_level: args.get("deflate-level", DEFLATE_LEVEL).min(9),
        loadavg_start: procfs::loadavg(),
        nofile_note,
        out: args.value("out").map(PathBuf::from).unwrap_or_else(|| {
            PathBuf::from(env!("CARGO_MANIFEST_DIR")).join(if smoke {
                "RESULTS-fanout-smoke.md"
            } else {
                "RESULTS-fanout.md"
            })
        }),
    }
}

/// The implementations in round `r`'s order.
fn rotated(impls: &[Impl], r: usize) -> Vec<Impl> {
    let n = impls.len();
    (0..n).map(|i| impls[(i + r) % n]).collect()
}

fn start_server(imp: Impl, deflate: Option<u8>, workers: usize) -> std::io::Result<child::Server> {
    let mut args = vec![
        "--serve".to_string(),
        imp.name().to_string(),
        "--workers".to_string(),
        workers.to_string(),
    ];
    if let Some(level) = deflate {
        args.push("--deflate".into());
        args.push("--deflate-level".into());
        args.push(level.to_string());
    }
    child::Server::start(&args)
}

type Results = BTreeMap<(usize, usize), Vec<FanoutResult>>;

fn run(s: &Settings) -> (Results, Vec<String>) {
    let started = Instant::now();
    let mut results: Results = BTreeMap::new();
    let mut failures: Vec<String> = Vec::new();
    let idx = |imp: Impl| s.impls.iter().position(|&i| i == imp).unwrap_or(0);
    eprintln!(
        "bench_fanout ({} mode): {} rounds, {:?} measured per run, {} cells, impls: {}",
        s.mode,
        s.rounds,
        s.duration,
        s.cells.len(),
        s.impls
            .iter()
            .map(|i| i.name())
            .collect::<Vec<_>>()
            .join(", ")
    );
    for round in 0..s.rounds {
        for (ci, cell) in s.cells.iter().enumerate() {
            for imp in rotated(&cell.impls(&s.impls), round + ci) {
                let level = cell.deflate().then_some(s.deflate_level);
                let r = start_server(imp, level, s.workers).and_then(|srv| {
                    run_fanout(&FanoutOpts {
                        addr: srv.addr,
                        subscribers: cell.subs,
                        stalled: cell.stalled,
                        size: cell.size,
                        deflate: cell.deflate(),
                        pattern: cell.pattern,
                        duration: cell.duration.unwrap_or(s.duration),
                        drain: s.drain,
                        server_pid: Some(srv.pid()),
                        client_threads: s.client_threads,
                    })
                });
                match r {
                    Ok(r) => {
                        eprintln!(
                            "[round {}/{}] {:<42} {:<17} {}",
                            round + 1,
                            s.rounds,
                            cell.label(),
                            imp.name(),
                            r.summary()
                        );
                        results.entry((ci, idx(imp))).or_default().push(r);
                    }
                    Err(e) => {
                        let msg =
                            format!("round {} {} {}: {e}", round + 1, cell.label(), imp.name());
                        eprintln!("FAILED {msg}");
                        failures.push(msg);
                    }
                }
            }
        }
    }
    let md = render(s, &results, &failures, started.elapsed());
    println!("{md}");
    match std::fs::write(&s.out, &md) {
        Ok(()) => eprintln!("wrote {}", s.out.display()),
        Err(e) => eprintln!("could not write {}: {e}", s.out.display()),
    }
    (results, failures)
}

// ---------------------------------------------------------------------------------------------
// Rendering
// ---------------------------------------------------------------------------------------------

/// Median over rounds of `f`, per implementation (`NaN` where it did not run).
fn medians(r: &Results, ci: usize, n: usize, f: &dyn Fn(&FanoutResult) -> f64) -> Vec<f64> {
    (0..n)
        .map(|ii| {
            r.get(&(ci, ii))
                .map_or(f64::NAN, |v| median(&v.iter().map(f).collect::<Vec<_>>()))
        })
        .collect()
}

/// Sum over rounds of `f`, per implementation.
fn sums(r: &Results, ci: usize, n: usize, f: &dyn Fn(&FanoutResult) -> f64) -> Vec<f64> {
    (0..n)
        .map(|ii| r.get(&(ci, ii)).map_or(f64::NAN, |v| v.iter().map(f).sum()))
        .collect()
}

fn fmt_us(ns: f64) -> String {
    if ns.is_nan() {
        "-".into()
    } else if ns < 10_000.0 {
        format!("{:.2} µs", ns / 1e3)
    } else {
        format!("{:.1} µs", ns / 1e3)
    }
}

fn fmt_count(x: f64) -> String {
    if x.is_nan() {
        "-".into()
    } else {
        format!("{x:.0}")
    }
}

fn machine_section(s: &Settings) -> String {
    let (model, cores) = procfs::machine();
    let rustc = std::process::Command::new("rustc")
        .arg("-V")
        .output()
        .ok()
        .and_then(|o| String::from_utf8(o.stdout).ok())
        .map(|v| v.trim().to_string())
        .unwrap_or_else(|| "unknown".into());
    let mut m = String::new();
    let _ = writeln!(m, "- Date: {} ({} mode)", today(), s.mode);
    let _ = writeln!(
        m,
        "- Machine: {model}, {cores} cores shared by the server, the load generator and whatever \
         else runs; Linux {}",
        procfs::kernel()
    );
    let _ = writeln!(
        m,
        "- Toolchain: {rustc}, release profile (thin LTO, 1 codegen unit)"
    );
    let _ = writeln!(
        m,
        "- Peers: tokio-tungstenite {}, tokio-websockets {}, fastwebsockets {} (hyper {}), \
         sockudo-ws {}, yawc {}; tokio {}",
        lock_version("tokio-tungstenite"),
        lock_version("tokio-websockets"),
        lock_version("fastwebsockets"),
        lock_version("hyper"),
        lock_version("sockudo-ws"),
        lock_version("yawc"),
        lock_version("tokio")
    );
    let _ = writeln!(
        m,
        "- Servers: tokio multi-thread runtime with {} workers, TCP_NODELAY, one task per \
         connection (src/fanout/server.rs). Each peer broadcasts the way its examples do: one \
         unbounded sender per subscriber feeding that subscriber's writer (sockudo-ws: its \
         PubSub topics). Ours: `ws_tokio::topics` with its default queues (each message framed \
         once, an `Arc` of it in every subscriber's bounded queue, drained by the subscriber's \
         own task with one vectored write). permessage-deflate at \
         zlib level {} for all three that have it: the peers compress per \
         subscriber with their default context takeover, ours once per message \
         (shared compressor, no context takeover)",
        s.workers, s.deflate_level
    );
    let _ = writeln!(
        m,
        "- Load: one publisher connection on its own thread; subscribers in the driver process \
         ({} runtime thread(s)), each checking sequence numbers and measuring delivery latency \
         from the send time in the payload (JSON-like text); with deflate they offer \
         `permessage-deflate; client_max_window_bits` and inflate every message. Steady rate = \
         {:.0} deliveries/s ÷ subscribers ({:.0} with deflate), at most {:.0} MB of payload \
         per second; bursts: 100 messages in one \
         write, once a second. {} rounds, implementation order rotated per round and cell; \
         {:.1} s of publishing per run; medians over rounds",
        s.client_threads,
        s.deliveries,
        s.deflate_deliveries,
        s.max_bytes / 1e6,
        s.rounds,
        s.duration.as_secs_f64()
    );
    let _ = writeln!(
        m,
        "- Server CPU per delivery: the server's CPU time (user + system, summed over its \
         threads from /proc/<pid>/task/*/schedstat, in ns; /proc/<pid>/stat's utime+stime \
         counts {} ms ticks, too coarse for the smaller cells) from the first measured send \
         until every reading subscriber had the last message, divided by the messages \
         delivered. RSS per subscriber: server RSS after the warm-up messages minus RSS with \
         only the publisher connected, ÷ subscribers",
        1000 / procfs::clk_tck().max(1)
    );
    if let Some(n) = &s.nofile_note {
        let _ = writeln!(m, "- Note: {n}");
    }
    m
}

fn render(s: &Settings, r: &Results, failures: &[String], elapsed: Duration) -> String {
    let n = s.impls.len();
    let mut md = String::new();
    let _ = writeln!(md, "# Fan-out results\n");
    let _ = writeln!(
        md,
        "Generated by `cargo run --release -p benches --bin bench_fanout{}` in {:.0} s. Bold: \
         best per row. Last column: ours divided by the best peer (throughput: above 1 is \
         better; CPU, latency and memory: below 1 is better). `-`: not run (no server-side \
         deflate) or failed.\n",
        match s.mode {
            "quick" => " -- --quick",
            "smoke" => " -- --smoke",
            _ => "",
        },
        elapsed.as_secs_f64()
    );
    md.push_str(&machine_section(s));
    md.push('\n');
    let cells: Vec<(usize, &Cell)> = s.cells.iter().enumerate().collect();
    type Metric<'a> = (
        &'a str,
        &'a dyn Fn(&FanoutResult) -> f64,
        &'a dyn Fn(f64) -> String,
        bool,
    );
    let metrics: [Metric; 4] = [
        (
            "Server CPU per delivered message (user + system; lower is better)",
            &|x| x.cpu_per_delivery_ns(),
            &fmt_us,
            false,
        ),
        (
            "Delivered messages per second (all subscribers)",
            &|x| x.rate(),
            &fmt_rate,
            true,
        ),
        (
            "p50 delivery latency (publisher's send to subscriber's read)",
            &|x| x.quantile_ns(0.5),
            &fmt_ns,
            false,
        ),
        (
            "p99 delivery latency",
            &|x| x.quantile_ns(0.99),
            &fmt_ns,
            false,
        ),
    ];
    for (title, f, fmt, hb) in metrics {
        let _ = writeln!(md, "## {title}\n");
        md.push_str(&header("cell", &s.impls, "ours ÷ best peer"));
        for &(ci, c) in &cells {
            let v = medians(r, ci, n, f);
            md.push_str(&row(&c.label(), &s.impls, &v, fmt, hb));
            md.push('\n');
        }
        md.push('\n');
    }
    let _ = writeln!(
        md,
        "## Server RSS per subscriber (after the first messages; lower is better)\n"
    );
    md.push_str(&header("cell", &s.impls, "ours ÷ best peer"));
    for &(ci, c) in &cells {
        let v = medians(r, ci, n, &|x| x.rss_per_subscriber());
        md.push_str(&row(&c.label(), &s.impls, &v, &fmt_bytes, false));
        md.push('\n');
    }
    let _ = writeln!(
        md,
        "\n## Lost messages (sum over rounds: measured messages a reading subscriber never got; \
         then duplicates or reordered, and errors)\n"
    );
    md.push_str(&header("cell", &s.impls, "total"));
    for &(ci, c) in &cells {
        let lost = sums(r, ci, n, &|x| x.lost as f64);
        let dis = sums(r, ci, n, &|x| x.disorder as f64);
        let err = sums(r, ci, n, &|x| x.errors as f64);
        let undrained = sums(r, ci, n, &|x| (!x.drained) as u8 as f64);
        let _ = write!(md, "| {} |", c.label());
        let mut total = 0.0;
        for i in 0..n {
            if lost[i].is_nan() {
                md.push_str(" - |");
                continue;
            }
            total += lost[i];
            let _ = write!(
                md,
                " {} / {} / {}{} |",
                fmt_count(lost[i]),
                fmt_count(dis[i]),
                fmt_count(err[i]),
                if undrained[i] > 0.0 {
                    format!(" ({} undrained)", undrained[i])
                } else {
                    String::new()
                }
            );
        }
        let _ = writeln!(md, " {total:.0} |");
    }
    if let Some((ci, c)) = cells.iter().find(|(_, c)| c.kind == Kind::Slow) {
        let _ = writeln!(
            md,
            "\n## {}: server growth while {} subscribers never read\n\nServer RSS at its highest \
             during the window minus RSS after the first messages; per stalled subscriber in \
             the second row. Ours bounds it by its subscribers' queues (1024 messages or 4 MiB \
             each, the messages shared) and each stalled subscriber's write buffer (128 KiB), \
             until the overflow closes the stalled ones: the bound is about {} in all here.\n",
            c.label(),
            c.stalled,
            fmt_bytes(benches::fanout::server::ours::memory_bound(c.size, c.stalled) as f64)
        );
        md.push_str(&header("metric", &s.impls, "ours ÷ best peer"));
        let v = medians(r, *ci, n, &|x| x.rss_growth() as f64);
        md.push_str(&row("growth", &s.impls, &v, &fmt_bytes, false));
        md.push('\n');
        let v = medians(r, *ci, n, &|x| {
            x.rss_growth() as f64 / x.stalled.max(1) as f64
        });
        md.push_str(&row(
            "per stalled subscriber",
            &s.impls,
            &v,
            &fmt_bytes,
            false,
        ));
        md.push('\n');
        let v = medians(r, *ci, n, &|x| x.rss_end.saturating_sub(x.rss_first) as f64);
        md.push_str(&row("growth at the end", &s.impls, &v, &fmt_bytes, false));
        md.push('\n');
    }
    md.push_str(&goals(s, r));
    let _ = writeln!(
        md,
        "\n## Machine load during the runs\n\nCPU cores busy with other processes during the \
         measured windows (machine busy + stolen time minus server and load generator), \
         median per cell. The machine has {} cores; anything well above 0 means the figures \
         above are noisier. Load average (1 min) at start: {:.2}, at end: {:.2}.\n",
        procfs::machine().1,
        s.loadavg_start,
        procfs::loadavg()
    );
    md.push_str(&header("cell", &s.impls, "max"));
    for &(ci, c) in &cells {
        let v = medians(r, ci, n, &|x| x.background_cores());
        let _ = write!(md, "| {} |", c.label());
        for x in &v {
            if x.is_nan() {
                md.push_str(" - |");
            } else {
                let _ = write!(md, " {x:.2} |");
            }
        }
        let max = v
            .iter()
            .copied()
            .filter(|x| !x.is_nan())
            .fold(0.0, f64::max);
        let _ = writeln!(md, " {max:.2} |");
    }
    if !failures.is_empty() {
        let _ = writeln!(md, "\n## Failed runs\n");
        for f in failures {
            let _ = writeln!(md, "- {f}");
        }
    }
    md
}

/// The issue's goals, checked against the medians.
fn goals(s: &Settings, r: &Results) -> String {
    let n = s.impls.len();
    let mut out = String::from(
        "\n## Goals\n\n| goal | cell | ours ÷ best peer | target | met |\n|---|---|---:|---:|---|\n",
    );
    let mut line = |goal: &str, cell: &Cell, got: Option<(f64, Impl)>, target: f64| {
        let (cell_s, v, met) = match got {
            Some((x, imp)) => (
                cell.label(),
                format!("{x:.2}× ({})", imp.name()),
                if x <= target { "yes" } else { "no" },
            ),
            None => (cell.label(), "-".into(), "-"),
        };
        let _ = writeln!(out, "| {goal} | {cell_s} | {v} | ≤ {target}× | {met} |");
    };
    let cpu = |ci: usize| medians(r, ci, n, &|x| x.cpu_per_delivery_ns());
    for (ci, c) in s.cells.iter().enumerate() {
        let ratio = ours_vs_best_peer(&s.impls, &cpu(ci), false);
        match c.kind {
            Kind::Steady if c.size >= 1024 => line("steady CPU/delivery", c, ratio, 0.9),
            Kind::Burst => line("burst CPU/delivery", c, ratio, 0.5),
            Kind::Deflate if c.size == 1024 => line("deflate CPU/delivery", c, ratio, 0.15),
            Kind::Deflate if c.size >= 16 << 10 => line("deflate CPU/delivery", c, ratio, 0.05),
            _ => {}
        }
        if c.kind != Kind::Slow {
            let p99 = medians(r, ci, n, &|x| x.quantile_ns(0.99));
            line(
                "p99 latency",
                c,
                ours_vs_best_peer(&s.impls, &p99, false),
                1.0,
            );
        }
    }
    // Memory with compression within 1 KB of the plain figure.
    let ours = s.impls.iter().position(|i| i.is_ours());
    let mut mem = String::new();
    if let Some(oi) = ours {
        for (ci, c) in s.cells.iter().enumerate() {
            if c.kind != Kind::Deflate {
                continue;
            }
            let plain = s
                .cells
                .iter()
                .position(|p| p.kind == Kind::Steady && p.subs == c.subs && p.size == c.size);
            if let Some(pi) = plain {
                let z = medians(r, ci, n, &|x| x.rss_per_subscriber())[oi];
                let p = medians(r, pi, n, &|x| x.rss_per_subscriber())[oi];
                if !z.is_nan() && !p.is_nan() {
                    let _ = writeln!(
                        mem,
                        "| ours' RSS/subscriber with deflate − without | {} | {:+.0} B | ≤ 1024 B | {} |",
                        c.label(),
                        z - p,
                        if z - p <= 1024.0 { "yes" } else { "no" }
                    );
                }
            }
        }
        let lost: f64 = (0..s.cells.len())
            .map(|ci| sums(r, ci, n, &|x| x.lost as f64)[oi])
            .filter(|x| !x.is_nan())
            .sum();
        let _ = writeln!(
            mem,
            "| ours: nothing lost by subscribers that read | all cells | {lost:.0} lost | 0 | {} |",
            if lost == 0.0 { "yes" } else { "no" }
        );
    }
    out.push_str(&mem);
    out
}
