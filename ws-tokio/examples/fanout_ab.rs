//! A/B of two ways to drain a subscriber's queue, over loopback: server CPU per delivered
//! message, delivery latency and lost messages, steady and in bursts.
//!
//! `cargo run --release -p ws-tokio --example fanout_ab -- [--subs 1000] [--size 1024]
//! [--rate 100] [--burst 0] [--secs 10] [--modes task,direct] [--rounds 3]`
//!
//! - `task`: the `topics` module as it is: publishing puts an `Arc` of the prepared message in
//!   each subscriber's queue and wakes the subscriber's task, which writes what queued up with
//!   one vectored write.
//! - `direct`: the publisher writes the frame straight to the subscriber's socket when the
//!   subscriber's queue is empty and its connection is free (a `try_lock`), and only queues
//!   it (waking the subscriber's task) otherwise.
//!
//! Each server runs as a child process (this binary with `--serve MODE`) on a 2-worker tokio
//! runtime; this process opens `--subs` reading connections plus one publisher, which sends
//! `--rate` messages a second of `--size` bytes (or, with `--burst N`, N messages at once every
//! second). Every message goes to every connection, the publisher's included. Server CPU is
//! utime+stime from /proc over the window (after a second of warm-up), divided by the
//! deliveries counted by the readers; with `--perf`, `perf stat` also counts the server's
//! task-clock, system calls and context switches. Rounds alternate the modes; the last lines
//! are the medians. The readers share one thread here, so on a busy machine the latency is
//! mostly theirs: compare it between modes only.

use std::collections::VecDeque;
use std::io::{BufRead, BufReader};
use std::pin::Pin;
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, Waker};
use std::time::{Duration, Instant};

use futures_sink::Sink;
use tokio::net::{TcpListener, TcpStream};
use ws_tokio::topics::{QueueConfig, Topics};
use ws_tokio::{Config, DeflateConfig, Message, PreparedMessage, WebSocket};

fn arg(name: &str) -> Option<String> {
    let args: Vec<String> = std::env::args().collect();
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1).cloned())
}

fn num(name: &str, default: u64) -> u64 {
    arg(name).and_then(|v| v.parse().ok()).unwrap_or(default)
}

/// With `--deflate`: permessage-deflate in the fan-out mode (a shared compressor, no context
/// takeover either way), offered by the clients with their defaults.
fn deflate() -> bool {
    std::env::args().any(|a| a == "--deflate")
}

fn server_config() -> &'static Config {
    let compression = deflate().then_some(DeflateConfig::DEFAULT);
    Box::leak(Box::new(
        Config::default()
            .with_compression(compression)
            .with_ping_interval(None)
            .with_write_timeout(None),
    ))
}

// ---- mode `task`: the library --------------------------------------------------------------

async fn serve_task(listener: TcpListener) {
    let config = server_config();
    let topics = Topics::new(QueueConfig::default().with_max_messages(4096));
    // Report subscribers closed for overflow (clients that do not read), as they happen.
    let watch = topics.clone();
    tokio::spawn(async move {
        let mut seen = 0;
        loop {
            tokio::time::sleep(Duration::from_millis(500)).await;
            let st = watch.stats();
            if st.closed != seen {
                seen = st.closed;
                eprintln!(
                    "server: {} subscribers closed for overflow, {} messages dropped",
                    st.closed, st.dropped
                );
            }
        }
    });
    loop {
        let Ok((tcp, _)) = listener.accept().await else {
            return;
        };
        let _ = tcp.set_nodelay(true);
        let topics = topics.clone();
        tokio::spawn(async move {
            let Ok(ws) = ws_tokio::accept_with_config(tcp, *config).await else {
                return;
            };
            let mut sub = topics.subscriber(ws);
            while let Some(Ok(m)) = sub.recv().await {
                if matches!(m, Message::Text(_) | Message::Binary(_)) {
                    let _ = topics.publish_all(m);
                }
            }
        });
    }
}

// ---- mode `direct`: the publisher writes when it can ---------------------------------------

struct Conn {
    ws: WebSocket<TcpStream>,
    /// The subscriber task's waker, for a direct write the transport cannot finish at once.
    waker: Option<Waker>,
}

struct DirectSub {
    conn: Mutex<Conn>,
    queue: Mutex<(VecDeque<Arc<PreparedMessage>>, Option<Waker>)>,
}

type Subs = Arc<Mutex<Vec<Arc<DirectSub>>>>;

fn publish_direct(subs: &[Arc<DirectSub>], msg: Arc<PreparedMessage>) {
    for s in subs {
        let mut q = s.queue.lock().unwrap();
        if q.0.is_empty() {
            if let Ok(mut c) = s.conn.try_lock() {
                drop(q);
                let Conn { ws, waker } = &mut *c;
                let Some(waker) = waker.as_ref() else {
                    continue;
                };
                let mut cx = Context::from_waker(waker);
                let mut sink = ws.prepared_sink();
                if Pin::new(&mut sink).start_send(msg.clone()).is_ok() {
                    // Pending: the rest is in the write buffer and the transport wakes the
                    // subscriber's task, which finishes it.
                    let _ = Pin::new(&mut sink).poll_flush(&mut cx);
                }
                continue;
            }
        }
        q.0.push_back(msg.clone());
        if let Some(w) = q.1.take() {
            drop(q);
            w.wake();
        }
    }
}

fn poll_direct(
    s: &DirectSub,
    cx: &mut Context<'_>,
) -> Poll<Option<Result<Message, ws_tokio::Error>>> {
    let mut c = s.conn.lock().unwrap();
    let Conn { ws, waker } = &mut *c;
    match waker {
        Some(w) if w.will_wake(cx.waker()) => {}
        _ => *waker = Some(cx.waker().clone()),
    }
    {
        let mut sink = ws.prepared_sink();
        if let Poll::Ready(Ok(())) = Pin::new(&mut sink).poll_flush(cx) {
            let mut q = s.queue.lock().unwrap();
            let items: Vec<_> = q.0.drain(..).collect();
            q.1 = Some(cx.waker().clone());
            drop(q);
            for m in items {
                let _ = Pin::new(&mut sink).start_send(m);
            }
        } else {
            s.queue.lock().unwrap().1 = Some(cx.waker().clone());
        }
    }
    ws.poll_recv(cx)
}

async fn serve_direct(listener: TcpListener) {
    let config = server_config();
    let subs: Subs = Arc::default();
    loop {
        let Ok((tcp, _)) = listener.accept().await else {
            return;
        };
        let _ = tcp.set_nodelay(true);
        let subs = subs.clone();
        tokio::spawn(async move {
            let Ok(ws) = ws_tokio::accept_with_config(tcp, *config).await else {
                return;
            };
            let me = Arc::new(DirectSub {
                conn: Mutex::new(Conn { ws, waker: None }),
                queue: Mutex::new((VecDeque::new(), None)),
            });
            subs.lock().unwrap().push(me.clone());
            while let Some(Ok(m)) = std::future::poll_fn(|cx| poll_direct(&me, cx)).await {
                if let Message::Text(_) | Message::Binary(_) = m {
                    let p = Arc::new(PreparedMessage::new(m).unwrap());
                    // The registry's lock is held while writing: one publisher here, and the
                    // cheapest way to reach the subscribers (the floor this mode measures).
                    let list = subs.lock().unwrap();
                    publish_direct(&list, p);
                }
            }
        });
    }
}

// ---- the load ------------------------------------------------------------------------------

fn cpu_ticks(pid: u32) -> u64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    let rest = stat.rsplit_once(')').map(|(_, r)| r).unwrap_or("");
    let f: Vec<&str> = rest.split_whitespace().collect();
    // Fields after the command: state is index 0; utime 11, stime 12.
    let t = |i: usize| f.get(i).and_then(|v| v.parse::<u64>().ok()).unwrap_or(0);
    t(11) + t(12)
}

fn rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0)
}

/// The server's process, ended when this is dropped (a panic included).
struct Server(std::process::Child);

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

struct Counters {
    received: AtomicU64,
    /// Latency histogram, 10 us buckets up to 1 s.
    hist: Vec<AtomicU64>,
}

fn percentile(hist: &[u64], q: f64) -> f64 {
    let total: u64 = hist.iter().sum();
    let want = (total as f64 * q).ceil() as u64;
    let mut seen = 0;
    for (i, n) in hist.iter().enumerate() {
        seen += n;
        if seen >= want.max(1) {
            return (i as f64 + 1.0) * 10.0;
        }
    }
    f64::NAN
}

struct Outcome {
    us_per_delivery: f64,
    deliveries: u64,
    expected: u64,
    p50: f64,
    p99: f64,
    rss_kib: u64,
    perf_us: f64,
    switches: f64,
    syscalls: f64,
}

async fn run_once(
    mode: &str,
    subs: usize,
    size: usize,
    rate: u64,
    burst: u64,
    secs: u64,
) -> Outcome {
    let exe = std::env::current_exe().expect("own path");
    let mut child = Server(
        Command::new(exe)
            .args(["--serve", mode])
            .args(deflate().then_some("--deflate"))
            .stdout(Stdio::piped())
            .spawn()
            .expect("start server"),
    );
    let mut line = String::new();
    BufReader::new(child.0.stdout.take().expect("stdout"))
        .read_line(&mut line)
        .expect("address");
    let url = format!("ws://{}/", line.trim());
    let pid = child.0.id();
    let client = Config::default()
        .with_compression(deflate().then_some(DeflateConfig::DEFAULT))
        .with_ping_interval(None);
    // Clients that never read (they only make the opening handshake).
    let mut stuck = Vec::new();
    for _ in 0..num("--stuck", 0) {
        use tokio::io::AsyncWriteExt;
        let mut tcp = TcpStream::connect(line.trim()).await.expect("connect");
        tcp.write_all(
            b"GET / HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
              Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n",
        )
        .await
        .expect("handshake");
        stuck.push(tcp);
    }
    let epoch = Instant::now();
    let counters = Arc::new(Counters {
        received: AtomicU64::new(0),
        hist: (0..100_000).map(|_| AtomicU64::new(0)).collect(),
    });
    let measuring = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let measure_from = Arc::new(AtomicU64::new(u64::MAX));
    let mut readers = Vec::new();
    for _ in 0..subs {
        let mut ws = ws_tokio::connect_with_config(&url, client)
            .await
            .expect("connect");
        let counters = counters.clone();
        let measuring = measuring.clone();
        let measure_from = measure_from.clone();
        readers.push(tokio::spawn(async move {
            while let Some(Ok(m)) = ws.recv().await {
                if let Message::Binary(b) = m {
                    if b.len() < 8 {
                        continue;
                    }
                    let sent = u64::from_le_bytes(b[..8].try_into().unwrap());
                    if !measuring.load(Ordering::Relaxed)
                        || sent < measure_from.load(Ordering::Relaxed)
                    {
                        continue;
                    }
                    let now = epoch.elapsed().as_nanos() as u64;
                    let us = now.saturating_sub(sent) / 1000;
                    let bucket = ((us / 10) as usize).min(counters.hist.len() - 1);
                    counters.hist[bucket].fetch_add(1, Ordering::Relaxed);
                    counters.received.fetch_add(1, Ordering::Relaxed);
                }
            }
        }));
    }
    let publisher = ws_tokio::connect_with_config(&url, client)
        .await
        .expect("connect");
    let (mut tx, mut rx) = publisher.split();
    tokio::spawn(async move { while let Some(Ok(_)) = rx.recv().await {} });
    tokio::time::sleep(Duration::from_millis(500)).await;
    // JSON-like: it compresses to about a fifth.
    let pattern: Vec<u8> = (0..)
        .flat_map(|i: u32| {
            format!(
                "{{\"symbol\":\"S{}\",\"price\":{}.25,\"size\":300}},",
                i % 50,
                100 + i % 7
            )
            .into_bytes()
        })
        .take(size.max(8))
        .collect();
    let payload = |epoch: Instant| {
        let mut p = pattern.clone();
        p[..8].copy_from_slice(&(epoch.elapsed().as_nanos() as u64).to_le_bytes());
        Message::binary(p)
    };
    // Warm up for a second, unmeasured.
    let mut sent_measured = 0u64;
    let mut cpu0 = 0;
    let mut perf: Option<std::process::Child> = None;
    let total_secs = secs + 1;
    let start = Instant::now();
    let mut tick = tokio::time::interval(if burst > 0 {
        Duration::from_secs(1)
    } else {
        Duration::from_nanos(1_000_000_000 / rate.max(1))
    });
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        let elapsed = start.elapsed();
        if elapsed >= Duration::from_secs(total_secs) {
            break;
        }
        let measure = elapsed >= Duration::from_secs(1);
        if measure && !measuring.load(Ordering::Relaxed) {
            // Let the warm-up's last messages land first.
            tokio::time::sleep(Duration::from_millis(50)).await;
            measure_from.store(epoch.elapsed().as_nanos() as u64, Ordering::Relaxed);
            measuring.store(true, Ordering::Relaxed);
            cpu0 = cpu_ticks(pid);
            perf = if !std::env::args().any(|a| a == "--perf") {
                None
            } else {
                Command::new("perf")
                    .args([
                        "stat",
                        "-x",
                        ",",
                        "-e",
                        "task-clock,context-switches,raw_syscalls:sys_enter",
                        "-p",
                    ])
                    .arg(pid.to_string())
                    .stderr(Stdio::piped())
                    .stdout(Stdio::null())
                    .spawn()
                    .ok()
            };
        }
        let n = if burst > 0 { burst } else { 1 };
        for _ in 0..n {
            tx.feed(payload(epoch)).await.expect("feed");
        }
        tx.flush().await.expect("flush");
        if measuring.load(Ordering::Relaxed) {
            sent_measured += n;
        }
    }
    // Let the last deliveries land, then read the server's CPU.
    let expected = sent_measured * (subs as u64);
    let deadline = Instant::now() + Duration::from_secs(5);
    while counters.received.load(Ordering::Relaxed) < expected && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let cpu1 = cpu_ticks(pid);
    // perf stat's counts: task-clock (ms), context switches, system calls.
    let mut counts = (f64::NAN, f64::NAN, f64::NAN);
    if let Some(mut p) = perf.take() {
        // SIGINT makes perf stat print its counts and exit.
        let _ = Command::new("kill")
            .args(["-INT", &p.id().to_string()])
            .status();
        let mut err = String::new();
        if let Some(mut e) = p.stderr.take() {
            use std::io::Read;
            let _ = e.read_to_string(&mut err);
        }
        let _ = p.wait();
        for line in err.lines() {
            let f: Vec<&str> = line.split(',').collect();
            let v = f
                .first()
                .and_then(|v| v.parse::<f64>().ok())
                .unwrap_or(f64::NAN);
            if line.contains("task-clock") {
                counts.0 = v;
            } else if line.contains("context-switches") {
                counts.1 = v;
            } else if line.contains("sys_enter") {
                counts.2 = v;
            }
        }
    }
    let rss = rss_kib(pid);
    measuring.store(false, Ordering::Relaxed);
    let deliveries = counters.received.load(Ordering::Relaxed);
    let hz = 100.0; // USER_HZ
    let cpu_us = (cpu1 - cpu0) as f64 / hz * 1e6;
    let hist: Vec<u64> = counters
        .hist
        .iter()
        .map(|h| h.load(Ordering::Relaxed))
        .collect();
    drop(child);
    drop(stuck);
    for r in readers {
        r.abort();
    }
    Outcome {
        us_per_delivery: cpu_us / deliveries.max(1) as f64,
        deliveries,
        expected,
        p50: percentile(&hist, 0.5),
        p99: percentile(&hist, 0.99),
        rss_kib: rss,
        perf_us: counts.0 * 1000.0 / deliveries.max(1) as f64,
        switches: counts.1 / deliveries.max(1) as f64,
        syscalls: counts.2 / deliveries.max(1) as f64,
    }
}

fn main() {
    if let Some(mode) = arg("--serve") {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .expect("runtime");
        rt.block_on(async move {
            let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
            println!("{}", listener.local_addr().expect("addr"));
            match mode.as_str() {
                "direct" => serve_direct(listener).await,
                _ => serve_task(listener).await,
            }
        });
        return;
    }
    let subs = num("--subs", 1000) as usize;
    let size = num("--size", 1024) as usize;
    let rate = num("--rate", 100);
    let burst = num("--burst", 0);
    let secs = num("--secs", 10);
    let rounds = num("--rounds", 3);
    let modes = arg("--modes").unwrap_or_else(|| "task,direct".into());
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let cell = if burst > 0 {
        format!("burst {burst}/s")
    } else {
        format!("{rate}/s")
    };
    println!("{subs} subscribers, {size} B, {cell}, {secs} s per run");
    let mut results: std::collections::BTreeMap<&str, Vec<f64>> = Default::default();
    for round in 0..rounds {
        let mut list: Vec<&str> = modes.split(',').collect();
        if round % 2 == 1 {
            list.reverse();
        }
        for mode in list {
            let o = rt.block_on(run_once(mode, subs, size, rate, burst, secs));
            let perf = if o.perf_us.is_nan() {
                String::new()
            } else {
                format!(
                    "; perf: {:.2} us task-clock, {:.2} system calls, {:.3} context switches per delivery",
                    o.perf_us, o.syscalls, o.switches
                )
            };
            println!(
                "round {round} {mode:>6}: {:.2} us server CPU per delivery, {}/{} delivered, latency p50 {:.0} us p99 {:.0} us, server RSS {} KiB{perf}",
                o.us_per_delivery, o.deliveries, o.expected, o.p50, o.p99, o.rss_kib
            );
            results.entry(mode).or_default().push(o.us_per_delivery);
        }
    }
    for (mode, mut v) in results {
        v.sort_by(f64::total_cmp);
        println!(
            "median {mode:>6}: {:.2} us server CPU per delivery",
            v[v.len() / 2]
        );
    }
}
