//! Read and write halves usable from different tasks, over one core.
//!
//! The read half owns the [`Connection`] (receiving, timers, the close lifecycle); the write
//! half's side holds the connection's [`Sender`](ws_proto::Sender) with the write side of the
//! transport and its buffer. That side sits behind a mutex that no one holds across an await:
//! the write half takes it once per send or flush; the read half only when the core owes the
//! peer a frame (pong, keepalive ping, close answer) or says to shut the transport, and then
//! only with `try_lock`, registering to be woken when the write half lets go. A close the
//! write half sends is passed to the core through a small shared slot.

use std::io;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, TryLockError};
use std::task::{Context, Poll, Waker, ready};

use futures_core::Stream;
use futures_sink::Sink;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use ws_proto::{CloseCode, CloseFrame, Connection, Message, PreparedMessage};

use crate::engine::{Driver, Reader, Writer, flush_all, poll_recv};
use crate::error::Error;
use crate::time::now_ms;
use crate::websocket::WebSocket;

struct WriteSide<S> {
    io: tokio::io::WriteHalf<S>,
    writer: Writer,
}

/// `close_sent` when no close has been sent.
const NO_CLOSE: u32 = u32::MAX;
/// `close_sent` for a close frame without a code.
const NO_CODE: u32 = 0;

struct Shared<S> {
    write: Mutex<WriteSide<S>>,
    /// Wakers of a half that found the write side taken.
    waiting: Mutex<Vec<Waker>>,
    /// The close the write half sent: [`NO_CLOSE`], [`NO_CODE`] or the code.
    close_sent: AtomicU32,
    /// The core can no longer send data (the peer closed, the connection failed or ended).
    closed: AtomicBool,
    /// The read half's waker while it waits for data, so that a close sent by the write half
    /// wakes it to start the close deadline.
    read_waker: Mutex<Option<Waker>>,
}

impl<S> Shared<S> {
    /// Takes the write side without waiting; on contention registers `cx` to be woken.
    fn try_write(&self, cx: &mut Context<'_>) -> Poll<Result<Guard<'_, S>, Error>> {
        let guard = |g| Guard {
            guard: Some(g),
            shared: self,
        };
        match self.write.try_lock() {
            Ok(g) => return Poll::Ready(Ok(guard(g))),
            Err(TryLockError::Poisoned(_)) => return Poll::Ready(Err(Error::Closed)),
            Err(TryLockError::WouldBlock) => {}
        }
        if let Ok(mut w) = self.waiting.lock() {
            if !w.iter().any(|x| x.will_wake(cx.waker())) {
                w.push(cx.waker().clone());
            }
        }
        // The holder may have let go between the two steps: try once more.
        match self.write.try_lock() {
            Ok(g) => Poll::Ready(Ok(guard(g))),
            Err(TryLockError::WouldBlock) => Poll::Pending,
            Err(TryLockError::Poisoned(_)) => Poll::Ready(Err(Error::Closed)),
        }
    }

    /// Takes the write side, waiting for a holder that has it for a moment (never across an
    /// await).
    fn write(&self) -> Result<Guard<'_, S>, Error> {
        let g = self.write.lock().map_err(|_| Error::Closed)?;
        Ok(Guard {
            guard: Some(g),
            shared: self,
        })
    }

    fn wake_reader(&self) {
        let waker = self.read_waker.lock().ok().and_then(|mut w| w.take());
        if let Some(w) = waker {
            w.wake();
        }
    }
}

/// The write side, taken; wakes waiting halves when dropped.
struct Guard<'a, S> {
    guard: Option<MutexGuard<'a, WriteSide<S>>>,
    shared: &'a Shared<S>,
}

impl<S> Drop for Guard<'_, S> {
    fn drop(&mut self) {
        drop(self.guard.take());
        let wakers = match self.shared.waiting.lock() {
            Ok(mut w) if !w.is_empty() => std::mem::take(&mut *w),
            _ => return,
        };
        for w in wakers {
            w.wake();
        }
    }
}

impl<S> std::ops::Deref for Guard<'_, S> {
    type Target = WriteSide<S>;
    fn deref(&self) -> &WriteSide<S> {
        self.guard.as_ref().unwrap_or_else(|| unreachable!())
    }
}

impl<S> std::ops::DerefMut for Guard<'_, S> {
    fn deref_mut(&mut self) -> &mut WriteSide<S> {
        self.guard.as_mut().unwrap_or_else(|| unreachable!())
    }
}

/// The receiving half of a split [`WebSocket`]. It owns the connection's state: keep polling
/// it (or the connection's pings, pongs and close go unanswered).
pub struct ReadHalf<S> {
    io: tokio::io::ReadHalf<S>,
    reader: Reader,
    shared: Arc<Shared<S>>,
}

/// The sending half of a split [`WebSocket`].
pub struct WriteHalf<S> {
    shared: Arc<Shared<S>>,
}

impl<S> std::fmt::Debug for ReadHalf<S> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ReadHalf")
            .field("reader", &self.reader)
            .finish_non_exhaustive()
    }
}

impl<S> std::fmt::Debug for WriteHalf<S> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WriteHalf").finish_non_exhaustive()
    }
}

pub(crate) fn split<S: AsyncRead + AsyncWrite + Unpin>(
    ws: WebSocket<S>,
) -> (WriteHalf<S>, ReadHalf<S>) {
    let WebSocket { io, reader, writer } = ws;
    let (rio, wio) = tokio::io::split(io);
    let shared = Arc::new(Shared {
        closed: AtomicBool::new(!reader.conn.state().can_send()),
        write: Mutex::new(WriteSide { io: wio, writer }),
        waiting: Mutex::new(Vec::new()),
        close_sent: AtomicU32::new(NO_CLOSE),
        read_waker: Mutex::new(None),
    });
    (
        WriteHalf {
            shared: shared.clone(),
        },
        ReadHalf {
            io: rio,
            reader,
            shared,
        },
    )
}

struct SplitDriver<'a, S> {
    io: &'a mut tokio::io::ReadHalf<S>,
    shared: &'a Shared<S>,
}

impl<S: AsyncRead + AsyncWrite + Unpin> Driver for SplitDriver<'_, S> {
    fn poll_read(&mut self, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut *self.io).poll_read(cx, buf)
    }

    fn poll_flush(
        &mut self,
        conn: &mut Connection,
        cx: &mut Context<'_>,
    ) -> Poll<Result<(), Error>> {
        if !conn.has_pending_transmit() {
            // Nothing of ours to send; the write half writes its own frames.
            return Poll::Ready(Ok(()));
        }
        let mut side = ready!(self.shared.try_write(cx))?;
        let WriteSide { io, writer } = &mut *side;
        flush_all(conn, writer, io, cx)
    }

    fn stage(&mut self, conn: &mut Connection, cx: &mut Context<'_>) {
        // The write side is shared: frames are handed over by writing them out (a failure
        // shows again on the flush before the next read).
        if conn.has_pending_transmit() {
            let _ = self.poll_flush(conn, cx);
        }
    }

    fn poll_shutdown(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let mut side = match ready!(self.shared.try_write(cx)) {
            Ok(s) => s,
            Err(_) => return Poll::Ready(Ok(())),
        };
        let WriteSide { io, writer } = &mut *side;
        if let Err(Error::Io(e)) = ready!(writer.poll_flush(io, cx)) {
            return Poll::Ready(Err(e));
        }
        writer.poll_shutdown(io, cx)
    }

    fn sync(&mut self, conn: &mut Connection) {
        let sent = self.shared.close_sent.load(Ordering::Acquire);
        if sent != NO_CLOSE && conn.state().can_send() {
            // The write half sent our close frame: the core now waits for the answer, with the
            // close deadline running. Its own close frame is dropped by the sender, which has
            // sent one.
            let code = (sent != NO_CODE).then_some(CloseCode(sent as u16));
            let _ = conn.close(now_ms(), code, "");
        }
        if !conn.state().can_send() && !self.shared.closed.load(Ordering::Relaxed) {
            self.shared.closed.store(true, Ordering::Release);
        }
    }

    fn waiting_for_data(&mut self, cx: &mut Context<'_>) {
        if self.shared.close_sent.load(Ordering::Acquire) != NO_CLOSE {
            return;
        }
        if let Ok(mut w) = self.shared.read_waker.lock() {
            match &*w {
                Some(old) if old.will_wake(cx.waker()) => {}
                _ => *w = Some(cx.waker().clone()),
            }
        }
    }
}

impl<S: AsyncRead + AsyncWrite + Unpin> ReadHalf<S> {
    /// Polls for the next message (see [`WebSocket::recv`]).
    pub fn poll_recv(&mut self, cx: &mut Context<'_>) -> Poll<Option<Result<Message, Error>>> {
        let ReadHalf { io, reader, shared } = self;
        let r = poll_recv(&mut SplitDriver { io, shared }, reader, cx);
        if r.is_ready() && !reader.conn.state().can_send() {
            shared.closed.store(true, Ordering::Release);
        }
        r
    }

    /// Receives the next message; cancel-safe, like [`WebSocket::recv`].
    pub async fn recv(&mut self) -> Option<Result<Message, Error>> {
        std::future::poll_fn(|cx| self.poll_recv(cx)).await
    }
}

impl<S: AsyncRead + AsyncWrite + Unpin> Stream for ReadHalf<S> {
    type Item = Result<Message, Error>;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        self.get_mut().poll_recv(cx)
    }
}

impl<S: AsyncRead + AsyncWrite + Unpin> WriteHalf<S> {
    fn poll_ready_inner(&self, cx: &mut Context<'_>) -> Poll<Result<(), Error>> {
        let mut side = ready!(self.shared.try_write(cx))?;
        let WriteSide { io, writer } = &mut *side;
        writer.poll_ready(io, cx)
    }

    fn start_send_inner(&self, msg: Message) -> Result<(), Error> {
        let mut side = self.shared.write()?;
        if side.writer.shut {
            return Err(Error::Closed);
        }
        if let Message::Close(frame) = msg {
            if self.shared.closed.load(Ordering::Acquire) {
                // The connection has ended, or a close is already under way.
                return Err(Error::Closed);
            }
            side.writer.encode_close(frame.as_ref())?;
            let code = frame.map_or(NO_CODE, |f| u32::from(f.code.0));
            self.shared.close_sent.store(code, Ordering::Release);
            self.shared.closed.store(true, Ordering::Release);
            self.shared.wake_reader();
            return Ok(());
        }
        if self.shared.closed.load(Ordering::Acquire) || side.writer.sender.is_closed() {
            return Err(Error::Closed);
        }
        side.writer.encode(msg)
    }

    fn poll_flush_inner(&self, cx: &mut Context<'_>) -> Poll<Result<(), Error>> {
        let mut side = ready!(self.shared.try_write(cx))?;
        let WriteSide { io, writer } = &mut *side;
        writer.poll_flush(io, cx)
    }

    fn start_send_prepared(&self, prepared: &PreparedMessage) -> Result<(), Error> {
        let mut side = self.shared.write()?;
        if self.shared.closed.load(Ordering::Acquire) || side.writer.sender.is_closed() {
            return Err(Error::Closed);
        }
        side.writer.encode_prepared(prepared)
    }

    /// Sends a message and flushes it (see [`WebSocket::send`]).
    pub async fn send(&mut self, msg: Message) -> Result<(), Error> {
        self.feed(msg).await?;
        self.flush().await
    }

    /// Queues a message without writing it; waits for buffer space (see
    /// [`WebSocket::feed`]). It goes out with the next [`flush`](Self::flush) or send.
    pub async fn feed(&mut self, msg: Message) -> Result<(), Error> {
        std::future::poll_fn(|cx| self.poll_ready_inner(cx)).await?;
        self.start_send_inner(msg)
    }

    /// Sends a [`PreparedMessage`] and flushes it (see [`WebSocket::send_prepared`]).
    pub async fn send_prepared(&mut self, prepared: &PreparedMessage) -> Result<(), Error> {
        self.feed_prepared(prepared).await?;
        self.flush().await
    }

    /// Queues a [`PreparedMessage`] without writing it (see [`WebSocket::feed_prepared`]).
    pub async fn feed_prepared(&mut self, prepared: &PreparedMessage) -> Result<(), Error> {
        std::future::poll_fn(|cx| self.poll_ready_inner(cx)).await?;
        self.start_send_prepared(prepared)
    }

    /// Writes everything queued.
    pub async fn flush(&mut self) -> Result<(), Error> {
        std::future::poll_fn(|cx| self.poll_flush_inner(cx)).await
    }

    /// A `Sink` of `Arc<PreparedMessage>`s over this half (see [`WebSocket::prepared_sink`]).
    pub fn prepared_sink(&mut self) -> crate::PreparedSink<'_, Self> {
        crate::PreparedSink(self)
    }

    /// Sends a close frame (`None`: one without a code). The read half completes the
    /// handshake when the peer's close arrives (it returns `None` after that).
    pub async fn close(&mut self, frame: Option<CloseFrame>) -> Result<(), Error> {
        self.send(Message::Close(frame)).await
    }
}

impl<S: AsyncRead + AsyncWrite + Unpin> Sink<std::sync::Arc<PreparedMessage>>
    for crate::PreparedSink<'_, WriteHalf<S>>
{
    type Error = Error;

    fn poll_ready(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Result<(), Error>> {
        self.0.poll_ready_inner(cx)
    }

    fn start_send(
        self: Pin<&mut Self>,
        item: std::sync::Arc<PreparedMessage>,
    ) -> Result<(), Error> {
        self.0.start_send_prepared(&item)
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Result<(), Error>> {
        self.0.poll_flush_inner(cx)
    }

    fn poll_close(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Result<(), Error>> {
        self.0.poll_flush_inner(cx)
    }
}

impl<S: AsyncRead + AsyncWrite + Unpin> Sink<Message> for WriteHalf<S> {
    type Error = Error;

    fn poll_ready(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Result<(), Error>> {
        self.poll_ready_inner(cx)
    }

    fn start_send(self: Pin<&mut Self>, item: Message) -> Result<(), Error> {
        self.start_send_inner(item)
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Result<(), Error>> {
        self.poll_flush_inner(cx)
    }

    /// Sends a close frame with 1000 (unless one was sent) and flushes it.
    fn poll_close(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Result<(), Error>> {
        if self.shared.close_sent.load(Ordering::Acquire) == NO_CLOSE {
            ready!(self.poll_ready_inner(cx))?;
            let closed = self.shared.write().map(|s| s.writer.sender.is_closed())?;
            if !closed {
                self.start_send_inner(Message::Close(Some(CloseFrame::new(
                    CloseCode::NORMAL,
                    "",
                ))))?;
            }
        }
        self.poll_flush_inner(cx)
    }
}
