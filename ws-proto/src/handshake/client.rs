//! The client side: writing the opening request, and checking the server's response.

use httparse::Header;

use super::extension::{Extension, header_items, items, valid_list};
use super::fields::{
    check_parsed, check_upgrade, first_header, is_token, named, trim_ows, unique_header,
};
use super::hs;
use super::key::{accept_key, valid_key};
use super::write::{Writer, check_tail};
use crate::error::{Error, HandshakeError};

/// What a client sends in its opening request.
///
/// ```
/// use ws_proto::handshake::{ClientRequest, generate_key, write_request};
///
/// let key = generate_key([7; 16]);
/// let req = ClientRequest::new("example.com", "/chat", &key).with_protocols(&["chat"]);
/// let mut out = [0u8; 512];
/// let n = write_request(&mut out, &req).unwrap();
/// assert!(out[..n].starts_with(b"GET /chat HTTP/1.1\r\n"));
/// ```
#[derive(Debug, Clone, Copy)]
#[non_exhaustive]
pub struct ClientRequest<'a> {
    /// The `Host` value (for example `example.com:8080`).
    pub host: &'a str,
    /// The request target (for example `/chat?room=1`).
    pub path: &'a str,
    /// The `Sec-WebSocket-Key`, as made by [`generate_key`](super::generate_key).
    pub key: &'a [u8],
    /// Offered subprotocols (tokens), joined with `, ` into one header; none when empty.
    pub protocols: &'a [&'a str],
    /// The `Sec-WebSocket-Extensions` offer (omitted when `None` or empty).
    pub extensions: Option<&'a str>,
    /// Further header fields, written after the others in order.
    pub extra_headers: &'a [(&'a str, &'a [u8])],
}

impl<'a> ClientRequest<'a> {
    /// A request for `path` on `host` with `key`, offering nothing and with no extra headers.
    pub const fn new(host: &'a str, path: &'a str, key: &'a [u8]) -> Self {
        ClientRequest {
            host,
            path,
            key,
            protocols: &[],
            extensions: None,
            extra_headers: &[],
        }
    }

    /// Offers these subprotocols.
    pub const fn with_protocols(mut self, protocols: &'a [&'a str]) -> Self {
        self.protocols = protocols;
        self
    }

    /// Offers these extensions (the `Sec-WebSocket-Extensions` value).
    pub const fn with_extensions(mut self, extensions: Option<&'a str>) -> Self {
        self.extensions = extensions;
        self
    }

    /// Adds these header fields.
    pub const fn with_headers(mut self, headers: &'a [(&'a str, &'a [u8])]) -> Self {
        self.extra_headers = headers;
        self
    }
}

/// True for a non-empty string of visible ASCII (no spaces, controls or non-ASCII bytes).
fn is_visible_ascii(s: &str) -> bool {
    !s.is_empty() && s.bytes().all(|b| b.is_ascii_graphic())
}

/// Writes a client opening request: `GET {path} HTTP/1.1` with `Host`, `Upgrade: websocket`,
/// `Connection: Upgrade`, `Sec-WebSocket-Key`, `Sec-WebSocket-Version: 13`, the offered
/// protocols and extensions, and the extra headers. Returns the number of bytes written.
///
/// Errors: `Error::Handshake(HandshakeError::InvalidKey)` when `key` is not 24 base64 characters
/// decoding to 16 bytes; `Error::Handshake(HandshakeError::MalformedHttp)` when `path` or `host`
/// is empty or has anything but visible ASCII, a protocol or header name is not a token, or a
/// value contains CR, LF or NUL; `Error::BufferTooSmall` when `out` is too short. On error the
/// contents of `out` are unspecified.
pub fn write_request(out: &mut [u8], req: &ClientRequest<'_>) -> Result<usize, Error> {
    if !valid_key(req.key) {
        return Err(hs(HandshakeError::InvalidKey));
    }
    if !is_visible_ascii(req.path)
        || !is_visible_ascii(req.host)
        || !req.protocols.iter().all(|p| is_token(p.as_bytes()))
    {
        return Err(hs(HandshakeError::MalformedHttp));
    }
    check_tail(req.extensions, req.extra_headers)?;

    let mut w = Writer::new(out);
    w.put(b"GET ")?;
    w.put(req.path.as_bytes())?;
    w.put(b" HTTP/1.1\r\n")?;
    w.header(b"Host", req.host.as_bytes())?;
    w.upgrade()?;
    w.header(b"Sec-WebSocket-Key", req.key)?;
    w.header(b"Sec-WebSocket-Version", b"13")?;
    if let Some((first, rest)) = req.protocols.split_first() {
        w.put(b"Sec-WebSocket-Protocol: ")?;
        w.put(first.as_bytes())?;
        for protocol in rest {
            w.put(b", ")?;
            w.put(protocol.as_bytes())?;
        }
        w.put(b"\r\n")?;
    }
    w.tail(req.extensions, req.extra_headers)?;
    Ok(w.finish())
}

/// A validated `101 Switching Protocols` response (client side); borrows the head bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Response<'h, 'b> {
    pub(super) headers: &'h [Header<'b>],
    pub(super) status: u16,
    pub(super) protocol: Option<&'b str>,
}

impl<'h, 'b> Response<'h, 'b> {
    /// The status code (always 101 for a response that passed [`parse_response`], 200 for one
    /// that passed [`http2::parse_response`](super::http2::parse_response)).
    pub fn status(&self) -> u16 {
        self.status
    }

    /// The subprotocol the server chose, if any (one of those offered).
    pub fn protocol(&self) -> Option<&'b str> {
        self.protocol
    }

    /// The accepted extensions from every `Sec-WebSocket-Extensions` header, in order: one item
    /// per extension including its `;` parameters, split on commas outside quoted strings,
    /// trimmed.
    pub fn extensions(&self) -> impl Iterator<Item = &'b str> + use<'h, 'b> {
        header_items(self.headers)
    }

    /// The value of the first header called `name` (ASCII case-insensitive).
    pub fn header(&self, name: &str) -> Option<&'b [u8]> {
        first_header(self.headers, name)
    }

    /// All header fields, in the order received.
    pub fn headers(&self) -> &'h [Header<'b>] {
        self.headers
    }
}

/// Parses and checks the server's response to a request sent with `key`.
///
/// `head` must be exactly the bytes up to and including the `"\r\n\r\n"` terminator; trailing
/// bytes are refused as `MalformedHttp`. Too small a `headers` array gives
/// `Error::LimitExceeded(Limit::HeaderCount)`.
///
/// Checks, in order (each failure with its [`HandshakeError`]): the status is 101
/// (`UnexpectedStatus(code)`); the version is HTTP/1.1 (`HttpVersion`); `Upgrade` lists
/// `websocket` (`MissingUpgrade`); `Connection` lists `upgrade` (`MissingConnectionUpgrade`);
/// exactly one `Sec-WebSocket-Accept`, equal to [`accept_key`]`(key)` (`InvalidAccept`); at most
/// one `Sec-WebSocket-Protocol` (`DuplicateHeader`) whose value is exactly one of
/// `offered_protocols` (`UnofferedProtocol`); every `Sec-WebSocket-Extensions` value is UTF-8
/// with closed quoted strings and token names (`InvalidExtension`), and every extension name in
/// it is among the names in `offered_extensions`, the value the client sent (`None` when it
/// offered none), compared case-insensitively (`UnofferedExtension`). Extension parameters are
/// not checked here.
pub fn parse_response<'h, 'b>(
    head: &'b [u8],
    headers: &'h mut [Header<'b>],
    key: &[u8],
    offered_protocols: &[&str],
    offered_extensions: Option<&str>,
) -> Result<Response<'h, 'b>, Error> {
    use HandshakeError as E;

    let mut res = httparse::Response::new(headers);
    check_parsed(res.parse(head), head)?;
    let httparse::Response {
        version,
        code,
        headers,
        ..
    } = res;
    let headers: &'h [Header<'b>] = headers;

    let code = code.ok_or(hs(E::MalformedHttp))?;
    if code != 101 {
        return Err(hs(E::UnexpectedStatus(code)));
    }
    if version != Some(1) {
        return Err(hs(E::HttpVersion));
    }
    check_upgrade(headers)?;
    match unique_header(headers, "Sec-WebSocket-Accept") {
        Ok(Some(accept)) if trim_ows(accept) == accept_key(key) => {}
        _ => return Err(hs(E::InvalidAccept)),
    }

    let protocol = check_choices(headers, offered_protocols, offered_extensions)?;

    Ok(Response {
        headers,
        status: code,
        protocol,
    })
}

/// Checks what a server chose against what the client offered: at most one
/// `Sec-WebSocket-Protocol` (`DuplicateHeader`) whose value is exactly one of
/// `offered_protocols` (`UnofferedProtocol`); every `Sec-WebSocket-Extensions` value is
/// well-formed (`InvalidExtension`) and names only extensions in `offered_extensions`
/// (`UnofferedExtension`). Returns the chosen subprotocol.
pub(super) fn check_choices<'b>(
    headers: &[Header<'b>],
    offered_protocols: &[&str],
    offered_extensions: Option<&str>,
) -> Result<Option<&'b str>, Error> {
    use HandshakeError as E;

    let protocol = unique_header(headers, "Sec-WebSocket-Protocol")
        .map_err(|()| hs(E::DuplicateHeader))?
        .map(|p| {
            core::str::from_utf8(trim_ows(p))
                .ok()
                .filter(|p| offered_protocols.contains(p))
                .ok_or(hs(E::UnofferedProtocol))
        })
        .transpose()?;

    if !named(headers, "Sec-WebSocket-Extensions").all(|h| valid_list(h.value)) {
        return Err(hs(E::InvalidExtension));
    }
    let offered = |name: &str| {
        items(offered_extensions.unwrap_or_default())
            .any(|item| Extension::parse(item).name.eq_ignore_ascii_case(name))
    };
    if !header_items(headers).all(|item| offered(Extension::parse(item).name)) {
        return Err(hs(E::UnofferedExtension));
    }
    Ok(protocol)
}
