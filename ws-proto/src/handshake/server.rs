//! The server side: parsing the client's opening request, and writing the answer.

use httparse::Header;

use super::extension::{header_items, valid_list};
use super::fields::{
    List, check_parsed, first_header, is_token, text, trim_ows, unique_header, values,
};
use super::hs;
use super::key::accept_key;
use super::write::{Writer, check_headers, check_tail};
use crate::error::{Error, HandshakeError, Limit};

/// A parsed and validated client opening request (server side); borrows the head bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Request<'h, 'b> {
    pub(super) headers: &'h [Header<'b>],
    pub(super) path: &'b str,
    pub(super) host: &'b str,
    pub(super) origin: Option<&'b str>,
    pub(super) key: &'b [u8],
}

impl<'h, 'b> Request<'h, 'b> {
    /// The request target, as sent (for example `/chat?room=1`).
    pub fn path(&self) -> &'b str {
        self.path
    }

    /// The `Host` header value, trimmed.
    pub fn host(&self) -> &'b str {
        self.host
    }

    /// The `Origin` header value, trimmed, if sent.
    pub fn origin(&self) -> Option<&'b str> {
        self.origin
    }

    /// The `Sec-WebSocket-Key` as sent (24 base64 characters); empty for an HTTP/2 extended
    /// CONNECT request ([`http2::parse_request`](super::http2::parse_request)), which has none.
    pub fn key(&self) -> &'b [u8] {
        self.key
    }

    /// The value of the first header called `name` (ASCII case-insensitive).
    pub fn header(&self, name: &str) -> Option<&'b [u8]> {
        first_header(self.headers, name)
    }

    /// All header fields, in the order received.
    pub fn headers(&self) -> &'h [Header<'b>] {
        self.headers
    }

    /// The offered subprotocols from every `Sec-WebSocket-Protocol` header, in order: split on
    /// `,`, trimmed, empty items skipped.
    pub fn protocols(&self) -> impl Iterator<Item = &'b str> + use<'h, 'b> {
        values(self.headers, "Sec-WebSocket-Protocol").flat_map(|v| List::new(v, false))
    }

    /// The extension offers from every `Sec-WebSocket-Extensions` header, in order: one item per
    /// offer including its `;` parameters, split on commas outside quoted strings, trimmed.
    pub fn extensions(&self) -> impl Iterator<Item = &'b str> + use<'h, 'b> {
        header_items(self.headers)
    }
}

/// Parses and validates a client opening request head.
///
/// `head` must be exactly the bytes up to and including the `"\r\n\r\n"` terminator (as found
/// by [`HeadScanner`](super::HeadScanner)); trailing bytes are refused as `MalformedHttp`.
/// `headers` receives the header fields; when it is too small the result is
/// `Error::LimitExceeded(Limit::HeaderCount)`.
///
/// Checks, in order (each failure with its [`HandshakeError`]):
/// the method is `GET` (`MethodNotGet`); the version is HTTP/1.1 (`HttpVersion`); exactly one
/// `Host` (`MissingHost`, `DuplicateHeader`); `Upgrade` lists `websocket` (`MissingUpgrade`);
/// `Connection` lists `upgrade` (`MissingConnectionUpgrade`); exactly one
/// `Sec-WebSocket-Version` and it is `13` (`UnsupportedVersion`); exactly one
/// `Sec-WebSocket-Key` of 24 base64 characters decoding to 16 bytes (`InvalidKey`); at most one
/// `Origin` (`DuplicateHeader`); `Host`, `Origin` and `Sec-WebSocket-Protocol` values are UTF-8
/// (`MalformedHttp`); `Sec-WebSocket-Extensions` values are UTF-8 with closed quoted strings and
/// token names (`InvalidExtension`). List tokens and header names match case-insensitively.
pub fn parse_request<'h, 'b>(
    head: &'b [u8],
    headers: &'h mut [Header<'b>],
) -> Result<Request<'h, 'b>, Error> {
    use HandshakeError as E;

    let mut req = httparse::Request::new(headers);
    check_parsed(req.parse(head), head)?;
    let httparse::Request {
        method,
        path,
        version,
        headers,
    } = req;
    let headers: &'h [Header<'b>] = headers;
    // A complete parse has all three; the checks on them and on the headers are
    // parse_request_fields', shared with requests an HTTP stack parsed.
    let (Some(method), Some(version), Some(path)) = (method, version, path) else {
        return Err(hs(E::MalformedHttp));
    };
    super::parse_request_fields(method, version, path, headers)
}

/// Checks that there is exactly one `Sec-WebSocket-Version` and that it is `13`
/// (`UnsupportedVersion`).
pub(super) fn check_version(headers: &[Header<'_>]) -> Result<(), Error> {
    match unique_header(headers, "Sec-WebSocket-Version") {
        Ok(Some(v)) if trim_ows(v) == b"13" => Ok(()),
        _ => Err(hs(HandshakeError::UnsupportedVersion)),
    }
}

/// Checks the parts of a client request both HTTP versions share: at most one `Origin`
/// (`DuplicateHeader`); `Origin` and `Sec-WebSocket-Protocol` values are UTF-8
/// (`MalformedHttp`); `Sec-WebSocket-Extensions` values are UTF-8 with closed quoted strings
/// and token names (`InvalidExtension`). Returns the trimmed `Origin`.
pub(super) fn check_offers<'b>(headers: &[Header<'b>]) -> Result<Option<&'b str>, Error> {
    use HandshakeError as E;

    let origin = match unique_header(headers, "Origin") {
        Ok(Some(o)) => Some(text(o)?),
        Ok(None) => None,
        Err(()) => return Err(hs(E::DuplicateHeader)),
    };

    for h in headers {
        if h.name.eq_ignore_ascii_case("Sec-WebSocket-Protocol")
            && core::str::from_utf8(h.value).is_err()
        {
            return Err(hs(E::MalformedHttp));
        }
        if h.name.eq_ignore_ascii_case("Sec-WebSocket-Extensions") && !valid_list(h.value) {
            return Err(hs(E::InvalidExtension));
        }
    }
    Ok(origin)
}

/// What the server answers when it accepts a request: `Accept::new()` and the `with_*`
/// methods.
#[derive(Debug, Clone, Copy, Default)]
#[non_exhaustive]
pub struct Accept<'a> {
    /// The chosen subprotocol (a token; one of those the client offered).
    pub protocol: Option<&'a str>,
    /// The accepted extensions, written as the `Sec-WebSocket-Extensions` value (omitted when
    /// `None` or empty).
    pub extensions: Option<&'a str>,
    /// Further header fields, written after the others in order.
    pub extra_headers: &'a [(&'a str, &'a [u8])],
}

impl<'a> Accept<'a> {
    /// Accept with no subprotocol, no extensions and no extra headers.
    pub const fn new() -> Self {
        Accept {
            protocol: None,
            extensions: None,
            extra_headers: &[],
        }
    }

    /// Chooses this subprotocol.
    pub const fn with_protocol(mut self, protocol: Option<&'a str>) -> Self {
        self.protocol = protocol;
        self
    }

    /// Accepts these extensions (the `Sec-WebSocket-Extensions` value).
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

/// Writes `101 Switching Protocols` accepting the request whose `Sec-WebSocket-Key` is `key`.
///
/// The response carries `Upgrade: websocket`, `Connection: Upgrade`, `Sec-WebSocket-Accept`,
/// the chosen protocol and extensions and `extra_headers`. Returns the number of bytes written.
///
/// Errors: `Error::Handshake(HandshakeError::MalformedHttp)` when the protocol is not a token, a
/// header name is not a token or a value contains CR, LF or NUL (nothing that could split the
/// response is written); `Error::BufferTooSmall` when `out` is too short. On error the contents
/// of `out` are unspecified.
pub fn write_accept(out: &mut [u8], key: &[u8], accept: &Accept<'_>) -> Result<usize, Error> {
    if accept.protocol.is_some_and(|p| !is_token(p.as_bytes())) {
        return Err(hs(HandshakeError::MalformedHttp));
    }
    check_tail(accept.extensions, accept.extra_headers)?;

    let mut w = Writer::new(out);
    w.put(b"HTTP/1.1 101 Switching Protocols\r\n")?;
    w.upgrade()?;
    w.header(b"Sec-WebSocket-Accept", &accept_key(key))?;
    if let Some(protocol) = accept.protocol {
        w.header(b"Sec-WebSocket-Protocol", protocol.as_bytes())?;
    }
    w.tail(accept.extensions, accept.extra_headers)?;
    Ok(w.finish())
}

/// The reason phrase written for `status`.
fn reason_phrase(status: u16) -> &'static str {
    match status {
        400 => "Bad Request",
        401 => "Unauthorized",
        403 => "Forbidden",
        404 => "Not Found",
        426 => "Upgrade Required",
        429 => "Too Many Requests",
        431 => "Request Header Fields Too Large",
        500 => "Internal Server Error",
        503 => "Service Unavailable",
        _ => "Error",
    }
}

/// Writes a rejection response: status line, `headers`, `Content-Length`, `Connection: close`
/// and `body`.
///
/// The reason phrase is the standard one for 400, 401, 403, 404, 426, 429, 431, 500 and 503
/// and `Error` otherwise. A 426 also gets `Sec-WebSocket-Version: 13` unless `headers` has a
/// `Sec-WebSocket-Version`. Returns the number of bytes written.
///
/// Errors: `Error::Handshake(HandshakeError::MalformedHttp)` when `status` is not three digits
/// (100 to 999), a header name is not a token, a value contains CR, LF or NUL, or `headers`
/// has a `Content-Length`, `Transfer-Encoding` or `Connection` field (this function writes the
/// framing itself); `Error::BufferTooSmall` when `out` is too short. On error the contents of
/// `out` are unspecified.
pub fn write_reject(
    out: &mut [u8],
    status: u16,
    headers: &[(&str, &[u8])],
    body: &[u8],
) -> Result<usize, Error> {
    if !(100..=999).contains(&status) {
        return Err(hs(HandshakeError::MalformedHttp));
    }
    check_headers(headers)?;
    let has = |name: &str| headers.iter().any(|(n, _)| n.eq_ignore_ascii_case(name));
    if has("Content-Length") || has("Transfer-Encoding") || has("Connection") {
        return Err(hs(HandshakeError::MalformedHttp));
    }

    let mut w = Writer::new(out);
    w.put(b"HTTP/1.1 ")?;
    w.decimal(usize::from(status))?;
    w.put(b" ")?;
    w.put(reason_phrase(status).as_bytes())?;
    w.put(b"\r\n")?;
    for (name, value) in headers {
        w.header(name.as_bytes(), value)?;
    }
    if status == 426 && !has("Sec-WebSocket-Version") {
        w.header(b"Sec-WebSocket-Version", b"13")?;
    }
    w.put(b"Content-Length: ")?;
    w.decimal(body.len())?;
    w.put(b"\r\n")?;
    w.header(b"Connection", b"close")?;
    w.put(b"\r\n")?;
    w.put(body)?;
    Ok(w.finish())
}

/// The HTTP status a server should answer a failed opening request with.
///
/// 426 for `UnsupportedVersion` (send it with `Sec-WebSocket-Version: 13`, as [`write_reject`]
/// does), 431 for header size or count limits, 500 for `BufferTooSmall` (a server-side
/// shortage), 400 for everything else.
pub fn reject_status(err: &Error) -> u16 {
    match err {
        Error::Handshake(HandshakeError::UnsupportedVersion) => 426,
        Error::LimitExceeded(Limit::HeaderBytes | Limit::HeaderCount) => 431,
        Error::BufferTooSmall => 500,
        _ => 400,
    }
}
