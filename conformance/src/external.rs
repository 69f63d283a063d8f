//! Implementations under test that are not ours: a WebSocket server that is already running
//! (`--server ws://HOST:PORT`), and a client program that the runner starts once against the
//! fuzzing server (`--client-cmd 'CMD {url} {agent}'`).
//!
//! # The client program's contract
//!
//! The runner starts kosoku's fuzzing server on a free loopback port, waits until it answers,
//! then runs the command once with `sh -c`, `{url}` replaced by the fuzzing server's base URL
//! (`ws://127.0.0.1:PORT`, no trailing slash) and `{agent}` by the agent name (`--agent`); the
//! same two values are in the environment as `CONFORMANCE_URL` and `CONFORMANCE_AGENT`. The
//! program does what every Autobahn TestSuite client does:
//!
//! 1. opens `URL/getCaseCount` and reads the case count N, a text message;
//! 2. for each case 1..=N, opens `URL/runCase?case=I&agent=AGENT` and echoes every text and
//!    binary message back, unchanged, until the fuzzing server closes the connection (a case
//!    that ends in an error is not the program's failure: go on with the next one);
//! 3. opens `URL/updateReports?agent=AGENT` and waits for the close; kosoku then writes the
//!    reports and exits;
//! 4. exits (its exit status is shown; a non-zero one is counted as an error of the run).
//!
//! Its standard input is empty and its output goes to `client-command.log` in the report
//! folder. It runs in its own process group, which is killed once the role is done; a program
//! still running at the time limit (`--timeout`, minus a margin) is killed and the runner asks
//! for the reports of the cases run so far itself. So does it when the program exits without
//! step 3. `conformance/external-client.py` is such a program (Python `websockets`).

use std::fmt;
use std::fs::File;
use std::path::Path;
use std::process::Stdio;
use std::str::FromStr;
use std::time::Duration;

use nix::sys::signal::{Signal, killpg};
use nix::unistd::Pid;
use tokio::process::{Child, Command};

/// Longest agent name accepted.
pub const MAX_AGENT_LEN: usize = 64;

/// Checks an agent name: 1 to [`MAX_AGENT_LEN`] ASCII letters, digits, `.`, `_`, `+` or `-`,
/// starting with a letter or digit. kosoku puts it into report file names and the client
/// command line, so nothing else is let through.
///
/// ```
/// use conformance::external::check_agent;
/// assert!(check_agent("tokio-tungstenite_0.30").is_ok());
/// assert!(check_agent("my client").is_err());
/// ```
pub fn check_agent(name: &str) -> Result<String, String> {
    let ok_char = |b: u8| b.is_ascii_alphanumeric() || b"._+-".contains(&b);
    let starts_well = name
        .bytes()
        .next()
        .is_some_and(|b| b.is_ascii_alphanumeric());
    if starts_well && name.len() <= MAX_AGENT_LEN && name.bytes().all(ok_char) {
        Ok(name.to_owned())
    } else {
        Err(format!(
            "{name:?}: an agent name is 1-{MAX_AGENT_LEN} letters, digits, '.', '_', '+' or '-', \
             starting with a letter or digit"
        ))
    }
}

/// The URL of an external server under test: `ws://HOST[:PORT][/PATH]`.
///
/// ```
/// let url: conformance::external::ServerUrl = "ws://127.0.0.1:9001".parse().unwrap();
/// assert_eq!((url.host(), url.port()), ("127.0.0.1", 9001));
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServerUrl {
    url: String,
    host: String,
    port: u16,
}

impl ServerUrl {
    /// The URL as given, which kosoku connects to.
    pub fn as_str(&self) -> &str {
        &self.url
    }

    /// The host, without the brackets of an IPv6 address.
    pub fn host(&self) -> &str {
        &self.host
    }

    /// The port (80 when the URL has none).
    pub fn port(&self) -> u16 {
        self.port
    }
}

impl FromStr for ServerUrl {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let uri: http::Uri = s
            .parse()
            .map_err(|e| format!("{s:?} is not a URL ({e}); use ws://HOST:PORT"))?;
        match uri.scheme_str() {
            Some("ws") => {}
            Some("wss") => return Err(format!("{s:?}: wss:// is not supported, use ws://")),
            _ => return Err(format!("{s:?}: use ws://HOST:PORT")),
        }
        let authority = uri.authority().ok_or_else(|| format!("{s:?}: no host"))?;
        if authority.as_str().contains('@') {
            return Err(format!("{s:?}: no user name or password, please"));
        }
        let raw_host = authority.host();
        let host = raw_host.trim_start_matches('[').trim_end_matches(']');
        if host.is_empty() {
            return Err(format!("{s:?}: no host"));
        }
        // `http` reads a port that does not fit 16 bits as none; look at the text itself.
        let port = match authority.as_str().get(raw_host.len()..) {
            Some("") => 80,
            Some(p) => match p.strip_prefix(':').map(str::parse::<u16>) {
                Some(Ok(p)) if p > 0 => p,
                _ => return Err(format!("{s:?}: the port is not 1-65535")),
            },
            None => return Err(format!("{s:?}: bad host")),
        };
        Ok(ServerUrl {
            url: s.to_owned(),
            host: host.to_owned(),
            port,
        })
    }
}

impl fmt::Display for ServerUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.url)
    }
}

/// Waits until a TCP connection to the server's host and port succeeds, trying every 100 ms
/// for up to `limit`; the error names the address and the last failure.
pub async fn wait_reachable(url: &ServerUrl, limit: Duration) -> Result<(), String> {
    let deadline = tokio::time::Instant::now() + limit;
    loop {
        let attempt = tokio::time::timeout_at(
            deadline,
            tokio::net::TcpStream::connect((url.host(), url.port())),
        )
        .await;
        let e = match attempt {
            Ok(Ok(_)) => return Ok(()),
            Ok(Err(e)) => e.to_string(),
            Err(_) => "connection timed out".to_owned(),
        };
        if tokio::time::Instant::now() >= deadline {
            return Err(format!(
                "server {url} not reachable within {} s: {e}",
                limit.as_secs()
            ));
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// A client program to run against the fuzzing server: a `sh -c` command line with `{url}` and
/// `{agent}` placeholders (see the [module documentation](self) for what it must do).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClientCommand {
    template: String,
}

impl FromStr for ClientCommand {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        if s.trim().is_empty() {
            return Err("the client command is empty".to_owned());
        }
        Ok(ClientCommand {
            template: s.to_owned(),
        })
    }
}

impl ClientCommand {
    /// The command line with `{url}` and `{agent}` replaced. (The agent name is one that
    /// [`check_agent`] accepts, so it needs no quoting; the URL is `ws://127.0.0.1:PORT`.)
    pub fn render(&self, url: &str, agent: &str) -> String {
        self.template
            .replace("{url}", url)
            .replace("{agent}", agent)
    }

    /// Starts the command in its own process group, standard input empty, `stdout` and
    /// `stderr` as given.
    pub fn spawn_with(
        &self,
        url: &str,
        agent: &str,
        stdout: Stdio,
        stderr: Stdio,
    ) -> Result<ClientProcess, String> {
        let line = self.render(url, agent);
        let child = Command::new("sh")
            .arg("-c")
            .arg(&line)
            .env("CONFORMANCE_URL", url)
            .env("CONFORMANCE_AGENT", agent)
            .stdin(Stdio::null())
            .stdout(stdout)
            .stderr(stderr)
            .process_group(0)
            .kill_on_drop(true)
            .spawn()
            .map_err(|e| format!("cannot start the client command {line:?}: {e}"))?;
        let group = child
            .id()
            .and_then(|id| i32::try_from(id).ok())
            .map(Pid::from_raw);
        Ok(ClientProcess { child, group })
    }

    /// Starts the command with its standard output and error written to `log`.
    pub fn spawn(&self, url: &str, agent: &str, log: &Path) -> Result<ClientProcess, String> {
        let out = File::create(log).map_err(|e| format!("{}: {e}", log.display()))?;
        let err = out
            .try_clone()
            .map_err(|e| format!("{}: {e}", log.display()))?;
        self.spawn_with(url, agent, out.into(), err.into())
    }
}

impl fmt::Display for ClientCommand {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.template)
    }
}

/// A running client command; its whole process group is killed when this is dropped.
#[derive(Debug)]
pub struct ClientProcess {
    /// The `sh` process (the group leader).
    pub child: Child,
    group: Option<Pid>,
}

impl ClientProcess {
    /// Sends SIGKILL to every process left in the command's group (none left is fine).
    pub fn kill_group(&self) {
        if let Some(group) = self.group {
            let _ = killpg(group, Signal::SIGKILL);
        }
    }
}

impl Drop for ClientProcess {
    fn drop(&mut self) {
        self.kill_group();
    }
}

#[cfg(test)]
mod tests {
    use tokio::io::AsyncReadExt;

    use super::*;

    #[test]
    fn agent_names() {
        for ok in [
            "a",
            "tokio-tungstenite",
            "websockets_17.4",
            "x+y",
            &"a".repeat(64),
        ] {
            assert_eq!(check_agent(ok).as_deref(), Ok(ok), "{ok:?}");
        }
        let long = "a".repeat(MAX_AGENT_LEN + 1);
        for bad in [
            "", "-x", ".x", "a b", "a/b", "a;rm", "a'b", "a$b", "é", &long,
        ] {
            assert!(check_agent(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn server_urls() {
        let u: ServerUrl = "ws://127.0.0.1:9001".parse().unwrap();
        assert_eq!(
            (u.host(), u.port(), u.as_str()),
            ("127.0.0.1", 9001, "ws://127.0.0.1:9001")
        );
        let u: ServerUrl = "ws://localhost/echo?x=1".parse().unwrap();
        assert_eq!((u.host(), u.port()), ("localhost", 80));
        assert_eq!(u.to_string(), "ws://localhost/echo?x=1");
        let u: ServerUrl = "ws://[::1]:65535/".parse().unwrap();
        assert_eq!((u.host(), u.port()), ("::1", 65535));
        for bad in [
            "",
            "127.0.0.1:9001",
            "http://127.0.0.1:9001",
            "wss://127.0.0.1:9001",
            "ws://",
            "ws://:9001",
            "ws://127.0.0.1:0",
            "ws://127.0.0.1:65536",
            "ws://127.0.0.1:x",
            "ws://127.0.0.1:",
            "ws://u:p@127.0.0.1:9001",
            "ws://127.0.0.1 :9001",
        ] {
            assert!(bad.parse::<ServerUrl>().is_err(), "{bad:?}");
        }
    }

    #[test]
    fn renders_placeholders() {
        let c: ClientCommand = "client --url {url} --agent {agent} {url}/x {other}"
            .parse()
            .unwrap();
        assert_eq!(
            c.render("ws://127.0.0.1:9", "me"),
            "client --url ws://127.0.0.1:9 --agent me ws://127.0.0.1:9/x {other}"
        );
        assert!(" ".parse::<ClientCommand>().is_err());
    }

    #[tokio::test]
    async fn refuses_a_closed_port() {
        let port = {
            let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
            l.local_addr().unwrap().port()
        };
        let u: ServerUrl = format!("ws://127.0.0.1:{port}").parse().unwrap();
        let e = wait_reachable(&u, Duration::ZERO).await.unwrap_err();
        assert!(e.contains("not reachable"), "{e}");
        let l = tokio::net::TcpListener::bind(("127.0.0.1", port)).await;
        if l.is_ok() {
            assert_eq!(wait_reachable(&u, Duration::from_secs(5)).await, Ok(()));
        }
    }

    #[tokio::test]
    async fn runs_the_command_with_url_and_agent() {
        let c: ClientCommand = "printf '%s|%s|%s|%s' {url} {agent} \"$CONFORMANCE_URL\" \
                                \"$CONFORMANCE_AGENT\"; exit 3"
            .parse()
            .unwrap();
        let mut p = c
            .spawn_with("ws://127.0.0.1:7", "ag", Stdio::piped(), Stdio::null())
            .unwrap();
        let mut out = String::new();
        let mut stdout = p.child.stdout.take().unwrap();
        stdout.read_to_string(&mut out).await.unwrap();
        assert_eq!(out, "ws://127.0.0.1:7|ag|ws://127.0.0.1:7|ag");
        assert_eq!(p.child.wait().await.unwrap().code(), Some(3));
    }

    #[tokio::test]
    async fn kills_the_whole_group() {
        // A grandchild that would outlive the shell by a minute. It holds the pipe too, so
        // the pipe reaches end of file only when both are gone.
        let c: ClientCommand = "sleep 60 & echo started; wait".parse().unwrap();
        let mut p = c
            .spawn_with("ws://127.0.0.1:7", "ag", Stdio::piped(), Stdio::null())
            .unwrap();
        let mut stdout = p.child.stdout.take().unwrap();
        let mut first = [0u8; 8];
        stdout.read_exact(&mut first).await.unwrap();
        assert_eq!(&first, b"started\n");
        p.kill_group();
        let mut rest = Vec::new();
        let eof = tokio::time::timeout(Duration::from_secs(20), stdout.read_to_end(&mut rest));
        assert_eq!(eof.await.expect("grandchild still alive").unwrap(), 0);
        assert!(!p.child.wait().await.unwrap().success());
    }
}
