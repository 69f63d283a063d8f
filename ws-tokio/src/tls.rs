//! TLS for `wss://` over tokio-rustls (feature `rustls`): client configurations with chosen
//! roots and client certificates, and the server side (certificate and key from PEM files, a
//! handshake with a deadline).
//!
//! Every configuration here is built with a crypto provider passed explicitly
//! (`builder_with_provider`, `ring` unless [`with_provider`](ClientTls::with_provider) says
//! otherwise), so nothing depends on rustls' process-wide default provider: a program that
//! links both `ring` and `aws-lc-rs` (through another dependency) does not panic, which
//! `ClientConfig::builder()` would (tokio-tungstenite issues 336 and 339).
//!
//! Both sides offer the ALPN protocol `http/1.1` by default: the WebSocket opening handshake is
//! an HTTP/1.1 request (RFC 6455 §4.1), and a server or load balancer that speaks HTTP/2 on
//! the same port must not pick `h2` for this connection (WebSocket over HTTP/2 is RFC 8441's
//! extended CONNECT, a different handshake: see the `http2` module).
//!
//! A client with a test CA and a client certificate (mutual TLS):
//!
//! ```no_run
//! # async fn run() -> Result<(), Box<dyn std::error::Error>> {
//! use ws_tokio::tls::ClientTls;
//!
//! let tls = ClientTls::new()
//!     .with_root_pem_file("ca.pem")?
//!     .with_client_auth_pem_files("client.pem", "client.key")?
//!     .build()?;
//! let request = ws_tokio::ClientRequest::default().tls(tls);
//! let (ws, _) = ws_tokio::connect_request("wss://localhost:9443/", request).await?;
//! # Ok(()) }
//! ```
//!
//! A server:
//!
//! ```no_run
//! # async fn run() -> Result<(), Box<dyn std::error::Error>> {
//! use ws_tokio::tls::{TlsAcceptor, server_config_from_pem};
//!
//! let acceptor = TlsAcceptor::new(server_config_from_pem("cert.pem", "key.pem")?);
//! let listener = tokio::net::TcpListener::bind("127.0.0.1:9443").await?;
//! loop {
//!     let (tcp, _) = listener.accept().await?;
//!     let acceptor = acceptor.clone();
//!     tokio::spawn(async move {
//!         let tls = acceptor.accept(tcp).await?; // bounded by its handshake timeout
//!         let mut ws = ws_tokio::accept(tls).await?;
//!         while let Some(msg) = ws.recv().await {
//!             let _ = msg?;
//!         }
//!         Ok::<_, ws_tokio::Error>(())
//!     });
//! }
//! # }
//! ```

use std::fmt;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;
use tokio_rustls::rustls::crypto::CryptoProvider;
use tokio_rustls::rustls::pki_types::pem::{self, PemObject};
use tokio_rustls::rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use tokio_rustls::rustls::server::WebPkiClientVerifier;
use tokio_rustls::rustls::{ClientConfig, RootCertStore, ServerConfig};

use crate::connect::MaybeTlsStream;
use crate::error::{Error, UrlError};

/// The rustls crate ws-tokio builds on, for its configuration types.
pub use tokio_rustls::rustls;
/// A server-side TLS stream, as [`TlsAcceptor::accept`] returns it.
pub use tokio_rustls::server::TlsStream as ServerTlsStream;

/// The ALPN protocol both sides offer by default.
pub const ALPN_HTTP11: &[u8] = b"http/1.1";

/// The default bound on a server's TLS handshake ([`TlsAcceptor`]): 10 s, the default
/// WebSocket handshake timeout.
pub const DEFAULT_TLS_HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

fn ring() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// A client TLS configuration with the `ring` crypto provider (chosen explicitly, so no
/// process-wide default provider is needed and two linked providers cannot clash), the
/// Mozilla root certificates (webpki-roots) and ALPN `http/1.1`: the configuration `wss://`
/// uses unless [`ClientRequest::tls`](crate::ClientRequest::tls) gives another.
///
/// Built once and shared (so TLS sessions resume across connections, a reconnecting client's
/// among them).
pub fn default_tls_config() -> Result<Arc<ClientConfig>, Error> {
    static DEFAULT: std::sync::OnceLock<Arc<ClientConfig>> = std::sync::OnceLock::new();
    if let Some(c) = DEFAULT.get() {
        return Ok(c.clone());
    }
    let config = ClientTls::new()
        .with_webpki_roots()
        .build()
        .map_err(|e| Error::Io(io::Error::other(e)))?;
    Ok(DEFAULT.get_or_init(|| config).clone())
}

/// Why a TLS configuration could not be built.
#[derive(Debug)]
#[non_exhaustive]
pub enum TlsConfigError {
    /// A file could not be read.
    Read {
        /// The file.
        path: PathBuf,
        /// The error.
        source: io::Error,
    },
    /// PEM that does not parse.
    Pem {
        /// What it was to hold: `"certificates"`, `"private key"`.
        what: &'static str,
        /// The parser's error.
        source: pem::Error,
    },
    /// PEM with no certificate in it.
    NoCertificates,
    /// PEM with no private key in it (PKCS#8, PKCS#1 or SEC1).
    NoPrivateKey,
    /// A root certificate rustls cannot use as a trust anchor.
    BadRoot(rustls::Error),
    /// The platform's certificate store gave no usable certificate (with its errors, if any).
    NativeRoots(String),
    /// A client configuration with no root certificate at all: it could trust no server.
    NoRoots,
    /// rustls refused the configuration: a key that does not match its certificate, a key type
    /// the provider does not support, no protocol version in common with the provider.
    Rustls(rustls::Error),
    /// The verifier of client certificates could not be built (e.g. no roots for it).
    ClientVerifier(rustls::server::VerifierBuilderError),
}

impl fmt::Display for TlsConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TlsConfigError::Read { path, .. } => write!(f, "could not read {}", path.display()),
            TlsConfigError::Pem { what, .. } => write!(f, "invalid PEM for the {what}"),
            TlsConfigError::NoCertificates => f.write_str("no certificate in the PEM"),
            TlsConfigError::NoPrivateKey => f.write_str("no private key in the PEM"),
            TlsConfigError::BadRoot(e) => write!(f, "unusable root certificate: {e}"),
            TlsConfigError::NativeRoots(why) => {
                write!(f, "no usable certificate in the platform's store: {why}")
            }
            TlsConfigError::NoRoots => {
                f.write_str("no root certificates: add webpki roots, native roots or a CA's PEM")
            }
            TlsConfigError::Rustls(e) => write!(f, "TLS configuration refused: {e}"),
            TlsConfigError::ClientVerifier(e) => {
                write!(f, "client certificate verifier: {e}")
            }
        }
    }
}

impl std::error::Error for TlsConfigError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            TlsConfigError::Read { source, .. } => Some(source),
            TlsConfigError::Pem { source, .. } => Some(source),
            TlsConfigError::BadRoot(e) | TlsConfigError::Rustls(e) => Some(e),
            TlsConfigError::ClientVerifier(e) => Some(e),
            _ => None,
        }
    }
}

fn read(path: &Path) -> Result<Vec<u8>, TlsConfigError> {
    std::fs::read(path).map_err(|source| TlsConfigError::Read {
        path: path.to_path_buf(),
        source,
    })
}

/// Every certificate in `pem`, in order (a chain: leaf first); at least one.
fn certs_from_pem(pem: &[u8]) -> Result<Vec<CertificateDer<'static>>, TlsConfigError> {
    let certs = CertificateDer::pem_slice_iter(pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|source| TlsConfigError::Pem {
            what: "certificates",
            source,
        })?;
    if certs.is_empty() {
        return Err(TlsConfigError::NoCertificates);
    }
    Ok(certs)
}

/// The first private key in `pem`.
fn key_from_pem(pem: &[u8]) -> Result<PrivateKeyDer<'static>, TlsConfigError> {
    PrivateKeyDer::from_pem_slice(pem).map_err(|source| match source {
        pem::Error::NoItemsFound => TlsConfigError::NoPrivateKey,
        source => TlsConfigError::Pem {
            what: "private key",
            source,
        },
    })
}

fn add_roots(store: &mut RootCertStore, pem: &[u8]) -> Result<(), TlsConfigError> {
    for cert in certs_from_pem(pem)? {
        store.add(cert).map_err(TlsConfigError::BadRoot)?;
    }
    Ok(())
}

/// A client certificate chain and its key.
struct Identity {
    chain: Vec<CertificateDer<'static>>,
    key: PrivateKeyDer<'static>,
}

impl Clone for Identity {
    fn clone(&self) -> Self {
        Identity {
            chain: self.chain.clone(),
            key: self.key.clone_key(),
        }
    }
}

/// A builder of client TLS configurations for `wss://`: which roots to trust, a client
/// certificate for mutual TLS, ALPN and the crypto provider. [`build`](Self::build) gives the
/// `Arc<ClientConfig>` that [`ClientRequest::tls`](crate::ClientRequest::tls) takes.
///
/// It starts with no roots; add the Mozilla roots ([`with_webpki_roots`](Self::with_webpki_roots)),
/// the platform's ([`with_native_roots`](Self::with_native_roots), feature
/// `rustls-native-certs`) or a CA's certificates ([`with_root_pem`](Self::with_root_pem)), in
/// any combination.
///
/// ```
/// use ws_tokio::tls::ClientTls;
///
/// let config = ClientTls::new().with_webpki_roots().build()?;
/// assert_eq!(config.alpn_protocols, [b"http/1.1".to_vec()]);
/// assert!(ClientTls::new().build().is_err()); // no roots: it would trust no server
/// # Ok::<(), ws_tokio::tls::TlsConfigError>(())
/// ```
#[derive(Clone)]
pub struct ClientTls {
    roots: RootCertStore,
    identity: Option<Identity>,
    alpn: Vec<Vec<u8>>,
    provider: Arc<CryptoProvider>,
}

impl fmt::Debug for ClientTls {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ClientTls")
            .field("roots", &self.roots.len())
            .field("client_auth", &self.identity.is_some())
            .field("alpn", &self.alpn)
            .finish_non_exhaustive()
    }
}

impl Default for ClientTls {
    fn default() -> Self {
        ClientTls::new()
    }
}

impl ClientTls {
    /// No roots yet, no client certificate, ALPN `http/1.1`, the `ring` provider.
    pub fn new() -> Self {
        ClientTls {
            roots: RootCertStore::empty(),
            identity: None,
            alpn: vec![ALPN_HTTP11.to_vec()],
            provider: ring(),
        }
    }

    /// Trusts the Mozilla root certificates (the webpki-roots crate: the same everywhere, updated
    /// with the crate rather than the system).
    pub fn with_webpki_roots(mut self) -> Self {
        self.roots
            .extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
        self
    }

    /// Trusts the platform's root certificates (rustls-native-certs: the system store on
    /// Linux, macOS and Windows; `SSL_CERT_FILE` / `SSL_CERT_DIR` instead when set). Fails
    /// when no usable certificate comes of it. Loading reads the whole store: build once and
    /// share the configuration.
    #[cfg(feature = "rustls-native-certs")]
    pub fn with_native_roots(mut self) -> Result<Self, TlsConfigError> {
        let loaded = rustls_native_certs::load_native_certs();
        let (added, _ignored) = self.roots.add_parsable_certificates(loaded.certs);
        if added == 0 {
            let errors: Vec<String> = loaded.errors.iter().map(|e| e.to_string()).collect();
            let why = if errors.is_empty() {
                "the store is empty".to_string()
            } else {
                errors.join("; ")
            };
            return Err(TlsConfigError::NativeRoots(why));
        }
        Ok(self)
    }

    /// Trusts every certificate in this PEM (one CA or a bundle).
    pub fn with_root_pem(mut self, pem: impl AsRef<[u8]>) -> Result<Self, TlsConfigError> {
        add_roots(&mut self.roots, pem.as_ref())?;
        Ok(self)
    }

    /// Trusts every certificate in this PEM file.
    pub fn with_root_pem_file(self, path: impl AsRef<Path>) -> Result<Self, TlsConfigError> {
        let pem = read(path.as_ref())?;
        self.with_root_pem(pem)
    }

    /// Trusts this certificate (DER).
    pub fn with_root_der(mut self, cert: CertificateDer<'static>) -> Result<Self, TlsConfigError> {
        self.roots.add(cert).map_err(TlsConfigError::BadRoot)?;
        Ok(self)
    }

    /// Presents this certificate chain (leaf first) and key when the server asks for one
    /// (mutual TLS). Whether the key matches the certificate is checked by
    /// [`build`](Self::build).
    pub fn with_client_auth_pem(
        mut self,
        cert_chain: impl AsRef<[u8]>,
        key: impl AsRef<[u8]>,
    ) -> Result<Self, TlsConfigError> {
        self.identity = Some(Identity {
            chain: certs_from_pem(cert_chain.as_ref())?,
            key: key_from_pem(key.as_ref())?,
        });
        Ok(self)
    }

    /// [`with_client_auth_pem`](Self::with_client_auth_pem) from files.
    pub fn with_client_auth_pem_files(
        self,
        cert_chain: impl AsRef<Path>,
        key: impl AsRef<Path>,
    ) -> Result<Self, TlsConfigError> {
        let chain = read(cert_chain.as_ref())?;
        let key = read(key.as_ref())?;
        self.with_client_auth_pem(chain, key)
    }

    /// Sets the ALPN protocols offered (default `["http/1.1"]`; empty: offer none).
    pub fn with_alpn(mut self, protocols: Vec<Vec<u8>>) -> Self {
        self.alpn = protocols;
        self
    }

    /// Uses this crypto provider instead of `ring` (e.g. aws-lc-rs's, from a crate that
    /// enables it).
    pub fn with_provider(mut self, provider: Arc<CryptoProvider>) -> Self {
        self.provider = provider;
        self
    }

    /// The configuration, for [`ClientRequest::tls`](crate::ClientRequest::tls).
    pub fn build(self) -> Result<Arc<ClientConfig>, TlsConfigError> {
        if self.roots.is_empty() {
            return Err(TlsConfigError::NoRoots);
        }
        let builder = ClientConfig::builder_with_provider(self.provider)
            .with_safe_default_protocol_versions()
            .map_err(TlsConfigError::Rustls)?
            .with_root_certificates(self.roots);
        let mut config = match self.identity {
            Some(id) => builder
                .with_client_auth_cert(id.chain, id.key)
                .map_err(TlsConfigError::Rustls)?,
            None => builder.with_no_client_auth(),
        };
        config.alpn_protocols = self.alpn;
        Ok(Arc::new(config))
    }
}

/// A builder of server TLS configurations: a certificate chain and key, and optionally the CAs
/// whose client certificates are required (mutual TLS). [`build`](Self::build) gives the
/// `Arc<ServerConfig>` that [`TlsAcceptor::new`] takes.
///
/// ```no_run
/// use ws_tokio::tls::ServerTls;
///
/// let config = ServerTls::from_pem_files("cert.pem", "key.pem")?
///     .with_client_auth_pem_file("clients-ca.pem")? // only clients with a certificate it signed
///     .build()?;
/// # Ok::<(), ws_tokio::tls::TlsConfigError>(())
/// ```
#[derive(Clone)]
pub struct ServerTls {
    identity: Identity,
    client_roots: Option<RootCertStore>,
    client_auth_optional: bool,
    alpn: Vec<Vec<u8>>,
    provider: Arc<CryptoProvider>,
}

impl fmt::Debug for ServerTls {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ServerTls")
            .field("chain", &self.identity.chain.len())
            .field("client_roots", &self.client_roots.as_ref().map(|r| r.len()))
            .field("client_auth_optional", &self.client_auth_optional)
            .field("alpn", &self.alpn)
            .finish_non_exhaustive()
    }
}

impl ServerTls {
    /// A server with this certificate chain (leaf first) and key, in PEM; no client
    /// certificates asked for, ALPN `http/1.1`, the `ring` provider.
    pub fn from_pem(
        cert_chain: impl AsRef<[u8]>,
        key: impl AsRef<[u8]>,
    ) -> Result<Self, TlsConfigError> {
        Ok(ServerTls {
            identity: Identity {
                chain: certs_from_pem(cert_chain.as_ref())?,
                key: key_from_pem(key.as_ref())?,
            },
            client_roots: None,
            client_auth_optional: false,
            alpn: vec![ALPN_HTTP11.to_vec()],
            provider: ring(),
        })
    }

    /// [`from_pem`](Self::from_pem) from files.
    pub fn from_pem_files(
        cert_chain: impl AsRef<Path>,
        key: impl AsRef<Path>,
    ) -> Result<Self, TlsConfigError> {
        let chain = read(cert_chain.as_ref())?;
        let key = read(key.as_ref())?;
        ServerTls::from_pem(chain, key)
    }

    /// Requires a client certificate signed by one of the CAs in this PEM (mutual TLS); a
    /// client without one, or with one from another CA, fails the TLS handshake.
    pub fn with_client_auth_pem(mut self, roots: impl AsRef<[u8]>) -> Result<Self, TlsConfigError> {
        add_roots(
            self.client_roots.get_or_insert_with(RootCertStore::empty),
            roots.as_ref(),
        )?;
        Ok(self)
    }

    /// [`with_client_auth_pem`](Self::with_client_auth_pem) from a file.
    pub fn with_client_auth_pem_file(
        self,
        roots: impl AsRef<Path>,
    ) -> Result<Self, TlsConfigError> {
        let pem = read(roots.as_ref())?;
        self.with_client_auth_pem(pem)
    }

    /// With client CAs set: also accept clients that present no certificate (those that present
    /// one must still present a valid one). Default `false`.
    pub fn with_client_auth_optional(mut self, optional: bool) -> Self {
        self.client_auth_optional = optional;
        self
    }

    /// Sets the ALPN protocols accepted (default `["http/1.1"]`; empty: no ALPN).
    pub fn with_alpn(mut self, protocols: Vec<Vec<u8>>) -> Self {
        self.alpn = protocols;
        self
    }

    /// Uses this crypto provider instead of `ring`.
    pub fn with_provider(mut self, provider: Arc<CryptoProvider>) -> Self {
        self.provider = provider;
        self
    }

    /// The configuration, for [`TlsAcceptor::new`] (or tokio-rustls' own acceptor).
    pub fn build(self) -> Result<Arc<ServerConfig>, TlsConfigError> {
        let builder = ServerConfig::builder_with_provider(self.provider.clone())
            .with_safe_default_protocol_versions()
            .map_err(TlsConfigError::Rustls)?;
        let builder = match self.client_roots {
            Some(roots) => {
                let verifier =
                    WebPkiClientVerifier::builder_with_provider(Arc::new(roots), self.provider);
                let verifier = if self.client_auth_optional {
                    verifier.allow_unauthenticated()
                } else {
                    verifier
                };
                let verifier = verifier.build().map_err(TlsConfigError::ClientVerifier)?;
                builder.with_client_cert_verifier(verifier)
            }
            None => builder.with_no_client_auth(),
        };
        let mut config = builder
            .with_single_cert(self.identity.chain, self.identity.key)
            .map_err(TlsConfigError::Rustls)?;
        config.alpn_protocols = self.alpn;
        Ok(Arc::new(config))
    }
}

/// A server configuration with the certificate chain and key in these PEM files (no client
/// certificates, ALPN `http/1.1`, the `ring` provider): [`ServerTls::from_pem_files`] built.
pub fn server_config_from_pem(
    cert_chain: impl AsRef<Path>,
    key: impl AsRef<Path>,
) -> Result<Arc<ServerConfig>, TlsConfigError> {
    ServerTls::from_pem_files(cert_chain, key)?.build()
}

/// The server's TLS handshake, bounded in time: a client that opens a TCP connection and then
/// sends nothing (or too slowly) costs a task for at most the handshake timeout. Cheap to
/// clone (one `Arc`).
///
/// Then hand the stream to [`accept`](crate::accept) (or [`accept_with`](crate::accept_with)).
/// [`ServerTlsStream::get_ref`] tells the client's SNI name and certificate:
/// `tls.get_ref().1.server_name()`, `.peer_certificates()`.
#[derive(Clone)]
pub struct TlsAcceptor {
    inner: tokio_rustls::TlsAcceptor,
    timeout: Option<Duration>,
}

impl fmt::Debug for TlsAcceptor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TlsAcceptor")
            .field("timeout", &self.timeout)
            .finish_non_exhaustive()
    }
}

impl TlsAcceptor {
    /// An acceptor for this configuration, with [`DEFAULT_TLS_HANDSHAKE_TIMEOUT`].
    pub fn new(config: Arc<ServerConfig>) -> Self {
        TlsAcceptor {
            inner: tokio_rustls::TlsAcceptor::from(config),
            timeout: Some(DEFAULT_TLS_HANDSHAKE_TIMEOUT),
        }
    }

    /// Sets the bound on the TLS handshake (`None`: no bound).
    pub fn with_handshake_timeout(mut self, timeout: Option<Duration>) -> Self {
        self.timeout = timeout;
        self
    }

    /// Runs the server's TLS handshake over `io`. [`Error::Io`] when it fails (the rustls
    /// error is its source: an untrusted or missing client certificate, no protocol in
    /// common), [`Error::Timeout`] with [`TimeoutKind::Handshake`](crate::TimeoutKind) when
    /// it takes too long.
    pub async fn accept<IO>(&self, io: IO) -> Result<ServerTlsStream<IO>, Error>
    where
        IO: AsyncRead + AsyncWrite + Unpin,
    {
        let handshake = self.inner.accept(io);
        match self.timeout {
            Some(t) => match tokio::time::timeout(t, handshake).await {
                Ok(r) => Ok(r?),
                Err(_) => Err(Error::Timeout(crate::TimeoutKind::Handshake)),
            },
            None => Ok(handshake.await?),
        }
    }
}

/// Runs the TLS handshake over `tcp` for `host` (the SNI name and the name the certificate
/// must carry; an IP address is checked against the certificate's addresses and sends no SNI,
/// as RFC 6066 §3 requires).
pub(crate) async fn wrap(
    tcp: TcpStream,
    host: &str,
    config: Option<Arc<ClientConfig>>,
) -> Result<MaybeTlsStream, Error> {
    let config = match config {
        Some(c) => c,
        None => default_tls_config()?,
    };
    let name = ServerName::try_from(host.to_string())
        .map_err(|e| UrlError::Malformed(format!("not a TLS server name: {e}")))?;
    let tls = TlsConnector::from(config).connect(name, tcp).await?;
    Ok(MaybeTlsStream::Tls(Box::new(tls)))
}
