//! The command line, as clap derives it, and the parsers of its values.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, Parser, Subcommand, ValueEnum};

const EXIT_CODES: &str = "\
Exit status:
  0  closed normally (1000, 1001 or no code); a bench run without errors
  1  could not connect (TCP, DNS, proxy, TLS, a refused handshake) or start
  2  bad arguments or files
  3  closed with another code (by either side); a bench run with failures
  4  the connection was lost without a close handshake";

/// A WebSocket client, server and load generator (ws-tokio).
#[derive(Debug, Parser)]
#[command(name = "ws", version, after_help = EXIT_CODES)]
pub(crate) struct Cli {
    #[command(subcommand)]
    pub(crate) command: Command,
}

#[derive(Debug, Subcommand)]
pub(crate) enum Command {
    /// `ws connect`: exchange messages with a server.
    #[command(
        about = "Connect to a server and exchange messages: lines typed are sent as text \
        messages, messages received are printed. Commands: /ping [data], /pong [data], \
        /close [code [reason]], /help; \"//x\" sends \"/x\"."
    )]
    Connect(ConnectArgs),
    /// Run a server that echoes every message back (or broadcasts it to every client), and
    /// prints connections and messages.
    Serve(ServeArgs),
    /// Load a server: closed-loop or pipelined echo, or a k6-style scenario of virtual users;
    /// prints k6's metrics (ws_connecting, ws_msgs_sent, ...) at the end.
    Bench(BenchArgs),
}

/// How `--binary` reads input lines and prints binary messages.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub(crate) enum Encoding {
    /// Hexadecimal digits (spaces and colons between bytes are allowed).
    Hex,
    /// Standard base64 (RFC 4648, with or without padding).
    Base64,
}

/// Options of every client connection.
#[derive(Debug, Clone, Args)]
pub(crate) struct ClientOpts {
    /// A request header, as "Name: value" (repeatable).
    #[arg(short = 'H', long = "header", value_name = "NAME: VALUE", value_parser = parse_header)]
    pub(crate) headers: Vec<(String, String)>,
    /// Offer this subprotocol (repeatable, in order of preference).
    #[arg(short = 's', long = "subprotocol", value_name = "PROTOCOL")]
    pub(crate) subprotocols: Vec<String>,
    /// The Origin header.
    #[arg(short = 'o', long)]
    pub(crate) origin: Option<String>,
    /// Basic authentication, as USER:PASSWORD.
    #[arg(long, value_name = "USER:PASSWORD")]
    pub(crate) auth: Option<String>,
    /// Trust the CA certificates in this PEM file for wss:// (instead of the Mozilla roots).
    #[arg(long, value_name = "FILE")]
    pub(crate) ca: Option<PathBuf>,
    /// Do not check the server's certificate at all (self-signed test servers only: anyone on
    /// the path can read and change the traffic).
    #[arg(long, short = 'k')]
    pub(crate) insecure: bool,
    /// The proxy to connect through.
    #[arg(
        long,
        value_name = "URL",
        help = "Connect through this proxy: http://[user:pass@]host:port (HTTP CONNECT), \
            socks5://host:port or socks5h://host:port (the proxy resolves the name)"
    )]
    pub(crate) proxy: Option<String>,
    /// Connect directly, even if http_proxy, https_proxy or all_proxy name a proxy (which
    /// `ws connect` otherwise uses, as curl does, unless no_proxy lists the host; `ws bench`
    /// uses --proxy only).
    #[arg(long, conflicts_with = "proxy")]
    pub(crate) no_proxy: bool,
    /// Do not offer permessage-deflate compression.
    #[arg(long)]
    pub(crate) no_compression: bool,
    /// Give up connecting after this long.
    #[arg(long, value_name = "DURATION", default_value = "10s", value_parser = parse_duration)]
    pub(crate) connect_timeout: Duration,
}

#[derive(Debug, Args)]
pub(crate) struct ConnectArgs {
    /// The server's URL.
    #[arg(help = "The server: ws://host[:port][/path] or wss://...")]
    pub(crate) url: String,
    #[command(flatten)]
    pub(crate) client: ClientOpts,
    /// Show the pings and pongs received.
    #[arg(short = 'P', long)]
    pub(crate) show_ping_pong: bool,
    /// Input lines are binary messages, written in this encoding; binary messages received are
    /// printed in it too (otherwise in hex).
    #[arg(long, value_name = "ENCODING")]
    pub(crate) binary: Option<Encoding>,
    /// Send this message (or /command), print the replies for --wait, then close and exit
    /// (repeatable: sent in order).
    #[arg(short = 'x', long = "execute", value_name = "MSG")]
    pub(crate) execute: Vec<String>,
    /// With -x: how long to print replies before closing.
    #[arg(short = 'w', long, value_name = "DURATION", default_value = "2s", value_parser = parse_duration)]
    pub(crate) wait: Duration,
    /// Pretty-print messages that are JSON.
    #[arg(long)]
    pub(crate) json: bool,
    /// No colours (they are off anyway when stdout is not a terminal, or NO_COLOR is set).
    #[arg(long)]
    pub(crate) no_color: bool,
}

#[derive(Debug, Args)]
pub(crate) struct ServeArgs {
    /// The address to listen on (port 0: any free port, printed at start).
    #[arg(default_value = "127.0.0.1:9001")]
    pub(crate) addr: SocketAddr,
    /// Send every message received to every connected client (the sender too) instead of
    /// echoing it to its sender; a client that falls 1024 messages or 4 MiB behind is closed
    /// with 1008.
    #[arg(long)]
    pub(crate) broadcast: bool,
    /// Serve wss:// with this certificate chain and private key (PEM files).
    #[arg(long, num_args = 2, value_names = ["CERT", "KEY"])]
    pub(crate) tls: Option<Vec<PathBuf>>,
    /// Print nothing per connection or message.
    #[arg(short = 'q', long)]
    pub(crate) quiet: bool,
    /// Accept browsers from any Origin (by default a browser whose Origin is not the Host it
    /// connects to is refused with 403).
    #[arg(long)]
    pub(crate) any_origin: bool,
    /// Most connections at once (lowered to fit the descriptor limit).
    #[arg(long, value_name = "N")]
    pub(crate) max_connections: Option<usize>,
    /// Most connections at once from one IP address (default: no cap of its own, so that a
    /// local load test can open all of them).
    #[arg(long, value_name = "N")]
    pub(crate) max_connections_per_ip: Option<usize>,
    /// Do not accept permessage-deflate compression.
    #[arg(long)]
    pub(crate) no_compression: bool,
    /// No colours.
    #[arg(long)]
    pub(crate) no_color: bool,
}

/// What `ws bench` runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub(crate) enum Mode {
    /// C connections x S bytes, one message in flight each (or --pipeline N).
    Echo,
    /// Ramp to --vus virtual users; each session sends a message every 1-3 s and leaves after
    /// --session.
    K6,
}

#[derive(Debug, Args)]
pub(crate) struct BenchArgs {
    /// The server: ws://... or wss://... (one you run: this opens many connections).
    pub(crate) url: String,
    #[command(flatten)]
    pub(crate) client: ClientOpts,
    /// The load: echo (the default, or k6 when --vus is given) or k6.
    #[arg(long, value_enum)]
    pub(crate) mode: Option<Mode>,
    /// Echo: connections.
    #[arg(short = 'c', long, default_value_t = 1, value_name = "C")]
    pub(crate) connections: usize,
    /// Message size: bytes, or with k/KiB, m/MiB (default 16 for echo, 64 for k6).
    #[arg(long, value_name = "SIZE", value_parser = parse_size)]
    pub(crate) size: Option<usize>,
    /// Echo: messages in flight per connection (1: send, wait for the echo, send again).
    #[arg(long, default_value_t = 1, value_name = "N")]
    pub(crate) pipeline: usize,
    /// Send text messages (echo; k6 always sends text).
    #[arg(long)]
    pub(crate) text: bool,
    /// Echo: time measured, after --warmup; k6: the whole scenario, ramp included (default 5s
    /// for echo, 30s for k6).
    #[arg(short = 'd', long, value_name = "DURATION", value_parser = parse_duration)]
    pub(crate) duration: Option<Duration>,
    /// Echo: time run before measuring.
    #[arg(long, value_name = "DURATION", default_value = "1s", value_parser = parse_duration)]
    pub(crate) warmup: Duration,
    /// k6: virtual users at the end of the ramp.
    #[arg(long, value_name = "N")]
    pub(crate) vus: Option<usize>,
    /// k6: time over which the users start.
    #[arg(long, value_name = "DURATION", default_value = "10s", value_parser = parse_duration)]
    pub(crate) ramp: Duration,
    /// k6: length of one session (a user then starts another).
    #[arg(long, value_name = "DURATION", default_value = "10s", value_parser = parse_duration)]
    pub(crate) session: Duration,
    /// k6: pause between a session's messages, MIN-MAX, uniformly random.
    #[arg(long, value_name = "MIN-MAX", default_value = "1s-3s", value_parser = parse_interval)]
    pub(crate) interval: (Duration, Duration),
    /// The server's process id: its CPU time and memory (RSS before, at peak, per connection)
    /// go into the report (Linux).
    #[arg(long, value_name = "PID")]
    pub(crate) server_pid: Option<u32>,
    /// Client runtime threads.
    #[arg(long, default_value_t = 1, value_name = "N")]
    pub(crate) threads: usize,
    /// Print the report as JSON (k6's summary-export shape).
    #[arg(long, conflicts_with = "markdown")]
    pub(crate) json: bool,
    /// Print the report as a markdown table.
    #[arg(long)]
    pub(crate) markdown: bool,
    /// No live progress line (there is none anyway when stderr is not a terminal).
    #[arg(long)]
    pub(crate) no_progress: bool,
}

/// `Name: value` into its parts; the name must be an HTTP token.
pub(crate) fn parse_header(s: &str) -> Result<(String, String), String> {
    let (name, value) = s
        .split_once(':')
        .ok_or_else(|| format!("{s:?} is not \"Name: value\""))?;
    let name = name.trim();
    let token = |b: u8| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b);
    if name.is_empty() || !name.bytes().all(token) {
        return Err(format!("{name:?} is not a header name"));
    }
    let value = value.trim();
    if value.bytes().any(|b| b == b'\r' || b == b'\n' || b == 0) {
        return Err("a header value cannot hold CR, LF or NUL".into());
    }
    Ok((name.to_string(), value.to_string()))
}

/// `10` (seconds), `1.5`, `500ms`, `10s`, `2m`, `1m 30s` (humantime's forms).
pub(crate) fn parse_duration(s: &str) -> Result<Duration, String> {
    let s = s.trim();
    if let Ok(secs) = s.parse::<f64>() {
        return Duration::try_from_secs_f64(secs).map_err(|e| format!("{s:?}: {e}"));
    }
    humantime::parse_duration(s).map_err(|e| format!("{s:?}: {e} (try 10s, 500ms, 2m)"))
}

/// `MIN-MAX`, two durations (`1-3`, `1s-3s`, `500ms-2s`), MIN above zero and at most MAX.
pub(crate) fn parse_interval(s: &str) -> Result<(Duration, Duration), String> {
    let (a, b) = s
        .split_once('-')
        .ok_or_else(|| format!("{s:?} is not MIN-MAX"))?;
    let (a, b) = (parse_duration(a)?, parse_duration(b)?);
    if a.is_zero() || a > b {
        return Err(format!("{s:?}: MIN must be above zero and at most MAX"));
    }
    Ok((a, b))
}

/// `64`, `1k` / `1KiB` / `1kb` (1024), `2m` / `2MiB` (2 MiB); at most 64 MiB.
pub(crate) fn parse_size(s: &str) -> Result<usize, String> {
    let t = s.trim().to_ascii_lowercase();
    let digits = t.trim_end_matches(|c: char| c.is_ascii_alphabetic());
    let unit = &t[digits.len()..];
    let n: usize = digits
        .trim()
        .parse()
        .map_err(|_| format!("{s:?} is not a size (64, 1k, 16KiB, 1m)"))?;
    let mult = match unit {
        "" | "b" => 1,
        "k" | "kb" | "kib" => 1 << 10,
        "m" | "mb" | "mib" => 1 << 20,
        _ => return Err(format!("{s:?}: unknown unit {unit:?}")),
    };
    let v = n
        .checked_mul(mult)
        .filter(|v| *v <= 64 << 20)
        .ok_or_else(|| format!("{s:?}: at most 64 MiB"))?;
    Ok(v)
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn the_command_line_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn headers() {
        assert_eq!(
            parse_header("Authorization: Bearer a:b").unwrap(),
            ("Authorization".into(), "Bearer a:b".into())
        );
        assert_eq!(
            parse_header("X-Empty:").unwrap(),
            ("X-Empty".into(), "".into())
        );
        for bad in ["no colon", ": v", "Bad Name: v", "Ümlaut: v"] {
            assert!(parse_header(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn durations() {
        assert_eq!(parse_duration("10").unwrap(), Duration::from_secs(10));
        assert_eq!(parse_duration("1.5").unwrap(), Duration::from_millis(1500));
        assert_eq!(parse_duration("500ms").unwrap(), Duration::from_millis(500));
        assert_eq!(parse_duration("2m").unwrap(), Duration::from_secs(120));
        assert!(parse_duration("-1").is_err());
        assert!(parse_duration("soon").is_err());
        assert_eq!(
            parse_interval("1-3").unwrap(),
            (Duration::from_secs(1), Duration::from_secs(3))
        );
        assert_eq!(
            parse_interval("500ms-2s").unwrap(),
            (Duration::from_millis(500), Duration::from_secs(2))
        );
        for bad in ["3-1", "0-1", "1", "a-b"] {
            assert!(parse_interval(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn sizes() {
        assert_eq!(parse_size("64").unwrap(), 64);
        assert_eq!(parse_size("1k").unwrap(), 1024);
        assert_eq!(parse_size("16KiB").unwrap(), 16 << 10);
        assert_eq!(parse_size("64m").unwrap(), 64 << 20);
        // The limit and one past it.
        assert!(parse_size("65m").is_err());
        assert!(parse_size("67108865").is_err());
        assert_eq!(parse_size("67108864").unwrap(), 64 << 20);
        for bad in ["", "k", "1q", "-1"] {
            assert!(parse_size(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn connect_options_parse() {
        let cli = Cli::try_parse_from([
            "ws",
            "connect",
            "-H",
            "A: 1",
            "-H",
            "B: 2",
            "-s",
            "chat",
            "-P",
            "--binary",
            "hex",
            "-x",
            "hi",
            "-x",
            "/ping",
            "-w",
            "500ms",
            "--json",
            "--proxy",
            "http://127.0.0.1:8888",
            "wss://localhost:9443/x",
        ])
        .unwrap();
        let Command::Connect(a) = cli.command else {
            panic!("not connect")
        };
        assert_eq!(a.client.headers.len(), 2);
        assert_eq!(a.client.subprotocols, ["chat"]);
        assert!(a.show_ping_pong && a.json);
        assert_eq!(a.binary, Some(Encoding::Hex));
        assert_eq!(a.execute, ["hi", "/ping"]);
        assert_eq!(a.wait, Duration::from_millis(500));
        assert_eq!(a.url, "wss://localhost:9443/x");
    }

    #[test]
    fn serve_takes_a_certificate_and_a_key() {
        let cli =
            Cli::try_parse_from(["ws", "serve", "127.0.0.1:0", "--tls", "c.pem", "k.pem"]).unwrap();
        let Command::Serve(a) = cli.command else {
            panic!("not serve")
        };
        assert_eq!(a.tls.unwrap().len(), 2);
        assert!(Cli::try_parse_from(["ws", "serve", "--tls", "c.pem"]).is_err());
        assert!(Cli::try_parse_from(["ws", "serve", "not-an-address"]).is_err());
    }

    #[test]
    fn bench_options_parse() {
        let cli = Cli::try_parse_from([
            "ws",
            "bench",
            "ws://127.0.0.1:1/",
            "--vus",
            "1000",
            "--ramp",
            "10s",
            "-d",
            "20s",
            "--session",
            "5s",
            "--json",
        ])
        .unwrap();
        let Command::Bench(a) = cli.command else {
            panic!("not bench")
        };
        assert_eq!(a.vus, Some(1000));
        assert_eq!(a.duration, Some(Duration::from_secs(20)));
        assert!(a.json);
        assert!(Cli::try_parse_from(["ws", "bench", "ws://x/", "--json", "--markdown"]).is_err());
    }
}
