//! The runs: closed-loop and pipelined echo, handshakes, idle connections, the k6 scenario.

use std::io;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU8, AtomicU64, Ordering::Relaxed};
use std::time::{Duration, Instant};

use tokio::io::AsyncWriteExt;
use tokio::sync::Semaphore;
use tokio::task::JoinSet;
use ws_proto::frame::OpCode;

use super::client::{Halves, LoadClient, Rng, encode_frame};
use super::stats::{SharedTrend, TrendBatch};
use super::{K6Metrics, Progress, Target, Trend, sys};

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
/// Most connections one run opens at once.
pub const MAX_CONNECTIONS: usize = 100_000;

/// Settings of an echo, pipelined or handshake run.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct LoadOpts {
    /// The server (keep it one you run).
    pub target: Target,
    /// Connections (echo, pipelined), or concurrent handshake loops. Default 1, at most
    /// [`MAX_CONNECTIONS`].
    pub conns: usize,
    /// Message payload size in bytes. Default 16.
    pub size: usize,
    /// Send text messages (validated as UTF-8 by the server) instead of binary.
    pub text: bool,
    /// Time run before measuring. Default 1 s.
    pub warmup: Duration,
    /// Measurement window. Default 5 s.
    pub duration: Duration,
    /// The server process, for its CPU time and memory.
    pub server_pid: Option<u32>,
    /// Client runtime threads (1: a current-thread runtime). Default 1.
    pub client_threads: usize,
    /// Messages in flight per connection in the pipelined run. Default 1000.
    pub inflight: usize,
}

impl LoadOpts {
    /// Defaults for `target`: 1 connection, 16 bytes, 1 s warm-up, 5 s measured.
    pub fn new(target: Target) -> LoadOpts {
        LoadOpts {
            target,
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

    /// Sets [`conns`](Self::conns).
    pub fn with_conns(mut self, n: usize) -> Self {
        self.conns = n;
        self
    }

    /// Sets [`size`](Self::size).
    pub fn with_size(mut self, bytes: usize) -> Self {
        self.size = bytes;
        self
    }

    /// Sets [`text`](Self::text).
    pub fn with_text(mut self, text: bool) -> Self {
        self.text = text;
        self
    }

    /// Sets [`warmup`](Self::warmup).
    pub fn with_warmup(mut self, d: Duration) -> Self {
        self.warmup = d;
        self
    }

    /// Sets [`duration`](Self::duration).
    pub fn with_duration(mut self, d: Duration) -> Self {
        self.duration = d;
        self
    }

    /// Sets [`server_pid`](Self::server_pid).
    pub fn with_server_pid(mut self, pid: Option<u32>) -> Self {
        self.server_pid = pid;
        self
    }

    /// Sets [`client_threads`](Self::client_threads).
    pub fn with_client_threads(mut self, n: usize) -> Self {
        self.client_threads = n;
        self
    }

    /// Sets [`inflight`](Self::inflight).
    pub fn with_inflight(mut self, n: usize) -> Self {
        self.inflight = n;
        self
    }

    fn check(&self) -> io::Result<()> {
        if self.conns == 0 || self.conns > MAX_CONNECTIONS {
            return Err(invalid_input(format!(
                "connections must be 1 to {MAX_CONNECTIONS}"
            )));
        }
        if self.size > 64 << 20 {
            return Err(invalid_input("messages are at most 64 MiB"));
        }
        if self.inflight == 0 {
            return Err(invalid_input("at least one message in flight"));
        }
        Ok(())
    }
}

fn invalid_input(msg: impl Into<String>) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidInput, msg.into())
}

/// The server's memory over a run, from its RSS.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct Memory {
    /// RSS before the first connection, bytes.
    pub rss_before: u64,
    /// The highest RSS sampled during the run (every 250 ms), bytes.
    pub rss_peak: u64,
    /// The most sessions open at once.
    pub peak_connections: u64,
}

impl Memory {
    /// `(peak - before) / peak connections`: the server's bytes per connection.
    pub fn per_connection(&self) -> Option<f64> {
        (self.peak_connections > 0).then(|| {
            self.rss_peak.saturating_sub(self.rss_before) as f64 / self.peak_connections as f64
        })
    }
}

/// What one run measured.
#[derive(Debug, Clone, Default)]
#[non_exhaustive]
pub struct LoadResult {
    /// Round trips (or handshakes) completed inside the measurement window.
    pub count: u64,
    /// Length of the measurement window (the whole scenario for [`run_k6`]), seconds.
    pub secs: f64,
    /// Length of the whole run, connecting and closing included, seconds: what the k6
    /// counters' rates are per.
    pub total_secs: f64,
    /// Round-trip (or connect-to-close) times inside the window.
    pub latency: Trend,
    /// Server CPU time (user + system) over the window, nanoseconds.
    pub server_cpu_ns: Option<u64>,
    /// This (client) process's CPU time over the window, nanoseconds.
    pub client_cpu_ns: Option<u64>,
    /// CPU time the whole machine was busy (or stolen) over the window, nanoseconds.
    pub system_busy_ns: Option<u64>,
    /// k6-style figures over the whole run (warm-up included, as k6 counts them).
    pub k6: K6Metrics,
    /// The server's memory, with a server process given.
    pub memory: Option<Memory>,
    /// The most sessions open at once.
    pub peak_connections: u64,
    /// Connections that failed (connect, handshake, echo mismatch, I/O error).
    pub errors: u64,
}

impl LoadResult {
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
            self.latency.quantile(q).as_nanos() as f64
        }
    }

    /// Server CPU nanoseconds per completed operation (`NaN` when unknown).
    pub fn cpu_per_op_ns(&self) -> f64 {
        match self.server_cpu_ns {
            Some(c) if self.count > 0 => c as f64 / self.count as f64,
            _ => f64::NAN,
        }
    }

    /// Client CPU nanoseconds per completed operation (`NaN` when unknown).
    pub fn client_cpu_per_op_ns(&self) -> f64 {
        match self.client_cpu_ns {
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
        let ns = |v: f64| {
            if v.is_nan() {
                "-".to_string()
            } else {
                super::fmt_duration(Duration::from_nanos(v as u64))
            }
        };
        format!(
            "{:.0}/s ({} in {:.2}s) p50={} p99={} p99.9={} server_cpu/op={} client_cpu/op={} \
             background={:.2} cores errors={}",
            self.rate(),
            self.count,
            self.secs,
            ns(self.quantile_ns(0.5)),
            ns(self.quantile_ns(0.99)),
            ns(self.quantile_ns(0.999)),
            ns(self.cpu_per_op_ns()),
            ns(self.client_cpu_per_op_ns()),
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

/// A payload of `size` bytes: random bytes, or ASCII text.
pub fn make_payload(size: usize, text: bool, rng: &mut Rng) -> Vec<u8> {
    if text {
        const T: &[u8] = b"The quick brown fox jumps over the lazy dog 0123456789. ";
        T.iter().copied().cycle().take(size).collect()
    } else {
        (0..size).map(|_| rng.next_u64() as u8).collect()
    }
}

fn cpu(pid: Option<u32>) -> Option<u64> {
    pid.and_then(|p| sys::cpu_time_ns(p).ok())
}

/// A connected client and when its session started.
type Session = (LoadClient, Instant);

/// Opens `n` connections, at most [`CONNECT_CONCURRENCY`] attempts at a time. Records
/// `ws_connecting` and `ws_sessions`; failed attempts count as errors.
async fn connect_many(
    target: &Target,
    n: usize,
    read_cap: usize,
    k6: &mut K6Metrics,
    errors: &mut u64,
    progress: &Arc<Progress>,
) -> Vec<Session> {
    let sem = Arc::new(Semaphore::new(CONNECT_CONCURRENCY));
    let mut seeds = Rng::from_entropy();
    let mut set = JoinSet::new();
    for _ in 0..n {
        let sem = sem.clone();
        let rng = Rng::with_seed(seeds.next_u64());
        let target = target.clone();
        set.spawn(async move {
            let _permit = sem.acquire_owned().await;
            let t0 = Instant::now();
            let r =
                tokio::time::timeout(CONNECT_TIMEOUT, LoadClient::connect(&target, read_cap, rng))
                    .await;
            (r, t0)
        });
    }
    let mut out = Vec::with_capacity(n);
    while let Some(r) = set.join_next().await {
        match r {
            Ok((Ok(Ok((c, _))), t0)) => {
                k6.connecting.record(t0.elapsed());
                k6.sessions += 1;
                progress.session_opened();
                Progress::add(&progress.vus, 1);
                out.push((c, t0));
            }
            _ => {
                *errors += 1;
                Progress::add(&progress.errors, 1);
            }
        }
    }
    out
}

/// What a per-connection task reports (its latencies went into a [`SharedTrend`]).
#[derive(Default)]
struct TaskOut {
    counted: u64,
    sent: u64,
    received: u64,
    failed: bool,
    session: Duration,
}

/// CPU time read at one instant (nanoseconds, `None` where it cannot be read): the server
/// process's, this process's, and the whole machine's busy time ([`sys`]).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct CpuTimes {
    /// The server process's `utime + stime`.
    pub server: Option<u64>,
    /// This process's `utime + stime`.
    pub client: Option<u64>,
    /// The machine's busy (and stolen) time.
    pub system: Option<u64>,
}

impl CpuTimes {
    /// Reads them now (`server_pid`: the server process, if known).
    pub fn take(server_pid: Option<u32>) -> CpuTimes {
        CpuTimes {
            server: cpu(server_pid),
            client: sys::cpu_time_ns(std::process::id()).ok(),
            system: sys::system_cpu_ns().ok().map(|(busy, _)| busy),
        }
    }

    /// `later - self`, field by field (`None` where either is).
    pub fn until(&self, later: &CpuTimes) -> CpuTimes {
        let d = |a: Option<u64>, b: Option<u64>| Some(b?.saturating_sub(a?));
        CpuTimes {
            server: d(self.server, later.server),
            client: d(self.client, later.client),
            system: d(self.system, later.system),
        }
    }

    /// Stores `later - self` into `res`.
    fn store_delta(&self, later: &CpuTimes, res: &mut LoadResult) {
        let d = self.until(later);
        res.server_cpu_ns = d.server;
        res.client_cpu_ns = d.client;
        res.system_busy_ns = d.system;
    }
}

/// Samples the server's RSS every 250 ms until `stop`, keeping the peak.
fn spawn_rss_sampler(
    pid: Option<u32>,
    stop: Arc<AtomicBool>,
) -> Option<tokio::task::JoinHandle<u64>> {
    let pid = pid?;
    let first = sys::rss_bytes(pid).ok()?;
    Some(tokio::spawn(async move {
        let mut peak = first;
        while !stop.load(Relaxed) {
            tokio::time::sleep(Duration::from_millis(250)).await;
            if let Ok(r) = sys::rss_bytes(pid) {
                peak = peak.max(r);
            }
        }
        peak
    }))
}

/// Measures the window: warm-up, then `duration` with CPU times sampled at both ends.
async fn window(o: &LoadOpts, phase: &AtomicU8, res: &mut LoadResult) {
    tokio::time::sleep(o.warmup).await;
    let before = CpuTimes::take(o.server_pid);
    let t0 = Instant::now();
    phase.store(MEASURE, Relaxed);
    tokio::time::sleep(o.duration).await;
    phase.store(STOP, Relaxed);
    res.secs = t0.elapsed().as_secs_f64();
    before.store_delta(&CpuTimes::take(o.server_pid), res);
}

/// Collects the tasks' reports, giving up on stragglers after [`DRAIN_TIMEOUT`].
async fn collect(set: &mut JoinSet<TaskOut>, res: &mut LoadResult) {
    let deadline = tokio::time::Instant::now() + DRAIN_TIMEOUT;
    loop {
        match tokio::time::timeout_at(deadline, set.join_next()).await {
            Ok(Some(Ok(t))) => {
                res.count += t.counted;
                res.k6.msgs_sent += t.sent;
                res.k6.msgs_received += t.received;
                res.k6.session_duration.record(t.session);
                res.errors += u64::from(t.failed);
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

/// Opens the connections of an echo or pipelined run, and starts the RSS sampler.
async fn open_all(
    o: &LoadOpts,
    read_cap: usize,
    res: &mut LoadResult,
    progress: &Arc<Progress>,
) -> io::Result<(
    Vec<Session>,
    Option<(u64, Arc<AtomicBool>, tokio::task::JoinHandle<u64>)>,
)> {
    o.check()?;
    let target = o.target.clone().resolve().await?;
    let rss_before = o.server_pid.and_then(|p| sys::rss_bytes(p).ok());
    let stop = Arc::new(AtomicBool::new(false));
    let sampler = spawn_rss_sampler(o.server_pid, stop.clone());
    let clients = connect_many(
        &target,
        o.conns,
        read_cap,
        &mut res.k6,
        &mut res.errors,
        progress,
    )
    .await;
    if clients.is_empty() {
        stop.store(true, Relaxed);
        return Err(io::Error::new(
            io::ErrorKind::ConnectionRefused,
            format!("no connection to {} could be opened", target.url()),
        ));
    }
    res.peak_connections = clients.len() as u64;
    let mem = match (rss_before, sampler) {
        (Some(b), Some(s)) => Some((b, stop, s)),
        _ => None,
    };
    Ok((clients, mem))
}

async fn finish_memory(
    mem: Option<(u64, Arc<AtomicBool>, tokio::task::JoinHandle<u64>)>,
    res: &mut LoadResult,
) {
    if let Some((before, stop, sampler)) = mem {
        stop.store(true, Relaxed);
        if let Ok(peak) = sampler.await {
            res.memory = Some(Memory {
                rss_before: before,
                rss_peak: peak,
                peak_connections: res.peak_connections,
            });
        }
    }
}

/// Closed-loop echo: `conns` connections, each sending a message of `size` bytes and waiting
/// for its echo (checked: length and first bytes) before sending the next.
pub fn run_echo(o: &LoadOpts) -> io::Result<LoadResult> {
    run_echo_with(o, &Arc::new(Progress::new()))
}

/// [`run_echo`], updating `progress` as it goes.
pub fn run_echo_with(o: &LoadOpts, progress: &Arc<Progress>) -> io::Result<LoadResult> {
    runtime(o.client_threads)?.block_on(echo(o.clone(), progress.clone()))
}

async fn echo(o: LoadOpts, progress: Arc<Progress>) -> io::Result<LoadResult> {
    let started = Instant::now();
    let mut res = LoadResult::default();
    let read_cap = (o.size + 14).clamp(4096, 256 << 10);
    let (clients, mem) = open_all(&o, read_cap, &mut res, &progress).await?;
    let payload: Arc<[u8]> = make_payload(o.size, o.text, &mut Rng::from_entropy()).into();
    let opcode = if o.text { OpCode::Text } else { OpCode::Binary };
    let phase = Arc::new(AtomicU8::new(WARMUP));
    let window_trend = SharedTrend::default();
    let mut set = JoinSet::new();
    for (mut c, started) in clients {
        let (payload, phase, progress) = (payload.clone(), phase.clone(), progress.clone());
        let mut hist = window_trend.batch();
        set.spawn(async move {
            let mut t = TaskOut::default();
            while phase.load(Relaxed) != STOP {
                let t0 = Instant::now();
                if c.send(opcode, &payload).await.is_err() {
                    t.failed = true;
                    break;
                }
                t.sent += 1;
                Progress::add(&progress.sent, 1);
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
                Progress::add(&progress.received, 1);
                if phase.load(Relaxed) == MEASURE {
                    t.counted += 1;
                    hist.record(t0.elapsed());
                }
            }
            if !t.failed && !c.close(CLOSE_TIMEOUT).await {
                t.failed = true;
            }
            if t.failed {
                Progress::add(&progress.errors, 1);
            }
            progress.session_closed();
            t.session = started.elapsed();
            hist.flush();
            t
        });
    }
    window(&o, &phase, &mut res).await;
    collect(&mut set, &mut res).await;
    res.total_secs = started.elapsed().as_secs_f64();
    res.latency = window_trend.snapshot();
    res.k6.round_trip = res.latency.clone();
    finish_memory(mem, &mut res).await;
    Ok(res)
}

/// Pipelined echo: `conns` connections, each with `inflight` messages of `size` bytes in
/// flight (at least 8 bytes: each payload starts with its send time, so every round trip is
/// measured). The writer sends up to 64 frames per write while fewer than `inflight` are
/// unanswered.
pub fn run_pipeline(o: &LoadOpts) -> io::Result<LoadResult> {
    run_pipeline_with(o, &Arc::new(Progress::new()))
}

/// [`run_pipeline`], updating `progress` as it goes.
pub fn run_pipeline_with(o: &LoadOpts, progress: &Arc<Progress>) -> io::Result<LoadResult> {
    runtime(o.client_threads)?.block_on(pipeline(o.clone(), progress.clone()))
}

async fn pipeline(o: LoadOpts, progress: Arc<Progress>) -> io::Result<LoadResult> {
    let started = Instant::now();
    let mut res = LoadResult::default();
    // Room for the send time: 8 bytes, or 16 hex digits in a text message.
    let size = o.size.max(if o.text { 16 } else { 8 });
    let (clients, mem) = open_all(&o, 256 << 10, &mut res, &progress).await?;
    let phase = Arc::new(AtomicU8::new(WARMUP));
    let base = Instant::now();
    let window_trend = SharedTrend::default();
    let mut set = JoinSet::new();
    for (c, started) in clients {
        let (phase, progress) = (phase.clone(), progress.clone());
        let hist = window_trend.batch();
        let payload = make_payload(size, o.text, &mut Rng::from_entropy());
        let opcode = if o.text { OpCode::Text } else { OpCode::Binary };
        let inflight = o.inflight;
        set.spawn(async move {
            let pipe = Pipe {
                opcode,
                payload,
                inflight,
                phase,
                base,
            };
            let mut t = pipelined_connection(c, pipe, &progress, hist).await;
            if t.failed {
                Progress::add(&progress.errors, 1);
            }
            progress.session_closed();
            t.session = started.elapsed();
            t
        });
    }
    window(&o, &phase, &mut res).await;
    collect(&mut set, &mut res).await;
    res.total_secs = started.elapsed().as_secs_f64();
    res.latency = window_trend.snapshot();
    res.k6.round_trip = res.latency.clone();
    finish_memory(mem, &mut res).await;
    Ok(res)
}

/// Writes the send time `ns` at the start of `payload` (at least 8 bytes, 16 for text): its
/// bytes, or for a text message (which must stay UTF-8) 16 hex digits.
fn stamp(payload: &mut [u8], ns: u64, text: bool) {
    if text {
        let digits = format!("{ns:016x}");
        payload[..16].copy_from_slice(digits.as_bytes());
    } else {
        payload[..8].copy_from_slice(&ns.to_le_bytes());
    }
}

/// The send time [`stamp`] wrote, from a received payload's first bytes.
fn read_stamp(head: &[u8], text: bool) -> Option<u64> {
    if text {
        let digits = std::str::from_utf8(head.get(..16)?).ok()?;
        u64::from_str_radix(digits, 16).ok()
    } else {
        Some(u64::from_le_bytes(head.get(..8)?.try_into().ok()?))
    }
}

/// What a pipelined connection sends, and when.
struct Pipe {
    opcode: OpCode,
    payload: Vec<u8>,
    inflight: usize,
    phase: Arc<AtomicU8>,
    /// The send times in payloads count from here.
    base: Instant,
}

/// One pipelined connection: a writer task and a reader (this task), then the close
/// handshake.
async fn pipelined_connection(
    c: LoadClient,
    pipe: Pipe,
    progress: &Arc<Progress>,
    mut hist: TrendBatch,
) -> TaskOut {
    let Pipe {
        opcode,
        mut payload,
        inflight,
        phase,
        base,
    } = pipe;
    let LoadClient {
        stream,
        mut reader,
        rng,
        wbuf,
    } = c;
    let (mut rd, wr) = Halves::split(stream).into_parts();
    let sem = Arc::new(Semaphore::new(inflight));
    let sent = Arc::new(AtomicU64::new(0));
    let writer_done = Arc::new(AtomicBool::new(false));

    let writer = {
        let (phase, sem, sent, done) = (
            phase.clone(),
            sem.clone(),
            sent.clone(),
            writer_done.clone(),
        );
        let progress = progress.clone();
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
                stamp(&mut payload, ts, opcode == OpCode::Text);
                for _ in 0..n {
                    encode_frame(&mut buf, opcode, &payload, &mut rng);
                }
                if wr.write_all(&buf).await.is_err() || wr.flush().await.is_err() {
                    ok = false;
                    break;
                }
                sent.fetch_add(n as u64, Relaxed);
                Progress::add(&progress.sent, n as u64);
            }
            done.store(true, Relaxed);
            // A ping after the last message: its pong wakes the reader if every echo is
            // already in.
            buf.clear();
            encode_frame(&mut buf, OpCode::Ping, b"end", &mut rng);
            if ok && (wr.write_all(&buf).await.is_err() || wr.flush().await.is_err()) {
                ok = false;
            }
            (wr, rng, ok)
        })
    };

    let mut t = TaskOut::default();
    loop {
        if writer_done.load(Relaxed) && t.received == sent.load(Relaxed) {
            break;
        }
        let f = match tokio::time::timeout(DRAIN_TIMEOUT, reader.read_frame(&mut rd)).await {
            Ok(Ok(f)) => f,
            _ => {
                t.failed = true;
                break;
            }
        };
        match f.opcode {
            OpCode::Text | OpCode::Binary => {
                t.received += 1;
                Progress::add(&progress.received, 1);
                sem.add_permits(1);
                let now = base.elapsed().as_nanos() as u64;
                if phase.load(Relaxed) == MEASURE {
                    let Some(ts) = read_stamp(f.head(), f.opcode == OpCode::Text) else {
                        t.failed = true;
                        break;
                    };
                    t.counted += 1;
                    hist.record_ns(now.saturating_sub(ts));
                }
            }
            OpCode::Pong | OpCode::Ping => {}
            _ => {
                t.failed = true;
                break;
            }
        }
    }
    // A failed reader leaves the writer waiting for permits: stop it.
    if t.failed {
        sem.close();
    }
    let (wr, rng, wok) = match writer.await {
        Ok(w) => w,
        Err(_) => {
            t.failed = true;
            return t;
        }
    };
    t.sent = sent.load(Relaxed);
    t.failed |= !wok;
    if !t.failed {
        match rd.reunite(wr) {
            Some(stream) => {
                let c = LoadClient {
                    stream,
                    reader,
                    rng,
                    wbuf: Vec::new(),
                };
                t.failed = !c.close(CLOSE_TIMEOUT).await;
            }
            None => t.failed = true,
        }
    }
    t
}

/// Handshakes: `conns` loops, each connecting, completing the opening handshake and the close
/// handshake, then starting over. `count` is completed sessions; latency is connect-to-close.
pub fn run_handshakes(o: &LoadOpts) -> io::Result<LoadResult> {
    runtime(o.client_threads)?.block_on(handshakes(o.clone(), Arc::new(Progress::new())))
}

async fn handshakes(o: LoadOpts, progress: Arc<Progress>) -> io::Result<LoadResult> {
    let started = Instant::now();
    o.check()?;
    let target = o.target.clone().resolve().await?;
    let mut res = LoadResult::default();
    let phase = Arc::new(AtomicU8::new(WARMUP));
    let trends = SharedK6::default();
    let window_trend = SharedTrend::default();
    let mut seeds = Rng::from_entropy();
    let mut set = JoinSet::new();
    for _ in 0..o.conns {
        let (phase, progress, target) = (phase.clone(), progress.clone(), target.clone());
        let mut rng = Rng::with_seed(seeds.next_u64());
        let mut mine = trends.task();
        let mut hist = window_trend.batch();
        set.spawn(async move {
            let mut t = TaskOut::default();
            let mut fails = 0u64;
            while phase.load(Relaxed) != STOP && fails < 100 {
                let t0 = Instant::now();
                let c = tokio::time::timeout(
                    CONNECT_TIMEOUT,
                    LoadClient::connect(&target, 4096, Rng::with_seed(rng.next_u64())),
                )
                .await;
                let Ok(Ok((c, _))) = c else {
                    fails += 1;
                    Progress::add(&progress.errors, 1);
                    continue;
                };
                mine.connecting.record(t0.elapsed());
                mine.counts.sessions += 1;
                progress.session_opened();
                let closed = c.close(CLOSE_TIMEOUT).await;
                progress.session_closed();
                let dt = t0.elapsed();
                mine.session.record(dt);
                if !closed {
                    fails += 1;
                    Progress::add(&progress.errors, 1);
                } else if phase.load(Relaxed) == MEASURE {
                    t.counted += 1;
                    hist.record(dt);
                }
            }
            t.failed = fails > 0;
            (t, mine.finish())
        });
    }
    window(&o, &phase, &mut res).await;
    let deadline = tokio::time::Instant::now() + DRAIN_TIMEOUT;
    let mut counts = Counts::default();
    loop {
        match tokio::time::timeout_at(deadline, set.join_next()).await {
            Ok(Some(Ok((t, c)))) => {
                res.count += t.counted;
                res.errors += u64::from(t.failed);
                counts.add(&c);
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
    res.k6 = trends.metrics(&counts);
    res.latency = window_trend.snapshot();
    res.peak_connections = progress.peak_open.load(Relaxed);
    res.total_secs = started.elapsed().as_secs_f64();
    Ok(res)
}

/// The k6 trends of a run, recorded into by all its tasks.
#[derive(Clone, Default)]
struct SharedK6 {
    connecting: SharedTrend,
    session: SharedTrend,
    round_trip: SharedTrend,
}

/// The k6 counters of one task.
#[derive(Debug, Clone, Copy, Default)]
struct Counts {
    sessions: u64,
    sent: u64,
    received: u64,
}

impl Counts {
    fn add(&mut self, o: &Counts) {
        self.sessions += o.sessions;
        self.sent += o.sent;
        self.received += o.received;
    }
}

/// One task's share of a [`SharedK6`]: batches and counters.
struct TaskK6 {
    connecting: TrendBatch,
    session: TrendBatch,
    round_trip: TrendBatch,
    counts: Counts,
}

impl TaskK6 {
    /// Hands the batches over to the shared trends; the counters are the caller's to add.
    fn finish(self) -> Counts {
        self.counts
    }
}

impl SharedK6 {
    fn task(&self) -> TaskK6 {
        TaskK6 {
            connecting: self.connecting.batch(),
            session: self.session.batch(),
            round_trip: self.round_trip.batch(),
            counts: Counts::default(),
        }
    }

    /// The metrics, once every task has finished (its batches dropped).
    fn metrics(&self, c: &Counts) -> K6Metrics {
        K6Metrics {
            connecting: self.connecting.snapshot(),
            session_duration: self.session.snapshot(),
            round_trip: self.round_trip.snapshot(),
            sessions: c.sessions,
            msgs_sent: c.sent,
            msgs_received: c.received,
        }
    }
}

/// Memory of idle connections, read from the server's RSS.
#[derive(Debug, Clone)]
#[non_exhaustive]
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
    target: &Target,
    n: usize,
    pid: u32,
    client_threads: usize,
) -> io::Result<IdleResult> {
    runtime(client_threads)?.block_on(idle(target.clone(), n, pid))
}

async fn idle(target: Target, n: usize, pid: u32) -> io::Result<IdleResult> {
    if n == 0 || n > MAX_CONNECTIONS {
        return Err(invalid_input(format!(
            "connections must be 1 to {MAX_CONNECTIONS}"
        )));
    }
    let target = target.resolve().await?;
    let progress = Arc::new(Progress::new());
    let mut k6 = K6Metrics::default();
    let mut errors = 0;
    // Warm up: let every lazily allocated per-thread buffer exist before the first reading.
    {
        let mut scratch = K6Metrics::default();
        let mut e = 0;
        for (mut c, _) in connect_many(&target, 4, 4096, &mut scratch, &mut e, &progress).await {
            let _ = c.send(OpCode::Binary, &[1u8; 16]).await;
            let _ = c.recv_data().await;
            let _ = c.close(CLOSE_TIMEOUT).await;
        }
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    let rss_before = sys::rss_bytes(pid)?;
    let clients = connect_many(&target, n, 4096, &mut k6, &mut errors, &progress).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let rss_open = sys::rss_bytes(pid)?;
    let mut set = JoinSet::new();
    let sem = Arc::new(Semaphore::new(256));
    for (mut c, t0) in clients {
        let sem = sem.clone();
        set.spawn(async move {
            let _p = sem.acquire_owned().await;
            let ok = c.send(OpCode::Binary, &[7u8; 16]).await.is_ok()
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
    let rss_used = sys::rss_bytes(pid)?;
    let opened = used.len();
    // Drop them all (the server sees EOF); record the session lengths first.
    for (_, t0) in &used {
        k6.session_duration.record(t0.elapsed());
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

/// Settings of the k6-style scenario ([`run_k6`]).
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct K6Scenario {
    /// The server (keep it one you run).
    pub target: Target,
    /// Virtual users at the end of the ramp. Default 100, at most [`MAX_CONNECTIONS`].
    pub vus: usize,
    /// Time over which the users start, evenly spread. Default 10 s.
    pub ramp: Duration,
    /// Whole scenario length, ramp included; sessions still open then are closed. Default
    /// 30 s.
    pub duration: Duration,
    /// Length of one session; a user starts a new session after each one ends. Default 10 s.
    pub session: Duration,
    /// Shortest and longest pause between a session's messages (uniformly random). Default
    /// 1 to 3 s.
    pub interval: (Duration, Duration),
    /// Message size (text). Default 64 bytes.
    pub size: usize,
    /// The server process, for its CPU time and memory.
    pub server_pid: Option<u32>,
    /// Client runtime threads. Default 1.
    pub client_threads: usize,
}

impl K6Scenario {
    /// The defaults for `target`: 100 users ramped over 10 s, 30 s in all, sessions of 10 s,
    /// a 64-byte message every 1 to 3 s.
    pub fn new(target: Target) -> K6Scenario {
        K6Scenario {
            target,
            vus: 100,
            ramp: Duration::from_secs(10),
            duration: Duration::from_secs(30),
            session: Duration::from_secs(10),
            interval: (Duration::from_secs(1), Duration::from_secs(3)),
            size: 64,
            server_pid: None,
            client_threads: 1,
        }
    }

    /// Sets [`vus`](Self::vus).
    pub fn with_vus(mut self, vus: usize) -> Self {
        self.vus = vus;
        self
    }

    /// Sets [`ramp`](Self::ramp).
    pub fn with_ramp(mut self, d: Duration) -> Self {
        self.ramp = d;
        self
    }

    /// Sets [`duration`](Self::duration).
    pub fn with_duration(mut self, d: Duration) -> Self {
        self.duration = d;
        self
    }

    /// Sets [`session`](Self::session).
    pub fn with_session(mut self, d: Duration) -> Self {
        self.session = d;
        self
    }

    /// Sets [`interval`](Self::interval).
    pub fn with_interval(mut self, min: Duration, max: Duration) -> Self {
        self.interval = (min, max);
        self
    }

    /// Sets [`size`](Self::size).
    pub fn with_size(mut self, bytes: usize) -> Self {
        self.size = bytes;
        self
    }

    /// Sets [`server_pid`](Self::server_pid).
    pub fn with_server_pid(mut self, pid: Option<u32>) -> Self {
        self.server_pid = pid;
        self
    }

    /// Sets [`client_threads`](Self::client_threads).
    pub fn with_client_threads(mut self, n: usize) -> Self {
        self.client_threads = n;
        self
    }

    fn check(&self) -> io::Result<()> {
        if self.vus == 0 || self.vus > MAX_CONNECTIONS {
            return Err(invalid_input(format!(
                "virtual users must be 1 to {MAX_CONNECTIONS}"
            )));
        }
        if self.ramp > self.duration {
            return Err(invalid_input("the ramp cannot be longer than the scenario"));
        }
        if self.session.is_zero() || self.duration.is_zero() {
            return Err(invalid_input("sessions and the scenario need a length"));
        }
        if self.interval.0 > self.interval.1 || self.interval.0.is_zero() {
            return Err(invalid_input(
                "the pause between messages must be above zero, its minimum at most its maximum",
            ));
        }
        if self.size > 64 << 20 {
            return Err(invalid_input("messages are at most 64 MiB"));
        }
        Ok(())
    }
}

/// Runs the scenario: user `i` of N starts at `ramp * i / N`; each of its sessions connects,
/// sends a text message after a pause of 1 to 3 s (uniformly random), reads its echo, and
/// so on until `session` has passed; then it closes (close handshake) and the user starts a
/// new session, until the scenario ends. `count` is echoed messages, latency their round
/// trips.
pub fn run_k6(s: &K6Scenario) -> io::Result<LoadResult> {
    run_k6_with(s, &Arc::new(Progress::new()))
}

/// [`run_k6`], updating `progress` as it goes.
pub fn run_k6_with(s: &K6Scenario, progress: &Arc<Progress>) -> io::Result<LoadResult> {
    runtime(s.client_threads)?.block_on(k6(s.clone(), progress.clone()))
}

async fn k6(s: K6Scenario, progress: Arc<Progress>) -> io::Result<LoadResult> {
    s.check()?;
    let target = s.target.clone().resolve().await?;
    let mut res = LoadResult::default();
    let rss_before = s.server_pid.and_then(|p| sys::rss_bytes(p).ok());
    let stop = Arc::new(AtomicBool::new(false));
    let sampler = spawn_rss_sampler(s.server_pid, stop.clone());
    let start = tokio::time::Instant::now();
    let end = start + s.duration;
    let before = CpuTimes::take(s.server_pid);
    let mut seeds = Rng::from_entropy();
    let payload: Arc<[u8]> = make_payload(s.size, true, &mut Rng::from_entropy()).into();
    let (lo, hi) = (s.interval.0.as_secs_f64(), s.interval.1.as_secs_f64());
    let trends = SharedK6::default();
    let mut set = JoinSet::new();
    for i in 0..s.vus {
        let at = start + s.ramp.mul_f64(i as f64 / s.vus as f64);
        let mut rng = Rng::with_seed(seeds.next_u64());
        let (payload, target, progress) = (payload.clone(), target.clone(), progress.clone());
        let session = s.session;
        let mut m = trends.task();
        set.spawn(async move {
            let mut errors = 0u64;
            tokio::time::sleep_until(at).await;
            Progress::add(&progress.vus, 1);
            // A session needs time for at least its connect and one message.
            while end.saturating_duration_since(tokio::time::Instant::now())
                > Duration::from_secs(1)
            {
                let t0 = tokio::time::Instant::now();
                let c = tokio::time::timeout_at(
                    end.min(t0 + CONNECT_TIMEOUT),
                    LoadClient::connect(&target, 4096, Rng::with_seed(rng.next_u64())),
                )
                .await;
                let Ok(Ok((mut c, _))) = c else {
                    errors += 1;
                    Progress::add(&progress.errors, 1);
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                };
                m.connecting.record(t0.elapsed());
                m.counts.sessions += 1;
                progress.session_opened();
                let session_end = (t0 + session).min(end);
                let mut ok = true;
                loop {
                    let pause = Duration::from_secs_f64(lo + (hi - lo) * rng.next_f64());
                    let next = tokio::time::Instant::now() + pause;
                    if next >= session_end {
                        break;
                    }
                    tokio::time::sleep_until(next).await;
                    let t1 = Instant::now();
                    if c.send(OpCode::Text, &payload).await.is_err() {
                        ok = false;
                        break;
                    }
                    m.counts.sent += 1;
                    Progress::add(&progress.sent, 1);
                    match tokio::time::timeout_at(end + Duration::from_secs(5), c.recv_data()).await
                    {
                        Ok(Ok(f)) if f.len as usize == payload.len() => {
                            m.counts.received += 1;
                            Progress::add(&progress.received, 1);
                            m.round_trip.record(t1.elapsed());
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
                progress.session_closed();
                if !ok {
                    errors += 1;
                    Progress::add(&progress.errors, 1);
                }
                m.session.record(t0.elapsed());
            }
            (m.finish(), errors)
        });
    }
    let deadline = end + Duration::from_secs(15);
    let mut counts = Counts::default();
    loop {
        match tokio::time::timeout_at(deadline, set.join_next()).await {
            Ok(Some(Ok((c, errors)))) => {
                counts.add(&c);
                res.errors += errors;
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
    res.k6 = trends.metrics(&counts);
    res.latency = res.k6.round_trip.clone();
    res.secs = start.elapsed().as_secs_f64();
    res.total_secs = res.secs;
    res.count = res.k6.msgs_received;
    res.peak_connections = progress.peak_open.load(Relaxed);
    before.store_delta(&CpuTimes::take(s.server_pid), &mut res);
    let mem = match (rss_before, sampler) {
        (Some(b), Some(s)) => Some((b, stop, s)),
        _ => {
            stop.store(true, Relaxed);
            None
        }
    };
    finish_memory(mem, &mut res).await;
    Ok(res)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn send_times_ride_in_payloads() {
        for text in [false, true] {
            let mut p = make_payload(20, text, &mut Rng::with_seed(3));
            stamp(&mut p, 0x0123_4567_89ab_cdef, text);
            assert_eq!(read_stamp(&p[..16], text), Some(0x0123_4567_89ab_cdef));
            if text {
                // A text message stays UTF-8.
                assert!(std::str::from_utf8(&p).is_ok());
            }
        }
        assert_eq!(read_stamp(b"short", true), None);
        assert_eq!(read_stamp(b"not hex digits!!", true), None);
        assert_eq!(read_stamp(&[1, 2, 3], false), None);
    }
}
