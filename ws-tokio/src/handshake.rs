//! The opening handshake over a tokio transport, both roles.

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use ws_proto::deflate::{DeflateConfig, Negotiated};
use ws_proto::handshake::{self as hs, HeadScanner};
use ws_proto::{Connection, HandshakeError, Role, TimeoutKind};

use crate::config::Config;
use crate::error::Error;
use crate::proxy::ProxySetting;
use crate::time::now_ms;
use crate::websocket::WebSocket;

/// The parsed client request a server inspects in [`accept_with`]: path, headers, Origin,
/// offered subprotocols and extensions.
pub type Request<'h, 'b> = hs::Request<'h, 'b>;

/// A server's positive answer: the chosen subprotocol and extra response headers, and what
/// the decision found out for the connection's handler (see [`AcceptResponse::extension`]).
#[derive(Debug, Clone, Default)]
#[non_exhaustive]
pub struct AcceptResponse {
    /// The subprotocol chosen from those the client offered.
    pub protocol: Option<String>,
    /// Extra headers for the 101 response.
    pub headers: Vec<(String, Vec<u8>)>,
    /// Values for the handler: [`serve`](crate::serve()) hands them over in
    /// [`ConnInfo::extensions`](crate::ConnInfo::extensions). Not sent to the client.
    pub extensions: http::Extensions,
}

impl AcceptResponse {
    /// Accept with no subprotocol and no extra headers.
    pub fn new() -> Self {
        Self::default()
    }

    /// Choose a subprotocol.
    pub fn protocol(mut self, p: impl Into<String>) -> Self {
        self.protocol = Some(p.into());
        self
    }

    /// Add a response header.
    pub fn header(mut self, name: impl Into<String>, value: impl Into<Vec<u8>>) -> Self {
        self.headers.push((name.into(), value.into()));
        self
    }

    /// Keeps `value` for the connection's handler: what the decision learned from the
    /// request (an authenticated user, the path's parameters). [`serve`](crate::serve())
    /// hands it over in [`ConnInfo::extensions`](crate::ConnInfo::extensions), one value per
    /// type.
    ///
    /// ```no_run
    /// # async fn run(listener: tokio::net::TcpListener) -> Result<(), ws_tokio::Error> {
    /// #[derive(Clone)]
    /// struct Room(String);
    ///
    /// ws_tokio::serve(listener, |_ws, info| async move {
    ///     let Some(Room(room)) = info.extensions.get::<Room>() else { return };
    ///     println!("joined {room}");
    /// })
    /// .accept_with(|req| {
    ///     let room = req.path().trim_start_matches('/').to_owned();
    ///     Ok(ws_tokio::AcceptResponse::new().extension(Room(room)))
    /// })
    /// .await
    /// # }
    /// ```
    pub fn extension<T: Clone + Send + Sync + 'static>(mut self, value: T) -> Self {
        self.extensions.insert(value);
        self
    }
}

/// A server's refusal: HTTP status, headers and body.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct Reject {
    /// The HTTP status, e.g. 403.
    pub status: u16,
    /// Response headers.
    pub headers: Vec<(String, Vec<u8>)>,
    /// Response body.
    pub body: Vec<u8>,
}

impl Reject {
    /// A refusal with this status and no body.
    pub fn status(status: u16) -> Self {
        Reject {
            status,
            headers: Vec::new(),
            body: Vec::new(),
        }
    }

    /// Add a response header.
    pub fn header(mut self, name: impl Into<String>, value: impl Into<Vec<u8>>) -> Self {
        self.headers.push((name.into(), value.into()));
        self
    }

    /// Set the body.
    pub fn body(mut self, body: impl Into<Vec<u8>>) -> Self {
        self.body = body.into();
        self
    }
}

/// What a client asks for: the `Host` and path (taken from the URL by [`connect_request`](crate::connect_request)
/// when left empty), subprotocols, extra headers and settings.
///
/// ```
/// let request = ws_tokio::ClientRequest::default()
///     .protocol("chat")
///     .header("Authorization", "Bearer 123")
///     .config(ws_tokio::Config::default().with_compression(None));
/// assert_eq!(request.protocols, ["chat"]);
/// ```
#[derive(Debug, Clone, Default)]
#[non_exhaustive]
pub struct ClientRequest {
    /// The `Host` header value (host, with `:port` when not the default).
    pub host: String,
    /// The request target: path and query.
    pub path: String,
    /// Subprotocols to offer, in preference order.
    pub protocols: Vec<String>,
    /// Extra request headers (e.g. `Origin`, `Authorization`).
    pub headers: Vec<(String, Vec<u8>)>,
    /// Connection settings.
    pub config: Config,
    /// The TLS settings for `wss://` (default: the Mozilla roots, [`crate::default_tls_config`];
    /// build others with [`crate::tls::ClientTls`]). A configuration given here is used as it
    /// is: its ALPN list and roots are the caller's.
    #[cfg(feature = "rustls")]
    pub tls: Option<std::sync::Arc<tokio_rustls::rustls::ClientConfig>>,
    /// The proxy [`connect_request`](crate::connect_request) opens the connection through
    /// (default: the one the environment names, see [`ProxySetting`]). TLS for `wss://` runs
    /// through the tunnel, to the URL's host (its SNI name), never to the proxy. The whole
    /// connection, proxy included, is bounded by the handshake timeout; the proxy's own
    /// [`timeout`](crate::proxy::Proxy::timeout) (30 s by default) applies too, so the shorter
    /// wins. [`client`] ignores this: its transport is already open.
    pub proxy: ProxySetting,
}

impl ClientRequest {
    /// A request for `path` on `host`.
    pub fn new(host: impl Into<String>, path: impl Into<String>) -> Self {
        ClientRequest {
            host: host.into(),
            path: path.into(),
            ..Default::default()
        }
    }

    /// Offer a subprotocol.
    pub fn protocol(mut self, p: impl Into<String>) -> Self {
        self.protocols.push(p.into());
        self
    }

    /// Add a request header.
    pub fn header(mut self, name: impl Into<String>, value: impl Into<Vec<u8>>) -> Self {
        self.headers.push((name.into(), value.into()));
        self
    }

    /// Use these settings.
    pub fn config(mut self, config: Config) -> Self {
        self.config = config;
        self
    }

    /// Use this TLS configuration for `wss://`.
    #[cfg(feature = "rustls")]
    pub fn tls(mut self, tls: std::sync::Arc<tokio_rustls::rustls::ClientConfig>) -> Self {
        self.tls = Some(tls);
        self
    }

    /// Connect through this proxy (a [`Proxy`](crate::proxy::Proxy)), directly
    /// ([`ProxySetting::Direct`]) or through the one the environment names
    /// ([`ProxySetting::Environment`], the default).
    pub fn proxy(mut self, proxy: impl Into<ProxySetting>) -> Self {
        self.proxy = proxy.into();
        self
    }
}

/// The server's answer, as the client saw it.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct Response {
    /// The HTTP status (101).
    pub status: u16,
    /// The subprotocol the server chose.
    pub protocol: Option<String>,
    /// All response headers.
    pub headers: Vec<(String, Vec<u8>)>,
}

/// Reads until the end of an HTTP head: one pass over new bytes. Returns the buffer and the
/// head length; bytes after the head (early frames) stay in the buffer.
async fn read_head<S: AsyncRead + Unpin>(
    io: &mut S,
    config: &Config,
) -> Result<(Vec<u8>, usize), Error> {
    let max = config.core.limits.max_header_bytes;
    let mut scanner = HeadScanner::new(max);
    let mut buf = Vec::with_capacity(1024.min(max + 1));
    loop {
        if buf.len() == buf.capacity() {
            buf.reserve(buf.len().min(max + 1 - buf.len().min(max)).max(256));
        }
        let n = io.read_buf(&mut buf).await?;
        if n == 0 {
            return Err(if buf.is_empty() {
                Error::PeerVanished
            } else {
                Error::Handshake(HandshakeError::MalformedHttp)
            });
        }
        if let Some(len) = scanner.scan(&buf).map_err(Error::from_proto)? {
            return Ok((buf, len));
        }
    }
}

fn encode_with<F>(mut f: F) -> Result<Vec<u8>, Error>
where
    F: FnMut(&mut [u8]) -> Result<usize, ws_proto::Error>,
{
    let mut size = 512;
    loop {
        let mut out = vec![0u8; size];
        match f(&mut out) {
            Ok(n) => {
                out.truncate(n);
                return Ok(out);
            }
            Err(ws_proto::Error::BufferTooSmall) if size < (1 << 20) => size *= 4,
            Err(e) => return Err(Error::from_proto(e)),
        }
    }
}

/// Fills `buf` from the operating system's random source.
fn fill_random(buf: &mut [u8]) -> Result<(), Error> {
    getrandom::fill(buf).map_err(|e| Error::Io(std::io::Error::other(e.to_string())))
}

/// The core connection for `role` with `config`'s limits and timers, a fresh masking seed for
/// a client, and the agreed compression.
pub(crate) fn connection(
    role: Role,
    config: &Config,
    deflate: Option<Negotiated>,
) -> Result<Connection, Error> {
    let mut seed = [0u8; 8];
    // Clients mask with keys from the seed; either role draws its lifetime's random part.
    if role == Role::Client || config.core.max_lifetime.is_some() {
        fill_random(&mut seed)?;
    }
    let mut conn = Connection::new(role, config.core, u64::from_ne_bytes(seed), now_ms())
        .map_err(Error::from_proto)?;
    if let Some(n) = deflate {
        conn.set_deflate(n);
        conn.set_inflate_pool(&crate::engine::INFLATE_POOL);
    }
    Ok(conn)
}

/// The `Sec-WebSocket-Extensions` value of a client's permessage-deflate offer.
pub(crate) fn deflate_offer(config: &DeflateConfig) -> Result<String, Error> {
    let mut b = [0u8; 256];
    let len = ws_proto::deflate::write_offer(config, &mut b).map_err(Error::from_proto)?;
    Ok(String::from_utf8_lossy(&b[..len]).into_owned())
}

/// The `Sec-WebSocket-Extensions` value of a server's permessage-deflate answer.
pub(crate) fn deflate_response(n: &Negotiated) -> Result<String, Error> {
    let mut b = [0u8; 256];
    let len = ws_proto::deflate::write_response(n, &mut b).map_err(Error::from_proto)?;
    Ok(String::from_utf8_lossy(&b[..len]).into_owned())
}

fn header_refs(h: &[(String, Vec<u8>)]) -> Vec<(&str, &[u8])> {
    h.iter().map(|(k, v)| (k.as_str(), v.as_slice())).collect()
}

async fn with_timeout<T>(
    config: &Config,
    f: impl Future<Output = Result<T, Error>>,
) -> Result<T, Error> {
    match tokio::time::timeout(config.handshake_timeout, f).await {
        Ok(r) => r,
        Err(_) => Err(Error::Timeout(TimeoutKind::Handshake)),
    }
}

/// Accepts a WebSocket connection with default settings, any path and no subprotocol.
pub fn accept<S: AsyncRead + AsyncWrite + Unpin>(
    stream: S,
) -> impl Future<Output = Result<WebSocket<S>, Error>> {
    accept_with(stream, Config::default(), |_| Ok(AcceptResponse::new()))
}

/// [`accept`] under the name tokio-tungstenite gives it.
pub fn accept_async<S: AsyncRead + AsyncWrite + Unpin>(
    stream: S,
) -> impl Future<Output = Result<WebSocket<S>, Error>> {
    accept(stream)
}

/// Accepts with the given settings.
pub fn accept_with_config<S: AsyncRead + AsyncWrite + Unpin>(
    stream: S,
    config: Config,
) -> impl Future<Output = Result<WebSocket<S>, Error>> {
    accept_with(stream, config, |_| Ok(AcceptResponse::new()))
}

/// Accepts a WebSocket connection after asking `callback`, which sees the request (path,
/// headers, Origin, offered subprotocols) and accepts or rejects it.
///
/// Requests that are not valid WebSocket upgrades are answered with 400 (426 with the supported
/// version for a wrong `Sec-WebSocket-Version`, 431 for oversized heads) and fail with
/// [`Error::Handshake`]; a rejection by the callback fails with [`Error::Rejected`].
///
/// The handshake runs in its own allocation (the returned future is one pointer), so the
/// task that awaits it keeps nothing of it afterwards: an idle connection's task stays small.
pub fn accept_with<S, F>(
    stream: S,
    config: Config,
    callback: F,
) -> impl Future<Output = Result<WebSocket<S>, Error>>
where
    S: AsyncRead + AsyncWrite + Unpin,
    F: FnOnce(&Request<'_, '_>) -> Result<AcceptResponse, Reject>,
{
    Box::pin(accept_with_inner(stream, config, callback))
}

async fn accept_with_inner<S, F>(
    mut stream: S,
    config: Config,
    callback: F,
) -> Result<WebSocket<S>, Error>
where
    S: AsyncRead + AsyncWrite + Unpin,
    F: FnOnce(&Request<'_, '_>) -> Result<AcceptResponse, Reject>,
{
    config.core.validate().map_err(Error::from_proto)?;
    let (buf, head_len) = match with_timeout(&config, read_head(&mut stream, &config)).await {
        Ok(x) => x,
        Err(e) => {
            let status = match &e {
                Error::Handshake(h) => Some(hs::reject_status(&ws_proto::Error::Handshake(*h))),
                Error::LimitExceeded { limit, .. } => {
                    Some(hs::reject_status(&ws_proto::Error::LimitExceeded(*limit)))
                }
                _ => None,
            };
            if let Some(status) = status {
                let _ = reject(&mut stream, status, &[], b"").await;
            }
            return Err(e);
        }
    };
    let mut headers = vec![httparse::EMPTY_HEADER; config.core.limits.max_headers];
    let negotiated: Option<ws_proto::deflate::Negotiated>;
    let parsed = hs::parse_request(&buf[..head_len], &mut headers);
    let response = match parsed {
        Err(e) => {
            let status = hs::reject_status(&e);
            let _ = reject(&mut stream, status, &[], b"").await;
            return Err(Error::from_proto(e));
        }
        Ok(req) if config.origin.check_request(&req).is_err() => {
            let refused = crate::auth::check_origin(&config.origin, &req).err();
            let (status, body) = refused.map_or((403, Vec::new()), |r| (r.status, r.body));
            let _ = reject(&mut stream, status, &[], &body).await;
            return Err(Error::Rejected { status });
        }
        Ok(req) => match callback(&req) {
            Ok(acc) => {
                if let Some(p) = &acc.protocol {
                    if !req.protocols().any(|o| o == p) {
                        let _ = reject(&mut stream, 500, &[], b"").await;
                        return Err(Error::Handshake(HandshakeError::UnofferedProtocol));
                    }
                }
                let extra = header_refs(&acc.headers);
                negotiated = config
                    .compression
                    .and_then(|dc| ws_proto::deflate::negotiate_server(req.extensions(), &dc));
                let ext_value = negotiated.as_ref().map(deflate_response).transpose()?;
                let a = hs::Accept::new()
                    .with_protocol(acc.protocol.as_deref())
                    .with_extensions(ext_value.as_deref())
                    .with_headers(&extra);
                let key = req.key();
                encode_with(|out| hs::write_accept(out, key, &a))?
            }
            Err(rej) => {
                let h = header_refs(&rej.headers);
                let _ = reject(&mut stream, rej.status, &h, &rej.body).await;
                return Err(Error::Rejected { status: rej.status });
            }
        },
    };
    drop(headers);
    stream.write_all(&response).await?;
    stream.flush().await?;
    let leftover = buf[head_len..].to_vec();
    let conn = connection(Role::Server, &config, negotiated)?;
    Ok(WebSocket::from_parts(stream, conn, &config, leftover))
}

async fn reject<S: AsyncWrite + Unpin>(
    stream: &mut S,
    status: u16,
    headers: &[(&str, &[u8])],
    body: &[u8],
) -> Result<(), Error> {
    let out = encode_with(|out| hs::write_reject(out, status, headers, body))?;
    stream.write_all(&out).await?;
    stream.flush().await?;
    let _ = stream.shutdown().await;
    Ok(())
}

/// Performs the client handshake over an established transport.
pub async fn client<S: AsyncRead + AsyncWrite + Unpin>(
    mut stream: S,
    request: ClientRequest,
) -> Result<(WebSocket<S>, Response), Error> {
    let config = request.config;
    config.core.validate().map_err(Error::from_proto)?;
    let mut key_rand = [0u8; 16];
    fill_random(&mut key_rand)?;
    let key = hs::generate_key(key_rand);
    let protocols: Vec<&str> = request.protocols.iter().map(String::as_str).collect();
    let extra = header_refs(&request.headers);
    let offer = config.compression.as_ref().map(deflate_offer).transpose()?;
    let req = hs::ClientRequest::new(&request.host, &request.path, &key)
        .with_protocols(&protocols)
        .with_extensions(offer.as_deref())
        .with_headers(&extra);
    let bytes = encode_with(|out| hs::write_request(out, &req))?;
    with_timeout(&config, async {
        stream.write_all(&bytes).await?;
        stream.flush().await?;
        let (buf, head_len) = read_head(&mut stream, &config).await?;
        let mut headers = vec![httparse::EMPTY_HEADER; config.core.limits.max_headers];
        let resp = hs::parse_response(
            &buf[..head_len],
            &mut headers,
            &key,
            &protocols,
            offer.as_deref(),
        )
        .map_err(|e| match e {
            ws_proto::Error::Handshake(HandshakeError::UnexpectedStatus(status)) => {
                Error::Rejected { status }
            }
            e => Error::from_proto(e),
        })?;
        let response = Response {
            status: resp.status(),
            protocol: resp.protocol().map(String::from),
            headers: resp
                .headers()
                .iter()
                .map(|h| (h.name.to_string(), h.value.to_vec()))
                .collect(),
        };
        let negotiated = match &config.compression {
            Some(dc) => ws_proto::deflate::negotiate_client(resp.extensions(), dc)
                .map_err(Error::from_proto)?,
            None => None,
        };
        drop(headers);
        let leftover = buf[head_len..].to_vec();
        let conn = connection(Role::Client, &config, negotiated)?;
        Ok((
            WebSocket::from_parts(stream, conn, &config, leftover),
            response,
        ))
    })
    .await
}
