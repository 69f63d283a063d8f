//! The HTTP/1.1 opening handshake (RFC 6455 section 4), both roles.
//!
//! Nothing here allocates: heads are parsed in place with [`httparse`] into a caller-provided
//! header array, and responses and requests are written into caller-provided byte slices.
//!
//! Server side: feed received bytes to a [`HeadScanner`] until it reports the head length, then
//! [`parse_request`] the head and answer with [`write_accept`], or with [`write_reject`] and
//! [`reject_status`] when parsing failed.
//!
//! Client side: [`generate_key`], [`write_request`], then scan the response head with a
//! [`HeadScanner`] and check it with [`parse_response`]. Bytes after the head are frame data.
//!
//! [`http2`] checks the HTTP/2 extended CONNECT handshake (RFC 8441) for both roles.

use crate::error::{Error, HandshakeError};

mod client;
pub(crate) mod extension;
mod fields;
mod key;
mod parsed;
mod scan;
mod server;
pub(crate) mod write;

pub mod http2;

pub use client::{ClientRequest, Response, parse_response, write_request};
pub use fields::has_token;
pub use key::{GUID, accept_key, generate_key};
pub use parsed::parse_request_fields;
pub use scan::HeadScanner;
pub use server::{Accept, Request, parse_request, reject_status, write_accept, write_reject};

// What the tests reach through `use super::*`.
#[cfg(test)]
use {crate::error::Limit, key::valid_key};

/// Shorthand for a handshake error.
const fn hs(e: HandshakeError) -> Error {
    Error::Handshake(e)
}

#[cfg(test)]
mod tests;
