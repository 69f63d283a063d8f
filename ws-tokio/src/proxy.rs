//! Client connections through a proxy: HTTP `CONNECT` (RFC 9110 §9.3.6, Basic credentials) and
//! SOCKS5 (RFC 1928, username/password per RFC 1929).
//!
//! A [`Proxy`] opens a TCP tunnel to the target and hands back the [`TcpStream`] positioned
//! right after the proxy's answer, ready for TLS or the WebSocket handshake:
//!
//! ```no_run
//! # async fn run() -> Result<(), Box<dyn std::error::Error>> {
//! use ws_tokio::proxy::Proxy;
//!
//! let proxy = Proxy::parse("socks5h://user:secret@127.0.0.1:1080")?;
//! let tcp = proxy.connect("example.com", 80).await?;
//! let (mut ws, _response) =
//!     ws_tokio::client(tcp, ws_tokio::ClientRequest::new("example.com", "/")).await?;
//! # Ok(()) }
//! ```
//!
//! [`Proxy::from_env`] picks the proxy the way curl and python-websockets do, from
//! `https_proxy` (for `wss://`), `http_proxy` (for `ws://`), `all_proxy` and `no_proxy`.
//!
//! Proxy URLs:
//!
//! | URL | what |
//! |---|---|
//! | `http://[user:pass@]host[:port]` | HTTP `CONNECT`, port 80 by default; credentials go in `Proxy-Authorization: Basic` |
//! | `host:port` | the same (no scheme means `http`, as in curl) |
//! | `socks5://[user:pass@]host[:port]` | SOCKS5, port 1080 by default; the target's name is resolved here and its address sent |
//! | `socks5h://[user:pass@]host[:port]` | SOCKS5 with the target's name sent to the proxy, which resolves it |
//!
//! Credentials in a URL are percent-decoded (`p%40ss` is `p@ss`). TLS to the proxy itself
//! (`https://` proxies) is not supported.

use std::fmt;
use std::io;
use std::net::{IpAddr, SocketAddr};
use std::str::FromStr;
use std::time::Duration;

use base64::Engine as _;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;

/// The default bound on the proxy's `CONNECT` answer (status line and headers): 8 KiB.
pub const DEFAULT_MAX_RESPONSE_HEAD: usize = 8 * 1024;

/// The default bound on [`Proxy::connect`]: reaching the proxy, the proxy's handshake and its
/// connection to the target, together.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(30);

/// At most this many header lines in a `CONNECT` answer.
const MAX_RESPONSE_HEADERS: usize = 64;

/// The protocol spoken to a proxy.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ProxyKind {
    /// HTTP `CONNECT` (`http://`).
    Http,
    /// SOCKS5, the target's name resolved locally (`socks5://`).
    Socks5,
    /// SOCKS5, the target's name sent to the proxy (`socks5h://`).
    Socks5h,
}

impl ProxyKind {
    /// The URL scheme: `http`, `socks5` or `socks5h`.
    pub fn scheme(self) -> &'static str {
        match self {
            ProxyKind::Http => "http",
            ProxyKind::Socks5 => "socks5",
            ProxyKind::Socks5h => "socks5h",
        }
    }

    fn default_port(self) -> u16 {
        match self {
            ProxyKind::Http => 80,
            ProxyKind::Socks5 | ProxyKind::Socks5h => 1080,
        }
    }
}

/// A proxy to open client connections through.
///
/// Built from a URL ([`Proxy::parse`], or `str::parse`), from the environment
/// ([`Proxy::from_env`]) or from parts ([`Proxy::new`]); tuned with the `with_*` setters.
///
/// ```
/// use ws_tokio::proxy::{Proxy, ProxyKind};
///
/// let proxy: Proxy = "http://alice:p%40ss@127.0.0.1:3128".parse()?;
/// assert_eq!(proxy.kind(), ProxyKind::Http);
/// assert_eq!((proxy.host(), proxy.port()), ("127.0.0.1", 3128));
/// assert_eq!(proxy.username(), Some("alice"));
/// // The password is never printed.
/// assert!(!format!("{proxy:?}").contains("p@ss"));
/// # Ok::<(), ws_tokio::proxy::ProxyError>(())
/// ```
#[derive(Clone, PartialEq, Eq)]
pub struct Proxy {
    kind: ProxyKind,
    host: String,
    port: u16,
    credentials: Option<Credentials>,
    timeout: Option<Duration>,
    max_response_head: usize,
}

#[derive(Clone, PartialEq, Eq)]
struct Credentials {
    username: String,
    password: String,
}

impl fmt::Debug for Proxy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Proxy")
            .field("kind", &self.kind)
            .field("host", &self.host)
            .field("port", &self.port)
            .field("username", &self.username())
            .field("timeout", &self.timeout)
            .field("max_response_head", &self.max_response_head)
            .finish_non_exhaustive()
    }
}

impl FromStr for Proxy {
    type Err = ProxyError;

    fn from_str(url: &str) -> Result<Proxy, ProxyError> {
        Proxy::parse(url)
    }
}

impl Proxy {
    /// A proxy of `kind` at `host:port` (an IPv6 address with or without brackets), without
    /// credentials.
    pub fn new(kind: ProxyKind, host: impl Into<String>, port: u16) -> Proxy {
        let host = host.into();
        let host = match unbracket(&host) {
            Some(inner) => inner.to_string(),
            None => host,
        };
        Proxy {
            kind,
            host,
            port,
            credentials: None,
            timeout: Some(DEFAULT_TIMEOUT),
            max_response_head: DEFAULT_MAX_RESPONSE_HEAD,
        }
    }

    /// Parses a proxy URL (see the [module](self) docs for the forms).
    ///
    /// Errors: [`ProxyError::UnsupportedScheme`] for a scheme other than `http`, `socks5` and
    /// `socks5h`; [`ProxyError::InvalidUrl`] for anything else that is not such a URL.
    pub fn parse(url: &str) -> Result<Proxy, ProxyError> {
        let url = url.trim();
        let uri: http::Uri = url
            .parse()
            .map_err(|_| ProxyError::InvalidUrl("not a URL"))?;
        let kind = match uri.scheme_str() {
            None => ProxyKind::Http,
            Some(s) if s.eq_ignore_ascii_case("http") => ProxyKind::Http,
            Some(s) if s.eq_ignore_ascii_case("socks5") => ProxyKind::Socks5,
            Some(s) if s.eq_ignore_ascii_case("socks5h") => ProxyKind::Socks5h,
            Some(s) => return Err(ProxyError::UnsupportedScheme(s.to_string())),
        };
        let authority = uri.authority().ok_or(ProxyError::InvalidUrl("no host"))?;
        let (userinfo, host_port) = match authority.as_str().rsplit_once('@') {
            Some((u, h)) => (Some(u), h),
            None => (None, authority.as_str()),
        };
        let host = authority.host();
        // `Authority::port` does not tell an absent port from one out of range: read what
        // follows the host.
        let port = match host_port.get(host.len()..) {
            Some("") => kind.default_port(),
            Some(p) => p
                .strip_prefix(':')
                .and_then(|p| p.parse::<u16>().ok())
                .ok_or(ProxyError::InvalidUrl("bad port"))?,
            None => return Err(ProxyError::InvalidUrl("bad host")),
        };
        let host = unbracket(host).unwrap_or(host);
        if host.is_empty() {
            return Err(ProxyError::InvalidUrl("no host"));
        }
        let mut proxy = Proxy::new(kind, host, port);
        if let Some(userinfo) = userinfo {
            let (user, pass) = userinfo.split_once(':').unwrap_or((userinfo, ""));
            let decode = |s: &str| {
                percent_encoding::percent_decode_str(s)
                    .decode_utf8()
                    .map(|s| s.into_owned())
                    .map_err(|_| ProxyError::InvalidUrl("credentials are not UTF-8"))
            };
            proxy = proxy.with_credentials(decode(user)?, decode(pass)?);
        }
        Ok(proxy)
    }

    /// The proxy for a connection to `host:port` (`tls`: a `wss://` URL) named by the
    /// process environment, or `None` for a direct connection.
    ///
    /// See [`from_env_with`](Proxy::from_env_with) for the rules; this reads
    /// [`std::env::var`].
    pub fn from_env(tls: bool, host: &str, port: u16) -> Result<Option<Proxy>, ProxyError> {
        Proxy::from_env_with(tls, host, port, |name| std::env::var(name).ok())
    }

    /// The proxy for a connection to `host:port` (`tls`: a `wss://` URL) named by the variables
    /// that `lookup` returns, or `None` for a direct connection.
    ///
    /// The rules are curl's (and python-websockets' through `urllib`):
    ///
    /// - `wss://` uses `https_proxy`, then `HTTPS_PROXY`; `ws://` uses `http_proxy`, then
    ///   `HTTP_PROXY` (not read when `REQUEST_METHOD` is set: in a CGI program it comes from a
    ///   request's `Proxy:` header). Then `all_proxy`, then `ALL_PROXY`. The lower-case name
    ///   wins; an empty value counts as unset.
    /// - `no_proxy`, then `NO_PROXY`: a list of entries separated by commas or blanks; the
    ///   target goes direct when one matches. `*` (alone) matches every host. A name matches
    ///   itself and its subdomains (`example.com` and `.example.com` both match
    ///   `example.com` and `www.example.com`, not `notexample.com`), ignoring case and a
    ///   trailing dot. An IP address (IPv6 with or without brackets) matches that address, and
    ///   `10.0.0.0/8` or `fd00::/8` a network; a name never matches an address. An entry may end
    ///   in `:port` (`[::1]:8080` for IPv6) to match that port only.
    ///
    /// A proxy URL that does not parse is an error, not a silent direct connection.
    ///
    /// ```
    /// use ws_tokio::proxy::{Proxy, ProxyKind};
    ///
    /// let env = |name: &str| match name {
    ///     "https_proxy" => Some("socks5h://127.0.0.1:1080".to_string()),
    ///     "no_proxy" => Some("localhost, .internal.example".to_string()),
    ///     _ => None,
    /// };
    /// let proxy = Proxy::from_env_with(true, "example.com", 443, env)?.unwrap();
    /// assert_eq!(proxy.kind(), ProxyKind::Socks5h);
    /// assert!(Proxy::from_env_with(true, "db.internal.example", 443, env)?.is_none());
    /// assert!(Proxy::from_env_with(false, "example.com", 80, env)?.is_none()); // no http_proxy
    /// # Ok::<(), ws_tokio::proxy::ProxyError>(())
    /// ```
    pub fn from_env_with<F>(
        tls: bool,
        host: &str,
        port: u16,
        mut lookup: F,
    ) -> Result<Option<Proxy>, ProxyError>
    where
        F: FnMut(&str) -> Option<String>,
    {
        fn first<F: FnMut(&str) -> Option<String>>(
            lookup: &mut F,
            names: &[&str],
        ) -> Option<String> {
            names
                .iter()
                .find_map(|name| lookup(name).filter(|v| !v.trim().is_empty()))
        }
        let bypass = first(&mut lookup, &["no_proxy", "NO_PROXY"])
            .is_some_and(|list| no_proxy_matches(&list, host, port));
        if bypass {
            return Ok(None);
        }
        let names: &[&str] = if tls {
            &["https_proxy", "HTTPS_PROXY"]
        } else if lookup("REQUEST_METHOD").is_some() {
            &["http_proxy"]
        } else {
            &["http_proxy", "HTTP_PROXY"]
        };
        first(&mut lookup, names)
            .or_else(|| first(&mut lookup, &["all_proxy", "ALL_PROXY"]))
            .map(|url| Proxy::parse(&url))
            .transpose()
    }

    /// Uses these credentials: Basic for HTTP, RFC 1929 username/password for SOCKS5 (where
    /// the username must have 1 to 255 bytes and the password at most 255).
    pub fn with_credentials(
        mut self,
        username: impl Into<String>,
        password: impl Into<String>,
    ) -> Proxy {
        self.credentials = Some(Credentials {
            username: username.into(),
            password: password.into(),
        });
        self
    }

    /// Bounds [`connect`](Proxy::connect) as a whole (`None`: no bound, for a caller that puts
    /// its own around it). Default [`DEFAULT_TIMEOUT`].
    pub fn with_timeout(mut self, timeout: Option<Duration>) -> Proxy {
        self.timeout = timeout;
        self
    }

    /// Bounds the size of an HTTP proxy's `CONNECT` answer, status line and headers with their
    /// final blank line included. Default [`DEFAULT_MAX_RESPONSE_HEAD`].
    pub fn with_max_response_head(mut self, bytes: usize) -> Proxy {
        self.max_response_head = bytes;
        self
    }

    /// The protocol spoken to the proxy.
    pub fn kind(&self) -> ProxyKind {
        self.kind
    }

    /// The proxy's host: a name, or an IP address (IPv6 without brackets).
    pub fn host(&self) -> &str {
        &self.host
    }

    /// The proxy's port.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// The username sent to the proxy, if any.
    pub fn username(&self) -> Option<&str> {
        self.credentials.as_ref().map(|c| c.username.as_str())
    }

    /// The bound on [`connect`](Proxy::connect).
    pub fn timeout(&self) -> Option<Duration> {
        self.timeout
    }

    /// The bound on a `CONNECT` answer's head, in bytes.
    pub fn max_response_head(&self) -> usize {
        self.max_response_head
    }

    /// Opens a tunnel through the proxy to `host:port` (a name, or an IP address; IPv6 with or
    /// without brackets) and returns the stream to the proxy, positioned right after its answer:
    /// every byte the target sends comes next, ready for TLS or the WebSocket handshake.
    /// `TCP_NODELAY` is set on it.
    ///
    /// The whole operation is bounded by [`timeout`](Proxy::timeout) ([`ProxyError::Timeout`]).
    /// A proxy that says no gives [`ProxyError::Refused`] (HTTP, with the status: 407 when
    /// credentials are missing or wrong, 401 from some proxies for wrong ones) or [`ProxyError::SocksRefused`] (SOCKS5, with the reply
    /// code); [`ProxyError::is_auth_failure`] tells the refusals of credentials. Failed SOCKS5
    /// authentication gives [`ProxyError::SocksAuthFailed`] or
    /// [`ProxyError::SocksNoAcceptableAuth`].
    pub async fn connect(&self, host: &str, port: u16) -> Result<TcpStream, ProxyError> {
        match self.timeout {
            Some(t) => tokio::time::timeout(t, self.connect_inner(host, port))
                .await
                .map_err(|_| ProxyError::Timeout)?,
            None => self.connect_inner(host, port).await,
        }
    }

    async fn connect_inner(&self, host: &str, port: u16) -> Result<TcpStream, ProxyError> {
        let host = unbracket(host).unwrap_or(host);
        check_target(host)?;
        let bad_credentials = |c: &Credentials| {
            c.username.is_empty() || c.username.len() > 255 || c.password.len() > 255
        };
        if self.kind != ProxyKind::Http && self.credentials.as_ref().is_some_and(bad_credentials) {
            return Err(ProxyError::InvalidCredentials);
        }
        let target = match (self.kind, host.parse::<IpAddr>()) {
            (_, Ok(ip)) => Target::Addr(SocketAddr::new(ip, port)),
            (_, Err(_)) if host.contains(':') => return Err(ProxyError::InvalidTarget),
            (ProxyKind::Http, Err(_)) => Target::Name(host, port),
            (ProxyKind::Socks5h, Err(_)) if host.len() <= 255 => Target::Name(host, port),
            (ProxyKind::Socks5h, Err(_)) => return Err(ProxyError::InvalidTarget),
            (ProxyKind::Socks5, Err(_)) => {
                let resolve_error = |source| ProxyError::Resolve {
                    host: host.to_string(),
                    source,
                };
                let addr = tokio::net::lookup_host((host, port))
                    .await
                    .map_err(resolve_error)?
                    .next()
                    .ok_or_else(|| {
                        resolve_error(io::Error::new(io::ErrorKind::NotFound, "no address"))
                    })?;
                Target::Addr(addr)
            }
        };
        let mut tcp = TcpStream::connect((self.host.as_str(), self.port))
            .await
            .map_err(ProxyError::Connect)?;
        tcp.set_nodelay(true).map_err(ProxyError::Io)?;
        match self.kind {
            ProxyKind::Http => self.http_connect(&mut tcp, &target).await?,
            ProxyKind::Socks5 | ProxyKind::Socks5h => {
                socks5_handshake(&mut tcp, &target, self.credentials.as_ref()).await?
            }
        }
        Ok(tcp)
    }

    async fn http_connect(
        &self,
        tcp: &mut TcpStream,
        target: &Target<'_>,
    ) -> Result<(), ProxyError> {
        let authority = match target {
            Target::Addr(addr) => addr.to_string(),
            Target::Name(name, port) => format!("{name}:{port}"),
        };
        let mut request = format!("CONNECT {authority} HTTP/1.1\r\nHost: {authority}\r\n");
        if let Some(c) = &self.credentials {
            let token = base64::engine::general_purpose::STANDARD
                .encode(format!("{}:{}", c.username, c.password));
            request.push_str("Proxy-Authorization: Basic ");
            request.push_str(&token);
            request.push_str("\r\n");
        }
        request.push_str("\r\n");
        tcp.write_all(request.as_bytes()).await.map_err(io_error)?;
        let head = read_head(tcp, self.max_response_head).await?;
        let mut headers = [httparse::EMPTY_HEADER; MAX_RESPONSE_HEADERS];
        let mut response = httparse::Response::new(&mut headers);
        let status = match response.parse(&head) {
            Ok(httparse::Status::Complete(_)) => response.code.unwrap_or(0),
            Ok(httparse::Status::Partial) => {
                return Err(ProxyError::InvalidResponse("malformed HTTP answer"));
            }
            Err(httparse::Error::TooManyHeaders) => {
                return Err(ProxyError::InvalidResponse("too many header lines"));
            }
            Err(_) => return Err(ProxyError::InvalidResponse("malformed HTTP answer")),
        };
        // Any 2xx opens the tunnel (RFC 9110 §9.3.6); its Content-Length and
        // Transfer-Encoding, if any, mean nothing.
        if (200..300).contains(&status) {
            Ok(())
        } else {
            Err(ProxyError::Refused { status })
        }
    }
}

/// Which proxy a client connection made by [`connect_request`](crate::connect_request) (and
/// [`connect`](crate::connect), and the reconnecting client) goes through: the
/// [`ClientRequest::proxy`](crate::ClientRequest) setting.
///
/// The default is [`Environment`](ProxySetting::Environment), as in curl and in
/// python-websockets (whose `proxy=True` default reads the same variables): a program that runs
/// behind a corporate proxy works without code for it, and `no_proxy` keeps chosen hosts direct.
///
/// ```
/// use ws_tokio::ClientRequest;
/// use ws_tokio::proxy::{Proxy, ProxySetting};
///
/// let through = ClientRequest::default().proxy(Proxy::parse("socks5h://127.0.0.1:1080")?);
/// assert!(matches!(through.proxy, ProxySetting::Proxy(_)));
/// let direct = ClientRequest::default().proxy(ProxySetting::Direct);
/// assert_eq!(direct.proxy, ProxySetting::Direct);
/// assert_eq!(ClientRequest::default().proxy, ProxySetting::Environment);
/// # Ok::<(), ws_tokio::proxy::ProxyError>(())
/// ```
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub enum ProxySetting {
    /// The proxy the environment names for the URL, read at each connection
    /// ([`Proxy::from_env`]: `https_proxy` for `wss://`, `http_proxy` for `ws://`, `all_proxy`,
    /// `no_proxy`, lower case first); direct when it names none. A proxy URL there that does
    /// not parse fails the connection ([`Error::Proxy`](crate::Error::Proxy)).
    #[default]
    Environment,
    /// A direct connection, whatever the environment says.
    Direct,
    /// Through this proxy, for every host (`no_proxy` is not consulted, as in python-websockets
    /// when a proxy is given).
    Proxy(Proxy),
}

impl From<Proxy> for ProxySetting {
    fn from(proxy: Proxy) -> Self {
        ProxySetting::Proxy(proxy)
    }
}

impl ProxySetting {
    /// The proxy to use for `host:port` (`tls`: `wss://`), or `None` for a direct connection.
    pub fn resolve(&self, tls: bool, host: &str, port: u16) -> Result<Option<Proxy>, ProxyError> {
        match self {
            ProxySetting::Environment => Proxy::from_env(tls, host, port),
            ProxySetting::Direct => Ok(None),
            ProxySetting::Proxy(p) => Ok(Some(p.clone())),
        }
    }
}

/// Where the proxy is to connect.
#[derive(Debug)]
enum Target<'a> {
    Addr(SocketAddr),
    Name(&'a str, u16),
}

/// `[v6]` without its brackets.
fn unbracket(host: &str) -> Option<&str> {
    host.strip_prefix('[')?.strip_suffix(']')
}

/// A target host we can put in a `CONNECT` line or a SOCKS5 request: not empty, no blanks,
/// controls or URL delimiters (a colon only in an IPv6 address, checked by the caller).
fn check_target(host: &str) -> Result<(), ProxyError> {
    let bad = |b: u8| b <= b' ' || b == 0x7f || b"/?#@[]\\".contains(&b);
    if host.is_empty() || host.bytes().any(bad) {
        return Err(ProxyError::InvalidTarget);
    }
    Ok(())
}

fn io_error(e: io::Error) -> ProxyError {
    if e.kind() == io::ErrorKind::UnexpectedEof {
        ProxyError::Closed
    } else {
        ProxyError::Io(e)
    }
}

/// Reads an HTTP answer's head, at most `limit` bytes, and nothing after it: bytes are peeked
/// first and only the head is taken off the socket, so whatever the target sends next stays
/// there. Each peek sees only bytes not yet consumed, so this is two system calls per arriving
/// segment and never re-scans old bytes.
async fn read_head(tcp: &mut TcpStream, limit: usize) -> Result<Vec<u8>, ProxyError> {
    let mut head = Vec::with_capacity(limit.min(512));
    let mut chunk = [0u8; 1024];
    loop {
        let want = (limit - head.len()).min(chunk.len());
        if want == 0 {
            return Err(ProxyError::ResponseTooLarge { limit });
        }
        let n = tcp.peek(&mut chunk[..want]).await.map_err(io_error)?;
        if n == 0 {
            return Err(ProxyError::Closed);
        }
        let old = head.len();
        head.extend_from_slice(&chunk[..n]);
        let end = head_end(&head, old);
        let take = end.map_or(n, |end| end - old);
        tcp.read_exact(&mut chunk[..take]).await.map_err(io_error)?;
        if let Some(end) = end {
            head.truncate(end);
            return Ok(head);
        }
    }
}

/// The length of the head in `buf` (through its blank line: `\n\n` or `\n\r\n`), looking for its
/// last byte at `from` and after.
fn head_end(buf: &[u8], from: usize) -> Option<usize> {
    (from..buf.len()).find_map(|i| {
        let ends = buf[i] == b'\n'
            && ((i >= 1 && buf[i - 1] == b'\n')
                || (i >= 2 && buf[i - 1] == b'\r' && buf[i - 2] == b'\n'));
        ends.then_some(i + 1)
    })
}

/// The SOCKS5 client side (RFC 1928 §3-6, RFC 1929): method selection, username/password when
/// the proxy picks it, then CONNECT. Every answer has a fixed or length-prefixed size, so it is
/// read exactly and nothing after it.
async fn socks5_handshake<S: AsyncRead + AsyncWrite + Unpin>(
    s: &mut S,
    target: &Target<'_>,
    credentials: Option<&Credentials>,
) -> Result<(), ProxyError> {
    const VERSION: u8 = 5;
    const NO_AUTH: u8 = 0x00;
    const USER_PASS: u8 = 0x02;
    const NONE_ACCEPTABLE: u8 = 0xff;

    let greeting: &[u8] = match credentials {
        Some(_) => &[VERSION, 2, NO_AUTH, USER_PASS],
        None => &[VERSION, 1, NO_AUTH],
    };
    s.write_all(greeting).await.map_err(io_error)?;
    let mut choice = [0u8; 2];
    s.read_exact(&mut choice).await.map_err(io_error)?;
    if choice[0] != VERSION {
        return Err(ProxyError::InvalidResponse("not a SOCKS5 answer"));
    }
    match (choice[1], credentials) {
        (NO_AUTH, _) => {}
        (USER_PASS, Some(c)) => {
            let mut msg = Vec::with_capacity(3 + c.username.len() + c.password.len());
            msg.push(1);
            msg.push(c.username.len() as u8);
            msg.extend_from_slice(c.username.as_bytes());
            msg.push(c.password.len() as u8);
            msg.extend_from_slice(c.password.as_bytes());
            s.write_all(&msg).await.map_err(io_error)?;
            let mut answer = [0u8; 2];
            s.read_exact(&mut answer).await.map_err(io_error)?;
            // answer[0] is the subnegotiation version (1); like curl, only the status counts.
            if answer[1] != 0 {
                return Err(ProxyError::SocksAuthFailed { status: answer[1] });
            }
        }
        (NONE_ACCEPTABLE, _) => return Err(ProxyError::SocksNoAcceptableAuth),
        _ => {
            return Err(ProxyError::InvalidResponse(
                "SOCKS5 proxy chose an authentication method that was not offered",
            ));
        }
    }

    let mut request = Vec::with_capacity(7 + 255);
    request.extend_from_slice(&[VERSION, 0x01, 0x00]); // CONNECT, reserved
    let port = match *target {
        Target::Addr(SocketAddr::V4(a)) => {
            request.push(0x01);
            request.extend_from_slice(&a.ip().octets());
            a.port()
        }
        Target::Addr(SocketAddr::V6(a)) => {
            request.push(0x04);
            request.extend_from_slice(&a.ip().octets());
            a.port()
        }
        Target::Name(name, port) => {
            request.push(0x03);
            request.push(name.len() as u8);
            request.extend_from_slice(name.as_bytes());
            port
        }
    };
    request.extend_from_slice(&port.to_be_bytes());
    s.write_all(&request).await.map_err(io_error)?;

    let mut reply = [0u8; 4];
    s.read_exact(&mut reply).await.map_err(io_error)?;
    if reply[0] != VERSION {
        return Err(ProxyError::InvalidResponse("not a SOCKS5 answer"));
    }
    if reply[1] != 0 {
        return Err(ProxyError::SocksRefused { reply: reply[1] });
    }
    // The bound address: IPv4, IPv6 or a name of at most 255 bytes, then the port.
    let mut bound = [0u8; 255 + 2];
    let len = match reply[3] {
        0x01 => 4 + 2,
        0x04 => 16 + 2,
        0x03 => {
            let mut n = [0u8; 1];
            s.read_exact(&mut n).await.map_err(io_error)?;
            usize::from(n[0]) + 2
        }
        _ => return Err(ProxyError::InvalidResponse("unknown SOCKS5 address type")),
    };
    s.read_exact(&mut bound[..len]).await.map_err(io_error)?;
    Ok(())
}

/// Whether a `no_proxy` list names `host:port` (rules on [`Proxy::from_env_with`]).
fn no_proxy_matches(list: &str, host: &str, port: u16) -> bool {
    if list.trim() == "*" {
        return true;
    }
    let host = unbracket(host).unwrap_or(host);
    let ip = host.parse::<IpAddr>().ok();
    let name = host.strip_suffix('.').unwrap_or(host);
    list.split(|c: char| c == ',' || c.is_ascii_whitespace())
        .filter(|entry| !entry.is_empty())
        .any(|entry| {
            let (pattern, entry_port) = split_entry_port(entry);
            if entry_port.is_some_and(|p| p != port) {
                return false;
            }
            match ip {
                Some(ip) => ip_matches(pattern, ip),
                None => name_matches(pattern, name),
            }
        })
}

/// `host:port`, `[v6]:port`, `[v6]` into pattern and port; anything else is all pattern
/// (a bare IPv6 address has more than one colon and no port).
fn split_entry_port(entry: &str) -> (&str, Option<u16>) {
    if let Some(rest) = entry.strip_prefix('[') {
        return match rest.split_once(']') {
            Some((addr, "")) => (addr, None),
            Some((addr, tail)) => match tail.strip_prefix(':').and_then(|p| p.parse().ok()) {
                Some(port) => (addr, Some(port)),
                None => (entry, None),
            },
            None => (entry, None),
        };
    }
    match entry.split_once(':') {
        Some((h, p)) if !p.contains(':') => match p.parse() {
            Ok(port) => (h, Some(port)),
            Err(_) => (entry, None),
        },
        _ => (entry, None),
    }
}

/// An address or `address/bits` network against an IP address of the same family.
fn ip_matches(pattern: &str, ip: IpAddr) -> bool {
    let (addr, bits) = match pattern.split_once('/') {
        Some((addr, bits)) => match bits.parse::<u32>() {
            Ok(bits) => (addr, Some(bits)),
            Err(_) => return false,
        },
        None => (pattern, None),
    };
    let Ok(net) = addr.parse::<IpAddr>() else {
        return false;
    };
    let (net, ip, width) = match (net, ip) {
        (IpAddr::V4(n), IpAddr::V4(i)) => (u128::from(u32::from(n)), u128::from(u32::from(i)), 32),
        (IpAddr::V6(n), IpAddr::V6(i)) => (u128::from(n), u128::from(i), 128),
        _ => return false,
    };
    let bits = bits.unwrap_or(width);
    if bits > width {
        return false;
    }
    // Compare the top `bits` bits; a shift by the full width (a /0 network) matches all.
    (net ^ ip).checked_shr(width - bits).unwrap_or(0) == 0
}

/// A domain pattern (a leading and a trailing dot ignored) against a host name: the name itself
/// or a subdomain, ignoring ASCII case.
fn name_matches(pattern: &str, name: &str) -> bool {
    let pattern = pattern.strip_suffix('.').unwrap_or(pattern);
    let pattern = pattern.strip_prefix('.').unwrap_or(pattern).as_bytes();
    let name = name.as_bytes();
    if pattern.is_empty() || pattern.len() > name.len() {
        return false;
    }
    let cut = name.len() - pattern.len();
    name[cut..].eq_ignore_ascii_case(pattern) && (cut == 0 || name[cut - 1] == b'.')
}

/// Why a connection through a proxy failed.
#[derive(Debug)]
#[non_exhaustive]
pub enum ProxyError {
    /// The proxy URL is not one this module takes; says what is wrong with it (the URL itself is
    /// not repeated: it may hold a password).
    InvalidUrl(&'static str),
    /// The proxy URL's scheme is not `http`, `socks5` or `socks5h`.
    UnsupportedScheme(String),
    /// The target host cannot be sent to the proxy (empty, blanks or delimiters in it, or a name
    /// longer than SOCKS5's 255 bytes).
    InvalidTarget,
    /// SOCKS5 credentials out of RFC 1929's bounds (username 1 to 255 bytes, password at most
    /// 255).
    InvalidCredentials,
    /// The target's name did not resolve (`socks5://`, which resolves here).
    Resolve {
        /// The name.
        host: String,
        /// The resolver's error.
        source: io::Error,
    },
    /// The proxy could not be reached.
    Connect(io::Error),
    /// The connection to the proxy failed during the handshake.
    Io(io::Error),
    /// The proxy closed the connection before its answer was complete.
    Closed,
    /// The whole connection took longer than [`Proxy::timeout`].
    Timeout,
    /// The proxy's `CONNECT` answer was longer than [`Proxy::max_response_head`].
    ResponseTooLarge {
        /// The bound, in bytes.
        limit: usize,
    },
    /// The proxy's answer broke its protocol.
    InvalidResponse(&'static str),
    /// The HTTP proxy answered `CONNECT` with a status other than 2xx: 407 when credentials are
    /// needed or wrong (some proxies, tinyproxy among them, answer wrong ones with 401), 403
    /// when it does not allow the target, 500, 502 or 503 when it could not reach it.
    Refused {
        /// The HTTP status.
        status: u16,
    },
    /// The SOCKS5 proxy refused the connection with this reply code (RFC 1928 §6).
    SocksRefused {
        /// The reply code: 1 general failure, 2 not allowed by ruleset, 3 network
        /// unreachable, 4 host unreachable, 5 connection refused, 6 TTL expired, 7 command not
        /// supported, 8 address type not supported.
        reply: u8,
    },
    /// The SOCKS5 proxy rejected the username and password (RFC 1929) with this status.
    SocksAuthFailed {
        /// The status byte (not 0).
        status: u8,
    },
    /// The SOCKS5 proxy accepts none of the offered authentication methods: it wants
    /// credentials and none were given (or a method this client does not speak).
    SocksNoAcceptableAuth,
}

impl ProxyError {
    /// Whether the proxy turned the credentials (or their absence) down: HTTP 407 (or 401,
    /// which tinyproxy sends for wrong credentials), or a SOCKS5 authentication failure.
    pub fn is_auth_failure(&self) -> bool {
        matches!(
            self,
            ProxyError::Refused { status: 401 | 407 }
                | ProxyError::SocksAuthFailed { .. }
                | ProxyError::SocksNoAcceptableAuth
        )
    }
}

/// RFC 1928 §6's name for a SOCKS5 reply code.
fn socks_reply_name(reply: u8) -> &'static str {
    match reply {
        0x01 => "general SOCKS server failure",
        0x02 => "connection not allowed by ruleset",
        0x03 => "network unreachable",
        0x04 => "host unreachable",
        0x05 => "connection refused",
        0x06 => "TTL expired",
        0x07 => "command not supported",
        0x08 => "address type not supported",
        _ => "unassigned reply code",
    }
}

impl fmt::Display for ProxyError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ProxyError::InvalidUrl(why) => write!(f, "invalid proxy URL: {why}"),
            ProxyError::UnsupportedScheme(s) => write!(
                f,
                "unsupported proxy scheme {s:?} (http, socks5 and socks5h are supported)"
            ),
            ProxyError::InvalidTarget => f.write_str("the target host cannot be sent to a proxy"),
            ProxyError::InvalidCredentials => f.write_str(
                "SOCKS5 credentials out of bounds (username 1 to 255 bytes, password at most 255)",
            ),
            ProxyError::Resolve { host, source } => write!(f, "could not resolve {host}: {source}"),
            ProxyError::Connect(e) => write!(f, "could not reach the proxy: {e}"),
            ProxyError::Io(e) => write!(f, "proxy connection failed: {e}"),
            ProxyError::Closed => {
                f.write_str("the proxy closed the connection during its handshake")
            }
            ProxyError::Timeout => f.write_str("the proxy connection timed out"),
            ProxyError::ResponseTooLarge { limit } => {
                write!(f, "the proxy's answer is longer than {limit} bytes")
            }
            ProxyError::InvalidResponse(why) => write!(f, "invalid answer from the proxy: {why}"),
            ProxyError::Refused { status: 407 } => f.write_str(
                "the proxy refused the tunnel: HTTP 407 (proxy authentication required or wrong)",
            ),
            ProxyError::Refused { status: 401 } => {
                f.write_str("the proxy refused the tunnel: HTTP 401 (proxy credentials rejected)")
            }
            ProxyError::Refused { status } => {
                write!(f, "the proxy refused the tunnel: HTTP {status}")
            }
            ProxyError::SocksRefused { reply } => write!(
                f,
                "the SOCKS5 proxy refused the connection: {} (reply {reply})",
                socks_reply_name(*reply)
            ),
            ProxyError::SocksAuthFailed { status } => write!(
                f,
                "the SOCKS5 proxy rejected the username and password (status {status})"
            ),
            ProxyError::SocksNoAcceptableAuth => f.write_str(
                "the SOCKS5 proxy accepts none of the offered authentication methods \
                 (credentials needed?)",
            ),
        }
    }
}

impl std::error::Error for ProxyError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            ProxyError::Resolve { source, .. } => Some(source),
            ProxyError::Connect(e) | ProxyError::Io(e) => Some(e),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::duplex;

    fn env(vars: &'static [(&'static str, &'static str)]) -> impl FnMut(&str) -> Option<String> {
        move |name| {
            vars.iter()
                .find(|(k, _)| *k == name)
                .map(|(_, v)| v.to_string())
        }
    }

    #[test]
    fn parses_proxy_urls() {
        let p = Proxy::parse("http://127.0.0.1:3128").unwrap();
        assert_eq!(
            (p.kind(), p.host(), p.port(), p.username()),
            (ProxyKind::Http, "127.0.0.1", 3128, None)
        );
        let p = Proxy::parse("proxy.example:8080").unwrap();
        assert_eq!(
            (p.kind(), p.host(), p.port()),
            (ProxyKind::Http, "proxy.example", 8080)
        );
        let p = Proxy::parse("HTTP://proxy.example/").unwrap();
        assert_eq!((p.kind(), p.port()), (ProxyKind::Http, 80));
        let p = Proxy::parse("socks5://[::1]").unwrap();
        assert_eq!(
            (p.kind(), p.host(), p.port()),
            (ProxyKind::Socks5, "::1", 1080)
        );
        let p = Proxy::parse("socks5h://u:p@[::1]:9050").unwrap();
        assert_eq!(
            (p.kind(), p.host(), p.port(), p.username()),
            (ProxyKind::Socks5h, "::1", 9050, Some("u"))
        );
        let p: Proxy = " socks5h://localhost:1 ".parse().unwrap();
        assert_eq!((p.host(), p.port()), ("localhost", 1));
    }

    #[test]
    fn decodes_credentials() {
        let p = Proxy::parse("http://al%69ce:p%40ss%3Aw%2Frd@h:1").unwrap();
        let c = p.credentials.as_ref().unwrap();
        assert_eq!(
            (c.username.as_str(), c.password.as_str()),
            ("alice", "p@ss:w/rd")
        );
        // No password: an empty one, as curl sends.
        let p = Proxy::parse("http://bob@h:1").unwrap();
        let c = p.credentials.as_ref().unwrap();
        assert_eq!((c.username.as_str(), c.password.as_str()), ("bob", ""));
        // The first colon splits; later ones are the password's.
        let p = Proxy::parse("socks5://u:a:b@h:1").unwrap();
        assert_eq!(p.credentials.as_ref().unwrap().password, "a:b");
        assert!(matches!(
            Proxy::parse("http://u:%ff@h:1"),
            Err(ProxyError::InvalidUrl(_))
        ));
    }

    #[test]
    fn rejects_bad_urls() {
        for url in [
            "",
            "http://",
            "http://h:65536",
            "http://h:x",
            "http://:80",
            "h:1:2",
        ] {
            assert!(
                matches!(Proxy::parse(url), Err(ProxyError::InvalidUrl(_))),
                "{url:?}: {:?}",
                Proxy::parse(url)
            );
        }
        assert!(matches!(
            Proxy::parse("https://h:443"),
            Err(ProxyError::UnsupportedScheme(s)) if s == "https"
        ));
        assert!(matches!(
            Proxy::parse("socks4://h:1080"),
            Err(ProxyError::UnsupportedScheme(_))
        ));
    }

    #[test]
    fn debug_hides_the_password() {
        let p = Proxy::parse("http://user:hunter2@h:1").unwrap();
        let s = format!("{p:?}");
        assert!(s.contains("user") && !s.contains("hunter2"), "{s}");
    }

    #[test]
    fn env_picks_by_scheme_lower_case_first() {
        const VARS: &[(&str, &str)] = &[
            ("http_proxy", "http://lower-http:1"),
            ("HTTP_PROXY", "http://upper-http:1"),
            ("HTTPS_PROXY", "socks5h://upper-https:1"),
            ("ALL_PROXY", "socks5://upper-all:1"),
        ];
        let ws = Proxy::from_env_with(false, "example.com", 80, env(VARS))
            .unwrap()
            .unwrap();
        assert_eq!(ws.host(), "lower-http");
        let wss = Proxy::from_env_with(true, "example.com", 443, env(VARS))
            .unwrap()
            .unwrap();
        assert_eq!(
            (wss.kind(), wss.host()),
            (ProxyKind::Socks5h, "upper-https")
        );

        const UPPER: &[(&str, &str)] = &[("HTTP_PROXY", "upper:1"), ("all_proxy", "all:1")];
        let p = Proxy::from_env_with(false, "h", 80, env(UPPER))
            .unwrap()
            .unwrap();
        assert_eq!(p.host(), "upper");
        let p = Proxy::from_env_with(true, "h", 443, env(UPPER))
            .unwrap()
            .unwrap();
        assert_eq!(p.host(), "all");

        const ALL: &[(&str, &str)] = &[("ALL_PROXY", "upper-all:1"), ("all_proxy", "lower-all:1")];
        let p = Proxy::from_env_with(false, "h", 80, env(ALL))
            .unwrap()
            .unwrap();
        assert_eq!(p.host(), "lower-all");

        // Empty values count as unset.
        const EMPTY: &[(&str, &str)] = &[("http_proxy", ""), ("HTTP_PROXY", "upper:1")];
        let p = Proxy::from_env_with(false, "h", 80, env(EMPTY))
            .unwrap()
            .unwrap();
        assert_eq!(p.host(), "upper");

        assert!(
            Proxy::from_env_with(false, "h", 80, env(&[]))
                .unwrap()
                .is_none()
        );
        const HTTPS_ONLY: &[(&str, &str)] = &[("https_proxy", "p:1")];
        assert!(
            Proxy::from_env_with(false, "h", 80, env(HTTPS_ONLY))
                .unwrap()
                .is_none()
        );
    }

    #[test]
    fn env_ignores_upper_case_http_proxy_in_cgi() {
        const CGI: &[(&str, &str)] = &[("REQUEST_METHOD", "GET"), ("HTTP_PROXY", "evil:1")];
        assert!(
            Proxy::from_env_with(false, "h", 80, env(CGI))
                .unwrap()
                .is_none()
        );
        const CGI_LOWER: &[(&str, &str)] = &[("REQUEST_METHOD", "GET"), ("http_proxy", "ok:1")];
        let p = Proxy::from_env_with(false, "h", 80, env(CGI_LOWER))
            .unwrap()
            .unwrap();
        assert_eq!(p.host(), "ok");
    }

    #[test]
    fn env_with_a_bad_url_is_an_error() {
        const BAD: &[(&str, &str)] = &[("all_proxy", "ftp://p:1")];
        assert!(matches!(
            Proxy::from_env_with(false, "h", 80, env(BAD)),
            Err(ProxyError::UnsupportedScheme(_))
        ));
    }

    #[test]
    fn env_no_proxy_lower_case_first() {
        const VARS: &[(&str, &str)] = &[
            ("all_proxy", "p:1"),
            ("no_proxy", "a.example"),
            ("NO_PROXY", "b.example"),
        ];
        assert!(
            Proxy::from_env_with(false, "a.example", 80, env(VARS))
                .unwrap()
                .is_none()
        );
        assert!(
            Proxy::from_env_with(false, "b.example", 80, env(VARS))
                .unwrap()
                .is_some()
        );
    }

    #[test]
    fn no_proxy_rules() {
        let cases: &[(&str, &str, u16, bool)] = &[
            ("*", "anything.example", 80, true),
            (" * ", "10.1.2.3", 80, true),
            ("example.com", "example.com", 80, true),
            ("example.com", "EXAMPLE.com", 80, true),
            ("example.com", "www.example.com", 80, true),
            ("example.com", "a.b.example.com", 80, true),
            ("example.com", "notexample.com", 80, false),
            ("example.com", "example.com.evil", 80, false),
            (".example.com", "example.com", 80, true),
            (".example.com", "www.example.com", 80, true),
            ("example.com.", "www.example.com", 80, true),
            ("example.com", "www.example.com.", 80, true),
            ("www.example.com", "example.com", 80, false),
            ("other.org, example.com", "x.example.com", 80, true),
            ("other.org example.com", "x.example.com", 80, true),
            ("other.org,,  ,example.com", "example.com", 80, true),
            ("localhost", "localhost", 9000, true),
            ("localhost", "127.0.0.1", 9000, false),
            ("*.example.com", "www.example.com", 80, false), // curl: no wildcards but `*` alone
            ("foo,*", "example.com", 80, false),
            ("127.0.0.1", "127.0.0.1", 80, true),
            ("127.0.0.1", "127.0.0.2", 80, false),
            ("127.0.0.1", "localhost", 80, false),
            ("127.0.0.0/8", "127.9.9.9", 80, true),
            ("127.0.0.0/8", "128.0.0.1", 80, false),
            ("10.0.0.0/33", "10.0.0.1", 80, false),
            ("0.0.0.0/0", "192.0.2.1", 80, true),
            ("::1", "::1", 80, true),
            ("::1", "[::1]", 80, true),
            ("[::1]", "::1", 80, true),
            ("fd00::/8", "fd12::1", 80, true),
            ("fd00::/8", "fe80::1", 80, false),
            ("::1", "127.0.0.1", 80, false),
            ("127.0.0.1", "::1", 80, false),
            ("example.com:8080", "example.com", 8080, true),
            ("example.com:8080", "example.com", 80, false),
            ("example.com:8080", "www.example.com", 8080, true),
            ("127.0.0.1:9000", "127.0.0.1", 9000, true),
            ("127.0.0.1:9000", "127.0.0.1", 9001, false),
            ("[::1]:9000", "::1", 9000, true),
            ("[::1]:9000", "::1", 9001, false),
            ("example.com:x", "example.com", 80, false),
            ("", "example.com", 80, false),
            (".", "example.com", 80, false),
        ];
        for &(list, host, port, want) in cases {
            assert_eq!(
                no_proxy_matches(list, host, port),
                want,
                "no_proxy={list:?} host={host:?} port={port}"
            );
        }
    }

    #[test]
    fn error_messages_name_the_reply() {
        let cases: &[(ProxyError, &str)] = &[
            (
                ProxyError::SocksRefused { reply: 2 },
                "connection not allowed by ruleset (reply 2)",
            ),
            (
                ProxyError::SocksRefused { reply: 4 },
                "host unreachable (reply 4)",
            ),
            (
                ProxyError::SocksRefused { reply: 5 },
                "connection refused (reply 5)",
            ),
            (
                ProxyError::SocksRefused { reply: 0x42 },
                "unassigned reply code (reply 66)",
            ),
            (ProxyError::Refused { status: 403 }, "HTTP 403"),
            (
                ProxyError::Refused { status: 407 },
                "HTTP 407 (proxy authentication required",
            ),
            (
                ProxyError::Refused { status: 401 },
                "HTTP 401 (proxy credentials rejected)",
            ),
            (
                ProxyError::SocksAuthFailed { status: 1 },
                "rejected the username and password",
            ),
        ];
        for (e, want) in cases {
            let s = e.to_string();
            assert!(s.contains(want), "{s:?} lacks {want:?}");
        }
        assert!(ProxyError::Refused { status: 407 }.is_auth_failure());
        assert!(ProxyError::Refused { status: 401 }.is_auth_failure());
        assert!(!ProxyError::Refused { status: 403 }.is_auth_failure());
        assert!(ProxyError::SocksNoAcceptableAuth.is_auth_failure());
        assert!(!ProxyError::SocksRefused { reply: 2 }.is_auth_failure());
    }

    #[test]
    fn head_end_finds_the_blank_line() {
        assert_eq!(head_end(b"HTTP/1.1 200 OK\r\n\r\nrest", 0), Some(19));
        assert_eq!(head_end(b"HTTP/1.1 200 OK\n\nrest", 0), Some(17));
        assert_eq!(head_end(b"HTTP/1.1 200 OK\r\nA: b\r\n", 0), None);
        // The end found across a boundary: only the last byte need be new.
        assert_eq!(head_end(b"HTTP/1.1 200 OK\r\n\r\n", 18), Some(19));
        assert_eq!(head_end(b"HTTP/1.1 200 OK\r\n\r\n", 19), None);
    }

    /// Runs our side of the SOCKS5 handshake against a scripted peer that checks each message
    /// and answers; returns our result.
    async fn socks_exchange(
        target: Target<'static>,
        credentials: Option<Credentials>,
        script: Vec<(Vec<u8>, Vec<u8>)>,
    ) -> Result<(), ProxyError> {
        let (mut ours, mut theirs) = duplex(1024);
        let peer = tokio::spawn(async move {
            for (expect, answer) in script {
                let mut got = vec![0u8; expect.len()];
                theirs.read_exact(&mut got).await.unwrap();
                assert_eq!(got, expect);
                theirs.write_all(&answer).await.unwrap();
            }
            // Dropping `theirs` here is the proxy hanging up.
        });
        let result = tokio::time::timeout(
            Duration::from_secs(10),
            socks5_handshake(&mut ours, &target, credentials.as_ref()),
        )
        .await
        .expect("the handshake hung");
        drop(ours);
        peer.await.unwrap();
        result
    }

    #[tokio::test]
    async fn socks5_messages_on_the_wire() {
        // No credentials, IPv4 target.
        let target = Target::Addr("127.0.0.1:9001".parse().unwrap());
        let script = vec![
            (vec![5, 1, 0], vec![5, 0]),
            (
                vec![5, 1, 0, 1, 127, 0, 0, 1, 0x23, 0x29],
                vec![5, 0, 0, 1, 127, 0, 0, 1, 0xc3, 0x50],
            ),
        ];
        socks_exchange(target, None, script).await.unwrap();

        // Credentials, a name (socks5h), the bound address given as a name.
        let creds = Credentials {
            username: "user".into(),
            password: "pw".into(),
        };
        let script = vec![
            (vec![5, 2, 0, 2], vec![5, 2]),
            (b"\x01\x04user\x02pw".to_vec(), vec![1, 0]),
            (
                b"\x05\x01\x00\x03\x09localhost\x00\x50".to_vec(),
                b"\x05\x00\x00\x03\x03abc\x00\x01".to_vec(),
            ),
        ];
        socks_exchange(Target::Name("localhost", 80), Some(creds.clone()), script)
            .await
            .unwrap();

        // IPv6 target, bound address IPv6.
        let target = Target::Addr("[::1]:443".parse().unwrap());
        let mut req = vec![5, 1, 0, 4];
        req.extend_from_slice(&std::net::Ipv6Addr::LOCALHOST.octets());
        req.extend_from_slice(&443u16.to_be_bytes());
        let mut rep = vec![5, 0, 0, 4];
        rep.extend_from_slice(&[0; 18]);
        let script = vec![(vec![5, 2, 0, 2], vec![5, 0]), (req, rep)];
        // Offered credentials, the proxy picked "no authentication": fine.
        socks_exchange(target, Some(creds), script).await.unwrap();
    }

    #[tokio::test]
    async fn socks5_refusals_and_broken_answers() {
        let t = || Target::Addr("127.0.0.1:1".parse().unwrap());
        let req = vec![5, 1, 0, 1, 127, 0, 0, 1, 0, 1];
        let creds = Credentials {
            username: "u".into(),
            password: "p".into(),
        };
        let r = socks_exchange(
            t(),
            None,
            vec![(vec![5, 1, 0], vec![5, 0]), (req.clone(), vec![5, 4, 0, 1])],
        )
        .await;
        assert!(
            matches!(r, Err(ProxyError::SocksRefused { reply: 4 })),
            "{r:?}"
        );
        let r = socks_exchange(t(), None, vec![(vec![5, 1, 0], vec![5, 0xff])]).await;
        assert!(matches!(r, Err(ProxyError::SocksNoAcceptableAuth)), "{r:?}");
        // Picked username/password, which we did not offer.
        let r = socks_exchange(t(), None, vec![(vec![5, 1, 0], vec![5, 2])]).await;
        assert!(matches!(r, Err(ProxyError::InvalidResponse(_))), "{r:?}");
        let r = socks_exchange(
            t(),
            Some(creds.clone()),
            vec![
                (vec![5, 2, 0, 2], vec![5, 2]),
                (b"\x01\x01u\x01p".to_vec(), vec![1, 1]),
            ],
        )
        .await;
        assert!(
            matches!(r, Err(ProxyError::SocksAuthFailed { status: 1 })),
            "{r:?}"
        );
        // Not SOCKS5 at all (an HTTP proxy's first bytes).
        let r = socks_exchange(t(), None, vec![(vec![5, 1, 0], b"HT".to_vec())]).await;
        assert!(matches!(r, Err(ProxyError::InvalidResponse(_))), "{r:?}");
        let r = socks_exchange(
            t(),
            None,
            vec![(vec![5, 1, 0], vec![5, 0]), (req.clone(), vec![5, 0, 0, 9])],
        )
        .await;
        assert!(matches!(r, Err(ProxyError::InvalidResponse(_))), "{r:?}");
        // The proxy hangs up in the middle of its reply.
        let r = socks_exchange(
            t(),
            None,
            vec![(vec![5, 1, 0], vec![5, 0]), (req, vec![5, 0, 0, 1, 127])],
        )
        .await;
        assert!(matches!(r, Err(ProxyError::Closed)), "{r:?}");
    }

    #[tokio::test]
    async fn bad_targets_and_credentials_fail_before_connecting() {
        // Port 9 on loopback: nothing is contacted, the checks come first.
        let p = Proxy::new(ProxyKind::Socks5h, "127.0.0.1", 9);
        for host in ["", "a b", "a\r\nb", "a/b", "u@h", "a:b", "[::1"] {
            assert!(
                matches!(p.connect(host, 80).await, Err(ProxyError::InvalidTarget)),
                "{host:?}"
            );
        }
        let long = "a".repeat(256);
        assert!(matches!(
            p.connect(&long, 80).await,
            Err(ProxyError::InvalidTarget)
        ));
        let p = p.with_credentials("", "x");
        assert!(matches!(
            p.connect("h", 80).await,
            Err(ProxyError::InvalidCredentials)
        ));
        let p =
            Proxy::new(ProxyKind::Socks5h, "127.0.0.1", 9).with_credentials("u", "x".repeat(256));
        assert!(matches!(
            p.connect("h", 80).await,
            Err(ProxyError::InvalidCredentials)
        ));
    }
}
