use std::string::String;
use std::vec::Vec;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use httparse::{EMPTY_HEADER, Header};
use proptest::prelude::*;

use super::*;

const KEY: &[u8] = b"dGhlIHNhbXBsZSBub25jZQ==";
const ACCEPT: &[u8] = b"s3pPLMBiTxaQ9kYGzzhZRbK+xOo=";

const CHROME: &[u8] = b"GET /chat?room=1 HTTP/1.1\r\n\
Host: example.com:8000\r\n\
Connection: Upgrade\r\n\
Pragma: no-cache\r\n\
Cache-Control: no-cache\r\n\
User-Agent: Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/124.0.0.0 Safari/537.36\r\n\
Upgrade: websocket\r\n\
Origin: http://example.com\r\n\
Sec-WebSocket-Version: 13\r\n\
Accept-Encoding: gzip, deflate, br, zstd\r\n\
Accept-Language: en-US,en;q=0.9\r\n\
Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\
Sec-WebSocket-Extensions: permessage-deflate; client_max_window_bits\r\n\
\r\n";

/// A minimal valid request with `extra` header lines (each ending in CRLF) inserted.
fn request_with(extra: &str) -> Vec<u8> {
    let mut s = String::from(
        "GET / HTTP/1.1\r\nHost: h\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
         Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n",
    );
    s.push_str(extra);
    s.push_str("\r\n");
    s.into_bytes()
}

fn parse_req(head: &[u8]) -> Result<(), Error> {
    let mut headers = [EMPTY_HEADER; 32];
    parse_request(head, &mut headers).map(|_| ())
}

fn hserr(e: HandshakeError) -> Result<(), Error> {
    Err(Error::Handshake(e))
}

/// A minimal valid 101 response for `KEY` with `extra` header lines inserted.
fn response_with(extra: &str) -> Vec<u8> {
    let mut s = String::from(
        "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
         Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n",
    );
    s.push_str(extra);
    s.push_str("\r\n");
    s.into_bytes()
}

fn parse_res(head: &[u8], protocols: &[&str], extensions: Option<&str>) -> Result<(), Error> {
    let mut headers = [EMPTY_HEADER; 32];
    parse_response(head, &mut headers, KEY, protocols, extensions).map(|_| ())
}

// ----- keys ------------------------------------------------------------------------------------

#[test]
fn accept_key_rfc_example() {
    assert_eq!(&accept_key(KEY), ACCEPT);
}

#[test]
fn generate_key_round_trips() {
    for seed in [[0u8; 16], [0xff; 16], *b"the sample nonce"] {
        let key = generate_key(seed);
        assert_eq!(key.len(), 24);
        let mut decoded = [0u8; 18];
        assert_eq!(STANDARD.decode_slice(key, &mut decoded), Ok(16));
        assert_eq!(decoded[..16], seed);
        assert!(valid_key(&key));
    }
    assert_eq!(&generate_key(*b"the sample nonce"), KEY);
}

// ----- head scanner ----------------------------------------------------------------------------

/// The head length by a naive search, with the same limit semantics as `HeadScanner`.
fn naive_scan(buf: &[u8], max: usize) -> Result<Option<usize>, Error> {
    let window = &buf[..buf.len().min(max)];
    match window.windows(4).position(|w| w == b"\r\n\r\n") {
        Some(i) => Ok(Some(i + 4)),
        None if buf.len() > max => Err(Error::LimitExceeded(Limit::HeaderBytes)),
        None => Ok(None),
    }
}

/// Feeds growing prefixes of `buf` ending at each of `cuts`, then all of it.
fn feed(scanner: &mut HeadScanner, buf: &[u8], cuts: &[usize]) -> Result<Option<usize>, Error> {
    for &cut in cuts {
        if let r @ (Ok(Some(_)) | Err(_)) = scanner.scan(&buf[..cut]) {
            return r;
        }
    }
    scanner.scan(buf)
}

/// A growing buffer in which every byte given to a scanner in an earlier call is overwritten:
/// all carriage returns, with a line feed two bytes before the newest data. A scanner that
/// examined any of those bytes again (from the start, or backing up three bytes) would find a
/// terminator of this buffer's making wherever new data starts with a line feed; answers equal
/// to those on the true bytes show that each byte is examined in one call only.
struct Poisoned {
    buf: Vec<u8>,
    seen: usize,
}

impl Poisoned {
    fn new(bytes: &[u8]) -> Self {
        Self {
            buf: bytes.to_vec(),
            seen: 0,
        }
    }

    /// Scans the first `n` bytes (`n` never shrinks), then poisons them.
    fn scan(&mut self, scanner: &mut HeadScanner, n: usize) -> Result<Option<usize>, Error> {
        let result = scanner.scan(&self.buf[..n]);
        self.buf[self.seen.saturating_sub(2)..n].fill(b'\r');
        if n >= 2 {
            self.buf[n - 2] = b'\n';
        }
        self.seen = n;
        result
    }
}

#[test]
fn scanner_split_anywhere() {
    let mut buf = CHROME.to_vec();
    buf.extend_from_slice(b"\x81\x05hello");
    let expected = HeadScanner::new(8192).scan(&buf);
    assert_eq!(expected, Ok(Some(CHROME.len())));
    for a in 0..=buf.len() {
        assert_eq!(feed(&mut HeadScanner::new(8192), &buf, &[a]), expected);
    }
    // Three calls, with both cuts near the terminator.
    let end = CHROME.len();
    for a in end - 8..=end {
        for b in a..=buf.len() {
            assert_eq!(feed(&mut HeadScanner::new(8192), &buf, &[a, b]), expected);
        }
    }
}

#[test]
fn scanner_tricky_terminators() {
    for (buf, want) in [
        (&b"\r\n\r\n"[..], Some(4)),
        (b"a\r\r\n\r\n", Some(6)),
        (b"a\r\n\r\r\n\r\n", Some(8)),
        (b"a\n\n\r\n\r\n", Some(7)),
        (b"a\r\n\n\r\n", None),
        (b"a\r\n\r", None),
    ] {
        for cut in 0..=buf.len() {
            assert_eq!(feed(&mut HeadScanner::new(100), buf, &[cut]), Ok(want));
        }
    }
}

#[test]
fn scanner_never_rescans() {
    let mut head = Vec::new();
    head.extend_from_slice(b"GET / HTTP/1.1\r\n");
    while head.len() < 20_000 {
        head.extend_from_slice(b"X-Filler: 0123456789abcdef\r\n");
    }
    head.extend_from_slice(b"\r\n");
    // Byte by byte, with every byte overwritten once it has been scanned: a scanner that looked
    // at any byte twice would report a head at the first line feed.
    let mut scanner = HeadScanner::new(64 * 1024);
    let mut poisoned = Poisoned::new(&head);
    let mut result = Ok(None);
    for n in 1..=head.len() {
        result = poisoned.scan(&mut scanner, n);
        if result != Ok(None) {
            break;
        }
    }
    assert_eq!(result, Ok(Some(head.len())));
    // Calls after the head was found examine nothing.
    assert_eq!(
        poisoned.scan(&mut scanner, head.len()),
        Ok(Some(head.len()))
    );
    assert_eq!(scanner.scan(b""), Ok(Some(head.len())));
    assert_eq!(scanner.scan(b"\r\n\r\n"), Ok(Some(head.len())));
}

#[test]
fn scanner_limit() {
    let head = request_with("");
    let n = head.len();
    assert_eq!(HeadScanner::new(n).scan(&head), Ok(Some(n)));
    assert_eq!(
        HeadScanner::new(n - 1).scan(&head),
        Err(Error::LimitExceeded(Limit::HeaderBytes))
    );
    // Byte by byte, the error comes with byte max + 1.
    let mut scanner = HeadScanner::new(n - 1);
    for i in 1..n {
        assert_eq!(scanner.scan(&head[..i]), Ok(None));
    }
    assert_eq!(
        scanner.scan(&head),
        Err(Error::LimitExceeded(Limit::HeaderBytes))
    );
    // A head within the limit followed by more data than the limit is still found.
    let mut long = head.clone();
    long.extend_from_slice(&[0u8; 100]);
    assert_eq!(HeadScanner::new(n).scan(&long), Ok(Some(n)));
    // No terminator: exactly max bytes waits, max + 1 fails.
    let junk = [b'a'; 11];
    assert_eq!(HeadScanner::new(10).scan(&junk[..10]), Ok(None));
    assert_eq!(
        HeadScanner::new(10).scan(&junk),
        Err(Error::LimitExceeded(Limit::HeaderBytes))
    );
    assert_eq!(
        HeadScanner::new(0).scan(b"a"),
        Err(Error::LimitExceeded(Limit::HeaderBytes))
    );
    assert_eq!(HeadScanner::new(0).scan(b""), Ok(None));
}

#[test]
fn scanner_reset_and_misuse() {
    let head = request_with("");
    let mut scanner = HeadScanner::new(1000);
    assert_eq!(scanner.scan(&head), Ok(Some(head.len())));
    scanner.reset();
    // Nothing of the earlier head is remembered: a new one is found from its first byte...
    assert_eq!(scanner.scan(b"\r\n\r\n"), Ok(Some(4)));
    // ...and a partly matched terminator is forgotten too.
    scanner.reset();
    assert_eq!(scanner.scan(b"a\r\n\r"), Ok(None));
    scanner.reset();
    assert_eq!(scanner.scan(b"\n"), Ok(None));
    scanner.reset();
    assert_eq!(scanner.scan(&head[..5]), Ok(None));
    // A buffer shorter than what was scanned does not panic.
    assert_eq!(scanner.scan(&head[..2]), Ok(None));
    assert_eq!(scanner.scan(&head), Ok(Some(head.len())));
}

// ----- parse_request ---------------------------------------------------------------------------

#[test]
fn chrome_request() {
    let mut headers = [EMPTY_HEADER; 16];
    let req = parse_request(CHROME, &mut headers).unwrap();
    assert_eq!(req.path(), "/chat?room=1");
    assert_eq!(req.host(), "example.com:8000");
    assert_eq!(req.origin(), Some("http://example.com"));
    assert_eq!(req.key(), KEY);
    assert_eq!(req.header("pragma"), Some(&b"no-cache"[..]));
    assert_eq!(req.header("X-Missing"), None);
    assert_eq!(req.headers().len(), 12);
    assert_eq!(req.protocols().count(), 0);
    assert_eq!(
        req.extensions().collect::<Vec<_>>(),
        ["permessage-deflate; client_max_window_bits"]
    );
}

#[test]
fn mixed_case_and_list_tokens() {
    let head = b"GET / HTTP/1.1\r\nhost: h\r\nupgrade: WebSocket\r\n\
connection: keep-alive, Upgrade\r\nSEC-WEBSOCKET-VERSION: 13\r\n\
sec-websocket-key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n";
    assert_eq!(parse_req(head), Ok(()));
    for connection in [
        "upgrade",
        "UPGRADE",
        "keep-alive,upgrade",
        "Upgrade , keep-alive",
    ] {
        let h = request_with("").replace_all(
            "Connection: Upgrade",
            &["Connection: ", connection].concat(),
        );
        assert_eq!(parse_req(&h), Ok(()), "{connection}");
    }
    for upgrade in ["WEBSOCKET", "h2c, websocket", "websocket\t"] {
        let h =
            request_with("").replace_all("Upgrade: websocket", &["Upgrade: ", upgrade].concat());
        assert_eq!(parse_req(&h), Ok(()), "{upgrade}");
    }
    // The tokens may come in separate header fields.
    let h = request_with("Connection: keep-alive\r\n")
        .replace_all("Connection: Upgrade", "Connection: close");
    assert_eq!(
        parse_req(&h),
        hserr(HandshakeError::MissingConnectionUpgrade)
    );
    let h = request_with("connection: upgrade\r\n")
        .replace_all("Connection: Upgrade", "Connection: keep-alive");
    assert_eq!(parse_req(&h), Ok(()));
}

/// Byte-string replacement for building variants of a head.
trait ReplaceAll {
    fn replace_all(&self, from: &str, to: &str) -> Vec<u8>;
}

impl ReplaceAll for Vec<u8> {
    fn replace_all(&self, from: &str, to: &str) -> Vec<u8> {
        let s = String::from_utf8(self.clone()).unwrap();
        assert!(s.contains(from), "{from:?} not in head");
        s.replace(from, to).into_bytes()
    }
}

#[test]
fn each_request_rule() {
    use HandshakeError as E;
    let base = request_with("");
    assert_eq!(parse_req(&base), Ok(()));
    let cases: &[(&str, &str, Result<(), Error>)] = &[
        ("GET /", "POST /", hserr(E::MethodNotGet)),
        ("GET /", "get /", hserr(E::MethodNotGet)),
        ("HTTP/1.1", "HTTP/1.0", hserr(E::HttpVersion)),
        ("HTTP/1.1", "HTTP/2.0", hserr(E::HttpVersion)),
        ("Host: h\r\n", "", hserr(E::MissingHost)),
        (
            "Host: h\r\n",
            "Host: h\r\nHost: i\r\n",
            hserr(E::DuplicateHeader),
        ),
        ("Upgrade: websocket\r\n", "", hserr(E::MissingUpgrade)),
        (
            "Upgrade: websocket",
            "Upgrade: h2c",
            hserr(E::MissingUpgrade),
        ),
        (
            "Upgrade: websocket",
            "Upgrade: websockets",
            hserr(E::MissingUpgrade),
        ),
        (
            "Connection: Upgrade\r\n",
            "",
            hserr(E::MissingConnectionUpgrade),
        ),
        (
            "Connection: Upgrade",
            "Connection: keep-alive",
            hserr(E::MissingConnectionUpgrade),
        ),
        (
            "Connection: Upgrade",
            "Connection: Upgraded",
            hserr(E::MissingConnectionUpgrade),
        ),
        (
            "Sec-WebSocket-Version: 13\r\n",
            "",
            hserr(E::UnsupportedVersion),
        ),
        ("Version: 13", "Version: 8", hserr(E::UnsupportedVersion)),
        (
            "Version: 13",
            "Version: 13, 8",
            hserr(E::UnsupportedVersion),
        ),
        (
            "Sec-WebSocket-Version: 13\r\n",
            "Sec-WebSocket-Version: 13\r\nSec-WebSocket-Version: 8\r\n",
            hserr(E::UnsupportedVersion),
        ),
        (
            "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n",
            "",
            hserr(E::InvalidKey),
        ),
        (
            "dGhlIHNhbXBsZSBub25jZQ==",
            "dGhlIHNhbXBsZSBub25jZQ=",
            hserr(E::InvalidKey),
        ),
        (
            "dGhlIHNhbXBsZSBub25jZQ==",
            "dGhlIHNhbXBsZSBub25jZQ",
            hserr(E::InvalidKey),
        ),
        (
            "dGhlIHNhbXBsZSBub25jZQ==",
            "dGhlIHNhbXBsZSBub25jZQAA",
            hserr(E::InvalidKey),
        ),
        (
            "dGhlIHNhbXBsZSBub25jZQ==",
            "dGhlIHNhbXBsZSBub25jZR==",
            hserr(E::InvalidKey),
        ),
        (
            "dGhlIHNhbXBsZSBub25jZQ==",
            "dGhl!HNhbXBsZSBub25jZQ==",
            hserr(E::InvalidKey),
        ),
        ("dGhlIHNhbXBsZSBub25jZQ==", "", hserr(E::InvalidKey)),
        (
            "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n",
            "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n",
            hserr(E::InvalidKey),
        ),
        (
            "Host: h\r\n",
            "Host: h\r\nOrigin: a\r\nOrigin: b\r\n",
            hserr(E::DuplicateHeader),
        ),
        (
            "Host: h\r\n",
            "Host: h\r\nBad Name: x\r\n",
            hserr(E::MalformedHttp),
        ),
        ("\r\nHost", "\nHost", Ok(())),
        ("HTTP/1.1\r\n", "HTTP/1.1 \r\n", hserr(E::MalformedHttp)),
    ];
    for (from, to, want) in cases {
        let head = base.replace_all(from, to);
        assert_eq!(&parse_req(&head), want, "{from:?} -> {to:?}");
    }
    // Non-UTF-8 values where `&str` is returned.
    let mut head = request_with("Origin: @\r\n");
    let at = head.iter().position(|&b| b == b'@').unwrap();
    head[at] = 0xff;
    assert_eq!(parse_req(&head), hserr(E::MalformedHttp));
    let mut head = request_with("Sec-WebSocket-Protocol: chat, @\r\n");
    let at = head.iter().position(|&b| b == b'@').unwrap();
    head[at] = 0xfe;
    assert_eq!(parse_req(&head), hserr(E::MalformedHttp));
    // Incomplete, trailing bytes, garbage, empty.
    assert_eq!(parse_req(&base[..base.len() - 1]), hserr(E::MalformedHttp));
    let mut trailing = base.clone();
    trailing.push(b'x');
    assert_eq!(parse_req(&trailing), hserr(E::MalformedHttp));
    assert_eq!(
        parse_req(b"\x16\x03\x01\x00\xa5\r\n\r\n"),
        hserr(E::MalformedHttp)
    );
    assert_eq!(parse_req(b""), hserr(E::MalformedHttp));
    // A head ended by a bare "\n\n" before the CRLF CRLF is refused too.
    let early = request_with("\nX: y\r\n");
    assert_eq!(parse_req(&early), hserr(E::MalformedHttp));
}

#[test]
fn too_many_headers() {
    let head = request_with("");
    let mut headers = [EMPTY_HEADER; 4];
    assert_eq!(
        parse_request(&head, &mut headers).map(|_| ()),
        Err(Error::LimitExceeded(Limit::HeaderCount))
    );
    let mut exact = [EMPTY_HEADER; 5];
    assert_eq!(
        parse_request(&head, &mut exact).map(|r| r.headers().len()),
        Ok(5)
    );
    let mut none: [Header<'_>; 0] = [];
    assert_eq!(
        parse_request(&head, &mut none).map(|_| ()),
        Err(Error::LimitExceeded(Limit::HeaderCount))
    );
    let res = response_with("X: 1\r\nY: 2\r\n");
    let mut headers = [EMPTY_HEADER; 4];
    assert_eq!(
        parse_response(&res, &mut headers, KEY, &[], None).map(|_| ()),
        Err(Error::LimitExceeded(Limit::HeaderCount))
    );
}

#[test]
fn protocols_merged() {
    let head = request_with(
        "Sec-WebSocket-Protocol: chat, superchat\r\nX: y\r\n\
         sec-websocket-protocol: ,v2.json ,, \t mqtt\t\r\nSec-WebSocket-Protocol:\r\n",
    );
    let mut headers = [EMPTY_HEADER; 16];
    let req = parse_request(&head, &mut headers).unwrap();
    assert_eq!(
        req.protocols().collect::<Vec<_>>(),
        ["chat", "superchat", "v2.json", "mqtt"]
    );
}

#[test]
fn extensions_split_with_quotes() {
    let head = request_with(
        "Sec-WebSocket-Extensions: permessage-deflate; client_max_window_bits, \
         x-foo; a=\"1,2\"; b=\"q\\\"x,y\"\r\n\
         Sec-WebSocket-Extensions: ,permessage-deflate ,\r\n",
    );
    let mut headers = [EMPTY_HEADER; 16];
    let req = parse_request(&head, &mut headers).unwrap();
    assert_eq!(
        req.extensions().collect::<Vec<_>>(),
        [
            "permessage-deflate; client_max_window_bits",
            "x-foo; a=\"1,2\"; b=\"q\\\"x,y\"",
            "permessage-deflate",
        ]
    );
    for bad in [
        "Sec-WebSocket-Extensions: x; a=\"1,2\r\n",
        "Sec-WebSocket-Extensions: ; a=1\r\n",
        "Sec-WebSocket-Extensions: a b\r\n",
        "Sec-WebSocket-Extensions: x; a=\"\\\r\n",
    ] {
        assert_eq!(
            parse_req(&request_with(bad)),
            hserr(HandshakeError::InvalidExtension),
            "{bad:?}"
        );
    }
}

#[test]
fn has_token_rules() {
    assert!(has_token(b"keep-alive, Upgrade", "upgrade"));
    assert!(has_token(b"Upgrade", "upgrade"));
    assert!(has_token(b" \tupgrade\t ", "UPGRADE"));
    assert!(has_token(b",,upgrade,", "upgrade"));
    assert!(!has_token(b"upgrades", "upgrade"));
    assert!(!has_token(b"up grade", "upgrade"));
    assert!(!has_token(b"", "upgrade"));
    assert!(!has_token(b"a,,b", ""));
}

// ----- writers ---------------------------------------------------------------------------------

#[test]
fn accept_round_trip() {
    let mut headers = [EMPTY_HEADER; 16];
    let req = parse_request(CHROME, &mut headers).unwrap();
    let extra: &[(&str, &[u8])] = &[("Set-Cookie", b"a=b"), ("X-Server", b"ws")];
    let accept = Accept {
        protocol: Some("chat"),
        extensions: Some("permessage-deflate; server_no_context_takeover"),
        extra_headers: extra,
    };
    let mut out = [0u8; 512];
    let n = write_accept(&mut out, req.key(), &accept).unwrap();
    let expected = b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n\
Connection: Upgrade\r\nSec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n\
Sec-WebSocket-Protocol: chat\r\n\
Sec-WebSocket-Extensions: permessage-deflate; server_no_context_takeover\r\n\
Set-Cookie: a=b\r\nX-Server: ws\r\n\r\n";
    assert_eq!(&out[..n], &expected[..]);
    assert_eq!(HeadScanner::new(1024).scan(&out[..n]), Ok(Some(n)));

    let mut rheaders = [EMPTY_HEADER; 16];
    let res = parse_response(
        &out[..n],
        &mut rheaders,
        KEY,
        &["superchat", "chat"],
        Some("permessage-deflate; client_max_window_bits"),
    )
    .unwrap();
    assert_eq!(res.status(), 101);
    assert_eq!(res.protocol(), Some("chat"));
    assert_eq!(
        res.extensions().collect::<Vec<_>>(),
        ["permessage-deflate; server_no_context_takeover"]
    );
    assert_eq!(res.header("x-server"), Some(&b"ws"[..]));
    assert_eq!(res.headers().len(), 7);

    // The plainest acceptance.
    let n = write_accept(&mut out, KEY, &Accept::default()).unwrap();
    let mut rheaders = [EMPTY_HEADER; 16];
    let res = parse_response(&out[..n], &mut rheaders, KEY, &[], None).unwrap();
    assert_eq!(res.protocol(), None);
    assert_eq!(res.extensions().count(), 0);
    // An empty extension list writes no header.
    let m = write_accept(
        &mut out,
        KEY,
        &Accept {
            extensions: Some(""),
            ..Accept::default()
        },
    )
    .unwrap();
    assert_eq!(m, n);
}

#[test]
fn request_round_trip() {
    let key = generate_key(*b"0123456789abcdef");
    let extra: &[(&str, &[u8])] = &[("Origin", b"https://example.com"), ("Cookie", b"s=1")];
    let client = ClientRequest {
        host: "example.com:443",
        path: "/socket?x=1&y=%20",
        key: &key,
        protocols: &["mqtt", "v2.json"],
        extensions: Some("permessage-deflate; client_max_window_bits, x-foo; a=\"1,2\""),
        extra_headers: extra,
    };
    let mut out = [0u8; 512];
    let n = write_request(&mut out, &client).unwrap();
    let mut headers = [EMPTY_HEADER; 16];
    let req = parse_request(&out[..n], &mut headers).unwrap();
    assert_eq!(req.path(), client.path);
    assert_eq!(req.host(), client.host);
    assert_eq!(req.key(), &key);
    assert_eq!(req.origin(), Some("https://example.com"));
    assert_eq!(req.header("cookie"), Some(&b"s=1"[..]));
    assert_eq!(req.protocols().collect::<Vec<_>>(), ["mqtt", "v2.json"]);
    assert_eq!(
        req.extensions().collect::<Vec<_>>(),
        [
            "permessage-deflate; client_max_window_bits",
            "x-foo; a=\"1,2\""
        ]
    );
    assert!(std::str::from_utf8(&out[..n]).unwrap().starts_with(
        "GET /socket?x=1&y=%20 HTTP/1.1\r\nHost: example.com:443\r\nUpgrade: websocket\r\n\
         Connection: Upgrade\r\nSec-WebSocket-Key: MDEyMzQ1Njc4OWFiY2RlZg==\r\n\
         Sec-WebSocket-Version: 13\r\nSec-WebSocket-Protocol: mqtt, v2.json\r\n"
    ));

    // And the server's answer to it.
    let mut resp = [0u8; 256];
    let m = write_accept(
        &mut resp,
        req.key(),
        &Accept {
            protocol: req.protocols().nth(1),
            ..Accept::default()
        },
    )
    .unwrap();
    let mut rheaders = [EMPTY_HEADER; 16];
    let res = parse_response(
        &resp[..m],
        &mut rheaders,
        &key,
        client.protocols,
        client.extensions,
    )
    .unwrap();
    assert_eq!(res.protocol(), Some("v2.json"));
}

/// Checks that `write` fits exactly `len` bytes and fails with `BufferTooSmall` on every
/// shorter buffer.
fn exact_fit(len: usize, write: impl Fn(&mut [u8]) -> Result<usize, Error>) {
    let mut buf = std::vec![0u8; len + 16];
    assert_eq!(write(&mut buf), Ok(len));
    assert_eq!(write(&mut buf[..len]), Ok(len));
    for short in 0..len {
        assert_eq!(
            write(&mut buf[..short]),
            Err(Error::BufferTooSmall),
            "{short}"
        );
    }
}

#[test]
fn buffer_too_small_everywhere() {
    let extra: &[(&str, &[u8])] = &[("X-A", b"1"), ("X-B", b"")];
    let accept = Accept {
        protocol: Some("chat"),
        extensions: Some("permessage-deflate"),
        extra_headers: extra,
    };
    let mut big = [0u8; 1024];
    let n = write_accept(&mut big, KEY, &accept).unwrap();
    exact_fit(n, |out| write_accept(out, KEY, &accept));

    let client = ClientRequest {
        host: "h",
        path: "/",
        key: KEY,
        protocols: &["a", "b"],
        extensions: Some("x"),
        extra_headers: extra,
    };
    let n = write_request(&mut big, &client).unwrap();
    exact_fit(n, |out| write_request(out, &client));

    let n = write_reject(&mut big, 426, extra, b"upgrade please").unwrap();
    exact_fit(n, |out| write_reject(out, 426, extra, b"upgrade please"));
    let n = write_reject(&mut big, 400, &[], b"").unwrap();
    exact_fit(n, |out| write_reject(out, 400, &[], b""));
}

#[test]
fn crlf_injection_refused() {
    let malformed = Err(Error::Handshake(HandshakeError::MalformedHttp));
    let mut out = [0u8; 1024];
    let bad_headers: &[&[(&str, &[u8])]] = &[
        &[("X-A", b"1\r\nSet-Cookie: evil=1")],
        &[("X-A", b"1\nX: y")],
        &[("X-A", b"1\rX: y")],
        &[("X-A", b"1\0")],
        &[("X-A\r\nEvil", b"1")],
        &[("X-A: 2\r\n", b"1")],
        &[("X A", b"1")],
        &[("", b"1")],
        &[("X-Ok", b"fine"), ("X-Bad", b"\r\n\r\n<html>")],
    ];
    for &extra in bad_headers {
        let accept = Accept {
            extra_headers: extra,
            ..Accept::default()
        };
        assert_eq!(write_accept(&mut out, KEY, &accept), malformed);
        assert_eq!(write_reject(&mut out, 403, extra, b""), malformed);
        let client = ClientRequest {
            host: "h",
            path: "/",
            key: KEY,
            protocols: &[],
            extensions: None,
            extra_headers: extra,
        };
        assert_eq!(write_request(&mut out, &client), malformed);
    }
    for protocol in ["chat\r\nX: y", "", "a b", "a,b"] {
        let accept = Accept {
            protocol: Some(protocol),
            ..Accept::default()
        };
        assert_eq!(write_accept(&mut out, KEY, &accept), malformed);
    }
    let accept = Accept {
        extensions: Some("permessage-deflate\r\nX: y"),
        ..Accept::default()
    };
    assert_eq!(write_accept(&mut out, KEY, &accept), malformed);

    let good = ClientRequest {
        host: "h",
        path: "/",
        key: KEY,
        protocols: &[],
        extensions: None,
        extra_headers: &[],
    };
    assert!(write_request(&mut out, &good).is_ok());
    for req in [
        ClientRequest {
            path: "/ HTTP/1.1\r\nX: y",
            ..good
        },
        ClientRequest {
            path: "/a b",
            ..good
        },
        ClientRequest { path: "", ..good },
        ClientRequest {
            path: "/caf\u{e9}",
            ..good
        },
        ClientRequest {
            host: "h\r\nX: y",
            ..good
        },
        ClientRequest { host: "", ..good },
        ClientRequest {
            protocols: &["a\r\nX: y"],
            ..good
        },
        ClientRequest {
            protocols: &["a, b"],
            ..good
        },
        ClientRequest {
            extensions: Some("x\nX: y"),
            ..good
        },
    ] {
        assert_eq!(write_request(&mut out, &req), malformed, "{req:?}");
    }
    for key in [&b"dGhlIHNhbXBsZSBub25jZQ==\r\n"[..], b"short", b""] {
        assert_eq!(
            write_request(&mut out, &ClientRequest { key, ..good }),
            Err(Error::Handshake(HandshakeError::InvalidKey))
        );
    }
}

#[test]
fn reject_format() {
    let mut out = [0u8; 512];
    let n = write_reject(&mut out, 426, &[], b"").unwrap();
    assert_eq!(
        &out[..n],
        b"HTTP/1.1 426 Upgrade Required\r\nSec-WebSocket-Version: 13\r\n\
Content-Length: 0\r\nConnection: close\r\n\r\n"
    );
    let given: &[(&str, &[u8])] = &[("sec-websocket-version", b"13, 8")];
    let n = write_reject(&mut out, 426, given, b"").unwrap();
    let text = std::str::from_utf8(&out[..n]).unwrap();
    assert_eq!(text.matches("13").count(), 1);

    let extra: &[(&str, &[u8])] = &[("Content-Type", b"text/plain")];
    let n = write_reject(&mut out, 403, extra, b"go away").unwrap();
    assert_eq!(
        &out[..n],
        b"HTTP/1.1 403 Forbidden\r\nContent-Type: text/plain\r\n\
Content-Length: 7\r\nConnection: close\r\n\r\ngo away"
    );
    let head_len = HeadScanner::new(512).scan(&out[..n]).unwrap().unwrap();
    let mut headers = [EMPTY_HEADER; 8];
    assert_eq!(
        parse_response(&out[..head_len], &mut headers, KEY, &[], None).map(|_| ()),
        Err(Error::Handshake(HandshakeError::UnexpectedStatus(403)))
    );

    for (status, reason) in [
        (400, "Bad Request"),
        (401, "Unauthorized"),
        (404, "Not Found"),
        (429, "Too Many Requests"),
        (431, "Request Header Fields Too Large"),
        (500, "Internal Server Error"),
        (503, "Service Unavailable"),
        (418, "Error"),
        (999, "Error"),
        (100, "Error"),
    ] {
        let n = write_reject(&mut out, status, &[], b"").unwrap();
        let line = std::format!("HTTP/1.1 {status} {reason}\r\n");
        assert!(out[..n].starts_with(line.as_bytes()), "{status}");
    }
    let malformed = Err(Error::Handshake(HandshakeError::MalformedHttp));
    for status in [0, 99, 1000, u16::MAX] {
        assert_eq!(write_reject(&mut out, status, &[], b""), malformed);
    }
    for name in ["Content-Length", "transfer-encoding", "CONNECTION"] {
        assert_eq!(write_reject(&mut out, 400, &[(name, b"1")], b""), malformed);
    }
}

#[test]
fn reject_status_mapping() {
    use HandshakeError as E;
    assert_eq!(reject_status(&Error::Handshake(E::UnsupportedVersion)), 426);
    assert_eq!(
        reject_status(&Error::LimitExceeded(Limit::HeaderBytes)),
        431
    );
    assert_eq!(
        reject_status(&Error::LimitExceeded(Limit::HeaderCount)),
        431
    );
    assert_eq!(reject_status(&Error::BufferTooSmall), 500);
    for e in [
        E::MalformedHttp,
        E::MethodNotGet,
        E::HttpVersion,
        E::MissingHost,
        E::MissingUpgrade,
        E::MissingConnectionUpgrade,
        E::InvalidKey,
        E::DuplicateHeader,
        E::InvalidExtension,
    ] {
        assert_eq!(reject_status(&Error::Handshake(e)), 400, "{e:?}");
    }
    // Every request rejection from parse_request maps to a status the writer accepts.
    let mut out = [0u8; 256];
    let mut headers = [EMPTY_HEADER; 2];
    let err = parse_request(CHROME, &mut headers).unwrap_err();
    assert_eq!(reject_status(&err), 431);
    assert!(write_reject(&mut out, reject_status(&err), &[], b"").is_ok());
}

// ----- parse_response --------------------------------------------------------------------------

#[test]
fn response_checks() {
    use HandshakeError as E;
    let base = response_with("");
    assert_eq!(parse_res(&base, &[], None), Ok(()));
    let cases: &[(&str, &str, Result<(), Error>)] = &[
        (
            "101 Switching Protocols",
            "200 OK",
            hserr(E::UnexpectedStatus(200)),
        ),
        (
            "101 Switching Protocols",
            "302 Found",
            hserr(E::UnexpectedStatus(302)),
        ),
        ("101 Switching Protocols", "101", Ok(())),
        ("HTTP/1.1", "HTTP/1.0", hserr(E::HttpVersion)),
        ("Upgrade: websocket\r\n", "", hserr(E::MissingUpgrade)),
        ("Upgrade: websocket", "upgrade: WebSocket", Ok(())),
        (
            "Connection: Upgrade\r\n",
            "",
            hserr(E::MissingConnectionUpgrade),
        ),
        (
            "Connection: Upgrade",
            "connection: keep-alive, upgrade",
            Ok(()),
        ),
        (
            "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=",
            "s3pPLMBiTxaQ9kYGzzhZRbK+xOp=",
            hserr(E::InvalidAccept),
        ),
        (
            "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=",
            "S3PPLMBITXAQ9KYGZZHZRBK+XOO=",
            hserr(E::InvalidAccept),
        ),
        ("s3pPLMBiTxaQ9kYGzzhZRbK+xOo=", "", hserr(E::InvalidAccept)),
        (
            "Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n",
            "",
            hserr(E::InvalidAccept),
        ),
        (
            "Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n",
            "Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n\
             Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n",
            hserr(E::InvalidAccept),
        ),
        ("HTTP/1.1 101", "HTTP/1.1 1O1", hserr(E::MalformedHttp)),
    ];
    for (from, to, want) in cases {
        let head = base.replace_all(from, to);
        assert_eq!(&parse_res(&head, &[], None), want, "{from:?} -> {to:?}");
    }
    // A different key.
    let mut headers = [EMPTY_HEADER; 8];
    assert_eq!(
        parse_response(&base, &mut headers, &generate_key([7; 16]), &[], None).map(|_| ()),
        hserr(E::InvalidAccept)
    );

    // Protocols.
    let chat = response_with("Sec-WebSocket-Protocol: chat\r\n");
    assert_eq!(parse_res(&chat, &["chat"], None), Ok(()));
    assert_eq!(parse_res(&chat, &["superchat", "chat"], None), Ok(()));
    assert_eq!(parse_res(&chat, &[], None), hserr(E::UnofferedProtocol));
    assert_eq!(
        parse_res(&chat, &["Chat"], None),
        hserr(E::UnofferedProtocol)
    );
    assert_eq!(
        parse_res(&chat, &["superchat"], None),
        hserr(E::UnofferedProtocol)
    );
    let two = response_with("Sec-WebSocket-Protocol: chat, mqtt\r\n");
    assert_eq!(
        parse_res(&two, &["chat", "mqtt"], None),
        hserr(E::UnofferedProtocol)
    );
    let dup = response_with("Sec-WebSocket-Protocol: chat\r\nSec-WebSocket-Protocol: chat\r\n");
    assert_eq!(parse_res(&dup, &["chat"], None), hserr(E::DuplicateHeader));
    let empty = response_with("Sec-WebSocket-Protocol:\r\n");
    assert_eq!(
        parse_res(&empty, &["chat"], None),
        hserr(E::UnofferedProtocol)
    );

    // Extensions.
    let pmd = response_with(
        "Sec-WebSocket-Extensions: permessage-deflate; server_max_window_bits=10\r\n",
    );
    let offer = Some("permessage-deflate; client_max_window_bits, x-webkit-deflate-frame");
    assert_eq!(parse_res(&pmd, &[], offer), Ok(()));
    assert_eq!(parse_res(&pmd, &[], Some("Permessage-Deflate")), Ok(()));
    assert_eq!(parse_res(&pmd, &[], None), hserr(E::UnofferedExtension));
    assert_eq!(
        parse_res(&pmd, &[], Some("x-webkit-deflate-frame")),
        hserr(E::UnofferedExtension)
    );
    assert_eq!(parse_res(&pmd, &[], Some("")), hserr(E::UnofferedExtension));
    assert_eq!(
        parse_res(&pmd, &[], Some("x; a=\"1, permessage-deflate\"")),
        hserr(E::UnofferedExtension)
    );
    let other = response_with(
        "Sec-WebSocket-Extensions: permessage-deflate\r\nSec-WebSocket-Extensions: x-other\r\n",
    );
    assert_eq!(parse_res(&other, &[], offer), hserr(E::UnofferedExtension));
    let bad = response_with("Sec-WebSocket-Extensions: permessage-deflate; a=\"x\r\n");
    assert_eq!(parse_res(&bad, &[], offer), hserr(E::InvalidExtension));
    let empty = response_with("Sec-WebSocket-Extensions: \r\n");
    assert_eq!(parse_res(&empty, &[], None), Ok(()));

    // Incomplete and trailing bytes.
    assert_eq!(
        parse_res(&base[..base.len() - 2], &[], None),
        hserr(E::MalformedHttp)
    );
    let mut trailing = base.clone();
    trailing.extend_from_slice(b"\x81\x00");
    assert_eq!(parse_res(&trailing, &[], None), hserr(E::MalformedHttp));
}

// ----- property tests --------------------------------------------------------------------------

fn token() -> impl Strategy<Value = String> {
    "[A-Za-z0-9!#$%&'*+.^_`|~-]{1,12}"
}

prop_compose! {
    fn client_request_parts()(
        host in "[a-z0-9.-]{1,20}(:[0-9]{1,5})?",
        path in "/[A-Za-z0-9/?=&%._~-]{0,40}",
        random in any::<[u8; 16]>(),
        protocols in prop::collection::vec(token(), 0..4),
        extensions in prop::option::of("[a-z-]{1,10}(; [a-z_]{1,10}(=\"[ ,a-z0-9]{0,6}\")?){0,2}"),
        extra in prop::collection::vec((token(), "[ -~]{0,30}"), 0..6),
    ) -> (String, String, [u8; 16], Vec<String>, Option<String>, Vec<(String, String)>) {
        (host, path, random, protocols, extensions, extra)
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn chunked_scan_then_parse_matches_whole(
        (host, path, random, protocols, extensions, extra) in client_request_parts(),
        trailing in prop::collection::vec(any::<u8>(), 0..32),
        cuts in prop::collection::vec(any::<prop::sample::Index>(), 0..8),
    ) {
        let key = generate_key(random);
        let protocols: Vec<&str> = protocols.iter().map(String::as_str).collect();
        let names: Vec<String> = extra.iter().map(|(n, _)| std::format!("X-{n}")).collect();
        let extra: Vec<(&str, &[u8])> =
            names.iter().zip(&extra).map(|(n, (_, v))| (n.as_str(), v.as_bytes())).collect();
        let client = ClientRequest {
            host: &host,
            path: &path,
            key: &key,
            protocols: &protocols,
            extensions: extensions.as_deref(),
            extra_headers: &extra,
        };
        let mut head = std::vec![0u8; 4096];
        let n = write_request(&mut head, &client).unwrap();
        head.truncate(n);
        let mut wire = head.clone();
        wire.extend_from_slice(&trailing);

        let whole = HeadScanner::new(4096).scan(&wire);
        prop_assert_eq!(whole, Ok(Some(n)));

        // Receive the bytes in chunks into a growing buffer, scanning after each read.
        let mut cuts: Vec<usize> = cuts.iter().map(|i| i.index(wire.len() + 1)).collect();
        cuts.push(wire.len());
        cuts.sort_unstable();
        let mut scanner = HeadScanner::new(4096);
        let mut received = Vec::new();
        let mut chunked = Ok(None);
        for &cut in &cuts {
            received.extend_from_slice(&wire[received.len()..cut]);
            chunked = scanner.scan(&received);
            if chunked != Ok(None) {
                break;
            }
        }
        prop_assert_eq!(chunked, whole);
        // The same reads with the bytes of earlier reads overwritten give the same answer: no
        // byte is examined twice.
        let mut scanner = HeadScanner::new(4096);
        let mut poisoned = Poisoned::new(&wire);
        let mut again = Ok(None);
        for &cut in &cuts {
            again = poisoned.scan(&mut scanner, cut);
            if again != Ok(None) {
                break;
            }
        }
        prop_assert_eq!(again, whole);

        let mut h1 = [EMPTY_HEADER; 32];
        let mut h2 = [EMPTY_HEADER; 32];
        let from_chunks = parse_request(&received[..n], &mut h1);
        let from_whole = parse_request(&head, &mut h2);
        prop_assert_eq!(from_chunks, from_whole);
        let req = from_whole.unwrap();
        prop_assert_eq!(req.key(), &key[..]);
        prop_assert_eq!(req.path(), path.as_str());
        prop_assert_eq!(req.host(), host.as_str());
        prop_assert_eq!(req.protocols().collect::<Vec<_>>(), protocols);
    }

    #[test]
    fn accept_then_parse_response(
        random in any::<[u8; 16]>(),
        offered in prop::collection::vec(token(), 1..4),
        pick in any::<prop::sample::Index>(),
        with_extension in any::<bool>(),
    ) {
        let key = generate_key(random);
        let offered: Vec<&str> = offered.iter().map(String::as_str).collect();
        let chosen = offered[pick.index(offered.len())];
        let accept = Accept {
            protocol: Some(chosen),
            extensions: with_extension.then_some("permessage-deflate; server_max_window_bits=12"),
            extra_headers: &[],
        };
        let mut out = [0u8; 512];
        let n = write_accept(&mut out, &key, &accept).unwrap();
        let mut headers = [EMPTY_HEADER; 8];
        let res = parse_response(&out[..n], &mut headers, &key, &offered, Some("permessage-deflate"));
        prop_assert_eq!(res.map(|r| r.protocol()), Ok(Some(chosen)));
        let mut headers = [EMPTY_HEADER; 8];
        let res = parse_response(&out[..n], &mut headers, KEY, &offered, Some("permessage-deflate"));
        prop_assert_eq!(res.map(|_| ()), hserr(HandshakeError::InvalidAccept));
    }

    #[test]
    fn scanner_matches_naive(
        data in prop::collection::vec(prop::sample::select(&b"\r\nab"[..]), 0..64),
        cuts in prop::collection::vec(any::<prop::sample::Index>(), 0..6),
        max in 0usize..80,
    ) {
        let mut cuts: Vec<usize> = cuts.iter().map(|i| i.index(data.len() + 1)).collect();
        cuts.sort_unstable();
        let want = naive_scan(&data, max);
        prop_assert_eq!(feed(&mut HeadScanner::new(max), &data, &cuts), want);
        prop_assert_eq!(HeadScanner::new(max).scan(&data), want);
    }

    #[test]
    fn arbitrary_bytes_never_panic(
        data in prop::collection::vec(any::<u8>(), 0..512),
        cuts in prop::collection::vec(any::<prop::sample::Index>(), 0..6),
        nheaders in 0usize..20,
    ) {
        let mut cuts: Vec<usize> = cuts.iter().map(|i| i.index(data.len() + 1)).collect();
        cuts.sort_unstable();
        let _ = feed(&mut HeadScanner::new(256), &data, &cuts);
        let mut headers = std::vec![EMPTY_HEADER; nheaders];
        if let Ok(req) = parse_request(&data, &mut headers) {
            let _ = (req.protocols().count(), req.extensions().count(), req.header("host"));
        }
        let mut headers = std::vec![EMPTY_HEADER; nheaders];
        if let Ok(res) = parse_response(&data, &mut headers, KEY, &["chat"], Some("x")) {
            let _ = (res.extensions().count(), res.protocol());
        }
    }

    #[test]
    fn mutated_heads_never_panic(
        flips in prop::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 1..6),
        response in any::<bool>(),
    ) {
        const EXTRA: &str = "Sec-WebSocket-Protocol: chat\r\nSec-WebSocket-Extensions: x; a=\"1,2\"\r\n";
        let mut data = if response { response_with(EXTRA) } else { request_with(EXTRA) };
        for (i, b) in &flips {
            let i = i.index(data.len());
            data[i] = *b;
        }
        let mut headers = [EMPTY_HEADER; 16];
        if let Ok(req) = parse_request(&data, &mut headers) {
            let _ = (req.protocols().count(), req.extensions().count());
        }
        let mut headers = [EMPTY_HEADER; 16];
        if let Ok(res) = parse_response(&data, &mut headers, KEY, &["chat"], Some("x")) {
            let _ = res.extensions().count();
        }
    }
}

#[test]
fn header_type_is_httparse() {
    let mut headers = [EMPTY_HEADER; 16];
    let req = parse_request(CHROME, &mut headers).unwrap();
    let first: &Header<'_> = &req.headers()[0];
    assert_eq!(first.name, "Host");
}
