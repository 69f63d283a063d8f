//! The close handshake in both orders, the server ending the transport first, every valid close
//! code, and the close timeout in each of its roles: waiting for the peer's close frame, a
//! client waiting for the server's EOF, a failed connection waiting for the peer's EOF.
//!
//! Every test runs on tokio's paused clock over in-memory pipes, so the deadlines are asserted
//! to the millisecond and no test waits in real time.

mod common;

use std::time::Duration;

use common::*;
use tokio::io::AsyncWriteExt;
use tokio::time::Instant;
use ws_tokio::{CloseCode, CloseFrame, Config, Error, Message, ProtocolError, State, TimeoutKind};

fn close(code: u16, reason: &str) -> Option<CloseFrame> {
    Some(CloseFrame::new(CloseCode(code), reason))
}

/// [`quiet`] with a close timeout of `ms` milliseconds.
fn close_timeout(ms: u64) -> Config {
    quiet().with_close_timeout(Duration::from_millis(ms))
}

#[tokio::test(start_paused = true)]
async fn client_closes_server_sees_close_then_none() {
    let (mut s, mut c) = duplex_pair(quiet(), quiet(), 16 << 10).await;
    let t0 = Instant::now();
    let client = tokio::spawn(async move {
        let r = c.close(close(1000, "done")).await;
        (r, c.state())
    });
    let m = bounded("close", s.recv()).await.unwrap().unwrap();
    assert_eq!(m, Message::Close(close(1000, "done")));
    assert!(bounded("none", s.recv()).await.is_none());
    assert!(bounded("none again", s.recv()).await.is_none());
    assert_eq!(s.state(), State::Terminated);
    let (r, state) = bounded("client close", client).await.unwrap();
    r.expect("client close");
    assert_eq!(state, State::Terminated);
    // No deadline was waited for: the server ended the transport as soon as it answered.
    assert_eq!(t0.elapsed(), Duration::ZERO);
    // Nothing more can be sent.
    assert!(matches!(
        s.send(Message::text("late")).await,
        Err(Error::Closed)
    ));
}

#[tokio::test(start_paused = true)]
async fn server_closes_client_sees_it() {
    let (mut s, mut c) = duplex_pair(quiet(), quiet(), 16 << 10).await;
    let t0 = Instant::now();
    let server = tokio::spawn(async move { s.close(close(1001, "restart")).await });
    let m = bounded("close", c.recv()).await.unwrap().unwrap();
    assert_eq!(m, Message::Close(close(1001, "restart")));
    assert!(bounded("none", c.recv()).await.is_none());
    assert_eq!(c.state(), State::Terminated);
    bounded("server close", server)
        .await
        .unwrap()
        .expect("server close");
    assert_eq!(t0.elapsed(), Duration::ZERO);
}

#[tokio::test(start_paused = true)]
async fn both_close_at_once() {
    let (mut s, mut c) = duplex_pair(quiet(), quiet(), 16 << 10).await;
    let t0 = Instant::now();
    let (a, b) = tokio::join!(s.close(close(1000, "s")), c.close(close(1000, "c")));
    a.expect("server close");
    b.expect("client close");
    assert_eq!(
        (s.state(), c.state()),
        (State::Terminated, State::Terminated)
    );
    assert_eq!(t0.elapsed(), Duration::ZERO);
}

#[tokio::test(start_paused = true)]
async fn server_ends_the_transport_after_a_handshake_it_started() {
    let (mut ws, raw) = raw_client_pair(quiet(), 4096).await;
    let server = tokio::spawn(async move { ws.close(close(4001, "custom")).await });
    let (rd, mut wr) = tokio::io::split(raw);
    let mut r = FrameReader::new(rd);
    let f = r.expect().await;
    assert_eq!(f.close_code(), Some(4001));
    assert_eq!(&f.payload[2..], b"custom");
    assert_eq!(f.mask, None);
    let t0 = Instant::now();
    wr.write_all(&cframe(true, OP_CLOSE, &close_payload(4001, "")))
        .await
        .unwrap();
    // The server ends the transport first: EOF without us closing our side.
    r.expect_eof().await;
    assert_eq!(t0.elapsed(), Duration::ZERO);
    bounded("server", server)
        .await
        .unwrap()
        .expect("server close");
}

#[tokio::test(start_paused = true)]
async fn server_ends_the_transport_after_a_handshake_the_client_started() {
    let (mut ws, raw) = raw_client_pair(quiet(), 4096).await;
    let server = tokio::spawn(async move {
        let mut seen = Vec::new();
        while let Some(m) = ws.recv().await {
            seen.push(m.expect("server recv"));
        }
        (seen, Instant::now())
    });
    let (rd, mut wr) = tokio::io::split(raw);
    let t0 = Instant::now();
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
    assert_eq!(f.payload.len(), 2, "the echo carries no reason");
    // The peer keeps its side open: the server does not wait for it.
    r.expect_eof().await;
    let (seen, ended) = bounded("server", server).await.unwrap();
    assert_eq!(ended - t0, Duration::ZERO);
    assert_eq!(
        seen,
        vec![
            Message::text("last words"),
            Message::Close(close(1000, "bye"))
        ]
    );
    drop(wr);
}

#[tokio::test(start_paused = true)]
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

#[tokio::test(start_paused = true)]
async fn close_with_none_sends_a_close_frame_without_code() {
    let (mut s, mut c) = duplex_pair(quiet(), quiet(), 4096).await;
    let client = tokio::spawn(async move { c.close(None).await });
    assert_eq!(
        bounded("close", s.recv()).await.unwrap().unwrap(),
        Message::Close(None)
    );
    assert!(bounded("none", s.recv()).await.is_none());
    bounded("client", client)
        .await
        .unwrap()
        .expect("client close");
}

#[tokio::test(start_paused = true)]
async fn every_valid_close_code_comes_back_as_sent() {
    let mut codes: Vec<u16> = (1000..=1003).chain(1007..=1014).collect();
    codes.extend([3000, 3001, 3999, 4000, 4242, 4999]);
    let mut tasks = Vec::new();
    for code in codes {
        tasks.push(tokio::spawn(async move {
            let (mut s, mut c) = duplex_pair(quiet(), quiet(), 4096).await;
            let reason = format!("reason for {code}: ✓");
            let sent = close(code, &reason);
            let client = tokio::spawn(async move {
                let r = c.close(sent).await;
                (r, c.recv().await.is_none())
            });
            let m = bounded("close", s.recv()).await.unwrap().unwrap();
            assert_eq!(m, Message::Close(close(code, &reason)));
            assert!(bounded("none", s.recv()).await.is_none());
            let (r, ended) = bounded("client", client).await.unwrap();
            r.expect("client close");
            assert!(ended, "recv after close is None");
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
}

#[tokio::test(start_paused = true)]
async fn longest_reason_and_invalid_codes() {
    let (mut s, mut c) = duplex_pair(quiet(), quiet(), 4096).await;
    for bad in [0u16, 999, 1004, 1005, 1006, 1015, 2999, 5000] {
        let e = c.close(close(bad, "")).await.unwrap_err();
        assert!(matches!(e, Error::Usage(_)), "{bad}: {e:?}");
        assert_eq!(c.state(), State::Open);
    }
    let e = c.close(close(1000, &"r".repeat(124))).await.unwrap_err();
    assert!(matches!(e, Error::Usage(_)), "{e:?}");
    // Still open after the refused attempts; the longest reason goes through.
    assert_eq!(c.state(), State::Open);
    let reason = "r".repeat(123);
    let sent = close(1000, &reason);
    let client = tokio::spawn(async move { c.close(sent).await });
    let m = bounded("close", s.recv()).await.unwrap().unwrap();
    assert_eq!(m, Message::Close(close(1000, &reason)));
    assert!(bounded("none", s.recv()).await.is_none());
    bounded("client", client).await.unwrap().unwrap();
}

#[tokio::test(start_paused = true)]
async fn close_times_out_when_the_peer_never_answers() {
    let (mut ws, raw) = raw_client_pair(close_timeout(300), 4096).await;
    let t0 = Instant::now();
    // The peer reads (so our close is delivered) but never answers and never closes.
    let peer = tokio::spawn(async move {
        let mut r = FrameReader::new(raw);
        let f = r.expect().await;
        assert_eq!(f.close_code(), Some(1000));
        // We shut our side when we give up.
        r.expect_eof().await;
        t0.elapsed()
    });
    let e = bounded("close", ws.close(close(1000, "")))
        .await
        .unwrap_err();
    assert!(matches!(e, Error::Timeout(TimeoutKind::Close)), "{e:?}");
    assert_eq!(t0.elapsed(), Duration::from_millis(300));
    assert_eq!(ws.state(), State::Terminated);
    // A peer that did not answer in time is given up at once: no wait for its EOF.
    assert_eq!(
        bounded("peer", peer).await.unwrap(),
        Duration::from_millis(300)
    );
    assert!(ws.recv().await.is_none());
}

#[tokio::test(start_paused = true)]
async fn recv_reports_the_close_timeout_once_then_none() {
    let (mut ws, raw) = raw_client_pair(close_timeout(250), 4096).await;
    let t0 = Instant::now();
    // Start the close handshake through the Sink, then wait on recv.
    futures_util::SinkExt::start_send_unpin(&mut ws, Message::Close(close(1000, "bye"))).unwrap();
    assert_eq!(ws.state(), State::ClosedByUs);
    let r = bounded("recv", ws.recv()).await;
    assert!(
        matches!(r, Some(Err(Error::Timeout(TimeoutKind::Close)))),
        "{r:?}"
    );
    assert_eq!(t0.elapsed(), Duration::from_millis(250));
    assert!(ws.recv().await.is_none());
    assert!(ws.recv().await.is_none());
    let mut r = FrameReader::new(raw);
    assert_eq!(r.expect().await.close_code(), Some(1000));
    r.expect_eof().await;
}

#[tokio::test(start_paused = true)]
async fn messages_that_arrive_while_we_wait_for_the_close_answer_are_delivered() {
    let (mut ws, raw) = raw_client_pair(quiet(), 4096).await;
    futures_util::SinkExt::start_send_unpin(&mut ws, Message::Close(close(1000, ""))).unwrap();
    let (rd, mut wr) = tokio::io::split(raw);
    wr.write_all(&cframe(true, OP_TEXT, b"in flight"))
        .await
        .unwrap();
    wr.write_all(&cframe(true, OP_CLOSE, &close_payload(1000, "")))
        .await
        .unwrap();
    assert_eq!(
        bounded("text", ws.recv()).await.unwrap().unwrap(),
        Message::text("in flight")
    );
    assert_eq!(
        bounded("close", ws.recv()).await.unwrap().unwrap(),
        Message::Close(close(1000, ""))
    );
    assert!(bounded("end", ws.recv()).await.is_none());
    let mut r = FrameReader::new(rd);
    assert_eq!(r.expect().await.close_code(), Some(1000));
    r.expect_eof().await;
}

#[tokio::test(start_paused = true)]
async fn a_client_waits_for_the_servers_eof_up_to_the_close_timeout() {
    let (mut raw, io) = tokio::io::duplex(4096);
    let peer = tokio::spawn(async move {
        raw_server_handshake(&mut raw).await;
        let (rd, mut wr) = tokio::io::split(raw);
        let mut r = FrameReader::new(rd);
        let f = r.expect().await;
        assert_eq!(f.close_code(), Some(4000));
        assert!(f.mask.is_some());
        // Answer at once, but keep the transport open (a server that never ends it).
        let t0 = Instant::now();
        wr.write_all(&sframe(true, OP_CLOSE, &close_payload(4000, "")))
            .await
            .unwrap();
        r.expect_eof().await;
        (t0.elapsed(), wr)
    });
    let (mut ws, _) = bounded(
        "client",
        ws_tokio::client(
            io,
            ws_tokio::ClientRequest::new("localhost", "/").config(close_timeout(400)),
        ),
    )
    .await
    .unwrap();
    let t0 = Instant::now();
    // The handshake completed: the close succeeds, after the wait for the server's EOF.
    bounded("close", ws.close(close(4000, "from the client")))
        .await
        .expect("a close handshake that completed is Ok");
    assert_eq!(t0.elapsed(), Duration::from_millis(400));
    assert_eq!(ws.state(), State::Terminated);
    let (eof_after, _wr) = bounded("peer", peer).await.unwrap();
    assert_eq!(
        eof_after,
        Duration::from_millis(400),
        "the client shut its side then"
    );
}

#[tokio::test(start_paused = true)]
async fn a_client_ends_as_soon_as_the_server_ends_the_transport() {
    let (mut raw, io) = tokio::io::duplex(4096);
    let peer = tokio::spawn(async move {
        raw_server_handshake(&mut raw).await;
        let (rd, mut wr) = tokio::io::split(raw);
        // The server closes, reads the answer, and ends the transport after 50 ms.
        wr.write_all(&sframe(true, OP_CLOSE, &close_payload(1001, "going")))
            .await
            .unwrap();
        let mut r = FrameReader::new(rd);
        let f = r.expect().await;
        assert_eq!(f.close_code(), Some(1001));
        tokio::time::sleep(Duration::from_millis(50)).await;
        wr.shutdown().await.unwrap();
        r.expect_eof().await;
    });
    let (mut ws, _) = bounded(
        "client",
        ws_tokio::client(
            io,
            ws_tokio::ClientRequest::new("localhost", "/").config(close_timeout(1000)),
        ),
    )
    .await
    .unwrap();
    let m = bounded("close", ws.recv()).await.unwrap().unwrap();
    assert_eq!(m, Message::Close(close(1001, "going")));
    let t0 = Instant::now();
    assert!(bounded("end", ws.recv()).await.is_none());
    assert_eq!(t0.elapsed(), Duration::from_millis(50));
    bounded("peer", peer).await.unwrap();
}

#[tokio::test(start_paused = true)]
async fn a_failed_connection_waits_for_the_peers_eof_up_to_the_close_timeout() {
    let (mut ws, raw) = raw_client_pair(close_timeout(700), 4096).await;
    let (rd, mut wr) = tokio::io::split(raw);
    let t0 = Instant::now();
    let server = tokio::spawn(async move {
        let r = ws.recv().await;
        (r, t0.elapsed(), ws.recv().await.is_none())
    });
    // An unmasked frame from a client: 1002.
    wr.write_all(&frame_b0(0x81, b"unmasked", None))
        .await
        .unwrap();
    let mut r = FrameReader::new(rd);
    let f = r.expect().await;
    assert_eq!(f.close_code(), Some(1002));
    // The close frame is followed by the server's EOF at once ...
    r.expect_eof().await;
    assert_eq!(t0.elapsed(), Duration::ZERO);
    // ... but the error is reported only when the peer ends its side, or the close timeout
    // passes: here the peer never does.
    let (res, took, ended) = bounded("server", server).await.unwrap();
    assert!(
        matches!(
            res,
            Some(Err(Error::Protocol {
                error: ProtocolError::UnmaskedFrame,
                sent: Some(CloseCode::PROTOCOL_ERROR),
            }))
        ),
        "{res:?}"
    );
    assert_eq!(took, Duration::from_millis(700));
    assert!(ended, "one error, then None");
    drop(wr);
}

#[tokio::test(start_paused = true)]
async fn a_failure_in_bytes_read_with_an_earlier_message_ends_the_transport_at_once() {
    let (mut ws, raw) = raw_client_pair(close_timeout(700), 1 << 16).await;
    let (rd, mut wr) = tokio::io::split(raw);
    // One write, so one read: a message, then an unmasked frame kept for the next recv.
    let mut bytes = cframe(true, OP_BINARY, &[5u8; 10]);
    bytes.extend(frame_b0(0x81, b"hi", None));
    wr.write_all(&bytes).await.unwrap();
    let t0 = Instant::now();
    let server = tokio::spawn(async move {
        let first = ws.recv().await;
        let second = ws.recv().await;
        (first, second, t0.elapsed())
    });
    let mut r = FrameReader::new(rd);
    assert_eq!(r.expect().await.close_code(), Some(1002));
    r.expect_eof().await;
    assert_eq!(
        t0.elapsed(),
        Duration::ZERO,
        "shut right after the close frame"
    );
    drop((r, wr));
    let (first, second, took) = bounded("server", server).await.unwrap();
    assert_eq!(first.unwrap().unwrap(), Message::binary(vec![5u8; 10]));
    assert!(
        matches!(
            second,
            Some(Err(Error::Protocol {
                error: ProtocolError::UnmaskedFrame,
                ..
            }))
        ),
        "{second:?}"
    );
    assert_eq!(took, Duration::ZERO, "the peer's EOF ended the wait");
}

#[tokio::test(start_paused = true)]
async fn a_failure_in_bytes_read_with_the_handshake_ends_the_transport_at_once() {
    let (mut raw, io) = tokio::io::duplex(4096);
    let peer = tokio::spawn(async move {
        // The 101 response and a masked (forbidden) server frame arrive in one read.
        let head = read_head(&mut raw).await;
        let key = head
            .lines()
            .find_map(|l| l.strip_prefix("Sec-WebSocket-Key: "))
            .unwrap()
            .to_string();
        let accept = ws_proto::handshake::accept_key(key.as_bytes());
        let mut out = format!(
            "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
             Sec-WebSocket-Accept: {}\r\n\r\n",
            std::str::from_utf8(&accept).unwrap()
        )
        .into_bytes();
        out.extend(frame_b0(0x81, b"masked", Some([1, 2, 3, 4])));
        raw.write_all(&out).await.unwrap();
        let t0 = Instant::now();
        let mut r = FrameReader::new(raw);
        assert_eq!(r.expect().await.close_code(), Some(1002));
        r.expect_eof().await;
        t0.elapsed()
    });
    let (mut ws, _) = bounded(
        "client",
        ws_tokio::client(
            io,
            ws_tokio::ClientRequest::new("localhost", "/").config(close_timeout(700)),
        ),
    )
    .await
    .unwrap();
    let e = bounded("recv", ws.recv()).await.unwrap().unwrap_err();
    assert!(
        matches!(
            e,
            Error::Protocol {
                error: ProtocolError::MaskedFrame,
                ..
            }
        ),
        "{e:?}"
    );
    assert_eq!(bounded("peer", peer).await.unwrap(), Duration::ZERO);
}

#[tokio::test(start_paused = true)]
async fn a_failed_connection_ends_when_the_peer_ends_its_side() {
    let (mut ws, raw) = raw_client_pair(close_timeout(700), 4096).await;
    let (rd, mut wr) = tokio::io::split(raw);
    let t0 = Instant::now();
    let server = tokio::spawn(async move { (ws.recv().await, t0.elapsed()) });
    wr.write_all(&cframe(true, OP_TEXT, &[0xff])).await.unwrap();
    let mut r = FrameReader::new(rd);
    assert_eq!(r.expect().await.close_code(), Some(1007));
    r.expect_eof().await;
    tokio::time::sleep(Duration::from_millis(30)).await;
    wr.shutdown().await.unwrap();
    let (res, took) = bounded("server", server).await.unwrap();
    assert!(
        matches!(
            res,
            Some(Err(Error::InvalidUtf8 {
                sent: Some(CloseCode::INVALID_PAYLOAD)
            }))
        ),
        "{res:?}"
    );
    assert_eq!(took, Duration::from_millis(30));
}

#[tokio::test(start_paused = true)]
async fn close_deadline_counts_from_the_close_not_from_connection_start() {
    // A connection that never ran a timer (no keepalive, no idle timeout), closed long after it
    // opened, must still wait for the peer's answer.
    let cfg = close_timeout(300);
    let (mut s, mut c) = duplex_pair(cfg, cfg, 4096).await;
    tokio::time::sleep(Duration::from_millis(700)).await;
    let server = tokio::spawn(async move {
        // Answer a little late, well inside the close timeout.
        tokio::time::sleep(Duration::from_millis(100)).await;
        while let Some(m) = s.recv().await {
            m.expect("server recv");
        }
    });
    let t0 = Instant::now();
    bounded("close", c.close(close(1000, "late")))
        .await
        .expect("close must wait for the answer");
    assert_eq!(t0.elapsed(), Duration::from_millis(100));
    bounded("server", server).await.unwrap();
}

#[tokio::test(start_paused = true)]
async fn sink_close_and_stream_end() {
    use futures_util::{SinkExt, StreamExt};
    let (mut s, mut c) = duplex_pair(quiet(), quiet(), 4096).await;
    let client = tokio::spawn(async move {
        c.send(Message::text("one")).await.unwrap();
        SinkExt::close(&mut c).await
    });
    assert_eq!(
        bounded("one", s.next()).await.unwrap().unwrap(),
        Message::text("one")
    );
    assert_eq!(
        bounded("close", s.next()).await.unwrap().unwrap(),
        Message::Close(close(1000, ""))
    );
    assert!(bounded("end", s.next()).await.is_none());
    bounded("client", client).await.unwrap().unwrap();
}
