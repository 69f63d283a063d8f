//! WebSockets in axum 0.8 (feature `axum`): an extractor with the shape of
//! `axum::extract::ws`, so that switching is an import change, which hands the handler this
//! crate's [`WebSocket`], negotiates permessage-deflate, and answers HTTP/1.1 upgrades and
//! HTTP/2 extended CONNECT (RFC 8441) on the same route.
//!
//! ```diff
//! -use axum::extract::ws::{Message, WebSocket, WebSocketUpgrade};
//! +use ws_tokio::axum::{Message, WebSocket, WebSocketUpgrade};
//! ```
//!
//! ```no_run
//! use axum::{Router, response::Response, routing::any};
//! use ws_tokio::axum::{Message, WebSocket, WebSocketUpgrade};
//!
//! async fn handler(ws: WebSocketUpgrade) -> Response {
//!     ws.protocols(["chat"]).on_upgrade(handle_socket)
//! }
//!
//! async fn handle_socket(mut socket: WebSocket) {
//!     while let Some(Ok(msg)) = socket.recv().await {
//!         if let Message::Text(_) | Message::Binary(_) = msg {
//!             if socket.send(msg).await.is_err() {
//!                 return;
//!             }
//!         }
//!     }
//! }
//!
//! # async fn run() {
//! // `any`: HTTP/1.1 upgrades are GET, HTTP/2 ones CONNECT.
//! let app = Router::new().route("/ws", any(handler));
//! let listener = tokio::net::TcpListener::bind("127.0.0.1:3000").await.unwrap();
//! axum::serve(listener, app).await.unwrap();
//! # }
//! ```
//!
//! What is the same as axum's: [`WebSocketUpgrade`] with `on_upgrade`, `protocols`,
//! `requested_protocols`, `set_selected_protocol`, `selected_protocol`, `max_message_size`,
//! `max_frame_size`, `write_buffer_size` and `on_failed_upgrade`; [`WebSocket`] with `recv`,
//! `send`, `protocol`, `split`, `Stream` and `Sink`; [`Message`], [`CloseFrame`],
//! [`Utf8Bytes`] and [`close_code`] of the same shapes; [`rejection::WebSocketUpgradeRejection`]
//! with axum's variant names. What differs:
//!
//! - The request is checked with the full rules of RFC 6455 and RFC 8441 (as
//!   [`crate::accept_with`] checks it: one `Host`, a valid key, well-formed offers...) and
//!   refused with the statuses of [`ws_proto::handshake::reject_status`] (400, or 426 with
//!   `Sec-WebSocket-Version: 13`) and [`ws_proto::handshake::http2::reject_status`] (400,
//!   501 for another `:protocol`); axum answers a wrong method 405.
//! - Errors are [`crate::Error`]; a close code is a [`CloseCode`], which converts from and to
//!   `u16` and prints as its number.
//! - The connection has keepalive pings, a pong timeout and a bounded write buffer
//!   ([`Config`]), and [`WebSocket::split`] gives halves without a lock on the hot path.
//! - tungstenite's `read_buffer_size`, `max_write_buffer_size` and `accept_unmasked_frames`
//!   do not exist: reads need no fixed buffer, the write buffer has one bound, and a server
//!   must refuse unmasked frames (RFC 6455 section 5.1).
//! - [`WebSocketUpgrade::check`] runs an Origin policy or a bearer-token check (or any
//!   [`accept_with`](crate::accept_with)-style callback) on the request before upgrading.

use std::borrow::Cow;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

use ::axum::extract::FromRequestParts;
use ::axum::response::{IntoResponse, Response};
use ::hyper::upgrade::OnUpgrade;
use futures_core::Stream;
use futures_sink::Sink;
use http::header::HeaderValue;
use http::request::Parts;
use http::{StatusCode, Version};

use crate::config::Config;
use crate::handshake::{AcceptResponse, Reject, Request};
use crate::hyper::{self as glue, Upgraded};
use crate::split::{ReadHalf, WriteHalf};

pub use crate::close_code;
pub use crate::{CloseCode, CloseFrame, DeflateConfig, Error, Message, Utf8Bytes};

/// Extractor for establishing WebSocket connections, as axum's `WebSocketUpgrade`.
///
/// HTTP/1.1 upgrades are `GET` requests and HTTP/2 ones `CONNECT`: route with
/// [`any`](::axum::routing::any) to take both. `axum::serve` enables extended CONNECT on its
/// HTTP/2 connections when axum's `http2` feature is on (this crate's `axum` feature turns it
/// on).
///
/// The connection gets [`Config::default`] (64 MiB messages, 16 MiB frames, pings every 20 s,
/// permessage-deflate with context takeover) unless set otherwise with
/// [`config`](Self::config) or the setters.
#[must_use]
pub struct WebSocketUpgrade<F = DefaultOnFailedUpgrade> {
    config: Config,
    /// The request's method, target, version and header fields.
    head: http::Request<()>,
    /// The `:protocol` of an HTTP/2 request.
    pseudo_protocol: Option<String>,
    /// The subprotocol to answer with.
    protocol: Option<HeaderValue>,
    /// Header fields for the answer, from [`check`](Self::check).
    headers: Vec<(String, Vec<u8>)>,
    on_upgrade: OnUpgrade,
    on_failed_upgrade: F,
}

impl<F> std::fmt::Debug for WebSocketUpgrade<F> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WebSocketUpgrade")
            .field("config", &self.config)
            .field("version", &self.head.version())
            .field("protocol", &self.protocol)
            .finish_non_exhaustive()
    }
}

impl<F> WebSocketUpgrade<F> {
    /// Uses these settings (limits, timers, write buffer, compression).
    pub fn config(mut self, config: Config) -> Self {
        self.config = config;
        self
    }

    /// Sets which `Origin`s may connect. Default: a browser's request whose `Origin` is not
    /// the `Host` it connects to is refused with 403, requests without `Origin` pass (see
    /// [`Config::origin`]).
    pub fn origin(mut self, origin: crate::origin::OriginPolicy<'static>) -> Self {
        self.config.origin = origin;
        self
    }

    /// Sets permessage-deflate: `None` declines every offer, [`DeflateConfig::CONTEXT_TAKEOVER`] keeps a
    /// compressor per connection. Default [`DeflateConfig::DEFAULT`] (no state kept).
    pub fn compression(mut self, compression: Option<DeflateConfig>) -> Self {
        self.config.compression = compression;
        self
    }

    /// Sets the largest message, after inflating (default 64 MiB); the frame limit is lowered
    /// to it if it was larger.
    pub fn max_message_size(mut self, max: usize) -> Self {
        self.config = self.config.with_max_message_size(max as u64);
        self
    }

    /// Sets the largest frame (default 16 MiB).
    pub fn max_frame_size(mut self, max: usize) -> Self {
        self.config = self.config.with_max_frame_size(max as u64);
        self
    }

    /// Sets how many bytes the write buffer holds before sending waits for it to drain
    /// (default 128 KiB; at least 1, so axum's `0` means "wait whenever anything is queued").
    /// Every send is written out at once; a message larger than the buffer is still taken
    /// when the buffer is empty.
    pub fn write_buffer_size(mut self, size: usize) -> Self {
        self.config.write_buffer_size = size.max(1);
        self
    }

    /// Chooses the first of `protocols` (in this order of preference) that the client
    /// offered; none when it offered none of them.
    pub fn protocols<I>(mut self, protocols: I) -> Self
    where
        I: IntoIterator,
        I::Item: Into<Cow<'static, str>>,
    {
        let offered = self.requested();
        self.protocol = protocols
            .into_iter()
            .map(Into::into)
            .find(|p| offered.iter().any(|o| o == p))
            .and_then(|p| HeaderValue::from_str(&p).ok());
        self
    }

    /// The subprotocols the client offered, in its order.
    pub fn requested_protocols(&self) -> impl Iterator<Item = HeaderValue> + use<F> {
        self.requested()
            .into_iter()
            .filter_map(|p| HeaderValue::from_str(&p).ok())
    }

    fn requested(&self) -> Vec<String> {
        glue::with_request(&self.head, self.pseudo_protocol.as_deref(), |r| {
            r.protocols().map(str::to_owned).collect()
        })
        .unwrap_or_default()
    }

    /// Chooses this subprotocol. It must be one the client offered, or the upgrade is
    /// answered with 500. The later of this and [`protocols`](Self::protocols) counts.
    pub fn set_selected_protocol(&mut self, protocol: HeaderValue) {
        self.protocol = Some(protocol);
    }

    /// The chosen subprotocol, if any.
    pub fn selected_protocol(&self) -> Option<&HeaderValue> {
        self.protocol.as_ref()
    }

    /// The request's HTTP version: HTTP/1.1 for an upgrade, HTTP/2 for an extended CONNECT.
    pub fn version(&self) -> Version {
        self.head.version()
    }

    /// Runs `check` on the request (path, host, Origin, headers, offered subprotocols, as
    /// [`accept_with`](crate::accept_with)'s callback sees them): its [`AcceptResponse`]
    /// chooses the subprotocol (when it names one) and adds response headers; its [`Reject`]
    /// becomes the response (return it from the handler, it is [`IntoResponse`]).
    ///
    /// With [`crate::auth`]'s helpers, an Origin policy and a bearer token:
    ///
    /// ```
    /// use axum::response::Response;
    /// use ws_tokio::Reject;
    /// use ws_tokio::auth::{BearerAuth, check_origin};
    /// use ws_tokio::axum::WebSocketUpgrade;
    /// use ws_tokio::origin::OriginPolicy;
    ///
    /// async fn handler(ws: WebSocketUpgrade) -> Result<Response, Reject> {
    ///     let origins = OriginPolicy::new().with_allowed(&["https://app.example.com"]);
    ///     let auth = BearerAuth::default().with_query("access_token");
    ///     let ws = ws.check(|req| {
    ///         check_origin(&origins, req)?;
    ///         auth.authorize_token(req, b"s3cret-token")
    ///     })?;
    ///     Ok(ws.on_upgrade(|socket| async move { drop(socket) }))
    /// }
    /// ```
    pub fn check<C>(mut self, check: C) -> Result<Self, Reject>
    where
        C: FnOnce(&Request<'_, '_>) -> Result<AcceptResponse, Reject>,
    {
        let answer = glue::with_request(&self.head, self.pseudo_protocol.as_deref(), check)
            .map_err(|e| Reject::status(500).body(format!("{e}\n")))??;
        if let Some(p) = answer.protocol {
            self.protocol = Some(HeaderValue::from_str(&p).map_err(|_| Reject::status(500))?);
        }
        self.headers.extend(answer.headers);
        Ok(self)
    }

    /// Calls `callback` with the error when the upgrade fails after the response: the
    /// connection was not handed over (the client went away first), or the answer could not
    /// be made (a chosen subprotocol the client did not offer, a config that makes no sense;
    /// the response is then a 500). By default errors are dropped.
    pub fn on_failed_upgrade<C>(self, callback: C) -> WebSocketUpgrade<C>
    where
        C: OnFailedUpgrade,
    {
        WebSocketUpgrade {
            config: self.config,
            head: self.head,
            pseudo_protocol: self.pseudo_protocol,
            protocol: self.protocol,
            headers: self.headers,
            on_upgrade: self.on_upgrade,
            on_failed_upgrade: callback,
        }
    }

    /// Answers the request (101 for HTTP/1.1, 200 for HTTP/2, with the chosen subprotocol
    /// and permessage-deflate) and, once hyper hands over the connection, calls `callback`
    /// with the [`WebSocket`] in a task of its own.
    #[must_use = "to set up the WebSocket connection, this response must be returned"]
    pub fn on_upgrade<C, Fut>(self, callback: C) -> Response
    where
        C: FnOnce(WebSocket) -> Fut + Send + 'static,
        Fut: Future<Output = ()> + Send + 'static,
        F: OnFailedUpgrade,
    {
        // A value that is not text cannot match an offer: the answer is then a 500.
        let protocol = self
            .protocol
            .as_ref()
            .map(|p| String::from_utf8_lossy(p.as_bytes()).into_owned());
        let answer = AcceptResponse {
            protocol,
            headers: self.headers,
            extensions: Default::default(),
        };
        let accepted = glue::respond(
            &self.head,
            self.pseudo_protocol.as_deref(),
            self.config,
            |_| Ok(answer),
        );
        let (response, ready) = match accepted {
            Ok(accepted) => accepted,
            Err(refusal) => {
                let refusal = *refusal;
                let response = refusal_response(refusal.response, refusal.body);
                self.on_failed_upgrade.call(refusal.error);
                return response;
            }
        };
        let on_upgrade = self.on_upgrade;
        let on_failed_upgrade = self.on_failed_upgrade;
        let protocol = self.protocol;
        tokio::spawn(async move {
            let upgraded = match on_upgrade.await {
                Ok(upgraded) => upgraded,
                Err(e) => {
                    on_failed_upgrade.call(glue::upgrade_failed(e));
                    return;
                }
            };
            let inner = ready.into_websocket(hyper_util::rt::TokioIo::new(upgraded));
            callback(WebSocket { inner, protocol }).await;
        });
        response.map(|()| ::axum::body::Body::empty())
    }
}

fn refusal_response(response: http::Response<()>, body: Vec<u8>) -> Response {
    let (parts, ()) = response.into_parts();
    Response::from_parts(parts, ::axum::body::Body::from(body))
}

impl<S> FromRequestParts<S> for WebSocketUpgrade<DefaultOnFailedUpgrade>
where
    S: Send + Sync,
{
    type Rejection = rejection::WebSocketUpgradeRejection;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        let pseudo_protocol = parts
            .extensions
            .get::<::hyper::ext::Protocol>()
            .map(|p| p.as_str().to_owned());
        let mut head = http::Request::new(());
        *head.method_mut() = parts.method.clone();
        *head.uri_mut() = parts.uri.clone();
        *head.version_mut() = parts.version;
        *head.headers_mut() = parts.headers.clone();
        glue::with_request(&head, pseudo_protocol.as_deref(), |_| ())
            .map_err(|e| rejection::WebSocketUpgradeRejection::from_core(e, parts.version))?;
        let on_upgrade = parts
            .extensions
            .remove::<OnUpgrade>()
            .ok_or(rejection::WebSocketUpgradeRejection::ConnectionNotUpgradable)?;
        Ok(WebSocketUpgrade {
            config: Config::default(),
            head,
            pseudo_protocol,
            protocol: None,
            headers: Vec::new(),
            on_upgrade,
            on_failed_upgrade: DefaultOnFailedUpgrade,
        })
    }
}

/// What to do when an upgrade fails, as axum's trait of that name; any
/// `FnOnce(Error) + Send + 'static` is one.
pub trait OnFailedUpgrade: Send + 'static {
    /// Called with the error.
    fn call(self, error: Error);
}

impl<F> OnFailedUpgrade for F
where
    F: FnOnce(Error) + Send + 'static,
{
    fn call(self, error: Error) {
        self(error)
    }
}

/// The default [`OnFailedUpgrade`]: drops the error.
#[non_exhaustive]
#[derive(Debug)]
pub struct DefaultOnFailedUpgrade;

impl OnFailedUpgrade for DefaultOnFailedUpgrade {
    fn call(self, _error: Error) {}
}

/// A WebSocket connection handed to [`WebSocketUpgrade::on_upgrade`]'s callback: this crate's
/// [`crate::WebSocket`] over the upgraded connection, and the chosen subprotocol.
///
/// It derefs to [`crate::WebSocket`] for the rest of its methods
/// ([`feed`](crate::WebSocket::feed), [`flush`](crate::WebSocket::flush),
/// [`close`](crate::WebSocket::close), [`compression_enabled`](crate::WebSocket::compression_enabled), ...).
#[derive(Debug)]
pub struct WebSocket {
    inner: crate::WebSocket<Upgraded>,
    protocol: Option<HeaderValue>,
}

impl WebSocket {
    /// Receives the next message; `None` once the connection has closed. See
    /// [`crate::WebSocket::recv`].
    pub async fn recv(&mut self) -> Option<Result<Message, Error>> {
        self.inner.recv().await
    }

    /// Sends a message and flushes it. See [`crate::WebSocket::send`].
    pub async fn send(&mut self, msg: Message) -> Result<(), Error> {
        self.inner.send(msg).await
    }

    /// The chosen subprotocol, if any.
    pub fn protocol(&self) -> Option<&HeaderValue> {
        self.protocol.as_ref()
    }

    /// Splits into a write half and a read half for different tasks, in the order of
    /// `futures`' `StreamExt::split` (sink first). See [`crate::WebSocket::split`].
    pub fn split(self) -> (WriteHalf<Upgraded>, ReadHalf<Upgraded>) {
        self.inner.split()
    }

    /// The connection without the subprotocol.
    pub fn into_inner(self) -> crate::WebSocket<Upgraded> {
        self.inner
    }
}

impl std::ops::Deref for WebSocket {
    type Target = crate::WebSocket<Upgraded>;

    fn deref(&self) -> &Self::Target {
        &self.inner
    }
}

impl std::ops::DerefMut for WebSocket {
    fn deref_mut(&mut self) -> &mut Self::Target {
        &mut self.inner
    }
}

impl Stream for WebSocket {
    type Item = Result<Message, Error>;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        self.get_mut().inner.poll_recv(cx)
    }
}

impl Sink<Message> for WebSocket {
    type Error = Error;

    fn poll_ready(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Result<(), Error>> {
        Pin::new(&mut self.get_mut().inner).poll_ready(cx)
    }

    fn start_send(self: Pin<&mut Self>, item: Message) -> Result<(), Error> {
        Pin::new(&mut self.get_mut().inner).start_send(item)
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Result<(), Error>> {
        Pin::new(&mut self.get_mut().inner).poll_flush(cx)
    }

    fn poll_close(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Result<(), Error>> {
        Pin::new(&mut self.get_mut().inner).poll_close(cx)
    }
}

/// A refusal from [`WebSocketUpgrade::check`] (or [`crate::accept_with`]-style callbacks) as
/// a response: its status, headers and body; one that cannot be sent (a status under 300, a
/// bad header) becomes a 500.
impl IntoResponse for Reject {
    fn into_response(self) -> Response {
        let status = StatusCode::from_u16(self.status)
            .ok()
            .filter(|s| s.as_u16() >= 300);
        let Some(status) = status else {
            return StatusCode::INTERNAL_SERVER_ERROR.into_response();
        };
        let mut response = Response::new(::axum::body::Body::from(self.body));
        *response.status_mut() = status;
        for (name, value) in self.headers {
            let (Ok(name), Ok(value)) = (
                http::HeaderName::from_bytes(name.as_bytes()),
                HeaderValue::from_bytes(&value),
            ) else {
                return StatusCode::INTERNAL_SERVER_ERROR.into_response();
            };
            response.headers_mut().append(name, value);
        }
        response
    }
}

pub mod rejection {
    //! Why [`WebSocketUpgrade`](super::WebSocketUpgrade) refused a request, with axum's names.

    use ::axum::response::{IntoResponse, Response};
    use http::header::{CONNECTION, HeaderValue, SEC_WEBSOCKET_VERSION, UPGRADE};
    use http::{StatusCode, Version};
    use ws_proto::HandshakeError;

    /// The rejection of [`WebSocketUpgrade`](super::WebSocketUpgrade): one variant per way a
    /// request can fail, each an [`IntoResponse`] with the status of
    /// [`status`](Self::status) and a text body.
    #[derive(Debug, Clone, Copy, PartialEq, Eq)]
    #[non_exhaustive]
    pub enum WebSocketUpgradeRejection {
        /// An HTTP/1.1 request whose method is not `GET`: 400.
        MethodNotGet,
        /// An HTTP/2 request whose method is not `CONNECT`: 400.
        MethodNotConnect,
        /// `Connection` does not list `upgrade`: 400.
        InvalidConnectionHeader,
        /// `Upgrade` does not list `websocket`: 400.
        InvalidUpgradeHeader,
        /// An HTTP/2 `CONNECT` without `:protocol` (400) or with one other than `websocket`
        /// (501).
        InvalidProtocolPseudoheader {
            /// Whether a `:protocol` was there (another protocol than `websocket`).
            present: bool,
        },
        /// `Sec-WebSocket-Version` is missing, repeated or not 13: 426 (HTTP/1.1) or 400
        /// (HTTP/2), with `Sec-WebSocket-Version: 13`.
        InvalidWebSocketVersionHeader {
            /// Whether the request was HTTP/2 or later.
            http2: bool,
        },
        /// `Sec-WebSocket-Key` is missing, repeated or not 16 bytes of base64: 400.
        WebSocketKeyHeaderMissing,
        /// The request cannot be upgraded: HTTP/1.0, or no hyper upgrade handle (a
        /// connection served without upgrades): 426.
        ConnectionNotUpgradable,
        /// Another rule of RFC 6455 or RFC 8441 broken (no `Host`, a repeated `Origin`,
        /// malformed offers...): 400.
        InvalidRequest(HandshakeError),
    }

    impl WebSocketUpgradeRejection {
        /// The core's verdict on a request of `version`.
        pub(crate) fn from_core(e: ws_proto::Error, version: Version) -> Self {
            use HandshakeError as E;
            let http2 = version > Version::HTTP_11;
            let ws_proto::Error::Handshake(h) = e else {
                return Self::InvalidRequest(HandshakeError::MalformedHttp);
            };
            match h {
                E::MethodNotGet => Self::MethodNotGet,
                E::MethodNotConnect => Self::MethodNotConnect,
                E::HttpVersion => Self::ConnectionNotUpgradable,
                E::MissingConnectionUpgrade => Self::InvalidConnectionHeader,
                E::MissingUpgrade => Self::InvalidUpgradeHeader,
                E::MissingProtocol => Self::InvalidProtocolPseudoheader { present: false },
                E::UnsupportedProtocol => Self::InvalidProtocolPseudoheader { present: true },
                E::UnsupportedVersion => Self::InvalidWebSocketVersionHeader { http2 },
                E::InvalidKey => Self::WebSocketKeyHeaderMissing,
                other => Self::InvalidRequest(other),
            }
        }

        /// The HTTP status of the answer.
        pub fn status(&self) -> StatusCode {
            match self {
                Self::InvalidProtocolPseudoheader { present: true } => StatusCode::NOT_IMPLEMENTED,
                Self::InvalidWebSocketVersionHeader { http2: false }
                | Self::ConnectionNotUpgradable => StatusCode::UPGRADE_REQUIRED,
                _ => StatusCode::BAD_REQUEST,
            }
        }

        /// The text of the answer's body.
        pub fn body_text(&self) -> String {
            match self {
                Self::MethodNotGet => "Request method must be `GET`".into(),
                Self::MethodNotConnect => "Request method must be `CONNECT`".into(),
                Self::InvalidConnectionHeader => {
                    "Connection header did not include 'upgrade'".into()
                }
                Self::InvalidUpgradeHeader => "`Upgrade` header did not include 'websocket'".into(),
                Self::InvalidProtocolPseudoheader { .. } => {
                    "`:protocol` pseudo-header did not include 'websocket'".into()
                }
                Self::InvalidWebSocketVersionHeader { .. } => {
                    "`Sec-WebSocket-Version` header did not include '13'".into()
                }
                Self::WebSocketKeyHeaderMissing => {
                    "`Sec-WebSocket-Key` header missing or not valid".into()
                }
                Self::ConnectionNotUpgradable => {
                    "WebSocket request couldn't be upgraded since no upgrade state was present"
                        .into()
                }
                Self::InvalidRequest(e) => format!("Not a valid WebSocket request: {e:?}"),
            }
        }
    }

    impl std::fmt::Display for WebSocketUpgradeRejection {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.write_str(&self.body_text())
        }
    }

    impl std::error::Error for WebSocketUpgradeRejection {}

    impl IntoResponse for WebSocketUpgradeRejection {
        fn into_response(self) -> Response {
            let status = self.status();
            let mut response = (status, self.body_text()).into_response();
            let headers = response.headers_mut();
            if let Self::InvalidWebSocketVersionHeader { .. } = self {
                headers.insert(SEC_WEBSOCKET_VERSION, HeaderValue::from_static("13"));
            }
            if status == StatusCode::UPGRADE_REQUIRED {
                // RFC 9110 section 15.5.22: a 426 names the protocol to upgrade to.
                headers.insert(UPGRADE, HeaderValue::from_static("websocket"));
                headers.insert(CONNECTION, HeaderValue::from_static("upgrade"));
            }
            response
        }
    }
}
