//! Connecting to a `ws://` or `wss://` URL.

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;

use crate::config::Config;
use crate::error::{Error, UrlError};
use crate::handshake::{ClientRequest, Response, client};
use crate::websocket::WebSocket;

/// A parsed `ws://` or `wss://` URL (parsed by the `http` crate's `Uri`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Url {
    pub(crate) tls: bool,
    /// The host as written: IPv6 literals in brackets.
    pub(crate) host: String,
    pub(crate) port: u16,
    /// Path and query (`/` when the URL has none).
    pub(crate) path: String,
}

impl Url {
    pub(crate) fn parse(url: &str) -> Result<Url, UrlError> {
        let uri: http::Uri = url
            .parse()
            .map_err(|e: http::uri::InvalidUri| UrlError::Malformed(e.to_string()))?;
        let tls = match uri.scheme_str() {
            Some(s) if s.eq_ignore_ascii_case("ws") => false,
            Some(s) if s.eq_ignore_ascii_case("wss") => true,
            Some(s) => return Err(UrlError::UnsupportedScheme(s.to_string())),
            None => return Err(UrlError::Malformed("no scheme".into())),
        };
        let authority = uri.authority().ok_or(UrlError::MissingHost)?;
        if authority.as_str().contains('@') {
            return Err(UrlError::Credentials);
        }
        let host = authority.host();
        if host.is_empty() || host == "[]" {
            return Err(UrlError::MissingHost);
        }
        let port = match (&authority.as_str()[host.len()..], authority.port_u16()) {
            ("", _) => {
                if tls {
                    443
                } else {
                    80
                }
            }
            (_, Some(p)) => p,
            (_, None) => return Err(UrlError::Malformed("invalid port".into())),
        };
        let path = uri.path_and_query().map_or("/", |p| p.as_str()).to_string();
        let path = if path.starts_with('/') {
            path
        } else {
            format!("/{path}")
        };
        Ok(Url {
            tls,
            host: host.to_string(),
            port,
            path,
        })
    }

    /// The `Host` header: the host, with the port unless it is the scheme's default.
    pub(crate) fn host_header(&self) -> String {
        let default_port = if self.tls { 443 } else { 80 };
        if self.port == default_port {
            self.host.clone()
        } else {
            format!("{}:{}", self.host, self.port)
        }
    }

    /// The host to resolve and connect to (IPv6 without brackets).
    pub(crate) fn connect_host(&self) -> &str {
        self.host.trim_start_matches('[').trim_end_matches(']')
    }
}

/// A TCP stream, with TLS for `wss://` (feature `rustls`).
#[derive(Debug)]
#[non_exhaustive]
pub enum MaybeTlsStream {
    /// `ws://`
    Plain(TcpStream),
    /// `wss://`
    #[cfg(feature = "rustls")]
    Tls(Box<tokio_rustls::client::TlsStream<TcpStream>>),
}

macro_rules! each {
    ($self:ident, $s:ident => $e:expr) => {
        match $self.get_mut() {
            MaybeTlsStream::Plain($s) => {
                let $s = Pin::new($s);
                $e
            }
            #[cfg(feature = "rustls")]
            MaybeTlsStream::Tls($s) => {
                let $s = Pin::new($s.as_mut());
                $e
            }
        }
    };
}

impl AsyncRead for MaybeTlsStream {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        each!(self, s => s.poll_read(cx, buf))
    }
}

impl AsyncWrite for MaybeTlsStream {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        each!(self, s => s.poll_write(cx, buf))
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        each!(self, s => s.poll_write_vectored(cx, bufs))
    }

    fn is_write_vectored(&self) -> bool {
        match self {
            MaybeTlsStream::Plain(s) => s.is_write_vectored(),
            #[cfg(feature = "rustls")]
            MaybeTlsStream::Tls(s) => s.is_write_vectored(),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        each!(self, s => s.poll_flush(cx))
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        each!(self, s => s.poll_shutdown(cx))
    }
}

/// Connects to a `ws://` (or, with the `rustls` feature, `wss://`) URL with default settings.
///
/// ```no_run
/// # async fn run() -> Result<(), ws_tokio::Error> {
/// let mut ws = ws_tokio::connect("ws://127.0.0.1:9001/chat?room=1").await?;
/// ws.send(ws_tokio::Message::text("hello")).await?;
/// # Ok(()) }
/// ```
pub async fn connect(url: &str) -> Result<WebSocket<MaybeTlsStream>, Error> {
    connect_with_config(url, Config::default()).await
}

/// Connects with default settings and returns the server's response too, as tokio-tungstenite's
/// function of this name does.
pub async fn connect_async(url: &str) -> Result<(WebSocket<MaybeTlsStream>, Response), Error> {
    connect_request(url, ClientRequest::default()).await
}

/// Connects to a URL with the given settings.
pub async fn connect_with_config(
    url: &str,
    config: Config,
) -> Result<WebSocket<MaybeTlsStream>, Error> {
    Ok(
        connect_request(url, ClientRequest::default().config(config))
            .await?
            .0,
    )
}

/// Connects to a URL with a full request (subprotocols, headers, settings, TLS, proxy);
/// returns the connection and the server's response. The request's `host` and `path` default
/// to the URL's.
///
/// The connection goes through the proxy that [`ClientRequest::proxy`] picks (by default the
/// one the environment names, as curl does); a proxy's refusal is
/// [`Error::Proxy`] with its status. `wss://` then runs TLS to the URL's host through the
/// tunnel. The request's handshake timeout bounds all of it: TCP, the proxy, TLS and the
/// HTTP upgrade.
pub async fn connect_request(
    url: &str,
    mut request: ClientRequest,
) -> Result<(WebSocket<MaybeTlsStream>, Response), Error> {
    let u = Url::parse(url)?;
    if u.tls && !cfg!(feature = "rustls") {
        return Err(UrlError::TlsNotEnabled.into());
    }
    if request.host.is_empty() {
        request.host = u.host_header();
    }
    if request.path.is_empty() {
        request.path = u.path.clone();
    }
    let timeout = request.config.handshake_timeout;
    let all = async {
        let stream = open(&u, &request).await?;
        client(stream, request).await
    };
    match tokio::time::timeout(timeout, all).await {
        Ok(r) => r,
        Err(_) => Err(Error::Timeout(ws_proto::TimeoutKind::Handshake)),
    }
}

/// Opens the TCP connection (directly or through the proxy), and TLS over it for `wss://`.
async fn open(u: &Url, request: &ClientRequest) -> Result<MaybeTlsStream, Error> {
    let proxy = request.proxy.resolve(u.tls, u.connect_host(), u.port)?;
    let tcp = match proxy {
        Some(proxy) => proxy.connect(u.connect_host(), u.port).await?,
        None => {
            let tcp = TcpStream::connect((u.connect_host(), u.port)).await?;
            tcp.set_nodelay(true)?;
            tcp
        }
    };
    if !u.tls {
        return Ok(MaybeTlsStream::Plain(tcp));
    }
    #[cfg(feature = "rustls")]
    {
        crate::tls::wrap(tcp, u.connect_host(), request.tls.clone()).await
    }
    #[cfg(not(feature = "rustls"))]
    {
        let _ = request;
        Err(UrlError::TlsNotEnabled.into())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls() {
        let u = Url::parse("ws://127.0.0.1:9001/path?x=1").unwrap();
        assert_eq!(
            (u.tls, u.host.as_str(), u.port, u.path.as_str()),
            (false, "127.0.0.1", 9001, "/path?x=1")
        );
        assert_eq!(u.host_header(), "127.0.0.1:9001");
        let u = Url::parse("wss://example.com").unwrap();
        assert_eq!(
            (u.tls, u.port, u.path.as_str(), u.host_header().as_str()),
            (true, 443, "/", "example.com")
        );
        let u = Url::parse("WSS://example.com:8443/a").unwrap();
        assert_eq!(
            (u.tls, u.host_header().as_str()),
            (true, "example.com:8443")
        );
        let u = Url::parse("ws://[::1]:80?q").unwrap();
        assert_eq!(
            (
                u.connect_host(),
                u.port,
                u.path.as_str(),
                u.host_header().as_str()
            ),
            ("::1", 80, "/?q", "[::1]")
        );
        let u = Url::parse("ws://[::1]:9001/x").unwrap();
        assert_eq!(u.host_header(), "[::1]:9001");
        assert_eq!(
            Url::parse("http://x"),
            Err(UrlError::UnsupportedScheme("http".into()))
        );
        assert_eq!(Url::parse("ws://u@h/"), Err(UrlError::Credentials));
        for bad in [
            "ws://",
            "ws://h:notaport/",
            "ws://h/a b",
            "nonsense",
            "ws:/x",
        ] {
            assert!(Url::parse(bad).is_err(), "{bad}");
        }
    }

    #[cfg(not(feature = "rustls"))]
    #[tokio::test]
    async fn wss_without_the_feature_says_so() {
        let e = connect("wss://127.0.0.1:1/").await.unwrap_err();
        assert!(
            matches!(e, Error::InvalidUrl(UrlError::TlsNotEnabled)),
            "{e:?}"
        );
        assert!(
            std::error::Error::source(&e)
                .unwrap()
                .to_string()
                .contains("rustls")
        );
    }
}
