//! Echo servers, one per implementation (tokio-tungstenite, fastwebsockets, tokio-websockets,
//! sockudo-ws, yawc and ours), all built the same way: a tokio multi-thread runtime
//! with the same number of workers, `TCP_NODELAY`, one task per connection, no compression,
//! 64 MiB message and 16 MiB frame limits (where the crate has them), echoing every text and
//! binary message back whole.

use std::io;
use std::net::SocketAddr;
use std::str::FromStr;
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use tokio::net::{TcpListener, TcpStream};

/// Largest message accepted by every server.
pub const MAX_MESSAGE: usize = 64 << 20;
/// Largest frame accepted (where the crate has a separate frame limit).
pub const MAX_FRAME: usize = 16 << 20;

/// An implementation under test.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Impl {
    /// `ws-tokio`, with keepalive pings and write timeouts off (no peer has them on).
    Ours,
    /// `ws-tokio` with its default `Config` (pings every 20 s, 30 s write timeout).
    OursDefault,
    /// `tokio-tungstenite`.
    Tungstenite,
    /// `fastwebsockets` behind hyper's upgrade, through its `FragmentCollector`.
    Fastwebsockets,
    /// `tokio-websockets` (server feature).
    TokioWebsockets,
    /// `ws-tokio`'s axum extractor (`ws_tokio::axum`) behind axum's router and hyper's
    /// HTTP/1.1 server, with [`ours_config`].
    AxumOurs,
    /// axum's own `axum::extract::ws` (tokio-tungstenite) behind the same router and server.
    AxumTungstenite,
    /// `sockudo-ws` (its own HTTP/1.1 handshake, `WebSocketStream`).
    SockudoWs,
    /// `yawc` behind hyper's upgrade.
    Yawc,
}

impl Impl {
    /// The implementations compared by default, ours first.
    pub const DEFAULT_SET: [Impl; 4] = [
        Impl::Ours,
        Impl::Tungstenite,
        Impl::Fastwebsockets,
        Impl::TokioWebsockets,
    ];

    /// The command-line name.
    pub const fn name(self) -> &'static str {
        match self {
            Impl::Ours => "ours",
            Impl::OursDefault => "ours-default",
            Impl::Tungstenite => "tungstenite",
            Impl::Fastwebsockets => "fastwebsockets",
            Impl::TokioWebsockets => "tokio-websockets",
            Impl::AxumOurs => "axum-ours",
            Impl::AxumTungstenite => "axum-tungstenite",
            Impl::SockudoWs => "sockudo-ws",
            Impl::Yawc => "yawc",
        }
    }

    /// Whether this is one of our own configurations.
    pub const fn is_ours(self) -> bool {
        matches!(self, Impl::Ours | Impl::OursDefault | Impl::AxumOurs)
    }
}

impl FromStr for Impl {
    type Err = String;

    fn from_str(s: &str) -> Result<Impl, String> {
        Ok(match s {
            "ours" | "ws-tokio" => Impl::Ours,
            "ours-default" => Impl::OursDefault,
            "tungstenite" | "tokio-tungstenite" => Impl::Tungstenite,
            "fastwebsockets" => Impl::Fastwebsockets,
            "tokio-websockets" => Impl::TokioWebsockets,
            "axum-ours" => Impl::AxumOurs,
            "axum-tungstenite" => Impl::AxumTungstenite,
            "sockudo-ws" | "sockudo" => Impl::SockudoWs,
            "yawc" => Impl::Yawc,
            _ => {
                return Err(format!(
                    "unknown implementation {s:?} (ours, ours-default, tungstenite, \
                     fastwebsockets, tokio-websockets, axum-ours, axum-tungstenite, \
                     sockudo-ws, yawc)"
                ));
            }
        })
    }
}

/// Runs the echo server for `imp` on `addr` with `workers` runtime workers. Prints
/// `PORT <port>` on stdout once listening. Returns after `max_run` (a safety bound), or when
/// standard input reaches EOF if `stdin_eof_exits` (so a server whose driver died goes too).
pub fn serve(
    imp: Impl,
    addr: SocketAddr,
    workers: usize,
    max_run: Duration,
    stdin_eof_exits: bool,
) -> io::Result<()> {
    serve_with(addr, workers, max_run, stdin_eof_exits, move || {
        move |tcp| spawn_handler(imp, tcp)
    })
}

/// The accept loop of every bench server: a tokio multi-thread runtime with `workers` workers
/// listening on `addr`, `TCP_NODELAY` on each accepted connection, which goes to the handler
/// that `make` builds (inside the runtime, so it may spawn tasks). Prints `PORT <port>`; ends
/// as [`serve`] does.
pub fn serve_with<M, H>(
    addr: SocketAddr,
    workers: usize,
    max_run: Duration,
    stdin_eof_exits: bool,
    make: M,
) -> io::Result<()>
where
    M: FnOnce() -> H + Send,
    H: FnMut(TcpStream),
{
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(workers.max(1))
        .enable_all()
        .build()?;
    rt.block_on(async move {
        let listener = TcpListener::bind(addr).await?;
        let port = listener.local_addr()?.port();
        {
            use std::io::Write;
            let mut out = std::io::stdout().lock();
            writeln!(out, "PORT {port}")?;
            out.flush()?;
        }
        if stdin_eof_exits {
            std::thread::spawn(|| {
                let mut sink = Vec::new();
                let _ = std::io::Read::read_to_end(&mut std::io::stdin(), &mut sink);
                std::process::exit(0);
            });
        }
        let mut handler = make();
        let accept_loop = async {
            loop {
                let (tcp, _) = match listener.accept().await {
                    Ok(x) => x,
                    // Out of file descriptors and the like: back off briefly.
                    Err(_) => {
                        tokio::time::sleep(Duration::from_millis(5)).await;
                        continue;
                    }
                };
                let _ = tcp.set_nodelay(true);
                handler(tcp);
            }
        };
        tokio::select! {
            _ = accept_loop => {}
            _ = tokio::time::sleep(max_run) => {}
        }
        Ok::<_, io::Error>(())
    })?;
    rt.shutdown_timeout(Duration::from_millis(100));
    Ok(())
}

/// Serves one connection in its own task. Each implementation's future is spawned as its own
/// type, so a task is as large as that implementation's future, not the largest of all.
fn spawn_handler(imp: Impl, tcp: TcpStream) {
    match imp {
        Impl::Ours => drop(tokio::spawn(ours(tcp, false))),
        Impl::OursDefault => drop(tokio::spawn(ours(tcp, true))),
        Impl::Tungstenite => drop(tokio::spawn(tungstenite(tcp))),
        Impl::Fastwebsockets => drop(tokio::spawn(fastwebsockets::serve(tcp))),
        Impl::TokioWebsockets => drop(tokio::spawn(tokio_websockets(tcp))),
        Impl::AxumOurs => drop(tokio::spawn(axum_app::serve(tcp, &axum_app::OURS))),
        Impl::AxumTungstenite => drop(tokio::spawn(axum_app::serve(tcp, &axum_app::TUNGSTENITE))),
        Impl::SockudoWs => drop(tokio::spawn(sockudo_ws(tcp))),
        Impl::Yawc => drop(tokio::spawn(yawc::serve(tcp))),
    }
}

/// Our settings for the comparison: defaults, with the timers no peer has turned off.
pub fn ours_config() -> ws_tokio::Config {
    ws_tokio::Config::default()
        .with_ping_interval(None)
        .with_write_timeout(None)
        .with_idle_timeout(None)
        .with_max_message_size(MAX_MESSAGE as u64)
        .with_max_frame_size(MAX_FRAME as u64)
}

/// `defaults`: ws-tokio's default settings instead of [`ours_config`]. (The settings are made
/// here rather than passed in: an async fn keeps its arguments for its whole life, so a
/// `Config` argument would add its size to every idle connection's task.)
async fn ours(tcp: TcpStream, defaults: bool) {
    use ws_tokio::Message;
    let config = if defaults {
        ws_tokio::Config::default()
    } else {
        ours_config()
    };
    let Ok(mut ws) = ws_tokio::accept_with_config(tcp, config).await else {
        return;
    };
    while let Some(msg) = ws.recv().await {
        match msg {
            Ok(m @ (Message::Text(_) | Message::Binary(_))) => {
                // Queued, not flushed: `recv` writes the queue out before it waits for
                // data, so the replies to one read's worth of messages leave in one write.
                if ws.feed(m).await.is_err() {
                    return;
                }
            }
            Ok(_) => {}
            Err(_) => return,
        }
    }
}

async fn tungstenite(tcp: TcpStream) {
    use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;
    let config = WebSocketConfig::default()
        .max_message_size(Some(MAX_MESSAGE))
        .max_frame_size(Some(MAX_FRAME));
    let Ok(mut ws) = tokio_tungstenite::accept_async_with_config(tcp, Some(config)).await else {
        return;
    };
    while let Some(Ok(m)) = ws.next().await {
        if (m.is_text() || m.is_binary()) && ws.send(m).await.is_err() {
            return;
        }
    }
}

async fn tokio_websockets(tcp: TcpStream) {
    let limits = tokio_websockets::Limits::default().max_payload_len(Some(MAX_MESSAGE));
    let Ok((_request, mut ws)) = tokio_websockets::ServerBuilder::new()
        .limits(limits)
        .accept(tcp)
        .await
    else {
        return;
    };
    while let Some(Ok(m)) = ws.next().await {
        if (m.is_text() || m.is_binary()) && ws.send(m).await.is_err() {
            return;
        }
    }
}

/// sockudo-ws's settings for the comparison: its defaults with the timers no other server has
/// turned off (inbound idle timeout, automatic pings) and our limits.
pub fn sockudo_config() -> sockudo_ws::Config {
    sockudo_ws::Config::builder()
        .max_message_size(MAX_MESSAGE)
        .max_frame_size(MAX_FRAME)
        .idle_timeout(0)
        .auto_ping(false)
        .build()
}

async fn sockudo_ws(tcp: TcpStream) {
    let server =
        sockudo_ws::server::WebSocketServer::<sockudo_ws::transport::Http1>::new(sockudo_config());
    let Ok((mut ws, _)) = server.accept(tcp).await else {
        return;
    };
    while let Some(Ok(m)) = ws.next().await {
        if matches!(
            m,
            sockudo_ws::Message::Text(_) | sockudo_ws::Message::Binary(_)
        ) && ws.send(m).await.is_err()
        {
            return;
        }
    }
}

mod yawc {
    //! yawc's documented server path: hyper's HTTP/1 server with upgrades, then
    //! `WebSocket::upgrade_with_options` (it answers pings and closes itself).

    use futures_util::{SinkExt, StreamExt};
    use http_body_util::Empty;
    use hyper::body::{Bytes, Incoming};
    use hyper::server::conn::http1;
    use hyper::service::service_fn;
    use hyper::{Request, Response};
    use tokio::net::TcpStream;
    use yawc::{OpCode, Options, WebSocket};

    use super::MAX_MESSAGE;

    pub(super) async fn serve(tcp: TcpStream) {
        let io = hyper_util::rt::TokioIo::new(tcp);
        let _ = http1::Builder::new()
            .serve_connection(io, service_fn(upgrade_request))
            .with_upgrades()
            .await;
    }

    async fn upgrade_request(mut req: Request<Incoming>) -> yawc::Result<Response<Empty<Bytes>>> {
        let options = Options::default()
            .with_max_payload_read(MAX_MESSAGE)
            .with_max_read_buffer(MAX_MESSAGE)
            .with_utf8();
        let (response, fut) = WebSocket::upgrade_with_options(&mut req, options)?;
        tokio::spawn(async move {
            let Ok(mut ws) = fut.await else {
                return;
            };
            while let Some(frame) = ws.next().await {
                let echo = matches!(frame.opcode(), OpCode::Text | OpCode::Binary);
                if echo && ws.send(frame).await.is_err() {
                    return;
                }
            }
        });
        Ok(response)
    }
}

mod fastwebsockets {
    //! fastwebsockets' documented server path: hyper's HTTP/1 server with upgrades, then a
    //! `FragmentCollector` (assembles messages, answers pings and closes) on the upgraded
    //! stream.

    use fastwebsockets::{FragmentCollector, OpCode, WebSocketError, upgrade};
    use http_body_util::Empty;
    use hyper::body::{Bytes, Incoming};
    use hyper::server::conn::http1;
    use hyper::service::service_fn;
    use hyper::{Request, Response};
    use tokio::net::TcpStream;

    use super::MAX_MESSAGE;

    pub(super) async fn serve(tcp: TcpStream) {
        let io = hyper_util::rt::TokioIo::new(tcp);
        let _ = http1::Builder::new()
            .serve_connection(io, service_fn(upgrade_request))
            .with_upgrades()
            .await;
    }

    async fn upgrade_request(
        mut req: Request<Incoming>,
    ) -> Result<Response<Empty<Bytes>>, WebSocketError> {
        let (response, fut) = upgrade::upgrade(&mut req)?;
        tokio::spawn(async move {
            let Ok(mut ws) = fut.await else {
                return;
            };
            ws.set_max_message_size(MAX_MESSAGE);
            ws.set_auto_pong(true);
            ws.set_auto_close(true);
            let mut ws = FragmentCollector::new(ws);
            loop {
                let Ok(frame) = ws.read_frame().await else {
                    return;
                };
                let echo = match frame.opcode {
                    OpCode::Close => return,
                    OpCode::Text | OpCode::Binary => true,
                    _ => false,
                };
                if echo && ws.write_frame(frame).await.is_err() {
                    return;
                }
            }
        });
        Ok(response)
    }
}

mod axum_app {
    //! Both axum servers: one router per process (every path takes the WebSocket; the load
    //! client asks for `/echo`), each connection
    //! served by hyper's HTTP/1.1 server with upgrades, as `axum::serve` serves it; the
    //! extractor's `on_upgrade` spawns the connection's task.

    use std::sync::LazyLock;

    use axum::Router;
    use axum::routing::any;
    use hyper_util::rt::TokioIo;
    use hyper_util::service::TowerToHyperService;
    use tokio::net::TcpStream;

    use super::{MAX_FRAME, MAX_MESSAGE, ours_config};

    pub(super) static OURS: LazyLock<Router> = LazyLock::new(|| {
        Router::new().fallback(any(|ws: ws_tokio::axum::WebSocketUpgrade| async move {
            ws.config(ours_config()).on_upgrade(ours)
        }))
    });

    pub(super) static TUNGSTENITE: LazyLock<Router> = LazyLock::new(|| {
        Router::new().fallback(any(|ws: axum::extract::ws::WebSocketUpgrade| async move {
            ws.max_message_size(MAX_MESSAGE)
                .max_frame_size(MAX_FRAME)
                .on_upgrade(tungstenite)
        }))
    });

    pub(super) async fn serve(tcp: TcpStream, router: &'static Router) {
        let service = TowerToHyperService::new(router.clone());
        let _ = hyper::server::conn::http1::Builder::new()
            .serve_connection(TokioIo::new(tcp), service)
            .with_upgrades()
            .await;
    }

    /// As [`super::ours`]: replies are queued with `feed` and written when `recv` waits.
    async fn ours(socket: ws_tokio::axum::WebSocket) {
        use ws_tokio::Message;
        let mut ws = socket.into_inner();
        while let Some(msg) = ws.recv().await {
            match msg {
                Ok(m @ (Message::Text(_) | Message::Binary(_))) => {
                    if ws.feed(m).await.is_err() {
                        return;
                    }
                }
                Ok(_) => {}
                Err(_) => return,
            }
        }
    }

    /// As axum's documentation echoes.
    async fn tungstenite(mut socket: axum::extract::ws::WebSocket) {
        use axum::extract::ws::Message;
        while let Some(Ok(m)) = socket.recv().await {
            if matches!(m, Message::Text(_) | Message::Binary(_)) && socket.send(m).await.is_err() {
                return;
            }
        }
    }
}
