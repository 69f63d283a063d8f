//! Split halves in separate tasks: pongs while the write half idles, close from the write half,
//! echo across halves, distinct masking keys. The tests over in-memory pipes run on tokio's
//! paused clock (the close deadline is asserted to the millisecond).

mod common;

use std::collections::HashSet;
use std::time::Duration;

use common::*;
use tokio::io::AsyncWriteExt;
use tokio::time::Instant;
use ws_tokio::{ClientRequest, CloseCode, CloseFrame, Message};

fn close(code: u16, reason: &str) -> Option<CloseFrame> {
    Some(CloseFrame::new(CloseCode(code), reason))
}

#[tokio::test(start_paused = true)]
async fn pongs_go_out_while_the_write_half_is_parked() {
    let (mut raw, io) = tokio::io::duplex(4096);
    let peer_hs = tokio::spawn(async move {
        raw_server_handshake(&mut raw).await;
        raw
    });
    let (ws, _) = bounded(
        "client",
        ws_tokio::client(io, ClientRequest::new("localhost", "/").config(quiet())),
    )
    .await
    .unwrap();
    let raw = peer_hs.await.unwrap();
    let (mut tx, mut rx) = ws.split();
    let (cmd, mut cmds) = tokio::sync::mpsc::channel::<Message>(4);
    let writer = tokio::spawn(async move {
        // Parked on the channel until the end.
        while let Some(m) = cmds.recv().await {
            tx.send(m).await.expect("tx send");
        }
    });
    let reader = tokio::spawn(async move {
        let mut n = 0;
        while let Some(m) = rx.recv().await {
            match m.expect("rx recv") {
                Message::Ping(_) => n += 1,
                Message::Close(_) => {}
                m => panic!("unexpected {m:?}"),
            }
        }
        n
    });
    let (rd, mut wr) = tokio::io::split(raw);
    let mut r = FrameReader::new(rd);
    let mut masks = HashSet::new();
    for i in 0..20u8 {
        wr.write_all(&sframe(true, OP_PING, &[i; 5])).await.unwrap();
        let f = r.expect().await;
        assert_eq!((f.opcode, f.payload.clone()), (OP_PONG, vec![i; 5]));
        masks.insert(f.mask.expect("client frames are masked"));
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    // Now the write half sends: its masking keys must not repeat the read half's.
    for i in 0..20u8 {
        cmd.send(Message::binary(vec![i; 3])).await.unwrap();
        let f = r.expect().await;
        assert_eq!((f.opcode, f.payload), (OP_BINARY, vec![i; 3]));
        masks.insert(f.mask.unwrap());
    }
    assert_eq!(masks.len(), 40, "masking keys repeat across the halves");
    // Server closes; the read half echoes it.
    wr.write_all(&sframe(true, OP_CLOSE, &close_payload(1000, "")))
        .await
        .unwrap();
    let f = r.expect().await;
    assert_eq!(f.close_code(), Some(1000));
    drop(cmd);
    drop(wr);
    drop(r);
    assert_eq!(bounded("reader", reader).await.unwrap(), 20);
    bounded("writer", writer).await.unwrap();
}

#[tokio::test]
async fn close_from_the_write_half_completes_when_the_read_half_sees_the_answer() {
    let (mut s, c) = tcp_pair(quiet(), quiet()).await;
    let (mut tx, mut rx) = c.split();
    let reader = tokio::spawn(async move {
        let mut seen = Vec::new();
        while let Some(m) = rx.recv().await {
            seen.push(m.expect("rx"));
        }
        seen
    });
    tx.send(Message::text("before close")).await.unwrap();
    tx.close(close(4000, "from tx")).await.unwrap();
    assert!(matches!(
        tx.send(Message::text("after")).await,
        Err(ws_tokio::Error::Closed)
    ));
    assert_eq!(
        bounded("text", s.recv()).await.unwrap().unwrap(),
        Message::text("before close")
    );
    assert_eq!(
        bounded("close", s.recv()).await.unwrap().unwrap(),
        Message::Close(close(4000, "from tx"))
    );
    assert!(bounded("server end", s.recv()).await.is_none());
    let seen = bounded("reader", reader).await.unwrap();
    assert_eq!(seen, vec![Message::Close(close(4000, ""))]);
}

#[tokio::test(start_paused = true)]
async fn close_from_the_write_half_times_out_when_never_answered() {
    let cfg = quiet().with_close_timeout(Duration::from_millis(300));
    let (mut raw, io) = tokio::io::duplex(4096);
    let srv = tokio::spawn(ws_tokio::accept_with_config(io, cfg));
    raw_client_handshake(&mut raw).await;
    let (mut tx, mut rx) = srv.await.unwrap().unwrap().split();
    let t0 = Instant::now();
    // The read half is already waiting when the write half closes.
    let reader = tokio::spawn(async move {
        let r = rx.recv().await;
        (r, t0.elapsed(), rx.recv().await.is_none())
    });
    tokio::time::sleep(Duration::from_millis(50)).await;
    tx.close(close(1000, "bye")).await.unwrap();
    // The peer reads the close but never answers, and keeps the connection open.
    let mut peer = FrameReader::new(raw);
    let f = bounded("close frame", peer.next()).await.expect("close");
    assert_eq!(f.close_code(), Some(1000));
    assert_eq!(t0.elapsed(), Duration::from_millis(50));
    let (r, took, ended) = bounded("read half", reader).await.unwrap();
    assert!(
        matches!(
            r,
            Some(Err(ws_tokio::Error::Timeout(ws_tokio::TimeoutKind::Close)))
        ),
        "{r:?}"
    );
    // The close deadline runs from the write half's close.
    assert_eq!(took, Duration::from_millis(350));
    assert!(ended);
    // Nothing but the one close frame was sent, then the transport was shut.
    assert!(bounded("eof", peer.next()).await.is_none());
    assert_eq!(t0.elapsed(), Duration::from_millis(350));
}

#[tokio::test]
async fn echo_across_halves() {
    let (s, c) = duplex_pair(quiet(), quiet(), 8 << 10).await;
    let echo = tokio::spawn(async move {
        let mut s = s;
        while let Some(m) = s.recv().await {
            if let m @ (Message::Text(_) | Message::Binary(_)) = m.expect("echo") {
                s.send(m).await.unwrap();
            }
        }
    });
    let (mut tx, mut rx) = c.split();
    const N: usize = 2000;
    let sender = tokio::spawn(async move {
        for i in 0..N {
            let m = if i % 2 == 0 {
                Message::text(format!("n{i}"))
            } else {
                Message::binary(vec![i as u8; i % 3000])
            };
            tx.send(m).await.expect("tx send");
        }
        tx
    });
    for i in 0..N {
        let m = bounded("rx", rx.recv()).await.unwrap().unwrap();
        if i % 2 == 0 {
            assert_eq!(m, Message::text(format!("n{i}")));
        } else {
            assert_eq!(m, Message::binary(vec![i as u8; i % 3000]));
        }
    }
    let mut tx = bounded("sender", sender).await.unwrap();
    tx.close(close(1000, "")).await.unwrap();
    assert!(matches!(
        bounded("close", rx.recv()).await,
        Some(Ok(Message::Close(_)))
    ));
    assert!(bounded("end", rx.recv()).await.is_none());
    bounded("echo", echo).await.unwrap();
}

#[tokio::test]
async fn split_halves_as_stream_and_sink() {
    use futures_util::{SinkExt, StreamExt};
    let (s, c) = duplex_pair(quiet(), quiet(), 8 << 10).await;
    // The server forwards its own stream into its own sink (an echo through Stream + Sink).
    let echo = tokio::spawn(async move {
        let (mut tx, rx) = s.split();
        let fwd = rx
            .take_while(|m| std::future::ready(!matches!(m, Ok(Message::Close(_)))))
            .filter(|m| std::future::ready(matches!(m, Ok(Message::Text(_) | Message::Binary(_)))));
        tx.send_all(&mut Box::pin(fwd)).await.expect("forward");
    });
    let (mut tx, mut rx) = c.split();
    for i in 0..100 {
        tx.feed(Message::text(format!("{i}"))).await.unwrap();
    }
    SinkExt::flush(&mut tx).await.unwrap();
    for i in 0..100 {
        let m = bounded("next", rx.next()).await.unwrap().unwrap();
        assert_eq!(m, Message::text(format!("{i}")));
    }
    SinkExt::close(&mut tx).await.unwrap();
    bounded("echo", echo).await.unwrap();
}

/// Found by the `tokio_stream` fuzz target: once the read half has seen the peer vanish and
/// shut the transport, the write half's close is refused instead of written.
#[tokio::test]
async fn the_write_half_does_not_close_an_ended_connection() {
    let (server, raw) = raw_client_pair(quiet(), 4096).await;
    let (mut tx, mut rx) = server.split();
    drop(raw);
    let end = bounded("read half ends", rx.recv()).await;
    assert!(
        matches!(end, Some(Err(ws_tokio::Error::PeerVanished))),
        "{end:?}"
    );
    let r = tx.close(close(1000, "")).await;
    assert!(matches!(r, Err(ws_tokio::Error::Closed)), "{r:?}");
    let r = tx.send(Message::text("late")).await;
    assert!(matches!(r, Err(ws_tokio::Error::Closed)), "{r:?}");
}
