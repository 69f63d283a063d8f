//! An in-memory byte pipe: what one side writes, the other reads (a fixed buffer, no heap).

/// Bytes a pipe holds: enough for a handshake head or a few frames.
pub const PIPE_CAP: usize = 512;

/// Bytes written and not read yet.
pub struct Pipe {
    buf: [u8; PIPE_CAP],
    len: usize,
}

impl Pipe {
    /// An empty pipe.
    pub const fn new() -> Pipe {
        Pipe {
            buf: [0; PIPE_CAP],
            len: 0,
        }
    }

    /// The free room after the bytes held, to write into before [`commit`](Self::commit).
    pub fn spare(&mut self) -> &mut [u8] {
        &mut self.buf[self.len..]
    }

    /// Takes `n` bytes written into [`spare`](Self::spare).
    pub fn commit(&mut self, n: usize) {
        self.len = (self.len + n).min(PIPE_CAP);
    }

    /// Appends `bytes`; false (and nothing appended) when they do not fit.
    pub fn push(&mut self, bytes: &[u8]) -> bool {
        match self.buf.get_mut(self.len..self.len + bytes.len()) {
            Some(room) => {
                room.copy_from_slice(bytes);
                self.len += bytes.len();
                true
            }
            None => false,
        }
    }

    /// The bytes held.
    #[cfg_attr(not(feature = "handshake"), allow(dead_code))]
    pub fn bytes(&self) -> &[u8] {
        &self.buf[..self.len]
    }

    /// The bytes held, for a reader that works in place (ws-proto unmasks in the input).
    pub fn bytes_mut(&mut self) -> &mut [u8] {
        &mut self.buf[..self.len]
    }

    /// Number of bytes held.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Drops the first `n` bytes held (they were read) and moves the rest to the front.
    pub fn consume(&mut self, n: usize) {
        let n = n.min(self.len);
        self.buf.copy_within(n..self.len, 0);
        self.len -= n;
    }
}
