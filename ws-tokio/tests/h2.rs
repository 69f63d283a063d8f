//! WebSocket over HTTP/2 extended CONNECT (RFC 8441): a real h2 server (with extended CONNECT
//! enabled) and a real h2 client over loopback TCP, the WebSocket on the request's stream.
#![cfg(feature = "http")]

mod common;

use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::task::{Context, Poll, ready};
use std::time::Duration;

use bytes::{Buf, Bytes};
use common::{bounded, compressed, quiet};
use h2::client::SendRequest;
use h2::server::SendResponse;
use h2::{Reason, RecvStream, SendStream};
use http::{HeaderValue, Method, Request, Response, StatusCode};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;
use ws_proto::HandshakeError;
use ws_tokio::http2;
use ws_tokio::{
    AcceptResponse, ClientRequest, CloseCode, CloseFrame, Config, Error, Message, Reject, WebSocket,
};

// ---------------------------------------------------------------------------------------------
// An HTTP/2 stream as AsyncRead + AsyncWrite
// ---------------------------------------------------------------------------------------------

/// One HTTP/2 stream as a byte stream: reads the peer's DATA frames, writes DATA frames, and
/// ends the stream (END_STREAM) on shutdown.
struct H2Stream {
    send: SendStream<Bytes>,
    recv: RecvStream,
    /// Received bytes not yet read.
    buf: Bytes,
}

impl H2Stream {
    fn new(send: SendStream<Bytes>, recv: RecvStream) -> Self {
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

// ---------------------------------------------------------------------------------------------
// Server
// ---------------------------------------------------------------------------------------------

/// What the test server does with each request.
#[derive(Clone)]
enum Mode {
    /// Accept through `ws_tokio::http2` (choosing `chat.v2` when offered, rejecting
    /// `/forbidden` with 403), then echo text and binary messages.
    Echo(Box<Config>),
    /// Answer every request with this status and these header fields.
    Fixed(u16, Fields),
}

/// Response header fields.
type Fields = Vec<(&'static str, &'static str)>;

/// What the server saw, per request.
#[derive(Debug)]
enum Seen {
    Opened {
        protocol: Option<String>,
        compression: bool,
    },
    Refused(Error),
    Ended {
        close: Option<Message>,
        error: Option<Error>,
    },
}

struct Server {
    addr: std::net::SocketAddr,
    connections: Arc<AtomicUsize>,
    seen: mpsc::UnboundedReceiver<Seen>,
}

impl Server {
    async fn start(mode: Mode) -> Server {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (tx, seen) = mpsc::unbounded_channel();
        let connections = Arc::new(AtomicUsize::new(0));
        let count = connections.clone();
        tokio::spawn(async move {
            while let Ok((tcp, _)) = listener.accept().await {
                count.fetch_add(1, Ordering::SeqCst);
                tokio::spawn(serve_connection(tcp, mode.clone(), tx.clone()));
            }
        });
        Server {
            addr,
            connections,
            seen,
        }
    }

    async fn next(&mut self) -> Seen {
        bounded("server event", self.seen.recv())
            .await
            .expect("server event")
    }
}

async fn serve_connection(tcp: TcpStream, mode: Mode, tx: mpsc::UnboundedSender<Seen>) {
    let mut builder = h2::server::Builder::new();
    builder.enable_connect_protocol();
    let Ok(mut conn) = builder.handshake::<_, Bytes>(tcp).await else {
        return;
    };
    while let Some(Ok((request, respond))) = conn.accept().await {
        tokio::spawn(handle(request, respond, mode.clone(), tx.clone()));
    }
}

async fn handle(
    request: Request<RecvStream>,
    mut respond: SendResponse<Bytes>,
    mode: Mode,
    tx: mpsc::UnboundedSender<Seen>,
) {
    let config = match mode {
        Mode::Echo(config) => *config,
        Mode::Fixed(status, headers) => {
            let mut res = Response::new(());
            *res.status_mut() = StatusCode::from_u16(status).unwrap();
            for (name, value) in headers {
                res.headers_mut()
                    .append(name, HeaderValue::from_static(value));
            }
            let _ = respond.send_response(res, true);
            return;
        }
    };
    let protocol = request
        .extensions()
        .get::<h2::ext::Protocol>()
        .map(|p| p.as_str());
    let accepted = http2::accept_with(&request, protocol, config, |req| {
        if req.path() == "/forbidden" {
            return Err(Reject::status(403)
                .header("x-reason", "forbidden")
                .body("not here"));
        }
        Ok(match req.protocols().find(|p| *p == "chat.v2") {
            Some(p) => AcceptResponse::new().protocol(p),
            None => AcceptResponse::new(),
        })
    });
    let (response, upgrade) = match accepted {
        Ok(accepted) => accepted,
        Err(refusal) => {
            let end = refusal.body.is_empty();
            if let Ok(mut send) = respond.send_response(refusal.response, end) {
                if !end {
                    let _ = send.send_data(refusal.body.into(), true);
                }
            }
            let _ = tx.send(Seen::Refused(refusal.error));
            return;
        }
    };
    let _ = tx.send(Seen::Opened {
        protocol: upgrade.protocol().map(String::from),
        compression: upgrade.compression_enabled(),
    });
    let Ok(send) = respond.send_response(response, false) else {
        return;
    };
    let mut ws = upgrade.into_websocket(H2Stream::new(send, request.into_body()));
    let (mut close, mut error) = (None, None);
    while let Some(m) = ws.recv().await {
        match m {
            Ok(m @ (Message::Text(_) | Message::Binary(_))) => {
                if let Err(e) = ws.send(m).await {
                    error = Some(e);
                    break;
                }
            }
            Ok(m @ Message::Close(_)) => close = Some(m),
            Ok(_) => {}
            Err(e) => {
                error = Some(e);
                break;
            }
        }
    }
    let _ = tx.send(Seen::Ended { close, error });
}

// ---------------------------------------------------------------------------------------------
// Client
// ---------------------------------------------------------------------------------------------

/// An HTTP/2 client connection whose server has allowed extended CONNECT.
async fn h2_client(addr: std::net::SocketAddr) -> SendRequest<Bytes> {
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
async fn open(
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
async fn raw(client: &SendRequest<Bytes>, req: Request<()>) -> (Response<()>, Vec<u8>) {
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

/// A CONNECT request for `/chat` with version 13 and, when given, this `:protocol`.
fn connect_request(protocol: Option<&'static str>) -> Request<()> {
    let mut req = Request::builder()
        .method(Method::CONNECT)
        .uri("http://localhost/chat")
        .header("sec-websocket-version", "13")
        .body(())
        .unwrap();
    if let Some(p) = protocol {
        req.extensions_mut()
            .insert(h2::ext::Protocol::from_static(p));
    }
    req
}

// ---------------------------------------------------------------------------------------------
// Helpers
// ---------------------------------------------------------------------------------------------

/// About 1 MiB of text.
fn big_text() -> String {
    let mut s = String::with_capacity(1 << 20);
    let mut i = 0u32;
    while s.len() < 1 << 20 {
        s.push_str(&format!(
            "line {i}: the quick brown fox jumps over the lazy dog\n"
        ));
        i += 1;
    }
    s
}

/// 1 MiB of pseudo-random bytes (does not compress).
fn big_binary() -> Vec<u8> {
    let mut x = 0x9E37_79B9_7F4A_7C15u64;
    (0..1 << 20)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect()
}

async fn echo(ws: &mut WebSocket<H2Stream>, m: Message) {
    bounded("send", ws.send(m.clone())).await.unwrap();
    let got = bounded("echo", ws.recv())
        .await
        .expect("a message")
        .unwrap();
    assert!(got == m, "echo differs from what was sent");
}

/// Round trips of messages larger than a stream's initial flow-control window.
async fn busy(ws: &mut WebSocket<H2Stream>, tag: u8) {
    for i in 0..20u32 {
        let mut payload = vec![tag; 100_000 + i as usize];
        payload[..4].copy_from_slice(&i.to_be_bytes());
        echo(ws, Message::binary(payload)).await;
        echo(ws, Message::text(format!("{tag}:{i}"))).await;
    }
}

async fn expect_opened(server: &mut Server) -> (Option<String>, bool) {
    match server.next().await {
        Seen::Opened {
            protocol,
            compression,
        } => (protocol, compression),
        other => panic!("expected Opened, got {other:?}"),
    }
}

// ---------------------------------------------------------------------------------------------
// Tests
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn round_trips_with_deflate_and_close() {
    let mut server = Server::start(Mode::Echo(Box::new(compressed()))).await;
    let client = h2_client(server.addr).await;
    let (mut ws, protocol) = open(
        &client,
        "/chat",
        ClientRequest::default().config(compressed()),
    )
    .await
    .unwrap();
    assert_eq!(protocol, None);
    assert!(ws.compression_enabled());
    assert_eq!(expect_opened(&mut server).await, (None, true));

    for m in [
        Message::text("hello over HTTP/2"),
        Message::text(""),
        Message::binary(Vec::new()),
        Message::text(big_text()),
        Message::binary(big_binary()),
        Message::binary(vec![7u8; 1 << 20]),
    ] {
        echo(&mut ws, m).await;
    }

    bounded(
        "close",
        ws.close(Some(CloseFrame::new(CloseCode::NORMAL, "bye"))),
    )
    .await
    .unwrap();
    match server.next().await {
        Seen::Ended { close, error } => {
            assert_eq!(
                close,
                Some(Message::Close(Some(CloseFrame::new(
                    CloseCode::NORMAL,
                    "bye"
                ))))
            );
            assert!(error.is_none(), "{error:?}");
        }
        other => panic!("expected Ended, got {other:?}"),
    }
}

#[tokio::test]
async fn round_trips_without_deflate() {
    let mut server = Server::start(Mode::Echo(Box::new(quiet()))).await;
    let client = h2_client(server.addr).await;
    // The client offers permessage-deflate; the server does not accept it.
    let (mut ws, _) = open(&client, "/", ClientRequest::default().config(compressed()))
        .await
        .unwrap();
    assert!(!ws.compression_enabled());
    assert_eq!(expect_opened(&mut server).await, (None, false));
    echo(&mut ws, Message::text("plain")).await;
    echo(&mut ws, Message::binary(big_binary())).await;
    bounded(
        "close",
        ws.close(Some(CloseFrame::new(CloseCode::NORMAL, ""))),
    )
    .await
    .unwrap();
}

#[tokio::test]
async fn two_websockets_on_one_connection() {
    let mut server = Server::start(Mode::Echo(Box::new(compressed()))).await;
    let client = h2_client(server.addr).await;
    let request = || ClientRequest::default().config(compressed());
    let (mut a, _) = open(&client, "/a", request()).await.unwrap();
    let (mut b, _) = open(&client, "/b", request()).await.unwrap();
    expect_opened(&mut server).await;
    expect_opened(&mut server).await;

    // Both streams busy at the same time.
    bounded("both streams", async {
        tokio::join!(busy(&mut a, 1), busy(&mut b, 2));
    })
    .await;

    bounded(
        "close a",
        a.close(Some(CloseFrame::new(CloseCode::NORMAL, "a"))),
    )
    .await
    .unwrap();
    // Closing one stream leaves the other working.
    echo(&mut b, Message::text("still here")).await;
    bounded(
        "close b",
        b.close(Some(CloseFrame::new(CloseCode::GOING_AWAY, "b"))),
    )
    .await
    .unwrap();
    for _ in 0..2 {
        match server.next().await {
            Seen::Ended { close, error } => {
                assert!(error.is_none(), "{error:?}");
                assert!(matches!(close, Some(Message::Close(Some(_)))), "{close:?}");
            }
            other => panic!("expected Ended, got {other:?}"),
        }
    }
    assert_eq!(server.connections.load(Ordering::SeqCst), 1);
}

#[tokio::test]
async fn subprotocol_choice() {
    let mut server = Server::start(Mode::Echo(Box::new(quiet()))).await;
    let client = h2_client(server.addr).await;

    let offer = ClientRequest::default()
        .protocol("chat.v1")
        .protocol("chat.v2")
        .config(quiet());
    let (mut ws, protocol) = open(&client, "/chat", offer).await.unwrap();
    assert_eq!(protocol.as_deref(), Some("chat.v2"));
    assert_eq!(
        expect_opened(&mut server).await,
        (Some(String::from("chat.v2")), false)
    );
    echo(&mut ws, Message::text("v2")).await;

    let offer = ClientRequest::default().protocol("chat.v1").config(quiet());
    let (_ws, protocol) = open(&client, "/chat", offer).await.unwrap();
    assert_eq!(protocol, None);
    assert_eq!(expect_opened(&mut server).await, (None, false));

    let (_ws, protocol) = open(&client, "/chat", ClientRequest::default())
        .await
        .unwrap();
    assert_eq!(protocol, None);
}

#[tokio::test]
async fn server_rejects_requests_that_are_not_websocket_connects() {
    let mut server = Server::start(Mode::Echo(Box::new(quiet()))).await;
    let client = h2_client(server.addr).await;

    // GET (no :protocol: h2 allows it only on CONNECT).
    let get = Request::builder()
        .method(Method::GET)
        .uri("http://localhost/chat")
        .header("sec-websocket-version", "13")
        .body(())
        .unwrap();
    // A plain CONNECT: no :protocol.
    let plain = connect_request(None);
    // Another protocol.
    let other = connect_request(Some("webtransport"));
    // Version 8, and no version.
    let mut old = connect_request(Some("websocket"));
    old.headers_mut()
        .insert("sec-websocket-version", HeaderValue::from_static("8"));
    let mut none = connect_request(Some("websocket"));
    none.headers_mut().remove("sec-websocket-version");

    let cases = [
        (get, 400, HandshakeError::MethodNotConnect),
        (plain, 400, HandshakeError::MissingProtocol),
        (other, 501, HandshakeError::UnsupportedProtocol),
        (old, 400, HandshakeError::UnsupportedVersion),
        (none, 400, HandshakeError::UnsupportedVersion),
    ];
    for (req, status, why) in cases {
        let (res, _) = raw(&client, req).await;
        assert_eq!(res.status(), status, "{why:?}");
        let version = res.headers().get("sec-websocket-version");
        if why == HandshakeError::UnsupportedVersion {
            assert_eq!(version.unwrap(), "13");
        } else {
            assert!(version.is_none());
        }
        match server.next().await {
            Seen::Refused(Error::Handshake(e)) => assert_eq!(e, why),
            other => panic!("expected Refused({why:?}), got {other:?}"),
        }
    }

    // The connection survives refused streams.
    let (mut ws, _) = open(&client, "/chat", ClientRequest::default().config(quiet()))
        .await
        .unwrap();
    echo(&mut ws, Message::text("after refusals")).await;
}

#[tokio::test]
async fn callback_rejection() {
    let mut server = Server::start(Mode::Echo(Box::new(quiet()))).await;
    let client = h2_client(server.addr).await;

    let mut req = connect_request(Some("websocket"));
    *req.uri_mut() = "http://localhost/forbidden".parse().unwrap();
    let (res, body) = raw(&client, req).await;
    assert_eq!(res.status(), 403);
    assert_eq!(res.headers()["x-reason"], "forbidden");
    assert_eq!(body, b"not here");
    assert!(matches!(
        server.next().await,
        Seen::Refused(Error::Rejected { status: 403 })
    ));

    let r = open(&client, "/forbidden", ClientRequest::default()).await;
    assert!(
        matches!(r, Err(Error::Rejected { status: 403 })),
        "{:?}",
        r.err()
    );
}

#[tokio::test]
async fn client_rejects_answers_it_did_not_ask_for() {
    // Status, header fields, whether the client offers permessage-deflate, the client's error.
    let cases: [(u16, Fields, bool, &str); 5] = [
        (404, vec![], true, "Rejected { status: 404 }"),
        (
            200,
            vec![("sec-websocket-protocol", "other")],
            true,
            "Handshake(UnofferedProtocol)",
        ),
        (
            200,
            vec![("sec-websocket-extensions", "permessage-deflate")],
            false,
            "Handshake(UnofferedExtension)",
        ),
        (
            200,
            vec![("sec-websocket-extensions", "x-other")],
            true,
            "Handshake(UnofferedExtension)",
        ),
        (
            200,
            vec![(
                "sec-websocket-extensions",
                "permessage-deflate; server_max_window_bits=7",
            )],
            true,
            "Handshake(InvalidExtension)",
        ),
    ];
    for (status, headers, offer_deflate, expected) in cases {
        let server = Server::start(Mode::Fixed(status, headers)).await;
        let client = h2_client(server.addr).await;
        let request = ClientRequest::default()
            .protocol("chat")
            .config(if offer_deflate { compressed() } else { quiet() });
        let r = open(&client, "/chat", request).await;
        let e = r.err().expect("the client refuses the answer");
        assert_eq!(format!("{e:?}"), expected);
    }
}
