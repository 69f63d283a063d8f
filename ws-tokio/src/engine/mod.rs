//! The I/O engine: moves bytes, time and EOF between a transport and the core, and writes out
//! what the core and the application queue. Every decision about the connection's life (the
//! close handshake, its order, its deadlines, when to shut the transport) is the core's; the
//! engine carries them out.

use std::cell::RefCell;
use std::io;
use std::pin::Pin;
use std::task::{Context, Poll, ready};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::time::Sleep;
use ws_proto::{Connection, Message, MessageAssembler, State};

use crate::error::Error;
use crate::time::{instant_of, now_ms};

mod write;

pub(crate) use write::{INFLATE_POOL, Writer, with_compressor};

/// Size of the per-thread scratch buffer reads land in: the core's working buffer, large
/// enough that a 64 KiB message arrives with one read (64 KiB of payload plus its header do
/// not fit in 64 KiB).
const SCRATCH: usize = ws_proto::limits::WORKING_BUFFER;

/// Alignment of the start of the scratch buffer. The kernel copies received bytes in with
/// `rep movsb`, which on some CPUs runs several times slower into a destination that is not
/// cache-line aligned (a 64 KiB read: 38% of the server's time instead of 5%).
const ALIGN: usize = 64;

thread_local! {
    /// Reads land here and are processed at once, so an idle connection holds no read buffer.
    static SCRATCH_BUF: RefCell<Box<[u8]>> =
        RefCell::new(vec![0u8; SCRATCH + ALIGN].into_boxed_slice());
}

/// The read side: the core, the message being assembled, bytes not yet processed, the core's
/// timer, and how the connection ended when the transport did.
#[derive(Debug)]
pub(crate) struct Reader {
    pub(crate) conn: Connection,
    assembler: MessageAssembler,
    /// Received bytes not yet processed (only when one read held more than one message).
    leftover: Vec<u8>,
    leftover_pos: usize,
    timer: Option<Pin<Box<Sleep>>>,
    timer_at: u64,
    /// The transport failed (or a write deadline passed): reported once terminated. (Boxed:
    /// rare, and an idle connection should not carry its size.)
    failed: Option<Box<Error>>,
    /// The end has been reported.
    reported: bool,
}

/// What the receive loop needs from the transport.
pub(crate) trait Driver {
    /// Reads from the transport.
    fn poll_read(&mut self, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>>;
    /// Moves what the core owes into the write buffer and writes everything out.
    fn poll_flush(
        &mut self,
        conn: &mut Connection,
        cx: &mut Context<'_>,
    ) -> Poll<Result<(), Error>>;
    /// Puts the control frames the core queued in line, behind what is already queued and
    /// ahead of anything sent later, without waiting.
    fn stage(&mut self, conn: &mut Connection, cx: &mut Context<'_>);
    /// Shuts our side of the transport, once.
    fn poll_shutdown(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>>;
    /// Brings in what the other half of a split connection did (a close it sent).
    fn sync(&mut self, _conn: &mut Connection) {}
    /// Called when the receive loop is about to wait for data with `cx`.
    fn waiting_for_data(&mut self, _cx: &mut Context<'_>) {}
}

impl Reader {
    pub(crate) fn new(conn: Connection, leftover: Vec<u8>) -> Reader {
        Reader {
            conn,
            assembler: MessageAssembler::new(),
            leftover,
            leftover_pos: 0,
            timer: None,
            timer_at: u64::MAX,
            failed: None,
            reported: false,
        }
    }

    /// Runs `data` through the core until a message completes or the bytes run out.
    fn process(&mut self, now: u64, data: &mut [u8]) -> (usize, Option<Message>) {
        match self.assembler.receive(&mut self.conn, now, data) {
            Ok((n, m)) => (n, m),
            // The core has failed the connection and decided what follows.
            Err(_) => (data.len(), None),
        }
    }

    /// Processes kept bytes first.
    fn process_leftover(&mut self) -> Option<Message> {
        if self.leftover_pos >= self.leftover.len() {
            return None;
        }
        let mut buf = std::mem::take(&mut self.leftover);
        let start = self.leftover_pos;
        let (n, out) = self.process(now_ms(), &mut buf[start..]);
        self.leftover_pos = start + n;
        if self.leftover_pos >= buf.len() {
            // Release the memory once drained.
            self.leftover = Vec::new();
            self.leftover_pos = 0;
            self.read_done(now_ms());
        } else {
            self.leftover = buf;
        }
        out
    }

    /// After a pause of the rate limits: a frame header the core kept is taken up (with no
    /// new bytes) when no kept bytes follow it.
    fn resume(&mut self) -> Option<Message> {
        if self.conn.paused_until().is_some() || self.leftover_pos < self.leftover.len() {
            return None;
        }
        self.process(now_ms(), &mut []).1
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

    /// The bytes of a read are all processed at `now`: buffers held only inside a message go
    /// back, and deadlines that have come are acted on (a peer that keeps the transport busy
    /// still gets its keepalive pings and close deadline).
    fn read_done(&mut self, now: u64) {
        self.conn.release_buffers();
        if self.conn.poll_timeout().is_some_and(|at| at <= now) {
            let _ = self.conn.handle_timeout(now);
        }
    }

    /// Waits for the core's next deadline; acts on it when it comes. Ready when time moved
    /// the core on.
    ///
    /// The timer is moved only to an earlier deadline: when the core's deadline moved later
    /// (a message's deadline cleared, the idle deadline pushed back by a read), the armed
    /// timer fires early and is then moved to the new deadline, so reads and writes do not
    /// touch the timer wheel.
    fn poll_timer(&mut self, cx: &mut Context<'_>) -> Poll<()> {
        let Some(at) = self.conn.poll_timeout() else {
            // An armed timer may fire for nothing; it is moved when a deadline comes back.
            return Poll::Pending;
        };
        loop {
            if at < self.timer_at || self.timer.is_none() {
                self.timer_at = at;
                match &mut self.timer {
                    Some(t) => t.as_mut().reset(instant_of(at)),
                    None => self.timer = Some(Box::pin(tokio::time::sleep_until(instant_of(at)))),
                }
            }
            let Some(t) = self.timer.as_mut() else {
                return Poll::Pending;
            };
            ready!(t.as_mut().poll(cx));
            if self.timer_at >= at {
                // The timer was armed for this deadline.
                self.timer_at = u64::MAX;
                let _ = self.conn.handle_timeout(now_ms().max(at));
                return Poll::Ready(());
            }
            // Armed for a deadline that has moved later: move it there.
            self.timer_at = u64::MAX;
        }
    }

    /// The transport failed: nothing more can be sent or received.
    pub(crate) fn fail(&mut self, e: Error) {
        self.failed.get_or_insert(Box::new(e));
        self.conn.abort();
        self.assembler.clear();
    }

    /// How the connection ended, once: `None` for a clean close.
    fn outcome(&mut self) -> Option<Error> {
        if self.reported {
            return None;
        }
        self.reported = true;
        if let Some(e) = self.failed.take() {
            return Some(*e);
        }
        self.conn
            .error()
            .map(|e| Error::from_core(e, self.conn.error_close_code()))
    }

    /// Starts the close handshake with `frame`.
    pub(crate) fn close(&mut self, frame: Option<&ws_proto::CloseFrame>) -> Result<(), Error> {
        let (code, reason) = match frame {
            Some(f) => (Some(f.code), f.reason.as_str()),
            None => (None, ""),
        };
        self.conn
            .close(now_ms(), code, reason)
            .map_err(Error::from_proto)
    }
}

/// The receive loop shared by [`crate::WebSocket`] and [`crate::ReadHalf`]: one step for each
/// state of the core.
pub(crate) fn poll_recv<D: Driver>(
    rio: &mut D,
    r: &mut Reader,
    cx: &mut Context<'_>,
) -> Poll<Option<Result<Message, Error>>> {
    loop {
        rio.sync(&mut r.conn);
        let step = match r.conn.state() {
            State::Open | State::ClosedByUs => poll_open(rio, r, cx),
            State::Terminated => poll_end(rio, r, cx),
            _ => poll_closing(rio, r, cx),
        };
        match step {
            Step::Again => continue,
            Step::Message(m) => return Poll::Ready(Some(Ok(m))),
            Step::End(e) => return Poll::Ready(e.map(Err)),
            Step::Pending => return Poll::Pending,
        }
    }
}

enum Step {
    /// The core moved on: look again.
    Again,
    Message(Message),
    /// The connection has ended (with this error); nothing more comes.
    End(Option<Error>),
    Pending,
}

/// Messages may arrive: read them.
fn poll_open<D: Driver>(rio: &mut D, r: &mut Reader, cx: &mut Context<'_>) -> Step {
    if let Some(m) = r.process_leftover() {
        return delivered(rio, r, cx, m);
    }
    let paused = r.conn.paused_until().is_some();
    // More kept bytes, or the kept bytes ended the connection's receiving (a protocol error
    // fails it): look again, so that a failed connection shuts the transport at once.
    if (r.leftover_pos < r.leftover.len() && !paused) || !r.conn.state().can_receive() {
        return Step::Again;
    }
    // Before waiting for the peer, write out what is queued: pongs, keepalive pings, and
    // messages queued with `feed` (replies to a batch of received messages leave in one write).
    if let Poll::Ready(Err(e)) = rio.poll_flush(&mut r.conn, cx) {
        r.fail(e);
        return Step::Again;
    }
    if paused {
        // The rate limits hold receiving back: read nothing (the peer's sending backs up in
        // the transport) until the core's deadline, then take what is kept.
        if r.poll_timer(cx).is_pending() {
            return Step::Pending;
        }
        return match r.resume() {
            Some(m) => delivered(rio, r, cx, m),
            None => Step::Again,
        };
    }
    match poll_read(rio, r, cx) {
        Poll::Ready(Some(m)) => delivered(rio, r, cx, m),
        Poll::Ready(None) => Step::Again,
        Poll::Pending => {
            // Everything that arrived has been processed: now the deadlines are judged.
            if r.poll_timer(cx).is_ready() {
                return Step::Again;
            }
            rio.waiting_for_data(cx);
            Step::Pending
        }
    }
}

/// A message is going to the application: a ping's pong takes its place in the send order
/// now, before anything the application sends after seeing the ping.
fn delivered<D: Driver>(rio: &mut D, r: &mut Reader, cx: &mut Context<'_>, m: Message) -> Step {
    rio.stage(&mut r.conn, cx);
    if m.is_close() {
        // The answer is queued: try to send it now.
        let _ = rio.poll_flush(&mut r.conn, cx);
    }
    Step::Message(m)
}

/// The close handshake is under way or over: send what is owed, shut when the core says so,
/// and wait (discarding what arrives) for the peer's EOF until the core's deadline.
fn poll_closing<D: Driver>(rio: &mut D, r: &mut Reader, cx: &mut Context<'_>) -> Step {
    match rio.poll_flush(&mut r.conn, cx) {
        Poll::Ready(Err(e)) => {
            r.fail(e);
            return Step::Again;
        }
        Poll::Ready(Ok(())) => {
            if r.conn.should_shutdown() {
                match rio.poll_shutdown(cx) {
                    Poll::Pending => return Step::Pending,
                    Poll::Ready(Err(e)) => {
                        r.fail(e.into());
                        return Step::Again;
                    }
                    Poll::Ready(Ok(())) => {}
                }
            }
        }
        // Still writing: the peer may meanwhile end the transport, or the deadline pass.
        Poll::Pending => {}
    }
    if r.conn.state() == State::ClosedByPeer {
        // Our answer has not been taken yet (the buffer is full): wait for room.
        return if r.poll_timer(cx).is_ready() {
            Step::Again
        } else {
            Step::Pending
        };
    }
    match poll_read(rio, r, cx) {
        Poll::Ready(_) => Step::Again,
        Poll::Pending if r.poll_timer(cx).is_ready() => Step::Again,
        Poll::Pending => Step::Pending,
    }
}

/// The connection is over: write out what is left, shut, report how it ended.
fn poll_end<D: Driver>(rio: &mut D, r: &mut Reader, cx: &mut Context<'_>) -> Step {
    if r.reported {
        return Step::End(None);
    }
    // Best effort: the outcome is already decided. A peer that let a deadline pass is not
    // reading, so what it has not taken is not waited for (only the write timeout would end
    // that wait).
    let timed_out = matches!(r.conn.error(), Some(ws_proto::Error::Timeout(_)));
    if r.failed.is_none() && r.conn.should_shutdown() {
        let flushed = ready_step(rio.poll_flush(&mut r.conn, cx)).is_ready();
        if !flushed && !timed_out {
            return Step::Pending;
        }
        if flushed && ready_step(rio.poll_shutdown(cx)).is_pending() && !timed_out {
            return Step::Pending;
        }
    }
    Step::End(r.outcome())
}

fn ready_step<T>(p: Poll<T>) -> Poll<()> {
    p.map(|_| ())
}

/// Reads into the per-thread scratch buffer and runs what arrived through the core. Ready
/// with a message, or `None` when the bytes ran out (or the transport ended or failed).
fn poll_read<D: Driver>(
    rio: &mut D,
    r: &mut Reader,
    cx: &mut Context<'_>,
) -> Poll<Option<Message>> {
    SCRATCH_BUF.with(|cell| {
        let mut guard = cell.borrow_mut();
        let off = guard.as_ptr().align_offset(ALIGN);
        let scratch: &mut [u8] = &mut guard[off..off + SCRATCH];
        let mut rb = ReadBuf::new(scratch);
        if let Err(e) = ready!(rio.poll_read(cx, &mut rb)) {
            r.fail(e.into());
            return Poll::Ready(None);
        }
        let n = rb.filled().len();
        if n == 0 {
            let _ = r.conn.receive_eof();
            return Poll::Ready(None);
        }
        let now = now_ms();
        let data = &mut scratch[..n];
        let (used, out) = r.process(now, data);
        r.keep(&data[used..]);
        if used == n {
            r.read_done(now);
        }
        Poll::Ready(out)
    })
}

/// The transport of an unsplit [`crate::WebSocket`].
pub(crate) struct Whole<'a, S> {
    pub(crate) io: &'a mut S,
    pub(crate) writer: &'a mut Writer,
}

impl<S: AsyncRead + AsyncWrite + Unpin> Driver for Whole<'_, S> {
    fn poll_read(&mut self, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut *self.io).poll_read(cx, buf)
    }

    fn poll_flush(
        &mut self,
        conn: &mut Connection,
        cx: &mut Context<'_>,
    ) -> Poll<Result<(), Error>> {
        flush_all(conn, self.writer, self.io, cx)
    }

    fn stage(&mut self, conn: &mut Connection, _cx: &mut Context<'_>) {
        if conn.has_pending_transmit() {
            self.writer.take_controls(conn);
        }
    }

    fn poll_shutdown(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.writer.poll_shutdown(self.io, cx)
    }
}

/// Writes out the buffer and every frame the core owes (which may take more than one round
/// when the buffer was full).
pub(crate) fn flush_all<S: AsyncWrite + Unpin>(
    conn: &mut Connection,
    writer: &mut Writer,
    io: &mut S,
    cx: &mut Context<'_>,
) -> Poll<Result<(), Error>> {
    loop {
        writer.take_controls(conn);
        if writer.shut {
            return Poll::Ready(Ok(()));
        }
        ready!(writer.poll_flush(io, cx))?;
        // The buffer is empty now, so the next round takes at least one frame.
        if !conn.has_pending_transmit() {
            return Poll::Ready(Ok(()));
        }
    }
}
