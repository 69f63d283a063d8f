//! permessage-deflate on the receive path (feature `deflate`).
//!
//! First half: a `Connection` (server or client, by the input) with deflate negotiated from one
//! of several offers (context takeover or not, smaller windows) and a 64 KiB message limit is
//! fed a stream of compressed (RSV1) messages fragmented at arbitrary points, with pings
//! between fragments, in arbitrary reads. A message is either genuine (compressed by a peer
//! `Connection` through `encode_message`, optionally with one byte corrupted), arbitrary bytes
//! with RSV1, or uncompressed. Invariants: no panic; no delivered message exceeds the limit;
//! text is valid UTF-8 (every prefix a UTF-8 prefix); as long as the receiver's inflater is in
//! step with the peer's compressor, genuine messages arrive intact, and one whose inflated size
//! exceeds the limit fails with `LimitExceeded(MessageSize)` and close code 1009; every error
//! queues a close frame with its close code.
//!
//! Senders compress with a compressor of their own, or (by the input) with a shared
//! `Compressor` through `Sender::encode_message_with`, which keeps no context between messages.
//!
//! Second half: structured messages compressed with `encode_message_with` by either role and
//! decoded by the other (context takeover across the whole sequence) come back unchanged.
#![no_main]

use arbitrary::Arbitrary;
use libfuzzer_sys::fuzz_target;
use ws_proto::deflate::{Compressor, DeflateConfig, Negotiated, negotiate_server};
use ws_proto::frame::RSV1;
use ws_proto::mask::apply_mask;
use ws_proto::{
    CloseCode, Config, Connection, DataKind, Error, Event, FrameHeader, Limit, Limits, Message,
    MessageAssembler, OpCode, Role, State,
};
use ws_proto_fuzz::{Utf8Prefix, check_control_frame};

const LIMIT: u64 = 64 << 10;

const CONFIG: Config = Config::DEFAULT
    .with_limits(
        Limits::DEFAULT
            .with_max_message_size(LIMIT)
            .with_max_frame_size(LIMIT)
            .with_max_fragments(16),
    )
    .with_ping_interval(None);

/// Roundtrip limits: large enough for every generated message.
const BIG: Config = Config::DEFAULT
    .with_limits(
        Limits::DEFAULT
            .with_max_message_size(1 << 20)
            .with_max_frame_size(1 << 20)
            .with_max_fragments(16),
    )
    .with_ping_interval(None);

const OFFERS: [&str; 6] = [
    "permessage-deflate",
    "permessage-deflate; client_no_context_takeover",
    "permessage-deflate; server_no_context_takeover",
    "permessage-deflate; server_no_context_takeover; client_no_context_takeover",
    "permessage-deflate; server_max_window_bits=9; client_max_window_bits=9",
    "permessage-deflate; client_no_context_takeover; server_max_window_bits=10; client_max_window_bits=12",
];

#[derive(Arbitrary, Debug)]
enum Content {
    Bytes(Vec<u8>),
    Text(String),
    /// A highly compressible binary message (up to 3x the limit).
    Repeat {
        byte: u8,
        len: u32,
    },
    /// A highly compressible text message.
    RepeatText {
        s: String,
        times: u32,
    },
}

impl Content {
    fn make(&self) -> (DataKind, Vec<u8>) {
        match self {
            Content::Bytes(b) => (DataKind::Binary, b.clone()),
            Content::Text(s) => (DataKind::Text, s.as_bytes().to_vec()),
            Content::Repeat { byte, len } => (
                DataKind::Binary,
                vec![*byte; (*len % (3 * LIMIT as u32 + 1)) as usize],
            ),
            Content::RepeatText { s, times } => {
                let max = (3 * LIMIT as usize) / s.len().max(1);
                (
                    DataKind::Text,
                    s.repeat((*times as usize) % (max + 1)).into_bytes(),
                )
            }
        }
    }
}

#[derive(Arbitrary, Debug)]
enum Wire {
    /// Compressed by the peer's `encode_message`; `corrupt` xors one byte of the body.
    Genuine {
        content: Content,
        corrupt: Option<(u16, u8)>,
    },
    /// Arbitrary bytes sent as a compressed message.
    Raw { text: bool, bytes: Vec<u8> },
    /// An uncompressed message.
    Plain { content: Content },
}

#[derive(Arbitrary, Debug)]
struct WireMsg {
    wire: Wire,
    /// Fragment sizes (at most 20 used); the rest goes into the last fragment.
    cuts: Vec<u16>,
    ping_between: bool,
}

#[derive(Arbitrary, Debug)]
struct RoundMsg {
    from_client: bool,
    content: Content,
    reads: Vec<u8>,
}

#[derive(Arbitrary, Debug)]
struct Input {
    receiver_is_client: bool,
    offer: u8,
    level: u8,
    min_size: u8,
    /// Senders compress with a shared `Compressor` (no context between messages) instead of
    /// one of their own.
    shared: bool,
    mask_seed: u32,
    msgs: Vec<WireMsg>,
    reads: Vec<u8>,
    round: Vec<RoundMsg>,
}

/// A message the receiver must deliver: its kind, its bytes and whether it was compressed.
type Known = (DataKind, Vec<u8>, bool);

/// What the receiver must do with the stream, as far as it is known.
#[derive(Debug, PartialEq)]
enum End {
    /// Everything known: the expected messages are all there is.
    AllDelivered,
    /// After the expected messages, the connection fails with a size limit.
    Limit(Option<Limit>),
    /// After the expected messages, anything may happen (short of a panic or broken invariant).
    Unknown,
}

fn push_frame(
    wire: &mut Vec<u8>,
    fin: bool,
    rsv: u8,
    opcode: OpCode,
    mask: Option<[u8; 4]>,
    payload: &[u8],
) {
    let h = FrameHeader {
        fin,
        rsv,
        opcode,
        mask,
        payload_len: payload.len() as u64,
    };
    wire.extend_from_slice(h.encode().as_bytes());
    let start = wire.len();
    wire.extend_from_slice(payload);
    if let Some(key) = mask {
        apply_mask(&mut wire[start..], key, 0);
    }
}

/// Read sizes: `(b & 0x3f) << (4 * (b >> 6))`, 0 meaning an empty `receive`; cycles.
fn read_sizes(schedule: &[u8], total: usize) -> Vec<usize> {
    let mut out = Vec::new();
    let mut left = total;
    let mut i = 0;
    let mut zeros = 0;
    while left > 0 {
        if schedule.is_empty() || zeros > schedule.len() {
            out.push(left);
            break;
        }
        let b = schedule[i % schedule.len()];
        i += 1;
        let n = (((b & 0x3f) as usize) << (4 * (b >> 6) as usize)).min(left);
        if n == 0 {
            zeros += 1;
        } else {
            zeros = 0;
        }
        out.push(n);
        left -= n;
    }
    out
}

/// Delivered data messages (pings left out), the error if any, and the control frames queued.
struct Received {
    msgs: Vec<(DataKind, Vec<u8>)>,
    error: Option<Error>,
}

fn receive_all(conn: &mut Connection, wire: &[u8], reads: &[u8], limit: u64) -> Received {
    let mut msgs = Vec::new();
    let mut cur: Vec<u8> = Vec::new();
    let mut cur_kind: Option<DataKind> = None;
    let mut utf8 = Utf8Prefix::default();
    let mut asm = MessageAssembler::new();
    let mut pos = 0;
    for n in read_sizes(reads, wire.len()) {
        let mut chunk = wire[pos..pos + n].to_vec();
        pos += n;
        let mut at = 0;
        loop {
            match conn.receive(0, &mut chunk[at..]) {
                Ok((used, None)) => {
                    at += used;
                    assert_eq!(at, chunk.len(), "receive gave no event but left input");
                    break;
                }
                Ok((used, Some(ev))) => {
                    at += used;
                    if let Event::Data {
                        kind,
                        payload,
                        message_fin,
                        ..
                    } = ev
                    {
                        let kind = &kind;
                        let message_fin = &message_fin;
                        if let Some(k) = cur_kind {
                            assert_eq!(k, *kind, "kind changed inside a message");
                        }
                        cur_kind = Some(*kind);
                        cur.extend_from_slice(payload);
                        assert!(
                            cur.len() as u64 <= limit,
                            "delivered {} bytes of a message, limit {limit}",
                            cur.len()
                        );
                        if *kind == DataKind::Text {
                            utf8.check(&cur);
                        }
                        if *message_fin {
                            if *kind == DataKind::Text {
                                assert!(utf8.complete(&cur), "text message not valid UTF-8");
                            }
                            let whole = std::mem::take(&mut cur);
                            match asm.push(Event::Data {
                                kind: *kind,
                                payload,
                                frame_fin: true,
                                message_fin: true,
                            }) {
                                Some(Message::Text(t)) => {
                                    assert_eq!(t.as_bytes(), &whole[..], "assembler text")
                                }
                                Some(Message::Binary(b)) => assert_eq!(b, whole, "assembler"),
                                other => panic!("assembler gave {other:?} for a data message"),
                            }
                            msgs.push((*kind, whole));
                            cur_kind = None;
                            utf8 = Utf8Prefix::default();
                        } else {
                            assert!(
                                asm.push(Event::Data {
                                    kind: *kind,
                                    payload,
                                    frame_fin: false,
                                    message_fin: false,
                                })
                                .is_none()
                            );
                        }
                    } else {
                        assert!(
                            matches!(ev, Event::Ping(_) | Event::Pong(_) | Event::Close { .. }),
                            "unexpected event {ev:?}"
                        );
                        let _ = asm.push(ev);
                    }
                }
                Err(e) => {
                    return Received {
                        msgs,
                        error: Some(e),
                    };
                }
            }
        }
    }
    Received { msgs, error: None }
}

/// The same stream through `MessageAssembler::receive` (inflated chunks assembled into one
/// buffer): the data messages it completes and the error that failed the connection.
fn assemble_all(conn: &mut Connection, wire: &[u8], reads: &[u8]) -> Received {
    let mut asm = MessageAssembler::new();
    let mut msgs = Vec::new();
    let mut pos = 0;
    for n in read_sizes(reads, wire.len()) {
        let mut chunk = wire[pos..pos + n].to_vec();
        pos += n;
        let mut at = 0;
        // Every call consumes bytes or completes a message.
        for _ in 0..=2 * n + 1 {
            match asm.receive(conn, 0, &mut chunk[at..]) {
                Ok((used, m)) => {
                    at += used;
                    match m {
                        Some(Message::Text(t)) => {
                            msgs.push((DataKind::Text, t.as_bytes().to_vec()))
                        }
                        Some(Message::Binary(b)) => msgs.push((DataKind::Binary, b.to_vec())),
                        Some(_) => {}
                        None => {
                            assert_eq!(at, chunk.len(), "assembler left input");
                            break;
                        }
                    }
                }
                Err(e) => {
                    assert_eq!(conn.error(), Some(e));
                    return Received {
                        msgs,
                        error: Some(e),
                    };
                }
            }
        }
        assert_eq!(
            at,
            chunk.len(),
            "MessageAssembler::receive makes no progress"
        );
    }
    Received { msgs, error: None }
}

/// Checks that the close frame queued after `err` carries its close code, and that the
/// connection failed with it and waits for the peer's EOF once the close is taken.
fn check_close_frame(conn: &mut Connection, err: Error) {
    let role = conn.role();
    assert_eq!(conn.error(), Some(err));
    assert_eq!(conn.error_close_code(), err.close_code());
    assert_eq!(conn.state(), State::CloseAcknowledged);
    assert!(
        !conn.should_shutdown(),
        "shut before the close frame was taken"
    );
    let mut close = None;
    while let Some(f) = conn.poll_transmit() {
        let (op, payload) = check_control_frame(role, &f);
        if op == OpCode::Close {
            close = Some(payload);
        }
    }
    match err.close_code() {
        Some(code) => {
            let p = close.unwrap_or_else(|| panic!("no close frame after {err:?}"));
            assert_eq!(p, code.0.to_be_bytes(), "close code after {err:?}");
        }
        None => assert!(close.is_none(), "close frame after {err:?}"),
    }
    assert!(
        conn.should_shutdown(),
        "not shut once the close frame was taken"
    );
    assert_eq!(conn.state(), State::CloseAcknowledged);
    if matches!(err, Error::LimitExceeded(Limit::MessageSize)) {
        assert_eq!(err.close_code(), Some(CloseCode::MESSAGE_TOO_BIG));
    }
}

fn params(input: &Input) -> Negotiated {
    // A `min_size` of 0 compresses empty messages too (see ws-proto/tests/fuzz_regressions.rs).
    let config = DeflateConfig::DEFAULT
        .with_level(input.level % 10)
        .with_min_size((input.min_size % 40) as usize)
        .with_shared_compressor(input.shared);
    let offer = OFFERS[input.offer as usize % OFFERS.len()];
    negotiate_server([offer], &config).expect("offer accepted")
}

fn compressed_stream(input: &Input, params: Negotiated) {
    let (rx_role, tx_role) = if input.receiver_is_client {
        (Role::Client, Role::Server)
    } else {
        (Role::Server, Role::Client)
    };
    let mut rx = Connection::new(rx_role, CONFIG, 1, 0).unwrap();
    rx.set_deflate(params);
    // The peer's own limits do not matter: it only sends.
    let mut tx = Connection::new(tx_role, BIG, 7, 0).unwrap();
    tx.set_deflate(params);
    let mut tx = tx.take_sender();
    assert_eq!(
        tx.shared_compression().is_some(),
        params.shared_compressor,
        "shared compression"
    );
    let mut compressor = Compressor::new(params.level);
    let peer_resets = match tx_role {
        Role::Server => params.server_no_context_takeover,
        Role::Client => params.client_no_context_takeover,
    };

    let mut wire = Vec::new();
    let mut expected: Vec<(DataKind, Vec<u8>)> = Vec::new();
    let mut end = End::AllDelivered;
    // Whether the receiver's inflater is still in step with the peer's compressor.
    let mut in_step = true;
    let mut key_state = input.mask_seed;
    let mut next_mask = || {
        if rx_role == Role::Server {
            key_state = key_state
                .wrapping_mul(0x9E37_79B9)
                .wrapping_add(0x7F4A_7C15);
            Some(key_state.to_le_bytes())
        } else {
            None
        }
    };
    for m in input.msgs.iter().take(24) {
        // The message's first-frame header bits and body, and what it should deliver.
        let (opcode, rsv, body, known): (OpCode, u8, Vec<u8>, Option<Known>) = match &m.wire {
            Wire::Genuine { content, corrupt } => {
                let (kind, data) = content.make();
                let op = if kind == DataKind::Text {
                    OpCode::Text
                } else {
                    OpCode::Binary
                };
                let mut frame = Vec::new();
                tx.encode_message_with(op, &data, &mut frame, Some(&mut compressor))
                    .expect("encode_message");
                let (h, n) = FrameHeader::decode(&frame).unwrap().unwrap();
                assert!(h.fin && h.opcode == op);
                assert_eq!(h.mask.is_some(), tx_role == Role::Client);
                assert_eq!(
                    h.rsv & RSV1 != 0,
                    data.len() >= params.min_size,
                    "compressed exactly when at least min_size"
                );
                let mut body = frame[n..].to_vec();
                assert_eq!(body.len() as u64, h.payload_len);
                if let Some(key) = h.mask {
                    apply_mask(&mut body, key, 0);
                }
                let mut corrupted = false;
                if let Some((at, x)) = corrupt
                    && !body.is_empty()
                    && *x != 0
                {
                    let i = *at as usize % body.len();
                    body[i] ^= x;
                    corrupted = true;
                }
                let compressed = h.rsv & RSV1 != 0;
                (
                    op,
                    h.rsv,
                    body,
                    (!corrupted).then_some((kind, data, compressed)),
                )
            }
            Wire::Raw { text, bytes } => (
                if *text { OpCode::Text } else { OpCode::Binary },
                RSV1,
                bytes.clone(),
                None,
            ),
            Wire::Plain { content } => {
                let (kind, data) = content.make();
                let op = if kind == DataKind::Text {
                    OpCode::Text
                } else {
                    OpCode::Binary
                };
                (op, 0, data.clone(), Some((kind, data, false)))
            }
        };
        // Fragment the body.
        let mut frags: Vec<&[u8]> = Vec::new();
        let mut rest = &body[..];
        for &c in m.cuts.iter().take(20) {
            let n = (c as usize).min(rest.len());
            let (a, b) = rest.split_at(n);
            frags.push(a);
            rest = b;
        }
        frags.push(rest);
        let nfrags = frags.len();
        for (i, f) in frags.iter().enumerate() {
            let last = i + 1 == nfrags;
            let (op, bits) = if i == 0 {
                (opcode, rsv)
            } else {
                (OpCode::Continuation, 0)
            };
            push_frame(&mut wire, last, bits, op, next_mask(), f);
            if i == 0 && !last && m.ping_between {
                push_frame(&mut wire, true, 0, OpCode::Ping, next_mask(), b"p");
            }
        }

        if end != End::AllDelivered {
            continue;
        }
        // What the receiver must make of it, while the expectation is known.
        let compressed = rsv & RSV1 != 0;
        // Compressed frames get a small slack on the declared lengths (what they inflate to is
        // held to the limit exactly).
        let wire_limit = if compressed {
            LIMIT + LIMIT / 256 + 1024
        } else {
            LIMIT
        };
        let too_big_on_wire = nfrags > 16
            || body.len() as u64 > wire_limit
            || frags.iter().any(|f| f.len() as u64 > wire_limit);
        let was_known = known.is_some();
        match known {
            Some(_) if compressed && !in_step => {
                end = End::Unknown;
                in_step = false;
            }
            Some(_) if too_big_on_wire => end = End::Limit(None),
            Some((kind, data, _)) => {
                if data.len() as u64 > LIMIT {
                    end = End::Limit(Some(Limit::MessageSize));
                } else {
                    expected.push((kind, data));
                }
            }
            _ => {
                end = End::Unknown;
                in_step = false;
            }
        }
        if compressed && !was_known && !peer_resets {
            in_step = false;
        }
    }

    let mut rx2 = Connection::new(rx_role, CONFIG, 1, 0).unwrap();
    rx2.set_deflate(params);
    let got = receive_all(&mut rx, &wire, &input.reads, LIMIT);
    let assembled = assemble_all(&mut rx2, &wire, &input.reads);
    assert!(
        assembled.msgs == got.msgs,
        "MessageAssembler::receive delivered {} messages, receive {}",
        assembled.msgs.len(),
        got.msgs.len()
    );
    assert_eq!(
        assembled.error, got.error,
        "MessageAssembler::receive failed otherwise"
    );
    assert_eq!(rx2.state(), rx.state());
    assert!(
        got.msgs.len() >= expected.len(),
        "only {} of {} expected messages delivered; error {:?}",
        got.msgs.len(),
        expected.len(),
        got.error
    );
    for (i, (g, e)) in got.msgs.iter().zip(&expected).enumerate() {
        assert!(
            g == e,
            "message {i} differs: got {} bytes, expected {}",
            g.1.len(),
            e.1.len()
        );
    }
    match end {
        End::AllDelivered => {
            assert_eq!(got.msgs.len(), expected.len());
            assert_eq!(got.error, None, "error on a valid stream");
        }
        End::Limit(limit) => {
            assert_eq!(
                got.msgs.len(),
                expected.len(),
                "message over the limit delivered"
            );
            match (limit, got.error) {
                (Some(l), Some(Error::LimitExceeded(g))) => assert_eq!(l, g),
                (None, Some(Error::LimitExceeded(_))) => {}
                (_, e) => panic!("expected a size limit error, got {e:?}"),
            }
        }
        End::Unknown => {}
    }
    if let Some(e) = got.error {
        check_close_frame(&mut rx, e);
        // A failed connection reads nothing more.
        assert_eq!(
            rx.receive(0, &mut [0x81]),
            Ok((1, None)),
            "receive after a failure"
        );
    } else {
        // Still open: the peer's EOF now is a vanished peer.
        assert_eq!(rx.state(), State::Open);
        assert_eq!(rx.receive_eof(), Err(Error::PeerVanished));
        assert_eq!(rx.state(), State::Terminated);
        assert_eq!(rx.error_close_code(), None);
        // What was queued (pongs) is still given; then nothing, and the transport is shut.
        while let Some(f) = rx.poll_transmit() {
            assert_eq!(f.opcode(), OpCode::Pong, "{f:?} after EOF");
        }
        assert!(rx.should_shutdown());
    }
}

fn roundtrip(input: &Input, params: Negotiated) {
    let mut client = Connection::client(BIG, u64::from(input.mask_seed), 0).unwrap();
    let mut server = Connection::server(BIG, 0).unwrap();
    client.set_deflate(params);
    server.set_deflate(params);
    // Each side sends through its taken sender; one compressor serves both when shared.
    let mut client_tx = client.take_sender();
    let mut server_tx = server.take_sender();
    let mut compressor = Compressor::new(params.level);
    for m in input.round.iter().take(32) {
        let (kind, data) = m.content.make();
        let op = if kind == DataKind::Text {
            OpCode::Text
        } else {
            OpCode::Binary
        };
        let (tx, rx) = if m.from_client {
            (&mut client_tx, &mut server)
        } else {
            (&mut server_tx, &mut client)
        };
        let mut wire = Vec::new();
        tx.encode_message_with(op, &data, &mut wire, Some(&mut compressor))
            .expect("encode_message");
        let got = receive_all(rx, &wire, &m.reads, BIG.limits.max_message_size);
        assert_eq!(got.error, None, "roundtrip failed");
        assert_eq!(got.msgs.len(), 1);
        assert!(
            got.msgs[0] == (kind, data),
            "roundtrip changed a message of {} bytes",
            got.msgs[0].1.len()
        );
    }
}

fuzz_target!(|input: Input| {
    let params = params(&input);
    compressed_stream(&input, params);
    roundtrip(&input, params);
});
