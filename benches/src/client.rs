//! A minimal WebSocket client for load generation: raw frames over a `TcpStream`.
//!
//! It does only what the load generator needs, as cheaply as possible so that the server, not
//! the client, is what is measured: every frame it sends carries a fresh random masking key
//! (RFC 6455 section 5.3) and is masked word-wise; frames it receives are parsed without
//! copying their payload (only the first [`HEAD`] bytes are kept, for checks and timestamps).

use std::hash::{BuildHasher, Hasher};
use std::io;
use std::net::SocketAddr;
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// Opcodes the client sends or understands.
pub mod op {
    /// Continuation frame.
    pub const CONT: u8 = 0x0;
    /// Text frame.
    pub const TEXT: u8 = 0x1;
    /// Binary frame.
    pub const BINARY: u8 = 0x2;
    /// Close frame.
    pub const CLOSE: u8 = 0x8;
    /// Ping frame.
    pub const PING: u8 = 0x9;
    /// Pong frame.
    pub const PONG: u8 = 0xA;
}

/// How many leading payload bytes of a received frame are kept.
pub const HEAD: usize = 16;

/// wyrand: a small, fast generator, seeded from the OS (through `RandomState`).
#[derive(Debug, Clone)]
pub struct Rng(u64);

impl Rng {
    /// A generator seeded from OS randomness.
    pub fn from_entropy() -> Rng {
        let mut h = std::collections::hash_map::RandomState::new().build_hasher();
        h.write_u64(
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_nanos() as u64)
                .unwrap_or(0),
        );
        Rng(h.finish())
    }

    /// A generator with a fixed seed.
    pub const fn with_seed(seed: u64) -> Rng {
        Rng(seed)
    }

    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0xa076_1d64_78bd_642f);
        let t = (self.0 as u128).wrapping_mul((self.0 ^ 0xe703_7ed1_a0b4_28db) as u128);
        ((t >> 64) as u64) ^ (t as u64)
    }

    /// A fresh masking key.
    pub fn mask(&mut self) -> [u8; 4] {
        (self.next_u64() as u32).to_ne_bytes()
    }

    /// A float in `[0, 1)`.
    pub fn next_f64(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }
}

/// Writes `src ^ key` (key repeating from payload offset 0) into `dst`, 8 bytes at a time.
pub fn mask_copy(dst: &mut [u8], src: &[u8], key: [u8; 4]) {
    assert_eq!(dst.len(), src.len());
    let k = u32::from_ne_bytes(key) as u64;
    let k64 = k | (k << 32);
    let mut d = dst.chunks_exact_mut(8);
    let mut s = src.chunks_exact(8);
    for (d, s) in (&mut d).zip(&mut s) {
        let v = u64::from_ne_bytes(s.try_into().unwrap_or([0; 8])) ^ k64;
        d.copy_from_slice(&v.to_ne_bytes());
    }
    // The remainder starts at a multiple of 8, so the key starts over at index 0.
    for (i, (d, s)) in d.into_remainder().iter_mut().zip(s.remainder()).enumerate() {
        *d = s ^ key[i & 3];
    }
}

/// Appends a masked frame (FIN set) with a fresh key from `rng` to `out`.
pub fn encode_frame(out: &mut Vec<u8>, opcode: u8, payload: &[u8], rng: &mut Rng) {
    let key = rng.mask();
    let len = payload.len();
    out.push(0x80 | opcode);
    if len < 126 {
        out.push(0x80 | len as u8);
    } else if len <= 0xFFFF {
        out.push(0x80 | 126);
        out.extend_from_slice(&(len as u16).to_be_bytes());
    } else {
        out.push(0x80 | 127);
        out.extend_from_slice(&(len as u64).to_be_bytes());
    }
    out.extend_from_slice(&key);
    let start = out.len();
    out.resize(start + len, 0);
    mask_copy(&mut out[start..], payload, key);
}

/// What was received: the frame's header and its first payload bytes.
#[derive(Debug, Clone, Copy)]
pub struct FrameInfo {
    /// The opcode.
    pub opcode: u8,
    /// FIN bit.
    pub fin: bool,
    /// RSV1 bit (set on the first frame of a compressed message).
    pub rsv1: bool,
    /// Payload length.
    pub len: u64,
    /// The first `min(len, HEAD)` payload bytes.
    pub head: [u8; HEAD],
}

impl FrameInfo {
    /// The kept leading payload bytes.
    pub fn head(&self) -> &[u8] {
        &self.head[..(self.len as usize).min(HEAD)]
    }
}

/// Parses an unmasked (server-to-client) header: `(header_len, first byte, payload_len)`.
fn parse_header(b: &[u8]) -> io::Result<Option<(usize, u8, u64)>> {
    let [b0, b1, rest @ ..] = b else {
        return Ok(None);
    };
    if b1 & 0x80 != 0 {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            "server sent a masked frame",
        ));
    }
    let (ext, len) = match b1 & 0x7F {
        126 if rest.len() >= 2 => (2, u16::from_be_bytes([rest[0], rest[1]]) as u64),
        127 if rest.len() >= 8 => {
            let mut a = [0u8; 8];
            a.copy_from_slice(&rest[..8]);
            (8, u64::from_be_bytes(a))
        }
        126 | 127 => return Ok(None),
        l => (0, l as u64),
    };
    Ok(Some((2 + ext, *b0, len)))
}

/// A read buffer that parses frames as bytes arrive, skipping payloads.
#[derive(Debug)]
pub struct FrameReader {
    buf: Box<[u8]>,
    start: usize,
    end: usize,
}

impl FrameReader {
    /// A reader with a buffer of `cap` bytes (at least 256).
    pub fn new(cap: usize) -> FrameReader {
        FrameReader {
            buf: vec![0u8; cap.max(256)].into_boxed_slice(),
            start: 0,
            end: 0,
        }
    }

    /// Bytes received and not yet parsed.
    pub fn buffered(&self) -> &[u8] {
        &self.buf[self.start..self.end]
    }

    /// Marks `n` buffered bytes as used.
    pub fn consume(&mut self, n: usize) {
        self.start += n;
        debug_assert!(self.start <= self.end);
    }

    /// Reads more bytes; fails on EOF.
    pub async fn fill<R: AsyncRead + Unpin>(&mut self, r: &mut R) -> io::Result<()> {
        if self.start == self.end {
            self.start = 0;
            self.end = 0;
        } else if self.end == self.buf.len() {
            self.buf.copy_within(self.start..self.end, 0);
            self.end -= self.start;
            self.start = 0;
        }
        let n = r.read(&mut self.buf[self.end..]).await?;
        if n == 0 {
            return Err(io::ErrorKind::UnexpectedEof.into());
        }
        self.end += n;
        Ok(())
    }

    /// Reads one whole frame, keeping only its header and first bytes.
    pub async fn read_frame<R: AsyncRead + Unpin>(&mut self, r: &mut R) -> io::Result<FrameInfo> {
        self.read_frame_with(r, |_, _| {}).await
    }

    /// Reads one whole frame like [`read_frame`](Self::read_frame), handing every piece of its
    /// payload to `on_payload` as it arrives, with the frame's first header byte (FIN, RSV
    /// bits, opcode): in order, as slices of the read buffer, not copies.
    pub async fn read_frame_with<R, F>(
        &mut self,
        r: &mut R,
        mut on_payload: F,
    ) -> io::Result<FrameInfo>
    where
        R: AsyncRead + Unpin,
        F: FnMut(u8, &[u8]),
    {
        let (hl, b0, len) = loop {
            if let Some(h) = parse_header(self.buffered())? {
                break h;
            }
            self.fill(r).await?;
        };
        self.start += hl;
        let mut head = [0u8; HEAD];
        let mut got = 0usize;
        let mut remaining = len;
        loop {
            let avail = ((self.end - self.start) as u64).min(remaining) as usize;
            if got < HEAD {
                let k = avail.min(HEAD - got);
                head[got..got + k].copy_from_slice(&self.buf[self.start..self.start + k]);
                got += k;
            }
            if avail > 0 {
                on_payload(b0, &self.buf[self.start..self.start + avail]);
            }
            self.start += avail;
            remaining -= avail as u64;
            if remaining == 0 {
                return Ok(FrameInfo {
                    opcode: b0 & 0x0F,
                    fin: b0 & 0x80 != 0,
                    rsv1: b0 & 0x40 != 0,
                    len,
                    head,
                });
            }
            self.fill(r).await?;
        }
    }
}

/// A Chrome-like opening handshake request for `host` with `key`.
pub fn handshake_request(host: &str, key: &str) -> String {
    handshake_request_to(host, "/echo", key, None)
}

/// A Chrome-like opening handshake request for `path` on `host` with `key`, offering
/// `extensions` (a `Sec-WebSocket-Extensions` value) when given.
pub fn handshake_request_to(host: &str, path: &str, key: &str, extensions: Option<&str>) -> String {
    let ext = extensions
        .map(|e| format!("Sec-WebSocket-Extensions: {e}\r\n"))
        .unwrap_or_default();
    format!(
        "GET {path} HTTP/1.1\r\n\
         Host: {host}\r\n\
         Connection: Upgrade\r\n\
         Pragma: no-cache\r\n\
         Cache-Control: no-cache\r\n\
         User-Agent: Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) \
         Chrome/124.0.0.0 Safari/537.36\r\n\
         Upgrade: websocket\r\n\
         Origin: http://{host}\r\n\
         Sec-WebSocket-Version: 13\r\n\
         Accept-Encoding: gzip, deflate, br, zstd\r\n\
         Accept-Language: en-US,en;q=0.9\r\n\
         Sec-WebSocket-Key: {key}\r\n{ext}\r\n"
    )
}

/// Finds `\r\n\r\n`.
fn find_head_end(b: &[u8]) -> Option<usize> {
    b.windows(4).position(|w| w == b"\r\n\r\n").map(|p| p + 4)
}

/// Checks a `101` response head and its `Sec-WebSocket-Accept`; returns its
/// `Sec-WebSocket-Extensions` value, if any.
fn check_response(head: &[u8], expect_accept: &[u8]) -> io::Result<Option<String>> {
    let bad = |m: &str| io::Error::new(io::ErrorKind::InvalidData, m.to_string());
    let text = std::str::from_utf8(head).map_err(|_| bad("response is not UTF-8"))?;
    let mut lines = text.split("\r\n");
    let status = lines.next().unwrap_or("");
    if !status.starts_with("HTTP/1.1 101") {
        return Err(bad(&format!("unexpected status line {status:?}")));
    }
    let mut ok = false;
    let mut extensions = None;
    for l in lines {
        if let Some((n, v)) = l.split_once(':') {
            let n = n.trim();
            if n.eq_ignore_ascii_case("sec-websocket-accept")
                && v.trim().as_bytes() == expect_accept
            {
                ok = true;
            } else if n.eq_ignore_ascii_case("sec-websocket-extensions") {
                extensions = Some(v.trim().to_string());
            }
        }
    }
    if ok {
        Ok(extensions)
    } else {
        Err(bad("missing or wrong Sec-WebSocket-Accept"))
    }
}

/// A connected client: the socket, a frame reader, a write buffer and a mask generator.
#[derive(Debug)]
pub struct WsClient {
    /// The transport.
    pub stream: TcpStream,
    /// Parses what the server sends.
    pub reader: FrameReader,
    /// Masking keys (one fresh key per frame).
    pub rng: Rng,
    /// Reused frame buffer.
    pub wbuf: Vec<u8>,
}

impl WsClient {
    /// Connects over TCP (with `TCP_NODELAY`) and performs the opening handshake.
    /// `read_cap` sizes the read buffer.
    pub async fn connect(addr: SocketAddr, read_cap: usize, rng: Rng) -> io::Result<WsClient> {
        Ok(WsClient::connect_to(addr, "/echo", None, read_cap, rng)
            .await?
            .0)
    }

    /// [`connect`](Self::connect) to `path`, offering `extensions` (a
    /// `Sec-WebSocket-Extensions` value) when given; also returns the server's
    /// `Sec-WebSocket-Extensions` answer.
    pub async fn connect_to(
        addr: SocketAddr,
        path: &str,
        extensions: Option<&str>,
        read_cap: usize,
        mut rng: Rng,
    ) -> io::Result<(WsClient, Option<String>)> {
        let mut stream = TcpStream::connect(addr).await?;
        stream.set_nodelay(true)?;
        let mut nonce = [0u8; 16];
        nonce[..8].copy_from_slice(&rng.next_u64().to_ne_bytes());
        nonce[8..].copy_from_slice(&rng.next_u64().to_ne_bytes());
        let key = ws_proto::handshake::generate_key(nonce);
        let key = std::str::from_utf8(&key).unwrap_or_default().to_string();
        let expect = ws_proto::handshake::accept_key(key.as_bytes());
        let req = handshake_request_to(&addr.to_string(), path, &key, extensions);
        stream.write_all(req.as_bytes()).await?;
        let mut reader = FrameReader::new(read_cap.max(4096));
        let head_len = loop {
            if let Some(n) = find_head_end(reader.buffered()) {
                break n;
            }
            if reader.buffered().len() > 8192 {
                return Err(io::Error::new(
                    io::ErrorKind::InvalidData,
                    "response head too long",
                ));
            }
            reader.fill(&mut stream).await?;
        };
        let agreed = check_response(&reader.buffered()[..head_len], &expect)?;
        reader.consume(head_len);
        Ok((
            WsClient {
                stream,
                reader,
                rng,
                wbuf: Vec::new(),
            },
            agreed,
        ))
    }

    /// Sends one masked frame (FIN set).
    pub async fn send(&mut self, opcode: u8, payload: &[u8]) -> io::Result<()> {
        self.wbuf.clear();
        encode_frame(&mut self.wbuf, opcode, payload, &mut self.rng);
        self.stream.write_all(&self.wbuf).await
    }

    /// Receives the next data frame, skipping pings and pongs (pings are answered). A close
    /// frame from the server is an error.
    pub async fn recv_data(&mut self) -> io::Result<FrameInfo> {
        loop {
            let f = self.reader.read_frame(&mut self.stream).await?;
            match f.opcode {
                op::TEXT | op::BINARY | op::CONT => return Ok(f),
                op::PING => {
                    let head = f.head;
                    let n = (f.len as usize).min(HEAD);
                    self.send(op::PONG, &head[..n]).await?;
                }
                op::PONG => {}
                _ => {
                    return Err(io::Error::new(
                        io::ErrorKind::ConnectionAborted,
                        format!("unexpected opcode {:#x}", f.opcode),
                    ));
                }
            }
        }
    }

    /// The close handshake as a client: sends close 1000, waits for the server's close frame
    /// and then for its EOF (the server closes the TCP connection first), within `limit`.
    /// Returns whether the whole handshake completed.
    pub async fn close(mut self, limit: Duration) -> bool {
        let fut = async {
            self.send(op::CLOSE, &1000u16.to_be_bytes()).await?;
            loop {
                let f = self.reader.read_frame(&mut self.stream).await?;
                if f.opcode == op::CLOSE {
                    break;
                }
            }
            let mut sink = [0u8; 256];
            loop {
                if self.stream.read(&mut sink).await? == 0 {
                    return Ok::<_, io::Error>(());
                }
            }
        };
        matches!(tokio::time::timeout(limit, fut).await, Ok(Ok(())))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mask_copy_matches_bytewise() {
        let src: Vec<u8> = (0..1000u32).map(|i| (i * 7) as u8).collect();
        let key = [1, 2, 3, 250];
        for len in [0, 1, 7, 8, 9, 63, 64, 65, 999, 1000] {
            let mut dst = vec![0u8; len];
            mask_copy(&mut dst, &src[..len], key);
            for i in 0..len {
                assert_eq!(dst[i], src[i] ^ key[i & 3]);
            }
        }
    }

    #[test]
    fn header_forms() {
        let mut rng = Rng::with_seed(1);
        for len in [0usize, 125, 126, 65535, 65536] {
            let payload = vec![7u8; len];
            let mut out = Vec::new();
            encode_frame(&mut out, op::BINARY, &payload, &mut rng);
            // Unmask our own frame and parse it as if it were a server frame.
            let mut b = out.clone();
            b[1] &= 0x7F;
            let (hl, b0, l) = parse_header(&b).unwrap().unwrap();
            assert_eq!(
                (b0 & 0x0F, b0 & 0x80 != 0, l as usize),
                (op::BINARY, true, len)
            );
            assert_eq!(out.len(), hl + 4 + len);
            let key: [u8; 4] = out[hl..hl + 4].try_into().unwrap();
            for (i, &x) in out[hl + 4..].iter().enumerate() {
                assert_eq!(x ^ key[i & 3], 7);
            }
        }
    }

    #[test]
    fn masks_differ_per_frame() {
        let mut rng = Rng::from_entropy();
        let a = rng.mask();
        let b = rng.mask();
        let c = rng.mask();
        assert!(a != b || b != c);
    }
}
