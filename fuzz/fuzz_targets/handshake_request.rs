//! The server side of the opening handshake on arbitrary bytes arriving in arbitrary reads:
//! `HeadScanner` finds the same head length incrementally as in one scan (and as a reference
//! search), `parse_request` gives the same result on either, respects its limits, and grows
//! monotonically with the header array. An accepted request answered with `write_accept` is
//! accepted by `parse_response`; a refused one answered with `write_reject` is refused. A
//! request rewritten from an accepted one with `write_request` parses to the same values.
#![no_main]

use httparse::EMPTY_HEADER;
use libfuzzer_sys::fuzz_target;
use ws_proto::handshake::{
    Accept, ClientRequest, accept_key, parse_request, parse_response, reject_status, write_accept,
    write_reject, write_request,
};
use ws_proto::{Error, HandshakeError, Limit};
use ws_proto_fuzz::{scan_head, split_schedule};

const LIMIT: usize = 512;
const HEADERS: usize = 8;

/// An RFC 7230 token.
fn is_token(s: &str) -> bool {
    !s.is_empty()
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b))
}

/// A comparable summary of a parse result.
fn summary(r: &Result<ws_proto::handshake::Request<'_, '_>, Error>) -> Result<Vec<u8>, Error> {
    match r {
        Ok(req) => {
            let mut s = Vec::new();
            for h in req.headers() {
                s.extend_from_slice(h.name.as_bytes());
                s.push(0);
                s.extend_from_slice(h.value);
                s.push(0);
            }
            s.extend_from_slice(req.path().as_bytes());
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
    let result = parse_request(head, &mut headers);
    let copy = head.to_vec();
    let mut headers2 = [EMPTY_HEADER; HEADERS];
    assert_eq!(
        summary(&parse_request(&copy, &mut headers2)),
        summary(&result)
    );

    let mut more = [EMPTY_HEADER; 4 * HEADERS];
    let larger = parse_request(head, &mut more);
    match &result {
        Err(Error::LimitExceeded(Limit::HeaderCount)) => {}
        _ => assert_eq!(
            summary(&larger),
            summary(&result),
            "header array size changed result"
        ),
    }

    match result {
        Ok(req) => {
            assert!(req.headers().len() <= HEADERS && n <= LIMIT);
            assert!(!req.path().is_empty());
            let key = req.key();
            assert_eq!(key.len(), 24);
            assert!(!req.host().starts_with([' ', '\t']) && !req.host().ends_with([' ', '\t']));
            for p in req.protocols() {
                assert!(!p.is_empty() && !p.contains(',') && p.trim_matches([' ', '\t']) == p);
            }
            for e in req.extensions() {
                assert!(!e.is_empty() && e.trim_matches([' ', '\t']) == e);
            }

            let tokens: Vec<&str> = req.protocols().filter(|p| is_token(p)).collect();
            let extension = req.extensions().next();

            // The same request written by a client parses to the same values.
            let client = ClientRequest::new(req.host(), req.path(), key)
                .with_protocols(&tokens)
                .with_extensions(extension);
            let mut written = [0u8; 2048];
            let visible = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_graphic());
            match write_request(&mut written, &client) {
                Ok(len) => {
                    let mut wh = [EMPTY_HEADER; 16];
                    let again = parse_request(&written[..len], &mut wh)
                        .expect("server refuses a request written by write_request");
                    assert_eq!(
                        (again.host(), again.path(), again.key()),
                        (req.host(), req.path(), key)
                    );
                    assert!(again.protocols().eq(tokens.iter().copied()));
                    assert_eq!(again.extensions().next(), extension);
                }
                Err(e) => {
                    assert_eq!(e, Error::Handshake(HandshakeError::MalformedHttp));
                    assert!(!visible(req.host()) || !visible(req.path()), "{client:?}");
                }
            }

            // Accept with the first offered protocol that is a token and the first extension
            // offer: the client must take the answer.
            let protocol = tokens.first().copied();
            let accept = Accept::new()
                .with_protocol(protocol)
                .with_extensions(extension);
            let mut out = [0u8; 2048];
            let Ok(len) = write_accept(&mut out, key, &accept) else {
                // Only an extension offer holding a byte the writer refuses may fail here.
                assert!(extension.is_some_and(|e| e.bytes().any(|b| b == 0)));
                return;
            };
            let response = &out[..len];
            assert_eq!(
                ws_proto_fuzz::reference_head_len(response, len),
                Ok(Some(len))
            );
            let offered: Vec<&str> = req.protocols().collect();
            let mut rh = [EMPTY_HEADER; 16];
            let res = parse_response(response, &mut rh, key, &offered, extension)
                .expect("client refuses the server's accept");
            assert_eq!(res.status(), 101);
            assert_eq!(res.protocol(), protocol);
            assert_eq!(res.extensions().next(), extension);
            assert_eq!(
                res.header("Sec-WebSocket-Accept"),
                Some(&accept_key(key)[..])
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
            let status = reject_status(&e);
            assert!(matches!(status, 400 | 426 | 431), "{e:?} -> {status}");
            let mut out = [0u8; 512];
            let len = write_reject(&mut out, status, &[], b"no").expect("write_reject");
            let response = &out[..len];
            let head_len = ws_proto_fuzz::reference_head_len(response, len)
                .unwrap()
                .expect("reject has a head");
            let mut rh = [EMPTY_HEADER; 16];
            let r = parse_response(
                &response[..head_len],
                &mut rh,
                b"dGhlIHNhbXBsZSBub25jZQ==",
                &[],
                None,
            );
            assert_eq!(
                r.map(|_| ()),
                Err(Error::Handshake(HandshakeError::UnexpectedStatus(status)))
            );
        }
    }
});
