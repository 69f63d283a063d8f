//! Clients for the upgrade tests of the `hyper` and `axum` features: an HTTP/2 client (the
//! h2 crate) that opens WebSockets with extended CONNECT (RFC 8441), and raw HTTP/1.1
//! requests over TCP.
#![allow(dead_code, unreachable_pub)]

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll, ready};
use std::time::Duration;

use bytes::{Buf, Bytes};
use h2::client::SendRequest;
use h2::{Reason, RecvStream, SendStream};
use http::{Request, Response};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, ReadBuf};
use tokio::net::TcpStream;
use ws_tokio::http2;
use ws_tokio::{ClientRequest, Error, WebSocket};

/// Every test step is bounded by this.
pub const STEP: Duration = Duration::from_secs(20);

/// Awaits `f`, panicking after [`STEP`].
pub async fn bounded<T>(what: &str, f: impl Future<Output = T>) -> T {
    match tokio::time::timeout(STEP, f).await {
        Ok(v) => v,
        Err(_) => panic!("timed out: {what}"),
    }
}

/// One HTTP/2 stream as a byte stream: reads the peer's DATA frames, writes DATA frames, and
/// ends the stream (END_STREAM) on shutdown.
pub struct H2Stream {
    send: SendStream<Bytes>,
    recv: RecvStream,
    /// Received bytes not yet read.
    buf: Bytes,
}

impl H2Stream {
    pub fn new(send: SendStream<Bytes>, recv: RecvStream) -> Self {
        H2Stream {
            send,
            recv,
            buf: Bytes::new(),
        }
    }
}

fn io_error(e: h2::Error) -> io::Error {
    if e.is_io() {
        e.into_io()
            .unwrap_or_else(|| io::Error::other("h2 I/O error"))
    } else {
        io::Error::other(e)
    }
}

impl AsyncRead for H2Stream {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        out: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        while this.buf.is_empty() {
            match ready!(this.recv.poll_data(cx)) {
                None => return Poll::Ready(Ok(())),
                Some(Ok(data)) => this.buf = data,
                Some(Err(e)) => {
                    return Poll::Ready(match e.reason() {
                        Some(Reason::NO_ERROR | Reason::CANCEL) => Ok(()),
                        _ => Err(io_error(e)),
                    });
                }
            }
        }
        let n = this.buf.len().min(out.remaining());
        out.put_slice(&this.buf[..n]);
        this.buf.advance(n);
        // Flow control: hand the window for what was consumed back to the peer.
        this.recv
            .flow_control()
            .release_capacity(n)
            .map_err(io_error)?;
        Poll::Ready(Ok(()))
    }
}

impl AsyncWrite for H2Stream {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        if buf.is_empty() {
            return Poll::Ready(Ok(0));
        }
        this.send.reserve_capacity(buf.len());
        loop {
            match ready!(this.send.poll_capacity(cx)) {
                Some(Ok(0)) => continue,
                Some(Ok(n)) => {
                    let n = n.min(buf.len());
                    this.send
                        .send_data(Bytes::copy_from_slice(&buf[..n]), false)
                        .map_err(io_error)?;
                    return Poll::Ready(Ok(n));
                }
                Some(Err(e)) => return Poll::Ready(Err(io_error(e))),
                None => return Poll::Ready(Err(io::ErrorKind::BrokenPipe.into())),
            }
        }
    }

    fn poll_flush(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        // The connection task writes what `send_data` queued.
        Poll::Ready(Ok(()))
    }

    fn poll_shutdown(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        Poll::Ready(this.send.send_data(Bytes::new(), true).map_err(io_error))
    }
}

/// An HTTP/2 client connection whose server has allowed extended CONNECT.
pub async fn h2_client(addr: std::net::SocketAddr) -> SendRequest<Bytes> {
    let tcp = bounded("tcp connect", TcpStream::connect(addr))
        .await
        .unwrap();
    tcp.set_nodelay(true).unwrap();
    let (client, connection) = bounded("h2 handshake", h2::client::handshake(tcp))
        .await
        .unwrap();
    tokio::spawn(async move {
        let _ = connection.await;
    });
    // Extended CONNECT may only be sent once the server's SETTINGS allowed it (RFC 8441
    // section 3); the connection task reads them.
    bounded("SETTINGS_ENABLE_CONNECT_PROTOCOL", async {
        while !client.is_extended_connect_protocol_enabled() {
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
    })
    .await;
    client
}

/// Opens a WebSocket on a new stream of `client`'s connection.
pub async fn open(
    client: &SendRequest<Bytes>,
    path: &str,
    request: ClientRequest,
) -> Result<(WebSocket<H2Stream>, Option<String>), Error> {
    let (mut req, handshake) = http2::client_request(format!("ws://localhost{path}"), request)?;
    req.extensions_mut()
        .insert(h2::ext::Protocol::from_static("websocket"));
    let mut client = bounded("stream slot", client.clone().ready())
        .await
        .unwrap();
    let (response, send) = client.send_request(req, false).unwrap();
    let response = bounded("response", response).await.unwrap();
    let upgrade = handshake.finish(&response)?;
    let protocol = upgrade.protocol().map(String::from);
    let ws = upgrade.into_websocket(H2Stream::new(send, response.into_body()));
    Ok((ws, protocol))
}

/// Sends a request with no body; returns the response and its body.
pub async fn raw(client: &SendRequest<Bytes>, req: Request<()>) -> (Response<()>, Vec<u8>) {
    let mut client = bounded("stream slot", client.clone().ready())
        .await
        .unwrap();
    let (response, _send) = client.send_request(req, true).unwrap();
    let response = bounded("response", response).await.unwrap();
    let (parts, mut body) = response.into_parts();
    let mut data = Vec::new();
    while let Some(chunk) = bounded("body", body.data()).await {
        let chunk = chunk.unwrap();
        let _ = body.flow_control().release_capacity(chunk.len());
        data.extend_from_slice(&chunk);
    }
    (Response::from_parts(parts, ()), data)
}

/// Sends `head` (an HTTP/1.1 request head, CRLF CRLF included) on a new connection and reads
/// the answer until the server closes or the head and `Content-Length` bytes of body arrived.
/// Returns the status, the head's text and the body.
pub async fn raw_http1(addr: std::net::SocketAddr, head: &str) -> (u16, String, Vec<u8>) {
    let mut tcp = bounded("tcp connect", TcpStream::connect(addr))
        .await
        .unwrap();
    tcp.write_all(head.as_bytes()).await.unwrap();
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    loop {
        if let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            let text = String::from_utf8_lossy(&buf[..end]).into_owned();
            let length = text
                .lines()
                .find_map(|l| {
                    let (n, v) = l.split_once(':')?;
                    n.eq_ignore_ascii_case("content-length")
                        .then(|| v.trim().parse().ok())?
                })
                .unwrap_or(0usize);
            let status: u16 = text[9..12].parse().unwrap();
            if status == 101 || buf.len() >= end + 4 + length {
                let body = buf[end + 4..].to_vec();
                return (status, text, body);
            }
        }
        let n = bounded("http/1.1 answer", tcp.read(&mut chunk))
            .await
            .unwrap();
        assert!(
            n > 0,
            "connection closed before the answer: {:?}",
            String::from_utf8_lossy(&buf)
        );
        buf.extend_from_slice(&chunk[..n]);
    }
}

/// An HTTP/1.1 upgrade request head for `path` with `extra` header lines (each ending in CRLF).
pub fn upgrade_head(path: &str, extra: &str) -> String {
    format!(
        "GET {path} HTTP/1.1\r\nHost: localhost\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
         Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n{extra}\r\n"
    )
}
