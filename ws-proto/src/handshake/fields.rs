//! HTTP field syntax (RFC 7230): tokens, optional whitespace, comma lists, header lookups, and
//! the glue to `httparse`.

use httparse::Header;

use super::hs;
use crate::error::{Error, HandshakeError, Limit};

/// Optional whitespace (RFC 7230 `OWS`).
pub(super) const fn is_ows(b: u8) -> bool {
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
pub(super) const fn is_tchar(b: u8) -> bool {
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

/// True when any header called `name` contains `token` in its list.
pub(super) fn any_has_token(headers: &[Header<'_>], name: &str, token: &str) -> bool {
    headers
        .iter()
        .any(|h| h.name.eq_ignore_ascii_case(name) && has_token(h.value, token))
}

/// The first header called `name` (ASCII case-insensitive).
pub(super) fn first_header<'b>(headers: &[Header<'b>], name: &str) -> Option<&'b [u8]> {
    headers
        .iter()
        .find(|h| h.name.eq_ignore_ascii_case(name))
        .map(|h| h.value)
}

/// The only header called `name`: `Ok(None)` when absent, `Err(())` when repeated.
pub(super) fn unique_header<'b>(
    headers: &[Header<'b>],
    name: &str,
) -> Result<Option<&'b [u8]>, ()> {
    let mut matching = headers.iter().filter(|h| h.name.eq_ignore_ascii_case(name));
    let first = matching.next().map(|h| h.value);
    match matching.next() {
        Some(_) => Err(()),
        None => Ok(first),
    }
}

/// Maps an `httparse` failure onto this crate's errors.
pub(super) fn map_httparse(e: httparse::Error) -> Error {
    match e {
        httparse::Error::TooManyHeaders => Error::LimitExceeded(Limit::HeaderCount),
        httparse::Error::Version => hs(HandshakeError::HttpVersion),
        _ => hs(HandshakeError::MalformedHttp),
    }
}

/// Checks that `status` says the whole of `head` was parsed.
pub(super) fn check_complete(status: httparse::Status<usize>, head: &[u8]) -> Result<(), Error> {
    match status {
        httparse::Status::Complete(n) if n == head.len() => Ok(()),
        _ => Err(hs(HandshakeError::MalformedHttp)),
    }
}

/// Splits `s` at its first comma, returning the text before it and the text after it (or `s`
/// and `""` without a comma). With `quotes`, commas inside quoted strings (with backslash
/// escapes) do not count.
pub(super) fn split_list(s: &str, quotes: bool) -> (&str, &str) {
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
pub(super) fn extension_name(item: &str) -> &str {
    trim_ows_str(item.split(';').next().unwrap_or_default())
}

/// Checks a `Sec-WebSocket-Extensions` value: UTF-8, every quoted string closed, and every
/// non-empty item starting with a token name.
pub(super) fn valid_extension_list(value: &[u8]) -> bool {
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
pub(super) fn quotes_closed(s: &str) -> bool {
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
pub(super) struct ListItems<'h, 'b> {
    headers: core::slice::Iter<'h, Header<'b>>,
    name: &'static str,
    quotes: bool,
    rest: &'b str,
}

impl<'h, 'b> ListItems<'h, 'b> {
    pub(super) fn new(headers: &'h [Header<'b>], name: &'static str, quotes: bool) -> Self {
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
