//! Keepalive pings, the pong timeout, and the idle timeout.

mod common;

use std::time::{Duration, Instant};

use common::*;
use ws_tokio::{CloseCode, Config, Error, Message, TimeoutKind};

fn keepalive() -> Config {
    Config {
        ping_interval: Some(Duration::from_millis(100)),
        pong_timeout: Duration::from_millis(200),
        ..quiet()
    }
}

#[tokio::test]
async fn silent_peer_fails_with_pong_timeout() {
    let (mut ws, raw) = raw_client_pair(keepalive(), 4096).await;
    // The peer reads (and sees the pings) but never answers or closes.
    let peer = tokio::spawn(async move {
        let mut r = FrameReader::new(raw);
        let mut pings = 0;
        while let Some(f) = r.next().await {
            assert_eq!(f.opcode, OP_PING);
            assert_eq!(f.payload.len(), 8);
            pings += 1;
        }
        pings
    });
    let t0 = Instant::now();
    let r = bounded("recv", ws.recv()).await;
    let took = t0.elapsed();
    assert!(
        matches!(r, Some(Err(Error::Timeout(TimeoutKind::Pong)))),
        "{r:?}"
    );
    assert!(
        took >= Duration::from_millis(280) && took <= Duration::from_millis(650),
        "took {took:?}"
    );
    assert!(bounded("end", ws.recv()).await.is_none());
    // The transport was shut: the peer reads EOF after the pings.
    let pings = bounded("peer", peer).await.unwrap();
    assert!(pings >= 1, "{pings}");
}

#[tokio::test]
async fn answering_peer_stays_connected() {
    let (mut s, mut c) = duplex_pair(keepalive(), quiet(), 4096).await;
    let client = tokio::spawn(async move {
        let mut pings = 0;
        while let Some(m) = c.recv().await {
            match m.expect("client recv") {
                Message::Ping(_) => pings += 1,
                Message::Close(_) => {}
                m => panic!("unexpected {m:?}"),
            }
        }
        pings
    });
    let t0 = Instant::now();
    let mut pongs = 0;
    while t0.elapsed() < Duration::from_millis(1200) {
        match tokio::time::timeout(Duration::from_millis(100), s.recv()).await {
            Err(_) => {}
            Ok(Some(Ok(Message::Pong(p)))) => {
                assert_eq!(p.len(), 8);
                pongs += 1;
            }
            Ok(other) => panic!("unexpected {other:?}"),
        }
    }
    assert!(pongs >= 5, "{pongs} pongs in 1.2 s");
    bounded("close", s.close(CloseCode::NORMAL, ""))
        .await
        .unwrap();
    let pings = bounded("client", client).await.unwrap();
    assert!(pings >= 5, "{pings}");
}

#[tokio::test]
async fn both_sides_keepalive_for_a_second() {
    let (mut s, mut c) = tcp_pair(keepalive(), keepalive()).await;
    let client = tokio::spawn(async move {
        while let Some(m) = c.recv().await {
            m.expect("client recv");
        }
    });
    let r = tokio::time::timeout(Duration::from_millis(1100), async {
        loop {
            match s.recv().await {
                Some(Ok(_)) => {}
                other => return other,
            }
        }
    })
    .await;
    assert!(r.is_err(), "connection ended early: {r:?}");
    bounded("close", s.close(CloseCode::NORMAL, ""))
        .await
        .unwrap();
    bounded("client", client).await.unwrap();
}

#[tokio::test]
async fn idle_timeout_closes_with_1001() {
    let cfg = Config {
        idle_timeout: Some(Duration::from_millis(300)),
        ..quiet()
    };
    let (mut ws, raw) = raw_client_pair(cfg, 4096).await;
    let t0 = Instant::now();
    let server = tokio::spawn(async move {
        let r = ws.recv().await;
        (r, t0.elapsed())
    });
    let mut r = FrameReader::new(raw);
    let f = r.expect().await;
    assert_eq!(f.close_code(), Some(1001));
    r.expect_eof().await;
    drop(r);
    let (res, took) = bounded("server", server).await.unwrap();
    assert!(
        matches!(res, Some(Err(Error::Timeout(TimeoutKind::Idle)))),
        "{res:?}"
    );
    assert!(took >= Duration::from_millis(280), "{took:?}");
}

#[tokio::test]
async fn traffic_defers_the_idle_timeout() {
    let cfg = Config {
        idle_timeout: Some(Duration::from_millis(300)),
        ..quiet()
    };
    let (mut s, mut c) = duplex_pair(cfg, quiet(), 4096).await;
    let t0 = Instant::now();
    let client = tokio::spawn(async move {
        for i in 0..8 {
            tokio::time::sleep(Duration::from_millis(100)).await;
            c.send(Message::Text(format!("{i}"))).await.unwrap();
        }
        c
    });
    for i in 0..8 {
        let m = bounded("recv", s.recv()).await.unwrap().unwrap();
        assert_eq!(m, Message::Text(format!("{i}")));
    }
    assert!(t0.elapsed() >= Duration::from_millis(750));
    // Then silence: 1001.
    let mut c = client.await.unwrap();
    let client = tokio::spawn(async move {
        let m = c.recv().await.unwrap().unwrap();
        assert!(c.recv().await.is_none());
        m
    });
    let r = bounded("idle", s.recv()).await;
    assert!(
        matches!(r, Some(Err(Error::Timeout(TimeoutKind::Idle)))),
        "{r:?}"
    );
    let m = bounded("client sees close", client).await.unwrap();
    assert_eq!(
        m,
        Message::Close(Some((CloseCode::GOING_AWAY, String::new())))
    );
}

#[tokio::test]
async fn a_pong_that_arrived_in_time_counts_even_if_read_late() {
    let (mut ws, raw) = raw_client_pair(keepalive(), 4096).await;
    // The peer answers each ping 20 ms later.
    let peer = tokio::spawn(async move {
        let mut r = FrameReader::new(raw);
        while let Some(f) = r.next().await {
            if f.opcode == OP_PING {
                tokio::time::sleep(Duration::from_millis(20)).await;
                let pong = cframe(true, OP_PONG, &f.payload);
                if tokio::io::AsyncWriteExt::write_all(&mut r.io, &pong)
                    .await
                    .is_err()
                {
                    break;
                }
            }
        }
    });
    // Poll until the first ping is out (at 100 ms), then stop reading before its pong arrives.
    let first = tokio::time::timeout(Duration::from_millis(110), ws.recv()).await;
    assert!(first.is_err(), "{first:?}");
    // The application is busy well past the pong deadline (200 ms after the ping); the pong
    // has been waiting in the transport since 120 ms.
    tokio::time::sleep(Duration::from_millis(450)).await;
    let m = bounded("recv", ws.recv()).await;
    assert!(matches!(m, Some(Ok(Message::Pong(_)))), "{m:?}");
    // And the connection keeps going: more pings, all answered.
    let t0 = Instant::now();
    while t0.elapsed() < Duration::from_millis(500) {
        match tokio::time::timeout(Duration::from_millis(100), ws.recv()).await {
            Err(_) | Ok(Some(Ok(Message::Pong(_)))) => {}
            Ok(other) => panic!("unexpected {other:?}"),
        }
    }
    drop(ws);
    bounded("peer", peer).await.unwrap();
}
