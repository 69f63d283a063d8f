//! A `ws-tokio` server over an in-memory transport that misbehaves as the input says: short
//! reads and writes, spurious `Pending` (waking the waker), flushes that pend, and (when
//! enabled) I/O errors.
//!
//! The transport plays a fixed valid opening request (optionally offering permessage-deflate),
//! then a valid masked client frame stream generated from the input: text, binary (compressed
//! when deflate was agreed), fragmented messages with a ping between fragments, pings, pongs,
//! and optionally a close; then EOF or silence. The server is accepted with `ws_tokio::accept`
//! or `accept_with_config` (small write buffer), used whole or split into its halves, and driven
//! by hand with a no-op waker: `poll_recv`, `Sink::poll_ready` / `start_send` / `poll_flush`,
//! `recv()` / `send()` / `flush()` futures polled a few times and dropped (cancelled), and a
//! close of our own (`Message::Close` through the sink, or the write half's `close()` future).
//! Time is paused, so no timer fires. At the end the transport behaves and the connection is
//! drained.
//!
//! Invariants: no panic; the messages received are the client's messages in order, each once
//! and intact (all of them unless the transport failed; a prefix otherwise); the bytes the
//! server wrote are a 101 response followed by valid unmasked frames, the data messages among
//! them are the ones we queued, in order, each at most once and unchanged, every message
//! `start_send` accepted is there unless the transport failed, and none that it refused (nor
//! any sent after our close); pongs answer the client's pings in order, and without a close of
//! ours the last ping is answered; the one close frame is ours when we closed, else the echo of
//! the client's close with its code, and nothing follows it; the state only moves forward and
//! ends where the stream leads it (terminated, transport shut and `recv` ended cleanly after a
//! close handshake; terminated with `PeerVanished` after an EOF without one; still waiting
//! otherwise); nothing is read after EOF and nothing written after shutdown; the output stays
//! within a bound of what was queued.
#![no_main]

use std::future::{Future, poll_fn};
use std::io;
use std::pin::{Pin, pin};
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{Context, Poll, Waker};

use arbitrary::Arbitrary;
use futures_sink::Sink;
use libfuzzer_sys::fuzz_target;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use ws_proto::bytes::Bytes;
use ws_proto::deflate::{DeflateConfig, Negotiated, negotiate_server};
use ws_proto::{
    CloseCode, CloseFrame, Config, Connection, Event, FrameHeader, Limits, Message,
    MessageAssembler, OpCode, State,
};
use ws_tokio::{ReadHalf, WebSocket, WriteHalf};

const KEY: &str = "dGhlIHNhbXBsZSBub25jZQ==";
const ACCEPT: &str = "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=";

const OFFERS: [Option<&str>; 5] = [
    None,
    Some("permessage-deflate"),
    Some("permessage-deflate; client_max_window_bits"),
    Some("permessage-deflate; server_no_context_takeover; client_no_context_takeover"),
    Some("permessage-deflate; server_max_window_bits=9; client_max_window_bits=10"),
];

const BIG: Config = Config::DEFAULT
    .with_limits(
        Limits::DEFAULT
            .with_max_message_size(1 << 20)
            .with_max_frame_size(1 << 20)
            .with_max_fragments(64),
    )
    .with_ping_interval(None);

thread_local! {
    static RT: tokio::runtime::Runtime = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .start_paused(true)
        .build()
        .expect("runtime");
}

#[derive(Arbitrary, Debug)]
enum CMsg {
    Text(String),
    Binary(Vec<u8>),
    Ping(Vec<u8>),
    Pong(Vec<u8>),
    Fragmented {
        text: bool,
        data: Vec<u8>,
        cuts: Vec<u8>,
        ping_inside: Option<Vec<u8>>,
    },
}

#[derive(Arbitrary, Debug)]
enum SMsg {
    Text(String),
    Binary(Vec<u8>),
    Ping(Vec<u8>),
}

#[derive(Arbitrary, Debug)]
struct Input {
    offer: u8,
    default_config: bool,
    write_buffer: u16,
    errors: bool,
    eof_at_end: bool,
    client_close: bool,
    /// Use the connection through `split()` halves.
    split: bool,
    /// Our close code (0: a close frame without a code; not allowed on the wire: 1000).
    close_code: u16,
    seed: u64,
    client: Vec<CMsg>,
    server: Vec<SMsg>,
    script: Vec<u8>,
    actions: Vec<u8>,
}

/// The transport's state, shared with the test.
#[derive(Default)]
struct Shared {
    input: Vec<u8>,
    rpos: usize,
    written: Vec<u8>,
    script: Vec<u8>,
    spos: usize,
    errors: bool,
    /// Behave: no more misbehaviour.
    calm: bool,
    errored: bool,
    eof_at_end: bool,
    eof_delivered: bool,
    shut: bool,
}

impl Shared {
    fn op(&mut self) -> Option<u8> {
        if self.calm || self.spos >= self.script.len() {
            return None;
        }
        self.spos += 1;
        Some(self.script[self.spos - 1])
    }

    /// Spurious pending, an error, or a size for the operation.
    fn decide(&mut self, cx: &mut Context<'_>, full: usize) -> Result<usize, Poll<io::Error>> {
        match self.op() {
            None => Ok(full),
            Some(b) if b & 7 == 0 => {
                cx.waker().wake_by_ref();
                Err(Poll::Pending)
            }
            Some(b) if b & 7 == 1 && self.errors => {
                self.errored = true;
                Err(Poll::Ready(io::Error::other("injected")))
            }
            Some(b) => Ok((((b >> 3) as usize) << ((b & 3) * 3)).clamp(1, full.max(1))),
        }
    }
}

struct Transport(Arc<Mutex<Shared>>);

fn lock(s: &Mutex<Shared>) -> MutexGuard<'_, Shared> {
    s.lock().unwrap_or_else(|e| e.into_inner())
}

impl AsyncRead for Transport {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let mut s = lock(&self.0);
        // A connection that has seen the end of the stream reads no more.
        assert!(!s.eof_delivered, "read after EOF");
        let n = match s.decide(cx, usize::MAX) {
            Ok(n) => n,
            Err(Poll::Pending) => return Poll::Pending,
            Err(Poll::Ready(e)) => return Poll::Ready(Err(e)),
        };
        let left = s.input.len() - s.rpos;
        if left == 0 {
            if s.eof_at_end {
                s.eof_delivered = true;
                return Poll::Ready(Ok(()));
            }
            cx.waker().wake_by_ref();
            return Poll::Pending;
        }
        let n = n.min(left).min(buf.remaining());
        let start = s.rpos;
        buf.put_slice(&s.input[start..start + n]);
        s.rpos += n;
        Poll::Ready(Ok(()))
    }
}

impl AsyncWrite for Transport {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let mut s = lock(&self.0);
        assert!(!s.shut, "write after shutdown");
        let n = match s.decide(cx, buf.len()) {
            Ok(n) => n.min(buf.len()),
            Err(Poll::Pending) => return Poll::Pending,
            Err(Poll::Ready(e)) => return Poll::Ready(Err(e)),
        };
        s.written.extend_from_slice(&buf[..n]);
        Poll::Ready(Ok(n))
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let mut s = lock(&self.0);
        match s.decide(cx, 1) {
            Ok(_) => Poll::Ready(Ok(())),
            Err(Poll::Pending) => Poll::Pending,
            Err(Poll::Ready(e)) => Poll::Ready(Err(e)),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let mut s = lock(&self.0);
        match s.decide(cx, 1) {
            Ok(_) => {
                s.shut = true;
                Poll::Ready(Ok(()))
            }
            Err(Poll::Pending) => Poll::Pending,
            Err(Poll::Ready(e)) => Poll::Ready(Err(e)),
        }
    }
}

/// The client's byte stream and the messages the server must receive from it.
fn client_stream(input: &Input, deflate: Option<Negotiated>) -> (Vec<u8>, Vec<Message>) {
    let mut c = Connection::client(BIG, input.seed | 1, 0).unwrap();
    if let Some(mut n) = deflate {
        // The client compresses with a compressor of its own (the server's choice of a shared
        // one is its own local setting).
        n.shared_compressor = false;
        c.set_deflate(n);
    }
    let mut wire = Vec::new();
    let mut expect = Vec::new();
    let frame = |c: &mut Connection, wire: &mut Vec<u8>, op, fin, p: &[u8]| {
        let mut buf = vec![0u8; c.frame_len(p.len())];
        let n = c.encode_frame(op, fin, p, &mut buf).unwrap();
        wire.extend_from_slice(&buf[..n]);
    };
    for m in input.client.iter().take(32) {
        match m {
            CMsg::Text(s) => {
                c.encode_message(OpCode::Text, s.as_bytes(), &mut wire)
                    .unwrap();
                expect.push(Message::text(s.as_str()));
            }
            CMsg::Binary(b) => {
                c.encode_message(OpCode::Binary, b, &mut wire).unwrap();
                expect.push(Message::binary(b.clone()));
            }
            CMsg::Ping(p) => {
                let p = &p[..p.len().min(125)];
                frame(&mut c, &mut wire, OpCode::Ping, true, p);
                expect.push(Message::ping(p.to_vec()));
            }
            CMsg::Pong(p) => {
                let p = &p[..p.len().min(125)];
                frame(&mut c, &mut wire, OpCode::Pong, true, p);
                expect.push(Message::pong(p.to_vec()));
            }
            CMsg::Fragmented {
                text,
                data,
                cuts,
                ping_inside,
            } => {
                // Text fragments carry the bytes of a valid string.
                let data = if *text {
                    String::from_utf8_lossy(data).into_owned().into_bytes()
                } else {
                    data.clone()
                };
                let mut rest = &data[..];
                let mut first = true;
                let mut ping = ping_inside.as_ref();
                for &cut in cuts.iter().take(16) {
                    let n = (cut as usize).min(rest.len());
                    let (a, b) = rest.split_at(n);
                    let op = match (first, *text) {
                        (false, _) => OpCode::Continuation,
                        (true, true) => OpCode::Text,
                        (true, false) => OpCode::Binary,
                    };
                    frame(&mut c, &mut wire, op, false, a);
                    first = false;
                    rest = b;
                    if let Some(p) = ping.take() {
                        let p = &p[..p.len().min(125)];
                        frame(&mut c, &mut wire, OpCode::Ping, true, p);
                        expect.push(Message::ping(p.to_vec()));
                    }
                }
                let op = match (first, *text) {
                    (false, _) => OpCode::Continuation,
                    (true, true) => OpCode::Text,
                    (true, false) => OpCode::Binary,
                };
                frame(&mut c, &mut wire, op, true, rest);
                expect.push(if *text {
                    Message::text(String::from_utf8(data).unwrap())
                } else {
                    Message::binary(data)
                });
            }
        }
    }
    if input.client_close {
        c.close(0, Some(CloseCode::NORMAL), "bye").unwrap();
        let f = c.poll_transmit().expect("close frame");
        wire.extend_from_slice(f.as_bytes());
        expect.push(Message::Close(Some(CloseFrame::new(
            CloseCode::NORMAL,
            "bye",
        ))));
    }
    (wire, expect)
}

/// The server messages, tagged with their index so that each is unique.
fn server_messages(input: &Input) -> Vec<Message> {
    input
        .server
        .iter()
        .take(48)
        .enumerate()
        .map(|(i, m)| match m {
            SMsg::Text(s) => Message::text(format!("{i}:{s}")),
            SMsg::Binary(b) => {
                let mut v = (i as u32).to_be_bytes().to_vec();
                v.extend_from_slice(b);
                Message::binary(v)
            }
            SMsg::Ping(p) => {
                let mut v = vec![i as u8];
                v.extend_from_slice(&p[..p.len().min(124)]);
                Message::ping(v)
            }
        })
        .collect()
}

fn tag(m: &Message) -> usize {
    match m {
        Message::Text(s) => s.split(':').next().unwrap().parse().unwrap(),
        Message::Binary(b) => u32::from_be_bytes(b[..4].try_into().unwrap()) as usize,
        Message::Ping(p) => p[0] as usize,
        other => panic!("no tag in {other:?}"),
    }
}

/// Our close frame for the input.
fn our_close(input: &Input) -> Option<CloseFrame> {
    match input.close_code {
        0 => None,
        c if CloseCode(c).is_allowed_on_wire() => Some(CloseFrame::new(CloseCode(c), "srv")),
        _ => Some(CloseFrame::new(CloseCode::NORMAL, "srv")),
    }
}

#[derive(Clone, Copy, PartialEq, Debug)]
enum Fate {
    /// Not attempted, or refused.
    Never,
    /// Possibly queued (a cancelled or failed `send`).
    Maybe,
    /// Queued.
    Queued,
}

/// The order of the states: a connection only moves forward.
fn rank(s: State) -> u8 {
    match s {
        State::Open => 0,
        State::ClosedByUs => 1,
        State::ClosedByPeer => 2,
        State::CloseAcknowledged => 3,
        State::Terminated => 4,
        other => panic!("unknown state {other:?}"),
    }
}

type Recv = Poll<Option<Result<Message, ws_tokio::Error>>>;

/// The connection, whole or split.
enum Ws {
    Whole(WebSocket<Transport>),
    Split(WriteHalf<Transport>, ReadHalf<Transport>),
}

impl Ws {
    fn poll_recv(&mut self, cx: &mut Context<'_>) -> Recv {
        match self {
            Ws::Whole(ws) => ws.poll_recv(cx),
            Ws::Split(_, r) => r.poll_recv(cx),
        }
    }

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), ws_tokio::Error>> {
        match self {
            Ws::Whole(ws) => Pin::new(ws).poll_ready(cx),
            Ws::Split(w, _) => Pin::new(w).poll_ready(cx),
        }
    }

    fn start_send(&mut self, m: Message) -> Result<(), ws_tokio::Error> {
        match self {
            Ws::Whole(ws) => Pin::new(ws).start_send(m),
            Ws::Split(w, _) => Pin::new(w).start_send(m),
        }
    }

    fn poll_flush(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), ws_tokio::Error>> {
        match self {
            Ws::Whole(ws) => Pin::new(ws).poll_flush(cx),
            Ws::Split(w, _) => Pin::new(w).poll_flush(cx),
        }
    }

    /// The state, where it can be seen (a split connection's lives in its read half).
    fn state(&self) -> Option<State> {
        match self {
            Ws::Whole(ws) => Some(ws.state()),
            Ws::Split(..) => None,
        }
    }
}

/// Polls `f` up to `n` times.
fn poll_n<F: Future>(mut f: Pin<&mut F>, n: usize, cx: &mut Context<'_>) -> Poll<F::Output> {
    for _ in 0..n {
        if let Poll::Ready(r) = f.as_mut().poll(cx) {
            return Poll::Ready(r);
        }
    }
    Poll::Pending
}

struct Run {
    ws: Ws,
    received: Vec<Message>,
    /// `poll_recv` gave `None` or an error.
    recv_done: Option<Option<String>>,
    fates: Vec<Fate>,
    next: usize,
    msgs: Vec<Message>,
    /// Our close frame and whether it was sent.
    close: Option<CloseFrame>,
    close_fate: Fate,
    /// The state last seen.
    state: State,
}

impl Run {
    fn on_recv(&mut self, r: Recv) -> bool {
        match r {
            Poll::Pending => false,
            Poll::Ready(Some(Ok(m))) => {
                assert!(self.recv_done.is_none(), "message after the end");
                self.received.push(m);
                true
            }
            Poll::Ready(Some(Err(e))) => {
                self.recv_done = Some(Some(format!("{e:?}")));
                true
            }
            Poll::Ready(None) => {
                self.recv_done = Some(None);
                true
            }
        }
    }

    fn check_state(&mut self) {
        if let Some(s) = self.ws.state() {
            assert!(
                rank(s) >= rank(self.state),
                "state moved back from {:?} to {s:?}",
                self.state
            );
            self.state = s;
        }
    }

    fn step(&mut self, a: u8, cx: &mut Context<'_>) {
        let polls = ((a >> 3) & 3) as usize + 1;
        match a % 7 {
            0 => {
                if self.recv_done.is_none() {
                    let r = self.ws.poll_recv(cx);
                    self.on_recv(r);
                }
            }
            1 => {
                if self.next >= self.msgs.len() {
                    return;
                }
                if let Poll::Ready(Ok(())) = self.ws.poll_ready(cx) {
                    let m = self.msgs[self.next].clone();
                    self.fates[self.next] = match self.ws.start_send(m) {
                        Ok(()) => Fate::Queued,
                        Err(_) => Fate::Never,
                    };
                    self.next += 1;
                }
            }
            2 => {
                let _ = self.ws.poll_flush(cx);
            }
            3 => {
                if self.recv_done.is_some() {
                    return;
                }
                let out = match &mut self.ws {
                    Ws::Whole(ws) => poll_n(pin!(ws.recv()), polls, cx),
                    Ws::Split(_, r) => poll_n(pin!(r.recv()), polls, cx),
                };
                self.on_recv(out);
            }
            4 => {
                if self.next >= self.msgs.len() {
                    return;
                }
                let m = self.msgs[self.next].clone();
                let r = match &mut self.ws {
                    Ws::Whole(ws) => poll_n(pin!(ws.send(m)), polls, cx),
                    Ws::Split(w, _) => poll_n(pin!(w.send(m)), polls, cx),
                };
                self.fates[self.next] = match r {
                    Poll::Ready(Ok(())) => Fate::Queued,
                    _ => Fate::Maybe,
                };
                self.next += 1;
            }
            5 => {
                let _ = match &mut self.ws {
                    Ws::Whole(ws) => poll_n(pin!(ws.flush()), polls, cx),
                    Ws::Split(w, _) => poll_n(
                        pin!(poll_fn(|cx| Pin::new(&mut *w).poll_flush(cx))),
                        polls,
                        cx,
                    ),
                };
            }
            _ => {
                // Our close, once: through the sink, or the write half's `close()`.
                if self.close_fate != Fate::Never || a & 0x40 == 0 {
                    return;
                }
                let frame = self.close.clone();
                self.close_fate = match &mut self.ws {
                    Ws::Split(w, _) if a & 0x80 != 0 => {
                        match poll_n(pin!(w.close(frame)), polls, cx) {
                            Poll::Ready(Ok(())) => Fate::Queued,
                            _ => Fate::Maybe,
                        }
                    }
                    _ => match self.ws.poll_ready(cx) {
                        Poll::Ready(Ok(())) => match self.ws.start_send(Message::Close(frame)) {
                            Ok(()) => Fate::Queued,
                            Err(_) => Fate::Never,
                        },
                        _ => Fate::Never,
                    },
                };
            }
        }
        self.check_state();
    }
}

fn run(input: &Input) {
    let offer = OFFERS[input.offer as usize % OFFERS.len()];
    let deflate = offer.map(|o| negotiate_server([o], &DeflateConfig::DEFAULT).unwrap());
    let mut request = format!(
        "GET /chat HTTP/1.1\r\nHost: example.com\r\nUpgrade: websocket\r\n\
         Connection: Upgrade\r\nSec-WebSocket-Key: {KEY}\r\nSec-WebSocket-Version: 13\r\n"
    );
    if let Some(o) = offer {
        request.push_str(&format!("Sec-WebSocket-Extensions: {o}\r\n"));
    }
    request.push_str("\r\n");
    let (frames, expect) = client_stream(input, deflate);
    let mut stream = request.into_bytes();
    stream.extend_from_slice(&frames);

    let shared = Arc::new(Mutex::new(Shared {
        input: stream,
        script: input.script.clone(),
        errors: input.errors,
        eof_at_end: input.eof_at_end,
        ..Shared::default()
    }));
    let transport = Transport(shared.clone());
    let mut cx = Context::from_waker(Waker::noop());

    // The handshake: every poll consumes a script byte or makes progress.
    let accepted = {
        let config = ws_tokio::Config::default()
            .with_limits(BIG.limits)
            .with_ping_interval(None)
            .with_write_buffer_size(input.write_buffer as usize % 4096 + 1);
        let mut fut: Pin<Box<dyn Future<Output = _>>> = if input.default_config {
            Box::pin(ws_tokio::accept(transport))
        } else {
            Box::pin(ws_tokio::accept_with_config(transport, config))
        };
        let mut out = None;
        for _ in 0..input.script.len() + 10_000 {
            if let Poll::Ready(r) = fut.as_mut().poll(&mut cx) {
                out = Some(r);
                break;
            }
        }
        out.expect("handshake does not finish")
    };
    let ws = match accepted {
        Ok(ws) => ws,
        Err(e) => {
            assert!(lock(&shared).errored, "handshake failed: {e:?}");
            return;
        }
    };
    assert_eq!(ws.state(), State::Open);
    assert_eq!(ws.compression_enabled(), deflate.is_some());
    let ws = if input.split {
        let (w, r) = ws.split();
        Ws::Split(w, r)
    } else {
        Ws::Whole(ws)
    };
    let msgs = server_messages(input);
    let mut r = Run {
        ws,
        received: Vec::new(),
        recv_done: None,
        fates: vec![Fate::Never; msgs.len()],
        next: 0,
        msgs,
        close: our_close(input),
        close_fate: Fate::Never,
        state: State::Open,
    };
    for &a in input.actions.iter().take(512) {
        r.step(a, &mut cx);
    }

    // Drain with a well-behaved transport.
    lock(&shared).calm = true;
    let mut flush_error = None;
    for _ in 0..8 {
        if let Poll::Ready(Err(e)) = r.ws.poll_flush(&mut cx) {
            flush_error = Some(format!("{e:?}"));
        }
        for _ in 0..expect.len() + 8 {
            if r.recv_done.is_some() {
                break;
            }
            let p = r.ws.poll_recv(&mut cx);
            if !r.on_recv(p) {
                break;
            }
        }
        r.check_state();
    }

    let s = lock(&shared);
    let errored = s.errored;

    // Received: the client's messages, in order, once each; all of them without failures.
    assert!(
        r.received.len() <= expect.len() && r.received[..] == expect[..r.received.len()],
        "received {} messages that are not a prefix of the {} sent",
        r.received.len(),
        expect.len()
    );
    if !errored {
        assert_eq!(
            r.received.len(),
            expect.len(),
            "messages lost (recv ended with {:?}, read {} of {})",
            r.recv_done,
            s.rpos,
            s.input.len()
        );
        assert_eq!(flush_error, None, "flush failed on a working transport");
        match &r.recv_done {
            None => assert!(!s.eof_at_end, "recv still pending after EOF"),
            Some(None) => assert!(input.client_close, "clean end without a close"),
            Some(Some(e)) => assert!(
                s.eof_delivered && !input.client_close && e == "PeerVanished",
                "recv failed: {e}"
            ),
        }
        // Where the connection ends: terminated with the transport shut after a close
        // handshake or an EOF; still open (or waiting for the client's close) otherwise.
        if input.client_close || s.eof_at_end {
            assert!(r.recv_done.is_some(), "recv did not end");
            assert!(s.shut, "transport not shut at the end");
            if let Some(state) = r.ws.state() {
                assert_eq!(state, State::Terminated);
            }
        } else {
            assert!(!s.shut, "transport shut while open");
            if let Some(state) = r.ws.state() {
                match r.close_fate {
                    Fate::Queued => assert_eq!(state, State::ClosedByUs),
                    Fate::Never => assert_eq!(state, State::Open),
                    Fate::Maybe => assert!(matches!(state, State::Open | State::ClosedByUs)),
                }
            }
        }
    }
    // Written: the 101 response, then valid frames.
    let w = &s.written;
    let Some(head_len) = w.windows(4).position(|x| x == b"\r\n\r\n").map(|i| i + 4) else {
        assert!(errored || w.is_empty(), "no complete response head");
        return;
    };
    let head = std::str::from_utf8(&w[..head_len]).expect("response head");
    assert!(head.starts_with("HTTP/1.1 101 "), "{head}");
    assert!(head.contains(ACCEPT), "{head}");
    assert_eq!(
        head.contains("permessage-deflate"),
        deflate.is_some(),
        "{head}"
    );
    let body = &w[head_len..];
    let mut pos = 0;
    let mut close_at = None;
    while pos < body.len() {
        match FrameHeader::decode(&body[pos..]) {
            Ok(Some((h, n))) => {
                assert!(h.mask.is_none(), "server frame masked");
                assert!(h.fin, "server fragmented a message");
                assert!(
                    h.rsv == 0 || (h.rsv == ws_proto::frame::RSV1 && deflate.is_some()),
                    "server frame with RSV {:#x}",
                    h.rsv
                );
                assert!(close_at.is_none(), "frame after our close frame");
                if h.opcode == OpCode::Close {
                    close_at = Some(pos);
                }
                let end = pos as u64 + n as u64 + h.payload_len;
                if end > body.len() as u64 {
                    assert!(errored, "truncated frame in the output");
                    break;
                }
                pos = end as usize;
            }
            Ok(None) => {
                assert!(errored, "truncated frame header in the output");
                break;
            }
            Err(e) => panic!("invalid frame in the output: {e:?}"),
        }
    }
    let mut peer = Connection::client(BIG, 3, 0).unwrap();
    if let Some(n) = deflate {
        peer.set_deflate(n);
    }
    let mut asm = MessageAssembler::new();
    let mut out_msgs = Vec::new();
    let mut buf = body.to_vec();
    let mut at = 0;
    loop {
        match peer.receive(0, &mut buf[at..]) {
            Ok((n, None)) => {
                at += n;
                break;
            }
            Ok((n, Some(ev))) => {
                at += n;
                let is_data = matches!(ev, Event::Data { .. });
                if let Some(m) = asm.push(ev) {
                    out_msgs.push(m);
                } else {
                    assert!(is_data);
                }
            }
            Err(e) => panic!("server output does not decode: {e:?}"),
        }
    }
    assert_eq!(at, buf.len());

    // Data and pings we sent: in order, unchanged, at most once; all queued ones when healthy.
    let mut last: Option<usize> = None;
    let mut pongs = Vec::new();
    let mut close = None;
    let mut total = 0usize;
    for m in &out_msgs {
        match m {
            Message::Pong(p) => pongs.push(p.clone()),
            Message::Close(c) => close = Some(c.clone()),
            m => {
                let t = tag(m);
                assert!(
                    last.is_none_or(|l| t > l),
                    "message {t} out of order or repeated"
                );
                last = Some(t);
                assert_eq!(m, &r.msgs[t], "message {t} changed");
                assert_ne!(r.fates[t], Fate::Never, "message {t} sent though refused");
                total += 1;
            }
        }
    }
    if !errored {
        let queued = r.fates.iter().filter(|f| **f == Fate::Queued).count();
        let sent_tags: Vec<usize> = out_msgs
            .iter()
            .filter(|m| !matches!(m, Message::Pong(_) | Message::Close(_)))
            .map(tag)
            .collect();
        for (i, f) in r.fates.iter().enumerate() {
            if *f == Fate::Queued {
                assert!(sent_tags.contains(&i), "queued message {i} never written");
            }
        }
        assert!(total >= queued);
    }
    // Pongs answer the client's pings, in order.
    let pings: Vec<&Bytes> = expect
        .iter()
        .filter_map(|m| match m {
            Message::Ping(p) => Some(p),
            _ => None,
        })
        .collect();
    let mut k = 0;
    for p in &pongs {
        while k < pings.len() && pings[k] != p {
            k += 1;
        }
        assert!(
            k < pings.len(),
            "pong {p:02x?} answers no ping (or out of order)"
        );
        k += 1;
    }
    // The one close frame: ours, or the echo of the client's.
    let ours = r.close.clone();
    let echo = Some(CloseFrame::new(CloseCode::NORMAL, ""));
    if let Some(c) = &close {
        assert!(
            (*c == ours && r.close_fate != Fate::Never) || (*c == echo && input.client_close),
            "close frame {c:?} (ours: {ours:?}, {:?})",
            r.close_fate
        );
    }
    if !errored && r.received.len() == expect.len() {
        if r.close_fate == Fate::Never {
            // Without a close of ours, every ping is answered (the last one at least: a pong
            // not yet sent is replaced by a newer one).
            if let Some(lp) = pings.last() {
                assert_eq!(pongs.last(), Some(*lp), "last ping unanswered");
            }
        }
        let reply = if input.client_close { Some(echo) } else { None };
        match r.close_fate {
            Fate::Queued => assert_eq!(close, Some(ours), "our close frame not written"),
            Fate::Never => assert_eq!(close, reply, "close frame"),
            Fate::Maybe => assert!(close == Some(ours) || close == reply, "{close:?}"),
        }
    }
    // Bounded output: what was queued, plus answers.
    let queued_bytes: usize = r.msgs.iter().map(|m| 16 + msg_len(m)).sum();
    assert!(
        body.len() <= 2 * queued_bytes + 200 * (pings.len() + 2),
        "{} bytes written",
        body.len()
    );
}

fn msg_len(m: &Message) -> usize {
    match m {
        Message::Text(s) => s.len(),
        Message::Binary(b) | Message::Ping(b) | Message::Pong(b) => b.len(),
        Message::Close(_) => 125,
    }
}

fuzz_target!(|input: Input| {
    RT.with(|rt| {
        let _guard = rt.enter();
        run(&input);
    });
});
