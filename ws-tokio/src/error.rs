//! How a connection ends, or why an operation failed.

use std::fmt;
use std::io;

use ws_proto::{CloseCode, HandshakeError, Limit, ProtocolError, TimeoutKind, Usage};

use crate::proxy::ProxyError;

/// An error from a WebSocket operation. Each way a connection can end, and each mistake a
/// caller can make, has its own variant.
#[derive(Debug)]
#[non_exhaustive]
pub enum Error {
    /// The transport failed.
    Io(io::Error),
    /// The peer broke RFC 6455; the connection failed, with `sent` (1002) sent unless a close
    /// frame had already gone out.
    Protocol {
        /// What the peer did.
        error: ProtocolError,
        /// The close code sent for it.
        sent: Option<CloseCode>,
    },
    /// The peer sent text (or a close reason) that is not UTF-8; `sent` is 1007 unless a
    /// close frame had already gone out.
    InvalidUtf8 {
        /// The close code sent for it.
        sent: Option<CloseCode>,
    },
    /// The peer went past one of our limits: a frame, message or fragment count (`sent` is
    /// 1009 unless a close frame had already gone out), or the handshake's header size or
    /// count (answered with HTTP 431).
    LimitExceeded {
        /// Which limit.
        limit: Limit,
        /// The close code sent for it.
        sent: Option<CloseCode>,
    },
    /// The transport ended without a close handshake.
    PeerVanished,
    /// The peer sent faster than the rate limits allow (with `OverLimit::Close`); `sent` is
    /// 1008 unless a close frame had already gone out.
    RateLimited {
        /// The close code sent for it.
        sent: Option<CloseCode>,
    },
    /// A deadline passed.
    Timeout(TimeoutKind),
    /// The connection is closed: nothing more can be sent.
    Closed,
    /// The opening handshake failed on our side or the peer's.
    Handshake(HandshakeError),
    /// The server answered the opening handshake with an HTTP status other than 101 (200 for
    /// HTTP/2 extended CONNECT), or a server's callback rejected it with this status.
    Rejected {
        /// The status code.
        status: u16,
    },
    /// A URL that cannot be connected to.
    InvalidUrl(UrlError),
    /// Something the protocol forbids on our side: an oversized control frame, a bad close
    /// code, a configuration that makes no sense.
    Usage(Usage),
    /// The proxy could not open the tunnel: its refusal with the HTTP status
    /// ([`ProxyError::Refused`]) or SOCKS5 reply code, a bad proxy URL in the environment,
    /// an unreachable proxy. Displayed as the proxy error itself.
    Proxy(ProxyError),
    /// A [`ReconnectingClient`](crate::reconnect::ReconnectingClient) is disconnected and its
    /// queue of messages waiting for the next connection is full (with
    /// [`QueueFull::Error`](crate::reconnect::QueueFull::Error)); the message was not queued.
    QueueFull {
        /// Messages in the queue.
        messages: usize,
        /// Payload bytes in the queue.
        bytes: usize,
    },
}

/// Why a URL was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum UrlError {
    /// Not a URL (the parser's message).
    Malformed(String),
    /// A scheme other than `ws` or `wss`.
    UnsupportedScheme(String),
    /// `wss://` needs the `rustls` feature of ws-tokio.
    TlsNotEnabled,
    /// No host.
    MissingHost,
    /// User information (`user:pass@`) in the URL: send credentials in a header instead.
    Credentials,
}

impl Error {
    /// The core's error, with the close code the failure sent.
    pub(crate) fn from_core(e: ws_proto::Error, sent: Option<CloseCode>) -> Error {
        match e {
            ws_proto::Error::Protocol(error) => Error::Protocol { error, sent },
            ws_proto::Error::InvalidUtf8 => Error::InvalidUtf8 { sent },
            ws_proto::Error::LimitExceeded(limit) => Error::LimitExceeded { limit, sent },
            ws_proto::Error::Timeout(t) => Error::Timeout(t),
            ws_proto::Error::Handshake(h) => Error::Handshake(h),
            ws_proto::Error::InvalidUsage(u) => Error::Usage(u),
            ws_proto::Error::PeerVanished => Error::PeerVanished,
            ws_proto::Error::RateLimited => Error::RateLimited { sent },
            ws_proto::Error::BufferTooSmall => Error::Usage(Usage::ControlTooLong),
            _ => Error::Closed,
        }
    }

    /// A core error from a call that sent nothing (a handshake, a send).
    pub(crate) fn from_proto(e: ws_proto::Error) -> Error {
        Error::from_core(e, None)
    }

    /// The close code we sent because of this error, if any.
    pub fn close_code_sent(&self) -> Option<CloseCode> {
        match self {
            Error::Protocol { sent, .. }
            | Error::InvalidUtf8 { sent }
            | Error::LimitExceeded { sent, .. }
            | Error::RateLimited { sent } => *sent,
            Error::Timeout(TimeoutKind::Idle) => Some(CloseCode::GOING_AWAY),
            Error::Timeout(TimeoutKind::Message) => Some(CloseCode::POLICY_VIOLATION),
            _ => None,
        }
    }
}

impl From<io::Error> for Error {
    fn from(e: io::Error) -> Self {
        Error::Io(e)
    }
}

/// A core error from a call that sent nothing (a handshake step, framing a message).
impl From<ws_proto::Error> for Error {
    fn from(e: ws_proto::Error) -> Self {
        Error::from_proto(e)
    }
}

impl From<ProxyError> for Error {
    fn from(e: ProxyError) -> Self {
        Error::Proxy(e)
    }
}

impl From<UrlError> for Error {
    fn from(e: UrlError) -> Self {
        Error::InvalidUrl(e)
    }
}

/// " (sent close N)" when a close code was sent.
struct Sent(Option<CloseCode>);

impl fmt::Display for Sent {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0 {
            Some(c) => write!(f, " (sent close {})", c.0),
            None => Ok(()),
        }
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::Io(_) => f.write_str("the transport failed"),
            Error::Protocol { sent, .. } => {
                write!(f, "the peer broke the protocol{}", Sent(*sent))
            }
            Error::InvalidUtf8 { sent } => {
                write!(f, "the peer sent text that is not UTF-8{}", Sent(*sent))
            }
            Error::LimitExceeded { limit, sent } => {
                write!(f, "the peer's {limit} exceeds its limit{}", Sent(*sent))
            }
            Error::PeerVanished => f.write_str("the peer ended the connection without closing it"),
            Error::RateLimited { sent } => {
                write!(
                    f,
                    "the peer sent faster than the rate limits allow{}",
                    Sent(*sent)
                )
            }
            Error::Timeout(t) => write!(f, "timed out: {t}"),
            Error::Closed => f.write_str("the connection is closed"),
            Error::Handshake(_) => f.write_str("the opening handshake failed"),
            Error::Rejected { status } => write!(f, "the handshake was refused with HTTP {status}"),
            Error::InvalidUrl(_) => f.write_str("invalid WebSocket URL"),
            Error::Usage(u) => write!(f, "not allowed: {u}"),
            Error::Proxy(e) => fmt::Display::fmt(e, f),
            Error::QueueFull { messages, bytes } => write!(
                f,
                "disconnected, and the queue for the next connection is full \
                 ({messages} messages, {bytes} bytes)"
            ),
        }
    }
}

impl std::error::Error for Error {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Error::Io(e) => Some(e),
            Error::Protocol { error, .. } => Some(error),
            Error::Handshake(h) => Some(h),
            Error::InvalidUrl(u) => Some(u),
            // Transparent: the proxy error's own message is this error's.
            Error::Proxy(e) => e.source(),
            _ => None,
        }
    }
}

impl fmt::Display for UrlError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            UrlError::Malformed(m) => write!(f, "malformed URL: {m}"),
            UrlError::UnsupportedScheme(s) => {
                write!(f, "scheme `{s}` is not `ws` or `wss`")
            }
            UrlError::TlsNotEnabled => {
                f.write_str("wss:// URLs need the `rustls` feature of ws-tokio")
            }
            UrlError::MissingHost => f.write_str("the URL has no host"),
            UrlError::Credentials => f.write_str(
                "credentials in the URL are not sent; set an Authorization header instead",
            ),
        }
    }
}

impl std::error::Error for UrlError {}
