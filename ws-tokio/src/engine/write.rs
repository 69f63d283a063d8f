//! The write side: a bounded queue of encoded frames, written out with vectored writes.
//!
//! Small frames are encoded into one owned buffer; a large payload and a prepared message's
//! shared frame are queued as they are (a `Bytes`, not copied). A flush writes everything
//! queued with as few system calls as the transport allows: up to [`IOVECS`] pieces per
//! vectored write.

use std::cell::RefCell;
use std::collections::VecDeque;
use std::io;
use std::pin::Pin;
use std::task::{Context, Poll, ready};

use bytes::Bytes;
use tokio::io::AsyncWrite;
use tokio::time::Sleep;
use ws_proto::deflate::{Compressor, InflatePool, InflateState};
use ws_proto::{Connection, Message, OpCode, PreparedMessage, Sender, TimeoutKind};

use crate::config::Config;
use crate::error::Error;

/// Owned buffer capacity kept between flushes (small messages are encoded without
/// allocating); a buffer grown past it is released, so that a burst of many messages does not
/// leave each connection holding up to the write buffer size.
const WRITE_KEEP: usize = 4 << 10;

/// Payloads at least this large are written from their own memory after the header (one
/// vectored write) instead of being copied into the write buffer.
const VECTORED_MIN: usize = 8 << 10;

/// Most pieces given to one vectored write.
const IOVECS: usize = 64;

thread_local! {
    /// The compressors of the connections with a shared compressor, one per level.
    static COMPRESSORS: RefCell<Vec<Compressor>> = const { RefCell::new(Vec::new()) };
    /// Decompressor states lent to the connections whose peers reset their context after
    /// every message.
    static INFLATE_STATES: RefCell<Vec<InflateState>> = const { RefCell::new(Vec::new()) };
}

/// Most decompressor states a thread keeps (about 40 KiB each): as many as its connections use
/// at once, up to this.
const INFLATE_KEEP: usize = 16;

/// This thread's decompressor states, lent to connections for one message at a time.
pub(crate) struct ThreadInflatePool;

/// The pool every connection of this crate uses.
pub(crate) static INFLATE_POOL: ThreadInflatePool = ThreadInflatePool;

impl InflatePool for ThreadInflatePool {
    fn take(&self) -> Option<InflateState> {
        INFLATE_STATES
            .try_with(|s| s.borrow_mut().pop())
            .ok()
            .flatten()
    }

    fn give(&self, state: InflateState) {
        let _ = INFLATE_STATES.try_with(|s| {
            let mut s = s.borrow_mut();
            if s.len() < INFLATE_KEEP {
                s.push(state);
            }
        });
    }
}

/// Runs `f` with this thread's compressor for `level`.
pub(crate) fn with_compressor<R>(level: u8, f: impl FnOnce(&mut Compressor) -> R) -> R {
    COMPRESSORS.with(|c| {
        let mut c = c.borrow_mut();
        let i = usize::from(level.min(9));
        while c.len() <= i {
            let l = c.len() as u8;
            c.push(Compressor::new(l));
        }
        f(&mut c[i])
    })
}

/// A piece of what is queued, in order.
#[derive(Debug)]
enum Piece {
    /// The next this many bytes of the owned buffer.
    Owned(usize),
    /// Bytes written from their own memory (a large payload, a prepared frame).
    Shared(Bytes),
}

/// The write side: the queue of encoded frames and the core's [`Sender`].
#[derive(Debug)]
pub(crate) struct Writer {
    pub(crate) sender: Sender,
    /// Owned bytes of the queue; `buf[pos..]` is not written yet.
    buf: Vec<u8>,
    pos: usize,
    /// Owned bytes at the front of the queue, ahead of `queue` (most of the time the whole
    /// queue: no allocation for it).
    head: usize,
    /// The rest of the queue, in order; its front piece has `front_done` bytes written.
    queue: VecDeque<Piece>,
    front_done: usize,
    /// Bytes in the queue not written yet.
    pending: usize,
    limit: usize,
    write_timeout_ms: Option<std::num::NonZeroU32>,
    deadline: Option<Pin<Box<Sleep>>>,
    /// Our side of the transport has been shut.
    pub(crate) shut: bool,
}

impl Writer {
    pub(crate) fn new(config: &Config, sender: Sender) -> Writer {
        Writer {
            sender,
            buf: Vec::new(),
            pos: 0,
            head: 0,
            queue: VecDeque::new(),
            front_done: 0,
            pending: 0,
            limit: config.write_buffer_size.max(1),
            write_timeout_ms: config.write_timeout.map(|d| {
                let ms = d.as_millis().clamp(1, u128::from(u32::MAX)) as u32;
                std::num::NonZeroU32::new(ms).unwrap_or(std::num::NonZeroU32::MIN)
            }),
            deadline: None,
            shut: false,
        }
    }

    /// Whether there is room for another message.
    fn has_room(&self) -> bool {
        self.pending < self.limit
    }

    /// Counts bytes just appended to the owned buffer as queued.
    fn owned(&mut self, from: usize) {
        let n = self.buf.len() - from;
        if n == 0 {
            return;
        }
        self.pending += n;
        match self.queue.back_mut() {
            None => self.head += n,
            Some(Piece::Owned(len)) => *len += n,
            Some(Piece::Shared(_)) => self.queue.push_back(Piece::Owned(n)),
        }
    }

    fn shared(&mut self, bytes: Bytes) {
        if !bytes.is_empty() {
            self.pending += bytes.len();
            self.queue.push_back(Piece::Shared(bytes));
        }
    }

    /// Encodes with `f` into the owned buffer and queues what it wrote.
    fn encode_owned<T>(
        &mut self,
        f: impl FnOnce(&mut Sender, &mut Vec<u8>) -> Result<T, ws_proto::Error>,
    ) -> Result<T, Error> {
        if self.pos > 0 && self.pos >= self.buf.len() - self.pos {
            // Drop the written prefix (cheap: at most as many bytes are still queued), so a
            // buffer that is never fully drained does not grow with everything ever sent.
            self.buf.drain(..self.pos);
            self.pos = 0;
        }
        let start = self.buf.len();
        let r = f(&mut self.sender, &mut self.buf);
        if r.is_err() {
            self.buf.truncate(start);
        }
        self.owned(start);
        r.map_err(Error::from_proto)
    }

    /// Moves the control frames the core owes into the queue while it has room. Frames left
    /// in the core while the queue is full are coalesced there (the newest pong wins), so a
    /// peer that pings without reading cannot grow the queue.
    pub(crate) fn take_controls(&mut self, conn: &mut Connection) {
        while conn.has_pending_transmit() && (self.shut || self.has_room()) {
            let Some(c) = conn.poll_control() else {
                break;
            };
            match self.sender.encode_control(&c) {
                Some(f) if !self.shut => {
                    let _ = self.encode_owned(|_, buf| {
                        buf.extend_from_slice(f.as_bytes());
                        Ok(())
                    });
                }
                _ => {}
            }
        }
    }

    /// Writes everything queued, then flushes the transport.
    pub(crate) fn poll_flush<S: AsyncWrite + Unpin>(
        &mut self,
        io: &mut S,
        cx: &mut Context<'_>,
    ) -> Poll<Result<(), Error>> {
        while self.pending > 0 {
            let one = matches!((self.head, self.queue.len()), (0, 1) | (_, 0));
            let r = if one {
                // One piece (the common case): a plain write.
                let piece = self.front();
                Pin::new(&mut *io).poll_write(cx, piece)
            } else {
                let slices = self.slices();
                Pin::new(&mut *io).poll_write_vectored(cx, &slices)
            };
            match r {
                Poll::Ready(Ok(0)) => return Poll::Ready(Err(Error::PeerVanished)),
                Poll::Ready(Ok(n)) => {
                    self.advance(n);
                    self.deadline = None;
                }
                Poll::Ready(Err(e)) => return Poll::Ready(Err(e.into())),
                Poll::Pending => return self.poll_deadline(cx),
            }
        }
        self.buf.clear();
        self.pos = 0;
        if self.buf.capacity() > WRITE_KEEP {
            // A large message grew the buffer; give the memory back.
            self.buf = Vec::new();
        }
        if self.queue.capacity() > 0 {
            // Used for shared frames and large payloads only: an idle connection holds none.
            self.queue = VecDeque::new();
        }
        self.deadline = None;
        Pin::new(io).poll_flush(cx).map_err(Error::from)
    }

    /// The unwritten part of the front piece.
    fn front(&self) -> &[u8] {
        if self.head > 0 {
            return &self.buf[self.pos..self.pos + self.head];
        }
        match self.queue.front() {
            Some(Piece::Owned(len)) => &self.buf[self.pos..self.pos + len - self.front_done],
            Some(Piece::Shared(b)) => &b[self.front_done..],
            None => &[],
        }
    }

    /// Up to [`IOVECS`] unwritten pieces, in order.
    fn slices(&self) -> Vec<io::IoSlice<'_>> {
        let mut out = Vec::with_capacity((self.queue.len() + 1).min(IOVECS));
        if self.head > 0 {
            out.push(io::IoSlice::new(&self.buf[self.pos..self.pos + self.head]));
        }
        let mut at = self.pos + self.head;
        for (i, piece) in self.queue.iter().take(IOVECS - out.len()).enumerate() {
            let skip = if i == 0 { self.front_done } else { 0 };
            match piece {
                Piece::Owned(len) => {
                    out.push(io::IoSlice::new(&self.buf[at..at + len - skip]));
                    at += len - skip;
                }
                Piece::Shared(b) => out.push(io::IoSlice::new(&b[skip..])),
            }
        }
        out
    }

    /// Takes `n` written bytes off the front of the queue.
    fn advance(&mut self, mut n: usize) {
        self.pending -= n;
        let from_head = n.min(self.head);
        self.head -= from_head;
        self.pos += from_head;
        n -= from_head;
        while n > 0 {
            let Some(front) = self.queue.front() else {
                break;
            };
            let (len, owned) = match front {
                Piece::Owned(len) => (*len, true),
                Piece::Shared(b) => (b.len(), false),
            };
            let left = len - self.front_done;
            let take = n.min(left);
            if owned {
                self.pos += take;
            }
            n -= take;
            if take == left {
                self.queue.pop_front();
                self.front_done = 0;
            } else {
                self.front_done += take;
            }
        }
    }

    fn poll_deadline(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Error>> {
        let Some(ms) = self.write_timeout_ms else {
            return Poll::Pending;
        };
        let d = self.deadline.get_or_insert_with(|| {
            Box::pin(tokio::time::sleep(std::time::Duration::from_millis(
                ms.get().into(),
            )))
        });
        match d.as_mut().poll(cx) {
            Poll::Ready(()) => Poll::Ready(Err(Error::Timeout(TimeoutKind::Write))),
            Poll::Pending => Poll::Pending,
        }
    }

    /// Waits until the queue has room for another message.
    pub(crate) fn poll_ready<S: AsyncWrite + Unpin>(
        &mut self,
        io: &mut S,
        cx: &mut Context<'_>,
    ) -> Poll<Result<(), Error>> {
        if self.has_room() {
            return Poll::Ready(Ok(()));
        }
        self.poll_flush(io, cx)
    }

    /// Shuts our side of `io` once.
    pub(crate) fn poll_shutdown<S: AsyncWrite + Unpin>(
        &mut self,
        io: &mut S,
        cx: &mut Context<'_>,
    ) -> Poll<io::Result<()>> {
        if self.shut {
            return Poll::Ready(Ok(()));
        }
        let r = ready!(Pin::new(io).poll_shutdown(cx));
        self.shut = true;
        Poll::Ready(r)
    }

    /// Queues a data or control message (not a close). A large uncompressed payload is not
    /// copied but written from its own memory after its header; with a shared compressor,
    /// data is compressed with this thread's.
    pub(crate) fn encode(&mut self, msg: Message) -> Result<(), Error> {
        let (opcode, payload) = match msg {
            Message::Text(t) => (OpCode::Text, t.into_bytes()),
            Message::Binary(b) => (OpCode::Binary, b),
            Message::Ping(p) => (OpCode::Ping, p),
            Message::Pong(p) => (OpCode::Pong, p),
            Message::Close(_) => return Err(Error::Closed),
        };
        if opcode.is_control() {
            let len = self.sender.frame_len(payload.len());
            return self.encode_owned(|sender, buf| {
                let start = buf.len();
                buf.resize(start + len, 0);
                sender
                    .encode_frame(opcode, true, &payload, &mut buf[start..])
                    .map(|_| ())
            });
        }
        if payload.len() >= VECTORED_MIN && !self.sender.compression_enabled() {
            return self.encode_vectored(opcode, payload);
        }
        match self.sender.shared_compression() {
            Some(s) if payload.len() >= s.min_size => with_compressor(s.level, |c| {
                self.encode_owned(|sender, buf| {
                    sender.encode_message_with(opcode, &payload, buf, Some(c))
                })
            }),
            _ => self.encode_owned(|sender, buf| sender.encode_message(opcode, &payload, buf)),
        }
    }

    /// A large payload goes out after its header with one vectored write: from the message's
    /// own memory for a server; a client masks it in place when it holds the only reference,
    /// and masks while copying otherwise.
    fn encode_vectored(&mut self, opcode: OpCode, payload: Bytes) -> Result<(), Error> {
        let mask = self.encode_owned(|sender, buf| {
            let (header, mask) = sender.start_frame(opcode, true, payload.len())?;
            buf.extend_from_slice(header.as_bytes());
            Ok(mask)
        })?;
        let body = match mask {
            None => payload,
            Some(key) => match payload.try_into_mut() {
                Ok(mut owned) => {
                    ws_proto::mask::apply_mask(&mut owned, key, 0);
                    owned.freeze()
                }
                Err(shared) => {
                    let mut copy = shared.to_vec();
                    ws_proto::mask::apply_mask(&mut copy, key, 0);
                    Bytes::from(copy)
                }
            },
        };
        self.shared(body);
        Ok(())
    }

    /// Queues a prepared message: its shared frame as it is (a server), or its payload
    /// encoded as any message (a client, whose frames are masked each with a key of its own).
    pub(crate) fn encode_prepared(&mut self, prepared: &PreparedMessage) -> Result<(), Error> {
        match self
            .sender
            .prepared_frame(prepared)
            .map_err(Error::from_proto)?
        {
            Some(frame) => {
                let frame = frame.clone();
                self.shared(frame);
                Ok(())
            }
            None => {
                let payload = prepared.payload().clone();
                let msg = match prepared.opcode() {
                    OpCode::Text => Message::Text(
                        ws_proto::Utf8Bytes::try_from(payload)
                            .map_err(|_| Error::Usage(ws_proto::Usage::NotData))?,
                    ),
                    _ => Message::Binary(payload),
                };
                self.encode(msg)
            }
        }
    }

    /// Queues our close frame with `frame` (for a write half, which sends it itself).
    pub(crate) fn encode_close(
        &mut self,
        frame: Option<&ws_proto::CloseFrame>,
    ) -> Result<(), Error> {
        let (code, reason) = match frame {
            Some(f) => (Some(f.code), f.reason.as_str()),
            None => (None, ""),
        };
        self.encode_owned(|sender, buf| {
            let f = sender.encode_close(code, reason)?;
            buf.extend_from_slice(f.as_bytes());
            Ok(())
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ws_proto::{Connection, Message, Role};

    /// A transport that takes at most `step` bytes per write (and one piece per vectored
    /// write when `vectored` is off), recording everything.
    struct Trickle {
        step: usize,
        vectored: bool,
        got: Vec<u8>,
        writes: usize,
    }

    impl AsyncWrite for Trickle {
        fn poll_write(
            mut self: Pin<&mut Self>,
            _: &mut Context<'_>,
            buf: &[u8],
        ) -> Poll<io::Result<usize>> {
            let n = buf.len().min(self.step);
            self.got.extend_from_slice(&buf[..n]);
            self.writes += 1;
            Poll::Ready(Ok(n))
        }

        fn poll_write_vectored(
            mut self: Pin<&mut Self>,
            _: &mut Context<'_>,
            bufs: &[io::IoSlice<'_>],
        ) -> Poll<io::Result<usize>> {
            let mut left = self.step;
            let mut n = 0;
            for b in bufs {
                let take = b.len().min(left);
                self.got.extend_from_slice(&b[..take]);
                n += take;
                left -= take;
                if left == 0 || !self.vectored {
                    break;
                }
            }
            self.writes += 1;
            Poll::Ready(Ok(n))
        }

        fn is_write_vectored(&self) -> bool {
            self.vectored
        }

        fn poll_flush(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
            Poll::Ready(Ok(()))
        }

        fn poll_shutdown(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
            Poll::Ready(Ok(()))
        }
    }

    fn writer() -> Writer {
        let config = Config::default().with_compression(None);
        let mut conn = Connection::new(Role::Server, config.core, 0, 0).unwrap();
        Writer::new(&config, conn.take_sender())
    }

    /// Queues small and large messages and prepared frames in turn; whatever the transport
    /// takes per write, the bytes come out whole and in order.
    #[test]
    fn owned_and_shared_pieces_come_out_in_order() {
        let big = Bytes::from(vec![7u8; 20_000]);
        let prepared = PreparedMessage::new(Message::text("shared")).unwrap();
        for (step, vectored) in [
            (1, false),
            (3, true),
            (1000, true),
            (1 << 20, true),
            (4096, false),
        ] {
            let mut w = writer();
            let mut expected = Vec::new();
            let mut reference = writer();
            for i in 0..5u8 {
                let small = Message::binary(vec![i; 10]);
                w.encode(small.clone()).unwrap();
                w.encode(Message::Binary(big.clone())).unwrap();
                w.encode_prepared(&prepared).unwrap();
                w.encode_prepared(&prepared).unwrap();
                // The same frames, encoded one by one into plain bytes.
                for m in [small, Message::Binary(big.clone())] {
                    reference.encode(m).unwrap();
                }
                expected.extend(reference.drain_bytes());
                expected.extend_from_slice(prepared.plain_frame());
                expected.extend_from_slice(prepared.plain_frame());
            }
            let mut io = Trickle {
                step,
                vectored,
                got: Vec::new(),
                writes: 0,
            };
            let waker = std::task::Waker::noop();
            let mut cx = Context::from_waker(waker);
            assert!(matches!(
                w.poll_flush(&mut io, &mut cx),
                Poll::Ready(Ok(()))
            ));
            assert_eq!(io.got, expected, "step {step}, vectored {vectored}");
            assert_eq!(w.pending, 0);
            if step == 1 << 20 {
                assert_eq!(io.writes, 1, "everything in one vectored write");
            }
        }
    }

    impl Writer {
        /// Everything queued, as bytes (for comparisons).
        fn drain_bytes(&mut self) -> Vec<u8> {
            let mut io = Trickle {
                step: usize::MAX,
                vectored: true,
                got: Vec::new(),
                writes: 0,
            };
            let waker = std::task::Waker::noop();
            let mut cx = Context::from_waker(waker);
            let _ = self.poll_flush(&mut io, &mut cx);
            io.got
        }
    }
}
