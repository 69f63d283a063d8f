//! Runs the side-by-side matrix and writes `benches/RESULTS.md`.
//!
//! ```text
//! cargo run --release -p benches --bin bench_all -- --quick      # about 3 minutes
//! cargo run --release -p benches --bin bench_all                 # full: about 20-25 minutes
//! cargo run --release -p benches --bin bench_all -- --k6-scenario [--vus 1000]
//! ```
//!
//! For every cell (C connections in {1, 100, 1000} x message size in {16 B, 1 KiB, 64 KiB},
//! the pipelined cell, handshakes/s and idle memory per connection) and every round, each
//! implementation's echo server is started as a child process (this same binary with
//! `--serve`), loaded, and stopped; the order of the implementations rotates from round to
//! round. Medians over the rounds go into the tables, with ours divided by the best peer.
//!
//! Options: `--rounds N`, `--warmup S`, `--duration S`, `--impls a,b,..` (from ours,
//! ours-default, tungstenite, fastwebsockets, tokio-websockets), `--only echo,pipeline,handshake,idle`,
//! `--idle-conns N` (default 10000), `--hs-conns N` (concurrent handshake loops, default 16),
//! `--workers N` (server runtime workers, default 2), `--client-threads N` (default 1),
//! `--text` (text instead of binary messages), `--out PATH` (default `benches/RESULTS.md`).
//! k6 scenario: `--vus N` (default 1000), `--ramp S` (10), `--k6-duration S` (30),
//! `--session S` (10), `--k6-rounds N` (1), written to `benches/RESULTS-k6.md`.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::Command;
use std::time::{Duration, Instant};

use benches::child;
use benches::cli::{Args, die, fmt_size};
use benches::procfs;
use benches::report::{fmt_bytes, fmt_conn_bytes, fmt_rate, header, lock_version, row, today};
use benches::server::{Impl, serve};
use benches::stats::{fmt_ns, median};
use ws_tokio::load::{
    IdleResult, K6Metrics, K6Scenario, LoadOpts, LoadResult, Target, Trend, run_echo,
    run_handshakes, run_idle, run_k6, run_pipeline,
};

/// One measurement of the matrix.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Cell {
    Echo { conns: usize, size: usize },
    Pipeline { inflight: usize, size: usize },
    Handshake { conns: usize },
}

impl Cell {
    fn label(&self) -> String {
        match *self {
            Cell::Echo { conns, size } => format!("C={conns}, {}", fmt_size(size)),
            Cell::Pipeline { inflight, size } => {
                format!(
                    "pipelined: 1 conn, {inflight} in flight, {}",
                    fmt_size(size)
                )
            }
            Cell::Handshake { conns } => format!("handshakes ({conns} concurrent loops)"),
        }
    }
}

#[derive(Debug, Clone)]
struct Settings {
    mode: &'static str,
    rounds: usize,
    idle_rounds: usize,
    warmup: Duration,
    duration: Duration,
    impls: Vec<Impl>,
    workers: usize,
    client_threads: usize,
    text: bool,
    cells: Vec<Cell>,
    idle_conns: usize,
    idle_note: Option<String>,
    out: PathBuf,
    loadavg_start: f64,
}

/// A server child for `imp`: this binary with `--serve`.
struct Server;

impl Server {
    fn start(imp: Impl, workers: usize) -> std::io::Result<child::Server> {
        child::Server::start(&[
            "--serve".into(),
            imp.name().into(),
            "--workers".into(),
            workers.to_string(),
        ])
    }
}

fn main() {
    let args = Args::from_env();
    if let Some(name) = args.value("serve") {
        let imp: Impl = name.parse().unwrap_or_else(|e: String| die(&e));
        let addr = SocketAddr::from(([127, 0, 0, 1], 0));
        let workers = args.get("workers", 2usize);
        if let Err(e) = serve(imp, addr, workers, Duration::from_secs(3600), true) {
            die(&format!("server failed: {e}"));
        }
        return;
    }
    if args.flag("help") {
        println!("see the module documentation at the top of benches/src/bin/bench_all.rs");
        return;
    }
    let settings = settings(&args);
    if args.flag("k6-scenario") {
        k6_scenario(&args, &settings);
        return;
    }
    matrix(&settings);
}

fn settings(args: &Args) -> Settings {
    let quick = args.flag("quick");
    let impls: Vec<Impl> = match args.value("impls") {
        Some(list) => list
            .split(',')
            .map(|s| s.trim().parse().unwrap_or_else(|e: String| die(&e)))
            .collect(),
        None => Impl::DEFAULT_SET.to_vec(),
    };
    if impls.is_empty() {
        die("no implementation selected");
    }
    let only: Vec<String> = args
        .value("only")
        .map(|s| s.split(',').map(|x| x.trim().to_string()).collect())
        .unwrap_or_else(|| {
            ["echo", "pipeline", "handshake", "idle"]
                .iter()
                .map(|s| s.to_string())
                .collect()
        });
    let want = |k: &str| only.iter().any(|o| o == k);
    let mut cells = Vec::new();
    if want("echo") {
        for conns in [1, 100, 1000] {
            for size in [16, 1024, 64 << 10] {
                cells.push(Cell::Echo { conns, size });
            }
        }
    }
    if want("pipeline") {
        cells.push(Cell::Pipeline {
            inflight: 1000,
            size: 16,
        });
    }
    if want("handshake") {
        cells.push(Cell::Handshake {
            conns: args.get("hs-conns", 16usize),
        });
    }
    let mut idle_conns = if want("idle") {
        args.get("idle-conns", 10_000usize)
    } else {
        0
    };
    let mut idle_note = None;
    if idle_conns > 0 {
        // The driver holds one descriptor per client connection, the server (which inherits
        // the limit) one per accepted connection; both need headroom.
        let need = idle_conns as u64 + 2048;
        let got = procfs::raise_nofile(need);
        if got < need {
            let reduced = (got.saturating_sub(2048) as usize).max(100);
            idle_note = Some(format!(
                "RLIMIT_NOFILE could only be raised to {got}: idle connections reduced from \
                 {idle_conns} to {reduced}"
            ));
            idle_conns = reduced;
        }
    }
    let rounds = args.get("rounds", if quick { 3usize } else { 5 });
    Settings {
        mode: if quick { "quick" } else { "full" },
        rounds: rounds.max(1),
        idle_rounds: args.get("idle-rounds", if quick { 1usize } else { 3 }),
        warmup: args.secs("warmup", if quick { 0.25 } else { 1.0 }),
        duration: args.secs("duration", if quick { 0.75 } else { 4.0 }),
        impls,
        workers: args.get("workers", 2usize),
        client_threads: args.get("client-threads", 1usize),
        text: args.flag("text"),
        cells,
        idle_conns,
        idle_note,
        loadavg_start: procfs::loadavg(),
        out: args
            .value("out")
            .map(PathBuf::from)
            .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("RESULTS.md")),
    }
}

/// The implementations in round `r`'s order.
fn rotated(impls: &[Impl], r: usize) -> Vec<Impl> {
    let n = impls.len();
    (0..n).map(|i| impls[(i + r) % n]).collect()
}

/// Per-run k6 figures, for the details table.
struct RunRecord {
    round: usize,
    what: String,
    imp: Impl,
    k6: K6Metrics,
    errors: u64,
}

/// What the load requests of every server: `/echo`.
fn target(addr: SocketAddr) -> Target {
    Target::from_addr(addr).with_path("/echo")
}

fn run_cell(cell: Cell, s: &Settings, server: &child::Server) -> std::io::Result<LoadResult> {
    let o = LoadOpts::new(target(server.addr))
        .with_warmup(s.warmup)
        .with_duration(s.duration)
        .with_server_pid(Some(server.pid()))
        .with_client_threads(s.client_threads)
        .with_text(s.text);
    match cell {
        Cell::Echo { conns, size } => run_echo(&o.with_conns(conns).with_size(size)),
        Cell::Pipeline { inflight, size } => {
            run_pipeline(&o.with_inflight(inflight).with_size(size))
        }
        Cell::Handshake { conns } => run_handshakes(&o.with_conns(conns)),
    }
}

/// The k6 columns of the tables: `connecting avg | p95 | sessions | sent | received | session
/// avg | p95`.
fn k6_cells(k: &K6Metrics) -> String {
    let ns = |d: std::time::Duration| fmt_ns(d.as_nanos() as f64);
    let (c, d) = (k.connecting.summary(), k.session_duration.summary());
    format!(
        "{} | {} | {} | {} | {} | {} | {}",
        ns(c.avg),
        ns(c.p95),
        k.sessions,
        k.msgs_sent,
        k.msgs_received,
        ns(d.avg),
        ns(d.p95),
    )
}

fn matrix(s: &Settings) {
    let started = Instant::now();
    let mut results: BTreeMap<(usize, usize), Vec<LoadResult>> = BTreeMap::new();
    let mut idle: BTreeMap<usize, Vec<IdleResult>> = BTreeMap::new();
    let mut runs: Vec<RunRecord> = Vec::new();
    let mut failures: Vec<String> = Vec::new();
    let idx = |imp: Impl| s.impls.iter().position(|&i| i == imp).unwrap_or(0);
    eprintln!(
        "bench_all ({} mode): {} rounds, {:?} warm-up + {:?} measured per run, impls: {}",
        s.mode,
        s.rounds,
        s.warmup,
        s.duration,
        s.impls
            .iter()
            .map(|i| i.name())
            .collect::<Vec<_>>()
            .join(", ")
    );
    for round in 0..s.rounds {
        for (ci, &cell) in s.cells.iter().enumerate() {
            for imp in rotated(&s.impls, round + ci) {
                let r = Server::start(imp, s.workers).and_then(|srv| run_cell(cell, s, &srv));
                match r {
                    Ok(r) => {
                        eprintln!(
                            "[round {}/{}] {:<45} {:<17} {}",
                            round + 1,
                            s.rounds,
                            cell.label(),
                            imp.name(),
                            r.summary()
                        );
                        runs.push(RunRecord {
                            round,
                            what: cell.label(),
                            imp,
                            k6: r.k6.clone(),
                            errors: r.errors,
                        });
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
        if s.idle_conns > 0 && round < s.idle_rounds {
            for imp in rotated(&s.impls, round) {
                let r = Server::start(imp, s.workers).and_then(|srv| {
                    run_idle(&target(srv.addr), s.idle_conns, srv.pid(), s.client_threads)
                });
                match r {
                    Ok(r) => {
                        eprintln!(
                            "[round {}/{}] idle {:<40} {:<17} {:.0} B/conn open, {:.0} B/conn after an echo ({} opened, {} errors)",
                            round + 1,
                            s.rounds,
                            format!("{} connections", s.idle_conns),
                            imp.name(),
                            r.per_conn_open(),
                            r.per_conn_used(),
                            r.opened,
                            r.errors
                        );
                        runs.push(RunRecord {
                            round,
                            what: format!("idle, {} connections", s.idle_conns),
                            imp,
                            k6: r.k6.clone(),
                            errors: r.errors,
                        });
                        idle.entry(idx(imp)).or_default().push(r);
                    }
                    Err(e) => {
                        let msg = format!("round {} idle {}: {e}", round + 1, imp.name());
                        eprintln!("FAILED {msg}");
                        failures.push(msg);
                    }
                }
            }
        }
    }
    let md = render(s, &results, &idle, &runs, &failures, started.elapsed());
    println!("{md}");
    match std::fs::write(&s.out, &md) {
        Ok(()) => eprintln!("wrote {}", s.out.display()),
        Err(e) => eprintln!("could not write {}: {e}", s.out.display()),
    }
}

// ---------------------------------------------------------------------------------------------
// Rendering
// ---------------------------------------------------------------------------------------------

/// Median over rounds of `f`, per implementation.
fn medians(
    results: &BTreeMap<(usize, usize), Vec<LoadResult>>,
    ci: usize,
    n: usize,
    f: &dyn Fn(&LoadResult) -> f64,
) -> Vec<f64> {
    (0..n)
        .map(|ii| {
            results
                .get(&(ci, ii))
                .map_or(f64::NAN, |v| median(&v.iter().map(f).collect::<Vec<_>>()))
        })
        .collect()
}

fn machine_section(s: &Settings) -> String {
    let (model, cores) = procfs::machine();
    let rustc = Command::new("rustc")
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
        "- Machine: {model}, {cores} cores (client and server share them), Linux {}",
        procfs::kernel()
    );
    let _ = writeln!(
        m,
        "- Toolchain: {rustc}, release profile (thin LTO, 1 codegen unit)"
    );
    let _ = writeln!(
        m,
        "- Peers: tokio-tungstenite {}, fastwebsockets {} (hyper {} upgrade + FragmentCollector), \
         tokio-websockets {}; tokio {}",
        lock_version("tokio-tungstenite"),
        lock_version("fastwebsockets"),
        lock_version("hyper"),
        lock_version("tokio-websockets"),
        lock_version("tokio")
    );
    let _ = writeln!(
        m,
        "- Servers: tokio multi-thread runtime with {} workers, TCP_NODELAY, one task per \
         connection, 64 MiB message limit, no compression; `ours` = ws-tokio with keepalive \
         pings and write timeouts off (as the peers), otherwise defaults",
        s.workers
    );
    let _ = writeln!(
        m,
        "- Load: `ws_tokio::load` client code in this process ({} runtime thread(s)), {} messages, a \
         fresh random mask per frame; {} rounds, implementation order rotated per round and \
         cell; each run {:.2} s warm-up + {:.2} s measured; medians over rounds",
        s.client_threads,
        if s.text { "text" } else { "binary" },
        s.rounds,
        s.warmup.as_secs_f64(),
        s.duration.as_secs_f64()
    );
    let _ = writeln!(
        m,
        "- Server CPU per message: utime+stime from /proc/<pid>/stat over the measured window, \
         divided by the round trips in it (tick = {} ms)",
        1000 / procfs::clk_tck().max(1)
    );
    m
}

fn render(
    s: &Settings,
    results: &BTreeMap<(usize, usize), Vec<LoadResult>>,
    idle: &BTreeMap<usize, Vec<IdleResult>>,
    runs: &[RunRecord],
    failures: &[String],
    elapsed: Duration,
) -> String {
    let n = s.impls.len();
    let mut md = String::new();
    let _ = writeln!(md, "# Side-by-side results\n");
    let _ = writeln!(
        md,
        "Generated by `cargo run --release -p benches --bin bench_all{}` in {:.0} s. \
         Bold: best per row. Last column: ours divided by the best peer (throughput: above 1 \
         is better; latency, CPU and memory: below 1 is better).\n",
        if s.mode == "quick" { " -- --quick" } else { "" },
        elapsed.as_secs_f64()
    );
    md.push_str(&machine_section(s));
    md.push('\n');

    let echo_like: Vec<(usize, Cell)> = s
        .cells
        .iter()
        .copied()
        .enumerate()
        .filter(|(_, c)| !matches!(c, Cell::Handshake { .. }))
        .collect();

    if !echo_like.is_empty() {
        let _ = writeln!(
            md,
            "## Messages per second (round trips; higher is better)\n"
        );
        md.push_str(&header("cell", &s.impls, "ours ÷ best peer"));
        for &(ci, c) in &echo_like {
            let v = medians(results, ci, n, &|r| r.rate());
            md.push_str(&row(&c.label(), &s.impls, &v, &fmt_rate, true));
            md.push('\n');
        }
        for (title, q) in [
            ("p50 round trip", 0.5),
            ("p99 round trip", 0.99),
            ("p99.9 round trip", 0.999),
        ] {
            let _ = writeln!(md, "\n## {title} (lower is better)\n");
            md.push_str(&header("cell", &s.impls, "ours ÷ best peer"));
            for &(ci, c) in &echo_like {
                let v = medians(results, ci, n, &|r| r.quantile_ns(q));
                md.push_str(&row(&c.label(), &s.impls, &v, &fmt_ns, false));
                md.push('\n');
            }
        }
        let _ = writeln!(
            md,
            "\n## Server CPU time per message (user + system; lower is better)\n"
        );
        md.push_str(&header("cell", &s.impls, "ours ÷ best peer"));
        for &(ci, c) in &echo_like {
            let v = medians(results, ci, n, &|r| r.cpu_per_op_ns());
            md.push_str(&row(&c.label(), &s.impls, &v, &fmt_ns, false));
            md.push('\n');
        }
    }

    // Contention: other processes on the machine during each window.
    let _ = writeln!(
        md,
        "\n## Machine load during the runs\n\nCPU cores busy with other processes during the \
         measured windows (machine busy + stolen time minus server and client), median per \
         cell. The machine has {} cores; anything well above 0 means the figures above are \
         noisier and lower than on a quiet machine. Load average (1 min) at start: {:.2}, \
         at end: {:.2}.\n",
        procfs::machine().1,
        s.loadavg_start,
        procfs::loadavg()
    );
    md.push_str(&header("cell", &s.impls, "max"));
    for (ci, c) in s.cells.iter().enumerate() {
        let v = medians(results, ci, n, &|r| r.background_cores());
        let _ = write!(md, "| {} |", c.label());
        for x in &v {
            let _ = write!(md, " {x:.2} |");
        }
        let max = v
            .iter()
            .copied()
            .filter(|x| !x.is_nan())
            .fold(0.0, f64::max);
        let _ = writeln!(md, " {max:.2} |");
    }

    for (ci, c) in s.cells.iter().enumerate() {
        if let Cell::Handshake { .. } = c {
            let _ = writeln!(
                md,
                "\n## Handshakes (connect, opening handshake, close handshake)\n"
            );
            md.push_str(&header("metric", &s.impls, "ours ÷ best peer"));
            let v = medians(results, ci, n, &|r| r.rate());
            md.push_str(&row(
                &format!("{} per second", c.label()),
                &s.impls,
                &v,
                &fmt_rate,
                true,
            ));
            md.push('\n');
            let v = medians(results, ci, n, &|r| r.quantile_ns(0.5));
            md.push_str(&row("p50 connect-to-closed", &s.impls, &v, &fmt_ns, false));
            md.push('\n');
            let v = medians(results, ci, n, &|r| r.quantile_ns(0.99));
            md.push_str(&row("p99 connect-to-closed", &s.impls, &v, &fmt_ns, false));
            md.push('\n');
            let v = medians(results, ci, n, &|r| r.cpu_per_op_ns());
            md.push_str(&row(
                "server CPU per handshake",
                &s.impls,
                &v,
                &fmt_ns,
                false,
            ));
            md.push('\n');
        }
    }

    if !idle.is_empty() {
        let _ = writeln!(
            md,
            "\n## Idle memory per connection ({} connections; server RSS delta ÷ connections; lower is better)\n",
            s.idle_conns
        );
        if let Some(note) = &s.idle_note {
            let _ = writeln!(md, "Note: {note}.\n");
        }
        md.push_str(&header("state", &s.impls, "ours ÷ best peer"));
        let per = |f: &dyn Fn(&IdleResult) -> f64| -> Vec<f64> {
            (0..n)
                .map(|ii| {
                    idle.get(&ii)
                        .map_or(f64::NAN, |v| median(&v.iter().map(f).collect::<Vec<_>>()))
                })
                .collect()
        };
        let v = per(&|r| r.per_conn_open());
        md.push_str(&row(
            "after the handshake",
            &s.impls,
            &v,
            &fmt_conn_bytes,
            false,
        ));
        md.push('\n');
        let v = per(&|r| r.per_conn_used());
        md.push_str(&row(
            "after one 16 B echo each",
            &s.impls,
            &v,
            &fmt_conn_bytes,
            false,
        ));
        md.push('\n');
        let v = per(&|r| r.rss_before as f64);
        md.push_str(&row(
            "server RSS before (absolute)",
            &s.impls,
            &v,
            &fmt_bytes,
            false,
        ));
        md.push('\n');
        let _ = write!(md, "| connections opened |");
        for ii in 0..n {
            let v = per(&|r| r.opened as f64)[ii];
            let _ = write!(md, " {v:.0} |");
        }
        md.push_str(" |\n");
    }

    // k6-style figures.
    let _ = writeln!(
        md,
        "\n## k6-style figures, all runs of each implementation\n"
    );
    let _ = writeln!(
        md,
        "| impl | ws_connecting avg | p(95) | ws_sessions | ws_msgs_sent | ws_msgs_received | ws_session_duration avg | p(95) | errors |\n|---|---:|---:|---:|---:|---:|---:|---:|---:|"
    );
    for &imp in &s.impls {
        let mut total = K6Metrics::default();
        let mut errors = 0;
        for r in runs.iter().filter(|r| r.imp == imp) {
            total.merge(&r.k6);
            errors += r.errors;
        }
        let _ = writeln!(md, "| {} | {} | {errors} |", imp.name(), k6_cells(&total));
    }
    let _ = writeln!(
        md,
        "\n<details><summary>k6-style figures per run</summary>\n"
    );
    let _ = writeln!(
        md,
        "| round | run | impl | ws_connecting avg | p(95) | ws_sessions | ws_msgs_sent | ws_msgs_received | ws_session_duration avg | p(95) | errors |\n|---:|---|---|---:|---:|---:|---:|---:|---:|---:|---:|"
    );
    for r in runs {
        let _ = writeln!(
            md,
            "| {} | {} | {} | {} | {} |",
            r.round + 1,
            r.what,
            r.imp.name(),
            k6_cells(&r.k6),
            r.errors
        );
    }
    let _ = writeln!(md, "\n</details>");

    if !failures.is_empty() {
        let _ = writeln!(md, "\n## Failed runs\n");
        for f in failures {
            let _ = writeln!(md, "- {f}");
        }
    }
    md
}

// ---------------------------------------------------------------------------------------------
// k6 scenario
// ---------------------------------------------------------------------------------------------

fn k6_scenario(args: &Args, s: &Settings) {
    let vus = args.get("vus", 1000usize);
    let ramp = args.secs("ramp", 10.0);
    let duration = args.secs("k6-duration", 30.0);
    let session = args.secs("session", 10.0);
    let size = args.size("size", 64);
    procfs::raise_nofile(vus as u64 + 2048);
    let mut md = String::new();
    let _ = writeln!(md, "# k6-style scenario\n");
    md.push_str(&machine_section(s));
    let _ = writeln!(
        md,
        "- Scenario: ramp to {vus} virtual users over {:.0} s, {:.0} s in all; each session sends a \
         {} text message every 1-3 s (uniform), reads its echo and closes after {:.0} s, then the \
         user starts another session\n",
        ramp.as_secs_f64(),
        duration.as_secs_f64(),
        fmt_size(size),
        session.as_secs_f64()
    );
    let _ = writeln!(
        md,
        "| impl | ws_connecting avg | p(95) | ws_sessions | ws_msgs_sent | ws_msgs_received | ws_session_duration avg | p(95) | echo p50 | echo p99 | server CPU per run | errors | background |\n|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"
    );
    let rounds = args.get("k6-rounds", 1usize).max(1);
    // Per implementation: every round's result, merged at the end (k6-style totals).
    let mut per: Vec<Vec<LoadResult>> = vec![Vec::new(); s.impls.len()];
    let mut failed: Vec<String> = Vec::new();
    for round in 0..rounds {
        for imp in rotated(&s.impls, round) {
            let r = Server::start(imp, s.workers).and_then(|srv| {
                run_k6(
                    &K6Scenario::new(target(srv.addr))
                        .with_vus(vus)
                        .with_ramp(ramp)
                        .with_duration(duration)
                        .with_session(session)
                        .with_size(size)
                        .with_server_pid(Some(srv.pid()))
                        .with_client_threads(s.client_threads),
                )
            });
            let ii = s.impls.iter().position(|&i| i == imp).unwrap_or(0);
            match r {
                Ok(r) => {
                    eprintln!(
                        "[round {}/{rounds}] {:<17} {} (background {:.2} cores)",
                        round + 1,
                        imp.name(),
                        r.k6.summary(),
                        r.background_cores()
                    );
                    per[ii].push(r);
                }
                Err(e) => {
                    eprintln!("FAILED {}: {e}", imp.name());
                    failed.push(format!("round {} {}: {e}", round + 1, imp.name()));
                }
            }
        }
    }
    for (ii, imp) in s.impls.iter().enumerate() {
        let runs = &per[ii];
        if runs.is_empty() {
            let _ = writeln!(md, "| {} | failed |", imp.name());
            continue;
        }
        let mut k6 = K6Metrics::default();
        let mut lat = Trend::new();
        let (mut cpu, mut errors, mut bg) = (0u64, 0u64, Vec::new());
        for r in runs {
            k6.merge(&r.k6);
            lat.merge(&r.latency);
            cpu += r.server_cpu_ns.unwrap_or(0);
            errors += r.errors;
            bg.push(r.background_cores());
        }
        let q = |x: f64| {
            if lat.is_empty() {
                f64::NAN
            } else {
                lat.quantile(x).as_nanos() as f64
            }
        };
        let _ = writeln!(
            md,
            "| {} | {} | {} | {} | {} | {} | {:.2} |",
            imp.name(),
            k6_cells(&k6),
            fmt_ns(q(0.5)),
            fmt_ns(q(0.99)),
            fmt_ns(cpu as f64 / runs.len() as f64),
            errors,
            median(&bg)
        );
    }
    let _ = writeln!(
        md,
        "\nTotals over {rounds} round(s) (implementation order rotated per round); server CPU is \
         per run (mean); background = CPU cores busy with other processes (median over rounds)."
    );
    for f in &failed {
        let _ = writeln!(md, "\n- failed: {f}");
    }
    println!("{md}");
    let out = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("RESULTS-k6.md");
    match std::fs::write(&out, &md) {
        Ok(()) => eprintln!("wrote {}", out.display()),
        Err(e) => eprintln!("could not write {}: {e}", out.display()),
    }
}
