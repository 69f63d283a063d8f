//! TLS for the command line: the client's roots (`--ca`) or no check at all (`--insecure`),
//! the server's certificate and key (`--tls CERT KEY`), and a listener that runs the servers'
//! TLS handshakes concurrently for the serve loop.

use std::io;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinSet;
use tokio_rustls::rustls::client::danger::{
    HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier,
};
use tokio_rustls::rustls::crypto::{CryptoProvider, ring};
use tokio_rustls::rustls::pki_types::pem::PemObject;
use tokio_rustls::rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
use tokio_rustls::rustls::{
    self, ClientConfig, DigitallySignedStruct, RootCertStore, ServerConfig, SignatureScheme,
};

/// The ALPN protocol offered and accepted: the opening handshake is HTTP/1.1.
const ALPN: &[u8] = b"http/1.1";
/// A server's TLS handshake must finish within this.
const TLS_HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
/// TLS handshakes in progress at once; further connections wait in the listen backlog.
const MAX_TLS_HANDSHAKES: usize = 256;

fn provider() -> Arc<CryptoProvider> {
    Arc::new(ring::default_provider())
}

/// The client configuration for `--ca` and `--insecure`, or `None` for ws-tokio's default (the
/// Mozilla roots).
pub(crate) fn client_config(
    ca: Option<&Path>,
    insecure: bool,
) -> Result<Option<Arc<ClientConfig>>, String> {
    if ca.is_none() && !insecure {
        return Ok(None);
    }
    let builder = ClientConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .map_err(|e| format!("TLS: {e}"))?;
    let mut config = if insecure {
        builder
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(AcceptAnyCertificate(provider())))
            .with_no_client_auth()
    } else {
        let mut roots = RootCertStore::empty();
        let path = ca.unwrap_or(Path::new(""));
        let certs = read_certs(path)?;
        for cert in certs {
            roots
                .add(cert)
                .map_err(|e| format!("{}: not a usable CA certificate: {e}", path.display()))?;
        }
        builder.with_root_certificates(roots).with_no_client_auth()
    };
    config.alpn_protocols = vec![ALPN.to_vec()];
    Ok(Some(Arc::new(config)))
}

fn read_certs(path: &Path) -> Result<Vec<CertificateDer<'static>>, String> {
    let certs = CertificateDer::pem_file_iter(path)
        .map_err(|e| format!("{}: {e}", path.display()))?
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| format!("{}: {e}", path.display()))?;
    if certs.is_empty() {
        return Err(format!("{}: no certificate in it", path.display()));
    }
    Ok(certs)
}

/// The server configuration for `--tls CERT KEY`.
pub(crate) fn server_config(cert: &Path, key: &Path) -> Result<Arc<ServerConfig>, String> {
    let certs = read_certs(cert)?;
    let key = PrivateKeyDer::from_pem_file(key).map_err(|e| format!("{}: {e}", key.display()))?;
    let mut config = ServerConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .map_err(|e| format!("TLS: {e}"))?
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .map_err(|e| format!("{} and its key: {e}", cert.display()))?;
    config.alpn_protocols = vec![ALPN.to_vec()];
    Ok(Arc::new(config))
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

type Handshake =
    Result<(tokio_rustls::server::TlsStream<TcpStream>, SocketAddr), (SocketAddr, String)>;

/// A TCP listener whose connections come out of their TLS handshake: each handshake runs in a
/// task of its own (at most [`MAX_TLS_HANDSHAKES`] at once, each within
/// [`TLS_HANDSHAKE_TIMEOUT`]), so one slow client holds up no other. `accept` is cancel-safe:
/// the TCP accept and the join of finished handshakes both are.
pub(crate) struct TlsListener {
    tcp: TcpListener,
    acceptor: tokio_rustls::TlsAcceptor,
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
            acceptor: tokio_rustls::TlsAcceptor::from(config),
            handshakes: JoinSet::new(),
            on_failure: Box::new(on_failure),
        }
    }
}

impl ws_tokio::Listener for TlsListener {
    type Io = tokio_rustls::server::TlsStream<TcpStream>;
    type Addr = SocketAddr;

    async fn accept(&mut self) -> io::Result<(Self::Io, SocketAddr)> {
        loop {
            tokio::select! {
                r = self.tcp.accept(), if self.handshakes.len() < MAX_TLS_HANDSHAKES => {
                    let (tcp, addr) = r?;
                    let _ = tcp.set_nodelay(true);
                    let acceptor = self.acceptor.clone();
                    self.handshakes.spawn(async move {
                        match tokio::time::timeout(TLS_HANDSHAKE_TIMEOUT, acceptor.accept(tcp)).await {
                            Ok(Ok(tls)) => Ok((tls, addr)),
                            Ok(Err(e)) => Err((addr, e.to_string())),
                            Err(_) => Err((addr, "timed out".into())),
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
