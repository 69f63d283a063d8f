//! `ws-proto`: a sans-IO, `no_std` implementation of the WebSocket protocol (RFC 6455).
//!
//! Bytes in, events out. The crate never owns a socket, a clock or a random source:
//!
//! - [`Connection::receive`] takes bytes read from the transport, unmasks them in place and
//!   returns `(consumed, Option<Event>)`; events borrow the input buffer.
//!   [`Connection::receive_into`] instead unmasks data payloads while copying them into caller
//!   memory, for callers that move them out of the read buffer anyway.
//! - [`Connection::encode_frame`] / [`Connection::frame_header`] write frames into caller memory,
//!   and [`Connection::poll_transmit`] drains the replies the protocol obliges (pong, close echo,
//!   keepalive ping).
//! - [`Connection::handle_timeout`] / [`Connection::poll_timeout`] take time as plain
//!   milliseconds.
//! - [`handshake`] parses and writes the HTTP/1.1 opening handshake for both roles.
//!
//! With the `alloc` feature, [`MessageAssembler`] turns events into whole owned [`Message`]s
//! ([`MessageAssembler::receive`] takes bytes and unmasks payloads straight into the message).
#![no_std]
#![cfg_attr(docsrs, feature(doc_cfg))]

#[cfg(feature = "alloc")]
extern crate alloc;
#[cfg(test)]
extern crate std;

pub mod close;
pub mod config;
pub mod conn;
pub mod deflate;
pub mod error;
pub mod frame;
pub mod handshake;
pub mod limits;
pub mod mask;
#[cfg(feature = "alloc")]
pub mod message;
pub mod origin;
#[cfg(feature = "alloc")]
pub mod prepared;
pub mod rate;
pub mod utf8;

#[cfg(feature = "alloc")]
pub use bytes;
pub use close::CloseCode;
pub use config::Config;
pub use conn::{
    Connection, Control, ControlFrame, DataKind, Event, Role, Sender, SharedCompression, State,
};
pub use error::{Error, HandshakeError, Limit, ProtocolError, TimeoutKind, Usage};
pub use frame::{FrameHeader, HeaderBuf, OpCode};
pub use limits::Limits;
#[cfg(feature = "alloc")]
pub use message::{CloseFrame, Message, MessageAssembler, Utf8Bytes};
#[cfg(feature = "alloc")]
pub use prepared::PreparedMessage;
