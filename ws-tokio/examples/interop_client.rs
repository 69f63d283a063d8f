//! Scripted client for the interoperability checks in `ws-tokio/tests/interop/run.sh`.
//!
//! `cargo run -p ws-tokio --example interop_client -- [OPTIONS] ws://127.0.0.1:PORT`
//!
//! Runs a fixed sequence against a peer echo server and prints one `PASS name` or
//! `FAIL name: detail` line per check; exits 1 when any check failed. The peer must echo text
//! and binary messages and understand these text commands:
//!
//! - `!frag binary COUNT SIZE`: send back a binary message of `SIZE` bytes (byte `i` is
//!   `i % 251`) split into `COUNT` fragments, with a ping between the first two fragments;
//! - `!frag text COUNT REPS`: the same with the text `"héllo wörld ✓ 😀 "` repeated `REPS` times;
//! - `!ping PAYLOAD`: send a ping with `PAYLOAD`, and once its pong arrived, the text
//!   `pong-received:PAYLOAD`;
//! - `!close CODE REASON`: close the connection with this code and reason.
//!
//! It must reject the path `/reject` with 403 and choose the subprotocol `chat` when offered.
//!
//! Options:
//! - `--expect-reject STATUS`: only connect to the URL (as given, path included) and check that
//!   the handshake is refused with `STATUS`;
//! - `--close-codes all|sample`: every allowed close code (1000-1003, 1007-1014, 3000-4999;
//!   the default) or a sample of them;
//! - `--expect-ext VALUE|none`: every connection must get this `Sec-WebSocket-Extensions`
//!   answer to our permessage-deflate offer (compared as a set of parameters; `none`: the peer
//!   declined the offer). With a `permessage-deflate` value, compression checks run too: large
//!   compressible and incompressible messages whose size on the wire is checked both ways, and
//!   a message whose repeats lie 5000 bytes apart, which shrinks only when our compressor may
//!   use a window larger than 4 KiB (it must keep to the peer's `client_max_window_bits`);
//! - `--random-size N`: size of the random (incompressible) message of the last compression
//!   check, on a connection of its own (default 16 MiB).
//!
//! Our API sends every message as one frame, so fragmentation is checked on the receiving side
//! only. The bytes on the wire are counted by a wrapper around the TCP stream.

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};
use std::task::{Context, Poll};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;
use ws_tokio::{ClientRequest, CloseCode, CloseFrame, Config, Error, Message, Response, WebSocket};

type Ws = WebSocket<Tap<TcpStream>>;

/// A transport wrapper that counts the bytes read and written.
struct Tap<S> {
    inner: S,
    read: Arc<AtomicU64>,
    written: Arc<AtomicU64>,
}

impl<S: AsyncRead + Unpin> AsyncRead for Tap<S> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let before = buf.filled().len();
        let r = Pin::new(&mut this.inner).poll_read(cx, buf);
        let n = buf.filled().len() - before;
        this.read.fetch_add(n as u64, Ordering::Relaxed);
        r
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for Tap<S> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        let r = Pin::new(&mut this.inner).poll_write(cx, buf);
        if let Poll::Ready(Ok(n)) = r {
            this.written.fetch_add(n as u64, Ordering::Relaxed);
        }
        r
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        let r = Pin::new(&mut this.inner).poll_write_vectored(cx, bufs);
        if let Poll::Ready(Ok(n)) = r {
            this.written.fetch_add(n as u64, Ordering::Relaxed);
        }
        r
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_shutdown(cx)
    }
}

/// Bytes read and written so far on this connection.
fn wire(ws: &Ws) -> (u64, u64) {
    let t = ws.get_ref();
    (
        t.read.load(Ordering::Relaxed),
        t.written.load(Ordering::Relaxed),
    )
}

/// `--expect-ext`: `None` when not checked; `Some(None)`: no extension agreed.
static EXPECT_EXT: OnceLock<Option<Option<String>>> = OnceLock::new();

fn expected_ext() -> Option<Option<String>> {
    EXPECT_EXT.get().cloned().flatten()
}

/// An extension header value as (name, sorted parameters), for comparison.
fn ext_key(v: &str) -> (String, Vec<String>) {
    let mut parts = v.split(';').map(|p| {
        p.split('=')
            .map(|x| x.trim().trim_matches('"').to_ascii_lowercase())
            .collect::<Vec<_>>()
            .join("=")
    });
    let name = parts.next().unwrap_or_default();
    let mut params: Vec<String> = parts.collect();
    params.sort();
    (name, params)
}

/// The `Sec-WebSocket-Extensions` value(s) of a response, joined with `, `.
fn response_ext(resp: &Response) -> Option<String> {
    let values: Vec<String> = resp
        .headers
        .iter()
        .filter(|(k, _)| k.eq_ignore_ascii_case("sec-websocket-extensions"))
        .map(|(_, v)| String::from_utf8_lossy(v).trim().to_string())
        .collect();
    if values.is_empty() {
        None
    } else {
        Some(values.join(", "))
    }
}

/// Checks the response's extensions against `--expect-ext`.
fn check_ext(resp: &Response) -> Result<(), String> {
    let Some(want) = expected_ext() else {
        return Ok(());
    };
    let got = response_ext(resp);
    let same = match (&want, &got) {
        (None, None) => true,
        (Some(w), Some(g)) => ext_key(w) == ext_key(g),
        _ => false,
    };
    if same {
        Ok(())
    } else {
        Err(format!(
            "Sec-WebSocket-Extensions: got {:?}, expected {:?}",
            got.as_deref().unwrap_or("(none)"),
            want.as_deref().unwrap_or("(none)")
        ))
    }
}

/// A parameter of the agreed permessage-deflate, e.g. `client_max_window_bits`.
fn ext_param(resp: &Response, name: &str) -> Option<String> {
    let v = response_ext(resp)?;
    v.split(';').skip(1).find_map(|p| {
        let (k, v) = p.split_once('=').unwrap_or((p, ""));
        k.trim()
            .eq_ignore_ascii_case(name)
            .then(|| v.trim().trim_matches('"').to_string())
    })
}

/// Time limit of one check: 30 s, 120 s with compression checks (compressing 16 MiB takes a
/// while in a debug build).
static STEP_SECS: AtomicU64 = AtomicU64::new(30);

/// Size of the random message of the last compression check (`--random-size`).
static RANDOM_SIZE: AtomicU64 = AtomicU64::new(16 << 20);
const TEXT_UNIT: &str = "héllo wörld ✓ 😀 ";

fn pattern(n: usize) -> Vec<u8> {
    (0..n).map(|i| (i % 251) as u8).collect()
}

fn describe(m: &Message) -> String {
    match m {
        Message::Text(t) if t.len() <= 60 => format!("text {t:?}"),
        Message::Text(t) => format!("text of {} bytes", t.len()),
        Message::Binary(b) => format!("binary of {} bytes", b.len()),
        Message::Ping(p) => format!("ping {:?}", String::from_utf8_lossy(p)),
        Message::Pong(p) => format!("pong {:?}", String::from_utf8_lossy(p)),
        Message::Close(c) => format!(
            "close {:?}",
            c.as_ref().map(|f| (f.code.0, f.reason.as_str()))
        ),
    }
}

struct Report {
    failed: usize,
}

impl Report {
    fn check(&mut self, name: &str, r: Result<(), String>) {
        match r {
            Ok(()) => println!("PASS {name}"),
            Err(e) => {
                self.failed += 1;
                println!("FAIL {name}: {e}");
            }
        }
    }
}

async fn bounded<T>(f: impl Future<Output = Result<T, String>>) -> Result<T, String> {
    let step = Duration::from_secs(STEP_SECS.load(Ordering::Relaxed));
    match tokio::time::timeout(step, f).await {
        Ok(r) => r,
        Err(_) => Err(format!("timed out after {step:?}")),
    }
}

fn config() -> Config {
    // Keep the exchanges free of our own keepalive traffic.
    Config::default().with_ping_interval(None)
}

async fn open(base: &str, path: &str) -> Result<Ws, String> {
    Ok(
        open_request(base, ClientRequest::new("", path).config(config()))
            .await?
            .0,
    )
}

/// Connects (through a [`Tap`]) with a full request; checks the extensions the peer agreed to.
async fn open_request(base: &str, mut req: ClientRequest) -> Result<(Ws, Response), String> {
    let authority = base
        .strip_prefix("ws://")
        .ok_or_else(|| format!("not a ws:// URL: {base}"))?;
    let authority = authority.split('/').next().unwrap_or(authority);
    if req.host.is_empty() {
        req.host = authority.to_string();
    }
    if req.path.is_empty() {
        req.path = "/".into();
    }
    let url = format!("{base}{}", req.path);
    let tcp = TcpStream::connect(authority)
        .await
        .map_err(|e| format!("connect {url}: {e}"))?;
    let _ = tcp.set_nodelay(true);
    let tap = Tap {
        inner: tcp,
        read: Arc::default(),
        written: Arc::default(),
    };
    let (ws, resp) = ws_tokio::client(tap, req)
        .await
        .map_err(|e| format!("connect {url}: {e}"))?;
    check_ext(&resp).map_err(|e| format!("{url}: {e}"))?;
    Ok((ws, resp))
}

/// The next data or close message (pings and pongs are skipped).
async fn next_data(ws: &mut Ws) -> Result<Message, String> {
    loop {
        match ws.recv().await {
            None => return Err("connection ended".into()),
            Some(Err(e)) => return Err(format!("connection failed: {e}")),
            Some(Ok(Message::Ping(_) | Message::Pong(_))) => continue,
            Some(Ok(m)) => return Ok(m),
        }
    }
}

async fn echo(ws: &mut Ws, msg: Message) -> Result<(), String> {
    ws.send(msg.clone())
        .await
        .map_err(|e| format!("send failed: {e}"))?;
    let got = next_data(ws).await?;
    if got == msg {
        Ok(())
    } else {
        Err(format!("sent {}, got {}", describe(&msg), describe(&got)))
    }
}

/// Closes with 1000 and expects the echo and a clean end.
async fn finish(mut ws: Ws) -> Result<(), String> {
    close_and_expect(&mut ws, CloseCode::NORMAL, "done").await
}

/// Sends a close frame with `code`, expects the peer's close with the same code, then a clean
/// end of the connection.
async fn close_and_expect(ws: &mut Ws, code: CloseCode, reason: &str) -> Result<(), String> {
    ws.send(Message::Close(Some(CloseFrame::new(code, reason))))
        .await
        .map_err(|e| format!("sending close {}: {e}", code.0))?;
    loop {
        match ws.recv().await {
            None => return Err("connection ended before the peer's close frame".into()),
            Some(Err(e)) => return Err(format!("waiting for the close echo: {e}")),
            Some(Ok(Message::Close(Some(f)))) if f.code == code => break,
            Some(Ok(Message::Close(c))) => {
                return Err(format!(
                    "closed with {}, peer answered {:?}",
                    code.0,
                    c.map(|f| (f.code.0, f.reason))
                ));
            }
            Some(Ok(_)) => {}
        }
    }
    // The peer's close frame comes once, then the clean end.
    match ws.recv().await {
        None => Ok(()),
        Some(Ok(m)) => Err(format!("after the close handshake: {}", describe(&m))),
        Some(Err(e)) => Err(format!("after the close handshake: {e}")),
    }
}

async fn echo_checks(base: &str, r: &mut Report) {
    let mut ws = match bounded(open(base, "/")).await {
        Ok(ws) => ws,
        Err(e) => {
            r.check("echo: connect", Err(e));
            return;
        }
    };
    let cases: Vec<(String, Message)> = vec![
        ("text hello".into(), Message::text("hello")),
        (
            "text unicode".into(),
            Message::text("héllo wörld ✓ 😀 — ünïcödé"),
        ),
        ("text 0 B".into(), Message::text("")),
        ("text 64 KiB".into(), Message::text("x".repeat(64 << 10))),
        ("binary 0 B".into(), Message::binary(Vec::new())),
        ("binary 125 B".into(), Message::binary(pattern(125))),
        ("binary 126 B".into(), Message::binary(pattern(126))),
        ("binary 65535 B".into(), Message::binary(pattern(65535))),
        ("binary 64 KiB".into(), Message::binary(pattern(64 << 10))),
        ("binary 16 MiB".into(), Message::binary(pattern(16 << 20))),
    ];
    for (name, msg) in cases {
        let res = bounded(echo(&mut ws, msg)).await;
        let broken = res.is_err();
        r.check(&format!("echo {name}"), res);
        if broken {
            return;
        }
    }
    r.check("echo: close 1000", bounded(finish(ws)).await);
}

async fn fragment_checks(base: &str, r: &mut Report) {
    let mut ws = match bounded(open(base, "/")).await {
        Ok(ws) => ws,
        Err(e) => {
            r.check("fragments: connect", Err(e));
            return;
        }
    };
    let cases: Vec<(&str, Message)> = vec![
        ("!frag text 7 300", Message::text(TEXT_UNIT.repeat(300))),
        ("!frag text 3 1", Message::text(TEXT_UNIT)),
        ("!frag binary 8 100000", Message::binary(pattern(100_000))),
        ("!frag binary 1000 1000", Message::binary(pattern(1000))),
        ("!frag binary 4 0", Message::binary(Vec::new())),
        ("!frag binary 16 1048576", Message::binary(pattern(1 << 20))),
    ];
    for (cmd, want) in cases {
        let res = bounded(async {
            ws.send(Message::text(cmd))
                .await
                .map_err(|e| format!("send failed: {e}"))?;
            let got = next_data(&mut ws).await?;
            if got == want {
                Ok(())
            } else {
                Err(format!(
                    "expected {}, got {}",
                    describe(&want),
                    describe(&got)
                ))
            }
        })
        .await;
        let broken = res.is_err();
        r.check(&format!("receive fragmented ({cmd})"), res);
        if broken {
            return;
        }
    }
    r.check("fragments: close 1000", bounded(finish(ws)).await);
}

async fn ping_checks(base: &str, r: &mut Report) {
    let mut ws = match bounded(open(base, "/")).await {
        Ok(ws) => ws,
        Err(e) => {
            r.check("ping: connect", Err(e));
            return;
        }
    };
    let res = bounded(async {
        let payload = b"client-ping-1".to_vec();
        ws.send(Message::ping(payload.clone()))
            .await
            .map_err(|e| format!("send failed: {e}"))?;
        loop {
            match ws.recv().await {
                Some(Ok(Message::Pong(p))) if p == payload => return Ok(()),
                Some(Ok(Message::Pong(p))) => {
                    return Err(format!("pong with {:?}", String::from_utf8_lossy(&p)));
                }
                // A ping from the peer (already answered) is not what we wait for.
                Some(Ok(Message::Ping(_))) => {}
                Some(Ok(m)) => return Err(format!("expected a pong, got {}", describe(&m))),
                Some(Err(e)) => return Err(format!("{e}")),
                None => return Err("connection ended".into()),
            }
        }
    })
    .await;
    r.check("our ping gets the peer's pong", res);
    let res = bounded(async {
        ws.send(Message::text("!ping srv-ping-1"))
            .await
            .map_err(|e| format!("send failed: {e}"))?;
        let mut saw_ping = false;
        loop {
            match ws.recv().await {
                Some(Ok(Message::Ping(p))) if p == b"srv-ping-1"[..] => saw_ping = true,
                Some(Ok(Message::Text(t))) if t == "pong-received:srv-ping-1" => {
                    return if saw_ping {
                        Ok(())
                    } else {
                        Err("the peer got a pong but recv() never showed the ping".into())
                    };
                }
                Some(Ok(m)) => return Err(format!("unexpected {}", describe(&m))),
                Some(Err(e)) => return Err(format!("{e}")),
                None => return Err("connection ended".into()),
            }
        }
    })
    .await;
    r.check("the peer's ping gets our pong", res);
    r.check("ping: close 1000", bounded(finish(ws)).await);
}

async fn subprotocol_checks(base: &str, r: &mut Report) {
    let res = bounded(async {
        let req = ClientRequest::new("", "").protocol("chat").config(config());
        let (ws, resp) = open_request(base, req).await?;
        if resp.protocol.as_deref() != Some("chat") {
            return Err(format!("offered chat, got {:?}", resp.protocol));
        }
        finish(ws).await
    })
    .await;
    r.check("subprotocol: offer chat, get chat", res);
    let res = bounded(async {
        let req = ClientRequest::new("", "")
            .protocol("nonesuch")
            .protocol("chat")
            .config(config());
        let (ws, resp) = open_request(base, req).await?;
        if resp.protocol.as_deref() != Some("chat") {
            return Err(format!("offered nonesuch,chat, got {:?}", resp.protocol));
        }
        finish(ws).await
    })
    .await;
    r.check("subprotocol: offer nonesuch,chat, get chat", res);
    let res = bounded(async {
        let req = ClientRequest::new("", "").config(config());
        let (ws, resp) = open_request(base, req).await?;
        if resp.protocol.is_some() {
            return Err(format!("offered none, got {:?}", resp.protocol));
        }
        finish(ws).await
    })
    .await;
    r.check("subprotocol: offer none, get none", res);
}

/// Incompressible bytes (xorshift64*).
fn random_bytes(n: usize, seed: u64) -> Vec<u8> {
    let mut x = seed | 1;
    let mut out = Vec::with_capacity(n + 8);
    while out.len() < n {
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        out.extend_from_slice(&x.wrapping_mul(0x2545_f491_4f6c_dd1d).to_le_bytes());
    }
    out.truncate(n);
    out
}

/// About `n` bytes of JSON: an array of similar records (highly compressible).
fn json_text(n: usize) -> String {
    let mut s = String::with_capacity(n + 128);
    s.push('[');
    let mut i = 0u64;
    while s.len() < n - 2 {
        let rec = format!(
            "{{\"id\":{i},\"name\":\"user-{i}\",\"email\":\"user{i}@example.com\",\"active\":true,\"tags\":[\"alpha\",\"beta\"],\"score\":{}}},",
            i % 97
        );
        s.push_str(&rec);
        i += 1;
    }
    s.truncate(n - 1);
    s.push(']');
    s
}

/// A random 5000-byte block repeated: its repeats are 5000 bytes apart, so only a compressor
/// with a window of 8 KiB or more (13+ bits) can shrink it.
fn far_repeats(n: usize) -> Vec<u8> {
    let block = random_bytes(5000, 0x5eed);
    block.iter().copied().cycle().take(n).collect()
}

/// What a message may take on the wire, one direction (`None`: not checked).
#[derive(Clone, Copy)]
enum Wire {
    /// Fewer than `len / n` bytes.
    Below(u64),
    /// At least `len * 9 / 10` bytes: not shrunk.
    Uncompressed,
    /// At most `len + len / 64 + 1024` bytes (deflate of incompressible data must not blow up).
    NoBlowUp,
}

impl Wire {
    fn describe(self) -> String {
        match self {
            Wire::Below(n) => format!("fewer than 1/{n} of its size"),
            Wire::Uncompressed => "at least 90% of its size (not shrunk)".into(),
            Wire::NoBlowUp => "at most 101.6% of its size + 1 KiB".into(),
        }
    }

    fn check(self, len: u64, took: u64) -> Result<(), String> {
        let ok = match self {
            Wire::Below(n) => took < len / n,
            Wire::Uncompressed => took >= len * 9 / 10,
            Wire::NoBlowUp => took <= len + len / 64 + 1024,
        };
        if ok {
            Ok(())
        } else {
            Err(format!(
                "{took} bytes on the wire for {len} bytes ({:.2}%)",
                took as f64 * 100.0 / len.max(1) as f64
            ))
        }
    }
}

/// Compression checks: only with `--expect-ext permessage-deflate...`.
async fn deflate_checks(base: &str, r: &mut Report) {
    let req = ClientRequest::new("", "/deflate").config(config());
    let (mut ws, resp) = match bounded(open_request(base, req)).await {
        Ok(x) => x,
        Err(e) => {
            r.check("deflate: connect", Err(e));
            return;
        }
    };
    let agreed = response_ext(&resp);
    r.check(
        &format!(
            "permessage-deflate agreed: the peer answered {:?}",
            agreed.as_deref().unwrap_or("(none)")
        ),
        match &agreed {
            Some(v) if ext_key(v).0 == "permessage-deflate" => Ok(()),
            _ => Err("no permessage-deflate in the response".into()),
        },
    );
    let our_bits: u32 = ext_param(&resp, "client_max_window_bits")
        .and_then(|b| b.parse().ok())
        .unwrap_or(15);
    // Window 2^bits, less zlib's 262-byte lookahead margin.
    let far = if (1u64 << our_bits) - 262 > 5000 {
        Wire::Below(10)
    } else {
        Wire::Uncompressed
    };
    let big = 16usize << 20;
    let cases: Vec<(String, Message, Option<Wire>, Option<Wire>)> = vec![
        ("text 0 B".into(), Message::text(""), None, None),
        (
            "text 125 B".into(),
            Message::text(&"a short text message, compressible: ".repeat(4)[..125]),
            None,
            None,
        ),
        (
            "text 64 KiB JSON".into(),
            Message::text(json_text(64 << 10)),
            Some(Wire::Below(4)),
            None,
        ),
        ("binary 0 B".into(), Message::binary(Vec::new()), None, None),
        (
            "binary 125 B random".into(),
            Message::binary(random_bytes(125, 1)),
            None,
            None,
        ),
        (
            "binary 64 KiB random".into(),
            Message::binary(random_bytes(64 << 10, 2)),
            Some(Wire::NoBlowUp),
            None,
        ),
        (
            "text 16 MiB JSON (highly compressible)".into(),
            Message::text(json_text(big)),
            Some(Wire::Below(5)),
            Some(Wire::Below(5)),
        ),
        (
            "binary 16 MiB pattern (compressible)".into(),
            Message::binary(pattern(big)),
            Some(Wire::Below(2)),
            None,
        ),
        (
            format!(
                "binary 1 MiB of a 5000-byte random block repeated (window {our_bits} bits: {})",
                if matches!(far, Wire::Below(_)) {
                    "must shrink"
                } else {
                    "must not shrink"
                }
            ),
            Message::binary(far_repeats(1 << 20)),
            Some(far),
            None,
        ),
    ];
    for (name, msg, out_wire, in_wire) in cases {
        let len = match &msg {
            Message::Text(t) => t.len(),
            Message::Binary(b) => b.len(),
            _ => 0,
        } as u64;
        let (in0, out0) = wire(&ws);
        let res = bounded(echo(&mut ws, msg)).await;
        let (in1, out1) = wire(&ws);
        let broken = res.is_err();
        r.check(&format!("deflate echo {name}"), res);
        if broken {
            return;
        }
        let (sent, received) = (out1 - out0, in1 - in0);
        println!("  ({name}: {len} bytes; on the wire: {sent} bytes sent, {received} received)");
        if let Some(w) = out_wire {
            r.check(
                &format!("deflate wire: we sent {name} in {}", w.describe()),
                w.check(len, sent),
            );
        }
        if let Some(w) = in_wire {
            r.check(
                &format!(
                    "deflate wire: the peer's echo of {name} came in {}",
                    w.describe()
                ),
                w.check(len, received),
            );
        }
    }
    let res = bounded(async {
        // Compressed by the peer when it compresses (ws: fragments of 1024 bytes or more).
        let want = Message::text(TEXT_UNIT.repeat(200_000));
        ws.send(Message::text("!frag text 16 200000"))
            .await
            .map_err(|e| format!("send failed: {e}"))?;
        let got = next_data(&mut ws).await?;
        if got == want {
            Ok(())
        } else {
            Err(format!(
                "expected {}, got {}",
                describe(&want),
                describe(&got)
            ))
        }
    })
    .await;
    let broken = res.is_err();
    r.check(
        "deflate: receive fragmented (!frag text 16 200000), 5.2 MB in 16 fragments",
        res,
    );
    if broken {
        return;
    }
    r.check(
        "deflate: close 4000 + reason, the peer echoes it",
        bounded(close_and_expect(
            &mut ws,
            CloseCode(4000),
            "compressed connection done ✓",
        ))
        .await,
    );

    // Last, on a connection of its own: deflate makes incompressible data a little longer, so
    // the peer's compressed echo is a frame somewhat larger than the message.
    let res = bounded(async {
        let req = ClientRequest::new("", "/deflate-random").config(config());
        let (mut ws, _) = open_request(base, req).await?;
        let size = RANDOM_SIZE.load(Ordering::Relaxed) as usize;
        let msg = Message::binary(random_bytes(size, 3));
        let (in0, out0) = wire(&ws);
        echo(&mut ws, msg).await?;
        let (in1, out1) = wire(&ws);
        println!(
            "  (binary {size} B random: on the wire: {} bytes sent, {} received)",
            out1 - out0,
            in1 - in0
        );
        close_and_expect(&mut ws, CloseCode::NORMAL, "done").await
    })
    .await;
    r.check(
        &format!(
            "deflate echo binary {} B random (incompressible), own connection",
            RANDOM_SIZE.load(Ordering::Relaxed)
        ),
        res,
    );
}

fn close_codes(all: bool) -> Vec<u16> {
    let mut codes: Vec<u16> = (1000..=1003).chain(1007..=1014).collect();
    if all {
        codes.extend(3000..=4999);
    } else {
        codes.extend([3000, 3001, 3999, 4000, 4001, 4321, 4999]);
    }
    codes
}

/// Opens a connection, leaves it idle (no keepalive pings either) for longer than the close
/// timeout, then closes it: the close handshake must still complete.
async fn close_after_idle(base: String) -> Result<(), String> {
    let mut ws = open(&base, "/").await?;
    tokio::time::sleep(IDLE_BEFORE_CLOSE).await;
    close_and_expect(&mut ws, CloseCode(4003), "after a long silence").await
}

const IDLE_BEFORE_CLOSE: Duration = Duration::from_secs(6);

async fn close_code_checks(base: &str, all: bool, r: &mut Report) {
    // Runs alongside the sweep below.
    let idle = tokio::spawn(bounded(close_after_idle(base.to_string())));
    let codes = close_codes(all);
    let total = codes.len();
    let sem = std::sync::Arc::new(tokio::sync::Semaphore::new(16));
    let mut set = tokio::task::JoinSet::new();
    for code in codes {
        let base = base.to_string();
        let sem = sem.clone();
        set.spawn(async move {
            let _permit = sem.acquire_owned().await;
            let res = bounded(async {
                let mut ws = open(&base, "/").await?;
                let reason = format!("closing with {code} ✓");
                close_and_expect(&mut ws, CloseCode(code), &reason).await
            })
            .await;
            (code, res)
        });
    }
    let mut failures = Vec::new();
    while let Some(j) = set.join_next().await {
        match j {
            Ok((_, Ok(()))) => {}
            Ok((code, Err(e))) => failures.push((code, e)),
            Err(e) => failures.push((0, format!("task failed: {e}"))),
        }
    }
    failures.sort_by_key(|f| f.0);
    let res = if failures.is_empty() {
        Ok(())
    } else {
        let shown: Vec<String> = failures
            .iter()
            .take(5)
            .map(|(c, e)| format!("{c}: {e}"))
            .collect();
        Err(format!(
            "{} of {total} failed; first: {}",
            failures.len(),
            shown.join("; ")
        ))
    };
    r.check(
        &format!("we close with each of {total} codes + reason, the peer echoes the code"),
        res,
    );
    r.check(
        &format!(
            "we close (4003) after {} s idle without pings, the peer echoes the code",
            IDLE_BEFORE_CLOSE.as_secs()
        ),
        idle.await
            .unwrap_or_else(|e| Err(format!("task failed: {e}"))),
    );

    let res = bounded(async {
        let mut ws = open(base, "/").await?;
        ws.send(Message::text("!close 4321 peer says bye"))
            .await
            .map_err(|e| format!("send failed: {e}"))?;
        match next_data(&mut ws).await? {
            Message::Close(Some(f)) if f.code.0 == 4321 && f.reason == "peer says bye" => {}
            m => {
                return Err(format!(
                    "expected close 4321 \"peer says bye\", got {}",
                    describe(&m)
                ));
            }
        }
        match ws.recv().await {
            None => Ok(()),
            Some(Ok(m)) => Err(format!("after the close: {}", describe(&m))),
            Some(Err(e)) => Err(format!("after the close: {e}")),
        }
    })
    .await;
    r.check(
        "the peer closes with 4321 + reason, we see it and finish cleanly",
        res,
    );
}

#[tokio::main]
async fn main() {
    let mut expect_reject: Option<u16> = None;
    let mut all_codes = true;
    let mut url: Option<String> = None;
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        match a.as_str() {
            "--expect-reject" => expect_reject = args.next().and_then(|s| s.parse().ok()),
            "--close-codes" => all_codes = args.next().as_deref() != Some("sample"),
            "--random-size" => {
                let n = args.next().and_then(|s| s.parse().ok()).unwrap_or(16 << 20);
                RANDOM_SIZE.store(n, Ordering::Relaxed);
            }
            "--expect-ext" => {
                let v = args.next().unwrap_or_default();
                let _ = EXPECT_EXT.set(Some((v != "none").then_some(v)));
            }
            _ if a.starts_with("ws://") => url = Some(a),
            _ => {
                eprintln!(
                    "usage: interop_client [--expect-reject STATUS] [--close-codes all|sample] \
                     [--expect-ext VALUE|none] [--random-size N] ws://HOST:PORT"
                );
                std::process::exit(2);
            }
        }
    }
    let Some(url) = url else {
        eprintln!("usage: interop_client [--expect-reject STATUS] ws://HOST:PORT");
        std::process::exit(2);
    };
    let mut r = Report { failed: 0 };
    if let Some(status) = expect_reject {
        let res = bounded(async {
            match ws_tokio::connect_with_config(&url, config()).await {
                Err(Error::Rejected { status: s }) if s == status => Ok(()),
                Err(e) => Err(format!("expected rejection with {status}, got: {e}")),
                Ok(_) => Err(format!(
                    "expected rejection with {status}, got a connection"
                )),
            }
        })
        .await;
        r.check(&format!("rejected with {status}"), res);
    } else {
        let base = url.trim_end_matches('/').to_string();
        let deflate =
            matches!(expected_ext(), Some(Some(v)) if ext_key(&v).0 == "permessage-deflate");
        if deflate {
            STEP_SECS.store(120, Ordering::Relaxed);
        }
        echo_checks(&base, &mut r).await;
        if deflate {
            deflate_checks(&base, &mut r).await;
        }
        fragment_checks(&base, &mut r).await;
        ping_checks(&base, &mut r).await;
        subprotocol_checks(&base, &mut r).await;
        close_code_checks(&base, all_codes, &mut r).await;
    }
    std::process::exit(if r.failed == 0 { 0 } else { 1 });
}
