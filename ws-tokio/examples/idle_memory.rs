//! Measures the server's memory per idle WebSocket connection, with and without
//! permessage-deflate.
//!
//! `cargo run --release -p ws-tokio --example idle_memory -- [--conns N] [--compression off|default|lean|takeover] [--message]`
//!
//! Starts the echo server as a child process (this same binary with `--serve`), opens N client
//! connections from this process, optionally exchanges one message on each (so compression
//! contexts exist), lets them sit idle, and prints the server's resident memory growth per
//! connection (VmRSS from /proc). Needs `ulimit -n` above N plus a margin.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::Duration;

use tokio::net::TcpListener;
use ws_tokio::{Config, DeflateConfig, Message, Utf8Bytes};

fn compression(mode: &str) -> Option<DeflateConfig> {
    match mode {
        "off" => None,
        "lean" => Some(DeflateConfig::LEAN),
        "takeover" => Some(DeflateConfig::CONTEXT_TAKEOVER),
        _ => Some(DeflateConfig::DEFAULT),
    }
}

fn arg(name: &str) -> Option<String> {
    let args: Vec<String> = std::env::args().collect();
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1).cloned())
}

async fn serve(mode: &str) -> std::io::Result<()> {
    let listener = TcpListener::bind("127.0.0.1:0").await?;
    println!("{}", listener.local_addr()?);
    // Tasks capture a reference: a task keeps what it captures for its whole life, and a
    // captured `Config` would add its 160 bytes to every connection.
    let config: &'static Config = Box::leak(Box::new(
        Config::default()
            .with_compression(compression(mode))
            .with_ping_interval(None),
    ));
    loop {
        let (tcp, _) = listener.accept().await?;
        tokio::spawn(async move {
            let Ok(mut ws) = ws_tokio::accept_with_config(tcp, *config).await else {
                return;
            };
            while let Some(Ok(m)) = ws.recv().await {
                if matches!(m, Message::Text(_) | Message::Binary(_)) && ws.send(m).await.is_err() {
                    return;
                }
            }
        });
    }
}

fn rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0)
}

#[tokio::main(flavor = "current_thread")]
async fn main() {
    let mode = arg("--compression").unwrap_or_else(|| "default".into());
    if std::env::args().any(|a| a == "--serve") {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build();
        let _ = std::thread::spawn(move || rt.map(|rt| rt.block_on(serve(&mode)))).join();
        return;
    }
    let conns: usize = arg("--conns")
        .and_then(|n| n.parse().ok())
        .unwrap_or(10_000);
    let message = std::env::args().any(|a| a == "--message");
    let exe = std::env::current_exe().expect("own path");
    let mut child = Command::new(exe)
        .args(["--serve", "--compression", &mode])
        .stdout(Stdio::piped())
        .spawn()
        .expect("start server");
    let mut line = String::new();
    BufReader::new(child.stdout.take().expect("stdout"))
        .read_line(&mut line)
        .expect("address");
    let url = format!("ws://{}/", line.trim());
    let pid = child.id();
    let client_config = Config::default()
        .with_compression(compression(&mode))
        .with_ping_interval(None);
    // Warm up: the runtime, the allocator and the first connection's one-off costs.
    let mut open = Vec::with_capacity(conns);
    for _ in 0..16 {
        open.push(
            ws_tokio::connect_with_config(&url, client_config)
                .await
                .expect("connect"),
        );
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    let before = rss_kib(pid);
    let text = Utf8Bytes::from(
        "{\"type\":\"tick\",\"symbol\":\"ABC\",\"price\":101.25,\"size\":300}".repeat(4),
    );
    for i in 0..conns {
        let mut ws = ws_tokio::connect_with_config(&url, client_config)
            .await
            .expect("connect");
        if message {
            ws.send(Message::Text(text.clone())).await.expect("send");
            let _ = ws.recv().await;
        }
        open.push(ws);
        if i % 1000 == 999 {
            tokio::task::yield_now().await;
        }
    }
    tokio::time::sleep(Duration::from_millis(1000)).await;
    let after = rss_kib(pid);
    let per = (after.saturating_sub(before)) as f64 * 1024.0 / conns as f64;
    println!(
        "compression {mode}{}: {conns} idle connections, server RSS {before} KiB -> {after} KiB, {per:.0} bytes per connection",
        if message {
            " (one message exchanged each)"
        } else {
            ""
        }
    );
    let _ = child.kill();
    let _ = child.wait();
}
