//! TLS for the command line: the client's roots (`--ca`) or no check at all (`--insecure`),
//! the server's certificate and key (`--tls CERT KEY`), and a listener that runs the servers'
//! TLS handshakes concurrently for the serve loop.

use std::io;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;

use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinSet;
use ws_tokio::tls::rustls::client::danger::{
    HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier,
};
use ws_tokio::tls::rustls::crypto::{CryptoProvider, ring};
use ws_tokio::tls::rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use ws_tokio::tls::rustls::{
    self, ClientConfig, DigitallySignedStruct, ServerConfig, SignatureScheme,
};
use ws_tokio::tls::{ALPN_HTTP11, ClientTls, ServerTls, ServerTlsStream, TlsAcceptor};

use crate::connect::chain;

/// TLS handshakes in progress at once; further connections wait in the listen backlog.
const MAX_TLS_HANDSHAKES: usize = 256;

/// The client configuration for `--ca` and `--insecure`, or `None` for ws-tokio's default (the
/// Mozilla roots).
pub(crate) fn client_config(
    ca: Option<&Path>,
    insecure: bool,
) -> Result<Option<Arc<ClientConfig>>, String> {
    if insecure {
        // ws_tokio::tls::ClientTls always verifies: the verifier that does not is built here,
        // with the same provider and ALPN.
        let provider = Arc::new(ring::default_provider());
        let mut config = ClientConfig::builder_with_provider(provider.clone())
            .with_safe_default_protocol_versions()
            .map_err(|e| format!("TLS: {e}"))?
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(AcceptAnyCertificate(provider)))
            .with_no_client_auth();
        config.alpn_protocols = vec![ALPN_HTTP11.to_vec()];
        return Ok(Some(Arc::new(config)));
    }
    let Some(ca) = ca else {
        return Ok(None);
    };
    ClientTls::new()
        .with_root_pem_file(ca)
        .and_then(ClientTls::build)
        .map(Some)
        .map_err(|e| format!("--ca {}: {}", ca.display(), chain(&e)))
}

/// The server configuration for `--tls CERT KEY`.
pub(crate) fn server_config(cert: &Path, key: &Path) -> Result<Arc<ServerConfig>, String> {
    ServerTls::from_pem_files(cert, key)
        .and_then(ServerTls::build)
        .map_err(|e| chain(&e))
}

/// `--insecure`: takes any certificate for any name. The handshake's signatures are still
/// checked (the peer holds the key of the certificate it sent), so this only gives up knowing
/// who that peer is.
#[derive(Debug)]
struct AcceptAnyCertificate(Arc<CryptoProvider>);

impl ServerCertVerifier for AcceptAnyCertificate {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

/// Told of each failed TLS handshake: the client's address and the error.
type OnFailure = Box<dyn Fn(SocketAddr, &str) + Send>;

type Handshake = Result<(ServerTlsStream<TcpStream>, SocketAddr), (SocketAddr, String)>;

/// A TCP listener whose connections come out of their TLS handshake: each handshake runs in a
/// task of its own (at most [`MAX_TLS_HANDSHAKES`] at once, each within ws-tokio's
/// `DEFAULT_TLS_HANDSHAKE_TIMEOUT`), so one slow client holds up no other. `accept` is cancel-safe:
/// the TCP accept and the join of finished handshakes both are.
pub(crate) struct TlsListener {
    tcp: TcpListener,
    acceptor: TlsAcceptor,
    handshakes: JoinSet<Handshake>,
    on_failure: OnFailure,
}

impl TlsListener {
    pub(crate) fn new(
        tcp: TcpListener,
        config: Arc<ServerConfig>,
        on_failure: impl Fn(SocketAddr, &str) + Send + 'static,
    ) -> TlsListener {
        TlsListener {
            tcp,
            acceptor: TlsAcceptor::new(config),
            handshakes: JoinSet::new(),
            on_failure: Box::new(on_failure),
        }
    }
}

impl ws_tokio::Listener for TlsListener {
    type Io = ServerTlsStream<TcpStream>;
    type Addr = SocketAddr;

    async fn accept(&mut self) -> io::Result<(Self::Io, SocketAddr)> {
        loop {
            tokio::select! {
                r = self.tcp.accept(), if self.handshakes.len() < MAX_TLS_HANDSHAKES => {
                    let (tcp, addr) = r?;
                    let _ = tcp.set_nodelay(true);
                    let acceptor = self.acceptor.clone();
                    self.handshakes.spawn(async move {
                        // Bounded by the acceptor's handshake timeout.
                        match acceptor.accept(tcp).await {
                            Ok(tls) => Ok((tls, addr)),
                            Err(e) => Err((addr, chain(&e))),
                        }
                    });
                }
                Some(done) = self.handshakes.join_next() => match done {
                    Ok(Ok(conn)) => return Ok(conn),
                    Ok(Err((addr, e))) => (self.on_failure)(addr, &e),
                    Err(_) => {}
                },
            }
        }
    }

    fn peer_ip(addr: &SocketAddr) -> Option<std::net::IpAddr> {
        Some(addr.ip())
    }
}
