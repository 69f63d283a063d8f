//! Tests of the HTTP/2 extended CONNECT checks.

use super::*;
use crate::error::Limit;

fn h<'b>(name: &'b str, value: &'b str) -> Header<'b> {
    Header {
        name,
        value: value.as_bytes(),
    }
}

const GOOD: Pseudo<'static> = Pseudo {
    method: "CONNECT",
    protocol: Some("websocket"),
    authority: "example.com:8443",
    path: "/chat?room=1",
};

fn version() -> Header<'static> {
    h("sec-websocket-version", "13")
}

fn err(e: HandshakeError) -> Result<(), Error> {
    Err(Error::Handshake(e))
}

fn check(pseudo: &Pseudo<'_>, headers: &[Header<'_>]) -> Result<(), Error> {
    parse_request(pseudo, headers).map(|_| ())
}

#[test]
fn accepts_a_minimal_request() {
    let headers = [version()];
    let req = parse_request(&GOOD, &headers).unwrap();
    assert_eq!(req.host(), "example.com:8443");
    assert_eq!(req.path(), "/chat?room=1");
    assert_eq!(req.key(), b"");
    assert_eq!(req.origin(), None);
    assert_eq!(req.protocols().count(), 0);
    assert_eq!(req.extensions().count(), 0);
}

#[test]
fn exposes_offers_and_origin() {
    let headers = [
        version(),
        h("origin", " https://example.com "),
        h("sec-websocket-protocol", "chat.v1, chat.v2"),
        h("sec-websocket-protocol", "chat.v3"),
        h(
            "sec-websocket-extensions",
            "permessage-deflate; client_max_window_bits, x-other",
        ),
        h("cookie", "a=b"),
    ];
    let req = parse_request(&GOOD, &headers).unwrap();
    assert_eq!(req.origin(), Some("https://example.com"));
    let protocols: std::vec::Vec<&str> = req.protocols().collect();
    assert_eq!(protocols, ["chat.v1", "chat.v2", "chat.v3"]);
    let extensions: std::vec::Vec<&str> = req.extensions().collect();
    assert_eq!(
        extensions,
        ["permessage-deflate; client_max_window_bits", "x-other"]
    );
    assert_eq!(req.header("COOKIE"), Some(&b"a=b"[..]));
    assert_eq!(req.headers().len(), 6);
}

#[test]
fn method_must_be_connect() {
    let headers = [version()];
    for method in ["GET", "POST", "connect", "CONNECTX", ""] {
        let p = Pseudo { method, ..GOOD };
        assert_eq!(
            check(&p, &headers),
            err(HandshakeError::MethodNotConnect),
            "{method}"
        );
    }
}

#[test]
fn protocol_must_be_websocket() {
    let headers = [version()];
    let missing = Pseudo {
        protocol: None,
        ..GOOD
    };
    assert_eq!(
        check(&missing, &headers),
        err(HandshakeError::MissingProtocol)
    );
    for protocol in ["webtransport", "websockets", "websocke", "", "websocket "] {
        let p = Pseudo {
            protocol: Some(protocol),
            ..GOOD
        };
        assert_eq!(
            check(&p, &headers),
            err(HandshakeError::UnsupportedProtocol),
            "{protocol:?}"
        );
    }
    // Protocol names compare case-insensitively (RFC 9110 section 7.8).
    let p = Pseudo {
        protocol: Some("WebSocket"),
        ..GOOD
    };
    assert_eq!(check(&p, &headers), Ok(()));
}

#[test]
fn method_is_checked_before_protocol() {
    let p = Pseudo {
        method: "GET",
        protocol: None,
        ..GOOD
    };
    assert_eq!(check(&p, &[]), err(HandshakeError::MethodNotConnect));
}

#[test]
fn authority_and_path_are_required() {
    let headers = [version()];
    for authority in ["", " \t"] {
        let p = Pseudo { authority, ..GOOD };
        assert_eq!(check(&p, &headers), err(HandshakeError::MissingHost));
    }
    let p = Pseudo { path: "", ..GOOD };
    assert_eq!(check(&p, &headers), err(HandshakeError::MalformedHttp));
    let p = Pseudo { path: "/", ..GOOD };
    assert_eq!(check(&p, &headers), Ok(()));
}

#[test]
fn connection_specific_fields_are_refused() {
    for name in ["connection", "Upgrade"] {
        let headers = [version(), h(name, "websocket")];
        assert_eq!(
            check(&GOOD, &headers),
            err(HandshakeError::MalformedHttp),
            "{name}"
        );
    }
}

#[test]
fn version_must_be_13_once() {
    assert_eq!(check(&GOOD, &[]), err(HandshakeError::UnsupportedVersion));
    for v in ["8", "12", "14", "", "13, 8"] {
        let headers = [h("sec-websocket-version", v)];
        assert_eq!(
            check(&GOOD, &headers),
            err(HandshakeError::UnsupportedVersion),
            "{v:?}"
        );
    }
    let twice = [version(), version()];
    assert_eq!(
        check(&GOOD, &twice),
        err(HandshakeError::UnsupportedVersion)
    );
    let padded = [h("Sec-WebSocket-Version", " 13 ")];
    assert_eq!(check(&GOOD, &padded), Ok(()));
}

#[test]
fn key_is_ignored() {
    let headers = [version(), h("sec-websocket-key", "not base64")];
    assert_eq!(check(&GOOD, &headers), Ok(()));
}

#[test]
fn origin_protocol_and_extension_rules() {
    let two_origins = [version(), h("origin", "a"), h("origin", "b")];
    assert_eq!(
        check(&GOOD, &two_origins),
        err(HandshakeError::DuplicateHeader)
    );
    let bad_origin = [
        version(),
        Header {
            name: "origin",
            value: b"\xff",
        },
    ];
    assert_eq!(
        check(&GOOD, &bad_origin),
        err(HandshakeError::MalformedHttp)
    );
    let bad_protocol = [
        version(),
        Header {
            name: "sec-websocket-protocol",
            value: b"chat\xff",
        },
    ];
    assert_eq!(
        check(&GOOD, &bad_protocol),
        err(HandshakeError::MalformedHttp)
    );
    for ext in ["permessage-deflate; x=\"open", "; x", "bad name"] {
        let headers = [version(), h("sec-websocket-extensions", ext)];
        assert_eq!(
            check(&GOOD, &headers),
            err(HandshakeError::InvalidExtension),
            "{ext:?}"
        );
    }
}

#[test]
fn statuses() {
    let status = |e: HandshakeError| reject_status(&Error::Handshake(e));
    assert_eq!(status(HandshakeError::MethodNotConnect), 400);
    assert_eq!(status(HandshakeError::MissingProtocol), 400);
    assert_eq!(status(HandshakeError::UnsupportedProtocol), 501);
    assert_eq!(status(HandshakeError::UnsupportedVersion), 400);
    assert_eq!(status(HandshakeError::MissingHost), 400);
    assert_eq!(status(HandshakeError::InvalidExtension), 400);
    assert_eq!(
        reject_status(&Error::LimitExceeded(Limit::HeaderCount)),
        431
    );
    assert_eq!(reject_status(&Error::BufferTooSmall), 500);
}

#[test]
fn response_status_must_be_200() {
    for status in [101, 201, 204, 400, 404, 501] {
        assert_eq!(
            parse_response(status, &[], &[], None),
            Err(Error::Handshake(HandshakeError::UnexpectedStatus(status)))
        );
    }
    let res = parse_response(200, &[], &["chat"], Some("permessage-deflate")).unwrap();
    assert_eq!((res.status(), res.protocol()), (200, None));
    assert_eq!(res.extensions().count(), 0);
}

#[test]
fn response_choices_must_have_been_offered() {
    let chosen = [h("sec-websocket-protocol", "chat.v2")];
    let res = parse_response(200, &chosen, &["chat.v1", "chat.v2"], None).unwrap();
    assert_eq!(res.protocol(), Some("chat.v2"));
    assert_eq!(
        parse_response(200, &chosen, &["chat.v1"], None),
        Err(Error::Handshake(HandshakeError::UnofferedProtocol))
    );
    let twice = [chosen[0], chosen[0]];
    assert_eq!(
        parse_response(200, &twice, &["chat.v2"], None),
        Err(Error::Handshake(HandshakeError::DuplicateHeader))
    );

    let deflate = [h(
        "sec-websocket-extensions",
        "permessage-deflate; server_no_context_takeover",
    )];
    let offer = Some("permessage-deflate; client_max_window_bits");
    let res = parse_response(200, &deflate, &[], offer).unwrap();
    let accepted: std::vec::Vec<&str> = res.extensions().collect();
    assert_eq!(accepted, ["permessage-deflate; server_no_context_takeover"]);
    assert_eq!(
        parse_response(200, &deflate, &[], None),
        Err(Error::Handshake(HandshakeError::UnofferedExtension))
    );
    let other = [h("sec-websocket-extensions", "x-webkit-deflate-frame")];
    assert_eq!(
        parse_response(200, &other, &[], offer),
        Err(Error::Handshake(HandshakeError::UnofferedExtension))
    );
    let malformed = [h("sec-websocket-extensions", "permessage-deflate; x=\"")];
    assert_eq!(
        parse_response(200, &malformed, &[], offer),
        Err(Error::Handshake(HandshakeError::InvalidExtension))
    );
}
