//! `wss://` against a TLS server on loopback (feature `rustls`): a compressed round trip and
//! the close handshake through TLS, and a server the client does not trust.
//!
//! The certificates in `tests/tls/` are a test CA and a `localhost` / `127.0.0.1` server
//! certificate it signed (valid until 2126); the CA's key was not kept.
#![cfg(feature = "rustls")]

mod common;

use std::sync::Arc;

use common::*;
use tokio::net::TcpListener;
use tokio_rustls::TlsAcceptor;
use tokio_rustls::rustls::pki_types::pem::PemObject;
use tokio_rustls::rustls::pki_types::{CertificateDer, PrivateKeyDer};
use tokio_rustls::rustls::{self, ClientConfig, RootCertStore, ServerConfig};
use ws_tokio::{ClientRequest, CloseCode, CloseFrame, Error, MaybeTlsStream, Message};

fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

fn server_config() -> Arc<ServerConfig> {
    let certs = CertificateDer::pem_slice_iter(include_bytes!("tls/localhost.pem"))
        .collect::<Result<Vec<_>, _>>()
        .unwrap();
    let key = PrivateKeyDer::from_pem_slice(include_bytes!("tls/localhost.key")).unwrap();
    let config = ServerConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .unwrap();
    Arc::new(config)
}

fn client_config() -> Arc<ClientConfig> {
    let mut roots = RootCertStore::empty();
    roots
        .add(CertificateDer::from_pem_slice(include_bytes!("tls/ca.pem")).unwrap())
        .unwrap();
    let config = ClientConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
    Arc::new(config)
}

/// A TLS echo server for one connection; returns its port and the task, which yields how the
/// connection ended on the server side.
async fn tls_echo_server() -> (u16, tokio::task::JoinHandle<Option<Error>>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let acceptor = TlsAcceptor::from(server_config());
    let task = tokio::spawn(async move {
        let (tcp, _) = listener.accept().await.unwrap();
        let tls = match acceptor.accept(tcp).await {
            Ok(t) => t,
            Err(e) => return Some(Error::Io(e)),
        };
        let mut ws = match ws_tokio::accept_with_config(tls, compressed()).await {
            Ok(ws) => ws,
            Err(e) => return Some(e),
        };
        while let Some(m) = ws.recv().await {
            match m {
                Ok(m @ (Message::Text(_) | Message::Binary(_))) => {
                    if let Err(e) = ws.send(m).await {
                        return Some(e);
                    }
                }
                Ok(_) => {}
                Err(e) => return Some(e),
            }
        }
        None
    });
    (port, task)
}

#[tokio::test]
async fn wss_round_trip_with_compression() {
    let (port, server) = tls_echo_server().await;
    let (mut ws, resp) = bounded(
        "connect",
        ws_tokio::connect_request(
            &format!("wss://localhost:{port}/chat"),
            ClientRequest::new("", "")
                .config(compressed())
                .tls(client_config()),
        ),
    )
    .await
    .expect("wss connect");
    assert_eq!(resp.status, 101);
    assert!(matches!(ws.get_ref(), MaybeTlsStream::Tls(_)));
    let ext = resp
        .headers
        .iter()
        .find(|(n, _)| n.eq_ignore_ascii_case("sec-websocket-extensions"))
        .map(|(_, v)| String::from_utf8_lossy(v).into_owned())
        .unwrap_or_default();
    assert!(ext.starts_with("permessage-deflate"), "{ext:?}");
    assert!(ws.compression_enabled());
    let text = "wss ✓ ".repeat(20_000);
    let binary: Vec<u8> = (0..300_000u32).map(|i| (i * 7 % 251) as u8).collect();
    for m in [
        Message::text(text),
        Message::binary(binary),
        Message::text(""),
    ] {
        bounded("send", ws.send(m.clone())).await.unwrap();
        let got = bounded("echo", ws.recv()).await.expect("echo").unwrap();
        assert!(got == m, "echo differs");
    }
    bounded(
        "close",
        ws.close(Some(CloseFrame::new(CloseCode::NORMAL, "done"))),
    )
    .await
    .unwrap();
    assert_eq!(ws.state(), ws_tokio::State::Terminated);
    let outcome = bounded("server", server).await.unwrap();
    assert!(outcome.is_none(), "server ended with {outcome:?}");
}

#[tokio::test]
async fn untrusted_server_fails_the_tls_handshake() {
    let (port, server) = tls_echo_server().await;
    // The default configuration trusts the Mozilla roots, not the test CA.
    let r = bounded(
        "connect",
        ws_tokio::connect_request(
            &format!("wss://localhost:{port}/chat"),
            ClientRequest::default(),
        ),
    )
    .await;
    let e = r.expect_err("connected to an untrusted server");
    assert!(matches!(e, Error::Io(_)), "{e:?}");
    // The cause is the error's source (its own message only says the transport failed).
    let cause = std::error::Error::source(&e)
        .expect("the TLS error")
        .to_string();
    assert!(cause.to_lowercase().contains("certificate"), "{cause}");
    // The server saw the handshake fail too.
    let outcome = bounded("server", server).await.unwrap();
    assert!(matches!(outcome, Some(Error::Io(_))), "{outcome:?}");
}
