//! Hostile peers: endless fragmented messages, a trickled handshake, a ping flood. The
//! handshake deadlines run on tokio's paused clock over in-memory pipes (asserted to the
//! millisecond, no real waiting).

mod common;

use std::time::Duration;

use common::*;
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;
use tokio::time::Instant;
use ws_tokio::{ClientRequest, CloseCode, Config, Error, Limit, Limits, Message, TimeoutKind};

/// A raw client starts a fragmented message and sends `frame` continuations forever (bounded
/// by `max_frames`); returns the close code it reads, the bytes it had written by then, and the
/// server's error.
async fn endless_fragments(cfg: Config, frame: Vec<u8>, max_frames: usize) -> (u16, usize, Error) {
    let (l, addr) = listener().await;
    let server = tokio::spawn(async move {
        let (tcp, _) = l.accept().await.unwrap();
        let mut ws = ws_tokio::accept_with_config(tcp, cfg).await.unwrap();
        match ws.recv().await {
            Some(Ok(m)) => panic!("no message can complete: {m:?}"),
            Some(Err(e)) => e,
            None => panic!("clean end"),
        }
    });
    let mut tcp = TcpStream::connect(addr).await.unwrap();
    raw_client_handshake(&mut tcp).await;
    let (rd, mut wr) = tcp.into_split();
    let (tx, mut rx) = tokio::sync::oneshot::channel::<()>();
    let writer = tokio::spawn(async move {
        let mut written = 0usize;
        let first = cframe(false, OP_BINARY, b"start");
        wr.write_all(&first).await.unwrap();
        written += first.len();
        let batch: Vec<u8> = frame
            .iter()
            .copied()
            .cycle()
            .take(frame.len() * 64)
            .collect();
        for _ in 0..max_frames / 64 {
            if rx.try_recv().is_ok() {
                break;
            }
            if wr.write_all(&batch).await.is_err() {
                break;
            }
            written += batch.len();
        }
        (written, wr)
    });
    let mut r = FrameReader::new(rd);
    let f = r.expect().await;
    let code = f.close_code().unwrap();
    r.expect_eof().await;
    let _ = tx.send(());
    let (written, wr) = bounded("writer", writer).await.unwrap();
    drop((r, wr));
    let e = bounded("server", server).await.unwrap();
    (code, written, e)
}

#[tokio::test]
async fn endless_fragmented_message_hits_max_message_size() {
    let cfg = quiet().with_limits(
        Limits::default()
            .with_max_message_size(1 << 20)
            .with_max_frame_size(64 << 10),
    );
    let (code, _written, e) =
        endless_fragments(cfg, cframe(false, OP_CONT, &[7u8; 4096]), 20_000).await;
    assert_eq!(code, 1009);
    assert!(
        matches!(
            e,
            Error::LimitExceeded {
                limit: Limit::MessageSize,
                sent: Some(CloseCode::MESSAGE_TOO_BIG)
            }
        ),
        "{e:?}"
    );
}

#[tokio::test]
async fn endless_empty_fragments_hit_max_fragments() {
    let cfg = quiet().with_limits(Limits::default().with_max_fragments(1000));
    let (code, _, e) = endless_fragments(cfg, cframe(false, OP_CONT, &[]), 1_000_000).await;
    assert_eq!(code, 1009);
    assert!(
        matches!(
            e,
            Error::LimitExceeded {
                limit: Limit::Fragments,
                sent: Some(CloseCode::MESSAGE_TOO_BIG)
            }
        ),
        "{e:?}"
    );
}

/// [`quiet`] with a handshake deadline of 300 ms.
fn handshake_300ms() -> Config {
    quiet().with_handshake_timeout(Duration::from_millis(300))
}

#[tokio::test(start_paused = true)]
async fn trickled_handshake_times_out_on_the_server() {
    let cfg = handshake_300ms();
    let (mut raw, io) = tokio::io::duplex(4096);
    let t0 = Instant::now();
    let server =
        tokio::spawn(async move { ws_tokio::accept_with_config(io, cfg).await.map(|_| ()) });
    let trickle = tokio::spawn(async move {
        for b in request().bytes() {
            if raw.write_all(&[b]).await.is_err() {
                break;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    });
    let e = bounded("server", server).await.unwrap().unwrap_err();
    assert!(matches!(e, Error::Timeout(TimeoutKind::Handshake)), "{e:?}");
    // Each byte came in time, the whole head did not.
    assert_eq!(t0.elapsed(), Duration::from_millis(300));
    trickle.abort();
}

#[tokio::test(start_paused = true)]
async fn trickled_handshake_response_times_out_on_the_client() {
    let cfg = handshake_300ms();
    let (mut raw, io) = tokio::io::duplex(4096);
    let peer = tokio::spawn(async move {
        read_head(&mut raw).await;
        for b in b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n".iter() {
            if raw.write_all(&[*b]).await.is_err() {
                break;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    });
    let t0 = Instant::now();
    let e = bounded(
        "client",
        ws_tokio::client(io, ClientRequest::new("localhost", "/").config(cfg)),
    )
    .await
    .map(|_| ())
    .unwrap_err();
    assert!(matches!(e, Error::Timeout(TimeoutKind::Handshake)), "{e:?}");
    assert_eq!(t0.elapsed(), Duration::from_millis(300));
    peer.abort();
}

#[tokio::test]
async fn ping_flood_gets_bounded_pongs_and_the_server_stays_responsive() {
    const PINGS: u64 = 100_000;
    const PIPE: usize = 64 << 10;
    const WBUF: usize = 16 << 10;
    let cfg = quiet().with_write_buffer_size(WBUF);
    let (raw, io) = tokio::io::duplex(PIPE);
    let (all_seen, seen) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(async move {
        let mut ws = ws_tokio::accept_with_config(io, cfg).await.unwrap();
        let mut pings = 0u64;
        let mut all_seen = Some(all_seen);
        while let Some(m) = ws.recv().await {
            match m.expect("server recv") {
                Message::Ping(_) => {
                    pings += 1;
                    if pings == PINGS {
                        let _ = all_seen.take().unwrap().send(());
                    }
                }
                m @ Message::Text(_) => ws.send(m).await.expect("echo"),
                _ => {}
            }
        }
        pings
    });
    let mut raw = raw;
    raw_client_handshake(&mut raw).await;
    let (rd, mut wr) = tokio::io::split(raw);
    // The burst, without reading anything back.
    let mut batch = Vec::with_capacity(1000 * 14);
    for i in 0..PINGS {
        batch.extend(cframe(true, OP_PING, &i.to_be_bytes()));
        if batch.len() >= 1000 * 14 || i == PINGS - 1 {
            bounded("burst", wr.write_all(&batch)).await.unwrap();
            batch.clear();
        }
    }
    bounded(
        "text",
        wr.write_all(&cframe(true, OP_TEXT, b"after the flood")),
    )
    .await
    .unwrap();
    // Every ping has been processed before we read a single pong.
    bounded("all pings processed", seen).await.unwrap();
    let mut r = FrameReader::new(rd);
    let mut pong_bytes = 0usize;
    let mut pongs = 0usize;
    let mut last_pong = None;
    loop {
        let f = r.expect().await;
        match f.opcode {
            OP_PONG => {
                pongs += 1;
                pong_bytes += 2 + f.payload.len();
                last_pong = Some(u64::from_be_bytes(f.payload[..].try_into().unwrap()));
            }
            OP_TEXT => {
                assert_eq!(f.payload, b"after the flood");
                break;
            }
            op => panic!("unexpected opcode {op}"),
        }
    }
    // Close; the newest pong (for the last ping) arrives before the close echo at the latest.
    wr.write_all(&cframe(true, OP_CLOSE, &close_payload(1000, "")))
        .await
        .unwrap();
    loop {
        let f = r.expect().await;
        match f.opcode {
            OP_PONG => {
                pongs += 1;
                pong_bytes += 2 + f.payload.len();
                last_pong = Some(u64::from_be_bytes(f.payload[..].try_into().unwrap()));
            }
            OP_CLOSE => break,
            op => panic!("unexpected opcode {op}"),
        }
    }
    r.expect_eof().await;
    drop((r, wr));
    assert_eq!(bounded("server", server).await.unwrap(), PINGS);
    assert!(pongs >= 1);
    assert_eq!(last_pong, Some(PINGS - 1), "the newest pong wins");
    // What fits in the pipe and the write buffer, plus a few frames; not one pong per ping.
    assert!(
        pong_bytes <= PIPE + WBUF + 1024,
        "{pongs} pongs, {pong_bytes} bytes for {PINGS} pings"
    );
}

#[tokio::test]
async fn a_message_in_max_fragments_frames_is_whole_one_frame_more_is_1009() {
    let cfg = quiet().with_limits(Limits::default().with_max_fragments(1000));
    let (mut ws, raw) = raw_client_pair(cfg, 64 << 10).await;
    let message = |frames: usize| {
        let mut wire = Vec::new();
        for i in 0..frames {
            let op = if i == 0 { OP_BINARY } else { OP_CONT };
            wire.extend(cframe(i == frames - 1, op, &[i as u8]));
        }
        wire
    };
    let (rd, mut wr) = tokio::io::split(raw);
    let writer = tokio::spawn(async move {
        wr.write_all(&message(1000)).await.unwrap();
        wr.write_all(&message(1001)).await.unwrap();
        wr
    });
    let m = bounded("1000 frames", ws.recv()).await.unwrap().unwrap();
    let want: Vec<u8> = (0..1000).map(|i| i as u8).collect();
    assert_eq!(m, Message::binary(want));
    let mut r = FrameReader::new(rd);
    let server = tokio::spawn(async move { ws.recv().await });
    assert_eq!(r.expect().await.close_code(), Some(1009));
    r.expect_eof().await;
    drop((r, bounded("writer", writer).await.unwrap()));
    let e = bounded("server", server).await.unwrap();
    assert!(
        matches!(
            e,
            Some(Err(Error::LimitExceeded {
                limit: Limit::Fragments,
                sent: Some(CloseCode::MESSAGE_TOO_BIG)
            }))
        ),
        "{e:?}"
    );
}
