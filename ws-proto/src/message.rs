//! Whole owned messages on [`bytes`] (feature `alloc`): [`Message`], [`Utf8Bytes`],
//! [`CloseFrame`], and the [`MessageAssembler`] that builds them from a connection's events.
//!
//! The shapes are those of tokio-tungstenite (0.26 and later) and axum 0.8, so code written
//! for either reads the same.

use alloc::string::String;
use alloc::vec::Vec;
use core::fmt;
use core::mem::MaybeUninit;
use core::ops::Deref;

use bytes::Bytes;

use crate::close::CloseCode;
use crate::conn::{Connection, DataKind, Event, PayloadOut};
use crate::error::Error;
use crate::utf8::Utf8Error;

/// Bytes known to be UTF-8: a [`Bytes`] that derefs to `str`.
///
/// ```
/// use ws_proto::Utf8Bytes;
///
/// let t = Utf8Bytes::from("héllo");
/// assert_eq!(t.as_str(), "héllo");
/// assert_eq!(&*t, "héllo");
/// assert!(Utf8Bytes::try_from(bytes::Bytes::from_static(&[0xff])).is_err());
/// ```
#[derive(Clone, Default, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Utf8Bytes(Bytes);

impl Utf8Bytes {
    /// A `Utf8Bytes` over a static string, without copying.
    pub const fn from_static(s: &'static str) -> Self {
        Utf8Bytes(Bytes::from_static(s.as_bytes()))
    }

    /// `bytes` that the connection has validated as UTF-8.
    ///
    /// # Safety
    /// `bytes` must be valid UTF-8.
    pub(crate) unsafe fn from_bytes_unchecked(bytes: Bytes) -> Self {
        Utf8Bytes(bytes)
    }

    /// The text.
    pub fn as_str(&self) -> &str {
        // SAFETY: every constructor checks that the bytes are UTF-8 (`try_from`, the `From`
        // impls from `str` and `String`) or is given bytes the connection has validated
        // (`from_bytes_unchecked`), and the bytes cannot change afterwards.
        unsafe { core::str::from_utf8_unchecked(&self.0) }
    }

    /// The bytes.
    pub fn as_bytes(&self) -> &[u8] {
        &self.0
    }

    /// The underlying [`Bytes`].
    pub fn into_bytes(self) -> Bytes {
        self.0
    }
}

impl Deref for Utf8Bytes {
    type Target = str;

    fn deref(&self) -> &str {
        self.as_str()
    }
}

impl AsRef<str> for Utf8Bytes {
    fn as_ref(&self) -> &str {
        self.as_str()
    }
}

impl AsRef<[u8]> for Utf8Bytes {
    fn as_ref(&self) -> &[u8] {
        &self.0
    }
}

impl core::borrow::Borrow<str> for Utf8Bytes {
    fn borrow(&self) -> &str {
        self.as_str()
    }
}

impl fmt::Debug for Utf8Bytes {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(self.as_str(), f)
    }
}

impl fmt::Display for Utf8Bytes {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self.as_str(), f)
    }
}

impl From<String> for Utf8Bytes {
    fn from(s: String) -> Self {
        Utf8Bytes(Bytes::from(s.into_bytes()))
    }
}

impl From<&str> for Utf8Bytes {
    fn from(s: &str) -> Self {
        Utf8Bytes(Bytes::copy_from_slice(s.as_bytes()))
    }
}

impl From<&String> for Utf8Bytes {
    fn from(s: &String) -> Self {
        Self::from(s.as_str())
    }
}

impl From<alloc::boxed::Box<str>> for Utf8Bytes {
    fn from(s: alloc::boxed::Box<str>) -> Self {
        Self::from(String::from(s))
    }
}

impl TryFrom<Bytes> for Utf8Bytes {
    type Error = Utf8Error;

    fn try_from(bytes: Bytes) -> Result<Self, Utf8Error> {
        crate::utf8::validate(&bytes)?;
        Ok(Utf8Bytes(bytes))
    }
}

impl TryFrom<Vec<u8>> for Utf8Bytes {
    type Error = Utf8Error;

    fn try_from(bytes: Vec<u8>) -> Result<Self, Utf8Error> {
        Self::try_from(Bytes::from(bytes))
    }
}

impl From<Utf8Bytes> for Bytes {
    fn from(t: Utf8Bytes) -> Bytes {
        t.0
    }
}

impl PartialEq<str> for Utf8Bytes {
    fn eq(&self, other: &str) -> bool {
        self.as_str() == other
    }
}

impl PartialEq<&str> for Utf8Bytes {
    fn eq(&self, other: &&str) -> bool {
        self.as_str() == *other
    }
}

impl PartialEq<String> for Utf8Bytes {
    fn eq(&self, other: &String) -> bool {
        self.as_str() == other.as_str()
    }
}

/// The code and reason of a close frame.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct CloseFrame {
    /// The status code.
    pub code: CloseCode,
    /// The reason (at most 123 bytes when sent).
    pub reason: Utf8Bytes,
}

impl CloseFrame {
    /// A close frame with this code and reason.
    pub fn new(code: CloseCode, reason: impl Into<Utf8Bytes>) -> Self {
        CloseFrame {
            code,
            reason: reason.into(),
        }
    }
}

/// A complete message.
///
/// Not `#[non_exhaustive]`: these are RFC 6455's five kinds of frame, and code matches all of
/// them, as it does with tokio-tungstenite's and axum's `Message`.
///
/// ```
/// use ws_proto::Message;
///
/// let m = Message::text("hi");
/// assert!(m.is_text());
/// assert_eq!(m.to_text().unwrap(), "hi");
/// assert_eq!(Message::binary(vec![1, 2]).into_data(), &[1u8, 2][..]);
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Message {
    /// A text message, valid UTF-8.
    Text(Utf8Bytes),
    /// A binary message.
    Binary(Bytes),
    /// A ping (already answered by the connection when received).
    Ping(Bytes),
    /// A pong.
    Pong(Bytes),
    /// A close frame: code and reason, or `None` when the frame had no code.
    Close(Option<CloseFrame>),
}

impl Message {
    /// A text message.
    pub fn text(text: impl Into<Utf8Bytes>) -> Message {
        Message::Text(text.into())
    }

    /// A binary message.
    pub fn binary(data: impl Into<Bytes>) -> Message {
        Message::Binary(data.into())
    }

    /// A ping (at most 125 bytes).
    pub fn ping(data: impl Into<Bytes>) -> Message {
        Message::Ping(data.into())
    }

    /// A pong (at most 125 bytes).
    pub fn pong(data: impl Into<Bytes>) -> Message {
        Message::Pong(data.into())
    }

    /// Whether this is a text message.
    pub fn is_text(&self) -> bool {
        matches!(self, Message::Text(_))
    }

    /// Whether this is a binary message.
    pub fn is_binary(&self) -> bool {
        matches!(self, Message::Binary(_))
    }

    /// Whether this is a ping.
    pub fn is_ping(&self) -> bool {
        matches!(self, Message::Ping(_))
    }

    /// Whether this is a pong.
    pub fn is_pong(&self) -> bool {
        matches!(self, Message::Pong(_))
    }

    /// Whether this is a close frame.
    pub fn is_close(&self) -> bool {
        matches!(self, Message::Close(_))
    }

    /// The payload length in bytes (a close frame's reason length).
    pub fn len(&self) -> usize {
        match self {
            Message::Text(t) => t.len(),
            Message::Binary(b) | Message::Ping(b) | Message::Pong(b) => b.len(),
            Message::Close(c) => c.as_ref().map_or(0, |c| c.reason.len()),
        }
    }

    /// Whether the payload is empty.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The payload as bytes (a close frame's reason).
    pub fn into_data(self) -> Bytes {
        match self {
            Message::Text(t) => t.into_bytes(),
            Message::Binary(b) | Message::Ping(b) | Message::Pong(b) => b,
            Message::Close(c) => c.map_or_else(Bytes::new, |c| c.reason.into_bytes()),
        }
    }

    /// The payload as text: free for text and close frames, checked for the others.
    pub fn into_text(self) -> Result<Utf8Bytes, Utf8Error> {
        match self {
            Message::Text(t) => Ok(t),
            Message::Close(c) => Ok(c.map(|c| c.reason).unwrap_or_default()),
            Message::Binary(b) | Message::Ping(b) | Message::Pong(b) => Utf8Bytes::try_from(b),
        }
    }

    /// The payload as `&str`: free for text and close frames, checked for the others.
    pub fn to_text(&self) -> Result<&str, Utf8Error> {
        match self {
            Message::Text(t) => Ok(t.as_str()),
            Message::Close(c) => Ok(c.as_ref().map_or("", |c| c.reason.as_str())),
            Message::Binary(b) | Message::Ping(b) | Message::Pong(b) => crate::utf8::validate(b),
        }
    }
}

impl From<String> for Message {
    fn from(s: String) -> Self {
        Message::text(s)
    }
}

impl From<&str> for Message {
    fn from(s: &str) -> Self {
        Message::text(s)
    }
}

impl From<Utf8Bytes> for Message {
    fn from(t: Utf8Bytes) -> Self {
        Message::Text(t)
    }
}

impl From<Vec<u8>> for Message {
    fn from(b: Vec<u8>) -> Self {
        Message::binary(b)
    }
}

impl From<Bytes> for Message {
    fn from(b: Bytes) -> Self {
        Message::Binary(b)
    }
}

impl From<&[u8]> for Message {
    fn from(b: &[u8]) -> Self {
        Message::Binary(Bytes::copy_from_slice(b))
    }
}

/// Collects a connection's events into whole messages, each assembled in one buffer and
/// frozen into [`Bytes`] without a copy. Memory is bounded by the connection's
/// `max_message_size`, which the connection enforces before any payload is delivered.
#[derive(Debug, Default)]
pub struct MessageAssembler {
    buf: Vec<u8>,
    /// Some bytes in `buf` came through [`push`](Self::push), not straight from a connection:
    /// the message's text is checked when it completes.
    unchecked: bool,
}

/// Gives the connection the spare capacity of the message buffer for the next payload bytes.
struct Spare<'a> {
    /// Taken when the connection asks for room.
    buf: Option<&'a mut Vec<u8>>,
}

impl<'a> PayloadOut<'a> for Spare<'a> {
    fn room(&mut self, remaining: u64, available: usize) -> Option<&'a mut [MaybeUninit<u8>]> {
        let buf = self.buf.take()?;
        let want = remaining.min(MessageAssembler::RESERVE_MAX as u64) as usize;
        buf.reserve(want);
        let spare = buf.spare_capacity_mut();
        let room = want.min(available).min(spare.len());
        Some(&mut spare[..room])
    }
}

impl MessageAssembler {
    /// An empty assembler.
    pub const fn new() -> Self {
        Self {
            buf: Vec::new(),
            unchecked: false,
        }
    }

    /// The most message buffer [`receive`](Self::receive) reserves at once for a frame.
    pub const RESERVE_MAX: usize = crate::limits::WORKING_BUFFER;

    /// Runs received bytes through `conn` at `now` until a message completes or the bytes run
    /// out; returns how many bytes were consumed and the message, if one completed.
    ///
    /// Call again with the rest while bytes remain. One call of the connection per frame:
    /// payloads are unmasked straight into the message buffer
    /// ([`Connection::receive_into`]), one pass over each byte; the buffer is sized once per
    /// frame, for at most [`RESERVE_MAX`](Self::RESERVE_MAX) bytes at a time, so a declared
    /// length alone cannot claim much memory. Text was validated by the connection as it
    /// arrived and is not checked again.
    ///
    /// An error is the connection's: it has failed, with its close frame queued.
    pub fn receive(
        &mut self,
        conn: &mut Connection,
        now: u64,
        input: &mut [u8],
    ) -> Result<(usize, Option<Message>), Error> {
        let MessageAssembler { buf, unchecked } = self;
        let mut pos = 0;
        // At least once: with no bytes, the connection may still complete a frame header it
        // kept (held back by its rate limits).
        loop {
            let mut spare = Spare {
                buf: Some(&mut *buf),
            };
            let (n, event) = conn.receive_with(now, &mut input[pos..], &mut spare)?;
            pos += n;
            let message = match (event, spare.buf.take()) {
                (None, _) if n == 0 => break,
                (None, _) => None,
                (Some(event), Some(b)) => take(b, unchecked, event, true),
                (
                    Some(Event::Data {
                        kind,
                        payload,
                        message_fin,
                        ..
                    }),
                    None,
                ) => {
                    let written = payload.len();
                    let len = buf.len();
                    // SAFETY: the connection wrote this payload, `written` initialized bytes,
                    // to the start of the spare capacity it was given (the `PayloadOut`
                    // contract of `receive_with`: only a data payload is written there).
                    unsafe { buf.set_len(len + written) };
                    message_fin
                        .then(|| finish(buf, unchecked, kind, true))
                        .flatten()
                }
                // Only a data payload is written to the spare capacity.
                (Some(_), None) => return Err(Error::Closed),
            };
            if message.is_some() {
                return Ok((pos, message));
            }
            if pos >= input.len() {
                return Ok((pos, None));
            }
        }
        Ok((pos, None))
    }

    /// Takes one event; returns a message when one is complete. Text is checked here (the
    /// event may come from anywhere); invalid text gives no message.
    pub fn push(&mut self, event: Event<'_>) -> Option<Message> {
        take(&mut self.buf, &mut self.unchecked, event, false)
    }

    /// Bytes buffered for an unfinished message.
    pub fn buffered(&self) -> usize {
        self.buf.len()
    }

    /// Drops any partial message and releases its memory.
    pub fn clear(&mut self) {
        self.buf = Vec::new();
        self.unchecked = false;
    }
}

/// Takes one event into the message buffer `buf`; returns a message when one is complete.
/// `trusted`: the event comes straight from a connection, which validated its text.
fn take(
    buf: &mut Vec<u8>,
    unchecked: &mut bool,
    event: Event<'_>,
    trusted: bool,
) -> Option<Message> {
    match event {
        Event::Data {
            kind,
            payload,
            message_fin,
            ..
        } => {
            buf.extend_from_slice(payload);
            *unchecked |= !trusted;
            message_fin
                .then(|| finish(buf, unchecked, kind, trusted))
                .flatten()
        }
        Event::Ping(p) => Some(Message::Ping(Bytes::copy_from_slice(p))),
        Event::Pong(p) => Some(Message::Pong(Bytes::copy_from_slice(p))),
        Event::Close { code, reason } => Some(Message::Close(
            code.map(|code| CloseFrame::new(code, reason)),
        )),
    }
}

/// The message in `buf`, which is complete, frozen without a copy.
fn finish(
    buf: &mut Vec<u8>,
    unchecked: &mut bool,
    kind: DataKind,
    trusted: bool,
) -> Option<Message> {
    let bytes = Bytes::from(core::mem::take(buf));
    let trusted = trusted && !core::mem::take(unchecked);
    match kind {
        DataKind::Binary => Some(Message::Binary(bytes)),
        // SAFETY: every byte of this message came straight from a connection (`unchecked` was
        // clear), which validated it as it arrived: the streaming check ends with the message,
        // and invalid text fails the connection before the message's last event.
        DataKind::Text if trusted => Some(Message::Text(unsafe {
            Utf8Bytes::from_bytes_unchecked(bytes)
        })),
        DataKind::Text => Utf8Bytes::try_from(bytes).ok().map(Message::Text),
    }
}

#[cfg(test)]
mod tests;
