//! The reconnecting client.
//!
//! On tokio's paused clock, with connections over in-memory pipes to `ws_tokio` servers (or
//! attempts that fail at once): the backoff schedule against `Backoff` with the same seed,
//! full and equal jitter bounds, the cap, the attempt limit, close codes that stop it, errors
//! that are not retried, the hook, the queue at its limits and past them, the order of events,
//! closing.
//!
//! Against a real server process on loopback (this test binary, run as an echo server in a
//! child process) that is killed with SIGKILL and started again on the same port: the client
//! reconnects, runs the hook again, and flushes its queue in order, never holding more than
//! its limit.

mod common;

use std::collections::VecDeque;
use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::{bounded, quiet};
use futures_util::{SinkExt, StreamExt};
use tokio::io::DuplexStream;
use tokio::time::Instant;
use ws_tokio::reconnect::{
    Backoff, ClientState, ConnectFuture, Event, Jitter, QueueFull, ReconnectConfig,
    ReconnectingClient,
};
use ws_tokio::{ClientRequest, CloseCode, CloseFrame, Error, Message, Reject};

const MS: Duration = Duration::from_millis(1);

// ---------------------------------------------------------------------------------------------
// Scripted connections over duplex pipes.

/// What the server does on one connection.
#[derive(Clone)]
enum Server {
    /// Nothing listens: the attempt fails at once (connection refused).
    Refuse,
    /// Rejects the handshake with this HTTP status.
    Reject(u16),
    /// Closes right after the handshake with this code.
    CloseWith(u16),
    /// Echoes, and records what it receives, until `close_after` messages (then closes with
    /// 1001, going away) or the end.
    Echo {
        received: Arc<Mutex<Vec<Message>>>,
        close_after: Option<usize>,
    },
}

/// A connector that plays `plan` (then refuses) and records when each attempt began.
#[derive(Clone, Default)]
struct Script {
    plan: Arc<Mutex<VecDeque<Server>>>,
    attempts: Arc<Mutex<Vec<Instant>>>,
}

impl Script {
    fn new(plan: impl IntoIterator<Item = Server>) -> Script {
        Script {
            plan: Arc::new(Mutex::new(plan.into_iter().collect())),
            attempts: Arc::default(),
        }
    }

    fn attempts(&self) -> Vec<Instant> {
        self.attempts.lock().unwrap().clone()
    }

    fn connector(&self) -> impl FnMut() -> ConnectFuture<DuplexStream> + Send + 'static {
        let script = self.clone();
        move || {
            script.attempts.lock().unwrap().push(Instant::now());
            let step = script
                .plan
                .lock()
                .unwrap()
                .pop_front()
                .unwrap_or(Server::Refuse);
            Box::pin(async move {
                if let Server::Refuse = step {
                    return Err(Error::Io(std::io::ErrorKind::ConnectionRefused.into()));
                }
                let (server_end, client_end) = tokio::io::duplex(1 << 16);
                tokio::spawn(serve(server_end, step));
                ws_tokio::client(
                    client_end,
                    ClientRequest::new("localhost", "/").config(quiet()),
                )
                .await
            })
        }
    }

    fn client(&self, config: ReconnectConfig) -> ReconnectingClient<DuplexStream> {
        ReconnectingClient::with_connector(self.connector(), config).unwrap()
    }
}

async fn serve(io: DuplexStream, step: Server) {
    let status = match step {
        Server::Reject(s) => Some(s),
        _ => None,
    };
    let accepted = ws_tokio::accept_with(io, quiet(), |_| match status {
        Some(s) => Err(Reject::status(s)),
        None => Ok(ws_tokio::AcceptResponse::new()),
    })
    .await;
    let Ok(mut ws) = accepted else { return };
    match step {
        Server::CloseWith(code) => {
            let _ = ws
                .close(Some(CloseFrame::new(CloseCode(code), "bye")))
                .await;
        }
        Server::Echo {
            received,
            close_after,
        } => {
            while let Some(Ok(m)) = ws.recv().await {
                if !matches!(m, Message::Text(_) | Message::Binary(_)) {
                    continue;
                }
                let n = {
                    let mut r = received.lock().unwrap();
                    r.push(m.clone());
                    r.len()
                };
                if ws.send(m).await.is_err() {
                    return;
                }
                if close_after == Some(n) {
                    let frame = CloseFrame::new(CloseCode::GOING_AWAY, "restart");
                    let _ = ws.close(Some(frame)).await;
                    return;
                }
            }
        }
        Server::Refuse | Server::Reject(_) => {}
    }
}

fn config() -> ReconnectConfig {
    ReconnectConfig::default()
        .with_delays(100 * MS, 1000 * MS)
        .with_seed(Some(42))
}

/// The next event, bounded on the (paused) clock by a minute.
async fn next(client: &mut ReconnectingClient<DuplexStream>) -> Option<Event> {
    match tokio::time::timeout(Duration::from_secs(60), client.next()).await {
        Ok(e) => e,
        Err(_) => panic!("no event within a minute"),
    }
}

/// Every event until the stream ends (at most `max`).
async fn all_events(client: &mut ReconnectingClient<DuplexStream>, max: usize) -> Vec<Event> {
    let mut events = Vec::new();
    while let Some(e) = next(client).await {
        events.push(e);
        assert!(events.len() <= max, "more than {max} events: {events:?}");
    }
    events
}

/// The `retry_in` of every `Closed` event.
fn waits(events: &[Event]) -> Vec<Option<Duration>> {
    events
        .iter()
        .filter_map(|e| match e {
            Event::Closed { retry_in, .. } => Some(*retry_in),
            _ => None,
        })
        .collect()
}

fn text(m: &Message) -> &str {
    match m {
        Message::Text(t) => t.as_str(),
        other => panic!("not text: {other:?}"),
    }
}

// ---------------------------------------------------------------------------------------------
// The schedule.

#[tokio::test(start_paused = true)]
async fn the_schedule_is_the_seeded_backoffs_with_full_jitter_under_the_cap() {
    let script = Script::new([]);
    let mut client = script.client(config().with_max_attempts(Some(8)));
    let events = all_events(&mut client, 100).await;

    // Connecting 1, Closed, Connecting 2, Closed, ... Connecting 8, Closed (for good).
    assert_eq!(events.len(), 16, "{events:?}");
    for (i, pair) in events.chunks(2).enumerate() {
        assert!(
            matches!(pair[0], Event::Connecting { attempt } if attempt as usize == i + 1),
            "{:?}",
            pair[0]
        );
        assert!(
            matches!(&pair[1], Event::Closed { code, error: Some(Error::Io(_)), .. } if *code == CloseCode::ABNORMAL),
            "{:?}",
            pair[1]
        );
    }
    // The waits are Backoff's draws with the same seed, each under its ceiling, and the
    // attempts began exactly that far apart.
    let mut reference = Backoff::new(100 * MS, 1000 * MS, Jitter::Full, 42);
    let want: Vec<Option<Duration>> = (0..7)
        .map(|n| Some(reference.delay(n)))
        .chain([None])
        .collect();
    assert_eq!(waits(&events), want);
    let attempts = script.attempts();
    assert_eq!(attempts.len(), 8);
    for n in 0..7 {
        let gap = attempts[n + 1] - attempts[n];
        assert_eq!(Some(gap), want[n], "wait {n}");
        assert!(gap <= reference.ceiling(n as u32), "wait {n}: {gap:?}");
    }
    // The ceilings: 100, 200, 400, 800, then the cap.
    let ceilings: Vec<Duration> = (0..7).map(|n| reference.ceiling(n)).collect();
    assert_eq!(
        ceilings,
        [100, 200, 400, 800, 1000, 1000, 1000].map(|m| m * MS)
    );
    assert_eq!(client.state(), ClientState::Closed);
    assert!(client.next().await.is_none(), "the stream stays ended");
}

#[tokio::test(start_paused = true)]
async fn jitter_bounds_over_many_attempts() {
    for (jitter, floor) in [(Jitter::Full, 0.0), (Jitter::Equal, 0.5)] {
        let script = Script::new([]);
        let mut client = script.client(
            config()
                .with_jitter(jitter)
                .with_seed(Some(7))
                .with_max_attempts(Some(200)),
        );
        let events = all_events(&mut client, 1000).await;
        let waits: Vec<Duration> = waits(&events).into_iter().flatten().collect();
        assert_eq!(waits.len(), 199);
        let b = Backoff::new(100 * MS, 1000 * MS, jitter, 0);
        let mut low_half = 0;
        for (n, w) in waits.iter().enumerate() {
            let ceiling = b.ceiling(n as u32);
            assert!(
                *w >= ceiling.mul_f64(floor) && *w <= ceiling,
                "{jitter:?} wait {n}: {w:?} outside its bounds under {ceiling:?}"
            );
            if *w < ceiling.mul_f64((1.0 + floor) / 2.0) {
                low_half += 1;
            }
        }
        // Drawn across the window, not stuck at one end of it.
        assert!(
            (50..150).contains(&low_half),
            "{jitter:?}: {low_half} of 199 low"
        );
        // The attempts really were that far apart.
        let attempts = script.attempts();
        for (n, w) in waits.iter().enumerate() {
            assert_eq!(attempts[n + 1] - attempts[n], *w);
        }
    }
}

#[tokio::test(start_paused = true)]
async fn without_jitter_the_waits_double_to_the_cap() {
    let script = Script::new([]);
    let mut client = script.client(
        ReconnectConfig::default()
            .with_delays(Duration::from_secs(1), Duration::from_secs(5))
            .with_jitter(Jitter::None)
            .with_max_attempts(Some(7)),
    );
    let events = all_events(&mut client, 100).await;
    let s = Duration::from_secs;
    assert_eq!(
        waits(&events),
        [1, 2, 4, 5, 5, 5]
            .map(|n| Some(s(n)))
            .into_iter()
            .chain([None])
            .collect::<Vec<_>>()
    );
    let attempts = script.attempts();
    assert_eq!(attempts[6] - attempts[0], s(1 + 2 + 4 + 5 + 5 + 5));
}

#[tokio::test(start_paused = true)]
async fn the_attempt_limit_at_one_and_none() {
    // One attempt: no wait at all.
    let script = Script::new([]);
    let mut client = script.client(config().with_max_attempts(Some(1)));
    let events = all_events(&mut client, 10).await;
    assert_eq!(events.len(), 2, "{events:?}");
    assert_eq!(waits(&events), [None]);

    // No limit: it is still trying after 300 attempts, until closed.
    let script = Script::new([]);
    let mut client = script.client(config().with_max_attempts(None));
    let mut closed = 0;
    while closed < 300 {
        if let Some(Event::Closed { retry_in, .. }) = next(&mut client).await {
            assert!(retry_in.is_some());
            closed += 1;
        }
    }
    assert_eq!(client.state(), ClientState::Waiting);
    client.close(None).await.unwrap();
    let rest = all_events(&mut client, 10).await;
    assert!(
        matches!(rest.as_slice(), [Event::Closed { code, retry_in: None, error: None, .. }] if *code == CloseCode::NORMAL),
        "{rest:?}"
    );
    assert_eq!(script.attempts().len(), 300);
}

#[tokio::test(start_paused = true)]
async fn the_attempt_count_starts_again_after_an_open_connection() {
    let received = Arc::new(Mutex::new(Vec::new()));
    let echo = Server::Echo {
        received: received.clone(),
        close_after: Some(1),
    };
    // Two refusals, a connection that closes (1001) after one message, two refusals, then the
    // limit of 3 in a row is not reached: the next connection is open.
    let script = Script::new([
        Server::Refuse,
        Server::Refuse,
        echo.clone(),
        Server::Refuse,
        Server::Refuse,
        echo,
    ]);
    let mut client = script.client(config().with_max_attempts(Some(3)));
    let mut opened = 0;
    let mut attempts_seen = Vec::new();
    while opened < 2 {
        match next(&mut client).await.expect("an event") {
            Event::Connecting { attempt } => attempts_seen.push(attempt),
            Event::Open { .. } => {
                opened += 1;
                client.send(Message::text("one")).await.unwrap();
            }
            _ => {}
        }
    }
    assert_eq!(attempts_seen, [1, 2, 3, 1, 2, 3]);
    // After an open connection the first wait is again under the first ceiling.
    let attempts = script.attempts();
    assert!(attempts[3] - attempts[2] <= 100 * MS);
}

// ---------------------------------------------------------------------------------------------
// When it stops.

#[tokio::test(start_paused = true)]
async fn close_codes_that_stop_it() {
    for (code, retried) in [
        (1008, false),
        (4000, false),
        (4001, false),
        (4999, false),
        (3999, true),
        (1000, true),
        (1001, true),
        (1011, true),
        (1012, true),
    ] {
        let script = Script::new([Server::CloseWith(code)]);
        let mut client = script.client(config().with_max_attempts(Some(2)));
        let events = all_events(&mut client, 10).await;
        let Some(Event::Closed {
            code: got,
            reason,
            error,
            retry_in,
            ..
        }) = events.get(2)
        else {
            panic!("{code}: {events:?}")
        };
        assert!(matches!(events[1], Event::Open { .. }), "{events:?}");
        assert_eq!((got.0, reason.as_str()), (code, "bye"));
        assert!(error.is_none(), "{error:?}");
        assert_eq!(retry_in.is_some(), retried, "close code {code}");
        // Retried: the open connection reset the count, so two more attempts (refused).
        assert_eq!(
            script.attempts().len(),
            if retried { 3 } else { 1 },
            "{code}"
        );
    }

    // Configured otherwise: 4100-4199 only.
    for (code, retried) in [(4150, false), (4001, true), (1008, true)] {
        let script = Script::new([Server::CloseWith(code)]);
        let mut client = script.client(
            config()
                .with_max_attempts(Some(2))
                .with_no_retry_codes([4100..=4199]),
        );
        let events = all_events(&mut client, 10).await;
        assert_eq!(waits(&events)[0].is_some(), retried, "{code}: {events:?}");
    }
}

#[tokio::test(start_paused = true)]
async fn errors_that_are_not_retried() {
    for (status, retried) in [
        (403, false),
        (404, false),
        (401, false),
        (503, true),
        (429, true),
    ] {
        let script = Script::new([Server::Reject(status)]);
        let mut client = script.client(config().with_max_attempts(Some(2)));
        let events = all_events(&mut client, 10).await;
        assert!(
            matches!(&events[1], Event::Closed { error: Some(Error::Rejected { status: s }), .. } if *s == status),
            "{events:?}"
        );
        assert_eq!(waits(&events)[0].is_some(), retried, "HTTP {status}");
    }
    // A rule of one's own: retry nothing.
    let script = Script::new([]);
    let mut client = script.client(config().with_retry_if(|_| false));
    let events = all_events(&mut client, 10).await;
    assert_eq!(waits(&events), [None]);
}

#[tokio::test(start_paused = true)]
async fn closing_ends_it_in_every_state() {
    // While open: the close handshake with our code, then the end.
    let received = Arc::new(Mutex::new(Vec::new()));
    let script = Script::new([Server::Echo {
        received,
        close_after: None,
    }]);
    let mut client = script.client(config());
    assert!(matches!(
        next(&mut client).await,
        Some(Event::Connecting { attempt: 1 })
    ));
    assert!(matches!(next(&mut client).await, Some(Event::Open { .. })));
    assert_eq!(client.state(), ClientState::Open);
    client
        .close(Some(CloseFrame::new(CloseCode(4321), "done")))
        .await
        .unwrap();
    let rest = all_events(&mut client, 10).await;
    assert!(
        matches!(rest.as_slice(), [Event::Closed { code, retry_in: None, .. }] if code.0 == 4321),
        "{rest:?}"
    );
    let e = client.send(Message::text("late")).await.unwrap_err();
    assert!(matches!(e, Error::Closed), "{e:?}");

    // While waiting: the queue is discarded, the stream ends.
    let script = Script::new([]);
    let mut client = script.client(config());
    assert!(matches!(
        next(&mut client).await,
        Some(Event::Connecting { .. })
    ));
    assert!(matches!(
        next(&mut client).await,
        Some(Event::Closed {
            retry_in: Some(_),
            ..
        })
    ));
    client.send(Message::text("queued")).await.unwrap();
    assert_eq!(client.queued(), 1);
    // The Sink's close is the client's.
    SinkExt::close(&mut client).await.unwrap();
    assert_eq!(client.queued(), 0);
    let rest = all_events(&mut client, 10).await;
    assert!(
        matches!(rest.as_slice(), [Event::Closed { retry_in: None, .. }]),
        "{rest:?}"
    );
    assert_eq!(script.attempts().len(), 1);
}

// ---------------------------------------------------------------------------------------------
// The hook and the queue.

#[tokio::test(start_paused = true)]
async fn the_hook_runs_on_every_connect_and_the_queue_follows_it_in_order() {
    let first = Arc::new(Mutex::new(Vec::new()));
    let second = Arc::new(Mutex::new(Vec::new()));
    let script = Script::new([
        Server::Echo {
            received: first.clone(),
            close_after: Some(2),
        },
        Server::Refuse,
        Server::Echo {
            received: second.clone(),
            close_after: None,
        },
    ]);
    let runs = Arc::new(AtomicUsize::new(0));
    let hook_runs = runs.clone();
    let mut client = script
        .client(config().with_queue(3, 1 << 20, QueueFull::Error))
        .on_connect(move |ws, response| {
            let n = hook_runs.fetch_add(1, Ordering::SeqCst) + 1;
            assert_eq!(response.status, 101);
            Box::pin(async move { ws.send(Message::text(format!("subscribe {n}"))).await })
        });

    // Sent before the first connection: queued, delivered after the hook.
    client.send(Message::text("early")).await.unwrap();
    assert_eq!((client.queued(), client.queued_bytes()), (1, 5));
    assert!(matches!(
        next(&mut client).await,
        Some(Event::Connecting { attempt: 1 })
    ));
    assert!(matches!(next(&mut client).await, Some(Event::Open { .. })));
    // The server echoes the hook's message and the queued one, then closes (after 2).
    let mut echoes = Vec::new();
    let closed = loop {
        match next(&mut client).await.expect("an event") {
            Event::Message(m) => echoes.push(text(&m).to_string()),
            e @ Event::Closed { .. } => break e,
            e => panic!("{e:?}"),
        }
    };
    assert_eq!(echoes, ["subscribe 1", "early"]);
    assert!(
        matches!(&closed, Event::Closed { code, retry_in: Some(_), .. } if *code == CloseCode::GOING_AWAY),
        "{closed:?}"
    );

    // Disconnected: three fit, a fourth is refused (QueueFull::Error).
    for m in ["a", "b", "c"] {
        client.send(Message::text(m)).await.unwrap();
    }
    let e = client.send(Message::text("d")).await.unwrap_err();
    assert!(
        matches!(
            e,
            Error::QueueFull {
                messages: 3,
                bytes: 3
            }
        ),
        "{e:?}"
    );
    assert_eq!(client.queued(), 3);

    // A refused attempt, then the second connection: the hook again, then a, b, c in order.
    let mut echoes = Vec::new();
    while echoes.len() < 4 {
        match next(&mut client).await.expect("an event") {
            Event::Message(m) => echoes.push(text(&m).to_string()),
            Event::Open { .. } => assert_eq!(client.queued(), 3, "the queue waits for the hook"),
            _ => {}
        }
    }
    assert_eq!(echoes, ["subscribe 2", "a", "b", "c"]);
    assert_eq!(client.queued(), 0);
    assert_eq!(runs.load(Ordering::SeqCst), 2);
    // Open now: a message goes straight out.
    client.send(Message::text("live")).await.unwrap();
    let Some(Event::Message(m)) = next(&mut client).await else {
        panic!()
    };
    assert_eq!(text(&m), "live");
    let got: Vec<String> = second
        .lock()
        .unwrap()
        .iter()
        .map(|m| text(m).to_string())
        .collect();
    assert_eq!(got, ["subscribe 2", "a", "b", "c", "live"]);
    assert_eq!(first.lock().unwrap().len(), 2);
}

#[tokio::test(start_paused = true)]
async fn a_hook_that_fails_or_hangs_is_a_failed_attempt() {
    let received = Arc::new(Mutex::new(Vec::new()));
    let echo = || Server::Echo {
        received: received.clone(),
        close_after: None,
    };
    let script = Script::new([echo(), echo(), echo()]);
    let calls = Arc::new(AtomicUsize::new(0));
    let c = calls.clone();
    let mut client = script
        .client(config().with_hook_timeout(Duration::from_secs(2)))
        .on_connect(move |_ws, _| {
            let n = c.fetch_add(1, Ordering::SeqCst);
            Box::pin(async move {
                match n {
                    0 => Err(Error::Closed),
                    1 => {
                        tokio::time::sleep(Duration::from_secs(3600)).await;
                        Ok(())
                    }
                    // Just inside its timeout: fine.
                    _ => {
                        tokio::time::sleep(Duration::from_millis(1999)).await;
                        Ok(())
                    }
                }
            })
        });
    let start = Instant::now();
    let mut events = Vec::new();
    loop {
        let e = next(&mut client).await.expect("an event");
        let open = matches!(e, Event::Open { .. });
        events.push(e);
        if open {
            break;
        }
    }
    assert!(
        matches!(
            &events[1],
            Event::Closed {
                error: Some(Error::Closed),
                retry_in: Some(_),
                ..
            }
        ),
        "{events:?}"
    );
    assert!(
        matches!(
            &events[3],
            Event::Closed {
                error: Some(Error::Timeout(_)),
                retry_in: Some(_),
                ..
            }
        ),
        "{events:?}"
    );
    assert!(
        matches!(events[4], Event::Connecting { attempt: 3 }),
        "{events:?}"
    );
    let attempts = script.attempts();
    // The hung hook was given up after exactly its timeout, and the waits were drawn as usual.
    let w: Vec<Duration> = waits(&events).into_iter().flatten().collect();
    assert_eq!(attempts[2] - attempts[1], Duration::from_secs(2) + w[1]);
    assert_eq!(
        start.elapsed(),
        w[0] + Duration::from_secs(2) + w[1] + Duration::from_millis(1999)
    );
    assert_eq!(calls.load(Ordering::SeqCst), 3);
}

#[tokio::test(start_paused = true)]
async fn the_queue_at_its_limits_and_past_them() {
    // By count, dropping the oldest: at the limit all stay, past it the oldest go.
    let script = Script::new([]);
    let mut client = script.client(config().with_queue(4, 1 << 20, QueueFull::DropOldest));
    for i in 0..4 {
        client.send(Message::text(format!("m{i}"))).await.unwrap();
    }
    assert_eq!((client.queued(), client.dropped()), (4, 0));
    for i in 4..10 {
        client.send(Message::text(format!("m{i}"))).await.unwrap();
        assert_eq!(client.queued(), 4);
    }
    assert_eq!(client.dropped(), 6);

    // By bytes, dropping the newest: 10 bytes fit exactly, one more does not.
    let mut client = Script::new([]).client(config().with_queue(100, 10, QueueFull::DropNewest));
    client.send(Message::binary(vec![1u8; 4])).await.unwrap();
    client.send(Message::binary(vec![2u8; 6])).await.unwrap();
    assert_eq!(
        (client.queued(), client.queued_bytes(), client.dropped()),
        (2, 10, 0)
    );
    client.send(Message::binary(vec![3u8; 1])).await.unwrap();
    assert_eq!(
        (client.queued(), client.queued_bytes(), client.dropped()),
        (2, 10, 1)
    );

    // By bytes, dropping the oldest: old ones go until the new one fits; one larger than the
    // whole limit is dropped itself.
    let mut client = Script::new([]).client(config().with_queue(100, 10, QueueFull::DropOldest));
    for len in [3, 3, 3] {
        client.send(Message::binary(vec![0u8; len])).await.unwrap();
    }
    client.send(Message::binary(vec![0u8; 7])).await.unwrap();
    assert_eq!(
        (client.queued(), client.queued_bytes(), client.dropped()),
        (2, 10, 2)
    );
    client.send(Message::binary(vec![0u8; 11])).await.unwrap();
    assert_eq!(
        (client.queued(), client.queued_bytes(), client.dropped()),
        (2, 10, 3)
    );

    // By bytes, refusing: at the limit fine, past it an error.
    let mut client = Script::new([]).client(config().with_queue(100, 10, QueueFull::Error));
    client.send(Message::text("0123456789")).await.unwrap();
    let e = client.send(Message::text("x")).await.unwrap_err();
    assert!(
        matches!(
            e,
            Error::QueueFull {
                messages: 1,
                bytes: 10
            }
        ),
        "{e:?}"
    );
    assert_eq!(
        e.to_string(),
        "disconnected, and the queue for the next connection is full (1 messages, 10 bytes)"
    );

    // A queue of 0 keeps nothing.
    let mut client = Script::new([]).client(config().with_queue(0, 1 << 20, QueueFull::DropOldest));
    client.send(Message::text("gone")).await.unwrap();
    assert_eq!((client.queued(), client.dropped()), (0, 1));

    // Pings and pongs are not kept for the next connection.
    let mut client = Script::new([]).client(config());
    client.send(Message::ping("p")).await.unwrap();
    assert_eq!(client.queued(), 0);
}

#[tokio::test(start_paused = true)]
async fn giving_up_discards_the_queue() {
    let script = Script::new([]);
    let mut client = script.client(config().with_max_attempts(Some(2)));
    client.send(Message::text("never sent")).await.unwrap();
    let events = all_events(&mut client, 10).await;
    assert_eq!(waits(&events).last(), Some(&None));
    assert_eq!(client.queued(), 0);
    assert!(matches!(
        client.send(Message::text("late")).await,
        Err(Error::Closed)
    ));
}

// ---------------------------------------------------------------------------------------------
// A real server process, killed and started again.

/// This test binary as an echo server on 127.0.0.1:`WS_ECHO_PORT`, in a child process.
struct EchoProcess(Child);

impl EchoProcess {
    fn start(port: u16) -> EchoProcess {
        let mut child = Command::new(std::env::current_exe().unwrap())
            .args(["--exact", "echo_server_child", "--ignored", "--nocapture"])
            .env("WS_ECHO_PORT", port.to_string())
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        // Wait (at most 10 s) for its word that it listens.
        let stdout = child.stdout.take().unwrap();
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { return };
                if line.contains("listening on") {
                    let _ = tx.send(());
                }
            }
        });
        rx.recv_timeout(Duration::from_secs(10))
            .expect("the echo server did not start");
        EchoProcess(child)
    }

    /// SIGKILL: the process ends at once, the kernel closes its sockets (no close frame).
    fn kill(mut self) {
        self.0.kill().unwrap();
        self.0.wait().unwrap();
    }
}

impl Drop for EchoProcess {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[tokio::test]
#[ignore = "the server process of a_killed_server_comes_back_and_gets_the_queue_in_order"]
async fn echo_server_child() {
    let port: u16 = std::env::var("WS_ECHO_PORT").unwrap().parse().unwrap();
    let listener = tokio::net::TcpListener::bind(("127.0.0.1", port))
        .await
        .unwrap();
    println!("listening on {port}");
    // Runs until killed (bounded by an hour in case the parent vanished).
    let serve = async {
        loop {
            let (tcp, _) = listener.accept().await.unwrap();
            tokio::spawn(async move {
                let Ok(mut ws) = ws_tokio::accept_with_config(tcp, quiet()).await else {
                    return;
                };
                while let Some(Ok(m)) = ws.recv().await {
                    if matches!(m, Message::Text(_) | Message::Binary(_))
                        && ws.send(m).await.is_err()
                    {
                        return;
                    }
                }
            });
        }
    };
    let _ = tokio::time::timeout(Duration::from_secs(3600), serve).await;
}

/// The next event, within 10 s of real time.
async fn next_real(client: &mut ReconnectingClient) -> Event {
    bounded("the next event", client.next())
        .await
        .expect("the client stopped")
}

#[tokio::test]
async fn a_killed_server_comes_back_and_gets_the_queue_in_order() {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let server = EchoProcess::start(port);
    const LIMIT: usize = 5;
    let runs = Arc::new(AtomicUsize::new(0));
    let hook_runs = runs.clone();
    let config = ReconnectConfig::default()
        .with_request(
            ClientRequest::default()
                .config(quiet())
                .proxy(ws_tokio::proxy::ProxySetting::Direct),
        )
        .with_delays(10 * MS, 100 * MS)
        .with_queue(LIMIT, 1 << 20, QueueFull::DropOldest);
    let mut client = ReconnectingClient::new(&format!("ws://127.0.0.1:{port}/feed"), config)
        .unwrap()
        .on_connect(move |ws, _| {
            let n = hook_runs.fetch_add(1, Ordering::SeqCst) + 1;
            Box::pin(async move { ws.send(Message::text(format!("subscribe {n}"))).await })
        });

    // First connection: the hook's message echoed, then a live one.
    assert!(matches!(
        next_real(&mut client).await,
        Event::Connecting { attempt: 1 }
    ));
    assert!(matches!(next_real(&mut client).await, Event::Open { .. }));
    let Event::Message(m) = next_real(&mut client).await else {
        panic!()
    };
    assert_eq!(text(&m), "subscribe 1");
    client.send(Message::text("live 1")).await.unwrap();
    let Event::Message(m) = next_real(&mut client).await else {
        panic!()
    };
    assert_eq!(text(&m), "live 1");

    // Killed: the connection ends without a close frame.
    server.kill();
    let e = next_real(&mut client).await;
    assert!(
        matches!(&e, Event::Closed { code, error: Some(_), retry_in: Some(_), .. } if *code == CloseCode::ABNORMAL),
        "{e:?}"
    );
    // Sent while it is down: at most LIMIT wait, the oldest make room.
    for i in 0..12 {
        client
            .send(Message::text(format!("queued {i}")))
            .await
            .unwrap();
        assert!(client.queued() <= LIMIT);
    }
    assert_eq!(
        (client.queued(), client.dropped()),
        (LIMIT, 12 - LIMIT as u64)
    );
    // Attempts fail while nothing listens.
    let mut refused = 0;
    while refused < 3 {
        match next_real(&mut client).await {
            Event::Closed {
                error: Some(Error::Io(_)),
                retry_in: Some(_),
                ..
            } => refused += 1,
            Event::Connecting { .. } => {}
            e => panic!("{e:?}"),
        }
        assert_eq!(client.queued(), LIMIT);
    }

    // Started again on the same port: the client is back, the hook ran again, and the queue
    // arrives in order after the hook's message.
    let _server = EchoProcess::start(port);
    let mut echoes = Vec::new();
    while echoes.len() < 1 + LIMIT {
        match next_real(&mut client).await {
            Event::Message(m) => echoes.push(text(&m).to_string()),
            Event::Open { .. } => assert_eq!(runs.load(Ordering::SeqCst), 2),
            Event::Connecting { .. }
            | Event::Closed {
                retry_in: Some(_), ..
            } => {}
            e => panic!("{e:?}"),
        }
    }
    let want: Vec<String> = ["subscribe 2".to_string()]
        .into_iter()
        .chain((12 - LIMIT..12).map(|i| format!("queued {i}")))
        .collect();
    assert_eq!(echoes, want);
    assert_eq!(client.queued(), 0);
    client.close(None).await.unwrap();
    assert!(matches!(
        next_real(&mut client).await,
        Event::Closed { retry_in: None, .. }
    ));
}
