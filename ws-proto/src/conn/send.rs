//! The sending side: frame encoding, masking keys, the fragment sequence and the compressor.

use super::{Connection, Control, ControlFrame, CtrlBuf, MAX_CONTROL_FRAME, Role};
use crate::close::CloseCode;
use crate::error::{Error, Usage};
#[cfg(feature = "deflate")]
use crate::frame::RSV1;
use crate::frame::{FrameHeader, HeaderBuf, MAX_CONTROL_PAYLOAD, OpCode};
use crate::mask::apply_mask;

/// The sending state of a connection: masking keys (clients), the fragment sequence and, with
/// permessage-deflate, the compressor.
///
/// A [`Connection`] sends through its own `Sender`; [`Connection::take_sender`] moves it out
/// for sending from another task. A `Sender` refuses everything after it has encoded a close
/// frame, as RFC 6455 requires.
#[derive(Debug)]
pub struct Sender {
    role: Role,
    rng: u64,
    /// A fragmented message is being sent (continuations expected).
    in_message: bool,
    /// A close frame has been encoded: nothing may follow it.
    closed: bool,
    /// The stand-in left in a connection whose sender was taken: control frames only.
    taken: bool,
    #[cfg(feature = "deflate")]
    deflate: SendDeflate,
}

/// How a sender compresses (permessage-deflate).
#[cfg(feature = "deflate")]
#[derive(Debug)]
enum SendDeflate {
    /// Not negotiated.
    Off,
    /// With a compressor of its own.
    Own(alloc::boxed::Box<crate::deflate::Deflater>),
    /// With a shared [`Compressor`](crate::deflate::Compressor) the caller passes in.
    Shared(SharedCompression),
}

/// How a sender with a shared compressor compresses: what the caller's
/// [`Compressor`](crate::deflate::Compressor) must use. From [`Sender::shared_compression`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct SharedCompression {
    /// The window to compress with (9-15).
    pub window_bits: u8,
    /// Messages shorter than this go uncompressed.
    pub min_size: usize,
    /// The zlib level to compress at.
    pub level: u8,
}

impl Sender {
    pub(super) fn new(role: Role, seed: u64) -> Sender {
        Sender {
            role,
            rng: seed,
            in_message: false,
            closed: false,
            taken: false,
            #[cfg(feature = "deflate")]
            deflate: SendDeflate::Off,
        }
    }

    /// What a connection keeps when its sender is taken: encodes control frames with a key
    /// stream of its own, refuses data.
    pub(super) fn placeholder(&mut self) -> Sender {
        let seed = self.next_u64();
        Sender {
            taken: true,
            ..Sender::new(self.role, seed)
        }
    }

    #[cfg(feature = "deflate")]
    pub(super) fn set_deflate(&mut self, params: &crate::deflate::Negotiated) {
        let d = crate::deflate::Deflater::new(params, self.role);
        self.deflate = if params.shared_compressor {
            SendDeflate::Shared(SharedCompression {
                window_bits: d.window_bits(),
                min_size: d.min_size(),
                level: params.level.min(9),
            })
        } else {
            SendDeflate::Own(alloc::boxed::Box::new(d))
        };
    }

    /// With permessage-deflate and a shared compressor
    /// ([`DeflateConfig::shared_compressor`](crate::deflate::DeflateConfig::shared_compressor)):
    /// the window (9-15) to compress with and the size below which messages go uncompressed.
    /// Pass a [`Compressor`](crate::deflate::Compressor) to
    /// [`encode_message_with`](Self::encode_message_with).
    pub fn shared_compression(&self) -> Option<SharedCompression> {
        #[cfg(feature = "deflate")]
        if let SendDeflate::Shared(s) = self.deflate {
            return Some(s);
        }
        None
    }

    /// With permessage-deflate, how a [`PreparedMessage`](crate::PreparedMessage) must be
    /// compressed for this sender to send its compressed variant: the window, the size below
    /// which messages go uncompressed and the level, whether the sender compresses with a
    /// compressor of its own or a shared one. `None` without compression, and for a client
    /// (whose frames are masked each with a key of its own, so nothing is shared).
    pub fn prepared_compression(&self) -> Option<SharedCompression> {
        if self.role == Role::Client {
            return None;
        }
        #[cfg(feature = "deflate")]
        match &self.deflate {
            SendDeflate::Off => {}
            SendDeflate::Own(d) => {
                return Some(SharedCompression {
                    window_bits: d.window_bits(),
                    min_size: d.min_size(),
                    level: d.level(),
                });
            }
            SendDeflate::Shared(s) => return Some(*s),
        }
        None
    }

    /// The role frames are encoded for (clients mask).
    pub fn role(&self) -> Role {
        self.role
    }

    /// Whether a close frame has been encoded (nothing more can be sent).
    pub fn is_closed(&self) -> bool {
        self.closed
    }

    /// Whether messages are compressed (permessage-deflate was negotiated).
    pub fn compression_enabled(&self) -> bool {
        #[cfg(feature = "deflate")]
        {
            !matches!(self.deflate, SendDeflate::Off)
        }
        #[cfg(not(feature = "deflate"))]
        {
            false
        }
    }

    fn next_u64(&mut self) -> u64 {
        wyrand(&mut self.rng)
    }

    /// A random number from the sender's generator.
    pub(super) fn random(&mut self) -> u64 {
        self.next_u64()
    }

    /// Checks that a frame may be sent now and updates the fragment sequence.
    fn begin(&mut self, opcode: OpCode, fin: bool, len: usize) -> Result<(), Error> {
        if self.closed {
            return Err(Error::Closed);
        }
        if self.taken {
            return Err(Error::InvalidUsage(Usage::SenderTaken));
        }
        match opcode {
            OpCode::Text | OpCode::Binary if self.in_message => {
                Err(Error::InvalidUsage(Usage::MessageInProgress))
            }
            OpCode::Continuation if !self.in_message => {
                Err(Error::InvalidUsage(Usage::NoMessageStarted))
            }
            OpCode::Close => Err(Error::InvalidUsage(Usage::InvalidCloseCode)),
            OpCode::Ping | OpCode::Pong if len > MAX_CONTROL_PAYLOAD || !fin => {
                Err(Error::InvalidUsage(Usage::ControlTooLong))
            }
            _ => {
                if !opcode.is_control() {
                    self.in_message = !fin;
                }
                Ok(())
            }
        }
    }

    fn header(&mut self, opcode: OpCode, fin: bool, rsv: u8, len: usize) -> FrameHeader {
        header(self.role, &mut self.rng, opcode, fin, rsv, len)
    }

    /// Starts a frame whose payload the caller sends right after the returned header (for a
    /// vectored write). Client payloads are masked in place.
    ///
    /// `opcode` is `Text`/`Binary` for the first frame of a message, `Continuation` for the
    /// rest; `fin` ends the message. `Ping`/`Pong` are allowed (at most 125 bytes). The payload
    /// is sent as it is, uncompressed.
    pub fn frame_header(
        &mut self,
        opcode: OpCode,
        fin: bool,
        payload: &mut [u8],
    ) -> Result<HeaderBuf, Error> {
        let (h, mask) = self.start_frame(opcode, fin, payload.len())?;
        if let Some(key) = mask {
            apply_mask(payload, key, 0);
        }
        Ok(h)
    }

    /// Like [`frame_header`](Self::frame_header) for a payload of `len` bytes the caller
    /// masks itself with the returned key (clients; servers get `None`): for payloads that
    /// are written from shared memory, or masked while they are copied.
    pub fn start_frame(
        &mut self,
        opcode: OpCode,
        fin: bool,
        len: usize,
    ) -> Result<(HeaderBuf, Option<[u8; 4]>), Error> {
        self.begin(opcode, fin, len)?;
        let h = self.header(opcode, fin, 0, len);
        Ok((h.encode(), h.mask))
    }

    /// The encoded length of an uncompressed frame with this payload length from this side.
    pub fn frame_len(&self, payload_len: usize) -> usize {
        FrameHeader {
            fin: true,
            rsv: 0,
            opcode: OpCode::Binary,
            mask: (self.role == Role::Client).then_some([0; 4]),
            payload_len: payload_len as u64,
        }
        .encoded_len()
            + payload_len
    }

    /// Encodes a whole uncompressed frame (header and payload, masked for clients) into `out`;
    /// returns its length. See [`frame_header`](Self::frame_header) for `opcode` and `fin`.
    pub fn encode_frame(
        &mut self,
        opcode: OpCode,
        fin: bool,
        payload: &[u8],
        out: &mut [u8],
    ) -> Result<usize, Error> {
        let total = self.frame_len(payload.len());
        if out.len() < total {
            return Err(Error::BufferTooSmall);
        }
        self.begin(opcode, fin, payload.len())?;
        let h = self.header(opcode, fin, 0, payload.len());
        let hb = h.encode();
        let hl = hb.as_bytes().len();
        out[..hl].copy_from_slice(hb.as_bytes());
        let body = &mut out[hl..total];
        body.copy_from_slice(payload);
        if let Some(key) = h.mask {
            apply_mask(body, key, 0);
        }
        Ok(total)
    }

    /// Appends a whole message (`Text` or `Binary`) as one frame to `out`: compressed (RSV1)
    /// when permessage-deflate is on and the message is long enough, masked for clients. With a
    /// shared compressor the message goes uncompressed: see
    /// [`encode_message_with`](Self::encode_message_with).
    #[cfg(feature = "alloc")]
    pub fn encode_message(
        &mut self,
        opcode: OpCode,
        payload: &[u8],
        out: &mut alloc::vec::Vec<u8>,
    ) -> Result<(), Error> {
        #[cfg(feature = "deflate")]
        return self.encode_message_with(opcode, payload, out, None);
        #[cfg(not(feature = "deflate"))]
        {
            self.begin(opcode, true, payload.len())?;
            let h = self.header(opcode, true, 0, payload.len());
            append(out, &h, payload);
            Ok(())
        }
    }

    /// [`encode_message`](Self::encode_message), compressing with `compressor` when this
    /// sender uses a shared one ([`shared_compression`](Self::shared_compression)).
    #[cfg(feature = "deflate")]
    pub fn encode_message_with(
        &mut self,
        opcode: OpCode,
        payload: &[u8],
        out: &mut alloc::vec::Vec<u8>,
        compressor: Option<&mut crate::deflate::Compressor>,
    ) -> Result<(), Error> {
        self.begin(opcode, true, payload.len())?;
        let data = !opcode.is_control();
        match (&mut self.deflate, compressor) {
            (SendDeflate::Own(d), _) if data && payload.len() >= d.min_size() => {
                d.compress(payload)?;
                let h = header(
                    self.role,
                    &mut self.rng,
                    opcode,
                    true,
                    RSV1,
                    d.compressed.len(),
                );
                append(out, &h, &d.compressed);
                d.release_sent();
            }
            (SendDeflate::Shared(s), Some(c)) if data && payload.len() >= s.min_size => {
                let body = c.compress(payload, s.window_bits)?;
                let h = header(self.role, &mut self.rng, opcode, true, RSV1, body.len());
                append(out, &h, body);
            }
            _ => {
                let h = self.header(opcode, true, 0, payload.len());
                append(out, &h, payload);
            }
        }
        Ok(())
    }

    /// The frame of a [`PreparedMessage`](crate::PreparedMessage) for this sender: its
    /// compressed variant when this sender compresses and a variant fits its window, the plain
    /// frame otherwise; written as it is, from the message's shared memory. `None` for a client
    /// (its frames are masked each with a key of its own, so nothing can be shared): encode
    /// the message's payload as usual.
    ///
    /// With a compressor of its own that keeps context between messages, the context is
    /// dropped after a compressed variant goes out (the peer's decompressor saw a message the
    /// compressor did not).
    #[cfg(feature = "alloc")]
    pub fn prepared_frame<'p>(
        &mut self,
        prepared: &'p crate::PreparedMessage,
    ) -> Result<Option<&'p bytes::Bytes>, Error> {
        let opcode = prepared.opcode();
        self.begin(opcode, true, prepared.payload().len())?;
        if self.role == Role::Client {
            return Ok(None);
        }
        #[cfg(feature = "deflate")]
        {
            let window = match &self.deflate {
                SendDeflate::Own(d) if prepared.payload().len() >= d.min_size() => {
                    Some(d.window_bits())
                }
                SendDeflate::Shared(s) if prepared.payload().len() >= s.min_size => {
                    Some(s.window_bits)
                }
                _ => None,
            };
            if let Some(frame) = window.and_then(|w| prepared.compressed_frame(w)) {
                if let SendDeflate::Own(d) = &mut self.deflate {
                    d.forget();
                }
                return Ok(Some(frame));
            }
        }
        Ok(Some(prepared.plain_frame()))
    }

    /// Encodes a control frame the connection owes (see [`Connection::poll_control`]). `None`
    /// once a close frame has been encoded: nothing may follow it.
    pub fn encode_control(&mut self, control: &Control) -> Option<ControlFrame> {
        if self.closed {
            return None;
        }
        if control.opcode == OpCode::Close {
            self.closed = true;
            self.in_message = false;
        }
        Some(self.control_frame(control.opcode, &control.payload))
    }

    /// Encodes a close frame with `code` and `reason` (at most 123 bytes) for a sender used on
    /// its own: tell the connection with [`Connection::close`], whose own close frame this
    /// sender then drops.
    pub fn encode_close(
        &mut self,
        code: Option<CloseCode>,
        reason: &str,
    ) -> Result<ControlFrame, Error> {
        if self.closed {
            return Err(Error::Closed);
        }
        let payload = CtrlBuf::close(code, reason)?;
        self.closed = true;
        self.in_message = false;
        Ok(self.control_frame(OpCode::Close, &payload))
    }

    fn control_frame(&mut self, opcode: OpCode, payload: &CtrlBuf) -> ControlFrame {
        let h = self.header(opcode, true, 0, payload.len as usize);
        let hb = h.encode();
        let mut frame = ControlFrame {
            buf: [0; MAX_CONTROL_FRAME],
            len: 0,
            opcode,
        };
        let hl = hb.as_bytes().len();
        let total = hl + payload.len as usize;
        frame.buf[..hl].copy_from_slice(hb.as_bytes());
        frame.buf[hl..total].copy_from_slice(payload.as_slice());
        if let Some(key) = h.mask {
            apply_mask(&mut frame.buf[hl..total], key, 0);
        }
        frame.len = total as u8;
        frame
    }
}

/// wyrand: a fast generator with good statistical quality, seeded by the caller.
fn wyrand(state: &mut u64) -> u64 {
    *state = state.wrapping_add(0xa076_1d64_78bd_642f);
    let t = (*state as u128).wrapping_mul((*state ^ 0xe703_7ed1_a0b4_28db) as u128);
    ((t >> 64) as u64) ^ (t as u64)
}

/// The header of a frame from `role`, with a fresh masking key for clients.
fn header(
    role: Role,
    rng: &mut u64,
    opcode: OpCode,
    fin: bool,
    rsv: u8,
    len: usize,
) -> FrameHeader {
    FrameHeader {
        fin,
        rsv,
        opcode,
        mask: match role {
            Role::Server => None,
            Role::Client => Some((wyrand(rng) as u32).to_ne_bytes()),
        },
        payload_len: len as u64,
    }
}

/// Appends the frame `h` with `body` as its payload, masked as `h` says.
#[cfg(feature = "alloc")]
fn append(out: &mut alloc::vec::Vec<u8>, h: &FrameHeader, body: &[u8]) {
    let hb = h.encode();
    out.reserve(hb.as_bytes().len() + body.len());
    out.extend_from_slice(hb.as_bytes());
    let start = out.len();
    out.extend_from_slice(body);
    if let Some(key) = h.mask {
        apply_mask(&mut out[start..], key, 0);
    }
}

/// Sending through the connection's own [`Sender`], with the connection's state checked first.
impl Connection {
    fn check_send(&self) -> Result<(), Error> {
        if self.life.state.can_send() {
            Ok(())
        } else {
            Err(Error::Closed)
        }
    }

    /// [`Sender::frame_header`] through this connection (fails once it is closing).
    pub fn frame_header(
        &mut self,
        opcode: OpCode,
        fin: bool,
        payload: &mut [u8],
    ) -> Result<HeaderBuf, Error> {
        self.check_send()?;
        self.sender.frame_header(opcode, fin, payload)
    }

    /// [`Sender::encode_frame`] through this connection (fails once it is closing).
    pub fn encode_frame(
        &mut self,
        opcode: OpCode,
        fin: bool,
        payload: &[u8],
        out: &mut [u8],
    ) -> Result<usize, Error> {
        self.check_send()?;
        self.sender.encode_frame(opcode, fin, payload, out)
    }

    /// [`Sender::encode_message`] through this connection (fails once it is closing).
    #[cfg(feature = "alloc")]
    pub fn encode_message(
        &mut self,
        opcode: OpCode,
        payload: &[u8],
        out: &mut alloc::vec::Vec<u8>,
    ) -> Result<(), Error> {
        self.check_send()?;
        self.sender.encode_message(opcode, payload, out)
    }

    /// The encoded length of an uncompressed frame with this payload length from this side.
    pub fn frame_len(&self, payload_len: usize) -> usize {
        self.sender.frame_len(payload_len)
    }

    /// [`Sender::prepared_frame`] through this connection (fails once it is closing).
    #[cfg(feature = "alloc")]
    pub fn prepared_frame<'p>(
        &mut self,
        prepared: &'p crate::PreparedMessage,
    ) -> Result<Option<&'p bytes::Bytes>, Error> {
        self.check_send()?;
        self.sender.prepared_frame(prepared)
    }
}
