//! HTTP field syntax (RFC 7230): tokens, optional whitespace, comma lists, header lookups, and
//! the glue to `httparse`.

use httparse::Header;

use super::hs;
use crate::error::{Error, HandshakeError, Limit};

/// Optional whitespace (RFC 7230 `OWS`).
const fn is_ows(b: u8) -> bool {
    b == b' ' || b == b'\t'
}

/// `value` without leading and trailing spaces and tabs.
pub(super) fn trim_ows(mut value: &[u8]) -> &[u8] {
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
pub(super) fn trim_ows_str(s: &str) -> &str {
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
pub(super) fn is_token(s: &[u8]) -> bool {
    !s.is_empty() && s.iter().all(|&b| is_tchar(b))
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

/// The header fields called `name` (ASCII case-insensitive), in order.
pub(super) fn named<'h, 'b, 'n>(
    headers: &'h [Header<'b>],
    name: &'n str,
) -> impl Iterator<Item = &'h Header<'b>> + use<'h, 'b, 'n> {
    headers
        .iter()
        .filter(move |h| h.name.eq_ignore_ascii_case(name))
}

/// True when any header called `name` contains `token` in its list.
fn any_has_token(headers: &[Header<'_>], name: &str, token: &str) -> bool {
    named(headers, name).any(|h| has_token(h.value, token))
}

/// The first header called `name` (ASCII case-insensitive).
pub(super) fn first_header<'b>(headers: &[Header<'b>], name: &str) -> Option<&'b [u8]> {
    named(headers, name).next().map(|h| h.value)
}

/// The only header called `name`: `Ok(None)` when absent, `Err(())` when repeated.
pub(super) fn unique_header<'b>(
    headers: &[Header<'b>],
    name: &str,
) -> Result<Option<&'b [u8]>, ()> {
    let mut matching = named(headers, name);
    let first = matching.next().map(|h| h.value);
    match matching.next() {
        Some(_) => Err(()),
        None => Ok(first),
    }
}

/// Checks an `httparse` result: the whole of `head` parsed (`MalformedHttp` otherwise), or its
/// failure mapped onto this crate's errors.
pub(super) fn check_parsed(result: httparse::Result<usize>, head: &[u8]) -> Result<(), Error> {
    match result {
        Ok(httparse::Status::Complete(n)) if n == head.len() => Ok(()),
        Err(httparse::Error::TooManyHeaders) => Err(Error::LimitExceeded(Limit::HeaderCount)),
        Err(httparse::Error::Version) => Err(hs(HandshakeError::HttpVersion)),
        Ok(_) | Err(_) => Err(hs(HandshakeError::MalformedHttp)),
    }
}

/// Checks that `Upgrade` lists `websocket` (`MissingUpgrade`) and `Connection` lists `upgrade`
/// (`MissingConnectionUpgrade`), as both opening messages must.
pub(super) fn check_upgrade(headers: &[Header<'_>]) -> Result<(), Error> {
    if !any_has_token(headers, "Upgrade", "websocket") {
        Err(hs(HandshakeError::MissingUpgrade))
    } else if !any_has_token(headers, "Connection", "upgrade") {
        Err(hs(HandshakeError::MissingConnectionUpgrade))
    } else {
        Ok(())
    }
}

/// A header value trimmed of spaces and tabs, as UTF-8 (`MalformedHttp` otherwise).
pub(super) fn text(value: &[u8]) -> Result<&str, Error> {
    core::str::from_utf8(trim_ows(value)).map_err(|_| hs(HandshakeError::MalformedHttp))
}

/// Where a scan stands relative to RFC 7230 quoted strings (with backslash escapes).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Quoting {
    Outside,
    Inside,
    Escaped,
}

impl Quoting {
    /// The state after byte `b`.
    const fn after(self, b: u8) -> Self {
        match (self, b) {
            (Self::Outside, b'"') | (Self::Escaped, _) => Self::Inside,
            (Self::Outside, _) | (Self::Inside, b'"') => Self::Outside,
            (Self::Inside, b'\\') => Self::Escaped,
            (Self::Inside, _) => Self::Inside,
        }
    }
}

/// Splits `s` at its first `sep` outside quoted strings: the text before it, and the text after
/// it (`None` without one). `sep` is an ASCII byte other than `"` and `\`.
pub(super) fn split_unquoted(s: &str, sep: u8) -> (&str, Option<&str>) {
    let mut state = Quoting::Outside;
    for (i, b) in s.bytes().enumerate() {
        if state == Quoting::Outside && b == sep {
            // `sep` is ASCII, so both sides are on character boundaries.
            return (s.get(..i).unwrap_or_default(), s.get(i + 1..));
        }
        state = state.after(b);
    }
    (s, None)
}

/// True when every quoted string in `s` is closed (and no escape is left dangling).
pub(super) fn quotes_closed(s: &str) -> bool {
    s.bytes().fold(Quoting::Outside, Quoting::after) == Quoting::Outside
}

/// The items of one comma-separated list value: split on commas (outside quoted strings when
/// `quotes`), trimmed of spaces and tabs, empty items skipped.
#[derive(Debug, Clone)]
pub(super) struct List<'a> {
    rest: &'a str,
    quotes: bool,
}

impl<'a> List<'a> {
    /// The items of `value`.
    pub(super) const fn new(value: &'a str, quotes: bool) -> Self {
        Self {
            rest: value,
            quotes,
        }
    }
}

impl<'a> Iterator for List<'a> {
    type Item = &'a str;

    fn next(&mut self) -> Option<&'a str> {
        while !self.rest.is_empty() {
            let (item, rest) = if self.quotes {
                split_unquoted(self.rest, b',')
            } else {
                self.rest
                    .split_once(',')
                    .map_or((self.rest, None), |(a, b)| (a, Some(b)))
            };
            self.rest = rest.unwrap_or_default();
            let item = trim_ows_str(item);
            if !item.is_empty() {
                return Some(item);
            }
        }
        None
    }
}

/// The values of every header called `name` (ASCII case-insensitive), in order; values that
/// are not UTF-8 are skipped.
pub(super) fn values<'h, 'b>(
    headers: &'h [Header<'b>],
    name: &'static str,
) -> impl Iterator<Item = &'b str> + use<'h, 'b> {
    named(headers, name).filter_map(|h| core::str::from_utf8(h.value).ok())
}
