//! Read and write halves usable from different tasks.
//!
//! The read half owns the read side of the transport and the protocol state; the write half
//! encodes with its own copy of the sending state. The write side of the transport and its
//! buffer sit behind a mutex that is only ever taken with `try_lock` (never waited on): the
//! write half takes it once per send, the read half only when it has a pong, keepalive ping or
//! close to send. Whichever half finds it taken registers its waker and is woken when the other
//! lets go, so a pong still goes out while the application only reads.

use std::io;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, TryLockError};
use std::task::{Context, Poll, Waker, ready};

use futures_core::Stream;
use futures_sink::Sink;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use ws_proto::{CloseCode, Connection, Message, OpCode, Role};

use crate::error::Error;
use crate::ws::{Driver, Reader, WebSocket, Writer, poll_recv};

struct WriteSide<S> {
    io: tokio::io::WriteHalf<S>,
    writer: Writer,
    /// The sending state (masking keys, fragment sequence, close sent).
    enc: Connection,
    /// A close frame has been written to the buffer; nothing more may follow it.
    closed: bool,
}

struct Shared<S> {
    write: Mutex<WriteSide<S>>,
    /// Wakers of a half that found the write side taken.
    waiting: Mutex<Vec<Waker>>,
    /// The write half queued a close frame: the read half starts its close deadline.
    close_queued: AtomicBool,
    /// The read half's waker while it waits for data, so that a close queued by the write
    /// half wakes it to start the close deadline.
    read_waker: Mutex<Option<Waker>>,
}

impl<S> Shared<S> {
    /// Takes the write side without waiting; on contention registers `cx` to be woken.
    fn try_write(&self, cx: &mut Context<'_>) -> Poll<Result<Guard<'_, S>, Error>> {
        match self.write.try_lock() {
            Ok(g) => Poll::Ready(Ok(Guard {
                guard: Some(g),
                shared: self,
            })),
            Err(TryLockError::WouldBlock) => {
                if let Ok(mut w) = self.waiting.lock() {
                    if !w.iter().any(|x| x.will_wake(cx.waker())) {
                        w.push(cx.waker().clone());
                    }
                }
                // The holder may have let go between the two steps: try once more.
                match self.write.try_lock() {
                    Ok(g) => Poll::Ready(Ok(Guard {
                        guard: Some(g),
                        shared: self,
                    })),
                    Err(TryLockError::WouldBlock) => Poll::Pending,
                    Err(TryLockError::Poisoned(_)) => Poll::Ready(Err(Error::Closed)),
                }
            }
            Err(TryLockError::Poisoned(_)) => Poll::Ready(Err(Error::Closed)),
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

impl<'a, S> std::ops::Deref for Guard<'a, S> {
    type Target = WriteSide<S>;
    fn deref(&self) -> &WriteSide<S> {
        self.guard.as_ref().unwrap_or_else(|| unreachable!())
    }
}

impl<'a, S> std::ops::DerefMut for Guard<'a, S> {
    fn deref_mut(&mut self) -> &mut WriteSide<S> {
        self.guard.as_mut().unwrap_or_else(|| unreachable!())
    }
}

/// The receiving half of a split [`WebSocket`]. Answers pings and closes through the shared
/// write side.
pub struct ReadHalf<S> {
    io: tokio::io::ReadHalf<S>,
    reader: Reader,
    shared: Arc<Shared<S>>,
    /// Frames this half moved to the write buffer are not all written yet.
    owed: bool,
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
) -> (ReadHalf<S>, WriteHalf<S>) {
    let WebSocket { io, reader, writer } = ws;
    let (rio, wio) = tokio::io::split(io);
    let enc = encoder(&reader.conn);
    let closed = reader.conn.close_sent();
    let shared = Arc::new(Shared {
        write: Mutex::new(WriteSide {
            io: wio,
            writer,
            enc,
            closed,
        }),
        waiting: Mutex::new(Vec::new()),
        close_queued: AtomicBool::new(false),
        read_waker: Mutex::new(None),
    });
    (
        ReadHalf {
            io: rio,
            reader,
            shared: shared.clone(),
            owed: false,
        },
        WriteHalf { shared },
    )
}

/// The write half's sending state: a copy of the connection with its own masking-key generator
/// (a plain clone would repeat the read half's keys). Only whole messages are sent, so a fresh
/// connection in the same role and settings is in the same sending state. With
/// permessage-deflate the clone is kept, for its compressor: ws-proto has no way to reseed a
/// clone's key generator.
fn encoder(conn: &Connection) -> Connection {
    let mut enc = conn.clone();
    let mut seed = [0u8; 8];
    if conn.role() == Role::Client && getrandom::fill(&mut seed).is_ok() {
        enc.set_mask_seed(u64::from_ne_bytes(seed));
    }
    enc
}

struct SplitDriver<'a, S> {
    io: &'a mut tokio::io::ReadHalf<S>,
    shared: &'a Shared<S>,
    owed: &'a mut bool,
}

/// Moves frames the read side's core queued into the shared write buffer, while it has room
/// (frames left in the core are coalesced there: the newest pong wins).
fn forward<S>(reader: &mut Reader, side: &mut WriteSide<S>) {
    loop {
        let discard = side.closed || side.writer.shut;
        if !discard && side.writer.pending() >= side.writer.limit {
            return;
        }
        let Some(f) = reader.conn.poll_transmit() else {
            return;
        };
        if discard {
            continue;
        }
        side.writer.buf.extend_from_slice(f.as_bytes());
        if f.opcode() == OpCode::Close {
            side.closed = true;
        }
    }
}

impl<S: AsyncRead + AsyncWrite + Unpin> Driver for SplitDriver<'_, S> {
    fn poll_read(&mut self, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut *self.io).poll_read(cx, buf)
    }

    fn poll_flush(&mut self, reader: &mut Reader, cx: &mut Context<'_>) -> Poll<Result<(), Error>> {
        if !reader.conn.has_pending_transmit() && !*self.owed {
            // Nothing of ours to send; the write half flushes its own frames.
            return Poll::Ready(Ok(()));
        }
        let mut side = ready!(self.shared.try_write(cx))?;
        loop {
            forward(reader, &mut side);
            // Until written, our frames are ours to flush: the write half may be idle.
            *self.owed = true;
            let WriteSide { io, writer, .. } = &mut *side;
            let r = ready!(writer.poll_flush(io, cx));
            *self.owed = false;
            r?;
            if side.closed || side.writer.shut || !reader.conn.has_pending_transmit() {
                return Poll::Ready(Ok(()));
            }
        }
    }

    fn close_sent_elsewhere(&self) -> bool {
        self.shared.close_queued.load(Ordering::Acquire)
    }

    fn stage(&mut self, reader: &mut Reader, cx: &mut Context<'_>) {
        // The write side is shared: frames are handed over by writing them out (a failure
        // shows again on the flush before the next read).
        if reader.conn.has_pending_transmit() {
            let _ = self.poll_flush(reader, cx);
        }
    }

    fn waiting_for_data(&mut self, cx: &mut Context<'_>) {
        if self.shared.close_queued.load(Ordering::Acquire) {
            return;
        }
        if let Ok(mut w) = self.shared.read_waker.lock() {
            match &*w {
                Some(old) if old.will_wake(cx.waker()) => {}
                _ => *w = Some(cx.waker().clone()),
            }
        }
    }

    fn poll_shutdown(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let mut side = match ready!(self.shared.try_write(cx)) {
            Ok(s) => s,
            Err(_) => return Poll::Ready(Ok(())),
        };
        if side.writer.shut {
            return Poll::Ready(Ok(()));
        }
        let WriteSide { io, writer, .. } = &mut *side;
        let _ = ready!(writer.poll_flush(io, cx));
        let r = ready!(Pin::new(&mut *io).poll_shutdown(cx));
        side.writer.shut = true;
        Poll::Ready(r)
    }
}

impl<S: AsyncRead + AsyncWrite + Unpin> ReadHalf<S> {
    /// Polls for the next message (see [`WebSocket::recv`]).
    pub fn poll_recv(&mut self, cx: &mut Context<'_>) -> Poll<Option<Result<Message, Error>>> {
        let ReadHalf {
            io,
            reader,
            shared,
            owed,
        } = self;
        poll_recv(&mut SplitDriver { io, shared, owed }, reader, cx)
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
        let WriteSide { io, writer, .. } = &mut *side;
        writer.poll_ready(io, cx)
    }

    fn start_send_inner(&self, msg: &Message) -> Result<(), Error> {
        let mut side = match self.shared.write.try_lock() {
            Ok(g) => Guard {
                guard: Some(g),
                shared: &self.shared,
            },
            // The read half holds it for a moment: the message still has to be queued, so wait.
            Err(TryLockError::WouldBlock) => Guard {
                guard: Some(self.shared.write.lock().map_err(|_| Error::Closed)?),
                shared: &self.shared,
            },
            Err(TryLockError::Poisoned(_)) => return Err(Error::Closed),
        };
        if side.closed {
            return Err(Error::Closed);
        }
        let WriteSide {
            writer,
            enc,
            closed,
            ..
        } = &mut *side;
        writer.encode(enc, msg)?;
        while let Some(f) = enc.poll_transmit() {
            writer.buf.extend_from_slice(f.as_bytes());
            if f.opcode() == OpCode::Close {
                *closed = true;
                self.shared.close_queued.store(true, Ordering::Release);
                let waker = self
                    .shared
                    .read_waker
                    .lock()
                    .ok()
                    .and_then(|mut w| w.take());
                if let Some(w) = waker {
                    w.wake();
                }
            }
        }
        Ok(())
    }

    fn poll_flush_inner(&self, cx: &mut Context<'_>) -> Poll<Result<(), Error>> {
        let mut side = ready!(self.shared.try_write(cx))?;
        let WriteSide { io, writer, .. } = &mut *side;
        writer.poll_flush(io, cx)
    }

    /// Sends a message and flushes it (see [`WebSocket::send`]).
    pub async fn send(&mut self, msg: Message) -> Result<(), Error> {
        std::future::poll_fn(|cx| self.poll_ready_inner(cx)).await?;
        self.start_send_inner(&msg)?;
        std::future::poll_fn(|cx| self.poll_flush_inner(cx)).await
    }

    /// Sends a close frame. The read half completes the handshake when the peer's close
    /// arrives (it returns `None` after that).
    pub async fn close(&mut self, code: CloseCode, reason: &str) -> Result<(), Error> {
        self.send(Message::Close(Some((code, reason.to_string()))))
            .await
    }
}

impl<S: AsyncRead + AsyncWrite + Unpin> Sink<Message> for WriteHalf<S> {
    type Error = Error;

    fn poll_ready(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Result<(), Error>> {
        self.poll_ready_inner(cx)
    }

    fn start_send(self: Pin<&mut Self>, item: Message) -> Result<(), Error> {
        self.start_send_inner(&item)
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Result<(), Error>> {
        self.poll_flush_inner(cx)
    }

    fn poll_close(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Result<(), Error>> {
        {
            let closed = match self.shared.write.try_lock() {
                Ok(s) => s.closed,
                Err(_) => false,
            };
            if !closed {
                ready!(self.poll_ready_inner(cx))?;
                self.start_send_inner(&Message::Close(Some((CloseCode::NORMAL, String::new()))))?;
            }
        }
        self.poll_flush_inner(cx)
    }
}
