//! Messages encoded by one side (`encode_frame` or `frame_header`) and received by the other,
//! client to server (masked) and server to client: every message, fragmented at arbitrary
//! points with pings between fragments, comes out unchanged; every ping is answered by a pong
//! that reaches the sender; a close handshake from either side ends both connections cleanly.
#![no_main]

use arbitrary::Arbitrary;
use libfuzzer_sys::fuzz_target;
use ws_proto::conn::Initiator;
use ws_proto::{CloseCode, Config, DataKind, Error, Limits, OpCode, Role, State};
use ws_proto_fuzz::check_sent_frame;
use ws_proto_fuzz::conn::{Driver, Item, Outcome};

const LIMITS: Limits = Limits {
    max_frame_size: 1 << 16,
    max_message_size: 1 << 20,
    max_fragments: 64,
    ..Limits::DEFAULT
};

const CONFIG: Config = Config {
    limits: LIMITS,
    ping_interval: None,
    ..Config::DEFAULT
};

#[derive(Arbitrary, Debug)]
enum Payload {
    Text(String),
    Binary(Vec<u8>),
    Ping(Vec<u8>),
}

#[derive(Arbitrary, Debug)]
struct Msg {
    payload: Payload,
    /// Fragment sizes; the rest of the payload goes into the last fragment.
    cuts: Vec<u8>,
    /// A ping sent after the first fragment of a fragmented message.
    ping_inside: Option<Vec<u8>>,
    /// Send through `frame_header` instead of `encode_frame`.
    vectored: bool,
    /// Try `encode_frame` with a buffer one byte short first.
    short_buffer: bool,
}

#[derive(Arbitrary, Debug)]
struct Input {
    seed: u64,
    to_server: Vec<Msg>,
    to_client: Vec<Msg>,
    /// Read sizes for the receiving side.
    reads: Vec<u8>,
    client_closes: bool,
    close_code: Option<u16>,
    reason: String,
}

/// Sends one frame from `tx` and appends it to `wire`; checks it decodes to what was sent.
fn send_frame(
    tx: &mut Driver,
    role: Role,
    op: OpCode,
    fin: bool,
    payload: &[u8],
    msg: &Msg,
    wire: &mut Vec<u8>,
) {
    let conn = tx.conn_mut();
    let start = wire.len();
    let total = conn.frame_len(payload.len());
    if msg.vectored {
        let mut body = payload.to_vec();
        let h = conn.frame_header(op, fin, &mut body).expect("frame_header");
        wire.extend_from_slice(h.as_bytes());
        wire.extend_from_slice(&body);
    } else {
        let mut out = vec![0u8; total];
        if msg.short_buffer {
            let r = conn.encode_frame(op, fin, payload, &mut out[..total - 1]);
            assert_eq!(r, Err(Error::BufferTooSmall));
        }
        let n = conn
            .encode_frame(op, fin, payload, &mut out)
            .expect("encode_frame");
        assert_eq!(n, total);
        wire.extend_from_slice(&out);
    }
    assert_eq!(
        wire.len() - start,
        total,
        "frame_len differs from the frame"
    );
    let (h, body) = check_sent_frame(role, &wire[start..]);
    assert_eq!((h.opcode, h.fin), (op, fin));
    assert_eq!(body, payload);
}

fn truncate_ping(p: &[u8]) -> &[u8] {
    &p[..p.len().min(125)]
}

/// Sends `msgs` from `tx` (of `role`) to `rx`; checks what `rx` delivers and the pongs `tx`
/// gets back.
fn exchange(tx: &mut Driver, rx: &mut Driver, role: Role, msgs: &[Msg], reads: &[u8]) {
    let mut wire = Vec::new();
    let mut expected_rx = Vec::new();
    let mut expected_tx = Vec::new();
    for msg in msgs {
        let (kind, bytes) = match &msg.payload {
            Payload::Ping(p) => {
                let p = truncate_ping(p);
                send_frame(tx, role, OpCode::Ping, true, p, msg, &mut wire);
                expected_rx.push(Item::Ping(p.to_vec()));
                expected_tx.push(Item::Pong(p.to_vec()));
                continue;
            }
            Payload::Text(s) => (DataKind::Text, s.as_bytes()),
            Payload::Binary(b) => (DataKind::Binary, b.as_slice()),
        };
        if bytes.len() as u64 > LIMITS.max_frame_size {
            continue;
        }
        let mut frags = Vec::new();
        let mut rest = bytes;
        for &c in msg.cuts.iter().take(LIMITS.max_fragments as usize - 1) {
            let (a, b) = rest.split_at(usize::from(c).min(rest.len()));
            frags.push(a);
            rest = b;
        }
        frags.push(rest);
        let first = match kind {
            DataKind::Text => OpCode::Text,
            DataKind::Binary => OpCode::Binary,
        };
        for (i, frag) in frags.iter().enumerate() {
            let op = if i == 0 { first } else { OpCode::Continuation };
            let fin = i + 1 == frags.len();
            send_frame(tx, role, op, fin, frag, msg, &mut wire);
            if let (0, false, Some(p)) = (i, fin, &msg.ping_inside) {
                let p = truncate_ping(p);
                send_frame(tx, role, OpCode::Ping, true, p, msg, &mut wire);
                expected_rx.push(Item::Ping(p.to_vec()));
                expected_tx.push(Item::Pong(p.to_vec()));
            }
        }
        expected_rx.push(Item::Message(kind, bytes.to_vec()));
    }
    let rx_before = rx.items().len();
    let tx_before = tx.items().len();
    rx.feed_chunked(&wire, reads, 256);
    assert_eq!(&rx.items()[rx_before..], expected_rx.as_slice());
    let pongs = rx.take_sent();
    tx.feed_chunked(&pongs, reads, 256);
    assert_eq!(&tx.items()[tx_before..], expected_tx.as_slice());
}

fuzz_target!(|input: Input| {
    let mut client = Driver::new(Role::Client, CONFIG, input.seed);
    let mut server = Driver::new(Role::Server, CONFIG, 0);
    exchange(
        &mut client,
        &mut server,
        Role::Client,
        &input.to_server,
        &input.reads,
    );
    exchange(
        &mut server,
        &mut client,
        Role::Server,
        &input.to_client,
        &input.reads,
    );

    let code = input.close_code.map(|c| {
        let c = CloseCode(c);
        if c.is_allowed_on_wire() {
            c
        } else {
            CloseCode::NORMAL
        }
    });
    let mut reason = if code.is_some() {
        input.reason.as_str()
    } else {
        ""
    };
    while reason.len() > 123 {
        let mut end = 123;
        while !reason.is_char_boundary(end) {
            end -= 1;
        }
        reason = &reason[..end];
    }
    let (closer, other) = if input.client_closes {
        (&mut client, &mut server)
    } else {
        (&mut server, &mut client)
    };
    closer.local_close_with(code, reason);
    let close = closer.take_sent();
    other.feed_chunked(&close, &input.reads, 256);
    assert_eq!(
        other.items().last(),
        Some(&Item::Close(code, reason.into()))
    );
    let echo = other.take_sent();
    closer.feed_chunked(&echo, &input.reads, 256);
    assert_eq!(
        closer.items().last(),
        Some(&Item::Close(code, String::new()))
    );
    assert_eq!(closer.conn_mut().initiator(), Some(Initiator::Local));
    assert_eq!(other.conn_mut().initiator(), Some(Initiator::Remote));
    for mut side in [client, server] {
        assert_eq!(side.conn_mut().state(), State::Closed);
        assert!(side.conn_mut().can_shutdown());
        assert_eq!(side.finish().1, Outcome::ClosedByPeer);
    }
});
