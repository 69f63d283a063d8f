//! Frame headers (RFC 6455 section 5.2): decode, encode, opcodes, lengths, RSV bits.

use crate::error::{Error, ProtocolError};

/// Longest possible frame header: 2 bytes, 8 bytes of extended length, 4 bytes of mask.
pub const MAX_HEADER_LEN: usize = 14;
/// Largest control frame payload.
pub const MAX_CONTROL_PAYLOAD: usize = 125;

/// RSV1 bit, as it stands in [`FrameHeader::rsv`] (used by permessage-deflate).
pub const RSV1: u8 = 0b100;
/// RSV2 bit, as it stands in [`FrameHeader::rsv`].
pub const RSV2: u8 = 0b010;
/// RSV3 bit, as it stands in [`FrameHeader::rsv`].
pub const RSV3: u8 = 0b001;

/// A frame opcode.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[repr(u8)]
pub enum OpCode {
    /// Continuation of a fragmented message.
    Continuation = 0x0,
    /// First frame of a text message.
    Text = 0x1,
    /// First frame of a binary message.
    Binary = 0x2,
    /// Close.
    Close = 0x8,
    /// Ping.
    Ping = 0x9,
    /// Pong.
    Pong = 0xA,
}

impl OpCode {
    /// The opcode for a 4-bit value, or `None` for the reserved values 3-7 and 11-15.
    pub const fn from_u8(v: u8) -> Option<OpCode> {
        Some(match v {
            0x0 => OpCode::Continuation,
            0x1 => OpCode::Text,
            0x2 => OpCode::Binary,
            0x8 => OpCode::Close,
            0x9 => OpCode::Ping,
            0xA => OpCode::Pong,
            _ => return None,
        })
    }

    /// Close, ping and pong are control opcodes.
    pub const fn is_control(self) -> bool {
        (self as u8) & 0x8 != 0
    }
}

/// A decoded or to-be-encoded frame header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FrameHeader {
    /// FIN: this is the final frame of a message.
    pub fin: bool,
    /// The RSV1-3 bits, RSV1 highest ([`RSV1`], [`RSV2`], [`RSV3`]).
    pub rsv: u8,
    /// The opcode.
    pub opcode: OpCode,
    /// The masking key, present on every client-to-server frame.
    pub mask: Option<[u8; 4]>,
    /// The payload length.
    pub payload_len: u64,
}

/// An encoded header on the stack, ready to be written before its payload.
#[derive(Clone, Copy)]
pub struct HeaderBuf {
    bytes: [u8; MAX_HEADER_LEN],
    len: u8,
}

impl HeaderBuf {
    /// The encoded bytes.
    pub fn as_bytes(&self) -> &[u8] {
        &self.bytes[..self.len as usize]
    }
}

impl core::fmt::Debug for HeaderBuf {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_tuple("HeaderBuf").field(&self.as_bytes()).finish()
    }
}

impl AsRef<[u8]> for HeaderBuf {
    fn as_ref(&self) -> &[u8] {
        self.as_bytes()
    }
}

impl FrameHeader {
    /// The number of bytes [`encode`](Self::encode) writes.
    pub const fn encoded_len(&self) -> usize {
        let ext = if self.payload_len < 126 {
            0
        } else if self.payload_len <= 0xFFFF {
            2
        } else {
            8
        };
        2 + ext + if self.mask.is_some() { 4 } else { 0 }
    }

    /// Encodes the header (minimal length form) onto the stack.
    pub fn encode(&self) -> HeaderBuf {
        let mut b = [0u8; MAX_HEADER_LEN];
        b[0] = ((self.fin as u8) << 7) | ((self.rsv & 0b111) << 4) | self.opcode as u8;
        let mask_bit = if self.mask.is_some() { 0x80 } else { 0 };
        let mut n = 2;
        if self.payload_len < 126 {
            b[1] = mask_bit | self.payload_len as u8;
        } else if self.payload_len <= 0xFFFF {
            b[1] = mask_bit | 126;
            b[2..4].copy_from_slice(&(self.payload_len as u16).to_be_bytes());
            n = 4;
        } else {
            b[1] = mask_bit | 127;
            b[2..10].copy_from_slice(&self.payload_len.to_be_bytes());
            n = 10;
        }
        if let Some(key) = self.mask {
            b[n..n + 4].copy_from_slice(&key);
            n += 4;
        }
        HeaderBuf {
            bytes: b,
            len: n as u8,
        }
    }

    /// Decodes a header from the start of `buf`.
    ///
    /// Returns `Ok(None)` when `buf` holds only part of a header, otherwise the header and its
    /// encoded length. Checks the rules that need no connection state: reserved opcodes,
    /// control frames with FIN and at most 125 bytes, a 64-bit length with its top bit clear,
    /// and lengths in their minimal form. RSV bits and masking are checked by the connection.
    pub fn decode(buf: &[u8]) -> Result<Option<(FrameHeader, usize)>, Error> {
        let [b0, b1, rest @ ..] = buf else {
            return Ok(None);
        };
        let opcode = OpCode::from_u8(b0 & 0x0F).ok_or(ProtocolError::ReservedOpcode)?;
        let fin = b0 & 0x80 != 0;
        let masked = b1 & 0x80 != 0;
        let len7 = b1 & 0x7F;
        if opcode.is_control() {
            if !fin {
                return Err(ProtocolError::FragmentedControl.into());
            }
            if len7 > 125 {
                return Err(ProtocolError::ControlTooLong.into());
            }
        }
        let ext = match len7 {
            126 => 2,
            127 => 8,
            _ => 0,
        };
        let need = ext + if masked { 4 } else { 0 };
        if rest.len() < need {
            return Ok(None);
        }
        let payload_len = match len7 {
            126 => {
                let l = u16::from_be_bytes([rest[0], rest[1]]) as u64;
                if l < 126 {
                    return Err(ProtocolError::NonMinimalLength.into());
                }
                l
            }
            127 => {
                let mut a = [0u8; 8];
                a.copy_from_slice(&rest[..8]);
                let l = u64::from_be_bytes(a);
                if l >> 63 != 0 {
                    return Err(ProtocolError::LengthOverflow.into());
                }
                if l <= 0xFFFF {
                    return Err(ProtocolError::NonMinimalLength.into());
                }
                l
            }
            l => l as u64,
        };
        let mask = if masked {
            let mut k = [0u8; 4];
            k.copy_from_slice(&rest[ext..ext + 4]);
            Some(k)
        } else {
            None
        };
        let header = FrameHeader {
            fin,
            rsv: (b0 >> 4) & 0b111,
            opcode,
            mask,
            payload_len,
        };
        Ok(Some((header, 2 + need)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn hdr(opcode: OpCode, fin: bool, len: u64, mask: Option<[u8; 4]>) -> FrameHeader {
        FrameHeader {
            fin,
            rsv: 0,
            opcode,
            mask,
            payload_len: len,
        }
    }

    #[test]
    fn opcodes() {
        for v in 0..16u8 {
            let op = OpCode::from_u8(v);
            assert_eq!(op.is_none(), matches!(v, 3..=7 | 11..=15), "{v}");
            if let Some(op) = op {
                assert_eq!(op as u8, v);
                assert_eq!(op.is_control(), v >= 8);
            }
        }
    }

    #[test]
    fn length_forms() {
        for (len, hlen) in [
            (0, 2),
            (125, 2),
            (126, 4),
            (0xFFFF, 4),
            (0x10000, 10),
            (1 << 40, 10),
        ] {
            let h = hdr(OpCode::Binary, true, len, None);
            let e = h.encode();
            assert_eq!(e.as_bytes().len(), hlen, "{len}");
            assert_eq!(h.encoded_len(), hlen);
            assert_eq!(FrameHeader::decode(e.as_bytes()), Ok(Some((h, hlen))));
            let hm = hdr(OpCode::Binary, true, len, Some([1, 2, 3, 4]));
            let e = hm.encode();
            assert_eq!(e.as_bytes().len(), hlen + 4);
            assert_eq!(FrameHeader::decode(e.as_bytes()), Ok(Some((hm, hlen + 4))));
        }
    }

    #[test]
    fn rfc_examples() {
        // RFC 6455 5.7: single-frame unmasked text "Hello".
        assert_eq!(
            FrameHeader::decode(&[0x81, 0x05, 0x48]),
            Ok(Some((hdr(OpCode::Text, true, 5, None), 2)))
        );
        // Masked "Hello".
        let (h, n) = FrameHeader::decode(&[0x81, 0x85, 0x37, 0xfa, 0x21, 0x3d])
            .unwrap()
            .unwrap();
        assert_eq!((h.mask, n), (Some([0x37, 0xfa, 0x21, 0x3d]), 6));
        // 256 bytes binary, 64 KiB binary.
        assert_eq!(
            FrameHeader::decode(&[0x82, 0x7E, 0x01, 0x00])
                .unwrap()
                .unwrap()
                .0
                .payload_len,
            256
        );
        assert_eq!(
            FrameHeader::decode(&[0x82, 0x7F, 0, 0, 0, 0, 0, 1, 0, 0])
                .unwrap()
                .unwrap()
                .0
                .payload_len,
            65536
        );
    }

    #[test]
    fn violations() {
        let p = |e| Err(Error::Protocol(e));
        for op in [3u8, 4, 5, 6, 7, 11, 12, 13, 14, 15] {
            assert_eq!(
                FrameHeader::decode(&[0x80 | op, 0]),
                p(ProtocolError::ReservedOpcode)
            );
        }
        assert_eq!(
            FrameHeader::decode(&[0x09, 0]),
            p(ProtocolError::FragmentedControl)
        );
        assert_eq!(
            FrameHeader::decode(&[0x89, 126]),
            p(ProtocolError::ControlTooLong)
        );
        assert_eq!(
            FrameHeader::decode(&[0x88, 127]),
            p(ProtocolError::ControlTooLong)
        );
        assert_eq!(
            FrameHeader::decode(&[0x82, 127, 0x80, 0, 0, 0, 0, 0, 0, 0]),
            p(ProtocolError::LengthOverflow)
        );
        assert_eq!(
            FrameHeader::decode(&[0x82, 126, 0, 125]),
            p(ProtocolError::NonMinimalLength)
        );
        assert_eq!(
            FrameHeader::decode(&[0x82, 127, 0, 0, 0, 0, 0, 0, 0xFF, 0xFF]),
            p(ProtocolError::NonMinimalLength)
        );
        for e in [ProtocolError::ReservedOpcode, ProtocolError::LengthOverflow] {
            assert_eq!(
                Error::Protocol(e).close_code(),
                Some(crate::CloseCode::PROTOCOL_ERROR)
            );
        }
    }

    #[test]
    fn partial_headers_need_more() {
        let h = hdr(OpCode::Binary, false, 70000, Some([9, 8, 7, 6]));
        let e = h.encode();
        for cut in 0..e.as_bytes().len() {
            assert_eq!(FrameHeader::decode(&e.as_bytes()[..cut]), Ok(None), "{cut}");
        }
    }

    fn any_header() -> impl Strategy<Value = FrameHeader> {
        (
            any::<bool>(),
            0u8..8,
            prop::sample::select(&[0u8, 1, 2, 8, 9, 10][..]),
            prop::option::of(any::<[u8; 4]>()),
            prop_oneof![0u64..126, 126u64..=0xFFFF, 0x10000u64..(1 << 63)],
        )
            .prop_map(|(fin, rsv, op, mask, len)| {
                let opcode = OpCode::from_u8(op).unwrap();
                let (fin, len) = if opcode.is_control() {
                    (true, len % 126)
                } else {
                    (fin, len)
                };
                FrameHeader {
                    fin,
                    rsv,
                    opcode,
                    mask,
                    payload_len: len,
                }
            })
    }

    proptest! {
        #[test]
        fn roundtrip(h in any_header(), tail in prop::collection::vec(any::<u8>(), 0..4)) {
            let e = h.encode();
            let mut bytes = e.as_bytes().to_vec();
            prop_assert_eq!(bytes.len(), h.encoded_len());
            bytes.extend_from_slice(&tail);
            prop_assert_eq!(FrameHeader::decode(&bytes), Ok(Some((h, e.as_bytes().len()))));
        }

        #[test]
        fn decode_encode_gives_back_bytes(bytes in prop::collection::vec(any::<u8>(), 0..16)) {
            if let Ok(Some((h, n))) = FrameHeader::decode(&bytes) {
                let e = h.encode();
                prop_assert_eq!(e.as_bytes(), &bytes[..n]);
            }
        }
    }
}
