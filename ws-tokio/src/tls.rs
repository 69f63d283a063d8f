//! TLS for `wss://` client connections over tokio-rustls (feature `rustls`).

use std::io;
use std::sync::Arc;

use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;
use tokio_rustls::rustls::pki_types::ServerName;
use tokio_rustls::rustls::{self, ClientConfig, RootCertStore};

use crate::connect::MaybeTlsStream;
use crate::error::{Error, UrlError};

/// A client TLS configuration with the `ring` crypto provider (chosen explicitly, so no
/// process-wide default provider is needed and two linked providers cannot clash) and the
/// Mozilla root certificates.
pub fn default_tls_config() -> Result<Arc<ClientConfig>, Error> {
    let roots = RootCertStore {
        roots: webpki_roots::TLS_SERVER_ROOTS.to_vec(),
    };
    let config =
        ClientConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
            .with_safe_default_protocol_versions()
            .map_err(|e| Error::Io(io::Error::other(e)))?
            .with_root_certificates(roots)
            .with_no_client_auth();
    Ok(Arc::new(config))
}

/// Runs the TLS handshake over `tcp` for `host` (the SNI name and the name the certificate
/// must carry).
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
