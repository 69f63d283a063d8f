//! `wss://` client connections over tokio-rustls (feature `rustls`).

use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;
use tokio_rustls::client::TlsStream;
use tokio_rustls::rustls::pki_types::ServerName;
use tokio_rustls::rustls::{self, ClientConfig, RootCertStore};

use crate::error::Error;
use crate::handshake::{ClientRequest, Response, Url, client};
use crate::ws::WebSocket;

/// A TCP stream, with or without TLS.
#[derive(Debug)]
pub enum MaybeTlsStream {
    /// `ws://`
    Plain(TcpStream),
    /// `wss://`
    Tls(Box<TlsStream<TcpStream>>),
}

impl AsyncRead for MaybeTlsStream {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        match self.get_mut() {
            MaybeTlsStream::Plain(s) => Pin::new(s).poll_read(cx, buf),
            MaybeTlsStream::Tls(s) => Pin::new(s.as_mut()).poll_read(cx, buf),
        }
    }
}

impl AsyncWrite for MaybeTlsStream {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            MaybeTlsStream::Plain(s) => Pin::new(s).poll_write(cx, buf),
            MaybeTlsStream::Tls(s) => Pin::new(s.as_mut()).poll_write(cx, buf),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            MaybeTlsStream::Plain(s) => Pin::new(s).poll_flush(cx),
            MaybeTlsStream::Tls(s) => Pin::new(s.as_mut()).poll_flush(cx),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            MaybeTlsStream::Plain(s) => Pin::new(s).poll_shutdown(cx),
            MaybeTlsStream::Tls(s) => Pin::new(s.as_mut()).poll_shutdown(cx),
        }
    }
}

/// A client TLS configuration with the `ring` crypto provider (chosen explicitly, so no
/// process-wide default provider is needed) and the Mozilla root certificates.
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

/// Connects to a `ws://` or `wss://` URL. `tls` defaults to [`default_tls_config`].
pub async fn connect_tls(
    url: &str,
    request: ClientRequest,
    tls: Option<Arc<ClientConfig>>,
) -> Result<(WebSocket<MaybeTlsStream>, Response), Error> {
    let u = Url::parse(url)?;
    let mut request = request;
    if request.host.is_empty() {
        request.host = u.host_header();
    }
    if request.path.is_empty() {
        request.path = u.path.clone();
    }
    let tcp = TcpStream::connect((u.connect_host(), u.port)).await?;
    tcp.set_nodelay(true)?;
    let stream = if u.tls {
        let config = match tls {
            Some(c) => c,
            None => default_tls_config()?,
        };
        let name =
            ServerName::try_from(u.connect_host().to_string()).map_err(|_| Error::InvalidUrl)?;
        let tls = TlsConnector::from(config).connect(name, tcp).await?;
        MaybeTlsStream::Tls(Box::new(tls))
    } else {
        MaybeTlsStream::Plain(tcp)
    };
    client(stream, request).await
}
