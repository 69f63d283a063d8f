//! The client side of the opening handshake on arbitrary bytes arriving in arbitrary reads:
//! `HeadScanner` finds the same head length incrementally as in one scan, and `parse_response`
//! with a fixed key and offer gives the same result either way. An accepted response has status
//! 101, the right accept key, a protocol and extensions among those offered, and fits the
//! limits; with another key it is refused.
#![no_main]

use httparse::EMPTY_HEADER;
use libfuzzer_sys::fuzz_target;
use ws_proto::handshake::{Response, accept_key, parse_response};
use ws_proto::{Error, HandshakeError, Limit};
use ws_proto_fuzz::{scan_head, split_schedule};

const LIMIT: usize = 512;
const HEADERS: usize = 8;
const KEY: &[u8] = b"dGhlIHNhbXBsZSBub25jZQ==";
const OTHER_KEY: &[u8] = b"AAAAAAAAAAAAAAAAAAAAAA==";
const PROTOCOLS: &[&str] = &["chat", "superchat", "v2.json"];
const EXTENSIONS: &str = "permessage-deflate; client_max_window_bits, x-webkit-deflate-frame";

fn parse<'h, 'b>(
    head: &'b [u8],
    headers: &'h mut [httparse::Header<'b>],
    key: &[u8],
) -> Result<Response<'h, 'b>, Error> {
    parse_response(head, headers, key, PROTOCOLS, Some(EXTENSIONS))
}

/// A comparable summary of a parse result.
fn summary(r: &Result<Response<'_, '_>, Error>) -> Result<Vec<u8>, Error> {
    match r {
        Ok(res) => {
            let mut s = Vec::new();
            for h in res.headers() {
                s.extend_from_slice(h.name.as_bytes());
                s.push(0);
                s.extend_from_slice(h.value);
                s.push(0);
            }
            s.extend_from_slice(res.protocol().unwrap_or("-").as_bytes());
            Ok(s)
        }
        Err(e) => Err(*e),
    }
}

fuzz_target!(|data: &[u8]| {
    let (_, schedule, bytes) = split_schedule(data, 15);
    let Some(n) = scan_head(bytes, schedule, LIMIT) else {
        return;
    };
    let head = &bytes[..n];

    let mut headers = [EMPTY_HEADER; HEADERS];
    let result = parse(head, &mut headers, KEY);
    let copy = head.to_vec();
    let mut headers2 = [EMPTY_HEADER; HEADERS];
    assert_eq!(summary(&parse(&copy, &mut headers2, KEY)), summary(&result));

    let mut more = [EMPTY_HEADER; 4 * HEADERS];
    let larger = parse(head, &mut more, KEY);
    match &result {
        Err(Error::LimitExceeded(Limit::HeaderCount)) => {}
        _ => assert_eq!(
            summary(&larger),
            summary(&result),
            "header array size changed result"
        ),
    }

    match result {
        Ok(res) => {
            assert_eq!(res.status(), 101);
            assert!(res.headers().len() <= HEADERS && n <= LIMIT);
            if let Some(p) = res.protocol() {
                assert!(PROTOCOLS.contains(&p), "unoffered protocol {p:?}");
            }
            let offered = ["permessage-deflate", "x-webkit-deflate-frame"];
            for e in res.extensions() {
                let name = e.split(';').next().unwrap().trim_matches([' ', '\t']);
                assert!(
                    offered.iter().any(|o| o.eq_ignore_ascii_case(name)),
                    "unoffered extension {e:?}"
                );
            }
            let accept = res.header("Sec-WebSocket-Accept").expect("accept header");
            let accept = accept.trim_ascii();
            assert_eq!(accept, &accept_key(KEY)[..]);
            let mut h = [EMPTY_HEADER; HEADERS];
            assert_eq!(
                parse(head, &mut h, OTHER_KEY).map(|_| ()),
                Err(Error::Handshake(HandshakeError::InvalidAccept))
            );
        }
        Err(e) => {
            assert!(
                matches!(
                    e,
                    Error::Handshake(_) | Error::LimitExceeded(Limit::HeaderCount)
                ),
                "{e:?}"
            );
            if let Error::Handshake(HandshakeError::UnexpectedStatus(s)) = e {
                assert_ne!(s, 101);
            }
        }
    }
});
