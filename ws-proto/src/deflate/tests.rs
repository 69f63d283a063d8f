//! Tests of permessage-deflate negotiation and parameter writing.

use super::*;
use std::vec::Vec;

fn items(s: &str) -> Vec<&str> {
    s.split(',').map(str::trim).collect()
}

#[test]
fn server_picks_first_acceptable_offer() {
    let c = DeflateConfig::CONTEXT_TAKEOVER;
    let n = negotiate_server(
        items("x-foo, permessage-deflate; client_max_window_bits"),
        &c,
    )
    .unwrap();
    assert_eq!(
        (n.server_max_window_bits, n.client_max_window_bits),
        (15, 15)
    );
    assert!(!n.server_no_context_takeover);
    let n = negotiate_server(
            items("permessage-deflate; server_max_window_bits=7, permessage-deflate; server_no_context_takeover; server_max_window_bits=10"),
            &c,
        )
        .unwrap();
    assert!(n.server_no_context_takeover);
    assert_eq!(n.server_max_window_bits, 10);
    let mut out = [0u8; 128];
    let len = write_response(&n, &mut out).unwrap();
    assert_eq!(
        &out[..len],
        b"permessage-deflate; server_no_context_takeover; server_max_window_bits=10"
    );
    for bad in [
        "permessage-deflate; foo",
        "permessage-deflate; server_max_window_bits",
        "permessage-deflate; server_max_window_bits=16",
        "permessage-deflate; client_max_window_bits=08x",
        "permessage-deflate; server_no_context_takeover; server_no_context_takeover",
        "permessage-deflate; client_max_window_bits; client_max_window_bits=9",
        "permessage-deflate; server_no_context_takeover=1",
        "permessage-deflate;",
    ] {
        assert_eq!(negotiate_server([bad], &c), None, "{bad}");
    }
    let strict = DeflateConfig {
        accept_no_context_takeover: false,
        ..c
    };
    assert_eq!(
        negotiate_server(["permessage-deflate; server_no_context_takeover"], &strict),
        None
    );
    let n = negotiate_server(["permessage-deflate; client_max_window_bits=\"9\""], &c).unwrap();
    assert_eq!(n.client_max_window_bits, 9);
    let len = write_response(&n, &mut out).unwrap();
    assert_eq!(&out[..len], b"permessage-deflate; client_max_window_bits=9");
    let lean = negotiate_server(["permessage-deflate"], &DeflateConfig::LEAN).unwrap();
    assert!(lean.server_no_context_takeover && lean.client_no_context_takeover);
}

#[test]
fn client_checks_response() {
    let c = DeflateConfig::CONTEXT_TAKEOVER;
    let mut out = [0u8; 128];
    let len = write_offer(&c, &mut out).unwrap();
    assert_eq!(
        &out[..len],
        &b"permessage-deflate; client_max_window_bits, \
               permessage-deflate; client_no_context_takeover; client_max_window_bits"[..]
    );
    assert_eq!(negotiate_client([], &c), Ok(None));
    let n = negotiate_client(
        ["permessage-deflate; server_no_context_takeover; client_max_window_bits=9"],
        &c,
    )
    .unwrap()
    .unwrap();
    assert!(n.server_no_context_takeover);
    assert_eq!(n.client_max_window_bits, 9);
    let bad = Err(Error::Handshake(HandshakeError::InvalidExtension));
    assert_eq!(
        negotiate_client(["permessage-deflate; client_max_window_bits"], &c),
        bad
    );
    assert_eq!(negotiate_client(["permessage-deflate; foo=1"], &c), bad);
    assert_eq!(
        negotiate_client(["permessage-deflate", "permessage-deflate"], &c),
        bad
    );
    assert_eq!(
        negotiate_client(["x-other"], &c),
        Err(Error::Handshake(HandshakeError::UnofferedExtension))
    );
    let no_bits = DeflateConfig {
        accept_max_window_bits: false,
        ..c
    };
    assert_eq!(
        negotiate_client(["permessage-deflate; client_max_window_bits=10"], &no_bits),
        bad
    );
}

#[test]
fn writers_stop_at_the_end_of_the_buffer() {
    let lean = DeflateConfig {
        max_window_bits: 9,
        ..DeflateConfig::LEAN
    };
    let n = negotiate_server(
        ["permessage-deflate; server_max_window_bits=10; client_max_window_bits=9"],
        &lean,
    )
    .unwrap();
    let mut full = [0u8; 256];
    let offer = write_offer(&lean, &mut full).unwrap();
    assert_eq!(
        &full[..offer],
        b"permessage-deflate; server_no_context_takeover; client_no_context_takeover; \
              server_max_window_bits=9; client_max_window_bits"
    );
    let response = write_response(&n, &mut full).unwrap();
    assert_eq!(
        &full[..response],
        b"permessage-deflate; server_no_context_takeover; client_no_context_takeover; \
              server_max_window_bits=9; client_max_window_bits=9"
    );
    for len in 0..offer {
        let mut short = std::vec![0u8; len];
        assert_eq!(write_offer(&lean, &mut short), Err(Error::BufferTooSmall));
    }
    for len in 0..response {
        let mut short = std::vec![0u8; len];
        assert_eq!(write_response(&n, &mut short), Err(Error::BufferTooSmall));
    }
    let mut exact = std::vec![0u8; offer];
    assert_eq!(write_offer(&lean, &mut exact), Ok(offer));
}

#[test]
fn parameters_follow_the_extension_grammar() {
    let c = DeflateConfig::CONTEXT_TAKEOVER;
    // Spaces and tabs around separators, names in any case, quoted values.
    let n = negotiate_server(
        ["permessage-deflate ;\tSERVER_MAX_WINDOW_BITS = \"12\" ; client_max_window_bits"],
        &c,
    )
    .unwrap();
    assert_eq!(
        (n.server_max_window_bits, n.client_max_window_bits),
        (12, 15)
    );
    for bad in [
        // A `;` inside a quoted value does not start a parameter, and the value is not bits.
        "permessage-deflate; client_max_window_bits=\"9;\"",
        // Escapes are not undone: `\9` is not a number.
        "permessage-deflate; client_max_window_bits=\"\\9\"",
        "permessage-deflate; client_max_window_bits=\"9",
        "permessage-deflate; client_max_window_bits=9\"",
        "permessage-deflate; client_max_window_bits=\"\"",
        "permessage-deflate; client_max_window_bits=",
        "permessage-deflate; ; client_max_window_bits",
        "permessage-deflate; server_no_context_takeover=\"\"",
    ] {
        assert_eq!(negotiate_server([bad], &c), None, "{bad}");
        assert_eq!(
            negotiate_client([bad], &c),
            Err(Error::Handshake(HandshakeError::InvalidExtension)),
            "{bad}"
        );
    }
}

#[test]
fn the_default_server_asks_for_client_no_context_takeover() {
    let n = negotiate_server(
        ["permessage-deflate; client_max_window_bits"],
        &DeflateConfig::DEFAULT,
    )
    .unwrap();
    assert!(n.client_no_context_takeover && !n.server_no_context_takeover);
    assert!(n.shared_compressor);
    let mut out = [0u8; 128];
    let len = write_response(&n, &mut out).unwrap();
    assert_eq!(
        &out[..len],
        b"permessage-deflate; client_no_context_takeover"
    );
    // A client accepts the answer (it allows its own context to be reset).
    let got = negotiate_client(
        [core::str::from_utf8(&out[..len]).unwrap()],
        &DeflateConfig::DEFAULT,
    )
    .unwrap()
    .unwrap();
    assert!(got.client_no_context_takeover);
    // Without the setting, the offer is taken as it is.
    let n = negotiate_server(
        ["permessage-deflate"],
        &DeflateConfig::DEFAULT.with_client_no_context_takeover(false),
    )
    .unwrap();
    assert!(!n.client_no_context_takeover);
}
