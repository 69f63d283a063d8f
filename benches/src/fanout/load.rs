//! The fan-out load generator: one publisher connection (on a thread and runtime of its own,
//! so that reading subscribers never delays publishing) and many subscriber connections in
//! this process.
//!
//! A run: the publisher connects, the server's RSS is read (`rss_base`); the subscribers
//! connect, 64 handshakes at a time, offering `permessage-deflate; client_max_window_bits`
//! (what browsers offer) when asked; warm-up messages go out one at a time until every
//! reading subscriber has had three (which also proves each is subscribed), and the RSS is
//! read again
//! (`rss_first`: after the first messages, when compressors exist). Then the measured phase:
//! the publisher sends at a steady rate or in bursts for the duration; every subscriber checks
//! that sequence numbers follow each other and records the delivery latency of each message
//! from the send time in its payload (one clock: `Instant` in this process). The window ends
//! when every reading subscriber has the last message, or at the drain limit. Server CPU
//! (utime + stime from `/proc/<pid>/stat`) is read at both ends of the window. Every loop is
//! bounded in time. The server's CPU time is read to the nanosecond
//! ([`procfs::cpu_time_fine_ns`]: its threads' schedstat), since a cell may use only a few
//! 10 ms clock ticks of it.
//!
//! Stalled subscribers connect and subscribe like the others but never read a byte.

use std::cell::RefCell;
use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, AtomicUsize, Ordering::SeqCst};
use std::time::{Duration, Instant};

use tokio::io::AsyncWriteExt;
use tokio::sync::{Semaphore, mpsc, oneshot, watch};
use tokio::task::JoinSet;
use zlib_rs::{Inflate, InflateFlush, Status};

use super::{BODIES, PUB_PATH, SUB_PATH, bodies, elapsed_mod, read_stamp, stamp};
use ws_proto::frame::{OpCode, RSV1};
use ws_tokio::load::{
    CpuTimes, HEAD, LoadClient, Rng, SharedTrend, Target, Trend, TrendBatch, encode_frame, runtime,
};

use crate::procfs;
use crate::stats::fmt_ns;

/// What browsers offer.
pub const DEFLATE_OFFER: &str = "permessage-deflate; client_max_window_bits";
/// Handshakes in flight at once.
const CONNECT_CONCURRENCY: usize = 64;
/// Limit on one connect + handshake.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(20);
/// Limit on the warm-up (every reading subscriber has a message).
const WARMUP_LIMIT: Duration = Duration::from_secs(60);
/// Longest wait for one warm-up message.
const WARM_STEP_LIMIT: Duration = Duration::from_secs(10);
/// Limit on collecting the subscribers' reports.
const COLLECT_LIMIT: Duration = Duration::from_secs(20);

/// How the publisher sends in the measured phase.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Pattern {
    /// `rate` messages per second, evenly spaced.
    Steady {
        /// Messages per second.
        rate: f64,
    },
    /// `count` messages in one write, every `period`.
    Burst {
        /// Messages per burst.
        count: usize,
        /// Time between bursts.
        period: Duration,
    },
}

/// Settings of one run.
#[derive(Debug, Clone)]
pub struct FanoutOpts {
    /// The server (loopback).
    pub addr: SocketAddr,
    /// Subscriber connections, stalled ones included.
    pub subscribers: usize,
    /// Of those, how many never read.
    pub stalled: usize,
    /// Payload size in bytes (at least 16).
    pub size: usize,
    /// Subscribers offer permessage-deflate.
    pub deflate: bool,
    /// The measured phase's sending.
    pub pattern: Pattern,
    /// Length of the measured publishing.
    pub duration: Duration,
    /// Longest wait after publishing for the last deliveries.
    pub drain: Duration,
    /// The server process (CPU time, RSS).
    pub server_pid: Option<u32>,
    /// Runtime threads for the subscribers (1: current-thread).
    pub client_threads: usize,
}

/// What one run measured.
#[derive(Debug, Clone)]
pub struct FanoutResult {
    /// Subscribers connected (stalled ones included).
    pub subscribers: usize,
    /// Stalled subscribers among them.
    pub stalled: usize,
    /// Subscribers whose connection agreed permessage-deflate.
    pub compressed: usize,
    /// Messages published in the measured phase.
    pub published: u64,
    /// Measured messages delivered to reading subscribers.
    pub delivered: u64,
    /// Measured messages a reading subscriber never got (by the end of the drain).
    pub lost: u64,
    /// Messages that came twice or out of order.
    pub disorder: u64,
    /// Failed connections, broken connections, bad frames.
    pub errors: u64,
    /// Delivery latency of measured messages.
    pub latency: Trend,
    /// The measured window (first measured send to the last delivery), seconds.
    pub secs: f64,
    /// Every reading subscriber had the last message before the drain limit.
    pub drained: bool,
    /// Server CPU time over the window, nanoseconds.
    pub server_cpu_ns: Option<u64>,
    /// This process's CPU time over the window, nanoseconds.
    pub client_cpu_ns: Option<u64>,
    /// Machine busy time over the window, nanoseconds.
    pub system_busy_ns: Option<u64>,
    /// Server RSS with only the publisher connected, bytes.
    pub rss_base: u64,
    /// Server RSS after the subscribers' first messages, bytes.
    pub rss_first: u64,
    /// Highest server RSS sampled during the window, bytes.
    pub rss_peak: u64,
    /// Server RSS at the end of the window, bytes.
    pub rss_end: u64,
}

impl FanoutResult {
    /// Measured deliveries per second.
    pub fn rate(&self) -> f64 {
        if self.secs > 0.0 {
            self.delivered as f64 / self.secs
        } else {
            0.0
        }
    }

    /// Server CPU nanoseconds per delivered message (`NaN` when none was delivered or the
    /// server's CPU time did not reach one clock tick).
    pub fn cpu_per_delivery_ns(&self) -> f64 {
        match self.server_cpu_ns {
            Some(c) if self.delivered > 0 && c > 0 => c as f64 / self.delivered as f64,
            _ => f64::NAN,
        }
    }

    /// Latency quantile `q`, nanoseconds (`NaN` without samples).
    pub fn quantile_ns(&self, q: f64) -> f64 {
        if self.latency.is_empty() {
            f64::NAN
        } else {
            self.latency.quantile(q).as_nanos() as f64
        }
    }

    /// Server RSS per subscriber after the first messages, bytes.
    pub fn rss_per_subscriber(&self) -> f64 {
        self.rss_first.saturating_sub(self.rss_base) as f64 / self.subscribers.max(1) as f64
    }

    /// How much the server grew during the window (peak over the level after the first
    /// messages), bytes.
    pub fn rss_growth(&self) -> u64 {
        self.rss_peak
            .max(self.rss_end)
            .saturating_sub(self.rss_first)
    }

    /// CPU cores busy with other processes during the window.
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
            "{:.0} deliveries/s ({} of {} msgs x {} readers in {:.2}s) cpu/delivery={} \
             p50={} p99={} lost={} disorder={} errors={} rss/sub={:.0} B growth={:.1} MiB \
             deflate={}/{} bg={:.2}{}",
            self.rate(),
            self.delivered,
            self.published,
            self.subscribers - self.stalled,
            self.secs,
            fmt_ns(self.cpu_per_delivery_ns()),
            fmt_ns(self.quantile_ns(0.5)),
            fmt_ns(self.quantile_ns(0.99)),
            self.lost,
            self.disorder,
            self.errors,
            self.rss_per_subscriber(),
            self.rss_growth() as f64 / 1048576.0,
            self.compressed,
            self.subscribers,
            self.background_cores(),
            if self.drained { "" } else { " NOT DRAINED" }
        )
    }
}

/// Runs one fan-out measurement against the server at `o.addr`.
pub fn run_fanout(o: &FanoutOpts) -> io::Result<FanoutResult> {
    runtime(o.client_threads)?.block_on(fanout(o.clone()))
}

/// Server RSS (0 when it can't be read).
fn rss(pid: Option<u32>) -> u64 {
    pid.and_then(|p| procfs::rss_bytes(p).ok()).unwrap_or(0)
}

/// Shared between the subscribers and the driver.
struct Shared {
    /// First measured sequence number (`u32::MAX` until the measured phase).
    measure_from: AtomicU32,
    /// Last measured sequence number (`u32::MAX` until the publisher is done).
    last: AtomicU32,
    /// The warm-up message being waited for.
    warm: AtomicU32,
    /// Reading subscribers that have the warm-up message `warm` (or a later one).
    warmed: AtomicUsize,
    /// Reading subscribers with the last message.
    done: AtomicUsize,
    /// The clock of send times.
    base: Instant,
}

impl Shared {
    fn now_ns(&self) -> u64 {
        self.base.elapsed().as_nanos() as u64
    }
}

/// A subscriber's report (its latencies went into the run's [`SharedTrend`]).
struct SubOut {
    /// Measured messages received.
    measured: u64,
    disorder: u64,
    failed: bool,
}

/// What the publisher thread is asked to do.
enum Cmd {
    /// Send one message with this sequence number.
    One(u32),
    /// The measured phase from this sequence number; answers with the last one sent.
    Run(u32, Pattern, Duration, oneshot::Sender<io::Result<u32>>),
}

/// The publisher: a connection on a thread and runtime of its own.
struct Publisher {
    cmds: mpsc::UnboundedSender<Cmd>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Publisher {
    fn start(addr: SocketAddr, size: usize, base: Instant) -> io::Result<Publisher> {
        let (cmds, mut rx) = mpsc::unbounded_channel::<Cmd>();
        let (ready_tx, ready_rx) = std::sync::mpsc::channel::<io::Result<()>>();
        let thread = std::thread::Builder::new()
            .name("publisher".into())
            .spawn(move || {
                let rt = match runtime(1) {
                    Ok(rt) => rt,
                    Err(e) => {
                        let _ = ready_tx.send(Err(e));
                        return;
                    }
                };
                rt.block_on(async move {
                    let mut rng = Rng::from_entropy();
                    let c = tokio::time::timeout(
                        CONNECT_TIMEOUT,
                        LoadClient::connect(&target(addr, PUB_PATH, None), 4096, rng.clone()),
                    )
                    .await;
                    let mut c = match c {
                        Ok(Ok((c, _))) => c,
                        Ok(Err(e)) => {
                            let _ = ready_tx.send(Err(e));
                            return;
                        }
                        Err(_) => {
                            let _ = ready_tx.send(Err(io::ErrorKind::TimedOut.into()));
                            return;
                        }
                    };
                    let _ = ready_tx.send(Ok(()));
                    let bodies = bodies(size, BODIES, &mut rng);
                    let mut scratch = Vec::new();
                    let mut out = Vec::new();
                    let mut encode = |out: &mut Vec<u8>, seq: u32, rng: &mut Rng| {
                        scratch.clear();
                        scratch.extend_from_slice(&bodies[seq as usize % BODIES]);
                        stamp(&mut scratch, seq, base.elapsed().as_nanos() as u64);
                        encode_frame(out, OpCode::Text, &scratch, rng);
                    };
                    while let Some(cmd) = rx.recv().await {
                        match cmd {
                            Cmd::One(seq) => {
                                out.clear();
                                encode(&mut out, seq, &mut c.rng);
                                if c.stream.write_all(&out).await.is_err() {
                                    return;
                                }
                            }
                            Cmd::Run(from, pattern, duration, reply) => {
                                let r = run_pattern(
                                    &mut c,
                                    &mut out,
                                    &mut encode,
                                    from,
                                    pattern,
                                    duration,
                                )
                                .await;
                                let _ = reply.send(r);
                            }
                        }
                    }
                });
            })?;
        match ready_rx.recv() {
            Ok(Ok(())) => Ok(Publisher {
                cmds,
                thread: Some(thread),
            }),
            Ok(Err(e)) => Err(e),
            Err(_) => Err(io::Error::other("publisher thread ended")),
        }
    }
}

impl Drop for Publisher {
    fn drop(&mut self) {
        // Closing the channel ends the thread's loop and its connection.
        let (tx, _) = mpsc::unbounded_channel();
        drop(std::mem::replace(&mut self.cmds, tx));
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// Sends the measured phase; returns the last sequence number sent.
async fn run_pattern(
    c: &mut LoadClient,
    out: &mut Vec<u8>,
    encode: &mut impl FnMut(&mut Vec<u8>, u32, &mut Rng),
    from: u32,
    pattern: Pattern,
    duration: Duration,
) -> io::Result<u32> {
    let start = tokio::time::Instant::now();
    let mut seq = from;
    let (interval, per_tick, ticks) = schedule(pattern, duration);
    for tick in 0..ticks {
        tokio::time::sleep_until(start + interval * tick).await;
        out.clear();
        for _ in 0..per_tick {
            encode(out, seq, &mut c.rng);
            seq += 1;
        }
        c.stream.write_all(out).await?;
    }
    Ok(seq - 1)
}

/// The measured phase's sending: `(interval, messages per tick, ticks)`; at least one tick,
/// and every tick starts before `duration` is over.
fn schedule(pattern: Pattern, duration: Duration) -> (Duration, usize, u32) {
    let (interval, per_tick) = match pattern {
        Pattern::Steady { rate } => (Duration::from_secs_f64(1.0 / rate.max(1e-3)), 1),
        Pattern::Burst { count, period } => (period.max(Duration::from_millis(1)), count.max(1)),
    };
    let ticks = (duration.as_secs_f64() / interval.as_secs_f64())
        .ceil()
        .max(1.0) as u32;
    (interval, per_tick, ticks)
}

thread_local! {
    /// Where inflated bytes go (only the first ones of each message are kept).
    static SCRATCH: RefCell<Vec<u8>> = RefCell::new(vec![0u8; 64 << 10]);
}

/// The message being received: its first bytes (inflated if compressed).
struct Assembly {
    head: [u8; HEAD],
    got: usize,
    started: bool,
    compressed: bool,
    bad: bool,
}

impl Assembly {
    fn keep(&mut self, bytes: &[u8]) {
        if self.got < HEAD {
            let k = bytes.len().min(HEAD - self.got);
            self.head[self.got..self.got + k].copy_from_slice(&bytes[..k]);
            self.got += k;
        }
    }

    /// Inflates `input` with `inf`, keeping the first output bytes.
    fn inflate(&mut self, inf: &mut Inflate, input: &[u8]) {
        SCRATCH.with(|s| {
            let mut s = s.borrow_mut();
            let mut rest = input;
            loop {
                let (in0, out0) = (inf.total_in(), inf.total_out());
                let r = inf.decompress(rest, &mut s[..], InflateFlush::SyncFlush);
                let used = (inf.total_in() - in0) as usize;
                let made = (inf.total_out() - out0) as usize;
                self.keep(&s[..made]);
                rest = &rest[used..];
                match r {
                    Ok(Status::StreamEnd) => {
                        inf.reset(false);
                        if rest.is_empty() {
                            return;
                        }
                    }
                    Ok(_) if rest.is_empty() && made < s.len() => return,
                    Ok(_) if used == 0 && made == 0 => {
                        self.bad = true;
                        return;
                    }
                    Ok(_) => {}
                    Err(_) => {
                        self.bad = true;
                        return;
                    }
                }
            }
        });
    }
}

/// One reading subscriber until `stop`.
async fn subscriber(
    mut c: LoadClient,
    compressed: bool,
    shared: Arc<Shared>,
    mut stop: watch::Receiver<bool>,
    mut hist: TrendBatch,
) -> SubOut {
    let mut out = SubOut {
        measured: 0,
        disorder: 0,
        failed: false,
    };
    let mut inflater = compressed.then(|| Box::new(Inflate::new(false, 15)));
    let mut prev: Option<u32> = None;
    let mut a = Assembly {
        head: [0; HEAD],
        got: 0,
        started: false,
        compressed: false,
        bad: false,
    };
    loop {
        let LoadClient { stream, reader, .. } = &mut c;
        let frame = tokio::select! {
            biased;
            _ = stop.changed() => break,
            f = reader.read_frame_with(stream, |h, chunk| {
                if h.opcode.is_control() {
                    return;
                }
                if !a.started {
                    a.started = true;
                    a.compressed = h.rsv & RSV1 != 0;
                }
                match (&mut inflater, a.compressed) {
                    (Some(inf), true) => a.inflate(inf, chunk),
                    _ => a.keep(chunk),
                }
            }) => f,
        };
        let f = match frame {
            Ok(f) => f,
            Err(_) => {
                out.failed = true;
                break;
            }
        };
        match f.opcode {
            OpCode::Text | OpCode::Binary | OpCode::Continuation => {}
            OpCode::Ping | OpCode::Pong => continue,
            OpCode::Close => {
                out.failed = true;
                break;
            }
        }
        if f.len == 0 && !a.started {
            a.started = true;
        }
        if !f.fin {
            continue;
        }
        if a.compressed {
            match &mut inflater {
                Some(inf) => a.inflate(inf, &[0, 0, 0xff, 0xff]),
                None => a.bad = true,
            }
        }
        let stamp = (!a.bad).then(|| read_stamp(&a.head[..a.got])).flatten();
        a.started = false;
        a.got = 0;
        let Some((seq, ts)) = stamp else {
            out.failed = true;
            break;
        };
        let warm = shared.warm.load(SeqCst);
        if seq >= warm && prev.is_none_or(|p| p < warm) {
            shared.warmed.fetch_add(1, SeqCst);
        }
        if prev.is_some_and(|p| seq <= p) {
            out.disorder += 1;
        }
        prev = Some(prev.map_or(seq, |p| p.max(seq)));
        if seq >= shared.measure_from.load(SeqCst) {
            out.measured += 1;
            hist.record_ns(elapsed_mod(ts, shared.now_ns()));
            if seq == shared.last.load(SeqCst) {
                shared.done.fetch_add(1, SeqCst);
            }
        }
    }
    hist.flush();
    out
}

/// Where the publisher and the subscribers connect: `path` on `addr`, offering `extensions`.
fn target(addr: SocketAddr, path: &str, extensions: Option<&str>) -> Target {
    Target::from_addr(addr)
        .with_path(path)
        .with_extensions(extensions.map(str::to_string))
}

async fn fanout(o: FanoutOpts) -> io::Result<FanoutResult> {
    let base = Instant::now();
    let publisher = Publisher::start(o.addr, o.size, base)?;
    tokio::time::sleep(Duration::from_millis(200)).await;
    let rss_base = rss(o.server_pid);

    // Subscribers.
    let read_cap = (o.size * 4).clamp(16 << 10, 64 << 10);
    let offer = o.deflate.then_some(DEFLATE_OFFER);
    let sem = Arc::new(Semaphore::new(CONNECT_CONCURRENCY));
    let mut seeds = Rng::from_entropy();
    let mut connecting = JoinSet::new();
    for _ in 0..o.subscribers {
        let sem = sem.clone();
        let rng = Rng::with_seed(seeds.next_u64());
        let addr = o.addr;
        connecting.spawn(async move {
            let _permit = sem.acquire_owned().await;
            tokio::time::timeout(
                CONNECT_TIMEOUT,
                LoadClient::connect(&target(addr, SUB_PATH, offer), read_cap, rng),
            )
            .await
        });
    }
    let mut clients = Vec::with_capacity(o.subscribers);
    let mut errors = 0u64;
    let mut compressed = 0usize;
    while let Some(r) = connecting.join_next().await {
        match r {
            Ok(Ok(Ok((c, agreed)))) => {
                let z = agreed
                    .extensions
                    .is_some_and(|e| e.contains("permessage-deflate"));
                compressed += z as usize;
                clients.push((c, z));
            }
            _ => errors += 1,
        }
    }
    if clients.is_empty() {
        return Err(io::Error::new(
            io::ErrorKind::ConnectionRefused,
            "no subscriber could connect",
        ));
    }
    let subscribers = clients.len();
    let stalled = o.stalled.min(subscribers);
    let reading = subscribers - stalled;
    let shared = Arc::new(Shared {
        measure_from: AtomicU32::new(u32::MAX),
        last: AtomicU32::new(u32::MAX),
        warm: AtomicU32::new(0),
        warmed: AtomicUsize::new(0),
        done: AtomicUsize::new(0),
        base,
    });
    let (stop_tx, stop_rx) = watch::channel(false);
    let latency = SharedTrend::default();
    let mut readers = JoinSet::new();
    let mut idle = Vec::with_capacity(stalled);
    for (i, (c, z)) in clients.into_iter().enumerate() {
        if i < stalled {
            // Never read: the connection is only held open.
            idle.push(c);
        } else {
            readers.spawn(subscriber(
                c,
                z,
                shared.clone(),
                stop_rx.clone(),
                latency.batch(),
            ));
        }
    }

    // Warm-up: one message at a time, each once every reader has the one before (so a slow
    // server is never flooded), until every reader has had three.
    let mut seq = 0u32;
    let mut complete = 0;
    let warm_start = Instant::now();
    while complete < 3 && warm_start.elapsed() < WARMUP_LIMIT {
        shared.warmed.store(0, SeqCst);
        shared.warm.store(seq, SeqCst);
        let _ = publisher.cmds.send(Cmd::One(seq));
        seq += 1;
        let sent = Instant::now();
        // A subscriber a server registers only after its handshake may miss the first ones.
        while shared.warmed.load(SeqCst) < reading
            && sent.elapsed() < WARM_STEP_LIMIT
            && warm_start.elapsed() < WARMUP_LIMIT
        {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        if shared.warmed.load(SeqCst) >= reading {
            complete += 1;
        }
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    let rss_first = rss(o.server_pid);

    // Measured phase.
    shared.measure_from.store(seq, SeqCst);
    let (_, per_tick, ticks) = schedule(o.pattern, o.duration);
    let expect_last = seq + (per_tick as u32 * ticks) - 1;
    shared.last.store(expect_last, SeqCst);
    let cpu0 = CpuTimes::take(o.server_pid);
    let fine0 = o.server_pid.and_then(|p| procfs::cpu_time_fine_ns(p).ok());
    let t0 = Instant::now();
    let (reply_tx, reply_rx) = oneshot::channel();
    let _ = publisher
        .cmds
        .send(Cmd::Run(seq, o.pattern, o.duration, reply_tx));
    let mut rss_peak = rss_first;
    let mut reply_rx = reply_rx;
    let last = loop {
        tokio::select! {
            r = &mut reply_rx => break r.map_err(|_| io::Error::other("publisher ended"))??,
            _ = tokio::time::sleep(Duration::from_millis(100)) => {
                rss_peak = rss_peak.max(rss(o.server_pid));
            }
        }
    };
    if last != expect_last {
        return Err(io::Error::other("the publisher sent an unexpected count"));
    }
    let published = u64::from(last - seq + 1);
    let drain_end = Instant::now() + o.drain;
    let mut polls = 0u32;
    let drained = loop {
        if shared.done.load(SeqCst) >= reading {
            break true;
        }
        if Instant::now() >= drain_end {
            break false;
        }
        tokio::time::sleep(Duration::from_millis(2)).await;
        polls += 1;
        if polls.is_multiple_of(50) {
            rss_peak = rss_peak.max(rss(o.server_pid));
        }
    };
    let secs = t0.elapsed().as_secs_f64();
    let cpu1 = CpuTimes::take(o.server_pid);
    let fine1 = o.server_pid.and_then(|p| procfs::cpu_time_fine_ns(p).ok());
    let rss_end = rss(o.server_pid);
    rss_peak = rss_peak.max(rss_end);

    // Stop and collect.
    let _ = stop_tx.send(true);
    let (mut delivered, mut disorder, mut lost) = (0u64, 0u64, 0u64);
    let deadline = tokio::time::Instant::now() + COLLECT_LIMIT;
    let mut collected = 0usize;
    loop {
        match tokio::time::timeout_at(deadline, readers.join_next()).await {
            Ok(Some(Ok(s))) => {
                collected += 1;
                delivered += s.measured;
                disorder += s.disorder;
                lost += published.saturating_sub(s.measured);
                errors += s.failed as u64;
            }
            Ok(Some(Err(_))) => errors += 1,
            Ok(None) => break,
            Err(_) => {
                errors += readers.len() as u64;
                readers.abort_all();
                break;
            }
        }
    }
    // Readers that never reported lost everything.
    lost += published * (reading.saturating_sub(collected)) as u64;
    drop(idle);
    drop(publisher);
    let d = |a: Option<u64>, b: Option<u64>| Some(b?.saturating_sub(a?));
    Ok(FanoutResult {
        subscribers,
        stalled,
        compressed,
        published,
        delivered,
        lost,
        disorder,
        errors,
        latency: latency.snapshot(),
        secs,
        drained,
        server_cpu_ns: d(fine0, fine1).or(d(cpu0.server, cpu1.server)),
        client_cpu_ns: d(cpu0.client, cpu1.client),
        system_busy_ns: d(cpu0.system, cpu1.system),
        rss_base,
        rss_first,
        rss_peak,
        rss_end,
    })
}
