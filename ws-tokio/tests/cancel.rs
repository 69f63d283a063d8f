//! Cancel safety: recv and send inside `select!` with timers that win at arbitrary points.
//! On tokio's paused clock over in-memory pipes: the timers win whenever every task waits, so
//! the runs take no real time.

mod common;

use std::time::Duration;

use common::*;
use tokio::io::AsyncWriteExt;
use ws_tokio::{CloseCode, CloseFrame, Message};

/// A small deterministic generator (xorshift) for sizes and timer lengths.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
}

fn body(seq: u32, len: usize) -> Vec<u8> {
    let mut v = seq.to_be_bytes().to_vec();
    v.extend((0..len).map(|i| (i as u32).wrapping_mul(2_654_435_761).wrapping_add(seq) as u8));
    v
}

#[tokio::test(start_paused = true)]
async fn recv_cancelled_repeatedly_loses_nothing() {
    let (mut ws, mut raw) = raw_client_pair(quiet(), 8 << 10).await;

    // Messages of assorted sizes, some fragmented, pings in between; trickled in small writes.
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    let mut expected = Vec::new();
    let mut wire = Vec::new();
    for seq in 0..40u32 {
        let len = match seq % 5 {
            0 => 0,
            1 => (rng.next() % 200) as usize,
            2 => (rng.next() % 5000) as usize,
            3 => 70_000 + (rng.next() % 1000) as usize,
            _ => 200_000,
        };
        let b = body(seq, len);
        if seq % 3 == 0 {
            let cut = b.len() / 3;
            wire.extend(cframe(false, OP_BINARY, &b[..cut]));
            wire.extend(cframe(true, OP_PING, b"p"));
            wire.extend(cframe(false, OP_CONT, &b[cut..2 * cut]));
            wire.extend(cframe(true, OP_CONT, &b[2 * cut..]));
        } else {
            wire.extend(cframe(true, OP_BINARY, &b));
        }
        expected.push(b);
    }
    let writer = tokio::spawn(async move {
        let mut rng = Rng(12345);
        let mut pos = 0;
        let mut writes = 0u32;
        while pos < wire.len() {
            let n = (1 + rng.next() % 3000) as usize;
            let end = (pos + n).min(wire.len());
            raw.write_all(&wire[pos..end]).await.unwrap();
            pos = end;
            writes += 1;
            if writes % 16 == 0 {
                tokio::time::sleep(Duration::from_millis(1)).await;
            } else {
                tokio::task::yield_now().await;
            }
        }
        raw
    });

    let mut got = Vec::new();
    let mut cancels = 0u32;
    let mut pings = 0;
    let deadline = tokio::time::Instant::now() + STEP;
    while got.len() < expected.len() {
        assert!(tokio::time::Instant::now() < deadline, "too slow");
        tokio::select! {
            m = ws.recv() => match m.expect("open").expect("ok") {
                Message::Binary(b) => got.push(b),
                Message::Ping(p) => { assert_eq!(p, &b"p"[..]); pings += 1; }
                m => panic!("unexpected {m:?}"),
            },
            _ = tokio::time::sleep(Duration::from_micros(300)) => cancels += 1,
        }
    }
    assert!(cancels > 10, "the timer should win often ({cancels})");
    assert_eq!(pings, 14);
    assert_eq!(got.len(), expected.len());
    for (i, (g, e)) in got.iter().zip(&expected).enumerate() {
        assert!(
            g == e,
            "message {i} corrupted ({} vs {} bytes)",
            g.len(),
            e.len()
        );
    }
    let _raw = writer.await.unwrap();
}

#[tokio::test(start_paused = true)]
async fn send_cancelled_at_random_points_never_corrupts_the_stream() {
    let cfg = quiet().with_write_buffer_size(8 << 10);
    let (mut s, mut c) = duplex_pair(cfg, cfg, 4 << 10).await;
    // The receiver reads with pauses, so sends block part-way.
    let receiver = tokio::spawn(async move {
        let mut last: Option<u32> = None;
        let mut count = 0u32;
        let mut rng = Rng(777);
        while let Some(m) = s.recv().await {
            match m.expect("receiver: stream corrupted") {
                Message::Binary(b) => {
                    let seq = u32::from_be_bytes(b[..4].try_into().unwrap());
                    assert_eq!(b, body(seq, b.len() - 4), "message {seq} corrupted");
                    if let Some(l) = last {
                        assert!(seq > l, "{seq} after {l}: duplicated or reordered");
                    }
                    last = Some(seq);
                    count += 1;
                }
                Message::Close(_) => {}
                m => panic!("unexpected {m:?}"),
            }
            if rng.next() % 8 == 0 {
                tokio::time::sleep(Duration::from_millis(1)).await;
            }
        }
        (count, last)
    });
    let mut rng = Rng(0xdead_beef);
    let mut completed = 0u32;
    let mut cancelled = 0u32;
    let total = 400u32;
    for seq in 0..total {
        let len = match rng.next() % 4 {
            0 => (rng.next() % 100) as usize,
            1 => (rng.next() % 4000) as usize,
            2 => 10_000 + (rng.next() % 20_000) as usize,
            _ => 1000,
        };
        let msg = Message::binary(body(seq, len));
        let wait = Duration::from_micros(rng.next() % 1500);
        tokio::select! {
            r = c.send(msg) => { r.expect("send"); completed += 1; }
            _ = tokio::time::sleep(wait) => cancelled += 1,
        }
    }
    bounded(
        "close",
        c.close(Some(CloseFrame::new(CloseCode::NORMAL, ""))),
    )
    .await
    .unwrap();
    let (count, last) = bounded("receiver", receiver).await.unwrap();
    assert!(
        cancelled > 10,
        "the timer should win sometimes ({cancelled})"
    );
    assert!(completed > 10, "{completed}");
    // Every completed send arrived; cancelled ones arrived whole or not at all.
    assert!(count >= completed && count <= total, "{count} of {total}");
    assert!(last.is_some());
}
