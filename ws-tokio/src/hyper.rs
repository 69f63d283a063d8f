//! WebSocket upgrades for hyper 1 servers (feature `hyper`), both HTTP versions: an HTTP/1.1
//! `GET` with `Upgrade: websocket` is answered `101 Switching Protocols`, an HTTP/2 extended
//! CONNECT (RFC 8441, through [`crate::http2`]) `200`; either way the stream that follows
//! becomes a [`WebSocket`] with this crate's limits, keepalive and permessage-deflate.
//!
//! [`upgrade`] has the shape of fastwebsockets' `upgrade::upgrade`: it answers the request and
//! returns the response to send and an [`UpgradeFut`] that resolves to the [`WebSocket`] once
//! hyper hands over the connection (HTTP/1.1) or stream (HTTP/2). [`upgrade_with`] takes the
//! settings and a callback that sees the parsed request, as [`accept_with`](crate::accept_with)
//! does, to choose a subprotocol or to refuse (Origin checks and authentication, see
//! [`crate::auth`]).
//!
//! The HTTP/1.1 request is checked with the rules of
//! [`ws_proto::handshake::parse_request`] (through
//! [`parse_request_fields`](ws_proto::handshake::parse_request_fields) on hyper's parsed
//! head), the HTTP/2 request with those of [`ws_proto::handshake::http2::parse_request`]. A
//! request that fails them gets a [`Refusal`] with the answer to send.
//!
//! Serve HTTP/1.1 connections `with_upgrades()`, and enable extended CONNECT on HTTP/2 ones
//! (`hyper::server::conn::http2::Builder::enable_connect_protocol`).
//!
//! ```no_run
//! use http_body_util::Full;
//! use hyper::body::{Bytes, Incoming};
//! use ws_tokio::Message;
//!
//! async fn handle(mut request: hyper::Request<Incoming>) -> Result<hyper::Response<Full<Bytes>>, hyper::Error> {
//!     if !ws_tokio::hyper::is_upgrade_request(&request) {
//!         return Ok(hyper::Response::new(Full::new(Bytes::from_static(b"hello"))));
//!     }
//!     let (response, upgrade) = match ws_tokio::hyper::upgrade(&mut request) {
//!         Ok(accepted) => accepted,
//!         Err(refusal) => return Ok(refusal.into_response()),
//!     };
//!     tokio::spawn(async move {
//!         let Ok(mut ws) = upgrade.await else { return };
//!         while let Some(Ok(msg)) = ws.recv().await {
//!             if msg.is_text() || msg.is_binary() {
//!                 if ws.send(msg).await.is_err() {
//!                     break;
//!                 }
//!             }
//!         }
//!     });
//!     Ok(response)
//! }
//! ```

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll, ready};

use ::hyper::upgrade::OnUpgrade;
use bytes::Bytes;
use http::header::{
    CONNECTION, HeaderName, HeaderValue, SEC_WEBSOCKET_ACCEPT, SEC_WEBSOCKET_EXTENSIONS,
    SEC_WEBSOCKET_PROTOCOL, SEC_WEBSOCKET_VERSION, UPGRADE,
};
use http::{HeaderMap, StatusCode, Version};
use http_body_util::Full;
use httparse::Header;
use ws_proto::handshake::http2::{self as rfc8441, Pseudo};
use ws_proto::handshake::{self as hs};
use ws_proto::{Connection, HandshakeError, Role};

use crate::config::Config;
use crate::error::Error;
use crate::handshake::{AcceptResponse, Reject, Request, connection, deflate_response};
use crate::http2;
pub use crate::http2::Refusal;
use crate::websocket::WebSocket;

/// The transport of an upgraded connection: hyper's `Upgraded` (an HTTP/1.1 connection or an
/// HTTP/2 stream) under tokio's I/O traits.
pub type Upgraded = hyper_util::rt::TokioIo<::hyper::upgrade::Upgraded>;

/// The body of the responses this module makes: empty for `101` and `200`, the refusal's text
/// otherwise.
pub type Body = Full<Bytes>;

/// Whether `request` asks for a WebSocket: an HTTP/1.1 request whose `Upgrade` lists
/// `websocket`, or an HTTP/2 (or later) `CONNECT` whose `:protocol` is `websocket`. A `true`
/// does not mean the request is valid: [`upgrade`] checks the rest.
pub fn is_upgrade_request<B>(request: &http::Request<B>) -> bool {
    if request.version() <= Version::HTTP_11 {
        request
            .headers()
            .get_all(UPGRADE)
            .iter()
            .any(|v| hs::has_token(v.as_bytes(), "websocket"))
    } else {
        request.method() == http::Method::CONNECT
            && protocol_of(request).is_some_and(|p| p.eq_ignore_ascii_case(rfc8441::PROTOCOL))
    }
}

/// Answers a WebSocket request with the default [`Config`], choosing no subprotocol. See
/// [`upgrade_with`].
#[allow(clippy::result_large_err)]
pub fn upgrade<B>(
    request: &mut http::Request<B>,
) -> Result<(http::Response<Body>, UpgradeFut), Box<Refusal>> {
    upgrade_with(request, Config::default(), |_| Ok(AcceptResponse::new()))
}

/// Answers a WebSocket request: checks it, asks `callback` (which sees the request's path,
/// host, Origin, headers and offers, and accepts with a subprotocol and headers or rejects),
/// negotiates permessage-deflate with `config.compression` and takes hyper's upgrade handle
/// out of the request's extensions.
///
/// On success, send the response (`101` for HTTP/1.1, `200` for HTTP/2) and await the
/// [`UpgradeFut`] in a task of its own. A [`Refusal`] carries the answer to send instead:
/// what [`ws_proto::handshake::reject_status`] says for an HTTP/1.1 request that is not a valid
/// WebSocket upgrade (400, or 426 with `Sec-WebSocket-Version: 13`), what
/// [`http2::accept_with`] says for an HTTP/2 one, 426 when hyper put no upgrade handle in
/// the request (an HTTP/1.0 request, or a connection served without `with_upgrades()`), the
/// callback's status, headers and body for its rejection, and 500 for a config that makes no
/// sense or an answer that cannot be sent (a subprotocol that was not offered, a bad header).
/// `config.handshake_timeout` is not used: the request has arrived.
#[allow(clippy::result_large_err)]
pub fn upgrade_with<B, F>(
    request: &mut http::Request<B>,
    config: Config,
    callback: F,
) -> Result<(http::Response<Body>, UpgradeFut), Box<Refusal>>
where
    F: FnOnce(&Request<'_, '_>) -> Result<AcceptResponse, Reject>,
{
    let protocol = protocol_of(request).map(str::to_owned);
    with_request(request, protocol.as_deref(), |_| ())
        .map_err(|e| invalid(e, request.version()))?;
    let on_upgrade = request
        .extensions_mut()
        .remove::<OnUpgrade>()
        .ok_or_else(|| not_upgradable(request.version()))?;
    let (response, ready) = respond(request, protocol.as_deref(), config, callback)?;
    let response = response.map(|()| Body::default());
    Ok((
        response,
        UpgradeFut {
            on_upgrade,
            ready: Some(ready),
        },
    ))
}

/// The `:protocol` of an HTTP/2 request, as hyper keeps it.
fn protocol_of<B>(request: &http::Request<B>) -> Option<&str> {
    request
        .extensions()
        .get::<::hyper::ext::Protocol>()
        .map(|p| p.as_str())
}

/// The WebSocket once hyper has handed over the connection: resolves to the [`WebSocket`] over
/// [`Upgraded`], or to [`Error::Io`] when the upgrade failed (the client went away, or the
/// response was never sent).
#[derive(Debug)]
#[must_use = "the WebSocket comes when this future is awaited"]
pub struct UpgradeFut {
    on_upgrade: OnUpgrade,
    ready: Option<Ready>,
}

impl UpgradeFut {
    /// The agreed subprotocol, if any.
    pub fn protocol(&self) -> Option<&str> {
        self.ready.as_ref().and_then(Ready::protocol)
    }

    /// Whether permessage-deflate was agreed.
    pub fn compression_enabled(&self) -> bool {
        self.ready.as_ref().is_some_and(Ready::compression_enabled)
    }
}

impl Future for UpgradeFut {
    type Output = Result<WebSocket<Upgraded>, Error>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = &mut *self;
        let upgraded = ready!(Pin::new(&mut this.on_upgrade).poll(cx)).map_err(upgrade_failed)?;
        let ready = this.ready.take().ok_or(Error::Closed)?;
        Poll::Ready(Ok(
            ready.into_websocket(hyper_util::rt::TokioIo::new(upgraded))
        ))
    }
}

pub(crate) fn upgrade_failed(e: ::hyper::Error) -> Error {
    Error::Io(std::io::Error::other(e))
}

/// The agreed connection, waiting for its stream.
#[derive(Debug)]
pub(crate) enum Ready {
    /// HTTP/1.1: the connection after the `101`.
    Http1 {
        conn: Connection,
        config: Config,
        protocol: Option<String>,
    },
    /// HTTP/2: the extended CONNECT stream.
    Http2(http2::Upgrade),
}

impl Ready {
    pub(crate) fn protocol(&self) -> Option<&str> {
        match self {
            Ready::Http1 { protocol, .. } => protocol.as_deref(),
            Ready::Http2(u) => u.protocol(),
        }
    }

    pub(crate) fn compression_enabled(&self) -> bool {
        match self {
            Ready::Http1 { conn, .. } => conn.compression_enabled(),
            Ready::Http2(u) => u.compression_enabled(),
        }
    }

    pub(crate) fn into_websocket(self, io: Upgraded) -> WebSocket<Upgraded> {
        match self {
            // hyper's `Upgraded` yields the bytes it read past the head first.
            Ready::Http1 { conn, config, .. } => {
                WebSocket::from_parts(io, conn, &config, Vec::new())
            }
            Ready::Http2(u) => u.into_websocket(io),
        }
    }
}

/// The header fields of `map` in the form the core checks.
fn header_list(map: &HeaderMap) -> Vec<Header<'_>> {
    map.iter()
        .map(|(name, value)| Header {
            name: name.as_str(),
            value: value.as_bytes(),
        })
        .collect()
}

/// Runs `f` on the request as the core sees it, once it passed the core's checks: those of
/// [`hs::parse_request_fields`] for HTTP/1.x, those of [`rfc8441::parse_request`] for later
/// versions (`protocol` is the `:protocol`).
pub(crate) fn with_request<B, R>(
    request: &http::Request<B>,
    protocol: Option<&str>,
    f: impl FnOnce(&Request<'_, '_>) -> R,
) -> Result<R, ws_proto::Error> {
    let headers = header_list(request.headers());
    let uri = request.uri();
    let target = uri.path_and_query().map_or("", |p| p.as_str());
    let req = if request.version() <= Version::HTTP_11 {
        let minor = u8::from(request.version() == Version::HTTP_11);
        hs::parse_request_fields(request.method().as_str(), minor, target, &headers)?
    } else {
        let authority = uri.authority().map_or("", |a| a.as_str());
        let pseudo = Pseudo::new(request.method().as_str(), protocol, authority, target);
        rfc8441::parse_request(&pseudo, &headers)?
    };
    Ok(f(&req))
}

/// Checks and answers the request: the response head to send and the connection waiting for
/// its stream.
#[allow(clippy::result_large_err)]
pub(crate) fn respond<B, F>(
    request: &http::Request<B>,
    protocol: Option<&str>,
    config: Config,
    callback: F,
) -> Result<(http::Response<()>, Ready), Box<Refusal>>
where
    F: FnOnce(&Request<'_, '_>) -> Result<AcceptResponse, Reject>,
{
    if request.version() > Version::HTTP_11 {
        let (response, upgrade) = http2::accept_with(request, protocol, config, callback)?;
        return Ok((response, Ready::Http2(upgrade)));
    }
    config
        .core
        .validate()
        .map_err(|e| internal(Error::from_proto(e)))?;
    let version = request.version();
    let answered = with_request(request, None, |req| {
        crate::auth::check_origin(&config.origin, req)?;
        let answer = callback(req)?;
        let negotiated = config
            .compression
            .and_then(|dc| ws_proto::deflate::negotiate_server(req.extensions(), &dc));
        let offered = answer
            .protocol
            .as_ref()
            .is_none_or(|p| req.protocols().any(|o| o == p));
        Ok((answer, negotiated, offered, hs::accept_key(req.key())))
    })
    .map_err(|e| invalid(e, version))?;
    let (answer, negotiated, offered, accept) = answered.map_err(rejected)?;
    if !offered {
        return Err(internal(Error::Handshake(
            HandshakeError::UnofferedProtocol,
        )));
    }

    let mut response = http::Response::new(());
    *response.status_mut() = StatusCode::SWITCHING_PROTOCOLS;
    let fields = response.headers_mut();
    let mut fill = || -> Result<(), Error> {
        fields.insert(UPGRADE, HeaderValue::from_static("websocket"));
        fields.insert(CONNECTION, HeaderValue::from_static("upgrade"));
        fields.insert(SEC_WEBSOCKET_ACCEPT, value(&accept)?);
        if let Some(p) = &answer.protocol {
            if !is_token(p) {
                return Err(malformed());
            }
            fields.insert(SEC_WEBSOCKET_PROTOCOL, value(p.as_bytes())?);
        }
        if let Some(n) = &negotiated {
            fields.insert(
                SEC_WEBSOCKET_EXTENSIONS,
                value(deflate_response(n)?.as_bytes())?,
            );
        }
        append_headers(fields, &answer.headers)
    };
    fill().map_err(internal)?;
    let conn = connection(Role::Server, &config, negotiated).map_err(internal)?;
    Ok((
        response,
        Ready::Http1 {
            conn,
            config,
            protocol: answer.protocol,
        },
    ))
}

fn malformed() -> Error {
    Error::Handshake(HandshakeError::MalformedHttp)
}

fn value(v: &[u8]) -> Result<HeaderValue, Error> {
    HeaderValue::from_bytes(v).map_err(|_| malformed())
}

/// An RFC 7230 token.
fn is_token(s: &str) -> bool {
    !s.is_empty()
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b))
}

/// Appends an application's header fields to `map`; the framing and the handshake's own
/// fields are this module's to write.
fn append_headers(map: &mut HeaderMap, headers: &[(String, Vec<u8>)]) -> Result<(), Error> {
    for (name, v) in headers {
        let name = HeaderName::from_bytes(name.as_bytes()).map_err(|_| malformed())?;
        let reserved = [
            http::header::CONTENT_LENGTH,
            http::header::TRANSFER_ENCODING,
            CONNECTION,
            UPGRADE,
            SEC_WEBSOCKET_ACCEPT,
        ];
        if reserved.contains(&name) {
            return Err(malformed());
        }
        map.append(name, value(v)?);
    }
    Ok(())
}

fn refusal(status: StatusCode, error: Error) -> Box<Refusal> {
    let mut response = http::Response::new(());
    *response.status_mut() = status;
    Box::new(Refusal {
        error,
        response,
        body: Vec::new(),
    })
}

/// A failure on the server's side: 500.
fn internal(error: Error) -> Box<Refusal> {
    refusal(StatusCode::INTERNAL_SERVER_ERROR, error)
}

/// A request that failed the core's checks, answered as the core says for its HTTP version.
pub(crate) fn invalid(e: ws_proto::Error, version: Version) -> Box<Refusal> {
    let http2 = version > Version::HTTP_11;
    let status = if http2 {
        rfc8441::reject_status(&e)
    } else {
        hs::reject_status(&e)
    };
    let status = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let mut r = refusal(status, Error::from_proto(e));
    if e == ws_proto::Error::Handshake(HandshakeError::UnsupportedVersion) {
        r.response.headers_mut().insert(
            SEC_WEBSOCKET_VERSION,
            HeaderValue::from_static(rfc8441::VERSION),
        );
    }
    if status == StatusCode::UPGRADE_REQUIRED {
        // RFC 9110 section 15.5.22: a 426 names the protocol to upgrade to.
        let headers = r.response.headers_mut();
        headers.insert(UPGRADE, HeaderValue::from_static("websocket"));
        headers.insert(CONNECTION, HeaderValue::from_static("upgrade"));
    }
    r.body = format!("not a valid WebSocket request: {}\n", r.error).into_bytes();
    r
}

/// A request hyper cannot upgrade: 426 for HTTP/1.x, 500 for HTTP/2 (where the stack should
/// have put a handle on every extended CONNECT).
pub(crate) fn not_upgradable(version: Version) -> Box<Refusal> {
    let why = "the connection cannot be upgraded (no upgrade handle in the request)";
    let error = Error::Io(std::io::Error::other(why));
    let mut r = if version > Version::HTTP_11 {
        internal(error)
    } else {
        let mut r = refusal(StatusCode::UPGRADE_REQUIRED, error);
        let headers = r.response.headers_mut();
        headers.insert(UPGRADE, HeaderValue::from_static("websocket"));
        headers.insert(CONNECTION, HeaderValue::from_static("upgrade"));
        r
    };
    r.body = format!("{why}\n").into_bytes();
    r
}

/// The callback's rejection; one that cannot be sent (a status under 300, a bad header)
/// becomes a 500.
fn rejected(reject: Reject) -> Box<Refusal> {
    let Some(status) = StatusCode::from_u16(reject.status)
        .ok()
        .filter(|s| s.as_u16() >= 300)
    else {
        return internal(malformed());
    };
    let mut r = refusal(
        status,
        Error::Rejected {
            status: reject.status,
        },
    );
    let mut headers = HeaderMap::new();
    for (name, v) in &reject.headers {
        let Ok(name) = HeaderName::from_bytes(name.as_bytes()) else {
            return internal(malformed());
        };
        let Ok(v) = HeaderValue::from_bytes(v) else {
            return internal(malformed());
        };
        headers.append(name, v);
    }
    *r.response.headers_mut() = headers;
    r.body = reject.body;
    r
}

impl Refusal {
    /// The answer as a hyper response: the status and headers, and the body.
    pub fn into_response(self) -> http::Response<Body> {
        let (parts, ()) = self.response.into_parts();
        http::Response::from_parts(parts, Full::new(Bytes::from(self.body)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn h1() -> http::Request<()> {
        let mut req = http::Request::new(());
        *req.uri_mut() = http::Uri::from_static("/chat?x=1");
        let h = req.headers_mut();
        h.insert("host", HeaderValue::from_static("example.com"));
        h.insert(UPGRADE, HeaderValue::from_static("websocket"));
        h.insert(CONNECTION, HeaderValue::from_static("keep-alive, Upgrade"));
        h.insert(SEC_WEBSOCKET_VERSION, HeaderValue::from_static("13"));
        h.insert(
            "sec-websocket-key",
            HeaderValue::from_static("dGhlIHNhbXBsZSBub25jZQ=="),
        );
        h.insert(SEC_WEBSOCKET_PROTOCOL, HeaderValue::from_static("a, chat"));
        h.insert(
            SEC_WEBSOCKET_EXTENSIONS,
            HeaderValue::from_static("permessage-deflate; client_max_window_bits"),
        );
        req
    }

    #[test]
    fn answers_an_http1_upgrade() {
        let req = h1();
        let (res, ready) = respond(&req, None, Config::default(), |r| {
            assert_eq!((r.path(), r.host()), ("/chat?x=1", "example.com"));
            Ok(AcceptResponse::new().protocol("chat").header("x-a", "b"))
        })
        .unwrap();
        assert_eq!(res.status(), 101);
        let h = res.headers();
        assert_eq!(h["upgrade"], "websocket");
        assert_eq!(h["connection"], "upgrade");
        // RFC 6455 section 1.3's example key and answer.
        assert_eq!(h["sec-websocket-accept"], "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=");
        assert_eq!(h["sec-websocket-protocol"], "chat");
        assert_eq!(h["x-a"], "b");
        assert!(
            h["sec-websocket-extensions"]
                .to_str()
                .unwrap()
                .starts_with("permessage-deflate")
        );
        assert!(ready.compression_enabled());
        assert_eq!(ready.protocol(), Some("chat"));

        let off = Config::default().with_compression(None);
        let (res, ready) = respond(&req, None, off, |_| Ok(AcceptResponse::new())).unwrap();
        assert!(res.headers().get("sec-websocket-extensions").is_none());
        assert!(res.headers().get("sec-websocket-protocol").is_none());
        assert!(!ready.compression_enabled());
    }

    #[test]
    fn refuses_what_the_core_refuses() {
        let status = |req: &http::Request<()>| {
            respond(req, None, Config::default(), |_| Ok(AcceptResponse::new()))
                .map(|_| 101)
                .unwrap_or_else(|r| r.response.status().as_u16())
        };
        let mut r = h1();
        *r.method_mut() = http::Method::POST;
        assert_eq!(status(&r), 400);
        let mut r = h1();
        *r.version_mut() = Version::HTTP_10;
        assert_eq!(status(&r), 400);
        let mut r = h1();
        r.headers_mut().remove("sec-websocket-key");
        assert_eq!(status(&r), 400);
        let mut r = h1();
        r.headers_mut()
            .insert(SEC_WEBSOCKET_VERSION, HeaderValue::from_static("8"));
        let refusal =
            respond(&r, None, Config::default(), |_| Ok(AcceptResponse::new())).unwrap_err();
        assert_eq!(refusal.response.status(), 426);
        assert_eq!(refusal.response.headers()["sec-websocket-version"], "13");
        assert_eq!(refusal.response.headers()["upgrade"], "websocket");
        assert!(matches!(
            refusal.error,
            Error::Handshake(HandshakeError::UnsupportedVersion)
        ));

        let r = h1();
        let refusal = respond(&r, None, Config::default(), |_| {
            Err(Reject::status(403).header("x-why", "origin").body("no"))
        })
        .unwrap_err();
        assert_eq!(refusal.response.status(), 403);
        assert_eq!(refusal.response.headers()["x-why"], "origin");
        assert!(matches!(refusal.error, Error::Rejected { status: 403 }));
        let res = refusal.into_response();
        assert_eq!(res.status(), 403);

        for answer in [
            AcceptResponse::new().protocol("unoffered"),
            AcceptResponse::new().header("content-length", "1"),
            AcceptResponse::new().header("bad name", "1"),
            AcceptResponse::new().header("x-ok", "a\nb"),
        ] {
            let refusal = respond(&r, None, Config::default(), |_| Ok(answer.clone())).unwrap_err();
            assert_eq!(refusal.response.status(), 500, "{answer:?}");
        }
        let bad = Config::default().with_max_frame_size(0);
        let refusal = respond(&r, None, bad, |_| Ok(AcceptResponse::new())).unwrap_err();
        assert_eq!(refusal.response.status(), 500);
        assert!(matches!(refusal.error, Error::Usage(_)));
    }

    #[test]
    fn tells_upgrade_requests() {
        let r = h1();
        assert!(is_upgrade_request(&r));
        let mut r = h1();
        r.headers_mut().remove(UPGRADE);
        assert!(!is_upgrade_request(&r));
        let mut r = http::Request::new(());
        *r.version_mut() = Version::HTTP_2;
        *r.method_mut() = http::Method::CONNECT;
        assert!(!is_upgrade_request(&r));
        r.extensions_mut()
            .insert(::hyper::ext::Protocol::from_static("websocket"));
        assert!(is_upgrade_request(&r));
    }

    #[test]
    fn no_upgrade_handle_is_426() {
        let mut r = h1();
        let refusal = upgrade(&mut r).unwrap_err();
        assert_eq!(refusal.response.status(), 426);
        let mut r = h1();
        r.headers_mut().remove(UPGRADE);
        let refusal = upgrade(&mut r).unwrap_err();
        assert_eq!(refusal.response.status(), 400);
    }
}
