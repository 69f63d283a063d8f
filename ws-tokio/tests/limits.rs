//! Rate limits, the message deadline and the maximum lifetime through the adapter, on tokio's
//! paused clock over in-memory pipes.

use std::time::Duration;

use tokio::io::DuplexStream;
use tokio::time::Instant;
use ws_proto::rate::{OverLimit, RateLimits};
use ws_tokio::{
    ClientRequest, CloseCode, CloseFrame, Config, Error, Message, TimeoutKind, WebSocket,
};

fn base() -> Config {
    Config::default()
        .with_ping_interval(None)
        .with_compression(None)
        .with_write_timeout(None)
}

async fn pair(
    server: Config,
    client: Config,
) -> (WebSocket<DuplexStream>, WebSocket<DuplexStream>) {
    let (a, b) = tokio::io::duplex(64 << 10);
    let srv = tokio::spawn(ws_tokio::accept_with_config(a, server));
    let (c, _) = ws_tokio::client(b, ClientRequest::new("localhost", "/").config(client))
        .await
        .expect("client handshake");
    (srv.await.unwrap().expect("server handshake"), c)
}

#[tokio::test(start_paused = true)]
async fn backpressure_spaces_messages_out_at_the_rate() {
    // 10 messages per second, bursts of 2: two at once, then one every 100 ms.
    let limits = RateLimits::default()
        .with_messages(10, 2)
        .with_over_limit(OverLimit::Backpressure);
    let (mut server, mut client) = pair(
        base().with_core(base().core.with_rate_limits(limits)),
        base(),
    )
    .await;
    for i in 0..5 {
        client.send(Message::text(format!("m{i}"))).await.unwrap();
    }
    let start = Instant::now();
    let mut at = Vec::new();
    for i in 0..5 {
        let m = server.recv().await.unwrap().unwrap();
        assert_eq!(m, Message::text(format!("m{i}")));
        at.push(start.elapsed().as_millis());
    }
    assert_eq!(at, [0, 0, 100, 200, 300]);
    assert!(server.state().can_send());
}

#[tokio::test(start_paused = true)]
async fn over_the_limit_closes_with_1008() {
    let limits = RateLimits::default()
        .with_messages(1, 3)
        .with_over_limit(OverLimit::Close);
    let (mut server, mut client) = pair(
        base().with_core(base().core.with_rate_limits(limits)),
        base(),
    )
    .await;
    // At the limit: three messages pass.
    for i in 0..3 {
        client.send(Message::text(format!("ok{i}"))).await.unwrap();
        assert!(server.recv().await.unwrap().unwrap().is_text());
    }
    // One past it: the connection closes with 1008.
    client.send(Message::text("one too many")).await.unwrap();
    let srv = tokio::spawn(async move { server.recv().await });
    let got = client.recv().await.unwrap().unwrap();
    assert_eq!(
        got,
        Message::Close(Some(CloseFrame::new(CloseCode::POLICY_VIOLATION, "")))
    );
    let end = srv.await.unwrap();
    assert!(
        matches!(
            end,
            Some(Err(Error::RateLimited {
                sent: Some(CloseCode::POLICY_VIOLATION)
            }))
        ),
        "{end:?}"
    );
}

#[tokio::test(start_paused = true)]
async fn a_trickled_message_fails_at_its_deadline() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let core = base()
        .core
        .with_message_timeout(Some(Duration::from_secs(10)));
    let (mut raw, io) = tokio::io::duplex(64 << 10);
    let srv = tokio::spawn(async move {
        let mut ws = ws_tokio::accept_with_config(io, base().with_core(core))
            .await
            .unwrap();
        let start = Instant::now();
        let mut seen = Vec::new();
        while let Some(m) = ws.recv().await {
            let end = m.is_err();
            seen.push((m.map_err(|e| e.to_string()), start.elapsed().as_secs()));
            if end {
                break;
            }
        }
        seen
    });
    raw.write_all(
        b"GET / HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
          Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n",
    )
    .await
    .unwrap();
    let mut head = Vec::new();
    while !head.ends_with(b"\r\n\r\n") {
        head.push(raw.read_u8().await.unwrap());
    }
    assert!(head.starts_with(b"HTTP/1.1 101"));
    // The first fragment of a text message (masked, key 0): the rest never comes; a ping now
    // and then keeps the connection alive but not the message.
    raw.write_all(&[0x01, 0x82, 0, 0, 0, 0, b'h', b'i'])
        .await
        .unwrap();
    let start = Instant::now();
    for _ in 0..3 {
        tokio::time::sleep(Duration::from_secs(3)).await;
        raw.write_all(&[0x89, 0x80, 0, 0, 0, 0]).await.unwrap();
    }
    // The server fails the connection at 10 s with 1008 (after three pongs), then shuts its
    // side; the client ends its own at once.
    let close = [0x88, 0x02, 0x03, 0xf0]; // 1008
    let mut frames = Vec::new();
    let mut buf = [0u8; 64];
    while !frames.ends_with(&close) {
        let n = raw.read(&mut buf).await.unwrap();
        assert!(n > 0, "EOF before the close frame: {frames:02x?}");
        frames.extend_from_slice(&buf[..n]);
    }
    assert_eq!(start.elapsed(), Duration::from_secs(10));
    assert_eq!(
        raw.read(&mut buf).await.unwrap(),
        0,
        "the server shut its side"
    );
    drop(raw);
    let seen = srv.await.unwrap();
    let pings: Vec<u64> = seen
        .iter()
        .filter(|(m, _)| matches!(m, Ok(Message::Ping(_))))
        .map(|&(_, t)| t)
        .collect();
    assert_eq!(pings, [3, 6, 9]);
    let (end, at) = seen.last().unwrap();
    assert_eq!(*at, 10, "at the deadline, counted from the first fragment");
    let e = end.as_ref().unwrap_err();
    assert!(e.contains("took too long"), "{e}");
}

#[tokio::test(start_paused = true)]
async fn the_message_deadline_does_not_apply_between_messages() {
    let core = base()
        .core
        .with_message_timeout(Some(Duration::from_secs(10)));
    let (mut server, mut client) = pair(base().with_core(core), base()).await;
    client.send(Message::text("whole")).await.unwrap();
    assert!(server.recv().await.unwrap().unwrap().is_text());
    let r = tokio::time::timeout(Duration::from_secs(60), server.recv()).await;
    assert!(r.is_err(), "idle between messages is not a timeout");
    assert!(server.state().can_send());
}

#[tokio::test(start_paused = true)]
async fn the_server_closes_at_the_end_of_its_lifetime() {
    let core = base()
        .core
        .with_max_lifetime(Some(Duration::from_secs(100)));
    let start = Instant::now();
    let (mut server, mut client) = pair(base().with_core(core), base()).await;
    let srv = tokio::spawn(async move {
        let mut seen = Vec::new();
        while let Some(m) = server.recv().await {
            seen.push(m.map_err(|e| e.to_string()));
        }
        seen
    });
    let got = client.recv().await.unwrap().unwrap();
    let after = start.elapsed();
    assert_eq!(
        got,
        Message::Close(Some(CloseFrame::new(CloseCode::GOING_AWAY, "")))
    );
    assert!(
        after >= Duration::from_secs(90) && after <= Duration::from_secs(100),
        "{after:?}"
    );
    // The client answers, the handshake completes cleanly on both sides.
    assert!(client.recv().await.is_none());
    let seen = srv.await.unwrap();
    assert_eq!(
        seen,
        [Ok(Message::Close(Some(CloseFrame::new(
            CloseCode::GOING_AWAY,
            ""
        ))))]
    );
    let _ = TimeoutKind::Message;
}
