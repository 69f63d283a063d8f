//! Classified errors; every protocol error maps to the close code it requires.

use core::fmt;

use crate::close::CloseCode;

/// What went wrong on a connection or in a handshake.
///
/// Small (a few bytes) and `Copy`, so it can be returned on the hot path.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Error {
    /// The peer broke RFC 6455; the connection is failed with close code 1002.
    Protocol(ProtocolError),
    /// A text message or close reason was not valid UTF-8 (close code 1007).
    InvalidUtf8,
    /// A configured limit was exceeded (close code 1009; 431 in a handshake).
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
    /// A deadline passed (see [`TimeoutKind`] for which, and what was sent).
    Timeout(TimeoutKind),
    /// The transport ended (EOF) without a close handshake.
    PeerVanished,
    /// The peer sent faster than the rate limits allow, with
    /// [`OverLimit::Close`](crate::rate::OverLimit::Close) (close code 1008).
    RateLimited,
}

/// A violation of RFC 6455 by the peer (close code 1002).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
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
    /// RSV1 on a compressed connection set on a control or continuation frame.
    CompressedControlOrContinuation,
    /// Compressed data that does not inflate.
    BadCompressedData,
}

/// Which limit was exceeded (close code 1009).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
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
#[non_exhaustive]
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
    /// Data frames go through the [`Sender`](crate::Sender) taken from this connection.
    SenderTaken,
    /// Only text and binary messages can be prepared.
    NotData,
}

/// Which deadline passed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum TimeoutKind {
    /// The opening handshake did not finish in time.
    Handshake,
    /// Nothing arrived within `pong_timeout` after a keepalive ping: the peer is gone (no close
    /// frame is sent).
    Pong,
    /// The peer did not answer our close frame in time.
    Close,
    /// Nothing was received for `idle_timeout` (the connection closes with 1001).
    Idle,
    /// A message took longer than `message_timeout` to arrive (the connection closes with
    /// 1008).
    Message,
    /// A write made no progress in time.
    Write,
}

/// Why an opening handshake failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
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
            Error::Timeout(TimeoutKind::Message) | Error::RateLimited => {
                Some(CloseCode::POLICY_VIOLATION)
            }
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
            Error::Protocol(_) => f.write_str("the peer broke the protocol"),
            Error::InvalidUtf8 => f.write_str("invalid UTF-8 in a text message or close reason"),
            Error::LimitExceeded(l) => write!(f, "{l} exceeds its limit"),
            Error::Closed => f.write_str("the connection is closed"),
            Error::InvalidUsage(u) => write!(f, "not allowed: {u}"),
            Error::Handshake(_) => f.write_str("the opening handshake failed"),
            Error::BufferTooSmall => f.write_str("output buffer too small"),
            Error::Timeout(t) => write!(f, "timed out: {t}"),
            Error::PeerVanished => f.write_str("the peer ended the connection without closing it"),
            Error::RateLimited => f.write_str("the peer sent faster than the rate limits allow"),
        }
    }
}

impl fmt::Display for ProtocolError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            ProtocolError::ReservedBits => "reserved bits set without an extension for them",
            ProtocolError::ReservedOpcode => "reserved opcode",
            ProtocolError::FragmentedControl => "fragmented control frame",
            ProtocolError::ControlTooLong => "control frame longer than 125 bytes",
            ProtocolError::LengthOverflow => "64-bit payload length with its top bit set",
            ProtocolError::NonMinimalLength => "payload length not in its shortest form",
            ProtocolError::UnmaskedFrame => "unmasked frame from a client",
            ProtocolError::MaskedFrame => "masked frame from a server",
            ProtocolError::UnexpectedContinuation => "continuation frame with no message started",
            ProtocolError::ExpectedContinuation => "new message inside a fragmented one",
            ProtocolError::CloseTooShort => "close frame with a one-byte payload",
            ProtocolError::InvalidCloseCode => "close code not allowed on the wire",
            ProtocolError::CompressedControlOrContinuation => {
                "RSV1 on a control or continuation frame"
            }
            ProtocolError::BadCompressedData => "compressed data that does not inflate",
        })
    }
}

impl fmt::Display for Limit {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Limit::FrameSize => "frame size",
            Limit::MessageSize => "message size",
            Limit::Fragments => "fragment count",
            Limit::HeaderBytes => "handshake head size",
            Limit::HeaderCount => "handshake header count",
        })
    }
}

impl fmt::Display for Usage {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Usage::ControlTooLong => "control frame payloads are at most 125 bytes",
            Usage::CloseReasonTooLong => "close reasons are at most 123 bytes",
            Usage::InvalidCloseCode => "this close code may not be sent",
            Usage::NoMessageStarted => "continuation frame with no message started",
            Usage::MessageInProgress => "new message while a fragmented one is unfinished",
            Usage::InvalidConfig => "the configuration makes no sense",
            Usage::SenderTaken => "data frames go through the sender taken from this connection",
            Usage::NotData => "only text and binary messages can be prepared",
        })
    }
}

impl fmt::Display for TimeoutKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            TimeoutKind::Handshake => "the opening handshake did not finish",
            TimeoutKind::Pong => "no answer to a keepalive ping",
            TimeoutKind::Close => "the peer did not answer our close frame",
            TimeoutKind::Idle => "nothing received for the idle timeout",
            TimeoutKind::Message => "a message took too long to arrive",
            TimeoutKind::Write => "a write made no progress",
        })
    }
}

impl fmt::Display for HandshakeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            HandshakeError::MalformedHttp => f.write_str("malformed HTTP head"),
            HandshakeError::MethodNotGet => f.write_str("request method is not GET"),
            HandshakeError::HttpVersion => f.write_str("HTTP version is not 1.1"),
            HandshakeError::MissingHost => f.write_str("no Host header"),
            HandshakeError::MissingUpgrade => f.write_str("no `Upgrade: websocket`"),
            HandshakeError::MissingConnectionUpgrade => f.write_str("no `Connection: upgrade`"),
            HandshakeError::UnsupportedVersion => f.write_str("Sec-WebSocket-Version is not 13"),
            HandshakeError::InvalidKey => f.write_str("missing or malformed Sec-WebSocket-Key"),
            HandshakeError::DuplicateHeader => f.write_str("a header that must be unique repeats"),
            HandshakeError::UnexpectedStatus(s) => write!(f, "the server answered HTTP {s}"),
            HandshakeError::InvalidAccept => f.write_str("missing or wrong Sec-WebSocket-Accept"),
            HandshakeError::UnofferedProtocol => {
                f.write_str("the server chose a subprotocol that was not offered")
            }
            HandshakeError::UnofferedExtension => {
                f.write_str("the server chose an extension or parameter that was not offered")
            }
            HandshakeError::InvalidExtension => f.write_str("malformed Sec-WebSocket-Extensions"),
            HandshakeError::MethodNotConnect => f.write_str("HTTP/2 request method is not CONNECT"),
            HandshakeError::MissingProtocol => f.write_str("HTTP/2 CONNECT without :protocol"),
            HandshakeError::UnsupportedProtocol => f.write_str(":protocol is not websocket"),
        }
    }
}

impl core::error::Error for Error {
    fn source(&self) -> Option<&(dyn core::error::Error + 'static)> {
        match self {
            Error::Protocol(p) => Some(p),
            Error::Handshake(h) => Some(h),
            _ => None,
        }
    }
}
impl core::error::Error for ProtocolError {}
impl core::error::Error for HandshakeError {}
