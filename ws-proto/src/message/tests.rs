use super::*;
use crate::close::CloseCode;
use crate::config::Config;
use crate::frame::{FrameHeader, OpCode};
use alloc::vec;

fn text(payload: &[u8], message_fin: bool) -> Event<'_> {
    Event::Data {
        kind: DataKind::Text,
        payload,
        frame_fin: true,
        message_fin,
    }
}

#[test]
fn whole_and_fragmented_text_messages() {
    let mut a = MessageAssembler::new();
    let m = a.push(text("héllo ✓".as_bytes(), true));
    assert_eq!(m, Some(Message::Text("héllo ✓".into())));
    // A character split across two chunks.
    let bytes = "€uro".as_bytes();
    assert_eq!(a.push(text(&bytes[..2], false)), None);
    assert_eq!(a.buffered(), 2);
    let m = a.push(text(&bytes[2..], true));
    assert_eq!(m, Some(Message::Text("€uro".into())));
    assert_eq!(a.buffered(), 0);
}

/// A masked frame as a client sends it.
fn masked(opcode: OpCode, fin: bool, payload: &[u8]) -> Vec<u8> {
    let key = [0xA1, 0x07, 0x3C, 0xF0];
    let h = FrameHeader {
        fin,
        rsv: 0,
        opcode,
        mask: Some(key),
        payload_len: payload.len() as u64,
    };
    let mut v = h.encode().as_bytes().to_vec();
    let at = v.len();
    v.extend_from_slice(payload);
    crate::mask::apply_mask_naive(&mut v[at..], key, 0);
    v
}

fn server() -> Connection {
    Connection::server(Config::DEFAULT.with_ping_interval(None), 0).unwrap()
}

/// Feeds `bytes` in pieces of `step`; returns the messages, or the error with those before.
fn receive_all(
    conn: &mut Connection,
    bytes: &[u8],
    step: usize,
) -> Result<Vec<Message>, (Vec<Message>, Error)> {
    let mut asm = MessageAssembler::new();
    let mut out = Vec::new();
    for piece in bytes.chunks(step) {
        let mut piece = piece.to_vec();
        let mut pos = 0;
        while pos < piece.len() {
            match asm.receive(conn, 0, &mut piece[pos..]) {
                Ok((n, m)) => {
                    pos += n;
                    match m {
                        Some(m) => out.push(m),
                        None => assert_eq!(pos, piece.len()),
                    }
                }
                Err(e) => return Err((out, e)),
            }
        }
    }
    Ok(out)
}

#[test]
fn receive_assembles_messages_from_any_pieces() {
    let n = if cfg!(miri) { 150 } else { 700 };
    let big: Vec<u8> = (0..n).map(|i| (i * 31 + 5) as u8).collect();
    let mut bytes = masked(OpCode::Binary, true, &big);
    bytes.extend(masked(OpCode::Text, false, "grü".as_bytes()));
    bytes.extend(masked(OpCode::Ping, true, b"mid"));
    bytes.extend(masked(OpCode::Continuation, false, &[]));
    bytes.extend(masked(OpCode::Continuation, true, "ße €".as_bytes()));
    bytes.extend(masked(OpCode::Binary, true, &[]));
    bytes.extend(masked(OpCode::Close, true, &[0x03, 0xE8, b'o', b'k']));
    let expected = vec![
        Message::binary(big.clone()),
        Message::ping(&b"mid"[..]),
        Message::text("grüße €"),
        Message::binary(Vec::new()),
        Message::Close(Some(CloseFrame::new(CloseCode::NORMAL, "ok"))),
    ];
    let steps: &[usize] = if cfg!(miri) {
        &[1, 13, 4096]
    } else {
        &[1, 2, 3, 7, 13, 64, 701, 4096]
    };
    for &step in steps {
        let mut c = server();
        assert_eq!(
            receive_all(&mut c, &bytes, step),
            Ok(expected.clone()),
            "step {step}"
        );
    }
}

#[test]
fn receive_reports_the_connections_errors() {
    let mut c = server();
    let mut bytes = masked(OpCode::Text, true, b"fine");
    bytes.extend(masked(OpCode::Text, true, &[b'x', 0xFF]));
    let (got, e) = receive_all(&mut c, &bytes, 5).unwrap_err();
    assert_eq!(got, vec![Message::Text("fine".into())]);
    assert_eq!(e, Error::InvalidUtf8);
    // An unmasked frame to a server.
    let mut c = server();
    let (_, e) = receive_all(&mut c, &[0x82, 0x01, 0x00], 3).unwrap_err();
    assert_eq!(e.close_code(), Some(CloseCode::PROTOCOL_ERROR));
}

#[test]
fn receive_reserves_no_more_than_the_limit() {
    // A declared length of 16 MiB with a few bytes of it: the buffer holds at most
    // `RESERVE_MAX` before the bytes arrive.
    let config = Config::DEFAULT
        .with_ping_interval(None)
        .with_max_frame_size(16 << 20)
        .with_max_message_size(16 << 20);
    // A frame of exactly `RESERVE_MAX` gets its whole buffer at once; one byte more, and
    // far more, get `RESERVE_MAX`.
    let max = MessageAssembler::RESERVE_MAX as u64;
    for (declared, cap) in [(max, max), (max + 1, max), (16 << 20, max)] {
        let mut c = Connection::server(config, 0).unwrap();
        let h = FrameHeader {
            fin: true,
            rsv: 0,
            opcode: OpCode::Binary,
            mask: Some([1, 2, 3, 4]),
            payload_len: declared,
        };
        let mut bytes = h.encode().as_bytes().to_vec();
        let hl = bytes.len();
        bytes.extend_from_slice(&[0; 10]);
        let mut asm = MessageAssembler::new();
        assert_eq!(asm.receive(&mut c, 0, &mut bytes), Ok((hl + 10, None)));
        assert_eq!(asm.buffered(), 10);
        assert_eq!(asm.buf.capacity() as u64, cap, "declared {declared}");
    }
}

#[cfg(all(feature = "deflate", not(miri)))]
#[test]
fn receive_inflates_compressed_messages() {
    let params = crate::deflate::negotiate_server(
        ["permessage-deflate"],
        &crate::deflate::DeflateConfig::CONTEXT_TAKEOVER,
    )
    .unwrap();
    let config = Config::DEFAULT.with_ping_interval(None);
    let mut client = Connection::client(config, 3, 0).unwrap();
    client.set_deflate(params);
    let mut server = Connection::server(config, 0).unwrap();
    server.set_deflate(params);
    let text = "compressible text, compressible text, compressible text. ".repeat(50);
    let mut bytes = Vec::new();
    client
        .encode_message(OpCode::Text, text.as_bytes(), &mut bytes)
        .unwrap();
    client
        .encode_message(OpCode::Binary, &[9; 3], &mut bytes)
        .unwrap();
    assert!(bytes.len() < text.len() / 4, "the text went compressed");
    let got = receive_all(&mut server, &bytes, 17).unwrap();
    assert_eq!(got, vec![Message::text(text), Message::binary(vec![9; 3])]);
}

#[test]
fn invalid_text_is_not_made_a_string() {
    let mut a = MessageAssembler::new();
    assert_eq!(a.push(text(&[b'a', 0xFF, b'b'], true)), None);
    // Valid halves of an invalid whole: a lone lead byte at the end.
    assert_eq!(a.push(text(b"ok", false)), None);
    assert_eq!(a.push(text(&[0xE2, 0x82], true)), None);
    // The assembler is usable afterwards.
    assert_eq!(a.push(text(b"next", true)), Some(Message::text("next")));
}

#[test]
fn pushed_bytes_are_checked_even_when_a_connection_finishes_the_message() {
    // A text message begun with `push` (bytes from anywhere) and ended through `receive`:
    // the whole message is checked, so invalid pushed bytes give no message.
    let mut c = server();
    let mut a = MessageAssembler::new();
    let start = masked(OpCode::Text, false, b"ok");
    let mut input = start.clone();
    assert_eq!(a.receive(&mut c, 0, &mut input), Ok((start.len(), None)));
    assert_eq!(a.push(text(&[0xFF], false)), None);
    let mut end = masked(OpCode::Continuation, true, b"!");
    assert_eq!(a.receive(&mut c, 0, &mut end), Ok((end.len(), None)));
    assert_eq!(a.buffered(), 0);
    // Valid pushed bytes: the message completes.
    let mut c = server();
    let mut input = start.clone();
    a.receive(&mut c, 0, &mut input).unwrap();
    assert_eq!(a.push(text(b"+", false)), None);
    let mut end = masked(OpCode::Continuation, true, b"!");
    assert_eq!(
        a.receive(&mut c, 0, &mut end),
        Ok((end.len(), Some(Message::text("ok+!"))))
    );
}

#[test]
fn a_single_frame_message_is_frozen_without_a_copy() {
    let mut c = server();
    let mut a = MessageAssembler::new();
    let payload = [7u8; 1000];
    let mut bytes = masked(OpCode::Binary, true, &payload);
    let (_, m) = a.receive(&mut c, 0, &mut bytes).unwrap();
    let Some(Message::Binary(b)) = m else {
        panic!("{m:?}")
    };
    assert_eq!(&b[..], &payload[..]);
    // The buffer was sized for the frame exactly: freezing it kept its allocation whole.
    let v: Vec<u8> = b.into();
    assert_eq!(v.capacity(), payload.len());
}

#[test]
fn utf8_bytes_and_messages() {
    let t = Utf8Bytes::from(String::from("grüße"));
    assert_eq!(t, "grüße");
    assert_eq!(t.len(), 7);
    assert_eq!(Utf8Bytes::from_static("x").as_bytes(), b"x");
    assert!(Utf8Bytes::try_from(vec![b'a', 0xC0]).is_err());
    assert_eq!(
        Utf8Bytes::try_from(bytes::Bytes::from_static("é".as_bytes())).unwrap(),
        "é"
    );
    let m = Message::text(t.clone());
    assert!(m.is_text() && !m.is_binary() && !m.is_close());
    assert_eq!(m.len(), 7);
    assert_eq!(m.to_text(), Ok("grüße"));
    assert_eq!(m.clone().into_text(), Ok(t.clone()));
    assert_eq!(m.into_data(), bytes::Bytes::from("grüße".as_bytes()));
    assert_eq!(
        Message::binary(&b"\xff"[..]).to_text(),
        Err(crate::utf8::Utf8Error)
    );
    assert_eq!(Message::from("s"), Message::text("s"));
    assert_eq!(Message::from(vec![1u8]), Message::binary(vec![1u8]));
    let c = Message::Close(Some(CloseFrame::new(CloseCode::NORMAL, "bye")));
    assert_eq!((c.len(), c.to_text()), (3, Ok("bye")));
    assert!(Message::Close(None).is_empty());
    assert!(Message::ping(vec![1]).is_ping() && Message::pong(vec![1]).is_pong());
}
