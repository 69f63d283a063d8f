//! Client connections through real proxies started here on 127.0.0.1: Debian's tinyproxy (HTTP
//! CONNECT, with and without Basic credentials), dante (SOCKS5, with a ruleset) and microsocks
//! (SOCKS5 with username/password; dante's username method checks system users, which a test
//! should not create). Through each, a WebSocket handshake and a message to a `ws_tokio`
//! server on loopback. Then proxies that misbehave, played by raw listeners: answers at and past
//! the size limit, bytes right behind the answer, silence, refusals, broken answers.
//!
//! The proxies come from `tests/proxy/setup.sh` (apt-get), which these tests run themselves when a
//! binary is missing; a test fails (it never skips) when the proxy still cannot be had.

#[path = "proxy/daemons.rs"]
mod daemons;

use std::collections::HashMap;
use std::net::Ipv6Addr;
use std::time::Duration;

use daemons::{dante, free_port, microsocks, tinyproxy};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use ws_tokio::proxy::{DEFAULT_MAX_RESPONSE_HEAD, DEFAULT_TIMEOUT, Proxy, ProxyError, ProxyKind};
use ws_tokio::{ClientRequest, Message};

/// Every step of a test is bounded by this.
const STEP: Duration = Duration::from_secs(10);

async fn bounded<T>(what: &str, f: impl Future<Output = T>) -> T {
    match tokio::time::timeout(STEP, f).await {
        Ok(v) => v,
        Err(_) => panic!("timed out: {what}"),
    }
}

// ---------------------------------------------------------------------------------------------
// The WebSocket server behind the proxies, and the client's side of one exchange.

/// A `ws_tokio` echo server on 127.0.0.1 (and on [::1] at the same port when that is free, for
/// machines where `localhost` names ::1 first). Returns its port.
async fn ws_server() -> u16 {
    async fn serve(listener: TcpListener) {
        loop {
            let Ok((tcp, _)) = listener.accept().await else {
                return;
            };
            tokio::spawn(async move {
                let Ok(mut ws) = ws_tokio::accept(tcp).await else {
                    return;
                };
                while let Some(Ok(msg)) = ws.recv().await {
                    if matches!(msg, Message::Text(_) | Message::Binary(_))
                        && ws.send(msg).await.is_err()
                    {
                        return;
                    }
                }
            });
        }
    }
    let v4 = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = v4.local_addr().unwrap().port();
    tokio::spawn(serve(v4));
    if let Ok(v6) = TcpListener::bind((Ipv6Addr::LOCALHOST, port)).await {
        tokio::spawn(serve(v6));
    }
    port
}

/// The WebSocket handshake over a tunnel, one message out and its echo back.
async fn exchange(tcp: TcpStream, host_header: &str) {
    let (mut ws, response) = bounded(
        "WebSocket handshake through the proxy",
        ws_tokio::client(tcp, ClientRequest::new(host_header, "/")),
    )
    .await
    .expect("WebSocket handshake through the proxy");
    assert_eq!(response.status, 101);
    let text = format!("hello {host_header} through the proxy");
    ws.send(Message::text(text.clone())).await.unwrap();
    let echo = bounded("echo", ws.recv()).await.expect("echo").unwrap();
    assert_eq!(echo, Message::text(text));
}

async fn connect(proxy: &Proxy, host: &str, port: u16) -> Result<TcpStream, ProxyError> {
    bounded("proxy connect", proxy.connect(host, port)).await
}

/// A target that speaks first: it sends `greeting` as soon as a connection arrives.
async fn greeter(greeting: &'static [u8]) -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(async move {
        while let Ok((mut tcp, _)) = listener.accept().await {
            tokio::spawn(async move {
                let _ = tcp.write_all(greeting).await;
                let mut sink = [0u8; 64];
                let _ = tcp.read(&mut sink).await;
            });
        }
    });
    port
}

async fn read_greeting(mut tcp: TcpStream, len: usize) -> Vec<u8> {
    let mut got = vec![0u8; len];
    bounded("greeting", tcp.read_exact(&mut got)).await.unwrap();
    got
}

// ---------------------------------------------------------------------------------------------
// HTTP CONNECT: tinyproxy.

#[tokio::test]
async fn http_connect_through_tinyproxy() {
    let ws = ws_server().await;
    let tp = tinyproxy("");
    let proxy = Proxy::parse(&format!("http://127.0.0.1:{}", tp.port)).unwrap();
    assert_eq!(proxy.kind(), ProxyKind::Http);
    exchange(connect(&proxy, "127.0.0.1", ws).await.unwrap(), "127.0.0.1").await;
    tp.log_line_with(&format!("CONNECT 127.0.0.1:{ws} HTTP/1.1"));
    // A name, resolved by the proxy.
    exchange(connect(&proxy, "localhost", ws).await.unwrap(), "localhost").await;
    tp.log_line_with(&format!("CONNECT localhost:{ws} HTTP/1.1"));
}

#[tokio::test]
async fn http_connect_with_basic_auth() {
    let ws = ws_server().await;
    let tp = tinyproxy("BasicAuth user pass");
    // Percent-encoded credentials ("us%65r" is "user"), decoded before they are sent.
    let right = Proxy::parse(&format!("http://us%65r:p%61ss@127.0.0.1:{}", tp.port)).unwrap();
    exchange(connect(&right, "127.0.0.1", ws).await.unwrap(), "127.0.0.1").await;

    // Without credentials: 407. With wrong ones tinyproxy 1.11 answers 401 (and
    // WWW-Authenticate); both are refusals of the credentials.
    let none = Proxy::new(ProxyKind::Http, "127.0.0.1", tp.port);
    let e = connect(&none, "127.0.0.1", ws).await.unwrap_err();
    assert!(matches!(e, ProxyError::Refused { status: 407 }), "{e:?}");
    assert!(e.is_auth_failure());
    assert!(e.to_string().contains("HTTP 407"), "{e}");

    let wrong = Proxy::parse(&format!("http://user:wrong@127.0.0.1:{}", tp.port)).unwrap();
    let e = connect(&wrong, "127.0.0.1", ws).await.unwrap_err();
    assert!(matches!(e, ProxyError::Refused { status: 401 }), "{e:?}");
    assert!(e.is_auth_failure());
}

#[tokio::test]
async fn tinyproxy_refusals_carry_their_status() {
    let ws = ws_server().await;
    // Only port 1 may be tunnelled to: the WebSocket server's port is forbidden.
    let tp = tinyproxy("ConnectPort 1");
    let proxy = Proxy::new(ProxyKind::Http, "127.0.0.1", tp.port);
    let e = connect(&proxy, "127.0.0.1", ws).await.unwrap_err();
    assert!(matches!(e, ProxyError::Refused { status: 403 }), "{e:?}");
    assert!(!e.is_auth_failure());
    assert_eq!(e.to_string(), "the proxy refused the tunnel: HTTP 403");

    // Allowed, but nothing listens there: tinyproxy answers 500.
    let closed = free_port();
    let tp = tinyproxy("");
    let proxy = Proxy::new(ProxyKind::Http, "127.0.0.1", tp.port);
    let e = connect(&proxy, "127.0.0.1", closed).await.unwrap_err();
    assert!(matches!(e, ProxyError::Refused { status: 500 }), "{e:?}");
}

#[tokio::test]
async fn bytes_the_target_sends_first_follow_the_connect_answer() {
    const GREETING: &[u8] = b"220 the target speaks first\r\n";
    let target = greeter(GREETING).await;
    let tp = tinyproxy("");
    let proxy = Proxy::new(ProxyKind::Http, "127.0.0.1", tp.port);
    let tcp = connect(&proxy, "127.0.0.1", target).await.unwrap();
    assert_eq!(read_greeting(tcp, GREETING.len()).await, GREETING);

    let d = dante("");
    let proxy = Proxy::new(ProxyKind::Socks5, "127.0.0.1", d.port);
    let tcp = connect(&proxy, "127.0.0.1", target).await.unwrap();
    assert_eq!(read_greeting(tcp, GREETING.len()).await, GREETING);
}

// ---------------------------------------------------------------------------------------------
// SOCKS5: dante (no authentication, rulesets) and microsocks (username/password).

#[tokio::test]
async fn socks5_through_dante() {
    let ws = ws_server().await;
    let d = dante("");
    let proxy = Proxy::parse(&format!("socks5://127.0.0.1:{}", d.port)).unwrap();
    exchange(connect(&proxy, "127.0.0.1", ws).await.unwrap(), "127.0.0.1").await;
    // The name resolved here, its address sent.
    exchange(connect(&proxy, "localhost", ws).await.unwrap(), "localhost").await;
    let proxy = Proxy::parse(&format!("socks5h://127.0.0.1:{}", d.port)).unwrap();
    exchange(connect(&proxy, "localhost", ws).await.unwrap(), "localhost").await;
}

#[tokio::test]
async fn socks5h_sends_the_name_and_socks5_the_address() {
    // dante logs each blocked request as it came: `localhost.PORT` for a name,
    // `127.0.0.1.PORT` for an address.
    let (by_name, by_address) = (free_port(), free_port());
    let d = dante(&format!(
        "socks block {{ from: 0.0.0.0/0 to: 0.0.0.0/0 port = {by_name} log: connect error }}\n\
         socks block {{ from: 0.0.0.0/0 to: 0.0.0.0/0 port = {by_address} log: connect error }}"
    ));
    let remote = Proxy::new(ProxyKind::Socks5h, "127.0.0.1", d.port);
    let e = connect(&remote, "localhost", by_name).await.unwrap_err();
    assert!(matches!(e, ProxyError::SocksRefused { reply: 2 }), "{e:?}");
    let line = d.log_line_with(&format!(".{by_name}"));
    assert!(line.contains(&format!("localhost.{by_name}")), "{line}");

    let local = Proxy::new(ProxyKind::Socks5, "127.0.0.1", d.port);
    let e = connect(&local, "localhost", by_address).await.unwrap_err();
    assert!(matches!(e, ProxyError::SocksRefused { reply: 2 }), "{e:?}");
    let line = d.log_line_with(&format!(".{by_address}"));
    assert!(
        !line.contains("localhost"),
        "the name went to the proxy: {line}"
    );
}

#[tokio::test]
async fn dante_refusals_carry_their_reply_code() {
    let ws = ws_server().await;
    let d = dante(&format!(
        "socks block {{ from: 0.0.0.0/0 to: 127.0.0.1/32 port = {ws} log: connect error }}"
    ));
    let proxy = Proxy::new(ProxyKind::Socks5, "127.0.0.1", d.port);
    let e = connect(&proxy, "127.0.0.1", ws).await.unwrap_err();
    assert!(matches!(e, ProxyError::SocksRefused { reply: 2 }), "{e:?}");
    assert!(!e.is_auth_failure());
    assert_eq!(
        e.to_string(),
        "the SOCKS5 proxy refused the connection: connection not allowed by ruleset (reply 2)"
    );
    // Passed by the ruleset, but nothing listens there.
    let e = connect(&proxy, "127.0.0.1", free_port()).await.unwrap_err();
    assert!(matches!(e, ProxyError::SocksRefused { reply: 5 }), "{e:?}");
    assert!(e.to_string().contains("connection refused"), "{e}");
}

#[tokio::test]
async fn socks5_with_username_and_password() {
    let ws = ws_server().await;
    let ms = microsocks("user", "p@ss:w0rd");
    // The password percent-encoded in the URL.
    let url = format!("socks5://user:p%40ss%3Aw0rd@127.0.0.1:{}", ms.port);
    let proxy = Proxy::parse(&url).unwrap();
    exchange(connect(&proxy, "127.0.0.1", ws).await.unwrap(), "127.0.0.1").await;
    let url = format!("socks5h://user:p%40ss%3Aw0rd@127.0.0.1:{}", ms.port);
    let proxy = Proxy::parse(&url).unwrap();
    exchange(connect(&proxy, "localhost", ws).await.unwrap(), "localhost").await;

    let wrong =
        Proxy::new(ProxyKind::Socks5, "127.0.0.1", ms.port).with_credentials("user", "nope");
    let e = connect(&wrong, "127.0.0.1", ws).await.unwrap_err();
    assert!(matches!(e, ProxyError::SocksAuthFailed { .. }), "{e:?}");
    assert!(e.is_auth_failure());

    let none = Proxy::new(ProxyKind::Socks5, "127.0.0.1", ms.port);
    let e = connect(&none, "127.0.0.1", ws).await.unwrap_err();
    assert!(matches!(e, ProxyError::SocksNoAcceptableAuth), "{e:?}");
    assert!(e.is_auth_failure());
}

// ---------------------------------------------------------------------------------------------
// The environment (an injected lookup: no test touches the process's variables).

fn lookup(vars: &[(&str, String)]) -> impl FnMut(&str) -> Option<String> + use<> {
    let vars: HashMap<String, String> = vars
        .iter()
        .map(|(k, v)| (k.to_string(), v.clone()))
        .collect();
    move |name| vars.get(name).cloned()
}

#[tokio::test]
async fn environment_picks_the_proxy() {
    let ws = ws_server().await;
    let tp = tinyproxy("");
    let d = dante("");
    let nothing = free_port();
    let vars = [
        ("http_proxy", format!("http://127.0.0.1:{}", tp.port)),
        // The upper-case name loses to the lower-case one: nothing listens there.
        ("HTTP_PROXY", format!("http://127.0.0.1:{nothing}")),
        ("HTTPS_PROXY", format!("socks5h://127.0.0.1:{}", d.port)),
        ("no_proxy", "example.invalid, 10.0.0.0/8".to_string()),
    ];

    // ws:// goes through tinyproxy, which logs the CONNECT.
    let proxy = Proxy::from_env_with(false, "127.0.0.1", ws, lookup(&vars))
        .unwrap()
        .expect("a proxy for ws://");
    assert_eq!((proxy.kind(), proxy.port()), (ProxyKind::Http, tp.port));
    exchange(connect(&proxy, "127.0.0.1", ws).await.unwrap(), "127.0.0.1").await;
    tp.log_line_with(&format!("CONNECT 127.0.0.1:{ws} HTTP/1.1"));

    // wss:// goes through dante (the tunnel is the same for TLS; this test speaks plain ws).
    let proxy = Proxy::from_env_with(true, "localhost", ws, lookup(&vars))
        .unwrap()
        .expect("a proxy for wss://");
    assert_eq!((proxy.kind(), proxy.port()), (ProxyKind::Socks5h, d.port));
    exchange(connect(&proxy, "localhost", ws).await.unwrap(), "localhost").await;

    // ALL_PROXY serves both schemes when nothing more specific is set.
    let all = [("ALL_PROXY", format!("socks5://127.0.0.1:{}", d.port))];
    for tls in [false, true] {
        let proxy = Proxy::from_env_with(tls, "127.0.0.1", ws, lookup(&all))
            .unwrap()
            .expect("ALL_PROXY");
        assert_eq!((proxy.kind(), proxy.port()), (ProxyKind::Socks5, d.port));
        exchange(connect(&proxy, "127.0.0.1", ws).await.unwrap(), "127.0.0.1").await;
    }
}

#[tokio::test]
async fn no_proxy_sends_the_connection_direct() {
    let ws = ws_server().await;
    // The proxies named here do not exist: a connection that went to them would fail.
    let dead = free_port();
    for no_proxy in [
        "127.0.0.1".to_string(),
        "127.0.0.0/8".to_string(),
        format!("other.example, 127.0.0.1:{ws}"),
        "*".to_string(),
    ] {
        let vars = [
            ("http_proxy", format!("http://127.0.0.1:{dead}")),
            ("all_proxy", format!("socks5://127.0.0.1:{dead}")),
            ("NO_PROXY", no_proxy.clone()),
        ];
        let proxy = Proxy::from_env_with(false, "127.0.0.1", ws, lookup(&vars)).unwrap();
        assert!(proxy.is_none(), "NO_PROXY={no_proxy:?} gave {proxy:?}");
        let tcp = TcpStream::connect(("127.0.0.1", ws)).await.unwrap();
        exchange(tcp, "127.0.0.1").await;
    }
    // An entry for another port does not bypass, nor does a name for an address.
    for no_proxy in [
        format!("127.0.0.1:{}", ws.wrapping_add(1)),
        "localhost".to_string(),
    ] {
        let vars = [
            ("http_proxy", format!("http://127.0.0.1:{dead}")),
            ("no_proxy", no_proxy.clone()),
        ];
        let proxy = Proxy::from_env_with(false, "127.0.0.1", ws, lookup(&vars)).unwrap();
        let proxy = proxy.unwrap_or_else(|| panic!("no_proxy={no_proxy:?} bypassed"));
        let e = connect(&proxy, "127.0.0.1", ws).await.unwrap_err();
        assert!(matches!(e, ProxyError::Connect(_)), "{e:?}");
    }
}

// ---------------------------------------------------------------------------------------------
// Proxies that misbehave, played by raw listeners on loopback.

/// A listener that reads one request head (through its blank line) on each connection, answers
/// `answer` in one write, then holds the connection open until the client leaves.
async fn scripted_http_proxy(answer: Vec<u8>) -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(async move {
        while let Ok((mut tcp, _)) = listener.accept().await {
            let answer = answer.clone();
            tokio::spawn(async move {
                let mut request = Vec::new();
                let mut byte = [0u8; 1];
                while !request.ends_with(b"\r\n\r\n") && request.len() < 4096 {
                    if tcp.read(&mut byte).await.unwrap_or(0) == 0 {
                        return;
                    }
                    request.push(byte[0]);
                }
                let _ = tcp.write_all(&answer).await;
                let mut sink = [0u8; 64];
                while tcp.read(&mut sink).await.unwrap_or(0) > 0 {}
            });
        }
    });
    port
}

/// An answer head of exactly `len` bytes: a 200 status line, one padding header, a blank line.
fn head_of(len: usize) -> Vec<u8> {
    let fixed = b"HTTP/1.1 200 Connection established\r\nX-Pad: \r\n\r\n".len();
    let mut head = b"HTTP/1.1 200 Connection established\r\nX-Pad: ".to_vec();
    head.resize(len - 4, b'a');
    head.extend_from_slice(b"\r\n\r\n");
    assert!(len >= fixed && head.len() == len);
    head
}

#[tokio::test]
async fn connect_answer_at_the_limit_and_one_past_it() {
    const EARLY: &[u8] = b"first bytes from the target";
    for (limit, proxy_limit) in [(DEFAULT_MAX_RESPONSE_HEAD, None), (100, Some(100))] {
        let make = |port| {
            let p = Proxy::new(ProxyKind::Http, "127.0.0.1", port);
            match proxy_limit {
                Some(l) => p.with_max_response_head(l),
                None => p,
            }
        };
        // At the limit: accepted, and the target's first bytes, sent in the same segment as
        // the answer, come next on the stream.
        let mut answer = head_of(limit);
        answer.extend_from_slice(EARLY);
        let port = scripted_http_proxy(answer).await;
        let tcp = connect(&make(port), "example.com", 80).await.unwrap();
        assert_eq!(read_greeting(tcp, EARLY.len()).await, EARLY);

        // One past it.
        let port = scripted_http_proxy(head_of(limit + 1)).await;
        let e = connect(&make(port), "example.com", 80).await.unwrap_err();
        assert!(
            matches!(e, ProxyError::ResponseTooLarge { limit: l } if l == limit),
            "{e:?}"
        );
    }
}

#[tokio::test]
async fn broken_connect_answers() {
    let proxy = |port| Proxy::new(ProxyKind::Http, "127.0.0.1", port);
    let port =
        scripted_http_proxy(b"HTTP/1.1 502 Bad Gateway\r\nContent-Length: 0\r\n\r\n".to_vec())
            .await;
    let e = connect(&proxy(port), "example.com", 443).await.unwrap_err();
    assert!(matches!(e, ProxyError::Refused { status: 502 }), "{e:?}");

    // Any 2xx opens the tunnel; a bare-LF head is accepted as httparse accepts it.
    let port = scripted_http_proxy(b"HTTP/1.0 204 No Content\n\nX".to_vec()).await;
    let tcp = connect(&proxy(port), "example.com", 443).await.unwrap();
    assert_eq!(read_greeting(tcp, 1).await, b"X");

    let port = scripted_http_proxy(b"SSH-2.0-OpenSSH\r\n\r\n".to_vec()).await;
    let e = connect(&proxy(port), "example.com", 443).await.unwrap_err();
    assert!(matches!(e, ProxyError::InvalidResponse(_)), "{e:?}");

    let mut many = b"HTTP/1.1 200 OK\r\n".to_vec();
    for i in 0..65 {
        many.extend_from_slice(format!("X-{i}: y\r\n").as_bytes());
    }
    many.extend_from_slice(b"\r\n");
    let port = scripted_http_proxy(many).await;
    let e = connect(&proxy(port), "example.com", 443).await.unwrap_err();
    assert!(matches!(e, ProxyError::InvalidResponse(_)), "{e:?}");

    // Half an answer, then the proxy hangs up.
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(async move {
        let (mut tcp, _) = listener.accept().await.unwrap();
        let mut buf = [0u8; 1024];
        let _ = tcp.read(&mut buf).await;
        let _ = tcp.write_all(b"HTTP/1.1 200 Conn").await;
    });
    let e = connect(&proxy(port), "example.com", 443).await.unwrap_err();
    assert!(matches!(e, ProxyError::Closed), "{e:?}");
}

#[tokio::test]
async fn socks5_reply_and_first_bytes_in_one_segment() {
    const EARLY: &[u8] = b"first bytes from the target";
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(async move {
        let (mut tcp, _) = listener.accept().await.unwrap();
        let mut greeting = [0u8; 3];
        tcp.read_exact(&mut greeting).await.unwrap();
        assert_eq!(greeting, [5, 1, 0]);
        tcp.write_all(&[5, 0]).await.unwrap();
        let mut request = [0u8; 5 + 11 + 2];
        tcp.read_exact(&mut request).await.unwrap();
        assert_eq!(&request[..5], &[5, 1, 0, 3, 11]);
        assert_eq!(&request[5..16], b"example.com");
        // The reply (bound address given as a name) and the target's first bytes together.
        let mut answer = b"\x05\x00\x00\x03\x04host\x01\xbb".to_vec();
        answer.extend_from_slice(EARLY);
        tcp.write_all(&answer).await.unwrap();
        let mut sink = [0u8; 64];
        while tcp.read(&mut sink).await.unwrap_or(0) > 0 {}
    });
    let proxy = Proxy::new(ProxyKind::Socks5h, "127.0.0.1", port);
    let tcp = connect(&proxy, "example.com", 443).await.unwrap();
    assert_eq!(read_greeting(tcp, EARLY.len()).await, EARLY);
}

#[tokio::test(start_paused = true)]
async fn a_silent_proxy_times_out() {
    // The kernel completes the TCP handshake (the listener's backlog), nobody ever answers.
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    for kind in [ProxyKind::Http, ProxyKind::Socks5h] {
        let start = tokio::time::Instant::now();
        let e = Proxy::new(kind, "127.0.0.1", port)
            .connect("example.com", 443)
            .await
            .unwrap_err();
        assert!(matches!(e, ProxyError::Timeout), "{e:?}");
        assert_eq!(start.elapsed(), DEFAULT_TIMEOUT);

        let short = Duration::from_millis(1500);
        let start = tokio::time::Instant::now();
        let e = Proxy::new(kind, "127.0.0.1", port)
            .with_timeout(Some(short))
            .connect("example.com", 443)
            .await
            .unwrap_err();
        assert!(matches!(e, ProxyError::Timeout), "{e:?}");
        assert_eq!(start.elapsed(), short);
    }
    drop(listener);
}

#[tokio::test]
async fn an_unreachable_proxy() {
    let proxy = Proxy::new(ProxyKind::Socks5, "127.0.0.1", free_port());
    let e = connect(&proxy, "127.0.0.1", 80).await.unwrap_err();
    assert!(matches!(e, ProxyError::Connect(_)), "{e:?}");
    assert!(
        e.to_string().starts_with("could not reach the proxy"),
        "{e}"
    );
    assert!(std::error::Error::source(&e).is_some());
}

// ---------------------------------------------------------------------------------------------
// `connect_request` through the proxies: set in the request, or named by the environment.

/// `connect_request` to `url` with `request`, one message out and its echo back.
async fn ws_exchange(url: &str, request: ClientRequest) -> Result<(), ws_tokio::Error> {
    let (mut ws, response) =
        bounded("connect_request", ws_tokio::connect_request(url, request)).await?;
    assert_eq!(response.status, 101);
    let text = format!("hello {url}");
    ws.send(Message::text(text.clone())).await?;
    let echo = bounded("echo", ws.recv()).await.expect("echo")?;
    assert_eq!(echo, Message::text(text));
    Ok(())
}

#[tokio::test]
async fn connect_request_through_tinyproxy_with_basic_auth() {
    let ws = ws_server().await;
    let tp = tinyproxy("BasicAuth user pass");
    let url = format!("ws://127.0.0.1:{ws}/chat");
    let proxy = Proxy::parse(&format!("http://user:pass@127.0.0.1:{}", tp.port)).unwrap();
    ws_exchange(&url, ClientRequest::default().proxy(proxy))
        .await
        .expect("through tinyproxy");
    tp.log_line_with(&format!("CONNECT 127.0.0.1:{ws} HTTP/1.1"));
    // A name goes to the proxy as it is, for the proxy to resolve.
    let proxy = Proxy::parse(&format!("http://user:pass@127.0.0.1:{}", tp.port)).unwrap();
    ws_exchange(
        &format!("ws://localhost:{ws}/"),
        ClientRequest::default().proxy(proxy),
    )
    .await
    .expect("a name through tinyproxy");
    tp.log_line_with(&format!("CONNECT localhost:{ws} HTTP/1.1"));

    // Refusals come back as Error::Proxy, displayed with their status.
    let none = Proxy::new(ProxyKind::Http, "127.0.0.1", tp.port);
    let e = ws_exchange(&url, ClientRequest::default().proxy(none))
        .await
        .unwrap_err();
    assert!(
        matches!(
            e,
            ws_tokio::Error::Proxy(ProxyError::Refused { status: 407 })
        ),
        "{e:?}"
    );
    assert_eq!(
        e.to_string(),
        "the proxy refused the tunnel: HTTP 407 (proxy authentication required or wrong)"
    );
    let wrong = Proxy::parse(&format!("http://user:nope@127.0.0.1:{}", tp.port)).unwrap();
    let e = ws_exchange(&url, ClientRequest::default().proxy(wrong))
        .await
        .unwrap_err();
    assert!(
        matches!(
            e,
            ws_tokio::Error::Proxy(ProxyError::Refused { status: 401 })
        ),
        "{e:?}"
    );
}

#[tokio::test]
async fn connect_request_through_socks5_with_and_without_credentials() {
    let ws = ws_server().await;
    let ms = microsocks("user", "pw");
    let d = dante("");
    for url in [
        format!("socks5h://user:pw@127.0.0.1:{}", ms.port),
        format!("socks5://user:pw@127.0.0.1:{}", ms.port),
        format!("socks5h://127.0.0.1:{}", d.port),
    ] {
        let proxy = Proxy::parse(&url).unwrap();
        ws_exchange(
            &format!("ws://localhost:{ws}/"),
            ClientRequest::default().proxy(proxy),
        )
        .await
        .unwrap_or_else(|e| panic!("through {url}: {e:?}"));
    }
    d.log_line_with(&format!("127.0.0.1.{ws}"));

    let wrong = Proxy::new(ProxyKind::Socks5h, "127.0.0.1", ms.port).with_credentials("user", "x");
    let e = ws_exchange(
        &format!("ws://localhost:{ws}/"),
        ClientRequest::default().proxy(wrong),
    )
    .await
    .unwrap_err();
    assert!(
        matches!(
            e,
            ws_tokio::Error::Proxy(ProxyError::SocksAuthFailed { .. })
        ),
        "{e:?}"
    );
    assert!(
        e.to_string().contains("rejected the username and password"),
        "{e}"
    );
}

#[tokio::test]
async fn a_socks5_refusal_gives_its_reply_code() {
    let ws = ws_server().await;
    let d = dante(&format!(
        "socks block {{ from: 0.0.0.0/0 to: 127.0.0.1/32 port = {ws} log: connect error }}"
    ));
    let proxy = Proxy::new(ProxyKind::Socks5, "127.0.0.1", d.port);
    let e = ws_exchange(
        &format!("ws://127.0.0.1:{ws}/"),
        ClientRequest::default().proxy(proxy),
    )
    .await
    .unwrap_err();
    assert!(
        matches!(
            e,
            ws_tokio::Error::Proxy(ProxyError::SocksRefused { reply: 2 })
        ),
        "{e:?}"
    );
    assert_eq!(
        e.to_string(),
        "the SOCKS5 proxy refused the connection: connection not allowed by ruleset (reply 2)"
    );
}

#[tokio::test(start_paused = true)]
async fn the_handshake_timeout_bounds_the_proxy_too() {
    // A proxy that accepts the TCP connection and never answers.
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let url = "ws://example.com/";
    // The handshake timeout (2 s) is shorter than the proxy's own (30 s): it wins.
    let config = ws_tokio::Config::default().with_handshake_timeout(Duration::from_secs(2));
    let start = tokio::time::Instant::now();
    let e = ws_tokio::connect_request(
        url,
        ClientRequest::default().config(config).proxy(Proxy::new(
            ProxyKind::Http,
            "127.0.0.1",
            port,
        )),
    )
    .await
    .unwrap_err();
    assert!(
        matches!(
            e,
            ws_tokio::Error::Timeout(ws_tokio::TimeoutKind::Handshake)
        ),
        "{e:?}"
    );
    assert_eq!(start.elapsed(), Duration::from_secs(2));
    // A proxy timeout shorter than the handshake's (10 s by default) wins in its turn.
    let start = tokio::time::Instant::now();
    let proxy = Proxy::new(ProxyKind::Socks5h, "127.0.0.1", port)
        .with_timeout(Some(Duration::from_millis(1500)));
    let e = ws_tokio::connect_request(url, ClientRequest::default().proxy(proxy))
        .await
        .unwrap_err();
    assert!(
        matches!(e, ws_tokio::Error::Proxy(ProxyError::Timeout)),
        "{e:?}"
    );
    assert_eq!(start.elapsed(), Duration::from_millis(1500));
    drop(listener);
}

// The process environment: each case runs `env_child` (below) in a child process of this test
// binary, with the proxy variables set as the case says and every other one removed, so that
// the real `std::env` lookup of `connect` is what is tested and no test changes this process's
// environment.

const PROXY_VARS: &[&str] = &[
    "http_proxy",
    "HTTP_PROXY",
    "https_proxy",
    "HTTPS_PROXY",
    "all_proxy",
    "ALL_PROXY",
    "no_proxy",
    "NO_PROXY",
    "REQUEST_METHOD",
];

/// Runs `env_child` with `vars`, connecting to `url` (`direct`: with `ProxySetting::Direct`);
/// returns what the child printed after `outcome:` ("ok", or the error's Debug form).
fn run_child(vars: &[(&str, String)], url: &str, direct: bool) -> String {
    let exe = std::env::current_exe().unwrap();
    let mut cmd = std::process::Command::new(exe);
    cmd.args([
        "--exact",
        "env_child",
        "--ignored",
        "--nocapture",
        "--test-threads=1",
    ]);
    for name in PROXY_VARS {
        cmd.env_remove(name);
    }
    for (k, v) in vars {
        cmd.env(k, v);
    }
    cmd.env("WS_ENV_CHILD_URL", url);
    if direct {
        cmd.env("WS_ENV_CHILD_DIRECT", "1");
    }
    let out = cmd.output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success() && stdout.contains("1 passed"),
        "the child failed ({}):\n{stdout}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    stdout
        .lines()
        .find_map(|l| l.split_once("outcome: ").map(|(_, o)| o))
        .unwrap_or_else(|| panic!("no outcome in:\n{stdout}"))
        .to_string()
}

#[tokio::test]
#[ignore = "run by connect_reads_the_proxy_environment, in a child process with its variables"]
async fn env_child() {
    let url = std::env::var("WS_ENV_CHILD_URL").expect("WS_ENV_CHILD_URL");
    let mut request = ClientRequest::default();
    if std::env::var_os("WS_ENV_CHILD_DIRECT").is_some() {
        request = request.proxy(ws_tokio::proxy::ProxySetting::Direct);
    }
    match ws_exchange(&url, request).await {
        Ok(()) => println!("outcome: ok"),
        Err(e) => println!("outcome: {e:?}"),
    }
}

#[tokio::test]
async fn connect_reads_the_proxy_environment() {
    let ws = ws_server().await;
    let tp = tinyproxy("BasicAuth user pass");
    let ms = microsocks("user", "pw");
    let dead = free_port();
    let url = format!("ws://127.0.0.1:{ws}/env");
    let tiny = format!("http://user:pass@127.0.0.1:{}", tp.port);
    let run = |vars: &[(&str, String)], direct| {
        let vars: Vec<(String, String)> = vars
            .iter()
            .map(|(k, v)| (k.to_string(), v.clone()))
            .collect();
        let url = url.clone();
        tokio::task::spawn_blocking(move || {
            let vars: Vec<(&str, String)> =
                vars.iter().map(|(k, v)| (k.as_str(), v.clone())).collect();
            run_child(&vars, &url, direct)
        })
    };

    // HTTP_PROXY (upper case) for ws://, through tinyproxy with Basic credentials.
    let got = run(&[("HTTP_PROXY", tiny.clone())], false).await.unwrap();
    assert_eq!(got, "ok");
    tp.log_line_with(&format!("CONNECT 127.0.0.1:{ws} HTTP/1.1"));

    // The lower-case name wins over the upper-case one (which names a dead port).
    let vars = [
        ("http_proxy", tiny.clone()),
        ("HTTP_PROXY", format!("http://127.0.0.1:{dead}")),
    ];
    assert_eq!(run(&vars, false).await.unwrap(), "ok");

    // ALL_PROXY with SOCKS5 and credentials; wrong ones show that it was used.
    let socks = format!("socks5h://user:pw@127.0.0.1:{}", ms.port);
    assert_eq!(run(&[("ALL_PROXY", socks)], false).await.unwrap(), "ok");
    let wrong = format!("socks5h://user:bad@127.0.0.1:{}", ms.port);
    let got = run(&[("all_proxy", wrong)], false).await.unwrap();
    assert!(got.starts_with("Proxy(SocksAuthFailed"), "{got}");

    // https_proxy is for wss:// only: a ws:// URL goes direct.
    let vars = [("https_proxy", format!("http://127.0.0.1:{dead}"))];
    assert_eq!(run(&vars, false).await.unwrap(), "ok");

    // A dead proxy fails the connection ...
    let dead_proxy = ("http_proxy", format!("http://127.0.0.1:{dead}"));
    let got = run(std::slice::from_ref(&dead_proxy), false).await.unwrap();
    assert!(got.starts_with("Proxy(Connect("), "{got}");
    // ... unless NO_PROXY (or no_proxy) names the host, or the request says Direct.
    for no_proxy in [
        ("NO_PROXY", "127.0.0.1".to_string()),
        ("no_proxy", format!("example.com, 127.0.0.1:{ws}")),
        ("no_proxy", "127.0.0.0/8".to_string()),
    ] {
        let got = run(&[dead_proxy.clone(), no_proxy.clone()], false)
            .await
            .unwrap();
        assert_eq!(got, "ok", "{no_proxy:?}");
    }
    let got = run(
        &[dead_proxy.clone(), ("no_proxy", "localhost".into())],
        false,
    )
    .await
    .unwrap();
    assert!(
        got.starts_with("Proxy(Connect("),
        "a name bypassed an address: {got}"
    );
    assert_eq!(run(&[dead_proxy], true).await.unwrap(), "ok");

    // A proxy URL in the environment that does not parse is an error, not a direct connection.
    let got = run(&[("http_proxy", "ftp://127.0.0.1:21".into())], false)
        .await
        .unwrap();
    assert!(got.starts_with("Proxy(UnsupportedScheme"), "{got}");
}
