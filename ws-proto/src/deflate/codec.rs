//! The per-connection compressor and decompressor (feature `deflate`), on `zlib-rs`.

use alloc::boxed::Box;
use alloc::vec::Vec;

use zlib_rs::{Deflate, DeflateFlush, Inflate, InflateFlush, Status};

use super::Negotiated;
use crate::conn::Role;
use crate::error::{Error, Limit, ProtocolError};
use crate::limits::WORKING_BUFFER;

const TAIL: [u8; 4] = [0, 0, 0xff, 0xff];

/// The decompressor of one connection: inflates the peer's messages with an output budget.
/// Its state is created on first use and, when the peer resets its context per message,
/// dropped after every message.
pub(crate) struct Inflater {
    /// The peer resets its compression context after each message.
    peer_reset: bool,
    inflate: Option<InflateState>,
    /// Where the state waits between messages when the peer resets its context.
    pool: Option<&'static dyn InflatePool>,
    /// Inflated output of the current chunk.
    pub(crate) out: Vec<u8>,
}

impl core::fmt::Debug for Inflater {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("Inflater")
            .field("peer_reset", &self.peer_reset)
            .finish_non_exhaustive()
    }
}

impl Inflater {
    /// The decompressor for `role` with the agreed parameters.
    pub(crate) fn new(params: &Negotiated, role: Role) -> Inflater {
        let peer_reset = match role {
            Role::Server => params.client_no_context_takeover,
            Role::Client => params.server_no_context_takeover,
        };
        Inflater {
            peer_reset,
            inflate: None,
            pool: None,
            out: Vec::new(),
        }
    }

    /// Keeps the decompressor state in `pool` between messages (when the peer resets its
    /// context per message; otherwise the state is this connection's for good).
    pub(crate) fn set_pool(&mut self, pool: &'static dyn InflatePool) {
        self.pool = Some(pool);
    }

    fn peer_reset(&self) -> bool {
        self.peer_reset
    }

    /// Inflates `input` (part of a compressed message) into `self.out`, replacing what was
    /// there. `last` appends the stripped `00 00 ff ff` tail and ends the message. At most
    /// `budget` bytes may come out; more is [`Limit::MessageSize`].
    pub(crate) fn inflate(&mut self, input: &[u8], last: bool, budget: u64) -> Result<(), Error> {
        self.out.clear();
        if self.out.capacity() > WORKING_BUFFER {
            self.out = Vec::new();
        }
        let pool = if self.peer_reset { self.pool } else { None };
        let inf = &mut self
            .inflate
            .get_or_insert_with(|| {
                pool.and_then(|p| p.take())
                    .unwrap_or_else(|| InflateState(Box::new(Inflate::new(false, 15))))
            })
            .0;
        let mut produced: u64 = 0;
        for (part, is_tail) in [(input, false), (&TAIL[..], true)] {
            if is_tail && !last {
                break;
            }
            let mut rest = part;
            // Start near the likely output size and double: small messages touch little
            // memory, large ones few steps.
            let mut step = (rest.len() as u64 * 4 + 256).min(64 << 10);
            loop {
                let room = (budget - produced).saturating_add(1).min(step) as usize;
                step = (step * 2).min(1 << 20);
                let start = self.out.len();
                let want = start + room.max(1);
                if want > self.out.capacity() {
                    // Grow geometrically, but never past the budget: memory stays within
                    // the message limit plus one step.
                    let cap_limit = usize::try_from(budget)
                        .unwrap_or(usize::MAX)
                        .saturating_add(1 << 16);
                    let target = want
                        .max(self.out.capacity().saturating_mul(2))
                        .min(cap_limit.max(want));
                    self.out.reserve_exact(target - self.out.len());
                }
                self.out.resize(want, 0);
                let in_before = inf.total_in();
                let out_before = inf.total_out();
                let r = inf.decompress(rest, &mut self.out[start..], InflateFlush::SyncFlush);
                let used = (inf.total_in() - in_before) as usize;
                let made = (inf.total_out() - out_before) as usize;
                self.out.truncate(start + made);
                produced += made as u64;
                rest = &rest[used..];
                if produced > budget {
                    return Err(Error::LimitExceeded(Limit::MessageSize));
                }
                match r {
                    Ok(Status::StreamEnd) => {
                        // A final block: nothing more may follow in this context.
                        if !rest.is_empty() {
                            return Err(ProtocolError::BadCompressedData.into());
                        }
                        inf.reset(false);
                        break;
                    }
                    Ok(_) => {
                        if rest.is_empty() && made < room {
                            break;
                        }
                        if used == 0 && made == 0 {
                            if rest.is_empty() {
                                break;
                            }
                            return Err(ProtocolError::BadCompressedData.into());
                        }
                    }
                    Err(_) => return Err(ProtocolError::BadCompressedData.into()),
                }
            }
        }
        if last && self.peer_reset() {
            if let (Some(mut state), Some(pool)) = (self.inflate.take(), self.pool) {
                state.0.reset(false);
                pool.give(state);
            }
        }
        Ok(())
    }

    /// Between messages: in the lean mode (the peer resets its context, so ours is gone
    /// too) give back the inflate buffer; otherwise keep it unless a large message grew it.
    pub(crate) fn release_idle(&mut self) {
        let cap = self.out.capacity();
        if cap > 0 && (self.peer_reset() || cap > WORKING_BUFFER) {
            self.out = Vec::new();
        }
    }
}

/// The state of a decompressor (about 7 KiB, and its 32 KiB window once used), lent to
/// connections by an [`InflatePool`].
pub struct InflateState(Box<Inflate>);

impl core::fmt::Debug for InflateState {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str("InflateState")
    }
}

/// Where connections whose peer resets its compression context after every message
/// (`client_no_context_takeover` on a server) keep their decompressor state between messages:
/// a pool shared by many connections (one per thread, say), so that an idle connection holds
/// none and none is made and freed per message. See
/// [`Connection::set_inflate_pool`](crate::Connection::set_inflate_pool).
pub trait InflatePool: Sync {
    /// A state to use for the next message, if the pool has one (else a new one is made).
    fn take(&self) -> Option<InflateState>;
    /// A state a message is done with, reset (the pool may drop it).
    fn give(&self, state: InflateState);
}

/// The compressor of one connection. Its state is created on first use and, without context
/// takeover on our side, dropped after every message.
pub(crate) struct Deflater {
    /// Our compressor window (8-15; 8 is used as 9, as zlib does).
    bits: u8,
    /// We reset our context after each message.
    reset: bool,
    level: u8,
    min_size: usize,
    deflate: Option<Box<Deflate>>,
    /// Compressed output of the current message.
    pub(crate) compressed: Vec<u8>,
}

impl core::fmt::Debug for Deflater {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("Deflater")
            .field("bits", &self.bits)
            .field("reset", &self.reset)
            .finish_non_exhaustive()
    }
}

impl Deflater {
    /// The compressor for `role` with the agreed parameters.
    pub(crate) fn new(params: &Negotiated, role: Role) -> Deflater {
        let (bits, reset) = match role {
            Role::Server => (
                params.server_max_window_bits,
                params.server_no_context_takeover,
            ),
            Role::Client => (
                params.client_max_window_bits,
                params.client_no_context_takeover,
            ),
        };
        Deflater {
            bits,
            reset,
            level: params.level,
            min_size: params.min_size,
            deflate: None,
            compressed: Vec::new(),
        }
    }

    /// Messages shorter than this are sent uncompressed.
    pub(crate) fn min_size(&self) -> usize {
        self.min_size
    }

    fn our_reset(&self) -> bool {
        self.reset
    }

    /// After a message was sent: the same for the compression buffer.
    pub(crate) fn release_sent(&mut self) {
        let cap = self.compressed.capacity();
        if cap > 0 && (self.our_reset() || cap > WORKING_BUFFER) {
            self.compressed = Vec::new();
        }
    }

    /// Compresses a whole message into `self.compressed`, without the `00 00 ff ff` tail.
    pub(crate) fn compress(&mut self, input: &[u8]) -> Result<(), Error> {
        let bits = self.bits.max(9);
        let level = self.level.min(9) as i32;
        let def = self
            .deflate
            .get_or_insert_with(|| Box::new(Deflate::new(level, false, bits)));
        compress_message(def, input, &mut self.compressed)?;
        if self.our_reset() {
            self.deflate = None;
        }
        Ok(())
    }

    /// Forgets the compression context: the peer's decompressor saw a message this compressor
    /// did not (one compressed elsewhere), so nothing may refer back past it.
    pub(crate) fn forget(&mut self) {
        if let Some(d) = self.deflate.as_mut() {
            d.reset();
        }
    }

    /// The zlib level, 0-9.
    pub(crate) fn level(&self) -> u8 {
        self.level.min(9)
    }

    /// Our compressor window (9-15).
    pub(crate) fn window_bits(&self) -> u8 {
        self.bits.max(9)
    }
}

/// Compresses a whole message with `def` into `out` (replacing what was there), without the
/// `00 00 ff ff` tail.
fn compress_message(def: &mut Deflate, input: &[u8], out: &mut Vec<u8>) -> Result<(), Error> {
    out.clear();
    let mut rest = input;
    loop {
        let room = rest.len() / 2 + 64;
        let start = out.len();
        out.resize(start + room, 0);
        let in_before = def.total_in();
        let out_before = def.total_out();
        let r = def.compress(rest, &mut out[start..], DeflateFlush::SyncFlush);
        let used = (def.total_in() - in_before) as usize;
        let made = (def.total_out() - out_before) as usize;
        out.truncate(start + made);
        rest = &rest[used..];
        if r.is_err() {
            return Err(Error::InvalidUsage(crate::error::Usage::InvalidConfig));
        }
        if rest.is_empty() && made < room {
            break;
        }
    }
    if out.ends_with(&TAIL) {
        out.truncate(out.len() - 4);
    }
    if out.is_empty() {
        // zlib emits nothing for a flush with no new input right after another flush. An
        // empty payload would make the receiver read the appended tail as the start of a
        // block; send the header of an empty stored block instead (RFC 7692 section
        // 7.2.3.6), which the tail completes.
        out.push(0x00);
    }
    Ok(())
}

/// A compressor for messages that go to many connections, holding no state of any one of
/// them: every message is compressed on its own (no context from the messages before it), so
/// every connection that negotiated permessage-deflate with a window at least as large can
/// take the same bytes, whatever its context takeover.
///
/// Keep one per thread (or per publisher) and reuse it: its state (about 256 KiB for a 15-bit
/// window at the default level) is made once per window size used.
pub struct Compressor {
    level: u8,
    /// One stream per window size, 9 to 15 bits.
    streams: [Option<Box<Deflate>>; 7],
    out: Vec<u8>,
}

impl core::fmt::Debug for Compressor {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("Compressor")
            .field("level", &self.level)
            .finish_non_exhaustive()
    }
}

impl Compressor {
    /// A compressor at zlib level `level` (0-9; see
    /// [`DeflateConfig::level`](super::DeflateConfig::level)).
    pub fn new(level: u8) -> Compressor {
        Compressor {
            level: level.min(9),
            streams: Default::default(),
            out: Vec::new(),
        }
    }

    /// Compresses a whole message for receivers whose decompressors have a window of
    /// `window_bits` (8-15; 8 is taken as 9, as zlib does) or more; returns the payload of its
    /// frame (sent with RSV1).
    pub fn compress(&mut self, payload: &[u8], window_bits: u8) -> Result<&[u8], Error> {
        let bits = window_bits.clamp(9, 15);
        let level = i32::from(self.level);
        if self.out.capacity() > WORKING_BUFFER {
            // A large message grew the buffer; give the memory back.
            self.out = Vec::new();
        }
        let def = self.streams[usize::from(bits - 9)]
            .get_or_insert_with(|| Box::new(Deflate::new(level, false, bits)));
        let r = compress_message(def, payload, &mut self.out);
        def.reset();
        r?;
        Ok(&self.out)
    }
}
