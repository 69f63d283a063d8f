//! `wss://` against TLS servers on loopback (feature `rustls`): a compressed round trip and
//! the close handshake through TLS, a server the client does not trust; client configurations
//! from `ws_tokio::tls::ClientTls` (roots from PEM, the platform's roots, client certificates),
//! servers from `ServerTls` / `server_config_from_pem` behind `TlsAcceptor`; SNI and ALPN as
//! the server saw them; mutual TLS accepted and refused; `wss://` through tinyproxy, set in the
//! request and named by `HTTPS_PROXY`; the server's TLS handshake deadline.
//!
//! The certificates in `tests/tls/` are a test CA and a `localhost` / `127.0.0.1` server
//! certificate it signed (valid until 2126); the CA's key was not kept. The tests that need
//! more (client certificates, a second CA) make them at run time with rcgen.
#![cfg(feature = "rustls")]

mod common;
#[path = "proxy/daemons.rs"]
mod daemons;

use std::sync::Arc;

use common::*;
use tokio::net::{TcpListener, TcpStream};
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
    let acceptor = tokio_rustls::TlsAcceptor::from(server_config());
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

// ---------------------------------------------------------------------------------------------
// Certificates made here: a CA, a server certificate and client certificates it signs, and a
// second CA whose client certificate the server must refuse.

use std::path::{Path, PathBuf};
use std::time::Duration;

use tokio::sync::mpsc;
use ws_tokio::proxy::{Proxy, ProxyKind};
use ws_tokio::tls::{ClientTls, ServerTls, TlsAcceptor, TlsConfigError, server_config_from_pem};

struct Ca {
    pem: String,
    issuer: rcgen::Issuer<'static, rcgen::KeyPair>,
}

fn make_ca(name: &str) -> Ca {
    use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, KeyPair, KeyUsagePurpose};
    let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    params.distinguished_name.push(DnType::CommonName, name);
    params.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    let key = KeyPair::generate().unwrap();
    let cert = params.self_signed(&key).unwrap();
    Ca {
        pem: cert.pem(),
        issuer: rcgen::Issuer::new(params, key),
    }
}

/// A certificate for `names` (IP addresses become IP SANs) signed by `ca`, for a server or a
/// client; returns (certificate PEM, key PEM).
fn make_leaf(ca: &Ca, names: &[&str], client: bool) -> (String, String) {
    use rcgen::{CertificateParams, DnType, ExtendedKeyUsagePurpose, KeyPair};
    let mut params =
        CertificateParams::new(names.iter().map(|n| n.to_string()).collect::<Vec<_>>()).unwrap();
    params.distinguished_name.push(DnType::CommonName, names[0]);
    params.extended_key_usages = vec![if client {
        ExtendedKeyUsagePurpose::ClientAuth
    } else {
        ExtendedKeyUsagePurpose::ServerAuth
    }];
    params.use_authority_key_identifier_extension = true;
    let key = KeyPair::generate().unwrap();
    let cert = params.signed_by(&key, &ca.issuer).unwrap();
    (cert.pem(), key.serialize_pem())
}

/// The PEM files of one test's certificates, in a temp dir removed at the end.
struct Pki {
    dir: daemons::TempDir,
}

impl Pki {
    fn new() -> Pki {
        let pki = Pki {
            dir: daemons::TempDir::new("pki"),
        };
        let ca = make_ca("ws-tokio test CA");
        let other = make_ca("another CA");
        let (server, server_key) = make_leaf(&ca, &["localhost", "127.0.0.1"], false);
        let (client, client_key) = make_leaf(&ca, &["client one"], true);
        let (stranger, stranger_key) = make_leaf(&other, &["client two"], true);
        let (other_name, other_name_key) = make_leaf(&ca, &["other.example"], false);
        for (name, pem) in [
            ("ca.pem", ca.pem.as_str()),
            ("other-ca.pem", other.pem.as_str()),
            ("server.pem", &server),
            ("server.key", &server_key),
            ("client.pem", &client),
            ("client.key", &client_key),
            ("stranger.pem", &stranger),
            ("stranger.key", &stranger_key),
            ("other-name.pem", &other_name),
            ("other-name.key", &other_name_key),
        ] {
            std::fs::write(pki.path(name), pem).unwrap();
        }
        pki
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.0.join(name)
    }

    fn read(&self, name: &str) -> Vec<u8> {
        std::fs::read(self.path(name)).unwrap()
    }

    /// A client that trusts the test CA.
    fn client(&self) -> ClientTls {
        ClientTls::new()
            .with_root_pem_file(self.path("ca.pem"))
            .unwrap()
    }
}

/// What the server saw of one TLS connection.
#[derive(Debug)]
struct Seen {
    sni: Option<String>,
    alpn: Option<Vec<u8>>,
    client_certs: usize,
    /// The TLS or WebSocket failure, if any.
    error: Option<String>,
}

/// A wss echo server on 127.0.0.1 (and [::1] at the same port when free) that reports what it
/// saw of each connection.
async fn wss_server(config: Arc<ServerConfig>) -> (u16, mpsc::UnboundedReceiver<Seen>) {
    async fn serve(listener: TcpListener, acceptor: TlsAcceptor, tx: mpsc::UnboundedSender<Seen>) {
        while let Ok((tcp, _)) = listener.accept().await {
            let (acceptor, tx) = (acceptor.clone(), tx.clone());
            tokio::spawn(async move {
                let tls = match acceptor.accept(tcp).await {
                    Ok(t) => t,
                    Err(e) => {
                        let error =
                            std::error::Error::source(&e).map_or(e.to_string(), |s| s.to_string());
                        let _ = tx.send(Seen {
                            sni: None,
                            alpn: None,
                            client_certs: 0,
                            error: Some(error),
                        });
                        return;
                    }
                };
                let conn = tls.get_ref().1;
                let mut seen = Seen {
                    sni: conn.server_name().map(String::from),
                    alpn: conn.alpn_protocol().map(<[u8]>::to_vec),
                    client_certs: conn.peer_certificates().map_or(0, <[_]>::len),
                    error: None,
                };
                match ws_tokio::accept_with_config(tls, quiet()).await {
                    Ok(mut ws) => {
                        while let Some(Ok(m)) = ws.recv().await {
                            if matches!(m, Message::Text(_) | Message::Binary(_))
                                && ws.send(m).await.is_err()
                            {
                                break;
                            }
                        }
                    }
                    Err(e) => {
                        seen.error = Some(
                            std::error::Error::source(&e)
                                .map_or(format!("{e:?}"), |s| s.to_string()),
                        );
                    }
                }
                let _ = tx.send(seen);
            });
        }
    }
    let acceptor = TlsAcceptor::new(config);
    let (tx, rx) = mpsc::unbounded_channel();
    let v4 = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = v4.local_addr().unwrap().port();
    tokio::spawn(serve(v4, acceptor.clone(), tx.clone()));
    if let Ok(v6) = TcpListener::bind((std::net::Ipv6Addr::LOCALHOST, port)).await {
        tokio::spawn(serve(v6, acceptor, tx));
    }
    (port, rx)
}

/// Connects, sends one message, checks its echo, closes.
async fn wss_exchange(url: &str, request: ClientRequest) -> Result<(), Error> {
    let (mut ws, _) = bounded("wss connect", ws_tokio::connect_request(url, request)).await?;
    assert!(matches!(ws.get_ref(), MaybeTlsStream::Tls(_)));
    let text = format!("over TLS to {url}");
    bounded("send", ws.send(Message::text(text.clone()))).await?;
    let echo = bounded("echo", ws.recv()).await.ok_or(Error::Closed)??;
    assert_eq!(echo, Message::text(text));
    bounded("close", ws.close(None)).await
}

async fn seen(rx: &mut mpsc::UnboundedReceiver<Seen>) -> Seen {
    bounded("the server's report", rx.recv()).await.unwrap()
}

fn req(tls: Arc<ClientConfig>) -> ClientRequest {
    ClientRequest::default()
        .config(quiet())
        .tls(tls)
        .proxy(ws_tokio::proxy::ProxySetting::Direct)
}

#[tokio::test]
async fn roots_from_pem_sni_and_alpn() {
    let pki = Pki::new();
    let config = server_config_from_pem(pki.path("server.pem"), pki.path("server.key")).unwrap();
    let (port, mut rx) = wss_server(config).await;
    let tls = pki.client().build().unwrap();
    assert_eq!(tls.alpn_protocols, [b"http/1.1".to_vec()]);

    wss_exchange(&format!("wss://localhost:{port}/"), req(tls.clone()))
        .await
        .expect("wss to localhost");
    let s = seen(&mut rx).await;
    assert_eq!(s.sni.as_deref(), Some("localhost"), "{s:?}");
    assert_eq!(s.alpn.as_deref(), Some(&b"http/1.1"[..]), "{s:?}");
    assert_eq!((s.client_certs, s.error), (0, None));

    // An IP address is checked against the certificate's IP SAN, and sends no SNI (RFC 6066).
    wss_exchange(&format!("wss://127.0.0.1:{port}/"), req(tls.clone()))
        .await
        .expect("wss to 127.0.0.1");
    let s = seen(&mut rx).await;
    assert_eq!(s.sni, None, "{s:?}");

    // The roots as bytes, and as DER, work the same.
    let from_bytes = ClientTls::new()
        .with_root_pem(pki.read("ca.pem"))
        .unwrap()
        .build()
        .unwrap();
    wss_exchange(&format!("wss://localhost:{port}/"), req(from_bytes))
        .await
        .unwrap();
    assert_eq!(seen(&mut rx).await.error, None);

    // A server whose certificate is for another name fails on the client side.
    let config =
        server_config_from_pem(pki.path("other-name.pem"), pki.path("other-name.key")).unwrap();
    let (port, _rx) = wss_server(config).await;
    let e = wss_exchange(
        &format!("wss://localhost:{port}/"),
        req(pki.client().build().unwrap()),
    )
    .await
    .unwrap_err();
    let cause = std::error::Error::source(&e).unwrap().to_string();
    assert!(cause.contains("not valid for name"), "{cause}");
}

#[tokio::test]
async fn a_server_that_insists_on_h2_refuses_the_http11_offer() {
    let pki = Pki::new();
    let config = ServerTls::from_pem_files(pki.path("server.pem"), pki.path("server.key"))
        .unwrap()
        .with_alpn(vec![b"h2".to_vec()])
        .build()
        .unwrap();
    let (port, mut rx) = wss_server(config).await;
    let e = wss_exchange(
        &format!("wss://localhost:{port}/"),
        req(pki.client().build().unwrap()),
    )
    .await
    .unwrap_err();
    let cause = std::error::Error::source(&e)
        .map(|s| s.to_string())
        .unwrap_or_default();
    assert!(cause.contains("NoApplicationProtocol"), "{e:?}: {cause}");
    let s = seen(&mut rx).await;
    let server_error = s.error.expect("the server refused it");
    assert!(
        server_error.contains("any known protocol"),
        "{server_error}"
    );
}

#[tokio::test]
async fn mutual_tls_accepted_and_refused() {
    let pki = Pki::new();
    let config = ServerTls::from_pem(pki.read("server.pem"), pki.read("server.key"))
        .unwrap()
        .with_client_auth_pem_file(pki.path("ca.pem"))
        .unwrap()
        .build()
        .unwrap();
    let (port, mut rx) = wss_server(config).await;
    let url = format!("wss://localhost:{port}/");

    // Accepted: a certificate the server's CA signed.
    let with_cert = pki
        .client()
        .with_client_auth_pem_files(pki.path("client.pem"), pki.path("client.key"))
        .unwrap()
        .build()
        .unwrap();
    wss_exchange(&url, req(with_cert))
        .await
        .expect("mutual TLS");
    let s = seen(&mut rx).await;
    assert_eq!((s.client_certs, s.error), (1, None), "accepted");

    // Refused: no certificate. With TLS 1.3 the client learns it from the server's alert,
    // on its first read (the HTTP upgrade's answer).
    let e = wss_exchange(&url, req(pki.client().build().unwrap()))
        .await
        .unwrap_err();
    assert!(matches!(e, Error::Io(_)), "{e:?}");
    let cause = std::error::Error::source(&e).unwrap().to_string();
    assert!(cause.contains("CertificateRequired"), "{cause}");
    let s = seen(&mut rx).await;
    let server_error = s.error.expect("the server refused it");
    assert!(server_error.contains("no certificates"), "{server_error}");

    // Refused: a certificate from another CA.
    let stranger = pki
        .client()
        .with_client_auth_pem(pki.read("stranger.pem"), pki.read("stranger.key"))
        .unwrap()
        .build()
        .unwrap();
    let e = wss_exchange(&url, req(stranger)).await.unwrap_err();
    let cause = std::error::Error::source(&e).unwrap().to_string();
    assert!(cause.contains("UnknownCA"), "{cause}");
    let server_error = seen(&mut rx).await.error.expect("the server refused it");
    assert!(server_error.contains("UnknownIssuer"), "{server_error}");

    // Optional client authentication: none is fine, a wrong one still is not.
    let optional = ServerTls::from_pem(pki.read("server.pem"), pki.read("server.key"))
        .unwrap()
        .with_client_auth_pem(pki.read("ca.pem"))
        .unwrap()
        .with_client_auth_optional(true)
        .build()
        .unwrap();
    let (port, mut rx) = wss_server(optional).await;
    let url = format!("wss://localhost:{port}/");
    wss_exchange(&url, req(pki.client().build().unwrap()))
        .await
        .expect("no certificate, optional");
    assert_eq!(seen(&mut rx).await.client_certs, 0);
    let stranger = pki
        .client()
        .with_client_auth_pem(pki.read("stranger.pem"), pki.read("stranger.key"))
        .unwrap()
        .build()
        .unwrap();
    assert!(wss_exchange(&url, req(stranger)).await.is_err());
    assert!(seen(&mut rx).await.error.is_some());
}

#[tokio::test]
async fn wss_through_tinyproxy_sends_the_targets_name() {
    let pki = Pki::new();
    let config = server_config_from_pem(pki.path("server.pem"), pki.path("server.key")).unwrap();
    let (port, mut rx) = wss_server(config).await;
    let tp = daemons::tinyproxy("BasicAuth user pass");
    let proxy = Proxy::parse(&format!("http://user:pass@127.0.0.1:{}", tp.port)).unwrap();
    let request = req(pki.client().build().unwrap()).proxy(proxy);
    wss_exchange(&format!("wss://localhost:{port}/"), request)
        .await
        .expect("wss through tinyproxy");
    tp.log_line_with(&format!("CONNECT localhost:{port} HTTP/1.1"));
    // TLS ran to the target through the tunnel: its SNI is the target's name, not the
    // proxy's address.
    let s = seen(&mut rx).await;
    assert_eq!(s.sni.as_deref(), Some("localhost"), "{s:?}");
    assert_eq!(s.error, None);

    // A refusal by the proxy, before any TLS.
    let none = Proxy::new(ProxyKind::Http, "127.0.0.1", tp.port);
    let e = wss_exchange(
        &format!("wss://localhost:{port}/"),
        req(pki.client().build().unwrap()).proxy(none),
    )
    .await
    .unwrap_err();
    assert!(e.to_string().contains("HTTP 407"), "{e}");
}

/// Runs `child` (one of the ignored tests below) in a child process with `vars` set and the
/// proxy and certificate variables otherwise removed; panics unless it passes.
fn run_child(child: &str, vars: &[(&str, String)]) {
    let mut cmd = std::process::Command::new(std::env::current_exe().unwrap());
    cmd.args(["--exact", child, "--ignored", "--test-threads=1"]);
    for name in [
        "http_proxy",
        "HTTP_PROXY",
        "https_proxy",
        "HTTPS_PROXY",
        "all_proxy",
        "ALL_PROXY",
        "no_proxy",
        "NO_PROXY",
        "SSL_CERT_FILE",
        "SSL_CERT_DIR",
    ] {
        cmd.env_remove(name);
    }
    for (k, v) in vars {
        cmd.env(k, v);
    }
    let out = cmd.output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success() && stdout.contains("1 passed"),
        "{child} failed ({}):\n{stdout}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
}

#[tokio::test]
#[ignore = "run by wss_through_the_proxy_named_by_https_proxy in a child process"]
async fn https_proxy_child() {
    let ca = std::env::var("WS_CHILD_CA").unwrap();
    let url = std::env::var("WS_CHILD_URL").unwrap();
    let tls = ClientTls::new()
        .with_root_pem_file(ca)
        .unwrap()
        .build()
        .unwrap();
    // The default proxy setting: the environment.
    let request = ClientRequest::default().config(quiet()).tls(tls);
    wss_exchange(&url, request)
        .await
        .expect("wss through HTTPS_PROXY");
}

#[tokio::test]
async fn wss_through_the_proxy_named_by_https_proxy() {
    let pki = Pki::new();
    let config = server_config_from_pem(pki.path("server.pem"), pki.path("server.key")).unwrap();
    let (port, mut rx) = wss_server(config).await;
    let tp = daemons::tinyproxy("");
    let dead = daemons::free_port();
    let vars = [
        ("HTTPS_PROXY", format!("http://127.0.0.1:{}", tp.port)),
        // For ws:// only: not used for wss://.
        ("http_proxy", format!("http://127.0.0.1:{dead}")),
        ("WS_CHILD_CA", pki.path("ca.pem").display().to_string()),
        ("WS_CHILD_URL", format!("wss://localhost:{port}/")),
    ];
    tokio::task::spawn_blocking(move || run_child("https_proxy_child", &vars))
        .await
        .unwrap();
    tp.log_line_with(&format!("CONNECT localhost:{port} HTTP/1.1"));
    assert_eq!(seen(&mut rx).await.sni.as_deref(), Some("localhost"));
}

#[cfg(feature = "rustls-native-certs")]
#[tokio::test]
#[ignore = "run by native_roots_come_from_ssl_cert_file in a child process"]
async fn native_roots_child() {
    let url = std::env::var("WS_CHILD_URL").unwrap();
    let tls = ClientTls::new()
        .with_native_roots()
        .unwrap()
        .build()
        .unwrap();
    wss_exchange(&url, req(tls)).await.expect("native roots");
}

#[cfg(feature = "rustls-native-certs")]
#[tokio::test]
async fn native_roots_come_from_ssl_cert_file() {
    let pki = Pki::new();
    let config = server_config_from_pem(pki.path("server.pem"), pki.path("server.key")).unwrap();
    let (port, mut rx) = wss_server(config).await;
    // rustls-native-certs reads SSL_CERT_FILE instead of the system store when it is set.
    let vars = [
        ("SSL_CERT_FILE", pki.path("ca.pem").display().to_string()),
        ("WS_CHILD_URL", format!("wss://localhost:{port}/")),
    ];
    tokio::task::spawn_blocking(move || run_child("native_roots_child", &vars))
        .await
        .unwrap();
    assert_eq!(seen(&mut rx).await.error, None);

    // An SSL_CERT_FILE with no certificate in it is an error, not an empty trust store.
    let empty = pki.path("empty.pem");
    std::fs::write(&empty, "").unwrap();
    let url = format!("wss://localhost:{port}/");
    let vars = [
        ("SSL_CERT_FILE", empty.display().to_string()),
        ("WS_CHILD_URL", url),
    ];
    let r = tokio::task::spawn_blocking(move || {
        std::panic::catch_unwind(|| run_child("native_roots_child", &vars))
    })
    .await
    .unwrap();
    assert!(r.is_err(), "an empty store was accepted");
}

#[test]
fn configs_are_built_with_the_provider_given_not_the_process_default() {
    // Nothing in this test binary installs a process-wide provider; ClientConfig::builder()
    // would have (or panicked with two providers linked). Ours leave it unset.
    let pki = Pki::new();
    let _ = ClientTls::new().with_webpki_roots().build().unwrap();
    let _ = pki.client().build().unwrap();
    let _ = ws_tokio::default_tls_config().unwrap();
    let _ = server_config_from_pem(pki.path("server.pem"), pki.path("server.key")).unwrap();
    let _ = ServerTls::from_pem(pki.read("server.pem"), pki.read("server.key"))
        .unwrap()
        .with_client_auth_pem(pki.read("ca.pem"))
        .unwrap()
        .build()
        .unwrap();
    assert!(rustls::crypto::CryptoProvider::get_default().is_none());
}

#[test]
fn configuration_errors_are_typed() {
    let pki = Pki::new();
    let missing = Path::new("/nonexistent/ws-tokio/ca.pem");
    let e = ClientTls::new().with_root_pem_file(missing).unwrap_err();
    assert!(
        matches!(&e, TlsConfigError::Read { path, .. } if path == missing),
        "{e:?}"
    );
    assert!(
        e.to_string().contains("/nonexistent/ws-tokio/ca.pem"),
        "{e}"
    );
    assert!(matches!(
        ClientTls::new().with_root_pem(b"no PEM here"),
        Err(TlsConfigError::NoCertificates)
    ));
    let broken = b"-----BEGIN CERTIFICATE-----\n!!!!\n-----END CERTIFICATE-----\n";
    assert!(matches!(
        ClientTls::new().with_root_pem(broken),
        Err(TlsConfigError::Pem { .. })
    ));
    assert!(matches!(
        ClientTls::new().build(),
        Err(TlsConfigError::NoRoots)
    ));
    // A key with no certificate, a certificate with no key.
    assert!(matches!(
        ServerTls::from_pem(pki.read("server.key"), pki.read("server.key")),
        Err(TlsConfigError::NoCertificates)
    ));
    assert!(matches!(
        ServerTls::from_pem(pki.read("server.pem"), pki.read("server.pem")),
        Err(TlsConfigError::NoPrivateKey)
    ));
    // A key that is not the certificate's.
    let mismatched = ServerTls::from_pem(pki.read("server.pem"), pki.read("client.key"))
        .unwrap()
        .build();
    assert!(
        matches!(mismatched, Err(TlsConfigError::Rustls(_))),
        "{mismatched:?}"
    );
    let mismatched = pki
        .client()
        .with_client_auth_pem(pki.read("client.pem"), pki.read("server.key"))
        .unwrap()
        .build();
    assert!(
        matches!(mismatched, Err(TlsConfigError::Rustls(_))),
        "{mismatched:?}"
    );
    // The Debug forms say what is configured, never the key.
    let debug = format!(
        "{:?}",
        ServerTls::from_pem(pki.read("server.pem"), pki.read("server.key")).unwrap()
    );
    assert!(!debug.contains("PRIVATE"), "{debug}");
}

/// A client handshake over one end of a duplex pipe after `delay`; the server's `TlsAcceptor`
/// on the other end.
async fn handshake_after(delay: Duration) -> Result<(), Error> {
    let pki = Pki::new();
    let config = server_config_from_pem(pki.path("server.pem"), pki.path("server.key")).unwrap();
    let acceptor = TlsAcceptor::new(config);
    let client_config = pki.client().build().unwrap();
    let (a, b) = tokio::io::duplex(64 << 10);
    let client = tokio::spawn(async move {
        tokio::time::sleep(delay).await;
        let name = rustls::pki_types::ServerName::try_from("localhost").unwrap();
        tokio_rustls::TlsConnector::from(client_config)
            .connect(name, b)
            .await
    });
    let result = acceptor.accept(a).await.map(|_| ());
    client.abort();
    result
}

#[tokio::test(start_paused = true)]
async fn the_servers_tls_handshake_has_a_deadline() {
    assert_eq!(
        ws_tokio::tls::DEFAULT_TLS_HANDSHAKE_TIMEOUT,
        Duration::from_secs(10)
    );
    // A client that starts just inside the deadline gets through ...
    let start = tokio::time::Instant::now();
    handshake_after(Duration::from_millis(9_990))
        .await
        .expect("inside the deadline");
    assert!(start.elapsed() < Duration::from_secs(10));
    // ... one that starts at it does not.
    let start = tokio::time::Instant::now();
    let e = handshake_after(Duration::from_secs(10)).await.unwrap_err();
    assert!(
        matches!(e, Error::Timeout(ws_tokio::TimeoutKind::Handshake)),
        "{e:?}"
    );
    assert_eq!(start.elapsed(), Duration::from_secs(10));

    // A TCP client that never speaks, on loopback.
    let pki = Pki::new();
    let config = server_config_from_pem(pki.path("server.pem"), pki.path("server.key")).unwrap();
    let acceptor = TlsAcceptor::new(config).with_handshake_timeout(Some(Duration::from_secs(3)));
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let silent = TcpStream::connect(listener.local_addr().unwrap())
        .await
        .unwrap();
    let (tcp, _) = listener.accept().await.unwrap();
    let start = tokio::time::Instant::now();
    let e = acceptor.accept(tcp).await.unwrap_err();
    assert!(matches!(e, Error::Timeout(_)), "{e:?}");
    assert_eq!(start.elapsed(), Duration::from_secs(3));
    drop(silent);
}

#[tokio::test]
async fn a_reconnecting_client_does_not_retry_an_untrusted_certificate() {
    use futures_util::StreamExt;
    use ws_tokio::reconnect::{Event, ReconnectConfig, ReconnectingClient};

    let pki = Pki::new();
    let config = server_config_from_pem(pki.path("server.pem"), pki.path("server.key")).unwrap();
    let (port, mut rx) = wss_server(config).await;
    let url = format!("wss://localhost:{port}/");
    // Trusting another CA: the certificate is refused, and another try would only repeat it.
    let other = ClientTls::new()
        .with_root_pem_file(pki.path("other-ca.pem"))
        .unwrap()
        .build()
        .unwrap();
    let mut client =
        ReconnectingClient::new(&url, ReconnectConfig::default().with_request(req(other))).unwrap();
    assert!(matches!(
        bounded("event", client.next()).await,
        Some(Event::Connecting { attempt: 1 })
    ));
    let e = bounded("event", client.next()).await;
    assert!(
        matches!(
            &e,
            Some(Event::Closed {
                error: Some(Error::Io(_)),
                retry_in: None,
                ..
            })
        ),
        "{e:?}"
    );
    assert!(bounded("end", client.next()).await.is_none());
    assert!(seen(&mut rx).await.error.is_some());

    // Trusting the right CA, it connects and exchanges messages.
    let mut client = ReconnectingClient::new(
        &url,
        ReconnectConfig::default().with_request(req(pki.client().build().unwrap())),
    )
    .unwrap();
    loop {
        match bounded("event", client.next()).await.expect("an event") {
            Event::Open { .. } => break,
            Event::Connecting { .. } => {}
            e => panic!("{e:?}"),
        }
    }
    futures_util::SinkExt::send(&mut client, Message::text("over wss"))
        .await
        .unwrap();
    let e = bounded("echo", client.next()).await;
    assert!(
        matches!(&e, Some(Event::Message(Message::Text(t))) if t.as_str() == "over wss"),
        "{e:?}"
    );
    client.close(None).await.unwrap();
}
