//! `ws serve`: an echo or broadcast server on ws-tokio's serve loop.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};

use tokio::io::{AsyncRead, AsyncWrite};
use ws_tokio::origin::OriginPolicy;
use ws_tokio::serve::ServeConfig;
use ws_tokio::topics::{Subscriber, Topics};
use ws_tokio::{CloseFrame, Config, ConnInfo, Listener, Message, WebSocket};

use crate::args::ServeArgs;
use crate::connect::chain;
use crate::output::{Format, Out, Palette, Printer, wants_color};
use crate::{exit, tls};

/// Longest message text printed; longer ones are cut.
const PRINT_MAX: usize = 200;

pub(crate) fn run(a: ServeArgs) -> i32 {
    let rt = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: {e}");
            return exit::CONNECT;
        }
    };
    rt.block_on(serve(a))
}

/// What every connection's handler shares.
struct Shared {
    out: Out,
    palette: Palette,
    fmt: Format,
    quiet: bool,
    open: AtomicU64,
    /// `--broadcast`: every connection subscribes.
    topics: Option<Topics>,
}

async fn serve(a: ServeArgs) -> i32 {
    let palette = Palette::new(wants_color(&std::io::stdout(), a.no_color));
    // One descriptor per connection: take the whole hard limit.
    let nofile = ws_tokio::load::sys::raise_nofile(u64::MAX);
    let tls = match &a.tls {
        Some(files) => match tls::server_config(&files[0], &files[1]) {
            Ok(c) => Some(c),
            Err(e) => {
                eprintln!("error: --tls: {e}");
                return exit::USAGE;
            }
        },
        None => None,
    };
    let tcp = match tokio::net::TcpListener::bind(a.addr).await {
        Ok(l) => l,
        Err(e) => {
            eprintln!("error: cannot listen on {}: {e}", a.addr);
            return exit::CONNECT;
        }
    };
    let local = tcp.local_addr().unwrap_or(a.addr);
    let (out, printer) = Printer::plain();
    let shared = Arc::new(Shared {
        out: out.clone(),
        palette,
        fmt: Format {
            control: false,
            binary: None,
            json: false,
            marker: false,
            palette,
        },
        quiet: a.quiet,
        open: AtomicU64::new(0),
        topics: a.broadcast.then(Topics::default),
    });
    let scheme = if tls.is_some() { "wss" } else { "ws" };
    let mode = if a.broadcast { "broadcast" } else { "echo" };
    let code = match tls {
        Some(config) => {
            let o = out.clone();
            let quiet = a.quiet;
            let listener = tls::TlsListener::new(tcp, config, move |addr, e| {
                if !quiet {
                    o.err(format!("{addr}: TLS handshake failed: {e}"));
                }
            });
            run_loop(listener, &a, shared, local, scheme, mode, nofile).await
        }
        None => run_loop(tcp, &a, shared, local, scheme, mode, nofile).await,
    };
    printer.finish(out);
    code
}

async fn run_loop<L>(
    listener: L,
    a: &ServeArgs,
    shared: Arc<Shared>,
    local: SocketAddr,
    scheme: &str,
    mode: &str,
    nofile: u64,
) -> i32
where
    L: Listener<Addr = SocketAddr>,
{
    let mut config = Config::default();
    if a.no_compression {
        config = config.with_compression(None);
    }
    if a.any_origin {
        config = config.with_origin(OriginPolicy::any());
    }
    let mut limits = ServeConfig::default();
    if let Some(n) = a.max_connections {
        limits = limits.with_max_connections(n);
    }
    limits = limits
        .with_max_connections_per_ip(a.max_connections_per_ip.unwrap_or(limits.max_connections));
    if let Err(e) = limits.validate() {
        eprintln!("error: {}", chain(&e));
        return exit::USAGE;
    }
    let out = shared.out.clone();
    let shutdown = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    let head = |max: usize| {
        format!(
            "listening on {scheme}://{local}/ ({mode}; up to {max} connections, descriptor limit {nofile})"
        )
    };
    let r = if shared.topics.is_some() {
        let server = ws_tokio::serve(listener, move |ws, info| {
            broadcast_connection(ws, info, shared.clone())
        })
        .config(config)
        .serve_config(limits)
        .with_graceful_shutdown(shutdown);
        out.out(head(server.effective_max_connections()));
        server.await
    } else {
        let server = ws_tokio::serve(listener, move |ws, info| {
            echo_connection(ws, info, shared.clone())
        })
        .config(config)
        .serve_config(limits)
        .with_graceful_shutdown(shutdown);
        out.out(head(server.effective_max_connections()));
        server.await
    };
    match r {
        Ok(()) => {
            out.err("shut down: every connection closed with 1001");
            exit::OK
        }
        Err(e) => {
            out.err(format!("error: the listener failed: {}", chain(&e)));
            exit::CONNECT
        }
    }
}

fn cut(s: String) -> String {
    if s.len() <= PRINT_MAX {
        return s;
    }
    let mut end = PRINT_MAX;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}... ({} bytes)", &s[..end], s.len())
}

/// `+` when a connection opens.
fn opened(sh: &Shared, peer: SocketAddr) {
    let open = sh.open.fetch_add(1, Relaxed) + 1;
    if !sh.quiet {
        sh.out.out(
            sh.palette
                .control(&format!("+ {peer} connected ({open} open)")),
        );
    }
}

/// `-` with how it ended.
fn closed(sh: &Shared, peer: SocketAddr, (end, close): End) {
    let open = sh.open.fetch_sub(1, Relaxed) - 1;
    if !sh.quiet {
        let how = match (end, close) {
            (Some(e), _) => sh.palette.error(&format!("failed: {e}")),
            (None, Some(f)) if f.reason.as_str().is_empty() => format!("closed {}", f.code.0),
            (None, Some(f)) => format!("closed {} {}", f.code.0, f.reason.as_str()),
            (None, None) => "closed".into(),
        };
        sh.out
            .out(sh.palette.control(&format!("- {peer} {how} ({open} open)")));
    }
}

/// One connection of the echo server. (Each mode has a handler of its own, so that every
/// connection's task is only as large as its own mode needs.)
async fn echo_connection<S>(ws: WebSocket<S>, info: ConnInfo<SocketAddr>, sh: Arc<Shared>)
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    opened(&sh, info.remote_addr);
    let end = echo(ws, &info, &sh).await;
    closed(&sh, info.remote_addr, end);
}

/// One connection of the broadcast server.
async fn broadcast_connection<S>(ws: WebSocket<S>, info: ConnInfo<SocketAddr>, sh: Arc<Shared>)
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let Some(topics) = sh.topics.clone() else {
        return;
    };
    opened(&sh, info.remote_addr);
    let end = broadcast(topics.subscriber(ws), &topics, &info, &sh).await;
    closed(&sh, info.remote_addr, end);
}

/// How a connection ended: an error, and the peer's close frame.
type End = (Option<String>, Option<CloseFrame>);

fn print_message(sh: &Shared, peer: SocketAddr, m: &Message) {
    if !sh.quiet
        && let Some(s) = sh.fmt.message(m)
    {
        sh.out
            .out(format!("{} {peer} {}", sh.palette.received("<"), cut(s)));
    }
}

/// Sends every message back; at shutdown closes with 1001 (through `info.recv`).
async fn echo<S>(mut ws: WebSocket<S>, info: &ConnInfo<SocketAddr>, sh: &Shared) -> End
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let mut close = None;
    loop {
        match info.recv(&mut ws).await {
            None => return (None, close),
            Some(Err(e)) => return (Some(chain(&e)), close),
            Some(Ok(Message::Close(f))) => close = f,
            Some(Ok(m)) if m.is_text() || m.is_binary() => {
                print_message(sh, info.remote_addr, &m);
                if let Err(e) = ws.send(m).await {
                    return (Some(chain(&e)), close);
                }
            }
            Some(Ok(_)) => {}
        }
    }
}

/// Publishes every message to every connection (framed once for all of them; a connection
/// whose queue fills is closed with 1008); at shutdown closes with 1001.
async fn broadcast<S>(
    mut sub: Subscriber<S>,
    topics: &Topics,
    info: &ConnInfo<SocketAddr>,
    sh: &Shared,
) -> End
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let mut close = None;
    loop {
        let msg = tokio::select! {
            biased;
            () = info.shutdown.signalled() => {
                let r = sub.close(Some(ws_tokio::serve::going_away())).await;
                return (r.err().map(|e| chain(&e)), close);
            }
            m = sub.recv() => m,
        };
        match msg {
            None => return (None, close),
            Some(Err(e)) => return (Some(chain(&e)), close),
            Some(Ok(Message::Close(f))) => close = f,
            Some(Ok(m)) if m.is_text() || m.is_binary() => {
                print_message(sh, info.remote_addr, &m);
                // Never waits: each connection's own task writes what its queue holds.
                if let Err(e) = topics.publish_all(m) {
                    return (Some(chain(&e)), close);
                }
            }
            Some(Ok(_)) => {}
        }
    }
}
