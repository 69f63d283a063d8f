//! Load generator for one running echo server (see `bench_server`).
//!
//! ```text
//! bench_load --addr 127.0.0.1:PORT [--mode echo|pipeline|handshake|idle]
//!            [--conns C] [--size S] [--duration SECS] [--warmup SECS] [--inflight N]
//!            [--server-pid PID] [--text] [--client-threads T]
//! bench_load --addr 127.0.0.1:PORT --k6-scenario [--vus N] [--ramp SECS] [--duration SECS]
//!            [--session SECS] [--size S] [--server-pid PID]
//! ```
//!
//! - `echo` (default): C connections, each sending an S-byte message and waiting for its echo
//!   (one in flight), for the duration.
//! - `pipeline`: one connection with `--inflight` (default 1000) messages in flight.
//! - `handshake`: C concurrent loops of connect + opening handshake + close handshake.
//! - `idle`: opens C connections and reports the server's RSS per connection (needs
//!   `--server-pid`).
//! - `--k6-scenario`: ramps up to N virtual users; each session sends a message every 1-3 s
//!   and leaves after `--session` seconds, then starts a new one.
//!
//! The load generator is `ws_tokio::load` (the one behind `ws bench`), requesting `/echo`.
//! Every frame carries a fresh random mask. Prints messages/s, p50/p99/p99.9 round trip,
//! the server's CPU time per message (from `/proc/<pid>/stat`, with `--server-pid`) and the
//! k6-style figures (`ws_connecting`, `ws_sessions`, `ws_msgs_sent`, `ws_msgs_received`,
//! `ws_session_duration`).

use benches::cli::{Args, die, fmt_size};
use benches::procfs;
use ws_tokio::load::{
    K6Scenario, LoadOpts, Target, run_echo, run_handshakes, run_idle, run_k6, run_pipeline,
};

fn main() {
    let args = Args::from_env();
    if args.flag("help") {
        println!("see the module documentation at the top of benches/src/bin/bench_load.rs");
        return;
    }
    let addr = args.loopback_addr("addr", "127.0.0.1:9001");
    let target = Target::from_addr(addr).with_path("/echo");
    let server_pid: Option<u32> = args
        .value("server-pid")
        .map(|v| v.parse().unwrap_or_else(|_| die("bad --server-pid")));
    let client_threads = args.get("client-threads", 1usize);
    procfs::raise_nofile(65_536);

    if args.flag("k6-scenario") {
        let s = K6Scenario::new(target)
            .with_vus(args.get("vus", 100usize))
            .with_ramp(args.secs("ramp", 10.0))
            .with_duration(args.secs("duration", 30.0))
            .with_session(args.secs("session", 10.0))
            .with_size(args.size("size", 64))
            .with_server_pid(server_pid)
            .with_client_threads(client_threads);
        println!(
            "k6 scenario: {} VUs ramped over {:?}, {:?} total, sessions of {:?}, {} messages every 1-3 s",
            s.vus,
            s.ramp,
            s.duration,
            s.session,
            fmt_size(s.size)
        );
        match run_k6(&s) {
            Ok(r) => {
                println!("echoes: {}", r.summary());
                println!("{}", r.k6.summary());
            }
            Err(e) => die(&format!("scenario failed: {e}")),
        }
        return;
    }

    let mode = args.value("mode").unwrap_or("echo");
    let o = LoadOpts::new(target.clone())
        .with_conns(args.get("conns", 1usize))
        .with_size(args.size("size", 16))
        .with_text(args.flag("text"))
        .with_warmup(args.secs("warmup", 1.0))
        .with_duration(args.secs("duration", 5.0))
        .with_server_pid(server_pid)
        .with_client_threads(client_threads)
        .with_inflight(args.get("inflight", 1000usize));
    if o.conns == 0 || o.conns > 60_000 {
        die("--conns must be 1..=60000");
    }
    let r = match mode {
        "echo" => run_echo(&o),
        "pipeline" => run_pipeline(&o),
        "handshake" => run_handshakes(&o),
        "idle" => {
            let pid = server_pid.unwrap_or_else(|| die("idle mode needs --server-pid"));
            match run_idle(&target, o.conns, pid, client_threads) {
                Ok(r) => {
                    println!(
                        "idle: {}/{} connections; server RSS {} -> {} (open) -> {} (after one echo each); \
                         {:.0} B/conn open, {:.0} B/conn after an echo",
                        r.opened,
                        r.wanted,
                        r.rss_before,
                        r.rss_open,
                        r.rss_used,
                        r.per_conn_open(),
                        r.per_conn_used()
                    );
                    println!("{}", r.k6.summary());
                }
                Err(e) => die(&format!("idle run failed: {e}")),
            }
            return;
        }
        m => die(&format!("unknown mode {m:?}")),
    };
    match r {
        Ok(r) => {
            println!(
                "{mode}: conns={} size={} -> {}",
                o.conns,
                fmt_size(o.size),
                r.summary()
            );
            println!("{}", r.k6.summary());
        }
        Err(e) => die(&format!("run failed: {e}")),
    }
}
