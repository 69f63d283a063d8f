//! The axum extractor (feature `axum`) behind `axum::serve` on loopback: WebSockets over
//! HTTP/1.1 (our client) and over HTTP/2 extended CONNECT (the h2 crate's client, h2c) on the
//! same routes, permessage-deflate, subprotocols, limits, rejections, and the Origin and
//! bearer-token checks.
#![cfg(feature = "axum")]

mod upgrade_client;

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use axum::Router;
use axum::response::{IntoResponse, Response};
use axum::routing::{any, get};
use http::{Method, Request, StatusCode};
use tokio::net::{TcpListener, TcpStream};
use upgrade_client::{bounded, h2_client, open, raw, raw_http1, upgrade_head};
use ws_proto::HandshakeError;
use ws_tokio::auth::{BearerAuth, check_origin};
use ws_tokio::axum::{Message, WebSocket, WebSocketUpgrade};
use ws_tokio::origin::OriginPolicy;
use ws_tokio::{ClientRequest, CloseCode, CloseFrame, Config, Error, Reject};

/// Says how the connection came (`HTTP/1.1 chat true`: version, subprotocol, compression),
/// then echoes text and binary messages.
async fn echo(mut socket: WebSocket, version: http::Version) {
    let hello = format!(
        "{version:?} {} {}",
        socket.protocol().map_or("-", |p| p.to_str().unwrap_or("?")),
        socket.compression_enabled()
    );
    if socket.send(Message::text(hello)).await.is_err() {
        return;
    }
    while let Some(Ok(msg)) = socket.recv().await {
        if let Message::Text(_) | Message::Binary(_) = msg {
            if socket.send(msg).await.is_err() {
                return;
            }
        }
    }
}

async fn echo_handler(ws: WebSocketUpgrade) -> Response {
    let version = ws.version();
    let ws = ws.protocols(["chat.v2", "chat"]);
    ws.on_upgrade(move |s| echo(s, version))
}

static ORIGINS: OriginPolicy<'static> = OriginPolicy::new()
    .with_allowed(&["https://app.test"])
    .with_same_origin(false);

async fn guarded(ws: WebSocketUpgrade) -> Result<Response, Reject> {
    let version = ws.version();
    let auth = BearerAuth::default().with_realm("test");
    // The Origin policy replaces the default one (the Host only); the check sees the token.
    let ws = ws.origin(ORIGINS).check(|req| {
        check_origin(&ORIGINS, req)?;
        let accept = auth.authorize_token(req, b"s3cret")?;
        Ok(accept.header("x-checked", "yes"))
    })?;
    Ok(ws.on_upgrade(move |s| echo(s, version)))
}

#[derive(Clone, Default)]
struct Failures(Arc<Mutex<Vec<Error>>>);

fn app(failures: Failures) -> Router {
    Router::new()
        .route("/echo", any(echo_handler))
        .route("/guarded", any(guarded))
        .route(
            "/small-message",
            any(|ws: WebSocketUpgrade| async move {
                let v = ws.version();
                ws.max_message_size(1000).on_upgrade(move |s| echo(s, v))
            }),
        )
        .route(
            "/small-frame",
            any(|ws: WebSocketUpgrade| async move {
                let v = ws.version();
                ws.max_frame_size(500)
                    .write_buffer_size(0)
                    .on_upgrade(move |s| echo(s, v))
            }),
        )
        .route(
            "/plain",
            any(|ws: WebSocketUpgrade| async move {
                let v = ws.version();
                ws.compression(None).on_upgrade(move |s| echo(s, v))
            }),
        )
        .route(
            "/unoffered",
            any(move |mut ws: WebSocketUpgrade| {
                let failures = failures.clone();
                async move {
                    ws.set_selected_protocol(http::HeaderValue::from_static("nope"));
                    ws.on_failed_upgrade(move |e| failures.0.lock().unwrap().push(e))
                        .on_upgrade(|_| async {})
                }
            }),
        )
        .route("/page", get(|| async { "a page" }))
}

/// `axum::serve` on 127.0.0.1 with [`app`]; HTTP/1.1 and h2c on the same port.
async fn serve() -> (SocketAddr, Failures) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let failures = Failures::default();
    let router = app(failures.clone());
    tokio::spawn(async move { axum::serve(listener, router).await });
    (addr, failures)
}

fn config() -> Config {
    Config::default()
        .with_ping_interval(None)
        .with_close_timeout(std::time::Duration::from_secs(2))
}

/// Opens `/path` over HTTP/1.1 with our client.
async fn h1(
    addr: SocketAddr,
    path: &str,
    request: ClientRequest,
) -> Result<(ws_tokio::WebSocket<TcpStream>, ws_tokio::Response), Error> {
    let tcp = bounded("connect", TcpStream::connect(addr)).await?;
    let mut request = request;
    request.host = addr.to_string();
    request.path = path.into();
    bounded("handshake", ws_tokio::client(tcp, request)).await
}

/// The first message, as text.
async fn hello<S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin>(
    ws: &mut ws_tokio::WebSocket<S>,
) -> String {
    match bounded("hello", ws.recv()).await {
        Some(Ok(Message::Text(t))) => t.to_string(),
        other => panic!("no hello: {other:?}"),
    }
}

/// Text, an empty text, 1 MiB of compressible binary, a ping, then a close with 1000.
async fn round_trips<S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin>(
    mut ws: ws_tokio::WebSocket<S>,
) {
    let big: Vec<u8> = (0..1u32 << 20).map(|i| (i % 251) as u8).collect();
    for m in [
        Message::text("héllo"),
        Message::text(""),
        Message::binary(big),
    ] {
        bounded("send", ws.send(m.clone())).await.unwrap();
        let got = bounded("echo", ws.recv()).await.unwrap().unwrap();
        assert_eq!(got, m);
    }
    bounded("ping", ws.send(Message::ping(&b"p1"[..])))
        .await
        .unwrap();
    let got = bounded("pong", ws.recv()).await.unwrap().unwrap();
    assert_eq!(got, Message::pong(&b"p1"[..]));
    bounded(
        "close",
        ws.close(Some(CloseFrame::new(CloseCode::NORMAL, "bye"))),
    )
    .await
    .unwrap();
}

#[tokio::test]
async fn http1_upgrade_with_deflate_and_subprotocol() {
    let (addr, _) = serve().await;
    let req = ClientRequest::default()
        .protocol("chat")
        .protocol("chat.v2")
        .config(config());
    let (mut ws, res) = h1(addr, "/echo", req).await.unwrap();
    assert_eq!(res.status, 101);
    // The server's order of preference, not the client's.
    assert_eq!(res.protocol.as_deref(), Some("chat.v2"));
    let ext = res
        .headers
        .iter()
        .find(|(n, _)| n.eq_ignore_ascii_case("sec-websocket-extensions"))
        .map(|(_, v)| String::from_utf8_lossy(v).into_owned());
    assert!(
        ext.as_deref()
            .is_some_and(|e| e.starts_with("permessage-deflate")),
        "{ext:?}"
    );
    assert!(ws.compression_enabled());
    assert_eq!(hello(&mut ws).await, "HTTP/1.1 chat.v2 true");
    round_trips(ws).await;

    // Without compression on the server, and without a common subprotocol.
    let req = ClientRequest::default().protocol("other").config(config());
    let (mut ws, res) = h1(addr, "/plain", req).await.unwrap();
    assert_eq!(res.protocol, None);
    assert!(!ws.compression_enabled());
    assert_eq!(hello(&mut ws).await, "HTTP/1.1 - false");
    round_trips(ws).await;
}

#[tokio::test]
async fn http2_extended_connect_on_the_same_route() {
    let (addr, _) = serve().await;
    let client = h2_client(addr).await;
    let req = || ClientRequest::default().protocol("chat").config(config());
    // Two WebSockets on one HTTP/2 connection, at the same time.
    let (mut a, pa) = open(&client, "/echo", req()).await.unwrap();
    let (mut b, pb) = open(&client, "/echo", req()).await.unwrap();
    assert_eq!((pa.as_deref(), pb.as_deref()), (Some("chat"), Some("chat")));
    assert!(a.compression_enabled() && b.compression_enabled());
    assert_eq!(hello(&mut a).await, "HTTP/2.0 chat true");
    assert_eq!(hello(&mut b).await, "HTTP/2.0 chat true");
    tokio::join!(round_trips(a), round_trips(b));

    let (mut ws, _) = open(&client, "/plain", ClientRequest::default().config(config()))
        .await
        .unwrap();
    assert!(!ws.compression_enabled());
    assert_eq!(hello(&mut ws).await, "HTTP/2.0 - false");
    round_trips(ws).await;

    // A plain page on the same connection.
    let req = Request::builder()
        .uri(format!("http://{addr}/page"))
        .body(())
        .unwrap();
    let (res, body) = raw(&client, req).await;
    assert_eq!(
        (res.status(), body.as_slice()),
        (StatusCode::OK, &b"a page"[..])
    );
}

#[tokio::test]
async fn http1_rejections() {
    let (addr, _) = serve().await;
    let cases: &[(&str, &str, u16)] = &[
        ("GET /", "POST /", 400),
        ("Sec-WebSocket-Version: 13", "Sec-WebSocket-Version: 8", 426),
        ("Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n", "", 400),
        ("dGhlIHNhbXBsZSBub25jZQ==", "dGhlIHNhbXBsZSBub25jZQ=", 400),
        ("Upgrade: websocket\r\n", "", 400),
        ("Connection: Upgrade", "Connection: keep-alive", 400),
        ("HTTP/1.1", "HTTP/1.0", 426),
    ];
    for (from, to, status) in cases {
        let head = upgrade_head("/echo", "").replace(from, to);
        let (got, text, body) = raw_http1(addr, &head).await;
        assert_eq!(got, *status, "{from:?} -> {to:?}: {text}");
        let body = String::from_utf8_lossy(&body);
        assert!(!body.is_empty(), "{from:?} -> {to:?}: no body");
        if *status == 426 {
            assert!(
                text.to_ascii_lowercase().contains("upgrade: websocket"),
                "{text}"
            );
        }
    }
    let head =
        upgrade_head("/echo", "").replace("Sec-WebSocket-Version: 13", "Sec-WebSocket-Version: 8");
    let (_, text, _) = raw_http1(addr, &head).await;
    assert!(
        text.to_ascii_lowercase()
            .contains("sec-websocket-version: 13"),
        "{text}"
    );
    let head = upgrade_head("/echo", "").replace("GET /", "POST /");
    let (_, _, body) = raw_http1(addr, &head).await;
    assert_eq!(body, b"Request method must be `GET`");
    // A malformed extension offer and a repeated Origin: RFC 6455 rules axum does not check.
    let head = upgrade_head("/echo", "Sec-WebSocket-Extensions: a; b=\"c\r\n");
    assert_eq!(raw_http1(addr, &head).await.0, 400);
    let head = upgrade_head(
        "/echo",
        "Origin: https://a.test\r\nOrigin: https://b.test\r\n",
    );
    assert_eq!(raw_http1(addr, &head).await.0, 400);
    // The answer for a valid request.
    let (got, text, _) = raw_http1(addr, &upgrade_head("/echo", "")).await;
    assert_eq!(got, 101, "{text}");
    assert!(text.contains("s3pPLMBiTxaQ9kYGzzhZRbK+xOo="), "{text}");
}

#[tokio::test]
async fn http2_rejections() {
    let (addr, _) = serve().await;
    let client = h2_client(addr).await;
    let connect = |protocol: Option<&'static str>, version: Option<&'static str>| {
        let mut req = Request::builder()
            .method(Method::CONNECT)
            .uri(format!("http://{addr}/echo"));
        if let Some(v) = version {
            req = req.header("sec-websocket-version", v);
        }
        let mut req = req.body(()).unwrap();
        if let Some(p) = protocol {
            req.extensions_mut()
                .insert(h2::ext::Protocol::from_static(p));
        }
        req
    };
    let (res, body) = raw(&client, connect(Some("webtransport"), Some("13"))).await;
    assert_eq!(res.status(), 501, "{}", String::from_utf8_lossy(&body));
    let (res, _) = raw(&client, connect(Some("websocket"), None)).await;
    assert_eq!(res.status(), 400);
    assert_eq!(res.headers()["sec-websocket-version"], "13");
    let (res, _) = raw(&client, connect(Some("websocket"), Some("8"))).await;
    assert_eq!(res.status(), 400);
    let get = Request::builder()
        .uri(format!("http://{addr}/echo"))
        .header("sec-websocket-version", "13")
        .body(())
        .unwrap();
    let (res, body) = raw(&client, get).await;
    assert_eq!(res.status(), 400);
    assert_eq!(body, b"Request method must be `CONNECT`");
    // The connection still serves WebSockets.
    let (mut ws, _) = open(&client, "/echo", ClientRequest::default().config(config()))
        .await
        .unwrap();
    assert_eq!(hello(&mut ws).await, "HTTP/2.0 - true");
}

#[tokio::test]
async fn origin_and_bearer_checks_in_the_extractor() {
    let (addr, _) = serve().await;
    let with = |origin: &str, token: Option<&str>| {
        let mut r = ClientRequest::default()
            .config(config())
            .header("Origin", origin.to_string());
        if let Some(t) = token {
            r = r.header("Authorization", format!("Bearer {t}"));
        }
        r
    };
    // HTTP/1.1, with the whole answers.
    let allowed = "Origin: https://app.test\r\n";
    let (status, _, body) = raw_http1(
        addr,
        &upgrade_head(
            "/guarded",
            "Origin: https://evil.test\r\nAuthorization: Bearer s3cret\r\n",
        ),
    )
    .await;
    assert_eq!(
        (status, body.as_slice()),
        (403, &b"origin not allowed\n"[..])
    );
    let (status, text, _) = raw_http1(addr, &upgrade_head("/guarded", allowed)).await;
    assert_eq!(status, 401);
    assert!(
        text.contains("www-authenticate: Bearer realm=\"test\""),
        "{text}"
    );
    let (status, text, _) = raw_http1(
        addr,
        &upgrade_head(
            "/guarded",
            &format!("{allowed}Authorization: Bearer wrong\r\n"),
        ),
    )
    .await;
    assert_eq!(status, 401);
    assert!(text.contains("error=\"invalid_token\""), "{text}");
    let (mut ws, res) = h1(addr, "/guarded", with("https://app.test", Some("s3cret")))
        .await
        .unwrap();
    assert!(
        res.headers
            .iter()
            .any(|(n, v)| n.eq_ignore_ascii_case("x-checked") && v == b"yes")
    );
    assert_eq!(hello(&mut ws).await, "HTTP/1.1 - true");
    round_trips(ws).await;
    let r = h1(addr, "/guarded", with("https://evil.test", Some("s3cret"))).await;
    assert!(matches!(r, Err(Error::Rejected { status: 403 })), "{r:?}");

    // HTTP/2: the same checks on the CONNECT request.
    let client = h2_client(addr).await;
    let r = open(
        &client,
        "/guarded",
        with("https://evil.test", Some("s3cret")),
    )
    .await;
    assert!(
        matches!(r, Err(Error::Rejected { status: 403 })),
        "{:?}",
        r.err()
    );
    let r = open(&client, "/guarded", with("https://app.test", None)).await;
    assert!(
        matches!(r, Err(Error::Rejected { status: 401 })),
        "{:?}",
        r.err()
    );
    let r = open(&client, "/guarded", with("https://app.test", Some("wrong"))).await;
    assert!(
        matches!(r, Err(Error::Rejected { status: 401 })),
        "{:?}",
        r.err()
    );
    let (mut ws, _) = open(
        &client,
        "/guarded",
        with("https://app.test", Some("s3cret")),
    )
    .await
    .unwrap();
    assert_eq!(hello(&mut ws).await, "HTTP/2.0 - true");
    round_trips(ws).await;
}

/// Sends `len` bytes and returns what comes back: the echo, or the server's close.
async fn probe<S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin>(
    ws: &mut ws_tokio::WebSocket<S>,
    len: usize,
) -> Message {
    bounded("send", ws.send(Message::binary(vec![7u8; len])))
        .await
        .unwrap();
    bounded("answer", ws.recv()).await.unwrap().unwrap()
}

#[tokio::test]
async fn limits_at_and_past() {
    let (addr, _) = serve().await;
    let client = h2_client(addr).await;
    for (path, limit) in [("/small-message", 1000), ("/small-frame", 500)] {
        let req = || ClientRequest::default().config(config().with_compression(None));
        let (mut a, _) = h1(addr, path, req()).await.unwrap();
        let (mut b, _) = open(&client, path, req()).await.unwrap();
        hello(&mut a).await;
        hello(&mut b).await;
        assert_eq!(
            probe(&mut a, limit).await,
            Message::binary(vec![7u8; limit])
        );
        assert_eq!(
            probe(&mut b, limit).await,
            Message::binary(vec![7u8; limit])
        );
        let past = (
            probe(&mut a, limit + 1).await,
            probe(&mut b, limit + 1).await,
        );
        for (got, version) in [(past.0, "HTTP/1.1"), (past.1, "HTTP/2")] {
            match got {
                Message::Close(Some(f)) => assert_eq!(f.code, CloseCode::MESSAGE_TOO_BIG),
                other => panic!("{path} over {version}: {other:?}"),
            }
        }
    }
}

#[tokio::test]
async fn an_answer_that_cannot_be_made_is_500_and_reported() {
    let (addr, failures) = serve().await;
    let req = ClientRequest::default().protocol("chat").config(config());
    let r = h1(addr, "/unoffered", req).await;
    assert!(matches!(r, Err(Error::Rejected { status: 500 })), "{r:?}");
    let seen = failures.0.lock().unwrap();
    assert!(
        matches!(
            seen.as_slice(),
            [Error::Handshake(HandshakeError::UnofferedProtocol)]
        ),
        "{seen:?}"
    );
}

#[test]
fn rejections_are_responses() {
    use ws_tokio::axum::rejection::WebSocketUpgradeRejection as R;
    let res = R::ConnectionNotUpgradable.into_response();
    assert_eq!(res.status(), 426);
    assert_eq!(res.headers()["upgrade"], "websocket");
    let res = R::InvalidWebSocketVersionHeader { http2: true }.into_response();
    assert_eq!(res.status(), 400);
    assert_eq!(res.headers()["sec-websocket-version"], "13");
    assert_eq!(
        R::InvalidProtocolPseudoheader { present: true }.status(),
        501
    );
    let res = Reject::status(403)
        .header("x-a", "b")
        .body("no")
        .into_response();
    assert_eq!(res.status(), 403);
    assert_eq!(res.headers()["x-a"], "b");
    assert_eq!(Reject::status(200).into_response().status(), 500);
}
