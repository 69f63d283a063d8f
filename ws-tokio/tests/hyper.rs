//! `ws_tokio::hyper::upgrade` behind bare hyper 1 servers on loopback (feature `hyper`): an
//! HTTP/1.1 server with upgrades (our client) and an HTTP/2 server with extended CONNECT (the
//! h2 crate's client, h2c), permessage-deflate, a subprotocol, a callback's refusal and
//! requests that are not valid upgrades.
#![cfg(feature = "hyper")]

mod upgrade_client;

use std::convert::Infallible;
use std::net::SocketAddr;

use bytes::Bytes;
use http::{Method, Request, Response, StatusCode};
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo};
use tokio::net::{TcpListener, TcpStream};
use upgrade_client::{bounded, h2_client, open, raw, raw_http1, upgrade_head};
use ws_tokio::{
    AcceptResponse, ClientRequest, CloseCode, CloseFrame, Config, Error, Message, Reject,
};

/// Echoes WebSockets (choosing `chat` when offered, refusing `/private` with 403) and answers
/// other requests with a page; every CONNECT goes to `upgrade_with`.
async fn handle(mut request: Request<Incoming>) -> Result<Response<Full<Bytes>>, Infallible> {
    let connect = request.method() == Method::CONNECT;
    if !ws_tokio::hyper::is_upgrade_request(&request) && !connect {
        return Ok(Response::new(Full::new(Bytes::from_static(b"a page"))));
    }
    let config = Config::default().with_ping_interval(None);
    let accepted = ws_tokio::hyper::upgrade_with(&mut request, config, |req| {
        if req.path() == "/private" {
            return Err(Reject::status(403).body("private\n"));
        }
        let chat = req.protocols().any(|p| p == "chat");
        Ok(if chat {
            AcceptResponse::new().protocol("chat")
        } else {
            AcceptResponse::new()
        })
    });
    let (response, upgrade) = match accepted {
        Ok(accepted) => accepted,
        Err(refusal) => return Ok(refusal.into_response()),
    };
    let deflate = upgrade.compression_enabled();
    tokio::spawn(async move {
        let Ok(mut ws) = upgrade.await else { return };
        assert_eq!(ws.compression_enabled(), deflate);
        while let Some(Ok(msg)) = ws.recv().await {
            if (msg.is_text() || msg.is_binary()) && ws.send(msg).await.is_err() {
                return;
            }
        }
    });
    Ok(response)
}

/// An HTTP/1.1 server (with upgrades) and an HTTP/2 server (extended CONNECT on), each on its
/// own port.
async fn servers() -> (SocketAddr, SocketAddr) {
    let h1 = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let h2 = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addrs = (h1.local_addr().unwrap(), h2.local_addr().unwrap());
    tokio::spawn(async move {
        while let Ok((tcp, _)) = h1.accept().await {
            tokio::spawn(
                hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(tcp), service_fn(handle))
                    .with_upgrades(),
            );
        }
    });
    tokio::spawn(async move {
        while let Ok((tcp, _)) = h2.accept().await {
            let mut builder = hyper::server::conn::http2::Builder::new(TokioExecutor::new());
            builder.enable_connect_protocol();
            tokio::spawn(builder.serve_connection(TokioIo::new(tcp), service_fn(handle)));
        }
    });
    addrs
}

fn config() -> Config {
    Config::default()
        .with_ping_interval(None)
        .with_close_timeout(std::time::Duration::from_secs(2))
}

async fn round_trips<S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin>(
    mut ws: ws_tokio::WebSocket<S>,
) {
    let big: Vec<u8> = (0..1u32 << 20).map(|i| (i % 251) as u8).collect();
    for m in [Message::text("héllo"), Message::binary(big)] {
        bounded("send", ws.send(m.clone())).await.unwrap();
        assert_eq!(bounded("echo", ws.recv()).await.unwrap().unwrap(), m);
    }
    bounded(
        "close",
        ws.close(Some(CloseFrame::new(CloseCode::NORMAL, ""))),
    )
    .await
    .unwrap();
}

#[tokio::test]
async fn http1_upgrade() {
    let (addr, _) = servers().await;
    let tcp = TcpStream::connect(addr).await.unwrap();
    let req = ClientRequest::new(addr.to_string(), "/ws")
        .protocol("chat")
        .config(config());
    let (ws, res) = bounded("handshake", ws_tokio::client(tcp, req))
        .await
        .unwrap();
    assert_eq!(res.protocol.as_deref(), Some("chat"));
    assert!(ws.compression_enabled());
    round_trips(ws).await;

    let tcp = TcpStream::connect(addr).await.unwrap();
    let req = ClientRequest::new(addr.to_string(), "/private").config(config());
    let r = bounded("handshake", ws_tokio::client(tcp, req)).await;
    assert!(matches!(r, Err(Error::Rejected { status: 403 })), "{r:?}");

    let (status, _, body) = raw_http1(addr, "GET / HTTP/1.1\r\nHost: x\r\n\r\n").await;
    assert_eq!((status, body.as_slice()), (200, &b"a page"[..]));
    let head =
        upgrade_head("/ws", "").replace("Sec-WebSocket-Version: 13", "Sec-WebSocket-Version: 7");
    let (status, text, _) = raw_http1(addr, &head).await;
    assert_eq!(status, 426);
    assert!(
        text.to_ascii_lowercase()
            .contains("sec-websocket-version: 13"),
        "{text}"
    );
    let head = upgrade_head("/ws", "").replace("Host: localhost\r\n", "");
    assert_eq!(raw_http1(addr, &head).await.0, 400);
}

#[tokio::test]
async fn http2_extended_connect() {
    let (_, addr) = servers().await;
    let client = h2_client(addr).await;
    let req = || ClientRequest::default().protocol("chat").config(config());
    let (a, pa) = open(&client, "/ws", req()).await.unwrap();
    let (b, pb) = open(
        &client,
        "/ws",
        req().config(config().with_compression(None)),
    )
    .await
    .unwrap();
    assert_eq!((pa.as_deref(), pb.as_deref()), (Some("chat"), Some("chat")));
    assert!(a.compression_enabled());
    assert!(!b.compression_enabled());
    tokio::join!(round_trips(a), round_trips(b));

    let r = open(&client, "/private", req()).await;
    assert!(
        matches!(r, Err(Error::Rejected { status: 403 })),
        "{:?}",
        r.err()
    );
    let mut connect = Request::builder()
        .method(Method::CONNECT)
        .uri(format!("http://{addr}/ws"))
        .header("sec-websocket-version", "13")
        .body(())
        .unwrap();
    connect
        .extensions_mut()
        .insert(h2::ext::Protocol::from_static("webtransport"));
    let (res, _) = raw(&client, connect).await;
    assert_eq!(res.status(), StatusCode::NOT_IMPLEMENTED);
    let get = Request::builder()
        .uri(format!("http://{addr}/"))
        .body(())
        .unwrap();
    let (res, body) = raw(&client, get).await;
    assert_eq!(
        (res.status(), body.as_slice()),
        (StatusCode::OK, &b"a page"[..])
    );
}
