//! The close handshake in both orders, the server shutting TCP first, every valid close code,
//! and the close timeout.

mod common;

use std::time::{Duration, Instant};

use common::*;
use tokio::io::AsyncWriteExt;
use ws_tokio::{CloseCode, Config, Error, Message, TimeoutKind};

#[tokio::test]
async fn client_closes_server_sees_close_then_none() {
    let (mut s, mut c) = duplex_pair(quiet(), quiet(), 16 << 10).await;
    let client = tokio::spawn(async move { c.close(CloseCode::NORMAL, "done").await });
    let m = bounded("close", s.recv()).await.unwrap().unwrap();
    assert_eq!(m, Message::Close(Some((CloseCode::NORMAL, "done".into()))));
    assert!(bounded("none", s.recv()).await.is_none());
    assert!(bounded("none again", s.recv()).await.is_none());
    bounded("client close", client)
        .await
        .unwrap()
        .expect("client close");
    // Nothing more can be sent.
    assert!(matches!(
        s.send(Message::Text("late".into())).await,
        Err(Error::Closed)
    ));
}

#[tokio::test]
async fn server_closes_client_sees_it() {
    let (mut s, mut c) = tcp_pair(quiet(), quiet()).await;
    let server = tokio::spawn(async move { s.close(CloseCode::GOING_AWAY, "restart").await });
    let m = bounded("close", c.recv()).await.unwrap().unwrap();
    assert_eq!(
        m,
        Message::Close(Some((CloseCode::GOING_AWAY, "restart".into())))
    );
    assert!(bounded("none", c.recv()).await.is_none());
    bounded("server close", server)
        .await
        .unwrap()
        .expect("server close");
}

#[tokio::test]
async fn both_close_at_once() {
    let (mut s, mut c) = duplex_pair(quiet(), quiet(), 16 << 10).await;
    let (a, b) = tokio::join!(
        s.close(CloseCode::NORMAL, "s"),
        c.close(CloseCode::NORMAL, "c")
    );
    a.expect("server close");
    b.expect("client close");
}

#[tokio::test]
async fn server_shuts_tcp_after_handshake_it_started() {
    let (l, addr) = listener().await;
    let server = tokio::spawn(async move {
        let (tcp, _) = l.accept().await.unwrap();
        let mut ws = ws_tokio::accept_with_config(tcp, quiet()).await.unwrap();
        ws.close(CloseCode(4001), "custom").await
    });
    let mut tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
    raw_client_handshake(&mut tcp).await;
    let (rd, mut wr) = tcp.into_split();
    let mut r = FrameReader::new(rd);
    let f = r.expect().await;
    assert_eq!(f.close_code(), Some(4001));
    assert_eq!(&f.payload[2..], b"custom");
    assert_eq!(f.mask, None);
    wr.write_all(&cframe(true, OP_CLOSE, &close_payload(4001, "")))
        .await
        .unwrap();
    // The server shuts TCP first: EOF without us closing our side.
    r.expect_eof().await;
    bounded("server", server)
        .await
        .unwrap()
        .expect("server close");
}

#[tokio::test]
async fn server_shuts_tcp_after_handshake_the_client_started() {
    let (l, addr) = listener().await;
    let server = tokio::spawn(async move {
        let (tcp, _) = l.accept().await.unwrap();
        let mut ws = ws_tokio::accept_with_config(tcp, quiet()).await.unwrap();
        let mut seen = Vec::new();
        while let Some(m) = ws.recv().await {
            seen.push(m.expect("server recv"));
        }
        seen
    });
    let mut tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
    raw_client_handshake(&mut tcp).await;
    let (rd, mut wr) = tcp.into_split();
    wr.write_all(&cframe(true, OP_TEXT, b"last words"))
        .await
        .unwrap();
    wr.write_all(&cframe(true, OP_CLOSE, &close_payload(1000, "bye")))
        .await
        .unwrap();
    let mut r = FrameReader::new(rd);
    let f = r.expect().await;
    assert_eq!(f.opcode, OP_CLOSE);
    assert_eq!(f.close_code(), Some(1000), "the echo carries the code");
    r.expect_eof().await;
    let seen = bounded("server", server).await.unwrap();
    assert_eq!(
        seen,
        vec![
            Message::Text("last words".into()),
            Message::Close(Some((CloseCode::NORMAL, "bye".into())))
        ]
    );
}

#[tokio::test]
async fn close_without_code() {
    let (mut ws, mut raw) = raw_client_pair(quiet(), 4096).await;
    raw.write_all(&cframe(true, OP_CLOSE, &[])).await.unwrap();
    assert_eq!(
        bounded("close", ws.recv()).await.unwrap().unwrap(),
        Message::Close(None)
    );
    assert!(bounded("none", ws.recv()).await.is_none());
    let mut r = FrameReader::new(raw);
    let f = r.expect().await;
    assert_eq!((f.opcode, f.payload.len()), (OP_CLOSE, 0));
    r.expect_eof().await;
}

#[tokio::test]
async fn every_valid_close_code_comes_back_as_sent() {
    let mut codes: Vec<u16> = (1000..=1003).chain(1007..=1014).collect();
    codes.extend([3000, 3001, 3999, 4000, 4242, 4999]);
    let mut tasks = Vec::new();
    for code in codes {
        tasks.push(tokio::spawn(async move {
            let (mut s, mut c) = duplex_pair(quiet(), quiet(), 4096).await;
            let reason = format!("reason for {code}: ✓");
            let r2 = reason.clone();
            let client = tokio::spawn(async move { c.close(CloseCode(code), &r2).await });
            let m = bounded("close", s.recv()).await.unwrap().unwrap();
            assert_eq!(m, Message::Close(Some((CloseCode(code), reason))));
            assert!(bounded("none", s.recv()).await.is_none());
            bounded("client", client)
                .await
                .unwrap()
                .expect("client close");
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
}

#[tokio::test]
async fn longest_reason_and_invalid_codes() {
    let (mut s, mut c) = duplex_pair(quiet(), quiet(), 4096).await;
    for bad in [0u16, 999, 1004, 1005, 1006, 1015, 2999, 5000] {
        let e = c.close(CloseCode(bad), "").await.unwrap_err();
        assert!(matches!(e, Error::Usage(_)), "{bad}: {e:?}");
    }
    let e = c
        .close(CloseCode::NORMAL, &"r".repeat(124))
        .await
        .unwrap_err();
    assert!(matches!(e, Error::Usage(_)), "{e:?}");
    // Still open after the refused attempts; the longest reason goes through.
    let reason = "r".repeat(123);
    let r2 = reason.clone();
    let client = tokio::spawn(async move { c.close(CloseCode::NORMAL, &r2).await });
    let m = bounded("close", s.recv()).await.unwrap().unwrap();
    assert_eq!(m, Message::Close(Some((CloseCode::NORMAL, reason))));
    assert!(bounded("none", s.recv()).await.is_none());
    bounded("client", client).await.unwrap().unwrap();
}

#[tokio::test]
async fn close_times_out_when_the_peer_never_answers() {
    let close_timeout = Duration::from_millis(300);
    let cfg = Config {
        close_timeout,
        ..quiet()
    };
    let (mut ws, raw) = raw_client_pair(cfg, 4096).await;
    // The peer reads (so our close is delivered) but never answers and never closes.
    let peer = tokio::spawn(async move {
        let mut r = FrameReader::new(raw);
        let f = r.expect().await;
        assert_eq!(f.close_code(), Some(1000));
        r
    });
    let t0 = Instant::now();
    let e = bounded("close", ws.close(CloseCode::NORMAL, ""))
        .await
        .unwrap_err();
    let took = t0.elapsed();
    assert!(matches!(e, Error::Timeout(TimeoutKind::Close)), "{e:?}");
    assert!(
        took >= close_timeout - Duration::from_millis(20)
            && took < close_timeout + Duration::from_millis(250),
        "close took {took:?}"
    );
    let mut r = peer.await.unwrap();
    // We shut our side after giving up.
    r.expect_eof().await;
}

#[tokio::test]
async fn close_deadline_counts_from_the_close_not_from_connection_start() {
    // A connection that never ran a timer (no keepalive, no idle timeout), closed long after the
    // process's clock origin, must still wait for the peer's answer.
    let (mut s0, mut c0) = duplex_pair(quiet(), quiet(), 4096).await;
    let (a, b) = tokio::join!(
        s0.close(CloseCode::NORMAL, ""),
        c0.close(CloseCode::NORMAL, "")
    );
    a.unwrap();
    b.unwrap();
    let cfg = Config {
        close_timeout: Duration::from_millis(300),
        ..quiet()
    };
    let (mut s, mut c) = duplex_pair(cfg, cfg, 4096).await;
    tokio::time::sleep(Duration::from_millis(700)).await;
    let server = tokio::spawn(async move {
        // Answer a little late, well inside the close timeout.
        tokio::time::sleep(Duration::from_millis(100)).await;
        while let Some(m) = s.recv().await {
            m.expect("server recv");
        }
    });
    bounded("close", c.close(CloseCode::NORMAL, "late"))
        .await
        .expect("close must wait for the answer");
    bounded("server", server).await.unwrap();
}

#[tokio::test]
async fn sink_close_and_stream_end() {
    use futures_util::{SinkExt, StreamExt};
    let (mut s, mut c) = duplex_pair(quiet(), quiet(), 4096).await;
    let client = tokio::spawn(async move {
        c.send(Message::Text("one".into())).await.unwrap();
        SinkExt::close(&mut c).await
    });
    assert_eq!(
        bounded("one", s.next()).await.unwrap().unwrap(),
        Message::Text("one".into())
    );
    assert_eq!(
        bounded("close", s.next()).await.unwrap().unwrap(),
        Message::Close(Some((CloseCode::NORMAL, String::new())))
    );
    assert!(bounded("end", s.next()).await.is_none());
    bounded("client", client).await.unwrap().unwrap();
}
