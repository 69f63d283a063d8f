//! Keepalive pings, the pong timeout, and the idle timeout, on tokio's paused clock over
//! in-memory pipes: every deadline is asserted to the millisecond, and no test waits in real
//! time.

mod common;

use std::time::Duration;

use common::*;
use tokio::io::AsyncWriteExt;
use tokio::time::{Instant, timeout_at};
use ws_tokio::{CloseCode, CloseFrame, Config, Error, Message, TimeoutKind};

const MS: Duration = Duration::from_millis(1);

/// Pings every 100 ms; fail 200 ms after a ping when nothing arrived.
fn keepalive() -> Config {
    quiet()
        .with_ping_interval(Some(Duration::from_millis(100)))
        .with_pong_timeout(Duration::from_millis(200))
}

fn idle(ms: u64) -> Config {
    quiet().with_idle_timeout(Some(Duration::from_millis(ms)))
}

#[tokio::test(start_paused = true)]
async fn silent_peer_fails_with_pong_timeout() {
    let (mut ws, raw) = raw_client_pair(keepalive(), 4096).await;
    let t0 = Instant::now();
    // The peer reads (and sees the pings) but never answers or closes.
    let peer = tokio::spawn(async move {
        let mut r = FrameReader::new(raw);
        let mut pings = Vec::new();
        while let Some(f) = r.next().await {
            assert_eq!(f.opcode, OP_PING, "only pings, no close frame");
            assert_eq!(f.payload.len(), 8);
            pings.push(t0.elapsed());
        }
        (pings, t0.elapsed())
    });
    let r = bounded("recv", ws.recv()).await;
    assert!(
        matches!(r, Some(Err(Error::Timeout(TimeoutKind::Pong)))),
        "{r:?}"
    );
    // The first ping at 100 ms, its deadline 200 ms later; the ping at 200 ms does not move it.
    assert_eq!(t0.elapsed(), 300 * MS);
    assert!(bounded("end", ws.recv()).await.is_none());
    // The transport was shut at once (a peer that does not answer is not waited for).
    let (pings, eof) = bounded("peer", peer).await.unwrap();
    assert_eq!(pings, [100 * MS, 200 * MS]);
    assert_eq!(eof, 300 * MS);
    assert_eq!(Error::Timeout(TimeoutKind::Pong).close_code_sent(), None);
}

#[tokio::test(start_paused = true)]
async fn answering_peer_stays_connected() {
    let (mut s, mut c) = duplex_pair(keepalive(), quiet(), 4096).await;
    let t0 = Instant::now();
    let client = tokio::spawn(async move {
        let mut pings = Vec::new();
        while let Some(m) = c.recv().await {
            match m.expect("client recv") {
                Message::Ping(p) => {
                    assert_eq!(p.len(), 8);
                    pings.push(t0.elapsed());
                }
                Message::Close(_) => {}
                m => panic!("unexpected {m:?}"),
            }
        }
        pings
    });
    let mut pongs = Vec::new();
    while let Ok(m) = timeout_at(t0 + 1050 * MS, s.recv()).await {
        match m {
            Some(Ok(Message::Pong(p))) => {
                assert_eq!(p.len(), 8);
                pongs.push(t0.elapsed());
            }
            other => panic!("unexpected {other:?}"),
        }
    }
    let every_100_ms: Vec<Duration> = (1..=10).map(|i| i * 100 * MS).collect();
    assert_eq!(pongs, every_100_ms, "each ping answered at once");
    bounded(
        "close",
        s.close(Some(CloseFrame::new(CloseCode::NORMAL, ""))),
    )
    .await
    .unwrap();
    assert_eq!(t0.elapsed(), 1050 * MS);
    let pings = bounded("client", client).await.unwrap();
    assert_eq!(pings, every_100_ms, "no ping after the close");
}

#[tokio::test(start_paused = true)]
async fn both_sides_keepalive_for_a_second() {
    let (mut s, mut c) = duplex_pair(keepalive(), keepalive(), 4096).await;
    let t0 = Instant::now();
    let client = tokio::spawn(async move {
        let (mut pings, mut pongs) = (0, 0);
        while let Some(m) = c.recv().await {
            match m.expect("client recv") {
                Message::Ping(_) => pings += 1,
                Message::Pong(_) => pongs += 1,
                Message::Close(_) => {}
                m => panic!("unexpected {m:?}"),
            }
        }
        (pings, pongs)
    });
    let (mut pings, mut pongs) = (0, 0);
    while let Ok(m) = timeout_at(t0 + 1050 * MS, s.recv()).await {
        match m {
            Some(Ok(Message::Ping(_))) => pings += 1,
            Some(Ok(Message::Pong(_))) => pongs += 1,
            other => panic!("connection ended early: {other:?}"),
        }
    }
    assert_eq!((pings, pongs), (10, 10));
    bounded(
        "close",
        s.close(Some(CloseFrame::new(CloseCode::NORMAL, ""))),
    )
    .await
    .unwrap();
    assert_eq!(bounded("client", client).await.unwrap(), (10, 10));
}

#[tokio::test(start_paused = true)]
async fn idle_timeout_closes_with_1001() {
    let (mut ws, raw) = raw_client_pair(idle(300), 4096).await;
    let t0 = Instant::now();
    let server = tokio::spawn(async move {
        let r = ws.recv().await;
        (r, t0.elapsed(), ws.recv().await.is_none())
    });
    let mut r = FrameReader::new(raw);
    let f = r.expect().await;
    assert_eq!(f.close_code(), Some(1001));
    assert_eq!(t0.elapsed(), 300 * MS);
    // The server ends the transport right after its close frame.
    r.expect_eof().await;
    assert_eq!(t0.elapsed(), 300 * MS);
    // The peer keeps its side open for 500 ms: the server waits for its EOF (the close timeout
    // is 2 s), then reports the idle timeout.
    tokio::time::sleep(500 * MS).await;
    drop(r);
    let (res, took, ended) = bounded("server", server).await.unwrap();
    assert!(
        matches!(&res, Some(Err(Error::Timeout(TimeoutKind::Idle)))),
        "{res:?}"
    );
    assert_eq!(took, 800 * MS);
    assert!(ended);
    if let Some(Err(e)) = res {
        assert_eq!(e.close_code_sent(), Some(CloseCode::GOING_AWAY));
    }
}

#[tokio::test(start_paused = true)]
async fn idle_timeout_at_its_limit_and_one_past_it() {
    // Something arrives 299 ms after the last thing: the connection stays; then 300 ms of
    // silence end it.
    let (mut ws, mut raw) = raw_client_pair(idle(300), 4096).await;
    let t0 = Instant::now();
    let server = tokio::spawn(async move {
        let mut got = Vec::new();
        loop {
            match ws.recv().await {
                Some(Ok(m)) => got.push((m, t0.elapsed())),
                other => return (got, other, t0.elapsed()),
            }
        }
    });
    for i in 1..=3u32 {
        tokio::time::sleep(299 * MS).await;
        raw.write_all(&cframe(true, OP_TEXT, format!("{i}").as_bytes()))
            .await
            .unwrap();
    }
    let mut r = FrameReader::new(raw);
    assert_eq!(r.expect().await.close_code(), Some(1001));
    assert_eq!(t0.elapsed(), (3 * 299 + 300) * MS);
    drop(r);
    let (got, end, at) = bounded("server", server).await.unwrap();
    let want: Vec<(Message, Duration)> = (1..=3u32)
        .map(|i| (Message::text(format!("{i}")), i * 299 * MS))
        .collect();
    assert_eq!(got, want);
    assert!(
        matches!(end, Some(Err(Error::Timeout(TimeoutKind::Idle)))),
        "{end:?}"
    );
    assert_eq!(at, (3 * 299 + 300) * MS);
}

#[tokio::test(start_paused = true)]
async fn traffic_defers_the_idle_timeout() {
    let (mut s, mut c) = duplex_pair(idle(300), quiet(), 4096).await;
    let t0 = Instant::now();
    let client = tokio::spawn(async move {
        for i in 0..8 {
            tokio::time::sleep(100 * MS).await;
            c.send(Message::text(format!("{i}"))).await.unwrap();
        }
        c
    });
    for i in 0..8u32 {
        let m = bounded("recv", s.recv()).await.unwrap().unwrap();
        assert_eq!(m, Message::text(format!("{i}")));
        assert_eq!(t0.elapsed(), (i + 1) * 100 * MS);
    }
    // Then silence: 1001, 300 ms after the last message.
    let mut c = client.await.unwrap();
    let client = tokio::spawn(async move {
        let m = c.recv().await.unwrap().unwrap();
        let at = t0.elapsed();
        assert!(c.recv().await.is_none());
        (m, at, t0.elapsed())
    });
    let r = bounded("idle", s.recv()).await;
    assert!(
        matches!(r, Some(Err(Error::Timeout(TimeoutKind::Idle)))),
        "{r:?}"
    );
    // The client answered and ended at once, so the server's wait for its EOF took no time.
    assert_eq!(t0.elapsed(), 1100 * MS);
    let (m, seen_at, ended_at) = bounded("client sees close", client).await.unwrap();
    assert_eq!(
        m,
        Message::Close(Some(CloseFrame::new(CloseCode::GOING_AWAY, "")))
    );
    assert_eq!((seen_at, ended_at), (1100 * MS, 1100 * MS));
}

#[tokio::test(start_paused = true)]
async fn a_pong_that_arrived_in_time_counts_even_if_read_late() {
    let (mut ws, raw) = raw_client_pair(keepalive(), 4096).await;
    let t0 = Instant::now();
    // The peer answers each ping 20 ms later, and notes when each ping came.
    let peer = tokio::spawn(async move {
        let mut r = FrameReader::new(raw);
        let mut pings = Vec::new();
        while let Some(f) = r.next().await {
            if f.opcode == OP_PING {
                pings.push(t0.elapsed());
                tokio::time::sleep(20 * MS).await;
                let pong = cframe(true, OP_PONG, &f.payload);
                if r.io.write_all(&pong).await.is_err() {
                    break;
                }
            }
        }
        pings
    });
    // Poll until the first ping is out (at 100 ms), then stop reading before its pong arrives.
    let first = timeout_at(t0 + 110 * MS, ws.recv()).await;
    assert!(first.is_err(), "{first:?}");
    // The application is busy well past the pong deadline (200 ms after the ping); the pong
    // has been waiting in the transport since 120 ms.
    tokio::time::sleep(450 * MS).await;
    let m = bounded("recv", ws.recv()).await;
    assert!(matches!(m, Some(Ok(Message::Pong(_)))), "{m:?}");
    assert_eq!(t0.elapsed(), 560 * MS);
    // And the connection keeps going: a ping 100 ms after the last, each answered.
    let mut pongs = Vec::new();
    while let Ok(m) = timeout_at(t0 + 1070 * MS, ws.recv()).await {
        match m {
            Some(Ok(Message::Pong(_))) => pongs.push(t0.elapsed()),
            other => panic!("unexpected {other:?}"),
        }
    }
    assert_eq!(pongs, [580 * MS, 680 * MS, 780 * MS, 880 * MS, 980 * MS]);
    drop(ws);
    let pings = bounded("peer", peer).await.unwrap();
    assert_eq!(
        pings,
        [
            100 * MS,
            560 * MS,
            660 * MS,
            760 * MS,
            860 * MS,
            960 * MS,
            1060 * MS
        ]
    );
}
