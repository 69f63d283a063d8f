//! Protocol errors: the peer gets a close frame with the right code before TCP is shut, and the
//! server's recv reports what happened. Handshake failures get HTTP answers.

mod common;

use common::*;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use ws_proto::{Limit, ProtocolError};
use ws_tokio::{AcceptResponse, CloseCode, Config, Error, Limits, Reject};

/// A raw TCP client sends `bytes` after the handshake; checks the close frame it gets back, the
/// EOF after it, and the server's error.
async fn expect_failure(
    cfg: Config,
    bytes: Vec<u8>,
    code: u16,
    check: impl FnOnce(ws_proto::Error) -> bool,
) {
    let (l, addr) = listener().await;
    let server = tokio::spawn(async move {
        let (tcp, _) = l.accept().await.unwrap();
        let mut ws = ws_tokio::accept_with_config(tcp, cfg).await.unwrap();
        loop {
            match ws.recv().await {
                Some(Ok(_)) => continue,
                Some(Err(e)) => {
                    assert!(ws.recv().await.is_none(), "only one error");
                    return e;
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
    match bounded("server", server).await.unwrap() {
        Error::Protocol { error, sent } => {
            assert_eq!(sent, Some(CloseCode(code)));
            assert!(check(error), "{error:?}");
        }
        e => panic!("expected a protocol error, got {e:?}"),
    }
}

#[tokio::test]
async fn unmasked_frame_is_1002() {
    let bytes = frame_b0(0x81, b"hi", None);
    expect_failure(quiet(), bytes, 1002, |e| {
        e == ws_proto::Error::Protocol(ProtocolError::UnmaskedFrame)
    })
    .await;
}

#[tokio::test]
async fn reserved_opcodes_are_1002() {
    for op in [0x3u8, 0x7, 0xB, 0xF] {
        let bytes = cframe(true, op, b"");
        expect_failure(quiet(), bytes, 1002, |e| {
            e == ws_proto::Error::Protocol(ProtocolError::ReservedOpcode)
        })
        .await;
    }
}

#[tokio::test]
async fn invalid_utf8_is_1007() {
    let bytes = cframe(true, OP_TEXT, &[b'o', b'k', 0xff, 0xfe]);
    expect_failure(quiet(), bytes, 1007, |e| e == ws_proto::Error::InvalidUtf8).await;
    // Split across fragments: the first is a valid prefix, the second breaks it.
    let mut bytes = cframe(false, OP_TEXT, &[0xe2, 0x82]);
    bytes.extend(cframe(true, OP_CONT, &[0x28]));
    expect_failure(quiet(), bytes, 1007, |e| e == ws_proto::Error::InvalidUtf8).await;
    // A message that ends mid-character.
    let bytes = cframe(true, OP_TEXT, &[b'a', 0xe2, 0x82]);
    expect_failure(quiet(), bytes, 1007, |e| e == ws_proto::Error::InvalidUtf8).await;
}

#[tokio::test]
async fn frame_over_max_frame_size_is_1009_on_the_declared_length() {
    let cfg = Config {
        limits: Limits {
            max_frame_size: 1024,
            max_message_size: 4096,
            ..Limits::DEFAULT
        },
        ..quiet()
    };
    // The header alone; the payload is never sent.
    let bytes = header(0x82, 1025, Some([1, 2, 3, 4]));
    expect_failure(cfg, bytes, 1009, |e| {
        e == ws_proto::Error::LimitExceeded(Limit::FrameSize)
    })
    .await;
    // A 64-bit length far past any limit.
    let bytes = header(0x82, 1 << 40, Some([1, 2, 3, 4]));
    expect_failure(quiet(), bytes, 1009, |e| {
        e == ws_proto::Error::LimitExceeded(Limit::FrameSize)
    })
    .await;
}

#[tokio::test]
async fn rsv_bits_are_1002() {
    for rsv in [0x40u8, 0x20, 0x10] {
        let bytes = frame_b0(0x80 | rsv | OP_TEXT, b"x", Some([9, 9, 9, 9]));
        expect_failure(quiet(), bytes, 1002, |e| {
            e == ws_proto::Error::Protocol(ProtocolError::ReservedBits)
        })
        .await;
    }
    // Also when the server would accept compression but the client did not ask for it.
    let bytes = frame_b0(0xC1, b"x", Some([9, 9, 9, 9]));
    expect_failure(compressed(), bytes, 1002, |e| {
        e == ws_proto::Error::Protocol(ProtocolError::ReservedBits)
    })
    .await;
}

#[tokio::test]
async fn other_protocol_errors() {
    // Continuation with nothing started.
    expect_failure(quiet(), cframe(true, OP_CONT, b"x"), 1002, |e| {
        e == ws_proto::Error::Protocol(ProtocolError::UnexpectedContinuation)
    })
    .await;
    // A new message inside a fragmented one.
    let mut b = cframe(false, OP_TEXT, b"a");
    b.extend(cframe(true, OP_BINARY, b"b"));
    expect_failure(quiet(), b, 1002, |e| {
        e == ws_proto::Error::Protocol(ProtocolError::ExpectedContinuation)
    })
    .await;
    // A fragmented ping.
    expect_failure(quiet(), cframe(false, OP_PING, b"x"), 1002, |e| {
        e == ws_proto::Error::Protocol(ProtocolError::FragmentedControl)
    })
    .await;
    // A close code that may not be sent.
    expect_failure(
        quiet(),
        cframe(true, OP_CLOSE, &close_payload(1005, "")),
        1002,
        |e| e == ws_proto::Error::Protocol(ProtocolError::InvalidCloseCode),
    )
    .await;
    // A close reason that is not UTF-8.
    let mut p = close_payload(1000, "");
    p.push(0xff);
    expect_failure(quiet(), cframe(true, OP_CLOSE, &p), 1007, |e| {
        e == ws_proto::Error::InvalidUtf8
    })
    .await;
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
        matches!(e, Error::Handshake(ws_proto::HandshakeError::InvalidKey)),
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
        matches!(
            e,
            Error::Handshake(ws_proto::HandshakeError::UnsupportedVersion)
        ),
        "{e:?}"
    );
}

#[tokio::test]
async fn oversized_head_is_431() {
    let req = request().replace(
        "Host: localhost\r\n",
        &format!("Host: localhost\r\nX-Big: {}\r\n", "a".repeat(9000)),
    );
    let (head, _, _) = handshake_answer(req, accept_all).await;
    assert!(head.starts_with("HTTP/1.1 431 "), "{head}");
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
        // A failing client shuts its side at once.
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
                error: ws_proto::Error::Protocol(ProtocolError::MaskedFrame),
                sent: Some(CloseCode::PROTOCOL_ERROR)
            }
        ),
        "{e:?}"
    );
    bounded("server", server).await.unwrap();
}
