use super::*;
use crate::error::HandshakeError;
use crate::error::{Limit, ProtocolError, TimeoutKind, Usage};
use crate::frame::FrameHeader;
use crate::limits::Limits;
use core::time::Duration;
use proptest::prelude::*;
use std::string::String;
use std::vec;
use std::vec::Vec;

/// A frame as the peer of `role` would send it (masked when sent to a server).
fn frame_to(role: Role, opcode: u8, fin: bool, rsv: u8, payload: &[u8]) -> Vec<u8> {
    let mask = (role == Role::Server).then_some([0x12, 0x34, 0x56, 0x78]);
    let h = FrameHeader {
        fin,
        rsv,
        opcode: OpCode::from_u8(opcode).unwrap(),
        mask,
        payload_len: payload.len() as u64,
    };
    let mut v = h.encode().as_bytes().to_vec();
    let mut p = payload.to_vec();
    if let Some(k) = mask {
        crate::mask::apply_mask_naive(&mut p, k, 0);
    }
    v.extend_from_slice(&p);
    v
}

fn no_timers() -> Config {
    Config::DEFAULT.with_ping_interval(None)
}

/// An owned copy of an event, for comparisons.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Ev {
    Data(DataKind, Vec<u8>, bool, bool),
    Ping(Vec<u8>),
    Pong(Vec<u8>),
    Close(Option<u16>, String),
}

impl From<Event<'_>> for Ev {
    fn from(e: Event<'_>) -> Self {
        match e {
            Event::Data {
                kind,
                payload,
                frame_fin,
                message_fin,
            } => Ev::Data(kind, payload.to_vec(), frame_fin, message_fin),
            Event::Ping(p) => Ev::Ping(p.to_vec()),
            Event::Pong(p) => Ev::Pong(p.to_vec()),
            Event::Close { code, reason } => Ev::Close(code.map(|c| c.0), reason.into()),
        }
    }
}

/// Feeds all of `bytes` in one go; returns the events, or the first error.
fn feed_all(conn: &mut Connection, bytes: &[u8]) -> Result<Vec<Ev>, (Vec<Ev>, Error)> {
    let mut buf = bytes.to_vec();
    let mut events = Vec::new();
    let mut pos = 0;
    loop {
        match conn.receive(0, &mut buf[pos..]) {
            Ok((n, ev)) => {
                pos += n;
                match ev {
                    Some(e) => events.push(e.into()),
                    None => {
                        assert_eq!(pos, buf.len(), "receive must consume everything");
                        return Ok(events);
                    }
                }
            }
            Err(e) => return Err((events, e)),
        }
    }
}

/// Merges data chunks so events can be compared across chunkings.
fn normalise(events: &[Ev]) -> Vec<Ev> {
    let mut out: Vec<Ev> = Vec::new();
    for e in events {
        if let (Some(Ev::Data(k0, p0, f0, m0)), Ev::Data(k, p, f, m)) = (out.last_mut(), e) {
            if !*f0 {
                assert_eq!(k0, k);
                p0.extend_from_slice(p);
                *f0 = *f;
                *m0 = *m;
                continue;
            }
        }
        out.push(e.clone());
    }
    // Empty non-final chunks carry nothing.
    out
}

fn close_code_sent(conn: &mut Connection) -> Option<Option<u16>> {
    while let Some(f) = conn.poll_transmit() {
        if f.opcode() == OpCode::Close {
            let bytes = f.as_bytes();
            let (h, n) = FrameHeader::decode(bytes).unwrap().unwrap();
            let mut p = bytes[n..].to_vec();
            if let Some(k) = h.mask {
                crate::mask::apply_mask_naive(&mut p, k, 0);
            }
            return Some(if p.len() >= 2 {
                Some(u16::from_be_bytes([p[0], p[1]]))
            } else {
                None
            });
        }
    }
    None
}

/// Feeds `bytes` to a fresh connection of `role` and expects failure with `close`.
fn expect_failure(role: Role, bytes: &[u8], err: Error, close: u16) {
    let mut c = Connection::new(role, no_timers(), 7, 0).unwrap();
    let r = feed_all(&mut c, bytes);
    assert_eq!(r.map_err(|e| e.1), Err(err), "{bytes:02x?}");
    assert_eq!(c.state(), State::CloseAcknowledged);
    assert_eq!(c.error(), Some(err));
    assert_eq!(c.error_close_code(), Some(CloseCode(close)));
    assert!(!c.should_shutdown(), "the close frame goes first");
    assert_eq!(close_code_sent(&mut c), Some(Some(close)));
    assert!(c.should_shutdown());
    // Nothing more is read: later bytes are discarded.
    let mut more = frame_to(role, 1, true, 0, b"x");
    let len = more.len();
    assert_eq!(c.receive(0, &mut more), Ok((len, None)));
}

#[test]
fn text_and_binary() {
    for role in [Role::Server, Role::Client] {
        let mut c = Connection::new(role, no_timers(), 1, 0).unwrap();
        let mut bytes = frame_to(role, 1, true, 0, "héllo".as_bytes());
        bytes.extend(frame_to(role, 2, true, 0, &[0, 255, 7]));
        bytes.extend(frame_to(role, 2, true, 0, &[]));
        let ev = feed_all(&mut c, &bytes).unwrap();
        assert_eq!(
            ev,
            vec![
                Ev::Data(DataKind::Text, "héllo".as_bytes().to_vec(), true, true),
                Ev::Data(DataKind::Binary, vec![0, 255, 7], true, true),
                Ev::Data(DataKind::Binary, vec![], true, true),
            ]
        );
        assert_eq!(c.state(), State::Open);
    }
}

#[test]
fn rsv_bits_without_extension_are_1002() {
    for rsv in 1..8 {
        for role in [Role::Server, Role::Client] {
            let b = frame_to(role, 1, true, rsv, b"a");
            expect_failure(role, &b, ProtocolError::ReservedBits.into(), 1002);
            let b = frame_to(role, 9, true, rsv, b"");
            expect_failure(role, &b, ProtocolError::ReservedBits.into(), 1002);
        }
    }
}

#[test]
fn reserved_opcodes_are_1002() {
    for op in [3u8, 4, 5, 6, 7, 11, 12, 13, 14, 15] {
        expect_failure(
            Role::Server,
            &[0x80 | op, 0x80, 1, 2, 3, 4],
            ProtocolError::ReservedOpcode.into(),
            1002,
        );
        expect_failure(
            Role::Client,
            &[0x80 | op, 0x00],
            ProtocolError::ReservedOpcode.into(),
            1002,
        );
    }
}

#[test]
fn control_frame_rules_are_1002() {
    let big = [0u8; 126];
    for role in [Role::Server, Role::Client] {
        expect_failure(
            role,
            &frame_to(role, 9, false, 0, b""),
            ProtocolError::FragmentedControl.into(),
            1002,
        );
        let mut b = frame_to(role, 2, true, 0, &big);
        b[0] = 0x89; // same bytes as a 126-byte ping
        expect_failure(role, &b, ProtocolError::ControlTooLong.into(), 1002);
    }
    // 125 is fine.
    let mut c = Connection::server(no_timers(), 0).unwrap();
    let ev = feed_all(&mut c, &frame_to(Role::Server, 9, true, 0, &[5u8; 125])).unwrap();
    assert_eq!(ev, vec![Ev::Ping(vec![5u8; 125])]);
}

#[test]
fn masking_direction_is_1002() {
    let unmasked = frame_to(Role::Client, 1, true, 0, b"hi");
    expect_failure(
        Role::Server,
        &unmasked,
        ProtocolError::UnmaskedFrame.into(),
        1002,
    );
    let masked = frame_to(Role::Server, 1, true, 0, b"hi");
    expect_failure(
        Role::Client,
        &masked,
        ProtocolError::MaskedFrame.into(),
        1002,
    );
}

#[test]
fn length_msb_is_1002() {
    expect_failure(
        Role::Client,
        &[0x82, 127, 0x80, 0, 0, 0, 0, 0, 0, 1],
        ProtocolError::LengthOverflow.into(),
        1002,
    );
}

#[test]
fn fragmentation_rules() {
    let r = Role::Server;
    expect_failure(
        r,
        &frame_to(r, 0, true, 0, b"x"),
        ProtocolError::UnexpectedContinuation.into(),
        1002,
    );
    let mut b = frame_to(r, 1, false, 0, b"a");
    b.extend(frame_to(r, 1, true, 0, b"b"));
    expect_failure(r, &b, ProtocolError::ExpectedContinuation.into(), 1002);
    let mut b = frame_to(r, 2, false, 0, b"a");
    b.extend(frame_to(r, 2, true, 0, b"b"));
    expect_failure(r, &b, ProtocolError::ExpectedContinuation.into(), 1002);

    // Control frames between fragments are delivered and answered at once.
    let mut c = Connection::server(no_timers(), 0).unwrap();
    let mut b = frame_to(r, 1, false, 0, b"fra");
    b.extend(frame_to(r, 9, true, 0, b"p"));
    b.extend(frame_to(r, 0, false, 0, b"gme"));
    b.extend(frame_to(r, 10, true, 0, b"q"));
    b.extend(frame_to(r, 0, true, 0, b"nt"));
    let ev = feed_all(&mut c, &b).unwrap();
    assert_eq!(
        ev,
        vec![
            Ev::Data(DataKind::Text, b"fra".to_vec(), true, false),
            Ev::Ping(b"p".to_vec()),
            Ev::Data(DataKind::Text, b"gme".to_vec(), true, false),
            Ev::Pong(b"q".to_vec()),
            Ev::Data(DataKind::Text, b"nt".to_vec(), true, true),
        ]
    );
    let pong = c.poll_transmit().unwrap();
    assert_eq!(pong.opcode(), OpCode::Pong);
    assert_eq!(pong.as_bytes(), &[0x8A, 1, b'p']);
}

#[test]
fn utf8_fails_fast_across_frames_with_1007() {
    let r = Role::Server;
    // Invalid in a single frame.
    expect_failure(
        r,
        &frame_to(r, 1, true, 0, &[0xce, 0xba, 0xff]),
        Error::InvalidUtf8,
        1007,
    );
    // A valid prefix, then a frame whose first byte makes it impossible: fails on that frame,
    // before the message ends.
    let mut c = Connection::server(no_timers(), 0).unwrap();
    let mut b = frame_to(r, 1, false, 0, &[0xf4]);
    b.extend(frame_to(r, 0, false, 0, &[0x90]));
    let (ev, e) = feed_all(&mut c, &b).unwrap_err();
    assert_eq!(e, Error::InvalidUtf8);
    assert_eq!(ev, vec![Ev::Data(DataKind::Text, vec![0xf4], true, false)]);
    // A character split across frames is fine.
    let mut c = Connection::server(no_timers(), 0).unwrap();
    let euro = "€".as_bytes();
    let mut b = frame_to(r, 1, false, 0, &euro[..1]);
    b.extend(frame_to(r, 0, false, 0, &euro[1..2]));
    b.extend(frame_to(r, 0, true, 0, &euro[2..]));
    assert!(feed_all(&mut c, &b).is_ok());
    // Truncated at the end of the message.
    expect_failure(
        r,
        &frame_to(r, 1, true, 0, &euro[..2]),
        Error::InvalidUtf8,
        1007,
    );
    // Binary is never checked.
    let mut c = Connection::server(no_timers(), 0).unwrap();
    assert!(feed_all(&mut c, &frame_to(r, 2, true, 0, &[0xff, 0xfe])).is_ok());
}

#[test]
fn close_payload_rules() {
    let r = Role::Server;
    expect_failure(
        r,
        &frame_to(r, 8, true, 0, &[3]),
        ProtocolError::CloseTooShort.into(),
        1002,
    );
    for code in [0u16, 999, 1004, 1005, 1006, 1015, 1016, 2999, 5000, 65535] {
        let b = frame_to(r, 8, true, 0, &code.to_be_bytes());
        expect_failure(r, &b, ProtocolError::InvalidCloseCode.into(), 1002);
    }
    let mut p = 1000u16.to_be_bytes().to_vec();
    p.extend([0xce, 0xba, 0xe1, 0xbd]);
    expect_failure(r, &frame_to(r, 8, true, 0, &p), Error::InvalidUtf8, 1007);
    for code in [
        1000u16, 1001, 1002, 1003, 1007, 1008, 1009, 1010, 1011, 1012, 1013, 1014, 3000, 4999,
    ] {
        let mut c = Connection::server(no_timers(), 0).unwrap();
        let mut p = code.to_be_bytes().to_vec();
        p.extend_from_slice(b"why");
        let ev = feed_all(&mut c, &frame_to(r, 8, true, 0, &p)).unwrap();
        assert_eq!(ev, vec![Ev::Close(Some(code), "why".into())]);
        assert_eq!(close_code_sent(&mut c), Some(Some(code)), "echo of {code}");
    }
}

#[test]
fn peer_initiated_close_handshake() {
    for role in [Role::Server, Role::Client] {
        let mut c = Connection::new(role, no_timers(), 3, 0).unwrap();
        let ev = feed_all(&mut c, &frame_to(role, 8, true, 0, &[])).unwrap();
        assert_eq!(ev, vec![Ev::Close(None, String::new())]);
        assert_eq!(c.state(), State::ClosedByPeer);
        assert_eq!(c.peer_close_code(), Some(None));
        assert!(!c.should_shutdown(), "answer not yet sent");
        // Data after the close: discarded when received, refused when sent.
        let mut more = frame_to(role, 1, true, 0, b"late");
        let len = more.len();
        assert_eq!(c.receive(0, &mut more), Ok((len, None)));
        assert_eq!(
            c.frame_header(OpCode::Text, true, &mut []).map(|_| ()),
            Err(Error::Closed)
        );
        assert_eq!(close_code_sent(&mut c), Some(None));
        assert!(c.poll_transmit().is_none());
        assert_eq!(c.error(), None);
        match role {
            // RFC 6455 section 7.1.1: the server ends the TCP connection first.
            Role::Server => {
                assert_eq!(c.state(), State::Terminated);
                assert!(c.should_shutdown());
                assert_eq!(c.poll_timeout(), None);
            }
            // The client waits for the server's EOF, up to the close timeout.
            Role::Client => {
                assert_eq!(c.state(), State::CloseAcknowledged);
                assert!(!c.should_shutdown());
                assert_eq!(c.poll_timeout(), Some(5_000));
                assert_eq!(c.receive_eof(), Ok(()));
                assert_eq!(c.state(), State::Terminated);
                assert!(c.should_shutdown());
            }
        }
    }
}

#[test]
fn a_client_ends_the_transport_itself_when_the_server_does_not() {
    let mut c = Connection::client(
        no_timers().with_close_timeout(Duration::from_millis(300)),
        3,
        0,
    )
    .unwrap();
    feed_all(
        &mut c,
        &frame_to(Role::Client, 8, true, 0, &1000u16.to_be_bytes()),
    )
    .unwrap();
    assert_eq!(close_code_sent(&mut c), Some(Some(1000)));
    assert_eq!(c.poll_timeout(), Some(300));
    c.handle_timeout(299).unwrap();
    assert_eq!(c.state(), State::CloseAcknowledged);
    c.handle_timeout(300).unwrap();
    assert_eq!(c.state(), State::Terminated);
    assert!(c.should_shutdown());
    assert_eq!(c.error(), None, "a clean close all the same");
}

#[test]
fn local_close_handshake() {
    for role in [Role::Client, Role::Server] {
        let mut c = Connection::new(role, no_timers(), 9, 0).unwrap();
        c.close(10, Some(CloseCode::NORMAL), "done").unwrap();
        assert_eq!(c.state(), State::ClosedByUs);
        assert!(!c.state().can_send() && c.state().can_receive());
        assert_eq!(c.close(10, Some(CloseCode::NORMAL), ""), Err(Error::Closed));
        assert_eq!(
            c.encode_frame(OpCode::Text, true, b"x", &mut [0; 32]),
            Err(Error::Closed)
        );
        assert_eq!(
            c.poll_timeout(),
            Some(5_010),
            "the close deadline counts from `now`"
        );
        let f = c.poll_transmit().unwrap();
        assert_eq!(f.opcode(), OpCode::Close);
        let (h, n) = FrameHeader::decode(f.as_bytes()).unwrap().unwrap();
        let mut p = f.as_bytes()[n..].to_vec();
        if let Some(k) = h.mask {
            crate::mask::apply_mask_naive(&mut p, k, 0);
        }
        assert_eq!(p, b"\x03\xe8done");
        // Data still arrives while closing.
        let ev = feed_all(&mut c, &frame_to(role, 1, true, 0, b"in flight")).unwrap();
        assert_eq!(ev.len(), 1);
        let ev = feed_all(&mut c, &frame_to(role, 8, true, 0, &1000u16.to_be_bytes())).unwrap();
        assert_eq!(ev, vec![Ev::Close(Some(1000), String::new())]);
        assert!(c.poll_transmit().is_none(), "no second close");
        assert_eq!(c.peer_close_code(), Some(Some(CloseCode::NORMAL)));
        match role {
            Role::Server => assert_eq!(c.state(), State::Terminated),
            Role::Client => {
                assert_eq!(c.state(), State::CloseAcknowledged);
                assert_eq!(c.receive_eof(), Ok(()));
                assert_eq!(c.state(), State::Terminated);
            }
        }
        assert!(c.should_shutdown());
        assert_eq!(c.error(), None);
    }
}

#[test]
fn the_peers_close_before_ours_was_sent_completes_the_handshake() {
    let mut c = Connection::server(no_timers(), 0).unwrap();
    c.close(0, Some(CloseCode::GOING_AWAY), "").unwrap();
    // The peer's close crosses ours, which has not been written yet.
    feed_all(
        &mut c,
        &frame_to(Role::Server, 8, true, 0, &1000u16.to_be_bytes()),
    )
    .unwrap();
    assert_eq!(c.state(), State::ClosedByPeer);
    assert_eq!(
        close_code_sent(&mut c),
        Some(Some(1001)),
        "ours, not an echo"
    );
    assert_eq!(c.state(), State::Terminated);
}

#[test]
fn eof_before_the_close_handshake_is_a_vanished_peer() {
    for close_first in [false, true] {
        let mut c = Connection::server(no_timers(), 0).unwrap();
        if close_first {
            c.close(0, Some(CloseCode::NORMAL), "").unwrap();
        }
        assert_eq!(c.receive_eof(), Err(Error::PeerVanished));
        assert_eq!(c.state(), State::Terminated);
        assert_eq!(c.error(), Some(Error::PeerVanished));
        assert_eq!(c.error_close_code(), None);
        assert_eq!(c.poll_timeout(), None);
        let mut more = frame_to(Role::Server, 1, true, 0, b"x");
        let len = more.len();
        assert_eq!(c.receive(0, &mut more), Ok((len, None)));
    }
}

#[test]
fn a_failed_connection_waits_for_eof_until_its_deadline() {
    let cfg = no_timers().with_close_timeout(Duration::from_millis(200));
    // Ended by the peer's EOF.
    let mut c = Connection::server(cfg, 0).unwrap();
    let mut bad = [0x83, 0x80, 1, 2, 3, 4]; // a reserved opcode
    assert!(c.receive(50, &mut bad).is_err());
    assert_eq!(close_code_sent(&mut c), Some(Some(1002)));
    assert!(c.should_shutdown(), "shut at once, then wait");
    assert_eq!(c.poll_timeout(), Some(250));
    assert_eq!(c.receive_eof(), Ok(()));
    assert_eq!(c.state(), State::Terminated);
    assert_eq!(
        c.error(),
        Some(Error::Protocol(ProtocolError::ReservedOpcode))
    );
    // Or by the deadline.
    let mut c = Connection::client(cfg, 1, 0).unwrap();
    let mut bad = [0x83, 0x00];
    assert!(c.receive(50, &mut bad).is_err());
    c.handle_timeout(249).unwrap();
    assert_eq!(c.state(), State::CloseAcknowledged);
    c.handle_timeout(250).unwrap();
    assert_eq!(c.state(), State::Terminated);
}

#[test]
fn a_failure_after_our_close_sends_no_second_close() {
    let mut c = Connection::server(no_timers(), 0).unwrap();
    c.close(0, Some(CloseCode::NORMAL), "").unwrap();
    assert_eq!(close_code_sent(&mut c), Some(Some(1000)));
    let mut bad = frame_to(Role::Server, 1, true, 0, &[0xff]);
    assert_eq!(feed_all(&mut c, &bad).unwrap_err().1, Error::InvalidUtf8);
    assert_eq!(c.error(), Some(Error::InvalidUtf8));
    assert_eq!(c.error_close_code(), None, "our close had gone out already");
    assert!(c.poll_transmit().is_none());
    bad.clear();
}

#[test]
fn a_taken_sender_sends_data_and_the_connection_answers_pings() {
    let mut c = Connection::client(no_timers(), 11, 0).unwrap();
    let mut tx = c.take_sender();
    let mut out = [0u8; 64];
    assert_eq!(
        c.encode_frame(OpCode::Text, true, b"x", &mut out),
        Err(Error::InvalidUsage(Usage::SenderTaken))
    );
    let n = tx
        .encode_frame(OpCode::Text, true, b"hello", &mut out)
        .unwrap();
    let mut server = Connection::server(no_timers(), 0).unwrap();
    assert_eq!(
        feed_all(&mut server, &out[..n]).unwrap(),
        vec![Ev::Data(DataKind::Text, b"hello".to_vec(), true, true)]
    );
    // A ping to the client: its pong goes out through the taken sender.
    feed_all(&mut c, &frame_to(Role::Client, 9, true, 0, b"p")).unwrap();
    let pong = c.poll_control().unwrap();
    assert_eq!((pong.opcode(), pong.payload()), (OpCode::Pong, &b"p"[..]));
    let frame = tx.encode_control(&pong).unwrap();
    assert_eq!(
        feed_all(&mut server, frame.as_bytes()).unwrap(),
        vec![Ev::Pong(b"p".to_vec())]
    );
    // The sender closes on its own; the connection's own close frame is then dropped.
    let close = tx.encode_close(Some(CloseCode::NORMAL), "bye").unwrap();
    assert_eq!(close.opcode(), OpCode::Close);
    assert!(tx.is_closed());
    assert_eq!(
        tx.encode_frame(OpCode::Text, true, b"x", &mut out),
        Err(Error::Closed)
    );
    c.close(0, Some(CloseCode::NORMAL), "bye").unwrap();
    let own = c.poll_control().unwrap();
    assert_eq!(tx.encode_control(&own).map(|f| f.opcode()), None);
}

#[test]
fn limits_at_and_past() {
    let limits = Limits::DEFAULT
        .with_max_frame_size(100)
        .with_max_message_size(250)
        .with_max_fragments(3);
    let cfg = no_timers().with_limits(limits);
    let r = Role::Server;
    // Frame size: at the limit fine, one past it 1009, decided from the header alone.
    let mut c = Connection::server(cfg, 0).unwrap();
    assert!(feed_all(&mut c, &frame_to(r, 2, true, 0, &[0; 100])).is_ok());
    let mut c = Connection::server(cfg, 0).unwrap();
    let b = frame_to(r, 2, true, 0, &[0; 101]);
    let (_, e) = feed_all(&mut c, &b[..8]).unwrap_err();
    assert_eq!(e, Error::LimitExceeded(Limit::FrameSize));
    assert_eq!(close_code_sent(&mut c), Some(Some(1009)));
    // Message size across fragments.
    let mut ok = frame_to(r, 2, false, 0, &[0; 100]);
    ok.extend(frame_to(r, 0, false, 0, &[0; 100]));
    ok.extend(frame_to(r, 0, true, 0, &[0; 50]));
    let mut c = Connection::server(cfg, 0).unwrap();
    assert!(feed_all(&mut c, &ok).is_ok());
    let mut bad = frame_to(r, 2, false, 0, &[0; 100]);
    bad.extend(frame_to(r, 0, false, 0, &[0; 100]));
    bad.extend(frame_to(r, 0, true, 0, &[0; 51]));
    let mut c = Connection::server(cfg, 0).unwrap();
    assert_eq!(
        feed_all(&mut c, &bad).unwrap_err().1,
        Error::LimitExceeded(Limit::MessageSize)
    );
    assert_eq!(close_code_sent(&mut c), Some(Some(1009)));
    // Fragment count.
    let mut four = frame_to(r, 2, false, 0, b"");
    four.extend(frame_to(r, 0, false, 0, b""));
    four.extend(frame_to(r, 0, false, 0, b""));
    let mut c = Connection::server(cfg, 0).unwrap();
    assert!(feed_all(&mut c, &four).is_ok(), "three fragments");
    four.extend(frame_to(r, 0, true, 0, b""));
    let mut c = Connection::server(cfg, 0).unwrap();
    assert_eq!(
        feed_all(&mut c, &four).unwrap_err().1,
        Error::LimitExceeded(Limit::Fragments)
    );
    assert_eq!(close_code_sent(&mut c), Some(Some(1009)));
}

#[test]
fn pong_replies_stay_bounded() {
    let r = Role::Server;
    let mut c = Connection::server(no_timers(), 0).unwrap();
    let mut b = Vec::new();
    for i in 0..10_000u32 {
        b.extend(frame_to(r, 9, true, 0, &i.to_be_bytes()));
    }
    let ev = feed_all(&mut c, &b).unwrap();
    assert_eq!(ev.len(), 10_000);
    let pong = c.poll_transmit().unwrap();
    assert_eq!(
        &pong.as_bytes()[2..],
        &9_999u32.to_be_bytes(),
        "newest pong wins"
    );
    assert!(c.poll_transmit().is_none());
}

#[test]
fn send_side_rules() {
    let mut c = Connection::server(no_timers(), 0).unwrap();
    let mut out = [0u8; 64];
    assert_eq!(
        c.encode_frame(OpCode::Continuation, true, b"x", &mut out),
        Err(Error::InvalidUsage(Usage::NoMessageStarted))
    );
    assert_eq!(c.encode_frame(OpCode::Text, false, b"ab", &mut out), Ok(4));
    assert_eq!(&out[..4], &[0x01, 2, b'a', b'b']);
    assert_eq!(
        c.encode_frame(OpCode::Binary, true, b"x", &mut out),
        Err(Error::InvalidUsage(Usage::MessageInProgress))
    );
    assert_eq!(c.encode_frame(OpCode::Ping, true, b"p", &mut out), Ok(3));
    assert_eq!(
        c.encode_frame(OpCode::Continuation, true, b"c", &mut out),
        Ok(3)
    );
    assert_eq!(&out[..3], &[0x80, 1, b'c']);
    assert_eq!(
        c.encode_frame(OpCode::Ping, true, &[0; 126], &mut [0; 200]),
        Err(Error::InvalidUsage(Usage::ControlTooLong))
    );
    assert_eq!(
        c.encode_frame(OpCode::Binary, true, &[0; 10], &mut out[..11]),
        Err(Error::BufferTooSmall)
    );
    // A failed encode does not start a message.
    assert_eq!(
        c.encode_frame(OpCode::Binary, true, &[0; 10], &mut out),
        Ok(12)
    );
    assert_eq!(
        c.close(0, Some(CloseCode(1005)), ""),
        Err(Error::InvalidUsage(Usage::InvalidCloseCode))
    );
    assert_eq!(c.state(), State::Open);
}

#[test]
fn client_frames_are_masked_and_decode_on_a_server() {
    let mut client = Connection::client(no_timers(), 42, 0).unwrap();
    let mut server = Connection::server(no_timers(), 0).unwrap();
    let mut out = [0u8; 300];
    let n = client
        .encode_frame(OpCode::Text, true, "masked ✓".as_bytes(), &mut out)
        .unwrap();
    assert_ne!(&out[6..n], "masked ✓".as_bytes());
    let ev = feed_all(&mut server, &out[..n]).unwrap();
    assert_eq!(
        ev,
        vec![Ev::Data(
            DataKind::Text,
            "masked ✓".as_bytes().to_vec(),
            true,
            true
        )]
    );
    let mut payload = *b"zero copy";
    let h = client
        .frame_header(OpCode::Binary, true, &mut payload)
        .unwrap();
    let mut wire = h.as_bytes().to_vec();
    wire.extend_from_slice(&payload);
    let ev = feed_all(&mut server, &wire).unwrap();
    assert_eq!(
        ev,
        vec![Ev::Data(
            DataKind::Binary,
            b"zero copy".to_vec(),
            true,
            true
        )]
    );
    // Two frames get different masks.
    let a = client.frame_header(OpCode::Binary, true, &mut []).unwrap();
    let b = client.frame_header(OpCode::Binary, true, &mut []).unwrap();
    assert_ne!(a.as_bytes(), b.as_bytes());
}

#[test]
fn keepalive_ping_and_pong_timeout() {
    let cfg = Config::DEFAULT
        .with_ping_interval(Some(Duration::from_millis(1000)))
        .with_pong_timeout(Duration::from_millis(500));
    let mut c = Connection::server(cfg, 10).unwrap();
    assert_eq!(c.poll_timeout(), Some(1010), "armed when opened");
    c.handle_timeout(500).unwrap();
    assert!(c.poll_transmit().is_none());
    c.handle_timeout(1010).unwrap();
    let ping = c.poll_transmit().unwrap();
    assert_eq!(ping.opcode(), OpCode::Ping);
    assert_eq!(c.poll_timeout(), Some(1510));
    // A pong (any frame) in time clears the deadline.
    let mut pong = frame_to(Role::Server, 10, true, 0, &ping.as_bytes()[2..]);
    c.receive(1400, &mut pong).unwrap();
    assert_eq!(c.poll_timeout(), Some(2010));
    c.handle_timeout(1600).unwrap();
    c.handle_timeout(2010).unwrap();
    assert_eq!(c.poll_transmit().unwrap().opcode(), OpCode::Ping);
    // Silence: the pong deadline passes at 2510, not a millisecond before.
    c.handle_timeout(2509).unwrap();
    assert_eq!(
        c.handle_timeout(2510),
        Err(Error::Timeout(TimeoutKind::Pong))
    );
    assert_eq!(c.state(), State::Terminated);
    assert!(
        c.poll_transmit().is_none(),
        "a dead peer gets no close frame"
    );
    assert!(c.should_shutdown());
}

#[test]
fn close_handshake_timeout() {
    let cfg = no_timers().with_close_timeout(Duration::from_millis(300));
    let mut c = Connection::client(cfg, 3, 0).unwrap();
    c.close(100, Some(CloseCode::GOING_AWAY), "").unwrap();
    assert_eq!(c.poll_timeout(), Some(400));
    c.handle_timeout(399).unwrap();
    assert_eq!(
        c.handle_timeout(400),
        Err(Error::Timeout(TimeoutKind::Close))
    );
    assert_eq!(
        c.state(),
        State::Terminated,
        "an unresponsive peer is not waited for"
    );
    assert_eq!(c.error_close_code(), None);
}

#[test]
fn idle_timeout_closes_with_1001() {
    let cfg = no_timers().with_idle_timeout(Some(Duration::from_millis(1000)));
    let mut c = Connection::server(cfg, 0).unwrap();
    assert_eq!(c.poll_timeout(), Some(1000));
    c.handle_timeout(900).unwrap();
    let mut b = frame_to(Role::Server, 2, true, 0, b"x");
    c.receive(950, &mut b).unwrap();
    assert_eq!(c.poll_timeout(), Some(1950));
    c.handle_timeout(1949).unwrap();
    assert_eq!(
        c.handle_timeout(1950),
        Err(Error::Timeout(TimeoutKind::Idle))
    );
    assert_eq!(close_code_sent(&mut c), Some(Some(1001)));
    assert_eq!(c.state(), State::CloseAcknowledged);
}

#[test]
fn bad_config_is_an_error() {
    for cfg in [
        Config::DEFAULT.with_ping_interval(Some(Duration::ZERO)),
        Config::DEFAULT.with_pong_timeout(Duration::ZERO),
        Config::DEFAULT.with_close_timeout(Duration::ZERO),
        Config::DEFAULT.with_idle_timeout(Some(Duration::ZERO)),
        Config::DEFAULT.with_max_frame_size(0),
    ] {
        assert_eq!(
            Connection::server(cfg, 0).map(|_| ()),
            Err(Error::InvalidUsage(Usage::InvalidConfig))
        );
    }
    // Under a millisecond rounds up: only zero is refused.
    let cfg = Config::DEFAULT.with_ping_interval(Some(Duration::from_micros(1)));
    assert_eq!(Connection::server(cfg, 0).unwrap().poll_timeout(), Some(1));
    let _ = HandshakeError::MalformedHttp;
}

/// A stream of frames as a server would receive it.
fn stream_strategy() -> impl Strategy<Value = Vec<u8>> {
    let frame = prop_oneof![
        (any::<bool>(), prop::collection::vec(any::<u8>(), 0..300)).prop_map(|(_, p)| (2u8, p)),
        "[a-zé€😀]{0,50}".prop_map(|s: String| (1u8, s.into_bytes())),
        prop::collection::vec(any::<u8>(), 0..125).prop_map(|p| (9u8, p)),
        prop::collection::vec(any::<u8>(), 0..125).prop_map(|p| (10u8, p)),
    ];
    prop::collection::vec((frame, 1usize..4), 0..12).prop_map(|frames| {
        let mut out = Vec::new();
        for ((op, payload), pieces) in frames {
            if op >= 8 || pieces == 1 {
                out.extend(frame_to(Role::Server, op, true, 0, &payload));
                continue;
            }
            // Split the message into `pieces` fragments, with a ping in between.
            let step = payload.len().div_ceil(pieces).max(1);
            let chunks: Vec<&[u8]> = if payload.is_empty() {
                vec![&[][..]]
            } else {
                payload.chunks(step).collect()
            };
            for (i, c) in chunks.iter().enumerate() {
                let opc = if i == 0 { op } else { 0 };
                out.extend(frame_to(Role::Server, opc, i + 1 == chunks.len(), 0, c));
                if i == 0 {
                    out.extend(frame_to(Role::Server, 9, true, 0, b"mid"));
                }
            }
        }
        out
    })
}

/// Feeds all of `bytes` with `receive_into`, giving it at most `room` bytes of output at a time
/// (none while `data_remaining` is 0); returns the events, or the first error.
fn feed_all_into(
    conn: &mut Connection,
    bytes: &[u8],
    room: usize,
) -> Result<Vec<Ev>, (Vec<Ev>, Error)> {
    let mut buf = bytes.to_vec();
    let mut out = vec![core::mem::MaybeUninit::new(0xEEu8); room];
    let total = buf.len();
    let mut events = Vec::new();
    let mut pos = 0;
    loop {
        let give = (conn.data_remaining() as usize).min(room);
        let before = conn.data_remaining();
        match conn.receive_into(0, &mut buf[pos..], &mut out[..give]) {
            Ok((n, ev)) => {
                pos += n;
                match ev {
                    Some(e) => {
                        let e = Ev::from(e);
                        if let Ev::Data(_, p, _, _) = &e {
                            if give > 0 {
                                // Written to `out`, as much as there was room and input for.
                                assert!(p.len() <= give && p.len() as u64 <= before);
                                // SAFETY: `receive_into` wrote the payload there.
                                let head: Vec<u8> = out[..p.len()]
                                    .iter()
                                    .map(|b| unsafe { b.assume_init() })
                                    .collect();
                                assert_eq!(&head, p);
                            }
                        }
                        events.push(e);
                    }
                    None if pos == total => return Ok(events),
                    None => {
                        // Stopped for want of room: a data payload is next.
                        assert_eq!(give, 0);
                        assert!(conn.data_remaining() > 0, "stopped with nothing to write");
                    }
                }
            }
            Err(e) => return Err((events, e)),
        }
    }
}

#[test]
fn receive_into_unmasks_into_the_output() {
    let payload: Vec<u8> = (0..3000u32).map(|i| (i * 7) as u8).collect();
    let mut bytes = frame_to(Role::Server, 2, true, 0, &payload);
    bytes.extend(frame_to(Role::Server, 1, false, 0, "h€".as_bytes()));
    bytes.extend(frame_to(Role::Server, 9, true, 0, b"ping"));
    bytes.extend(frame_to(Role::Server, 0, true, 0, "llo".as_bytes()));
    let mut whole = Connection::server(no_timers(), 0).unwrap();
    let expected = normalise(&feed_all(&mut whole, &bytes).unwrap());
    for room in [1, 2, 3, 5, 64, 1000, 4096] {
        let mut c = Connection::server(no_timers(), 0).unwrap();
        let events = feed_all_into(&mut c, &bytes, room).unwrap();
        assert_eq!(normalise(&events), expected, "room {room}");
        // The pong is queued as with `receive`.
        assert_eq!(c.poll_transmit().map(|f| f.opcode()), Some(OpCode::Pong));
    }
    // A client's input is unmasked already: copied as it is.
    let mut c = Connection::client(no_timers(), 7, 0).unwrap();
    let bytes = frame_to(Role::Client, 2, true, 0, &payload);
    let events = feed_all_into(&mut c, &bytes, 700).unwrap();
    assert_eq!(
        normalise(&events),
        vec![Ev::Data(DataKind::Binary, payload, true, true)]
    );
}

#[test]
fn receive_into_without_room_stops_before_the_payload() {
    let bytes = frame_to(Role::Server, 2, true, 0, b"abcdef");
    let mut c = Connection::server(no_timers(), 0).unwrap();
    let mut buf = bytes.clone();
    assert_eq!(c.data_remaining(), 0);
    assert_eq!(c.receive_into(0, &mut buf, &mut []), Ok((6, None)));
    assert_eq!(c.data_remaining(), 6);
    // Again with no room: no progress, and nothing is lost.
    assert_eq!(c.receive_into(0, &mut buf[6..], &mut []), Ok((0, None)));
    let mut out = [core::mem::MaybeUninit::new(0u8); 4];
    let (n, ev) = c.receive_into(0, &mut buf[6..], &mut out).unwrap();
    assert_eq!(
        (n, ev.map(Ev::from)),
        (
            4,
            Some(Ev::Data(DataKind::Binary, b"abcd".to_vec(), false, false))
        )
    );
    assert_eq!(c.data_remaining(), 2);
    let (n, ev) = c.receive_into(0, &mut buf[10..], &mut out).unwrap();
    assert_eq!(
        (n, ev.map(Ev::from)),
        (
            2,
            Some(Ev::Data(DataKind::Binary, b"ef".to_vec(), true, true))
        )
    );
    assert_eq!(c.data_remaining(), 0);
    // Control frames need no room.
    let mut ping = frame_to(Role::Server, 9, true, 0, b"p");
    let (n, ev) = c.receive_into(0, &mut ping, &mut []).unwrap();
    assert_eq!((n, ev.map(Ev::from)), (7, Some(Ev::Ping(b"p".to_vec()))));
}

#[test]
fn receive_into_checks_text_and_limits() {
    // Invalid UTF-8 written to the output still fails the connection with 1007.
    let bytes = frame_to(Role::Server, 1, true, 0, &[b'a', 0xC0, 0x80]);
    let mut c = Connection::server(no_timers(), 0).unwrap();
    let (_, e) = feed_all_into(&mut c, &bytes, 64).unwrap_err();
    assert_eq!(e, Error::InvalidUtf8);
    assert_eq!(close_code_sent(&mut c), Some(Some(1007)));
    // The frame size limit: at it passes, one past it is 1009 before any payload is written.
    let config = no_timers()
        .with_max_frame_size(100)
        .with_max_message_size(100);
    let mut c = Connection::server(config, 0).unwrap();
    let at = frame_to(Role::Server, 2, true, 0, &[1; 100]);
    assert_eq!(feed_all_into(&mut c, &at, 64).unwrap().len(), 2);
    let past = frame_to(Role::Server, 2, true, 0, &[1; 101]);
    let (events, e) = feed_all_into(&mut c, &past, 64).unwrap_err();
    assert!(events.is_empty());
    assert_eq!(e, Error::LimitExceeded(Limit::FrameSize));
    assert_eq!(close_code_sent(&mut c), Some(Some(1009)));
}

proptest! {
    #[test]
    fn any_chunking_gives_the_same_events(
        stream in stream_strategy(),
        cuts in prop::collection::vec(any::<prop::sample::Index>(), 0..20),
    ) {
        let mut whole = Connection::server(no_timers(), 0).unwrap();
        let expected = normalise(&feed_all(&mut whole, &stream).unwrap());
        let mut points: Vec<usize> = cuts.iter().map(|i| i.index(stream.len() + 1)).collect();
        points.sort_unstable();
        let mut c = Connection::server(no_timers(), 0).unwrap();
        let mut events = Vec::new();
        let mut last = 0;
        for p in points.into_iter().chain([stream.len()]) {
            events.extend(feed_all(&mut c, &stream[last..p]).unwrap());
            last = p;
        }
        prop_assert_eq!(normalise(&events), expected);
    }

    #[test]
    fn receive_into_gives_the_events_of_receive(
        stream in stream_strategy(),
        room in 1usize..400,
    ) {
        let mut whole = Connection::server(no_timers(), 0).unwrap();
        let expected = normalise(&feed_all(&mut whole, &stream).unwrap());
        let mut c = Connection::server(no_timers(), 0).unwrap();
        let events = feed_all_into(&mut c, &stream, room).unwrap();
        prop_assert_eq!(normalise(&events), expected);
    }

    #[test]
    fn arbitrary_bytes_never_panic(bytes in prop::collection::vec(any::<u8>(), 0..400), client in any::<bool>()) {
        let role = if client { Role::Client } else { Role::Server };
        let mut c = Connection::new(role, Config::DEFAULT, 1, 0).unwrap();
        if let Err((_, e)) = feed_all(&mut c, &bytes) {
            prop_assert_eq!(c.state(), State::CloseAcknowledged);
            if let Some(code) = e.close_code() {
                prop_assert_eq!(close_code_sent(&mut c), Some(Some(code.0)));
            }
        }
    }
}

/// The parameters a server agrees to for a plain `permessage-deflate` offer.
#[cfg(feature = "deflate")]
fn default_deflate() -> crate::deflate::Negotiated {
    crate::deflate::negotiate_server(
        ["permessage-deflate"],
        &crate::deflate::DeflateConfig::CONTEXT_TAKEOVER,
    )
    .unwrap()
}

/// Raw deflate data (fixed Huffman codes) for one literal zero followed by `matches`
/// length-258, distance-1 copies: 13 bits per 258 output bytes, about 1:160.
#[cfg(feature = "deflate")]
fn deflate_bomb(matches: usize) -> Vec<u8> {
    struct Bits {
        out: Vec<u8>,
        acc: u64,
        n: u32,
    }
    impl Bits {
        fn put(&mut self, v: u32, len: u32) {
            self.acc |= u64::from(v) << self.n;
            self.n += len;
            while self.n >= 8 {
                self.out.push(self.acc as u8);
                self.acc >>= 8;
                self.n -= 8;
            }
        }
        /// Huffman codes are sent most significant bit first.
        fn code(&mut self, v: u32, len: u32) {
            let rev = v.reverse_bits() >> (32 - len);
            self.put(rev, len);
        }
    }
    let mut b = Bits {
        out: Vec::new(),
        acc: 0,
        n: 0,
    };
    b.put(0, 1); // BFINAL = 0
    b.put(1, 2); // BTYPE = fixed Huffman
    b.code(0x30, 8); // literal 0
    for _ in 0..matches {
        b.code(0xC5, 8); // length code 285 (258 bytes): 0xC0 + (285 - 280)
        b.code(0, 5); // distance code 0 (distance 1)
    }
    b.code(0, 7); // end of block (256)
    // A sync flush: an empty stored block, whose 00 00 ff ff tail the sender strips.
    b.put(0, 1);
    b.put(0, 2);
    if b.n > 0 {
        b.put(0, 8 - b.n);
    }
    b.out
}

#[cfg(feature = "deflate")]
#[test]
fn decompression_bomb_ends_in_1009_within_the_budget() {
    let limit = 1 << 20;
    let cfg = no_timers()
        .with_max_frame_size(limit)
        .with_max_message_size(limit);
    let params = default_deflate();
    // 40 KiB on the wire that would inflate to about 6 MiB.
    let bomb = deflate_bomb(24_000);
    assert!(bomb.len() < 41 << 10);
    let mut c = Connection::server(cfg, 0).unwrap();
    c.set_deflate(params);
    let wire = frame_to(Role::Server, 2, true, crate::frame::RSV1, &bomb);
    let mut buf = wire.clone();
    let mut pos = 0;
    let mut delivered = 0usize;
    let err = loop {
        match c.receive(0, &mut buf[pos..]) {
            Ok((n, Some(Event::Data { payload, .. }))) => {
                pos += n;
                delivered += payload.len();
            }
            Ok((n, _)) => pos += n,
            Err(e) => break e,
        }
        let out_cap = c.rx.inflater.as_ref().unwrap().out.capacity();
        assert!(
            out_cap <= (limit as usize) + (64 << 10),
            "inflate buffer grew to {out_cap}"
        );
    };
    assert_eq!(err, Error::LimitExceeded(Limit::MessageSize));
    assert!(delivered <= limit as usize);
    assert!(c.rx.inflater.as_ref().unwrap().out.capacity() <= (limit as usize) + (64 << 10));
    assert_eq!(close_code_sent(&mut c), Some(Some(1009)));

    // The same bomb under a limit it fits in inflates fully: the budget is what stopped it.
    let big = cfg
        .with_max_frame_size(8 << 20)
        .with_max_message_size(8 << 20);
    let mut c = Connection::server(big, 0).unwrap();
    c.set_deflate(params);
    let ev = feed_all(&mut c, &wire).unwrap();
    let total: usize = ev
        .iter()
        .map(|e| match e {
            Ev::Data(_, p, _, _) => p.len(),
            _ => 0,
        })
        .sum();
    assert_eq!(total, 1 + 24_000 * 258);
}

#[cfg(feature = "deflate")]
#[test]
fn compressed_frame_rules() {
    let params = default_deflate();
    let r = Role::Server;
    let new = || {
        let mut c = Connection::server(no_timers(), 0).unwrap();
        c.set_deflate(params);
        c
    };
    // RSV1 on a control frame or a continuation: 1002.
    for bytes in [frame_to(r, 9, true, crate::frame::RSV1, b""), {
        let mut b = frame_to(r, 2, false, 0, b"a");
        b.extend(frame_to(r, 0, true, crate::frame::RSV1, b"b"));
        b
    }] {
        let mut c = new();
        assert_eq!(
            feed_all(&mut c, &bytes).unwrap_err().1,
            Error::Protocol(ProtocolError::CompressedControlOrContinuation)
        );
        assert_eq!(close_code_sent(&mut c), Some(Some(1002)));
    }
    // RSV2 stays reserved.
    let mut c = new();
    assert!(feed_all(&mut c, &frame_to(r, 2, true, crate::frame::RSV2, b"x")).is_err());
    // Garbage compressed data: 1002, not a panic.
    let mut c = new();
    let e = feed_all(
        &mut c,
        &frame_to(r, 1, true, crate::frame::RSV1, &[0xff; 40]),
    )
    .unwrap_err()
    .1;
    assert_eq!(e.close_code(), Some(CloseCode::PROTOCOL_ERROR));
    // Compressed invalid UTF-8: 1007 on the inflated text.
    let mut client = Connection::client(no_timers(), 5, 0).unwrap();
    client.set_deflate(params);
    let mut wire = Vec::new();
    client
        .encode_message(
            OpCode::Binary,
            &[b'a'; 40]
                .iter()
                .chain(&[0xff])
                .copied()
                .collect::<Vec<_>>(),
            &mut wire,
        )
        .unwrap();
    wire[0] = (wire[0] & 0xF0) | 0x1; // claim text
    let mut c = new();
    assert_eq!(feed_all(&mut c, &wire).unwrap_err().1, Error::InvalidUtf8);
    // Compressed and uncompressed messages mix, fragmented compressed messages assemble.
    let mut c = new();
    let mut wire = Vec::new();
    client
        .encode_message(
            OpCode::Text,
            "compressed, compressed, compressed".as_bytes(),
            &mut wire,
        )
        .unwrap();
    let n = client.frame_len(5);
    let mut plain = vec![0; n];
    client
        .encode_frame(OpCode::Text, true, b"plain", &mut plain)
        .unwrap();
    wire.extend(plain);
    let ev = normalise(&feed_all(&mut c, &wire).unwrap());
    assert_eq!(
        ev,
        vec![
            Ev::Data(
                DataKind::Text,
                b"compressed, compressed, compressed".to_vec(),
                true,
                true
            ),
            Ev::Data(DataKind::Text, b"plain".to_vec(), true, true),
        ]
    );
}

#[test]
fn frame_remaining_counts_down() {
    let mut c = Connection::server(no_timers(), 0).unwrap();
    let mut b = frame_to(Role::Server, 2, true, 0, &[7u8; 300]);
    assert_eq!(c.frame_remaining(), 0);
    let (n, ev) = c.receive(0, &mut b[..108]).unwrap();
    assert_eq!(n, 108);
    assert!(matches!(
        ev,
        Some(Event::Data {
            frame_fin: false,
            ..
        })
    ));
    assert_eq!(c.frame_remaining(), 200);
    let (_, ev) = c.receive(0, &mut b[108..]).unwrap();
    assert!(matches!(
        ev,
        Some(Event::Data {
            frame_fin: true,
            message_fin: true,
            ..
        })
    ));
    assert_eq!(c.frame_remaining(), 0);
}

#[cfg(feature = "deflate")]
#[test]
fn incompressible_message_at_the_limit_passes_compressed() {
    let limit: u64 = 1 << 20;
    let cfg = no_timers()
        .with_max_frame_size(limit)
        .with_max_message_size(limit);
    let params = default_deflate();
    let mut client = Connection::client(cfg, 9, 0).unwrap();
    client.set_deflate(params);
    let mut server = Connection::server(cfg, 0).unwrap();
    server.set_deflate(params);
    let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
    let data: Vec<u8> = (0..limit)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect();
    let mut wire = Vec::new();
    client
        .encode_message(OpCode::Binary, &data, &mut wire)
        .unwrap();
    assert_eq!(wire[0] & 0x40, 0x40, "sent compressed");
    // Stored blocks: a few bytes per 64 KiB, far below the 5% of fixed codes.
    assert!(
        wire.len() as u64 <= limit + limit / 500 + 16,
        "{} bytes for {limit}",
        wire.len()
    );
    let ev = feed_all(&mut server, &wire).unwrap();
    let total: usize = ev
        .iter()
        .map(|e| match e {
            Ev::Data(_, p, _, _) => p.len(),
            _ => 0,
        })
        .sum();
    assert_eq!(total as u64, limit);
    // One byte more than the limit still fails with 1009, decided by the inflate budget.
    let mut client = Connection::client(cfg, 9, 0).unwrap();
    client.set_deflate(params);
    let mut server = Connection::server(cfg, 0).unwrap();
    server.set_deflate(params);
    let mut more = data.clone();
    more.push(1);
    let mut wire = Vec::new();
    client
        .encode_message(OpCode::Binary, &more, &mut wire)
        .unwrap();
    assert_eq!(
        feed_all(&mut server, &wire).unwrap_err().1.close_code(),
        Some(CloseCode::MESSAGE_TOO_BIG)
    );
}

#[test]
fn huge_timeouts_saturate_instead_of_overflowing() {
    let huge = Duration::from_secs(u64::MAX);
    let cfg = Config::DEFAULT
        .with_ping_interval(Some(huge))
        .with_pong_timeout(huge)
        .with_close_timeout(huge)
        .with_idle_timeout(Some(huge));
    // Periods count up to 49 days (u32::MAX milliseconds).
    let mut c = Connection::server(cfg, 10).unwrap();
    let cap = u64::from(u32::MAX);
    assert_eq!(c.poll_timeout(), Some(10 + cap));
    c.handle_timeout(1_000).unwrap();
    assert_eq!(c.poll_timeout(), Some(10 + cap));
    // Near the end of the clock's range, deadlines saturate instead of overflowing.
    let late = u64::MAX - 5;
    let mut c = Connection::server(cfg, late).unwrap();
    assert_eq!(c.poll_timeout(), Some(u64::MAX - 1));
    c.close(late, Some(CloseCode::NORMAL), "").unwrap();
    assert_eq!(c.poll_timeout(), Some(u64::MAX - 1));
    // A deadline at the last representable instant still fires.
    assert_eq!(
        c.handle_timeout(u64::MAX),
        Err(Error::Timeout(TimeoutKind::Close))
    );
}

fn rate_limited(over: crate::rate::OverLimit) -> Config {
    // 2 messages per second, bursts of 2; bytes unlimited.
    no_timers().with_rate_limits(
        crate::rate::RateLimits::default()
            .with_messages(2, 2)
            .with_over_limit(over),
    )
}

#[test]
fn rate_limit_backpressure_at_and_past_the_limit() {
    let mut c = Connection::server(rate_limited(crate::rate::OverLimit::Backpressure), 0).unwrap();
    let mut b = frame_to(Role::Server, 1, true, 0, b"a");
    b.extend(frame_to(Role::Server, 1, true, 0, b"b"));
    let third = frame_to(Role::Server, 9, true, 0, b"c");
    b.extend(&third);
    // At the limit: two messages pass at once.
    let mut pos = 0;
    for want in [b"a", b"b"] {
        let (n, ev) = c.receive(0, &mut b[pos..]).unwrap();
        pos += n;
        assert_eq!(
            ev.map(Ev::from),
            Some(Ev::Data(DataKind::Text, want.to_vec(), true, true))
        );
    }
    // One past it: the third frame's header is taken and held until the bucket refills
    // (500 ms for one message at 2/s); nothing more is consumed meanwhile.
    let (n, ev) = c.receive(0, &mut b[pos..]).unwrap();
    assert_eq!((n, ev.is_none()), (2 + 4, true), "the header, kept");
    pos += n;
    assert_eq!(c.paused_until(), Some(500));
    assert_eq!(c.poll_timeout(), Some(500));
    assert_eq!(c.receive(499, &mut b[pos..]), Ok((0, None)));
    assert_eq!(c.state(), State::Open);
    c.handle_timeout(500).unwrap();
    assert_eq!(c.paused_until(), None);
    let (n, ev) = c.receive(500, &mut b[pos..]).unwrap();
    assert_eq!(ev.map(Ev::from), Some(Ev::Ping(b"c".to_vec())));
    assert_eq!(pos + n, b.len());
    // A held frame with no payload completes from the kept header alone.
    let mut c = Connection::server(rate_limited(crate::rate::OverLimit::Backpressure), 0).unwrap();
    let mut three = Vec::new();
    for _ in 0..3 {
        three.extend(frame_to(Role::Server, 9, true, 0, b""));
    }
    assert_eq!(feed_all(&mut c, &three[..12]).unwrap().len(), 2);
    assert_eq!(c.receive(0, &mut three[12..]), Ok((6, None)));
    c.handle_timeout(500).unwrap();
    assert_eq!(
        c.receive(500, &mut []).map(|(n, e)| (n, e.map(Ev::from))),
        Ok((0, Some(Ev::Ping(Vec::new()))))
    );
}

#[test]
fn rate_limit_close_at_and_past_the_limit() {
    let mut c = Connection::server(rate_limited(crate::rate::OverLimit::Close), 0).unwrap();
    let mut b = frame_to(Role::Server, 2, true, 0, b"1");
    b.extend(frame_to(Role::Server, 2, true, 0, b"2"));
    assert_eq!(feed_all(&mut c, &b).unwrap().len(), 2, "at the limit");
    let e = feed_all(&mut c, &frame_to(Role::Server, 2, true, 0, b"3")).unwrap_err();
    assert_eq!(e, (Vec::new(), Error::RateLimited));
    assert_eq!(c.error_close_code(), Some(CloseCode::POLICY_VIOLATION));
    assert_eq!(close_code_sent(&mut c), Some(Some(1008)));
    // Refilled in time, the same rate passes.
    let mut c = Connection::server(rate_limited(crate::rate::OverLimit::Close), 0).unwrap();
    for t in [0u64, 0, 500, 1000, 1500] {
        let mut f = frame_to(Role::Server, 2, true, 0, b"x");
        assert!(c.receive(t, &mut f).is_ok(), "at {t}");
    }
    // Bytes on the wire count too: 10 bytes per second, bursts of 10.
    let cfg = no_timers().with_rate_limits(
        crate::rate::RateLimits::default()
            .with_bytes(10, 10)
            .with_over_limit(crate::rate::OverLimit::Close),
    );
    let mut c = Connection::server(cfg, 0).unwrap();
    assert!(feed_all(&mut c, &frame_to(Role::Server, 2, true, 0, &[0; 10])).is_ok());
    let e = feed_all(&mut c, &frame_to(Role::Server, 2, true, 0, &[0; 1])).unwrap_err();
    assert_eq!(e.1, Error::RateLimited);
}

#[test]
fn a_message_must_arrive_within_its_deadline() {
    let cfg = no_timers().with_message_timeout(Some(Duration::from_millis(1000)));
    let mut c = Connection::server(cfg, 0).unwrap();
    let mut first = frame_to(Role::Server, 1, false, 0, b"slow");
    c.receive(100, &mut first).unwrap();
    assert_eq!(c.poll_timeout(), Some(1100));
    // Control frames between its fragments do not extend it.
    let mut ping = frame_to(Role::Server, 9, true, 0, b"");
    c.receive(600, &mut ping).unwrap();
    c.handle_timeout(1099).unwrap();
    assert_eq!(
        c.handle_timeout(1100),
        Err(Error::Timeout(TimeoutKind::Message))
    );
    assert_eq!(close_code_sent(&mut c), Some(Some(1008)));
    // A message that ends in time clears its deadline.
    let mut c = Connection::server(cfg, 0).unwrap();
    let mut b = frame_to(Role::Server, 1, false, 0, b"a");
    b.extend(frame_to(Role::Server, 0, true, 0, b"b"));
    c.receive(0, &mut b[..7]).unwrap();
    c.receive(999, &mut b[7..]).unwrap();
    assert_eq!(c.poll_timeout(), None);
    c.handle_timeout(5_000).unwrap();
    assert_eq!(c.state(), State::Open);
}

#[test]
fn max_lifetime_closes_with_1001_within_its_last_tenth() {
    let cfg = no_timers().with_max_lifetime(Some(Duration::from_secs(100)));
    let mut ends = Vec::new();
    for seed in 0..50u64 {
        let mut c = Connection::new(Role::Server, cfg, seed, 1_000).unwrap();
        let at = c.poll_timeout().unwrap();
        assert!((91_000..=101_000).contains(&at), "seed {seed}: {at}");
        c.handle_timeout(at - 1).unwrap();
        assert_eq!(c.state(), State::Open);
        c.handle_timeout(at).unwrap();
        assert_eq!(c.state(), State::ClosedByUs, "a close, not a failure");
        assert_eq!(c.error(), None);
        assert_eq!(close_code_sent(&mut c), Some(Some(1001)));
        assert_eq!(
            c.poll_timeout(),
            Some(at + 5_000),
            "then the close deadline"
        );
        ends.push(at);
    }
    ends.sort_unstable();
    ends.dedup();
    assert!(ends.len() > 25, "spread out: {ends:?}");
}
