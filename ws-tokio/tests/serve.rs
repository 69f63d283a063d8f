//! The serve loop at and past each of its limits, each case ending in the status code, close
//! code or end of transport the client sees.
//!
//! Tests that wait on time run on tokio's paused clock over an in-memory listener (duplex
//! pipes, addresses made up). The caps are also shown over real loopback TCP, where nothing
//! waits on time: the per-IP cap with clients bound to 127.0.0.1 and 127.0.0.2 (both loopback
//! on Linux), and a Unix-domain listener, which has no IP addresses.

use std::collections::VecDeque;
use std::io;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, DuplexStream};
use tokio::net::{TcpListener, TcpSocket, TcpStream};
use tokio::sync::{mpsc, oneshot};
use tokio::time::Instant;
use ws_tokio::origin::OriginPolicy;
use ws_tokio::serve::{ConnInfo, Listener, ServeConfig};
use ws_tokio::{
    AcceptResponse, ClientRequest, CloseCode, Config, Error, Message, Reject, WebSocket,
};

/// Every step of a test is bounded by this (on the paused clock, far past every deadline the
/// tests set; on the real clock, a hang fails instead of blocking).
const STEP: Duration = Duration::from_secs(60);

async fn bounded<T>(what: &str, f: impl Future<Output = T>) -> T {
    match tokio::time::timeout(STEP, f).await {
        Ok(v) => v,
        Err(_) => panic!("timed out: {what}"),
    }
}

fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

/// No keepalive and no compression: the only timers are the ones a test sets.
fn quiet() -> Config {
    Config::default()
        .with_ping_interval(None)
        .with_compression(None)
}

/// An in-memory listener: connections are duplex pipes with a made-up peer address; accept
/// errors can be scripted, and every call to `accept` is timed.
struct MemListener {
    incoming: mpsc::UnboundedReceiver<(DuplexStream, SocketAddr)>,
    errors: Arc<Mutex<VecDeque<io::Error>>>,
    calls: Arc<Mutex<Vec<Instant>>>,
}

impl Listener for MemListener {
    type Io = DuplexStream;
    type Addr = SocketAddr;

    async fn accept(&mut self) -> io::Result<(DuplexStream, SocketAddr)> {
        self.calls.lock().unwrap().push(Instant::now());
        if let Some(e) = self.errors.lock().unwrap().pop_front() {
            return Err(e);
        }
        match self.incoming.recv().await {
            Some(c) => Ok(c),
            None => std::future::pending().await,
        }
    }

    fn peer_ip(addr: &SocketAddr) -> Option<IpAddr> {
        Some(addr.ip())
    }
}

/// The client side of a [`MemListener`].
#[derive(Clone)]
struct Connector {
    tx: mpsc::UnboundedSender<(DuplexStream, SocketAddr)>,
    errors: Arc<Mutex<VecDeque<io::Error>>>,
    calls: Arc<Mutex<Vec<Instant>>>,
    next_port: Arc<Mutex<u16>>,
}

fn mem_listener() -> (MemListener, Connector) {
    let (tx, incoming) = mpsc::unbounded_channel();
    let errors = Arc::new(Mutex::new(VecDeque::new()));
    let calls = Arc::new(Mutex::new(Vec::new()));
    let listener = MemListener {
        incoming,
        errors: errors.clone(),
        calls: calls.clone(),
    };
    let connector = Connector {
        tx,
        errors,
        calls,
        next_port: Arc::new(Mutex::new(40000)),
    };
    (listener, connector)
}

impl Connector {
    /// A new connection from `ip`; `Err` once the listener is gone.
    fn connect_from(&self, ip: [u8; 4]) -> Result<DuplexStream, ()> {
        let (client, server) = tokio::io::duplex(64 << 10);
        let port = {
            let mut p = self.next_port.lock().unwrap();
            *p += 1;
            *p
        };
        let addr = SocketAddr::new(IpAddr::V4(Ipv4Addr::from(ip)), port);
        self.tx.send((server, addr)).map_err(|_| ())?;
        Ok(client)
    }

    fn connect(&self) -> DuplexStream {
        self.connect_from([192, 0, 2, 1]).expect("listener gone")
    }

    fn fail_next(&self, errors: impl IntoIterator<Item = io::Error>) {
        self.errors.lock().unwrap().extend(errors);
    }

    fn calls(&self) -> Vec<Instant> {
        self.calls.lock().unwrap().clone()
    }
}

/// Echoes text and binary messages; closes with 1001 at shutdown.
async fn echo<S: AsyncRead + AsyncWrite + Unpin, A>(mut ws: WebSocket<S>, info: ConnInfo<A>) {
    while let Some(Ok(m)) = info.recv(&mut ws).await {
        if (m.is_text() || m.is_binary()) && ws.send(m).await.is_err() {
            break;
        }
    }
}

async fn ws_client<S: AsyncRead + AsyncWrite + Unpin>(io: S) -> Result<WebSocket<S>, Error> {
    ws_client_to(io, "/", None).await
}

async fn ws_client_to<S: AsyncRead + AsyncWrite + Unpin>(
    io: S,
    path: &str,
    origin: Option<&str>,
) -> Result<WebSocket<S>, Error> {
    let mut req = ClientRequest::new("localhost", path).config(quiet());
    if let Some(o) = origin {
        req = req.header("Origin", o);
    }
    let (ws, resp) = bounded("client handshake", ws_tokio::client(io, req)).await?;
    assert_eq!(resp.status, 101);
    Ok(ws)
}

/// Sends a text message and expects it back.
async fn assert_echo<S: AsyncRead + AsyncWrite + Unpin>(ws: &mut WebSocket<S>, text: &str) {
    bounded("send", ws.send(Message::text(text.to_string())))
        .await
        .expect("send");
    match bounded("echo", ws.recv()).await {
        Some(Ok(Message::Text(t))) => assert_eq!(t.as_str(), text),
        other => panic!("expected the echo of {text:?}, got {other:?}"),
    }
}

const UPGRADE: &str = "GET / HTTP/1.1\r\nHost: localhost\r\nUpgrade: websocket\r\n\
    Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\
    Sec-WebSocket-Version: 13\r\n\r\n";

/// Sends an upgrade request and reads the answer's head; `""` when the server closed the
/// connection without answering.
async fn raw_request<S: AsyncRead + AsyncWrite + Unpin>(io: &mut S) -> String {
    // The server may have closed already; the answer (or its absence) is what counts.
    let _ = io.write_all(UPGRADE.as_bytes()).await;
    read_head(io).await
}

async fn read_head<S: AsyncRead + Unpin>(io: &mut S) -> String {
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        match bounded("response head", io.read(&mut byte)).await {
            Ok(0) | Err(_) => break,
            Ok(_) => head.push(byte[0]),
        }
    }
    String::from_utf8(head).expect("ASCII head")
}

fn assert_busy(head: &str) {
    assert!(
        head.starts_with("HTTP/1.1 503 Service Unavailable\r\n"),
        "expected 503, got {head:?}"
    );
    assert!(head.contains("\r\nRetry-After: 5\r\n"), "{head:?}");
}

/// Reads until the transport ends; the bytes read.
async fn read_to_end<S: AsyncRead + Unpin>(io: &mut S) -> Vec<u8> {
    let mut all = Vec::new();
    let mut buf = [0u8; 256];
    loop {
        match bounded("end of transport", io.read(&mut buf)).await {
            Ok(0) | Err(_) => return all,
            Ok(n) => all.extend_from_slice(&buf[..n]),
        }
    }
}

fn emfile() -> io::Error {
    io::Error::from_raw_os_error(libc::EMFILE)
}

// ---------------------------------------------------------------------------------------
// max_connections

/// Three connections fit under a cap of 3; the fourth is answered 503 with `Retry-After`;
/// once one of the three has ended, a new client is served. Real loopback TCP.
#[tokio::test]
async fn connection_cap_at_the_limit_and_one_past_it() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (ended_tx, mut ended) = mpsc::unbounded_channel();
    let server = ws_tokio::serve(listener, move |ws, info| {
        let ended_tx = ended_tx.clone();
        async move {
            echo(ws, info).await;
            // The last thing the task does before its place is released (the test runs on
            // one thread, so the release happens before the test sees this).
            let _ = ended_tx.send(());
        }
    })
    .config(quiet())
    .max_connections(3);
    tokio::spawn(server.into_future());

    let mut clients = Vec::new();
    for i in 0..3 {
        let mut ws = ws_client(TcpStream::connect(addr).await.unwrap())
            .await
            .unwrap_or_else(|e| panic!("client {i} at the cap: {e}"));
        assert_echo(&mut ws, &format!("hello {i}")).await;
        clients.push(ws);
    }
    let mut fourth = TcpStream::connect(addr).await.unwrap();
    assert_busy(&raw_request(&mut fourth).await);
    // The answer is followed by the end of the connection.
    assert!(read_to_end(&mut fourth).await.is_empty());

    // The three are still served.
    for (i, ws) in clients.iter_mut().enumerate() {
        assert_echo(ws, &format!("again {i}")).await;
    }
    let mut first = clients.remove(0);
    bounded("close", first.close(None)).await.unwrap();
    bounded("handler end", ended.recv()).await.unwrap();
    let mut ws = ws_client(TcpStream::connect(addr).await.unwrap())
        .await
        .expect("a place is free again");
    assert_echo(&mut ws, "in its place").await;
}

/// A connection counts from its accept, while its handshake is still in progress.
#[tokio::test(start_paused = true)]
async fn connections_count_during_their_handshake() {
    let (listener, conn) = mem_listener();
    let server = ws_tokio::serve(listener, echo)
        .config(quiet())
        .max_connections(1);
    tokio::spawn(server.into_future());
    let _silent = conn.connect(); // sends nothing: still in its handshake
    let mut second = conn.connect();
    assert_busy(&raw_request(&mut second).await);
}

// ---------------------------------------------------------------------------------------
// max_connections_per_ip

#[cfg(target_os = "linux")]
async fn tcp_from(ip: [u8; 4], to: SocketAddr) -> TcpStream {
    let s = TcpSocket::new_v4().unwrap();
    s.bind(SocketAddr::new(IpAddr::V4(Ipv4Addr::from(ip)), 0))
        .unwrap();
    s.connect(to).await.unwrap()
}

/// Two connections per address under a cap of 2: the third from 127.0.0.1 gets 503, while
/// 127.0.0.2 still gets its own two. Real loopback TCP (counted as `limit_loopback` asks).
#[cfg(target_os = "linux")]
#[tokio::test]
async fn per_ip_cap_at_the_limit_and_one_past_it() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let limits = ServeConfig::default()
        .with_max_connections(100)
        .with_max_connections_per_ip(2)
        .with_limit_loopback(true);
    let server = ws_tokio::serve(listener, echo)
        .config(quiet())
        .serve_config(limits);
    tokio::spawn(server.into_future());

    let mut held = Vec::new();
    for ip in [[127, 0, 0, 1], [127, 0, 0, 2]] {
        for i in 0..2 {
            let mut ws = ws_client(tcp_from(ip, addr).await)
                .await
                .unwrap_or_else(|e| panic!("{ip:?} #{i}: {e}"));
            assert_echo(&mut ws, "hi").await;
            held.push(ws);
        }
        let mut third = tcp_from(ip, addr).await;
        assert_busy(&raw_request(&mut third).await);
    }
    // Ending one connection from 127.0.0.1 frees a place for that address only.
    let mut first = held.remove(0);
    bounded("close", first.close(None)).await.unwrap();
    let mut again = None;
    for _ in 0..100 {
        // The place is released when the handler's task ends, just after the close.
        match ws_client(tcp_from([127, 0, 0, 1], addr).await).await {
            Ok(ws) => {
                again = Some(ws);
                break;
            }
            Err(Error::Rejected { status: 503 }) => tokio::task::yield_now().await,
            Err(e) => panic!("{e}"),
        }
    }
    assert_echo(&mut again.expect("a place for 127.0.0.1 again"), "back").await;
    let mut third = tcp_from([127, 0, 0, 2], addr).await;
    assert_busy(&raw_request(&mut third).await);
}

/// By default loopback clients (a reverse proxy on the same host) are not held to the per-IP
/// cap: three from 127.0.0.1 under a cap of 1, and the total cap still answers 503.
#[cfg(target_os = "linux")]
#[tokio::test]
async fn loopback_is_not_held_to_the_per_ip_cap_by_default() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let server = ws_tokio::serve(listener, echo)
        .config(quiet())
        .max_connections(3)
        .max_connections_per_ip(1);
    tokio::spawn(server.into_future());
    let mut held = Vec::new();
    for i in 0..3 {
        let mut ws = ws_client(tcp_from([127, 0, 0, 1], addr).await)
            .await
            .unwrap_or_else(|e| panic!("#{i}: {e}"));
        assert_echo(&mut ws, "hi").await;
        held.push(ws);
    }
    let mut fourth = tcp_from([127, 0, 0, 1], addr).await;
    assert_busy(&raw_request(&mut fourth).await);
}

/// A Unix-domain socket has no IP address: a per-IP cap of 1 does not stop a second client.
#[cfg(unix)]
#[tokio::test]
async fn unix_listener_has_no_per_ip_cap() {
    let path = std::env::temp_dir().join(format!("ws-serve-{}.sock", std::process::id()));
    let _ = std::fs::remove_file(&path);
    let listener = tokio::net::UnixListener::bind(&path).unwrap();
    let server = ws_tokio::serve(listener, echo)
        .config(quiet())
        .max_connections(2)
        .max_connections_per_ip(1);
    tokio::spawn(server.into_future());
    let mut a = ws_client(tokio::net::UnixStream::connect(&path).await.unwrap())
        .await
        .unwrap();
    let mut b = ws_client(tokio::net::UnixStream::connect(&path).await.unwrap())
        .await
        .expect("no per-IP cap on a Unix socket");
    assert_echo(&mut a, "a").await;
    assert_echo(&mut b, "b").await;
    // The total cap still holds.
    let mut c = tokio::net::UnixStream::connect(&path).await.unwrap();
    assert_busy(&raw_request(&mut c).await);
    let _ = std::fs::remove_file(&path);
}

// ---------------------------------------------------------------------------------------
// max_pending_rejects and reject_timeout

/// With room for two `503` answers in flight: two clients that keep their connections open
/// get theirs, the third is closed without an answer; once the two answers time out (1 s,
/// and not a millisecond before), the next client is answered again.
#[tokio::test(start_paused = true)]
async fn pending_rejects_at_the_bound_and_past_it() {
    let (listener, conn) = mem_listener();
    let limits = ServeConfig::default()
        .with_max_connections(1)
        .with_max_pending_rejects(2)
        .with_reject_timeout(Duration::from_secs(1));
    let server = ws_tokio::serve(listener, echo)
        .config(quiet())
        .serve_config(limits);
    tokio::spawn(server.into_future());
    let mut held = ws_client(conn.connect()).await.unwrap();

    let start = Instant::now();
    let mut r1 = conn.connect();
    assert_busy(&raw_request(&mut r1).await);
    // The answer is followed by the end of the server's side at once.
    assert!(read_to_end(&mut r1).await.is_empty());
    assert_eq!(start.elapsed(), Duration::ZERO);
    let mut r2 = conn.connect();
    assert_busy(&raw_request(&mut r2).await);
    let mut r3 = conn.connect();
    assert_eq!(raw_request(&mut r3).await, "", "past the bound: no answer");

    tokio::time::sleep_until(start + ms(999)).await;
    let mut r4 = conn.connect();
    assert_eq!(
        raw_request(&mut r4).await,
        "",
        "the two answers are still pending"
    );
    tokio::time::sleep_until(start + ms(1001)).await;
    let mut r5 = conn.connect();
    assert_busy(&raw_request(&mut r5).await);
    // A client that ends its connection after reading the answer frees its place at once.
    drop(r5);
    tokio::task::yield_now().await;
    let mut r6 = conn.connect();
    assert_busy(&raw_request(&mut r6).await);
    assert_echo(&mut held, "still served").await;
}

/// `max_pending_rejects` 0: every connection past a cap is closed at once.
#[tokio::test(start_paused = true)]
async fn no_pending_rejects_closes_at_once() {
    let (listener, conn) = mem_listener();
    let server = ws_tokio::serve(listener, echo)
        .config(quiet())
        .serve_config(
            ServeConfig::default()
                .with_max_connections(1)
                .with_max_pending_rejects(0),
        );
    tokio::spawn(server.into_future());
    let _held = ws_client(conn.connect()).await.unwrap();
    let start = Instant::now();
    let mut r = conn.connect();
    assert_eq!(raw_request(&mut r).await, "");
    assert_eq!(start.elapsed(), Duration::ZERO);
}

// ---------------------------------------------------------------------------------------
// handshake_timeout

/// Under a 2 s handshake deadline: a client that sends its request at 1.999 s is served; one
/// that sends nothing is closed at 2 s, without an answer.
#[tokio::test(start_paused = true)]
async fn handshake_timeout_at_the_limit_and_past_it() {
    let (listener, conn) = mem_listener();
    let server = ws_tokio::serve(listener, echo)
        .config(quiet().with_handshake_timeout(Duration::from_secs(2)))
        .max_connections(10);
    tokio::spawn(server.into_future());

    let start = Instant::now();
    let mut silent = conn.connect();
    let late = conn.connect();
    let late = tokio::spawn(async move {
        tokio::time::sleep(ms(1999)).await;
        let mut ws = ws_client(late).await.expect("in time at 1.999 s");
        assert_echo(&mut ws, "just in time").await;
    });
    assert!(read_to_end(&mut silent).await.is_empty(), "no answer");
    assert_eq!(start.elapsed(), Duration::from_secs(2));
    late.await.unwrap();
}

// ---------------------------------------------------------------------------------------
// graceful shutdown and shutdown_timeout

/// At the signal, every live connection receives close 1001 and finishes the close
/// handshake; the serve future returns as soon as the handlers have, long before its
/// deadline; the listener is gone.
#[tokio::test(start_paused = true)]
async fn graceful_shutdown_closes_every_connection_with_1001() {
    let (listener, conn) = mem_listener();
    let (stop, stopped) = oneshot::channel::<()>();
    let server = ws_tokio::serve(listener, echo)
        .config(quiet())
        .shutdown_timeout(Duration::from_secs(10))
        .with_graceful_shutdown(async {
            let _ = stopped.await;
        });
    let server = tokio::spawn(server.into_future());
    let mut clients = Vec::new();
    for i in 0..3 {
        let mut ws = ws_client(conn.connect()).await.unwrap();
        assert_echo(&mut ws, &format!("{i}")).await;
        clients.push(ws);
    }

    let start = Instant::now();
    stop.send(()).unwrap();
    for ws in &mut clients {
        match bounded("close frame", ws.recv()).await {
            Some(Ok(Message::Close(Some(f)))) => {
                assert_eq!(f.code, CloseCode::GOING_AWAY);
                assert_eq!(f.reason.as_str(), "server shutting down");
            }
            other => panic!("expected close 1001, got {other:?}"),
        }
        // Our answer completes the close handshake.
        assert!(bounded("end", ws.recv()).await.is_none());
    }
    bounded("serve returns", server).await.unwrap().unwrap();
    assert!(
        start.elapsed() < Duration::from_secs(1),
        "{:?}",
        start.elapsed()
    );
    assert!(
        conn.connect_from([192, 0, 2, 1]).is_err(),
        "listener dropped"
    );
}

/// A handler that ignores the signal is dropped at the deadline (3 s): its client sees the
/// transport end without a close frame, and the serve future returns then, not before.
#[tokio::test(start_paused = true)]
async fn graceful_shutdown_drops_handlers_that_ignore_it_at_the_deadline() {
    let (listener, conn) = mem_listener();
    let (stop, stopped) = oneshot::channel::<()>();
    let server = ws_tokio::serve(
        listener,
        |mut ws: WebSocket<DuplexStream>, _info| async move {
            while let Some(Ok(_)) = ws.recv().await {}
        },
    )
    .config(quiet())
    .shutdown_timeout(Duration::from_secs(3))
    .with_graceful_shutdown(async {
        let _ = stopped.await;
    });
    let server = tokio::spawn(server.into_future());
    let mut ws = ws_client(conn.connect()).await.unwrap();

    let start = Instant::now();
    stop.send(()).unwrap();
    match bounded("end", ws.recv()).await {
        Some(Err(Error::PeerVanished)) => {}
        other => panic!("expected the transport to end without a close, got {other:?}"),
    }
    assert_eq!(start.elapsed(), Duration::from_secs(3));
    bounded("serve returns", server).await.unwrap().unwrap();
    assert_eq!(start.elapsed(), Duration::from_secs(3));
}

/// A handshake in progress at the signal is cancelled: the serve future does not wait for
/// the handshake deadline.
#[tokio::test(start_paused = true)]
async fn shutdown_cancels_handshakes_in_progress() {
    let (listener, conn) = mem_listener();
    let (stop, stopped) = oneshot::channel::<()>();
    let server = ws_tokio::serve(listener, echo)
        .config(quiet())
        .with_graceful_shutdown(async {
            let _ = stopped.await;
        });
    let server = tokio::spawn(server.into_future());
    let mut silent = conn.connect();
    tokio::time::sleep(ms(100)).await;
    let start = Instant::now();
    stop.send(()).unwrap();
    bounded("serve returns", server).await.unwrap().unwrap();
    assert_eq!(start.elapsed(), Duration::ZERO);
    assert!(read_to_end(&mut silent).await.is_empty());
}

// ---------------------------------------------------------------------------------------
// accept errors

/// `EMFILE` five times: the loop pauses 10, 20, 40, 80 and 160 ms, then serves the client;
/// the pause starts again at 10 ms after a success; a connection already open is served
/// while the loop pauses.
#[tokio::test(start_paused = true)]
async fn accept_backs_off_on_emfile_and_keeps_going() {
    let (listener, conn) = mem_listener();
    conn.fail_next((0..5).map(|_| emfile()));
    let server = ws_tokio::serve(listener, echo).config(quiet());
    tokio::spawn(server.into_future());

    let start = Instant::now();
    let mut first = ws_client(conn.connect())
        .await
        .expect("served after EMFILE");
    assert_echo(&mut first, "after five EMFILE").await;
    let gaps = |calls: &[Instant]| -> Vec<u64> {
        calls
            .windows(2)
            .map(|w| (w[1] - w[0]).as_millis() as u64)
            .collect()
    };
    let calls = conn.calls();
    // Five failed calls, the one that accepted, and the one now waiting.
    assert_eq!(calls.len(), 7, "{calls:?}");
    assert_eq!(gaps(&calls[..6]), [10, 20, 40, 80, 160]);
    assert_eq!(calls[5] - start, ms(310));

    // Ten more: the pause doubles to 1 s and stays there. The call waiting now takes the
    // second client; the ten after it fail.
    conn.fail_next((0..10).map(|_| emfile()));
    let t0 = Instant::now();
    let mut second = ws_client(conn.connect()).await.expect("second");
    assert_echo(&mut second, "second").await;
    assert_eq!(t0.elapsed(), Duration::ZERO);
    // While the loop pauses, the open connections are served at once.
    tokio::time::sleep(ms(5)).await;
    let at = Instant::now();
    assert_echo(&mut first, "during the pause").await;
    assert_echo(&mut second, "during the pause").await;
    assert_eq!(at.elapsed(), Duration::ZERO);
    // A client arriving during the pauses is accepted when they end, and served.
    let mut third = ws_client(conn.connect()).await.expect("third");
    assert_echo(&mut third, "third").await;
    assert_eq!(t0.elapsed(), ms(4270));
    let calls = conn.calls();
    assert_eq!(calls[7], t0);
    assert_eq!(
        gaps(&calls[7..18]),
        [10, 20, 40, 80, 160, 320, 640, 1000, 1000, 1000]
    );
}

/// `ECONNABORTED` (a client that gave up in the backlog) is retried at once.
#[tokio::test(start_paused = true)]
async fn aborted_connections_are_skipped_at_once() {
    let (listener, conn) = mem_listener();
    conn.fail_next((0..3).map(|_| io::Error::from_raw_os_error(libc::ECONNABORTED)));
    let server = ws_tokio::serve(listener, echo).config(quiet());
    tokio::spawn(server.into_future());
    let start = Instant::now();
    let mut ws = ws_client(conn.connect()).await.unwrap();
    assert_echo(&mut ws, "no pause").await;
    assert_eq!(start.elapsed(), Duration::ZERO);
    assert_eq!(conn.calls().len(), 5);
}

/// A broken listener (`EBADF`) ends the loop with its error, after closing the live
/// connections with 1001.
#[tokio::test(start_paused = true)]
async fn a_broken_listener_ends_the_loop_gracefully() {
    let (listener, conn) = mem_listener();
    let server = tokio::spawn(
        ws_tokio::serve(listener, echo)
            .config(quiet())
            .into_future(),
    );
    let mut ws = ws_client(conn.connect()).await.unwrap();
    assert_echo(&mut ws, "before").await;
    conn.fail_next([io::Error::from_raw_os_error(libc::EBADF)]);
    // Wake the waiting accept with a connection; the call after it fails.
    let _extra = conn.connect();
    match bounded("close frame", ws.recv()).await {
        Some(Ok(Message::Close(Some(f)))) => assert_eq!(f.code, CloseCode::GOING_AWAY),
        other => panic!("expected close 1001, got {other:?}"),
    }
    assert!(bounded("end", ws.recv()).await.is_none());
    match bounded("serve returns", server).await.unwrap() {
        Err(Error::Io(e)) => assert_eq!(e.raw_os_error(), Some(libc::EBADF)),
        other => panic!("expected the listener's error, got {other:?}"),
    }
}

/// A handler that panics ends its own connection and frees its place; the loop goes on.
#[tokio::test(start_paused = true)]
async fn a_panicking_handler_ends_only_its_connection() {
    let (listener, conn) = mem_listener();
    let server = ws_tokio::serve(
        listener,
        |mut ws: WebSocket<DuplexStream>, info| async move {
            while let Some(Ok(m)) = info.recv(&mut ws).await {
                if m.to_text().is_ok_and(|t| t == "panic") {
                    panic!("handler panics on purpose");
                }
                let _ = ws.send(m).await;
            }
        },
    )
    .config(quiet())
    .max_connections(1);
    tokio::spawn(server.into_future());
    let mut ws = ws_client(conn.connect()).await.unwrap();
    ws.send(Message::text("panic")).await.unwrap();
    assert!(matches!(
        bounded("end", ws.recv()).await,
        Some(Err(Error::PeerVanished))
    ));
    let mut next = ws_client(conn.connect()).await.expect("the place is free");
    assert_echo(&mut next, "after the panic").await;
}

// ---------------------------------------------------------------------------------------
// accept callback and Origin policy

static ORIGINS: OriginPolicy<'static> =
    OriginPolicy::new().with_allowed(&["https://app.example.com"]);

/// The Origin policy answers 403 first; the accept callback then decides (404 for an unknown
/// path, a subprotocol it picks for the rest).
#[tokio::test(start_paused = true)]
async fn origin_policy_and_accept_callback() {
    let (listener, conn) = mem_listener();
    let server = ws_tokio::serve(listener, echo)
        .config(quiet())
        .origin(ORIGINS)
        .accept_with(|req| {
            if req.path() == "/chat" {
                Ok(AcceptResponse::new().header("X-Room", "chat"))
            } else {
                Err(Reject::status(404))
            }
        });
    tokio::spawn(server.into_future());

    let refused = |r: Result<WebSocket<DuplexStream>, Error>| match r {
        Err(Error::Rejected { status }) => status,
        Ok(_) => panic!("accepted"),
        Err(e) => panic!("{e}"),
    };
    assert_eq!(
        refused(ws_client_to(conn.connect(), "/chat", Some("https://evil.example")).await),
        403
    );
    assert_eq!(
        refused(ws_client_to(conn.connect(), "/other", Some("https://app.example.com")).await),
        404
    );
    let mut ws = ws_client_to(conn.connect(), "/chat", Some("https://app.example.com"))
        .await
        .expect("allowed origin, known path");
    assert_echo(&mut ws, "allowed").await;
    let mut ws = ws_client_to(conn.connect(), "/chat", None)
        .await
        .expect("no Origin: not a browser");
    assert_echo(&mut ws, "no origin").await;
}

/// What the accept callback found out reaches the handler, per connection.
#[tokio::test(start_paused = true)]
async fn the_accept_callback_hands_values_to_the_handler() {
    #[derive(Clone, Debug, PartialEq)]
    struct Room(String);
    let (listener, conn) = mem_listener();
    let server = ws_tokio::serve(listener, |mut ws, info| async move {
        // Greets with the room the callback took from the path, then echoes.
        let room = info.extensions.get::<Room>().cloned();
        let text = format!("room {room:?}");
        if ws.send(Message::text(text)).await.is_ok() {
            echo(ws, info).await;
        }
    })
    .config(quiet())
    .accept_with(|req| {
        let mut answer = AcceptResponse::new();
        if let Some(room) = req.path().strip_prefix("/room/") {
            answer = answer.extension(Room(room.to_owned()));
        }
        Ok(answer)
    });
    tokio::spawn(server.into_future());
    for (path, greeting) in [
        ("/room/a", r#"room Some(Room("a"))"#),
        ("/room/b", r#"room Some(Room("b"))"#),
        ("/", "room None"),
    ] {
        let mut ws = ws_client_to(conn.connect(), path, None).await.unwrap();
        match bounded("greeting", ws.recv()).await {
            Some(Ok(Message::Text(t))) => assert_eq!(t.as_str(), greeting, "{path}"),
            other => panic!("{other:?}"),
        }
        assert_echo(&mut ws, "still echoes").await;
    }
}

static BAD_ORIGINS: OriginPolicy<'static> = OriginPolicy::new().with_allowed(&["https://a b"]);

/// Settings that make no sense fail the serve future at once.
#[tokio::test(start_paused = true)]
async fn invalid_settings_are_an_error() {
    let invalid = |r: Result<(), Error>| {
        assert!(
            matches!(r, Err(Error::Usage(ws_tokio::Usage::InvalidConfig))),
            "{r:?}"
        )
    };
    let (listener, _c) = mem_listener();
    invalid(ws_tokio::serve(listener, echo).max_connections(0).await);
    let (listener, _c) = mem_listener();
    invalid(
        ws_tokio::serve(listener, echo)
            .max_connections_per_ip(0)
            .await,
    );
    let (listener, _c) = mem_listener();
    invalid(ws_tokio::serve(listener, echo).origin(BAD_ORIGINS).await);
    let (listener, _c) = mem_listener();
    invalid(
        ws_tokio::serve(listener, echo)
            .config(quiet().with_max_message_size(0))
            .await,
    );
}
