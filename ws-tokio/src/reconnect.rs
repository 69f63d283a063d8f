//! A client that comes back: [`ReconnectingClient`] reconnects with exponential backoff and
//! jitter, runs a hook after every (re)connect (to log in again, re-subscribe), queues what is
//! sent while it is disconnected and flushes it, in order, once the hook has run.
//!
//! It is a `Stream` of [`Event`]s and a `Sink` of [`Message`]s, driven like a
//! [`WebSocket`]: by polling it. The stream carries the messages and, in the same order, every
//! change of connection state, so a program knows exactly which messages came before a
//! disconnect and that everything after an [`Event::Open`] came over the new connection (a
//! separate state channel could not say that: it keeps only the latest state, and races the
//! messages). [`ReconnectingClient::state`] tells the current state at any time.
//!
//! ```no_run
//! # async fn run() -> Result<(), ws_tokio::Error> {
//! use futures_util::{SinkExt, StreamExt};
//! use ws_tokio::Message;
//! use ws_tokio::reconnect::{Event, ReconnectConfig, ReconnectingClient};
//!
//! let mut client = ReconnectingClient::new("wss://example.com/feed", ReconnectConfig::default())?
//!     .on_connect(|ws, _response| {
//!         Box::pin(async move { ws.send(Message::text(r#"{"subscribe":"prices"}"#)).await })
//!     });
//! client.send(Message::text("queued until the first connection is open")).await?;
//! while let Some(event) = client.next().await {
//!     match event {
//!         Event::Message(msg) => println!("{msg:?}"),
//!         Event::Closed { code, retry_in: Some(d), .. } => println!("closed ({code:?}), back in {d:?}"),
//!         Event::Closed { error, .. } => return error.map_or(Ok(()), Err), // gave up
//!         _ => {}
//!     }
//! }
//! # Ok(()) }
//! ```
//!
//! # The schedule
//!
//! The first connection is attempted at once. After a connection that was open ends, or an
//! attempt fails, the client waits `jitter(min(max_delay, initial_delay * 2^n))` where `n`
//! counts the waits since the last open connection (0, 1, 2, ...), then tries again. Full
//! jitter (the default) draws the wait uniformly from `[0, ceiling]`: clients that lost the
//! same server spread their returns over the whole window, which is what spares a restarted
//! server a thundering herd (each client still waits more, on average, after every failure).
//! Equal jitter draws from `[ceiling / 2, ceiling]`, keeping a floor. With
//! [`max_attempts`](ReconnectConfig::max_attempts) the client gives up after that many failed
//! attempts in a row.
//!
//! # When it does not retry
//!
//! - The server closed with a code in [`no_retry_codes`](ReconnectConfig::no_retry_codes)
//!   (default 1008, policy violation, and 4000-4999, the application's own).
//! - An attempt failed with an error [`retry_if`](ReconnectConfig::retry_if) turns down (by
//!   default [`default_retry_if`]: an HTTP status other than 408, 429 and 5xx, a handshake the
//!   server got wrong, a bad URL, a proxy's refusal of credentials, an untrusted certificate).
//! - [`close`](ReconnectingClient::close) was called (or the `Sink` closed).
//!
//! Then the stream gives a last [`Event::Closed`] with `retry_in: None` and ends.
//!
//! # Delivery
//!
//! Messages sent while no connection is open wait in a queue bounded by count and bytes
//! ([`QueueFull`] says what happens when it is full) and go out on the next connection, after
//! the hook, before anything sent later. Messages handed to an open connection are that
//! connection's: if it fails before writing them they are lost, as with any WebSocket. For
//! at-least-once delivery, acknowledge at the application level and resend from the hook.

use std::collections::VecDeque;
use std::fmt;
use std::future::poll_fn;
use std::ops::RangeInclusive;
use std::pin::Pin;
use std::task::{Context, Poll, Waker, ready};
use std::time::Duration;

use futures_core::Stream;
use futures_sink::Sink;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::time::Sleep;
use ws_proto::{CloseCode, CloseFrame, Message, TimeoutKind, Usage, Utf8Bytes};

use crate::connect::{MaybeTlsStream, Url, connect_request};
use crate::error::{Error, UrlError};
use crate::handshake::{ClientRequest, Response};
use crate::websocket::WebSocket;

/// What the hook returns: a future that borrows the new connection.
pub type HookFuture<'a> = Pin<Box<dyn Future<Output = Result<(), Error>> + Send + 'a>>;

/// What a connector returns: a future that opens a connection.
pub type ConnectFuture<S> =
    Pin<Box<dyn Future<Output = Result<(WebSocket<S>, Response), Error>> + Send>>;

type Hook<S> = Box<dyn for<'a> FnMut(&'a mut WebSocket<S>, &'a Response) -> HookFuture<'a> + Send>;
type Connector<S> = Box<dyn FnMut() -> ConnectFuture<S> + Send>;
type Attempt<S> = Pin<
    Box<dyn Future<Output = (Option<Hook<S>>, Result<(WebSocket<S>, Response), Error>)> + Send>,
>;

/// How the wait before a reconnect is drawn from `[0, ceiling]`, where the ceiling is
/// `min(max_delay, initial_delay * 2^n)`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Jitter {
    /// Uniform in `[0, ceiling]` (the default): the widest spread of many clients' returns.
    Full,
    /// Uniform in `[ceiling / 2, ceiling]`: a floor under each wait.
    Equal,
    /// Exactly the ceiling.
    None,
}

/// What [`ReconnectingClient`]'s `Sink` does with a message sent while it is disconnected and
/// its queue is full (by count or by bytes).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum QueueFull {
    /// Refuse the new message with [`Error::QueueFull`] (the default): nothing is lost
    /// without the sender knowing.
    Error,
    /// Drop the oldest queued messages until the new one fits (the newest data wins, as for
    /// prices or positions). A message larger than the whole byte limit is dropped itself.
    DropOldest,
    /// Drop the new message (the queue keeps what was sent first).
    DropNewest,
}

/// The default [`ReconnectConfig::retry_if`]: whether an attempt that failed with this error
/// (or a connection that ended with it) is worth another try.
///
/// No for mistakes that another try repeats: a bad URL or configuration
/// ([`Error::InvalidUrl`], [`Error::Usage`]), an HTTP answer other than 408, 429 and 5xx
/// ([`Error::Rejected`]), a server that got the handshake wrong ([`Error::Handshake`]), a
/// proxy that refuses the credentials or a proxy URL that cannot work ([`Error::Proxy`]), an
/// untrusted or invalid server certificate. Yes for everything else: the network, timeouts,
/// a server that went away, a proxy that could not reach the server.
pub fn default_retry_if(e: &Error) -> bool {
    use crate::proxy::ProxyError;
    match e {
        Error::InvalidUrl(_) | Error::Usage(_) | Error::Handshake(_) => false,
        Error::Rejected { status } => matches!(status, 408 | 429 | 500..=599),
        Error::Proxy(p) => {
            !(p.is_auth_failure()
                || matches!(
                    p,
                    ProxyError::InvalidUrl(_)
                        | ProxyError::UnsupportedScheme(_)
                        | ProxyError::InvalidTarget
                        | ProxyError::InvalidCredentials
                ))
        }
        #[cfg(feature = "rustls")]
        Error::Io(io) => !io
            .get_ref()
            .and_then(|inner| inner.downcast_ref::<tokio_rustls::rustls::Error>())
            .is_some_and(|tls| {
                matches!(
                    tls,
                    tokio_rustls::rustls::Error::InvalidCertificate(_)
                        | tokio_rustls::rustls::Error::NoCertificatesPresented
                )
            }),
        _ => true,
    }
}

/// Settings of a [`ReconnectingClient`].
///
/// ```
/// use std::time::Duration;
/// use ws_tokio::reconnect::{Jitter, QueueFull, ReconnectConfig};
///
/// let config = ReconnectConfig::default()
///     .with_delays(Duration::from_millis(250), Duration::from_secs(10))
///     .with_jitter(Jitter::Equal)
///     .with_max_attempts(Some(20))
///     .with_queue(100, 64 << 10, QueueFull::DropOldest)
///     .with_no_retry_codes([1008..=1008, 4000..=4099]);
/// assert_eq!(config.max_delay, Duration::from_secs(10));
/// ```
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct ReconnectConfig {
    /// The request for every connection: headers, subprotocols, connection settings, TLS and
    /// proxy (see [`crate::connect_request`]). Not used with
    /// [`ReconnectingClient::with_connector`].
    pub request: ClientRequest,
    /// The ceiling of the first wait. Default 1 s; at least 1 ms.
    pub initial_delay: Duration,
    /// The largest ceiling (the cap). Default 30 s; at least `initial_delay`.
    pub max_delay: Duration,
    /// How each wait is drawn under its ceiling. Default [`Jitter::Full`].
    pub jitter: Jitter,
    /// Give up after this many failed attempts in a row (counted since the last open
    /// connection, or the start); `None` (the default) tries forever. More than zero.
    pub max_attempts: Option<u32>,
    /// Close codes from the server that end the client instead of a reconnect. Default
    /// `[1008..=1008, 4000..=4999]`.
    pub no_retry_codes: Vec<RangeInclusive<u16>>,
    /// Whether a failure with this error is retried. Default [`default_retry_if`].
    pub retry_if: fn(&Error) -> bool,
    /// Bound on the hook's run after each connect; past it the connection counts as a
    /// failed attempt. Default 10 s.
    pub hook_timeout: Duration,
    /// At most this many messages wait while disconnected. Default 1024; 0 keeps none.
    pub queue_max_messages: usize,
    /// At most this many payload bytes wait while disconnected. Default 1 MiB.
    pub queue_max_bytes: usize,
    /// What a send does when the queue is full. Default [`QueueFull::Error`].
    pub queue_full: QueueFull,
    /// The jitter generator's seed (`None`, the default: from the operating system). Tests
    /// fix it to know the schedule: [`Backoff`] with the same seed draws the same waits.
    pub seed: Option<u64>,
}

impl Default for ReconnectConfig {
    fn default() -> Self {
        ReconnectConfig {
            request: ClientRequest::default(),
            initial_delay: Duration::from_secs(1),
            max_delay: Duration::from_secs(30),
            jitter: Jitter::Full,
            max_attempts: None,
            no_retry_codes: vec![1008..=1008, 4000..=4999],
            retry_if: default_retry_if,
            hook_timeout: Duration::from_secs(10),
            queue_max_messages: 1024,
            queue_max_bytes: 1 << 20,
            queue_full: QueueFull::Error,
            seed: None,
        }
    }
}

impl ReconnectConfig {
    /// Sets the request used for every connection.
    pub fn with_request(mut self, request: ClientRequest) -> Self {
        self.request = request;
        self
    }

    /// Sets the first ceiling and the cap.
    pub fn with_delays(mut self, initial: Duration, max: Duration) -> Self {
        self.initial_delay = initial;
        self.max_delay = max;
        self
    }

    /// Sets the jitter.
    pub fn with_jitter(mut self, jitter: Jitter) -> Self {
        self.jitter = jitter;
        self
    }

    /// Sets the number of failed attempts in a row after which the client gives up.
    pub fn with_max_attempts(mut self, attempts: Option<u32>) -> Self {
        self.max_attempts = attempts;
        self
    }

    /// Sets the server close codes that end the client.
    pub fn with_no_retry_codes(
        mut self,
        codes: impl IntoIterator<Item = RangeInclusive<u16>>,
    ) -> Self {
        self.no_retry_codes = codes.into_iter().collect();
        self
    }

    /// Sets which errors are retried.
    pub fn with_retry_if(mut self, retry_if: fn(&Error) -> bool) -> Self {
        self.retry_if = retry_if;
        self
    }

    /// Sets the bound on the hook.
    pub fn with_hook_timeout(mut self, timeout: Duration) -> Self {
        self.hook_timeout = timeout;
        self
    }

    /// Sets the queue's limits and what happens when it is full.
    pub fn with_queue(
        mut self,
        max_messages: usize,
        max_bytes: usize,
        when_full: QueueFull,
    ) -> Self {
        self.queue_max_messages = max_messages;
        self.queue_max_bytes = max_bytes;
        self.queue_full = when_full;
        self
    }

    /// Fixes the jitter generator's seed.
    pub fn with_seed(mut self, seed: Option<u64>) -> Self {
        self.seed = seed;
        self
    }

    fn validate(&self) -> Result<(), Error> {
        let bad = self.initial_delay < Duration::from_millis(1)
            || self.max_delay < self.initial_delay
            || self.max_attempts == Some(0)
            || self.hook_timeout.is_zero();
        if bad {
            return Err(Error::Usage(Usage::InvalidConfig));
        }
        Ok(())
    }

    fn backoff(&self) -> Result<Backoff, Error> {
        let seed = match self.seed {
            Some(s) => s,
            None => {
                let mut b = [0u8; 8];
                getrandom::fill(&mut b)
                    .map_err(|e| Error::Io(std::io::Error::other(e.to_string())))?;
                u64::from_ne_bytes(b)
            }
        };
        Ok(Backoff::new(
            self.initial_delay,
            self.max_delay,
            self.jitter,
            seed,
        ))
    }
}

/// The reconnect schedule: exponential ceilings (factor 2) under a cap, and jittered waits
/// drawn from a seeded generator. [`ReconnectingClient`] draws its waits from one of these
/// built from its config; the same seed gives the same waits.
///
/// ```
/// use std::time::Duration;
/// use ws_tokio::reconnect::{Backoff, Jitter};
///
/// let ms = Duration::from_millis;
/// let mut b = Backoff::new(ms(100), ms(1000), Jitter::Full, 7);
/// assert_eq!([0, 1, 2, 3, 4, 40].map(|n| b.ceiling(n)), [100, 200, 400, 800, 1000, 1000].map(ms));
/// let wait = b.delay(2);
/// assert!(wait <= ms(400));
/// ```
#[derive(Debug, Clone)]
pub struct Backoff {
    initial: Duration,
    max: Duration,
    jitter: Jitter,
    rng: fastrand::Rng,
}

impl Backoff {
    /// A schedule whose first ceiling is `initial`, doubling up to `max`, with `jitter` drawn
    /// from a generator seeded with `seed`.
    pub fn new(initial: Duration, max: Duration, jitter: Jitter, seed: u64) -> Self {
        Backoff {
            initial,
            max,
            jitter,
            rng: fastrand::Rng::with_seed(seed),
        }
    }

    /// The ceiling of wait number `n` (0 for the first): `min(max, initial * 2^n)`.
    pub fn ceiling(&self, n: u32) -> Duration {
        let factor = 1u128.checked_shl(n).filter(|_| n < 64);
        let nanos = match factor {
            Some(f) => self.initial.as_nanos().saturating_mul(f),
            None => u128::MAX,
        };
        let nanos = nanos.min(self.max.as_nanos());
        nanos_to_duration(nanos)
    }

    /// Draws wait number `n` (0 for the first) under its ceiling, in whole milliseconds (tokio's
    /// timers have no finer grain, so the wait reported is the wait slept).
    pub fn delay(&mut self, n: u32) -> Duration {
        let ceiling = u64::try_from(self.ceiling(n).as_millis()).unwrap_or(u64::MAX);
        let ms = match self.jitter {
            Jitter::Full => self.rng.u64(0..=ceiling),
            Jitter::Equal => ceiling - ceiling / 2 + self.rng.u64(0..=ceiling / 2),
            Jitter::None => ceiling,
        };
        Duration::from_millis(ms)
    }
}

fn nanos_to_duration(nanos: u128) -> Duration {
    const NANOS: u128 = 1_000_000_000;
    let secs = u64::try_from(nanos / NANOS).unwrap_or(u64::MAX);
    Duration::new(secs, (nanos % NANOS) as u32)
}

/// What a [`ReconnectingClient`] yields: the server's messages and the changes of its state,
/// in the order they happened. Every [`Connecting`](Event::Connecting) is followed by an
/// [`Open`](Event::Open) or a [`Closed`](Event::Closed), every `Open` by a `Closed`; the last
/// event is a `Closed` with `retry_in: None`.
#[derive(Debug)]
#[non_exhaustive]
pub enum Event {
    /// An attempt to connect begins.
    Connecting {
        /// 1 for the first attempt since the last open connection (or the start), then 2, ...
        attempt: u32,
    },
    /// Connected: the handshake is done and the hook has run. Messages queued while
    /// disconnected go out next, in order, before anything sent later.
    #[non_exhaustive]
    Open {
        /// The server's answer to the handshake.
        response: Response,
    },
    /// A message from the server (pings and pongs too; the close frame is reported in
    /// [`Closed`](Event::Closed)).
    Message(Message),
    /// A connection ended, or an attempt failed.
    #[non_exhaustive]
    Closed {
        /// The server's close code; for a connection that failed without one, the code we sent
        /// or 1006 (abnormal closure), and for a close frame without a code 1005.
        code: CloseCode,
        /// The server's close reason (empty without one).
        reason: Utf8Bytes,
        /// How the connection or the attempt failed, if it did.
        error: Option<Error>,
        /// When the next attempt starts; `None`: never, the stream ends.
        retry_in: Option<Duration>,
    },
}

/// Where a [`ReconnectingClient`] is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum ClientState {
    /// An attempt is under way (connecting, or running the hook).
    Connecting,
    /// A connection is open.
    Open,
    /// Waiting before the next attempt.
    Waiting,
    /// Closing at the user's request.
    Closing,
    /// Done: closed, or given up.
    Closed,
}

enum Phase<S> {
    /// Nothing yet: the first attempt starts when the stream is first polled.
    Start,
    Waiting(Pin<Box<Sleep>>),
    Connecting(Attempt<S>),
    Open {
        ws: WebSocket<S>,
        /// The server's close frame, once received (the close handshake then finishes).
        peer_close: Option<Option<CloseFrame>>,
        /// A send failed: the connection is ending (its stream reports how); sends are queued.
        broken: bool,
    },
    Closing {
        ws: WebSocket<S>,
        frame: Option<CloseFrame>,
    },
    Done,
}

/// A WebSocket client that reconnects: a `Stream` of [`Event`]s and a `Sink` of
/// [`Message`]s. See the [module](self) docs for the schedule, the queue and when it stops.
///
/// Keep polling the stream (a `next()` loop, or a branch of `select!`): it drives the
/// connection, like [`WebSocket::recv`], and the reconnects. The `Sink` never fails because of
/// a disconnect: while no connection is open its messages wait in the queue.
pub struct ReconnectingClient<S = MaybeTlsStream> {
    connector: Connector<S>,
    hook: Option<Hook<S>>,
    no_retry_codes: Vec<RangeInclusive<u16>>,
    retry_if: fn(&Error) -> bool,
    max_attempts: Option<u32>,
    hook_timeout: Duration,
    queue_max_messages: usize,
    queue_max_bytes: usize,
    queue_full: QueueFull,
    backoff: Backoff,
    phase: Phase<S>,
    events: VecDeque<Event>,
    queue: VecDeque<Message>,
    queued_bytes: usize,
    dropped: u64,
    /// Attempts since the last open connection.
    attempt: u32,
    /// Waits since the last open connection.
    waits: u32,
    stream_waker: Option<Waker>,
}

impl<S> fmt::Debug for ReconnectingClient<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ReconnectingClient")
            .field("state", &self.state())
            .field("attempt", &self.attempt)
            .field("queued", &self.queue.len())
            .field("queued_bytes", &self.queued_bytes)
            .field("dropped", &self.dropped)
            .finish_non_exhaustive()
    }
}

impl<S> ReconnectingClient<S> {
    /// Where the client is now.
    pub fn state(&self) -> ClientState {
        match &self.phase {
            Phase::Start | Phase::Connecting(_) => ClientState::Connecting,
            Phase::Waiting(_) => ClientState::Waiting,
            Phase::Open { .. } => ClientState::Open,
            Phase::Closing { .. } => ClientState::Closing,
            Phase::Done => ClientState::Closed,
        }
    }

    /// Messages waiting in the queue.
    pub fn queued(&self) -> usize {
        self.queue.len()
    }

    /// Payload bytes waiting in the queue.
    pub fn queued_bytes(&self) -> usize {
        self.queued_bytes
    }

    /// Messages dropped so far because the queue was full ([`QueueFull::DropOldest`] and
    /// [`QueueFull::DropNewest`]).
    pub fn dropped(&self) -> u64 {
        self.dropped
    }

    /// The open connection, if there is one.
    pub fn get_ref(&self) -> Option<&WebSocket<S>> {
        match &self.phase {
            Phase::Open { ws, .. } => Some(ws),
            _ => None,
        }
    }
}

impl ReconnectingClient<MaybeTlsStream> {
    /// A client for `url` (`ws://`, or `wss://` with the `rustls` feature), connecting with
    /// `config.request` through [`connect_request`]. Nothing is connected until the stream is
    /// first polled.
    ///
    /// Errors: the URL ([`Error::InvalidUrl`]) and a config that makes no sense
    /// ([`Error::Usage`] with `InvalidConfig`: an `initial_delay` under 1 ms, `max_delay` below it,
    /// `max_attempts` of `Some(0)`, a zero `hook_timeout`).
    pub fn new(url: &str, config: ReconnectConfig) -> Result<Self, Error> {
        let u = Url::parse(url)?;
        if u.tls && !cfg!(feature = "rustls") {
            return Err(UrlError::TlsNotEnabled.into());
        }
        let url = url.to_string();
        let request = config.request.clone();
        let connector = move || -> ConnectFuture<MaybeTlsStream> {
            let url = url.clone();
            let request = request.clone();
            Box::pin(async move { connect_request(&url, request).await })
        };
        ReconnectingClient::with_connector(connector, config)
    }
}

impl<S> ReconnectingClient<S>
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    /// A client whose connections come from `connector` (called for every attempt): another
    /// transport, a URL that changes, a connection set up by hand. `config.request` is not
    /// used.
    ///
    /// ```no_run
    /// use ws_tokio::reconnect::{ConnectFuture, ReconnectConfig, ReconnectingClient};
    /// use ws_tokio::{ClientRequest, MaybeTlsStream};
    ///
    /// let client = ReconnectingClient::with_connector(
    ///     || -> ConnectFuture<MaybeTlsStream> {
    ///         Box::pin(ws_tokio::connect_request("ws://127.0.0.1:9001/", ClientRequest::default()))
    ///     },
    ///     ReconnectConfig::default(),
    /// )?;
    /// # Ok::<(), ws_tokio::Error>(())
    /// ```
    pub fn with_connector<F>(connector: F, config: ReconnectConfig) -> Result<Self, Error>
    where
        F: FnMut() -> ConnectFuture<S> + Send + 'static,
    {
        config.validate()?;
        Ok(ReconnectingClient {
            connector: Box::new(connector),
            hook: None,
            backoff: config.backoff()?,
            no_retry_codes: config.no_retry_codes,
            retry_if: config.retry_if,
            max_attempts: config.max_attempts,
            hook_timeout: config.hook_timeout,
            queue_max_messages: config.queue_max_messages,
            queue_max_bytes: config.queue_max_bytes,
            queue_full: config.queue_full,
            phase: Phase::Start,
            events: VecDeque::new(),
            queue: VecDeque::new(),
            queued_bytes: 0,
            dropped: 0,
            attempt: 0,
            waits: 0,
            stream_waker: None,
        })
    }

    /// Runs `hook` after every connect, before the queued messages go out and before
    /// [`Event::Open`]: to authenticate, re-subscribe, ask for what was missed. It gets the
    /// connection and the server's response; an error (or running past
    /// [`hook_timeout`](ReconnectConfig::hook_timeout)) counts as a failed attempt. Messages
    /// it receives are its own.
    ///
    /// ```no_run
    /// # fn f(client: ws_tokio::reconnect::ReconnectingClient) {
    /// use ws_tokio::Message;
    ///
    /// let client = client.on_connect(|ws, _response| {
    ///     Box::pin(async move {
    ///         ws.send(Message::text("login secret")).await?;
    ///         match ws.recv().await {
    ///             Some(Ok(Message::Text(t))) if t.as_str() == "welcome" => Ok(()),
    ///             _ => Err(ws_tokio::Error::Closed),
    ///         }
    ///     })
    /// });
    /// # }
    /// ```
    pub fn on_connect<F>(mut self, hook: F) -> Self
    where
        F: for<'a> FnMut(&'a mut WebSocket<S>, &'a Response) -> HookFuture<'a> + Send + 'static,
    {
        self.hook = Some(Box::new(hook));
        self
    }

    /// Closes for good: an open connection runs the close handshake with `frame` (`None`:
    /// 1000), an attempt under way or a wait is abandoned, the queue is discarded. The stream
    /// then gives a last [`Event::Closed`] and ends. `Ok` when the close handshake (if any)
    /// completed.
    pub async fn close(&mut self, frame: Option<CloseFrame>) -> Result<(), Error> {
        self.begin_close(frame);
        poll_fn(|cx| self.poll_closing(cx)).await
    }

    /// Receives the next event; `None` once the client has stopped. See the `Stream` impl.
    pub async fn next_event(&mut self) -> Option<Event> {
        poll_fn(|cx| self.poll_event(cx)).await
    }

    fn begin_close(&mut self, frame: Option<CloseFrame>) {
        self.queue.clear();
        self.queued_bytes = 0;
        match std::mem::replace(&mut self.phase, Phase::Done) {
            Phase::Open { mut ws, .. } => {
                let frame = frame.or_else(|| Some(CloseFrame::new(CloseCode::NORMAL, "")));
                // Fails only when the connection can no longer send: its end comes next anyway.
                let _ = Pin::new(&mut ws).start_send(Message::Close(frame.clone()));
                self.phase = Phase::Closing { ws, frame };
            }
            Phase::Closing { ws, frame: f } => self.phase = Phase::Closing { ws, frame: f },
            Phase::Done => {}
            Phase::Start | Phase::Waiting(_) | Phase::Connecting(_) => {
                let (code, reason) = frame.map_or((CloseCode::NORMAL, Utf8Bytes::default()), |f| {
                    (f.code, f.reason)
                });
                self.events.push_back(Event::Closed {
                    code,
                    reason,
                    error: None,
                    retry_in: None,
                });
            }
        }
        self.wake_stream();
    }

    /// Drives a close under way to its end; `Ready` at once when there is none.
    fn poll_closing(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Error>> {
        let Phase::Closing { ws, .. } = &mut self.phase else {
            return Poll::Ready(Ok(()));
        };
        let result = ready!(Pin::new(ws).poll_close(cx));
        let Phase::Closing { frame, .. } = std::mem::replace(&mut self.phase, Phase::Done) else {
            unreachable!("the phase was Closing")
        };
        let (code, reason) = frame.map_or((CloseCode::NORMAL, Utf8Bytes::default()), |f| {
            (f.code, f.reason)
        });
        let (error, ret) = match result {
            Ok(()) => (None, Ok(())),
            Err(e) => {
                let copy = copy_error(&e);
                (Some(e), Err(copy))
            }
        };
        self.events.push_back(Event::Closed {
            code,
            reason,
            error,
            retry_in: None,
        });
        self.wake_stream();
        Poll::Ready(ret)
    }

    fn wake_stream(&mut self) {
        if let Some(w) = self.stream_waker.take() {
            w.wake();
        }
    }

    fn start_attempt(&mut self) {
        self.attempt += 1;
        self.events.push_back(Event::Connecting {
            attempt: self.attempt,
        });
        let connect = (self.connector)();
        let mut hook = self.hook.take();
        let hook_timeout = self.hook_timeout;
        self.phase = Phase::Connecting(Box::pin(async move {
            let result = async {
                let (mut ws, response) = connect.await?;
                if let Some(h) = hook.as_mut() {
                    match tokio::time::timeout(hook_timeout, h(&mut ws, &response)).await {
                        Ok(r) => r?,
                        Err(_) => return Err(Error::Timeout(TimeoutKind::Handshake)),
                    }
                }
                Ok((ws, response))
            }
            .await;
            (hook, result)
        }));
    }

    /// After a failure: wait and try again, or stop.
    fn after_failure(
        &mut self,
        code: CloseCode,
        reason: Utf8Bytes,
        error: Option<Error>,
        retry: bool,
    ) {
        let retry_in = if retry {
            let wait = self.backoff.delay(self.waits);
            self.waits = self.waits.saturating_add(1);
            self.phase = Phase::Waiting(Box::pin(tokio::time::sleep(wait)));
            Some(wait)
        } else {
            self.phase = Phase::Done;
            self.queue.clear();
            self.queued_bytes = 0;
            None
        };
        self.events.push_back(Event::Closed {
            code,
            reason,
            error,
            retry_in,
        });
    }

    fn attempt_failed(&mut self, e: Error) {
        let retry = (self.retry_if)(&e) && self.max_attempts.is_none_or(|m| self.attempt < m);
        self.after_failure(CloseCode::ABNORMAL, Utf8Bytes::default(), Some(e), retry);
    }

    /// The open connection ended: with the server's close frame (if one came) and an error
    /// (if it failed).
    fn connection_ended(&mut self, peer_close: Option<Option<CloseFrame>>, error: Option<Error>) {
        let (code, reason, by_server) = match (peer_close, &error) {
            (Some(Some(f)), _) => (f.code, f.reason, true),
            (Some(None), _) => (CloseCode::NO_STATUS, Utf8Bytes::default(), true),
            (None, Some(e)) => (
                e.close_code_sent().unwrap_or(CloseCode::ABNORMAL),
                Utf8Bytes::default(),
                false,
            ),
            (None, None) => (CloseCode::ABNORMAL, Utf8Bytes::default(), false),
        };
        let refused_by_code = by_server && self.no_retry_codes.iter().any(|r| r.contains(&code.0));
        let retry = !refused_by_code && error.as_ref().is_none_or(|e| (self.retry_if)(e));
        self.attempt = 0;
        self.waits = 0;
        self.after_failure(code, reason, error, retry);
    }

    /// Moves queued messages into the open connection while it has room; `Ready(Ok)` once the
    /// queue is empty. An error means the connection can no longer send.
    fn poll_drain(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Error>> {
        let Phase::Open { ws, broken, .. } = &mut self.phase else {
            return Poll::Ready(Ok(()));
        };
        if *broken {
            return Poll::Ready(Err(Error::Closed));
        }
        let mut ws = Pin::new(ws);
        while let Some(front) = self.queue.front() {
            if let Err(e) = ready!(ws.as_mut().poll_ready(cx)) {
                *broken = true;
                return Poll::Ready(Err(e));
            }
            let len = front.len();
            let msg = self.queue.pop_front().expect("the queue has a front");
            self.queued_bytes -= len;
            let keep = msg.clone();
            if let Err(e) = ws.as_mut().start_send(msg) {
                // Not taken: it waits for the next connection, first in line.
                self.queue.push_front(keep);
                self.queued_bytes += len;
                *broken = true;
                return Poll::Ready(Err(e));
            }
        }
        Poll::Ready(Ok(()))
    }

    /// Puts a message in the queue, by the policy when it is full.
    fn enqueue(&mut self, msg: Message) -> Result<(), Error> {
        if !matches!(msg, Message::Text(_) | Message::Binary(_)) {
            // Pings and pongs mean nothing to the next connection.
            return Ok(());
        }
        let len = msg.len();
        let fits = |q: &Self| {
            q.queue.len() < q.queue_max_messages && q.queued_bytes + len <= q.queue_max_bytes
        };
        if !fits(self) {
            match self.queue_full {
                QueueFull::Error => {
                    return Err(Error::QueueFull {
                        messages: self.queue.len(),
                        bytes: self.queued_bytes,
                    });
                }
                QueueFull::DropNewest => {
                    self.dropped += 1;
                    return Ok(());
                }
                QueueFull::DropOldest => {
                    if len > self.queue_max_bytes || self.queue_max_messages == 0 {
                        self.dropped += 1;
                        return Ok(());
                    }
                    while !fits(self) {
                        let old = self.queue.pop_front().expect("a full queue has messages");
                        self.queued_bytes -= old.len();
                        self.dropped += 1;
                    }
                }
            }
        }
        self.queued_bytes += len;
        self.queue.push_back(msg);
        Ok(())
    }

    fn poll_event(&mut self, cx: &mut Context<'_>) -> Poll<Option<Event>> {
        self.stream_waker = Some(cx.waker().clone());
        loop {
            if let Some(event) = self.events.pop_front() {
                return Poll::Ready(Some(event));
            }
            match &mut self.phase {
                Phase::Done => return Poll::Ready(None),
                Phase::Start => self.start_attempt(),
                Phase::Waiting(sleep) => {
                    ready!(sleep.as_mut().poll(cx));
                    self.start_attempt();
                }
                Phase::Connecting(attempt) => {
                    let (hook, result) = ready!(attempt.as_mut().poll(cx));
                    self.hook = hook;
                    match result {
                        Ok((ws, response)) => {
                            self.attempt = 0;
                            self.waits = 0;
                            self.phase = Phase::Open {
                                ws,
                                peer_close: None,
                                broken: false,
                            };
                            self.events.push_back(Event::Open { response });
                        }
                        Err(e) => self.attempt_failed(e),
                    }
                }
                Phase::Closing { .. } => {
                    // The close's own result is in the Closed event it queues.
                    let _ = ready!(self.poll_closing(cx));
                }
                Phase::Open { .. } => {
                    // Queued messages first (a failure shows in the stream below).
                    let _ = self.poll_drain(cx);
                    let Phase::Open { ws, peer_close, .. } = &mut self.phase else {
                        unreachable!("the phase is Open")
                    };
                    match ready!(ws.poll_recv(cx)) {
                        Some(Ok(Message::Close(frame))) => *peer_close = Some(frame),
                        Some(Ok(msg)) => return Poll::Ready(Some(Event::Message(msg))),
                        end => {
                            let error = end.and_then(Result::err);
                            let peer_close = peer_close.take();
                            self.connection_ended(peer_close, error);
                        }
                    }
                }
            }
        }
    }
}

/// An error to return where the original goes into an event.
fn copy_error(e: &Error) -> Error {
    match e {
        Error::Io(io) => Error::Io(std::io::Error::new(io.kind(), io.to_string())),
        Error::Timeout(t) => Error::Timeout(*t),
        Error::PeerVanished => Error::PeerVanished,
        _ => Error::Closed,
    }
}

impl<S> Stream for ReconnectingClient<S>
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    type Item = Event;

    /// The next event; `None` once the client has stopped (after a last [`Event::Closed`]
    /// with `retry_in: None`).
    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Event>> {
        self.get_mut().poll_event(cx)
    }
}

impl<S> Sink<Message> for ReconnectingClient<S>
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    type Error = Error;

    /// Ready at once while disconnected (the message will be queued); on an open connection,
    /// once the queue has gone out and the connection's write buffer has room.
    /// [`Error::Closed`] once the client has stopped.
    fn poll_ready(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Result<(), Error>> {
        let this = self.get_mut();
        match &mut this.phase {
            Phase::Done | Phase::Closing { .. } => Poll::Ready(Err(Error::Closed)),
            Phase::Open { broken: true, .. } => Poll::Ready(Ok(())),
            Phase::Open { .. } => {
                if ready!(this.poll_drain(cx)).is_err() {
                    this.wake_stream();
                    return Poll::Ready(Ok(()));
                }
                let Phase::Open { ws, broken, .. } = &mut this.phase else {
                    unreachable!("the phase is Open")
                };
                if ready!(Pin::new(ws).poll_ready(cx)).is_err() {
                    *broken = true;
                    this.wake_stream();
                }
                Poll::Ready(Ok(()))
            }
            Phase::Start | Phase::Waiting(_) | Phase::Connecting(_) => Poll::Ready(Ok(())),
        }
    }

    /// Sends on the open connection, or queues while there is none (or while older queued
    /// messages are still going out). [`Error::QueueFull`] with [`QueueFull::Error`];
    /// [`Error::Closed`] once the client has stopped. `Message::Close` closes the client
    /// for good, as [`close`](ReconnectingClient::close) does.
    fn start_send(self: Pin<&mut Self>, msg: Message) -> Result<(), Error> {
        let this = self.get_mut();
        if let Message::Close(frame) = msg {
            if matches!(this.phase, Phase::Done | Phase::Closing { .. }) {
                return Err(Error::Closed);
            }
            this.begin_close(frame);
            return Ok(());
        }
        let queue_empty = this.queue.is_empty();
        match &mut this.phase {
            Phase::Done | Phase::Closing { .. } => Err(Error::Closed),
            Phase::Open {
                ws, broken: false, ..
            } if queue_empty => {
                let keep = msg.clone();
                match Pin::new(ws).start_send(msg) {
                    Ok(()) => Ok(()),
                    Err(_) => {
                        if let Phase::Open { broken, .. } = &mut this.phase {
                            *broken = true;
                        }
                        this.wake_stream();
                        this.enqueue(keep)
                    }
                }
            }
            _ => this.enqueue(msg),
        }
    }

    /// Writes out the open connection's buffer (after the queue); `Ready(Ok)` at once while
    /// disconnected. A connection that fails here ends (the stream reports it); what its buffer
    /// held is lost.
    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Result<(), Error>> {
        let this = self.get_mut();
        match &mut this.phase {
            Phase::Done => Poll::Ready(Ok(())),
            Phase::Closing { .. } => this.poll_closing(cx),
            Phase::Open { broken: true, .. } => Poll::Ready(Ok(())),
            Phase::Open { .. } => {
                if ready!(this.poll_drain(cx)).is_err() {
                    this.wake_stream();
                    return Poll::Ready(Ok(()));
                }
                let Phase::Open { ws, broken, .. } = &mut this.phase else {
                    unreachable!("the phase is Open")
                };
                if ready!(Pin::new(ws).poll_flush(cx)).is_err() {
                    *broken = true;
                    this.wake_stream();
                }
                Poll::Ready(Ok(()))
            }
            Phase::Start | Phase::Waiting(_) | Phase::Connecting(_) => Poll::Ready(Ok(())),
        }
    }

    /// Closes for good with 1000, as [`close`](ReconnectingClient::close) does.
    fn poll_close(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Result<(), Error>> {
        let this = self.get_mut();
        if !matches!(this.phase, Phase::Closing { .. } | Phase::Done) {
            this.begin_close(None);
        }
        this.poll_closing(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: Duration = Duration::from_millis(1);

    #[test]
    fn ceilings_double_up_to_the_cap() {
        let b = Backoff::new(100 * MS, 5000 * MS, Jitter::None, 1);
        let got: Vec<_> = (0..8).map(|n| b.ceiling(n)).collect();
        let want: Vec<_> = [100, 200, 400, 800, 1600, 3200, 5000, 5000]
            .iter()
            .map(|&m| m * MS)
            .collect();
        assert_eq!(got, want);
        // No overflow however many waits came before.
        for n in [63, 64, 65, 127, 128, u32::MAX] {
            assert_eq!(b.ceiling(n), 5000 * MS, "n = {n}");
        }
        let huge = Backoff::new(Duration::from_secs(1), Duration::MAX, Jitter::Full, 1);
        assert_eq!(huge.ceiling(u32::MAX), Duration::MAX);
        let mut huge = huge;
        let _ = huge.delay(u32::MAX); // does not panic
    }

    #[test]
    fn jitter_stays_in_its_bounds_and_spreads() {
        for (jitter, low_fraction) in [(Jitter::Full, 0.0), (Jitter::Equal, 0.5)] {
            let mut b = Backoff::new(100 * MS, 3000 * MS, jitter, 42);
            for n in 0..10 {
                let ceiling = b.ceiling(n);
                let low = ceiling.mul_f64(low_fraction);
                let draws: Vec<Duration> = (0..500).map(|_| b.delay(n)).collect();
                assert!(
                    draws.iter().all(|d| *d >= low && *d <= ceiling),
                    "{jitter:?} n={n}: outside [{low:?}, {ceiling:?}]"
                );
                // Spread over the window: some in its lower and some in its upper quarter.
                let span = ceiling - low;
                assert!(
                    draws.iter().any(|d| *d < low + span / 4),
                    "{jitter:?} n={n}"
                );
                assert!(
                    draws.iter().any(|d| *d > ceiling - span / 4),
                    "{jitter:?} n={n}"
                );
            }
        }
        let mut b = Backoff::new(100 * MS, 3000 * MS, Jitter::None, 42);
        assert_eq!(b.delay(3), 800 * MS);
    }

    #[test]
    fn the_same_seed_draws_the_same_waits() {
        let draws = |seed| {
            let mut b = Backoff::new(100 * MS, 3000 * MS, Jitter::Full, seed);
            (0..20).map(|n| b.delay(n)).collect::<Vec<_>>()
        };
        assert_eq!(draws(7), draws(7));
        assert_ne!(draws(7), draws(8));
    }

    #[test]
    fn configs_that_make_no_sense_are_refused() {
        let connector =
            || -> ConnectFuture<tokio::io::DuplexStream> { Box::pin(async { Err(Error::Closed) }) };
        let bad = [
            ReconnectConfig::default().with_delays(Duration::ZERO, Duration::from_secs(1)),
            ReconnectConfig::default().with_delays(Duration::from_secs(2), Duration::from_secs(1)),
            ReconnectConfig::default().with_max_attempts(Some(0)),
            ReconnectConfig::default().with_hook_timeout(Duration::ZERO),
        ];
        for config in bad {
            let r = ReconnectingClient::with_connector(connector, config.clone());
            assert!(
                matches!(r, Err(Error::Usage(Usage::InvalidConfig))),
                "{config:?}"
            );
        }
        assert!(ReconnectingClient::with_connector(connector, ReconnectConfig::default()).is_ok());
        assert!(matches!(
            ReconnectingClient::new("http://x/", ReconnectConfig::default()),
            Err(Error::InvalidUrl(_))
        ));
    }

    #[test]
    fn default_retry_rules() {
        use crate::proxy::ProxyError;
        let yes = [
            Error::Io(std::io::Error::from(std::io::ErrorKind::ConnectionRefused)),
            Error::Timeout(TimeoutKind::Handshake),
            Error::PeerVanished,
            Error::Rejected { status: 503 },
            Error::Rejected { status: 429 },
            Error::Proxy(ProxyError::Refused { status: 502 }),
            Error::Proxy(ProxyError::SocksRefused { reply: 5 }),
            Error::Proxy(ProxyError::Timeout),
        ];
        for e in &yes {
            assert!(default_retry_if(e), "{e:?}");
        }
        let no = [
            Error::Rejected { status: 401 },
            Error::Rejected { status: 404 },
            Error::Rejected { status: 200 },
            Error::InvalidUrl(UrlError::MissingHost),
            Error::Usage(Usage::InvalidConfig),
            Error::Handshake(ws_proto::HandshakeError::MalformedHttp),
            Error::Proxy(ProxyError::Refused { status: 407 }),
            Error::Proxy(ProxyError::SocksAuthFailed { status: 1 }),
            Error::Proxy(ProxyError::UnsupportedScheme("ftp".into())),
        ];
        for e in &no {
            assert!(!default_retry_if(e), "{e:?}");
        }
    }

    #[test]
    fn the_client_is_send_and_unpin() {
        fn check<T: Send + Unpin>() {}
        check::<ReconnectingClient>();
        check::<ReconnectingClient<tokio::io::DuplexStream>>();
    }
}
