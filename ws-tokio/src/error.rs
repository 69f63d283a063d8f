//! How a connection ends, or why an operation failed.

use std::fmt;
use std::io;

use ws_proto::{CloseCode, HandshakeError};

/// Which deadline passed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TimeoutKind {
    /// The opening handshake did not finish in time.
    Handshake,
    /// No pong (or anything else) arrived after a keepalive ping: the peer is gone.
    Pong,
    /// The peer did not complete the close handshake in time.
    Close,
    /// Nothing was received for the idle timeout (we closed with 1001).
    Idle,
    /// A write made no progress in time.
    Write,
}

/// An error from a WebSocket operation. Each way a connection can end has its own variant.
#[derive(Debug)]
pub enum Error {
    /// The transport failed.
    Io(io::Error),
    /// The peer broke the protocol (or a limit); we sent a close frame with `sent` (when the
    /// error has a close code) and shut the connection.
    Protocol {
        /// What the peer did.
        error: ws_proto::Error,
        /// The close code we sent.
        sent: Option<CloseCode>,
    },
    /// The transport ended without a close handshake.
    PeerVanished,
    /// A deadline passed.
    Timeout(TimeoutKind),
    /// The connection is closed: nothing more can be sent or received.
    Closed,
    /// The opening handshake failed on our side or the peer's.
    Handshake(HandshakeError),
    /// The server answered the opening handshake with an HTTP status other than 101 (200 for
    /// HTTP/2 extended CONNECT), or a server's callback rejected it with this status.
    Rejected {
        /// The status code.
        status: u16,
    },
    /// A URL that is not `ws://` or `wss://host[:port][/path]`.
    InvalidUrl,
    /// Something the protocol forbids on our side (an oversized control frame, a bad close code).
    Usage(ws_proto::Error),
}

impl Error {
    pub(crate) fn from_proto(e: ws_proto::Error) -> Error {
        use ws_proto::error::TimeoutKind as T;
        match e {
            ws_proto::Error::Timeout(T::Pong) => Error::Timeout(TimeoutKind::Pong),
            ws_proto::Error::Timeout(T::CloseHandshake) => Error::Timeout(TimeoutKind::Close),
            ws_proto::Error::Timeout(T::Idle) => Error::Timeout(TimeoutKind::Idle),
            ws_proto::Error::Closed => Error::Closed,
            ws_proto::Error::Handshake(h) => Error::Handshake(h),
            ws_proto::Error::InvalidUsage(_) | ws_proto::Error::BufferTooSmall => Error::Usage(e),
            _ => Error::Protocol {
                error: e,
                sent: e.close_code(),
            },
        }
    }
}

impl From<io::Error> for Error {
    fn from(e: io::Error) -> Self {
        Error::Io(e)
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::Io(e) => write!(f, "I/O error: {e}"),
            Error::Protocol {
                error,
                sent: Some(c),
            } => write!(f, "{error} (sent close {})", c.0),
            Error::Protocol { error, sent: None } => write!(f, "{error}"),
            Error::PeerVanished => f.write_str("connection ended without a close handshake"),
            Error::Timeout(k) => write!(f, "timeout: {k:?}"),
            Error::Closed => f.write_str("connection closed"),
            Error::Handshake(h) => write!(f, "handshake failed: {h:?}"),
            Error::Rejected { status } => write!(f, "handshake rejected with HTTP {status}"),
            Error::InvalidUrl => f.write_str("invalid WebSocket URL"),
            Error::Usage(e) => write!(f, "{e}"),
        }
    }
}

impl std::error::Error for Error {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Error::Io(e) => Some(e),
            _ => None,
        }
    }
}
