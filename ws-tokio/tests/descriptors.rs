//! The serve loop under a 1024-descriptor limit, over real loopback TCP and in a real child
//! process (this test binary run again as the server, with `RLIMIT_NOFILE` lowered to
//! 1024:1024 before its runtime starts).
//!
//! 1,200 clients arrive at once (from 127.0.0.1 to 127.0.0.10, 120 each, under the per-IP
//! cap). The loop's cap is lowered to fit the limit (896), so exactly that many are served,
//! and each of the others gets a 503 or a closed connection, never no answer. The served ones
//! keep echoing. Once the load is gone a new client is served. Then the server opens files
//! until `accept` fails with `EMFILE` for real: a client arriving then waits in the backlog
//! while the loop backs off, the open connections are served meanwhile, and once the files
//! are closed the waiting client is served.
//!
//! Real time, bounded: every step has a deadline; about 3 s in all.

#![cfg(target_os = "linux")]

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::process::Stdio;
use std::time::{Duration, Instant};

use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader, Lines};
use tokio::net::{TcpSocket, TcpStream};
use tokio::process::{Child, ChildStdin, ChildStdout};
use ws_tokio::{ClientRequest, Config, Error, Message, WebSocket};

const LIMIT: u64 = 1024;
const CLIENTS: usize = 1200;
const SOURCES: u8 = 10;
const STEP: Duration = Duration::from_secs(30);
const CHILD_ENV: &str = "WS_TOKIO_DESCRIPTOR_CHILD";

fn quiet() -> Config {
    Config::default()
        .with_ping_interval(None)
        .with_compression(None)
}

async fn bounded<T>(what: &str, f: impl Future<Output = T>) -> T {
    match tokio::time::timeout(STEP, f).await {
        Ok(v) => v,
        Err(_) => panic!("timed out: {what}"),
    }
}

/// The server side, run by [`descriptor_limit_1024_with_1200_clients`] in a child process.
/// Commands on standard input: `hog` (open files until `EMFILE`, keep them), `release`
/// (close them), `fds` (count its open descriptors); end of input shuts the server down
/// gracefully.
#[test]
#[ignore = "the server process of descriptor_limit_1024_with_1200_clients"]
fn child_server() {
    assert!(
        std::env::var_os(CHILD_ENV).is_some(),
        "run by descriptor_limit_1024_with_1200_clients"
    );
    rlimit::setrlimit(rlimit::Resource::NOFILE, LIMIT, LIMIT).expect("setrlimit");
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
        let server = ws_tokio::serve(listener, |mut ws, info| async move {
            while let Some(Ok(m)) = info.recv(&mut ws).await {
                if (m.is_text() || m.is_binary()) && ws.send(m).await.is_err() {
                    break;
                }
            }
        })
        .config(quiet())
        .with_graceful_shutdown(async {
            let _ = stop_rx.await;
        });
        println!("CAP {}", server.effective_max_connections());
        println!("PORT {port}");
        let server = tokio::spawn(server.into_future());
        let mut stdin = BufReader::new(tokio::io::stdin()).lines();
        let mut hogged = Vec::new();
        while let Ok(Some(line)) = stdin.next_line().await {
            match line.trim() {
                "hog" => {
                    loop {
                        match std::fs::File::open("/dev/null") {
                            Ok(f) => hogged.push(f),
                            Err(e) => {
                                assert_eq!(e.raw_os_error(), Some(libc::EMFILE), "{e}");
                                break;
                            }
                        }
                    }
                    println!("HOGGED {}", hogged.len());
                }
                "fds" => {
                    let n = std::fs::read_dir("/proc/self/fd").map_or(0, |d| d.count());
                    println!("FDS {n}");
                }
                "release" => {
                    hogged.clear();
                    println!("RELEASED");
                }
                other => panic!("unknown command {other:?}"),
            }
        }
        let _ = stop_tx.send(());
        server.await.unwrap().unwrap();
        println!("STOPPED");
    });
}

struct Server {
    child: Child,
    stdin: ChildStdin,
    stdout: Lines<BufReader<ChildStdout>>,
    addr: SocketAddr,
    cap: usize,
}

impl Server {
    async fn start() -> Server {
        let mut child = tokio::process::Command::new(std::env::current_exe().unwrap())
            .args(["child_server", "--exact", "--ignored", "--nocapture"])
            .env(CHILD_ENV, "1")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .expect("start the server process");
        let stdin = child.stdin.take().unwrap();
        let stdout = BufReader::new(child.stdout.take().unwrap()).lines();
        let mut s = Server {
            child,
            stdin,
            stdout,
            addr: SocketAddr::from(([127, 0, 0, 1], 0)),
            cap: 0,
        };
        s.cap = s.expect("CAP").await.parse().unwrap();
        let port: u16 = s.expect("PORT").await.parse().unwrap();
        s.addr.set_port(port);
        s
    }

    /// The rest of the next line that starts with `word`.
    async fn expect(&mut self, word: &str) -> String {
        loop {
            let line = bounded(word, self.stdout.next_line())
                .await
                .unwrap()
                .unwrap_or_else(|| panic!("the server ended before {word}"));
            if let Some(rest) = line.strip_prefix(word) {
                return rest.trim().to_string();
            }
        }
    }

    async fn command(&mut self, cmd: &str) {
        self.stdin
            .write_all(format!("{cmd}\n").as_bytes())
            .await
            .unwrap();
        self.stdin.flush().await.unwrap();
    }
}

#[derive(Debug)]
enum Outcome {
    Served(Box<WebSocket<TcpStream>>),
    Busy,
    Closed,
}

async fn connect(from: u8, to: SocketAddr) -> Outcome {
    let s = TcpSocket::new_v4().unwrap();
    s.bind(SocketAddr::new(
        IpAddr::V4(Ipv4Addr::new(127, 0, 0, from)),
        0,
    ))
    .unwrap();
    let tcp = match s.connect(to).await {
        Ok(t) => t,
        Err(_) => return Outcome::Closed,
    };
    let req = ClientRequest::new(to.to_string(), "/").config(quiet());
    match ws_tokio::client(tcp, req).await {
        Ok((ws, _)) => Outcome::Served(Box::new(ws)),
        Err(Error::Rejected { status: 503 }) => Outcome::Busy,
        Err(Error::Io(_) | Error::PeerVanished | Error::Handshake(_)) => Outcome::Closed,
        Err(e) => panic!("unexpected outcome: {e:?}"),
    }
}

async fn assert_echo(ws: &mut WebSocket<TcpStream>, text: &str) {
    bounded("send", ws.send(Message::text(text.to_string())))
        .await
        .expect("send");
    match bounded("echo", ws.recv()).await {
        Some(Ok(Message::Text(t))) => assert_eq!(t.as_str(), text),
        other => panic!("expected the echo, got {other:?}"),
    }
}

/// A new client, retried (a bounded number of times) while the server still releases the
/// places of connections that just ended.
async fn served_soon(addr: SocketAddr) -> Box<WebSocket<TcpStream>> {
    for _ in 0..100 {
        match connect(1, addr).await {
            Outcome::Served(ws) => return ws,
            _ => tokio::time::sleep(Duration::from_millis(20)).await,
        }
    }
    panic!("no new client was served");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn descriptor_limit_1024_with_1200_clients() {
    let started = Instant::now();
    let own = rlimit::increase_nofile_limit(4 * CLIENTS as u64).unwrap();
    assert!(
        own >= 2 * CLIENTS as u64,
        "the clients need {CLIENTS} descriptors"
    );
    let mut server = Server::start().await;
    assert_eq!(
        server.cap, 896,
        "1024 less 64 for 503 answers and 64 of headroom"
    );
    let addr = server.addr;

    // 1,200 clients at once.
    let flood = Instant::now();
    let mut tasks = tokio::task::JoinSet::new();
    for i in 0..CLIENTS {
        let from = 1 + (i % usize::from(SOURCES)) as u8;
        tasks.spawn(async move { bounded("client", connect(from, addr)).await });
    }
    let (mut served, mut busy, mut closed) = (Vec::new(), 0, 0);
    while let Some(r) = tasks.join_next().await {
        match r.unwrap() {
            Outcome::Served(ws) => served.push(ws),
            Outcome::Busy => busy += 1,
            Outcome::Closed => closed += 1,
        }
    }
    let flood_time = flood.elapsed();
    eprintln!(
        "{CLIENTS} clients under a {LIMIT}-descriptor limit: {} served, {busy} answered 503, \
         {closed} closed, in {flood_time:?}",
        served.len()
    );
    assert_eq!(served.len(), server.cap);
    assert_eq!(busy + closed, CLIENTS - server.cap);
    assert!(
        busy > 0,
        "the excess is answered while answers are in flight"
    );

    // The served ones keep being served.
    for (i, ws) in served.iter_mut().enumerate() {
        assert_echo(ws, &format!("client {i}")).await;
    }

    // The load goes away; a new client is served.
    let keep: Vec<_> = served.drain(..10).collect();
    drop(served);
    let mut fresh = served_soon(addr).await;
    assert_echo(&mut fresh, "after the load").await;

    // Wait (bounded) until the server has closed the connections that went away.
    let mut fds = usize::MAX;
    for _ in 0..250 {
        server.command("fds").await;
        fds = server.expect("FDS").await.parse().unwrap();
        if fds < 100 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(fds < 100, "the server still holds {fds} descriptors");

    // Descriptors run out for real: accept fails with EMFILE.
    let mut keep = keep;
    server.command("hog").await;
    let hogged: usize = server.expect("HOGGED").await.parse().unwrap();
    assert!(hogged > 900, "{hogged}");
    let waiting = tokio::spawn(connect(1, addr));
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(!waiting.is_finished(), "no descriptor to accept it with");
    for ws in keep.iter_mut() {
        assert_echo(ws, "while out of descriptors").await;
    }
    server.command("release").await;
    server.expect("RELEASED").await;
    let released = Instant::now();
    match bounded("the waiting client", waiting).await.unwrap() {
        Outcome::Served(mut ws) => assert_echo(&mut ws, "after EMFILE").await,
        other => panic!("expected the waiting client to be served, got {other:?}"),
    }
    let wait = released.elapsed();
    eprintln!("served {wait:?} after descriptors were freed (backoff is at most 1 s)");
    assert!(wait < Duration::from_secs(5), "{wait:?}");

    // Graceful shutdown: the open connections get 1001.
    drop(server.stdin);
    for ws in keep.iter_mut().chain(std::iter::once(&mut fresh)) {
        match bounded("close", ws.recv()).await {
            Some(Ok(Message::Close(Some(f)))) => {
                assert_eq!(f.code, ws_tokio::CloseCode::GOING_AWAY)
            }
            other => panic!("expected close 1001, got {other:?}"),
        }
    }
    let mut stdout = server.stdout;
    loop {
        match bounded("stop", stdout.next_line()).await.unwrap() {
            Some(l) if l.starts_with("STOPPED") => break,
            Some(_) => {}
            None => panic!("the server ended without stopping gracefully"),
        }
    }
    let status = bounded("exit", server.child.wait()).await.unwrap();
    assert!(status.success(), "{status}");
    eprintln!("descriptor test: {:?} in all", started.elapsed());
}
