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

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use httparse::Header;
use sha1::{Digest, Sha1};

use crate::error::{Error, HandshakeError, Limit};

/// The GUID appended to `Sec-WebSocket-Key` before hashing (RFC 6455 section 1.3).
pub const GUID: &str = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11";

/// Shorthand for a handshake error.
const fn hs(e: HandshakeError) -> Error {
    Error::Handshake(e)
}

// ---------------------------------------------------------------------------------------------
// Keys
// ---------------------------------------------------------------------------------------------

/// `Sec-WebSocket-Accept` for a `Sec-WebSocket-Key`: base64(SHA-1(key ++ GUID)).
pub fn accept_key(key: &[u8]) -> [u8; 28] {
    let mut sha = Sha1::new();
    sha.update(key);
    sha.update(GUID.as_bytes());
    let digest = sha.finalize();
    let mut out = [0u8; 28];
    // 20 bytes always encode to exactly 28 characters, so this cannot fail.
    let written = STANDARD.encode_slice(digest, &mut out);
    debug_assert_eq!(written, Ok(28));
    out
}

/// A `Sec-WebSocket-Key` from 16 random bytes (the caller supplies the randomness).
pub fn generate_key(random: [u8; 16]) -> [u8; 24] {
    let mut out = [0u8; 24];
    // 16 bytes always encode to exactly 24 characters, so this cannot fail.
    let written = STANDARD.encode_slice(random, &mut out);
    debug_assert_eq!(written, Ok(24));
    out
}

/// True when `key` is 24 base64 characters that decode to exactly 16 bytes.
fn valid_key(key: &[u8]) -> bool {
    let mut decoded = [0u8; 18];
    key.len() == 24 && STANDARD.decode_slice(key, &mut decoded) == Ok(16)
}

// ---------------------------------------------------------------------------------------------
// Head scanning
// ---------------------------------------------------------------------------------------------

/// Finds the end of an HTTP head (`"\r\n\r\n"`) in one pass over arriving bytes.
///
/// Each [`scan`](Self::scan) call examines only the bytes that earlier calls did not; a small
/// state machine remembers how much of the terminator ended the previously scanned bytes, so a
/// terminator split across reads is found without rescanning anything.
#[derive(Debug, Clone)]
pub struct HeadScanner {
    max_bytes: usize,
    /// Number of bytes of the buffer examined so far.
    pos: usize,
    /// How many bytes of `"\r\n\r\n"` the examined bytes end with (0 to 3).
    matched: u8,
    /// The head length, once found.
    found: Option<usize>,
    /// Total bytes examined since `new` or `reset` (equal to `pos`; kept for tests).
    scanned: usize,
}

impl HeadScanner {
    /// A scanner that fails once a head grows past `max_bytes` without its terminator.
    pub const fn new(max_bytes: usize) -> Self {
        Self {
            max_bytes,
            pos: 0,
            matched: 0,
            found: None,
            scanned: 0,
        }
    }

    /// Scans the bytes of `buf` not seen by earlier calls.
    ///
    /// `buf` is everything received so far: it may grow between calls, but bytes already passed
    /// in must not change. Returns `Ok(Some(head_len))` once the terminator is found (`head_len`
    /// counts the terminator; later calls return the same value until [`reset`](Self::reset)),
    /// `Ok(None)` when more bytes are needed, and
    /// `Err(Error::LimitExceeded(Limit::HeaderBytes))` when more than `max_bytes` bytes arrived
    /// without a terminator within the first `max_bytes`.
    pub fn scan(&mut self, buf: &[u8]) -> Result<Option<usize>, Error> {
        if let Some(head_len) = self.found {
            return Ok(Some(head_len));
        }
        let end = buf.len().min(self.max_bytes);
        if let Some(new) = buf.get(self.pos..end) {
            for (i, &b) in new.iter().enumerate() {
                self.matched = match (b, self.matched) {
                    (b'\r', 2) => 3,
                    (b'\r', _) => 1,
                    (b'\n', 1) => 2,
                    (b'\n', 3) => 4,
                    _ => 0,
                };
                if self.matched == 4 {
                    let head_len = self.pos + i + 1;
                    self.scanned += i + 1;
                    self.pos = head_len;
                    self.matched = 0;
                    self.found = Some(head_len);
                    return Ok(Some(head_len));
                }
            }
            self.scanned += new.len();
            self.pos = end;
        }
        if buf.len() > self.max_bytes {
            Err(Error::LimitExceeded(Limit::HeaderBytes))
        } else {
            Ok(None)
        }
    }

    /// Forgets all progress, ready for a new head (the limit is kept).
    pub fn reset(&mut self) {
        *self = Self::new(self.max_bytes);
    }

    /// Total bytes examined since construction or the last reset.
    #[cfg(test)]
    pub(crate) fn scanned(&self) -> usize {
        self.scanned
    }
}

// ---------------------------------------------------------------------------------------------
// Shared helpers
// ---------------------------------------------------------------------------------------------

/// Optional whitespace (RFC 7230 `OWS`).
const fn is_ows(b: u8) -> bool {
    b == b' ' || b == b'\t'
}

/// `value` without leading and trailing spaces and tabs.
fn trim_ows(mut value: &[u8]) -> &[u8] {
    while let [first, rest @ ..] = value {
        if !is_ows(*first) {
            break;
        }
        value = rest;
    }
    while let [rest @ .., last] = value {
        if !is_ows(*last) {
            break;
        }
        value = rest;
    }
    value
}

/// `s` without leading and trailing spaces and tabs.
fn trim_ows_str(s: &str) -> &str {
    s.trim_matches([' ', '\t'])
}

/// An RFC 7230 `tchar`.
const fn is_tchar(b: u8) -> bool {
    matches!(b,
        b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9'
        | b'!' | b'#' | b'$' | b'%' | b'&' | b'\'' | b'*' | b'+'
        | b'-' | b'.' | b'^' | b'_' | b'`' | b'|' | b'~')
}

/// A non-empty RFC 7230 token.
fn is_token(s: &[u8]) -> bool {
    !s.is_empty() && s.iter().all(|&b| is_tchar(b))
}

/// A header value that can be written without changing the message structure.
fn is_safe_value(value: &[u8]) -> bool {
    !value.iter().any(|&b| matches!(b, b'\r' | b'\n' | 0))
}

/// True when a comma-separated header value contains `token` (ASCII case-insensitive, with the
/// list items trimmed of spaces and tabs). An empty `token` never matches.
pub fn has_token(value: &[u8], token: &str) -> bool {
    let token = token.as_bytes();
    !token.is_empty()
        && value
            .split(|&b| b == b',')
            .any(|item| trim_ows(item).eq_ignore_ascii_case(token))
}

/// True when any header called `name` contains `token` in its list.
fn any_has_token(headers: &[Header<'_>], name: &str, token: &str) -> bool {
    headers
        .iter()
        .any(|h| h.name.eq_ignore_ascii_case(name) && has_token(h.value, token))
}

/// The first header called `name` (ASCII case-insensitive).
fn first_header<'b>(headers: &[Header<'b>], name: &str) -> Option<&'b [u8]> {
    headers
        .iter()
        .find(|h| h.name.eq_ignore_ascii_case(name))
        .map(|h| h.value)
}

/// The only header called `name`: `Ok(None)` when absent, `Err(())` when repeated.
fn unique_header<'b>(headers: &[Header<'b>], name: &str) -> Result<Option<&'b [u8]>, ()> {
    let mut matching = headers.iter().filter(|h| h.name.eq_ignore_ascii_case(name));
    let first = matching.next().map(|h| h.value);
    match matching.next() {
        Some(_) => Err(()),
        None => Ok(first),
    }
}

/// Maps an `httparse` failure onto this crate's errors.
fn map_httparse(e: httparse::Error) -> Error {
    match e {
        httparse::Error::TooManyHeaders => Error::LimitExceeded(Limit::HeaderCount),
        httparse::Error::Version => hs(HandshakeError::HttpVersion),
        _ => hs(HandshakeError::MalformedHttp),
    }
}

/// Checks that `status` says the whole of `head` was parsed.
fn check_complete(status: httparse::Status<usize>, head: &[u8]) -> Result<(), Error> {
    match status {
        httparse::Status::Complete(n) if n == head.len() => Ok(()),
        _ => Err(hs(HandshakeError::MalformedHttp)),
    }
}

/// Splits `s` at its first comma, returning the text before it and the text after it (or `s`
/// and `""` without a comma). With `quotes`, commas inside quoted strings (with backslash
/// escapes) do not count.
fn split_list(s: &str, quotes: bool) -> (&str, &str) {
    let mut in_quotes = false;
    let mut escaped = false;
    for (i, b) in s.bytes().enumerate() {
        if in_quotes {
            if escaped {
                escaped = false;
            } else if b == b'\\' {
                escaped = true;
            } else if b == b'"' {
                in_quotes = false;
            }
        } else if b == b',' {
            return (
                s.get(..i).unwrap_or_default(),
                s.get(i + 1..).unwrap_or_default(),
            );
        } else if quotes && b == b'"' {
            in_quotes = true;
        }
    }
    (s, "")
}

/// The extension name of one extension offer: the text before the first `;`, trimmed.
fn extension_name(item: &str) -> &str {
    trim_ows_str(item.split(';').next().unwrap_or_default())
}

/// Checks a `Sec-WebSocket-Extensions` value: UTF-8, every quoted string closed, and every
/// non-empty item starting with a token name.
fn valid_extension_list(value: &[u8]) -> bool {
    let Ok(mut rest) = core::str::from_utf8(value) else {
        return false;
    };
    while !rest.is_empty() {
        let (item, tail) = split_list(rest, true);
        rest = tail;
        let item = trim_ows_str(item);
        if item.is_empty() {
            continue;
        }
        if !is_token(extension_name(item).as_bytes()) || !quotes_closed(item) {
            return false;
        }
    }
    true
}

/// True when every quoted string in `s` is closed (and no escape is left dangling).
fn quotes_closed(s: &str) -> bool {
    let mut in_quotes = false;
    let mut escaped = false;
    for b in s.bytes() {
        if escaped {
            escaped = false;
        } else if in_quotes && b == b'\\' {
            escaped = true;
        } else if b == b'"' {
            in_quotes = !in_quotes;
        }
    }
    !in_quotes && !escaped
}

/// The list items of every header called `name`: split on commas (outside quoted strings when
/// `quotes`), trimmed, empty items skipped.
#[derive(Debug, Clone)]
struct ListItems<'h, 'b> {
    headers: core::slice::Iter<'h, Header<'b>>,
    name: &'static str,
    quotes: bool,
    rest: &'b str,
}

impl<'h, 'b> ListItems<'h, 'b> {
    fn new(headers: &'h [Header<'b>], name: &'static str, quotes: bool) -> Self {
        Self {
            headers: headers.iter(),
            name,
            quotes,
            rest: "",
        }
    }
}

impl<'b> Iterator for ListItems<'_, 'b> {
    type Item = &'b str;

    fn next(&mut self) -> Option<&'b str> {
        loop {
            if self.rest.is_empty() {
                let name = self.name;
                let header = self.headers.find(|h| h.name.eq_ignore_ascii_case(name))?;
                self.rest = core::str::from_utf8(header.value).unwrap_or_default();
                continue;
            }
            let (item, rest) = split_list(self.rest, self.quotes);
            self.rest = rest;
            let item = trim_ows_str(item);
            if !item.is_empty() {
                return Some(item);
            }
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Server side
// ---------------------------------------------------------------------------------------------

/// A parsed and validated client opening request (server side); borrows the head bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Request<'h, 'b> {
    headers: &'h [Header<'b>],
    path: &'b str,
    host: &'b str,
    origin: Option<&'b str>,
    key: &'b [u8],
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
    /// CONNECT request ([`http2::parse_request`]), which has none.
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
        ListItems::new(self.headers, "Sec-WebSocket-Protocol", false)
    }

    /// The extension offers from every `Sec-WebSocket-Extensions` header, in order: one item per
    /// offer including its `;` parameters, split on commas outside quoted strings, trimmed.
    pub fn extensions(&self) -> impl Iterator<Item = &'b str> + use<'h, 'b> {
        ListItems::new(self.headers, "Sec-WebSocket-Extensions", true)
    }
}

/// Parses and validates a client opening request head.
///
/// `head` must be exactly the bytes up to and including the `"\r\n\r\n"` terminator (as found
/// by [`HeadScanner`]); trailing bytes are refused as `MalformedHttp`. `headers` receives the
/// header fields; when it is too small the result is
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
    let status = req.parse(head).map_err(map_httparse)?;
    check_complete(status, head)?;
    let httparse::Request {
        method,
        path,
        version,
        headers,
    } = req;
    let headers: &'h [Header<'b>] = headers;

    if method != Some("GET") {
        return Err(hs(E::MethodNotGet));
    }
    if version != Some(1) {
        return Err(hs(E::HttpVersion));
    }
    let path = path.ok_or(hs(E::MalformedHttp))?;

    let host = unique_header(headers, "Host")
        .map_err(|()| hs(E::DuplicateHeader))?
        .ok_or(hs(E::MissingHost))?;
    let host = core::str::from_utf8(trim_ows(host)).map_err(|_| hs(E::MalformedHttp))?;

    if !any_has_token(headers, "Upgrade", "websocket") {
        return Err(hs(E::MissingUpgrade));
    }
    if !any_has_token(headers, "Connection", "upgrade") {
        return Err(hs(E::MissingConnectionUpgrade));
    }

    check_version(headers)?;

    let key = match unique_header(headers, "Sec-WebSocket-Key") {
        Ok(Some(k)) => trim_ows(k),
        _ => return Err(hs(E::InvalidKey)),
    };
    if !valid_key(key) {
        return Err(hs(E::InvalidKey));
    }

    let origin = check_offers(headers)?;

    Ok(Request {
        headers,
        path,
        host,
        origin,
        key,
    })
}

/// Checks that there is exactly one `Sec-WebSocket-Version` and that it is `13`
/// (`UnsupportedVersion`).
fn check_version(headers: &[Header<'_>]) -> Result<(), Error> {
    match unique_header(headers, "Sec-WebSocket-Version") {
        Ok(Some(v)) if trim_ows(v) == b"13" => Ok(()),
        _ => Err(hs(HandshakeError::UnsupportedVersion)),
    }
}

/// Checks the parts of a client request both HTTP versions share: at most one `Origin`
/// (`DuplicateHeader`); `Origin` and `Sec-WebSocket-Protocol` values are UTF-8
/// (`MalformedHttp`); `Sec-WebSocket-Extensions` values are UTF-8 with closed quoted strings
/// and token names (`InvalidExtension`). Returns the trimmed `Origin`.
fn check_offers<'b>(headers: &[Header<'b>]) -> Result<Option<&'b str>, Error> {
    use HandshakeError as E;

    let origin = match unique_header(headers, "Origin") {
        Ok(Some(o)) => Some(core::str::from_utf8(trim_ows(o)).map_err(|_| hs(E::MalformedHttp))?),
        Ok(None) => None,
        Err(()) => return Err(hs(E::DuplicateHeader)),
    };

    for h in headers {
        if h.name.eq_ignore_ascii_case("Sec-WebSocket-Protocol")
            && core::str::from_utf8(h.value).is_err()
        {
            return Err(hs(E::MalformedHttp));
        }
        if h.name.eq_ignore_ascii_case("Sec-WebSocket-Extensions") && !valid_extension_list(h.value)
        {
            return Err(hs(E::InvalidExtension));
        }
    }
    Ok(origin)
}

/// What the server answers when it accepts a request.
#[derive(Debug, Clone, Copy, Default)]
pub struct Accept<'a> {
    /// The chosen subprotocol (a token; one of those the client offered).
    pub protocol: Option<&'a str>,
    /// The accepted extensions, written as the `Sec-WebSocket-Extensions` value (omitted when
    /// `None` or empty).
    pub extensions: Option<&'a str>,
    /// Further header fields, written after the others in order.
    pub extra_headers: &'a [(&'a str, &'a [u8])],
}

/// Checks caller-supplied header fields: token names and values without CR, LF or NUL.
fn check_headers(headers: &[(&str, &[u8])]) -> Result<(), Error> {
    if headers
        .iter()
        .all(|(name, value)| is_token(name.as_bytes()) && is_safe_value(value))
    {
        Ok(())
    } else {
        Err(hs(HandshakeError::MalformedHttp))
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
    if accept.protocol.is_some_and(|p| !is_token(p.as_bytes()))
        || accept
            .extensions
            .is_some_and(|e| !is_safe_value(e.as_bytes()))
    {
        return Err(hs(HandshakeError::MalformedHttp));
    }
    check_headers(accept.extra_headers)?;

    let mut w = Writer::new(out);
    w.put(b"HTTP/1.1 101 Switching Protocols\r\n")?;
    w.header(b"Upgrade", b"websocket")?;
    w.header(b"Connection", b"Upgrade")?;
    w.header(b"Sec-WebSocket-Accept", &accept_key(key))?;
    if let Some(protocol) = accept.protocol {
        w.header(b"Sec-WebSocket-Protocol", protocol.as_bytes())?;
    }
    if let Some(extensions) = accept.extensions.filter(|e| !e.is_empty()) {
        w.header(b"Sec-WebSocket-Extensions", extensions.as_bytes())?;
    }
    for (name, value) in accept.extra_headers {
        w.header(name.as_bytes(), value)?;
    }
    w.put(b"\r\n")?;
    Ok(w.len)
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
    Ok(w.len)
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

// ---------------------------------------------------------------------------------------------
// Client side
// ---------------------------------------------------------------------------------------------

/// What a client sends in its opening request.
#[derive(Debug, Clone, Copy)]
pub struct ClientRequest<'a> {
    /// The `Host` value (for example `example.com:8080`).
    pub host: &'a str,
    /// The request target (for example `/chat?room=1`).
    pub path: &'a str,
    /// The `Sec-WebSocket-Key`, as made by [`generate_key`].
    pub key: &'a [u8],
    /// Offered subprotocols (tokens), joined with `, ` into one header; none when empty.
    pub protocols: &'a [&'a str],
    /// The `Sec-WebSocket-Extensions` offer (omitted when `None` or empty).
    pub extensions: Option<&'a str>,
    /// Further header fields, written after the others in order.
    pub extra_headers: &'a [(&'a str, &'a [u8])],
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
        || req.extensions.is_some_and(|e| !is_safe_value(e.as_bytes()))
    {
        return Err(hs(HandshakeError::MalformedHttp));
    }
    check_headers(req.extra_headers)?;

    let mut w = Writer::new(out);
    w.put(b"GET ")?;
    w.put(req.path.as_bytes())?;
    w.put(b" HTTP/1.1\r\n")?;
    w.header(b"Host", req.host.as_bytes())?;
    w.header(b"Upgrade", b"websocket")?;
    w.header(b"Connection", b"Upgrade")?;
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
    if let Some(extensions) = req.extensions.filter(|e| !e.is_empty()) {
        w.header(b"Sec-WebSocket-Extensions", extensions.as_bytes())?;
    }
    for (name, value) in req.extra_headers {
        w.header(name.as_bytes(), value)?;
    }
    w.put(b"\r\n")?;
    Ok(w.len)
}

/// A validated `101 Switching Protocols` response (client side); borrows the head bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Response<'h, 'b> {
    headers: &'h [Header<'b>],
    status: u16,
    protocol: Option<&'b str>,
}

impl<'h, 'b> Response<'h, 'b> {
    /// The status code (always 101 for a response that passed [`parse_response`], 200 for one
    /// that passed [`http2::parse_response`]).
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
        ListItems::new(self.headers, "Sec-WebSocket-Extensions", true)
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
    let status = res.parse(head).map_err(map_httparse)?;
    check_complete(status, head)?;
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
    if !any_has_token(headers, "Upgrade", "websocket") {
        return Err(hs(E::MissingUpgrade));
    }
    if !any_has_token(headers, "Connection", "upgrade") {
        return Err(hs(E::MissingConnectionUpgrade));
    }

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
fn check_choices<'b>(
    headers: &[Header<'b>],
    offered_protocols: &[&str],
    offered_extensions: Option<&str>,
) -> Result<Option<&'b str>, Error> {
    use HandshakeError as E;

    let protocol = match unique_header(headers, "Sec-WebSocket-Protocol") {
        Ok(None) => None,
        Ok(Some(p)) => {
            let p = trim_ows(p);
            if !offered_protocols.iter().any(|o| o.as_bytes() == p) {
                return Err(hs(E::UnofferedProtocol));
            }
            Some(core::str::from_utf8(p).map_err(|_| hs(E::UnofferedProtocol))?)
        }
        Err(()) => return Err(hs(E::DuplicateHeader)),
    };

    for h in headers {
        if !h.name.eq_ignore_ascii_case("Sec-WebSocket-Extensions") {
            continue;
        }
        if !valid_extension_list(h.value) {
            return Err(hs(E::InvalidExtension));
        }
    }
    let offered = |name: &str| {
        let mut rest = offered_extensions.unwrap_or_default();
        while !rest.is_empty() {
            let (item, tail) = split_list(rest, true);
            rest = tail;
            if extension_name(item).eq_ignore_ascii_case(name) {
                return true;
            }
        }
        false
    };
    if !ListItems::new(headers, "Sec-WebSocket-Extensions", true)
        .all(|item| offered(extension_name(item)))
    {
        return Err(hs(E::UnofferedExtension));
    }
    Ok(protocol)
}

// ---------------------------------------------------------------------------------------------
// Output
// ---------------------------------------------------------------------------------------------

/// Appends bytes to a caller buffer, failing with `BufferTooSmall` instead of overrunning it.
struct Writer<'a> {
    out: &'a mut [u8],
    len: usize,
}

impl<'a> Writer<'a> {
    fn new(out: &'a mut [u8]) -> Self {
        Self { out, len: 0 }
    }

    fn put(&mut self, bytes: &[u8]) -> Result<(), Error> {
        let end = self
            .len
            .checked_add(bytes.len())
            .ok_or(Error::BufferTooSmall)?;
        self.out
            .get_mut(self.len..end)
            .ok_or(Error::BufferTooSmall)?
            .copy_from_slice(bytes);
        self.len = end;
        Ok(())
    }

    fn header(&mut self, name: &[u8], value: &[u8]) -> Result<(), Error> {
        self.put(name)?;
        self.put(b": ")?;
        self.put(value)?;
        self.put(b"\r\n")
    }

    fn decimal(&mut self, mut n: usize) -> Result<(), Error> {
        let mut digits = [0u8; 20];
        let mut start = digits.len();
        for slot in digits.iter_mut().rev() {
            *slot = b'0' + (n % 10) as u8;
            n /= 10;
            start -= 1;
            if n == 0 {
                break;
            }
        }
        self.put(digits.get(start..).unwrap_or_default())
    }
}

pub mod http2;

#[cfg(test)]
mod tests;
