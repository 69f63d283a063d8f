//! The `ws` binary as scripts use it: `ws serve` children on 127.0.0.1, `ws connect -x` with
//! its output and exit status, `ws bench` with its JSON report. The interactive client in a
//! terminal, the proxy and TLS runs are in `tests/cli.sh` (tmux, tinyproxy, openssl).

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use ws_tokio::{CloseCode, CloseFrame, Message};

const WS: &str = env!("CARGO_BIN_EXE_ws");

/// A `ws serve` child, killed on drop.
struct Server {
    child: Child,
    addr: SocketAddr,
    lines: std::sync::mpsc::Receiver<String>,
}

impl Server {
    fn start(args: &[&str]) -> Server {
        let mut child = Command::new(WS)
            .arg("serve")
            .arg("127.0.0.1:0")
            .args(args)
            .arg("--no-color")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("ws serve starts");
        let stdout = child.stdout.take().unwrap();
        let (tx, lines) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        let first = lines
            .recv_timeout(Duration::from_secs(20))
            .expect("ws serve prints where it listens");
        let addr = first
            .split("://")
            .nth(1)
            .and_then(|rest| rest.split('/').next())
            .and_then(|a| a.parse().ok())
            .unwrap_or_else(|| panic!("no address in {first:?}"));
        Server { child, addr, lines }
    }

    fn url(&self) -> String {
        format!("ws://{}/", self.addr)
    }

    /// Waits (at most 10 s) for a printed line containing `needle`.
    fn line_with(&self, needle: &str) -> String {
        let deadline = Instant::now() + Duration::from_secs(10);
        let mut seen = Vec::new();
        while let Some(left) = deadline.checked_duration_since(Instant::now()) {
            match self.lines.recv_timeout(left) {
                Ok(l) if l.contains(needle) => return l,
                Ok(l) => seen.push(l),
                Err(_) => break,
            }
        }
        panic!("no line with {needle:?}; printed: {seen:#?}");
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Proxy variables of the environment `ws connect` would follow.
const PROXY_VARS: [&str; 6] = [
    "http_proxy",
    "HTTP_PROXY",
    "https_proxy",
    "HTTPS_PROXY",
    "all_proxy",
    "ALL_PROXY",
];

fn ws(args: &[&str]) -> Output {
    let mut c = Command::new(WS);
    for v in PROXY_VARS {
        c.env_remove(v);
    }
    c.args(args).stdin(Stdio::null()).output().expect("ws runs")
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

#[test]
fn execute_prints_the_reply_and_exits_0() {
    let s = Server::start(&[]);
    let out = ws(&[
        "connect",
        "-x",
        "hello",
        "-x",
        "second",
        "-w",
        "1s",
        &s.url(),
    ]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    assert_eq!(text(&out.stdout), "hello\nsecond\n");
    assert!(
        text(&out.stderr).contains("closed: 1000"),
        "{}",
        text(&out.stderr)
    );
    s.line_with("< ");
    s.line_with("closed 1000");
}

#[test]
fn close_with_a_code_exits_3_and_says_which() {
    let s = Server::start(&[]);
    let out = ws(&["connect", "-x", "/close 4000 bye", &s.url()]);
    assert_eq!(out.status.code(), Some(3), "{}", text(&out.stderr));
    assert!(
        text(&out.stderr).contains("closed: 4000 bye"),
        "{}",
        text(&out.stderr)
    );
    s.line_with("closed 4000 bye");
}

#[test]
fn a_connect_failure_exits_1() {
    // A port nothing listens on: bound, then released.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let out = ws(&["connect", "-x", "hi", &format!("ws://127.0.0.1:{port}/")]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text(&out.stderr).contains("could not connect"),
        "{}",
        text(&out.stderr)
    );
    assert!(out.stdout.is_empty());
}

#[test]
fn bad_arguments_exit_2() {
    for args in [
        &["connect", "http://x/"][..],
        &["connect", "-H", "no colon", "ws://x/"],
        &["connect", "--ca", "/nonexistent/ca.pem", "wss://localhost/"],
        &["connect", "-x", "/close 1006", "ws://127.0.0.1:1/"],
        &["bench", "--vus", "0", "ws://127.0.0.1:1/"],
    ] {
        let out = ws(args);
        assert_eq!(
            out.status.code(),
            Some(2),
            "{args:?}: {}",
            text(&out.stderr)
        );
    }
}

/// A server written here: runs `f` on the first connection.
fn one_connection<F, Fut>(f: F) -> SocketAddr
where
    F: FnOnce(ws_tokio::WebSocket<tokio::net::TcpStream>) -> Fut + Send + 'static,
    Fut: std::future::Future<Output = ()> + Send,
{
    let std_listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = std_listener.local_addr().unwrap();
    std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async move {
            std_listener.set_nonblocking(true).unwrap();
            let listener = tokio::net::TcpListener::from_std(std_listener).unwrap();
            let (tcp, _) = listener.accept().await.unwrap();
            let ws = ws_tokio::accept(tcp).await.unwrap();
            f(ws).await;
        });
    });
    addr
}

#[test]
fn a_server_error_code_exits_3() {
    let addr = one_connection(|mut ws| async move {
        let _ = ws
            .close(Some(CloseFrame::new(CloseCode::INTERNAL_ERROR, "broken")))
            .await;
    });
    let out = ws(&["connect", "-x", "hi", "-w", "5s", &format!("ws://{addr}/")]);
    assert_eq!(out.status.code(), Some(3), "{}", text(&out.stderr));
    assert!(
        text(&out.stderr).contains("server closed: 1011 broken"),
        "{}",
        text(&out.stderr)
    );
}

#[test]
fn a_lost_connection_exits_4() {
    let addr = one_connection(|mut ws| async move {
        // Take the message, then drop the socket without a close frame.
        let _ = ws.recv().await;
    });
    let out = ws(&["connect", "-x", "hi", "-w", "5s", &format!("ws://{addr}/")]);
    assert_eq!(out.status.code(), Some(4), "{}", text(&out.stderr));
    assert!(
        text(&out.stderr).contains("connection"),
        "{}",
        text(&out.stderr)
    );
}

#[test]
fn binary_and_json_output() {
    let s = Server::start(&[]);
    let out = ws(&[
        "connect",
        "--binary",
        "hex",
        "-x",
        "de ad be ef",
        "-w",
        "1s",
        &s.url(),
    ]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    assert_eq!(text(&out.stdout), "deadbeef\n");
    let out = ws(&[
        "connect",
        "--binary",
        "base64",
        "-x",
        "aGk=",
        "-w",
        "1s",
        &s.url(),
    ]);
    assert_eq!(text(&out.stdout), "aGk=\n");
    let out = ws(&[
        "connect",
        "--json",
        "-x",
        r#"{"a":[1]}"#,
        "-w",
        "1s",
        &s.url(),
    ]);
    assert_eq!(text(&out.stdout), "{\n  \"a\": [\n    1\n  ]\n}\n");
    // A line that is not hex is refused before anything is sent.
    let out = ws(&["connect", "--binary", "hex", "-x", "xyz", &s.url()]);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out.stderr));
}

#[test]
fn pings_show_their_pongs_with_p() {
    let s = Server::start(&[]);
    let out = ws(&[
        "connect",
        "-P",
        "-x",
        "/ping are you there",
        "-w",
        "1s",
        &s.url(),
    ]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    assert_eq!(text(&out.stdout), "pong \"are you there\"\n");
    let out = ws(&["connect", "-x", "/ping quiet", "-w", "1s", &s.url()]);
    assert_eq!(text(&out.stdout), "");
}

#[test]
fn broadcast_reaches_every_client() {
    let s = Server::start(&["--broadcast"]);
    let url = s.url();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let mut a = ws_tokio::connect(&url).await.unwrap();
        let mut b = ws_tokio::connect(&url).await.unwrap();
        // Both are subscribed once the server printed both connections.
        s.line_with("(2 open)");
        let out = tokio::task::spawn_blocking({
            let url = url.clone();
            move || ws(&["connect", "-x", "to everyone", "-w", "1s", &url])
        })
        .await
        .unwrap();
        // The sender gets its own message too.
        assert_eq!(text(&out.stdout), "to everyone\n", "{}", text(&out.stderr));
        for c in [&mut a, &mut b] {
            let m = tokio::time::timeout(Duration::from_secs(10), c.recv())
                .await
                .unwrap()
                .unwrap()
                .unwrap();
            assert_eq!(m, Message::text("to everyone"));
        }
    });
}

#[test]
fn bench_echo_reports_k6_metrics_as_json() {
    let s = Server::start(&["-q"]);
    let pid = s.child.id().to_string();
    let out = ws(&[
        "bench",
        "-c",
        "4",
        "-d",
        "500ms",
        "--warmup",
        "100ms",
        "--server-pid",
        &pid,
        "--json",
        &s.url(),
    ]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let j: serde_json::Value = serde_json::from_slice(&out.stdout).expect("JSON report");
    let m = &j["metrics"];
    let sent = m["ws_msgs_sent"]["count"].as_u64().unwrap();
    assert!(sent > 0, "{j}");
    assert_eq!(m["ws_msgs_received"]["count"].as_u64(), Some(sent));
    assert_eq!(m["ws_sessions"]["count"], 4);
    assert_eq!(m["ws_connecting"]["count"], 4);
    assert!(m["ws_round_trip"]["p(95)"].as_f64().unwrap() > 0.0);
    assert_eq!(j["errors"], 0);
    assert_eq!(j["peak_connections"], 4);
    assert!(j["server"]["rss_peak_bytes"].as_u64().unwrap() > 0, "{j}");
}

#[test]
fn bench_k6_scenario_runs_its_sessions() {
    let s = Server::start(&["-q"]);
    let out = ws(&[
        "bench",
        "--vus",
        "20",
        "--ramp",
        "500ms",
        "-d",
        "3s",
        "--session",
        "1500ms",
        "--interval",
        "200ms-400ms",
        &s.url(),
    ]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let t = text(&out.stdout);
    for name in [
        "ws_connecting",
        "ws_msgs_received",
        "ws_msgs_sent",
        "ws_round_trip",
        "ws_session_duration",
        "ws_sessions",
    ] {
        let line = t
            .lines()
            .find(|l| l.contains(name))
            .unwrap_or_else(|| panic!("{t}"));
        if name == "ws_sessions" {
            // Each of 20 users: a session of 1.5 s, then at least part of a second.
            let n: u64 = line
                .split(':')
                .nth(1)
                .unwrap()
                .split_whitespace()
                .next()
                .unwrap()
                .parse()
                .unwrap();
            assert!(n >= 20, "{line}");
        }
    }
    assert!(t.contains("errors......................: 0"), "{t}");
}
