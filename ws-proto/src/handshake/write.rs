//! Writing heads into caller buffers, and the checks on caller-supplied header fields.

use super::fields::is_token;
use super::hs;
use crate::error::{Error, HandshakeError};

/// A header value that can be written without changing the message structure.
pub(super) fn is_safe_value(value: &[u8]) -> bool {
    !value.iter().any(|&b| matches!(b, b'\r' | b'\n' | 0))
}

/// Checks caller-supplied header fields: token names and values without CR, LF or NUL.
pub(super) fn check_headers(headers: &[(&str, &[u8])]) -> Result<(), Error> {
    if headers
        .iter()
        .all(|(name, value)| is_token(name.as_bytes()) && is_safe_value(value))
    {
        Ok(())
    } else {
        Err(hs(HandshakeError::MalformedHttp))
    }
}

/// Checks what both opening heads end with: the `Sec-WebSocket-Extensions` value and the
/// caller's further header fields (`MalformedHttp`).
pub(super) fn check_tail(
    extensions: Option<&str>,
    extra_headers: &[(&str, &[u8])],
) -> Result<(), Error> {
    if extensions.is_some_and(|e| !is_safe_value(e.as_bytes())) {
        return Err(hs(HandshakeError::MalformedHttp));
    }
    check_headers(extra_headers)
}

/// Appends bytes to a caller buffer, failing with `BufferTooSmall` instead of overrunning it.
///
/// Shared by the handshake and by permessage-deflate's parameter writing.
pub(crate) struct Writer<'a> {
    out: &'a mut [u8],
    len: usize,
}

impl<'a> Writer<'a> {
    /// A writer at the start of `out`.
    pub(crate) fn new(out: &'a mut [u8]) -> Self {
        Self { out, len: 0 }
    }

    /// The number of bytes written.
    pub(crate) fn finish(self) -> usize {
        self.len
    }

    /// Appends `bytes`.
    pub(crate) fn put(&mut self, bytes: &[u8]) -> Result<(), Error> {
        let end = self
            .len
            .checked_add(bytes.len())
            .ok_or(Error::BufferTooSmall)?;
        self.out
            .get_mut(self.len..end)
            .ok_or(Error::BufferTooSmall)?
            .copy_from_slice(bytes);
        self.len = end;
        Ok(())
    }

    /// Appends a header line: `name: value` and CRLF.
    pub(super) fn header(&mut self, name: &[u8], value: &[u8]) -> Result<(), Error> {
        self.put(name)?;
        self.put(b": ")?;
        self.put(value)?;
        self.put(b"\r\n")
    }

    /// Appends `Upgrade: websocket` and `Connection: Upgrade`.
    pub(super) fn upgrade(&mut self) -> Result<(), Error> {
        self.header(b"Upgrade", b"websocket")?;
        self.header(b"Connection", b"Upgrade")
    }

    /// Ends an opening head: `Sec-WebSocket-Extensions` (unless `None` or empty), the further
    /// header fields in order, and the blank line. Both were checked by [`check_tail`].
    pub(super) fn tail(
        &mut self,
        extensions: Option<&str>,
        extra_headers: &[(&str, &[u8])],
    ) -> Result<(), Error> {
        if let Some(extensions) = extensions.filter(|e| !e.is_empty()) {
            self.header(b"Sec-WebSocket-Extensions", extensions.as_bytes())?;
        }
        for (name, value) in extra_headers {
            self.header(name.as_bytes(), value)?;
        }
        self.put(b"\r\n")
    }

    /// Appends `n` in decimal.
    pub(crate) fn decimal(&mut self, mut n: usize) -> Result<(), Error> {
        let mut digits = [0u8; 20];
        let mut start = digits.len();
        for slot in digits.iter_mut().rev() {
            *slot = b'0' + (n % 10) as u8;
            n /= 10;
            start -= 1;
            if n == 0 {
                break;
            }
        }
        self.put(digits.get(start..).unwrap_or_default())
    }
}
