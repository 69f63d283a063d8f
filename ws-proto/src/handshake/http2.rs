//! The WebSocket handshake over HTTP/2: extended CONNECT (RFC 8441), both roles. HTTP/3 uses
//! the same handshake (RFC 9220).
//!
//! The HTTP/2 stack parses the headers and owns the stream; these functions check the WebSocket
//! rules on the pseudo-header fields and header fields it delivers, given as the same
//! [`httparse::Header`] slices the HTTP/1.1 functions take. Nothing here allocates.
//!
//! There is no `Sec-WebSocket-Key` or `Sec-WebSocket-Accept`, no `Upgrade` and no `Connection`:
//! the `:protocol` pseudo-header field takes their place (RFC 8441 section 5). `Origin`,
//! `Sec-WebSocket-Version`, `Sec-WebSocket-Protocol` and `Sec-WebSocket-Extensions` mean what
//! they mean over HTTP/1.1, so subprotocols and permessage-deflate are negotiated with the same
//! functions ([`Request::protocols`], [`Request::extensions`], [`crate::deflate`]).
//!
//! Server side: [`parse_request`]; answer 200 with the chosen `sec-websocket-protocol` and
//! `sec-websocket-extensions`, or with [`reject_status`] when it failed.
//!
//! Client side: send a CONNECT request with `:protocol` [`PROTOCOL`], `:scheme`, `:authority`,
//! `:path`, `sec-websocket-version: 13` and the offers, then check the answer with
//! [`parse_response`]. The stream then carries WebSocket frames in both directions.

use httparse::Header;

use super::client::check_choices;
use super::fields::trim_ows_str;
use super::server::{check_offers, check_version};
use super::{Request, Response, hs};
use crate::error::{Error, HandshakeError};

/// The `:protocol` value of a WebSocket extended CONNECT request.
pub const PROTOCOL: &str = "websocket";

/// The WebSocket version this crate speaks: the `sec-websocket-version` a request must carry,
/// and the value to answer a version failure with.
pub const VERSION: &str = "13";

/// The pseudo-header fields of a request (RFC 9113 section 8.3.1, RFC 8441 section 4).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub struct Pseudo<'b> {
    /// `:method`.
    pub method: &'b str,
    /// `:protocol`; absent from requests that are not extended CONNECT.
    pub protocol: Option<&'b str>,
    /// `:authority`: host and optional port.
    pub authority: &'b str,
    /// `:path`: the request target, path and query (for example `/chat?room=1`).
    pub path: &'b str,
}

impl<'b> Pseudo<'b> {
    /// The pseudo-header fields of a request.
    pub const fn new(
        method: &'b str,
        protocol: Option<&'b str>,
        authority: &'b str,
        path: &'b str,
    ) -> Self {
        Pseudo {
            method,
            protocol,
            authority,
            path,
        }
    }
}

/// Parses and validates an extended CONNECT request (server side).
///
/// `headers` are the regular header fields, names in any case. Checks, in order (each failure
/// with its [`HandshakeError`]): the method is `CONNECT` (`MethodNotConnect`); `:protocol` is
/// present (`MissingProtocol`) and is `websocket`, compared case-insensitively
/// (`UnsupportedProtocol`); `:authority` is not empty (`MissingHost`); `:path` is not empty
/// (`MalformedHttp`); no `Connection` or `Upgrade` field, which RFC 8441 section 5 forbids
/// (`MalformedHttp`); exactly one `Sec-WebSocket-Version` and it is `13`
/// (`UnsupportedVersion`); then the `Origin`, `Sec-WebSocket-Protocol` and
/// `Sec-WebSocket-Extensions` checks of [`super::parse_request`]. `Sec-WebSocket-Key` is
/// ignored if present.
///
/// The returned [`Request`] gives the `:authority` as [`host`](Request::host), the `:path` as
/// [`path`](Request::path) and an empty [`key`](Request::key).
pub fn parse_request<'h, 'b>(
    pseudo: &Pseudo<'b>,
    headers: &'h [Header<'b>],
) -> Result<Request<'h, 'b>, Error> {
    use HandshakeError as E;

    if pseudo.method != "CONNECT" {
        return Err(hs(E::MethodNotConnect));
    }
    match pseudo.protocol {
        None => return Err(hs(E::MissingProtocol)),
        Some(p) if !p.eq_ignore_ascii_case(PROTOCOL) => return Err(hs(E::UnsupportedProtocol)),
        Some(_) => {}
    }
    let host = trim_ows_str(pseudo.authority);
    if host.is_empty() {
        return Err(hs(E::MissingHost));
    }
    if pseudo.path.is_empty() {
        return Err(hs(E::MalformedHttp));
    }
    if headers.iter().any(|h| {
        h.name.eq_ignore_ascii_case("Connection") || h.name.eq_ignore_ascii_case("Upgrade")
    }) {
        return Err(hs(E::MalformedHttp));
    }
    check_version(headers)?;
    let origin = check_offers(headers)?;

    Ok(Request {
        headers,
        path: pseudo.path,
        host,
        origin,
        key: b"",
    })
}

/// The HTTP status a server should answer a failed extended CONNECT request with.
///
/// 501 (Not Implemented) for `UnsupportedProtocol`: the server does not implement the protocol
/// asked for. 400 for `UnsupportedVersion`, sent with `sec-websocket-version:` [`VERSION`]
/// (RFC 6455 section 4.4): the 426 of HTTP/1.1 must carry an `Upgrade` field (RFC 9110 section
/// 15.5.22), which HTTP/2 forbids (RFC 9113 section 8.2.2). 400 for a missing `:protocol` or
/// another method. Otherwise as [`super::reject_status`]: 431 for header limits, 500 for
/// `BufferTooSmall`, 400 for the rest.
pub fn reject_status(err: &Error) -> u16 {
    match err {
        Error::Handshake(HandshakeError::UnsupportedProtocol) => 501,
        Error::Handshake(HandshakeError::UnsupportedVersion) => 400,
        e => super::reject_status(e),
    }
}

/// Checks the server's response to an extended CONNECT request (client side).
///
/// `status` is the response status and `headers` its header fields. Checks, in order: the
/// status is 200, as RFC 8441 section 5 requires (`UnexpectedStatus(status)`); then what the
/// server chose, as [`super::parse_response`] does: at most one `Sec-WebSocket-Protocol`
/// (`DuplicateHeader`), exactly one of `offered_protocols` (`UnofferedProtocol`); every
/// `Sec-WebSocket-Extensions` value well-formed (`InvalidExtension`) and naming only extensions
/// in `offered_extensions`, the value the client sent (`UnofferedExtension`). Extension
/// parameters are checked by [`crate::deflate::negotiate_client`], not here.
pub fn parse_response<'h, 'b>(
    status: u16,
    headers: &'h [Header<'b>],
    offered_protocols: &[&str],
    offered_extensions: Option<&str>,
) -> Result<Response<'h, 'b>, Error> {
    if status != 200 {
        return Err(hs(HandshakeError::UnexpectedStatus(status)));
    }
    let protocol = check_choices(headers, offered_protocols, offered_extensions)?;
    Ok(Response {
        headers,
        status,
        protocol,
    })
}

#[cfg(test)]
mod tests;
