//! Measures the server's memory per idle subscribed connection: plain connections against
//! subscribers of a topic, without compression and with permessage-deflate in the fan-out mode
//! (shared compressor, no context takeover either way).
//!
//! `cargo run --release -p ws-tokio --example topics_memory -- [--conns N]`
//!
//! For each of the four servers (plain or subscribed, compression off or shared) it starts the
//! server as a child process (this binary with `--serve`), opens N client connections, and
//! reads the server's resident memory (VmRSS) growth per connection three times: after the
//! handshakes (and, for subscribers, `subscribe`), after one 256-byte message echoed on each
//! connection, and after one 256-byte message published to all of them. Needs `ulimit -n`
//! above N plus a margin.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::Duration;

use tokio::net::TcpListener;
use ws_tokio::topics::Topics;
use ws_tokio::{Config, DeflateConfig, Message, Utf8Bytes};

fn compression(mode: &str) -> Option<DeflateConfig> {
    match mode {
        "shared" => Some(DeflateConfig::DEFAULT),
        _ => None,
    }
}

fn arg(name: &str) -> Option<String> {
    let args: Vec<String> = std::env::args().collect();
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1).cloned())
}

/// A plain connection: echoes each message, ignores "publish:...".
async fn plain(tcp: tokio::net::TcpStream, config: &'static Config) {
    let Ok(mut ws) = ws_tokio::accept_with_config(tcp, *config).await else {
        return;
    };
    while let Some(Ok(m)) = ws.recv().await {
        if let Message::Text(t) = &m {
            if t.as_str().starts_with("publish:") {
                continue;
            }
        }
        if (m.is_text() || m.is_binary()) && ws.send(m).await.is_err() {
            return;
        }
    }
}

/// A subscriber of "ticks": echoes each message; publishes "publish:..." to "ticks".
async fn subscribed(tcp: tokio::net::TcpStream, config: &'static Config, topics: &'static Topics) {
    let Ok(ws) = ws_tokio::accept_with_config(tcp, *config).await else {
        return;
    };
    let mut sub = topics.subscriber(ws);
    sub.subscribe("ticks");
    while let Some(Ok(m)) = sub.recv().await {
        if let Message::Text(t) = &m {
            if let Some(rest) = t.as_str().strip_prefix("publish:") {
                let _ = topics.publish("ticks", Message::text(rest.to_owned()));
                continue;
            }
        }
        if (m.is_text() || m.is_binary()) && sub.send(m).await.is_err() {
            return;
        }
    }
}

/// The server, one task per connection (each sized for its own kind only).
async fn serve(mode: &str, subscribe: bool) -> std::io::Result<()> {
    let listener = TcpListener::bind("127.0.0.1:0").await?;
    println!("{}", listener.local_addr()?);
    // Tasks capture references: a task keeps what it captures for its whole life.
    let config: &'static Config = Box::leak(Box::new(
        Config::default()
            .with_compression(compression(mode))
            .with_ping_interval(None),
    ));
    let topics: &'static Topics = Box::leak(Box::new(Topics::default()));
    loop {
        let (tcp, _) = listener.accept().await?;
        if subscribe {
            tokio::spawn(subscribed(tcp, config, topics));
        } else {
            tokio::spawn(plain(tcp, config));
        }
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

async fn measure(mode: &str, subscribed: bool, conns: usize) -> [f64; 3] {
    let exe = std::env::current_exe().expect("own path");
    let mut cmd = Command::new(exe);
    cmd.args(["--serve", "--compression", mode]);
    if subscribed {
        cmd.arg("--subscribed");
    }
    let mut child = cmd.stdout(Stdio::piped()).spawn().expect("start server");
    let mut line = String::new();
    BufReader::new(child.stdout.take().expect("stdout"))
        .read_line(&mut line)
        .expect("address");
    let url = format!("ws://{}/", line.trim());
    let pid = child.id();
    let client = Config::default()
        .with_compression(compression(mode).map(|_| DeflateConfig::DEFAULT))
        .with_ping_interval(None);
    // Warm up: the runtime, the allocator, the first connections' one-off costs.
    let mut open = Vec::with_capacity(conns + 16);
    for _ in 0..16 {
        let mut ws = ws_tokio::connect_with_config(&url, client)
            .await
            .expect("connect");
        ws.send(Message::text("warm up")).await.expect("send");
        let _ = ws.recv().await;
        open.push(ws);
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    let before = rss_kib(pid);
    for i in 0..conns {
        open.push(
            ws_tokio::connect_with_config(&url, client)
                .await
                .expect("connect"),
        );
        if i % 1000 == 999 {
            tokio::task::yield_now().await;
        }
    }
    tokio::time::sleep(Duration::from_millis(1000)).await;
    let per = |kib: u64| (kib.saturating_sub(before)) as f64 * 1024.0 / conns as f64;
    let opened = per(rss_kib(pid));
    let text = Utf8Bytes::from(
        "{\"type\":\"tick\",\"symbol\":\"ABC\",\"price\":101.25,\"size\":300}".repeat(4),
    );
    let published = if subscribed {
        let msg = format!("publish:{text}");
        open[0].send(Message::text(msg)).await.expect("send");
        for ws in open.iter_mut() {
            let _ = tokio::time::timeout(Duration::from_secs(10), ws.recv()).await;
        }
        tokio::time::sleep(Duration::from_millis(1000)).await;
        per(rss_kib(pid))
    } else {
        f64::NAN
    };
    for ws in open.iter_mut().skip(16) {
        ws.send(Message::Text(text.clone())).await.expect("send");
        let _ = ws.recv().await;
    }
    tokio::time::sleep(Duration::from_millis(1000)).await;
    let echoed = per(rss_kib(pid));
    let _ = child.kill();
    let _ = child.wait();
    [opened, published, echoed]
}

#[tokio::main(flavor = "current_thread")]
async fn main() {
    let mode = arg("--compression").unwrap_or_else(|| "off".into());
    if std::env::args().any(|a| a == "--serve") {
        let subscribed = std::env::args().any(|a| a == "--subscribed");
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build();
        let _ =
            std::thread::spawn(move || rt.map(|rt| rt.block_on(serve(&mode, subscribed)))).join();
        return;
    }
    let conns: usize = arg("--conns")
        .and_then(|n| n.parse().ok())
        .unwrap_or(10_000);
    println!("server RSS growth per connection, {conns} connections (bytes)");
    println!("| compression | connection | after handshake | then one publish | then one echo |");
    println!("|---|---|---|---|---|");
    for mode in ["off", "shared"] {
        for subscribed in [false, true] {
            let [a, b, c] = measure(mode, subscribed, conns).await;
            let kind = if subscribed { "subscribed" } else { "plain" };
            let b = if b.is_nan() {
                "-".to_string()
            } else {
                format!("{b:.0}")
            };
            println!("| {mode} | {kind} | {a:.0} | {b} | {c:.0} |");
        }
    }
}
