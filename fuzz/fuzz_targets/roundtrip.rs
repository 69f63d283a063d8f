//! Messages encoded by one side (`encode_frame`, `frame_header`, `start_frame` or
//! `encode_message`, through the connection or through its taken `Sender`) and received by the
//! other, client to server (masked) and server to client: every message, fragmented at
//! arbitrary points with pings between fragments, comes out unchanged; every ping is answered
//! by a pong that reaches the sender; a close handshake from either side (through
//! `Connection::close` or `Sender::encode_close`) walks both connections through the states
//! RFC 6455 prescribes: the server ends first, the client once the server's EOF arrives.
#![no_main]

use arbitrary::Arbitrary;
use libfuzzer_sys::fuzz_target;
use ws_proto::mask::apply_mask;
use ws_proto::{
    CloseCode, Config, Connection, DataKind, Error, Limits, OpCode, Role, Sender, State,
};
use ws_proto_fuzz::check_sent_frame;
use ws_proto_fuzz::conn::{Driver, Item};

const LIMITS: Limits = Limits::DEFAULT
    .with_max_message_size(1 << 20)
    .with_max_frame_size(1 << 16)
    .with_max_fragments(64);

const CONFIG: Config = Config::DEFAULT.with_limits(LIMITS).with_ping_interval(None);

#[derive(Arbitrary, Debug)]
enum Payload {
    Text(String),
    Binary(Vec<u8>),
    Ping(Vec<u8>),
}

/// How a frame is encoded.
#[derive(Arbitrary, Debug, Clone, Copy)]
enum How {
    /// `encode_frame` into a buffer of exactly `frame_len` bytes.
    EncodeFrame,
    /// `encode_frame` into a buffer one byte short first (refused), then the right one.
    ShortBuffer,
    /// `frame_header`, the payload masked in place.
    FrameHeader,
    /// `start_frame` (taken sender only; `frame_header` otherwise), masked by the caller.
    StartFrame,
    /// `encode_message` for a whole message in one frame (`encode_frame` for fragments).
    EncodeMessage,
}

#[derive(Arbitrary, Debug)]
struct Msg {
    payload: Payload,
    /// Fragment sizes; the rest of the payload goes into the last fragment.
    cuts: Vec<u8>,
    /// A ping sent after the first fragment of a fragmented message.
    ping_inside: Option<Vec<u8>>,
    how: How,
}

#[derive(Arbitrary, Debug)]
struct Input {
    seed: u64,
    /// Send from the client through its taken `Sender`.
    client_sender: bool,
    /// Send from the server through its taken `Sender`.
    server_sender: bool,
    to_server: Vec<Msg>,
    to_client: Vec<Msg>,
    /// Read sizes for the receiving side.
    reads: Vec<u8>,
    client_closes: bool,
    /// Close through `Sender::encode_close` when the closer's sender is taken.
    close_via_sender: bool,
    close_code: Option<u16>,
    reason: String,
}

/// What frames are sent through: the connection or its taken sender.
enum Tx<'a> {
    Conn(&'a mut Connection),
    Sender(&'a mut Sender),
}

impl Tx<'_> {
    fn frame_len(&self, n: usize) -> usize {
        match self {
            Tx::Conn(c) => c.frame_len(n),
            Tx::Sender(s) => s.frame_len(n),
        }
    }

    fn encode_frame(
        &mut self,
        op: OpCode,
        fin: bool,
        p: &[u8],
        out: &mut [u8],
    ) -> Result<usize, Error> {
        match self {
            Tx::Conn(c) => c.encode_frame(op, fin, p, out),
            Tx::Sender(s) => s.encode_frame(op, fin, p, out),
        }
    }

    fn frame_header(&mut self, op: OpCode, fin: bool, p: &mut [u8]) -> Vec<u8> {
        match self {
            Tx::Conn(c) => c.frame_header(op, fin, p),
            Tx::Sender(s) => s.frame_header(op, fin, p),
        }
        .expect("frame_header")
        .as_bytes()
        .to_vec()
    }

    fn encode_message(&mut self, op: OpCode, p: &[u8], out: &mut Vec<u8>) {
        match self {
            Tx::Conn(c) => c.encode_message(op, p, out),
            Tx::Sender(s) => s.encode_message(op, p, out),
        }
        .expect("encode_message")
    }
}

/// Sends one frame from `tx` and appends it to `wire`; checks it decodes to what was sent.
fn send_frame(
    tx: &mut Driver,
    role: Role,
    op: OpCode,
    fin: bool,
    payload: &[u8],
    how: How,
    wire: &mut Vec<u8>,
) {
    let mut how = how;
    let mut t = match tx.sender() {
        Some(s) => Tx::Sender(s),
        None => {
            if let How::StartFrame = how {
                how = How::FrameHeader;
            }
            Tx::Conn(tx.conn_mut())
        }
    };
    if let How::EncodeMessage = how
        && (!fin || op == OpCode::Continuation || op.is_control())
    {
        how = How::EncodeFrame;
    }
    let start = wire.len();
    let total = t.frame_len(payload.len());
    match how {
        How::EncodeFrame | How::ShortBuffer => {
            let mut out = vec![0u8; total];
            if let How::ShortBuffer = how {
                let r = t.encode_frame(op, fin, payload, &mut out[..total - 1]);
                assert_eq!(r, Err(Error::BufferTooSmall));
            }
            let n = t
                .encode_frame(op, fin, payload, &mut out)
                .expect("encode_frame");
            assert_eq!(n, total);
            wire.extend_from_slice(&out);
        }
        How::FrameHeader => {
            let mut body = payload.to_vec();
            let h = t.frame_header(op, fin, &mut body);
            wire.extend_from_slice(&h);
            wire.extend_from_slice(&body);
        }
        How::StartFrame => {
            let Tx::Sender(s) = &mut t else {
                unreachable!()
            };
            let (h, mask) = s.start_frame(op, fin, payload.len()).expect("start_frame");
            assert_eq!(mask.is_some(), role == Role::Client, "start_frame mask");
            let mut body = payload.to_vec();
            if let Some(key) = mask {
                apply_mask(&mut body, key, 0);
            }
            wire.extend_from_slice(h.as_bytes());
            wire.extend_from_slice(&body);
        }
        How::EncodeMessage => t.encode_message(op, payload, wire),
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
                send_frame(tx, role, OpCode::Ping, true, p, msg.how, &mut wire);
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
            send_frame(tx, role, op, fin, frag, msg.how, &mut wire);
            if let (0, false, Some(p)) = (i, fin, &msg.ping_inside) {
                let p = truncate_ping(p);
                send_frame(tx, role, OpCode::Ping, true, p, msg.how, &mut wire);
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

/// The state a side reaches once the close handshake is over: the server ends the transport,
/// the client waits for it to.
fn after_handshake(role: Role) -> State {
    match role {
        Role::Server => State::Terminated,
        Role::Client => State::CloseAcknowledged,
    }
}

fuzz_target!(|input: Input| {
    let mut client = Driver::new(Role::Client, CONFIG, input.seed);
    let mut server = Driver::new(Role::Server, CONFIG, 0);
    if input.client_sender {
        client.take_sender();
    }
    if input.server_sender {
        server.take_sender();
    }
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
    let (closer, other, closer_role, other_role) = if input.client_closes {
        (&mut client, &mut server, Role::Client, Role::Server)
    } else {
        (&mut server, &mut client, Role::Server, Role::Client)
    };
    if input.close_via_sender && closer.sender().is_some() {
        closer.local_close_via_sender(code, reason);
    } else {
        closer.local_close_with(code, reason);
    }
    assert_eq!(closer.conn().state(), State::ClosedByUs);
    let close = closer.take_sent();
    other.feed_chunked(&close, &input.reads, 256);
    assert_eq!(
        other.items().last(),
        Some(&Item::Close(code, reason.into()))
    );
    // The answer was taken: the handshake is over for the side that answered.
    assert_eq!(other.conn().state(), after_handshake(other_role));
    let echo = other.take_sent();
    closer.feed_chunked(&echo, &input.reads, 256);
    assert_eq!(
        closer.items().last(),
        Some(&Item::Close(code, String::new()))
    );
    assert_eq!(closer.conn().state(), after_handshake(closer_role));
    for side in [&*closer, &*other] {
        let c = side.conn();
        assert_eq!(c.peer_close_code(), Some(code));
        assert_eq!(c.error(), None, "clean close handshake failed");
        assert_eq!(c.error_close_code(), None);
        assert_eq!(c.should_shutdown(), c.role() == Role::Server);
    }
    // The taken senders refuse data after their close.
    for side in [&mut *closer, &mut *other] {
        if let Some(s) = side.sender() {
            assert!(s.is_closed());
            let mut out = [0u8; 32];
            assert_eq!(
                s.encode_frame(OpCode::Text, true, b"x", &mut out),
                Err(Error::Closed)
            );
        }
    }
    // The server shuts the transport; the client reads its EOF and ends too.
    client.eof();
    for mut side in [client, server] {
        side.check_terminated();
        assert_eq!(side.conn().error(), None);
    }
});
