//! Scripted client for the interoperability checks in `ws-tokio/tests/interop/run.sh`.
//!
//! `cargo run -p ws-tokio --example interop_client -- [OPTIONS] ws://127.0.0.1:PORT`
//!
//! Runs a fixed sequence against a peer echo server and prints one `PASS name` or
//! `FAIL name: detail` line per check; exits 1 when any check failed. The peer must echo text
//! and binary messages and understand these text commands:
//!
//! - `!frag binary COUNT SIZE`: send back a binary message of `SIZE` bytes (byte `i` is
//!   `i % 251`) split into `COUNT` fragments, with a ping between the first two fragments;
//! - `!frag text COUNT REPS`: the same with the text `"héllo wörld ✓ 😀 "` repeated `REPS` times;
//! - `!ping PAYLOAD`: send a ping with `PAYLOAD`, and once its pong arrived, the text
//!   `pong-received:PAYLOAD`;
//! - `!close CODE REASON`: close the connection with this code and reason.
//!
//! It must reject the path `/reject` with 403 and choose the subprotocol `chat` when offered.
//!
//! Options:
//! - `--expect-reject STATUS`: only connect to the URL (as given, path included) and check that
//!   the handshake is refused with `STATUS`;
//! - `--close-codes all|sample`: every allowed close code (1000-1003, 1007-1014, 3000-4999;
//!   the default) or a sample of them.
//!
//! Our API sends every message as one frame, so fragmentation is checked on the receiving side
//! only.

use std::future::Future;
use std::time::Duration;

use ws_tokio::{ClientRequest, CloseCode, Config, Error, Message, WebSocket};

type Ws = WebSocket<tokio::net::TcpStream>;

const STEP: Duration = Duration::from_secs(30);
const TEXT_UNIT: &str = "héllo wörld ✓ 😀 ";

fn pattern(n: usize) -> Vec<u8> {
    (0..n).map(|i| (i % 251) as u8).collect()
}

fn describe(m: &Message) -> String {
    match m {
        Message::Text(t) if t.len() <= 60 => format!("text {t:?}"),
        Message::Text(t) => format!("text of {} bytes", t.len()),
        Message::Binary(b) => format!("binary of {} bytes", b.len()),
        Message::Ping(p) => format!("ping {:?}", String::from_utf8_lossy(p)),
        Message::Pong(p) => format!("pong {:?}", String::from_utf8_lossy(p)),
        Message::Close(c) => format!("close {:?}", c.as_ref().map(|(c, r)| (c.0, r.as_str()))),
    }
}

struct Report {
    failed: usize,
}

impl Report {
    fn check(&mut self, name: &str, r: Result<(), String>) {
        match r {
            Ok(()) => println!("PASS {name}"),
            Err(e) => {
                self.failed += 1;
                println!("FAIL {name}: {e}");
            }
        }
    }
}

async fn bounded<T>(f: impl Future<Output = Result<T, String>>) -> Result<T, String> {
    match tokio::time::timeout(STEP, f).await {
        Ok(r) => r,
        Err(_) => Err(format!("timed out after {STEP:?}")),
    }
}

fn config() -> Config {
    Config {
        // Keep the exchanges free of our own keepalive traffic.
        ping_interval: None,
        ..Config::default()
    }
}

async fn open(base: &str, path: &str) -> Result<Ws, String> {
    let url = format!("{base}{path}");
    ws_tokio::connect_with_config(&url, config())
        .await
        .map_err(|e| format!("connect {url}: {e}"))
}

/// The next data or close message (pings and pongs are skipped).
async fn next_data(ws: &mut Ws) -> Result<Message, String> {
    loop {
        match ws.recv().await {
            None => return Err("connection ended".into()),
            Some(Err(e)) => return Err(format!("connection failed: {e}")),
            Some(Ok(Message::Ping(_) | Message::Pong(_))) => continue,
            Some(Ok(m)) => return Ok(m),
        }
    }
}

async fn echo(ws: &mut Ws, msg: Message) -> Result<(), String> {
    ws.send(msg.clone())
        .await
        .map_err(|e| format!("send failed: {e}"))?;
    let got = next_data(ws).await?;
    if got == msg {
        Ok(())
    } else {
        Err(format!("sent {}, got {}", describe(&msg), describe(&got)))
    }
}

/// Closes with 1000 and expects the echo and a clean end.
async fn finish(mut ws: Ws) -> Result<(), String> {
    close_and_expect(&mut ws, CloseCode::NORMAL, "done").await
}

/// Sends a close frame with `code`, expects the peer's close with the same code, then a clean
/// end of the connection.
async fn close_and_expect(ws: &mut Ws, code: CloseCode, reason: &str) -> Result<(), String> {
    ws.send(Message::Close(Some((code, reason.to_string()))))
        .await
        .map_err(|e| format!("sending close {}: {e}", code.0))?;
    loop {
        match ws.recv().await {
            None => return Err("connection ended before the peer's close frame".into()),
            Some(Err(e)) => return Err(format!("waiting for the close echo: {e}")),
            Some(Ok(Message::Close(Some((c, _))))) if c == code => break,
            Some(Ok(Message::Close(c))) => {
                return Err(format!(
                    "closed with {}, peer answered {:?}",
                    code.0,
                    c.map(|(c, r)| (c.0, r))
                ));
            }
            Some(Ok(_)) => {}
        }
    }
    match ws.recv().await {
        None | Some(Err(Error::Closed)) => Ok(()),
        Some(Ok(m)) => Err(format!("after the close handshake: {}", describe(&m))),
        Some(Err(e)) => Err(format!("after the close handshake: {e}")),
    }
}

async fn echo_checks(base: &str, r: &mut Report) {
    let mut ws = match bounded(open(base, "/")).await {
        Ok(ws) => ws,
        Err(e) => {
            r.check("echo: connect", Err(e));
            return;
        }
    };
    let cases: Vec<(String, Message)> = vec![
        ("text hello".into(), Message::Text("hello".into())),
        (
            "text unicode".into(),
            Message::Text("héllo wörld ✓ 😀 — ünïcödé".into()),
        ),
        ("text 0 B".into(), Message::Text(String::new())),
        ("text 64 KiB".into(), Message::Text("x".repeat(64 << 10))),
        ("binary 0 B".into(), Message::Binary(Vec::new())),
        ("binary 125 B".into(), Message::Binary(pattern(125))),
        ("binary 126 B".into(), Message::Binary(pattern(126))),
        ("binary 65535 B".into(), Message::Binary(pattern(65535))),
        ("binary 64 KiB".into(), Message::Binary(pattern(64 << 10))),
        ("binary 16 MiB".into(), Message::Binary(pattern(16 << 20))),
    ];
    for (name, msg) in cases {
        let res = bounded(echo(&mut ws, msg)).await;
        let broken = res.is_err();
        r.check(&format!("echo {name}"), res);
        if broken {
            return;
        }
    }
    r.check("echo: close 1000", bounded(finish(ws)).await);
}

async fn fragment_checks(base: &str, r: &mut Report) {
    let mut ws = match bounded(open(base, "/")).await {
        Ok(ws) => ws,
        Err(e) => {
            r.check("fragments: connect", Err(e));
            return;
        }
    };
    let cases: Vec<(&str, Message)> = vec![
        ("!frag text 7 300", Message::Text(TEXT_UNIT.repeat(300))),
        ("!frag text 3 1", Message::Text(TEXT_UNIT.to_string())),
        ("!frag binary 8 100000", Message::Binary(pattern(100_000))),
        ("!frag binary 1000 1000", Message::Binary(pattern(1000))),
        ("!frag binary 4 0", Message::Binary(Vec::new())),
        ("!frag binary 16 1048576", Message::Binary(pattern(1 << 20))),
    ];
    for (cmd, want) in cases {
        let res = bounded(async {
            ws.send(Message::Text(cmd.into()))
                .await
                .map_err(|e| format!("send failed: {e}"))?;
            let got = next_data(&mut ws).await?;
            if got == want {
                Ok(())
            } else {
                Err(format!(
                    "expected {}, got {}",
                    describe(&want),
                    describe(&got)
                ))
            }
        })
        .await;
        let broken = res.is_err();
        r.check(&format!("receive fragmented ({cmd})"), res);
        if broken {
            return;
        }
    }
    r.check("fragments: close 1000", bounded(finish(ws)).await);
}

async fn ping_checks(base: &str, r: &mut Report) {
    let mut ws = match bounded(open(base, "/")).await {
        Ok(ws) => ws,
        Err(e) => {
            r.check("ping: connect", Err(e));
            return;
        }
    };
    let res = bounded(async {
        let payload = b"client-ping-1".to_vec();
        ws.send(Message::Ping(payload.clone()))
            .await
            .map_err(|e| format!("send failed: {e}"))?;
        loop {
            match ws.recv().await {
                Some(Ok(Message::Pong(p))) if p == payload => return Ok(()),
                Some(Ok(Message::Pong(p))) => {
                    return Err(format!("pong with {:?}", String::from_utf8_lossy(&p)));
                }
                // A ping from the peer (already answered) is not what we wait for.
                Some(Ok(Message::Ping(_))) => {}
                Some(Ok(m)) => return Err(format!("expected a pong, got {}", describe(&m))),
                Some(Err(e)) => return Err(format!("{e}")),
                None => return Err("connection ended".into()),
            }
        }
    })
    .await;
    r.check("our ping gets the peer's pong", res);
    let res = bounded(async {
        ws.send(Message::Text("!ping srv-ping-1".into()))
            .await
            .map_err(|e| format!("send failed: {e}"))?;
        let mut saw_ping = false;
        loop {
            match ws.recv().await {
                Some(Ok(Message::Ping(p))) if p == b"srv-ping-1" => saw_ping = true,
                Some(Ok(Message::Text(t))) if t == "pong-received:srv-ping-1" => {
                    return if saw_ping {
                        Ok(())
                    } else {
                        Err("the peer got a pong but recv() never showed the ping".into())
                    };
                }
                Some(Ok(m)) => return Err(format!("unexpected {}", describe(&m))),
                Some(Err(e)) => return Err(format!("{e}")),
                None => return Err("connection ended".into()),
            }
        }
    })
    .await;
    r.check("the peer's ping gets our pong", res);
    r.check("ping: close 1000", bounded(finish(ws)).await);
}

async fn subprotocol_checks(base: &str, r: &mut Report) {
    let res = bounded(async {
        let url = format!("{base}/");
        let req = ClientRequest::new("", "").protocol("chat").config(config());
        let (ws, resp) = ws_tokio::connect_request(&url, req)
            .await
            .map_err(|e| format!("connect: {e}"))?;
        if resp.protocol.as_deref() != Some("chat") {
            return Err(format!("offered chat, got {:?}", resp.protocol));
        }
        finish(ws).await
    })
    .await;
    r.check("subprotocol: offer chat, get chat", res);
    let res = bounded(async {
        let url = format!("{base}/");
        let req = ClientRequest::new("", "")
            .protocol("nonesuch")
            .protocol("chat")
            .config(config());
        let (ws, resp) = ws_tokio::connect_request(&url, req)
            .await
            .map_err(|e| format!("connect: {e}"))?;
        if resp.protocol.as_deref() != Some("chat") {
            return Err(format!("offered nonesuch,chat, got {:?}", resp.protocol));
        }
        finish(ws).await
    })
    .await;
    r.check("subprotocol: offer nonesuch,chat, get chat", res);
    let res = bounded(async {
        let url = format!("{base}/");
        let req = ClientRequest::new("", "").config(config());
        let (ws, resp) = ws_tokio::connect_request(&url, req)
            .await
            .map_err(|e| format!("connect: {e}"))?;
        if resp.protocol.is_some() {
            return Err(format!("offered none, got {:?}", resp.protocol));
        }
        finish(ws).await
    })
    .await;
    r.check("subprotocol: offer none, get none", res);
}

fn close_codes(all: bool) -> Vec<u16> {
    let mut codes: Vec<u16> = (1000..=1003).chain(1007..=1014).collect();
    if all {
        codes.extend(3000..=4999);
    } else {
        codes.extend([3000, 3001, 3999, 4000, 4001, 4321, 4999]);
    }
    codes
}

/// Opens a connection, leaves it idle (no keepalive pings either) for longer than the close
/// timeout, then closes it: the close handshake must still complete.
async fn close_after_idle(base: String) -> Result<(), String> {
    let mut ws = open(&base, "/").await?;
    tokio::time::sleep(IDLE_BEFORE_CLOSE).await;
    close_and_expect(&mut ws, CloseCode(4003), "after a long silence").await
}

const IDLE_BEFORE_CLOSE: Duration = Duration::from_secs(6);

async fn close_code_checks(base: &str, all: bool, r: &mut Report) {
    // Runs alongside the sweep below.
    let idle = tokio::spawn(bounded(close_after_idle(base.to_string())));
    let codes = close_codes(all);
    let total = codes.len();
    let sem = std::sync::Arc::new(tokio::sync::Semaphore::new(16));
    let mut set = tokio::task::JoinSet::new();
    for code in codes {
        let base = base.to_string();
        let sem = sem.clone();
        set.spawn(async move {
            let _permit = sem.acquire_owned().await;
            let res = bounded(async {
                let mut ws = open(&base, "/").await?;
                let reason = format!("closing with {code} ✓");
                close_and_expect(&mut ws, CloseCode(code), &reason).await
            })
            .await;
            (code, res)
        });
    }
    let mut failures = Vec::new();
    while let Some(j) = set.join_next().await {
        match j {
            Ok((_, Ok(()))) => {}
            Ok((code, Err(e))) => failures.push((code, e)),
            Err(e) => failures.push((0, format!("task failed: {e}"))),
        }
    }
    failures.sort_by_key(|f| f.0);
    let res = if failures.is_empty() {
        Ok(())
    } else {
        let shown: Vec<String> = failures
            .iter()
            .take(5)
            .map(|(c, e)| format!("{c}: {e}"))
            .collect();
        Err(format!(
            "{} of {total} failed; first: {}",
            failures.len(),
            shown.join("; ")
        ))
    };
    r.check(
        &format!("we close with each of {total} codes + reason, the peer echoes the code"),
        res,
    );
    r.check(
        &format!(
            "we close (4003) after {} s idle without pings, the peer echoes the code",
            IDLE_BEFORE_CLOSE.as_secs()
        ),
        idle.await
            .unwrap_or_else(|e| Err(format!("task failed: {e}"))),
    );

    let res = bounded(async {
        let mut ws = open(base, "/").await?;
        ws.send(Message::Text("!close 4321 peer says bye".into()))
            .await
            .map_err(|e| format!("send failed: {e}"))?;
        match next_data(&mut ws).await? {
            Message::Close(Some((c, reason))) if c.0 == 4321 && reason == "peer says bye" => {}
            m => {
                return Err(format!(
                    "expected close 4321 \"peer says bye\", got {}",
                    describe(&m)
                ));
            }
        }
        match ws.recv().await {
            None | Some(Err(Error::Closed)) => Ok(()),
            Some(Ok(m)) => Err(format!("after the close: {}", describe(&m))),
            Some(Err(e)) => Err(format!("after the close: {e}")),
        }
    })
    .await;
    r.check(
        "the peer closes with 4321 + reason, we see it and finish cleanly",
        res,
    );
}

#[tokio::main]
async fn main() {
    let mut expect_reject: Option<u16> = None;
    let mut all_codes = true;
    let mut url: Option<String> = None;
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        match a.as_str() {
            "--expect-reject" => expect_reject = args.next().and_then(|s| s.parse().ok()),
            "--close-codes" => all_codes = args.next().as_deref() != Some("sample"),
            _ if a.starts_with("ws://") => url = Some(a),
            _ => {
                eprintln!(
                    "usage: interop_client [--expect-reject STATUS] [--close-codes all|sample] ws://HOST:PORT"
                );
                std::process::exit(2);
            }
        }
    }
    let Some(url) = url else {
        eprintln!("usage: interop_client [--expect-reject STATUS] ws://HOST:PORT");
        std::process::exit(2);
    };
    let mut r = Report { failed: 0 };
    if let Some(status) = expect_reject {
        let res = bounded(async {
            match ws_tokio::connect_with_config(&url, config()).await {
                Err(Error::Rejected { status: s }) if s == status => Ok(()),
                Err(e) => Err(format!("expected rejection with {status}, got: {e}")),
                Ok(_) => Err(format!(
                    "expected rejection with {status}, got a connection"
                )),
            }
        })
        .await;
        r.check(&format!("rejected with {status}"), res);
    } else {
        let base = url.trim_end_matches('/').to_string();
        echo_checks(&base, &mut r).await;
        fragment_checks(&base, &mut r).await;
        ping_checks(&base, &mut r).await;
        subprotocol_checks(&base, &mut r).await;
        close_code_checks(&base, all_codes, &mut r).await;
    }
    std::process::exit(if r.failed == 0 { 0 } else { 1 });
}
