//! A `ws-tokio` server `WebSocket` over an in-memory transport that misbehaves as the input
//! says: short reads and writes, spurious `Pending` (waking the waker), flushes that pend, and
//! (when enabled) I/O errors.
//!
//! The transport plays a fixed valid opening request (optionally offering permessage-deflate),
//! then a valid masked client frame stream generated from the input: text, binary (compressed
//! when deflate was agreed), fragmented messages with a ping between fragments, pings, pongs,
//! and optionally a close. The server is accepted with `ws_tokio::accept` or
//! `accept_with_config` (small write buffer) and driven by hand with a no-op waker:
//! `poll_recv`, `Sink::poll_ready` / `start_send` / `poll_flush`, and `recv()` / `send()` /
//! `flush()` futures polled a few times and dropped (cancelled). Time is paused, so no timer
//! fires. At the end the transport behaves and the connection is drained.
//!
//! Invariants: no panic; the messages received are the client's messages in order, each once
//! and intact (all of them unless the transport failed; a prefix otherwise); the bytes the
//! server wrote are a 101 response followed by valid unmasked frames, the data messages among
//! them are the ones we queued, in order, each at most once and unchanged, every message
//! `start_send` accepted is there unless the transport failed, and none that it refused; pongs
//! answer the client's pings in order, the last ping is answered, and a client close is echoed
//! with its code and nothing follows it; nothing is written after the transport was shut; the
//! output stays within a bound of what was queued.
#![no_main]

use std::cell::RefCell;
use std::future::Future;
use std::io;
use std::pin::{Pin, pin};
use std::rc::Rc;
use std::task::{Context, Poll, Waker};

use arbitrary::Arbitrary;
use futures_sink::Sink;
use libfuzzer_sys::fuzz_target;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use ws_proto::deflate::{DeflateConfig, Negotiated, negotiate_server};
use ws_proto::{
    CloseCode, Config, Connection, Event, FrameHeader, Limits, Message, MessageAssembler, OpCode,
};
use ws_tokio::WebSocket;

const KEY: &str = "dGhlIHNhbXBsZSBub25jZQ==";
const ACCEPT: &str = "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=";

const OFFERS: [Option<&str>; 5] = [
    None,
    Some("permessage-deflate"),
    Some("permessage-deflate; client_max_window_bits"),
    Some("permessage-deflate; server_no_context_takeover; client_no_context_takeover"),
    Some("permessage-deflate; server_max_window_bits=9; client_max_window_bits=10"),
];

const BIG: Config = Config {
    limits: Limits {
        max_frame_size: 1 << 20,
        max_message_size: 1 << 20,
        max_fragments: 64,
        ..Limits::DEFAULT
    },
    ping_interval: None,
    ..Config::DEFAULT
};

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

struct Transport(Rc<RefCell<Shared>>);

impl AsyncRead for Transport {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let mut s = self.0.borrow_mut();
        assert!(!s.eof_delivered || s.rpos == s.input.len());
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
        let mut s = self.0.borrow_mut();
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
        let mut s = self.0.borrow_mut();
        match s.decide(cx, 1) {
            Ok(_) => Poll::Ready(Ok(())),
            Err(Poll::Pending) => Poll::Pending,
            Err(Poll::Ready(e)) => Poll::Ready(Err(e)),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let mut s = self.0.borrow_mut();
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
    let mut c = Connection::client(BIG, input.seed | 1).unwrap();
    if let Some(n) = deflate {
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
                c.encode_message(OpCode::Text, s.as_bytes(), &mut wire).unwrap();
                expect.push(Message::Text(s.clone()));
            }
            CMsg::Binary(b) => {
                c.encode_message(OpCode::Binary, b, &mut wire).unwrap();
                expect.push(Message::Binary(b.clone()));
            }
            CMsg::Ping(p) => {
                let p = &p[..p.len().min(125)];
                frame(&mut c, &mut wire, OpCode::Ping, true, p);
                expect.push(Message::Ping(p.to_vec()));
            }
            CMsg::Pong(p) => {
                let p = &p[..p.len().min(125)];
                frame(&mut c, &mut wire, OpCode::Pong, true, p);
                expect.push(Message::Pong(p.to_vec()));
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
                        expect.push(Message::Ping(p.to_vec()));
                    }
                }
                let op = match (first, *text) {
                    (false, _) => OpCode::Continuation,
                    (true, true) => OpCode::Text,
                    (true, false) => OpCode::Binary,
                };
                frame(&mut c, &mut wire, op, true, rest);
                expect.push(if *text {
                    Message::Text(String::from_utf8(data).unwrap())
                } else {
                    Message::Binary(data)
                });
            }
        }
    }
    if input.client_close {
        c.close(Some(CloseCode::NORMAL), "bye").unwrap();
        let f = c.poll_transmit().expect("close frame");
        wire.extend_from_slice(f.as_bytes());
        expect.push(Message::Close(Some((CloseCode::NORMAL, "bye".into()))));
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
            SMsg::Text(s) => Message::Text(format!("{i}:{s}")),
            SMsg::Binary(b) => {
                let mut v = (i as u32).to_be_bytes().to_vec();
                v.extend_from_slice(b);
                Message::Binary(v)
            }
            SMsg::Ping(p) => {
                let mut v = vec![i as u8];
                v.extend_from_slice(&p[..p.len().min(124)]);
                Message::Ping(v)
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

#[derive(Clone, Copy, PartialEq, Debug)]
enum Fate {
    /// Not attempted, or refused.
    Never,
    /// Possibly queued (a cancelled or failed `send`).
    Maybe,
    /// Queued.
    Queued,
}

struct Run {
    ws: WebSocket<Transport>,
    received: Vec<Message>,
    /// `poll_recv` gave `None` or an error.
    recv_done: Option<Option<String>>,
    fates: Vec<Fate>,
    next: usize,
    msgs: Vec<Message>,
}

impl Run {
    fn on_recv(&mut self, r: Poll<Option<Result<Message, ws_tokio::Error>>>) -> bool {
        match r {
            Poll::Pending => false,
            Poll::Ready(Some(Ok(m))) => {
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

    fn step(&mut self, a: u8, cx: &mut Context<'_>) {
        let polls = ((a >> 3) & 3) as usize + 1;
        match a % 6 {
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
                if let Poll::Ready(Ok(())) = Pin::new(&mut self.ws).poll_ready(cx) {
                    let m = self.msgs[self.next].clone();
                    self.fates[self.next] = match Pin::new(&mut self.ws).start_send(m) {
                        Ok(()) => Fate::Queued,
                        Err(_) => Fate::Never,
                    };
                    self.next += 1;
                }
            }
            2 => {
                let _ = Pin::new(&mut self.ws).poll_flush(cx);
            }
            3 => {
                if self.recv_done.is_some() {
                    return;
                }
                let mut out = Poll::Pending;
                {
                    let mut f = pin!(self.ws.recv());
                    for _ in 0..polls {
                        if let Poll::Ready(r) = f.as_mut().poll(cx) {
                            out = Poll::Ready(r);
                            break;
                        }
                    }
                }
                self.on_recv(out);
            }
            4 => {
                if self.next >= self.msgs.len() {
                    return;
                }
                let m = self.msgs[self.next].clone();
                let mut fate = Fate::Maybe;
                {
                    let mut f = pin!(self.ws.send(m));
                    for _ in 0..polls {
                        if let Poll::Ready(r) = f.as_mut().poll(cx) {
                            if r.is_ok() {
                                fate = Fate::Queued;
                            }
                            break;
                        }
                    }
                }
                self.fates[self.next] = fate;
                self.next += 1;
            }
            _ => {
                let mut f = pin!(self.ws.flush());
                for _ in 0..polls {
                    if f.as_mut().poll(cx).is_ready() {
                        break;
                    }
                }
            }
        }
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

    let shared = Rc::new(RefCell::new(Shared {
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
        let config = ws_tokio::Config {
            limits: BIG.limits,
            ping_interval: None,
            write_buffer_size: input.write_buffer as usize % 4096 + 1,
            ..ws_tokio::Config::default()
        };
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
            assert!(shared.borrow().errored, "handshake failed: {e:?}");
            return;
        }
    };
    let msgs = server_messages(input);
    let mut r = Run {
        ws,
        received: Vec::new(),
        recv_done: None,
        fates: vec![Fate::Never; msgs.len()],
        next: 0,
        msgs,
    };
    for &a in input.actions.iter().take(512) {
        r.step(a, &mut cx);
    }

    // Drain with a well-behaved transport.
    shared.borrow_mut().calm = true;
    let mut flush_error = None;
    for _ in 0..8 {
        if let Poll::Ready(Err(e)) = Pin::new(&mut r.ws).poll_flush(&mut cx) {
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
    }

    let s = shared.borrow();
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
    let mut peer = Connection::client(BIG, 3).unwrap();
    if let Some(n) = deflate {
        peer.set_deflate(n);
    }
    let mut asm = MessageAssembler::new();
    let mut out_msgs = Vec::new();
    let mut buf = body.to_vec();
    let mut at = 0;
    loop {
        match peer.receive(&mut buf[at..]) {
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
                assert!(last.is_none_or(|l| t > l), "message {t} out of order or repeated");
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
    let pings: Vec<&Vec<u8>> = expect
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
        assert!(k < pings.len(), "pong {p:02x?} answers no ping (or out of order)");
        k += 1;
    }
    if !errored && r.received.len() == expect.len() {
        if let Some(lp) = pings.last() {
            assert_eq!(pongs.last(), Some(*lp), "last ping unanswered");
        }
        if input.client_close {
            assert_eq!(
                close,
                Some(Some((CloseCode::NORMAL, String::new()))),
                "close not echoed"
            );
        } else {
            assert_eq!(close, None, "close frame though the client did not close");
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
