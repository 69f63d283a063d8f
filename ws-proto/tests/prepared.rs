//! Prepared messages: framed once, compressed once per window, decoded by clients of every
//! negotiated kind to exactly the original.
#![cfg(feature = "deflate")]

use proptest::prelude::*;
use ws_proto::deflate::{
    Compressor, DeflateConfig, Negotiated, negotiate_client, negotiate_server,
};
use ws_proto::{Config, Connection, Message, MessageAssembler, OpCode, PreparedMessage, Role};

fn cfg() -> Config {
    Config::DEFAULT.with_ping_interval(None)
}

/// The agreement a client offering `offer` and a server configured with `server` reach, as
/// each side sees it.
fn agree(offer: &str, server: DeflateConfig, client: DeflateConfig) -> (Negotiated, Negotiated) {
    let s = negotiate_server([offer], &server).expect("accepted");
    let mut answer = [0u8; 256];
    let n = ws_proto::deflate::write_response(&s, &mut answer).unwrap();
    let answer = std::str::from_utf8(&answer[..n]).unwrap();
    let c = negotiate_client([answer], &client)
        .unwrap()
        .expect("agreed");
    (s, c)
}

/// What a client receives from `frames`.
fn decode(client: &mut Connection, frames: &[u8]) -> Vec<Message> {
    let mut asm = MessageAssembler::new();
    let mut buf = frames.to_vec();
    let mut pos = 0;
    let mut got = Vec::new();
    while pos < buf.len() {
        let (n, m) = asm.receive(client, 0, &mut buf[pos..]).unwrap();
        pos += n;
        got.extend(m);
    }
    got
}

/// The kinds of agreement: none, and deflate with and without context takeover and with every
/// server window from 9 to 15 bits.
fn kinds() -> Vec<(String, Option<(Negotiated, Negotiated)>)> {
    let mut kinds = vec![("none".to_string(), None)];
    for takeover in [true, false] {
        for bits in 9..=15u8 {
            let mut offer = format!("permessage-deflate; server_max_window_bits={bits}");
            if !takeover {
                offer.push_str("; server_no_context_takeover");
            }
            let client = DeflateConfig::DEFAULT.with_max_window_bits(bits);
            let server = DeflateConfig::DEFAULT.with_shared_compressor(true);
            kinds.push((offer.clone(), Some(agree(&offer, server, client))));
        }
    }
    kinds
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(24))]

    #[test]
    fn every_client_decodes_a_prepared_message_to_the_original(
        text in proptest::bool::ANY,
        len in prop_oneof![0usize..200, 200usize..70_000],
        seed in any::<u64>(),
    ) {
        let mut x = seed | 1;
        let payload: Vec<u8> = (0..len)
            .map(|i| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                // Compressible: a small alphabet with runs.
                if text { b"abcde fgh"[(x % 9) as usize] } else if i % 7 == 0 { x as u8 } else { 0 }
            })
            .collect();
        let original = if text {
            Message::text(String::from_utf8(payload).unwrap())
        } else {
            Message::binary(payload)
        };
        let mut prepared = PreparedMessage::new(original.clone()).unwrap();
        let mut compressor = Compressor::new(2);
        for bits in 9..=15 {
            prepared.compress(&mut compressor, bits).unwrap();
        }
        for (name, agreed) in kinds() {
            let mut server = Connection::server(cfg(), 0).unwrap();
            let mut client = Connection::client(cfg(), 7, 0).unwrap();
            if let Some((s, c)) = agreed {
                server.set_deflate(s);
                client.set_deflate(c);
            }
            // Twice: the second time after the context the first one left.
            let mut wire = Vec::new();
            for _ in 0..2 {
                let f = server.prepared_frame(&prepared).unwrap().unwrap();
                wire.extend_from_slice(f);
            }
            let compressed = agreed.is_some() && len >= 16;
            prop_assert_eq!(wire[0] & 0x40 != 0, compressed, "RSV1 for {}", name);
            let got = decode(&mut client, &wire);
            prop_assert_eq!(got, vec![original.clone(), original.clone()], "{}", name);
        }
    }
}

#[test]
fn a_prepared_message_is_compressed_once_per_window() {
    let mut compressor = Compressor::new(2);
    let text = "the same words again and again, ".repeat(64);
    let prepared = PreparedMessage::new(Message::text(text.clone()))
        .unwrap()
        .with_compression(&mut compressor, 10)
        .unwrap()
        .with_compression(&mut compressor, 15)
        .unwrap();
    assert_eq!(prepared.compressed_windows().collect::<Vec<_>>(), [10, 15]);
    // Windows of 10-14 bits take the 10-bit variant; 15 its own; 9 none (plain).
    let ten = prepared.compressed_frame(10).unwrap().as_ptr();
    assert_eq!(prepared.compressed_frame(14).unwrap().as_ptr(), ten);
    assert_ne!(prepared.compressed_frame(15).unwrap().as_ptr(), ten);
    assert!(prepared.compressed_frame(9).is_none());
    // Every connection with the same window gets the same bytes.
    let (s, _) = agree(
        "permessage-deflate",
        DeflateConfig::DEFAULT.with_shared_compressor(true),
        DeflateConfig::DEFAULT,
    );
    let mut ptrs = Vec::new();
    for _ in 0..100 {
        let mut server = Connection::server(cfg(), 0).unwrap();
        server.set_deflate(s);
        ptrs.push(server.prepared_frame(&prepared).unwrap().unwrap().as_ptr());
    }
    ptrs.dedup();
    assert_eq!(ptrs.len(), 1);
    assert!(prepared.compressed_frame(15).unwrap().len() < text.len() / 10);
}

#[test]
fn prepared_and_own_messages_mix_under_context_takeover() {
    // A server compressing with its own context (takeover both ways) sends its own messages and
    // prepared ones in turn: the client decodes them all, because the server's compressor forgets
    // its context after each prepared variant.
    let (s, c) = agree(
        "permessage-deflate",
        DeflateConfig::DEFAULT,
        DeflateConfig::DEFAULT,
    );
    assert!(!s.server_no_context_takeover);
    let mut server = Connection::server(cfg(), 0).unwrap();
    let mut client = Connection::client(cfg(), 3, 0).unwrap();
    server.set_deflate(s);
    client.set_deflate(c);
    let mut compressor = Compressor::new(2);
    let shared = "broadcast: the same words for everyone, again and again";
    let prepared = PreparedMessage::new(Message::text(shared))
        .unwrap()
        .with_compression(&mut compressor, 15)
        .unwrap();
    let own = "an own message with words the broadcast used: again and again, everyone";
    let mut wire = Vec::new();
    let mut expected = Vec::new();
    for _ in 0..5 {
        server
            .encode_message(OpCode::Text, own.as_bytes(), &mut wire)
            .unwrap();
        expected.push(Message::text(own));
        wire.extend_from_slice(server.prepared_frame(&prepared).unwrap().unwrap());
        expected.push(Message::text(shared));
    }
    assert_eq!(decode(&mut client, &wire), expected);
}

#[test]
fn a_client_encodes_prepared_messages_itself() {
    let prepared = PreparedMessage::new(Message::binary(vec![1, 2, 3])).unwrap();
    let mut client = Connection::new(Role::Client, cfg(), 9, 0).unwrap();
    assert_eq!(client.prepared_frame(&prepared), Ok(None));
    assert!(PreparedMessage::new(Message::ping(vec![1])).is_err());
    // A closed connection refuses.
    let mut server = Connection::server(cfg(), 0).unwrap();
    server.close(0, None, "").unwrap();
    assert!(server.prepared_frame(&prepared).is_err());
}

#[test]
fn a_shared_compressor_sender_compresses_through_the_caller() {
    let (s, c) = agree(
        "permessage-deflate; client_max_window_bits",
        DeflateConfig::DEFAULT.with_shared_compressor(true),
        DeflateConfig::DEFAULT,
    );
    let mut server = Connection::server(cfg(), 0).unwrap();
    let mut client = Connection::client(cfg(), 3, 0).unwrap();
    server.set_deflate(s);
    client.set_deflate(c);
    let shared = server.sender().shared_compression().unwrap();
    assert_eq!(
        (shared.window_bits, shared.min_size, shared.level),
        (15, 16, 2)
    );
    let mut tx = server.take_sender();
    let mut compressor = Compressor::new(2);
    let text = "compress me, compress me, compress me, compress me".repeat(10);
    let mut wire = Vec::new();
    tx.encode_message_with(
        OpCode::Text,
        text.as_bytes(),
        &mut wire,
        Some(&mut compressor),
    )
    .unwrap();
    assert!(wire.len() < text.len() / 4, "compressed: {}", wire.len());
    // Without a compressor it goes uncompressed.
    let mut plain = Vec::new();
    tx.encode_message(OpCode::Text, text.as_bytes(), &mut plain)
        .unwrap();
    assert_eq!(plain[0] & 0x40, 0);
    wire.extend(plain);
    assert_eq!(
        decode(&mut client, &wire),
        [Message::text(text.clone()), Message::text(text)]
    );
}

mod pool {
    use std::sync::Mutex;
    use std::sync::atomic::{AtomicUsize, Ordering};

    use ws_proto::deflate::{InflatePool, InflateState};

    /// A pool that counts what it lends and takes back.
    pub(crate) struct Counting {
        pub(crate) states: Mutex<Vec<InflateState>>,
        pub(crate) taken: AtomicUsize,
        pub(crate) given: AtomicUsize,
    }

    impl InflatePool for Counting {
        fn take(&self) -> Option<InflateState> {
            let s = self.states.lock().unwrap().pop();
            if s.is_some() {
                self.taken.fetch_add(1, Ordering::Relaxed);
            }
            s
        }
        fn give(&self, state: InflateState) {
            self.given.fetch_add(1, Ordering::Relaxed);
            self.states.lock().unwrap().push(state);
        }
    }

    pub(crate) static POOL: Counting = Counting {
        states: Mutex::new(Vec::new()),
        taken: AtomicUsize::new(0),
        given: AtomicUsize::new(0),
    };
}

#[test]
fn decompressor_state_waits_in_the_pool_between_messages() {
    use std::sync::atomic::Ordering;
    // The default server asks for client_no_context_takeover: between messages its
    // connections hold no decompressor state; the pool lends one per message.
    let (s, c) = agree(
        "permessage-deflate; client_max_window_bits",
        DeflateConfig::DEFAULT,
        DeflateConfig::DEFAULT,
    );
    assert!(s.client_no_context_takeover);
    let mut servers: Vec<Connection> = (0..3)
        .map(|_| {
            let mut c = Connection::server(cfg(), 0).unwrap();
            c.set_deflate(s);
            c.set_inflate_pool(&pool::POOL);
            c
        })
        .collect();
    let mut client = Connection::client(cfg(), 5, 0).unwrap();
    client.set_deflate(c);
    let mut tx = client.take_sender();
    let mut compressor = Compressor::new(2);
    let text = "compress me please, compress me please, compress me please".repeat(4);
    for round in 0..4 {
        for server in &mut servers {
            let mut wire = Vec::new();
            tx.encode_message_with(
                OpCode::Text,
                text.as_bytes(),
                &mut wire,
                Some(&mut compressor),
            )
            .unwrap();
            assert_ne!(wire[0] & 0x40, 0, "compressed");
            assert_eq!(
                decode(server, &wire),
                [Message::text(text.clone())],
                "round {round}"
            );
        }
    }
    // Twelve messages, one state: made once, then lent and given back every time.
    assert_eq!(pool::POOL.given.load(Ordering::Relaxed), 12);
    assert_eq!(pool::POOL.taken.load(Ordering::Relaxed), 11);
    assert_eq!(pool::POOL.states.lock().unwrap().len(), 1);
}

#[test]
fn prepared_compression_tells_the_window_in_either_mode() {
    for shared in [false, true] {
        let (s, c) = agree(
            "permessage-deflate; server_max_window_bits=11",
            DeflateConfig::DEFAULT
                .with_shared_compressor(shared)
                .with_level(4)
                .with_min_size(32),
            DeflateConfig::DEFAULT.with_max_window_bits(11),
        );
        let mut server = Connection::server(cfg(), 0).unwrap();
        server.set_deflate(s);
        let p = server.sender().prepared_compression().unwrap();
        assert_eq!(
            (p.window_bits, p.min_size, p.level),
            (11, 32, 4),
            "{shared}"
        );
        // A prepared message compressed that way goes out compressed, and decodes.
        let text = "once for every subscriber, once for every subscriber".repeat(8);
        let mut compressor = Compressor::new(p.level);
        let prepared = PreparedMessage::new(Message::text(text.clone()))
            .unwrap()
            .with_compression(&mut compressor, p.window_bits)
            .unwrap();
        let frame = server.prepared_frame(&prepared).unwrap().unwrap().clone();
        assert_eq!(frame[0] & 0x40, 0x40, "{shared}");
        let mut client = Connection::client(cfg(), 5, 0).unwrap();
        client.set_deflate(c);
        assert_eq!(decode(&mut client, &frame), [Message::text(text)]);
    }
    // No compression, and a client: nothing to prepare.
    let server = Connection::server(cfg(), 0).unwrap();
    assert_eq!(server.sender().prepared_compression(), None);
    let (_, c) = agree(
        "permessage-deflate",
        DeflateConfig::DEFAULT,
        DeflateConfig::DEFAULT,
    );
    let mut client = Connection::client(cfg(), 5, 0).unwrap();
    client.set_deflate(c);
    assert_eq!(client.sender().prepared_compression(), None);
}
