//! Adapter settings.

use std::time::Duration;

use ws_proto::Limits;
use ws_proto::deflate::DeflateConfig;

/// Settings for a connection: the core's limits and timers, plus the adapter's buffers and
/// deadlines.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Config {
    /// Frame, message, fragment and handshake limits.
    pub limits: Limits,
    /// Keepalive ping interval; `None` sends no pings. Default 20 s, well inside the 60 s
    /// `proxy_read_timeout` of nginx.
    pub ping_interval: Option<Duration>,
    /// Fail the connection when nothing arrives this long after a keepalive ping. Default 20 s.
    pub pong_timeout: Duration,
    /// Fail when a write makes no progress for this long. Default 30 s.
    pub write_timeout: Option<Duration>,
    /// Limit on the whole opening handshake. Default 10 s.
    pub handshake_timeout: Duration,
    /// How long to wait for the peer's close frame, and for the peer to shut the transport after
    /// the close handshake. Default 5 s.
    pub close_timeout: Duration,
    /// Close with 1001 after this long without receiving anything. Default none.
    pub idle_timeout: Option<Duration>,
    /// Bytes the write buffer may hold before sending waits for it to drain (backpressure).
    /// Default 128 KiB. A single message larger than this is still accepted when the buffer is
    /// empty.
    pub write_buffer_size: usize,
    /// permessage-deflate: offered by clients and accepted by servers when set. Default on,
    /// with context takeover; [`DeflateConfig::LEAN`] drops codec state between messages.
    pub compression: Option<DeflateConfig>,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            limits: Limits::DEFAULT,
            ping_interval: Some(Duration::from_secs(20)),
            pong_timeout: Duration::from_secs(20),
            write_timeout: Some(Duration::from_secs(30)),
            handshake_timeout: Duration::from_secs(10),
            close_timeout: Duration::from_secs(5),
            idle_timeout: None,
            write_buffer_size: 128 << 10,
            compression: Some(DeflateConfig::DEFAULT),
        }
    }
}

impl Config {
    /// The core's view of these settings.
    pub(crate) fn proto(&self) -> ws_proto::Config {
        let ms = |d: Duration| d.as_millis().clamp(1, u64::MAX as u128) as u64;
        ws_proto::Config {
            limits: self.limits,
            ping_interval: self.ping_interval.map(ms),
            pong_timeout: ms(self.pong_timeout),
            close_timeout: ms(self.close_timeout),
            idle_timeout: self.idle_timeout.map(ms),
        }
    }
}
