//! The serve loop: accepts connections on a [`Listener`], runs each one's opening handshake
//! under its deadline and its handler in a task of its own, within limits, and shuts down
//! gracefully. In the spirit of `axum::serve`.
//!
//! ```no_run
//! # async fn run() -> Result<(), ws_tokio::Error> {
//! let listener = tokio::net::TcpListener::bind("127.0.0.1:9001").await?;
//! ws_tokio::serve(listener, |mut ws, info| async move {
//!     // `info.recv` is `ws.recv`, until the server shuts down: then it closes with 1001.
//!     while let Some(Ok(msg)) = info.recv(&mut ws).await {
//!         if (msg.is_text() || msg.is_binary()) && ws.send(msg).await.is_err() {
//!             break;
//!         }
//!     }
//! })
//! .with_graceful_shutdown(async {
//!     let _ = tokio::signal::ctrl_c().await;
//! })
//! .await
//! # }
//! ```
//!
//! # Limits
//!
//! Every connection the listener hands over counts from its accept to the end of its handler,
//! the opening handshake included. Set them in a [`ServeConfig`]:
//!
//! | limit | default | past it |
//! |---|---|---|
//! | [`max_connections`](ServeConfig::max_connections) | 25,000, lowered to fit the process's descriptor limit | `503 Service Unavailable` with `Retry-After` |
//! | [`max_connections_per_ip`](ServeConfig::max_connections_per_ip) | 256 (IPv6: per /64) | `503` with `Retry-After` |
//! | [`max_pending_rejects`](ServeConfig::max_pending_rejects) | 64 `503` answers in flight | closed at once, without an answer |
//! | [`reject_timeout`](ServeConfig::reject_timeout) | 1 s for one `503` answer | closed |
//! | [`Config::handshake_timeout`] | 10 s for the opening handshake | closed |
//! | [`shutdown_timeout`](ServeConfig::shutdown_timeout) | 10 s after the shutdown signal | the remaining connections are dropped |
//!
//! The defaults fit an internet server for 10,000 clients. 25,000 connections leave room for
//! the dead connections of clients that reconnected at once after a network failure: those
//! live on until their keepalive deadline (ping interval + pong timeout, 40 s by default).
//! 256 per address lets a browser open as many sockets as it will (Chromium allows 255 per
//! profile, Firefox 200) and lets many users share a NAT, while one address alone can hold
//! at most 1% of the server. An IPv6 host is usually given a whole /64, so IPv6 addresses
//! count per /64 ([`ipv6_prefix_len`](ServeConfig::ipv6_prefix_len)); IPv4-mapped IPv6
//! addresses count as their IPv4 address.
//!
//! On Unix, `max_connections` is lowered when the loop starts so that the connections, the
//! `503` answers in flight and 64 more descriptors for everything else fit under the soft
//! `RLIMIT_NOFILE`: with the common soft limit of 1024, 896 connections. Past the descriptor
//! limit the kernel refuses `accept` itself and the clients wait in the listen backlog with no
//! answer; under it they are answered. [`Serve::effective_max_connections`] tells the figure.
//!
//! A `503` answer is written at once, then the loop waits (up to `reject_timeout`) for the
//! client to end the connection, reading and discarding what it sent: closing a socket with
//! unread bytes sends a reset, which can destroy the answer before the client reads it. Those
//! answers run in tasks of their own, at most `max_pending_rejects` at a time; a connection
//! past that bound is closed without an answer, so a flood costs a bounded number of tasks
//! and descriptors.
//!
//! # Accept errors
//!
//! Errors of one connection (`ECONNABORTED`, `ECONNRESET`, `EINTR`, `EPROTO`, `EPERM`, and the
//! network errors `accept(2)` says to treat as `EAGAIN`) are retried at once. Running out of
//! descriptors or memory (`EMFILE`, `ENFILE`, `ENOBUFS`, `ENOMEM`) and unknown errors pause
//! accepting, for 10 ms, doubling up to 1 s while the errors go on; live connections are
//! served meanwhile. Errors that say the listener itself is broken (`EBADF`, `EINVAL`,
//! `ENOTSOCK`, `EFAULT`) end the loop, after a graceful shutdown, with that error. A failed
//! handshake or a panicking handler ends only its own connection.
//!
//! # Graceful shutdown
//!
//! When the future given to [`Serve::with_graceful_shutdown`] completes, the loop drops the
//! listener (new clients are refused), cancels handshakes in progress, and signals every
//! connection's [`Shutdown`]. Handlers that receive through [`ConnInfo::recv`] close with
//! 1001 (going away) and finish the close handshake; others can wait on
//! [`Shutdown::signalled`] (a handler that split its socket sends
//! `Message::Close(Some(serve::going_away()))` through the write half). The serve future
//! completes when every handler has returned, or after
//! [`shutdown_timeout`](ServeConfig::shutdown_timeout), when the handlers still running are
//! dropped (their sockets closed without a close frame). Dropping the serve future drops every
//! connection at once.

use std::collections::HashMap;
use std::fmt;
use std::future::{Future, IntoFuture};
use std::io;
use std::net::{IpAddr, SocketAddr};
use std::pin::{Pin, pin};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use bytes::Bytes;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::sync::Notify;
use tokio::task::JoinSet;
use tokio::time::Instant;
use ws_proto::origin::OriginPolicy;
use ws_proto::{CloseCode, CloseFrame, Message, State, Usage};

use crate::config::Config;
use crate::error::Error;
use crate::handshake::{AcceptResponse, Reject, Request, accept_with};
use crate::websocket::WebSocket;

/// Default [`ServeConfig::max_connections`].
pub const DEFAULT_MAX_CONNECTIONS: usize = 25_000;
/// Default [`ServeConfig::max_connections_per_ip`].
pub const DEFAULT_MAX_CONNECTIONS_PER_IP: usize = 256;
/// Descriptors kept free for everything that is not a connection or a `503` answer (the
/// listener, the runtime, standard streams, the application's files).
pub const DESCRIPTOR_HEADROOM: usize = 64;

/// The first pause after an accept error that means "out of resources".
const BACKOFF_MIN: Duration = Duration::from_millis(10);
/// The longest pause.
const BACKOFF_MAX: Duration = Duration::from_secs(1);
/// At most this many request bytes are read and discarded after a `503` answer.
const REJECT_DRAIN_MAX: usize = 16 << 10;

/// Where connections come from: a [`TcpListener`](tokio::net::TcpListener), a
/// [`UnixListener`](tokio::net::UnixListener), or your own (a test listener, a socket handed
/// over by systemd...).
///
/// `accept` must be cancel-safe: the loop drops its future whenever something else needs
/// attention (a connection ended, the shutdown signal) and calls it again.
pub trait Listener: Send + 'static {
    /// The connection's transport.
    type Io: AsyncRead + AsyncWrite + Unpin + Send + 'static;
    /// The peer's address, handed to the handler in [`ConnInfo`].
    type Addr: Clone + Send + Sync + fmt::Debug + 'static;

    /// Waits for the next connection.
    fn accept(&mut self) -> impl Future<Output = io::Result<(Self::Io, Self::Addr)>> + Send;

    /// The peer's IP address, for [`ServeConfig::max_connections_per_ip`]; `None` (the
    /// default) exempts the connection from that cap.
    fn peer_ip(addr: &Self::Addr) -> Option<IpAddr> {
        let _ = addr;
        None
    }
}

/// Sets `TCP_NODELAY` on every accepted connection: a message is written with one system call
/// when it is ready, and Nagle's algorithm would only delay it.
impl Listener for tokio::net::TcpListener {
    type Io = tokio::net::TcpStream;
    type Addr = SocketAddr;

    async fn accept(&mut self) -> io::Result<(Self::Io, Self::Addr)> {
        let (tcp, addr) = tokio::net::TcpListener::accept(self).await?;
        let _ = tcp.set_nodelay(true);
        Ok((tcp, addr))
    }

    fn peer_ip(addr: &SocketAddr) -> Option<IpAddr> {
        Some(addr.ip())
    }
}

/// Unix-domain sockets have no IP address: the per-IP cap does not apply.
#[cfg(unix)]
impl Listener for tokio::net::UnixListener {
    type Io = tokio::net::UnixStream;
    type Addr = tokio::net::unix::SocketAddr;

    async fn accept(&mut self) -> io::Result<(Self::Io, Self::Addr)> {
        tokio::net::UnixListener::accept(self).await
    }
}

/// The serve loop's limits and deadlines. See the [module documentation](self) for what each
/// does past its limit and why the defaults are what they are.
///
/// ```
/// use std::time::Duration;
/// use ws_tokio::serve::ServeConfig;
///
/// let limits = ServeConfig::default()
///     .with_max_connections(50_000)
///     .with_max_connections_per_ip(32)
///     .with_shutdown_timeout(Duration::from_secs(30));
/// assert_eq!(limits.max_connections, 50_000);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct ServeConfig {
    /// Connections at once, handshakes included. Default 25,000 (lowered to fit the
    /// descriptor limit on Unix). At least 1.
    pub max_connections: usize,
    /// Connections at once from one IP address (IPv6: one prefix of
    /// [`ipv6_prefix_len`](Self::ipv6_prefix_len) bits). Default 256. At least 1; `usize::MAX`
    /// turns the cap off. Loopback addresses are not counted unless
    /// [`limit_loopback`](Self::limit_loopback) is set.
    pub max_connections_per_ip: usize,
    /// Whether the per-IP cap counts loopback addresses too. Default `false`: behind a
    /// reverse proxy on the same host every client arrives from loopback, and only the total
    /// cap applies to them.
    pub limit_loopback: bool,
    /// How many leading bits of an IPv6 address identify a client for the per-IP cap.
    /// Default 64. At most 128.
    pub ipv6_prefix_len: u8,
    /// The `Retry-After` of a `503` answer, in whole seconds (rounded up). Default 5 s.
    pub retry_after: Duration,
    /// `503` answers in flight at once; past it a connection is closed without one. Default
    /// 64. 0 closes every connection past a cap without an answer.
    pub max_pending_rejects: usize,
    /// How long one `503` answer may take: writing it and waiting for the client to end the
    /// connection. Default 1 s.
    pub reject_timeout: Duration,
    /// After the shutdown signal, how long to wait for the handlers to return before dropping
    /// them. Default 10 s.
    pub shutdown_timeout: Duration,
}

impl Default for ServeConfig {
    fn default() -> Self {
        ServeConfig {
            max_connections: DEFAULT_MAX_CONNECTIONS,
            max_connections_per_ip: DEFAULT_MAX_CONNECTIONS_PER_IP,
            limit_loopback: false,
            ipv6_prefix_len: 64,
            retry_after: Duration::from_secs(5),
            max_pending_rejects: 64,
            reject_timeout: Duration::from_secs(1),
            shutdown_timeout: Duration::from_secs(10),
        }
    }
}

impl ServeConfig {
    /// Sets [`max_connections`](Self::max_connections).
    pub fn with_max_connections(mut self, n: usize) -> Self {
        self.max_connections = n;
        self
    }

    /// Sets [`max_connections_per_ip`](Self::max_connections_per_ip).
    pub fn with_max_connections_per_ip(mut self, n: usize) -> Self {
        self.max_connections_per_ip = n;
        self
    }

    /// Sets [`limit_loopback`](Self::limit_loopback).
    pub fn with_limit_loopback(mut self, on: bool) -> Self {
        self.limit_loopback = on;
        self
    }

    /// Sets [`ipv6_prefix_len`](Self::ipv6_prefix_len).
    pub fn with_ipv6_prefix_len(mut self, bits: u8) -> Self {
        self.ipv6_prefix_len = bits;
        self
    }

    /// Sets [`retry_after`](Self::retry_after).
    pub fn with_retry_after(mut self, after: Duration) -> Self {
        self.retry_after = after;
        self
    }

    /// Sets [`max_pending_rejects`](Self::max_pending_rejects).
    pub fn with_max_pending_rejects(mut self, n: usize) -> Self {
        self.max_pending_rejects = n;
        self
    }

    /// Sets [`reject_timeout`](Self::reject_timeout).
    pub fn with_reject_timeout(mut self, timeout: Duration) -> Self {
        self.reject_timeout = timeout;
        self
    }

    /// Sets [`shutdown_timeout`](Self::shutdown_timeout).
    pub fn with_shutdown_timeout(mut self, timeout: Duration) -> Self {
        self.shutdown_timeout = timeout;
        self
    }

    /// `Err(Usage::InvalidConfig)` for a zero connection cap or an IPv6 prefix over 128 bits.
    pub fn validate(&self) -> Result<(), Error> {
        if self.max_connections == 0
            || self.max_connections_per_ip == 0
            || self.ipv6_prefix_len > 128
        {
            return Err(Error::Usage(Usage::InvalidConfig));
        }
        Ok(())
    }

    /// `max_connections`, lowered to fit a soft descriptor limit of `nofile` (see the
    /// [module documentation](self)).
    pub fn max_connections_for(&self, nofile: Option<u64>) -> usize {
        let Some(n) = nofile else {
            return self.max_connections;
        };
        let n = usize::try_from(n).unwrap_or(usize::MAX);
        let room = n
            .saturating_sub(self.max_pending_rejects.saturating_add(DESCRIPTOR_HEADROOM))
            .max(n / 2);
        self.max_connections.min(room).max(1)
    }
}

/// The soft `RLIMIT_NOFILE` of this process.
fn descriptor_limit() -> Option<u64> {
    #[cfg(unix)]
    {
        rlimit::getrlimit(rlimit::Resource::NOFILE)
            .ok()
            .map(|(soft, _)| soft)
    }
    #[cfg(not(unix))]
    {
        None
    }
}

/// The close frame of a shutdown: 1001 (going away), "server shutting down".
pub fn going_away() -> CloseFrame {
    CloseFrame::new(CloseCode::GOING_AWAY, "server shutting down")
}

/// Tells a connection's handler that the server is shutting down. Cheap to clone.
#[derive(Debug, Clone)]
pub struct Shutdown {
    inner: Arc<Signal>,
}

#[derive(Debug, Default)]
struct Signal {
    fired: AtomicBool,
    notify: Notify,
}

impl Shutdown {
    fn new() -> Shutdown {
        Shutdown {
            inner: Arc::new(Signal::default()),
        }
    }

    fn fire(&self) {
        self.inner.fired.store(true, Ordering::SeqCst);
        self.inner.notify.notify_waiters();
    }

    /// Whether the server has begun shutting down.
    pub fn is_signalled(&self) -> bool {
        self.inner.fired.load(Ordering::SeqCst)
    }

    /// Completes once the server has begun shutting down. Cancel-safe.
    pub async fn signalled(&self) {
        let mut notified = pin!(self.inner.notify.notified());
        // Registered before the flag is read, so a signal between the two is not missed.
        notified.as_mut().enable();
        if self.is_signalled() {
            return;
        }
        notified.await;
    }
}

/// What the handler learns about its connection besides the socket.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct ConnInfo<A = SocketAddr> {
    /// The peer's address, as the listener reported it.
    pub remote_addr: A,
    /// Signalled when the server shuts down.
    pub shutdown: Shutdown,
    /// What the [`accept_with`](Serve::accept_with) callback kept for the handler
    /// ([`AcceptResponse::extension`]); empty (no allocation) otherwise.
    pub extensions: http::Extensions,
}

impl<A> ConnInfo<A> {
    /// [`WebSocket::recv`], until the server shuts down: then it closes the connection with
    /// 1001 ([`going_away`]), waits for the close handshake to finish (discarding messages
    /// that arrive meanwhile, up to the close timeout), and returns `None`, or the error the
    /// close ended with. Cancel-safe, as `recv` is.
    pub async fn recv<S: AsyncRead + AsyncWrite + Unpin>(
        &self,
        ws: &mut WebSocket<S>,
    ) -> Option<Result<Message, Error>> {
        if ws.state() != State::Open {
            // Closing already: finish it.
            return ws.recv().await;
        }
        if !self.shutdown.is_signalled() {
            tokio::select! {
                biased;
                () = self.shutdown.signalled() => {}
                m = ws.recv() => return m,
            }
        }
        if ws.state() != State::Open {
            return ws.recv().await;
        }
        match ws.close(Some(going_away())).await {
            Ok(()) => None,
            Err(e) => Some(Err(e)),
        }
    }
}

type AcceptFn = dyn Fn(&Request<'_, '_>) -> Result<AcceptResponse, Reject> + Send + Sync;
type CheckFn = dyn Fn(&Request<'_, '_>) -> Result<(), Reject> + Send + Sync;

/// Serves WebSocket connections from `listener`, calling `handler` with each accepted socket
/// in a task of its own. Await the returned [`Serve`] (after setting it up) to run it; it
/// returns after a graceful shutdown, or with the error of a listener that broke.
///
/// Every connection is accepted with any path, no subprotocol and the default [`Config`]
/// unless [`Serve::accept_with`], [`Serve::origin`] and [`Serve::config`] say otherwise. See
/// the [module documentation](self) for the limits and the shutdown.
pub fn serve<L, H, Fut>(listener: L, handler: H) -> Serve<L, H>
where
    L: Listener,
    H: Fn(WebSocket<L::Io>, ConnInfo<L::Addr>) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = ()> + Send + 'static,
{
    Serve {
        listener,
        handler,
        config: Config::default(),
        limits: ServeConfig::default(),
        accept: None,
        origin: None,
        shutdown: None,
    }
}

/// The serve loop, set up by [`serve`] and its builder methods; runs when awaited.
#[must_use = "the serve loop runs only when awaited"]
pub struct Serve<L, H> {
    listener: L,
    handler: H,
    config: Config,
    limits: ServeConfig,
    accept: Option<Arc<AcceptFn>>,
    /// The origin check, and whether its patterns are valid.
    origin: Option<(Arc<CheckFn>, bool)>,
    shutdown: Option<Pin<Box<dyn Future<Output = ()> + Send>>>,
}

impl<L, H> fmt::Debug for Serve<L, H> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Serve")
            .field("config", &self.config)
            .field("limits", &self.limits)
            .field("accept_with", &self.accept.is_some())
            .field("origin", &self.origin.is_some())
            .field("graceful_shutdown", &self.shutdown.is_some())
            .finish_non_exhaustive()
    }
}

impl<L, H> Serve<L, H> {
    /// The connections' settings (limits, timers, compression, handshake timeout).
    pub fn config(mut self, config: Config) -> Self {
        self.config = config;
        self
    }

    /// The serve loop's limits and deadlines.
    pub fn serve_config(mut self, limits: ServeConfig) -> Self {
        self.limits = limits;
        self
    }

    /// Sets [`ServeConfig::max_connections`].
    pub fn max_connections(mut self, n: usize) -> Self {
        self.limits.max_connections = n;
        self
    }

    /// Sets [`ServeConfig::max_connections_per_ip`].
    pub fn max_connections_per_ip(mut self, n: usize) -> Self {
        self.limits.max_connections_per_ip = n;
        self
    }

    /// Sets [`ServeConfig::shutdown_timeout`].
    pub fn shutdown_timeout(mut self, timeout: Duration) -> Self {
        self.limits.shutdown_timeout = timeout;
        self
    }

    /// Decides on each request as [`accept_with`]'s callback does
    /// (a clone of `callback` per connection): accept, with a subprotocol and headers, or
    /// reject with a status. Runs after the [`origin`](Self::origin) check.
    ///
    /// ```no_run
    /// use ws_tokio::auth::BearerAuth;
    ///
    /// # async fn run(listener: tokio::net::TcpListener) -> Result<(), ws_tokio::Error> {
    /// let auth = BearerAuth::default();
    /// ws_tokio::serve(listener, |_ws, _info| async move { /* ... */ })
    ///     .accept_with(move |req| auth.authorize_token(req, b"s3cret-token"))
    ///     .await
    /// # }
    /// ```
    pub fn accept_with<F>(mut self, callback: F) -> Self
    where
        F: FnOnce(&Request<'_, '_>) -> Result<AcceptResponse, Reject>
            + Clone
            + Send
            + Sync
            + 'static,
    {
        self.accept = Some(Arc::new(move |req: &Request<'_, '_>| {
            (callback.clone())(req)
        }));
        self
    }

    /// Refuses requests whose `Origin` the policy refuses, with 403 (see
    /// [`auth::check_origin`](crate::auth::check_origin)), in place of the connection settings'
    /// [`Config::origin`] (by default: a browser's cross-site request is refused). A policy with
    /// a pattern that does not parse makes the serve future fail at once with
    /// `Usage::InvalidConfig`.
    ///
    /// ```no_run
    /// use ws_tokio::origin::OriginPolicy;
    ///
    /// # async fn run(listener: tokio::net::TcpListener) -> Result<(), ws_tokio::Error> {
    /// static ORIGINS: OriginPolicy<'static> =
    ///     OriginPolicy::new().with_allowed(&["https://app.example.com"]);
    /// ws_tokio::serve(listener, |_ws, _info| async move { /* ... */ })
    ///     .origin(ORIGINS)
    ///     .await
    /// # }
    /// ```
    pub fn origin<S>(mut self, policy: OriginPolicy<'static, S>) -> Self
    where
        S: AsRef<str> + Send + Sync + 'static,
    {
        let valid = policy.validate().is_ok();
        let check =
            move |req: &Request<'_, '_>| crate::auth::check_origin(&policy, req).map(|_| ());
        self.origin = Some((Arc::new(check), valid));
        self
    }

    /// Shuts down gracefully when `signal` completes (see the
    /// [module documentation](self#graceful-shutdown)).
    pub fn with_graceful_shutdown<F>(mut self, signal: F) -> Self
    where
        F: Future<Output = ()> + Send + 'static,
    {
        self.shutdown = Some(Box::pin(signal));
        self
    }

    /// The connection cap the loop will use: [`ServeConfig::max_connections`], lowered to
    /// fit this process's descriptor limit now.
    pub fn effective_max_connections(&self) -> usize {
        self.limits.max_connections_for(descriptor_limit())
    }
}

impl<L, H, Fut> IntoFuture for Serve<L, H>
where
    L: Listener,
    H: Fn(WebSocket<L::Io>, ConnInfo<L::Addr>) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = ()> + Send + 'static,
{
    type Output = Result<(), Error>;
    type IntoFuture = Pin<Box<dyn Future<Output = Result<(), Error>> + Send>>;

    fn into_future(self) -> Self::IntoFuture {
        Box::pin(self.run())
    }
}

/// The `503` answer.
fn busy_response(retry_after: Duration) -> Result<Bytes, Error> {
    let secs = retry_after.as_secs() + u64::from(retry_after.subsec_nanos() > 0);
    let secs = secs.to_string();
    let mut out = [0u8; 256];
    let headers: [(&str, &[u8]); 1] = [("Retry-After", secs.as_bytes())];
    let n = ws_proto::handshake::write_reject(&mut out, 503, &headers, b"")
        .map_err(Error::from_proto)?;
    Ok(Bytes::copy_from_slice(&out[..n]))
}

impl<L, H, Fut> Serve<L, H>
where
    L: Listener,
    H: Fn(WebSocket<L::Io>, ConnInfo<L::Addr>) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = ()> + Send + 'static,
{
    async fn run(self) -> Result<(), Error> {
        let max = self.effective_max_connections();
        let Serve {
            mut listener,
            handler,
            config,
            limits,
            accept,
            origin,
            shutdown,
        } = self;
        limits.validate()?;
        config.core.validate().map_err(Error::from_proto)?;
        if origin.as_ref().is_some_and(|(_, valid)| !valid) {
            return Err(Error::Usage(Usage::InvalidConfig));
        }
        // A policy given here replaces the one of the connection settings.
        let config = match origin {
            Some(_) => config.with_origin(OriginPolicy::any()),
            None => config,
        };
        let busy = busy_response(limits.retry_after)?;
        let tracker = Arc::new(Tracker::new(max, &limits));
        let signal = Shutdown::new();
        let handler = Arc::new(handler);
        let origin = origin.map(|(check, _)| check);
        let decide: Arc<AcceptFn> = Arc::new(move |req: &Request<'_, '_>| {
            if let Some(check) = &origin {
                check(req)?;
            }
            match &accept {
                Some(accept) => accept(req),
                None => Ok(AcceptResponse::new()),
            }
        });
        let mut shutdown = shutdown.unwrap_or_else(|| Box::pin(std::future::pending()));
        let mut conns = JoinSet::new();
        let mut rejects = JoinSet::new();
        let mut backoff = BACKOFF_MIN;
        let mut pause = pin!(tokio::time::sleep(Duration::ZERO));
        let mut paused = false;

        let result = loop {
            tokio::select! {
                biased;
                () = &mut shutdown => break Ok(()),
                Some(_) = conns.join_next() => {}
                Some(_) = rejects.join_next() => {}
                () = &mut pause, if paused => paused = false,
                accepted = listener.accept(), if !paused => match accepted {
                    Ok((io, addr)) => {
                        backoff = BACKOFF_MIN;
                        match tracker.admit(L::peer_ip(&addr)) {
                            Some(permit) => {
                                let info = ConnInfo {
                                    remote_addr: addr,
                                    shutdown: signal.clone(),
                                    extensions: http::Extensions::new(),
                                };
                                let handshake = handshake(io, info, config, decide.clone());
                                conns.spawn(connection(handshake, permit, handler.clone()));
                            }
                            None => {
                                while rejects.try_join_next().is_some() {}
                                if rejects.len() < limits.max_pending_rejects {
                                    let answer = busy.clone();
                                    rejects.spawn(answer_busy(io, answer, limits.reject_timeout));
                                }
                                // Past the bound the connection is dropped here, unanswered.
                            }
                        }
                    }
                    Err(e) => match classify(&e) {
                        AcceptError::Retry => tokio::task::yield_now().await,
                        AcceptError::Backoff => {
                            pause.as_mut().reset(Instant::now() + backoff);
                            paused = true;
                            backoff = (backoff * 2).min(BACKOFF_MAX);
                        }
                        AcceptError::Fatal => break Err(Error::Io(e)),
                    },
                },
            }
        };

        drop(listener);
        signal.fire();
        let drained = async {
            while conns.join_next().await.is_some() {}
            while rejects.join_next().await.is_some() {}
        };
        let _ = tokio::time::timeout(limits.shutdown_timeout, drained).await;
        conns.shutdown().await;
        rejects.shutdown().await;
        result
    }
}

/// The opening handshake under its deadline, cancelled by the shutdown signal; the socket
/// and what the handler learns about it, unless the handshake failed or the server is
/// shutting down. Boxed, so its memory is freed once it is done: a connection's task keeps
/// only the handler's future and a few words.
#[allow(clippy::type_complexity)]
fn handshake<S, A>(
    io: S,
    info: ConnInfo<A>,
    config: Config,
    decide: Arc<AcceptFn>,
) -> Pin<Box<impl Future<Output = Option<(WebSocket<S>, ConnInfo<A>)>>>>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    Box::pin(async move {
        let mut info = info;
        let extensions = &mut info.extensions;
        let accept = accept_with(io, config, move |req| {
            decide(req).map(|mut answer| {
                *extensions = std::mem::take(&mut answer.extensions);
                answer
            })
        });
        let mut ws = tokio::select! {
            biased;
            () = info.shutdown.signalled() => return None,
            r = tokio::time::timeout(config.handshake_timeout, accept) => r.ok()?.ok()?,
        };
        if info.shutdown.is_signalled() {
            let _ = ws.close(Some(going_away())).await;
            return None;
        }
        Some((ws, info))
    })
}

/// One connection's task: the handshake, then the handler. The permit is released when the
/// task ends, however it ends.
async fn connection<S, A, H, Fut>(
    handshake: Pin<Box<impl Future<Output = Option<(WebSocket<S>, ConnInfo<A>)>>>>,
    _permit: Permit,
    handler: Arc<H>,
) where
    H: Fn(WebSocket<S>, ConnInfo<A>) -> Fut,
    Fut: Future<Output = ()>,
{
    let Some((ws, info)) = handshake.await else {
        return;
    };
    handler(ws, info).await;
}

/// Answers `503` and waits (briefly) for the client to end the connection.
async fn answer_busy<S: AsyncRead + AsyncWrite + Unpin>(mut io: S, answer: Bytes, limit: Duration) {
    let _ = tokio::time::timeout(limit, async {
        io.write_all(&answer).await?;
        io.flush().await?;
        io.shutdown().await?;
        let mut scratch = [0u8; 512];
        let mut drained = 0;
        while drained < REJECT_DRAIN_MAX {
            match io.read(&mut scratch).await? {
                0 => break,
                n => drained += n,
            }
        }
        Ok::<_, io::Error>(())
    })
    .await;
}

enum AcceptError {
    /// This connection failed: accept the next one at once.
    Retry,
    /// Out of descriptors or memory (or unknown): pause, then go on.
    Backoff,
    /// The listener is broken.
    Fatal,
}

fn classify(e: &io::Error) -> AcceptError {
    #[cfg(unix)]
    if let Some(code) = e.raw_os_error() {
        match code {
            libc::EMFILE | libc::ENFILE | libc::ENOBUFS | libc::ENOMEM => {
                return AcceptError::Backoff;
            }
            libc::EBADF | libc::EINVAL | libc::ENOTSOCK | libc::EFAULT => {
                return AcceptError::Fatal;
            }
            libc::ECONNABORTED
            | libc::ECONNRESET
            | libc::EINTR
            | libc::EAGAIN
            | libc::EPROTO
            | libc::EPERM
            | libc::ETIMEDOUT
            | libc::ENETDOWN
            | libc::ENETUNREACH
            | libc::EHOSTDOWN
            | libc::EHOSTUNREACH
            | libc::ENOPROTOOPT
            | libc::EOPNOTSUPP => return AcceptError::Retry,
            _ => {}
        }
    }
    match e.kind() {
        io::ErrorKind::ConnectionAborted
        | io::ErrorKind::ConnectionReset
        | io::ErrorKind::Interrupted
        | io::ErrorKind::WouldBlock
        | io::ErrorKind::TimedOut => AcceptError::Retry,
        _ => AcceptError::Backoff,
    }
}

/// The connection counts, shared with the permits that release them.
#[derive(Debug)]
struct Tracker {
    counts: Mutex<Counts>,
    max: usize,
    max_per_ip: usize,
    ipv6_prefix_len: u8,
    limit_loopback: bool,
}

#[derive(Debug, Default)]
struct Counts {
    total: usize,
    per_ip: HashMap<IpAddr, usize>,
}

/// One admitted connection; dropping it releases its place.
#[derive(Debug)]
struct Permit {
    tracker: Arc<Tracker>,
    key: Option<IpAddr>,
}

impl Tracker {
    fn new(max: usize, limits: &ServeConfig) -> Tracker {
        Tracker {
            counts: Mutex::new(Counts::default()),
            max,
            max_per_ip: limits.max_connections_per_ip,
            ipv6_prefix_len: limits.ipv6_prefix_len,
            limit_loopback: limits.limit_loopback,
        }
    }

    fn lock(&self) -> MutexGuard<'_, Counts> {
        // The counts are consistent after every statement: a panic elsewhere leaves them usable.
        self.counts.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// A place for a connection from `ip`, unless a cap is reached.
    fn admit(self: &Arc<Self>, ip: Option<IpAddr>) -> Option<Permit> {
        let key = ip
            .filter(|ip| self.limit_loopback || !ip.to_canonical().is_loopback())
            .map(|ip| client_key(ip, self.ipv6_prefix_len));
        let mut counts = self.lock();
        if counts.total >= self.max {
            return None;
        }
        if let Some(k) = key {
            let n = counts.per_ip.entry(k).or_insert(0);
            if *n >= self.max_per_ip {
                return None;
            }
            *n += 1;
        }
        counts.total += 1;
        Some(Permit {
            tracker: self.clone(),
            key,
        })
    }
}

impl Drop for Permit {
    fn drop(&mut self) {
        let mut counts = self.tracker.lock();
        counts.total -= 1;
        if let Some(k) = self.key {
            if let Some(n) = counts.per_ip.get_mut(&k) {
                *n -= 1;
                if *n == 0 {
                    counts.per_ip.remove(&k);
                }
            }
        }
    }
}

/// The address the per-IP cap counts `ip` under: IPv4 as it is (IPv4-mapped IPv6 too), IPv6
/// cut to its first `prefix_len` bits.
fn client_key(ip: IpAddr, prefix_len: u8) -> IpAddr {
    match ip {
        IpAddr::V4(_) => ip,
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => {
                let bits = u32::from(prefix_len.min(128));
                let mask = u128::MAX.checked_shl(128 - bits).unwrap_or(0);
                IpAddr::V6((u128::from(v6) & mask).into())
            }
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ipv6_counts_per_prefix_and_mapped_ipv4_as_ipv4() {
        let a: IpAddr = "2001:db8:1:2:aaaa::1".parse().unwrap();
        let b: IpAddr = "2001:db8:1:2:bbbb::9".parse().unwrap();
        let c: IpAddr = "2001:db8:1:3::1".parse().unwrap();
        assert_eq!(client_key(a, 64), client_key(b, 64));
        assert_ne!(client_key(a, 64), client_key(c, 64));
        assert_ne!(client_key(a, 128), client_key(b, 128));
        assert_eq!(client_key(a, 0), client_key(c, 0));
        let mapped: IpAddr = "::ffff:192.0.2.7".parse().unwrap();
        assert_eq!(
            client_key(mapped, 64),
            "192.0.2.7".parse::<IpAddr>().unwrap()
        );
        let v4: IpAddr = "192.0.2.7".parse().unwrap();
        assert_eq!(client_key(v4, 64), v4);
    }

    #[test]
    fn the_cap_fits_under_the_descriptor_limit() {
        let c = ServeConfig::default();
        assert_eq!(c.max_connections_for(None), 25_000);
        assert_eq!(c.max_connections_for(Some(1024)), 1024 - 64 - 64);
        assert_eq!(c.max_connections_for(Some(1 << 20)), 25_000);
        assert_eq!(c.max_connections_for(Some(u64::MAX)), 25_000);
        // A tiny limit still leaves half of it for connections.
        assert_eq!(c.max_connections_for(Some(100)), 50);
        assert_eq!(c.max_connections_for(Some(0)), 1);
        let small = c.with_max_connections(10);
        assert_eq!(small.max_connections_for(Some(1024)), 10);
    }

    #[test]
    fn accept_errors_are_classified() {
        let raw = |c| classify(&io::Error::from_raw_os_error(c));
        for c in [libc::EMFILE, libc::ENFILE, libc::ENOBUFS, libc::ENOMEM] {
            assert!(matches!(raw(c), AcceptError::Backoff), "{c}");
        }
        for c in [
            libc::ECONNABORTED,
            libc::ECONNRESET,
            libc::EINTR,
            libc::EPROTO,
        ] {
            assert!(matches!(raw(c), AcceptError::Retry), "{c}");
        }
        for c in [libc::EBADF, libc::EINVAL, libc::ENOTSOCK] {
            assert!(matches!(raw(c), AcceptError::Fatal), "{c}");
        }
        let kind = |k| classify(&io::Error::from(k));
        assert!(matches!(
            kind(io::ErrorKind::ConnectionAborted),
            AcceptError::Retry
        ));
        assert!(matches!(kind(io::ErrorKind::Other), AcceptError::Backoff));
    }

    #[test]
    fn invalid_limits_are_refused() {
        let c = ServeConfig::default();
        assert!(c.validate().is_ok());
        assert!(c.with_max_connections(0).validate().is_err());
        assert!(c.with_max_connections_per_ip(0).validate().is_err());
        assert!(c.with_ipv6_prefix_len(129).validate().is_err());
        assert!(c.with_ipv6_prefix_len(128).validate().is_ok());
    }

    #[test]
    fn the_busy_answer_is_a_503_with_retry_after_in_whole_seconds() {
        let b = busy_response(Duration::from_millis(2500)).unwrap();
        let text = std::str::from_utf8(&b).unwrap();
        assert!(
            text.starts_with("HTTP/1.1 503 Service Unavailable\r\n"),
            "{text}"
        );
        assert!(text.contains("\r\nRetry-After: 3\r\n"), "{text}");
        assert!(text.contains("Content-Length: 0\r\n"), "{text}");
        assert!(text.ends_with("\r\n\r\n"), "{text}");
    }

    #[test]
    fn permits_release_their_places() {
        let t = Arc::new(Tracker::new(
            3,
            &ServeConfig::default().with_max_connections_per_ip(2),
        ));
        // Addresses only counted here, never connected to (documentation ranges).
        let a: IpAddr = "192.0.2.1".parse().unwrap();
        let b: IpAddr = "192.0.2.2".parse().unwrap();
        let p1 = t.admit(Some(a)).unwrap();
        let p2 = t.admit(Some(a)).unwrap();
        assert!(t.admit(Some(a)).is_none(), "third from one address");
        let p3 = t.admit(Some(b)).unwrap();
        assert!(t.admit(None).is_none(), "total cap");
        drop(p1);
        assert!(t.admit(Some(b)).is_some_and(|p| {
            drop(p);
            true
        }));
        drop((p2, p3));
        let c = t.lock();
        assert_eq!(c.total, 0);
        assert!(c.per_ip.is_empty());
    }

    #[test]
    fn loopback_counts_per_address_only_when_asked() {
        let lo: IpAddr = "127.0.0.1".parse().unwrap();
        let exempt = Arc::new(Tracker::new(
            3,
            &ServeConfig::default().with_max_connections_per_ip(1),
        ));
        let held: Vec<_> = (0..3).map(|_| exempt.admit(Some(lo)).unwrap()).collect();
        assert!(
            exempt.admit(Some(lo)).is_none(),
            "the total cap still applies"
        );
        drop(held);
        let limited = Arc::new(Tracker::new(
            3,
            &ServeConfig::default()
                .with_max_connections_per_ip(1)
                .with_limit_loopback(true),
        ));
        let p = limited.admit(Some(lo)).unwrap();
        assert!(limited.admit(Some(lo)).is_none(), "second from loopback");
        drop(p);
        assert!(limited.admit(Some(lo)).is_some());
    }

    /// The task of a connection keeps its handler's future and a few words: the handshake's
    /// state (and its 160-byte `Config`) lives in a box that is freed when it is done.
    #[tokio::test]
    async fn a_connection_task_adds_little_to_its_handler() {
        use tokio::io::DuplexStream;
        let handler = Arc::new(
            |mut ws: WebSocket<DuplexStream>, info: ConnInfo| async move {
                while let Some(Ok(_)) = info.recv(&mut ws).await {}
            },
        );
        let info = || ConnInfo {
            remote_addr: SocketAddr::from(([192, 0, 2, 1], 5)),
            shutdown: Shutdown::new(),
            extensions: http::Extensions::new(),
        };
        let (a, b) = tokio::io::duplex(64);
        let config = Config::default();
        let conn = crate::handshake::connection(ws_proto::Role::Server, &config, None).unwrap();
        let handler_future = handler(WebSocket::from_parts(a, conn, &config, Vec::new()), info());
        let tracker = Arc::new(Tracker::new(1, &ServeConfig::default()));
        let decide: Arc<AcceptFn> = Arc::new(|_: &Request<'_, '_>| Ok(AcceptResponse::new()));
        let task = connection(
            handshake(b, info(), config, decide),
            tracker.admit(None).unwrap(),
            handler.clone(),
        );
        let (h, t) = (size_of_val(&handler_future), size_of_val(&task));
        assert!(t <= h + 128, "task {t} bytes, handler {h} bytes");
    }
}
