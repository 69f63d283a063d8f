//! An axum app with a page at `/` and an echo WebSocket at `/ws` (every text and binary
//! message sent back), over HTTP/1.1 and HTTP/2 on the same port: cleartext (HTTP/1.1 and
//! h2c), or TLS with rustls when given a certificate (ALPN `h2` and `http/1.1`). Browsers
//! that speak RFC 8441 open the WebSocket on the page's HTTP/2 connection.
//!
//! ```sh
//! cargo run -p ws-tokio --features axum,rustls --example axum_app -- 127.0.0.1:3000
//! cargo run -p ws-tokio --features axum,rustls --example axum_app -- 127.0.0.1:3443 \
//!     --cert cert.pem --key key.pem
//! ```
//!
//! Prints `LISTENING ADDR` once it accepts connections, and one line per WebSocket as it
//! opens (`ws open HTTP/2.0 deflate=true`) and ends (`ws end messages=3 close=1000`).

use std::net::SocketAddr;
use std::sync::Arc;

use axum::Router;
use axum::response::{Html, Response};
use axum::routing::{any, get};
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use hyper_util::service::TowerToHyperService;
use tokio::net::TcpListener;
use tokio_rustls::TlsAcceptor;
use tokio_rustls::rustls::ServerConfig;
use tokio_rustls::rustls::pki_types::pem::PemObject;
use tokio_rustls::rustls::pki_types::{CertificateDer, PrivateKeyDer};
use ws_tokio::axum::{Message, WebSocket, WebSocketUpgrade};

const PAGE: &str = r#"<!doctype html>
<html><head><meta charset="utf-8"><title>ws-tokio axum echo</title></head>
<body>
<h1>Echo</h1>
<form id="f"><input id="text" autocomplete="off" value="hello"> <button>Send</button></form>
<pre id="log"></pre>
<script>
const log = (s) => { document.getElementById('log').textContent += s + '\n'; };
const url = (location.protocol === 'https:' ? 'wss://' : 'ws://') + location.host + '/ws';
const ws = new WebSocket(url);
ws.onopen = () => log('open ' + url + ' extensions=' + JSON.stringify(ws.extensions));
ws.onmessage = (ev) => log('< ' + ev.data);
ws.onclose = (ev) => log('closed ' + ev.code);
document.getElementById('f').onsubmit = (ev) => {
  ev.preventDefault();
  const t = document.getElementById('text').value;
  ws.send(t);
  log('> ' + t);
};
</script></body></html>"#;

async fn ws_handler(ws: WebSocketUpgrade) -> Response {
    let version = ws.version();
    ws.on_upgrade(move |socket| echo(socket, version))
}

async fn echo(mut socket: WebSocket, version: http::Version) {
    println!(
        "ws open {version:?} deflate={}",
        socket.compression_enabled()
    );
    let mut messages = 0u64;
    let mut close = None;
    let mut error = None;
    while let Some(msg) = socket.recv().await {
        match msg {
            Ok(m @ (Message::Text(_) | Message::Binary(_))) => {
                messages += 1;
                if let Err(e) = socket.send(m).await {
                    error = Some(e);
                    break;
                }
            }
            Ok(Message::Close(frame)) => close = frame.map(|f| f.code),
            Ok(_) => {}
            Err(e) => {
                error = Some(e);
                break;
            }
        }
    }
    let close = close.map_or("none".to_owned(), |c| c.to_string());
    match error {
        None => println!("ws end messages={messages} close={close}"),
        Some(e) => println!("ws end messages={messages} close={close} error={e}"),
    }
}

fn app() -> Router {
    Router::new()
        .route("/", get(|| async { Html(PAGE) }))
        .route("/ws", any(ws_handler))
}

fn tls_config(cert: &str, key: &str) -> Result<ServerConfig, String> {
    let certs = CertificateDer::pem_file_iter(cert)
        .and_then(|c| c.collect::<Result<Vec<_>, _>>())
        .map_err(|e| format!("{cert}: {e}"))?;
    let key = PrivateKeyDer::from_pem_file(key).map_err(|e| format!("{key}: {e}"))?;
    let mut config = ServerConfig::builder()
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .map_err(|e| format!("certificate: {e}"))?;
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(config)
}

/// TLS connections: the handshake, then HTTP/1.1 or HTTP/2 (as ALPN chose) with upgrades and
/// extended CONNECT, as `axum::serve` does for cleartext ones.
async fn serve_tls(listener: TcpListener, tls: ServerConfig, app: Router) {
    let acceptor = TlsAcceptor::from(Arc::new(tls));
    loop {
        let Ok((tcp, _)) = listener.accept().await else {
            continue;
        };
        let _ = tcp.set_nodelay(true);
        let acceptor = acceptor.clone();
        let service = TowerToHyperService::new(app.clone());
        tokio::spawn(async move {
            let Ok(stream) = acceptor.accept(tcp).await else {
                return;
            };
            let mut builder = auto::Builder::new(TokioExecutor::new());
            builder.http2().enable_connect_protocol();
            let _ = builder
                .serve_connection_with_upgrades(TokioIo::new(stream), service)
                .await;
        });
    }
}

#[tokio::main]
async fn main() -> Result<(), String> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let usage = "usage: axum_app ADDR [--cert CERT.pem --key KEY.pem]";
    let addr: SocketAddr = args.first().and_then(|a| a.parse().ok()).ok_or(usage)?;
    let (mut cert, mut key) = (None, None);
    let mut rest = args[1..].iter();
    while let Some(flag) = rest.next() {
        match flag.as_str() {
            "--cert" => cert = rest.next().cloned(),
            "--key" => key = rest.next().cloned(),
            _ => return Err(usage.into()),
        }
    }
    let listener = TcpListener::bind(addr)
        .await
        .map_err(|e| format!("{addr}: {e}"))?;
    let local = listener.local_addr().map_err(|e| e.to_string())?;
    match (cert, key) {
        (Some(cert), Some(key)) => {
            let tls = tls_config(&cert, &key)?;
            println!("LISTENING {local}");
            serve_tls(listener, tls, app()).await;
            Ok(())
        }
        (None, None) => {
            println!("LISTENING {local}");
            axum::serve(listener, app())
                .await
                .map_err(|e| e.to_string())
        }
        _ => Err(usage.into()),
    }
}
