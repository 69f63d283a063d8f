//! The load generator's client: raw frames over a transport, as cheap as possible so that the
//! server, not the client, is what gets measured.
//!
//! Every frame it sends carries a fresh random masking key (RFC 6455 section 5.3) and is masked
//! with `ws-proto`'s word-at-a-time (SIMD where the CPU has it) [`apply_mask`]. Frames it
//! receives are parsed with [`FrameHeader::decode`] without copying their payload: only the
//! first [`HEAD`] bytes are kept (for checks and timestamps), and a callback can see the rest
//! piece by piece. The opening handshake is written by [`write_request`] and checked by
//! [`parse_response`] (status, `Upgrade`, `Connection`, the accept key, the subprotocol and
//! extensions against what was offered).

use std::io;

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use ws_proto::frame::{FrameHeader, OpCode, RSV1};
use ws_proto::handshake::{ClientRequest, generate_key, parse_response, write_request};
use ws_proto::mask::apply_mask;

use super::Target;
use crate::connect::MaybeTlsStream;

/// How many leading payload bytes of a received frame are kept in [`FrameInfo::head`].
pub const HEAD: usize = 16;

/// The longest response head the client accepts (bytes up to the blank line).
pub const MAX_RESPONSE_HEAD: usize = 4096;

/// Header fields a response may have at most.
const MAX_RESPONSE_HEADERS: usize = 64;

/// The header fields Chromium sends besides the WebSocket ones, so that the server parses a
/// request of realistic size.
const BROWSER_HEADERS: [(&str, &[u8]); 5] = [
    ("Pragma", b"no-cache"),
    ("Cache-Control", b"no-cache"),
    (
        "User-Agent",
        b"Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) \
          Chrome/124.0.0.0 Safari/537.36",
    ),
    ("Accept-Encoding", b"gzip, deflate, br, zstd"),
    ("Accept-Language", b"en-US,en;q=0.9"),
];

/// wyrand: a small, fast generator for masking keys and send intervals. Seeded from the
/// operating system ([`Rng::from_entropy`]) or with a fixed seed (tests).
#[derive(Debug, Clone)]
pub struct Rng(u64);

impl Rng {
    /// A generator seeded from the operating system's random source (`getrandom`), or from the
    /// clock if that fails.
    pub fn from_entropy() -> Rng {
        let mut seed = [0u8; 8];
        if getrandom::fill(&mut seed).is_err() {
            let t = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_nanos() as u64);
            seed = t.to_le_bytes();
        }
        Rng(u64::from_le_bytes(seed))
    }

    /// A generator with a fixed seed.
    pub const fn with_seed(seed: u64) -> Rng {
        Rng(seed)
    }

    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0xa076_1d64_78bd_642f);
        let t = u128::from(self.0).wrapping_mul(u128::from(self.0 ^ 0xe703_7ed1_a0b4_28db));
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

/// Appends a masked frame (FIN set) with a fresh key from `rng` to `out`.
pub fn encode_frame(out: &mut Vec<u8>, opcode: OpCode, payload: &[u8], rng: &mut Rng) {
    let key = rng.mask();
    let header = FrameHeader {
        fin: true,
        rsv: 0,
        opcode,
        mask: Some(key),
        payload_len: payload.len() as u64,
    };
    out.extend_from_slice(header.encode().as_bytes());
    let start = out.len();
    out.extend_from_slice(payload);
    apply_mask(&mut out[start..], key, 0);
}

/// A received frame: its header and first payload bytes.
#[derive(Debug, Clone, Copy)]
pub struct FrameInfo {
    /// The opcode.
    pub opcode: OpCode,
    /// FIN bit.
    pub fin: bool,
    /// RSV1 bit (set on the first frame of a compressed message).
    pub rsv1: bool,
    /// Payload length.
    pub len: u64,
    /// The first `min(len, HEAD)` payload bytes (the rest zero).
    pub head: [u8; HEAD],
}

impl FrameInfo {
    /// The kept leading payload bytes.
    pub fn head(&self) -> &[u8] {
        &self.head[..(self.len as usize).min(HEAD)]
    }
}

fn invalid(msg: impl Into<String>) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, msg.into())
}

/// A read buffer that parses frames as bytes arrive, skipping their payloads.
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
        self.start = (self.start + n).min(self.end);
    }

    /// Reads more bytes (making room first); an error on EOF or when the buffer is full of
    /// unparsed bytes.
    pub async fn fill<R: AsyncRead + Unpin>(&mut self, r: &mut R) -> io::Result<()> {
        if self.start == self.end {
            self.start = 0;
            self.end = 0;
        } else if self.end == self.buf.len() {
            if self.start == 0 {
                return Err(invalid("read buffer full"));
            }
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
    /// payload to `on_payload` as it arrives, with the frame's header (FIN, RSV bits,
    /// opcode): in order, as slices of the read buffer, not copies. A masked frame, a
    /// reserved opcode or a malformed length is an `InvalidData` error.
    pub async fn read_frame_with<R, F>(
        &mut self,
        r: &mut R,
        mut on_payload: F,
    ) -> io::Result<FrameInfo>
    where
        R: AsyncRead + Unpin,
        F: FnMut(&FrameHeader, &[u8]),
    {
        let (header, header_len) = loop {
            match FrameHeader::decode(self.buffered()) {
                Ok(Some(h)) => break h,
                Ok(None) => self.fill(r).await?,
                Err(e) => return Err(invalid(format!("bad frame from the server: {e}"))),
            }
        };
        if header.mask.is_some() {
            return Err(invalid("the server sent a masked frame"));
        }
        self.start += header_len;
        let mut head = [0u8; HEAD];
        let mut got = 0usize;
        let mut remaining = header.payload_len;
        loop {
            let avail = ((self.end - self.start) as u64).min(remaining) as usize;
            if got < HEAD {
                let k = avail.min(HEAD - got);
                head[got..got + k].copy_from_slice(&self.buf[self.start..self.start + k]);
                got += k;
            }
            if avail > 0 {
                on_payload(&header, &self.buf[self.start..self.start + avail]);
            }
            self.start += avail;
            remaining -= avail as u64;
            if remaining == 0 {
                return Ok(FrameInfo {
                    opcode: header.opcode,
                    fin: header.fin,
                    rsv1: header.rsv & RSV1 != 0,
                    len: header.payload_len,
                    head,
                });
            }
            self.fill(r).await?;
        }
    }
}

/// What the server agreed to in its `101` answer.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct Agreed {
    /// The subprotocol it chose.
    pub protocol: Option<String>,
    /// Its `Sec-WebSocket-Extensions` answer, the headers joined with `, `.
    pub extensions: Option<String>,
}

/// A connected load client: the transport, a frame reader, a write buffer and a mask
/// generator.
#[derive(Debug)]
pub struct LoadClient {
    /// The transport (TCP, or TLS over TCP for `wss://`).
    pub stream: MaybeTlsStream,
    /// Parses what the server sends.
    pub reader: FrameReader,
    /// Masking keys (one fresh key per frame).
    pub rng: Rng,
    /// Reused frame buffer.
    pub wbuf: Vec<u8>,
}

impl LoadClient {
    /// Connects to `target` (TCP with `TCP_NODELAY`, its proxy and TLS if it has them) and
    /// performs the opening handshake. `read_cap` sizes the read buffer (at least 4 KiB).
    pub async fn connect(
        target: &Target,
        read_cap: usize,
        rng: Rng,
    ) -> io::Result<(LoadClient, Agreed)> {
        let stream = target.open().await?;
        LoadClient::handshake(stream, target, read_cap, rng).await
    }

    /// The opening handshake over an open transport: a request shaped like Chromium's (its
    /// header fields, the target's own after them), then the server's `101` checked.
    pub async fn handshake(
        mut stream: MaybeTlsStream,
        target: &Target,
        read_cap: usize,
        mut rng: Rng,
    ) -> io::Result<(LoadClient, Agreed)> {
        let mut nonce = [0u8; 16];
        nonce[..8].copy_from_slice(&rng.next_u64().to_ne_bytes());
        nonce[8..].copy_from_slice(&rng.next_u64().to_ne_bytes());
        let key = generate_key(nonce);
        let origin = format!("http://{}", target.host_header);
        let mut extra: Vec<(&str, &[u8])> = BROWSER_HEADERS.to_vec();
        if !target.has_header("origin") {
            extra.push(("Origin", origin.as_bytes()));
        }
        extra.extend(
            target
                .headers
                .iter()
                .map(|(n, v)| (n.as_str(), v.as_slice())),
        );
        let protocols: Vec<&str> = target.protocols.iter().map(String::as_str).collect();
        let req = ClientRequest::new(&target.host_header, &target.path, &key)
            .with_protocols(&protocols)
            .with_extensions(target.extensions.as_deref())
            .with_headers(&extra);
        let mut out = vec![0u8; 4096 + target.headers_len()];
        let n = write_request(&mut out, &req)
            .map_err(|e| invalid(format!("cannot write the request: {e}")))?;
        stream.write_all(&out[..n]).await?;
        stream.flush().await?;

        let mut reader = FrameReader::new(read_cap.max(MAX_RESPONSE_HEAD));
        let head_len = loop {
            if let Some(p) = reader.buffered().windows(4).position(|w| w == b"\r\n\r\n") {
                break p + 4;
            }
            if reader.buffered().len() >= MAX_RESPONSE_HEAD {
                return Err(invalid("response head too long"));
            }
            reader.fill(&mut stream).await?;
        };
        let mut headers = [httparse::EMPTY_HEADER; MAX_RESPONSE_HEADERS];
        let agreed = {
            let res = parse_response(
                &reader.buffered()[..head_len],
                &mut headers,
                &key,
                &protocols,
                target.extensions.as_deref(),
            )
            .map_err(|e| invalid(format!("handshake refused: {e}")))?;
            let ext: Vec<&str> = res.extensions().collect();
            Agreed {
                protocol: res.protocol().map(str::to_string),
                extensions: (!ext.is_empty()).then(|| ext.join(", ")),
            }
        };
        reader.consume(head_len);
        Ok((
            LoadClient {
                stream,
                reader,
                rng,
                wbuf: Vec::new(),
            },
            agreed,
        ))
    }

    /// Sends one masked frame (FIN set).
    pub async fn send(&mut self, opcode: OpCode, payload: &[u8]) -> io::Result<()> {
        self.wbuf.clear();
        encode_frame(&mut self.wbuf, opcode, payload, &mut self.rng);
        self.stream.write_all(&self.wbuf).await?;
        // TLS buffers records until flushed; TCP's flush does nothing.
        self.stream.flush().await
    }

    /// Receives the next data frame, answering pings and skipping pongs. A close frame from
    /// the server is a `ConnectionAborted` error.
    pub async fn recv_data(&mut self) -> io::Result<FrameInfo> {
        loop {
            let f = self.reader.read_frame(&mut self.stream).await?;
            match f.opcode {
                OpCode::Text | OpCode::Binary | OpCode::Continuation => return Ok(f),
                OpCode::Ping => {
                    // Control payloads are at most 125 bytes; the pong echoes what was kept.
                    let head = f.head;
                    let n = (f.len as usize).min(HEAD);
                    self.send(OpCode::Pong, &head[..n]).await?;
                }
                OpCode::Pong => {}
                OpCode::Close => {
                    return Err(io::Error::new(
                        io::ErrorKind::ConnectionAborted,
                        "the server closed the connection",
                    ));
                }
            }
        }
    }

    /// The close handshake as a client: sends close 1000, waits for the server's close frame
    /// and then for its EOF (the server ends the TCP connection first, RFC 6455 section 7.1.1),
    /// within `limit`. Returns whether the whole handshake completed.
    pub async fn close(mut self, limit: std::time::Duration) -> bool {
        let fut = async {
            self.send(OpCode::Close, &1000u16.to_be_bytes()).await?;
            loop {
                let f = self.reader.read_frame(&mut self.stream).await?;
                if f.opcode == OpCode::Close {
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

/// The two halves of a transport for a writer and a reader task: TCP's own lock-free halves,
/// or tokio's `split` for TLS.
pub(crate) enum Halves {
    Tcp(
        tokio::net::tcp::OwnedReadHalf,
        tokio::net::tcp::OwnedWriteHalf,
    ),
    Other(
        tokio::io::ReadHalf<MaybeTlsStream>,
        tokio::io::WriteHalf<MaybeTlsStream>,
    ),
}

impl Halves {
    pub(crate) fn split(stream: MaybeTlsStream) -> Halves {
        match stream {
            MaybeTlsStream::Plain(tcp) => {
                let (r, w) = tcp.into_split();
                Halves::Tcp(r, w)
            }
            #[allow(unreachable_patterns)] // without the `rustls` feature
            other => {
                let (r, w) = tokio::io::split(other);
                Halves::Other(r, w)
            }
        }
    }

    pub(crate) fn into_parts(self) -> (ReadPart, WritePart) {
        match self {
            Halves::Tcp(r, w) => (ReadPart::Tcp(r), WritePart::Tcp(w)),
            Halves::Other(r, w) => (ReadPart::Other(r), WritePart::Other(w)),
        }
    }
}

/// The read half of [`Halves`].
pub(crate) enum ReadPart {
    Tcp(tokio::net::tcp::OwnedReadHalf),
    Other(tokio::io::ReadHalf<MaybeTlsStream>),
}

/// The write half of [`Halves`].
pub(crate) enum WritePart {
    Tcp(tokio::net::tcp::OwnedWriteHalf),
    Other(tokio::io::WriteHalf<MaybeTlsStream>),
}

impl ReadPart {
    /// Puts the halves back together.
    pub(crate) fn reunite(self, w: WritePart) -> Option<MaybeTlsStream> {
        match (self, w) {
            (ReadPart::Tcp(r), WritePart::Tcp(w)) => r.reunite(w).ok().map(MaybeTlsStream::Plain),
            (ReadPart::Other(r), WritePart::Other(w)) => Some(r.unsplit(w)),
            _ => None,
        }
    }
}

impl AsyncRead for ReadPart {
    fn poll_read(
        self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        buf: &mut tokio::io::ReadBuf<'_>,
    ) -> std::task::Poll<io::Result<()>> {
        match self.get_mut() {
            ReadPart::Tcp(r) => std::pin::Pin::new(r).poll_read(cx, buf),
            ReadPart::Other(r) => std::pin::Pin::new(r).poll_read(cx, buf),
        }
    }
}

impl AsyncWrite for WritePart {
    fn poll_write(
        self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        buf: &[u8],
    ) -> std::task::Poll<io::Result<usize>> {
        match self.get_mut() {
            WritePart::Tcp(w) => std::pin::Pin::new(w).poll_write(cx, buf),
            WritePart::Other(w) => std::pin::Pin::new(w).poll_write(cx, buf),
        }
    }

    fn poll_flush(
        self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<io::Result<()>> {
        match self.get_mut() {
            WritePart::Tcp(w) => std::pin::Pin::new(w).poll_flush(cx),
            WritePart::Other(w) => std::pin::Pin::new(w).poll_flush(cx),
        }
    }

    fn poll_shutdown(
        self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<io::Result<()>> {
        match self.get_mut() {
            WritePart::Tcp(w) => std::pin::Pin::new(w).poll_shutdown(cx),
            WritePart::Other(w) => std::pin::Pin::new(w).poll_shutdown(cx),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_round_trip_through_the_core_decoder() {
        let mut rng = Rng::with_seed(1);
        for len in [0usize, 1, 125, 126, 65535, 65536] {
            let payload: Vec<u8> = (0..len).map(|i| (i * 7) as u8).collect();
            let mut out = Vec::new();
            encode_frame(&mut out, OpCode::Binary, &payload, &mut rng);
            let (h, hl) = FrameHeader::decode(&out).unwrap().unwrap();
            assert_eq!(
                (h.opcode, h.fin, h.payload_len),
                (OpCode::Binary, true, len as u64)
            );
            assert_eq!(out.len(), hl + len);
            let key = h.mask.expect("client frames are masked");
            let mut body = out[hl..].to_vec();
            apply_mask(&mut body, key, 0);
            assert_eq!(body, payload);
        }
    }

    #[test]
    fn masks_differ_per_frame() {
        let mut rng = Rng::with_seed(42);
        let keys: Vec<[u8; 4]> = (0..8).map(|_| rng.mask()).collect();
        for (i, a) in keys.iter().enumerate() {
            for b in &keys[i + 1..] {
                assert_ne!(a, b);
            }
        }
    }

    #[test]
    fn next_f64_stays_in_the_unit_interval() {
        let mut rng = Rng::from_entropy();
        let mut sum = 0.0;
        for _ in 0..10_000 {
            let x = rng.next_f64();
            assert!((0.0..1.0).contains(&x));
            sum += x;
        }
        // The mean of 10,000 uniform samples is 0.5 within a few standard errors (0.003).
        assert!((sum / 10_000.0 - 0.5).abs() < 0.02, "{sum}");
    }

    /// Frames split at every byte boundary parse the same, and the payload callback sees all
    /// of the payload in order.
    #[tokio::test]
    async fn reader_parses_frames_in_any_pieces() {
        // Server frames: unmasked text of 300 bytes, then a ping.
        let mut wire = Vec::new();
        let payload: Vec<u8> = (0..300u32).map(|i| b'a' + (i % 26) as u8).collect();
        wire.extend_from_slice(
            FrameHeader {
                fin: true,
                rsv: 0,
                opcode: OpCode::Text,
                mask: None,
                payload_len: 300,
            }
            .encode()
            .as_bytes(),
        );
        wire.extend_from_slice(&payload);
        wire.extend_from_slice(&[0x89, 2, b'h', b'i']);
        for chunk in [1usize, 3, 7, 64, 1000] {
            let (mut a, b) = tokio::io::duplex(4096);
            let w = wire.clone();
            let writer = tokio::spawn(async move {
                let mut b = b;
                for piece in w.chunks(chunk) {
                    b.write_all(piece).await.unwrap();
                    b.flush().await.unwrap();
                }
                b
            });
            let mut reader = FrameReader::new(256);
            let mut seen = Vec::new();
            let f = reader
                .read_frame_with(&mut a, |h, p| {
                    assert_eq!(h.opcode, OpCode::Text);
                    seen.extend_from_slice(p);
                })
                .await
                .unwrap();
            assert_eq!(
                (f.opcode, f.len, f.fin, f.rsv1),
                (OpCode::Text, 300, true, false)
            );
            assert_eq!(f.head(), &payload[..HEAD]);
            assert_eq!(seen, payload);
            let f = reader.read_frame(&mut a).await.unwrap();
            assert_eq!((f.opcode, f.head()), (OpCode::Ping, &b"hi"[..]));
            drop(writer.await.unwrap());
            assert_eq!(
                reader.read_frame(&mut a).await.unwrap_err().kind(),
                io::ErrorKind::UnexpectedEof
            );
        }
    }

    #[tokio::test]
    async fn reader_refuses_masked_and_reserved_frames() {
        for bad in [&[0x82u8, 0x81, 1, 2, 3, 4, 0][..], &[0x83, 0]] {
            let mut r = bad;
            let e = FrameReader::new(256).read_frame(&mut r).await.unwrap_err();
            assert_eq!(e.kind(), io::ErrorKind::InvalidData, "{bad:?}");
        }
    }
}
