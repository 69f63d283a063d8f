//! Limits on what a peer may make us buffer or process, with safe defaults.

use crate::error::{Error, Usage};

/// The working buffer size: how much received data is handled at once (an adapter reads up to
/// this much per call; [`MessageAssembler`](crate::MessageAssembler) reserves at most this
/// much ahead of the bytes), and the largest buffer kept between messages (a larger one, grown
/// by a large message, is released).
pub const WORKING_BUFFER: usize = 256 << 10;

/// Size and count limits, checked as early as possible (declared lengths at header decode).
///
/// ```
/// let limits = ws_proto::Limits::default().with_max_message_size(1 << 20);
/// assert_eq!(limits.max_frame_size, 1 << 20);
/// assert!(limits.validate().is_ok());
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct Limits {
    /// Largest payload of a single frame, in bytes. Default 16 MiB.
    pub max_frame_size: u64,
    /// Largest total payload of a message (all fragments), in bytes. Default 64 MiB.
    pub max_message_size: u64,
    /// Most frames one fragmented message may span. Default 131 072 (enough for 4 MiB in
    /// 32-byte fragments); bounds the work an endless run of empty fragments can cause.
    pub max_fragments: u32,
    /// Largest opening handshake head, in bytes. Default 8 KiB.
    pub max_header_bytes: usize,
    /// Most header fields in the opening handshake. Default 64.
    pub max_headers: usize,
}

impl Limits {
    /// The defaults, usable in `const` context.
    pub const DEFAULT: Limits = Limits {
        max_frame_size: 16 << 20,
        max_message_size: 64 << 20,
        max_fragments: 131_072,
        max_header_bytes: 8 << 10,
        max_headers: 64,
    };

    /// Checks that the limits make sense: every limit non-zero, and a frame no larger than a message.
    pub fn validate(&self) -> Result<(), Error> {
        let ok = self.max_frame_size > 0
            && self.max_message_size > 0
            && self.max_fragments > 0
            && self.max_header_bytes >= 16
            && self.max_headers > 0
            && self.max_frame_size <= self.max_message_size;
        if ok {
            Ok(())
        } else {
            Err(Error::InvalidUsage(Usage::InvalidConfig))
        }
    }
}

impl Limits {
    /// Sets the largest single frame payload, in bytes.
    pub const fn with_max_frame_size(mut self, bytes: u64) -> Self {
        self.max_frame_size = bytes;
        self
    }

    /// Sets the largest total payload of a message, in bytes; the frame limit is lowered to it
    /// if it was larger.
    pub const fn with_max_message_size(mut self, bytes: u64) -> Self {
        self.max_message_size = bytes;
        if self.max_frame_size > bytes {
            self.max_frame_size = bytes;
        }
        self
    }

    /// Sets the most frames one fragmented message may span.
    pub const fn with_max_fragments(mut self, frames: u32) -> Self {
        self.max_fragments = frames;
        self
    }

    /// Sets the largest opening handshake head, in bytes.
    pub const fn with_max_header_bytes(mut self, bytes: usize) -> Self {
        self.max_header_bytes = bytes;
        self
    }

    /// Sets the most header fields in the opening handshake.
    pub const fn with_max_headers(mut self, headers: usize) -> Self {
        self.max_headers = headers;
        self
    }
}

impl Default for Limits {
    fn default() -> Self {
        Self::DEFAULT
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_valid() {
        assert_eq!(Limits::default().validate(), Ok(()));
    }

    #[test]
    fn nonsense_is_an_error() {
        let bad = [
            Limits {
                max_frame_size: 0,
                ..Limits::DEFAULT
            },
            Limits {
                max_message_size: 0,
                max_frame_size: 0,
                ..Limits::DEFAULT
            },
            Limits {
                max_fragments: 0,
                ..Limits::DEFAULT
            },
            Limits {
                max_headers: 0,
                ..Limits::DEFAULT
            },
            Limits {
                max_header_bytes: 0,
                ..Limits::DEFAULT
            },
            Limits {
                max_frame_size: 2,
                max_message_size: 1,
                ..Limits::DEFAULT
            },
        ];
        for l in bad {
            assert_eq!(
                l.validate(),
                Err(Error::InvalidUsage(Usage::InvalidConfig)),
                "{l:?}"
            );
        }
    }
}
