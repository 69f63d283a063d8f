//! Client connections through real proxies started here on 127.0.0.1: Debian's tinyproxy (HTTP
//! CONNECT, with and without Basic credentials), dante (SOCKS5, with a ruleset) and microsocks
//! (SOCKS5 with username/password; dante's username method checks system users, which a test
//! should not create). Through each, a WebSocket handshake and a message to a `ws_tokio`
//! server on loopback. Then proxies that misbehave, played by raw listeners: answers at and past
//! the size limit, bytes right behind the answer, silence, refusals, broken answers.
//!
//! The proxies come from `tests/proxy/setup.sh` (apt-get), which these tests run themselves when a
//! binary is missing; a test fails (it never skips) when the proxy still cannot be had.

use std::collections::HashMap;
use std::net::{Ipv6Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::OnceLock;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

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
// The proxies: found (installed when missing), configured in a temp dir, started, stopped.

/// The path of a proxy binary, running `tests/proxy/setup.sh` once when one is missing.
fn binary(name: &str) -> PathBuf {
    fn find(name: &str) -> Option<PathBuf> {
        let path = std::env::var_os("PATH").unwrap_or_default();
        std::env::split_paths(&path)
            .chain(["/usr/sbin".into(), "/usr/bin".into()])
            .map(|dir| dir.join(name))
            .find(|p| p.is_file())
    }
    static SETUP: OnceLock<String> = OnceLock::new();
    if let Some(p) = find(name) {
        return p;
    }
    let report = SETUP.get_or_init(|| {
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/proxy/setup.sh");
        match Command::new("bash").arg(&script).output() {
            Ok(out) => format!(
                "{} exited with {}:\n{}",
                script.display(),
                out.status,
                String::from_utf8_lossy(&out.stderr)
            ),
            Err(e) => format!("could not run {}: {e}", script.display()),
        }
    });
    find(name).unwrap_or_else(|| {
        panic!(
            "{name} is not installed and tests/proxy/setup.sh could not install it \
             (apt-get install -y tinyproxy dante-server microsocks): {report}"
        )
    })
}

/// A directory under the system's temp dir, removed when dropped.
struct TempDir(PathBuf);

impl TempDir {
    fn new(what: &str) -> TempDir {
        static N: AtomicUsize = AtomicUsize::new(0);
        let n = N.fetch_add(1, Ordering::Relaxed);
        let dir = std::env::temp_dir().join(format!("ws-proxy-{what}-{}-{n}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        TempDir(dir)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// A port on 127.0.0.1 that was free a moment ago.
fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A proxy process listening on 127.0.0.1:`port`, stopped (SIGTERM, then SIGKILL) when dropped.
struct Daemon {
    name: &'static str,
    child: Child,
    port: u16,
    log: PathBuf,
    _dir: TempDir,
}

impl Daemon {
    /// Starts `name` with the arguments and config file that `setup` writes for a fresh port in
    /// `dir`, and waits until it listens; tries another port when the first was taken meanwhile.
    fn start(name: &'static str, setup: impl Fn(&Path, u16) -> (Vec<String>, PathBuf)) -> Daemon {
        let bin = binary(name);
        let mut failures = String::new();
        for _ in 0..3 {
            let dir = TempDir::new(name);
            let port = free_port();
            let (args, log) = setup(&dir.0, port);
            let child = Command::new(&bin)
                .args(&args)
                .stdin(Stdio::null())
                .stdout(std::fs::File::create(dir.0.join("stdout")).unwrap())
                .stderr(std::fs::File::create(dir.0.join("stderr")).unwrap())
                .spawn()
                .unwrap_or_else(|e| panic!("could not start {}: {e}", bin.display()));
            let mut daemon = Daemon {
                name,
                child,
                port,
                log,
                _dir: dir,
            };
            match daemon.wait_listening() {
                Ok(()) => return daemon,
                Err(why) => failures.push_str(&format!("port {port}: {why}\n")),
            }
        }
        panic!("{name} did not start:\n{failures}");
    }

    /// Polls (at most 10 s) until the port accepts connections, or the process exits.
    fn wait_listening(&mut self) -> Result<(), String> {
        let addr = SocketAddr::from(([127, 0, 0, 1], self.port));
        for _ in 0..400 {
            if let Some(status) = self.child.try_wait().unwrap() {
                return Err(format!("exited with {status}: {}", self.output()));
            }
            if std::net::TcpStream::connect_timeout(&addr, Duration::from_millis(100)).is_ok() {
                return Ok(());
            }
            std::thread::sleep(Duration::from_millis(25));
        }
        Err(format!("not listening after 10 s: {}", self.output()))
    }

    fn output(&self) -> String {
        let read = |name: &str| std::fs::read_to_string(self._dir.0.join(name)).unwrap_or_default();
        format!(
            "stdout: {}\nstderr: {}\nlog: {}",
            read("stdout"),
            read("stderr"),
            std::fs::read_to_string(&self.log).unwrap_or_default()
        )
    }

    /// The proxy's log once it has a line containing `needle` (polled for at most 5 s).
    fn log_line_with(&self, needle: &str) -> String {
        for _ in 0..200 {
            let log = std::fs::read_to_string(&self.log).unwrap_or_default();
            if let Some(line) = log.lines().find(|l| l.contains(needle)) {
                return line.to_string();
            }
            std::thread::sleep(Duration::from_millis(25));
        }
        panic!(
            "{} logged no line with {needle:?}:\n{}",
            self.name,
            self.output()
        );
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        // SIGTERM lets dante stop the processes it forked; SIGKILL if it takes longer than 5 s.
        let _ = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status();
        for _ in 0..200 {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(25));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// tinyproxy on loopback, with `extra` config lines (BasicAuth, ConnectPort). Without any
/// ConnectPort line it allows CONNECT to every port.
fn tinyproxy(extra: &str) -> Daemon {
    let extra = extra.to_string();
    Daemon::start("tinyproxy", move |dir, port| {
        let log = dir.join("tinyproxy.log");
        let conf = dir.join("tinyproxy.conf");
        std::fs::write(
            &conf,
            format!(
                "Listen 127.0.0.1\nPort {port}\nTimeout 30\nLogLevel Connect\nLogFile \"{}\"\n\
                 MaxClients 20\nAllow 127.0.0.1\nDisableViaHeader Yes\n{extra}\n",
                log.display()
            ),
        )
        .unwrap();
        let args = vec!["-d".into(), "-c".into(), conf.display().to_string()];
        (args, log)
    })
}

/// dante's `danted` on loopback, no authentication, with `rules` before a rule that passes the
/// rest. It logs every connect and every block.
fn dante(rules: &str) -> Daemon {
    let rules = rules.to_string();
    // As root, dante wants to be told which users to run as.
    let root = Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|o| o.stdout.trim_ascii() == b"0");
    let users = if root {
        "user.privileged: root\nuser.unprivileged: nobody\n"
    } else {
        ""
    };
    Daemon::start("danted", move |dir, port| {
        let log = dir.join("danted.log");
        let conf = dir.join("danted.conf");
        std::fs::write(
            &conf,
            format!(
                "logoutput: {}\ninternal: 127.0.0.1 port = {port}\nexternal: 127.0.0.1\n\
                 socksmethod: none\nclientmethod: none\n{users}\
                 client pass {{ from: 127.0.0.0/8 to: 0.0.0.0/0 }}\n{rules}\n\
                 socks pass {{ from: 0.0.0.0/0 to: 0.0.0.0/0 log: connect disconnect error }}\n",
                log.display()
            ),
        )
        .unwrap();
        let args = vec![
            "-f".into(),
            conf.display().to_string(),
            "-p".into(),
            dir.join("danted.pid").display().to_string(),
            "-N".into(),
            "1".into(),
        ];
        (args, log)
    })
}

/// microsocks on loopback, requiring this username and password (RFC 1929).
fn microsocks(user: &str, password: &str) -> Daemon {
    let (user, password) = (user.to_string(), password.to_string());
    Daemon::start("microsocks", move |dir, port| {
        let args = vec![
            "-i".into(),
            "127.0.0.1".into(),
            "-p".into(),
            port.to_string(),
            "-u".into(),
            user.clone(),
            "-P".into(),
            password.clone(),
        ];
        (args, dir.join("stderr"))
    })
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
