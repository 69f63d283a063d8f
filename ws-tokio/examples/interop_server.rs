//! Echo server for the interoperability checks in `ws-tokio/tests/interop/run.sh`.
//!
//! `cargo run -p ws-tokio --example interop_server -- [OPTIONS]`
//!
//! Echoes every text and binary message, answers pings (the adapter does that) and echoes the
//! peer's close code. Everything it sees is logged to stdout, one line per event, each line
//! starting with the wall-clock time in milliseconds since the Unix epoch and the connection
//! number, so a test can check what the server saw and when:
//!
//! ```text
//! LISTENING 127.0.0.1:PORT
//! <ms> conn=1 accept path="/" protocol=chat offered=["chat"] extensions=["permessage-deflate"] negotiated="permessage-deflate" wire_in=230 wire_out=160
//! <ms> conn=1 recv text len=5 text="hello" wire_in=241 wire_out=160
//! <ms> conn=1 recv binary len=125 fnv=0123456789abcdef wire_in=380 wire_out=171
//! <ms> conn=1 recv ping len=4 wire_in=390 wire_out=300
//! <ms> conn=1 recv close code=1000 reason="bye" wire_in=400 wire_out=306
//! <ms> conn=1 end clean wire_in=400 wire_out=310
//! <ms> conn=2 end error=Timeout(Pong) display="timeout: Pong" wire_in=300 wire_out=200
//! <ms> conn=3 reject path="/reject" status=403
//! ```
//!
//! `negotiated` is the `Sec-WebSocket-Extensions` value of the 101 response as it went out on
//! the wire (`-` when compression was not agreed); `wire_in` / `wire_out` count the bytes read
//! from and written to the TCP connection so far (handshake included), so a test can see how
//! many bytes a message took on the wire (compressed or not).
//!
//! Paths:
//! - `/reject` (and anything under it) is refused with HTTP 403 and a text body;
//! - `/close-me/CODE` accepts, then closes at once with `CODE` and reason `server says bye`;
//! - `/close-after/MS/CODE` accepts, waits `MS` milliseconds without reading, then closes the
//!   same way;
//! - anything else is an echo connection.
//!
//! Options:
//! - `--addr HOST:PORT` (default `127.0.0.1:0`; the bound address is printed);
//! - `--protocols a,b,...`: supported subprotocols; the first one the client offers that is in
//!   this list is chosen;
//! - `--ping-interval-ms N` / `--no-ping`: keepalive pings (default: the library default);
//! - `--pong-timeout-ms N`, `--close-timeout-ms N`: the matching [`Config`] fields;
//! - `--lean`: permessage-deflate with [`DeflateConfig::LEAN`] (no context takeover either way);
//!   `--no-compression`: no permessage-deflate (the default is [`DeflateConfig::DEFAULT`]).

use std::io;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use ws_tokio::{
    AcceptResponse, CloseCode, CloseFrame, Config, DeflateConfig, Error, Message, Reject,
};

fn now_ms() -> u128 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis())
        .unwrap_or(0)
}

/// 64-bit FNV-1a, so the log can identify a binary payload without printing it.
fn fnv(data: &[u8]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for &b in data {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    h
}

/// A transport wrapper that counts the bytes read and written and keeps a copy of the first
/// bytes written (the handshake response), so the log can show what went over the wire.
struct Tap<S> {
    inner: S,
    stats: Arc<TapStats>,
}

#[derive(Default)]
struct TapStats {
    read: AtomicU64,
    written: AtomicU64,
    /// The first bytes written, up to the end of the HTTP head (at most 8 KiB).
    head: Mutex<Vec<u8>>,
}

impl<S> Tap<S> {
    fn new(inner: S) -> Self {
        Tap {
            inner,
            stats: Arc::default(),
        }
    }
}

impl TapStats {
    fn wire(&self) -> String {
        format!(
            "wire_in={} wire_out={}",
            self.read.load(Ordering::Relaxed),
            self.written.load(Ordering::Relaxed)
        )
    }

    /// The value of `Sec-WebSocket-Extensions` in the captured response head.
    fn response_extensions(&self) -> Option<String> {
        let head = self.head.lock().unwrap_or_else(|e| e.into_inner());
        let text = String::from_utf8_lossy(&head);
        let values: Vec<&str> = text
            .split("\r\n")
            .filter_map(|line| line.split_once(':'))
            .filter(|(name, _)| name.trim().eq_ignore_ascii_case("sec-websocket-extensions"))
            .map(|(_, v)| v.trim())
            .collect();
        if values.is_empty() {
            None
        } else {
            Some(values.join(", "))
        }
    }
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
        this.stats.read.fetch_add(n as u64, Ordering::Relaxed);
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
            let before = this.stats.written.fetch_add(n as u64, Ordering::Relaxed);
            if before < 8192 {
                let mut head = this.stats.head.lock().unwrap_or_else(|e| e.into_inner());
                if !head.windows(4).any(|w| w == b"\r\n\r\n") {
                    let take = n.min(8192 - head.len().min(8192));
                    head.extend_from_slice(&buf[..take]);
                }
            }
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
            // (The handshake is written with plain writes; only frames come here.)
            this.stats.written.fetch_add(n as u64, Ordering::Relaxed);
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

struct Options {
    addr: String,
    protocols: Vec<String>,
    config: Config,
}

fn usage() -> ! {
    eprintln!(
        "usage: interop_server [--addr HOST:PORT] [--protocols a,b] [--ping-interval-ms N | \
         --no-ping] [--pong-timeout-ms N] [--close-timeout-ms N] [--lean | --no-compression]\
         [--any-origin]"
    );
    std::process::exit(2);
}

fn parse_args() -> Options {
    let mut o = Options {
        addr: "127.0.0.1:0".into(),
        protocols: Vec::new(),
        config: Config::default(),
    };
    let mut args = std::env::args().skip(1);
    let ms = |v: Option<String>| -> Duration {
        match v.and_then(|v| v.parse::<u64>().ok()) {
            Some(n) if n > 0 => Duration::from_millis(n),
            _ => usage(),
        }
    };
    while let Some(a) = args.next() {
        match a.as_str() {
            "--addr" => o.addr = args.next().unwrap_or_else(|| usage()),
            "--protocols" => {
                o.protocols = args
                    .next()
                    .unwrap_or_else(|| usage())
                    .split(',')
                    .filter(|s| !s.is_empty())
                    .map(String::from)
                    .collect();
            }
            "--ping-interval-ms" => o.config = o.config.with_ping_interval(Some(ms(args.next()))),
            "--no-ping" => o.config = o.config.with_ping_interval(None),
            "--pong-timeout-ms" => o.config = o.config.with_pong_timeout(ms(args.next())),
            "--close-timeout-ms" => o.config = o.config.with_close_timeout(ms(args.next())),
            "--lean" => o.config = o.config.with_compression(Some(DeflateConfig::LEAN)),
            // The browser check loads its page from another port: any Origin may connect.
            "--any-origin" => {
                o.config = o.config.with_origin(ws_tokio::origin::OriginPolicy::any())
            }
            "--no-compression" => o.config = o.config.with_compression(None),
            _ => usage(),
        }
    }
    o
}

#[tokio::main]
async fn main() -> std::io::Result<()> {
    let opts = parse_args();
    let listener = TcpListener::bind(&opts.addr).await?;
    println!("LISTENING {}", listener.local_addr()?);
    let protocols: &'static [String] = Vec::leak(opts.protocols);
    let config = opts.config;
    let mut next_id: u64 = 0;
    loop {
        let (tcp, _) = listener.accept().await?;
        let _ = tcp.set_nodelay(true);
        next_id += 1;
        tokio::spawn(serve(next_id, tcp, config, protocols));
    }
}

async fn serve(id: u64, tcp: TcpStream, config: Config, protocols: &[String]) {
    let tcp = Tap::new(tcp);
    let stats = tcp.stats.clone();
    let mut path = String::new();
    let mut offered: Vec<String> = Vec::new();
    let mut extensions: Vec<String> = Vec::new();
    let mut chosen: Option<String> = None;
    let result = ws_tokio::accept_with(tcp, config, |req| {
        path = req.path().to_string();
        offered = req.protocols().map(String::from).collect();
        extensions = req.extensions().map(String::from).collect();
        if path == "/reject" || path.starts_with("/reject/") || path.starts_with("/reject?") {
            return Err(Reject::status(403)
                .header("Content-Type", "text/plain")
                .body("rejected by interop_server\n"));
        }
        chosen = offered.iter().find(|p| protocols.contains(p)).cloned();
        Ok(match &chosen {
            Some(p) => AcceptResponse::new().protocol(p.clone()),
            None => AcceptResponse::new(),
        })
    })
    .await;
    let mut ws = match result {
        Ok(ws) => ws,
        Err(Error::Rejected { status }) => {
            println!(
                "{} conn={id} reject path={path:?} status={status}",
                now_ms()
            );
            return;
        }
        Err(e) => {
            println!(
                "{} conn={id} handshake-failed path={path:?} error={e:?}",
                now_ms()
            );
            return;
        }
    };
    let negotiated = stats
        .response_extensions()
        .map_or_else(|| "-".to_string(), |v| format!("{v:?}"));
    println!(
        "{} conn={id} accept path={path:?} protocol={} offered={offered:?} extensions={extensions:?} negotiated={negotiated} {}",
        now_ms(),
        chosen.as_deref().unwrap_or("-"),
        stats.wire(),
    );
    let close_after = path.strip_prefix("/close-after/").and_then(|rest| {
        let (ms, code) = rest.split_once('/')?;
        Some((ms.parse::<u64>().ok()?, code.to_string()))
    });
    if let Some((ms, _)) = close_after {
        tokio::time::sleep(Duration::from_millis(ms.min(60_000))).await;
    }
    let close_code = path
        .strip_prefix("/close-me/")
        .map(String::from)
        .or(close_after.map(|(_, code)| code));
    if let Some(code) = close_code {
        let code = CloseCode(code.parse().unwrap_or(1000));
        match ws
            .close(Some(CloseFrame::new(code, "server says bye")))
            .await
        {
            Ok(()) => println!(
                "{} conn={id} end clean (closed by us with {}) {}",
                now_ms(),
                code.0,
                stats.wire()
            ),
            Err(e) => println!(
                "{} conn={id} end error={e:?} display=\"{e}\" {}",
                now_ms(),
                stats.wire()
            ),
        }
        return;
    }
    loop {
        let msg = match ws.recv().await {
            None => {
                println!("{} conn={id} end clean {}", now_ms(), stats.wire());
                return;
            }
            Some(Err(e)) => {
                println!(
                    "{} conn={id} end error={e:?} display=\"{e}\" {}",
                    now_ms(),
                    stats.wire()
                );
                return;
            }
            Some(Ok(m)) => m,
        };
        let t = now_ms();
        let w = stats.wire();
        match &msg {
            Message::Text(s) if s.len() <= 200 => {
                println!("{t} conn={id} recv text len={} text={s:?} {w}", s.len())
            }
            Message::Text(s) => println!(
                "{t} conn={id} recv text len={} fnv={:016x} {w}",
                s.len(),
                fnv(s.as_bytes())
            ),
            Message::Binary(b) => println!(
                "{t} conn={id} recv binary len={} fnv={:016x} {w}",
                b.len(),
                fnv(b)
            ),
            Message::Ping(p) => println!("{t} conn={id} recv ping len={} {w}", p.len()),
            Message::Pong(p) => println!("{t} conn={id} recv pong len={} {w}", p.len()),
            Message::Close(Some(f)) => {
                println!(
                    "{t} conn={id} recv close code={} reason={:?} {w}",
                    f.code.0, f.reason
                )
            }
            Message::Close(None) => println!("{t} conn={id} recv close code=none {w}"),
        }
        if let Message::Text(_) | Message::Binary(_) = msg {
            if let Err(e) = ws.send(msg).await {
                println!(
                    "{} conn={id} end send-error={e:?} display=\"{e}\" {}",
                    now_ms(),
                    stats.wire()
                );
                return;
            }
        }
    }
}
