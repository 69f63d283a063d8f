//! Load scenarios against an echo server: closed-loop echo, pipelined echo, handshakes, idle
//! connections, and a k6-like ramping scenario. Every loop is bounded in time (and the
//! connection counts are fixed), and everything goes to the address given, which callers keep
//! on loopback.

use std::io;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU8, AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;
use tokio::io::AsyncWriteExt;
use tokio::sync::Semaphore;
use tokio::task::JoinSet;

use crate::client::{FrameReader, Rng, WsClient, encode_frame, op};
use crate::procfs;
use crate::stats::{K6Metrics, fmt_ns, latency_histogram, record};

const WARMUP: u8 = 0;
const MEASURE: u8 = 1;
const STOP: u8 = 2;

/// How many connection attempts run at once while opening many connections.
const CONNECT_CONCURRENCY: usize = 64;
/// Limit on one connect + handshake.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// Limit on one close handshake.
const CLOSE_TIMEOUT: Duration = Duration::from_secs(2);
/// How long to wait for the tasks after the measurement window before abandoning them.
const DRAIN_TIMEOUT: Duration = Duration::from_secs(10);

/// Settings for one load run.
#[derive(Debug, Clone)]
pub struct LoadOpts {
    /// The server (keep it on loopback).
    pub addr: SocketAddr,
    /// Connections (echo), or concurrent handshake loops (handshake mode).
    pub conns: usize,
    /// Message payload size in bytes.
    pub size: usize,
    /// Send text messages (validated as UTF-8 by the server) instead of binary.
    pub text: bool,
    /// Time run before measuring.
    pub warmup: Duration,
    /// Measurement window.
    pub duration: Duration,
    /// The server process, for its CPU time.
    pub server_pid: Option<u32>,
    /// Client runtime threads (1: a current-thread runtime).
    pub client_threads: usize,
    /// Messages in flight in the pipelined mode.
    pub inflight: usize,
}

impl LoadOpts {
    /// Defaults for `addr`: 1 connection, 16 bytes, 1 s warm-up, 5 s measured.
    pub fn new(addr: SocketAddr) -> LoadOpts {
        LoadOpts {
            addr,
            conns: 1,
            size: 16,
            text: false,
            warmup: Duration::from_secs(1),
            duration: Duration::from_secs(5),
            server_pid: None,
            client_threads: 1,
            inflight: 1000,
        }
    }
}

/// What one run measured.
#[derive(Debug, Clone)]
pub struct LoadResult {
    /// Round trips (or handshakes) completed inside the measurement window.
    pub count: u64,
    /// Length of the measurement window, seconds.
    pub secs: f64,
    /// Round-trip (or connect-to-close) times inside the window, nanoseconds.
    pub latency: Histogram<u64>,
    /// Server CPU time (user + system) over the window, nanoseconds.
    pub server_cpu_ns: Option<u64>,
    /// This (client) process's CPU time over the window, nanoseconds.
    pub client_cpu_ns: Option<u64>,
    /// CPU time the whole machine was busy (or stolen) over the window, nanoseconds.
    pub system_busy_ns: Option<u64>,
    /// k6-style session figures over the whole run (warm-up included, as k6 counts them).
    pub k6: K6Metrics,
    /// Connections that failed (connect, handshake, echo mismatch, I/O error).
    pub errors: u64,
}

impl LoadResult {
    fn empty() -> LoadResult {
        LoadResult {
            count: 0,
            secs: 0.0,
            latency: latency_histogram(),
            server_cpu_ns: None,
            client_cpu_ns: None,
            system_busy_ns: None,
            k6: K6Metrics::default(),
            errors: 0,
        }
    }

    /// Completed operations per second.
    pub fn rate(&self) -> f64 {
        if self.secs > 0.0 {
            self.count as f64 / self.secs
        } else {
            0.0
        }
    }

    /// Latency quantile `q` in nanoseconds (`NaN` without samples).
    pub fn quantile_ns(&self, q: f64) -> f64 {
        if self.latency.is_empty() {
            f64::NAN
        } else {
            self.latency.value_at_quantile(q) as f64
        }
    }

    /// Server CPU nanoseconds per completed operation.
    pub fn cpu_per_op_ns(&self) -> f64 {
        match self.server_cpu_ns {
            Some(c) if self.count > 0 => c as f64 / self.count as f64,
            _ => f64::NAN,
        }
    }

    /// CPU cores busy with other processes during the window (machine busy time minus server
    /// and client), on average.
    pub fn background_cores(&self) -> f64 {
        match (self.system_busy_ns, self.server_cpu_ns, self.client_cpu_ns) {
            (Some(b), Some(s), Some(c)) if self.secs > 0.0 => {
                b.saturating_sub(s + c) as f64 / 1e9 / self.secs
            }
            _ => f64::NAN,
        }
    }

    /// A one-line summary.
    pub fn summary(&self) -> String {
        format!(
            "{:.0}/s ({} in {:.2}s) p50={} p99={} p99.9={} server_cpu/op={} client_cpu/op={} \
             background={:.2} cores errors={}",
            self.rate(),
            self.count,
            self.secs,
            fmt_ns(self.quantile_ns(0.5)),
            fmt_ns(self.quantile_ns(0.99)),
            fmt_ns(self.quantile_ns(0.999)),
            fmt_ns(self.cpu_per_op_ns()),
            fmt_ns(match self.client_cpu_ns {
                Some(c) if self.count > 0 => c as f64 / self.count as f64,
                _ => f64::NAN,
            }),
            self.background_cores(),
            self.errors,
        )
    }
}

/// The client runtime: current-thread for 1 thread, multi-thread otherwise.
pub fn runtime(threads: usize) -> io::Result<tokio::runtime::Runtime> {
    if threads <= 1 {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
    } else {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(threads)
            .enable_all()
            .build()
    }
}

/// A payload of `size` bytes: random bytes, or ASCII/UTF-8 text.
pub fn make_payload(size: usize, text: bool, rng: &mut Rng) -> Vec<u8> {
    if text {
        const T: &[u8] = b"The quick brown fox jumps over the lazy dog 0123456789. ";
        T.iter().copied().cycle().take(size).collect()
    } else {
        (0..size).map(|_| rng.next_u64() as u8).collect()
    }
}

fn cpu(pid: Option<u32>) -> Option<u64> {
    pid.and_then(|p| procfs::cpu_time_ns(p).ok())
}

/// A connected client and when its session started.
type Session = (WsClient, Instant);

/// Opens `n` connections, at most `CONNECT_CONCURRENCY` attempts at a time. Records
/// `ws_connecting` and `ws_sessions`; failed attempts count as errors.
async fn connect_many(
    addr: SocketAddr,
    n: usize,
    read_cap: usize,
    k6: &mut K6Metrics,
    errors: &mut u64,
) -> Vec<Session> {
    let sem = Arc::new(Semaphore::new(CONNECT_CONCURRENCY));
    let mut seeds = Rng::from_entropy();
    let mut set = JoinSet::new();
    for _ in 0..n {
        let sem = sem.clone();
        let rng = Rng::with_seed(seeds.next_u64());
        set.spawn(async move {
            let _permit = sem.acquire_owned().await;
            let t0 = Instant::now();
            let r =
                tokio::time::timeout(CONNECT_TIMEOUT, WsClient::connect(addr, read_cap, rng)).await;
            (r, t0)
        });
    }
    let mut out = Vec::with_capacity(n);
    while let Some(r) = set.join_next().await {
        match r {
            Ok((Ok(Ok(c)), t0)) => {
                record(&mut k6.connecting, t0.elapsed().as_nanos() as u64);
                k6.sessions += 1;
                out.push((c, t0));
            }
            _ => *errors += 1,
        }
    }
    out
}

/// What a per-connection task reports.
struct TaskOut {
    hist: Histogram<u64>,
    counted: u64,
    sent: u64,
    received: u64,
    failed: bool,
    session_ns: u64,
}

/// CPU readings at one instant: server, this process, the whole machine.
#[derive(Clone, Copy)]
pub(crate) struct CpuSnap {
    pub(crate) server: Option<u64>,
    pub(crate) client: Option<u64>,
    pub(crate) system: Option<u64>,
}

impl CpuSnap {
    pub(crate) fn take(pid: Option<u32>) -> CpuSnap {
        CpuSnap {
            server: cpu(pid),
            client: procfs::cpu_time_ns(std::process::id()).ok(),
            system: procfs::system_cpu_ns().ok().map(|(busy, _)| busy),
        }
    }

    /// Stores `later - self` into `res`.
    fn store_delta(&self, later: &CpuSnap, res: &mut LoadResult) {
        let d = |a: Option<u64>, b: Option<u64>| Some(b?.saturating_sub(a?));
        res.server_cpu_ns = d(self.server, later.server);
        res.client_cpu_ns = d(self.client, later.client);
        res.system_busy_ns = d(self.system, later.system);
    }
}

/// Measures the window: warm-up, then `duration` with CPU times sampled at both ends.
async fn window(o: &LoadOpts, phase: &AtomicU8, res: &mut LoadResult) {
    tokio::time::sleep(o.warmup).await;
    let before = CpuSnap::take(o.server_pid);
    let t0 = Instant::now();
    phase.store(MEASURE, Relaxed);
    tokio::time::sleep(o.duration).await;
    phase.store(STOP, Relaxed);
    res.secs = t0.elapsed().as_secs_f64();
    before.store_delta(&CpuSnap::take(o.server_pid), res);
}

/// Collects the tasks' reports, giving up on stragglers after `DRAIN_TIMEOUT`.
async fn collect(set: &mut JoinSet<TaskOut>, res: &mut LoadResult) {
    let deadline = tokio::time::Instant::now() + DRAIN_TIMEOUT;
    loop {
        match tokio::time::timeout_at(deadline, set.join_next()).await {
            Ok(Some(Ok(t))) => {
                let _ = res.latency.add(&t.hist);
                res.count += t.counted;
                res.k6.msgs_sent += t.sent;
                res.k6.msgs_received += t.received;
                record(&mut res.k6.session_duration, t.session_ns);
                res.errors += t.failed as u64;
            }
            Ok(Some(Err(_))) => res.errors += 1,
            Ok(None) => break,
            Err(_) => {
                res.errors += set.len() as u64;
                set.abort_all();
                break;
            }
        }
    }
}

/// Closed-loop echo: `conns` connections, each sending a message of `size` bytes and waiting
/// for its echo before sending the next.
pub fn run_echo(o: &LoadOpts) -> io::Result<LoadResult> {
    runtime(o.client_threads)?.block_on(echo(o.clone()))
}

async fn echo(o: LoadOpts) -> io::Result<LoadResult> {
    let mut res = LoadResult::empty();
    let read_cap = (o.size + 14).clamp(4096, 256 << 10);
    let clients = connect_many(o.addr, o.conns, read_cap, &mut res.k6, &mut res.errors).await;
    if clients.is_empty() {
        return Err(io::Error::new(
            io::ErrorKind::ConnectionRefused,
            "no connection could be opened",
        ));
    }
    let payload: Arc<[u8]> = make_payload(o.size, o.text, &mut Rng::from_entropy()).into();
    let opcode = if o.text { op::TEXT } else { op::BINARY };
    let phase = Arc::new(AtomicU8::new(WARMUP));
    let mut set = JoinSet::new();
    for (mut c, started) in clients {
        let payload = payload.clone();
        let phase = phase.clone();
        set.spawn(async move {
            let mut t = TaskOut {
                hist: latency_histogram(),
                counted: 0,
                sent: 0,
                received: 0,
                failed: false,
                session_ns: 0,
            };
            while phase.load(Relaxed) != STOP {
                let t0 = Instant::now();
                if c.send(opcode, &payload).await.is_err() {
                    t.failed = true;
                    break;
                }
                t.sent += 1;
                match c.recv_data().await {
                    Ok(f)
                        if f.len as usize == payload.len()
                            && f.head() == &payload[..f.head().len()] => {}
                    _ => {
                        t.failed = true;
                        break;
                    }
                }
                t.received += 1;
                if phase.load(Relaxed) == MEASURE {
                    t.counted += 1;
                    record(&mut t.hist, t0.elapsed().as_nanos() as u64);
                }
            }
            if !t.failed && !c.close(CLOSE_TIMEOUT).await {
                t.failed = true;
            }
            t.session_ns = started.elapsed().as_nanos() as u64;
            t
        });
    }
    window(&o, &phase, &mut res).await;
    collect(&mut set, &mut res).await;
    Ok(res)
}

/// Pipelined echo: one connection, `inflight` messages of `size` bytes in flight (at least 8
/// bytes: each payload starts with its send time, so round trips are measured per message).
pub fn run_pipeline(o: &LoadOpts) -> io::Result<LoadResult> {
    runtime(o.client_threads)?.block_on(pipeline(o.clone()))
}

async fn pipeline(o: LoadOpts) -> io::Result<LoadResult> {
    let mut res = LoadResult::empty();
    let size = o.size.max(8);
    let mut clients = connect_many(o.addr, 1, 256 << 10, &mut res.k6, &mut res.errors).await;
    let Some((c, started)) = clients.pop() else {
        return Err(io::Error::new(
            io::ErrorKind::ConnectionRefused,
            "no connection could be opened",
        ));
    };
    let WsClient {
        stream,
        reader,
        rng,
        wbuf,
    } = c;
    let (rd, wr) = stream.into_split();
    let opcode = if o.text { op::TEXT } else { op::BINARY };
    let phase = Arc::new(AtomicU8::new(WARMUP));
    let sem = Arc::new(Semaphore::new(o.inflight.max(1)));
    let sent = Arc::new(AtomicU64::new(0));
    let writer_done = Arc::new(AtomicBool::new(false));
    let base = Instant::now();

    let writer = {
        let (phase, sem, sent, done) = (
            phase.clone(),
            sem.clone(),
            sent.clone(),
            writer_done.clone(),
        );
        let mut payload = make_payload(size, o.text, &mut Rng::from_entropy());
        tokio::spawn(async move {
            let (mut wr, mut rng, mut buf) = (wr, rng, wbuf);
            let mut ok = true;
            while phase.load(Relaxed) != STOP {
                let first =
                    match tokio::time::timeout(Duration::from_millis(50), sem.acquire()).await {
                        Ok(Ok(p)) => p,
                        Ok(Err(_)) => break,
                        Err(_) => continue,
                    };
                first.forget();
                let mut n = 1;
                while n < 64 {
                    match sem.try_acquire() {
                        Ok(p) => {
                            p.forget();
                            n += 1;
                        }
                        Err(_) => break,
                    }
                }
                buf.clear();
                let ts = base.elapsed().as_nanos() as u64;
                payload[..8].copy_from_slice(&ts.to_le_bytes());
                for _ in 0..n {
                    encode_frame(&mut buf, opcode, &payload, &mut rng);
                }
                if wr.write_all(&buf).await.is_err() {
                    ok = false;
                    break;
                }
                sent.fetch_add(n as u64, Relaxed);
            }
            done.store(true, Relaxed);
            // A ping after the last message: its pong wakes the reader if every echo is
            // already in.
            buf.clear();
            encode_frame(&mut buf, op::PING, b"end", &mut rng);
            if ok && wr.write_all(&buf).await.is_err() {
                ok = false;
            }
            (wr, rng, ok)
        })
    };

    let reader_task = {
        let (phase, sem, sent, done) = (
            phase.clone(),
            sem.clone(),
            sent.clone(),
            writer_done.clone(),
        );
        let mut reader: FrameReader = reader;
        tokio::spawn(async move {
            let mut rd = rd;
            let mut t = TaskOut {
                hist: latency_histogram(),
                counted: 0,
                sent: 0,
                received: 0,
                failed: false,
                session_ns: 0,
            };
            loop {
                if done.load(Relaxed) && t.received == sent.load(Relaxed) {
                    break;
                }
                let f = match reader.read_frame(&mut rd).await {
                    Ok(f) => f,
                    Err(_) => {
                        t.failed = true;
                        break;
                    }
                };
                match f.opcode {
                    op::TEXT | op::BINARY => {
                        t.received += 1;
                        sem.add_permits(1);
                        let mut ts = [0u8; 8];
                        ts.copy_from_slice(&f.head[..8]);
                        let now = base.elapsed().as_nanos() as u64;
                        if phase.load(Relaxed) == MEASURE {
                            t.counted += 1;
                            record(&mut t.hist, now.saturating_sub(u64::from_le_bytes(ts)));
                        }
                    }
                    op::PONG | op::PING => {}
                    _ => {
                        t.failed = true;
                        break;
                    }
                }
            }
            (rd, reader, t)
        })
    };

    window(&o, &phase, &mut res).await;
    let (w, r) = tokio::time::timeout(DRAIN_TIMEOUT, async { (writer.await, reader_task.await) })
        .await
        .map_err(|_| io::Error::new(io::ErrorKind::TimedOut, "pipelined run did not drain"))?;
    let (wr, rng, wok) = w.map_err(io::Error::other)?;
    let (rd, reader, mut t) = r.map_err(io::Error::other)?;
    t.sent = sent.load(Relaxed);
    t.failed |= !wok;
    if !t.failed {
        match rd.reunite(wr) {
            Ok(stream) => {
                let c = WsClient {
                    stream,
                    reader,
                    rng,
                    wbuf: Vec::new(),
                };
                t.failed = !c.close(CLOSE_TIMEOUT).await;
            }
            Err(_) => t.failed = true,
        }
    }
    t.session_ns = started.elapsed().as_nanos() as u64;
    let mut set = JoinSet::new();
    set.spawn(async move { t });
    collect(&mut set, &mut res).await;
    Ok(res)
}

/// Handshakes: `conns` loops, each connecting, completing the opening handshake and the close
/// handshake, then starting over. `count` is completed sessions; latency is connect-to-close.
pub fn run_handshakes(o: &LoadOpts) -> io::Result<LoadResult> {
    runtime(o.client_threads)?.block_on(handshakes(o.clone()))
}

async fn handshakes(o: LoadOpts) -> io::Result<LoadResult> {
    let mut res = LoadResult::empty();
    let phase = Arc::new(AtomicU8::new(WARMUP));
    let k6 = Arc::new(Mutex::new(K6Metrics::default()));
    let mut seeds = Rng::from_entropy();
    let mut set = JoinSet::new();
    for _ in 0..o.conns.max(1) {
        let (phase, k6) = (phase.clone(), k6.clone());
        let mut rng = Rng::with_seed(seeds.next_u64());
        let addr = o.addr;
        set.spawn(async move {
            let mut t = TaskOut {
                hist: latency_histogram(),
                counted: 0,
                sent: 0,
                received: 0,
                failed: false,
                session_ns: 0,
            };
            let mut mine = K6Metrics::default();
            let mut fails = 0u64;
            while phase.load(Relaxed) != STOP && fails < 100 {
                let t0 = Instant::now();
                let c = tokio::time::timeout(
                    CONNECT_TIMEOUT,
                    WsClient::connect(addr, 4096, Rng::with_seed(rng.next_u64())),
                )
                .await;
                let Ok(Ok(c)) = c else {
                    fails += 1;
                    continue;
                };
                record(&mut mine.connecting, t0.elapsed().as_nanos() as u64);
                mine.sessions += 1;
                let closed = c.close(CLOSE_TIMEOUT).await;
                let dt = t0.elapsed().as_nanos() as u64;
                record(&mut mine.session_duration, dt);
                if !closed {
                    fails += 1;
                } else if phase.load(Relaxed) == MEASURE {
                    t.counted += 1;
                    record(&mut t.hist, dt);
                }
            }
            t.failed = fails > 0;
            if let Ok(mut k) = k6.lock() {
                k.merge(&mine);
            }
            t
        });
    }
    window(&o, &phase, &mut res).await;
    collect(&mut set, &mut res).await;
    // Sessions were recorded by the tasks themselves; drop the per-task placeholder durations.
    res.k6 = k6.lock().map(|k| k.clone()).unwrap_or_default();
    Ok(res)
}

/// Memory of idle connections, read from the server's RSS.
#[derive(Debug, Clone)]
pub struct IdleResult {
    /// Connections opened (asked for: `wanted`).
    pub opened: usize,
    /// Connections asked for.
    pub wanted: usize,
    /// Server RSS before opening them, bytes.
    pub rss_before: u64,
    /// Server RSS with all of them open after the handshake, bytes.
    pub rss_open: u64,
    /// Server RSS after one 16-byte echo on each, bytes.
    pub rss_used: u64,
    /// k6-style figures.
    pub k6: K6Metrics,
    /// Failed connections.
    pub errors: u64,
}

impl IdleResult {
    /// Bytes per connection after the handshake.
    pub fn per_conn_open(&self) -> f64 {
        self.rss_open.saturating_sub(self.rss_before) as f64 / self.opened.max(1) as f64
    }

    /// Bytes per connection after one echo.
    pub fn per_conn_used(&self) -> f64 {
        self.rss_used.saturating_sub(self.rss_before) as f64 / self.opened.max(1) as f64
    }
}

/// Opens `n` connections to the server `pid` and reads its RSS before, after the handshakes,
/// and after one 16-byte echo on each connection.
pub fn run_idle(
    addr: SocketAddr,
    n: usize,
    pid: u32,
    client_threads: usize,
) -> io::Result<IdleResult> {
    runtime(client_threads)?.block_on(idle(addr, n, pid))
}

async fn idle(addr: SocketAddr, n: usize, pid: u32) -> io::Result<IdleResult> {
    let mut k6 = K6Metrics::default();
    let mut errors = 0;
    // Warm up: let every lazily allocated per-thread buffer exist before the first reading.
    {
        let mut scratch = K6Metrics::default();
        let mut e = 0;
        for (mut c, _) in connect_many(addr, 4, 4096, &mut scratch, &mut e).await {
            let _ = c.send(op::BINARY, &[1u8; 16]).await;
            let _ = c.recv_data().await;
            let _ = c.close(CLOSE_TIMEOUT).await;
        }
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    let rss_before = procfs::rss_bytes(pid)?;
    let clients = connect_many(addr, n, 4096, &mut k6, &mut errors).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let rss_open = procfs::rss_bytes(pid)?;
    let mut set = JoinSet::new();
    let sem = Arc::new(Semaphore::new(256));
    for (mut c, t0) in clients {
        let sem = sem.clone();
        set.spawn(async move {
            let _p = sem.acquire_owned().await;
            let ok = c.send(op::BINARY, &[7u8; 16]).await.is_ok()
                && matches!(c.recv_data().await, Ok(f) if f.len == 16);
            (c, t0, ok)
        });
    }
    let mut used = Vec::with_capacity(n);
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    while let Ok(Some(r)) = tokio::time::timeout_at(deadline, set.join_next()).await {
        match r {
            Ok((c, t0, true)) => {
                k6.msgs_sent += 1;
                k6.msgs_received += 1;
                used.push((c, t0));
            }
            _ => errors += 1,
        }
    }
    set.abort_all();
    tokio::time::sleep(Duration::from_millis(500)).await;
    let rss_used = procfs::rss_bytes(pid)?;
    let opened = used.len();
    // Drop them all (the server sees EOF); record the session lengths first.
    for (_, t0) in &used {
        record(&mut k6.session_duration, t0.elapsed().as_nanos() as u64);
    }
    drop(used);
    Ok(IdleResult {
        opened,
        wanted: n,
        rss_before,
        rss_open,
        rss_used,
        k6,
        errors,
    })
}

/// Settings of the k6-like scenario.
#[derive(Debug, Clone)]
pub struct K6Scenario {
    /// The server (keep it on loopback).
    pub addr: SocketAddr,
    /// Virtual users at the end of the ramp.
    pub vus: usize,
    /// Time over which the users start, evenly spread.
    pub ramp: Duration,
    /// Whole scenario length (ramp included); sessions still open then are closed.
    pub duration: Duration,
    /// Length of one session; a user starts a new session after each one ends.
    pub session: Duration,
    /// Message size.
    pub size: usize,
    /// The server process, for its CPU time.
    pub server_pid: Option<u32>,
    /// Client runtime threads.
    pub client_threads: usize,
}

/// Runs the scenario: users connect one after the other over the ramp; each session sends a
/// text message every 1 to 3 s (uniformly random), reads its echo, and closes after
/// `session`; then the user starts a new session, until the scenario ends. `count` is echoed
/// messages, latency their round trips.
pub fn run_k6(s: &K6Scenario) -> io::Result<LoadResult> {
    runtime(s.client_threads)?.block_on(k6(s.clone()))
}

async fn k6(s: K6Scenario) -> io::Result<LoadResult> {
    let mut res = LoadResult::empty();
    let start = tokio::time::Instant::now();
    let end = start + s.duration;
    let before = CpuSnap::take(s.server_pid);
    let mut seeds = Rng::from_entropy();
    let payload: Arc<[u8]> = make_payload(s.size, true, &mut Rng::from_entropy()).into();
    let mut set = JoinSet::new();
    for i in 0..s.vus {
        let at = start + s.ramp.mul_f64(i as f64 / s.vus.max(1) as f64);
        let mut rng = Rng::with_seed(seeds.next_u64());
        let payload = payload.clone();
        let (addr, session) = (s.addr, s.session);
        set.spawn(async move {
            let mut m = K6Metrics::default();
            let mut hist = latency_histogram();
            let mut errors = 0u64;
            tokio::time::sleep_until(at).await;
            while end.saturating_duration_since(tokio::time::Instant::now())
                > Duration::from_secs(1)
            {
                let t0 = tokio::time::Instant::now();
                let c = tokio::time::timeout_at(
                    end,
                    WsClient::connect(addr, 4096, Rng::with_seed(rng.next_u64())),
                )
                .await;
                let Ok(Ok(mut c)) = c else {
                    errors += 1;
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                };
                record(&mut m.connecting, t0.elapsed().as_nanos() as u64);
                m.sessions += 1;
                let session_end = (t0 + session).min(end);
                let mut ok = true;
                loop {
                    let next = tokio::time::Instant::now()
                        + Duration::from_secs_f64(1.0 + 2.0 * rng.next_f64());
                    if next >= session_end {
                        break;
                    }
                    tokio::time::sleep_until(next).await;
                    let t1 = Instant::now();
                    if c.send(op::TEXT, &payload).await.is_err() {
                        ok = false;
                        break;
                    }
                    m.msgs_sent += 1;
                    match tokio::time::timeout_at(end + Duration::from_secs(5), c.recv_data()).await
                    {
                        Ok(Ok(f)) if f.len as usize == payload.len() => {
                            m.msgs_received += 1;
                            record(&mut hist, t1.elapsed().as_nanos() as u64);
                        }
                        _ => {
                            ok = false;
                            break;
                        }
                    }
                }
                if ok {
                    tokio::time::sleep_until(session_end).await;
                    ok = c.close(CLOSE_TIMEOUT).await;
                }
                errors += !ok as u64;
                record(&mut m.session_duration, t0.elapsed().as_nanos() as u64);
            }
            (m, hist, errors)
        });
    }
    let deadline = end + Duration::from_secs(15);
    loop {
        match tokio::time::timeout_at(deadline, set.join_next()).await {
            Ok(Some(Ok((m, hist, e)))) => {
                res.k6.merge(&m);
                let _ = res.latency.add(&hist);
                res.errors += e;
            }
            Ok(Some(Err(_))) => res.errors += 1,
            Ok(None) => break,
            Err(_) => {
                res.errors += set.len() as u64;
                set.abort_all();
                break;
            }
        }
    }
    res.secs = start.elapsed().as_secs_f64();
    res.count = res.k6.msgs_received;
    before.store_delta(&CpuSnap::take(s.server_pid), &mut res);
    Ok(res)
}
