//! Regression tests for crashes found by the fuzz targets in `fuzz/` (see fuzz/README.md).
#![cfg(feature = "deflate")]

use ws_proto::deflate::{DeflateConfig, negotiate_server};
use ws_proto::{Config, Connection, Message, MessageAssembler, OpCode};

/// Sends each message from `tx` to `rx` with `encode_message` and returns what `rx` assembles.
fn roundtrip(tx: &mut Connection, rx: &mut Connection, msgs: &[(OpCode, &[u8])]) -> Vec<Message> {
    let mut got = Vec::new();
    let mut asm = MessageAssembler::new();
    for &(op, payload) in msgs {
        let mut wire = Vec::new();
        tx.encode_message(op, payload, &mut wire).unwrap();
        let mut at = 0;
        loop {
            let (n, ev) = rx.receive(0, &mut wire[at..]).unwrap();
            at += n;
            match ev {
                Some(ev) => {
                    if let Some(m) = asm.push(ev) {
                        got.push(m);
                    }
                }
                None => break,
            }
        }
    }
    got
}

/// fuzz target `inflate`, crash-8bb58a99874284041db80a8677c2e72d4e5e0566: with compression
/// level 0 (stored blocks) and `min_size` 0, empty messages compressed with context takeover
/// come out of the peer's inflater as non-empty messages.
#[test]
fn inflate_empty_messages_level0_context_takeover() {
    let config = DeflateConfig::CONTEXT_TAKEOVER
        .with_level(0)
        .with_min_size(0);
    let params = negotiate_server(["permessage-deflate"], &config).unwrap();
    let cfg = Config::DEFAULT.with_ping_interval(None);
    let mut server = Connection::server(cfg, 0).unwrap();
    let mut client = Connection::client(cfg, 1, 0).unwrap();
    server.set_deflate(params);
    client.set_deflate(params);
    let got = roundtrip(
        &mut server,
        &mut client,
        &[
            (OpCode::Binary, b""),
            (OpCode::Text, b""),
            (OpCode::Binary, b""),
        ],
    );
    assert_eq!(
        got,
        [
            Message::binary(vec![]),
            Message::text(""),
            Message::binary(vec![])
        ]
    );
}

/// The same bug at the default level: an empty message after another message, both compressed
/// (`min_size` 0) with context takeover. The first empty payload leaves the appended
/// `00 00 ff ff` tail half-parsed as a stored-block header; the second completes it.
#[test]
fn inflate_empty_messages_default_level_context_takeover() {
    let config = DeflateConfig::CONTEXT_TAKEOVER.with_min_size(0);
    let params = negotiate_server(["permessage-deflate"], &config).unwrap();
    let cfg = Config::DEFAULT.with_ping_interval(None);
    let mut client = Connection::client(cfg, 1, 0).unwrap();
    let mut server = Connection::server(cfg, 0).unwrap();
    server.set_deflate(params);
    client.set_deflate(params);
    let got = roundtrip(
        &mut client,
        &mut server,
        &[
            (OpCode::Text, b"hello"),
            (OpCode::Binary, b""),
            (OpCode::Binary, b""),
        ],
    );
    assert_eq!(
        got,
        [
            Message::text("hello"),
            Message::binary(vec![]),
            Message::binary(vec![])
        ]
    );
}
