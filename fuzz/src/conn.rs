//! Drives a [`Connection`] with an arbitrary byte stream and checks its invariants, against a
//! model of its lifecycle.
//!
//! Input layout: byte 0 holds the schedule length in its low nibble and flags in its high
//! nibble; the schedule bytes follow, then the byte stream from the peer. Each schedule byte
//! gives the size of the next chunk (`b & 0x3F`, 0 meaning an empty `receive` call), a local
//! close before it when bit 7 is set and the local-close flag is on, and a timer step after it
//! when bit 6 is set (`(64 - size) * 90` ms). With the end flag on, a byte with both bit 6 and
//! bit 7 set ends the transport instead (`receive_eof`, or `abort` when bit 0 is set too). The
//! schedule cycles until the stream is used up, then runs once more with empty reads.
//!
//! The stream runs five times: whole (eager draining, no timers); in the scheduled chunks with
//! the timer steps, local closes and ends (draining only after each step, so control frames
//! pile up and pongs coalesce); through `receive_into` with output buffers of scheduled sizes
//! (some empty); rate-limited, time moving on to the end of every pause; and through
//! `MessageAssembler::receive`. All must deliver the same messages, send the same control
//! frames and end in the same state, except where a timer, a local close, the rate limits or
//! the end of the transport changed the course of a run.

use core::mem::MaybeUninit;
use core::time::Duration;

use ws_proto::bytes::Bytes;
use ws_proto::close::{encode_close_payload, parse_close_payload};
use ws_proto::rate::{OverLimit, RateLimits};
use ws_proto::{
    CloseCode, CloseFrame, Config, Connection, DataKind, Error, Event, Limit, Limits, Message,
    MessageAssembler, OpCode, Role, Sender, State, TimeoutKind, Usage,
};

use crate::{Cycle, Utf8Prefix, check_control_frame, check_sent_frame, chunks, split_schedule};

/// Flag: an idle timeout is configured.
const FLAG_IDLE: u8 = 0x10;
/// Flag: schedule bytes with bit 7 set start a local close.
const FLAG_LOCAL_CLOSE: u8 = 0x20;
/// Flag: keepalive pings are configured.
const FLAG_KEEPALIVE: u8 = 0x40;
/// Flag: schedule bytes with bits 6 and 7 set end the transport (EOF, or abort with bit 0).
const FLAG_END: u8 = 0x80;

/// Keepalive ping interval (with [`FLAG_KEEPALIVE`]), in ms.
pub const PING_MS: u64 = 1_000;
/// Pong timeout, in ms.
pub const PONG_MS: u64 = 1_500;
/// Close timeout, in ms.
pub const CLOSE_MS: u64 = 2_000;
/// Idle timeout (with [`FLAG_IDLE`]), in ms.
pub const IDLE_MS: u64 = 5_000;
/// Message timeout, in ms.
pub const MESSAGE_MS: u64 = 3_000;
/// Maximum lifetime, in ms (the connection closes up to a tenth of it earlier).
pub const LIFETIME_MS: u64 = 20_000;

/// The limits every fuzzed connection runs with.
pub const LIMITS: Limits = Limits::DEFAULT
    .with_max_message_size(4096)
    .with_max_frame_size(1024)
    .with_max_fragments(16);

/// The connection settings for the flags in the input's first byte.
pub fn config(head: u8) -> Config {
    Config::DEFAULT
        .with_limits(LIMITS)
        .with_ping_interval((head & FLAG_KEEPALIVE != 0).then_some(Duration::from_millis(PING_MS)))
        .with_pong_timeout(Duration::from_millis(PONG_MS))
        .with_close_timeout(Duration::from_millis(CLOSE_MS))
        .with_idle_timeout((head & FLAG_IDLE != 0).then_some(Duration::from_millis(IDLE_MS)))
        .with_message_timeout(Some(Duration::from_millis(MESSAGE_MS)))
        .with_max_lifetime(Some(Duration::from_millis(LIFETIME_MS)))
}

/// The rate limits of the rate-limited run: 8 messages per second in bursts of 4, 4 KiB per
/// second in bursts of 2 KiB; over them, backpressure or (`close`) a failure with 1008.
pub fn rate_limits(close: bool) -> RateLimits {
    RateLimits::default()
        .with_messages(RATE_MESSAGES, RATE_MESSAGE_BURST)
        .with_bytes(4096, 2048)
        .with_over_limit(if close {
            OverLimit::Close
        } else {
            OverLimit::Backpressure
        })
}

/// Messages per second the rate-limited run admits.
const RATE_MESSAGES: u64 = 8;
/// The burst of messages the rate-limited run admits at once.
const RATE_MESSAGE_BURST: u64 = 4;

fn ms(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
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
            ref other => panic!("unknown event {other:?}"),
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

/// Where a run ended: the connection's own account of its life.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct End {
    /// [`Connection::state`].
    pub state: State,
    /// [`Connection::error`].
    pub error: Option<Error>,
    /// [`Connection::error_close_code`].
    pub error_close_code: Option<CloseCode>,
    /// [`Connection::peer_close_code`].
    pub peer_close_code: Option<Option<CloseCode>>,
    /// The unfinished message's kind and bytes, if one was in progress and still receiving.
    pub partial: Option<(DataKind, Vec<u8>)>,
}

/// When the driver takes the control frames the connection owes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Drain {
    /// After every call into the connection.
    Eager,
    /// Only when [`Driver::drain`] is called.
    Lazy,
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

/// Output buffer sizes for `receive_into`.
#[derive(Debug)]
struct IntoSizes {
    schedule: Vec<u8>,
    at: usize,
}

impl IntoSizes {
    /// The next output size; never 0 right after a call that had no room.
    fn next(&mut self, need_room: bool) -> usize {
        const SIZES: [usize; 8] = [0, 1, 2, 5, 13, 64, 200, 4096];
        let size = if self.schedule.is_empty() {
            4096
        } else {
            let b = self.schedule[self.at % self.schedule.len()];
            self.at = self.at.wrapping_add(1);
            SIZES[usize::from(b.rotate_right(3)) % SIZES.len()]
        };
        if need_room { size.max(1) } else { size }
    }
}

/// The order of the states: a connection only moves forward.
fn rank(s: State) -> u8 {
    match s {
        State::Open => 0,
        State::ClosedByUs => 1,
        State::ClosedByPeer => 2,
        State::CloseAcknowledged => 3,
        State::Terminated => 4,
        other => panic!("unknown state {other:?}"),
    }
}

/// A model of the connection's lifecycle, kept by the driver from what it did and saw.
#[derive(Debug)]
struct Model {
    state: State,
    /// The error that failed the connection.
    failed: Option<Error>,
    /// The close code the failure sent.
    sent_code: Option<CloseCode>,
    peer_close: Option<Option<CloseCode>>,
    /// The close deadline, while closing.
    close_deadline: Option<u64>,
    /// The next keepalive ping (with keepalive on).
    next_ping: Option<u64>,
    /// When the first keepalive ping was queued.
    first_ping_at: Option<u64>,
    /// The message being received must be complete by then.
    message_deadline: Option<u64>,
    /// The earliest and latest time of the close the maximum lifetime starts, until it has.
    lifetime: Option<(u64, u64)>,
    /// When the connection was opened.
    opened_at: u64,
}

/// One connection under test plus everything the checks need to remember.
pub struct Driver {
    role: Role,
    limits: Limits,
    ping_ms: Option<u64>,
    close_ms: u64,
    idle_ms: Option<u64>,
    message_ms: Option<u64>,
    /// Rate limits are on: receiving may be held back, or fail with `RateLimited`.
    rate: Option<RateLimits>,
    /// The connection reports a message in progress.
    in_message: bool,
    /// Messages (data messages begun, control frames) delivered, for the rate check.
    admitted: u64,
    conn: Connection,
    /// The sending state, once taken from the connection.
    sender: Option<Sender>,
    /// The taken sender has encoded a close frame.
    sender_closed: bool,
    drain_mode: Drain,
    into: Option<IntoSizes>,
    assembler: MessageAssembler,
    items: Vec<Item>,
    message: Option<InMessage>,
    model: Model,
    prev_state: State,
    /// The state and sender ownership the refusal of sends was last checked in.
    sends_checked: Option<(State, bool)>,
    expected_pong: Option<Vec<u8>>,
    expected_close: Option<Vec<u8>>,
    ping_due: bool,
    last_ping_seq: u64,
    /// Our close frame has been taken from the connection.
    close_taken: bool,
    /// The connection was drained while terminated: it gives nothing more.
    terminated_drained: bool,
    /// Receiving was ended by a timer, an EOF or an abort rather than by the stream.
    cut: bool,
    /// Something other than the stream changed the state (a timer, a local close, an end).
    perturbed: bool,
    now: u64,
    sent: Vec<u8>,
    controls: Vec<(OpCode, Vec<u8>)>,
}

impl Driver {
    /// A fresh connection of `role`, opened at time 0, drained after every call.
    pub fn new(role: Role, config: Config, seed: u64) -> Self {
        Self::with(role, config, seed, 0, Drain::Eager)
    }

    /// A fresh connection of `role`, opened at `now`.
    pub fn with(role: Role, config: Config, seed: u64, now: u64, drain: Drain) -> Self {
        let conn = Connection::new(role, config, seed, now).expect("valid config");
        assert_eq!(conn.state(), State::Open);
        assert_eq!(conn.role(), role);
        let ping_ms = config.ping_interval.map(ms);
        let lifetime = config.max_lifetime.map(|d| {
            let full = ms(d);
            (now + full - full / 10, now + full)
        });
        let mut d = Driver {
            role,
            limits: config.limits,
            ping_ms,
            close_ms: ms(config.close_timeout),
            idle_ms: config.idle_timeout.map(ms),
            message_ms: config.message_timeout.map(ms),
            rate: (!config.rate_limits.is_off()).then_some(config.rate_limits),
            in_message: false,
            admitted: 0,
            conn,
            sender: None,
            sender_closed: false,
            drain_mode: drain,
            into: None,
            assembler: MessageAssembler::new(),
            items: Vec::new(),
            message: None,
            model: Model {
                state: State::Open,
                failed: None,
                sent_code: None,
                peer_close: None,
                close_deadline: None,
                next_ping: ping_ms.map(|p| now + p),
                first_ping_at: None,
                message_deadline: None,
                lifetime,
                opened_at: now,
            },
            prev_state: State::Open,
            sends_checked: None,
            expected_pong: None,
            expected_close: None,
            ping_due: false,
            last_ping_seq: 0,
            close_taken: false,
            terminated_drained: false,
            cut: false,
            perturbed: false,
            now,
            sent: Vec::new(),
            controls: Vec::new(),
        };
        d.check();
        d
    }

    /// Receives through `receive_into`, with output buffers sized by `schedule`.
    pub fn use_receive_into(&mut self, schedule: &[u8]) {
        self.into = Some(IntoSizes {
            schedule: schedule.to_vec(),
            at: 1,
        });
    }

    /// Moves the sending state out of the connection: data then goes through
    /// [`sender`](Self::sender), control frames through `poll_control` and this sender.
    pub fn take_sender(&mut self) {
        assert!(self.sender.is_none());
        self.sender = Some(self.conn.take_sender());
        self.check();
    }

    /// The taken sender, if any.
    pub fn sender(&mut self) -> Option<&mut Sender> {
        self.sender.as_mut()
    }

    /// Feeds one chunk, calling `receive` (or `receive_into`) until it has consumed everything.
    pub fn feed(&mut self, chunk: &[u8]) {
        let mut buf = chunk.to_vec();
        let mut pos = 0;
        // Every event consumes at least one byte, and a call without room for a payload is
        // followed by one with room, so this bounds a correct connection.
        let mut calls_left = 3 * buf.len() + 4;
        let mut need_room = false;
        loop {
            assert!(calls_left > 0, "receive makes no progress");
            calls_left -= 1;
            let before = self.conn.state();
            let len = buf.len() - pos;
            let now = self.now;
            let (r, room) = match self.into.as_mut() {
                None => {
                    let r = self
                        .conn
                        .receive(now, &mut buf[pos..])
                        .map(|(n, ev)| (n, ev.as_ref().map(Ev::new)));
                    (r, None)
                }
                Some(sizes) => {
                    let size = sizes.next(need_room);
                    let mut out = vec![MaybeUninit::<u8>::uninit(); size];
                    let start = out.as_ptr() as usize;
                    let r =
                        self.conn
                            .receive_into(now, &mut buf[pos..], &mut out)
                            .map(|(n, ev)| {
                                if let Some(Event::Data { payload, .. }) = &ev {
                                    assert!(payload.len() <= size, "payload larger than out");
                                    if !payload.is_empty() {
                                        assert_eq!(
                                            payload.as_ptr() as usize,
                                            start,
                                            "receive_into payload not at the start of out"
                                        );
                                    }
                                }
                                (n, ev.as_ref().map(Ev::new))
                            });
                    (r, Some(size))
                }
            };
            need_room = false;
            if !before.can_receive() {
                // Nothing is read after the peer's close frame, a failure or the end.
                assert_eq!(r, Ok((len, None)), "receive in {before:?} did not discard");
                self.after_call();
                return;
            }
            if !self.in_message && self.conn.in_message() {
                // A message began with this call: it must be complete within the timeout.
                self.model.message_deadline = self.message_ms.map(|m| now.saturating_add(m));
            }
            match r {
                Ok((n, ev)) => {
                    assert!(n <= len, "consumed {n} of {len} bytes");
                    pos += n;
                    match ev {
                        Some(ev) => self.on_event(ev, before),
                        None => {
                            if let Some(until) = self.conn.paused_until() {
                                // The rate limits hold receiving back: time moves on to the
                                // end of the pause, then the kept header is taken up.
                                assert!(
                                    self.rate
                                        .is_some_and(|r| r.over_limit == OverLimit::Backpressure),
                                    "paused without backpressure"
                                );
                                assert!(until > now, "paused until {until}, now {now}");
                                self.in_message = self.conn.in_message();
                                self.after_call();
                                self.tick(until - now);
                                calls_left += 4;
                                continue;
                            }
                            if pos == buf.len() {
                                self.in_message = self.conn.in_message();
                                self.after_call();
                                return;
                            }
                            // Only `receive_into` without room stops before the input's end.
                            assert_eq!(room, Some(0), "no event, yet bytes left unconsumed");
                            assert!(self.conn.data_remaining() > 0, "stopped without a payload");
                            need_room = true;
                        }
                    }
                }
                Err(e) => self.on_error(e, before),
            }
            self.in_message = self.conn.in_message();
            self.after_call();
        }
    }

    fn on_event(&mut self, ev: Ev, before: State) {
        let assembled = self.assembler.push(ev.as_event());
        match ev {
            Ev::Data {
                kind,
                payload,
                frame_fin,
                message_fin,
            } => {
                let m = self.message.get_or_insert_with(|| InMessage {
                    kind,
                    bytes: Vec::new(),
                    utf8: Utf8Prefix::default(),
                    frames: 0,
                    frame_bytes: 0,
                });
                assert_eq!(m.kind, kind, "kind changed inside a message");
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
                    assert_eq!(
                        self.conn.frame_remaining(),
                        0,
                        "frame ended with bytes left"
                    );
                } else {
                    let left = self.conn.frame_remaining();
                    assert!(left > 0, "frame not ended, yet nothing remains");
                    assert_eq!(self.conn.data_remaining(), left);
                }
                if !message_fin {
                    assert!(self.conn.in_message(), "message in progress not reported");
                    assert_eq!(assembled, None, "assembler gave a message too early");
                    return;
                }
                assert!(frame_fin, "message ends mid-frame");
                assert!(
                    !self.conn.in_message(),
                    "message ended but still in progress"
                );
                self.model.message_deadline = None;
                self.admitted += 1;
                let m = self.message.take().unwrap();
                let expected = match m.kind {
                    DataKind::Text => {
                        assert!(m.utf8.complete(&m.bytes), "text ends mid-character");
                        let s = core::str::from_utf8(&m.bytes).expect("text is not UTF-8");
                        Message::Text(s.into())
                    }
                    DataKind::Binary => Message::Binary(Bytes::from(m.bytes.clone())),
                };
                assert_eq!(assembled, Some(expected));
                self.items.push(Item::Message(m.kind, m.bytes));
            }
            Ev::Ping(p) => {
                assert!(p.len() <= 125);
                assert_eq!(assembled, Some(Message::Ping(Bytes::from(p.clone()))));
                if before == State::Open {
                    // The newest ping's pong replaces an unsent one.
                    self.expected_pong = Some(p.clone());
                }
                self.admitted += 1;
                self.items.push(Item::Ping(p));
            }
            Ev::Pong(p) => {
                assert!(p.len() <= 125);
                assert_eq!(assembled, Some(Message::Pong(Bytes::from(p.clone()))));
                self.admitted += 1;
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
                    Some(Message::Close(
                        code.map(|c| CloseFrame::new(c, reason.as_str()))
                    ))
                );
                let m = &mut self.model;
                m.peer_close = Some(code);
                m.close_deadline = Some(self.now.saturating_add(self.close_ms));
                match before {
                    State::Open => {
                        // The echo carries the code alone.
                        self.expected_close =
                            Some(code.map_or(Vec::new(), |c| c.0.to_be_bytes().to_vec()));
                        m.state = State::ClosedByPeer;
                    }
                    State::ClosedByUs if self.close_taken => self.after_handshake(),
                    State::ClosedByUs => self.model.state = State::ClosedByPeer,
                    other => panic!("close event in {other:?}"),
                }
                self.message = None;
                self.admitted += 1;
                self.items.push(Item::Close(code, reason));
            }
        }
    }

    fn on_error(&mut self, e: Error, before: State) {
        let rate_close = self.rate.is_some_and(|r| r.over_limit == OverLimit::Close);
        assert!(
            matches!(
                e,
                Error::Protocol(_)
                    | Error::InvalidUtf8
                    | Error::LimitExceeded(
                        Limit::FrameSize | Limit::MessageSize | Limit::Fragments
                    )
            ) || (e == Error::RateLimited && rate_close),
            "unexpected error from receive: {e:?}"
        );
        let code = e.close_code().expect("a receive error has a close code");
        assert!(before.can_receive());
        self.fail(e, before == State::Open, State::CloseAcknowledged);
        if before == State::Open {
            self.expected_close = Some(code.0.to_be_bytes().to_vec());
        }
        self.message = None;
        self.assembler.clear();
    }

    /// Records a failure in the model: `sends` when the failure sends its close code.
    fn fail(&mut self, e: Error, sends: bool, to: State) {
        let m = &mut self.model;
        assert!(
            m.failed.is_none(),
            "second failure {e:?} after {:?}",
            m.failed
        );
        m.failed = Some(e);
        m.sent_code = if sends { e.close_code() } else { None };
        m.state = to;
        if to != State::Terminated {
            m.close_deadline = Some(self.now.saturating_add(self.close_ms));
        }
    }

    /// The close handshake is over.
    fn after_handshake(&mut self) {
        self.model.state = match self.role {
            Role::Server => State::Terminated,
            Role::Client => State::CloseAcknowledged,
        };
    }

    fn after_call(&mut self) {
        if self.drain_mode == Drain::Eager {
            // Drains, then checks.
            self.drain();
        } else {
            self.check();
        }
    }

    /// Takes every queued control frame and checks it against what the events oblige.
    pub fn drain(&mut self) {
        loop {
            let (opcode, payload) = match self.sender.as_mut() {
                None => match self.conn.poll_transmit() {
                    None => break,
                    Some(f) => {
                        let (op, p) = check_control_frame(self.role, &f);
                        self.sent.extend_from_slice(f.as_bytes());
                        (op, p)
                    }
                },
                Some(s) => match self.conn.poll_control() {
                    None => break,
                    Some(c) => {
                        let (op, p) = (c.opcode(), c.payload().to_vec());
                        assert!(op.is_control() && p.len() <= 125, "{c:?}");
                        match s.encode_control(&c) {
                            Some(f) => {
                                assert!(!self.sender_closed, "sender encoded after its close");
                                let (fop, fp) = check_control_frame(self.role, &f);
                                assert_eq!((fop, &fp), (op, &p), "encoded control differs");
                                self.sent.extend_from_slice(f.as_bytes());
                            }
                            None => assert!(self.sender_closed, "sender refused {c:?}"),
                        }
                        if op == OpCode::Close {
                            assert!(s.is_closed());
                            self.sender_closed = true;
                        }
                        (op, p)
                    }
                },
            };
            assert!(!self.close_taken, "frame after the close frame");
            assert!(!self.terminated_drained, "frame given after termination");
            self.controls.push((opcode, payload.clone()));
            match opcode {
                OpCode::Pong => {
                    assert_eq!(
                        self.expected_pong.take(),
                        Some(payload),
                        "pong does not answer the last ping"
                    );
                }
                OpCode::Ping => {
                    assert!(self.ping_due, "keepalive ping that was not due");
                    self.ping_due = false;
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
                    self.close_taken = true;
                    if self.model.state == State::ClosedByPeer {
                        // Our answer to the peer's close is on its way.
                        self.after_handshake();
                    }
                }
                _ => unreachable!(),
            }
        }
        assert_eq!(self.expected_pong, None, "pong owed but not sent");
        assert!(!self.ping_due, "keepalive ping due but not sent");
        assert_eq!(self.expected_close, None, "close frame owed but not sent");
        assert!(!self.conn.has_pending_transmit());
        assert!(self.conn.poll_transmit().is_none());
        assert!(self.conn.poll_control().is_none());
        if self.model.state == State::Terminated {
            self.terminated_drained = true;
        }
        let m = &self.model;
        let shut = match m.state {
            State::Terminated => true,
            State::CloseAcknowledged => self.role == Role::Server || m.failed.is_some(),
            _ => false,
        };
        assert_eq!(
            self.conn.should_shutdown(),
            shut,
            "should_shutdown in {:?}",
            m.state
        );
        self.check();
    }

    /// Advances time by `delta` milliseconds.
    pub fn tick(&mut self, delta: u64) {
        self.now = self.now.saturating_add(delta);
        let now = self.now;
        let before = self.model.state;
        let r = self.conn.handle_timeout(now);
        let message_due = self.model.message_deadline.is_some_and(|d| now >= d);
        match before {
            State::Open | State::ClosedByUs if message_due => {
                // A message that did not arrive in time: 1008, unless our close went out.
                let e = Error::Timeout(TimeoutKind::Message);
                assert_eq!(r, Err(e), "message deadline passed in {before:?}");
                assert_eq!(e.close_code(), Some(CloseCode::POLICY_VIOLATION));
                let open = before == State::Open;
                self.fail(e, open, State::CloseAcknowledged);
                if open {
                    self.expected_close =
                        Some(CloseCode::POLICY_VIOLATION.0.to_be_bytes().to_vec());
                }
                self.message = None;
                self.assembler.clear();
            }
            State::Open => match r {
                Ok(()) => {
                    let closed = self.conn.state() == State::ClosedByUs;
                    match self.model.lifetime {
                        Some((lo, _)) if closed => assert!(
                            now >= lo,
                            "closed at {now} before the end of the lifetime (at least {lo})"
                        ),
                        Some((_, hi)) => assert!(now < hi, "open at {now} past the lifetime {hi}"),
                        None => assert!(!closed, "closed by a timer twice"),
                    }
                    if closed {
                        // The end of the connection's life: a close like the application's.
                        self.model.lifetime = None;
                        self.model.state = State::ClosedByUs;
                        self.model.close_deadline = Some(now.saturating_add(self.close_ms));
                        self.expected_close = Some(CloseCode::GOING_AWAY.0.to_be_bytes().to_vec());
                    } else if let (Some(p), Some(at)) = (self.ping_ms, self.model.next_ping)
                        && now >= at
                    {
                        self.ping_due = true;
                        self.model.first_ping_at.get_or_insert(now);
                        self.model.next_ping = Some(now.saturating_add(p));
                    }
                }
                Err(e @ Error::Timeout(TimeoutKind::Pong)) => {
                    let pong = self.ping_ms.and(self.model.first_ping_at);
                    assert!(
                        pong.is_some_and(|t| now >= t.saturating_add(PONG_MS)),
                        "pong timeout at {now} without a ping {PONG_MS} ms before ({pong:?})"
                    );
                    self.fail(e, false, State::Terminated);
                }
                Err(e @ Error::Timeout(TimeoutKind::Idle)) => {
                    let idle = self.idle_ms.map(|i| self.model.opened_at.saturating_add(i));
                    assert!(
                        idle.is_some_and(|t| now >= t),
                        "idle timeout at {now} (idle deadline at the earliest {idle:?})"
                    );
                    assert_eq!(e.close_code(), Some(CloseCode::GOING_AWAY));
                    self.fail(e, true, State::CloseAcknowledged);
                    self.expected_close = Some(CloseCode::GOING_AWAY.0.to_be_bytes().to_vec());
                    self.message = None;
                    self.assembler.clear();
                }
                Err(e) => panic!("handle_timeout while open: {e:?}"),
            },
            State::ClosedByUs => {
                let due = self.model.close_deadline.expect("close deadline");
                if now >= due {
                    assert_eq!(r, Err(Error::Timeout(TimeoutKind::Close)));
                    self.fail(Error::Timeout(TimeoutKind::Close), false, State::Terminated);
                    self.message = None;
                    self.assembler.clear();
                } else {
                    assert_eq!(r, Ok(()), "handle_timeout before the close deadline");
                }
            }
            State::ClosedByPeer | State::CloseAcknowledged => {
                assert_eq!(r, Ok(()), "handle_timeout in {before:?}");
                let due = self.model.close_deadline.expect("close deadline");
                if now >= due {
                    // The peer did not end the transport in time.
                    self.model.state = State::Terminated;
                }
            }
            State::Terminated => assert_eq!(r, Ok(()), "handle_timeout once terminated"),
            other => panic!("unknown state {other:?}"),
        }
        self.ended_by_us(before);
        self.after_call();
        let state = self.conn.state();
        if state != State::Terminated {
            let d = self.conn.poll_timeout();
            assert!(
                d.is_none_or(|d| d > now),
                "deadline {d:?} not after now {now} in {state:?}"
            );
        }
    }

    /// Notes what an operation other than receiving did to the state.
    fn ended_by_us(&mut self, before: State) {
        if self.model.state != before {
            self.perturbed = true;
            if before.can_receive() && !self.model.state.can_receive() {
                self.cut = true;
            }
        }
    }

    /// Starts the close handshake from this side with code 1000 and reason "bye", if it has not
    /// sent a close yet.
    pub fn local_close(&mut self) {
        self.local_close_with(Some(CloseCode::NORMAL), "bye");
    }

    /// Starts the close handshake from this side with a valid `code` and `reason` (the
    /// connection must refuse it once it is not open).
    pub fn local_close_with(&mut self, code: Option<CloseCode>, reason: &str) {
        let before = self.model.state;
        let r = self.conn.close(self.now, code, reason);
        if before != State::Open {
            assert_eq!(r, Err(Error::Closed), "close in {before:?}");
            self.check();
            return;
        }
        assert_eq!(r, Ok(()));
        self.model.state = State::ClosedByUs;
        self.model.close_deadline = Some(self.now.saturating_add(self.close_ms));
        let mut payload = [0u8; 125];
        let n = encode_close_payload(code, reason, &mut payload).expect("valid close");
        self.expected_close = Some(payload[..n].to_vec());
        self.ended_by_us(before);
        self.after_call();
    }

    /// Tries closes the connection must refuse without changing anything: a code that may not
    /// be sent, a reason that is too long, a reason without a code.
    pub fn bad_closes(&mut self) {
        let long = "x".repeat(124);
        let cases: [(Option<CloseCode>, &str, Error); 3] = [
            (
                Some(CloseCode::NO_STATUS),
                "",
                Error::InvalidUsage(Usage::InvalidCloseCode),
            ),
            (
                Some(CloseCode::NORMAL),
                &long,
                Error::InvalidUsage(Usage::CloseReasonTooLong),
            ),
            (None, "x", Error::InvalidUsage(Usage::InvalidCloseCode)),
        ];
        for (code, reason, err) in cases {
            let before = self.model.state;
            let r = self.conn.close(self.now, code, reason);
            if before == State::Open {
                assert_eq!(r, Err(err), "close({code:?}, {} bytes)", reason.len());
            } else {
                assert_eq!(r, Err(Error::Closed));
            }
            self.check();
        }
    }

    /// Closes through the taken sender (`encode_close`) and tells the connection; returns the
    /// close frame's bytes (also appended to the sent bytes).
    pub fn local_close_via_sender(&mut self, code: Option<CloseCode>, reason: &str) {
        let s = self.sender.as_mut().expect("sender taken");
        let f = s.encode_close(code, reason).expect("encode_close");
        assert!(s.is_closed());
        let (op, p) = check_control_frame(self.role, &f);
        assert_eq!(op, OpCode::Close);
        let mut payload = [0u8; 125];
        let n = encode_close_payload(code, reason, &mut payload).expect("valid close");
        assert_eq!(p, &payload[..n]);
        assert_eq!(
            s.encode_close(code, reason).map(|_| ()),
            Err(Error::Closed),
            "second close from a sender"
        );
        self.sender_closed = true;
        // A pong still owed cannot follow our close.
        self.expected_pong = None;
        self.sent.extend_from_slice(f.as_bytes());
        self.local_close_with(code, reason);
    }

    /// The peer ended the transport.
    pub fn eof(&mut self) {
        let before = self.model.state;
        let r = self.conn.receive_eof();
        if before.can_receive() {
            assert_eq!(r, Err(Error::PeerVanished), "EOF in {before:?}");
            if self.model.failed.is_none() {
                self.model.failed = Some(Error::PeerVanished);
                self.model.sent_code = None;
            }
            self.message = None;
            self.assembler.clear();
        } else {
            let want = match self.model.failed {
                Some(Error::PeerVanished) => Err(Error::PeerVanished),
                _ => Ok(()),
            };
            assert_eq!(r, want, "EOF in {before:?}");
        }
        self.model.state = State::Terminated;
        self.ended_by_us(before);
        self.after_call();
        // A second EOF changes nothing.
        let again = self.conn.receive_eof();
        assert_eq!(again, r, "second EOF");
        self.check();
    }

    /// The transport failed.
    pub fn abort(&mut self) {
        let before = self.model.state;
        self.conn.abort();
        self.model.state = State::Terminated;
        // Nothing more is sent: what was owed is dropped.
        self.expected_pong = None;
        self.expected_close = None;
        self.ping_due = false;
        self.terminated_drained = true;
        if before.can_receive() {
            self.message = None;
            self.assembler.clear();
        }
        self.ended_by_us(before);
        self.after_call();
        assert!(self.conn.poll_transmit().is_none(), "frame after abort");
        assert!(self.conn.should_shutdown());
    }

    /// Checks what a terminated connection does: nothing. Bytes are discarded, time changes
    /// nothing, nothing more is sent.
    pub fn check_terminated(&mut self) {
        self.drain();
        assert_eq!(self.conn.state(), State::Terminated);
        let ping: &[u8] = match self.role {
            Role::Server => &[0x89, 0x81, 1, 2, 3, 4, b'p' ^ 1, 0x81, 0x80, 0, 0, 0, 0],
            Role::Client => &[0x89, 0x01, b'p', 0x81, 0x00, 0x88, 0x01, 0x03],
        };
        self.feed(ping);
        self.tick(1 << 20);
        self.drain();
        assert_eq!(self.conn.poll_timeout(), None);
        assert!(self.conn.should_shutdown());
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

    /// The connection.
    pub fn conn(&self) -> &Connection {
        &self.conn
    }

    /// The items delivered so far.
    pub fn items(&self) -> &[Item] {
        &self.items
    }

    /// Every control frame taken so far (opcode and payload).
    pub fn controls(&self) -> &[(OpCode, Vec<u8>)] {
        &self.controls
    }

    /// Takes the bytes of every control frame sent since the last call.
    pub fn take_sent(&mut self) -> Vec<u8> {
        core::mem::take(&mut self.sent)
    }

    /// Whether a timer, an end of the transport or an abort ended receiving early.
    pub fn cut(&self) -> bool {
        self.cut
    }

    /// Whether something other than the stream changed the connection's state.
    pub fn perturbed(&self) -> bool {
        self.perturbed
    }

    /// Checks the connection against the model and the rules that hold in every state.
    fn check(&mut self) {
        let c = &self.conn;
        let s = c.state();
        let m = &self.model;
        assert_eq!(s, m.state, "state (model: {m:?})");
        assert!(
            rank(s) >= rank(self.prev_state),
            "state moved back from {:?} to {s:?}",
            self.prev_state
        );
        self.prev_state = s;
        assert_eq!(c.error(), m.failed, "error()");
        assert_eq!(c.error_close_code(), m.sent_code, "error_close_code()");
        assert_eq!(c.peer_close_code(), m.peer_close, "peer_close_code()");
        let timeout = c.poll_timeout();
        let paused = c.paused_until();
        if paused.is_some() {
            assert!(
                self.rate
                    .is_some_and(|r| r.over_limit == OverLimit::Backpressure),
                "paused without backpressure"
            );
        }
        match s {
            State::Terminated => assert_eq!(timeout, None, "deadline once terminated"),
            State::Open => {
                // The pong deadline and the idle timeout depend on when frames began to
                // arrive; the rest is known.
                let known = [
                    m.next_ping,
                    m.message_deadline,
                    m.lifetime.map(|l| l.1),
                    paused,
                ]
                .into_iter()
                .flatten()
                .min();
                assert_eq!(
                    timeout.is_some(),
                    known.is_some() || self.idle_ms.is_some(),
                    "deadline while open: {timeout:?} (model: {m:?})"
                );
                if let (Some(t), Some(k)) = (timeout, known) {
                    assert!(t <= k, "deadline {t} after a known one {k} (model: {m:?})");
                }
            }
            State::ClosedByUs => {
                let want = [m.close_deadline, m.message_deadline, paused]
                    .into_iter()
                    .flatten()
                    .min();
                assert_eq!(timeout, want, "deadline in {s:?} (model: {m:?})");
            }
            _ => assert_eq!(timeout, m.close_deadline, "close deadline in {s:?}"),
        }
        if !s.can_receive() {
            assert_eq!(c.frame_remaining(), 0);
            assert_eq!(c.data_remaining(), 0);
            assert!(!c.in_message());
        } else if self.message.is_some() {
            assert!(c.in_message(), "message in progress not reported");
        }
        if self.terminated_drained {
            assert!(!c.has_pending_transmit(), "frame queued after termination");
        }
        if c.has_pending_transmit() {
            assert!(
                !c.should_shutdown(),
                "shut down before the queue is written"
            );
        }
        let taken = self.sender.is_some();
        if self.sends_checked == Some((s, taken)) {
            return;
        }
        self.sends_checked = Some((s, taken));
        let refusal = if !s.can_send() {
            Error::Closed
        } else if taken {
            Error::InvalidUsage(Usage::SenderTaken)
        } else {
            return;
        };
        // Data sends fail once the connection is closing (or the sender was taken).
        let conn = &mut self.conn;
        let mut out = [0u8; 32];
        assert_eq!(
            conn.encode_frame(OpCode::Text, true, b"x", &mut out),
            Err(refusal),
            "encode_frame in {s:?}"
        );
        assert_eq!(
            conn.encode_frame(OpCode::Ping, true, b"", &mut out),
            Err(refusal),
            "ping in {s:?}"
        );
        let mut body = *b"abc";
        assert_eq!(
            conn.frame_header(OpCode::Binary, false, &mut body)
                .map(|_| ()),
            Err(refusal),
            "frame_header in {s:?}"
        );
        assert_eq!(&body, b"abc", "a refused frame_header masked its payload");
        let mut v = Vec::new();
        assert_eq!(
            conn.encode_message(OpCode::Binary, b"abc", &mut v),
            Err(refusal),
            "encode_message in {s:?}"
        );
        assert!(v.is_empty());
        if s != State::Open {
            assert_eq!(conn.close(self.now, None, ""), Err(Error::Closed));
        }
    }

    /// Drains what is left; returns the delivered items and where the connection ended.
    pub fn finish(&mut self) -> (Vec<Item>, End) {
        self.drain();
        let partial = self.message.as_ref().map(|m| (m.kind, m.bytes.clone()));
        let c = &self.conn;
        let end = End {
            state: c.state(),
            error: c.error(),
            error_close_code: c.error_close_code(),
            peer_close_code: c.peer_close_code(),
            partial,
        };
        (self.items.clone(), end)
    }
}

/// What a schedule byte does around its chunk: before it, a local close (bit 7, with the
/// local-close flag); after it, a timer step (bit 6) or, with the end flag and both bits, the
/// end of the transport.
#[derive(Debug, Clone, Copy)]
struct Step {
    close: Option<(Option<CloseCode>, &'static str)>,
    after: After,
}

#[derive(Debug, Clone, Copy)]
enum After {
    Nothing,
    /// Time moves on this many ms: the smaller the chunk, the longer the wait (a peer that
    /// trickles its bytes is the one that meets the deadlines).
    Tick(u64),
    Eof,
    Abort,
}

/// The reason a scheduled local close sends (the longest one allowed: 123 bytes).
const LONG_REASON: &str = "\u{e9}\u{e9}\u{e9}\u{e9}\u{e9}\u{e9}\u{e9}\u{e9}\u{e9}\u{e9}\
    \u{e9}\u{e9}\u{e9}\u{e9}\u{e9}\u{e9}\u{e9}\u{e9}\u{e9}\u{e9}\u{e9}\u{e9}\u{e9}\u{e9}\u{e9}\
    \u{e9}\u{e9}\u{e9}\u{e9}\u{e9}\u{e9}\u{e9}\u{e9}\u{e9}\u{e9}\u{e9}\u{e9}\u{e9}\u{e9}\u{e9}\
    \u{e9}\u{e9}\u{e9}\u{e9}\u{e9}\u{e9}\u{e9}\u{e9}\u{e9}\u{e9}\u{e9}\u{e9}\u{e9}\u{e9}\u{e9}\
    \u{e9}\u{e9}\u{e9}\u{e9}\u{e9}\u{e9}x";

const _: () = assert!(LONG_REASON.len() == 123);

/// What schedule byte `b` does.
fn step(head: u8, b: u8) -> Step {
    if head & FLAG_END != 0 && b & 0xC0 == 0xC0 {
        let after = if b & 1 != 0 { After::Abort } else { After::Eof };
        return Step { close: None, after };
    }
    let close = (b & 0x80 != 0 && head & FLAG_LOCAL_CLOSE != 0).then_some(match b & 3 {
        0 => (None, ""),
        1 => (Some(CloseCode::NORMAL), "bye"),
        2 => (Some(CloseCode::GOING_AWAY), ""),
        _ => (Some(CloseCode(4999)), LONG_REASON),
    });
    let after = if b & 0x40 != 0 {
        After::Tick((64 - u64::from(b & 0x3F)) * TICK_MS)
    } else {
        After::Nothing
    };
    Step { close, after }
}

/// The unit of the scheduled timer steps, in ms.
const TICK_MS: u64 = 90;

/// The whole fuzz target for one role.
pub fn fuzz_connection(role: Role, data: &[u8]) {
    let (head, schedule, stream) = split_schedule(data, 15);
    let config = config(head);
    let seed = u64::from(head).wrapping_mul(0x9e37_79b9_7f4a_7c15);
    // Any origin will do; the connections must not assume 0.
    let start = u64::from(head) << 32 | u64::from(schedule.first().copied().unwrap_or(0));

    // 1. Whole, drained after every call.
    let mut whole = Driver::with(role, config, seed, start, Drain::Eager);
    whole.feed(stream);
    let (whole_items, whole_end) = whole.finish();

    // 2. Chunked, with timer steps, local closes and ends; drained after each step only.
    let mut chunked = Driver::with(role, config, seed, start, Drain::Lazy);
    let mut cycle = Cycle::new(schedule);
    let mut rest = stream;
    let mut idle_steps = 0;
    // Once the stream is used up, the schedule runs once more with empty reads: the deadlines
    // that wait for the peer come then.
    let mut tail_steps = 0;
    if schedule.is_empty() {
        chunked.feed(rest);
        chunked.drain();
    }
    while let Some(b) = cycle.next_byte() {
        if rest.is_empty() {
            tail_steps += 1;
            if tail_steps > schedule.len() {
                break;
            }
        }
        let mut n = usize::from(b & 0x3F).min(rest.len());
        if n == 0 && !rest.is_empty() {
            // A schedule of zero sizes alone would never finish the stream.
            idle_steps += 1;
            if idle_steps > schedule.len() {
                n = rest.len();
            }
        } else {
            idle_steps = 0;
        }
        let (chunk, tail) = rest.split_at(n);
        rest = tail;
        let step = step(head, b);
        if let Some((code, reason)) = step.close {
            if code.is_none() {
                chunked.bad_closes();
            }
            chunked.local_close_with(code, reason);
        }
        chunked.feed(chunk);
        match step.after {
            After::Nothing => {}
            After::Tick(ms) => chunked.tick(ms),
            After::Eof => chunked.eof(),
            After::Abort => chunked.abort(),
        }
        chunked.drain();
    }
    let (items, end) = chunked.finish();
    if chunked.cut() {
        assert!(
            whole_items.starts_with(&items),
            "chunked run delivered {items:?}, whole run {whole_items:?}"
        );
    } else {
        assert_eq!(items, whole_items, "chunking changed the events");
        assert_eq!(end.error, whole_end.error, "chunking changed the error");
        assert_eq!(end.peer_close_code, whole_end.peer_close_code);
        if !chunked.perturbed() {
            assert_eq!(end, whole_end, "chunking changed the end");
        }
    }
    // The end of the transport at the end of the stream: terminated in every case.
    chunked.eof();
    chunked.check_terminated();

    // 3. Through `receive_into`, in other chunks, with output buffers of scheduled sizes.
    let mut into = Driver::with(role, config, seed, start, Drain::Eager);
    into.use_receive_into(schedule);
    into.feed_chunked(stream, schedule, 64);
    let (into_items, into_end) = into.finish();
    assert_eq!(
        into_items, whole_items,
        "receive_into delivered other events"
    );
    assert_eq!(into_end, whole_end, "receive_into ended differently");
    assert_eq!(
        into.controls(),
        whole.controls(),
        "receive_into answered differently"
    );
    into.abort();
    into.check_terminated();

    // 5 (before 4, which ends the whole run). Rate-limited, in other chunks: held back (time
    // moves on to the end of each pause) or failed with 1008 past the limits. It delivers what
    // the whole run did (a prefix when a limit or a timer ended it), within the rate.
    let over_close = head & 1 != 0;
    let rated_config = config.with_rate_limits(rate_limits(over_close));
    let mut rated = Driver::with(role, rated_config, seed, start, Drain::Eager);
    rated.feed_chunked(stream, schedule, 64);
    let (rated_items, rated_end) = rated.finish();
    let elapsed = rated.now - start;
    assert!(
        rated.admitted <= RATE_MESSAGE_BURST + RATE_MESSAGES * elapsed / 1000,
        "{} messages in {elapsed} ms",
        rated.admitted
    );
    if rated.cut() || rated_end.error == Some(Error::RateLimited) {
        assert!(
            whole_items.starts_with(&rated_items),
            "rate-limited run delivered {rated_items:?}, whole run {whole_items:?}"
        );
    } else {
        assert_eq!(rated_items, whole_items, "rate limits changed the events");
        assert_eq!(
            rated_end.error, whole_end.error,
            "rate limits changed the error"
        );
        if !rated.perturbed() {
            assert_eq!(rated_end, whole_end, "rate limits changed the end");
        }
    }
    if !over_close {
        assert_ne!(
            rated_end.error,
            Some(Error::RateLimited),
            "backpressure failed"
        );
    }
    rated.eof();
    rated.check_terminated();

    // 4. Through `MessageAssembler::receive` (payloads unmasked while copied into the message
    // buffer), in the schedule's chunk sizes: the same messages, answers and end.
    assembled_run(role, config, seed, start, stream, schedule, &whole);

    whole.eof();
    whole.check_terminated();
}

/// Feeds `stream` to a fresh connection through [`MessageAssembler::receive`], in chunks sized
/// by `schedule` (`b & 0x3F`, at least 1), taking control frames after every call; checks it
/// delivers, answers and ends as `whole` did.
fn assembled_run(
    role: Role,
    config: Config,
    seed: u64,
    now: u64,
    stream: &[u8],
    schedule: &[u8],
    whole: &Driver,
) {
    let mut conn = Connection::new(role, config, seed, now).expect("valid config");
    let mut asm = MessageAssembler::new();
    let mut items = Vec::new();
    let mut controls = Vec::new();
    let mut cycle = Cycle::new(schedule);
    let mut rest = stream;
    let mut take_controls = |conn: &mut Connection| {
        while let Some(f) = conn.poll_transmit() {
            controls.push(check_control_frame(role, &f));
        }
    };
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
            assert!(
                calls_left > 0,
                "MessageAssembler::receive makes no progress"
            );
            calls_left -= 1;
            let left = chunk.len() - pos;
            let before = conn.state();
            let r = asm.receive(&mut conn, now, &mut chunk[pos..]);
            if !before.can_receive() {
                assert_eq!(r, Ok((left, None)), "assembler read in {before:?}");
            }
            match r {
                Ok((used, msg)) => {
                    assert!(used <= left, "consumed {used} of {left} bytes");
                    pos += used;
                    match msg {
                        Some(m) => items.push(item_of(m)),
                        None => assert_eq!(pos, chunk.len(), "bytes left unconsumed"),
                    }
                }
                Err(e) => {
                    assert_eq!(conn.error(), Some(e));
                    assert!(!conn.state().can_receive());
                    pos = chunk.len();
                }
            }
            take_controls(&mut conn);
        }
    }
    take_controls(&mut conn);
    let whole_items: &[Item] = whole.items();
    assert_eq!(items, whole_items, "assembled run delivered other messages");
    let whole_controls: Vec<_> = whole.controls().to_vec();
    assert_eq!(
        controls, whole_controls,
        "assembled run answered differently"
    );
    let (state, error) = (conn.state(), conn.error());
    let c = whole.conn();
    assert_eq!(
        (
            state,
            error,
            conn.error_close_code(),
            conn.peer_close_code()
        ),
        (
            c.state(),
            c.error(),
            c.error_close_code(),
            c.peer_close_code()
        ),
        "assembled run ended differently"
    );
    // Once the transport fails, nothing more is sent or read.
    conn.abort();
    assert_eq!(conn.state(), State::Terminated);
    assert_eq!(conn.error(), error);
    assert!(conn.poll_transmit().is_none());
    assert_eq!(conn.poll_timeout(), None);
    assert!(conn.should_shutdown());
    let mut more = stream.to_vec();
    let len = more.len();
    assert_eq!(asm.receive(&mut conn, now, &mut more), Ok((len, None)));
}

/// The [`Item`] a message is.
fn item_of(m: Message) -> Item {
    match m {
        Message::Text(t) => Item::Message(DataKind::Text, t.as_bytes().to_vec()),
        Message::Binary(b) => Item::Message(DataKind::Binary, b.to_vec()),
        Message::Ping(p) => Item::Ping(p.to_vec()),
        Message::Pong(p) => Item::Pong(p.to_vec()),
        Message::Close(c) => match c {
            Some(f) => Item::Close(Some(f.code), f.reason.as_str().into()),
            None => Item::Close(None, String::new()),
        },
    }
}

/// Checks that `bytes` is a sequence of valid frames from `role` and returns their opcodes and
/// unmasked payloads.
pub fn split_frames(role: Role, bytes: &[u8]) -> Vec<(OpCode, Vec<u8>)> {
    let mut out = Vec::new();
    let mut pos = 0;
    while pos < bytes.len() {
        let (h, n) = match ws_proto::FrameHeader::decode(&bytes[pos..]) {
            Ok(Some(hn)) => hn,
            other => panic!("frame at {pos} does not decode: {other:?}"),
        };
        let end = pos + n + h.payload_len as usize;
        let (h, p) = check_sent_frame(role, &bytes[pos..end]);
        out.push((h.opcode, p));
        pos = end;
    }
    out
}
