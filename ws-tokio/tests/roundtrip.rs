//! Round trips in both directions over duplex and TCP; fragmented messages from a raw peer;
//! automatic pongs; user pings and pongs; Stream/Sink forwarding.

mod common;

use common::*;
use futures_util::{SinkExt, StreamExt};
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt};
use ws_tokio::{CloseCode, CloseFrame, Message, WebSocket};

/// The payloads; the 16 MiB one only when `big` (it costs seconds in debug builds).
fn payloads(big: bool) -> Vec<Message> {
    let pattern = |n: usize| (0..n).map(|i| (i * 31 + 7) as u8).collect::<Vec<u8>>();
    vec![
        Message::text(""),
        Message::text("héllo wörld ✓"),
        Message::text("x".repeat(125)),
        Message::text("€".repeat((64 << 10) / 3)),
        Message::binary(Vec::new()),
        Message::binary(pattern(125)),
        Message::binary(pattern(126)),
        Message::binary(pattern(64 << 10)),
        Message::binary(pattern(65_536 + 1)),
    ]
    .into_iter()
    .chain(big.then(|| Message::binary(pattern(16 << 20))))
    .collect()
}

/// Sends every payload from `a` to `b` and back, checking each arrives intact.
async fn round_trip<A, B>(mut a: WebSocket<A>, mut b: WebSocket<B>, big: bool)
where
    A: AsyncRead + AsyncWrite + Unpin,
    B: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    // `b` echoes.
    let echo = tokio::spawn(async move {
        while let Some(m) = b.recv().await {
            match m.expect("echo recv") {
                m @ (Message::Text(_) | Message::Binary(_)) => b.send(m).await.expect("echo send"),
                Message::Close(_) => {}
                _ => {}
            }
        }
    });
    for m in payloads(big) {
        bounded("send", a.send(m.clone())).await.expect("send");
        let got = bounded("recv", a.recv())
            .await
            .expect("message")
            .expect("ok");
        assert!(got == m, "payload of {} bytes mangled", m.len());
    }
    bounded(
        "close",
        a.close(Some(CloseFrame::new(CloseCode::NORMAL, "bye"))),
    )
    .await
    .expect("close");
    bounded("echo task", echo).await.unwrap();
}

#[tokio::test]
async fn duplex_client_to_server() {
    let (s, c) = duplex_pair(quiet(), quiet(), 64 << 10).await;
    round_trip(c, s, true).await;
}

#[tokio::test]
async fn duplex_server_to_client() {
    let (s, c) = duplex_pair(quiet(), quiet(), 64 << 10).await;
    round_trip(s, c, false).await;
}

#[tokio::test]
async fn tcp_client_to_server() {
    let (s, c) = tcp_pair(quiet(), quiet()).await;
    round_trip(c, s, false).await;
}

#[tokio::test]
async fn tcp_server_to_client() {
    let (s, c) = tcp_pair(quiet(), quiet()).await;
    round_trip(s, c, true).await;
}

#[tokio::test]
async fn duplex_compressed_both_ways() {
    let (s, c) = duplex_pair(compressed(), compressed(), 64 << 10).await;
    assert!(s.compression_enabled() && c.compression_enabled());
    round_trip(c, s, false).await;
    let (s, c) = duplex_pair(compressed(), compressed(), 64 << 10).await;
    round_trip(s, c, false).await;
}

#[tokio::test]
async fn tcp_compressed_mixed_settings() {
    // Only one side wants compression: messages flow uncompressed.
    let (s, c) = tcp_pair(compressed(), quiet()).await;
    assert!(!s.compression_enabled() && !c.compression_enabled());
    round_trip(c, s, false).await;
    let (s, c) = tcp_pair(quiet(), compressed()).await;
    assert!(!s.compression_enabled() && !c.compression_enabled());
    round_trip(s, c, false).await;
}

#[tokio::test]
async fn fragmented_message_from_raw_client_is_assembled() {
    let (mut ws, mut raw) = raw_client_pair(quiet(), 64 << 10).await;

    // Text in three fragments, a ping in between, a multi-byte character split across frames.
    let text = "frag-€-ment";
    let bytes = text.as_bytes();
    let mut wire = cframe(false, OP_TEXT, &bytes[..6]);
    wire.extend(cframe(false, OP_CONT, &bytes[6..7]));
    wire.extend(cframe(true, OP_PING, b"mid"));
    wire.extend(cframe(false, OP_CONT, &[]));
    wire.extend(cframe(true, OP_CONT, &bytes[7..]));
    // Binary in many small fragments, written one byte at a time.
    let bin: Vec<u8> = (0..300u32).map(|i| i as u8).collect();
    wire.extend(cframe(false, OP_BINARY, &bin[..1]));
    for chunk in bin[1..299].chunks(7) {
        wire.extend(cframe(false, OP_CONT, chunk));
    }
    wire.extend(cframe(true, OP_CONT, &bin[299..]));
    let writer = tokio::spawn(async move {
        let (head, tail) = wire.split_at(40);
        raw.write_all(head).await.unwrap();
        for b in tail {
            raw.write_all(std::slice::from_ref(b)).await.unwrap();
        }
        raw
    });
    let m = bounded("ping", ws.recv()).await.unwrap().unwrap();
    assert_eq!(m, Message::ping(&b"mid"[..]));
    let m = bounded("text", ws.recv()).await.unwrap().unwrap();
    assert_eq!(m, Message::text(text));
    let m = bounded("binary", ws.recv()).await.unwrap().unwrap();
    assert_eq!(m, Message::binary(bin));
    let raw = writer.await.unwrap();
    // The pong for "mid" went out while the app only called recv.
    let mut r = FrameReader::new(raw);
    let f = r.expect().await;
    assert_eq!(
        (f.opcode, f.payload.as_slice(), f.mask),
        (OP_PONG, &b"mid"[..], None)
    );
}

#[tokio::test]
async fn ping_is_answered_while_app_only_receives() {
    let (s, mut c) = duplex_pair(quiet(), quiet(), 64 << 10).await;
    let server = tokio::spawn(async move {
        let mut s = s;
        let mut seen = Vec::new();
        while let Some(m) = s.recv().await {
            seen.push(m.expect("server recv"));
        }
        seen
    });
    // Raw-ish: the client sends user pings via send; the server only calls recv.
    for i in 0..5u8 {
        bounded("ping", c.send(Message::ping(vec![i; i as usize])))
            .await
            .unwrap();
        let m = bounded("pong", c.recv()).await.unwrap().unwrap();
        assert_eq!(m, Message::pong(vec![i; i as usize]));
    }
    // An unsolicited user pong is delivered as a pong.
    c.send(Message::pong(&b"unsolicited"[..])).await.unwrap();
    c.close(Some(CloseFrame::new(CloseCode::NORMAL, "")))
        .await
        .unwrap();
    let seen = bounded("server", server).await.unwrap();
    let mut expect: Vec<Message> = (0..5u8)
        .map(|i| Message::ping(vec![i; i as usize]))
        .collect();
    expect.push(Message::pong(&b"unsolicited"[..]));
    expect.push(Message::Close(Some(CloseFrame::new(CloseCode::NORMAL, ""))));
    assert_eq!(seen, expect);
}

#[tokio::test]
async fn oversized_user_ping_is_a_usage_error() {
    let (mut s, mut c) = duplex_pair(quiet(), quiet(), 64 << 10).await;
    // At the limit: 125 bytes go through.
    c.send(Message::ping(vec![1; 125])).await.unwrap();
    let e = c.send(Message::ping(vec![0; 126])).await.unwrap_err();
    assert!(matches!(e, ws_tokio::Error::Usage(_)), "{e:?}");
    let e = c.send(Message::pong(vec![0; 126])).await.unwrap_err();
    assert!(matches!(e, ws_tokio::Error::Usage(_)), "{e:?}");
    // The connection is still usable.
    c.send(Message::text("still here")).await.unwrap();
    let m = bounded("ping", s.recv()).await.unwrap().unwrap();
    assert_eq!(m, Message::ping(vec![1; 125]));
    let m = bounded("recv", s.recv()).await.unwrap().unwrap();
    assert_eq!(m, Message::text("still here"));
}

#[tokio::test]
async fn stream_and_sink_forward() {
    // client A -> server (forwards with StreamExt::forward-like loop into a Sink) -> client B.
    let (s1, mut a) = duplex_pair(quiet(), quiet(), 16 << 10).await;
    let (s2, mut b) = duplex_pair(quiet(), quiet(), 16 << 10).await;
    let relay = tokio::spawn(async move {
        let mut s1 = s1;
        let mut s2 = s2;
        let mut n = 0usize;
        while let Some(m) = s1.next().await {
            match m.expect("relay recv") {
                m @ (Message::Text(_) | Message::Binary(_)) => {
                    s2.feed(m).await.expect("relay feed");
                    n += 1;
                    if n % 16 == 0 {
                        SinkExt::flush(&mut s2).await.expect("relay flush");
                    }
                }
                Message::Close(_) => {}
                _ => {}
            }
        }
        SinkExt::close(&mut s2).await.expect("relay close");
        n
    });
    let count = 500usize;
    let sender = tokio::spawn(async move {
        let mut items = futures_util::stream::iter((0..count).map(|i| {
            Ok::<_, ws_tokio::Error>(if i % 2 == 0 {
                Message::text(format!("msg {i}"))
            } else {
                Message::binary(vec![i as u8; i])
            })
        }));
        a.send_all(&mut items).await.expect("send_all");
        SinkExt::close(&mut a).await.expect("sink close");
    });
    let mut got = 0usize;
    while let Some(m) = bounded("b next", b.next()).await {
        match m.expect("b recv") {
            Message::Text(t) => assert_eq!(t, format!("msg {got}")),
            Message::Binary(v) => assert_eq!(v, vec![got as u8; got]),
            Message::Close(c) => {
                assert_eq!(c, Some(CloseFrame::new(CloseCode::NORMAL, "")));
                continue;
            }
            other => panic!("unexpected {other:?}"),
        }
        got += 1;
    }
    assert_eq!(got, count);
    bounded("sender", sender).await.unwrap();
    assert_eq!(bounded("relay", relay).await.unwrap(), count);
}
