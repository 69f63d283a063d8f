//! Close codes (RFC 6455 section 7.4) and close frame payloads.

use crate::error::{Error, ProtocolError, Usage};

/// A close status code.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct CloseCode(pub u16);

impl CloseCode {
    /// 1000: normal closure.
    pub const NORMAL: CloseCode = CloseCode(1000);
    /// 1001: the endpoint is going away.
    pub const GOING_AWAY: CloseCode = CloseCode(1001);
    /// 1002: protocol error.
    pub const PROTOCOL_ERROR: CloseCode = CloseCode(1002);
    /// 1003: a data type the endpoint cannot accept.
    pub const UNSUPPORTED_DATA: CloseCode = CloseCode(1003);
    /// 1005: no status code was present (never sent on the wire).
    pub const NO_STATUS: CloseCode = CloseCode(1005);
    /// 1006: closed abnormally, without a close frame (never sent on the wire).
    pub const ABNORMAL: CloseCode = CloseCode(1006);
    /// 1007: data inconsistent with the message type (invalid UTF-8).
    pub const INVALID_PAYLOAD: CloseCode = CloseCode(1007);
    /// 1008: policy violation.
    pub const POLICY_VIOLATION: CloseCode = CloseCode(1008);
    /// 1009: message too big.
    pub const MESSAGE_TOO_BIG: CloseCode = CloseCode(1009);
    /// 1010: the client expected an extension the server did not negotiate.
    pub const MANDATORY_EXTENSION: CloseCode = CloseCode(1010);
    /// 1011: internal server error.
    pub const INTERNAL_ERROR: CloseCode = CloseCode(1011);
    /// 1012: service restart.
    pub const SERVICE_RESTART: CloseCode = CloseCode(1012);
    /// 1013: try again later.
    pub const TRY_AGAIN_LATER: CloseCode = CloseCode(1013);
    /// 1014: bad gateway.
    pub const BAD_GATEWAY: CloseCode = CloseCode(1014);
    /// 1015: TLS handshake failure (never sent on the wire).
    pub const TLS_HANDSHAKE: CloseCode = CloseCode(1015);

    /// Whether this code may appear in a close frame on the wire: 1000-1003, 1007-1014 and
    /// 3000-4999.
    pub const fn is_allowed_on_wire(self) -> bool {
        matches!(self.0, 1000..=1003 | 1007..=1014 | 3000..=4999)
    }
}

impl From<u16> for CloseCode {
    fn from(v: u16) -> Self {
        CloseCode(v)
    }
}

/// The code as a number, as axum's `u16` close codes print.
impl core::fmt::Display for CloseCode {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        core::fmt::Display::fmt(&self.0, f)
    }
}

impl From<CloseCode> for u16 {
    fn from(c: CloseCode) -> Self {
        c.0
    }
}

/// Largest close reason in bytes (125 minus the two-byte code).
pub const MAX_REASON_LEN: usize = 123;

/// Parses a received close payload: empty, or a valid code followed by a UTF-8 reason.
///
/// A one-byte payload or a code not allowed on the wire is a protocol error (1002); a reason that
/// is not valid UTF-8 is [`Error::InvalidUtf8`] (1007).
pub fn parse_close_payload(payload: &[u8]) -> Result<(Option<CloseCode>, &str), Error> {
    match payload {
        [] => Ok((None, "")),
        [_] => Err(ProtocolError::CloseTooShort.into()),
        [hi, lo, reason @ ..] => {
            let code = CloseCode(u16::from_be_bytes([*hi, *lo]));
            if !code.is_allowed_on_wire() {
                return Err(ProtocolError::InvalidCloseCode.into());
            }
            let reason = crate::utf8::validate(reason).map_err(|_| Error::InvalidUtf8)?;
            Ok((Some(code), reason))
        }
    }
}

/// Writes a close payload (code then reason) into `out`, returning its length.
///
/// `None` writes an empty payload. The code must be allowed on the wire and the reason at most
/// [`MAX_REASON_LEN`] bytes.
pub fn encode_close_payload(
    code: Option<CloseCode>,
    reason: &str,
    out: &mut [u8],
) -> Result<usize, Error> {
    let Some(code) = code else {
        return if reason.is_empty() {
            Ok(0)
        } else {
            Err(Error::InvalidUsage(Usage::InvalidCloseCode))
        };
    };
    if !code.is_allowed_on_wire() {
        return Err(Error::InvalidUsage(Usage::InvalidCloseCode));
    }
    if reason.len() > MAX_REASON_LEN {
        return Err(Error::InvalidUsage(Usage::CloseReasonTooLong));
    }
    let n = 2 + reason.len();
    let out = out.get_mut(..n).ok_or(Error::BufferTooSmall)?;
    out[..2].copy_from_slice(&code.0.to_be_bytes());
    out[2..].copy_from_slice(reason.as_bytes());
    Ok(n)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wire_codes() {
        for c in 0..=u16::MAX {
            let allowed = matches!(c, 1000..=1003 | 1007..=1014 | 3000..=4999);
            assert_eq!(CloseCode(c).is_allowed_on_wire(), allowed, "{c}");
        }
        for c in [1012, 1013, 1014] {
            assert!(CloseCode(c).is_allowed_on_wire());
        }
        for c in [0, 999, 1004, 1005, 1006, 1015, 1016, 2999, 5000, 65535] {
            assert!(!CloseCode(c).is_allowed_on_wire());
        }
    }

    #[test]
    fn parse_payloads() {
        assert_eq!(parse_close_payload(&[]), Ok((None, "")));
        assert_eq!(
            parse_close_payload(&[0x03]),
            Err(Error::Protocol(ProtocolError::CloseTooShort))
        );
        assert_eq!(
            parse_close_payload(&[0x03, 0xe8, b'o', b'k']),
            Ok((Some(CloseCode::NORMAL), "ok"))
        );
        assert_eq!(
            parse_close_payload(&[0x03, 0xed]),
            Err(Error::Protocol(ProtocolError::InvalidCloseCode))
        );
        assert_eq!(
            parse_close_payload(&[0x03, 0xe8, 0xff]),
            Err(Error::InvalidUtf8)
        );
        let e = parse_close_payload(&[0x03, 0xe8, 0xce]).unwrap_err();
        assert_eq!(e.close_code(), Some(CloseCode::INVALID_PAYLOAD));
        let e = parse_close_payload(&[0x00, 0x00]).unwrap_err();
        assert_eq!(e.close_code(), Some(CloseCode::PROTOCOL_ERROR));
    }

    #[test]
    fn encode_payloads() {
        let mut out = [0u8; 125];
        assert_eq!(encode_close_payload(None, "", &mut out), Ok(0));
        assert!(encode_close_payload(None, "x", &mut out).is_err());
        let n = encode_close_payload(Some(CloseCode(4000)), "bye", &mut out).unwrap();
        assert_eq!(&out[..n], &[0x0f, 0xa0, b'b', b'y', b'e']);
        assert_eq!(
            encode_close_payload(Some(CloseCode(1005)), "", &mut out),
            Err(Error::InvalidUsage(Usage::InvalidCloseCode))
        );
        let long = "a".repeat(MAX_REASON_LEN);
        assert_eq!(
            encode_close_payload(Some(CloseCode::NORMAL), &long, &mut out),
            Ok(125)
        );
        let longer = "a".repeat(MAX_REASON_LEN + 1);
        assert_eq!(
            encode_close_payload(Some(CloseCode::NORMAL), &longer, &mut out),
            Err(Error::InvalidUsage(Usage::CloseReasonTooLong))
        );
        assert_eq!(
            encode_close_payload(Some(CloseCode::NORMAL), "ab", &mut out[..3]),
            Err(Error::BufferTooSmall)
        );
    }
}
