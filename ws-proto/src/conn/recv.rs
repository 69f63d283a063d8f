//! The receiving side: frame headers, payloads (unmasked in place or while copying out),
//! fragmentation, UTF-8 validation, control frames and inflating.
//!
//! One call handles at most one frame's header and the payload that follows it in the input,
//! and returns at most one event; a header or control payload cut by the end of the input is
//! kept inside (at most 139 bytes), so the caller never keeps leftovers.

use core::mem::MaybeUninit;

use super::RecvLimits as Limits;
use super::{Connection, CtrlBuf, DataKind, Event, Life, Role, State};
use crate::close;
use crate::error::{Error, Limit, ProtocolError};
use crate::frame::{FrameHeader, MAX_HEADER_LEN, OpCode, RSV1};
use crate::mask::{apply_mask, copy_masked, copy_plain};
use crate::rate::Admit;
use crate::utf8::Utf8Validator;

/// Where the payload of an uncompressed data frame goes.
pub(crate) trait PayloadOut<'a> {
    /// Room for payload bytes of a frame with `remaining` bytes still to come, `available` of
    /// them in the input; `None` unmasks them in place in the input. Called at most once per
    /// receive call; the bytes written go to the start of the returned slice.
    fn room(&mut self, remaining: u64, available: usize) -> Option<&'a mut [MaybeUninit<u8>]>;
}

/// Payloads are unmasked in place.
struct InPlace;

impl<'a> PayloadOut<'a> for InPlace {
    fn room(&mut self, _: u64, _: usize) -> Option<&'a mut [MaybeUninit<u8>]> {
        None
    }
}

impl<'a> PayloadOut<'a> for Option<&'a mut [MaybeUninit<u8>]> {
    fn room(&mut self, _: u64, _: usize) -> Option<&'a mut [MaybeUninit<u8>]> {
        self.take()
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
    compressed: bool,
    /// Bytes inflated so far (compressed messages).
    #[cfg_attr(not(feature = "deflate"), allow(dead_code))]
    inflated: u64,
}

/// The receiving state.
#[derive(Debug)]
pub(super) struct Reader {
    hdr: [u8; MAX_HEADER_LEN],
    hdr_len: u8,
    frame: Option<ReadFrame>,
    message: Option<ReadMessage>,
    utf8: Utf8Validator,
    /// A control payload cut by the end of an input.
    ctrl: CtrlBuf,
    #[cfg(feature = "deflate")]
    pub(super) inflater: Option<alloc::boxed::Box<crate::deflate::Inflater>>,
}

impl Reader {
    pub(super) fn new() -> Reader {
        Reader {
            hdr: [0; MAX_HEADER_LEN],
            hdr_len: 0,
            frame: None,
            message: None,
            utf8: Utf8Validator::new(),
            ctrl: CtrlBuf::EMPTY,
            #[cfg(feature = "deflate")]
            inflater: None,
        }
    }

    /// Between messages: the inflater's buffer goes back (see `Inflater::release_idle`).
    #[cfg(feature = "deflate")]
    pub(super) fn release_idle(&mut self) {
        if let Some(i) = self.inflater.as_mut() {
            i.release_idle();
        }
    }

    #[cfg(feature = "deflate")]
    pub(super) fn set_inflate_pool(&mut self, pool: &'static dyn crate::deflate::InflatePool) {
        if let Some(i) = self.inflater.as_mut() {
            i.set_pool(pool);
        }
    }

    #[cfg(feature = "deflate")]
    pub(super) fn set_deflate(&mut self, params: &crate::deflate::Negotiated, role: Role) {
        self.inflater = Some(alloc::boxed::Box::new(crate::deflate::Inflater::new(
            params, role,
        )));
    }

    /// Whether permessage-deflate was negotiated.
    pub(super) fn compressed(&self) -> bool {
        #[cfg(feature = "deflate")]
        {
            self.inflater.is_some()
        }
        #[cfg(not(feature = "deflate"))]
        {
            false
        }
    }

    pub(super) fn frame_remaining(&self) -> u64 {
        self.frame.map_or(0, |f| f.remaining)
    }

    pub(super) fn in_message(&self) -> bool {
        self.message.is_some()
    }

    /// Whether the data message being read is compressed.
    fn message_compressed(&self) -> bool {
        self.message.is_some_and(|m| m.compressed)
    }

    pub(super) fn data_remaining(&self) -> u64 {
        match self.frame {
            Some(f) if !f.opcode.is_control() && !self.message_compressed() => f.remaining,
            _ => 0,
        }
    }

    /// Keeps a decoded header to be read again by the next call (its encoding is the bytes
    /// that arrived: lengths are minimal).
    fn keep_header(&mut self, h: &FrameHeader) {
        let b = h.encode();
        let b = b.as_bytes();
        self.hdr[..b.len()].copy_from_slice(b);
        self.hdr_len = b.len() as u8;
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
    fn start_frame(&mut self, role: Role, limits: &Limits, h: &FrameHeader) -> Result<(), Error> {
        let compressed = h.rsv & RSV1 != 0 && self.compressed();
        if h.rsv & !RSV1 != 0 || (h.rsv != 0 && !compressed) {
            return Err(ProtocolError::ReservedBits.into());
        }
        if compressed && !matches!(h.opcode, OpCode::Text | OpCode::Binary) {
            return Err(ProtocolError::CompressedControlOrContinuation.into());
        }
        match (role, h.mask.is_some()) {
            (Role::Server, false) => return Err(ProtocolError::UnmaskedFrame.into()),
            (Role::Client, true) => return Err(ProtocolError::MaskedFrame.into()),
            _ => {}
        }
        // Compressed data may be slightly longer than what it inflates to (stored blocks add
        // 5 bytes per 64 KiB): a message within the limits must pass compressed too. What it
        // inflates to is held to the limits exactly, by the inflate budget.
        let in_compressed =
            compressed || (h.opcode == OpCode::Continuation && self.message_compressed());
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
            _ => self.ctrl = CtrlBuf::EMPTY,
        }
        self.frame = Some(ReadFrame {
            opcode: h.opcode,
            fin: h.fin,
            mask: h.mask,
            remaining: h.payload_len,
            done: 0,
        });
        Ok(())
    }

    /// Counts `n` payload bytes of the current frame as processed; returns whether the frame
    /// is complete.
    fn advance(&mut self, n: usize) -> bool {
        match self.frame.as_mut() {
            Some(f) => {
                f.remaining -= n as u64;
                f.done += n as u64;
                f.remaining == 0
            }
            None => true,
        }
    }

    /// Ends a data frame; the last chunk of a text message completes its UTF-8 check.
    fn end_data_frame(&mut self, fin: bool) -> Result<(), Error> {
        self.frame = None;
        if fin {
            let m = self.message.take();
            if m.is_some_and(|m| m.kind == DataKind::Text) && self.utf8.finish().is_err() {
                return Err(Error::InvalidUtf8);
            }
        }
        Ok(())
    }
}

/// What a control frame leads to.
fn control_event<'p>(opcode: OpCode, payload: &'p [u8]) -> Result<Event<'p>, Error> {
    Ok(match opcode {
        OpCode::Ping => Event::Ping(payload),
        OpCode::Pong => Event::Pong(payload),
        _ => {
            let (code, reason) = close::parse_close_payload(payload)?;
            Event::Close { code, reason }
        }
    })
}

impl Life {
    /// Acts on a complete control frame received at `now`: queue the pong (the newest wins),
    /// or take in the peer's close.
    fn control(&mut self, now: u64, event: &Event<'_>) {
        match event {
            Event::Ping(p) if self.state == State::Open => self.out.pong = Some(CtrlBuf::of(p)),
            Event::Close { code, .. } => self.peer_closed(now, *code),
            _ => {}
        }
    }
}

impl Connection {
    /// Processes received bytes at `now`: returns how many were consumed and at most one event.
    ///
    /// Call again with the unconsumed rest until it returns `(n, None)` with every byte
    /// consumed. Every byte is consumed eventually: a partial header or control payload is kept
    /// inside the connection, so the caller never needs to keep leftovers. Data payloads are
    /// unmasked in place and returned as they arrive. Once the peer's close frame has arrived
    /// (or the connection failed), further bytes are discarded.
    ///
    /// An error fails the connection: the close frame with its code is queued for
    /// [`poll_transmit`](Self::poll_transmit) and the state moves on (see
    /// [`should_shutdown`](Self::should_shutdown)).
    pub fn receive<'a>(
        &'a mut self,
        now: u64,
        input: &'a mut [u8],
    ) -> Result<(usize, Option<Event<'a>>), Error> {
        self.receive_with(now, input, &mut InPlace)
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
        now: u64,
        input: &'a mut [u8],
        out: &'a mut [MaybeUninit<u8>],
    ) -> Result<(usize, Option<Event<'a>>), Error> {
        self.receive_with(now, input, &mut Some(out))
    }

    /// The receive path, with `out` choosing where uncompressed data payloads go.
    pub(crate) fn receive_with<'a, O: PayloadOut<'a>>(
        &'a mut self,
        now: u64,
        input: &'a mut [u8],
        out: &mut O,
    ) -> Result<(usize, Option<Event<'a>>), Error> {
        if !self.life.state.can_receive() {
            return Ok((input.len(), None));
        }
        #[cfg(feature = "deflate")]
        if self.rx.message.is_none() {
            self.rx.release_idle();
        }
        let mut pos = 0;
        if self.rx.frame.is_none() {
            // An empty input still completes a header kept whole (held back by the rate limits).
            if (input.is_empty() && self.rx.hdr_len == 0) || self.life.timers.paused_at(now) {
                return Ok((0, None));
            }
            let h = match self.rx.read_header(input) {
                Ok((used, Some(h))) => {
                    pos = used;
                    h
                }
                Ok((used, None)) => return Ok((used, None)),
                Err(e) => return Err(self.fail(now, e)),
            };
            if let Some(l) = self.limiter.as_mut() {
                let messages = u64::from(h.opcode != OpCode::Continuation);
                match l.admit_cost(now, messages, h.payload_len) {
                    Admit::Ok => {}
                    Admit::Wait { until } => {
                        // Keep the header (as if it had arrived in part) until then.
                        self.rx.keep_header(&h);
                        self.life.timers.pause(until);
                        return Ok((pos, None));
                    }
                    _ => return Err(self.fail(now, Error::RateLimited)),
                }
            }
            if let Err(e) = self.rx.start_frame(self.life.role, &self.limits, &h) {
                return Err(self.fail(now, e));
            }
            self.life.timers.heard(now);
            if matches!(h.opcode, OpCode::Text | OpCode::Binary) {
                self.life
                    .timers
                    .message_started(now, self.life.timing.message);
            }
            if h.payload_len == 0 {
                return self.payload(now, pos, &mut [], out);
            }
        }
        if pos == input.len() {
            return Ok((pos, None));
        }
        self.payload(now, pos, &mut input[pos..], out)
    }

    /// Processes payload bytes of the current frame (`rest`, which follows `pos` consumed
    /// bytes of the input; empty for an empty frame).
    fn payload<'a, O: PayloadOut<'a>>(
        &'a mut self,
        now: u64,
        pos: usize,
        rest: &'a mut [u8],
        out: &mut O,
    ) -> Result<(usize, Option<Event<'a>>), Error> {
        let Some(frame) = self.rx.frame else {
            return Ok((pos, None));
        };
        if frame.opcode.is_control() {
            return self.control_payload(now, pos, rest);
        }
        #[cfg(feature = "deflate")]
        if self.rx.message_compressed() {
            return self.compressed_payload(now, pos, rest);
        }
        self.data_payload(now, pos, rest, out)
    }

    fn data_payload<'a, O: PayloadOut<'a>>(
        &'a mut self,
        now: u64,
        pos: usize,
        rest: &'a mut [u8],
        out: &mut O,
    ) -> Result<(usize, Option<Event<'a>>), Error> {
        let Some(frame) = self.rx.frame else {
            return Ok((pos, None));
        };
        let mut n = frame.remaining.min(rest.len() as u64) as usize;
        let phase = (frame.done & 3) as usize;
        let room = if n == 0 {
            None
        } else {
            out.room(frame.remaining, n)
        };
        let chunk: &'a mut [u8] = match room {
            Some(dst) => {
                n = n.min(dst.len());
                if n == 0 {
                    // No room for the payload: the caller makes some and calls again.
                    return Ok((pos, None));
                }
                let (src, dst) = (&rest[..n], &mut dst[..n]);
                match frame.mask {
                    Some(key) => copy_masked(src, dst, key, phase),
                    None => copy_plain(src, dst),
                }
            }
            None => {
                let chunk = &mut rest[..n];
                if let Some(key) = frame.mask {
                    apply_mask(chunk, key, phase);
                }
                chunk
            }
        };
        let frame_done = self.rx.advance(n);
        let kind = self.rx.message.map_or(DataKind::Binary, |m| m.kind);
        if kind == DataKind::Text && self.rx.utf8.feed(chunk).is_err() {
            return Err(self.fail(now, Error::InvalidUtf8));
        }
        if frame_done {
            if let Err(e) = self.rx.end_data_frame(frame.fin) {
                return Err(self.fail(now, e));
            }
            if frame.fin {
                self.life.timers.message_ended();
            }
        }
        Ok((
            pos + n,
            Some(Event::Data {
                kind,
                payload: chunk,
                frame_fin: frame_done,
                message_fin: frame_done && frame.fin,
            }),
        ))
    }

    fn control_payload<'a>(
        &'a mut self,
        now: u64,
        pos: usize,
        rest: &'a mut [u8],
    ) -> Result<(usize, Option<Event<'a>>), Error> {
        let Some(frame) = self.rx.frame else {
            return Ok((pos, None));
        };
        let n = frame.remaining.min(rest.len() as u64) as usize;
        let chunk = &mut rest[..n];
        if let Some(key) = frame.mask {
            apply_mask(chunk, key, (frame.done & 3) as usize);
        }
        let frame_done = self.rx.advance(n);
        let pos = pos + n;
        if frame_done {
            self.rx.frame = None;
        }
        if frame_done && self.rx.ctrl.len == 0 {
            // The whole payload is in this input.
            return match control_event(frame.opcode, chunk) {
                Ok(event) => {
                    self.life.control(now, &event);
                    Ok((pos, Some(event)))
                }
                Err(e) => Err(self.fail(now, e)),
            };
        }
        self.rx.ctrl.push(chunk);
        if !frame_done {
            return Ok((pos, None));
        }
        let Connection { rx, life, .. } = self;
        match control_event(frame.opcode, rx.ctrl.as_slice()) {
            Ok(event) => {
                life.control(now, &event);
                Ok((pos, Some(event)))
            }
            Err(e) => Err(life.fail(now, e)),
        }
    }

    /// Inflates a chunk of a compressed message and delivers the inflated bytes.
    #[cfg(feature = "deflate")]
    fn compressed_payload<'a>(
        &'a mut self,
        now: u64,
        pos: usize,
        rest: &'a mut [u8],
    ) -> Result<(usize, Option<Event<'a>>), Error> {
        let (Some(frame), Some(mut m)) = (self.rx.frame, self.rx.message) else {
            return Ok((pos, None));
        };
        let n = frame.remaining.min(rest.len() as u64) as usize;
        let chunk = &mut rest[..n];
        if let Some(key) = frame.mask {
            apply_mask(chunk, key, (frame.done & 3) as usize);
        }
        let frame_done = self.rx.advance(n);
        let message_fin = frame_done && frame.fin;
        let budget = self.limits.max_message_size.saturating_sub(m.inflated);
        let Some(inflater) = self.rx.inflater.as_mut() else {
            return Err(self.fail(now, ProtocolError::ReservedBits.into()));
        };
        if let Err(e) = inflater.inflate(chunk, message_fin, budget) {
            return Err(self.fail(now, e));
        }
        m.inflated += inflater.out.len() as u64;
        self.rx.message = Some(m);
        if m.kind == DataKind::Text && self.rx.utf8.feed(&inflater.out).is_err() {
            return Err(self.fail(now, Error::InvalidUtf8));
        }
        if frame_done {
            if let Err(e) = self.rx.end_data_frame(frame.fin) {
                return Err(self.fail(now, e));
            }
            if frame.fin {
                self.life.timers.message_ended();
            }
        }
        let payload = self.rx.inflater.as_ref().map_or(&[][..], |i| &i.out[..]);
        Ok((
            pos + n,
            Some(Event::Data {
                kind: m.kind,
                payload,
                frame_fin: frame_done,
                message_fin,
            }),
        ))
    }
}
