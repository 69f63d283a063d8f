//! The proxies the tests start on 127.0.0.1: found (installed by `setup.sh` when missing),
//! configured in a temp dir, started, stopped. Shared by `tests/proxy.rs` and `tests/tls.rs`.
#![allow(dead_code, unreachable_pub)]

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::OnceLock;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

/// The path of a proxy binary, running `tests/proxy/setup.sh` once when one is missing.
pub fn binary(name: &str) -> PathBuf {
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
pub struct TempDir(pub PathBuf);

impl TempDir {
    pub fn new(what: &str) -> TempDir {
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
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A proxy process listening on 127.0.0.1:`port`, stopped (SIGTERM, then SIGKILL) when dropped.
pub struct Daemon {
    name: &'static str,
    child: Child,
    pub port: u16,
    log: PathBuf,
    _dir: TempDir,
}

impl Daemon {
    /// Starts `name` with the arguments and config file that `setup` writes for a fresh port in
    /// `dir`, and waits until it listens; tries another port when the first was taken meanwhile.
    pub fn start(
        name: &'static str,
        setup: impl Fn(&Path, u16) -> (Vec<String>, PathBuf),
    ) -> Daemon {
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
    pub fn log_line_with(&self, needle: &str) -> String {
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
pub fn tinyproxy(extra: &str) -> Daemon {
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
pub fn dante(rules: &str) -> Daemon {
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
pub fn microsocks(user: &str, password: &str) -> Daemon {
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
