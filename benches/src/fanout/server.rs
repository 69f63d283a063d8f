//! Fan-out servers, one per implementation, on the accept loop every bench server shares
//! ([`crate::server::serve_with`]: a tokio multi-thread runtime, `TCP_NODELAY`, one task per
//! connection). A connection to [`PUB_PATH`] publishes; every other connection subscribes.
//!
//! Each peer broadcasts the way its own examples do: a hub of one unbounded sender per
//! subscriber, each feeding that subscriber's writer (tokio-tungstenite's chat server example:
//! `rx.forward(sink)`; the same for tokio-websockets and yawc, whose docs suggest
//! `StreamExt::split`; fastwebsockets' split halves with a writer task; sockudo-ws's own
//! `PubSub` topics with a `select!` loop per connection as in its `pubsub_echo` example). With
//! permessage-deflate (sockudo-ws, yawc, ours), each peer compresses for every subscriber on
//! that subscriber's connection, at the level given (by default [`DEFLATE_LEVEL`], ours'
//! default, so that all compress the same way with the same zlib-rs backend), with its default
//! context takeover. Ours is in
//! [`ours`]: one place to swap for a topics layer.

use std::collections::HashMap;
use std::io;
use std::net::SocketAddr;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::time::Duration;

use futures_util::StreamExt;
use tokio::net::TcpStream;

use super::PUB_PATH;
use crate::server::{Impl, MAX_FRAME, MAX_MESSAGE, serve_with};

/// The zlib level every compressing server uses by default (ours' default level).
pub const DEFLATE_LEVEL: u8 = 2;

/// Whether `imp` can compress as a server (permessage-deflate).
pub const fn has_deflate(imp: Impl) -> bool {
    matches!(
        imp,
        Impl::Ours | Impl::OursDefault | Impl::SockudoWs | Impl::Yawc
    )
}

/// Runs the fan-out server for `imp` on `addr`, accepting permessage-deflate at zlib level
/// `deflate` when given; prints `PORT <port>` and ends as [`crate::server::serve`] does.
pub fn serve(
    imp: Impl,
    deflate: Option<u8>,
    addr: SocketAddr,
    workers: usize,
    max_run: Duration,
    stdin_eof_exits: bool,
) -> io::Result<()> {
    if deflate.is_some() && !has_deflate(imp) {
        return Err(io::Error::other(format!(
            "{} has no server-side permessage-deflate",
            imp.name()
        )));
    }
    let run = |h: MakeHandler| serve_with(addr, workers, max_run, stdin_eof_exits, h);
    match imp {
        Impl::Ours | Impl::OursDefault => {
            let defaults = imp == Impl::OursDefault;
            run(Box::new(move || -> Handler {
                let hub = ours::Hub::new(deflate, defaults);
                Box::new(move |tcp| drop(tokio::spawn(ours::connection(hub.clone(), tcp))))
            }))
        }
        Impl::Tungstenite => run(Box::new(|| -> Handler {
            let hub = Hub::new();
            Box::new(move |tcp| drop(tokio::spawn(tungstenite(hub.clone(), tcp))))
        })),
        Impl::TokioWebsockets => run(Box::new(|| -> Handler {
            let hub = Hub::new();
            Box::new(move |tcp| drop(tokio::spawn(tokio_websockets(hub.clone(), tcp))))
        })),
        Impl::Fastwebsockets => run(Box::new(|| -> Handler {
            let hub = Hub::new();
            Box::new(move |tcp| drop(tokio::spawn(fast::serve(hub.clone(), tcp))))
        })),
        Impl::SockudoWs => run(Box::new(move || -> Handler {
            let pubsub = std::sync::Arc::new(sockudo_ws::PubSub::new());
            Box::new(move |tcp| drop(tokio::spawn(sockudo::serve(pubsub.clone(), deflate, tcp))))
        })),
        Impl::Yawc => run(Box::new(move || -> Handler {
            let hub = Hub::new();
            Box::new(move |tcp| drop(tokio::spawn(yawc_fanout::serve(hub.clone(), deflate, tcp))))
        })),
        Impl::AxumOurs | Impl::AxumTungstenite => Err(io::Error::other(format!(
            "{} is an echo server only (bench_all)",
            imp.name()
        ))),
    }
}

/// What the accept loop hands each connection to.
type Handler = Box<dyn FnMut(TcpStream)>;
/// Builds the handler inside the runtime.
type MakeHandler = Box<dyn FnOnce() -> Handler + Send>;

/// The peers' hub: one sender per subscriber, in a map under a lock, as in
/// tokio-tungstenite's chat server example.
struct Hub<T> {
    next: AtomicU64,
    subscribers: Mutex<HashMap<u64, T>>,
}

type SharedHub<T> = std::sync::Arc<Hub<T>>;

impl<T> Hub<T> {
    fn new() -> SharedHub<T> {
        std::sync::Arc::new(Hub {
            next: AtomicU64::new(0),
            subscribers: Mutex::new(HashMap::new()),
        })
    }

    fn add(&self, tx: T) -> u64 {
        let id = self.next.fetch_add(1, Relaxed);
        if let Ok(mut m) = self.subscribers.lock() {
            m.insert(id, tx);
        }
        id
    }

    fn remove(&self, id: u64) {
        if let Ok(mut m) = self.subscribers.lock() {
            m.remove(&id);
        }
    }

    /// Calls `send` with every subscriber's sender, under the lock.
    fn each(&self, mut send: impl FnMut(&T)) {
        if let Ok(m) = self.subscribers.lock() {
            for tx in m.values() {
                send(tx);
            }
        }
    }
}

// ---------------------------------------------------------------------------------------------
// tokio-tungstenite: the chat server example (`examples/server.rs`)
// ---------------------------------------------------------------------------------------------

type TtMessage = tokio_tungstenite::tungstenite::Message;

async fn tungstenite(
    hub: SharedHub<futures_channel::mpsc::UnboundedSender<TtMessage>>,
    tcp: TcpStream,
) {
    use tokio_tungstenite::tungstenite::handshake::server::{Request, Response};
    use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;
    let config = WebSocketConfig::default()
        .max_message_size(Some(MAX_MESSAGE))
        .max_frame_size(Some(MAX_FRAME));
    let mut publisher = false;
    // The callback's signature is tungstenite's (its error is an HTTP response).
    #[allow(clippy::result_large_err)]
    let callback = |req: &Request, resp: Response| {
        publisher = req.uri().path() == PUB_PATH;
        Ok(resp)
    };
    let Ok(ws) = tokio_tungstenite::accept_hdr_async_with_config(tcp, callback, Some(config)).await
    else {
        return;
    };
    if publisher {
        let (_, mut incoming) = ws.split();
        while let Some(Ok(m)) = incoming.next().await {
            if m.is_text() || m.is_binary() {
                hub.each(|tx| {
                    let _ = tx.unbounded_send(m.clone());
                });
            }
        }
        return;
    }
    let (tx, rx) = futures_channel::mpsc::unbounded();
    let id = hub.add(tx);
    let (outgoing, mut incoming) = ws.split();
    let forward = rx.map(Ok).forward(outgoing);
    let read = async { while let Some(Ok(_)) = incoming.next().await {} };
    tokio::select! {
        _ = forward => {}
        _ = read => {}
    }
    hub.remove(id);
}

// ---------------------------------------------------------------------------------------------
// tokio-websockets: the same shape (its examples have no broadcast; it is a Stream + Sink)
// ---------------------------------------------------------------------------------------------

async fn tokio_websockets(
    hub: SharedHub<futures_channel::mpsc::UnboundedSender<tokio_websockets::Message>>,
    tcp: TcpStream,
) {
    let limits = tokio_websockets::Limits::default().max_payload_len(Some(MAX_MESSAGE));
    let Ok((request, ws)) = tokio_websockets::ServerBuilder::new()
        .limits(limits)
        .accept(tcp)
        .await
    else {
        return;
    };
    if request.uri().path() == PUB_PATH {
        let (_, mut incoming) = ws.split();
        while let Some(Ok(m)) = incoming.next().await {
            if m.is_text() || m.is_binary() {
                hub.each(|tx| {
                    let _ = tx.unbounded_send(m.clone());
                });
            }
        }
        return;
    }
    let (tx, rx) = futures_channel::mpsc::unbounded();
    let id = hub.add(tx);
    let (outgoing, mut incoming) = ws.split();
    let forward = rx.map(Ok).forward(outgoing);
    let read = async { while let Some(Ok(_)) = incoming.next().await {} };
    tokio::select! {
        _ = forward => {}
        _ = read => {}
    }
    hub.remove(id);
}

// ---------------------------------------------------------------------------------------------
// fastwebsockets: hyper upgrade, split halves (`examples/echo_server_split.rs`), a writer task
// ---------------------------------------------------------------------------------------------

mod fast {
    use fastwebsockets::{
        FragmentCollector, FragmentCollectorRead, Frame, OpCode, Payload, WebSocketError, upgrade,
    };
    use http_body_util::Empty;
    use hyper::body::{Bytes, Incoming};
    use hyper::server::conn::http1;
    use hyper::service::service_fn;
    use hyper::{Request, Response};
    use tokio::net::TcpStream;
    use tokio::sync::mpsc::UnboundedSender;

    use super::{PUB_PATH, SharedHub};
    use crate::server::MAX_MESSAGE;

    /// A message to relay: text or binary, and its payload.
    type Relay = (bool, Bytes);
    type FastHub = SharedHub<UnboundedSender<Relay>>;

    pub(super) async fn serve(hub: FastHub, tcp: TcpStream) {
        let io = hyper_util::rt::TokioIo::new(tcp);
        let _ = http1::Builder::new()
            .serve_connection(io, service_fn(move |req| upgrade_request(hub.clone(), req)))
            .with_upgrades()
            .await;
    }

    async fn upgrade_request(
        hub: FastHub,
        mut req: Request<Incoming>,
    ) -> Result<Response<Empty<Bytes>>, WebSocketError> {
        let publisher = req.uri().path() == PUB_PATH;
        let (response, fut) = upgrade::upgrade(&mut req)?;
        if publisher {
            tokio::spawn(async move {
                let Ok(mut ws) = fut.await else {
                    return;
                };
                ws.set_max_message_size(MAX_MESSAGE);
                let mut ws = FragmentCollector::new(ws);
                while let Ok(frame) = ws.read_frame().await {
                    match frame.opcode {
                        OpCode::Close => return,
                        OpCode::Text | OpCode::Binary => {
                            let text = frame.opcode == OpCode::Text;
                            let b = Bytes::copy_from_slice(&frame.payload);
                            hub.each(|tx| {
                                let _ = tx.send((text, b.clone()));
                            });
                        }
                        _ => {}
                    }
                }
            });
            return Ok(response);
        }
        let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<Relay>();
        let id = hub.add(tx);
        tokio::spawn(async move {
            let Ok(ws) = fut.await else {
                hub.remove(id);
                return;
            };
            let (rd, mut wr) = ws.split(tokio::io::split);
            let writer = tokio::spawn(async move {
                while let Some((text, b)) = rx.recv().await {
                    let payload = Payload::Borrowed(&b);
                    let frame = if text {
                        Frame::text(payload)
                    } else {
                        Frame::binary(payload)
                    };
                    if wr.write_frame(frame).await.is_err() {
                        break;
                    }
                }
            });
            let mut rd = FragmentCollectorRead::new(rd);
            // Subscribers send nothing but a close: no obligated writes to send.
            while let Ok(frame) = rd
                .read_frame(&mut |_| async { Ok::<_, WebSocketError>(()) })
                .await
            {
                if frame.opcode == OpCode::Close {
                    break;
                }
            }
            hub.remove(id);
            writer.abort();
        });
        Ok(response)
    }
}

// ---------------------------------------------------------------------------------------------
// sockudo-ws: its PubSub topics and a select! loop per connection (`examples/pubsub_echo.rs`);
// the handshake by hand with deflate negotiation as in its `autobahn/server.rs`
// ---------------------------------------------------------------------------------------------

mod sockudo {
    use std::sync::Arc;

    use futures_util::StreamExt;
    use sockudo_ws::deflate::{DeflateConfig, negotiate_server_deflate};
    use sockudo_ws::handshake::{build_response, generate_accept_key, parse_request};
    use sockudo_ws::{CompressedWebSocketStream, Message, PubSub, Role, WebSocketStream};
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::net::TcpStream;
    use ws_proto::bytes::BytesMut;

    use super::PUB_PATH;
    use crate::server::sockudo_config;

    const TOPIC: &str = "bench";

    /// Its default deflate policy at our level.
    fn policy(level: u8) -> DeflateConfig {
        DeflateConfig {
            compression_level: u32::from(level),
            ..DeflateConfig::default()
        }
    }

    pub(super) async fn serve(pubsub: Arc<PubSub>, deflate: Option<u8>, mut tcp: TcpStream) {
        let mut buf = BytesMut::with_capacity(4096);
        let (publisher, negotiated, response) = loop {
            match tcp.read_buf(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(_) => {}
            }
            let parsed = match parse_request(&buf) {
                Ok(Some((req, consumed))) => {
                    let negotiated = deflate.and_then(|level| {
                        req.extensions
                            .and_then(|e| negotiate_server_deflate(e, &policy(level)))
                    });
                    let header = negotiated.as_ref().map(|n| n.to_response_header());
                    let response =
                        build_response(&generate_accept_key(req.key), None, header.as_deref());
                    Some((req.path == PUB_PATH, negotiated, response, consumed))
                }
                Ok(None) => None,
                Err(_) => return,
            };
            if let Some((p, n, r, consumed)) = parsed {
                let _ = buf.split_to(consumed);
                break (p, n, r);
            }
            if buf.len() > 16 << 10 {
                return;
            }
        };
        // Subscribe before the client can see the 101.
        let sub = if publisher {
            None
        } else {
            let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
            let id = pubsub.create_subscriber(tx);
            pubsub.subscribe(id, TOPIC);
            Some((id, rx))
        };
        let ok = tcp.write_all(&response).await.is_ok() && tcp.flush().await.is_ok();
        let leftover = (!buf.is_empty()).then(|| buf.freeze());
        let config = sockudo_config();
        match (ok, sub) {
            (false, Some((id, _))) => pubsub.remove_subscriber(id),
            (false, None) => {}
            (true, None) => {
                // The publisher: plain (it offers no compression).
                let mut ws =
                    WebSocketStream::from_raw_with_leftover(tcp, Role::Server, config, leftover);
                while let Some(Ok(m)) = ws.next().await {
                    if matches!(m, Message::Text(_) | Message::Binary(_)) {
                        pubsub.publish(TOPIC, m);
                    }
                }
            }
            (true, Some((id, mut rx))) => {
                macro_rules! subscriber_loop {
                    ($reader:ident, $writer:ident) => {
                        loop {
                            tokio::select! {
                                msg = $reader.next() => match msg {
                                    Some(Ok(Message::Close(_))) | None | Some(Err(_)) => break,
                                    Some(Ok(_)) => {}
                                },
                                Some(m) = rx.recv() => {
                                    if $writer.send(m).await.is_err() {
                                        break;
                                    }
                                }
                            }
                        }
                    };
                }
                match negotiated {
                    Some(n) => {
                        let ws = CompressedWebSocketStream::server_with_leftover(
                            tcp, config, n.config, leftover,
                        );
                        let (mut reader, mut writer) = ws.split();
                        subscriber_loop!(reader, writer);
                    }
                    None => {
                        let ws = WebSocketStream::from_raw_with_leftover(
                            tcp,
                            Role::Server,
                            config,
                            leftover,
                        );
                        let (mut reader, mut writer) = ws.split();
                        subscriber_loop!(reader, writer);
                    }
                }
                pubsub.remove_subscriber(id);
            }
        }
    }
}

// ---------------------------------------------------------------------------------------------
// yawc: hyper upgrade (`examples/echo_server.rs`), `StreamExt::split` as its docs suggest
// ---------------------------------------------------------------------------------------------

mod yawc_fanout {
    use futures_util::StreamExt;
    use http_body_util::Empty;
    use hyper::body::{Bytes, Incoming};
    use hyper::server::conn::http1;
    use hyper::service::service_fn;
    use hyper::{Request, Response};
    use tokio::net::TcpStream;
    use yawc::{CompressionLevel, Frame, OpCode, Options, WebSocket};

    use super::{PUB_PATH, SharedHub};
    use crate::server::MAX_MESSAGE;

    type YawcHub = SharedHub<futures_channel::mpsc::UnboundedSender<Frame>>;

    pub(super) async fn serve(hub: YawcHub, deflate: Option<u8>, tcp: TcpStream) {
        let io = hyper_util::rt::TokioIo::new(tcp);
        let _ = http1::Builder::new()
            .serve_connection(
                io,
                service_fn(move |req| upgrade_request(hub.clone(), deflate, req)),
            )
            .with_upgrades()
            .await;
    }

    async fn upgrade_request(
        hub: YawcHub,
        deflate: Option<u8>,
        mut req: Request<Incoming>,
    ) -> yawc::Result<Response<Empty<Bytes>>> {
        let mut options = Options::default()
            .with_max_payload_read(MAX_MESSAGE)
            .with_max_read_buffer(MAX_MESSAGE)
            .with_utf8();
        if let Some(level) = deflate {
            options = options.with_compression_level(CompressionLevel::new(u32::from(level)));
        }
        let publisher = req.uri().path() == PUB_PATH;
        let (response, fut) = WebSocket::upgrade_with_options(&mut req, options)?;
        if publisher {
            tokio::spawn(async move {
                let Ok(mut ws) = fut.await else {
                    return;
                };
                while let Some(frame) = ws.next().await {
                    let f = match frame.opcode() {
                        OpCode::Text => Frame::text(frame.payload().clone()),
                        OpCode::Binary => Frame::binary(frame.payload().clone()),
                        OpCode::Close => return,
                        _ => continue,
                    };
                    hub.each(|tx| {
                        let _ = tx.unbounded_send(f.clone());
                    });
                }
            });
            return Ok(response);
        }
        let (tx, rx) = futures_channel::mpsc::unbounded();
        let id = hub.add(tx);
        tokio::spawn(async move {
            let Ok(ws) = fut.await else {
                hub.remove(id);
                return;
            };
            let (outgoing, mut incoming) = ws.split();
            let forward = rx.map(Ok).forward(outgoing);
            let read = async {
                while let Some(f) = incoming.next().await {
                    if f.opcode() == OpCode::Close {
                        break;
                    }
                }
            };
            tokio::select! {
                _ = forward => {}
                _ = read => {}
            }
            hub.remove(id);
        });
        Ok(response)
    }
}

// ---------------------------------------------------------------------------------------------
// Ours
// ---------------------------------------------------------------------------------------------

pub mod ours;
