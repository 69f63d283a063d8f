//! A client and a server connection driven against each other in memory: through the opening
//! handshake, messages of every kind and size class, ping/pong, keepalive timeout and both close
//! orders. Deterministic: time is a plain counter.
#![cfg(feature = "alloc")]

use std::time::Duration;
use ws_proto::handshake::{self as hs, HeadScanner};

use ws_proto::{
    CloseCode, CloseFrame, Config, Connection, Error, Message, MessageAssembler, OpCode, State,
};

struct Side {
    conn: Connection,
    asm: MessageAssembler,
    inbox: Vec<Message>,
    /// This side's clock.
    now: u64,
}

impl Side {
    fn new(conn: Connection) -> Side {
        Side {
            conn,
            asm: MessageAssembler::new(),
            inbox: Vec::new(),
            now: 0,
        }
    }

    /// Feeds `bytes` in chunks of `chunk` bytes; collects messages.
    fn feed(&mut self, bytes: &[u8], chunk: usize) -> Result<(), Error> {
        for piece in bytes.chunks(chunk.max(1)) {
            let mut buf = piece.to_vec();
            let mut pos = 0;
            loop {
                let (n, ev) = self.conn.receive(self.now, &mut buf[pos..])?;
                pos += n;
                match ev {
                    Some(ev) => {
                        if let Some(m) = self.asm.push(ev) {
                            self.inbox.push(m);
                        }
                    }
                    None => break,
                }
            }
            assert_eq!(pos, buf.len());
        }
        Ok(())
    }

    /// Everything this side must send: queued control frames.
    fn drain(&mut self) -> Vec<u8> {
        let mut out = Vec::new();
        while let Some(f) = self.conn.poll_transmit() {
            out.extend_from_slice(f.as_bytes());
        }
        out
    }
}

/// Runs the opening handshake in memory, byte by byte on the server side.
fn handshake() -> (Side, Side) {
    let key = hs::generate_key([7; 16]);
    let mut req = [0u8; 512];
    let n = hs::write_request(
        &mut req,
        &hs::ClientRequest::new("127.0.0.1:9001", "/chat?room=1", &key)
            .with_protocols(&["chat", "superchat"])
            .with_headers(&[("Origin", b"http://localhost")]),
    )
    .unwrap();
    // The server finds the end of the head one byte at a time, scanning each byte once.
    let mut scanner = HeadScanner::new(8192);
    let mut head_len = None;
    for end in 1..=n {
        if let Some(len) = scanner.scan(&req[..end]).unwrap() {
            head_len = Some(len);
            break;
        }
    }
    assert_eq!(head_len, Some(n));
    let mut headers = [httparse::EMPTY_HEADER; 32];
    let parsed = hs::parse_request(&req[..n], &mut headers).unwrap();
    assert_eq!(parsed.path(), "/chat?room=1");
    assert_eq!(parsed.origin(), Some("http://localhost"));
    let offered: Vec<&str> = parsed.protocols().collect();
    assert_eq!(offered, ["chat", "superchat"]);
    let mut resp = [0u8; 512];
    let m = hs::write_accept(
        &mut resp,
        parsed.key(),
        &hs::Accept::new().with_protocol(Some("superchat")),
    )
    .unwrap();
    let mut headers = [httparse::EMPTY_HEADER; 32];
    let r =
        hs::parse_response(&resp[..m], &mut headers, &key, &["chat", "superchat"], None).unwrap();
    assert_eq!((r.status(), r.protocol()), (101, Some("superchat")));
    let cfg = Config::DEFAULT.with_ping_interval(None);
    (
        Side::new(Connection::client(cfg, 0x5eed, 0).unwrap()),
        Side::new(Connection::server(cfg, 0).unwrap()),
    )
}

fn send(from: &mut Side, msg: &Message) -> Vec<u8> {
    let mut out = Vec::new();
    match msg {
        Message::Text(t) => from
            .conn
            .encode_message(OpCode::Text, t.as_bytes(), &mut out)
            .unwrap(),
        Message::Binary(b) => from
            .conn
            .encode_message(OpCode::Binary, b, &mut out)
            .unwrap(),
        Message::Ping(p) => from.conn.encode_message(OpCode::Ping, p, &mut out).unwrap(),
        Message::Pong(p) => from.conn.encode_message(OpCode::Pong, p, &mut out).unwrap(),
        Message::Close(_) => unreachable!(),
    }
    out
}

#[test]
fn messages_of_every_kind_and_size_both_ways() {
    let (mut client, mut server) = handshake();
    let sizes = [0usize, 1, 125, 126, 65535, 65536, 1 << 20];
    for (i, &size) in sizes.iter().enumerate() {
        let text = Message::text("é".repeat(size / 2) + &"x".repeat(size % 2));
        let bin = Message::binary((0..size).map(|b| b as u8).collect::<Vec<u8>>());
        for msg in [text, bin] {
            let chunk = [1, 7, 1000, usize::MAX][i % 4];
            let wire = send(&mut client, &msg);
            server.feed(&wire, chunk).unwrap();
            assert_eq!(server.inbox.pop().as_ref(), Some(&msg));
            let wire = send(&mut server, &msg);
            client.feed(&wire, chunk).unwrap();
            assert_eq!(client.inbox.pop().as_ref(), Some(&msg));
        }
    }
    // Fragmented, with a ping in between that is answered at once.
    let mut wire = vec![0u8; 64];
    let n = client
        .conn
        .encode_frame(OpCode::Text, false, b"frag", &mut wire)
        .unwrap();
    server.feed(&wire[..n], 3).unwrap();
    let wire = send(&mut client, &Message::ping(&b"p1"[..]));
    server.feed(&wire, 2).unwrap();
    assert_eq!(server.inbox.pop(), Some(Message::ping(&b"p1"[..])));
    let pong = server.drain();
    client.feed(&pong, 1).unwrap();
    assert_eq!(client.inbox.pop(), Some(Message::pong(&b"p1"[..])));
    let mut wire = vec![0u8; 64];
    let n = client
        .conn
        .encode_frame(OpCode::Continuation, true, b"ment", &mut wire)
        .unwrap();
    server.feed(&wire[..n], 5).unwrap();
    assert_eq!(server.inbox.pop(), Some(Message::text("fragment")));
}

#[test]
fn keepalive_timeout_in_a_pair() {
    let (mut client, mut server) = handshake();
    let cfg = Config::DEFAULT
        .with_ping_interval(Some(Duration::from_millis(1000)))
        .with_pong_timeout(Duration::from_millis(500));
    server.conn = Connection::server(cfg, 0).unwrap();
    // A live client answers every ping.
    for t in [1000u64, 2000, 3000] {
        server.conn.handle_timeout(t).unwrap();
        let ping = server.drain();
        client.feed(&ping, 3).unwrap();
        let pong = client.drain();
        assert!(!pong.is_empty());
        server.now = t + 10;
        server.feed(&pong, 4).unwrap();
    }
    assert_eq!(server.conn.state(), State::Open);
    // Then it goes silent.
    server.conn.handle_timeout(4000).unwrap();
    assert!(!server.drain().is_empty());
    assert_eq!(server.conn.poll_timeout(), Some(4500));
    assert_eq!(
        server.conn.handle_timeout(4500),
        Err(Error::Timeout(ws_proto::error::TimeoutKind::Pong))
    );
    assert_eq!(server.conn.state(), State::Terminated);
    assert!(server.conn.should_shutdown());
}

#[test]
fn close_orders() {
    for client_first in [true, false] {
        let (mut client, mut server) = handshake();
        let (a, b) = if client_first {
            (&mut client, &mut server)
        } else {
            (&mut server, &mut client)
        };
        a.conn.close(0, Some(CloseCode::GOING_AWAY), "bye").unwrap();
        assert_eq!(a.conn.state(), State::ClosedByUs);
        let close = a.drain();
        b.feed(&close, 2).unwrap();
        assert_eq!(
            b.inbox.pop(),
            Some(Message::Close(Some(CloseFrame::new(
                CloseCode::GOING_AWAY,
                "bye"
            ))))
        );
        assert_eq!(b.conn.state(), State::ClosedByPeer);
        let echo = b.drain();
        a.feed(&echo, 1).unwrap();
        assert_eq!(
            a.inbox.pop(),
            Some(Message::Close(Some(CloseFrame::new(
                CloseCode::GOING_AWAY,
                ""
            ))))
        );
        // The server ends the transport first; the client then sees its EOF.
        assert_eq!(server.conn.state(), State::Terminated);
        assert!(server.conn.should_shutdown());
        assert_eq!(client.conn.state(), State::CloseAcknowledged);
        assert!(!client.conn.should_shutdown());
        client.conn.receive_eof().unwrap();
        assert_eq!(client.conn.state(), State::Terminated);
        assert!(client.conn.should_shutdown());
        for side in [&client, &server] {
            assert_eq!(side.conn.error(), None);
            assert_eq!(
                side.conn.peer_close_code(),
                Some(Some(CloseCode::GOING_AWAY))
            );
        }
    }
}
