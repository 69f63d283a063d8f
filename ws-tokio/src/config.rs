//! Adapter settings.

use std::time::Duration;

use ws_proto::Limits;
use ws_proto::deflate::DeflateConfig;
use ws_proto::origin::OriginPolicy;

/// Settings for a connection: the core's limits and timers ([`ws_proto::Config`]), plus what
/// only the adapter knows about: write and handshake deadlines, the write buffer and
/// compression.
///
/// ```
/// use std::time::Duration;
/// use ws_tokio::Config;
///
/// let config = Config::default()
///     .with_max_message_size(1 << 20)
///     .with_ping_interval(Some(Duration::from_secs(30)))
///     .with_compression(None);
/// assert_eq!(config.core.limits.max_message_size, 1 << 20);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct Config {
    /// The protocol core's settings: frame, message, fragment and handshake limits; keepalive
    /// ping interval (default 20 s, well inside the 60 s `proxy_read_timeout` of nginx), pong
    /// timeout (20 s), close timeout (5 s), idle timeout (none).
    pub core: ws_proto::Config,
    /// Fail when a write makes no progress for this long. Default 30 s.
    pub write_timeout: Option<Duration>,
    /// Limit on the whole opening handshake. Default 10 s.
    pub handshake_timeout: Duration,
    /// Bytes the write buffer may hold before sending waits for it to drain (backpressure).
    /// Default 128 KiB. A single message larger than this is still accepted when the buffer is
    /// empty.
    pub write_buffer_size: usize,
    /// permessage-deflate: offered by clients and accepted by servers when set. Default on,
    /// keeping no compression state per connection between messages
    /// ([`DeflateConfig::DEFAULT`]); [`DeflateConfig::CONTEXT_TAKEOVER`] trades about 300 KiB
    /// per connection for better ratios.
    pub compression: Option<DeflateConfig>,
    /// Servers: which `Origin`s may open a connection. Default: a browser's request whose
    /// `Origin` is not the `Host` it connects to is refused with 403 (cross-site WebSocket
    /// hijacking); requests without `Origin` (programs, not browsers) pass.
    /// [`OriginPolicy::any()`] turns the check off; `OriginPolicy::new().with_allowed(&[..])`
    /// allows listed origins and `*.example.com` patterns too.
    pub origin: OriginPolicy<'static>,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            core: ws_proto::Config::DEFAULT,
            write_timeout: Some(Duration::from_secs(30)),
            handshake_timeout: Duration::from_secs(10),
            write_buffer_size: 128 << 10,
            compression: Some(DeflateConfig::DEFAULT),
            origin: OriginPolicy::new(),
        }
    }
}

impl Config {
    /// Sets the core's settings.
    pub fn with_core(mut self, core: ws_proto::Config) -> Self {
        self.core = core;
        self
    }

    /// Sets all size and count limits.
    pub fn with_limits(mut self, limits: Limits) -> Self {
        self.core.limits = limits;
        self
    }

    /// Sets the largest message (all fragments, after inflating) in bytes; the frame limit is
    /// lowered to it if it was larger.
    pub fn with_max_message_size(mut self, bytes: u64) -> Self {
        self.core = self.core.with_max_message_size(bytes);
        self
    }

    /// Sets the largest frame payload in bytes.
    pub fn with_max_frame_size(mut self, bytes: u64) -> Self {
        self.core = self.core.with_max_frame_size(bytes);
        self
    }

    /// Sets the keepalive ping interval; `None` sends no pings.
    pub fn with_ping_interval(mut self, interval: Option<Duration>) -> Self {
        self.core = self.core.with_ping_interval(interval);
        self
    }

    /// Sets how long to wait for anything after a keepalive ping.
    pub fn with_pong_timeout(mut self, timeout: Duration) -> Self {
        self.core = self.core.with_pong_timeout(timeout);
        self
    }

    /// Sets how long to wait for the peer's close frame, and then for its end of the
    /// transport.
    pub fn with_close_timeout(mut self, timeout: Duration) -> Self {
        self.core = self.core.with_close_timeout(timeout);
        self
    }

    /// Sets the idle timeout (close with 1001 after this long without receiving anything).
    pub fn with_idle_timeout(mut self, timeout: Option<Duration>) -> Self {
        self.core = self.core.with_idle_timeout(timeout);
        self
    }

    /// Sets the write timeout.
    pub fn with_write_timeout(mut self, timeout: Option<Duration>) -> Self {
        self.write_timeout = timeout;
        self
    }

    /// Sets the opening handshake's deadline.
    pub fn with_handshake_timeout(mut self, timeout: Duration) -> Self {
        self.handshake_timeout = timeout;
        self
    }

    /// Sets the write buffer's size (at least 1 byte).
    pub fn with_write_buffer_size(mut self, bytes: usize) -> Self {
        self.write_buffer_size = bytes;
        self
    }

    /// Sets which `Origin`s a server accepts.
    pub fn with_origin(mut self, origin: OriginPolicy<'static>) -> Self {
        self.origin = origin;
        self
    }

    /// Sets permessage-deflate; `None` turns it off.
    pub fn with_compression(mut self, compression: Option<DeflateConfig>) -> Self {
        self.compression = compression;
        self
    }
}
