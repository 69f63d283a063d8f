//! `ws-tokio`: a thin tokio adapter over the `ws-proto` WebSocket core.
//!
//! All protocol logic lives in `ws-proto`; this crate moves bytes and time:
//!
//! - servers: [`accept`], [`accept_with`] (inspect the request; accept with a subprotocol and
//!   headers, or reject with a status);
//! - clients: [`connect`] for `ws://` (and `wss://` with the `rustls` feature), and [`client`]
//!   over any `AsyncRead + AsyncWrite` transport;
//! - messages on `bytes`: [`Message`], [`Utf8Bytes`], [`CloseFrame`], in the shapes of
//!   tokio-tungstenite and axum;
//! - streams whose handshake was done elsewhere: [`WebSocket::from_upgraded`] (an HTTP/2
//!   extended CONNECT stream, a hyper `Upgraded`), and with the `http` feature the `http2`
//!   module for the RFC 8441 handshake on the `http` crate's types;
//! - [`WebSocket`]: cancel-safe [`recv`](WebSocket::recv) / [`send`](WebSocket::send), `Stream`
//!   and `Sink`, [`split`](WebSocket::split) into halves, keepalive pings, timeouts and a
//!   bounded write buffer. The close handshake and every deadline are decided by the
//!   `ws-proto` core; this crate carries its decisions out.
//! - with the `hyper` feature, `hyper::upgrade` for hyper 1 servers, and with the `axum`
//!   feature the `axum::WebSocketUpgrade` extractor, a drop-in for `axum::extract::ws` with
//!   permessage-deflate; both answer HTTP/1.1 upgrades and HTTP/2 extended CONNECT;
//! - [`serve()`]: the accept loop, with connection caps (total and per IP, answered with 503),
//!   handshake deadlines, backoff on `EMFILE`, and graceful shutdown with 1001;
//! - with the `load` feature, `load`: the load generator behind the `ws bench` command (echo,
//!   pipelined, handshakes, idle memory, a k6-style scenario) and its k6 metrics;
//! - [`proxy`]: HTTP `CONNECT` and SOCKS5 proxies, set in [`ClientRequest::proxy`] or taken
//!   from `https_proxy` / `http_proxy` / `all_proxy` / `no_proxy`; `tls` (feature `rustls`):
//!   client roots and certificates, the server's configuration from PEM files;
//!   [`reconnect`]: a client that reconnects with backoff and queues what is sent meanwhile.
//! - [`auth`]: bearer tokens (header, query, subprotocol) and [`origin`] checks for
//!   [`accept_with`].
//!
//! ```no_run
//! # async fn run() -> Result<(), ws_tokio::Error> {
//! let listener = tokio::net::TcpListener::bind("127.0.0.1:9001").await?;
//! let (tcp, _) = listener.accept().await?;
//! let mut ws = ws_tokio::accept(tcp).await?;
//! while let Some(msg) = ws.recv().await {
//!     match msg? {
//!         m @ (ws_tokio::Message::Text(_) | ws_tokio::Message::Binary(_)) => ws.send(m).await?,
//!         _ => {}
//!     }
//! }
//! # Ok(()) }
//! ```

pub mod auth;
#[cfg(feature = "axum")]
pub mod axum;
mod config;
mod connect;
mod engine;
mod error;
mod handshake;
#[cfg(feature = "http")]
pub mod http2;
#[cfg(feature = "hyper")]
pub mod hyper;
#[cfg(feature = "load")]
pub mod load;
pub mod proxy;
pub mod reconnect;
pub mod serve;
mod split;
mod time;
#[cfg(feature = "rustls")]
pub mod tls;
pub mod topics;
mod upgraded;
mod websocket;

pub use config::Config;
pub use connect::{MaybeTlsStream, connect, connect_async, connect_request, connect_with_config};
pub use error::{Error, UrlError};
pub use handshake::{
    AcceptResponse, ClientRequest, Reject, Request, Response, accept, accept_async, accept_with,
    accept_with_config, client,
};
pub use serve::{ConnInfo, Listener, Serve, ServeConfig, Shutdown, serve};
pub use split::{ReadHalf, WriteHalf};
#[cfg(feature = "rustls")]
pub use tls::default_tls_config;
pub use websocket::{PreparedSink, WebSocket};
pub use ws_proto::bytes::Bytes;
pub use ws_proto::deflate::{self, DeflateConfig};
pub use ws_proto::origin;
pub use ws_proto::{
    CloseCode, CloseFrame, HandshakeError, Limit, Limits, Message, PreparedMessage, ProtocolError,
    Role, State, TimeoutKind, Usage, Utf8Bytes,
};

/// Close codes as `u16`-valued constants of [`CloseCode`], under the names axum uses
/// (`close_code::NORMAL`, ...).
pub mod close_code {
    use crate::CloseCode;

    /// 1000: normal closure.
    pub const NORMAL: CloseCode = CloseCode::NORMAL;
    /// 1001: the endpoint is going away.
    pub const AWAY: CloseCode = CloseCode::GOING_AWAY;
    /// 1002: protocol error.
    pub const PROTOCOL: CloseCode = CloseCode::PROTOCOL_ERROR;
    /// 1003: a data type the endpoint cannot accept.
    pub const UNSUPPORTED: CloseCode = CloseCode::UNSUPPORTED_DATA;
    /// 1005: no status code was present (never sent).
    pub const STATUS: CloseCode = CloseCode::NO_STATUS;
    /// 1006: closed abnormally (never sent).
    pub const ABNORMAL: CloseCode = CloseCode::ABNORMAL;
    /// 1007: data inconsistent with the message type.
    pub const INVALID: CloseCode = CloseCode::INVALID_PAYLOAD;
    /// 1008: policy violation.
    pub const POLICY: CloseCode = CloseCode::POLICY_VIOLATION;
    /// 1009: message too big.
    pub const SIZE: CloseCode = CloseCode::MESSAGE_TOO_BIG;
    /// 1010: an extension the client expected was not negotiated.
    pub const EXTENSION: CloseCode = CloseCode::MANDATORY_EXTENSION;
    /// 1011: internal server error.
    pub const ERROR: CloseCode = CloseCode::INTERNAL_ERROR;
    /// 1012: service restart.
    pub const RESTART: CloseCode = CloseCode::SERVICE_RESTART;
    /// 1013: try again later.
    pub const AGAIN: CloseCode = CloseCode::TRY_AGAIN_LATER;
}
