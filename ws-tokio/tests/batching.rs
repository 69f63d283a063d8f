//! Write batching: messages queued with `feed` go out when `recv` next waits for data, so the
//! replies to a batch of received messages leave in one write, and a closed-loop echo written
//! with `feed` never stalls. The in-memory tests run on tokio's paused clock (the 100 ms waits
//! that show `recv` pending take no real time).

mod common;

use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::task::{Context, Poll};
use std::time::Duration;

use common::*;
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt, DuplexStream, ReadBuf};
use ws_tokio::{CloseCode, CloseFrame, Message, WebSocket};

/// A transport that counts the writes that moved bytes.
struct Counting {
    io: DuplexStream,
    writes: Arc<AtomicUsize>,
}

impl AsyncRead for Counting {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.io).poll_read(cx, buf)
    }
}

impl AsyncWrite for Counting {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let r = Pin::new(&mut self.io).poll_write(cx, buf);
        if let Poll::Ready(Ok(n)) = r
            && n > 0
        {
            self.writes.fetch_add(1, Ordering::SeqCst);
        }
        r
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.io).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.io).poll_shutdown(cx)
    }
}

/// A server over a counting transport and the raw client end, after the handshake.
async fn counted_server() -> (WebSocket<Counting>, DuplexStream, Arc<AtomicUsize>) {
    let (a, mut b) = tokio::io::duplex(1 << 20);
    let writes = Arc::new(AtomicUsize::new(0));
    let io = Counting {
        io: a,
        writes: writes.clone(),
    };
    let srv = tokio::spawn(ws_tokio::accept_with_config(io, quiet()));
    raw_client_handshake(&mut b).await;
    let ws = bounded("accept", srv).await.unwrap().expect("accept");
    (ws, b, writes)
}

#[tokio::test(start_paused = true)]
async fn replies_to_one_read_leave_in_one_write() {
    let (mut ws, client, writes) = counted_server().await;
    let before = writes.load(Ordering::SeqCst);
    let mut batch = Vec::new();
    for i in 0..10u8 {
        batch.extend(cframe(true, OP_BINARY, &[i; 16]));
    }
    let mut reader = FrameReader::new(client);
    reader.io.write_all(&batch).await.unwrap();
    for i in 0..10u8 {
        let m = bounded("recv", ws.recv()).await.expect("message").unwrap();
        assert_eq!(m, Message::binary(vec![i; 16]));
        bounded("feed", ws.feed(m)).await.unwrap();
    }
    // Nothing written while the batch was being read.
    assert_eq!(writes.load(Ordering::SeqCst), before);
    // The next recv has no data: it writes the queue out, then waits.
    let waited = tokio::time::timeout(Duration::from_millis(100), ws.recv()).await;
    assert!(waited.is_err(), "no message was sent");
    assert_eq!(writes.load(Ordering::SeqCst), before + 1);
    for i in 0..10u8 {
        let f = bounded("echo", reader.next()).await.expect("echo frame");
        assert_eq!((f.opcode, f.fin, f.mask), (OP_BINARY, true, None));
        assert_eq!(f.payload, vec![i; 16]);
    }
}

#[tokio::test(start_paused = true)]
async fn pongs_wait_for_the_batch_then_leave() {
    let (mut ws, client, writes) = counted_server().await;
    let before = writes.load(Ordering::SeqCst);
    let mut batch = cframe(true, OP_PING, b"p1");
    batch.extend(cframe(true, OP_TEXT, b"hello"));
    let mut reader = FrameReader::new(client);
    reader.io.write_all(&batch).await.unwrap();
    let ping = bounded("ping", ws.recv()).await.expect("ping").unwrap();
    assert_eq!(ping, Message::ping(&b"p1"[..]));
    let text = bounded("text", ws.recv()).await.expect("text").unwrap();
    assert_eq!(text, Message::text("hello"));
    assert_eq!(writes.load(Ordering::SeqCst), before);
    let waited = tokio::time::timeout(Duration::from_millis(100), ws.recv()).await;
    assert!(waited.is_err());
    let pong = bounded("pong", reader.next()).await.expect("pong frame");
    assert_eq!(
        (pong.opcode, pong.payload.as_slice()),
        (OP_PONG, &b"p1"[..])
    );
}

#[tokio::test]
async fn closed_loop_echo_with_feed_does_not_stall() {
    let (mut server, mut client) = tcp_pair(quiet(), quiet()).await;
    let echo = tokio::spawn(async move {
        while let Some(Ok(m)) = server.recv().await {
            if matches!(m, Message::Binary(_) | Message::Text(_)) {
                server.feed(m).await.expect("feed");
            }
        }
    });
    for i in 0..200u32 {
        let m = Message::binary(i.to_be_bytes().repeat(i as usize % 50 + 1));
        bounded("send", client.send(m.clone())).await.unwrap();
        let got = bounded("echo", client.recv()).await.expect("echo").unwrap();
        assert_eq!(got, m);
    }
    bounded(
        "close",
        client.close(Some(CloseFrame::new(CloseCode::NORMAL, ""))),
    )
    .await
    .unwrap();
    bounded("echo task", echo).await.unwrap();
}

#[tokio::test(start_paused = true)]
async fn every_ping_of_a_batch_gets_its_pong_in_order() {
    let (mut ws, client, _) = counted_server().await;
    let mut batch = Vec::new();
    for i in 0..10u8 {
        batch.extend(cframe(true, OP_PING, format!("payload-{i}").as_bytes()));
    }
    let mut reader = FrameReader::new(client);
    reader.io.write_all(&batch).await.unwrap();
    for i in 0..10u8 {
        let m = bounded("ping", ws.recv()).await.expect("ping").unwrap();
        assert_eq!(m, Message::ping(format!("payload-{i}").into_bytes()));
    }
    let waited = tokio::time::timeout(Duration::from_millis(100), ws.recv()).await;
    assert!(waited.is_err());
    for i in 0..10u8 {
        let f = bounded("pong", reader.next()).await.expect("pong frame");
        assert_eq!(f.opcode, OP_PONG);
        assert_eq!(f.payload, format!("payload-{i}").into_bytes());
    }
}

#[tokio::test(start_paused = true)]
async fn a_pong_goes_before_the_reply_to_the_message_around_its_ping() {
    let (mut ws, client, _) = counted_server().await;
    let mut batch = cframe(false, OP_TEXT, b"fragment1");
    batch.extend(cframe(true, OP_PING, b"ping payload"));
    batch.extend(cframe(true, OP_CONT, b"fragment2"));
    let mut reader = FrameReader::new(client);
    reader.io.write_all(&batch).await.unwrap();
    let ping = bounded("ping", ws.recv()).await.expect("ping").unwrap();
    assert_eq!(ping, Message::ping(&b"ping payload"[..]));
    let text = bounded("text", ws.recv()).await.expect("text").unwrap();
    assert_eq!(text, Message::text("fragment1fragment2"));
    bounded("send", ws.send(text)).await.unwrap();
    let first = bounded("first", reader.next()).await.expect("frame");
    assert_eq!(
        (first.opcode, first.payload.as_slice()),
        (OP_PONG, &b"ping payload"[..])
    );
    let second = bounded("second", reader.next()).await.expect("frame");
    assert_eq!(
        (second.opcode, second.payload.as_slice()),
        (OP_TEXT, &b"fragment1fragment2"[..])
    );
}
