//! The WebSocket stream: reading, writing, timers and the close handshake over one transport.

use std::cell::RefCell;
use std::future::poll_fn;
use std::io;
use std::pin::Pin;
use std::task::{Context, Poll, ready};

use futures_core::Stream;
use futures_sink::Sink;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::time::Sleep;
use ws_proto::{CloseCode, Connection, Message, MessageAssembler, OpCode, Role, State};

use crate::config::Config;
use crate::error::{Error, TimeoutKind};
use crate::time::{instant_of, now_ms};

/// Size of the per-thread scratch buffer reads land in: large enough that a 64 KiB message
/// arrives with one read (64 KiB of payload plus its header do not fit in 64 KiB).
const SCRATCH: usize = 256 << 10;

/// Alignment of the start of the scratch buffer. The kernel copies received bytes in with
/// `rep movsb`, which on some CPUs runs several times slower into a destination that is not
/// cache-line aligned (a 64 KiB read: 38% of the server's time instead of 5%).
const ALIGN: usize = 64;

/// Write buffer capacity kept between messages; a buffer grown past it is released.
const WRITE_KEEP: usize = 64 << 10;

thread_local! {
    /// Reads land here and are processed at once, so an idle connection holds no read buffer.
    static SCRATCH_BUF: RefCell<Box<[u8]>> =
        RefCell::new(vec![0u8; SCRATCH + ALIGN].into_boxed_slice());
}

/// Where the connection is, from the adapter's point of view.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    /// Reading messages.
    Open,
    /// The close handshake is done or the connection failed: flush what is queued, then shut
    /// our side of the transport (servers first; clients after the server's EOF).
    Flush,
    /// Read and discard until the peer's EOF (or the deadline), so that our last frame is not
    /// lost to a reset.
    Linger,
    /// Nothing more to do; the result has been (or is about to be) reported.
    Done,
}

/// The read side's state.
#[derive(Debug)]
pub(crate) struct Reader {
    pub(crate) conn: Connection,
    assembler: MessageAssembler,
    /// Received bytes not yet processed (only when one read held more than one message).
    leftover: Vec<u8>,
    leftover_pos: usize,
    timer: Option<Pin<Box<Sleep>>>,
    timer_at: u64,
    phase: Phase,
    linger_until: Option<u64>,
    /// The error to report once the connection has been shut.
    outcome: Option<Error>,
    close_timeout_ms: u64,
}

/// The write side's state: a bounded buffer of encoded frames.
#[derive(Debug, Default)]
pub(crate) struct Writer {
    pub(crate) buf: Vec<u8>,
    pub(crate) pos: usize,
    /// The payload of a large message, written after `buf` with one vectored write instead of
    /// being copied into it. Nothing is appended to `buf` while it is pending.
    tail: Vec<u8>,
    tail_pos: usize,
    pub(crate) limit: usize,
    pub(crate) write_timeout_ms: Option<u64>,
    pub(crate) deadline: Option<Pin<Box<Sleep>>>,
    pub(crate) shut: bool,
}

/// A WebSocket connection over the transport `S`.
///
/// [`recv`](Self::recv) and [`send`](Self::send) are cancel-safe: dropping either future loses
/// no received data, and a message is either queued whole or not at all. Keepalive pings,
/// pongs, close echoes and timeouts are handled while `recv` (or the `Stream`) is polled.
#[derive(Debug)]
pub struct WebSocket<S> {
    pub(crate) io: S,
    pub(crate) reader: Reader,
    pub(crate) writer: Writer,
}

impl Reader {
    pub(crate) fn new(conn: Connection, config: &Config, leftover: Vec<u8>) -> Reader {
        Reader {
            conn,
            assembler: MessageAssembler::new(),
            leftover,
            leftover_pos: 0,
            timer: None,
            timer_at: u64::MAX,
            phase: Phase::Open,
            linger_until: None,
            outcome: None,
            close_timeout_ms: config.close_timeout.as_millis().max(1) as u64,
        }
    }

    /// Runs `data` through the core until a message completes or the bytes run out.
    /// Returns the message and how many bytes were consumed.
    fn process(&mut self, data: &mut [u8]) -> (usize, Option<Result<Message, ws_proto::Error>>) {
        match self.assembler.receive(&mut self.conn, data) {
            Ok((n, Some(msg))) => (n, Some(Ok(msg))),
            Ok((n, None)) => (n, None),
            Err(e) => (data.len(), Some(Err(e))),
        }
    }

    /// Processes kept bytes first.
    fn process_leftover(&mut self) -> Option<Result<Message, ws_proto::Error>> {
        if self.leftover_pos >= self.leftover.len() {
            return None;
        }
        let mut buf = std::mem::take(&mut self.leftover);
        let start = self.leftover_pos;
        let (n, out) = self.process(&mut buf[start..]);
        self.leftover_pos = start + n;
        if self.leftover_pos >= buf.len() {
            // Release the memory once drained.
            self.leftover = Vec::new();
            self.leftover_pos = 0;
        } else {
            self.leftover = buf;
        }
        out
    }

    fn keep(&mut self, rest: &[u8]) {
        if rest.is_empty() {
            return;
        }
        if self.leftover_pos > 0 {
            self.leftover.drain(..self.leftover_pos);
            self.leftover_pos = 0;
        }
        self.leftover.extend_from_slice(rest);
    }

    /// Polls the core's timer; acts on it when due. Returns an error that failed the connection.
    fn poll_timer(&mut self, cx: &mut Context<'_>) -> Result<(), ws_proto::Error> {
        loop {
            let Some(at) = self.conn.poll_timeout() else {
                self.timer = None;
                self.timer_at = u64::MAX;
                return Ok(());
            };
            if at <= now_ms() {
                self.conn.handle_timeout(now_ms())?;
                continue;
            }
            if self.timer_at != at {
                self.timer_at = at;
                match &mut self.timer {
                    Some(t) => t.as_mut().reset(instant_of(at)),
                    None => self.timer = Some(Box::pin(tokio::time::sleep_until(instant_of(at)))),
                }
            }
            let Some(t) = self.timer.as_mut() else {
                return Ok(());
            };
            if t.as_mut().poll(cx).is_pending() {
                return Ok(());
            }
            self.conn.handle_timeout(now_ms())?;
        }
    }

    /// Moves the core's queued control frames into the write buffer, while it has room. Frames
    /// left in the core while the buffer is full are coalesced there (the newest pong wins), so
    /// a peer that pings without reading cannot grow the buffer.
    pub(crate) fn drain_transmit(&mut self, writer: &mut Writer) {
        while self.conn.has_pending_transmit()
            && (writer.shut || (writer.pending() < writer.limit && writer.can_append()))
        {
            let Some(f) = self.conn.poll_transmit() else {
                break;
            };
            if !writer.shut {
                writer.buf.extend_from_slice(f.as_bytes());
            }
        }
    }

    /// Advances the core's clock, recording a failure a deadline caused. Called before the core
    /// computes a deadline from its clock (a close) and after reads, which move deadlines.
    pub(crate) fn tick(&mut self) {
        if self.phase != Phase::Open || self.conn.poll_timeout().is_none() {
            // With no deadline set or waiting to be set, a tick would only note the time.
            return;
        }
        if let Err(e) = self.conn.handle_timeout(now_ms()) {
            self.fail(Error::from_proto(e));
        }
    }

    /// [`tick`](Self::tick) once the bytes of the last read are all processed: deadlines are
    /// judged per read, after everything that arrived by then (a pong behind other messages in
    /// the same read clears the pong deadline before it is checked), and still while a peer
    /// keeps the transport busy (keepalive pings go out, the close deadline holds).
    fn tick_drained(&mut self) {
        if self.leftover_pos >= self.leftover.len() {
            self.tick();
        }
    }

    /// Starts the close handshake with the core's clock up to date (the close deadline is
    /// computed from it).
    pub(crate) fn close(&mut self, code: Option<CloseCode>, reason: &str) -> Result<(), Error> {
        self.tick();
        self.conn.close(code, reason).map_err(Error::from_proto)
    }

    /// Records a failure: the core has queued its close frame; flush it, shut, linger.
    fn fail(&mut self, e: Error) {
        if self.outcome.is_none() {
            self.outcome = Some(e);
        }
        self.phase = Phase::Flush;
        self.assembler.clear();
    }
}

impl Writer {
    pub(crate) fn new(config: &Config) -> Writer {
        Writer {
            buf: Vec::new(),
            pos: 0,
            tail: Vec::new(),
            tail_pos: 0,
            limit: config.write_buffer_size.max(1),
            write_timeout_ms: config.write_timeout.map(|d| d.as_millis().max(1) as u64),
            deadline: None,
            shut: false,
        }
    }

    pub(crate) fn pending(&self) -> usize {
        self.buf.len() - self.pos + self.tail.len() - self.tail_pos
    }

    /// Whether frames may be appended to the buffer (no large payload is waiting behind it).
    pub(crate) fn can_append(&self) -> bool {
        self.tail_pos >= self.tail.len()
    }

    /// Writes the whole buffer out, then flushes the transport.
    pub(crate) fn poll_flush<S: AsyncWrite + Unpin>(
        &mut self,
        io: &mut S,
        cx: &mut Context<'_>,
    ) -> Poll<Result<(), Error>> {
        loop {
            let head = &self.buf[self.pos..];
            let tail = &self.tail[self.tail_pos..];
            let r = match (head.is_empty(), tail.is_empty()) {
                (true, true) => break,
                (false, true) => Pin::new(&mut *io).poll_write(cx, head),
                (true, false) => Pin::new(&mut *io).poll_write(cx, tail),
                (false, false) => Pin::new(&mut *io).poll_write_vectored(
                    cx,
                    &[std::io::IoSlice::new(head), std::io::IoSlice::new(tail)],
                ),
            };
            match r {
                Poll::Ready(Ok(0)) => return Poll::Ready(Err(Error::PeerVanished)),
                Poll::Ready(Ok(n)) => {
                    let from_head = n.min(head.len());
                    self.pos += from_head;
                    self.tail_pos += n - from_head;
                    self.deadline = None;
                }
                Poll::Ready(Err(e)) => return Poll::Ready(Err(e.into())),
                Poll::Pending => return self.poll_deadline(cx),
            }
        }
        self.buf.clear();
        self.pos = 0;
        self.tail = Vec::new();
        self.tail_pos = 0;
        if self.buf.capacity() > self.limit.max(WRITE_KEEP) {
            // A large message grew the buffer; give the memory back.
            self.buf = Vec::new();
        }
        self.deadline = None;
        Pin::new(io).poll_flush(cx).map_err(Error::from)
    }

    fn poll_deadline(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Error>> {
        let Some(ms) = self.write_timeout_ms else {
            return Poll::Pending;
        };
        let d = self.deadline.get_or_insert_with(|| {
            Box::pin(tokio::time::sleep(std::time::Duration::from_millis(ms)))
        });
        match d.as_mut().poll(cx) {
            Poll::Ready(()) => Poll::Ready(Err(Error::Timeout(TimeoutKind::Write))),
            Poll::Pending => Poll::Pending,
        }
    }

    /// Waits until the buffer has room for another message.
    pub(crate) fn poll_ready<S: AsyncWrite + Unpin>(
        &mut self,
        io: &mut S,
        cx: &mut Context<'_>,
    ) -> Poll<Result<(), Error>> {
        if self.pending() < self.limit && self.can_append() {
            return Poll::Ready(Ok(()));
        }
        self.poll_flush(io, cx)
    }

    /// Encodes a message it owns: a large uncompressed payload is not copied but kept to be
    /// written right after its header (one vectored write); anything else as [`Self::encode`].
    pub(crate) fn encode_owned(
        &mut self,
        conn: &mut Connection,
        msg: Message,
    ) -> Result<(), Error> {
        const VECTORED_MIN: usize = 8 << 10;
        let large = match &msg {
            Message::Text(t) => t.len() >= VECTORED_MIN,
            Message::Binary(b) => b.len() >= VECTORED_MIN,
            _ => false,
        };
        if !large || conn.compression_enabled() || !self.can_append() {
            return self.encode(conn, &msg);
        }
        let (opcode, mut payload) = match msg {
            Message::Text(t) => (OpCode::Text, t.into_bytes()),
            Message::Binary(b) => (OpCode::Binary, b),
            other => return self.encode(conn, &other),
        };
        let h = conn
            .frame_header(opcode, true, &mut payload)
            .map_err(Error::from_proto)?;
        self.buf.extend_from_slice(h.as_bytes());
        self.tail = payload;
        self.tail_pos = 0;
        Ok(())
    }

    /// Encodes a data or control message into the buffer.
    pub(crate) fn encode(&mut self, conn: &mut Connection, msg: &Message) -> Result<(), Error> {
        if self.pos > 0 && self.pos >= self.pending() {
            // Drop the written prefix (cheap: at most as many bytes are still pending), so a
            // buffer that is never fully drained does not grow with everything ever sent.
            self.buf.drain(..self.pos);
            self.pos = 0;
        }
        match msg {
            Message::Text(t) => {
                return conn
                    .encode_message(OpCode::Text, t.as_bytes(), &mut self.buf)
                    .map_err(Error::from_proto);
            }
            Message::Binary(b) => {
                return conn
                    .encode_message(OpCode::Binary, b, &mut self.buf)
                    .map_err(Error::from_proto);
            }
            _ => {}
        }
        let (opcode, payload): (OpCode, &[u8]) = match msg {
            Message::Text(_) | Message::Binary(_) => return Ok(()),
            Message::Ping(p) => (OpCode::Ping, p),
            Message::Pong(p) => (OpCode::Pong, p),
            Message::Close(c) => {
                let (code, reason) = match c {
                    Some((code, reason)) => (Some(*code), reason.as_str()),
                    None => (None, ""),
                };
                return conn.close(code, reason).map_err(Error::from_proto);
            }
        };
        let start = self.buf.len();
        let total = conn.frame_len(payload.len());
        let hl = total - payload.len();
        self.buf.reserve(total);
        self.buf.extend_from_slice(&[0u8; 14][..hl]);
        self.buf.extend_from_slice(payload);
        match conn.frame_header(opcode, true, &mut self.buf[start + hl..]) {
            Ok(h) => {
                self.buf[start..start + hl].copy_from_slice(h.as_bytes());
                Ok(())
            }
            Err(e) => {
                self.buf.truncate(start);
                Err(Error::from_proto(e))
            }
        }
    }
}

/// Polls a read into the per-thread scratch buffer and processes what arrived.
enum ReadOutcome {
    Message(Result<Message, ws_proto::Error>),
    Progress,
    Eof,
}

fn poll_read_process<D: Driver>(
    io: &mut D,
    reader: &mut Reader,
    cx: &mut Context<'_>,
) -> Poll<io::Result<ReadOutcome>> {
    SCRATCH_BUF.with(|cell| {
        let mut guard = cell.borrow_mut();
        let off = guard.as_ptr().align_offset(ALIGN);
        let scratch: &mut [u8] = &mut guard[off..off + SCRATCH];
        let mut rb = ReadBuf::new(scratch);
        ready!(io.poll_read(cx, &mut rb))?;
        let n = rb.filled().len();
        if n == 0 {
            return Poll::Ready(Ok(ReadOutcome::Eof));
        }
        let data = &mut scratch[..n];
        let (used, out) = reader.process(data);
        reader.keep(&data[used..]);
        Poll::Ready(Ok(match out {
            Some(m) => ReadOutcome::Message(m),
            None => ReadOutcome::Progress,
        }))
    })
}

/// What the receive loop needs from the transport: reading, writing out the frames the core
/// queued, and shutting our side.
pub(crate) trait Driver {
    /// Reads from the transport.
    fn poll_read(&mut self, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>>;
    /// Moves the core's queued frames to the write side and writes everything out.
    fn poll_flush(&mut self, reader: &mut Reader, cx: &mut Context<'_>) -> Poll<Result<(), Error>>;
    /// Shuts the write side of the transport (once).
    fn poll_shutdown(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>>;
    /// Whether a close frame was queued by someone other than the reader's core (a split
    /// write half).
    fn close_sent_elsewhere(&self) -> bool {
        false
    }
    /// Called when the receive loop is about to wait for data with `cx`.
    fn waiting_for_data(&mut self, _cx: &mut Context<'_>) {}
    /// Puts the control frames the core queued (pongs, keepalive pings) in line to be sent,
    /// behind what is already queued and ahead of anything sent later.
    fn stage(&mut self, reader: &mut Reader, cx: &mut Context<'_>);
}

/// The transport of an unsplit [`WebSocket`].
struct Whole<'a, S> {
    io: &'a mut S,
    writer: &'a mut Writer,
}

impl<S: AsyncRead + AsyncWrite + Unpin> Driver for Whole<'_, S> {
    fn poll_read(&mut self, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut *self.io).poll_read(cx, buf)
    }

    fn poll_flush(&mut self, reader: &mut Reader, cx: &mut Context<'_>) -> Poll<Result<(), Error>> {
        flush_all(reader, self.writer, self.io, cx)
    }

    fn stage(&mut self, reader: &mut Reader, _cx: &mut Context<'_>) {
        if reader.conn.has_pending_transmit() {
            reader.drain_transmit(self.writer);
        }
    }

    fn poll_shutdown(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        if self.writer.shut {
            return Poll::Ready(Ok(()));
        }
        let r = ready!(Pin::new(&mut *self.io).poll_shutdown(cx));
        self.writer.shut = true;
        Poll::Ready(r)
    }
}

/// Writes out the buffer and every frame the core has queued (which may take more than one
/// round when the buffer was full).
fn flush_all<S: AsyncWrite + Unpin>(
    reader: &mut Reader,
    writer: &mut Writer,
    io: &mut S,
    cx: &mut Context<'_>,
) -> Poll<Result<(), Error>> {
    loop {
        reader.drain_transmit(writer);
        ready!(writer.poll_flush(io, cx))?;
        // The buffer is empty now, so the next drain takes at least one frame.
        if writer.shut || !reader.conn.has_pending_transmit() {
            return Poll::Ready(Ok(()));
        }
    }
}

/// The receive loop shared by [`WebSocket`] and [`crate::ReadHalf`].
pub(crate) fn poll_recv<D: Driver>(
    rio: &mut D,
    reader: &mut Reader,
    cx: &mut Context<'_>,
) -> Poll<Option<Result<Message, Error>>> {
    loop {
        match reader.phase {
            Phase::Done => return Poll::Ready(reader.outcome.take().map(Err)),
            Phase::Flush => {
                match rio.poll_flush(reader, cx) {
                    Poll::Pending => return Poll::Pending,
                    Poll::Ready(Err(e)) => {
                        reader.outcome.get_or_insert(e);
                        reader.phase = Phase::Done;
                        continue;
                    }
                    Poll::Ready(Ok(())) => {}
                }
                // Servers shut first; a client waits for the server's EOF unless it failed.
                if reader.conn.role() == Role::Server || reader.outcome.is_some() {
                    let _ = ready!(rio.poll_shutdown(cx));
                }
                if let Some(Error::Timeout(TimeoutKind::Pong | TimeoutKind::Close)) = reader.outcome
                {
                    // The peer is unresponsive: there is no frame of ours to protect from a
                    // reset, so report at once instead of waiting another close timeout.
                    reader.phase = Phase::Done;
                    continue;
                }
                if reader.conn.role() == Role::Server
                    && reader.conn.close_received()
                    && reader.outcome.is_none()
                {
                    // A clean close handshake: the peer sends nothing after its close frame, so
                    // nothing unread can turn our close into a reset. Done at once.
                    reader.phase = Phase::Done;
                    continue;
                }
                reader.phase = Phase::Linger;
                reader.linger_until = Some(now_ms() + reader.close_timeout_ms);
                reader.timer = None;
                reader.timer_at = u64::MAX;
            }
            Phase::Linger => {
                let until = reader.linger_until.unwrap_or(0);
                let t = reader
                    .timer
                    .get_or_insert_with(|| Box::pin(tokio::time::sleep_until(instant_of(until))));
                if t.as_mut().poll(cx).is_ready() {
                    if reader.conn.role() == Role::Client && reader.outcome.is_none() {
                        let _ = ready!(rio.poll_shutdown(cx));
                    }
                    reader.phase = Phase::Done;
                    continue;
                }
                // Discard whatever still arrives.
                let mut sink = [0u8; 512];
                let mut rb = ReadBuf::new(&mut sink);
                match rio.poll_read(cx, &mut rb) {
                    Poll::Pending => return Poll::Pending,
                    Poll::Ready(Ok(())) if !rb.filled().is_empty() => continue,
                    Poll::Ready(_) => {
                        if reader.conn.role() == Role::Client && reader.outcome.is_none() {
                            let _ = ready!(rio.poll_shutdown(cx));
                        }
                        reader.phase = Phase::Done;
                    }
                }
            }
            Phase::Open => {
                if !reader.conn.close_sent() && rio.close_sent_elsewhere() {
                    // The write half sent a close: the core now waits for the answer, with
                    // the close deadline running. Its own close frame is dropped unsent.
                    if let Err(e) = reader.close(None, "") {
                        reader.fail(e);
                        continue;
                    }
                }
                if reader.conn.state() == State::Closed {
                    reader.phase = Phase::Flush;
                    continue;
                }
                let out = match reader.process_leftover() {
                    Some(m) => ReadOutcome::Message(m),
                    None => {
                        // Before waiting for the peer, write out what is queued: pongs,
                        // keepalive pings, and messages queued with `feed` (replies to a
                        // batch of received messages thus leave in one write).
                        if let Poll::Ready(Err(e)) = rio.poll_flush(reader, cx) {
                            reader.fail(e);
                            reader.phase = Phase::Done;
                            continue;
                        }
                        match poll_read_process(rio, reader, cx) {
                            Poll::Pending => {
                                // Everything that arrived has been processed (a pong waiting
                                // in the transport counts even if the application was slow to
                                // read it): now the deadlines are judged.
                                if let Err(e) = reader.poll_timer(cx) {
                                    reader.fail(Error::from_proto(e));
                                    continue;
                                }
                                // A keepalive ping the timer queued goes out now.
                                if let Poll::Ready(Err(e)) = rio.poll_flush(reader, cx) {
                                    reader.fail(e);
                                    reader.phase = Phase::Done;
                                    continue;
                                }
                                rio.waiting_for_data(cx);
                                if !reader.conn.close_sent() && rio.close_sent_elsewhere() {
                                    // A close was queued meanwhile: start its deadline.
                                    continue;
                                }
                                return Poll::Pending;
                            }
                            Poll::Ready(Err(e)) => {
                                reader.outcome = Some(e.into());
                                reader.phase = Phase::Done;
                                continue;
                            }
                            Poll::Ready(Ok(o)) => o,
                        }
                    }
                };
                match out {
                    ReadOutcome::Progress => {
                        reader.tick_drained();
                        rio.stage(reader, cx);
                        continue;
                    }
                    ReadOutcome::Eof => {
                        reader.outcome = Some(if reader.conn.close_received() {
                            Error::Closed
                        } else {
                            Error::PeerVanished
                        });
                        reader.phase = Phase::Done;
                    }
                    ReadOutcome::Message(Err(e)) => reader.fail(Error::from_proto(e)),
                    ReadOutcome::Message(Ok(msg)) => {
                        if let Message::Close(_) = msg {
                            // The echo is queued; try to send it now, finish on the next poll.
                            let _ = rio.poll_flush(reader, cx);
                            reader.phase = Phase::Flush;
                        }
                        reader.tick_drained();
                        // A ping's pong takes its place in the send order now: before any
                        // message the application sends after seeing the ping.
                        rio.stage(reader, cx);
                        return Poll::Ready(Some(Ok(msg)));
                    }
                }
            }
        }
    }
}

impl<S: AsyncRead + AsyncWrite + Unpin> WebSocket<S> {
    pub(crate) fn from_parts(io: S, conn: Connection, config: &Config, leftover: Vec<u8>) -> Self {
        WebSocket {
            io,
            reader: Reader::new(conn, config, leftover),
            writer: Writer::new(config),
        }
    }

    /// This side's role.
    pub fn role(&self) -> Role {
        self.reader.conn.role()
    }

    /// Whether permessage-deflate was negotiated in the opening handshake.
    pub fn compression_enabled(&self) -> bool {
        self.reader.conn.compression_enabled()
    }

    /// The underlying transport.
    pub fn get_ref(&self) -> &S {
        &self.io
    }

    /// Polls for the next message. See [`recv`](Self::recv).
    pub fn poll_recv(&mut self, cx: &mut Context<'_>) -> Poll<Option<Result<Message, Error>>> {
        let WebSocket { io, reader, writer } = self;
        poll_recv(&mut Whole { io, writer }, reader, cx)
    }

    /// Receives the next message. `None` once the connection has closed cleanly.
    ///
    /// Pings are answered automatically (and returned too); a close frame is returned once,
    /// with its echo already queued, and the next call finishes the close handshake and
    /// returns `None`. An error reports how the connection ended. Before it waits for data, it
    /// writes out everything queued: pongs, keepalive pings and messages from
    /// [`feed`](Self::feed).
    ///
    /// Cancel-safe: bytes read are processed into the connection's state before the future
    /// returns, so dropping it loses nothing.
    pub async fn recv(&mut self) -> Option<Result<Message, Error>> {
        poll_fn(|cx| self.poll_recv(cx)).await
    }

    /// Sends a message and flushes it.
    ///
    /// Cancel-safe in this sense: once the future has been polled past waiting for buffer
    /// space, the message is in the write buffer whole and the next send or flush delivers it.
    pub async fn send(&mut self, msg: Message) -> Result<(), Error> {
        poll_fn(|cx| self.writer.poll_ready(&mut self.io, cx)).await?;
        self.start_send_inner(msg)?;
        self.flush().await
    }

    /// Queues a message without writing it; waits for buffer space. It goes out with the next
    /// [`flush`](Self::flush) or [`send`](Self::send), or when [`recv`](Self::recv) next waits
    /// for data. A loop that answers each received message with `feed` thus writes the replies
    /// to one read's worth of messages with one system call.
    pub async fn feed(&mut self, msg: Message) -> Result<(), Error> {
        poll_fn(|cx| self.writer.poll_ready(&mut self.io, cx)).await?;
        self.start_send_inner(msg)
    }

    /// Writes everything queued.
    pub async fn flush(&mut self) -> Result<(), Error> {
        poll_fn(|cx| self.poll_flush_inner(cx)).await
    }

    fn poll_flush_inner(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Error>> {
        flush_all(&mut self.reader, &mut self.writer, &mut self.io, cx)
    }

    fn start_send_inner(&mut self, msg: Message) -> Result<(), Error> {
        if let Message::Close(_) = msg {
            self.reader.tick();
        }
        self.writer.encode_owned(&mut self.reader.conn, msg)?;
        self.reader.drain_transmit(&mut self.writer);
        Ok(())
    }

    /// Closes the connection: sends a close frame, waits (up to the close timeout) for the
    /// peer's close, discarding messages that arrive meanwhile, and shuts the transport.
    pub async fn close(&mut self, code: CloseCode, reason: &str) -> Result<(), Error> {
        if !self.reader.conn.close_sent() {
            self.reader.close(Some(code), reason)?;
        }
        self.flush().await?;
        loop {
            match self.recv().await {
                None => return Ok(()),
                Some(Ok(_)) => {}
                Some(Err(Error::Closed)) => return Ok(()),
                Some(Err(e)) => return Err(e),
            }
        }
    }

    /// Splits into a read half and a write half that can be used from different tasks.
    pub fn split(self) -> (crate::ReadHalf<S>, crate::WriteHalf<S>)
    where
        S: Send + 'static,
    {
        crate::split::split(self)
    }
}

impl<S: AsyncRead + AsyncWrite + Unpin> Stream for WebSocket<S> {
    type Item = Result<Message, Error>;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        self.get_mut().poll_recv(cx)
    }
}

impl<S: AsyncRead + AsyncWrite + Unpin> Sink<Message> for WebSocket<S> {
    type Error = Error;

    fn poll_ready(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Result<(), Error>> {
        let this = self.get_mut();
        this.writer.poll_ready(&mut this.io, cx)
    }

    fn start_send(self: Pin<&mut Self>, item: Message) -> Result<(), Error> {
        self.get_mut().start_send_inner(item)
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Result<(), Error>> {
        self.get_mut().poll_flush_inner(cx)
    }

    fn poll_close(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Result<(), Error>> {
        let this = self.get_mut();
        if !this.reader.conn.close_sent() {
            this.reader.close(Some(CloseCode::NORMAL), "")?;
        }
        ready!(this.poll_flush_inner(cx))?;
        loop {
            match ready!(this.poll_recv(cx)) {
                None | Some(Err(Error::Closed)) => return Poll::Ready(Ok(())),
                Some(Ok(_)) => {}
                Some(Err(e)) => return Poll::Ready(Err(e)),
            }
        }
    }
}
