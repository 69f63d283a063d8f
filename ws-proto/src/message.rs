//! Whole owned messages assembled from [`Event`]s (feature `alloc`).

use alloc::string::String;
use alloc::vec::Vec;

use crate::close::CloseCode;
use crate::conn::{DataKind, Event};

/// A complete message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Message {
    /// A text message, valid UTF-8.
    Text(String),
    /// A binary message.
    Binary(Vec<u8>),
    /// A ping (already answered by the connection).
    Ping(Vec<u8>),
    /// A pong.
    Pong(Vec<u8>),
    /// A close frame: code and reason, or `None` when the frame had no code.
    Close(Option<(CloseCode, String)>),
}

/// Collects data chunks into whole messages. Memory is bounded by the connection's
/// `max_message_size`, which the connection enforces before any payload is delivered.
#[derive(Debug, Default)]
pub struct MessageAssembler {
    buf: Vec<u8>,
}

impl MessageAssembler {
    /// An empty assembler.
    pub const fn new() -> Self {
        Self { buf: Vec::new() }
    }

    /// Takes one event; returns a message when one is complete.
    pub fn push(&mut self, event: Event<'_>) -> Option<Message> {
        match event {
            Event::Data {
                kind,
                payload,
                message_fin,
                ..
            } => {
                if !message_fin {
                    self.buf.extend_from_slice(payload);
                    return None;
                }
                let bytes = if self.buf.is_empty() {
                    payload.to_vec()
                } else {
                    self.buf.extend_from_slice(payload);
                    core::mem::take(&mut self.buf)
                };
                Some(match kind {
                    DataKind::Binary => Message::Binary(bytes),
                    // The connection validated every byte of the message; this check cannot
                    // fail, and is kept so the assembler needs no trust in its input.
                    DataKind::Text => Message::Text(String::from_utf8(bytes).ok()?),
                })
            }
            Event::Ping(p) => Some(Message::Ping(p.to_vec())),
            Event::Pong(p) => Some(Message::Pong(p.to_vec())),
            Event::Close { code, reason } => {
                Some(Message::Close(code.map(|c| (c, String::from(reason)))))
            }
        }
    }

    /// Makes room for `additional` more bytes of the unfinished message.
    pub fn reserve(&mut self, additional: usize) {
        if additional > 0 && !self.buf.is_empty() {
            self.buf.reserve(additional);
        }
    }

    /// Bytes buffered for an unfinished message.
    pub fn buffered(&self) -> usize {
        self.buf.len()
    }

    /// Drops any partial message and releases its memory.
    pub fn clear(&mut self) {
        self.buf = Vec::new();
    }
}
