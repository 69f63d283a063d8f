//! Messages encoded once for many connections (feature `alloc`).
//!
//! A [`PreparedMessage`] holds a text or binary message as whole server frames, ready to be
//! written: the plain frame (header and unmasked payload), and with permessage-deflate
//! compressed variants, each compressed once, on its own (no context from earlier messages),
//! for decompressors with a window of at least its size. Every server connection takes the
//! frame that fits it from [`Sender::prepared_frame`](crate::Sender::prepared_frame) and writes
//! those bytes as they are: a message published to 10,000 connections is framed once and
//! compressed once per distinct window, not once per connection.
//!
//! Only the server role can share frames: a client masks every frame with a key of its own
//! (RFC 6455 section 5.3), so the bytes differ per connection and per frame. A client
//! connection encodes a prepared message's payload as it would any message.
//!
//! ```
//! use ws_proto::{Config, Connection, Message, PreparedMessage};
//!
//! let prepared = PreparedMessage::new(Message::text("price: 42")).unwrap();
//! let mut a = Connection::server(Config::default(), 0).unwrap();
//! let mut b = Connection::server(Config::default(), 0).unwrap();
//! let fa = a.prepared_frame(&prepared).unwrap().unwrap().clone();
//! let fb = b.prepared_frame(&prepared).unwrap().unwrap().clone();
//! assert_eq!(fa.as_ptr(), fb.as_ptr(), "the same bytes for both");
//! assert_eq!(&fa[..2], &[0x81, 9]);
//! ```

use alloc::vec::Vec;

use bytes::Bytes;

use crate::error::{Error, Usage};
use crate::frame::{FrameHeader, OpCode};
use crate::message::Message;

/// A text or binary message framed once for many server connections (see the
/// [module documentation](self)).
#[derive(Debug, Clone)]
pub struct PreparedMessage {
    opcode: OpCode,
    payload: Bytes,
    /// The whole frame: header and payload, unmasked, uncompressed.
    plain: Bytes,
    /// Compressed frames (RSV1) by the window they were compressed with, smallest first.
    #[cfg(feature = "deflate")]
    compressed: Vec<(u8, Bytes)>,
}

/// The whole unmasked frame of one final message frame.
fn frame(opcode: OpCode, rsv: u8, body: &[u8]) -> Bytes {
    let h = FrameHeader {
        fin: true,
        rsv,
        opcode,
        mask: None,
        payload_len: body.len() as u64,
    }
    .encode();
    let mut out = Vec::with_capacity(h.as_bytes().len() + body.len());
    out.extend_from_slice(h.as_bytes());
    out.extend_from_slice(body);
    Bytes::from(out)
}

impl PreparedMessage {
    /// Frames a text or binary message; anything else is
    /// `Error::InvalidUsage(Usage::NotData)`.
    pub fn new(message: Message) -> Result<PreparedMessage, Error> {
        let (opcode, payload) = match message {
            Message::Text(t) => (OpCode::Text, t.into_bytes()),
            Message::Binary(b) => (OpCode::Binary, b),
            _ => return Err(Error::InvalidUsage(Usage::NotData)),
        };
        Ok(PreparedMessage {
            opcode,
            plain: frame(opcode, 0, &payload),
            payload,
            #[cfg(feature = "deflate")]
            compressed: Vec::new(),
        })
    }

    /// `Text` or `Binary`.
    pub fn opcode(&self) -> OpCode {
        self.opcode
    }

    /// The message's payload.
    pub fn payload(&self) -> &Bytes {
        &self.payload
    }

    /// The plain frame: header and payload, unmasked.
    pub fn plain_frame(&self) -> &Bytes {
        &self.plain
    }

    /// Adds the variant compressed for decompressors with a window of `window_bits` (8-15; 8 is
    /// taken as 9, as zlib does) or more, with `compressor`, unless it is there. Compress once
    /// per window the receiving connections negotiated (a variant also serves every larger
    /// window).
    #[cfg(feature = "deflate")]
    pub fn compress(
        &mut self,
        compressor: &mut crate::deflate::Compressor,
        window_bits: u8,
    ) -> Result<(), Error> {
        let bits = window_bits.clamp(9, 15);
        let at = match self.compressed.binary_search_by_key(&bits, |(b, _)| *b) {
            Ok(_) => return Ok(()),
            Err(at) => at,
        };
        let body = compressor.compress(&self.payload, bits)?;
        let f = frame(self.opcode, crate::frame::RSV1, body);
        self.compressed.insert(at, (bits, f));
        Ok(())
    }

    /// [`compress`](Self::compress), by value.
    #[cfg(feature = "deflate")]
    pub fn with_compression(
        mut self,
        compressor: &mut crate::deflate::Compressor,
        window_bits: u8,
    ) -> Result<Self, Error> {
        self.compress(compressor, window_bits)?;
        Ok(self)
    }

    /// The compressed frame for a decompressor window of `window_bits`: the variant with the
    /// largest window that fits, if any.
    #[cfg(feature = "deflate")]
    pub fn compressed_frame(&self, window_bits: u8) -> Option<&Bytes> {
        self.compressed
            .iter()
            .rev()
            .find(|(b, _)| *b <= window_bits.max(9))
            .map(|(_, f)| f)
    }

    /// The windows compressed variants were made for, smallest first.
    #[cfg(feature = "deflate")]
    pub fn compressed_windows(&self) -> impl Iterator<Item = u8> + '_ {
        self.compressed.iter().map(|(b, _)| *b)
    }
}

impl TryFrom<Message> for PreparedMessage {
    type Error = Error;

    fn try_from(m: Message) -> Result<Self, Error> {
        PreparedMessage::new(m)
    }
}
