//! `ws connect`: an interactive client, or with `-x` a one-shot one for scripts.

use std::sync::Arc;
use std::time::Duration;

use base64::Engine;
use rustyline_async::{Readline, ReadlineEvent};
use tokio::sync::mpsc;
use ws_tokio::load::Target;
use ws_tokio::proxy::{Proxy, ProxySetting};
use ws_tokio::{
    ClientRequest, CloseCode, CloseFrame, Config, Error, MaybeTlsStream, Message, ReadHalf,
    Response, WebSocket,
};

use crate::args::{ClientOpts, ConnectArgs};
use crate::input::{Action, HELP, parse_line};
use crate::output::{Format, Out, Palette, Printer, interactive_terminal, wants_color};
use crate::{exit, tls};

/// How long to wait for the close handshake once it has started (the core's own close
/// timeout is 5 s; this leaves it room).
const CLOSE_WAIT: Duration = Duration::from_secs(10);

/// An error and its sources, `: `-separated.
pub(crate) fn chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut source = e.source();
    while let Some(inner) = source {
        let text = inner.to_string();
        if !s.contains(&text) {
            s.push_str(": ");
            s.push_str(&text);
        }
        source = inner.source();
    }
    s
}

pub(crate) const INSECURE_WARNING: &str = "WARNING: --insecure: the server's certificate is NOT \
checked. Anyone on the network path can read and change this connection. Use it only with \
test servers.";

/// What the client options set up: the proxy, the TLS configuration, the header fields.
/// Errors are the user's (bad proxy URL or CA file).
pub(crate) struct Setup {
    /// Where connections go through.
    pub(crate) proxy: ProxySetting,
    /// For `wss://` (`None`: the Mozilla roots).
    pub(crate) tls: Option<Arc<ws_tokio::tls::rustls::ClientConfig>>,
    /// `-H`, `--origin`, `--auth`.
    pub(crate) headers: Vec<(String, String)>,
}

pub(crate) fn setup(o: &ClientOpts) -> Result<Setup, String> {
    let proxy = match (&o.proxy, o.no_proxy) {
        (Some(p), _) => {
            ProxySetting::Proxy(Proxy::parse(p).map_err(|e| format!("--proxy: {}", chain(&e)))?)
        }
        (None, true) => ProxySetting::Direct,
        (None, false) => ProxySetting::Environment,
    };
    Ok(Setup {
        proxy,
        tls: tls::client_config(o.ca.as_deref(), o.insecure)?,
        headers: request_headers(o),
    })
}

/// The load generator's target for `url` with the client options. It goes through
/// `--proxy` only: a load run does not take its proxy from the environment.
pub(crate) fn target(url: &str, o: &ClientOpts) -> Result<Target, String> {
    let s = setup(o)?;
    let mut t = Target::parse(url).map_err(|e| format!("{url}: {}", chain(&e)))?;
    for (name, value) in s.headers {
        t = t.with_header(name, value);
    }
    for p in &o.subprotocols {
        t = t.with_protocol(p.clone());
    }
    if let ProxySetting::Proxy(p) = s.proxy {
        t = t.with_proxy(Some(p));
    }
    Ok(t.with_tls_config(s.tls))
}

/// `-H`, `--origin` and `--auth` as header fields.
fn request_headers(o: &ClientOpts) -> Vec<(String, String)> {
    let mut h = o.headers.clone();
    if let Some(origin) = &o.origin {
        h.push(("Origin".into(), origin.clone()));
    }
    if let Some(auth) = &o.auth {
        let token = base64::engine::general_purpose::STANDARD.encode(auth);
        h.push(("Authorization".into(), format!("Basic {token}")));
    }
    h
}

/// Opens the connection: transport (proxy, TLS) and the opening handshake, all within
/// `--connect-timeout`.
async fn open(
    url: &str,
    setup: &Setup,
    o: &ClientOpts,
) -> Result<(WebSocket<MaybeTlsStream>, Response), String> {
    // The handshake timeout bounds all of it: TCP, the proxy, TLS and the upgrade.
    let mut config = Config::default().with_handshake_timeout(o.connect_timeout);
    if o.no_compression {
        config = config.with_compression(None);
    }
    let mut request = ClientRequest::default()
        .config(config)
        .proxy(setup.proxy.clone());
    if let Some(tls) = &setup.tls {
        request = request.tls(tls.clone());
    }
    for p in &o.subprotocols {
        request = request.protocol(p.clone());
    }
    for (name, value) in &setup.headers {
        request = request.header(name.clone(), value.clone());
    }
    ws_tokio::connect_request(url, request)
        .await
        .map_err(|e| describe_connect_error(&e, o))
}

fn describe_connect_error(e: &Error, o: &ClientOpts) -> String {
    match e {
        Error::Rejected { status } => {
            format!("the server refused the handshake with HTTP {status}")
        }
        Error::Timeout(_) => format!("no connection within {:?}", o.connect_timeout),
        e => chain(e),
    }
}

/// How the connection ended.
#[derive(Debug)]
enum Ending {
    /// The close handshake: the peer's close frame (or its answer to ours).
    Closed(Option<CloseFrame>),
    /// The connection failed.
    Failed(Error),
    /// The transport ended without a close frame.
    Vanished,
}

fn is_normal(code: CloseCode) -> bool {
    code == CloseCode::NORMAL || code == CloseCode::GOING_AWAY || code == CloseCode::NO_STATUS
}

impl Ending {
    fn exit_code(&self) -> i32 {
        match self {
            Ending::Closed(None) => exit::OK,
            Ending::Closed(Some(f)) if is_normal(f.code) => exit::OK,
            Ending::Closed(Some(_)) => exit::CLOSE_CODE,
            Ending::Failed(e) => match e.close_code_sent() {
                Some(c) if !is_normal(c) => exit::CLOSE_CODE,
                _ => exit::LOST,
            },
            Ending::Vanished => exit::LOST,
        }
    }

    /// What to print; `sent` is the close frame we sent first, if we did.
    fn describe(&self, sent: Option<&CloseFrame>, p: &Palette) -> String {
        let frame = |f: &CloseFrame| {
            let mut s = f.code.0.to_string();
            if !f.reason.as_str().is_empty() {
                s.push(' ');
                s.push_str(f.reason.as_str());
            }
            s
        };
        match self {
            Ending::Closed(None) => p.control(match sent {
                Some(_) => "closed: the server answered with no status code",
                None => "server closed: no status code",
            }),
            Ending::Closed(Some(f)) => {
                let s = match sent {
                    Some(ours) if ours.code == f.code && ours.reason == f.reason => {
                        format!("closed: {}", frame(f))
                    }
                    Some(ours) => {
                        format!("closed: {} (the server answered {})", frame(ours), frame(f))
                    }
                    None => format!("server closed: {}", frame(f)),
                };
                if is_normal(f.code) {
                    p.control(&s)
                } else {
                    p.error(&s)
                }
            }
            Ending::Failed(e) => p.error(&format!("connection failed: {}", chain(e))),
            Ending::Vanished => p.error("connection lost: the server ended it without closing"),
        }
    }
}

/// Prints what arrives until the connection ends.
async fn read_loop(mut rx: ReadHalf<MaybeTlsStream>, fmt: Format, out: Out) -> Ending {
    let mut close = None;
    loop {
        match rx.recv().await {
            Some(Ok(Message::Close(f))) => close = Some(f),
            Some(Ok(m)) => {
                if let Some(s) = fmt.message(&m) {
                    out.out(s);
                }
            }
            Some(Err(e)) => return Ending::Failed(e),
            None => {
                return match close {
                    Some(f) => Ending::Closed(f),
                    None => Ending::Vanished,
                };
            }
        }
    }
}

/// A line typed, or the end of input.
enum Input {
    Line(String),
    End,
}

/// Where lines come from.
enum Source {
    /// The line editor (a terminal).
    Editor(Box<Readline>),
    /// A thread reading a stdin that is not a terminal.
    Lines(mpsc::Receiver<Input>),
    /// Nowhere (`-x`).
    None,
}

impl Source {
    /// The next line; cancel-safe (the editor keeps a half-typed line).
    async fn next(&mut self) -> Input {
        match self {
            Source::Editor(rl) => match rl.readline().await {
                Ok(ReadlineEvent::Line(line)) => {
                    if !line.trim().is_empty() {
                        rl.add_history_entry(line.clone());
                    }
                    Input::Line(line)
                }
                // Ctrl-D, Ctrl-C, or a terminal error: close.
                Ok(ReadlineEvent::Eof | ReadlineEvent::Interrupted) | Err(_) => Input::End,
            },
            Source::Lines(rx) => rx.recv().await.unwrap_or(Input::End),
            Source::None => std::future::pending().await,
        }
    }
}

pub(crate) fn run(a: ConnectArgs) -> i32 {
    let rt = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: {e}");
            return exit::CONNECT;
        }
    };
    rt.block_on(session(a))
}

async fn session(a: ConnectArgs) -> i32 {
    let scripted = !a.execute.is_empty();
    let out_palette = Palette::new(wants_color(&std::io::stdout(), a.no_color));
    let err_palette = Palette::new(wants_color(&std::io::stderr(), a.no_color));
    // A URL that cannot be connected to, a bad proxy URL or CA file: the user's mistakes.
    let checked = Target::parse(&a.url)
        .map_err(|e| format!("{}: {}", a.url, chain(&e)))
        .and_then(|_| setup(&a.client));
    let setup = match checked {
        Ok(s) => s,
        Err(e) => {
            eprintln!("{}", err_palette.error(&format!("error: {e}")));
            return exit::USAGE;
        }
    };
    // `-x` messages are checked before connecting.
    let actions = match a
        .execute
        .iter()
        .map(|m| parse_line(m, a.binary).map_err(|e| format!("-x {m:?}: {e}")))
        .collect::<Result<Vec<Action>, String>>()
    {
        Ok(actions) => actions,
        Err(e) => {
            eprintln!("{}", err_palette.error(&format!("error: {e}")));
            return exit::USAGE;
        }
    };
    if a.client.insecure {
        eprintln!("{}", err_palette.warning(INSECURE_WARNING));
    }
    let (ws, response) = match open(&a.url, &setup, &a.client).await {
        Ok(c) => c,
        Err(e) => {
            eprintln!(
                "{}",
                err_palette.error(&format!("error: could not connect to {}: {e}", a.url))
            );
            return exit::CONNECT;
        }
    };
    // Line editing (with history) when both ends are a terminal; lines from stdin otherwise.
    let editing = !scripted && interactive_terminal();
    let (mut source, out, printer, palette) = if editing {
        match Readline::new("> ".into()) {
            Ok((rl, writer)) => {
                let (out, printer) = Printer::through(writer);
                (Source::Editor(Box::new(rl)), out, printer, out_palette)
            }
            Err(e) => {
                eprintln!(
                    "{}",
                    err_palette.error(&format!("error: line editing: {e}"))
                );
                return exit::CONNECT;
            }
        }
    } else {
        let (out, printer) = Printer::plain();
        let source = if scripted {
            Source::None
        } else {
            Source::Lines(read_stdin())
        };
        (source, out, printer, err_palette)
    };

    let mut details = format!("connected to {}", a.url);
    if let Some(p) = &response.protocol {
        details.push_str(&format!(" (subprotocol {p})"));
    }
    if ws.compression_enabled() {
        details.push_str(" (permessage-deflate)");
    }
    if !scripted {
        details.push_str("; /help for commands, Ctrl-D to close");
    }
    out.err(palette.control(&details));

    let fmt = Format {
        control: a.show_ping_pong,
        binary: a.binary,
        json: a.json,
        marker: !scripted,
        palette: out_palette,
    };
    let (mut tx, rx) = ws.split();
    let mut reader = tokio::spawn(read_loop(rx, fmt, out.clone()));
    let mut ending = None;
    let mut sent_close: Option<CloseFrame> = None;

    if scripted {
        for action in actions {
            match action {
                Action::Send(msg) => {
                    if let Err(e) = tx.send(msg).await {
                        out.err(palette.error(&format!("send failed: {}", chain(&e))));
                        break;
                    }
                }
                Action::Close(f) => {
                    sent_close = Some(f.clone());
                    let _ = tx.close(Some(f)).await;
                    break;
                }
                Action::Help => out.err(HELP),
                Action::Nothing => {}
            }
        }
        if sent_close.is_none() {
            tokio::select! {
                r = &mut reader => ending = Some(r),
                () = tokio::time::sleep(a.wait) => {
                    let f = CloseFrame::new(CloseCode::NORMAL, "");
                    sent_close = Some(f.clone());
                    let _ = tx.close(Some(f)).await;
                }
            }
        }
    } else {
        loop {
            tokio::select! {
                r = &mut reader => {
                    ending = Some(r);
                    break;
                }
                input = source.next() => match input {
                    Input::Line(line) => match parse_line(&line, a.binary) {
                        Ok(Action::Send(msg)) => {
                            if let Err(e) = tx.send(msg).await {
                                out.err(palette.error(&format!("send failed: {}", chain(&e))));
                                break;
                            }
                        }
                        Ok(Action::Close(f)) => {
                            sent_close = Some(f.clone());
                            let _ = tx.close(Some(f)).await;
                            break;
                        }
                        Ok(Action::Help) => out.err(HELP),
                        Ok(Action::Nothing) => {}
                        Err(e) => out.err(palette.error(&format!("error: {e}"))),
                    },
                    Input::End => {
                        let f = CloseFrame::new(CloseCode::NORMAL, "");
                        sent_close = Some(f.clone());
                        let _ = tx.close(Some(f)).await;
                        break;
                    }
                },
            }
        }
    }
    let ending = match ending {
        Some(r) => r,
        None => match tokio::time::timeout(CLOSE_WAIT, &mut reader).await {
            Ok(r) => r,
            Err(_) => {
                reader.abort();
                Ok(Ending::Vanished)
            }
        },
    };
    let ending = ending.unwrap_or(Ending::Vanished);
    out.err(ending.describe(sent_close.as_ref(), &palette));
    let code = ending.exit_code();
    printer.finish(out);
    // The editor prints what is left, erases its prompt, and gives the terminal back as it
    // was when it is dropped.
    if let Source::Editor(mut rl) = source {
        let _ = rl.flush();
    }
    code
}

/// Lines from a stdin that is not a terminal (a pipe, a file).
fn read_stdin() -> mpsc::Receiver<Input> {
    let (tx, rx) = mpsc::channel(16);
    std::thread::spawn(move || {
        let stdin = std::io::stdin();
        let mut line = String::new();
        loop {
            line.clear();
            match std::io::BufRead::read_line(&mut stdin.lock(), &mut line) {
                Ok(0) | Err(_) => {
                    let _ = tx.blocking_send(Input::End);
                    break;
                }
                Ok(_) => {
                    let l = line.trim_end_matches(['\n', '\r']).to_string();
                    if tx.blocking_send(Input::Line(l)).is_err() {
                        break;
                    }
                }
            }
        }
    });
    rx
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exit_codes_tell_endings_apart() {
        let closed = |c: u16| Ending::Closed(Some(CloseFrame::new(CloseCode(c), ""))).exit_code();
        assert_eq!(closed(1000), exit::OK);
        assert_eq!(closed(1001), exit::OK);
        assert_eq!(Ending::Closed(None).exit_code(), exit::OK);
        assert_eq!(closed(4000), exit::CLOSE_CODE);
        assert_eq!(closed(1011), exit::CLOSE_CODE);
        assert_eq!(Ending::Vanished.exit_code(), exit::LOST);
        assert_eq!(Ending::Failed(Error::PeerVanished).exit_code(), exit::LOST);
        let protocol = Error::InvalidUtf8 {
            sent: Some(CloseCode::INVALID_PAYLOAD),
        };
        assert_eq!(Ending::Failed(protocol).exit_code(), exit::CLOSE_CODE);
    }

    #[test]
    fn endings_say_who_closed_and_how() {
        let p = Palette::new(false);
        let ours = CloseFrame::new(CloseCode(4000), "bye");
        let f = Ending::Closed(Some(ours.clone()));
        assert_eq!(f.describe(Some(&ours), &p), "closed: 4000 bye");
        assert_eq!(f.describe(None, &p), "server closed: 4000 bye");
        let echoed = Ending::Closed(Some(CloseFrame::new(CloseCode(4000), "")));
        assert_eq!(
            echoed.describe(Some(&ours), &p),
            "closed: 4000 bye (the server answered 4000)"
        );
    }

    #[test]
    fn origin_and_auth_become_headers() {
        let cli = <crate::args::Cli as clap::Parser>::try_parse_from([
            "ws", "connect", "-o", "http://a", "--auth", "u:p", "-H", "X: 1", "ws://h/",
        ])
        .unwrap();
        let crate::args::Command::Connect(a) = cli.command else {
            panic!()
        };
        let h = request_headers(&a.client);
        assert_eq!(
            h,
            [
                ("X".to_string(), "1".to_string()),
                ("Origin".into(), "http://a".into()),
                ("Authorization".into(), "Basic dTpw".into()),
            ]
        );
    }

    #[test]
    fn bad_urls_and_files_are_the_users_errors() {
        let o = |args: &[&str]| {
            let mut v = vec!["ws", "connect"];
            v.extend_from_slice(args);
            v.push("wss://localhost/");
            let cli = <crate::args::Cli as clap::Parser>::try_parse_from(v).unwrap();
            match cli.command {
                crate::args::Command::Connect(a) => a.client,
                _ => panic!(),
            }
        };
        assert!(target("http://x/", &o(&[])).is_err());
        assert!(target("wss://localhost/", &o(&["--ca", "/nonexistent.pem"])).is_err());
        assert!(target("wss://localhost/", &o(&["--proxy", "ftp://x:1"])).is_err());
        assert!(target("wss://localhost/", &o(&["--insecure"])).is_ok());
    }
}
