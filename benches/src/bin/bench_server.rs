//! An echo server for one implementation, for side-by-side load runs.
//!
//! `bench_server --impl ours|tungstenite|fastwebsockets|tokio-websockets --addr 127.0.0.1:0`
//!
//! Prints `PORT <port>` once listening. Options: `--workers N` (tokio worker threads, default
//! 2), `--max-secs S` (exits after this long, default 3600), `--exit-on-stdin-eof`.

use benches::cli::{Args, die};
use benches::server::{Impl, serve};

fn main() {
    let args = Args::from_env();
    if args.flag("help") {
        println!(
            "bench_server --impl ours|ours-default|tungstenite|fastwebsockets|tokio-websockets|axum-ours|axum-tungstenite \
             --addr 127.0.0.1:0 [--workers 2] [--max-secs 3600] [--exit-on-stdin-eof]"
        );
        return;
    }
    let imp: Impl = args
        .value("impl")
        .unwrap_or_else(|| die("--impl is required"))
        .parse()
        .unwrap_or_else(|e: String| die(&e));
    let addr = args.loopback_addr("addr", "127.0.0.1:0");
    let workers = args.get("workers", 2usize);
    let max = args.secs("max-secs", 3600.0);
    if let Err(e) = serve(imp, addr, workers, max, args.flag("exit-on-stdin-eof")) {
        die(&format!("server failed: {e}"));
    }
}
