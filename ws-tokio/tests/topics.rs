//! Topics: subscribe, unsubscribe and publish over thousands of in-memory connections; each
//! overflow policy at its limit and one past it; compression once per window; bursts in one
//! write; subscribers that vanish while a publish is under way; a peer that never reads.

mod common;

use std::io;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, Wake, Waker};
use std::time::Duration;

use common::{STEP, bounded};
use tokio::io::{AsyncRead, AsyncWrite, DuplexStream, ReadBuf};
use ws_tokio::deflate::{DeflateConfig, Negotiated, negotiate_client, negotiate_server};
use ws_tokio::topics::{Overflow, Published, QueueConfig, Subscriber, Topics};
use ws_tokio::{CloseCode, Config, Message, Role, Usage, WebSocket};

fn quiet() -> Config {
    Config::default()
        .with_ping_interval(None)
        .with_close_timeout(Duration::from_secs(2))
        .with_compression(None)
}

/// A server and a client over an in-memory pipe, past the handshake (with the agreement
/// `deflate` reached, as each side sees it).
fn pair_with<T: AsyncRead + AsyncWrite + Unpin>(
    wrap: impl FnOnce(DuplexStream) -> T,
    capacity: usize,
    server: Config,
    deflate: Option<(Negotiated, Negotiated)>,
) -> (WebSocket<T>, WebSocket<DuplexStream>) {
    let (a, b) = tokio::io::duplex(capacity);
    let s = WebSocket::from_upgraded(wrap(a), Role::Server, server, deflate.map(|d| d.0))
        .expect("server");
    let c =
        WebSocket::from_upgraded(b, Role::Client, quiet(), deflate.map(|d| d.1)).expect("client");
    (s, c)
}

fn pair(capacity: usize) -> (WebSocket<DuplexStream>, WebSocket<DuplexStream>) {
    pair_with(|io| io, capacity, quiet(), None)
}

/// Runs a subscriber until its connection ends; the task's result is how many messages it
/// received from its peer.
fn run<S>(mut sub: Subscriber<S>) -> tokio::task::JoinHandle<usize>
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    tokio::spawn(async move {
        let mut n = 0;
        while let Some(Ok(_)) = sub.recv().await {
            n += 1;
        }
        n
    })
}

/// Text messages received until `last` (included).
async fn texts_until(c: &mut WebSocket<DuplexStream>, last: &str) -> Vec<String> {
    let mut got = Vec::new();
    loop {
        match bounded("client recv", c.recv()).await {
            Some(Ok(Message::Text(t))) => {
                let done = t.as_str() == last;
                got.push(t.as_str().to_owned());
                if done {
                    return got;
                }
            }
            other => panic!("expected text, got {other:?}"),
        }
    }
}

fn text(s: &str) -> Message {
    Message::text(s.to_owned())
}

/// The length of a frame carrying `payload` bytes from a server.
fn frame_len(payload: usize) -> usize {
    payload
        + match payload {
            0..=125 => 2,
            126..=65535 => 4,
            _ => 10,
        }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn publish_reaches_exactly_the_subscribers_of_each_topic() {
    const N: usize = 2000;
    let topics = Topics::default();
    let mut clients = Vec::new();
    let mut tasks = Vec::new();
    for _ in 0..N {
        let (s, c) = pair(16 << 10);
        let topics2 = topics.clone();
        // The application's protocol: "sub:T" and "unsub:T", answered with "ack".
        tasks.push(tokio::spawn(async move {
            let mut sub = topics2.subscriber(s);
            while let Some(Ok(m)) = sub.recv().await {
                let Message::Text(t) = m else { continue };
                if let Some(topic) = t.as_str().strip_prefix("sub:") {
                    assert!(sub.subscribe(topic));
                    assert!(!sub.subscribe(topic), "twice is once");
                } else if let Some(topic) = t.as_str().strip_prefix("unsub:") {
                    assert!(sub.unsubscribe(topic));
                    assert!(!sub.unsubscribe(topic));
                }
                if sub.send(text("ack")).await.is_err() {
                    break;
                }
            }
        }));
        clients.push(c);
    }
    let even = |i: usize| i % 2 == 0;
    let third = |i: usize| i % 3 == 0;
    for (i, c) in clients.iter_mut().enumerate() {
        if even(i) {
            c.send(text("sub:even")).await.unwrap();
        }
        if third(i) {
            c.send(text("sub:third")).await.unwrap();
        }
    }
    for (i, c) in clients.iter_mut().enumerate() {
        for _ in 0..usize::from(even(i)) + usize::from(third(i)) {
            assert_eq!(texts_until(c, "ack").await, ["ack"]);
        }
    }
    assert_eq!(topics.subscribers("even"), N / 2);
    assert_eq!(topics.subscribers("third"), N.div_ceil(3));
    assert_eq!(topics.subscribers("nobody"), 0);
    let st = topics.stats();
    assert_eq!((st.subscribers, st.topics), (N, 2));

    let r = topics.publish("even", text("E1")).unwrap();
    assert_eq!((r.queued, r.dropped, r.closed), (N / 2, 0, 0));
    assert_eq!(
        topics.publish("third", text("T1")).unwrap().queued,
        N.div_ceil(3)
    );
    assert_eq!(
        topics.publish("nobody", text("X")).unwrap(),
        Published::default()
    );
    assert_eq!(topics.publish_all(text("END1")).unwrap().queued, N);
    for (i, c) in clients.iter_mut().enumerate() {
        let mut want = Vec::new();
        if even(i) {
            want.push("E1");
        }
        if third(i) {
            want.push("T1");
        }
        want.push("END1");
        assert_eq!(texts_until(c, "END1").await, want, "client {i}");
    }

    // The even ones leave "even": the topic is gone with its last subscriber.
    for (i, c) in clients.iter_mut().enumerate() {
        if even(i) {
            c.send(text("unsub:even")).await.unwrap();
            assert_eq!(texts_until(c, "ack").await, ["ack"]);
        }
    }
    assert_eq!(topics.subscribers("even"), 0);
    assert_eq!(topics.stats().topics, 1);
    assert_eq!(topics.publish("even", text("E2")).unwrap().queued, 0);
    assert_eq!(topics.publish_all(text("END2")).unwrap().queued, N);
    for c in clients.iter_mut() {
        assert_eq!(texts_until(c, "END2").await, ["END2"]);
    }
    let st = topics.stats();
    assert_eq!(st.queued as usize, N / 2 + N.div_ceil(3) + 2 * N);
    assert_eq!((st.published, st.dropped, st.closed), (4, 0, 0));

    // The peers go: every subscriber leaves the registry.
    drop(clients);
    for t in tasks {
        bounded("subscriber ends", t).await.unwrap();
    }
    let st = topics.stats();
    assert_eq!((st.subscribers, st.topics), (0, 0));
}

#[test]
fn only_data_messages_are_published() {
    let topics = Topics::default();
    for m in [Message::ping(vec![1]), Message::Close(None)] {
        assert!(matches!(
            topics.publish("t", m.clone()),
            Err(ws_tokio::Error::Usage(Usage::NotData))
        ));
        assert!(topics.publish_all(m).is_err());
    }
}

#[tokio::test(start_paused = true)]
async fn drop_oldest_at_its_limit_and_one_past() {
    let topics = Topics::new(
        QueueConfig::default()
            .with_max_messages(8)
            .with_overflow(Overflow::DropOldest),
    );
    let (s, mut c) = pair(64 << 10);
    let mut sub = topics.subscriber(s);
    assert!(sub.subscribe("prices"));
    // Not polled: the queue fills. Eight fit.
    for i in 0..8 {
        let r = topics.publish("prices", text(&format!("p{i}"))).unwrap();
        assert_eq!((r.queued, r.dropped), (1, 0));
    }
    let st = sub.stats();
    assert_eq!((st.queued, st.dropped, st.overflowed), (8, 0, false));
    assert_eq!(st.queued_bytes, 8 * frame_len(2));
    // The ninth pushes out the oldest.
    let r = topics.publish("prices", text("p8")).unwrap();
    assert_eq!((r.queued, r.dropped, r.closed), (1, 1, 0));
    let st = sub.stats();
    assert_eq!((st.queued, st.dropped), (8, 1));
    assert_eq!(st.dropped_bytes, frame_len(2) as u64);
    assert_eq!(topics.stats().dropped, 1);

    let task = run(sub);
    let want: Vec<String> = (1..=8).map(|i| format!("p{i}")).collect();
    assert_eq!(texts_until(&mut c, "p8").await, want);
    // Still subscribed, still taking messages.
    assert_eq!(topics.publish("prices", text("p9")).unwrap().queued, 1);
    assert_eq!(texts_until(&mut c, "p9").await, ["p9"]);
    drop(c);
    bounded("end", task).await.unwrap();
}

#[tokio::test(start_paused = true)]
async fn drop_oldest_by_bytes_at_its_limit_and_one_past() {
    let payload = 1000;
    let topics = Topics::new(
        QueueConfig::default()
            .with_max_bytes(3 * frame_len(payload))
            .with_overflow(Overflow::DropOldest),
    );
    let (s, mut c) = pair(64 << 10);
    let mut sub = topics.subscriber(s);
    sub.subscribe("t");
    let msg = |i: u8| Message::binary(vec![i; payload]);
    for i in 0..3 {
        assert_eq!(topics.publish("t", msg(i)).unwrap().dropped, 0);
    }
    assert_eq!(sub.stats().queued_bytes, 3 * frame_len(payload));
    assert_eq!(topics.publish("t", msg(3)).unwrap().dropped, 1);
    assert_eq!(sub.stats().queued, 3);
    // A message larger than the whole limit empties the queue and waits alone.
    assert_eq!(
        topics
            .publish("t", Message::binary(vec![9; 4 * payload]))
            .unwrap()
            .dropped,
        3
    );
    assert_eq!(sub.stats().queued, 1);
    let task = run(sub);
    match bounded("recv", c.recv()).await {
        Some(Ok(Message::Binary(b))) => assert_eq!(&b[..], &[9; 4000][..]),
        other => panic!("{other:?}"),
    }
    drop(c);
    bounded("end", task).await.unwrap();
}

/// The close policy with `code`, at its limit of `limit` messages and one past it.
async fn close_policy_at_its_limit_and_one_past(overflow: Overflow, code: CloseCode) {
    let topics = Topics::new(
        QueueConfig::default()
            .with_max_messages(4)
            .with_overflow(overflow),
    );
    let (s, mut c) = pair(64 << 10);
    let mut sub = topics.subscriber(s);
    sub.subscribe("chat");
    for i in 0..4 {
        let r = topics.publish("chat", text(&format!("m{i}"))).unwrap();
        assert_eq!((r.queued, r.closed), (1, 0));
    }
    assert!(!sub.stats().overflowed);
    let r = topics.publish("chat", text("m4")).unwrap();
    assert_eq!((r.queued, r.dropped, r.closed), (0, 5, 1));
    let st = sub.stats();
    assert_eq!((st.queued, st.queued_bytes, st.dropped), (0, 0, 5));
    assert!(st.overflowed);
    // It takes nothing more.
    assert_eq!(
        topics.publish("chat", text("m5")).unwrap(),
        Published::default()
    );
    assert_eq!(topics.stats().closed, 1);

    // The connection is closed with the code, before any message (they were discarded).
    let task = run(sub);
    match bounded("close", c.recv()).await {
        Some(Ok(Message::Close(Some(f)))) => {
            assert_eq!(f.code, code);
            assert_eq!(f.reason.as_str(), "subscriber too slow");
        }
        other => panic!("expected the close, got {other:?}"),
    }
    // The client answered the close: the server's side ends cleanly.
    assert!(c.recv().await.is_none());
    // What the server received: the client's answer to its close.
    assert_eq!(bounded("end", task).await.unwrap(), 1);
    assert_eq!(topics.stats().subscribers, 0);
}

#[tokio::test(start_paused = true)]
async fn close_1008_at_its_limit_and_one_past() {
    close_policy_at_its_limit_and_one_past(Overflow::CLOSE_POLICY, CloseCode::POLICY_VIOLATION)
        .await;
}

#[tokio::test(start_paused = true)]
async fn close_1013_at_its_limit_and_one_past() {
    close_policy_at_its_limit_and_one_past(Overflow::CLOSE_TRY_AGAIN, CloseCode::TRY_AGAIN_LATER)
        .await;
}

#[tokio::test(start_paused = true)]
async fn a_close_code_that_may_not_be_sent_becomes_1008() {
    let bad = Overflow::Close(CloseCode::NO_STATUS);
    let topics = Topics::new(QueueConfig::default().with_overflow(bad));
    assert_eq!(topics.queue_config().overflow, Overflow::CLOSE_POLICY);
    let cfg = QueueConfig::default()
        .with_max_messages(0)
        .with_overflow(bad);
    let (s, mut c) = pair(4096);
    let mut sub = topics.subscriber_with(s, cfg);
    sub.subscribe("t");
    // At least one message fits.
    assert_eq!(topics.publish("t", text("a")).unwrap().queued, 1);
    assert_eq!(topics.publish("t", text("b")).unwrap().closed, 1);
    let task = run(sub);
    match bounded("close", c.recv()).await {
        Some(Ok(Message::Close(Some(f)))) => assert_eq!(f.code, CloseCode::POLICY_VIOLATION),
        other => panic!("{other:?}"),
    }
    drop(c);
    bounded("end", task).await.unwrap();
}

/// Counts the writes to a transport; gathers a vectored write into one.
struct CountWrites<T> {
    io: T,
    writes: Arc<Mutex<Vec<usize>>>,
}

impl<T: AsyncRead + Unpin> AsyncRead for CountWrites<T> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.io).poll_read(cx, buf)
    }
}

impl<T: AsyncWrite + Unpin> AsyncWrite for CountWrites<T> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let r = Pin::new(&mut self.io).poll_write(cx, buf);
        if let Poll::Ready(Ok(n)) = r {
            self.writes.lock().unwrap().push(n);
        }
        r
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let all: Vec<u8> = bufs.iter().flat_map(|b| b.iter().copied()).collect();
        self.poll_write(cx, &all)
    }

    fn is_write_vectored(&self) -> bool {
        true
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.io).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.io).poll_shutdown(cx)
    }
}

#[tokio::test(start_paused = true)]
async fn a_burst_leaves_in_a_write_or_two_and_steady_messages_one_write_each() {
    let topics = Topics::default();
    let writes = Arc::new(Mutex::new(Vec::new()));
    let w = writes.clone();
    let (s, mut c) = pair_with(
        move |io| CountWrites { io, writes: w },
        4 << 20,
        quiet(),
        None,
    );
    let mut sub = topics.subscriber(s);
    sub.subscribe("t");
    // A burst of 100 while the subscriber's task is busy elsewhere.
    for i in 0..100u8 {
        topics.publish("t", Message::binary(vec![i; 1024])).unwrap();
    }
    let task = run(sub);
    for i in 0..100u8 {
        match bounded("recv", c.recv()).await {
            Some(Ok(Message::Binary(b))) => assert_eq!(&b[..], &[i; 1024][..]),
            other => panic!("{other:?}"),
        }
    }
    {
        let w = writes.lock().unwrap();
        assert_eq!(w.iter().sum::<usize>(), 100 * frame_len(1024));
        // One batch is 64 KiB at most: 63 messages of 1028 bytes, then the other 37.
        assert_eq!(w.len(), 2, "writes: {w:?}");
    }
    writes.lock().unwrap().clear();
    // Steady: each message on its own, one write each and nothing more.
    for i in 0..10u8 {
        topics.publish("t", Message::binary(vec![i; 100])).unwrap();
        match bounded("recv", c.recv()).await {
            Some(Ok(Message::Binary(b))) => assert_eq!(b.len(), 100),
            other => panic!("{other:?}"),
        }
    }
    assert_eq!(*writes.lock().unwrap(), vec![frame_len(100); 10]);
    drop(c);
    bounded("end", task).await.unwrap();
}

/// The agreement for a client offering `offer` to a server with `server`.
fn agree(offer: &str, server: DeflateConfig) -> (Negotiated, Negotiated) {
    let s = negotiate_server([offer], &server).expect("accepted");
    let mut answer = [0u8; 256];
    let n = ws_tokio::deflate::write_response(&s, &mut answer).unwrap();
    let answer = std::str::from_utf8(&answer[..n]).unwrap();
    let c = negotiate_client([answer], &DeflateConfig::DEFAULT)
        .unwrap()
        .expect("agreed");
    (s, c)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_message_is_compressed_once_per_window_and_every_kind_of_subscriber_decodes_it() {
    let shared = DeflateConfig::DEFAULT;
    // Shared-compressor subscribers with 10- and 15-bit windows, one with a compressor (and
    // context) of its own, and uncompressed ones.
    let kinds: Vec<Option<(Negotiated, Negotiated)>> = (0..300)
        .map(|i| match i % 4 {
            0 => Some(agree(
                "permessage-deflate; server_max_window_bits=10",
                shared,
            )),
            1 => Some(agree("permessage-deflate", shared)),
            2 if i == 2 => Some(agree("permessage-deflate", DeflateConfig::DEFAULT)),
            _ => None,
        })
        .collect();
    // Only the lean agreement asks the client to drop its context too.
    assert!(kinds[1].unwrap().0.client_no_context_takeover);
    let topics = Topics::default();
    let mut clients = Vec::new();
    let mut tasks = Vec::new();
    let mut counters = Vec::new();
    for kind in &kinds {
        let writes = Arc::new(Mutex::new(Vec::new()));
        let w = writes.clone();
        let (s, c) = pair_with(
            move |io| CountWrites { io, writes: w },
            256 << 10,
            quiet().with_compression(Some(shared)),
            *kind,
        );
        let mut sub = topics.subscriber(s);
        sub.subscribe("news");
        tasks.push(run(sub));
        clients.push(c);
        counters.push(writes);
    }
    let body = "every subscriber gets the same compressed bytes; ".repeat(340);
    assert!(body.len() > 16 << 10);
    let r = topics.publish("news", Message::text(body.clone())).unwrap();
    // Two variants: 10 bits, and 15 bits (which the connection with a compressor of its own,
    // same window and level, takes too).
    assert_eq!((r.queued, r.compressed), (300, 2));
    // A message smaller than the compressors' minimum is sent as it is.
    assert_eq!(topics.publish("news", text("tiny")).unwrap().compressed, 0);
    for (i, c) in clients.iter_mut().enumerate() {
        match bounded("recv", c.recv()).await {
            Some(Ok(Message::Text(t))) => assert_eq!(t.as_str(), body, "client {i}"),
            other => panic!("client {i}: {other:?}"),
        }
        assert_eq!(texts_until(c, "tiny").await, ["tiny"]);
        let sent: usize = counters[i].lock().unwrap().iter().sum();
        let compressed = kinds[i].is_some();
        assert_eq!(
            sent < body.len() / 10,
            compressed,
            "client {i}: {sent} bytes"
        );
    }
    drop(clients);
    for t in tasks {
        bounded("end", t).await.unwrap();
    }
}

/// Wakes by dropping what it holds (a subscriber), or nothing.
struct DropOnWake(Mutex<Option<Subscriber<DuplexStream>>>);

impl Wake for DropOnWake {
    fn wake(self: Arc<Self>) {
        self.wake_by_ref();
    }

    fn wake_by_ref(self: &Arc<Self>) {
        drop(self.0.lock().unwrap().take());
    }
}

#[tokio::test]
async fn a_subscriber_dropped_while_a_publish_wakes_its_peers() {
    // A's task is woken by the publish; waking it drops B. The publish holds no lock while it
    // wakes, so B leaves the registry at once (a lock held would deadlock here).
    let topics = Topics::default();
    let (sa, mut ca) = pair(4096);
    let (sb, _cb) = pair(4096);
    let mut a = topics.subscriber(sa);
    let mut b = topics.subscriber(sb);
    a.subscribe("t");
    b.subscribe("t");
    let waker_state = Arc::new(DropOnWake(Mutex::new(Some(b))));
    let waker = Waker::from(waker_state.clone());
    assert!(a.poll_recv(&mut Context::from_waker(&waker)).is_pending());
    let r = topics.publish("t", text("one")).unwrap();
    assert_eq!(r.queued, 2);
    assert!(
        waker_state.0.lock().unwrap().is_none(),
        "B was dropped by the wake"
    );
    assert_eq!(topics.subscribers("t"), 1);
    assert_eq!(topics.stats().subscribers, 1);
    assert_eq!(topics.publish("t", text("two")).unwrap().queued, 1);
    let task = run(a);
    assert_eq!(texts_until(&mut ca, "two").await, ["one", "two"]);
    drop(ca);
    bounded("end", task).await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn subscribers_that_vanish_mid_publish_cost_the_others_nothing() {
    const N: usize = 1000;
    const MESSAGES: usize = 300;
    let topics = Topics::new(QueueConfig::default().with_max_messages(MESSAGES + 1));
    let mut keep = Vec::new();
    let mut vanish = Vec::new();
    let mut tasks = Vec::new();
    for i in 0..N {
        let (s, c) = pair(64 << 10);
        let mut sub = topics.subscriber(s);
        sub.subscribe("t");
        tasks.push(run(sub));
        if i % 2 == 0 {
            keep.push(c);
        } else {
            vanish.push(c);
        }
    }
    let publisher = {
        let topics = topics.clone();
        tokio::spawn(async move {
            for i in 0..MESSAGES {
                let r = topics.publish("t", text(&format!("m{i}"))).unwrap();
                assert_eq!((r.dropped, r.closed), (0, 0));
                if i % 10 == 0 {
                    tokio::task::yield_now().await;
                }
            }
        })
    };
    // Half the peers go away while the publisher runs: some read a little first.
    let vanishing = tokio::spawn(async move {
        for (i, mut c) in vanish.into_iter().enumerate() {
            if i % 3 == 0 {
                let _ = c.recv().await;
            }
            drop(c);
            if i % 25 == 0 {
                tokio::task::yield_now().await;
            }
        }
    });
    let last = format!("m{}", MESSAGES - 1);
    let want: Vec<String> = (0..MESSAGES).map(|i| format!("m{i}")).collect();
    for c in keep.iter_mut() {
        assert_eq!(texts_until(c, &last).await, want);
    }
    bounded("publisher", publisher).await.unwrap();
    bounded("vanishing", vanishing).await.unwrap();
    // The vanished ones have left.
    let deadline = tokio::time::Instant::now() + STEP;
    while topics.subscribers("t") != N / 2 {
        assert!(
            tokio::time::Instant::now() < deadline,
            "{}",
            topics.subscribers("t")
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    drop(keep);
    for t in tasks {
        bounded("end", t).await.unwrap();
    }
    assert_eq!(topics.stats().subscribers, 0);
}

#[test]
fn subscribe_and_unsubscribe_race_with_the_last_one_out() {
    // Threads join and leave the same few topics: a topic emptied by its last subscriber is
    // replaced, never joined after it left the registry (a publish would not reach it).
    let topics = Topics::new(QueueConfig::default().with_max_messages(1 << 20));
    let threads: Vec<_> = (0..4)
        .map(|t| {
            let topics = topics.clone();
            std::thread::spawn(move || {
                let mut subs: Vec<_> = (0..8)
                    .map(|_| {
                        let (a, _b) = tokio::io::duplex(64);
                        let ws = WebSocket::from_upgraded(a, Role::Server, quiet(), None).unwrap();
                        topics.subscriber(ws)
                    })
                    .collect();
                for round in 0..2000 {
                    let topic = format!("t{}", (round + t) % 3);
                    let sub = &mut subs[round % 8];
                    assert!(sub.subscribe(&topic));
                    let before = sub.stats().queued;
                    topics.publish(&topic, text("x")).unwrap();
                    assert!(
                        sub.stats().queued > before,
                        "a publish reaches a subscriber"
                    );
                    assert!(sub.unsubscribe(&topic));
                }
            })
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
    let st = topics.stats();
    assert_eq!((st.subscribers, st.topics), (0, 0));
}

#[tokio::test(start_paused = true)]
async fn a_peer_that_never_reads_is_closed_and_the_others_get_everything() {
    const READERS: usize = 50;
    const MESSAGES: usize = 200;
    let topics = Topics::new(QueueConfig::default().with_max_messages(16));
    let config = quiet().with_write_timeout(Some(Duration::from_secs(30)));
    let (slow_s, slow_c) = pair_with(|io| io, 4096, config, None);
    let mut slow = topics.subscriber(slow_s);
    slow.subscribe("t");
    let started = tokio::time::Instant::now();
    let slow_task = tokio::spawn(async move {
        while let Some(Ok(_)) = slow.recv().await {}
        (slow.stats(), tokio::time::Instant::now())
    });
    let mut readers = Vec::new();
    let mut tasks = Vec::new();
    let pad = "x".repeat(1000);
    let msg = move |i: usize| format!("m{i}:{pad}");
    for _ in 0..READERS {
        let (s, mut c) = pair(4096);
        let mut sub = topics.subscriber(s);
        sub.subscribe("t");
        tasks.push(run(sub));
        let msg = msg.clone();
        readers.push(tokio::spawn(async move {
            for i in 0..MESSAGES {
                match c.recv().await {
                    Some(Ok(Message::Text(t))) => assert_eq!(t.as_str(), msg(i)),
                    other => panic!("{other:?}"),
                }
            }
            c
        }));
    }
    let mut closed = 0;
    for i in 0..MESSAGES {
        closed += topics.publish("t", text(&msg(i))).unwrap().closed;
        tokio::task::yield_now().await;
    }
    assert_eq!(closed, 1, "the slow one, once");
    let mut clients = Vec::new();
    for r in readers {
        clients.push(bounded("reader", r).await.unwrap());
    }
    // The slow peer's transport is full: its close frame cannot go out, and the close deadline
    // ends the connection (without waiting out the write timeout on what is left to write).
    let (stats, ended) = tokio::time::timeout(Duration::from_secs(60), slow_task)
        .await
        .expect("the slow one ends")
        .unwrap();
    assert!(stats.overflowed);
    assert_eq!(stats.queued, 0, "the queue was released at the overflow");
    // At the close deadline (2 s), long before the write deadline (30 s).
    let took = ended - started;
    assert!(
        took >= Duration::from_secs(2) && took < Duration::from_secs(3),
        "ended after {took:?}"
    );
    assert_eq!(topics.subscribers("t"), READERS);
    drop(slow_c);
    assert_eq!(topics.stats().closed, 1);
    drop(clients);
    for t in tasks {
        bounded("end", t).await.unwrap();
    }
}

#[tokio::test(start_paused = true)]
async fn a_write_buffer_smaller_than_a_batch_keeps_the_order() {
    // 1 KiB of write buffer, a 2 KiB pipe: a batch is handed over a message or two at a time,
    // the rest waiting in the queue, in order.
    let topics = Topics::default();
    let (s, mut c) = pair_with(|io| io, 2048, quiet().with_write_buffer_size(1024), None);
    let mut sub = topics.subscriber(s);
    sub.subscribe("t");
    for i in 0..40u8 {
        topics.publish("t", Message::binary(vec![i; 1000])).unwrap();
    }
    let task = run(sub);
    for i in 0..40u8 {
        match bounded("recv", c.recv()).await {
            Some(Ok(Message::Binary(b))) => assert_eq!(&b[..], &[i; 1000][..], "message {i}"),
            other => panic!("{other:?}"),
        }
    }
    drop(c);
    bounded("end", task).await.unwrap();
}
