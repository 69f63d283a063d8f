//! `ws-tokio`: a thin tokio adapter over the `ws-proto` WebSocket core.
//!
//! All protocol logic lives in `ws-proto`; this crate moves bytes and time:
//!
//! - servers: [`accept`], [`accept_with`] (inspect the request; accept with a subprotocol and
//!   headers, or reject with a status);
//! - clients: [`connect`] for `ws://` (and `wss://` with the `rustls` feature), and [`client`]
//!   over any `AsyncRead + AsyncWrite` transport;
//! - streams whose handshake was done elsewhere: [`WebSocket::from_upgraded`] (an HTTP/2
//!   extended CONNECT stream, a hyper `Upgraded`), and with the `http` feature the `http2`
//!   module for the RFC 8441 handshake on the `http` crate's types;
//! - [`WebSocket`]: cancel-safe [`recv`](WebSocket::recv) / [`send`](WebSocket::send), `Stream`
//!   and `Sink`, [`split`](WebSocket::split) into halves, keepalive pings, timeouts and a
//!   bounded write buffer.
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

mod config;
mod error;
mod handshake;
#[cfg(feature = "http")]
pub mod http2;
pub mod proxy;
mod split;
mod time;
#[cfg(feature = "rustls")]
mod tls;
mod upgraded;
mod ws;

pub use config::Config;
pub use error::{Error, TimeoutKind};
pub use handshake::{
    AcceptResponse, ClientRequest, Reject, Request, Response, accept, accept_with,
    accept_with_config, client, connect, connect_request, connect_with_config,
};
pub use split::{ReadHalf, WriteHalf};
#[cfg(feature = "rustls")]
pub use tls::{MaybeTlsStream, connect_tls, default_tls_config};
pub use ws::WebSocket;
pub use ws_proto::deflate;
pub use ws_proto::deflate::DeflateConfig;
pub use ws_proto::{CloseCode, Limits, Message, Role};
