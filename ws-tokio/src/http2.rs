//! WebSocket over HTTP/2 (RFC 8441, extended CONNECT) with the [`http`] crate's types, both
//! roles. HTTP/3 uses the same handshake (RFC 9220).
//!
//! The HTTP/2 stack (h2, hyper, ...) owns the connection and its streams; this module checks
//! and answers the extended CONNECT request (server) or builds it and checks the answer
//! (client), with the same limits, subprotocol choice and permessage-deflate negotiation as the
//! HTTP/1.1 handshake. [`Upgrade::into_websocket`] then runs the WebSocket protocol over the
//! stream as an `AsyncRead + AsyncWrite`, with the request's stream carrying frames in both
//! directions.
//!
//! The `:protocol` pseudo-header field is an extension type of the HTTP/2 stack, which this
//! module does not depend on: a server passes its value to [`accept_with`] (with h2,
//! `request.extensions().get::<h2::ext::Protocol>().map(|p| p.as_str())`; with hyper,
//! `hyper::ext::Protocol`), and a client inserts it into the request [`client_request`]
//! builds (`h2::ext::Protocol::from_static("websocket")` or `hyper::ext::Protocol`). The
//! server side of the stack must have extended CONNECT enabled (h2:
//! `server::Builder::enable_connect_protocol`), and a client may only send the request once
//! the server's SETTINGS allowed it (h2: `SendRequest::is_extended_connect_protocol_enabled`).
//!
//! A server task:
//!
//! ```no_run
//! use tokio::io::{AsyncRead, AsyncWrite};
//! use ws_tokio::{AcceptResponse, Config, Message};
//!
//! /// `protocol` is the request's `:protocol`; `respond` sends the response head through the
//! /// HTTP/2 stack and returns the request's stream as an `AsyncRead + AsyncWrite`.
//! async fn serve<B, S: AsyncRead + AsyncWrite + Unpin>(
//!     request: http::Request<B>,
//!     protocol: Option<&str>,
//!     respond: impl FnOnce(http::Response<()>, Vec<u8>) -> Option<S>,
//! ) -> Result<(), ws_tokio::Error> {
//!     let accepted = ws_tokio::http2::accept_with(&request, protocol, Config::default(), |req| {
//!         let chat = req.protocols().any(|p| p == "chat");
//!         Ok(if chat { AcceptResponse::new().protocol("chat") } else { AcceptResponse::new() })
//!     });
//!     let (response, upgrade) = match accepted {
//!         Ok(accepted) => accepted,
//!         Err(refusal) => {
//!             respond(refusal.response, refusal.body);
//!             return Err(refusal.error);
//!         }
//!     };
//!     let Some(stream) = respond(response, Vec::new()) else { return Ok(()) };
//!     let mut ws = upgrade.into_websocket(stream);
//!     while let Some(msg) = ws.recv().await {
//!         if let m @ (Message::Text(_) | Message::Binary(_)) = msg? {
//!             ws.send(m).await?;
//!         }
//!     }
//!     Ok(())
//! }
//! ```

use http::header::{
    HeaderName, HeaderValue, SEC_WEBSOCKET_EXTENSIONS, SEC_WEBSOCKET_PROTOCOL,
    SEC_WEBSOCKET_VERSION,
};
use http::uri::{PathAndQuery, Scheme};
use http::{HeaderMap, Method, StatusCode, Uri, Version};
use httparse::Header;
use tokio::io::{AsyncRead, AsyncWrite};
use ws_proto::handshake::http2::{self as rfc8441, Pseudo};
use ws_proto::{Connection, HandshakeError, Role};

use crate::config::Config;
use crate::error::{Error, UrlError};
use crate::handshake::{
    AcceptResponse, ClientRequest, Reject, Request, connection, deflate_offer, deflate_response,
};
use crate::websocket::WebSocket;

/// The handshake is done: what turns the stream into a [`WebSocket`].
#[derive(Debug)]
pub struct Upgrade {
    conn: Connection,
    config: Config,
    protocol: Option<String>,
}

impl Upgrade {
    /// The agreed subprotocol, if any.
    pub fn protocol(&self) -> Option<&str> {
        self.protocol.as_deref()
    }

    /// This end's role.
    pub fn role(&self) -> Role {
        self.conn.role()
    }

    /// Whether permessage-deflate was agreed.
    pub fn compression_enabled(&self) -> bool {
        self.conn.compression_enabled()
    }

    /// Runs the WebSocket protocol over `io`, the request's stream (for a server, once the
    /// response head went out; for a client, once the response arrived).
    pub fn into_websocket<S: AsyncRead + AsyncWrite + Unpin>(self, io: S) -> WebSocket<S> {
        WebSocket::from_parts(io, self.conn, &self.config, Vec::new())
    }
}

/// A request the server does not accept: the response to send, and why.
#[derive(Debug)]
pub struct Refusal {
    /// Why: [`Error::Handshake`] for a request that is not a valid WebSocket extended CONNECT
    /// (or an answer that could not be encoded, with status 500), [`Error::Rejected`] when the
    /// callback rejected it, [`Error::Usage`] for a config that makes no sense (500).
    pub error: Error,
    /// The response head: the status, with `sec-websocket-version: 13` for a version the
    /// server does not speak, or the callback's headers.
    pub response: http::Response<()>,
    /// The response body: the callback's, or empty.
    pub body: Vec<u8>,
}

impl Refusal {
    fn new(status: StatusCode, error: Error) -> Box<Refusal> {
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
        Refusal::new(StatusCode::INTERNAL_SERVER_ERROR, error)
    }

    /// A request that failed the core's checks.
    fn invalid(e: ws_proto::Error) -> Box<Refusal> {
        let status = StatusCode::from_u16(rfc8441::reject_status(&e))
            .unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        let mut refusal = Refusal::new(status, Error::from_proto(e));
        if e == ws_proto::Error::Handshake(HandshakeError::UnsupportedVersion) {
            refusal.response.headers_mut().insert(
                SEC_WEBSOCKET_VERSION,
                HeaderValue::from_static(rfc8441::VERSION),
            );
        }
        refusal
    }

    /// The callback's rejection; one that cannot be sent (a status under 300, a bad header)
    /// becomes a 500.
    fn rejected(reject: Reject) -> Box<Refusal> {
        let status = StatusCode::from_u16(reject.status)
            .ok()
            .filter(|s| s.as_u16() >= 300);
        let Some(status) = status else {
            return Refusal::internal(malformed());
        };
        let mut refusal = Refusal::new(
            status,
            Error::Rejected {
                status: reject.status,
            },
        );
        if let Err(e) = append_headers(refusal.response.headers_mut(), &reject.headers) {
            return Refusal::internal(e);
        }
        refusal.body = reject.body;
        refusal
    }
}

impl std::fmt::Display for Refusal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} (answered {})", self.error, self.response.status())
    }
}

impl std::error::Error for Refusal {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        Some(&self.error)
    }
}

impl From<Box<Refusal>> for Error {
    fn from(refusal: Box<Refusal>) -> Error {
        refusal.error
    }
}

fn malformed() -> Error {
    Error::Handshake(HandshakeError::MalformedHttp)
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

/// Appends an application's header fields to `map`.
fn append_headers(map: &mut HeaderMap, headers: &[(String, Vec<u8>)]) -> Result<(), Error> {
    for (name, value) in headers {
        let name = HeaderName::from_bytes(name.as_bytes()).map_err(|_| malformed())?;
        let value = HeaderValue::from_bytes(value).map_err(|_| malformed())?;
        map.append(name, value);
    }
    Ok(())
}

/// A header value from text this crate checked or wrote.
fn value(text: &str) -> Result<HeaderValue, Error> {
    HeaderValue::from_str(text).map_err(|_| malformed())
}

/// Accepts an extended CONNECT request with `config`, no subprotocol and no extra headers.
/// See [`accept_with`].
pub fn accept<B>(
    request: &http::Request<B>,
    protocol: Option<&str>,
    config: Config,
) -> Result<(http::Response<()>, Upgrade), Box<Refusal>> {
    accept_with(request, protocol, config, |_| Ok(AcceptResponse::new()))
}

/// Checks an extended CONNECT request (server side), asks `callback`, and returns the response
/// to send and the [`Upgrade`] for the stream.
///
/// `protocol` is the request's `:protocol` pseudo-header field, which the HTTP/2 stack keeps as
/// an extension of its own (see the [module documentation](self)). The checks are those of
/// [`ws_proto::handshake::http2::parse_request`], on the method, `protocol`, the URI's
/// authority and path, and the header fields. `callback` sees the request as the HTTP/1.1
/// [`accept_with`](crate::accept_with) callback does (path, `:authority` as the host, Origin,
/// offered subprotocols and extensions; [`key`](ws_proto::handshake::Request::key) is empty) and accepts it, choosing a
/// subprotocol among those offered and adding headers, or rejects it.
///
/// On acceptance the response is `200` with `sec-websocket-protocol` (the chosen subprotocol),
/// `sec-websocket-extensions` (permessage-deflate, when `config.compression` accepts an offer)
/// and the callback's headers; send it without ending the stream, then call
/// [`Upgrade::into_websocket`] on the stream. `config.handshake_timeout` is not used: the
/// request has already arrived.
///
/// A [`Refusal`] (boxed, as it is large) carries the response to send instead: 400 for a request that is not a
/// WebSocket extended CONNECT or is malformed (with `sec-websocket-version: 13` when the version
/// is not 13), 501 for a `:protocol` other than `websocket`, the callback's status, headers and
/// body for its rejection, and 500 for a config that makes no sense, a subprotocol that was
/// not offered, or a callback answer that cannot be encoded.
pub fn accept_with<B, F>(
    request: &http::Request<B>,
    protocol: Option<&str>,
    config: Config,
    callback: F,
) -> Result<(http::Response<()>, Upgrade), Box<Refusal>>
where
    F: FnOnce(&Request<'_, '_>) -> Result<AcceptResponse, Reject>,
{
    config
        .core
        .validate()
        .map_err(|e| Refusal::internal(Error::from_proto(e)))?;
    let headers = header_list(request.headers());
    let uri = request.uri();
    let pseudo = Pseudo::new(
        request.method().as_str(),
        protocol,
        uri.authority().map_or("", |a| a.as_str()),
        uri.path_and_query().map_or("", |p| p.as_str()),
    );
    let req = rfc8441::parse_request(&pseudo, &headers).map_err(Refusal::invalid)?;
    let answer = callback(&req).map_err(Refusal::rejected)?;
    if let Some(p) = &answer.protocol {
        if !req.protocols().any(|o| o == p) {
            return Err(Refusal::internal(Error::Handshake(
                HandshakeError::UnofferedProtocol,
            )));
        }
    }
    let negotiated = config
        .compression
        .and_then(|dc| ws_proto::deflate::negotiate_server(req.extensions(), &dc));

    let mut response = http::Response::new(());
    let fields = response.headers_mut();
    let mut fill = || -> Result<(), Error> {
        if let Some(p) = &answer.protocol {
            fields.insert(SEC_WEBSOCKET_PROTOCOL, value(p)?);
        }
        if let Some(n) = &negotiated {
            fields.insert(SEC_WEBSOCKET_EXTENSIONS, value(&deflate_response(n)?)?);
        }
        append_headers(fields, &answer.headers)
    };
    fill().map_err(Refusal::internal)?;
    let conn = connection(Role::Server, &config, negotiated).map_err(Refusal::internal)?;
    Ok((
        response,
        Upgrade {
            conn,
            config,
            protocol: answer.protocol,
        },
    ))
}

/// A client's extended CONNECT request in flight: what it offered, to check the answer
/// against.
#[derive(Debug, Clone)]
pub struct ClientHandshake {
    protocols: Vec<String>,
    offer: Option<String>,
    config: Config,
}

/// An RFC 7230 token.
fn is_token(s: &str) -> bool {
    !s.is_empty()
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b))
}

/// Builds an extended CONNECT request (client side) and the [`ClientHandshake`] that checks
/// the answer.
///
/// `uri` is the WebSocket URI: `ws://` becomes an `http` and `wss://` an `https` `:scheme`
/// (RFC 8441 section 5); `http://` and `https://` are taken as they are. `request.host` and
/// `request.path`, when not empty, replace the URI's authority and path; the path defaults to
/// `/`. The request is `CONNECT`, HTTP/2, with `sec-websocket-version: 13`, the offered
/// subprotocols (`request.protocols`, in one `sec-websocket-protocol`), the permessage-deflate
/// offer (when `request.config.compression` is set) and `request.headers`.
///
/// The caller inserts the `:protocol` extension of its HTTP/2 stack before sending, for example
/// `request.extensions_mut().insert(h2::ext::Protocol::from_static("websocket"))`, sends the
/// request without ending the stream, and passes the response to
/// [`ClientHandshake::finish`].
///
/// Errors: [`Error::InvalidUrl`] for a URI without authority or with another scheme or a user
/// name; [`Error::Handshake`] (`MalformedHttp`) for a subprotocol that is not a token or a
/// header that is not valid; [`Error::Usage`] for a config that makes no sense.
pub fn client_request<U: TryInto<Uri>>(
    uri: U,
    request: ClientRequest,
) -> Result<(http::Request<()>, ClientHandshake), Error> {
    let ClientRequest {
        host,
        path,
        protocols,
        headers,
        config,
        ..
    } = request;
    config.core.validate().map_err(Error::from_proto)?;

    let bad = |m: &str| Error::InvalidUrl(UrlError::Malformed(m.to_string()));
    let uri: Uri = uri.try_into().map_err(|_| bad("not a URI"))?;
    let mut parts = uri.into_parts();
    let scheme = parts
        .scheme
        .as_ref()
        .map(|s| s.as_str().to_ascii_lowercase());
    parts.scheme = Some(match scheme.as_deref() {
        Some("ws" | "http") => Scheme::HTTP,
        Some("wss" | "https") => Scheme::HTTPS,
        other => {
            let s = other.unwrap_or_default().to_string();
            return Err(Error::InvalidUrl(UrlError::UnsupportedScheme(s)));
        }
    });
    if !host.is_empty() {
        parts.authority = Some(host.parse().map_err(|_| bad("invalid host"))?);
    }
    match &parts.authority {
        Some(a) if !a.as_str().contains('@') => {}
        Some(_) => return Err(Error::InvalidUrl(UrlError::Credentials)),
        None => return Err(Error::InvalidUrl(UrlError::MissingHost)),
    }
    if !path.is_empty() {
        parts.path_and_query = Some(path.parse().map_err(|_| bad("invalid path"))?);
    }
    if parts
        .path_and_query
        .as_ref()
        .is_none_or(|p| p.as_str().is_empty())
    {
        parts.path_and_query = Some(PathAndQuery::from_static("/"));
    }
    let uri = Uri::from_parts(parts).map_err(|_| bad("not a URI"))?;

    if !protocols.iter().all(|p| is_token(p)) {
        return Err(malformed());
    }
    let offer = config.compression.as_ref().map(deflate_offer).transpose()?;

    let mut req = http::Request::new(());
    *req.method_mut() = Method::CONNECT;
    *req.uri_mut() = uri;
    *req.version_mut() = Version::HTTP_2;
    let fields = req.headers_mut();
    fields.insert(
        SEC_WEBSOCKET_VERSION,
        HeaderValue::from_static(rfc8441::VERSION),
    );
    if !protocols.is_empty() {
        fields.insert(SEC_WEBSOCKET_PROTOCOL, value(&protocols.join(", "))?);
    }
    if let Some(offer) = &offer {
        fields.insert(SEC_WEBSOCKET_EXTENSIONS, value(offer)?);
    }
    append_headers(fields, &headers)?;
    Ok((
        req,
        ClientHandshake {
            protocols,
            offer,
            config,
        },
    ))
}

impl ClientHandshake {
    /// Checks the server's response and returns the [`Upgrade`] for the stream.
    ///
    /// Checks, as [`ws_proto::handshake::http2::parse_response`] and
    /// [`ws_proto::deflate::negotiate_client`] do: the status is 200 ([`Error::Rejected`]
    /// otherwise); the subprotocol, if any, is one that was offered; the extensions are only
    /// the permessage-deflate that was offered, with parameters the offer allows
    /// ([`Error::Handshake`] otherwise).
    pub fn finish<B>(self, response: &http::Response<B>) -> Result<Upgrade, Error> {
        let headers = header_list(response.headers());
        let offered: Vec<&str> = self.protocols.iter().map(String::as_str).collect();
        let res = rfc8441::parse_response(
            response.status().as_u16(),
            &headers,
            &offered,
            self.offer.as_deref(),
        )
        .map_err(|e| match e {
            ws_proto::Error::Handshake(HandshakeError::UnexpectedStatus(status)) => {
                Error::Rejected { status }
            }
            e => Error::from_proto(e),
        })?;
        let negotiated = match &self.config.compression {
            Some(dc) => ws_proto::deflate::negotiate_client(res.extensions(), dc)
                .map_err(Error::from_proto)?,
            None => None,
        };
        let protocol = res.protocol().map(String::from);
        let conn = connection(Role::Client, &self.config, negotiated)?;
        Ok(Upgrade {
            conn,
            config: self.config,
            protocol,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn connect() -> http::Request<()> {
        let mut req = http::Request::new(());
        *req.method_mut() = Method::CONNECT;
        *req.uri_mut() = Uri::from_static("https://example.com/chat");
        req.headers_mut()
            .insert(SEC_WEBSOCKET_VERSION, HeaderValue::from_static("13"));
        req
    }

    #[test]
    fn client_request_shape() {
        let (req, _) = client_request(
            "wss://example.com:8443",
            ClientRequest::default()
                .protocol("chat")
                .header("origin", "https://example.com"),
        )
        .unwrap();
        assert_eq!(req.method(), Method::CONNECT);
        assert_eq!(req.uri(), "https://example.com:8443/");
        assert_eq!(req.headers()["sec-websocket-version"], "13");
        assert_eq!(req.headers()["sec-websocket-protocol"], "chat");
        assert_eq!(req.headers()["origin"], "https://example.com");
        assert!(
            req.headers()["sec-websocket-extensions"]
                .to_str()
                .unwrap()
                .starts_with("permessage-deflate")
        );

        let (req, _) = client_request(
            "ws://a.test/x?y",
            ClientRequest::new("b.test:81", "/z").config(Config {
                compression: None,
                ..Config::default()
            }),
        )
        .unwrap();
        assert_eq!(req.uri(), "http://b.test:81/z");
        assert!(req.headers().get("sec-websocket-extensions").is_none());

        for bad in ["ftp://a.test/", "/relative", "ws://u@a.test/"] {
            let r = client_request(bad, ClientRequest::default());
            assert!(matches!(r, Err(Error::InvalidUrl(_))), "{bad}: {r:?}");
        }
        let r = client_request("ws://a.test/", ClientRequest::default().protocol("a b"));
        assert!(matches!(r, Err(Error::Handshake(_))), "{r:?}");
    }

    #[test]
    fn server_answers() {
        let req = connect();
        let (res, up) = accept(&req, Some("websocket"), Config::default()).unwrap();
        assert_eq!(res.status(), 200);
        assert_eq!(up.role(), Role::Server);
        assert!(!up.compression_enabled());

        let refusal = accept(&req, None, Config::default()).unwrap_err();
        assert_eq!(refusal.response.status(), 400);
        let refusal = accept(&req, Some("webtransport"), Config::default()).unwrap_err();
        assert_eq!(refusal.response.status(), 501);

        let mut old = connect();
        old.headers_mut()
            .insert(SEC_WEBSOCKET_VERSION, HeaderValue::from_static("8"));
        let refusal = accept(&old, Some("websocket"), Config::default()).unwrap_err();
        assert_eq!(refusal.response.status(), 400);
        assert_eq!(refusal.response.headers()["sec-websocket-version"], "13");
        assert!(matches!(
            refusal.error,
            Error::Handshake(HandshakeError::UnsupportedVersion)
        ));

        let refusal = accept_with(&req, Some("websocket"), Config::default(), |_| {
            Err(Reject::status(403).header("x-why", "no").body("go away"))
        })
        .unwrap_err();
        assert_eq!(refusal.response.status(), 403);
        assert_eq!(refusal.response.headers()["x-why"], "no");
        assert_eq!(refusal.body, b"go away");
        assert!(matches!(refusal.error, Error::Rejected { status: 403 }));

        let refusal = accept_with(&req, Some("websocket"), Config::default(), |_| {
            Ok(AcceptResponse::new().protocol("unoffered"))
        })
        .unwrap_err();
        assert_eq!(refusal.response.status(), 500);

        let refusal = accept_with(&req, Some("websocket"), Config::default(), |_| {
            Err(Reject::status(200))
        })
        .unwrap_err();
        assert_eq!(refusal.response.status(), 500);
    }

    #[test]
    fn client_checks_the_answer() {
        let (_, hs) =
            client_request("ws://a.test/", ClientRequest::default().protocol("chat")).unwrap();
        let answer = |status: u16, headers: &[(&'static str, &'static str)]| {
            let mut res = http::Response::new(());
            *res.status_mut() = StatusCode::from_u16(status).unwrap();
            for (n, v) in headers {
                res.headers_mut().append(*n, HeaderValue::from_static(v));
            }
            res
        };
        let up = hs.clone().finish(&answer(200, &[])).unwrap();
        assert_eq!((up.protocol(), up.compression_enabled()), (None, false));
        let up = hs
            .clone()
            .finish(&answer(
                200,
                &[
                    ("sec-websocket-protocol", "chat"),
                    ("sec-websocket-extensions", "permessage-deflate"),
                ],
            ))
            .unwrap();
        assert_eq!(
            (up.protocol(), up.compression_enabled()),
            (Some("chat"), true)
        );
        assert_eq!(up.role(), Role::Client);

        let r = hs.clone().finish(&answer(403, &[]));
        assert!(matches!(r, Err(Error::Rejected { status: 403 })), "{r:?}");
        let r = hs
            .clone()
            .finish(&answer(200, &[("sec-websocket-protocol", "other")]));
        assert!(
            matches!(r, Err(Error::Handshake(HandshakeError::UnofferedProtocol))),
            "{r:?}"
        );
        let r = hs
            .clone()
            .finish(&answer(200, &[("sec-websocket-extensions", "x-other")]));
        assert!(
            matches!(r, Err(Error::Handshake(HandshakeError::UnofferedExtension))),
            "{r:?}"
        );
        let r = hs.finish(&answer(
            200,
            &[("sec-websocket-extensions", "permessage-deflate; bogus")],
        ));
        assert!(
            matches!(r, Err(Error::Handshake(HandshakeError::InvalidExtension))),
            "{r:?}"
        );
    }
}
