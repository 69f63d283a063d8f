//! The connection state machine: role, open/closing/closed, frame sequencing, message
//! validation, obligatory replies and timers.

use crate::close::{self, CloseCode};
use crate::error::{Error, Limit, ProtocolError, TimeoutKind, Usage};
use crate::frame::{FrameHeader, HeaderBuf, MAX_CONTROL_PAYLOAD, MAX_HEADER_LEN, OpCode, RSV1};
use crate::limits::Limits;
use crate::mask::{apply_mask, copy_masked, copy_plain};
use crate::utf8::Utf8Validator;
use core::mem::MaybeUninit;
use core::num::NonZeroU64;

/// Which end of the connection this is. Clients mask what they send; servers require masks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// The side that opened the connection.
    Client,
    /// The side that accepted it.
    Server,
}

/// Where the connection is in its life. The opening handshake comes before a [`Connection`]
/// exists (see [`crate::handshake`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum State {
    /// Messages flow both ways.
    Open,
    /// One close frame has been sent or received; waiting for the other.
    Closing,
    /// Both close frames were exchanged, or the connection failed. Drain
    /// [`Connection::poll_transmit`], then the transport may be shut (see
    /// [`Connection::can_shutdown`]).
    Closed,
}

/// Which side sent the first close frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Initiator {
    /// We closed first (including failing the connection).
    Local,
    /// The peer closed first.
    Remote,
}

/// The type of a data message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DataKind {
    /// UTF-8 text.
    Text,
    /// Arbitrary bytes.
    Binary,
}

/// Something received, borrowing the input buffer (or, for control frames split across reads,
/// the connection).
#[derive(Debug, PartialEq, Eq)]
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
    /// The peer's close frame, already validated. If we had not closed yet, the echo is queued.
    Close {
        /// The status code, if any.
        code: Option<CloseCode>,
        /// The reason, valid UTF-8.
        reason: &'a str,
    },
}

/// Connection settings: limits and timers (milliseconds).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Config {
    /// Size and count limits.
    pub limits: Limits,
    /// Send a keepalive ping this often while open. Default 20 s (well inside the 60 s read
    /// timeout of common proxies).
    pub ping_interval: Option<u64>,
    /// Fail the connection when nothing arrives this long after a keepalive ping. Default 20 s.
    pub pong_timeout: u64,
    /// How long to wait for the peer's close frame after sending ours. Default 5 s.
    pub close_timeout: u64,
    /// Close with 1001 when nothing is received for this long. Default none.
    pub idle_timeout: Option<u64>,
}

impl Config {
    /// The defaults, usable in `const` context.
    pub const DEFAULT: Config = Config {
        limits: Limits::DEFAULT,
        ping_interval: Some(20_000),
        pong_timeout: 20_000,
        close_timeout: 5_000,
        idle_timeout: None,
    };

    /// Checks that the settings make sense.
    pub fn validate(&self) -> Result<(), Error> {
        self.limits.validate()?;
        if self.ping_interval == Some(0) || self.idle_timeout == Some(0) || self.pong_timeout == 0 {
            return Err(Error::InvalidUsage(Usage::InvalidConfig));
        }
        Ok(())
    }
}

impl Default for Config {
    fn default() -> Self {
        Self::DEFAULT
    }
}

/// Largest encoded control frame: 2-byte header, 4-byte mask, 125-byte payload.
pub const MAX_CONTROL_FRAME: usize = 2 + 4 + MAX_CONTROL_PAYLOAD;

/// An encoded control frame on the stack, from [`Connection::poll_transmit`].
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

/// A small control payload kept inside the connection.
#[derive(Clone, Copy)]
struct CtrlBuf {
    buf: [u8; MAX_CONTROL_PAYLOAD],
    len: u8,
}

impl CtrlBuf {
    const EMPTY: CtrlBuf = CtrlBuf {
        buf: [0; MAX_CONTROL_PAYLOAD],
        len: 0,
    };

    fn set(&mut self, data: &[u8]) {
        self.buf[..data.len()].copy_from_slice(data);
        self.len = data.len() as u8;
    }

    fn as_slice(&self) -> &[u8] {
        &self.buf[..self.len as usize]
    }
}

/// The frame being read.
#[derive(Debug, Clone, Copy)]
struct ReadFrame {
    opcode: OpCode,
    fin: bool,
    mask: Option<[u8; 4]>,
    remaining: u64,
    /// Payload bytes of this frame already processed (the masking key phase).
    done: u64,
}

/// The data message being read.
#[derive(Debug, Clone, Copy)]
struct ReadMessage {
    kind: DataKind,
    size: u64,
    fragments: u32,
    /// RSV1 was set on the first frame (permessage-deflate).
    #[cfg_attr(not(feature = "deflate"), allow(dead_code))]
    compressed: bool,
    /// Bytes inflated so far (compressed messages).
    #[cfg_attr(not(feature = "deflate"), allow(dead_code))]
    inflated: u64,
}

/// A deadline in the caller's milliseconds, kept inverted so that `Option<Deadline>` takes 8
/// bytes instead of 16.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Deadline(NonZeroU64);

impl Deadline {
    /// The deadline at `ms` (`u64::MAX`, which never comes, is held as `u64::MAX - 1`).
    fn at(ms: u64) -> Deadline {
        // `!ms` is at least 1 once `ms` is below `u64::MAX`.
        Deadline(NonZeroU64::new(!ms.min(u64::MAX - 1)).unwrap_or(NonZeroU64::MIN))
    }

    fn ms(self) -> u64 {
        !self.0.get()
    }
}

/// Timer deadlines, in the caller's milliseconds.
#[derive(Debug, Clone, Copy, Default)]
struct Timers {
    now: u64,
    next_ping: Option<Deadline>,
    pong_deadline: Option<Deadline>,
    close_deadline: Option<Deadline>,
    idle_deadline: Option<Deadline>,
    heard_since_tick: bool,
    ping_seq: u64,
}

/// A WebSocket connection after the opening handshake, in either role.
///
/// Feed received bytes to [`receive`](Self::receive); write data frames with
/// [`frame_header`](Self::frame_header) or [`encode_frame`](Self::encode_frame); send what
/// [`poll_transmit`](Self::poll_transmit) yields; call [`handle_timeout`](Self::handle_timeout)
/// whenever time advances (at the latest at [`poll_timeout`](Self::poll_timeout)).
#[derive(Clone)]
pub struct Connection {
    role: Role,
    config: Config,
    state: State,
    initiator: Option<Initiator>,
    error: Option<Error>,
    // Read side.
    hdr: [u8; MAX_HEADER_LEN],
    hdr_len: u8,
    frame: Option<ReadFrame>,
    message: Option<ReadMessage>,
    utf8: Utf8Validator,
    ctrl_in: CtrlBuf,
    close_received: bool,
    // Write side.
    sending_message: bool,
    close_sent: bool,
    close_transmitted: bool,
    pong_out: Option<CtrlBuf>,
    ping_out: Option<[u8; 8]>,
    close_out: Option<CtrlBuf>,
    rng: u64,
    timers: Timers,
    #[cfg(feature = "deflate")]
    codec: Option<alloc::boxed::Box<crate::deflate::Codec>>,
}

impl core::fmt::Debug for Connection {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("Connection")
            .field("role", &self.role)
            .field("state", &self.state)
            .field("initiator", &self.initiator)
            .field("error", &self.error)
            .finish_non_exhaustive()
    }
}

impl Connection {
    /// A server-side connection.
    pub fn server(config: Config) -> Result<Self, Error> {
        Self::new(Role::Server, config, 0)
    }

    /// A client-side connection. `seed` must come from a good random source: masking keys are
    /// drawn from a generator seeded with it.
    pub fn client(config: Config, seed: u64) -> Result<Self, Error> {
        Self::new(Role::Client, config, seed)
    }

    /// A connection in the given role (`seed` only matters for clients).
    pub fn new(role: Role, config: Config, seed: u64) -> Result<Self, Error> {
        config.validate()?;
        Ok(Connection {
            role,
            config,
            state: State::Open,
            initiator: None,
            error: None,
            hdr: [0; MAX_HEADER_LEN],
            hdr_len: 0,
            frame: None,
            message: None,
            utf8: Utf8Validator::new(),
            ctrl_in: CtrlBuf::EMPTY,
            close_received: false,
            sending_message: false,
            close_sent: false,
            close_transmitted: false,
            pong_out: None,
            ping_out: None,
            close_out: None,
            rng: seed,
            timers: Timers::default(),
            #[cfg(feature = "deflate")]
            codec: None,
        })
    }

    /// Reseeds the generator of masking keys (clients). A copy of a connection made to send
    /// from another task must be reseeded, or it would repeat the original's keys.
    pub fn set_mask_seed(&mut self, seed: u64) {
        self.rng = seed;
    }

    /// This side's role.
    pub fn role(&self) -> Role {
        self.role
    }

    /// The connection's state.
    pub fn state(&self) -> State {
        self.state
    }

    /// The settings in force.
    pub fn config(&self) -> &Config {
        &self.config
    }

    /// Who sent the first close frame, once one has been sent or received.
    pub fn initiator(&self) -> Option<Initiator> {
        self.initiator
    }

    /// The error that failed the connection, if it failed.
    pub fn error(&self) -> Option<Error> {
        self.error
    }

    /// Whether the peer's close frame has arrived (nothing more will be read).
    pub fn close_received(&self) -> bool {
        self.close_received
    }

    /// Whether our close frame has been queued (no more data may be sent).
    pub fn close_sent(&self) -> bool {
        self.close_sent
    }

    /// Payload bytes of the frame being received that have not arrived yet (0 between frames).
    pub fn frame_remaining(&self) -> u64 {
        self.frame.map_or(0, |f| f.remaining)
    }

    /// Whether a received message is partly delivered.
    pub fn in_message(&self) -> bool {
        self.message.is_some()
    }

    /// Whether the transport may now be shut: the connection is closed and every queued frame
    /// has been taken by [`poll_transmit`](Self::poll_transmit). RFC 6455 has the server close
    /// TCP first; a client should wait (up to the close timeout) for the server to do so.
    pub fn can_shutdown(&self) -> bool {
        self.state == State::Closed && !self.has_pending_transmit()
    }

    /// Whether [`poll_transmit`](Self::poll_transmit) has a frame to give.
    pub fn has_pending_transmit(&self) -> bool {
        if self.close_transmitted {
            return false;
        }
        self.pong_out.is_some() || self.ping_out.is_some() || self.close_out.is_some()
    }

    /// Processes received bytes: returns how many were consumed and at most one event.
    ///
    /// Call again with the unconsumed rest until it returns `(n, None)` with every byte
    /// consumed. Every byte is consumed eventually: a partial header or control payload is kept
    /// inside the connection (at most 139 bytes), so the caller never needs to keep leftovers.
    /// Data payloads are unmasked in place and returned as they arrive.
    ///
    /// An error fails the connection: the close frame with its code is queued for
    /// [`poll_transmit`](Self::poll_transmit) and the state becomes [`State::Closed`].
    pub fn receive<'a>(
        &'a mut self,
        input: &'a mut [u8],
    ) -> Result<(usize, Option<Event<'a>>), Error> {
        self.receive_inner(input, None)
    }

    /// Like [`receive`](Self::receive), but the payload of an uncompressed data frame is
    /// unmasked while it is copied to the start of `out`, and the [`Event::Data`] payload is
    /// that written part of `out`; everything else is as with `receive`. This saves a pass over
    /// the payload for a caller that moves it out of its read buffer anyway (as
    /// [`MessageAssembler::receive`](crate::MessageAssembler::receive) does).
    ///
    /// At most `out.len()` payload bytes are taken per call. With `out` empty and such a payload
    /// next, the call returns `(n, None)` with bytes left unconsumed: call again with room for
    /// up to [`data_remaining`](Self::data_remaining) bytes.
    pub fn receive_into<'a>(
        &'a mut self,
        input: &'a mut [u8],
        out: &'a mut [MaybeUninit<u8>],
    ) -> Result<(usize, Option<Event<'a>>), Error> {
        self.receive_inner(input, Some(out))
    }

    /// Payload bytes still to come in the current frame when it is an uncompressed data frame
    /// (the bytes [`receive_into`](Self::receive_into) writes to its `out`); 0 otherwise.
    pub fn data_remaining(&self) -> u64 {
        match self.frame {
            Some(f) if !f.opcode.is_control() && !self.message_compressed() => f.remaining,
            _ => 0,
        }
    }

    /// Whether the data message being read is compressed.
    fn message_compressed(&self) -> bool {
        #[cfg(feature = "deflate")]
        if self.message.is_some_and(|m| m.compressed) {
            return true;
        }
        false
    }

    fn receive_inner<'a>(
        &'a mut self,
        input: &'a mut [u8],
        mut out: Option<&'a mut [MaybeUninit<u8>]>,
    ) -> Result<(usize, Option<Event<'a>>), Error> {
        if self.close_received || self.error.is_some() {
            // Nothing may follow the peer's close frame or a failure.
            return if input.is_empty() {
                Ok((0, None))
            } else {
                Err(Error::Closed)
            };
        }
        #[cfg(feature = "deflate")]
        if self.message.is_none() {
            if let Some(c) = self.codec.as_mut() {
                c.release_idle();
            }
        }
        let mut pos = 0;
        loop {
            let Some(frame) = self.frame else {
                if pos == input.len() {
                    return Ok((pos, None));
                }
                match self.read_header(&input[pos..]) {
                    Ok((used, Some(h))) => {
                        pos += used;
                        if let Err(e) = self.start_frame(&h) {
                            return Err(self.fail(e));
                        }
                        if h.payload_len == 0 {
                            return self.finish_frame(pos, &mut []);
                        }
                        continue;
                    }
                    Ok((used, None)) => return Ok((pos + used, None)),
                    Err(e) => return Err(self.fail(e)),
                }
            };
            let avail = input.len() - pos;
            if avail == 0 {
                return Ok((pos, None));
            }
            let mut n = frame.remaining.min(avail as u64) as usize;
            let copy = out.is_some() && !frame.opcode.is_control() && !self.message_compressed();
            let mut copied: Option<&'a mut [u8]> = None;
            if copy {
                let dst = out.take().unwrap_or_default();
                n = n.min(dst.len());
                if n == 0 {
                    // No room for the payload: the caller makes some and calls again.
                    return Ok((pos, None));
                }
                let (src, dst) = (&input[pos..pos + n], &mut dst[..n]);
                copied = Some(match frame.mask {
                    Some(key) => copy_masked(src, dst, key, (frame.done & 3) as usize),
                    None => copy_plain(src, dst),
                });
            } else if let Some(key) = frame.mask {
                apply_mask(&mut input[pos..pos + n], key, (frame.done & 3) as usize);
            }
            pos += n;
            let f = self.frame.as_mut().unwrap_or_else(|| unreachable!());
            f.remaining -= n as u64;
            f.done += n as u64;
            let frame_done = f.remaining == 0;
            if frame.opcode.is_control() {
                if frame_done && self.ctrl_in.len == 0 {
                    return self.finish_frame(pos, &mut input[pos - n..pos]);
                }
                let at = self.ctrl_in.len as usize;
                self.ctrl_in.buf[at..at + n].copy_from_slice(&input[pos - n..pos]);
                self.ctrl_in.len += n as u8;
                if frame_done {
                    return self.finish_control_from_buffer(pos);
                }
                continue;
            }
            // A data chunk.
            #[cfg(feature = "deflate")]
            if self.message.is_some_and(|m| m.compressed) {
                if frame_done {
                    self.frame = None;
                }
                return self.compressed_chunk(
                    pos,
                    &input[pos - n..pos],
                    frame_done,
                    frame_done && frame.fin,
                );
            }
            let kind = self.message.map_or(DataKind::Binary, |m| m.kind);
            let chunk = match copied {
                Some(c) => c,
                None => &mut input[pos - n..pos],
            };
            if kind == DataKind::Text && self.utf8.feed(chunk).is_err() {
                return Err(self.fail(Error::InvalidUtf8));
            }
            if !frame_done {
                return Ok((
                    pos,
                    Some(Event::Data {
                        kind,
                        payload: chunk,
                        frame_fin: false,
                        message_fin: false,
                    }),
                ));
            }
            return self.finish_frame(pos, chunk);
        }
    }

    /// Decodes a header from the kept partial bytes plus `input`; returns bytes of `input` used.
    fn read_header(&mut self, input: &[u8]) -> Result<(usize, Option<FrameHeader>), Error> {
        if self.hdr_len == 0 {
            if let Some((h, n)) = FrameHeader::decode(input)? {
                return Ok((n, Some(h)));
            }
            // Partial: keep it (a header is at most 14 bytes, so all of `input` fits).
            let n = input.len().min(MAX_HEADER_LEN);
            self.hdr[..n].copy_from_slice(&input[..n]);
            self.hdr_len = n as u8;
            return Ok((n, None));
        }
        let have = self.hdr_len as usize;
        let take = (MAX_HEADER_LEN - have).min(input.len());
        self.hdr[have..have + take].copy_from_slice(&input[..take]);
        match FrameHeader::decode(&self.hdr[..have + take])? {
            Some((h, n)) => {
                self.hdr_len = 0;
                Ok((n - have, Some(h)))
            }
            None => {
                self.hdr_len = (have + take) as u8;
                Ok((take, None))
            }
        }
    }

    /// Applies the connection-level rules to a new frame header and starts reading it.
    fn start_frame(&mut self, h: &FrameHeader) -> Result<(), Error> {
        let compressed = h.rsv & RSV1 != 0 && self.compression_enabled();
        if h.rsv & !RSV1 != 0 || (h.rsv != 0 && !compressed) {
            return Err(ProtocolError::ReservedBits.into());
        }
        if compressed && !matches!(h.opcode, OpCode::Text | OpCode::Binary) {
            return Err(ProtocolError::CompressedControlOrContinuation.into());
        }
        match (self.role, h.mask.is_some()) {
            (Role::Server, false) => return Err(ProtocolError::UnmaskedFrame.into()),
            (Role::Client, true) => return Err(ProtocolError::MaskedFrame.into()),
            _ => {}
        }
        let limits = &self.config.limits;
        // Compressed data may be slightly longer than what it inflates to (stored blocks add
        // 5 bytes per 64 KiB): a message within the limits must pass compressed too. What it
        // inflates to is held to the limits exactly, by the inflate budget.
        let in_compressed = compressed
            || (h.opcode == OpCode::Continuation && self.message.is_some_and(|m| m.compressed));
        let slack = |limit: u64| {
            if in_compressed {
                limit.saturating_add(limit / 256 + 1024)
            } else {
                limit
            }
        };
        let (frame_limit, message_limit) =
            (slack(limits.max_frame_size), slack(limits.max_message_size));
        if h.payload_len > frame_limit {
            return Err(Error::LimitExceeded(Limit::FrameSize));
        }
        match (h.opcode, &mut self.message) {
            (OpCode::Continuation, None) => {
                return Err(ProtocolError::UnexpectedContinuation.into());
            }
            (OpCode::Text | OpCode::Binary, Some(_)) => {
                return Err(ProtocolError::ExpectedContinuation.into());
            }
            (OpCode::Continuation, Some(m)) => {
                m.fragments += 1;
                m.size += h.payload_len;
                if m.fragments > limits.max_fragments {
                    return Err(Error::LimitExceeded(Limit::Fragments));
                }
                if m.size > message_limit {
                    return Err(Error::LimitExceeded(Limit::MessageSize));
                }
            }
            (OpCode::Text | OpCode::Binary, None) => {
                if h.payload_len > message_limit {
                    return Err(Error::LimitExceeded(Limit::MessageSize));
                }
                let kind = if h.opcode == OpCode::Text {
                    DataKind::Text
                } else {
                    DataKind::Binary
                };
                self.message = Some(ReadMessage {
                    kind,
                    size: h.payload_len,
                    fragments: 1,
                    compressed,
                    inflated: 0,
                });
            }
            _ => self.ctrl_in.len = 0,
        }
        self.timers.heard_since_tick = true;
        self.timers.pong_deadline = None;
        self.frame = Some(ReadFrame {
            opcode: h.opcode,
            fin: h.fin,
            mask: h.mask,
            remaining: h.payload_len,
            done: 0,
        });
        Ok(())
    }

    /// Ends the current frame whose last (or whole, for control frames) payload is `last`.
    fn finish_frame<'a>(
        &'a mut self,
        pos: usize,
        last: &'a mut [u8],
    ) -> Result<(usize, Option<Event<'a>>), Error> {
        let frame = self.frame.take().unwrap_or_else(|| unreachable!());
        if frame.opcode.is_control() {
            return match self.control(frame.opcode, last) {
                Ok(()) => Ok((pos, Some(control_event(frame.opcode, last)))),
                Err(e) => Err(self.fail(e)),
            };
        }
        #[cfg(feature = "deflate")]
        if self.message.is_some_and(|m| m.compressed) {
            return self.compressed_chunk(pos, last, true, frame.fin);
        }
        let kind = self.message.map_or(DataKind::Binary, |m| m.kind);
        if frame.fin {
            self.message = None;
            if kind == DataKind::Text && self.utf8.finish().is_err() {
                return Err(self.fail(Error::InvalidUtf8));
            }
        }
        Ok((
            pos,
            Some(Event::Data {
                kind,
                payload: last,
                frame_fin: true,
                message_fin: frame.fin,
            }),
        ))
    }

    /// Inflates a chunk of a compressed message and delivers the inflated bytes.
    #[cfg(feature = "deflate")]
    fn compressed_chunk(
        &mut self,
        pos: usize,
        data: &[u8],
        frame_fin: bool,
        message_fin: bool,
    ) -> Result<(usize, Option<Event<'_>>), Error> {
        let Some(mut m) = self.message else {
            return Err(self.fail(Error::Closed));
        };
        let budget = self
            .config
            .limits
            .max_message_size
            .saturating_sub(m.inflated);
        let Some(codec) = self.codec.as_mut() else {
            return Err(self.fail(Error::Closed));
        };
        if let Err(e) = codec.inflate(data, message_fin, budget) {
            return Err(self.fail(e));
        }
        m.inflated += codec.out.len() as u64;
        let kind = m.kind;
        if kind == DataKind::Text && self.utf8.feed(&codec.out).is_err() {
            return Err(self.fail(Error::InvalidUtf8));
        }
        if message_fin {
            self.message = None;
            if kind == DataKind::Text && self.utf8.finish().is_err() {
                return Err(self.fail(Error::InvalidUtf8));
            }
        } else {
            self.message = Some(m);
        }
        let this: &Self = self;
        let payload = this.codec.as_ref().map_or(&[][..], |c| c.out.as_slice());
        Ok((
            pos,
            Some(Event::Data {
                kind,
                payload,
                frame_fin,
                message_fin,
            }),
        ))
    }

    /// Whether permessage-deflate was negotiated.
    pub fn compression_enabled(&self) -> bool {
        #[cfg(feature = "deflate")]
        {
            self.codec.is_some()
        }
        #[cfg(not(feature = "deflate"))]
        {
            false
        }
    }

    /// Turns on permessage-deflate with the parameters agreed in the handshake
    /// (see [`crate::deflate`]).
    #[cfg(feature = "deflate")]
    pub fn set_deflate(&mut self, params: crate::deflate::Negotiated) {
        self.codec = Some(alloc::boxed::Box::new(crate::deflate::Codec::new(
            params, self.role,
        )));
    }

    /// Appends a whole message as one frame to `out`: compressed (RSV1) when permessage-deflate
    /// is on and the message is long enough, masked for clients.
    #[cfg(feature = "alloc")]
    pub fn encode_message(
        &mut self,
        opcode: OpCode,
        payload: &[u8],
        out: &mut alloc::vec::Vec<u8>,
    ) -> Result<(), Error> {
        self.begin_send(opcode, true, payload.len())?;
        let mask = self.next_mask();
        #[cfg_attr(not(feature = "deflate"), allow(unused_mut))]
        let mut rsv = 0;
        #[cfg(feature = "deflate")]
        if !opcode.is_control() && opcode != OpCode::Continuation {
            if let Some(c) = self.codec.as_mut() {
                if payload.len() >= c.params().min_size {
                    c.compress(payload)?;
                    rsv = RSV1;
                }
            }
        }
        #[cfg(feature = "deflate")]
        let body: &[u8] = match (&self.codec, rsv) {
            (Some(c), RSV1) => &c.compressed,
            _ => payload,
        };
        #[cfg(not(feature = "deflate"))]
        let body: &[u8] = payload;
        let h = FrameHeader {
            fin: true,
            rsv,
            opcode,
            mask,
            payload_len: body.len() as u64,
        }
        .encode();
        out.reserve(h.as_bytes().len() + body.len());
        out.extend_from_slice(h.as_bytes());
        let start = out.len();
        out.extend_from_slice(body);
        if let Some(key) = mask {
            apply_mask(&mut out[start..], key, 0);
        }
        #[cfg(feature = "deflate")]
        if let Some(c) = self.codec.as_mut() {
            c.release_sent();
        }
        self.commit_send(opcode, true);
        Ok(())
    }

    fn finish_control_from_buffer(
        &mut self,
        pos: usize,
    ) -> Result<(usize, Option<Event<'_>>), Error> {
        let frame = self.frame.take().unwrap_or_else(|| unreachable!());
        let payload = self.ctrl_in;
        if let Err(e) = self.control(frame.opcode, payload.as_slice()) {
            return Err(self.fail(e));
        }
        let this: &Self = self;
        Ok((
            pos,
            Some(control_event(frame.opcode, this.ctrl_in.as_slice())),
        ))
    }

    /// Reacts to a complete control frame: queue the pong, or validate and answer a close.
    fn control(&mut self, opcode: OpCode, payload: &[u8]) -> Result<(), Error> {
        match opcode {
            OpCode::Ping if !self.close_sent => {
                let mut b = CtrlBuf::EMPTY;
                b.set(payload);
                self.pong_out = Some(b);
            }
            OpCode::Pong => {}
            OpCode::Close => {
                let (code, _) = close::parse_close_payload(payload)?;
                self.close_received = true;
                if self.close_sent {
                    self.state = State::Closed;
                } else {
                    self.initiator = Some(Initiator::Remote);
                    let mut b = CtrlBuf::EMPTY;
                    if let Some(code) = code {
                        b.set(&code.0.to_be_bytes());
                    }
                    self.queue_close(b);
                    self.state = State::Closed;
                }
            }
            _ => {}
        }
        Ok(())
    }

    fn queue_close(&mut self, payload: CtrlBuf) {
        self.close_out = Some(payload);
        self.close_sent = true;
        self.sending_message = false;
        // Armed by the next `handle_timeout`, counting from the time it brings.
        self.timers.close_deadline = None;
    }

    /// Fails the connection with `e`: queue a close frame with its code (if we have not sent one
    /// yet and the error has one), and become closed.
    fn fail(&mut self, e: Error) -> Error {
        if self.error.is_none() {
            self.error = Some(e);
        }
        if !self.close_sent {
            if self.initiator.is_none() {
                self.initiator = Some(Initiator::Local);
            }
            if let Some(code) = e.close_code() {
                let mut b = CtrlBuf::EMPTY;
                b.set(&code.0.to_be_bytes());
                self.queue_close(b);
            } else {
                self.close_sent = true;
                self.close_transmitted = true;
            }
        }
        self.frame = None;
        self.message = None;
        self.state = State::Closed;
        e
    }

    /// Checks that a frame may be sent now and updates the sending sequence.
    fn begin_send(&mut self, opcode: OpCode, fin: bool, len: usize) -> Result<(), Error> {
        if self.close_sent || self.state != State::Open {
            return Err(Error::Closed);
        }
        match opcode {
            OpCode::Text | OpCode::Binary if self.sending_message => {
                Err(Error::InvalidUsage(Usage::MessageInProgress))
            }
            OpCode::Continuation if !self.sending_message => {
                Err(Error::InvalidUsage(Usage::NoMessageStarted))
            }
            OpCode::Close => Err(Error::InvalidUsage(Usage::InvalidCloseCode)),
            OpCode::Ping | OpCode::Pong if len > MAX_CONTROL_PAYLOAD || !fin => {
                Err(Error::InvalidUsage(Usage::ControlTooLong))
            }
            _ => Ok(()),
        }
    }

    fn commit_send(&mut self, opcode: OpCode, fin: bool) {
        if !opcode.is_control() {
            self.sending_message = !fin;
        }
    }

    fn next_mask(&mut self) -> Option<[u8; 4]> {
        match self.role {
            Role::Server => None,
            Role::Client => {
                // wyrand: a fast generator with good statistical quality, seeded by the caller.
                self.rng = self.rng.wrapping_add(0xa076_1d64_78bd_642f);
                let t = (self.rng as u128).wrapping_mul((self.rng ^ 0xe703_7ed1_a0b4_28db) as u128);
                let r = ((t >> 64) as u64) ^ (t as u64);
                Some((r as u32).to_ne_bytes())
            }
        }
    }

    /// Starts a frame whose payload the caller sends right after the returned header (for a
    /// vectored write). Client payloads are masked in place.
    ///
    /// `opcode` is `Text`/`Binary` for the first frame of a message, `Continuation` for the
    /// rest; `fin` ends the message. `Ping`/`Pong` are allowed (at most 125 bytes); close with
    /// [`close`](Self::close).
    pub fn frame_header(
        &mut self,
        opcode: OpCode,
        fin: bool,
        payload: &mut [u8],
    ) -> Result<HeaderBuf, Error> {
        self.begin_send(opcode, fin, payload.len())?;
        self.commit_send(opcode, fin);
        let mask = self.next_mask();
        if let Some(key) = mask {
            apply_mask(payload, key, 0);
        }
        Ok(FrameHeader {
            fin,
            rsv: 0,
            opcode,
            mask,
            payload_len: payload.len() as u64,
        }
        .encode())
    }

    /// The encoded length of a frame with this payload length from this side.
    pub fn frame_len(&self, payload_len: usize) -> usize {
        let mask = if self.role == Role::Client {
            Some([0; 4])
        } else {
            None
        };
        FrameHeader {
            fin: true,
            rsv: 0,
            opcode: OpCode::Binary,
            mask,
            payload_len: payload_len as u64,
        }
        .encoded_len()
            + payload_len
    }

    /// Encodes a whole frame (header and payload, masked for clients) into `out`; returns its
    /// length. See [`frame_header`](Self::frame_header) for `opcode` and `fin`.
    pub fn encode_frame(
        &mut self,
        opcode: OpCode,
        fin: bool,
        payload: &[u8],
        out: &mut [u8],
    ) -> Result<usize, Error> {
        self.begin_send(opcode, fin, payload.len())?;
        let total = self.frame_len(payload.len());
        if out.len() < total {
            return Err(Error::BufferTooSmall);
        }
        self.commit_send(opcode, fin);
        let mask = self.next_mask();
        let h = FrameHeader {
            fin,
            rsv: 0,
            opcode,
            mask,
            payload_len: payload.len() as u64,
        }
        .encode();
        let hl = h.as_bytes().len();
        out[..hl].copy_from_slice(h.as_bytes());
        let body = &mut out[hl..total];
        body.copy_from_slice(payload);
        if let Some(key) = mask {
            apply_mask(body, key, 0);
        }
        Ok(total)
    }

    /// Starts the close handshake: queues a close frame with `code` and `reason` (at most 123
    /// bytes). `None` sends a close frame without a code. Data may still be received until the
    /// peer's close arrives.
    pub fn close(&mut self, code: Option<CloseCode>, reason: &str) -> Result<(), Error> {
        if self.close_sent {
            return Err(Error::Closed);
        }
        let mut b = CtrlBuf::EMPTY;
        let n = close::encode_close_payload(code, reason, &mut b.buf)?;
        b.len = n as u8;
        self.queue_close(b);
        if self.close_received {
            self.state = State::Closed;
        } else {
            self.initiator = Some(Initiator::Local);
            self.state = State::Closing;
        }
        Ok(())
    }

    /// The next control frame the protocol obliges us to send (pong, keepalive ping, close),
    /// in that order. After the close frame nothing more is given.
    pub fn poll_transmit(&mut self) -> Option<ControlFrame> {
        if self.close_transmitted {
            return None;
        }
        let (opcode, payload) = if let Some(p) = self.pong_out.take() {
            (OpCode::Pong, p)
        } else if let Some(p) = self.ping_out.take() {
            let mut b = CtrlBuf::EMPTY;
            b.set(&p);
            (OpCode::Ping, b)
        } else if let Some(p) = self.close_out.take() {
            self.close_transmitted = true;
            (OpCode::Close, p)
        } else {
            return None;
        };
        let mask = self.next_mask();
        let h = FrameHeader {
            fin: true,
            rsv: 0,
            opcode,
            mask,
            payload_len: payload.len as u64,
        }
        .encode();
        let mut frame = ControlFrame {
            buf: [0; MAX_CONTROL_FRAME],
            len: 0,
            opcode,
        };
        let hl = h.as_bytes().len();
        let total = hl + payload.len as usize;
        frame.buf[..hl].copy_from_slice(h.as_bytes());
        frame.buf[hl..total].copy_from_slice(payload.as_slice());
        if let Some(key) = mask {
            apply_mask(&mut frame.buf[hl..total], key, 0);
        }
        frame.len = total as u8;
        Some(frame)
    }

    /// Advances time to `now` (milliseconds from any fixed origin) and acts on deadlines:
    /// queues keepalive pings, and fails the connection when a pong, the peer's close frame or
    /// (if set) any traffic is overdue. Returns the error that failed the connection.
    pub fn handle_timeout(&mut self, now: u64) -> Result<(), Error> {
        let t = &mut self.timers;
        t.now = t.now.max(now);
        let now = t.now;
        if self.state == State::Closed {
            return match self.error {
                Some(e) => Err(e),
                None => Ok(()),
            };
        }
        if let Some(idle) = self.config.idle_timeout {
            if t.heard_since_tick || t.idle_deadline.is_none() {
                t.idle_deadline = Some(Deadline::at(now.saturating_add(idle)));
            }
        }
        t.heard_since_tick = false;
        if self.close_sent && t.close_deadline.is_none() {
            t.close_deadline = Some(Deadline::at(now.saturating_add(self.config.close_timeout)));
        }
        if t.close_deadline.is_some_and(|d| d.ms() <= now) {
            let e = Error::Timeout(TimeoutKind::CloseHandshake);
            self.close_transmitted = true;
            return Err(self.fail(e));
        }
        if self.state != State::Open {
            return Ok(());
        }
        if t.pong_deadline.is_some_and(|d| d.ms() <= now) {
            return Err(self.fail(Error::Timeout(TimeoutKind::Pong)));
        }
        if t.idle_deadline.is_some_and(|d| d.ms() <= now) {
            return Err(self.fail(Error::Timeout(TimeoutKind::Idle)));
        }
        if let Some(interval) = self.config.ping_interval {
            match t.next_ping.map(Deadline::ms) {
                None => t.next_ping = Some(Deadline::at(now.saturating_add(interval))),
                Some(d) if d <= now => {
                    t.ping_seq += 1;
                    self.ping_out = Some(t.ping_seq.to_be_bytes());
                    if t.pong_deadline.is_none() {
                        t.pong_deadline =
                            Some(Deadline::at(now.saturating_add(self.config.pong_timeout)));
                    }
                    t.next_ping = Some(Deadline::at(now.saturating_add(interval)));
                }
                Some(_) => {}
            }
        }
        Ok(())
    }

    /// The next deadline [`handle_timeout`](Self::handle_timeout) must be called at, if any.
    /// A deadline that needs arming (keepalive not started yet, a close without a deadline)
    /// reads as the last `now` seen, so the caller calls in at once.
    pub fn poll_timeout(&self) -> Option<u64> {
        if self.state == State::Closed {
            return None;
        }
        let t = &self.timers;
        let mut next: Option<u64> = None;
        let mut consider = |d: Option<u64>| {
            if let Some(d) = d {
                next = Some(next.map_or(d, |n| n.min(d)));
            }
        };
        consider(t.close_deadline.map(Deadline::ms));
        if self.close_sent && t.close_deadline.is_none() {
            consider(Some(t.now));
        }
        if self.state == State::Open {
            consider(t.pong_deadline.map(Deadline::ms));
            consider(t.idle_deadline.map(Deadline::ms));
            consider(t.next_ping.map(Deadline::ms));
            if (self.config.ping_interval.is_some() && t.next_ping.is_none())
                || (self.config.idle_timeout.is_some() && t.idle_deadline.is_none())
            {
                consider(Some(t.now));
            }
        }
        next
    }
}

fn control_event(opcode: OpCode, payload: &[u8]) -> Event<'_> {
    match opcode {
        OpCode::Ping => Event::Ping(payload),
        OpCode::Pong => Event::Pong(payload),
        _ => {
            // Validated in `control` before the event is built.
            let (code, reason) = close::parse_close_payload(payload).unwrap_or((None, ""));
            Event::Close { code, reason }
        }
    }
}

#[cfg(test)]
mod tests;
