//! The connection state machine: one WebSocket after its opening handshake, in either role,
//! through its whole life up to the end of the transport.
//!
//! The caller is a pump. It hands over received bytes ([`Connection::receive`]), the end of the
//! stream ([`Connection::receive_eof`]) and time ([`Connection::handle_timeout`]); it writes out
//! what [`Connection::poll_transmit`] and the [`Sender`] produce, shuts the transport when
//! [`Connection::should_shutdown`] says so, and drops it once [`Connection::state`] is
//! [`State::Terminated`]. Every decision about the close handshake, its order and its deadlines
//! is made here.

use core::num::NonZeroU32;

use crate::close::{self, CloseCode};
use crate::config::{Config, ms};
use crate::error::{Error, TimeoutKind};
use crate::frame::{MAX_CONTROL_PAYLOAD, OpCode};

mod recv;
mod send;
#[cfg(test)]
mod tests;
mod timers;

pub use send::{Sender, SharedCompression};

#[cfg(feature = "alloc")]
pub(crate) use recv::PayloadOut;
use recv::Reader;
use timers::Timers;

/// Which end of the connection this is. Clients mask what they send; servers require masks.
/// (RFC 6455 has exactly these two.)
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Role {
    /// The side that opened the connection.
    Client,
    /// The side that accepted it.
    Server,
}

/// Where the connection is in its life. The opening handshake comes before a [`Connection`]
/// exists (see [`crate::handshake`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum State {
    /// Messages flow both ways.
    Open,
    /// We sent (or queued) our close frame and wait for the peer's; messages may still arrive.
    ClosedByUs,
    /// The peer's close frame arrived; our answer is queued in
    /// [`poll_transmit`](Connection::poll_transmit).
    ClosedByPeer,
    /// The close handshake is over, or the connection failed: what arrives is discarded while
    /// we wait, until [`poll_timeout`](Connection::poll_timeout), for the peer to end the
    /// transport ([`receive_eof`](Connection::receive_eof)).
    CloseAcknowledged,
    /// Nothing more will be read: write out what is queued, shut the transport and drop it.
    Terminated,
}

impl State {
    /// Whether data messages may be sent.
    pub const fn can_send(self) -> bool {
        matches!(self, State::Open)
    }

    /// Whether messages may still arrive.
    pub const fn can_receive(self) -> bool {
        matches!(self, State::Open | State::ClosedByUs)
    }
}

/// The type of a data message. (RFC 6455 has exactly these two.)
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum DataKind {
    /// UTF-8 text.
    Text,
    /// Arbitrary bytes.
    Binary,
}

/// Something received, borrowing the input buffer (or, for control frames split across reads
/// and inflated data, the connection).
#[derive(Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Event<'a> {
    /// A chunk of a data message, unmasked. For text, every byte delivered so far in this message
    /// is a valid UTF-8 prefix, and the message is complete and valid when `message_fin` is set.
    Data {
        /// Text or binary (the type of the message, also for continuation frames).
        kind: DataKind,
        /// The payload bytes of this chunk.
        payload: &'a [u8],
        /// This chunk ends its frame.
        frame_fin: bool,
        /// This chunk ends the message.
        message_fin: bool,
    },
    /// A ping; the pong reply is already queued (see [`Connection::poll_transmit`]).
    Ping(&'a [u8]),
    /// A pong.
    Pong(&'a [u8]),
    /// The peer's close frame, already validated. If we had not closed yet, the answer is
    /// queued.
    Close {
        /// The status code, if any.
        code: Option<CloseCode>,
        /// The reason, valid UTF-8.
        reason: &'a str,
    },
}

/// Largest encoded control frame: 2-byte header, 4-byte mask, 125-byte payload.
pub const MAX_CONTROL_FRAME: usize = 2 + 4 + MAX_CONTROL_PAYLOAD;

/// An encoded control frame on the stack, from [`Connection::poll_transmit`] or
/// [`Sender::encode_control`].
#[derive(Clone, Copy)]
pub struct ControlFrame {
    buf: [u8; MAX_CONTROL_FRAME],
    len: u8,
    opcode: OpCode,
}

impl ControlFrame {
    /// The frame's bytes, header and (masked, for clients) payload.
    pub fn as_bytes(&self) -> &[u8] {
        &self.buf[..self.len as usize]
    }

    /// Ping, pong or close.
    pub fn opcode(&self) -> OpCode {
        self.opcode
    }
}

impl core::fmt::Debug for ControlFrame {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("ControlFrame")
            .field("opcode", &self.opcode)
            .field("bytes", &self.as_bytes())
            .finish()
    }
}

/// A control frame the connection owes the peer (a pong, a keepalive ping or a close), not
/// yet encoded: from [`Connection::poll_control`], for a [`Sender`] to encode.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct Control {
    opcode: OpCode,
    payload: CtrlBuf,
}

impl Control {
    /// Ping, pong or close.
    pub fn opcode(&self) -> OpCode {
        self.opcode
    }

    /// The payload (at most 125 bytes).
    pub fn payload(&self) -> &[u8] {
        self.payload.as_slice()
    }
}

impl core::fmt::Debug for Control {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("Control")
            .field("opcode", &self.opcode)
            .field("payload", &self.payload())
            .finish()
    }
}

/// A small control payload kept inside the connection.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) struct CtrlBuf {
    buf: [u8; MAX_CONTROL_PAYLOAD],
    len: u8,
}

impl CtrlBuf {
    pub(crate) const EMPTY: CtrlBuf = CtrlBuf {
        buf: [0; MAX_CONTROL_PAYLOAD],
        len: 0,
    };

    /// A buffer holding `data` (at most 125 bytes; the rest is cut).
    pub(crate) fn of(data: &[u8]) -> CtrlBuf {
        let mut b = Self::EMPTY;
        let n = data.len().min(MAX_CONTROL_PAYLOAD);
        b.buf[..n].copy_from_slice(&data[..n]);
        b.len = n as u8;
        b
    }

    /// A close payload: `code` (if any) and `reason`, validated for sending.
    pub(crate) fn close(code: Option<CloseCode>, reason: &str) -> Result<CtrlBuf, Error> {
        let mut b = Self::EMPTY;
        b.len = close::encode_close_payload(code, reason, &mut b.buf)? as u8;
        Ok(b)
    }

    pub(crate) fn as_slice(&self) -> &[u8] {
        &self.buf[..self.len as usize]
    }

    /// Appends `data`, which must fit.
    pub(crate) fn push(&mut self, data: &[u8]) {
        let at = self.len as usize;
        self.buf[at..at + data.len()].copy_from_slice(data);
        self.len += data.len() as u8;
    }
}

/// Control frames owed to the peer, bounded: the newest pong replaces an unsent one.
#[derive(Debug, Clone, Copy, Default)]
struct Outbox {
    pong: Option<CtrlBuf>,
    ping: Option<[u8; 8]>,
    close: Option<CtrlBuf>,
    /// Our close frame has been taken for sending; nothing more is given.
    close_taken: bool,
}

impl core::fmt::Debug for CtrlBuf {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        self.as_slice().fmt(f)
    }
}

/// The periods the connection keeps, in milliseconds (up to 49 days: longer ones count as
/// that).
#[derive(Debug, Clone, Copy)]
struct Timing {
    ping: Option<NonZeroU32>,
    pong: u32,
    close: u32,
    idle: Option<NonZeroU32>,
    message: Option<NonZeroU32>,
}

/// `d` in whole milliseconds, at most `u32::MAX`.
fn ms32(d: core::time::Duration) -> u32 {
    ms(d).min(u64::from(u32::MAX)) as u32
}

/// The limits the connection checks (the handshake's are not kept).
#[derive(Debug, Clone, Copy)]
pub(crate) struct RecvLimits {
    pub(crate) max_frame_size: u64,
    pub(crate) max_message_size: u64,
    pub(crate) max_fragments: u32,
}

/// How the connection failed.
#[derive(Debug, Clone, Copy)]
struct Failure {
    error: Error,
    /// The close code the failure sent, if it sent a close frame.
    sent: Option<CloseCode>,
}

/// A WebSocket connection after the opening handshake, in either role.
///
/// Feed received bytes to [`receive`](Self::receive) and the end of the stream to
/// [`receive_eof`](Self::receive_eof); send data frames with
/// [`encode_message`](Self::encode_message), [`frame_header`](Self::frame_header) or
/// [`encode_frame`](Self::encode_frame); write out what [`poll_transmit`](Self::poll_transmit)
/// yields; call [`handle_timeout`](Self::handle_timeout) when the deadline of
/// [`poll_timeout`](Self::poll_timeout) comes. Time is plain milliseconds from any fixed origin.
///
/// ```
/// use ws_proto::{Config, Connection, Event, OpCode, State};
///
/// let mut conn = Connection::server(Config::default(), 0).unwrap();
/// let mut input = vec![0x81, 0x82, 1, 2, 3, 4, b'h' ^ 1, b'i' ^ 2]; // masked "hi"
/// let (used, event) = conn.receive(0, &mut input).unwrap();
/// assert_eq!(used, 8);
/// assert!(matches!(event, Some(Event::Data { payload: b"hi", message_fin: true, .. })));
/// let mut out = [0u8; 16];
/// let n = conn.encode_frame(OpCode::Text, true, b"hi", &mut out).unwrap();
/// assert_eq!(&out[..n], &[0x81, 2, b'h', b'i']);
/// conn.close(0, Some(ws_proto::CloseCode::NORMAL), "bye").unwrap();
/// assert_eq!(conn.state(), State::ClosedByUs);
/// ```
#[derive(Debug)]
pub struct Connection {
    limits: RecvLimits,
    rx: Reader,
    life: Life,
    sender: Sender,
    /// The rate limits, when set (held apart: most connections have none).
    limiter: Option<Limiter>,
}

/// Where a connection's rate limiter is kept: on the heap with `alloc`, so that connections
/// without limits do not carry its size.
#[cfg(feature = "alloc")]
type Limiter = alloc::boxed::Box<crate::rate::RateLimiter>;
#[cfg(not(feature = "alloc"))]
type Limiter = crate::rate::RateLimiter;

/// The connection's life: its state, what it owes the peer, its deadlines and how it ended.
#[derive(Debug)]
struct Life {
    role: Role,
    state: State,
    failure: Option<Failure>,
    /// The code of the peer's close frame, once it arrived (`None` inside for no code).
    peer_close: Option<Option<CloseCode>>,
    timing: Timing,
    out: Outbox,
    timers: Timers,
}

impl Connection {
    /// A server-side connection, opened at `now` (with a fixed seed: use
    /// [`new`](Self::new) to give one when [`max_lifetime`](Config::max_lifetime) is set).
    pub fn server(config: Config, now: u64) -> Result<Self, Error> {
        Self::new(Role::Server, config, 0, now)
    }

    /// A client-side connection, opened at `now`. `seed` must come from a good random source:
    /// masking keys are drawn from a generator seeded with it.
    pub fn client(config: Config, seed: u64, now: u64) -> Result<Self, Error> {
        Self::new(Role::Client, config, seed, now)
    }

    /// A connection in the given role, opened at `now`. `seed` must come from a good random
    /// source: a client draws its masking keys from a generator seeded with it, and either
    /// role the random part of its [`max_lifetime`](Config::max_lifetime).
    pub fn new(role: Role, config: Config, seed: u64, now: u64) -> Result<Self, Error> {
        config.validate()?;
        let timing = Timing {
            ping: config.ping_interval.and_then(|d| NonZeroU32::new(ms32(d))),
            pong: ms32(config.pong_timeout),
            close: ms32(config.close_timeout),
            idle: config.idle_timeout.and_then(|d| NonZeroU32::new(ms32(d))),
            message: config
                .message_timeout
                .and_then(|d| NonZeroU32::new(ms32(d))),
        };
        let limiter = if config.rate_limits.is_off() {
            None
        } else {
            let l = crate::rate::RateLimiter::new(&config.rate_limits, now)?;
            #[cfg(feature = "alloc")]
            let l = alloc::boxed::Box::new(l);
            Some(l)
        };
        let mut sender = Sender::new(role, seed);
        let lifetime = config.max_lifetime.map(|d| {
            // Up to a tenth of the lifetime earlier, drawn from the connection's generator.
            let full = ms(d);
            full - sender.random() % (full / 10 + 1)
        });
        let l = config.limits;
        Ok(Connection {
            limits: RecvLimits {
                max_frame_size: l.max_frame_size,
                max_message_size: l.max_message_size,
                max_fragments: l.max_fragments,
            },
            rx: Reader::new(),
            life: Life {
                role,
                state: State::Open,
                failure: None,
                peer_close: None,
                timers: Timers::new(now, timing.ping, lifetime),
                timing,
                out: Outbox::default(),
            },
            sender,
            limiter,
        })
    }

    /// Turns on permessage-deflate with the parameters agreed in the handshake
    /// (see [`crate::deflate`]), in both directions.
    #[cfg(feature = "deflate")]
    pub fn set_deflate(&mut self, params: crate::deflate::Negotiated) {
        self.rx.set_deflate(&params, self.life.role);
        self.sender.set_deflate(&params);
    }

    /// Keeps the decompressor's state in `pool` between messages when the peer resets its
    /// compression context after each one (a server that negotiated
    /// `client_no_context_takeover`), instead of making and freeing it per message. Call after
    /// [`set_deflate`](Self::set_deflate).
    #[cfg(feature = "deflate")]
    pub fn set_inflate_pool(&mut self, pool: &'static dyn crate::deflate::InflatePool) {
        self.rx.set_inflate_pool(pool);
    }

    /// Gives back memory held only while a message is being received (the decompressor's
    /// output buffer, when the peer resets its context per message): call when the bytes of a
    /// read are all processed. Nothing happens inside a message.
    pub fn release_buffers(&mut self) {
        #[cfg(feature = "deflate")]
        if !self.rx.in_message() {
            self.rx.release_idle();
        }
    }

    /// Whether permessage-deflate was negotiated.
    pub fn compression_enabled(&self) -> bool {
        self.rx.compressed()
    }

    /// This side's role.
    pub fn role(&self) -> Role {
        self.life.role
    }

    /// Where the connection is in its life.
    pub fn state(&self) -> State {
        self.life.state
    }

    /// The error that failed the connection, if it failed. `None` once terminated means the
    /// connection ended cleanly (or the transport was [aborted](Self::abort)).
    pub fn error(&self) -> Option<Error> {
        self.life.failure.map(|f| f.error)
    }

    /// The close code the failure sent to the peer, if the connection failed with one. `None`
    /// when the error has no close code, or a close frame had already been sent.
    pub fn error_close_code(&self) -> Option<CloseCode> {
        self.life.failure.and_then(|f| f.sent)
    }

    /// While the rate limits hold receiving back ([`OverLimit::Backpressure`]): the time until
    /// which nothing more is taken (`receive` consumes nothing; stop reading from the
    /// transport, so that the peer's sending backs up). It is also a
    /// [`poll_timeout`](Self::poll_timeout) deadline.
    ///
    /// [`OverLimit::Backpressure`]: crate::rate::OverLimit::Backpressure
    pub fn paused_until(&self) -> Option<u64> {
        self.life.timers.paused()
    }

    /// The code of the peer's close frame (inner `None`: a close frame without a code), once
    /// it has arrived.
    pub fn peer_close_code(&self) -> Option<Option<CloseCode>> {
        self.life.peer_close
    }

    /// Payload bytes of the frame being received that have not arrived yet (0 between frames).
    pub fn frame_remaining(&self) -> u64 {
        if self.life.state.can_receive() {
            self.rx.frame_remaining()
        } else {
            0
        }
    }

    /// Whether a received message is partly delivered.
    pub fn in_message(&self) -> bool {
        self.life.state.can_receive() && self.rx.in_message()
    }

    /// Payload bytes still to come in the current frame when it is an uncompressed data frame
    /// (the bytes [`receive_into`](Self::receive_into) writes to its `out`); 0 otherwise.
    pub fn data_remaining(&self) -> u64 {
        if self.life.state.can_receive() {
            self.rx.data_remaining()
        } else {
            0
        }
    }

    /// Whether [`poll_transmit`](Self::poll_transmit) has a frame to give.
    pub fn has_pending_transmit(&self) -> bool {
        !self.life.out.close_taken
            && (self.life.out.pong.is_some()
                || self.life.out.ping.is_some()
                || self.life.out.close.is_some())
    }

    /// Whether our side of the transport should be shut now (TCP FIN, TLS `close_notify`),
    /// once everything [`poll_transmit`](Self::poll_transmit) gave has been written.
    ///
    /// RFC 6455 section 7.1.1 has the server end the TCP connection first: a server shuts as
    /// soon as the close handshake is over; a client waits for the server's EOF (up to the
    /// close timeout). A failed connection shuts at once and then waits for the peer's EOF, so
    /// that our close frame is not lost to a reset.
    pub fn should_shutdown(&self) -> bool {
        !self.has_pending_transmit()
            && match self.life.state {
                State::Terminated => true,
                State::CloseAcknowledged => {
                    self.life.role == Role::Server || self.life.failure.is_some()
                }
                _ => false,
            }
    }

    /// The next control frame the protocol obliges us to send (pong, keepalive ping, close),
    /// in that order, encoded by this connection's [`Sender`]. After the close frame nothing
    /// more is given. (After [`take_sender`](Self::take_sender), use
    /// [`poll_control`](Self::poll_control) and the taken sender instead.)
    pub fn poll_transmit(&mut self) -> Option<ControlFrame> {
        loop {
            let c = self.poll_control()?;
            if let Some(f) = self.sender.encode_control(&c) {
                return Some(f);
            }
        }
    }

    /// The next control frame owed to the peer, unencoded, for a [`Sender`] held elsewhere
    /// (see [`take_sender`](Self::take_sender)): pong, keepalive ping, close, in that order.
    pub fn poll_control(&mut self) -> Option<Control> {
        if self.life.out.close_taken {
            return None;
        }
        let (opcode, payload) = if let Some(p) = self.life.out.pong.take() {
            (OpCode::Pong, p)
        } else if let Some(p) = self.life.out.ping.take() {
            (OpCode::Ping, CtrlBuf::of(&p))
        } else if let Some(p) = self.life.out.close.take() {
            self.life.out.close_taken = true;
            if self.life.state == State::ClosedByPeer {
                // Our answer to the peer's close is on its way: the handshake is over.
                self.life.after_handshake();
            }
            (OpCode::Close, p)
        } else {
            return None;
        };
        Some(Control { opcode, payload })
    }

    /// Moves the sending state (masking keys, fragment sequence, compressor) out, for sending
    /// from another task. Data frames then go through the returned [`Sender`] only; this
    /// connection keeps receiving, answering pings and closes through
    /// [`poll_control`](Self::poll_control), and timing. Its own send calls fail with
    /// [`Usage::SenderTaken`](crate::error::Usage::SenderTaken).
    pub fn take_sender(&mut self) -> Sender {
        let placeholder = self.sender.placeholder();
        core::mem::replace(&mut self.sender, placeholder)
    }

    /// The sending state.
    pub fn sender(&self) -> &Sender {
        &self.sender
    }

    /// Starts the close handshake at `now`: queues a close frame with `code` and `reason` (at
    /// most 123 bytes; `None` sends a close frame without a code) and waits up to the close
    /// timeout for the peer's. Messages may still be received until the peer's close arrives.
    pub fn close(&mut self, now: u64, code: Option<CloseCode>, reason: &str) -> Result<(), Error> {
        if self.life.state != State::Open {
            return Err(Error::Closed);
        }
        self.life.out.close = Some(CtrlBuf::close(code, reason)?);
        self.life.state = State::ClosedByUs;
        self.life.timers.set_close(now, self.life.timing.close);
        Ok(())
    }

    /// The peer ended the transport (a read returned EOF).
    ///
    /// Before the close handshake this fails the connection with [`Error::PeerVanished`]
    /// (returned); afterwards it ends the connection cleanly. Either way the state becomes
    /// [`State::Terminated`].
    pub fn receive_eof(&mut self) -> Result<(), Error> {
        if self.life.state.can_receive() {
            self.life.record_failure(Error::PeerVanished, None);
        }
        self.life.state = State::Terminated;
        match self.life.failure {
            Some(f) if f.error == Error::PeerVanished => Err(f.error),
            _ => Ok(()),
        }
    }

    /// The transport failed (an I/O error): nothing more can be sent or received. The state
    /// becomes [`State::Terminated`] at once; the caller reports its own error.
    pub fn abort(&mut self) {
        self.life.out = Outbox {
            close_taken: true,
            ..Outbox::default()
        };
        self.life.state = State::Terminated;
    }

    /// Fails the connection with `e` at `now` (see [`Life::fail`]).
    fn fail(&mut self, now: u64, e: Error) -> Error {
        self.life.fail(now, e)
    }
}

impl Life {
    /// Fails the connection with `e` at `now`: queues a close frame with its code (if we have
    /// not sent one yet and the error has one), then waits for the peer's EOF; a peer that is
    /// not answering (pong or close timeout) is given up at once. The receiving state is dead
    /// from then on: nothing more is read.
    fn fail(&mut self, now: u64, e: Error) -> Error {
        if self.failure.is_some() || self.state == State::Terminated {
            return self.failure.map_or(e, |f| f.error);
        }
        let mut sent = None;
        if self.out.close.is_none() && !self.out.close_taken && self.state == State::Open {
            if let Some(code) = e.close_code() {
                self.out.close = Some(CtrlBuf::of(&code.0.to_be_bytes()));
                sent = Some(code);
            }
        }
        self.record_failure(e, sent);
        if matches!(e, Error::Timeout(TimeoutKind::Pong | TimeoutKind::Close)) {
            self.state = State::Terminated;
        } else {
            self.state = State::CloseAcknowledged;
            self.timers.set_close(now, self.timing.close);
        }
        e
    }

    fn record_failure(&mut self, error: Error, sent: Option<CloseCode>) {
        if self.failure.is_none() {
            self.failure = Some(Failure { error, sent });
        }
    }

    /// The close handshake is over: a server ends the transport now; a client waits for the
    /// server to (the deadline was set when the peer's close frame arrived).
    fn after_handshake(&mut self) {
        self.state = match self.role {
            Role::Server => State::Terminated,
            Role::Client => State::CloseAcknowledged,
        };
    }

    /// Reacts to the peer's validated close frame at `now`.
    fn peer_closed(&mut self, now: u64, code: Option<CloseCode>) {
        self.peer_close = Some(code);
        match self.state {
            State::Open => {
                // Echo the code (RFC 6455 section 5.5.1), then end the transport once it is
                // taken for sending.
                let echo = code.map(|c| c.0.to_be_bytes());
                self.out.close = Some(CtrlBuf::of(echo.as_ref().map_or(&[][..], |e| &e[..])));
                self.state = State::ClosedByPeer;
                self.timers.set_close(now, self.timing.close);
            }
            State::ClosedByUs => {
                self.timers.set_close(now, self.timing.close);
                if self.out.close_taken {
                    self.after_handshake();
                } else {
                    // Our close frame has not been sent yet: send it, then end.
                    self.state = State::ClosedByPeer;
                }
            }
            _ => {}
        }
    }
}
