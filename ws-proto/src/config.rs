//! Connection settings: limits and timers.

use core::time::Duration;

use crate::error::{Error, Usage};
use crate::limits::Limits;
use crate::rate::RateLimits;

/// Connection settings: size limits and timers.
///
/// Build from [`Config::default()`] (or [`Config::DEFAULT`] in `const` context) with the
/// `with_*` methods:
///
/// ```
/// use std::time::Duration;
/// use ws_proto::Config;
///
/// let config = Config::default()
///     .with_max_message_size(1 << 20)
///     .with_ping_interval(None)
///     .with_idle_timeout(Some(Duration::from_secs(300)));
/// assert!(config.validate().is_ok());
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct Config {
    /// Size and count limits.
    pub limits: Limits,
    /// Send a keepalive ping this often while open. Default 20 s (well inside the 60 s
    /// `proxy_read_timeout` of nginx).
    pub ping_interval: Option<Duration>,
    /// Fail the connection when nothing arrives this long after a keepalive ping. Default 20 s.
    pub pong_timeout: Duration,
    /// How long to wait for the peer's close frame after sending ours, and then for the peer
    /// to end the transport. Default 5 s.
    pub close_timeout: Duration,
    /// Close with 1001 when nothing is received for this long. Default none.
    pub idle_timeout: Option<Duration>,
    /// Fail with 1008 when a message (all its fragments) takes longer than this to arrive,
    /// counted from its first frame: a peer cannot hold a message open by trickling it.
    /// Default 120 s (a 64 MiB message at 5 MB/s takes 13 s).
    pub message_timeout: Option<Duration>,
    /// Close with 1001 after the connection has been open this long, less a random part of up
    /// to a tenth of it (so that clients let go at once do not all come back at once). Default
    /// none.
    pub max_lifetime: Option<Duration>,
    /// Messages and bytes per second the peer may send (token buckets; counted per frame
    /// header, bytes as on the wire), and what happens over the limit. Default off.
    pub rate_limits: RateLimits,
}

impl Config {
    /// The defaults, usable in `const` context.
    pub const DEFAULT: Config = Config {
        limits: Limits::DEFAULT,
        ping_interval: Some(Duration::from_secs(20)),
        pong_timeout: Duration::from_secs(20),
        close_timeout: Duration::from_secs(5),
        idle_timeout: None,
        message_timeout: Some(Duration::from_secs(120)),
        max_lifetime: None,
        rate_limits: RateLimits::OFF,
    };

    /// Checks that the settings make sense: valid limits and no zero durations.
    pub fn validate(&self) -> Result<(), Error> {
        self.limits.validate()?;
        let zero = |d: Duration| ms(d) == 0;
        if self.ping_interval.is_some_and(zero)
            || self.idle_timeout.is_some_and(zero)
            || self.message_timeout.is_some_and(zero)
            || self.max_lifetime.is_some_and(zero)
            || zero(self.pong_timeout)
            || zero(self.close_timeout)
        {
            return Err(Error::InvalidUsage(Usage::InvalidConfig));
        }
        self.rate_limits.validate()
    }

    /// Sets all size and count limits.
    pub const fn with_limits(mut self, limits: Limits) -> Self {
        self.limits = limits;
        self
    }

    /// Sets the largest message (all fragments, after inflating) in bytes; the frame limit is
    /// lowered to it if it was larger.
    pub const fn with_max_message_size(mut self, bytes: u64) -> Self {
        self.limits = self.limits.with_max_message_size(bytes);
        self
    }

    /// Sets the largest frame payload in bytes.
    pub const fn with_max_frame_size(mut self, bytes: u64) -> Self {
        self.limits.max_frame_size = bytes;
        self
    }

    /// Sets the keepalive ping interval; `None` sends no pings.
    pub const fn with_ping_interval(mut self, interval: Option<Duration>) -> Self {
        self.ping_interval = interval;
        self
    }

    /// Sets how long to wait for anything after a keepalive ping.
    pub const fn with_pong_timeout(mut self, timeout: Duration) -> Self {
        self.pong_timeout = timeout;
        self
    }

    /// Sets how long to wait for the peer's close frame and then its end of the transport.
    pub const fn with_close_timeout(mut self, timeout: Duration) -> Self {
        self.close_timeout = timeout;
        self
    }

    /// Sets the idle timeout; `None` for none.
    pub const fn with_idle_timeout(mut self, timeout: Option<Duration>) -> Self {
        self.idle_timeout = timeout;
        self
    }

    /// Sets the deadline for a whole message to arrive; `None` for none.
    pub const fn with_message_timeout(mut self, timeout: Option<Duration>) -> Self {
        self.message_timeout = timeout;
        self
    }

    /// Sets the longest life of a connection; `None` for none.
    pub const fn with_max_lifetime(mut self, lifetime: Option<Duration>) -> Self {
        self.max_lifetime = lifetime;
        self
    }

    /// Sets the rate limits on what the peer sends.
    pub const fn with_rate_limits(mut self, limits: RateLimits) -> Self {
        self.rate_limits = limits;
        self
    }
}

impl Default for Config {
    fn default() -> Self {
        Self::DEFAULT
    }
}

/// A duration in whole milliseconds, rounded up (only zero is zero) and saturating.
pub(crate) const fn ms(d: Duration) -> u64 {
    let ms = d.as_millis() + (d.subsec_nanos() % 1_000_000 != 0) as u128;
    if ms > u64::MAX as u128 {
        u64::MAX
    } else {
        ms as u64
    }
}
