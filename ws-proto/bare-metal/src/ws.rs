//! Every ws-proto call of the program, in a few small functions: make a connection, feed it
//! bytes, send, close, drive its timers, drain what it must send, and the opening handshake.
//! The rest of the program speaks only in these terms.

use crate::inbox::{Inbox, Kind};
use crate::pipe::Pipe;
use core::time::Duration;

use ws_proto::{CloseCode, Config, Connection, DataKind, Error, Event, Limits, OpCode, State};

/// Largest frame or message a connection accepts here (small, as on a device).
const MAX_MESSAGE: u64 = 4096;
/// How long a keepalive ping waits for any answer (ms).
pub const PONG_TIMEOUT: u64 = 500;
/// How long a close frame waits for the peer's (ms).
pub const CLOSE_TIMEOUT: u64 = 1000;

/// One end of a connection: the ws-proto state, what it received, and the time it was last
/// told (ms on the program's counter).
pub struct Peer {
    conn: Connection,
    pub inbox: Inbox,
    now: u64,
}

/// What to send.
#[derive(Clone, Copy)]
pub enum Out {
    /// A whole text message.
    Text,
    /// A whole binary message.
    Binary,
    /// The first frame of a fragmented message.
    First(Kind),
    /// A middle frame of a fragmented message.
    Next,
    /// The last frame of a fragmented message.
    Last,
    /// A ping.
    Ping,
}

/// Where a connection is in its life.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Phase {
    /// Messages flow both ways.
    Open,
    /// A close frame was sent or received; the other is still to come or to go out.
    Closing,
    /// The close handshake is over (or the connection failed): the transport is ending.
    Closed,
}

fn config(keepalive_ms: Option<u64>) -> Config {
    let limits = Limits::DEFAULT
        .with_max_message_size(MAX_MESSAGE)
        .with_max_fragments(16)
        .with_max_header_bytes(1024)
        .with_max_headers(16);
    Config::DEFAULT
        .with_limits(limits)
        .with_ping_interval(keepalive_ms.map(Duration::from_millis))
        .with_pong_timeout(Duration::from_millis(PONG_TIMEOUT))
        .with_close_timeout(Duration::from_millis(CLOSE_TIMEOUT))
}

impl Peer {
    /// A client connection opened at `now`, whose masking keys come from `seed`; keepalive
    /// pings every `keepalive_ms` when set.
    pub fn client(keepalive_ms: Option<u64>, seed: u64, now: u64) -> Result<Peer, Error> {
        Ok(Peer {
            conn: Connection::client(config(keepalive_ms), seed, now)?,
            inbox: Inbox::new(),
            now,
        })
    }

    /// A server connection opened at `now`; keepalive pings every `keepalive_ms` when set.
    pub fn server(keepalive_ms: Option<u64>, now: u64) -> Result<Peer, Error> {
        Ok(Peer {
            conn: Connection::server(config(keepalive_ms), now)?,
            inbox: Inbox::new(),
            now,
        })
    }
}

/// Feeds everything `wire` holds to `peer` in pieces of `chunk` bytes (as reads would bring
/// them), records the events in its inbox and empties `wire`. Returns false when ws-proto left
/// bytes unconsumed.
pub fn feed(peer: &mut Peer, wire: &mut Pipe, chunk: usize) -> Result<bool, Error> {
    let mut all = true;
    for piece in wire.bytes_mut().chunks_mut(chunk.max(1)) {
        let mut pos = 0;
        loop {
            let (n, event) = peer.conn.receive(peer.now, &mut piece[pos..])?;
            pos += n;
            let Some(event) = event else {
                break;
            };
            record(&mut peer.inbox, event);
        }
        all &= pos == piece.len();
    }
    let n = wire.len();
    wire.consume(n);
    Ok(all)
}

fn record(inbox: &mut Inbox, event: Event<'_>) {
    match event {
        Event::Data {
            kind,
            payload,
            message_fin,
            ..
        } => {
            let kind = match kind {
                DataKind::Text => Kind::Text,
                DataKind::Binary => Kind::Binary,
            };
            inbox.data(kind, payload, message_fin);
        }
        Event::Ping(p) => inbox.ping(p),
        Event::Pong(p) => inbox.pong(p),
        Event::Close { code, reason } => inbox.close(code.map_or(0, |c| c.0), reason.as_bytes()),
        // Events ws-proto may add later: nothing to record.
        _ => {}
    }
}

/// Writes one frame from `peer` into `wire`.
pub fn send(peer: &mut Peer, what: Out, payload: &[u8], wire: &mut Pipe) -> Result<(), Error> {
    let data = |k: Kind| match k {
        Kind::Text => OpCode::Text,
        Kind::Binary => OpCode::Binary,
    };
    let (opcode, fin) = match what {
        Out::Text => (OpCode::Text, true),
        Out::Binary => (OpCode::Binary, true),
        Out::First(k) => (data(k), false),
        Out::Next => (OpCode::Continuation, false),
        Out::Last => (OpCode::Continuation, true),
        Out::Ping => (OpCode::Ping, true),
    };
    let n = peer.conn.encode_frame(opcode, fin, payload, wire.spare())?;
    wire.commit(n);
    Ok(())
}

/// Starts the close handshake from `peer` with `code` and `reason` (the frame goes out with
/// the next [`flush`]; the close deadline counts from the time `peer` was last told).
pub fn close(peer: &mut Peer, code: u16, reason: &str) -> Result<(), Error> {
    peer.conn.close(peer.now, Some(CloseCode(code)), reason)
}

/// The peer's side of the transport ended (EOF, here: it shut its pipe).
pub fn eof(peer: &mut Peer) -> Result<(), Error> {
    peer.conn.receive_eof()
}

/// Writes the frames `peer` must send (pong, keepalive ping, close) into `wire`; returns how
/// many there were, or `None` when `wire` had no room.
pub fn flush(peer: &mut Peer, wire: &mut Pipe) -> Option<usize> {
    let mut frames = 0;
    while let Some(frame) = peer.conn.poll_transmit() {
        if !wire.push(frame.as_bytes()) {
            return None;
        }
        frames += 1;
    }
    Some(frames)
}

/// Tells `peer` the time is `now` (ms) and returns when it next wants to be told.
pub fn drive(peer: &mut Peer, now: u64) -> Result<Option<u64>, Error> {
    peer.now = now;
    peer.conn.handle_timeout(now)?;
    Ok(peer.conn.poll_timeout())
}

/// Where `peer`'s connection is.
pub fn phase(peer: &Peer) -> Phase {
    match peer.conn.state() {
        State::Open => Phase::Open,
        State::ClosedByUs | State::ClosedByPeer => Phase::Closing,
        _ => Phase::Closed,
    }
}

/// Whether `peer` should shut its side of the transport now (everything it had to send has
/// been taken).
pub fn can_shut(peer: &Peer) -> bool {
    peer.conn.should_shutdown()
}

/// Whether `e` is the keepalive pong timing out.
pub fn is_pong_timeout(e: &Error) -> bool {
    matches!(e, Error::Timeout(ws_proto::error::TimeoutKind::Pong))
}

/// The opening handshake (RFC 6455 section 4), both roles.
#[cfg(feature = "handshake")]
pub mod handshake {
    use crate::pipe::Pipe;
    use ws_proto::Error;
    use ws_proto::handshake::{self as hs, Accept, ClientRequest, HeadScanner};

    /// The request target the client asks for.
    pub const PATH: &str = "/sensor/42";
    /// The `Host` the client names.
    pub const HOST: &str = "127.0.0.1:8080";
    /// The subprotocol offered and chosen.
    pub const PROTOCOL: &str = "telemetry";
    /// Header fields parsed at most (on the stack while parsing).
    pub const MAX_HEADERS: usize = 16;
    /// Longest head accepted.
    pub const MAX_HEAD: usize = 1024;

    /// Writes the client's request into `wire`, with a key from `random`; returns the key.
    pub fn request(random: [u8; 16], wire: &mut Pipe) -> Result<[u8; 24], Error> {
        let key = hs::generate_key(random);
        let n = hs::write_request(
            wire.spare(),
            &ClientRequest::new(HOST, PATH, &key).with_protocols(&[PROTOCOL]),
        )?;
        wire.commit(n);
        Ok(key)
    }

    /// Finds the end of the head in `wire` as it arrives `chunk` bytes at a time; the head's
    /// length, or `None` when `wire` holds no whole head.
    fn find_head(wire: &Pipe, chunk: usize) -> Result<Option<usize>, Error> {
        let mut scanner = HeadScanner::new(MAX_HEAD);
        let bytes = wire.bytes();
        let mut end = 0;
        while end < bytes.len() {
            end = (end + chunk.max(1)).min(bytes.len());
            if let Some(head) = scanner.scan(&bytes[..end])? {
                return Ok(Some(head));
            }
        }
        Ok(None)
    }

    /// What the server saw in the request.
    pub struct Seen {
        /// Length of the head.
        pub head_len: usize,
        /// The path and host were the ones sent.
        pub target_ok: bool,
        /// The subprotocol was offered (and is chosen).
        pub protocol_ok: bool,
    }

    /// The server's side: finds the request head in `input` (arriving `chunk` bytes at a
    /// time), parses it, answers 101 into `output` and drops the head from `input`.
    pub fn accept(
        input: &mut Pipe,
        output: &mut Pipe,
        chunk: usize,
    ) -> Result<Option<Seen>, Error> {
        let Some(head_len) = find_head(input, chunk)? else {
            return Ok(None);
        };
        let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
        let req = hs::parse_request(&input.bytes()[..head_len], &mut headers)?;
        let chosen = req.protocols().find(|p| *p == PROTOCOL);
        let seen = Seen {
            head_len,
            target_ok: req.path() == PATH && req.host() == HOST,
            protocol_ok: chosen.is_some(),
        };
        let n = hs::write_accept(
            output.spare(),
            req.key(),
            &Accept::new().with_protocol(chosen),
        )?;
        output.commit(n);
        input.consume(head_len);
        Ok(Some(seen))
    }

    /// The client's side: finds the response head in `input`, checks it (101, the accept key
    /// for `key`, the chosen subprotocol) and drops it from `input`. Returns the status.
    pub fn check_response(
        input: &mut Pipe,
        key: &[u8; 24],
        chunk: usize,
    ) -> Result<Option<u16>, Error> {
        let Some(head_len) = find_head(input, chunk)? else {
            return Ok(None);
        };
        let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
        let res = hs::parse_response(
            &input.bytes()[..head_len],
            &mut headers,
            key,
            &[PROTOCOL],
            None,
        )?;
        let status = if res.protocol() == Some(PROTOCOL) {
            res.status()
        } else {
            0
        };
        input.consume(head_len);
        Ok(Some(status))
    }

    /// Whether `e` is the accept key not matching.
    pub fn is_bad_accept(e: &Error) -> bool {
        matches!(e, Error::Handshake(ws_proto::HandshakeError::InvalidAccept))
    }
}

/// Prints the sizes of ws-proto's state and of the buffers a connection needs on this target.
pub fn report_sizes(host: &mut crate::host::Host) {
    use core::mem::{align_of, size_of};
    host.figure("size_of::<Connection>()", size_of::<Connection>(), " bytes");
    host.figure(
        "align_of::<Connection>()",
        align_of::<Connection>(),
        " bytes",
    );
    host.figure(
        "size_of::<ControlFrame>() (poll_transmit's result, on the stack)",
        size_of::<ws_proto::conn::ControlFrame>(),
        " bytes",
    );
    host.figure(
        "size_of::<HeaderBuf>() (frame_header's result)",
        size_of::<ws_proto::frame::HeaderBuf>(),
        " bytes",
    );
    #[cfg(feature = "handshake")]
    {
        host.figure(
            "size_of::<HeadScanner>()",
            size_of::<ws_proto::handshake::HeadScanner>(),
            " bytes",
        );
        host.figure(
            "header array for parse_request/parse_response (16 x httparse::Header, on the stack)",
            handshake::MAX_HEADERS * size_of::<httparse::Header<'_>>(),
            " bytes",
        );
    }
    host.figure(
        "pipe buffer per direction (read/write buffer here)",
        crate::pipe::PIPE_CAP,
        " bytes",
    );
    host.figure(
        "size_of::<Peer>() (Connection + the program's inbox)",
        size_of::<Peer>(),
        " bytes",
    );
}
