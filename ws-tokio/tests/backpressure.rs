//! Backpressure: a bounded write buffer against a peer that does not read, and the write
//! timeout. On tokio's paused clock over in-memory pipes: the deadlines are asserted to the
//! millisecond, and no test waits in real time.

mod common;

use std::time::Duration;

use common::*;
use tokio::time::Instant;
use ws_tokio::{Error, Message, TimeoutKind};

const PIPE: usize = 1024;
const LIMIT: usize = 4096;
const MSG: usize = 1000;

#[tokio::test(start_paused = true)]
async fn send_stays_pending_and_the_buffer_stays_bounded() {
    let cfg = quiet()
        .with_write_buffer_size(LIMIT)
        .with_write_timeout(None);
    let (mut ws, raw) = raw_client_pair(cfg, PIPE).await;
    let t0 = Instant::now();

    // The peer does not read. Each send gets 50 ms; a send that times out may still have
    // queued its message (whole), but once the buffer is over the limit nothing more goes in.
    let mut timed_out = 0;
    for seq in 0..100u32 {
        let mut b = seq.to_be_bytes().to_vec();
        b.resize(MSG, seq as u8);
        if tokio::time::timeout(Duration::from_millis(50), ws.send(Message::binary(b)))
            .await
            .is_err()
        {
            timed_out += 1;
            if timed_out == 5 {
                break;
            }
        } else {
            assert_eq!(timed_out, 0, "a send completed after the pipe filled up");
        }
    }
    assert_eq!(timed_out, 5, "send never blocked");
    // Each blocked send waited its 50 ms; no other time passed (no write timeout is set).
    assert_eq!(t0.elapsed(), Duration::from_millis(250));

    // Now the peer reads everything there is; the server flushes what it holds.
    let flusher = tokio::spawn(async move {
        ws.flush().await.expect("flush");
        ws
    });
    let mut r = FrameReader::new(raw);
    let mut bytes = 0;
    let mut next = 0u32;
    loop {
        match tokio::time::timeout(Duration::from_millis(300), r.next()).await {
            Err(_) => break,
            Ok(None) => panic!("EOF"),
            Ok(Some(f)) => {
                assert_eq!(f.opcode, OP_BINARY);
                assert_eq!(f.payload.len(), MSG, "frames arrive whole");
                let s = u32::from_be_bytes(f.payload[..4].try_into().unwrap());
                assert_eq!(s, next, "in order, none lost before the limit");
                assert!(f.payload[4..].iter().all(|&x| x == s as u8));
                next += 1;
                bytes += 4 + MSG;
            }
        }
    }
    bounded("flusher", flusher).await.unwrap();
    // Queued: what the pipe holds, the buffer up to its limit, and one more message.
    assert!(
        bytes <= PIPE + LIMIT + (MSG + 4),
        "{bytes} bytes queued ({next} messages)"
    );
    assert!(bytes >= LIMIT, "{bytes}");
}

#[tokio::test(start_paused = true)]
async fn write_timeout_fires() {
    let cfg = quiet()
        .with_write_buffer_size(LIMIT)
        .with_write_timeout(Some(Duration::from_millis(200)));
    let (mut ws, raw) = raw_client_pair(cfg, PIPE).await;
    let t0 = Instant::now();
    let e = bounded("send", ws.send(Message::binary(vec![1; 64 << 10])))
        .await
        .unwrap_err();
    assert!(matches!(e, Error::Timeout(TimeoutKind::Write)), "{e:?}");
    // The pipe took its 1 KiB at once; then no progress for 200 ms.
    assert_eq!(t0.elapsed(), Duration::from_millis(200));
    // The connection is over: recv reports how it ended, once.
    let r = bounded("recv", ws.recv()).await;
    assert!(
        matches!(r, Some(Err(Error::Timeout(TimeoutKind::Write)))),
        "{r:?}"
    );
    assert_eq!(ws.state(), ws_tokio::State::Terminated);
    assert!(bounded("end", ws.recv()).await.is_none());
    assert_eq!(t0.elapsed(), Duration::from_millis(200));
    drop(raw);
}

#[tokio::test(start_paused = true)]
async fn write_timeout_resets_on_progress() {
    // A slow reader that keeps making progress never trips the write timeout.
    let cfg = quiet().with_write_timeout(Some(Duration::from_millis(150)));
    let (mut ws, mut raw) = raw_client_pair(cfg, PIPE).await;
    let reader = tokio::spawn(async move {
        use tokio::io::AsyncReadExt;
        let mut total = 0;
        let mut buf = vec![0u8; 4096];
        while total < (20 << 10) + 4 {
            tokio::time::sleep(Duration::from_millis(20)).await;
            let n = raw.read(&mut buf).await.unwrap();
            assert!(n > 0);
            total += n;
        }
        total
    });
    let t0 = Instant::now();
    bounded("send", ws.send(Message::binary(vec![2; 20 << 10])))
        .await
        .expect("a slow but steady reader is fine");
    // 20 KiB and a 4-byte header through a 1 KiB pipe read every 20 ms: the pipe took the
    // first KiB at once and the last bytes with the 20th read.
    assert_eq!(t0.elapsed(), Duration::from_millis(400));
    assert_eq!(bounded("reader", reader).await.unwrap(), (20 << 10) + 4);
}
