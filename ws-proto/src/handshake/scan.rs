//! Finding the end of an HTTP head in arriving bytes.

use crate::error::{Error, Limit};

/// Finds the end of an HTTP head (`"\r\n\r\n"`) in one pass over arriving bytes.
///
/// Each [`scan`](Self::scan) call examines only the bytes that earlier calls did not; a small
/// state machine remembers how much of the terminator ended the previously scanned bytes, so a
/// terminator split across reads is found without rescanning anything.
#[derive(Debug, Clone)]
pub struct HeadScanner {
    max_bytes: usize,
    /// Number of bytes of the buffer examined so far.
    pos: usize,
    /// How many bytes of `"\r\n\r\n"` the examined bytes end with (0 to 3).
    matched: u8,
    /// The head length, once found.
    found: Option<usize>,
}

impl HeadScanner {
    /// A scanner that fails once a head grows past `max_bytes` without its terminator.
    pub const fn new(max_bytes: usize) -> Self {
        Self {
            max_bytes,
            pos: 0,
            matched: 0,
            found: None,
        }
    }

    /// Scans the bytes of `buf` not seen by earlier calls.
    ///
    /// `buf` is everything received so far: it may grow between calls, but bytes already passed
    /// in must not change. Returns `Ok(Some(head_len))` once the terminator is found (`head_len`
    /// counts the terminator; later calls return the same value until [`reset`](Self::reset)),
    /// `Ok(None)` when more bytes are needed, and
    /// `Err(Error::LimitExceeded(Limit::HeaderBytes))` when more than `max_bytes` bytes arrived
    /// without a terminator within the first `max_bytes`.
    pub fn scan(&mut self, buf: &[u8]) -> Result<Option<usize>, Error> {
        if let Some(head_len) = self.found {
            return Ok(Some(head_len));
        }
        let end = buf.len().min(self.max_bytes);
        if let Some(new) = buf.get(self.pos..end) {
            for (i, &b) in new.iter().enumerate() {
                self.matched = match (b, self.matched) {
                    (b'\r', 2) => 3,
                    (b'\r', _) => 1,
                    (b'\n', 1) => 2,
                    (b'\n', 3) => 4,
                    _ => 0,
                };
                if self.matched == 4 {
                    self.found = Some(self.pos + i + 1);
                    return Ok(self.found);
                }
            }
            self.pos = end;
        }
        if buf.len() > self.max_bytes {
            Err(Error::LimitExceeded(Limit::HeaderBytes))
        } else {
            Ok(None)
        }
    }

    /// Forgets all progress, ready for a new head (the limit is kept).
    pub fn reset(&mut self) {
        *self = Self::new(self.max_bytes);
    }
}
