//! Inputs and operations shared by the criterion benches (`benches/proto.rs`) and
//! `micro_report`, so both measure exactly the same thing.

use ws_proto::frame::FrameHeader;
use ws_proto::handshake::{Accept, HeadScanner, parse_request, write_accept};
use ws_proto::utf8::Utf8Validator;
use ws_proto::{Config, Connection, Event, OpCode};

/// 64 KiB, the size of the bulk benches.
pub const SIZE_64K: usize = 64 << 10;

/// An opening handshake request as Chrome sends it.
pub const CHROME_REQUEST: &[u8] = b"GET /chat HTTP/1.1\r\n\
Host: server.example.com:8080\r\n\
Connection: Upgrade\r\n\
Pragma: no-cache\r\n\
Cache-Control: no-cache\r\n\
User-Agent: Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/124.0.0.0 Safari/537.36\r\n\
Upgrade: websocket\r\n\
Origin: https://www.example.com\r\n\
Sec-WebSocket-Version: 13\r\n\
Accept-Encoding: gzip, deflate, br, zstd\r\n\
Accept-Language: en-US,en;q=0.9\r\n\
Cookie: session=0123456789abcdef0123456789abcdef; theme=dark\r\n\
Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\
Sec-WebSocket-Extensions: permessage-deflate; client_max_window_bits\r\n\r\n";

/// Headers to decode: (name, bytes), from the smallest to the largest form.
pub fn headers_to_decode() -> Vec<(&'static str, Vec<u8>)> {
    let mk = |len: u64, mask: Option<[u8; 4]>| {
        FrameHeader {
            fin: true,
            rsv: 0,
            opcode: OpCode::Binary,
            mask,
            payload_len: len,
        }
        .encode()
        .as_bytes()
        .to_vec()
    };
    vec![
        ("2B_unmasked_len7", mk(16, None)),
        ("6B_masked_len7", mk(16, Some([1, 2, 3, 4]))),
        ("8B_masked_len16", mk(1024, Some([1, 2, 3, 4]))),
        ("14B_masked_len64", mk(1 << 20, Some([1, 2, 3, 4]))),
    ]
}

/// The header a server encodes for a `len`-byte binary frame.
pub fn server_header(len: u64) -> FrameHeader {
    FrameHeader {
        fin: true,
        rsv: 0,
        opcode: OpCode::Binary,
        mask: None,
        payload_len: len,
    }
}

/// `n` bytes of ASCII text.
pub fn ascii_text(n: usize) -> Vec<u8> {
    const T: &[u8] = b"The quick brown fox jumps over the lazy dog; 0123456789. ";
    T.iter().copied().cycle().take(n).collect()
}

/// About `n` bytes of mixed text (Latin, Cyrillic, CJK, emoji), cut at a character boundary.
pub fn mixed_text(n: usize) -> Vec<u8> {
    const T: &str = "Hello, wörld! Grüße, ça va? Привет, мир. こんにちは世界。你好 🦀🚀 ";
    let mut s = String::with_capacity(n + 8);
    'outer: loop {
        for c in T.chars() {
            if s.len() + c.len_utf8() > n {
                break 'outer;
            }
            s.push(c);
        }
    }
    s.into_bytes()
}

/// `n` pseudo-random bytes.
pub fn random_bytes(n: usize) -> Vec<u8> {
    let mut x = 0x9E37_79B9_7F4A_7C15u64;
    (0..n)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect()
}

/// Streaming validation of a whole message with `ws_proto`'s validator.
pub fn validate_streaming(b: &[u8]) -> bool {
    let mut v = Utf8Validator::new();
    v.feed(b).is_ok() && v.finish().is_ok()
}

/// The server side of the opening handshake on a complete request: find the head, parse and
/// check it, write the 101 response. Returns the response length.
pub fn server_handshake(request: &[u8], out: &mut [u8]) -> usize {
    let mut scanner = HeadScanner::new(8 << 10);
    let head_len = match scanner.scan(request) {
        Ok(Some(n)) => n,
        _ => return 0,
    };
    let mut headers = [httparse::EMPTY_HEADER; 32];
    let Ok(req) = parse_request(&request[..head_len], &mut headers) else {
        return 0;
    };
    write_accept(out, req.key(), &Accept::default()).unwrap_or(0)
}

/// A client-to-server (masked) binary frame with a `len`-byte payload.
pub fn masked_frame(len: usize) -> Vec<u8> {
    let payload = random_bytes(len);
    let key = [0x37, 0xfa, 0x21, 0x3d];
    let h = FrameHeader {
        fin: true,
        rsv: 0,
        opcode: OpCode::Binary,
        mask: Some(key),
        payload_len: len as u64,
    }
    .encode();
    let mut v = h.as_bytes().to_vec();
    v.extend(payload.iter().enumerate().map(|(i, b)| b ^ key[i & 3]));
    v
}

/// A server connection with default settings.
pub fn server_connection() -> Connection {
    Connection::server(Config::default(), 0).unwrap_or_else(|e| panic!("server connection: {e:?}"))
}

/// Feeds `input` (whole frames) to `conn` until it is consumed; returns the payload bytes
/// delivered.
pub fn receive_all(conn: &mut Connection, input: &mut [u8]) -> usize {
    let mut pos = 0;
    let mut delivered = 0;
    while pos < input.len() {
        match conn.receive(0, &mut input[pos..]) {
            Ok((n, ev)) => {
                if let Some(Event::Data { payload, .. }) = ev {
                    delivered += payload.len();
                }
                if n == 0 {
                    break;
                }
                pos += n;
            }
            Err(e) => panic!("receive failed: {e:?}"),
        }
    }
    delivered
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn inputs_are_valid() {
        assert!(core::str::from_utf8(&mixed_text(SIZE_64K)).is_ok());
        assert!(mixed_text(SIZE_64K).len() > SIZE_64K - 8);
        assert!(validate_streaming(&ascii_text(1000)));
        let mut out = [0u8; 512];
        let n = server_handshake(CHROME_REQUEST, &mut out);
        assert!(out[..n].starts_with(b"HTTP/1.1 101"));
        // RFC 6455's example key and accept value.
        assert!(
            out[..n]
                .windows(28)
                .any(|w| w == b"s3pPLMBiTxaQ9kYGzzhZRbK+xOo=")
        );
        for len in [16, SIZE_64K] {
            let mut c = server_connection();
            let mut f = masked_frame(len);
            assert_eq!(receive_all(&mut c, &mut f), len);
        }
        for (_, h) in headers_to_decode() {
            assert!(FrameHeader::decode(&h).unwrap().is_some());
        }
    }
}
