//! Drives a [`Connection`] with an arbitrary byte stream and checks its invariants.
//!
//! Input layout: byte 0 holds the schedule length in its low nibble and flags in its high
//! nibble; the schedule bytes follow, then the byte stream from the peer. Each schedule byte
//! gives the size of the next chunk (`b & 0x3F`, 0 meaning an empty `receive` call), a timer
//! step after it when bit 6 is set, and a local close after it when bit 7 is set and the
//! local-close flag is on. The schedule cycles until the stream is used up.
//!
//! The stream runs twice: once whole with no timers, once chunked with the timer steps and
//! local closes; both must give the same messages and control events.

use ws_proto::close::{encode_close_payload, parse_close_payload};
use ws_proto::{
    CloseCode, Config, Connection, DataKind, Error, Event, Limit, Limits, Message,
    MessageAssembler, OpCode, Role, State,
};

use crate::{Cycle, Utf8Prefix, check_control_frame, chunks, split_schedule};

/// Flag: an idle timeout is configured.
const FLAG_IDLE: u8 = 0x10;
/// Flag: schedule bytes with bit 7 set start a local close.
const FLAG_LOCAL_CLOSE: u8 = 0x20;
/// Flag: keepalive pings are configured.
const FLAG_KEEPALIVE: u8 = 0x40;

/// The limits every fuzzed connection runs with.
pub const LIMITS: Limits = Limits {
    max_frame_size: 1024,
    max_message_size: 4096,
    max_fragments: 16,
    ..Limits::DEFAULT
};

/// The connection settings for the flags in the input's first byte.
pub fn config(head: u8) -> Config {
    Config {
        limits: LIMITS,
        ping_interval: (head & FLAG_KEEPALIVE != 0).then_some(1_000),
        pong_timeout: 1_500,
        close_timeout: 2_000,
        idle_timeout: (head & FLAG_IDLE != 0).then_some(5_000),
    }
}

/// An owned copy of an [`Event`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Ev {
    /// [`Event::Data`].
    Data {
        /// The message type.
        kind: DataKind,
        /// The chunk.
        payload: Vec<u8>,
        /// The chunk ends its frame.
        frame_fin: bool,
        /// The chunk ends its message.
        message_fin: bool,
    },
    /// [`Event::Ping`].
    Ping(Vec<u8>),
    /// [`Event::Pong`].
    Pong(Vec<u8>),
    /// [`Event::Close`].
    Close(Option<CloseCode>, String),
}

impl Ev {
    /// Copies an event.
    pub fn new(e: &Event<'_>) -> Ev {
        match *e {
            Event::Data {
                kind,
                payload,
                frame_fin,
                message_fin,
            } => Ev::Data {
                kind,
                payload: payload.to_vec(),
                frame_fin,
                message_fin,
            },
            Event::Ping(p) => Ev::Ping(p.to_vec()),
            Event::Pong(p) => Ev::Pong(p.to_vec()),
            Event::Close { code, reason } => Ev::Close(code, reason.into()),
        }
    }

    /// Borrows the copy back as an event.
    pub fn as_event(&self) -> Event<'_> {
        match self {
            Ev::Data {
                kind,
                payload,
                frame_fin,
                message_fin,
            } => Event::Data {
                kind: *kind,
                payload,
                frame_fin: *frame_fin,
                message_fin: *message_fin,
            },
            Ev::Ping(p) => Event::Ping(p),
            Ev::Pong(p) => Event::Pong(p),
            Ev::Close(code, reason) => Event::Close {
                code: *code,
                reason,
            },
        }
    }
}

/// What a run delivered, with data merged into whole messages.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Item {
    /// A complete data message.
    Message(DataKind, Vec<u8>),
    /// A ping.
    Ping(Vec<u8>),
    /// A pong.
    Pong(Vec<u8>),
    /// The peer's close frame.
    Close(Option<CloseCode>, String),
}

/// How a run ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// Still open; the unfinished message's kind and bytes, if one was in progress.
    Open(Option<(DataKind, Vec<u8>)>),
    /// The peer's close frame arrived.
    ClosedByPeer,
    /// `receive` failed the connection.
    Failed(Error),
    /// `handle_timeout` failed the connection.
    TimedOut(Error),
}

/// The message being received.
#[derive(Debug)]
struct InMessage {
    kind: DataKind,
    bytes: Vec<u8>,
    utf8: Utf8Prefix,
    frames: u32,
    frame_bytes: u64,
}

/// One connection under test plus everything the checks need to remember.
pub struct Driver {
    role: Role,
    limits: Limits,
    conn: Connection,
    assembler: MessageAssembler,
    items: Vec<Item>,
    message: Option<InMessage>,
    done: Option<Outcome>,
    expected_pong: Option<Vec<u8>>,
    expected_close: Option<Vec<u8>>,
    close_transmitted: bool,
    last_ping_seq: u64,
    now: u64,
    sent: Vec<u8>,
}

impl Driver {
    /// A fresh connection of `role`.
    pub fn new(role: Role, config: Config, seed: u64) -> Self {
        let conn = match role {
            Role::Server => Connection::server(config),
            Role::Client => Connection::client(config, seed),
        }
        .expect("valid config");
        assert_eq!(conn.state(), State::Open);
        Driver {
            role,
            limits: config.limits,
            conn,
            assembler: MessageAssembler::new(),
            items: Vec::new(),
            message: None,
            done: None,
            expected_pong: None,
            expected_close: None,
            close_transmitted: false,
            last_ping_seq: 0,
            now: 0,
            sent: Vec::new(),
        }
    }

    /// Feeds one chunk, calling `receive` until it has consumed everything or failed.
    pub fn feed(&mut self, chunk: &[u8]) {
        let mut buf = chunk.to_vec();
        let mut pos = 0;
        // Every event consumes at least one byte, so this bounds a correct connection.
        let mut calls_left = 2 * buf.len() + 2;
        loop {
            assert!(calls_left > 0, "receive makes no progress");
            calls_left -= 1;
            let close_sent_before = self.conn.close_sent();
            let len = buf.len() - pos;
            let r = self
                .conn
                .receive(&mut buf[pos..])
                .map(|(n, ev)| (n, ev.as_ref().map(Ev::new)));
            if self.done.is_some() {
                // Nothing may come after the peer's close frame or a failure.
                if len == 0 {
                    assert_eq!(r, Ok((0, None)));
                } else {
                    assert_eq!(r, Err(Error::Closed), "receive after the end");
                }
                self.check_state();
                return;
            }
            match r {
                Ok((n, ev)) => {
                    assert!(n <= len, "consumed {n} of {len} bytes");
                    pos += n;
                    match ev {
                        Some(ev) => self.on_event(ev, close_sent_before),
                        None => {
                            assert_eq!(pos, buf.len(), "no event, yet bytes left unconsumed");
                            self.drain();
                            self.check_state();
                            return;
                        }
                    }
                }
                Err(e) => self.on_error(e, close_sent_before),
            }
            self.drain();
            self.check_state();
        }
    }

    fn on_event(&mut self, ev: Ev, close_sent_before: bool) {
        let assembled = self.assembler.push(ev.as_event());
        match ev {
            Ev::Data {
                kind,
                payload,
                frame_fin,
                message_fin,
            } => {
                assert!(frame_fin || !message_fin, "message ends inside a frame");
                assert_eq!(self.conn.in_message(), !message_fin);
                let m = self.message.get_or_insert_with(|| InMessage {
                    kind,
                    bytes: Vec::new(),
                    utf8: Utf8Prefix::default(),
                    frames: 0,
                    frame_bytes: 0,
                });
                assert_eq!(m.kind, kind, "message type changed mid-message");
                m.bytes.extend_from_slice(&payload);
                m.frame_bytes += payload.len() as u64;
                assert!(
                    m.frame_bytes <= self.limits.max_frame_size,
                    "frame over the limit"
                );
                assert!(
                    m.bytes.len() as u64 <= self.limits.max_message_size,
                    "message over the limit"
                );
                if kind == DataKind::Text {
                    m.utf8.check(&m.bytes);
                }
                if frame_fin {
                    m.frames += 1;
                    m.frame_bytes = 0;
                    assert!(m.frames <= self.limits.max_fragments, "too many fragments");
                }
                if !message_fin {
                    assert_eq!(assembled, None, "assembler gave a message too early");
                    return;
                }
                let m = self.message.take().unwrap();
                let expected = match m.kind {
                    DataKind::Text => {
                        assert!(m.utf8.complete(&m.bytes), "text ends mid-character");
                        let s = core::str::from_utf8(&m.bytes).expect("text is not UTF-8");
                        Message::Text(s.into())
                    }
                    DataKind::Binary => Message::Binary(m.bytes.clone()),
                };
                assert_eq!(assembled, Some(expected));
                self.items.push(Item::Message(m.kind, m.bytes));
            }
            Ev::Ping(p) => {
                assert!(p.len() <= 125);
                assert_eq!(assembled, Some(Message::Ping(p.clone())));
                if !close_sent_before {
                    self.expected_pong = Some(p.clone());
                }
                self.items.push(Item::Ping(p));
            }
            Ev::Pong(p) => {
                assert!(p.len() <= 125);
                assert_eq!(assembled, Some(Message::Pong(p.clone())));
                self.items.push(Item::Pong(p));
            }
            Ev::Close(code, reason) => {
                if let Some(c) = code {
                    assert!(c.is_allowed_on_wire(), "close code {c:?} accepted");
                    assert!(reason.len() <= 123);
                } else {
                    assert!(reason.is_empty());
                }
                assert_eq!(
                    assembled,
                    Some(Message::Close(code.map(|c| (c, reason.clone()))))
                );
                assert!(self.conn.close_received());
                assert_eq!(self.conn.state(), State::Closed);
                if !close_sent_before {
                    // The echo carries the code alone.
                    self.expected_close =
                        Some(code.map_or(Vec::new(), |c| c.0.to_be_bytes().to_vec()));
                }
                self.message = None;
                self.items.push(Item::Close(code, reason));
                self.done = Some(Outcome::ClosedByPeer);
            }
        }
    }

    fn on_error(&mut self, e: Error, close_sent_before: bool) {
        assert!(
            matches!(
                e,
                Error::Protocol(_)
                    | Error::InvalidUtf8
                    | Error::LimitExceeded(
                        Limit::FrameSize | Limit::MessageSize | Limit::Fragments
                    )
            ),
            "unexpected error from receive: {e:?}"
        );
        assert_eq!(self.conn.state(), State::Closed);
        assert_eq!(self.conn.error(), Some(e));
        let code = e.close_code().expect("a receive error has a close code");
        if !close_sent_before {
            self.expected_close = Some(code.0.to_be_bytes().to_vec());
        }
        self.message = None;
        self.assembler.clear();
        self.done = Some(Outcome::Failed(e));
    }

    /// Takes every queued control frame and checks it against what the events oblige.
    pub fn drain(&mut self) {
        while let Some(f) = self.conn.poll_transmit() {
            assert!(!self.close_transmitted, "frame after the close frame");
            let (opcode, payload) = check_control_frame(self.role, &f);
            self.sent.extend_from_slice(f.as_bytes());
            match opcode {
                OpCode::Pong => {
                    assert_eq!(
                        self.expected_pong.take(),
                        Some(payload),
                        "pong does not answer the last ping"
                    );
                }
                OpCode::Ping => {
                    let seq: [u8; 8] = payload.as_slice().try_into().expect("8-byte keepalive");
                    let seq = u64::from_be_bytes(seq);
                    assert!(
                        seq > self.last_ping_seq,
                        "keepalive sequence not increasing"
                    );
                    self.last_ping_seq = seq;
                }
                OpCode::Close => {
                    assert!(parse_close_payload(&payload).is_ok(), "invalid close sent");
                    assert_eq!(
                        self.expected_close.take(),
                        Some(payload),
                        "close frame carries the wrong payload"
                    );
                    self.close_transmitted = true;
                }
                _ => unreachable!(),
            }
        }
        assert_eq!(self.expected_pong, None, "pong owed but not sent");
        assert_eq!(self.expected_close, None, "close frame owed but not sent");
        assert!(!self.conn.has_pending_transmit());
        assert!(self.conn.poll_transmit().is_none());
    }

    /// Advances time by `delta` milliseconds.
    pub fn tick(&mut self, delta: u64) {
        self.now += delta;
        let was_closed = self.conn.state() == State::Closed;
        let close_sent_before = self.conn.close_sent();
        let r = self.conn.handle_timeout(self.now);
        if was_closed {
            assert_eq!(r, self.conn.error().map_or(Ok(()), Err));
        } else {
            match r {
                Ok(()) => {
                    if let Some(d) = self.conn.poll_timeout() {
                        assert!(d > self.now, "deadline {d} not after now {}", self.now);
                    }
                }
                Err(e) => {
                    assert!(matches!(e, Error::Timeout(_)), "{e:?}");
                    assert_eq!(self.conn.state(), State::Closed);
                    assert_eq!(self.conn.error(), Some(e));
                    assert!(self.done.is_none());
                    if let (false, Some(c)) = (close_sent_before, e.close_code()) {
                        self.expected_close = Some(c.0.to_be_bytes().to_vec());
                    }
                    self.message = None;
                    self.assembler.clear();
                    self.done = Some(Outcome::TimedOut(e));
                }
            }
        }
        self.drain();
        self.check_state();
    }

    /// Starts the close handshake from this side with code 1000 and reason "bye", if it has not
    /// sent a close yet.
    pub fn local_close(&mut self) {
        self.local_close_with(Some(CloseCode::NORMAL), "bye");
    }

    /// Starts the close handshake from this side with a valid `code` and `reason`, if it has not
    /// sent a close yet.
    pub fn local_close_with(&mut self, code: Option<CloseCode>, reason: &str) {
        let close_sent_before = self.conn.close_sent();
        let close_received = self.conn.close_received();
        let r = self.conn.close(code, reason);
        if close_sent_before {
            assert_eq!(r, Err(Error::Closed));
            return;
        }
        assert_eq!(r, Ok(()));
        assert!(self.conn.close_sent());
        let state = if close_received {
            State::Closed
        } else {
            State::Closing
        };
        assert_eq!(self.conn.state(), state);
        let mut payload = [0u8; 125];
        let n = encode_close_payload(code, reason, &mut payload).expect("valid close");
        self.expected_close = Some(payload[..n].to_vec());
        self.drain();
        self.check_state();
    }

    /// Feeds `bytes` in chunks sized by `schedule` (see [`crate::chunks`]).
    pub fn feed_chunked(&mut self, bytes: &[u8], schedule: &[u8], modulus: usize) {
        for chunk in chunks(bytes, schedule, modulus) {
            self.feed(chunk);
        }
    }

    /// The connection, for sending data frames.
    pub fn conn_mut(&mut self) -> &mut Connection {
        &mut self.conn
    }

    /// The items delivered so far.
    pub fn items(&self) -> &[Item] {
        &self.items
    }

    /// Takes the bytes of every control frame `poll_transmit` gave since the last call.
    pub fn take_sent(&mut self) -> Vec<u8> {
        core::mem::take(&mut self.sent)
    }

    fn check_state(&mut self) {
        let state = self.conn.state();
        if self.conn.error().is_some() || self.conn.close_received() {
            assert_eq!(state, State::Closed);
        } else if !self.conn.close_sent() {
            assert_eq!(state, State::Open);
        }
        if self.conn.close_sent() {
            let mut out = [0u8; 16];
            assert_eq!(
                self.conn.encode_frame(OpCode::Ping, true, b"", &mut out),
                Err(Error::Closed),
                "sending after close"
            );
        }
        if state == State::Closed {
            assert!(
                self.conn.can_shutdown(),
                "closed and drained but cannot shut down"
            );
        }
    }

    /// The delivered items and how the run ended.
    pub fn finish(mut self) -> (Vec<Item>, Outcome) {
        self.drain();
        let outcome = self.done.take().unwrap_or_else(|| {
            let partial = self.message.take().map(|m| (m.kind, m.bytes));
            // A message may have begun with no payload delivered yet.
            assert!(partial.is_none() || self.conn.in_message());
            Outcome::Open(partial)
        });
        (self.items, outcome)
    }
}

/// The whole fuzz target for one role.
pub fn fuzz_connection(role: Role, data: &[u8]) {
    let (head, schedule, stream) = split_schedule(data, 15);
    let config = config(head);
    let seed = u64::from(head).wrapping_mul(0x9e37_79b9_7f4a_7c15);

    let mut whole = Driver::new(role, config, seed);
    whole.feed(stream);
    let (whole_items, whole_outcome) = whole.finish();

    let mut chunked = Driver::new(role, config, seed);
    let mut cycle = Cycle::new(schedule);
    let mut rest = stream;
    let mut idle_steps = 0;
    loop {
        let Some(b) = cycle.next_byte() else {
            chunked.feed(rest);
            break;
        };
        let mut n = usize::from(b & 0x3F).min(rest.len());
        if n == 0 {
            // A schedule of zero sizes alone would never finish the stream.
            idle_steps += 1;
            if idle_steps > schedule.len() {
                n = rest.len();
            }
        } else {
            idle_steps = 0;
        }
        let (chunk, tail) = rest.split_at(n);
        chunked.feed(chunk);
        rest = tail;
        if b & 0x40 != 0 {
            chunked.tick((u64::from(b & 0x3F) + 1) * 45);
        }
        if b & 0x80 != 0 && head & FLAG_LOCAL_CLOSE != 0 {
            chunked.local_close();
        }
        if rest.is_empty() {
            break;
        }
    }
    let (items, outcome) = chunked.finish();

    // The same stream through `MessageAssembler::receive` (payloads unmasked while copied
    // into the message buffer), in the schedule's chunk sizes: the same messages and end.
    let (assembled, error) = assembled_run(role, config, seed, stream, schedule);
    match &whole_outcome {
        Outcome::Failed(e) => assert_eq!(error, Some(*e), "assembled run ended differently"),
        _ => assert_eq!(error, None, "assembled run failed"),
    }
    assert_eq!(assembled, whole_items, "assembled run delivered other messages");

    if let Outcome::TimedOut(_) = outcome {
        assert!(
            whole_items.starts_with(&items),
            "chunked run delivered {items:?}, whole run {whole_items:?}"
        );
    } else {
        assert_eq!(items, whole_items, "chunking changed the events");
        assert_eq!(outcome, whole_outcome, "chunking changed the outcome");
    }
}

/// Feeds `stream` to a fresh connection through [`MessageAssembler::receive`], in chunks sized
/// by `schedule` (`b & 0x3F`, at least 1); returns the messages and the error that failed it.
fn assembled_run(
    role: Role,
    config: Config,
    seed: u64,
    stream: &[u8],
    schedule: &[u8],
) -> (Vec<Item>, Option<Error>) {
    let mut conn = match role {
        Role::Server => Connection::server(config),
        Role::Client => Connection::client(config, seed),
    }
    .expect("valid config");
    let mut asm = MessageAssembler::new();
    let mut items = Vec::new();
    let mut cycle = Cycle::new(schedule);
    let mut rest = stream;
    while !rest.is_empty() {
        let n = cycle
            .next_byte()
            .map_or(rest.len(), |b| usize::from(b & 0x3F).max(1))
            .min(rest.len());
        let mut chunk = rest[..n].to_vec();
        rest = &rest[n..];
        let mut pos = 0;
        // Every call with bytes left consumes some or delivers a message.
        let mut calls_left = 2 * n + 2;
        while pos < chunk.len() {
            assert!(calls_left > 0, "MessageAssembler::receive makes no progress");
            calls_left -= 1;
            let left = chunk.len() - pos;
            match asm.receive(&mut conn, &mut chunk[pos..]) {
                Ok((used, msg)) => {
                    assert!(used <= left, "consumed {used} of {left} bytes");
                    pos += used;
                    match msg {
                        Some(m) => {
                            let close = matches!(m, Message::Close(_));
                            items.push(item_of(m));
                            if close {
                                return (items, None);
                            }
                        }
                        None => assert_eq!(pos, chunk.len(), "bytes left unconsumed"),
                    }
                }
                Err(e) => {
                    assert_eq!(conn.state(), State::Closed);
                    return (items, Some(e));
                }
            }
        }
    }
    (items, None)
}

/// The [`Item`] a message is.
fn item_of(m: Message) -> Item {
    match m {
        Message::Text(t) => Item::Message(DataKind::Text, t.into_bytes()),
        Message::Binary(b) => Item::Message(DataKind::Binary, b),
        Message::Ping(p) => Item::Ping(p),
        Message::Pong(p) => Item::Pong(p),
        Message::Close(c) => match c {
            Some((code, reason)) => Item::Close(Some(code), reason),
            None => Item::Close(None, String::new()),
        },
    }
}
