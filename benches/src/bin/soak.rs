//! Soak run of the serve loop: many connections held open with keepalive pings for minutes,
//! while a share of the clients stops answering. Loopback only, bounded in count and time.
//!
//! ```sh
//! cargo run --release -p benches --bin soak -- --conns 10000 --minutes 10 --silent-percent 1
//! cargo run --release -p benches --bin soak -- --conns 2000 --minutes 2 --ping-interval 5 --pong-timeout 5
//! ```
//!
//! The driver starts three child processes (this binary again, with `--role`):
//!
//! - the server: `ws_tokio::serve` with its default limits, the default `Config` but for
//!   `--ping-interval` and `--pong-timeout` (defaults 20 s and 20 s, as in `Config`), one
//!   runtime worker; it reports each connection that ends and how;
//! - the active clients, which answer pings (every `recv` does) and send nothing else;
//! - the silent clients (`--silent-percent` of all), which answer pings too until the driver
//!   stops their process with `SIGSTOP`, after `--stop-after` seconds (default: a quarter
//!   of the run).
//!
//! Clients connect from 127.0.0.1 up, 250 per source address, under the default per-IP cap
//! of 256. Every `--sample-secs` (default 5) the driver reads the server's RSS from `/proc`.
//! At the end it prints the RSS curve, when each silent connection was closed (expected:
//! within ping interval + pong timeout of the `SIGSTOP`) and whether any active connection
//! was lost.

use std::io::{BufRead, BufReader, Write};
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use benches::cli::{Args, die};
use benches::procfs::{raise_nofile, rss_bytes};
use tokio::net::TcpSocket;
use ws_tokio::{ClientRequest, Config, Error, TimeoutKind};

/// Connections per client source address (the server's per-IP cap is 256).
const PER_SOURCE: usize = 250;
/// Handshakes in flight at once per client process (the listen backlog is 1024).
const CONNECT_CONCURRENCY: usize = 256;

fn main() {
    let args = Args::from_env();
    if args.flag("help") {
        println!(
            "soak [--conns 10000] [--minutes 10 | --secs S] [--silent-percent 1] \
             [--ping-interval 20] [--pong-timeout 20] [--sample-secs 5] [--stop-after S]"
        );
        return;
    }
    match args.value("role") {
        None => drive(&args),
        Some("server") => server(&args),
        Some("clients") => clients(&args),
        Some(r) => die(&format!("unknown role {r:?}")),
    }
}

/// Ends when standard input does (the driver closed it, or died).
fn stdin_closed() -> tokio::sync::oneshot::Receiver<()> {
    let (tx, rx) = tokio::sync::oneshot::channel();
    std::thread::spawn(move || {
        let mut line = String::new();
        while std::io::stdin().read_line(&mut line).is_ok_and(|n| n > 0) {
            line.clear();
        }
        let _ = tx.send(());
    });
    rx
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap_or_else(|e| die(&format!("runtime: {e}")))
}

fn out(line: &str) {
    let mut o = std::io::stdout().lock();
    let _ = writeln!(o, "{line}");
    let _ = o.flush();
}

// ---------------------------------------------------------------------------------------

fn server(args: &Args) {
    let conns: usize = args.get("conns", 10_000);
    raise_nofile((conns + 1000) as u64);
    let config = Config::default()
        .with_ping_interval(Some(args.secs("ping-interval", 20.0)))
        .with_pong_timeout(args.secs("pong-timeout", 20.0));
    let start = Instant::now();
    runtime().block_on(async move {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .unwrap_or_else(|e| die(&format!("bind: {e}")));
        let port = listener.local_addr().unwrap().port();
        let live = Arc::new(AtomicUsize::new(0));
        let live2 = live.clone();
        let serve = ws_tokio::serve(listener, move |mut ws, info| {
            let live = live2.clone();
            async move {
                live.fetch_add(1, Ordering::Relaxed);
                let end = loop {
                    match info.recv(&mut ws).await {
                        Some(Ok(_)) => {}
                        Some(Err(e)) => break Some(e),
                        None => break None,
                    }
                };
                live.fetch_sub(1, Ordering::Relaxed);
                let how = match end {
                    Some(Error::Timeout(TimeoutKind::Pong)) => "pong-timeout",
                    None => "closed",
                    Some(_) => "error",
                };
                out(&format!(
                    "END {} {how} {}",
                    start.elapsed().as_millis(),
                    info.remote_addr
                ));
            }
        })
        .config(config)
        .with_graceful_shutdown(async {
            let _ = stdin_closed().await;
        });
        out(&format!("CAP {}", serve.effective_max_connections()));
        out(&format!("PORT {port}"));
        let ticker = tokio::spawn(async move {
            loop {
                tokio::time::sleep(Duration::from_secs(1)).await;
                out(&format!("LIVE {}", live.load(Ordering::Relaxed)));
            }
        });
        if let Err(e) = serve.await {
            die(&format!("serve: {e}"));
        }
        ticker.abort();
        out("STOPPED");
    });
}

// ---------------------------------------------------------------------------------------

fn clients(args: &Args) {
    let conns: usize = args.get("conns", 100);
    let first: usize = args.get("first-source", 1);
    let addr = args.loopback_addr("addr", "127.0.0.1:9001");
    raise_nofile((conns + 1000) as u64);
    let config = Config::default().with_ping_interval(None);
    runtime().block_on(async move {
        let closed = Arc::new(AtomicUsize::new(0));
        let sem = Arc::new(tokio::sync::Semaphore::new(CONNECT_CONCURRENCY));
        let (ready_tx, mut ready_rx) = tokio::sync::mpsc::unbounded_channel::<bool>();
        for i in 0..conns {
            let source = first + i / PER_SOURCE;
            if source > 254 {
                die("too many connections for 127.0.0.0/24 at 250 per address");
            }
            let source = IpAddr::V4(Ipv4Addr::new(127, 0, 0, source as u8));
            let (sem, ready, closed) = (sem.clone(), ready_tx.clone(), closed.clone());
            tokio::spawn(async move {
                let permit = sem.acquire_owned().await.unwrap();
                let ws = connect(source, addr, config).await;
                drop(permit);
                let Some(mut ws) = ws else {
                    let _ = ready.send(false);
                    return;
                };
                let _ = ready.send(true);
                // Pings are answered inside recv.
                while let Some(Ok(_)) = ws.recv().await {}
                closed.fetch_add(1, Ordering::Relaxed);
            });
        }
        drop(ready_tx);
        let (mut ok, mut failed) = (0, 0);
        while ok + failed < conns {
            match ready_rx.recv().await {
                Some(true) => ok += 1,
                Some(false) => failed += 1,
                None => break,
            }
        }
        out(&format!("READY {ok} {failed}"));
        let mut stop = stdin_closed();
        loop {
            tokio::select! {
                _ = &mut stop => break,
                () = tokio::time::sleep(Duration::from_secs(1)) => {
                    out(&format!("CLOSED {}", closed.load(Ordering::Relaxed)));
                }
            }
        }
    });
}

async fn connect(
    source: IpAddr,
    addr: SocketAddr,
    config: Config,
) -> Option<ws_tokio::WebSocket<tokio::net::TcpStream>> {
    for _ in 0..5 {
        let socket = TcpSocket::new_v4().ok()?;
        socket.bind(SocketAddr::new(source, 0)).ok()?;
        let Ok(tcp) = socket.connect(addr).await else {
            continue;
        };
        let req = ClientRequest::new(addr.to_string(), "/").config(config);
        if let Ok((ws, _)) = ws_tokio::client(tcp, req).await {
            return Some(ws);
        }
    }
    None
}

// ---------------------------------------------------------------------------------------

/// A child process and the lines it prints, with the time each arrived.
struct Proc {
    child: Child,
    stdin: Option<ChildStdin>,
    lines: mpsc::Receiver<(Instant, String)>,
}

impl Proc {
    fn start(role: &str, extra: &[String]) -> Proc {
        let exe = std::env::current_exe().unwrap();
        let mut child = Command::new(exe)
            .arg("--role")
            .arg(role)
            .args(extra)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| die(&format!("start {role}: {e}")));
        let stdout = child.stdout.take().unwrap();
        let (tx, lines) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if tx.send((Instant::now(), line)).is_err() {
                    break;
                }
            }
        });
        Proc {
            stdin: child.stdin.take(),
            child,
            lines,
        }
    }

    /// The rest of the next line starting with `word` (other lines go to `other`).
    fn expect(&self, word: &str, within: Duration, other: &mut dyn FnMut(Instant, &str)) -> String {
        let deadline = Instant::now() + within;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok((at, line)) => match line.strip_prefix(word) {
                    Some(rest) => return rest.trim().to_string(),
                    None => other(at, &line),
                },
                Err(_) => die(&format!("no {word} within {within:?}")),
            }
        }
    }

    fn signal(&self, sig: &str) {
        let pid = self.child.id().to_string();
        let ok = Command::new("kill")
            .args([sig, &pid])
            .status()
            .is_ok_and(|s| s.success());
        if !ok {
            die(&format!("kill {sig} {pid} failed"));
        }
    }

    /// Closes its standard input and waits (bounded) for it to exit.
    fn stop(&mut self, within: Duration) {
        drop(self.stdin.take());
        let deadline = Instant::now() + within;
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[derive(Default)]
struct Ends {
    pong_timeouts: Vec<(Instant, String)>,
    other: Vec<(Instant, String)>,
    live: usize,
}

impl Ends {
    fn take(&mut self, at: Instant, line: &str) {
        if let Some(rest) = line.strip_prefix("END ") {
            let mut f = rest.split_whitespace();
            let _ms = f.next();
            let how = f.next().unwrap_or("");
            let peer = f.next().unwrap_or("").to_string();
            if how == "pong-timeout" {
                self.pong_timeouts.push((at, peer));
            } else {
                self.other.push((at, format!("{how} {peer}")));
            }
        } else if let Some(n) = line.strip_prefix("LIVE ") {
            self.live = n.trim().parse().unwrap_or(self.live);
        }
    }
}

fn mib(b: u64) -> f64 {
    b as f64 / (1 << 20) as f64
}

fn drive(args: &Args) {
    let conns: usize = args.get("conns", 10_000);
    let run = match args.value("secs") {
        Some(_) => args.secs("secs", 600.0),
        None => Duration::from_secs_f64(args.get("minutes", 10.0f64) * 60.0),
    };
    if run > Duration::from_secs(3600) || conns > 50_000 {
        die("bounded: at most 50,000 connections and one hour");
    }
    let silent_pct: f64 = args.get("silent-percent", 1.0);
    let silent = ((conns as f64) * silent_pct / 100.0).round() as usize;
    let active = conns - silent;
    let ping = args.secs("ping-interval", 20.0);
    let pong = args.secs("pong-timeout", 20.0);
    let sample = args
        .secs("sample-secs", 5.0)
        .max(Duration::from_millis(500));
    let stop_after = args.secs("stop-after", run.as_secs_f64() / 4.0);
    let timing = vec![
        "--ping-interval".to_string(),
        ping.as_secs_f64().to_string(),
        "--pong-timeout".to_string(),
        pong.as_secs_f64().to_string(),
    ];

    println!(
        "soak: {conns} connections ({active} active, {silent} silent), {:.0} s, ping every \
         {:?}, pong timeout {:?}, SIGSTOP of the silent clients at {:?}",
        run.as_secs_f64(),
        ping,
        pong,
        stop_after
    );
    let mut ends = Ends::default();
    let mut server = Proc::start(
        "server",
        &[vec!["--conns".into(), conns.to_string()], timing].concat(),
    );
    let cap = server.expect("CAP", Duration::from_secs(30), &mut |_, _| {});
    let port = server.expect("PORT", Duration::from_secs(30), &mut |_, _| {});
    let addr = format!("127.0.0.1:{port}");
    let server_pid = server.child.id();
    println!("server pid {server_pid} on {addr}, connection cap {cap}");
    let rss_idle = rss_bytes(server_pid).unwrap_or(0);

    let sources_active = active.div_ceil(PER_SOURCE);
    let t_connect = Instant::now();
    let mut act = Proc::start(
        "clients",
        &[
            "--conns".into(),
            active.to_string(),
            "--first-source".into(),
            "1".into(),
            "--addr".into(),
            addr.clone(),
        ],
    );
    let mut sil = Proc::start(
        "clients",
        &[
            "--conns".into(),
            silent.to_string(),
            "--first-source".into(),
            (1 + sources_active).to_string(),
            "--addr".into(),
            addr.clone(),
        ],
    );
    let ready_a = act.expect("READY", Duration::from_secs(300), &mut |_, _| {});
    let ready_s = sil.expect("READY", Duration::from_secs(300), &mut |_, _| {});
    let connected = t_connect.elapsed();
    println!("connected in {connected:.1?}: active {ready_a}, silent {ready_s} (ok failed)");
    let start = Instant::now();

    // The active clients' own count of connections that ended.
    let mut act_closed = String::from("?");
    let mut samples: Vec<(f64, u64, usize)> = Vec::new();
    let mut stopped_at: Option<Instant> = None;
    // The server reports its live count once a second: the first sample follows one.
    let mut next_sample = start + Duration::from_secs(1);
    while start.elapsed() < run {
        if stopped_at.is_none() && start.elapsed() >= stop_after {
            sil.signal("-STOP");
            stopped_at = Some(Instant::now());
            println!(
                "SIGSTOP the silent clients at {:.1} s",
                start.elapsed().as_secs_f64()
            );
        }
        while let Ok((at, line)) = server.lines.try_recv() {
            ends.take(at, &line);
        }
        while let Ok((_, line)) = act.lines.try_recv() {
            if let Some(n) = line.strip_prefix("CLOSED ") {
                act_closed = n.trim().to_string();
            }
        }
        if Instant::now() >= next_sample {
            let rss = rss_bytes(server_pid).unwrap_or(0);
            samples.push((start.elapsed().as_secs_f64(), rss, ends.live));
            next_sample += sample;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    while let Ok((at, line)) = server.lines.try_recv() {
        ends.take(at, &line);
    }
    let rss_end = rss_bytes(server_pid).unwrap_or(0);
    while let Ok((_, line)) = act.lines.try_recv() {
        if let Some(n) = line.strip_prefix("CLOSED ") {
            act_closed = n.trim().to_string();
        }
    }

    // The report.
    println!(
        "\nserver RSS (idle before connections: {:.1} MiB)",
        mib(rss_idle)
    );
    println!(
        "{:>8}  {:>9}  {:>7}  curve (0 .. max)",
        "t (s)", "RSS KiB", "live"
    );
    let max = samples.iter().map(|s| s.1).max().unwrap_or(1).max(1);
    for (t, rss, live) in &samples {
        let width = (*rss as f64 / max as f64 * 50.0).round() as usize;
        println!(
            "{t:>8.0}  {:>9}  {live:>7}  {}",
            rss / 1024,
            "#".repeat(width)
        );
    }
    if let (Some(first), Some(last)) = (samples.first(), samples.last()) {
        let lo = samples.iter().map(|s| s.1).min().unwrap_or(0);
        let hi = samples.iter().map(|s| s.1).max().unwrap_or(0);
        println!(
            "RSS over the run: {} KiB to {} KiB; last sample - first sample: {:+} KiB",
            lo / 1024,
            hi / 1024,
            (last.1 as i64 - first.1 as i64) / 1024
        );
    }
    let bound = ping + pong;
    let stop = stopped_at.unwrap_or(start);
    let delays: Vec<f64> = ends
        .pong_timeouts
        .iter()
        .map(|(at, _)| at.saturating_duration_since(stop).as_secs_f64())
        .collect();
    let (first, last) = (
        delays.iter().cloned().fold(f64::INFINITY, f64::min),
        delays.iter().cloned().fold(0.0, f64::max),
    );
    println!(
        "\nsilent connections closed by the pong timeout: {} of {silent}, {:.1} s to {:.1} s \
         after SIGSTOP (ping interval + pong timeout = {:.0} s)",
        delays.len(),
        if delays.is_empty() { 0.0 } else { first },
        last,
        bound.as_secs_f64()
    );
    println!(
        "other connection ends at the server: {} (expected 0); active clients that lost \
         their connection: {act_closed}",
        ends.other.len()
    );
    for (at, what) in ends.other.iter().take(5) {
        println!("  {:.1} s: {what}", at.duration_since(start).as_secs_f64());
    }
    // Flatness: compare the RSS after the silent connections were closed with the end.
    let settled = stop + bound + Duration::from_secs(5);
    let after: Vec<u64> = samples
        .iter()
        .filter(|s| start + Duration::from_secs_f64(s.0) >= settled)
        .map(|s| s.1)
        .collect();
    if let (Some(a), Some(b)) = (after.first(), after.iter().max()) {
        println!(
            "RSS after the silent ones were closed: {:.1} MiB, highest since {:.1} MiB, at the \
             end {:.1} MiB; {:.2} KiB per live connection (RSS - idle RSS)",
            mib(*a),
            mib(*b),
            mib(rss_end),
            (rss_end.saturating_sub(rss_idle)) as f64 / 1024.0 / ends.live.max(1) as f64
        );
    }
    let ok = delays.len() == silent
        && last <= bound.as_secs_f64() + 2.0
        && ends.other.is_empty()
        && act_closed == "0";
    println!("verdict: {}", if ok { "PASS" } else { "FAIL" });

    sil.signal("-CONT");
    act.stop(Duration::from_secs(30));
    sil.stop(Duration::from_secs(30));
    server.stop(Duration::from_secs(30));
    if !ok {
        std::process::exit(1);
    }
}
