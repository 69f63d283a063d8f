//! Shared helpers: connected pairs over duplex and loopback TCP, hand-built frames, a raw frame
//! reader, raw client and server handshakes.
#![allow(dead_code, unreachable_pub)]

use std::time::Duration;

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, DuplexStream};
use tokio::net::{TcpListener, TcpStream};
use ws_tokio::{ClientRequest, Config, MaybeTlsStream, WebSocket};

/// Every test step is bounded by this.
pub const STEP: Duration = Duration::from_secs(10);

/// Awaits `f`, panicking after [`STEP`].
pub async fn bounded<T>(what: &str, f: impl Future<Output = T>) -> T {
    match tokio::time::timeout(STEP, f).await {
        Ok(v) => v,
        Err(_) => panic!("timed out: {what}"),
    }
}

/// A config with no keepalive, no compression and a short close timeout, for tests that do not
/// test timers (compression has its own round-trip tests).
pub fn quiet() -> Config {
    Config::default()
        .with_ping_interval(None)
        .with_close_timeout(Duration::from_secs(2))
        .with_compression(None)
}

/// [`quiet`] with the default compression setting (permessage-deflate offered and accepted).
pub fn compressed() -> Config {
    quiet().with_compression(Config::default().compression)
}

/// A server and client connected over an in-memory duplex pipe.
pub async fn duplex_pair(
    server: Config,
    client: Config,
    capacity: usize,
) -> (WebSocket<DuplexStream>, WebSocket<DuplexStream>) {
    let (a, b) = tokio::io::duplex(capacity);
    let srv = tokio::spawn(ws_tokio::accept_with_config(a, server));
    let (c, resp) = bounded(
        "client handshake",
        ws_tokio::client(b, ClientRequest::new("localhost", "/").config(client)),
    )
    .await
    .expect("client handshake");
    assert_eq!(resp.status, 101);
    let s = bounded("server handshake", srv)
        .await
        .unwrap()
        .expect("server handshake");
    (s, c)
}

/// A server accepted with `config` over a duplex pipe of `capacity` bytes, and the pipe's
/// other end after a raw client handshake.
pub async fn raw_client_pair(
    config: Config,
    capacity: usize,
) -> (WebSocket<DuplexStream>, DuplexStream) {
    let (mut raw, io) = tokio::io::duplex(capacity);
    let srv = tokio::spawn(ws_tokio::accept_with_config(io, config));
    raw_client_handshake(&mut raw).await;
    let ws = bounded("accept", srv).await.unwrap().expect("accept");
    (ws, raw)
}

/// A server and client connected over loopback TCP (`connect_with_config`).
pub async fn tcp_pair(
    server: Config,
    client: Config,
) -> (WebSocket<TcpStream>, WebSocket<MaybeTlsStream>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let srv = tokio::spawn(async move {
        let (tcp, _) = listener.accept().await.unwrap();
        ws_tokio::accept_with_config(tcp, server).await
    });
    let c = bounded(
        "connect",
        ws_tokio::connect_with_config(&format!("ws://{addr}/chat"), client),
    )
    .await
    .expect("connect");
    let s = bounded("accept", srv).await.unwrap().expect("accept");
    (s, c)
}

/// A listener on loopback and its address.
pub async fn listener() -> (TcpListener, std::net::SocketAddr) {
    let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let a = l.local_addr().unwrap();
    (l, a)
}

pub const KEY: &str = "dGhlIHNhbXBsZSBub25jZQ==";
pub const ACCEPT: &str = "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=";

/// A valid opening request.
pub fn request() -> String {
    format!(
        "GET /chat HTTP/1.1\r\nHost: localhost\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
         Sec-WebSocket-Key: {KEY}\r\nSec-WebSocket-Version: 13\r\n\r\n"
    )
}

/// Reads an HTTP head (up to and including the blank line), one byte at a time so nothing after
/// it is consumed.
pub async fn read_head<S: AsyncRead + Unpin>(io: &mut S) -> String {
    let mut head = Vec::new();
    while !head.ends_with(b"\r\n\r\n") {
        let b = bounded("read head", io.read_u8()).await.expect("head byte");
        head.push(b);
        assert!(head.len() < 16 << 10, "head too long");
    }
    String::from_utf8(head).unwrap()
}

/// Performs a raw client handshake; returns the response head.
pub async fn raw_client_handshake<S: AsyncRead + AsyncWrite + Unpin>(io: &mut S) -> String {
    io.write_all(request().as_bytes()).await.unwrap();
    let head = read_head(io).await;
    assert!(head.starts_with("HTTP/1.1 101"), "{head}");
    assert!(head.contains(ACCEPT), "{head}");
    head
}

/// Performs a raw server handshake: reads the request, answers 101.
pub async fn raw_server_handshake<S: AsyncRead + AsyncWrite + Unpin>(io: &mut S) {
    let head = read_head(io).await;
    let key = head
        .lines()
        .find_map(|l| {
            let (n, v) = l.split_once(':')?;
            n.eq_ignore_ascii_case("sec-websocket-key")
                .then(|| v.trim().to_string())
        })
        .expect("key");
    let accept = ws_proto::handshake::accept_key(key.as_bytes());
    let resp = format!(
        "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
         Sec-WebSocket-Accept: {}\r\n\r\n",
        std::str::from_utf8(&accept).unwrap()
    );
    io.write_all(resp.as_bytes()).await.unwrap();
}

pub const OP_CONT: u8 = 0x0;
pub const OP_TEXT: u8 = 0x1;
pub const OP_BINARY: u8 = 0x2;
pub const OP_CLOSE: u8 = 0x8;
pub const OP_PING: u8 = 0x9;
pub const OP_PONG: u8 = 0xA;

/// A frame header with the first byte given whole (FIN, RSV, opcode) and the declared length.
pub fn header(b0: u8, len: u64, mask: Option<[u8; 4]>) -> Vec<u8> {
    let m = if mask.is_some() { 0x80 } else { 0 };
    let mut out = vec![b0];
    if len < 126 {
        out.push(m | len as u8);
    } else if len <= 0xFFFF {
        out.push(m | 126);
        out.extend_from_slice(&(len as u16).to_be_bytes());
    } else {
        out.push(m | 127);
        out.extend_from_slice(&len.to_be_bytes());
    }
    if let Some(k) = mask {
        out.extend_from_slice(&k);
    }
    out
}

/// A whole frame; `mask` masks the payload.
pub fn frame_b0(b0: u8, payload: &[u8], mask: Option<[u8; 4]>) -> Vec<u8> {
    let mut out = header(b0, payload.len() as u64, mask);
    let start = out.len();
    out.extend_from_slice(payload);
    if let Some(k) = mask {
        for (i, b) in out[start..].iter_mut().enumerate() {
            *b ^= k[i & 3];
        }
    }
    out
}

/// A masked client frame.
pub fn cframe(fin: bool, opcode: u8, payload: &[u8]) -> Vec<u8> {
    frame_b0(
        ((fin as u8) << 7) | opcode,
        payload,
        Some([0x37, 0xfa, 0x21, 0x3d]),
    )
}

/// An unmasked server frame.
pub fn sframe(fin: bool, opcode: u8, payload: &[u8]) -> Vec<u8> {
    frame_b0(((fin as u8) << 7) | opcode, payload, None)
}

/// A close payload.
pub fn close_payload(code: u16, reason: &str) -> Vec<u8> {
    let mut p = code.to_be_bytes().to_vec();
    p.extend_from_slice(reason.as_bytes());
    p
}

/// A decoded frame read by [`FrameReader`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RawFrame {
    pub fin: bool,
    pub rsv: u8,
    pub opcode: u8,
    pub mask: Option<[u8; 4]>,
    /// Unmasked.
    pub payload: Vec<u8>,
}

impl RawFrame {
    pub fn close_code(&self) -> Option<u16> {
        assert_eq!(self.opcode, OP_CLOSE);
        (self.payload.len() >= 2).then(|| u16::from_be_bytes([self.payload[0], self.payload[1]]))
    }
}

/// Reads whole frames from a raw stream.
pub struct FrameReader<S> {
    pub io: S,
    buf: Vec<u8>,
}

impl<S: AsyncRead + Unpin> FrameReader<S> {
    pub fn new(io: S) -> Self {
        FrameReader {
            io,
            buf: Vec::new(),
        }
    }

    async fn fill(&mut self, n: usize) -> bool {
        while self.buf.len() < n {
            self.buf.reserve(64 << 10);
            // Reads into the spare capacity (no large buffer on the stack).
            let got = self.io.read_buf(&mut self.buf).await.unwrap_or(0);
            if got == 0 {
                return false;
            }
        }
        true
    }

    /// The next frame, or `None` at EOF (panics on EOF inside a frame).
    pub async fn next(&mut self) -> Option<RawFrame> {
        if !self.fill(2).await {
            assert!(self.buf.is_empty(), "EOF inside a frame header");
            return None;
        }
        let b0 = self.buf[0];
        let b1 = self.buf[1];
        let masked = b1 & 0x80 != 0;
        let ext = match b1 & 0x7F {
            126 => 2,
            127 => 8,
            _ => 0,
        };
        let hl = 2 + ext + if masked { 4 } else { 0 };
        assert!(self.fill(hl).await, "EOF inside a frame header");
        let len = match b1 & 0x7F {
            126 => u16::from_be_bytes([self.buf[2], self.buf[3]]) as usize,
            127 => u64::from_be_bytes(self.buf[2..10].try_into().unwrap()) as usize,
            l => l as usize,
        };
        let mask = masked.then(|| <[u8; 4]>::try_from(&self.buf[2 + ext..hl]).unwrap());
        assert!(self.fill(hl + len).await, "EOF inside a frame payload");
        let mut payload: Vec<u8> = self.buf[hl..hl + len].to_vec();
        self.buf.drain(..hl + len);
        if let Some(k) = mask {
            for (i, b) in payload.iter_mut().enumerate() {
                *b ^= k[i & 3];
            }
        }
        Some(RawFrame {
            fin: b0 & 0x80 != 0,
            rsv: (b0 >> 4) & 7,
            opcode: b0 & 0x0F,
            mask,
            payload,
        })
    }

    /// The next frame within [`STEP`].
    pub async fn expect(&mut self) -> RawFrame {
        bounded("next frame", self.next())
            .await
            .expect("frame, not EOF")
    }

    /// Asserts that the stream ends (EOF) within [`STEP`], with no more frames.
    pub async fn expect_eof(&mut self) {
        let f = bounded("EOF", self.next()).await;
        assert_eq!(f, None, "expected EOF");
    }
}
