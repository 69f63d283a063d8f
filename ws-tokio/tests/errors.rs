//! Protocol errors: the peer gets a close frame with the right code before TCP is shut, and the
//! server's recv reports what happened. Handshake failures get HTTP answers.

mod common;

use common::*;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use ws_tokio::{
    AcceptResponse, CloseCode, Config, Error, HandshakeError, Limit, Limits, Message,
    ProtocolError, Reject,
};

/// A raw TCP client sends `bytes` after the handshake; checks the close frame it gets back, the
/// EOF after it, and the server's error (which carries the close code it sent). Returns the
/// messages the server received before the failure.
async fn expect_failure(
    cfg: Config,
    bytes: Vec<u8>,
    code: u16,
    check: impl FnOnce(&Error) -> bool,
) -> Vec<Message> {
    let (l, addr) = listener().await;
    let server = tokio::spawn(async move {
        let (tcp, _) = l.accept().await.unwrap();
        let mut ws = ws_tokio::accept_with_config(tcp, cfg).await.unwrap();
        let mut seen = Vec::new();
        loop {
            match ws.recv().await {
                Some(Ok(m)) => seen.push(m),
                Some(Err(e)) => {
                    assert!(ws.recv().await.is_none(), "only one error");
                    return (seen, e);
                }
                None => panic!("clean end instead of an error"),
            }
        }
    });
    let mut tcp = TcpStream::connect(addr).await.unwrap();
    raw_client_handshake(&mut tcp).await;
    let (rd, mut wr) = tcp.into_split();
    wr.write_all(&bytes).await.unwrap();
    let mut r = FrameReader::new(rd);
    let f = r.expect().await;
    assert_eq!(f.opcode, OP_CLOSE, "{f:?}");
    assert_eq!(f.close_code(), Some(code));
    assert_eq!(f.mask, None);
    r.expect_eof().await;
    drop((r, wr));
    let (seen, e) = bounded("server", server).await.unwrap();
    assert_eq!(e.close_code_sent(), Some(CloseCode(code)), "{e:?}");
    assert!(check(&e), "{e:?}");
    seen
}

/// The check for a protocol error of this kind.
fn protocol(kind: ProtocolError) -> impl FnOnce(&Error) -> bool {
    move |e| matches!(e, Error::Protocol { error, .. } if *error == kind)
}

fn invalid_utf8(e: &Error) -> bool {
    matches!(e, Error::InvalidUtf8 { .. })
}

/// The check for this limit.
fn limit(which: Limit) -> impl FnOnce(&Error) -> bool {
    move |e| matches!(e, Error::LimitExceeded { limit, .. } if *limit == which)
}

#[tokio::test]
async fn unmasked_frame_is_1002() {
    let bytes = frame_b0(0x81, b"hi", None);
    expect_failure(quiet(), bytes, 1002, protocol(ProtocolError::UnmaskedFrame)).await;
}

#[tokio::test]
async fn reserved_opcodes_are_1002() {
    for op in [0x3u8, 0x7, 0xB, 0xF] {
        let bytes = cframe(true, op, b"");
        expect_failure(
            quiet(),
            bytes,
            1002,
            protocol(ProtocolError::ReservedOpcode),
        )
        .await;
    }
}

#[tokio::test]
async fn invalid_utf8_is_1007() {
    let bytes = cframe(true, OP_TEXT, &[b'o', b'k', 0xff, 0xfe]);
    expect_failure(quiet(), bytes, 1007, invalid_utf8).await;
    // Split across fragments: the first is a valid prefix, the second breaks it.
    let mut bytes = cframe(false, OP_TEXT, &[0xe2, 0x82]);
    bytes.extend(cframe(true, OP_CONT, &[0x28]));
    expect_failure(quiet(), bytes, 1007, invalid_utf8).await;
    // A message that ends mid-character.
    let bytes = cframe(true, OP_TEXT, &[b'a', 0xe2, 0x82]);
    expect_failure(quiet(), bytes, 1007, invalid_utf8).await;
}

#[tokio::test]
async fn frame_over_max_frame_size_is_1009_on_the_declared_length() {
    let cfg = quiet().with_limits(
        Limits::default()
            .with_max_message_size(4096)
            .with_max_frame_size(1024),
    );
    // A frame at the limit goes through; then the header alone of one byte more (its payload
    // is never sent).
    let mut bytes = cframe(true, OP_BINARY, &[5u8; 1024]);
    bytes.extend(header(0x82, 1025, Some([1, 2, 3, 4])));
    let seen = expect_failure(cfg, bytes, 1009, limit(Limit::FrameSize)).await;
    assert_eq!(seen, [Message::binary(vec![5u8; 1024])]);
    // A 64-bit length far past any limit.
    let bytes = header(0x82, 1 << 40, Some([1, 2, 3, 4]));
    expect_failure(quiet(), bytes, 1009, limit(Limit::FrameSize)).await;
}

#[tokio::test]
async fn message_over_max_message_size_is_1009() {
    let cfg = quiet().with_limits(
        Limits::default()
            .with_max_message_size(4096)
            .with_max_frame_size(1024),
    );
    // Four fragments of 1 KiB make a message at the limit; the fifth fragment of the next
    // message goes past it.
    let mut bytes = Vec::new();
    for m in 0..2u8 {
        let count = if m == 0 { 4 } else { 5 };
        for i in 0..count {
            let op = if i == 0 { OP_BINARY } else { OP_CONT };
            bytes.extend(cframe(i == count - 1, op, &[m; 1024]));
        }
    }
    let seen = expect_failure(cfg, bytes, 1009, limit(Limit::MessageSize)).await;
    assert_eq!(seen, [Message::binary(vec![0u8; 4096])]);
}

#[tokio::test]
async fn rsv_bits_are_1002() {
    for rsv in [0x40u8, 0x20, 0x10] {
        let bytes = frame_b0(0x80 | rsv | OP_TEXT, b"x", Some([9, 9, 9, 9]));
        expect_failure(quiet(), bytes, 1002, protocol(ProtocolError::ReservedBits)).await;
    }
    // Also when the server would accept compression but the client did not ask for it.
    let bytes = frame_b0(0xC1, b"x", Some([9, 9, 9, 9]));
    expect_failure(
        compressed(),
        bytes,
        1002,
        protocol(ProtocolError::ReservedBits),
    )
    .await;
}

#[tokio::test]
async fn other_protocol_errors() {
    // Continuation with nothing started.
    let bytes = cframe(true, OP_CONT, b"x");
    expect_failure(
        quiet(),
        bytes,
        1002,
        protocol(ProtocolError::UnexpectedContinuation),
    )
    .await;
    // A new message inside a fragmented one.
    let mut b = cframe(false, OP_TEXT, b"a");
    b.extend(cframe(true, OP_BINARY, b"b"));
    expect_failure(
        quiet(),
        b,
        1002,
        protocol(ProtocolError::ExpectedContinuation),
    )
    .await;
    // A fragmented ping.
    let bytes = cframe(false, OP_PING, b"x");
    expect_failure(
        quiet(),
        bytes,
        1002,
        protocol(ProtocolError::FragmentedControl),
    )
    .await;
    // A control frame longer than 125 bytes.
    let bytes = cframe(true, OP_PING, &[0; 126]);
    expect_failure(
        quiet(),
        bytes,
        1002,
        protocol(ProtocolError::ControlTooLong),
    )
    .await;
    // A close code that may not be sent.
    let bytes = cframe(true, OP_CLOSE, &close_payload(1005, ""));
    expect_failure(
        quiet(),
        bytes,
        1002,
        protocol(ProtocolError::InvalidCloseCode),
    )
    .await;
    // A close payload of one byte.
    let bytes = cframe(true, OP_CLOSE, &[3]);
    expect_failure(quiet(), bytes, 1002, protocol(ProtocolError::CloseTooShort)).await;
    // A close reason that is not UTF-8.
    let mut p = close_payload(1000, "");
    p.push(0xff);
    expect_failure(quiet(), cframe(true, OP_CLOSE, &p), 1007, invalid_utf8).await;
}

/// Sends a raw request to `accept_with` and returns (response head, body, server result).
async fn handshake_answer(
    request: String,
    callback: impl FnOnce(&ws_tokio::Request<'_, '_>) -> Result<AcceptResponse, Reject> + Send + 'static,
) -> (String, Vec<u8>, Error) {
    let (l, addr) = listener().await;
    let server = tokio::spawn(async move {
        let (tcp, _) = l.accept().await.unwrap();
        ws_tokio::accept_with(tcp, quiet(), callback)
            .await
            .map(|_| ())
            .unwrap_err()
    });
    let mut tcp = TcpStream::connect(addr).await.unwrap();
    tcp.write_all(request.as_bytes()).await.unwrap();
    let head = read_head(&mut tcp).await;
    let mut body = Vec::new();
    bounded("body", tcp.read_to_end(&mut body)).await.unwrap();
    let e = bounded("server", server).await.unwrap();
    (head, body, e)
}

fn accept_all(_: &ws_tokio::Request<'_, '_>) -> Result<AcceptResponse, Reject> {
    Ok(AcceptResponse::new())
}

#[tokio::test]
async fn missing_key_is_400() {
    let req = request().replace(&format!("Sec-WebSocket-Key: {KEY}\r\n"), "");
    let (head, body, e) = handshake_answer(req, accept_all).await;
    assert!(head.starts_with("HTTP/1.1 400 "), "{head}");
    assert!(body.is_empty());
    assert!(
        matches!(e, Error::Handshake(HandshakeError::InvalidKey)),
        "{e:?}"
    );
}

#[tokio::test]
async fn version_8_is_426_with_version_13() {
    let req = request().replace("Sec-WebSocket-Version: 13", "Sec-WebSocket-Version: 8");
    let (head, _, e) = handshake_answer(req, accept_all).await;
    assert!(head.starts_with("HTTP/1.1 426 "), "{head}");
    assert!(head.contains("\r\nSec-WebSocket-Version: 13\r\n"), "{head}");
    assert!(
        matches!(e, Error::Handshake(HandshakeError::UnsupportedVersion)),
        "{e:?}"
    );
}

/// A valid request padded with an `X-Pad` header to exactly `len` bytes.
fn request_of_len(len: usize) -> String {
    let base = request().len() + "X-Pad: \r\n".len();
    request().replace(
        "Host: localhost\r\n",
        &format!("Host: localhost\r\nX-Pad: {}\r\n", "a".repeat(len - base)),
    )
}

#[tokio::test]
async fn oversized_head_is_431() {
    let (head, _, e) = handshake_answer(request_of_len(9000), accept_all).await;
    assert!(head.starts_with("HTTP/1.1 431 "), "{head}");
    assert!(
        matches!(
            e,
            Error::LimitExceeded {
                limit: Limit::HeaderBytes,
                sent: None
            }
        ),
        "{e:?}"
    );
}

#[tokio::test]
async fn head_at_max_header_bytes_is_accepted_one_byte_more_is_431() {
    let max = Config::default().core.limits.max_header_bytes;
    let (head, _, e) = handshake_answer(request_of_len(max + 1), accept_all).await;
    assert!(head.starts_with("HTTP/1.1 431 "), "{head}");
    assert!(
        matches!(
            e,
            Error::LimitExceeded {
                limit: Limit::HeaderBytes,
                ..
            }
        ),
        "{e:?}"
    );
    let req = request_of_len(max);
    assert_eq!(req.len(), max);
    let (l, addr) = listener().await;
    let server = tokio::spawn(async move {
        let (tcp, _) = l.accept().await.unwrap();
        ws_tokio::accept_with_config(tcp, quiet()).await.map(|_| ())
    });
    let mut tcp = TcpStream::connect(addr).await.unwrap();
    tcp.write_all(req.as_bytes()).await.unwrap();
    let head = read_head(&mut tcp).await;
    assert!(head.starts_with("HTTP/1.1 101 "), "{head}");
    bounded("server", server).await.unwrap().expect("accepted");
}

#[tokio::test]
async fn too_many_headers_is_431() {
    // The request has 5 header fields; 59 more make the default limit of 64.
    let with = |extra: usize| {
        let fields: String = (0..extra).map(|i| format!("X-F{i}: {i}\r\n")).collect();
        request().replace(
            "Host: localhost\r\n",
            &format!("Host: localhost\r\n{fields}"),
        )
    };
    assert_eq!(Config::default().core.limits.max_headers, 64);
    let (head, _, e) = handshake_answer(with(60), accept_all).await;
    assert!(head.starts_with("HTTP/1.1 431 "), "{head}");
    assert!(
        matches!(
            e,
            Error::LimitExceeded {
                limit: Limit::HeaderCount,
                ..
            }
        ),
        "{e:?}"
    );
    let (l, addr) = listener().await;
    let server = tokio::spawn(async move {
        let (tcp, _) = l.accept().await.unwrap();
        ws_tokio::accept_with_config(tcp, quiet()).await.map(|_| ())
    });
    let mut tcp = TcpStream::connect(addr).await.unwrap();
    tcp.write_all(with(59).as_bytes()).await.unwrap();
    let head = read_head(&mut tcp).await;
    assert!(head.starts_with("HTTP/1.1 101 "), "{head}");
    bounded("server", server).await.unwrap().expect("accepted");
}

#[tokio::test]
async fn callback_rejection_gets_status_and_body() {
    let (head, body, e) = handshake_answer(request(), |req| {
        assert_eq!(req.path(), "/chat");
        Err(Reject::status(403)
            .header("X-Why", "no entry")
            .body("forbidden here"))
    })
    .await;
    assert!(head.starts_with("HTTP/1.1 403 "), "{head}");
    assert!(head.contains("X-Why: no entry"), "{head}");
    assert_eq!(body, b"forbidden here");
    assert!(matches!(e, Error::Rejected { status: 403 }), "{e:?}");
}

#[tokio::test]
async fn connect_to_a_rejecting_server_is_rejected() {
    let (l, addr) = listener().await;
    let server = tokio::spawn(async move {
        let (tcp, _) = l.accept().await.unwrap();
        ws_tokio::accept_with(tcp, quiet(), |_| Err(Reject::status(403).body("nope")))
            .await
            .map(|_| ())
    });
    let e = bounded(
        "connect",
        ws_tokio::connect_with_config(&format!("ws://{addr}/x"), quiet()),
    )
    .await
    .map(|_| ())
    .unwrap_err();
    assert!(matches!(e, Error::Rejected { status: 403 }), "{e:?}");
    let s = bounded("server", server).await.unwrap().unwrap_err();
    assert!(matches!(s, Error::Rejected { status: 403 }), "{s:?}");
    // And with the default connect.
    let (l, addr) = listener().await;
    tokio::spawn(async move {
        let (tcp, _) = l.accept().await.unwrap();
        let _ = ws_tokio::accept_with(tcp, quiet(), |_| Err(Reject::status(403))).await;
    });
    let e = bounded("connect", ws_tokio::connect(&format!("ws://{addr}/")))
        .await
        .map(|_| ())
        .unwrap_err();
    assert!(matches!(e, Error::Rejected { status: 403 }), "{e:?}");
}

#[tokio::test]
async fn client_rejects_a_masked_server_frame() {
    let (l, addr) = listener().await;
    let server = tokio::spawn(async move {
        let (mut tcp, _) = l.accept().await.unwrap();
        raw_server_handshake(&mut tcp).await;
        tcp.write_all(&frame_b0(0x81, b"masked", Some([1, 2, 3, 4])))
            .await
            .unwrap();
        let mut r = FrameReader::new(tcp);
        let f = r.expect().await;
        assert!(f.mask.is_some(), "client frames are masked");
        assert_eq!(f.close_code(), Some(1002));
        // A failing client shuts its side at once (and then waits for our EOF).
        r.expect_eof().await;
    });
    let mut ws = bounded(
        "connect",
        ws_tokio::connect_with_config(&format!("ws://{addr}/"), quiet()),
    )
    .await
    .unwrap();
    let e = bounded("recv", ws.recv()).await.unwrap().unwrap_err();
    assert!(
        matches!(
            e,
            Error::Protocol {
                error: ProtocolError::MaskedFrame,
                sent: Some(CloseCode::PROTOCOL_ERROR)
            }
        ),
        "{e:?}"
    );
    assert!(
        bounded("end", ws.recv()).await.is_none(),
        "one error, then None"
    );
    bounded("server", server).await.unwrap();
}
