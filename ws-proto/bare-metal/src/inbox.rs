//! What one side received, recorded for the program's checks.

/// Largest message the program records.
pub const MSG_CAP: usize = 256;

/// The type of a received data message.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// UTF-8 text.
    Text,
    /// Bytes.
    Binary,
}

/// The last message and control frame one side received.
pub struct Inbox {
    data: [u8; MSG_CAP],
    len: usize,
    kind: Option<Kind>,
    complete: bool,
    /// Data events that made up the last message.
    pub chunks: u32,
    ctrl: [u8; 125],
    ctrl_len: usize,
    /// Pings received.
    pub pings: u32,
    /// Pongs received.
    pub pongs: u32,
    /// The close code received (0: a close frame without a code), once a close frame arrived.
    pub close: Option<u16>,
    /// A message was longer than [`MSG_CAP`].
    pub overflow: bool,
}

impl Inbox {
    /// Nothing received.
    pub const fn new() -> Inbox {
        Inbox {
            data: [0; MSG_CAP],
            len: 0,
            kind: None,
            complete: false,
            chunks: 0,
            ctrl: [0; 125],
            ctrl_len: 0,
            pings: 0,
            pongs: 0,
            close: None,
            overflow: false,
        }
    }

    /// A chunk of a data message.
    pub fn data(&mut self, kind: Kind, bytes: &[u8], message_fin: bool) {
        if self.complete {
            self.clear_message();
        }
        match self.data.get_mut(self.len..self.len + bytes.len()) {
            Some(room) => room.copy_from_slice(bytes),
            None => self.overflow = true,
        }
        self.len = (self.len + bytes.len()).min(MSG_CAP);
        self.kind = Some(kind);
        self.chunks += 1;
        self.complete = message_fin;
    }

    /// A ping with its payload.
    pub fn ping(&mut self, payload: &[u8]) {
        self.pings += 1;
        self.set_ctrl(payload);
    }

    /// A pong with its payload.
    pub fn pong(&mut self, payload: &[u8]) {
        self.pongs += 1;
        self.set_ctrl(payload);
    }

    /// A close frame with its code (0 for none) and reason.
    pub fn close(&mut self, code: u16, reason: &[u8]) {
        self.close = Some(code);
        self.set_ctrl(reason);
    }

    fn set_ctrl(&mut self, bytes: &[u8]) {
        let n = bytes.len().min(self.ctrl.len());
        self.ctrl[..n].copy_from_slice(&bytes[..n]);
        self.ctrl_len = n;
    }

    /// Whether the last message is complete and is `kind` with exactly `bytes`.
    pub fn message_is(&self, kind: Kind, bytes: &[u8]) -> bool {
        self.complete
            && !self.overflow
            && self.kind == Some(kind)
            && &self.data[..self.len] == bytes
    }

    /// Whether a message has started and not ended yet.
    pub fn in_message(&self) -> bool {
        self.kind.is_some() && !self.complete
    }

    /// The payload of the last control frame (ping, pong, or close reason).
    pub fn ctrl(&self) -> &[u8] {
        &self.ctrl[..self.ctrl_len]
    }

    /// Forgets the last message.
    pub fn clear_message(&mut self) {
        self.len = 0;
        self.kind = None;
        self.complete = false;
        self.chunks = 0;
    }
}
