//! The server's checks of an HTTP/1.1 opening request that an HTTP stack (hyper, ...) has
//! already parsed, so that the method, version, target and header fields arrive apart.

use httparse::Header;

use super::fields::{check_upgrade, text, trim_ows, unique_header};
use super::hs;
use super::key::valid_key;
use super::server::{Request, check_offers, check_version};
use crate::error::{Error, HandshakeError};

/// Validates an HTTP/1.1 opening request given by its parts, with the rules of
/// [`parse_request`](super::parse_request), for servers whose HTTP stack parsed the head.
///
/// `method` is the request method, `minor_version` the `x` of `HTTP/1.x` (`1` for HTTP/1.1),
/// `target` the request target as sent (for example `/chat?room=1`) and `headers` the header
/// fields in the order received, names in any case. The checks and their errors are those
/// of [`parse_request`](super::parse_request) after the head has parsed, in the same order:
/// `GET` (`MethodNotGet`), HTTP/1.1 (`HttpVersion`), a target (`MalformedHttp` when empty),
/// one `Host`, `Upgrade: websocket`, `Connection: upgrade`, `Sec-WebSocket-Version: 13`, one
/// valid `Sec-WebSocket-Key`, then `Origin`, `Sec-WebSocket-Protocol` and
/// `Sec-WebSocket-Extensions`.
///
/// ```
/// use httparse::Header;
/// use ws_proto::handshake::parse_request_fields;
///
/// let headers = [
///     Header { name: "host", value: b"example.com" },
///     Header { name: "upgrade", value: b"websocket" },
///     Header { name: "connection", value: b"Upgrade" },
///     Header { name: "sec-websocket-version", value: b"13" },
///     Header { name: "sec-websocket-key", value: b"dGhlIHNhbXBsZSBub25jZQ==" },
///     Header { name: "sec-websocket-protocol", value: b"chat, superchat" },
/// ];
/// let req = parse_request_fields("GET", 1, "/chat", &headers).unwrap();
/// assert_eq!(req.host(), "example.com");
/// assert_eq!(req.protocols().collect::<Vec<_>>(), ["chat", "superchat"]);
/// ```
pub fn parse_request_fields<'h, 'b>(
    method: &str,
    minor_version: u8,
    target: &'b str,
    headers: &'h [Header<'b>],
) -> Result<Request<'h, 'b>, Error> {
    use HandshakeError as E;

    if method != "GET" {
        return Err(hs(E::MethodNotGet));
    }
    if minor_version != 1 {
        return Err(hs(E::HttpVersion));
    }
    if target.is_empty() {
        return Err(hs(E::MalformedHttp));
    }
    let host = unique_header(headers, "Host")
        .map_err(|()| hs(E::DuplicateHeader))?
        .ok_or(hs(E::MissingHost))?;
    let host = text(host)?;
    check_upgrade(headers)?;
    check_version(headers)?;
    let key = unique_header(headers, "Sec-WebSocket-Key")
        .ok()
        .flatten()
        .map(trim_ows)
        .filter(|k| valid_key(k))
        .ok_or(hs(E::InvalidKey))?;
    let origin = check_offers(headers)?;
    Ok(Request {
        headers,
        path: target,
        host,
        origin,
        key,
    })
}

#[cfg(test)]
mod tests {
    use std::format;
    use std::string::String;
    use std::vec::Vec;

    use httparse::EMPTY_HEADER;
    use proptest::prelude::*;

    use super::super::parse_request;
    use super::*;

    /// Both functions on one head: `parse_request` on the bytes, `parse_request_fields` on
    /// what httparse made of them. `None` when httparse does not parse the head.
    fn both(head: &[u8]) -> Option<(Result<String, Error>, Result<String, Error>)> {
        let show = |r: Result<Request<'_, '_>, Error>| {
            r.map(|r| {
                format!(
                    "{} {} {:?} {:?} {:?} {:?}",
                    r.path(),
                    r.host(),
                    r.origin(),
                    r.key(),
                    r.protocols().collect::<Vec<_>>(),
                    r.extensions().collect::<Vec<_>>()
                )
            })
        };
        let mut a = [EMPTY_HEADER; 32];
        let whole = show(parse_request(head, &mut a));
        let mut b = [EMPTY_HEADER; 32];
        let mut req = httparse::Request::new(&mut b);
        match req.parse(head) {
            Ok(httparse::Status::Complete(n)) if n == head.len() => {}
            _ => return None,
        }
        let parts = show(parse_request_fields(
            req.method?,
            req.version?,
            req.path?,
            req.headers,
        ));
        Some((whole, parts))
    }

    const BASE: &str = "GET /a?b=1 HTTP/1.1\r\nHost: h\r\nUpgrade: websocket\r\n\
        Connection: Upgrade\r\nSec-WebSocket-Version: 13\r\n\
        Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n";

    #[test]
    fn same_rules_as_parse_request() {
        use HandshakeError as E;
        // Each rule broken once, and what both functions answer.
        let cases: &[(&str, &str, Result<(), E>)] = &[
            ("", "", Ok(())),
            ("GET /", "POST /", Err(E::MethodNotGet)),
            ("HTTP/1.1", "HTTP/1.0", Err(E::HttpVersion)),
            ("Host: h\r\n", "", Err(E::MissingHost)),
            (
                "Host: h\r\n",
                "Host: h\r\nHost: i\r\n",
                Err(E::DuplicateHeader),
            ),
            ("Upgrade: websocket", "Upgrade: h2c", Err(E::MissingUpgrade)),
            (
                "Connection: Upgrade",
                "Connection: close",
                Err(E::MissingConnectionUpgrade),
            ),
            ("Version: 13", "Version: 8", Err(E::UnsupportedVersion)),
            (
                "Version: 13\r\n",
                "Version: 13\r\nSec-WebSocket-Version: 13\r\n",
                Err(E::UnsupportedVersion),
            ),
            (
                "dGhlIHNhbXBsZSBub25jZQ==",
                "dGhlIHNhbXBsZSBub25jZQ=",
                Err(E::InvalidKey),
            ),
            (
                "Host: h\r\n",
                "Host: h\r\nOrigin: a\r\nOrigin: b\r\n",
                Err(E::DuplicateHeader),
            ),
            (
                "Host: h\r\n",
                "Host: h\r\nSec-WebSocket-Extensions: a; b=\"c\r\n",
                Err(E::InvalidExtension),
            ),
            (
                "Host: h\r\n",
                "Host: h\r\nOrigin: https://o.test\r\nSec-WebSocket-Protocol: a, b\r\nSec-WebSocket-Extensions: permessage-deflate; client_max_window_bits, x\r\n",
                Ok(()),
            ),
            (
                "Connection: Upgrade",
                "CONNECTION: keep-alive, UPGRADE",
                Ok(()),
            ),
        ];
        for (from, to, want) in cases {
            let head = BASE.replace(from, to);
            let (whole, parts) = both(head.as_bytes()).unwrap();
            assert_eq!(whole, parts, "{from:?} -> {to:?}");
            assert_eq!(
                whole.map(|_| ()),
                want.map_err(Error::Handshake),
                "{from:?} -> {to:?}"
            );
        }
        assert_eq!(
            parse_request_fields("GET", 1, "", &[]).map(|_| ()),
            Err(Error::Handshake(E::MalformedHttp))
        );
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(512))]

        /// Whatever the header lines, the two functions agree.
        #[test]
        fn agree_on_any_fields(
            method in prop::sample::select(&["GET", "GET", "POST"][..]),
            lines in prop::collection::vec(
                (
                    prop::sample::select(&[
                        "Host", "Upgrade", "Connection", "Sec-WebSocket-Version",
                        "Sec-WebSocket-Key", "Origin", "Sec-WebSocket-Protocol",
                        "Sec-WebSocket-Extensions", "X-Other",
                    ][..]),
                    prop::sample::select(&[
                        "h", "websocket", "Upgrade", "keep-alive, upgrade", "13", "8",
                        "dGhlIHNhbXBsZSBub25jZQ==", "https://o.test", "chat, x",
                        "permessage-deflate; client_max_window_bits", "a; b=\"c", "",
                    ][..]),
                ),
                0..10,
            ),
        ) {
            let mut head = format!("{method} / HTTP/1.1\r\n");
            for (name, value) in &lines {
                head.push_str(&format!("{name}: {value}\r\n"));
            }
            head.push_str("\r\n");
            if let Some((whole, parts)) = both(head.as_bytes()) {
                prop_assert_eq!(whole, parts);
            }
        }
    }
}
