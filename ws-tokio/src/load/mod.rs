//! A WebSocket load generator (feature `load`): the one behind `ws bench` and the benches
//! crate's side-by-side runs.
//!
//! Runs, each bounded in time and in connections:
//!
//! - [`run_echo`]: closed-loop echo, C connections each sending an S-byte message and waiting
//!   for its echo, for T seconds after a warm-up;
//! - [`run_pipeline`]: the same with many messages in flight per connection (the send time
//!   rides in each payload, so every round trip is measured);
//! - [`run_handshakes`]: loops of connect, opening handshake, close handshake;
//! - [`run_idle`]: opens N connections and reads the server's RSS per connection;
//! - [`run_k6`]: a k6-style scenario: virtual users ramp up over a duration, each session sends
//!   a message every 1-3 s, reads its echo and leaves after a set time, then the user starts
//!   another session.
//!
//! Every run returns a [`LoadResult`] with the k6 `k6/ws` metrics ([`K6Metrics`]:
//! `ws_connecting`, `ws_msgs_sent`, `ws_msgs_received`, `ws_session_duration`, `ws_sessions`,
//! plus `ws_round_trip`), which [`Report`] prints as text, JSON or markdown. A [`Progress`]
//! shared with the run is updated as it goes (for a live progress line).
//!
//! The client is [`LoadClient`]: raw frames, a fresh random masking key for each, payloads
//! skipped on receive without being copied, so that the client costs as little as possible
//! and the server is what is measured. It connects over TCP, TLS (`wss://`, feature `rustls`)
//! and HTTP `CONNECT` or SOCKS5 proxies ([`Target`]).
//!
//! ```no_run
//! use std::time::Duration;
//! use ws_tokio::load::{K6Scenario, Report, Target, run_k6};
//!
//! let target = Target::parse("ws://127.0.0.1:9001/")?;
//! let scenario = K6Scenario::new(target)
//!     .with_vus(1000)
//!     .with_ramp(Duration::from_secs(10))
//!     .with_duration(Duration::from_secs(20))
//!     .with_session(Duration::from_secs(5));
//! let result = run_k6(&scenario)?;
//! println!("{}", Report::k6(&scenario, &result).text());
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! Open many connections only to servers you run yourself: a run of 10,000 virtual users opens
//! 10,000 sockets and, over its length, tens of thousands of connections.

mod client;
mod report;
mod run;
mod stats;
pub mod sys;

use std::io;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};

pub use client::{
    Agreed, FrameInfo, FrameReader, HEAD, LoadClient, MAX_RESPONSE_HEAD, Rng, encode_frame,
};
pub use report::Report;
pub use run::{
    CpuTimes, IdleResult, K6Scenario, LoadOpts, LoadResult, MAX_CONNECTIONS, Memory, make_payload,
    run_echo, run_echo_with, run_handshakes, run_idle, run_k6, run_k6_with, run_pipeline,
    run_pipeline_with, runtime,
};
pub use stats::{K6Metrics, SharedTrend, Summary, TREND_MAX_NS, Trend, TrendBatch, fmt_duration};

use crate::connect::{MaybeTlsStream, Url};
use crate::error::Error;
use crate::proxy::Proxy;

/// Where a load run connects and what its opening requests carry: a `ws://` or `wss://` URL
/// (its host resolved once, not for every connection), extra header fields, offered
/// subprotocols and extensions, a proxy, a TLS configuration.
///
/// ```
/// use ws_tokio::load::Target;
///
/// let t = Target::parse("ws://127.0.0.1:9001/chat?room=1")?
///     .with_header("Authorization", "Bearer abc")
///     .with_protocol("chat");
/// assert_eq!(t.url(), "ws://127.0.0.1:9001/chat?room=1");
/// # Ok::<(), ws_tokio::Error>(())
/// ```
#[derive(Debug, Clone)]
pub struct Target {
    tls: bool,
    /// The host to resolve and connect to (IPv6 without brackets); the TLS server name.
    connect_host: String,
    port: u16,
    pub(crate) host_header: String,
    pub(crate) path: String,
    pub(crate) headers: Vec<(String, Vec<u8>)>,
    pub(crate) protocols: Vec<String>,
    pub(crate) extensions: Option<String>,
    /// Resolved once by [`Target::resolve`].
    addr: Option<SocketAddr>,
    proxy: Option<Proxy>,
    #[cfg(feature = "rustls")]
    tls_config: Option<std::sync::Arc<tokio_rustls::rustls::ClientConfig>>,
}

impl Target {
    /// A target for a `ws://` or `wss://` URL (`wss://` needs the `rustls` feature).
    pub fn parse(url: &str) -> Result<Target, Error> {
        let u = Url::parse(url)?;
        if u.tls && !cfg!(feature = "rustls") {
            return Err(crate::UrlError::TlsNotEnabled.into());
        }
        let addr = u
            .connect_host()
            .parse()
            .ok()
            .map(|ip| SocketAddr::new(ip, u.port));
        Ok(Target {
            tls: u.tls,
            connect_host: u.connect_host().to_string(),
            port: u.port,
            host_header: u.host_header(),
            path: u.path,
            headers: Vec::new(),
            protocols: Vec::new(),
            extensions: None,
            addr,
            proxy: None,
            #[cfg(feature = "rustls")]
            tls_config: None,
        })
    }

    /// A `ws://` target at this address, path `/`.
    pub fn from_addr(addr: SocketAddr) -> Target {
        Target {
            tls: false,
            connect_host: addr.ip().to_string(),
            port: addr.port(),
            host_header: addr.to_string(),
            path: "/".into(),
            headers: Vec::new(),
            protocols: Vec::new(),
            extensions: None,
            addr: Some(addr),
            proxy: None,
            #[cfg(feature = "rustls")]
            tls_config: None,
        }
    }

    /// Requests this path (and query) instead of the URL's.
    pub fn with_path(mut self, path: impl Into<String>) -> Target {
        self.path = path.into();
        self
    }

    /// Adds a header field to every opening request (after Chromium's own fields; an
    /// `Origin` given here replaces the default `http://HOST`).
    pub fn with_header(mut self, name: impl Into<String>, value: impl Into<Vec<u8>>) -> Target {
        self.headers.push((name.into(), value.into()));
        self
    }

    /// Offers this subprotocol.
    pub fn with_protocol(mut self, protocol: impl Into<String>) -> Target {
        self.protocols.push(protocol.into());
        self
    }

    /// Offers these extensions (a `Sec-WebSocket-Extensions` value). The load client itself
    /// does not decompress; a run that negotiates compression sees compressed frames
    /// ([`FrameInfo::rsv1`]).
    pub fn with_extensions(mut self, offer: Option<String>) -> Target {
        self.extensions = offer;
        self
    }

    /// Connects through this proxy (HTTP `CONNECT`, SOCKS5); the TLS of `wss://` runs through
    /// the tunnel.
    pub fn with_proxy(mut self, proxy: Option<Proxy>) -> Target {
        self.proxy = proxy;
        self
    }

    /// The TLS configuration for `wss://` (default: [`crate::default_tls_config`], the
    /// Mozilla roots).
    #[cfg(feature = "rustls")]
    pub fn with_tls_config(
        mut self,
        config: Option<std::sync::Arc<tokio_rustls::rustls::ClientConfig>>,
    ) -> Target {
        self.tls_config = config;
        self
    }

    /// The URL this target stands for.
    pub fn url(&self) -> String {
        format!(
            "{}://{}{}",
            if self.tls { "wss" } else { "ws" },
            self.host_header,
            self.path
        )
    }

    /// The `Host` header of the requests: the host, with the port unless it is the scheme's
    /// default.
    pub fn host_header(&self) -> &str {
        &self.host_header
    }

    /// The request target: path and query.
    pub fn path(&self) -> &str {
        &self.path
    }

    /// Whether the connection is `wss://`.
    pub fn is_tls(&self) -> bool {
        self.tls
    }

    /// The resolved address, once [`resolve`](Self::resolve) found one (or the URL's host was
    /// an IP address).
    pub fn addr(&self) -> Option<SocketAddr> {
        self.addr
    }

    /// Resolves the host once, so that the run's connections do not each ask the resolver.
    /// Through a proxy the name is left for the proxy to resolve.
    pub async fn resolve(mut self) -> io::Result<Target> {
        if self.addr.is_none() && self.proxy.is_none() {
            self.addr = tokio::net::lookup_host((self.connect_host.as_str(), self.port))
                .await?
                .next();
            if self.addr.is_none() {
                return Err(io::Error::new(
                    io::ErrorKind::NotFound,
                    format!("{} has no address", self.connect_host),
                ));
            }
        }
        Ok(self)
    }

    pub(crate) fn has_header(&self, lower_name: &str) -> bool {
        self.headers
            .iter()
            .any(|(n, _)| n.eq_ignore_ascii_case(lower_name))
    }

    pub(crate) fn headers_len(&self) -> usize {
        self.headers
            .iter()
            .map(|(n, v)| n.len() + v.len() + 4)
            .sum::<usize>()
            + self.protocols.iter().map(|p| p.len() + 2).sum::<usize>()
            + self.extensions.as_ref().map_or(0, |e| e.len() + 32)
            + self.path.len()
            + self.host_header.len()
    }

    /// Opens the transport: TCP (with `TCP_NODELAY`) to the resolved address or through the
    /// proxy, then TLS for `wss://`. Proxy failures come as `io::Error`s whose inner error is
    /// the [`ProxyError`](crate::proxy::ProxyError).
    pub async fn open(&self) -> io::Result<MaybeTlsStream> {
        let tcp = match (&self.proxy, self.addr) {
            (Some(p), _) => p
                .connect(&self.connect_host, self.port)
                .await
                .map_err(io::Error::other)?,
            (None, Some(addr)) => {
                let tcp = tokio::net::TcpStream::connect(addr).await?;
                tcp.set_nodelay(true)?;
                tcp
            }
            (None, None) => {
                let tcp =
                    tokio::net::TcpStream::connect((self.connect_host.as_str(), self.port)).await?;
                tcp.set_nodelay(true)?;
                tcp
            }
        };
        if !self.tls {
            return Ok(MaybeTlsStream::Plain(tcp));
        }
        #[cfg(feature = "rustls")]
        {
            crate::tls::wrap(tcp, &self.connect_host, self.tls_config.clone())
                .await
                .map_err(|e| match e {
                    Error::Io(e) => e,
                    other => io::Error::other(other),
                })
        }
        #[cfg(not(feature = "rustls"))]
        {
            Err(io::Error::other(crate::UrlError::TlsNotEnabled))
        }
    }
}

/// Counters a run updates as it goes, for a progress line: read them from another task or
/// thread while the run is under way.
#[derive(Debug, Default)]
pub struct Progress {
    /// Virtual users started (k6 scenario) or connections opened (other runs).
    pub vus: AtomicU64,
    /// Sessions open now.
    pub open: AtomicU64,
    /// The most sessions open at once so far.
    pub peak_open: AtomicU64,
    /// Sessions started (handshakes completed).
    pub sessions: AtomicU64,
    /// Data messages sent.
    pub sent: AtomicU64,
    /// Data messages received.
    pub received: AtomicU64,
    /// Failed connects, sessions and echoes.
    pub errors: AtomicU64,
}

impl Progress {
    /// A new set of counters, all zero.
    pub fn new() -> Progress {
        Progress::default()
    }

    pub(crate) fn session_opened(&self) {
        self.sessions.fetch_add(1, Relaxed);
        let now = self.open.fetch_add(1, Relaxed) + 1;
        self.peak_open.fetch_max(now, Relaxed);
    }

    pub(crate) fn session_closed(&self) {
        self.open.fetch_sub(1, Relaxed);
    }

    pub(crate) fn add(counter: &AtomicU64, n: u64) {
        counter.fetch_add(n, Relaxed);
    }

    /// The counters as they stand, in the order of the fields.
    pub fn snapshot(&self) -> [u64; 7] {
        [
            self.vus.load(Relaxed),
            self.open.load(Relaxed),
            self.peak_open.load(Relaxed),
            self.sessions.load(Relaxed),
            self.sent.load(Relaxed),
            self.received.load(Relaxed),
            self.errors.load(Relaxed),
        ]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn targets_from_urls() {
        let t = Target::parse("ws://127.0.0.1:9001/a?b=1").unwrap();
        assert_eq!(t.addr(), Some("127.0.0.1:9001".parse().unwrap()));
        assert_eq!(
            (t.host_header.as_str(), t.path.as_str()),
            ("127.0.0.1:9001", "/a?b=1")
        );
        assert!(!t.is_tls());
        let t = Target::parse("ws://localhost/").unwrap();
        assert_eq!((t.addr(), t.url().as_str()), (None, "ws://localhost/"));
        let t = Target::from_addr("[::1]:80".parse().unwrap()).with_path("/echo");
        assert_eq!(t.url(), "ws://[::1]:80/echo");
        assert!(Target::parse("http://x/").is_err());
        #[cfg(not(feature = "rustls"))]
        assert!(Target::parse("wss://x/").is_err());
    }

    #[test]
    fn peak_open_sessions() {
        let p = Progress::new();
        p.session_opened();
        p.session_opened();
        p.session_closed();
        p.session_opened();
        p.session_closed();
        p.session_closed();
        let [_, open, peak, sessions, ..] = p.snapshot();
        assert_eq!((open, peak, sessions), (0, 2, 3));
    }
}
