//! Whole owned messages assembled from [`Event`]s (feature `alloc`).

use alloc::string::String;
use alloc::vec::Vec;

use crate::close::CloseCode;
use crate::conn::{Connection, DataKind, Event};
use crate::error::Error;

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

/// `bytes` as a `String` if they are UTF-8, checked with the SIMD validator: `String::from_utf8`
/// checks non-ASCII text at about 1 GB/s, 15 times slower (`micro_report`: a whole 64 KiB mixed
/// text message took 42.8 us out of the assembler with it, 5.6 us with this).
fn into_string(bytes: Vec<u8>) -> Option<String> {
    crate::utf8::validate(&bytes).ok()?;
    // SAFETY: `validate` has just checked that exactly these bytes are UTF-8.
    Some(unsafe { String::from_utf8_unchecked(bytes) })
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
                self.buf = bytes;
                self.finish(kind)
            }
            Event::Ping(p) => Some(Message::Ping(p.to_vec())),
            Event::Pong(p) => Some(Message::Pong(p.to_vec())),
            Event::Close { code, reason } => {
                Some(Message::Close(code.map(|c| (c, String::from(reason)))))
            }
        }
    }

    /// Runs received bytes through `conn` until a message completes or the bytes run out;
    /// returns how many bytes were consumed and the message, if one completed.
    ///
    /// Call again with the rest while bytes remain. Payloads are unmasked straight into the
    /// message buffer ([`Connection::receive_into`]), one pass over each byte instead of an
    /// unmask in place and a copy; the buffer is sized once per frame, for at most
    /// [`RESERVE_MAX`](Self::RESERVE_MAX) bytes at a time, so a declared length alone cannot
    /// claim much memory.
    ///
    /// An error is the connection's: it has failed, with its close frame queued.
    pub fn receive(
        &mut self,
        conn: &mut Connection,
        input: &mut [u8],
    ) -> Result<(usize, Option<Message>), Error> {
        let mut pos = 0;
        while pos < input.len() {
            let want = conn.data_remaining().min(Self::RESERVE_MAX as u64) as usize;
            let room = want.min(input.len() - pos);
            if room == 0 {
                // A header, a control frame or compressed data: nothing to write to the buffer.
                let (n, event) = conn.receive_into(&mut input[pos..], &mut [])?;
                pos += n;
                match event {
                    Some(event) => match self.push(event) {
                        Some(msg) => return Ok((pos, Some(msg))),
                        None => continue,
                    },
                    None if n == 0 => break,
                    None => continue,
                }
            }
            self.buf.reserve(want);
            let len = self.buf.len();
            let spare = &mut self.buf.spare_capacity_mut()[..room];
            let spare_at = spare.as_ptr() as usize;
            let (n, event) = conn.receive_into(&mut input[pos..], spare)?;
            pos += n;
            // The payload of an uncompressed data frame is next: the event is its chunk,
            // written to the start of `spare`.
            let (kind, written, message_fin) = match event {
                Some(Event::Data {
                    kind,
                    payload,
                    message_fin,
                    ..
                }) if payload.as_ptr() as usize == spare_at && payload.len() <= room => {
                    (kind, payload.len(), message_fin)
                }
                // Cannot happen (the connection writes such a payload to `spare`); reported
                // rather than trusted.
                _ => return Err(Error::Closed),
            };
            // SAFETY: the payload is the first `written` bytes of the spare capacity (it
            // starts there and is no longer than it), initialized by the connection.
            unsafe { self.buf.set_len(len + written) };
            if message_fin {
                return Ok((pos, self.finish(kind)));
            }
        }
        Ok((pos, None))
    }

    /// The message in the buffer, which is complete.
    fn finish(&mut self, kind: DataKind) -> Option<Message> {
        let bytes = core::mem::take(&mut self.buf);
        match kind {
            DataKind::Binary => Some(Message::Binary(bytes)),
            // The connection validated every byte of the message; this check cannot fail, and
            // is kept so the assembler needs no trust in its input.
            DataKind::Text => into_string(bytes).map(Message::Text),
        }
    }

    /// The most message buffer [`receive`](Self::receive) reserves at once for a frame.
    pub const RESERVE_MAX: usize = 256 << 10;

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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::conn::Config;
    use crate::frame::{FrameHeader, OpCode};
    use alloc::vec;

    fn text(payload: &[u8], message_fin: bool) -> Event<'_> {
        Event::Data {
            kind: DataKind::Text,
            payload,
            frame_fin: true,
            message_fin,
        }
    }

    #[test]
    fn whole_and_fragmented_text_messages() {
        let mut a = MessageAssembler::new();
        let m = a.push(text("héllo ✓".as_bytes(), true));
        assert_eq!(m, Some(Message::Text("héllo ✓".into())));
        // A character split across two chunks.
        let bytes = "€uro".as_bytes();
        assert_eq!(a.push(text(&bytes[..2], false)), None);
        assert_eq!(a.buffered(), 2);
        let m = a.push(text(&bytes[2..], true));
        assert_eq!(m, Some(Message::Text("€uro".into())));
        assert_eq!(a.buffered(), 0);
    }

    /// A masked frame as a client sends it.
    fn masked(opcode: OpCode, fin: bool, payload: &[u8]) -> Vec<u8> {
        let key = [0xA1, 0x07, 0x3C, 0xF0];
        let h = FrameHeader {
            fin,
            rsv: 0,
            opcode,
            mask: Some(key),
            payload_len: payload.len() as u64,
        };
        let mut v = h.encode().as_bytes().to_vec();
        let at = v.len();
        v.extend_from_slice(payload);
        crate::mask::apply_mask_naive(&mut v[at..], key, 0);
        v
    }

    fn server() -> Connection {
        Connection::server(Config {
            ping_interval: None,
            ..Config::DEFAULT
        })
        .unwrap()
    }

    /// Feeds `bytes` in pieces of `step`; returns the messages, or the error with those before.
    fn receive_all(
        conn: &mut Connection,
        bytes: &[u8],
        step: usize,
    ) -> Result<Vec<Message>, (Vec<Message>, Error)> {
        let mut asm = MessageAssembler::new();
        let mut out = Vec::new();
        for piece in bytes.chunks(step) {
            let mut piece = piece.to_vec();
            let mut pos = 0;
            while pos < piece.len() {
                match asm.receive(conn, &mut piece[pos..]) {
                    Ok((n, m)) => {
                        pos += n;
                        match m {
                            Some(m) => out.push(m),
                            None => assert_eq!(pos, piece.len()),
                        }
                    }
                    Err(e) => return Err((out, e)),
                }
            }
        }
        Ok(out)
    }

    #[test]
    fn receive_assembles_messages_from_any_pieces() {
        let n = if cfg!(miri) { 150 } else { 700 };
        let big: Vec<u8> = (0..n).map(|i| (i * 31 + 5) as u8).collect();
        let mut bytes = masked(OpCode::Binary, true, &big);
        bytes.extend(masked(OpCode::Text, false, "grü".as_bytes()));
        bytes.extend(masked(OpCode::Ping, true, b"mid"));
        bytes.extend(masked(OpCode::Continuation, false, &[]));
        bytes.extend(masked(OpCode::Continuation, true, "ße €".as_bytes()));
        bytes.extend(masked(OpCode::Binary, true, &[]));
        bytes.extend(masked(OpCode::Close, true, &[0x03, 0xE8, b'o', b'k']));
        let expected = vec![
            Message::Binary(big.clone()),
            Message::Ping(b"mid".to_vec()),
            Message::Text("grüße €".into()),
            Message::Binary(Vec::new()),
            Message::Close(Some((CloseCode::NORMAL, "ok".into()))),
        ];
        let steps: &[usize] = if cfg!(miri) {
            &[1, 13, 4096]
        } else {
            &[1, 2, 3, 7, 13, 64, 701, 4096]
        };
        for &step in steps {
            let mut c = server();
            assert_eq!(
                receive_all(&mut c, &bytes, step),
                Ok(expected.clone()),
                "step {step}"
            );
        }
    }

    #[test]
    fn receive_reports_the_connections_errors() {
        let mut c = server();
        let mut bytes = masked(OpCode::Text, true, b"fine");
        bytes.extend(masked(OpCode::Text, true, &[b'x', 0xFF]));
        let (got, e) = receive_all(&mut c, &bytes, 5).unwrap_err();
        assert_eq!(got, vec![Message::Text("fine".into())]);
        assert_eq!(e, Error::InvalidUtf8);
        // An unmasked frame to a server.
        let mut c = server();
        let (_, e) = receive_all(&mut c, &[0x82, 0x01, 0x00], 3).unwrap_err();
        assert_eq!(e.close_code(), Some(CloseCode::PROTOCOL_ERROR));
    }

    #[test]
    fn receive_reserves_no_more_than_the_limit() {
        // A declared length of 16 MiB with a few bytes of it: the buffer holds at most
        // `RESERVE_MAX` before the bytes arrive.
        let config = Config {
            ping_interval: None,
            limits: crate::Limits {
                max_frame_size: 16 << 20,
                max_message_size: 16 << 20,
                ..crate::Limits::DEFAULT
            },
            ..Config::DEFAULT
        };
        // A frame of exactly `RESERVE_MAX` gets its whole buffer at once; one byte more, and
        // far more, get `RESERVE_MAX`.
        let max = MessageAssembler::RESERVE_MAX as u64;
        for (declared, cap) in [(max, max), (max + 1, max), (16 << 20, max)] {
            let mut c = Connection::server(config).unwrap();
            let h = FrameHeader {
                fin: true,
                rsv: 0,
                opcode: OpCode::Binary,
                mask: Some([1, 2, 3, 4]),
                payload_len: declared,
            };
            let mut bytes = h.encode().as_bytes().to_vec();
            let hl = bytes.len();
            bytes.extend_from_slice(&[0; 10]);
            let mut asm = MessageAssembler::new();
            assert_eq!(asm.receive(&mut c, &mut bytes), Ok((hl + 10, None)));
            assert_eq!(asm.buffered(), 10);
            assert_eq!(asm.buf.capacity() as u64, cap, "declared {declared}");
        }
    }

    #[cfg(all(feature = "deflate", not(miri)))]
    #[test]
    fn receive_inflates_compressed_messages() {
        let params = crate::deflate::negotiate_server(
            ["permessage-deflate"],
            &crate::deflate::DeflateConfig::DEFAULT,
        )
        .unwrap();
        let config = Config {
            ping_interval: None,
            ..Config::DEFAULT
        };
        let mut client = Connection::client(config, 3).unwrap();
        client.set_deflate(params);
        let mut server = Connection::server(config).unwrap();
        server.set_deflate(params);
        let text = "compressible text, compressible text, compressible text. ".repeat(50);
        let mut bytes = Vec::new();
        client
            .encode_message(OpCode::Text, text.as_bytes(), &mut bytes)
            .unwrap();
        client
            .encode_message(OpCode::Binary, &[9; 3], &mut bytes)
            .unwrap();
        assert!(bytes.len() < text.len() / 4, "the text went compressed");
        let got = receive_all(&mut server, &bytes, 17).unwrap();
        assert_eq!(got, vec![Message::Text(text), Message::Binary(vec![9; 3])]);
    }

    #[test]
    fn invalid_text_is_not_made_a_string() {
        let mut a = MessageAssembler::new();
        assert_eq!(a.push(text(&[b'a', 0xFF, b'b'], true)), None);
        // Valid halves of an invalid whole: a lone lead byte at the end.
        assert_eq!(a.push(text(b"ok", false)), None);
        assert_eq!(a.push(text(&[0xE2, 0x82], true)), None);
        // The assembler is usable afterwards.
        assert_eq!(
            a.push(text(b"next", true)),
            Some(Message::Text("next".into()))
        );
    }
}
