//! The testees: an echo server and an echo client built on `ws-tokio`, as kosoku drives them.

use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpListener;
use ws_tokio::{Config, Message, WebSocket};

/// Settings for the testees: limits far above what the suite sends (its largest message is
/// 16 MiB, its longest fragment run 65 536 frames) and no keepalive pings, which the suite
/// would count as unexpected traffic. With `deflate`, permessage-deflate keeps `ws-tokio`'s
/// default settings (offered by the client, accepted by the server); without, it is disabled.
pub fn testee_config(deflate: bool) -> Config {
    let limits = ws_tokio::Limits::default()
        .with_max_frame_size(64 << 20)
        .with_max_message_size(64 << 20)
        .with_max_fragments(1_000_000);
    let config = Config::default()
        .with_limits(limits)
        .with_ping_interval(None);
    if deflate {
        config
    } else {
        config.with_compression(None)
    }
}

/// Echoes every text and binary message until the connection ends; returns how many
/// messages were echoed, or the error that ended the connection.
pub async fn echo<S>(ws: &mut WebSocket<S>) -> Result<u64, ws_tokio::Error>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let mut echoed = 0;
    while let Some(msg) = ws.recv().await {
        match msg? {
            m @ (Message::Text(_) | Message::Binary(_)) => {
                ws.send(m).await?;
                echoed += 1;
            }
            _ => continue,
        }
    }
    Ok(echoed)
}

/// Echoes like [`echo`] through the halves of [`WebSocket::split`]: the read half in this task,
/// the write half in a task of its own. Each message is handed over and written before the
/// next one is read, so the order of echoes and of the testee's own close frame is the same
/// as without split (the suite judges it).
pub async fn echo_split<S>(ws: WebSocket<S>) -> Result<u64, ws_tokio::Error>
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    type Echo = (Message, tokio::sync::oneshot::Sender<()>);
    let (mut tx, mut rx) = ws.split();
    let (queue, mut queued) = tokio::sync::mpsc::channel::<Echo>(1);
    let writer = tokio::spawn(async move {
        while let Some((m, written)) = queued.recv().await {
            let r = tx.send(m).await;
            let _ = written.send(());
            r?;
        }
        Ok::<_, ws_tokio::Error>(())
    });
    let mut echoed = 0;
    let mut result = Ok(());
    while let Some(msg) = rx.recv().await {
        match msg {
            Ok(m @ (Message::Text(_) | Message::Binary(_))) => {
                let (written, done) = tokio::sync::oneshot::channel();
                if queue.send((m, written)).await.is_err() || done.await.is_err() {
                    break;
                }
                echoed += 1;
            }
            Ok(_) => {}
            Err(e) => {
                result = Err(e);
                break;
            }
        }
    }
    drop(queue);
    let _ = writer.await;
    result.map(|()| echoed)
}

/// Accepts connections on `listener` forever, echoing on each one in its own task (through
/// split halves with `split`).
pub async fn serve(listener: TcpListener, config: Config, split: bool) -> std::io::Result<()> {
    loop {
        let stream = match listener.accept().await {
            Ok((stream, _)) => stream,
            Err(e) if is_transient(&e) => {
                tokio::time::sleep(Duration::from_millis(10)).await;
                continue;
            }
            Err(e) => return Err(e),
        };
        tokio::spawn(async move {
            let _ = stream.set_nodelay(true);
            if let Ok(mut ws) = ws_tokio::accept_with_config(stream, config).await {
                if split {
                    let _ = echo_split(ws).await;
                } else {
                    let _ = echo(&mut ws).await;
                }
            }
        });
    }
}

/// Accept errors that concern one connection or a momentary shortage, not the listener.
fn is_transient(e: &std::io::Error) -> bool {
    use std::io::ErrorKind::*;
    matches!(
        e.kind(),
        ConnectionAborted | ConnectionReset | Interrupted | WouldBlock
    ) || e.raw_os_error().is_some_and(|c| c == 23 || c == 24)
}

/// Tuning of [`run_client`].
#[derive(Debug, Clone, Copy)]
pub struct ClientOptions {
    /// Connection settings for the cases.
    pub config: Config,
    /// How long to retry the first connection while the fuzzing server starts.
    pub startup_timeout: Duration,
    /// Longest time one case may take before the client gives up on it.
    pub case_timeout: Duration,
    /// When set, no case starts after this instant and a running one is abandoned at it; the
    /// reports are then written for the cases run so far.
    pub deadline: Option<tokio::time::Instant>,
}

impl Default for ClientOptions {
    fn default() -> Self {
        ClientOptions {
            config: testee_config(false),
            startup_timeout: Duration::from_secs(20),
            case_timeout: Duration::from_secs(60),
            deadline: None,
        }
    }
}

/// What [`run_client`] did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ClientSummary {
    /// Cases announced by `/getCaseCount`.
    pub case_count: u32,
    /// Cases whose connection could not be opened.
    pub connect_errors: u32,
    /// Cases that ended with an error (often the expected outcome of a fuzzing case).
    pub case_errors: u32,
    /// Cases abandoned after [`ClientOptions::case_timeout`] or at the deadline.
    pub timeouts: u32,
    /// Cases not started because the deadline had passed.
    pub skipped: u32,
}

/// Percent-encodes `s` for a URL query value.
pub fn query_encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// Reads `/getCaseCount`, retrying the connection for up to `startup_timeout`.
pub async fn case_count(base: &str, startup_timeout: Duration) -> Result<u32, String> {
    let url = format!("{}/getCaseCount", base.trim_end_matches('/'));
    let deadline = tokio::time::Instant::now() + startup_timeout;
    let mut ws = loop {
        match ws_tokio::connect(&url).await {
            Ok(ws) => break ws,
            Err(e) if tokio::time::Instant::now() >= deadline => {
                return Err(format!("cannot connect to {url}: {e}"));
            }
            Err(_) => tokio::time::sleep(Duration::from_millis(100)).await,
        }
    };
    let mut count = None;
    while let Some(msg) = ws.recv().await {
        match msg {
            Ok(Message::Text(t)) if count.is_none() => {
                count = Some(
                    t.trim()
                        .parse()
                        .map_err(|_| format!("bad case count {t:?}"))?,
                );
            }
            Ok(_) => {}
            Err(_) => break,
        }
    }
    count.ok_or_else(|| format!("{url} sent no case count"))
}

/// Runs case number `case` (1-based): echoes until the fuzzing server closes.
pub async fn run_case(base: &str, case: u32, agent: &str, config: Config) -> Result<u64, String> {
    let url = format!(
        "{}/runCase?case={case}&agent={}",
        base.trim_end_matches('/'),
        query_encode(agent)
    );
    let mut ws = ws_tokio::connect_with_config(&url, config)
        .await
        .map_err(|e| format!("connect: {e}"))?;
    echo(&mut ws).await.map_err(|e| e.to_string())
}

/// Asks the fuzzing server to write its reports for `agent` and waits for it to close.
pub async fn update_reports(base: &str, agent: &str) -> Result<(), String> {
    let url = format!(
        "{}/updateReports?agent={}",
        base.trim_end_matches('/'),
        query_encode(agent)
    );
    let mut ws = ws_tokio::connect(&url)
        .await
        .map_err(|e| format!("cannot connect to {url}: {e}"))?;
    while let Some(msg) = ws.recv().await {
        if msg.is_err() {
            break;
        }
    }
    Ok(())
}

/// Runs every case the fuzzing server at `base` (`ws://host:port`) announces, one after the
/// other (up to the deadline, if any), then has it write the reports.
pub async fn run_client(
    base: &str,
    agent: &str,
    options: ClientOptions,
) -> Result<ClientSummary, String> {
    let mut summary = ClientSummary {
        case_count: case_count(base, options.startup_timeout).await?,
        ..ClientSummary::default()
    };
    for case in 1..=summary.case_count {
        let mut limit = options.case_timeout;
        if let Some(deadline) = options.deadline {
            let left = deadline.saturating_duration_since(tokio::time::Instant::now());
            if left.is_zero() {
                summary.skipped = summary.case_count - case + 1;
                break;
            }
            limit = limit.min(left);
        }
        let run = run_case(base, case, agent, options.config);
        match tokio::time::timeout(limit, run).await {
            Ok(Ok(_)) => {}
            Ok(Err(e)) if e.starts_with("connect:") => summary.connect_errors += 1,
            Ok(Err(_)) => summary.case_errors += 1,
            Err(_) => summary.timeouts += 1,
        }
    }
    update_reports(base, agent).await?;
    Ok(summary)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn encodes_agent_names() {
        assert_eq!(query_encode("ws-tokio"), "ws-tokio");
        assert_eq!(query_encode("ws tokio/0.1&x"), "ws%20tokio%2F0.1%26x");
    }
}
