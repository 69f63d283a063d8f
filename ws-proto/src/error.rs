//! Classified errors; every protocol error maps to the close code it requires.

use core::fmt;

use crate::close::CloseCode;

/// What went wrong on a connection or in a handshake.
///
/// Small (a few bytes) and `Copy`, so it can be returned on the hot path.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Error {
    /// The peer broke RFC 6455; the connection is failed with close code 1002.
    Protocol(ProtocolError),
    /// A text message or close reason was not valid UTF-8 (close code 1007).
    InvalidUtf8,
    /// A configured limit was exceeded (close code 1009).
    LimitExceeded(Limit),
    /// The connection is closing or closed; nothing more may be sent or received.
    Closed,
    /// The application tried something the protocol forbids on its own side
    /// (for example a control frame over 125 bytes, or a continuation with no message started).
    InvalidUsage(Usage),
    /// The opening handshake failed.
    Handshake(HandshakeError),
    /// A caller-provided output buffer is too small for what must be written.
    BufferTooSmall,
    /// A keepalive pong did not arrive in time (close code 1011 is not sent: the peer is gone).
    Timeout(TimeoutKind),
}

/// A violation of RFC 6455 by the peer (close code 1002).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProtocolError {
    /// An RSV bit was set that no negotiated extension defines.
    ReservedBits,
    /// An opcode from the reserved ranges (3-7, 11-15).
    ReservedOpcode,
    /// A control frame without FIN.
    FragmentedControl,
    /// A control frame with a payload over 125 bytes.
    ControlTooLong,
    /// A 64-bit length with its most significant bit set.
    LengthOverflow,
    /// A 16- or 64-bit length used where a shorter form fits (RFC 6455 section 5.2: the
    /// minimal number of bytes MUST be used).
    NonMinimalLength,
    /// A client sent an unmasked frame to a server.
    UnmaskedFrame,
    /// A server sent a masked frame to a client.
    MaskedFrame,
    /// A continuation frame arrived with no fragmented message started.
    UnexpectedContinuation,
    /// A new text or binary frame arrived inside a fragmented message.
    ExpectedContinuation,
    /// A close frame with a one-byte payload.
    CloseTooShort,
    /// A close code that may not appear on the wire.
    InvalidCloseCode,
    /// A frame arrived after the peer's close frame.
    DataAfterClose,
    /// RSV1 on a compressed connection set on a control or continuation frame.
    CompressedControlOrContinuation,
    /// Compressed data that does not inflate.
    BadCompressedData,
}

/// Which limit was exceeded (close code 1009).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Limit {
    /// A single frame's declared payload length.
    FrameSize,
    /// A message's total payload length (declared lengths summed across fragments).
    MessageSize,
    /// The number of frames in one fragmented message.
    Fragments,
    /// The size of the handshake head.
    HeaderBytes,
    /// The number of handshake header fields.
    HeaderCount,
}

/// Something the application asked for that RFC 6455 does not allow.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Usage {
    /// Control frame payloads are at most 125 bytes.
    ControlTooLong,
    /// A close reason must fit in 123 bytes.
    CloseReasonTooLong,
    /// The close code may not be sent.
    InvalidCloseCode,
    /// A continuation frame with no fragmented message in progress.
    NoMessageStarted,
    /// A new message while a fragmented one is still unfinished.
    MessageInProgress,
    /// A configuration value that makes no sense (for example a zero limit).
    InvalidConfig,
}

/// Which deadline passed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TimeoutKind {
    /// No pong within `pong_timeout` after a keepalive ping.
    Pong,
    /// The peer did not answer our close frame in time.
    CloseHandshake,
    /// Nothing was received for `idle_timeout`.
    Idle,
}

/// Why an opening handshake failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HandshakeError {
    /// The bytes are not a valid HTTP/1.1 message head.
    MalformedHttp,
    /// Request method other than GET.
    MethodNotGet,
    /// HTTP version other than 1.1.
    HttpVersion,
    /// No `Host` header.
    MissingHost,
    /// `Upgrade: websocket` missing.
    MissingUpgrade,
    /// `Connection: upgrade` missing.
    MissingConnectionUpgrade,
    /// `Sec-WebSocket-Version` missing or not 13 (answer 426).
    UnsupportedVersion,
    /// `Sec-WebSocket-Key` missing or not 16 bytes of base64.
    InvalidKey,
    /// A header appears twice where only one is allowed.
    DuplicateHeader,
    /// The server answered with a status other than 101.
    UnexpectedStatus(u16),
    /// `Sec-WebSocket-Accept` missing or wrong.
    InvalidAccept,
    /// The server chose a subprotocol that was not offered.
    UnofferedProtocol,
    /// The server chose an extension that was not offered, or with parameters not allowed.
    UnofferedExtension,
    /// An extension header could not be parsed or negotiated.
    InvalidExtension,
    /// An HTTP/2 (RFC 8441) request whose method is not CONNECT.
    MethodNotConnect,
    /// An HTTP/2 CONNECT request without the `:protocol` pseudo-header field (a plain tunnel
    /// request, not a WebSocket).
    MissingProtocol,
    /// An HTTP/2 extended CONNECT request whose `:protocol` is not `websocket`.
    UnsupportedProtocol,
}

impl Error {
    /// The close code to send to the peer when this error fails the connection, if any.
    pub fn close_code(&self) -> Option<CloseCode> {
        match self {
            Error::Protocol(_) => Some(CloseCode::PROTOCOL_ERROR),
            Error::InvalidUtf8 => Some(CloseCode::INVALID_PAYLOAD),
            Error::LimitExceeded(Limit::HeaderBytes | Limit::HeaderCount) => None,
            Error::LimitExceeded(_) => Some(CloseCode::MESSAGE_TOO_BIG),
            Error::Timeout(TimeoutKind::Idle) => Some(CloseCode::GOING_AWAY),
            _ => None,
        }
    }
}

impl From<ProtocolError> for Error {
    fn from(e: ProtocolError) -> Self {
        Error::Protocol(e)
    }
}

impl From<HandshakeError> for Error {
    fn from(e: HandshakeError) -> Self {
        Error::Handshake(e)
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::Protocol(p) => write!(f, "protocol error: {p:?}"),
            Error::InvalidUtf8 => f.write_str("invalid UTF-8 in text message or close reason"),
            Error::LimitExceeded(l) => write!(f, "limit exceeded: {l:?}"),
            Error::Closed => f.write_str("connection closed"),
            Error::InvalidUsage(u) => write!(f, "invalid usage: {u:?}"),
            Error::Handshake(h) => write!(f, "handshake failed: {h:?}"),
            Error::BufferTooSmall => f.write_str("output buffer too small"),
            Error::Timeout(t) => write!(f, "timeout: {t:?}"),
        }
    }
}

impl core::error::Error for Error {}
