//! A connection subscribed to topics: its queue, its memberships, and the task that writes.

use std::future::poll_fn;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use futures_core::Stream;
use futures_sink::Sink;
use tokio::io::{AsyncRead, AsyncWrite};
use ws_proto::{CloseFrame, Message, PreparedMessage, SharedCompression};

use super::Topics;
use super::queue::{End, Queue, QueueConfig};
use crate::WebSocket;
use crate::error::Error;

/// Most messages handed to the connection at once: one vectored write (the write side's
/// limit on pieces per write).
const BATCH: usize = 64;
/// About the most bytes handed to the connection at once (at least one message).
const BATCH_BYTES: usize = 64 << 10;
/// Batches written per poll before the task lets others run.
const ROUNDS: usize = 4;

/// The reason sent with an overflow close.
const OVERFLOW_REASON: &str = "subscriber too slow";

/// A [`WebSocket`] subscribed to topics of a [`Topics`] registry (from
/// [`Topics::subscriber`]).
///
/// [`recv`](Self::recv) receives from the peer as `WebSocket::recv` does and, while it waits,
/// writes out the messages published to this subscriber: whatever queued up since the last
/// write leaves in one vectored write. The queue is drained only while `recv` (or the
/// `Stream`) is polled, so poll it all the time, as any connection needs for its pings and
/// close.
///
/// Dropping a subscriber (or [`into_inner`](Self::into_inner)) takes it out of every topic.
#[derive(Debug)]
pub struct Subscriber<S> {
    ws: WebSocket<S>,
    member: Membership,
    /// The overflow close has been started.
    closing: bool,
}

/// What a subscriber holds in the registry; leaves it all when dropped.
#[derive(Debug)]
struct Membership {
    topics: Topics,
    queue: Arc<Queue>,
    /// How this connection compresses prepared messages (counted by each topic).
    profile: Option<SharedCompression>,
    /// Slot in the every-subscriber list.
    all: u32,
    /// Named topics: name, topic, slot.
    named: Vec<(Arc<str>, Arc<super::Topic>, u32)>,
}

impl Drop for Membership {
    fn drop(&mut self) {
        self.queue.finish();
        for (key, topic, slot) in self.named.drain(..) {
            self.topics.leave(&key, &topic, slot, self.profile);
        }
        self.topics.detach(self.all, self.profile);
    }
}

/// A subscriber's counters.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct SubscriberStats {
    /// Messages waiting in the queue.
    pub queued: usize,
    /// Frame bytes waiting in the queue.
    pub queued_bytes: usize,
    /// Messages taken from the queue by the connection.
    pub taken: u64,
    /// Messages dropped by [`Overflow::DropOldest`](super::Overflow::DropOldest), or
    /// discarded when the queue overflowed under [`Overflow::Close`](super::Overflow::Close).
    pub dropped: u64,
    /// Frame bytes of the dropped messages.
    pub dropped_bytes: u64,
    /// The queue overflowed under [`Overflow::Close`](super::Overflow::Close): the
    /// connection is being closed.
    pub overflowed: bool,
}

impl<S> Subscriber<S> {
    pub(super) fn new(topics: Topics, ws: WebSocket<S>, queue: QueueConfig) -> Subscriber<S> {
        let profile = ws.writer.sender.prepared_compression();
        let queue = Arc::new(Queue::new(queue));
        let all = topics.attach(&queue, profile);
        Subscriber {
            ws,
            member: Membership {
                topics,
                queue,
                profile,
                all,
                named: Vec::new(),
            },
            closing: false,
        }
    }

    /// Subscribes to `topic`; `false` if already subscribed.
    pub fn subscribe(&mut self, topic: &str) -> bool {
        let m = &mut self.member;
        if m.named.iter().any(|(k, _, _)| &**k == topic) {
            return false;
        }
        let joined = m.topics.join(topic, &m.queue, m.profile);
        // Most subscribers join a topic or two: no room for four from the start.
        m.named.reserve_exact(1);
        m.named.push(joined);
        true
    }

    /// Unsubscribes from `topic`; `false` if not subscribed. Messages of it already queued
    /// are still delivered.
    pub fn unsubscribe(&mut self, topic: &str) -> bool {
        let m = &mut self.member;
        let Some(i) = m.named.iter().position(|(k, _, _)| &**k == topic) else {
            return false;
        };
        let (key, t, slot) = m.named.swap_remove(i);
        m.topics.leave(&key, &t, slot, m.profile);
        if m.named.is_empty() {
            m.named = Vec::new();
        }
        true
    }

    /// Whether subscribed to `topic`.
    pub fn is_subscribed(&self, topic: &str) -> bool {
        self.member.named.iter().any(|(k, _, _)| &**k == topic)
    }

    /// The named topics subscribed to.
    pub fn topics(&self) -> impl Iterator<Item = &str> + '_ {
        self.member.named.iter().map(|(k, _, _)| &**k)
    }

    /// The registry this subscriber belongs to.
    pub fn registry(&self) -> &Topics {
        &self.member.topics
    }

    /// The queue's counters.
    pub fn stats(&self) -> SubscriberStats {
        let st = self.member.queue.lock();
        let (queued, queued_bytes) = st.queued();
        SubscriberStats {
            queued,
            queued_bytes,
            taken: st.taken,
            dropped: st.dropped,
            dropped_bytes: st.dropped_bytes,
            overflowed: matches!(st.end, End::Overflow(_)),
        }
    }

    /// The connection.
    pub fn get_ref(&self) -> &WebSocket<S> {
        &self.ws
    }

    /// The connection, to send messages of its own (they go out in order with the published
    /// ones that were taken before them).
    pub fn get_mut(&mut self) -> &mut WebSocket<S> {
        &mut self.ws
    }

    /// Leaves every topic and gives the connection back. Messages still queued are dropped.
    pub fn into_inner(self) -> WebSocket<S> {
        let Subscriber { ws, member, .. } = self;
        drop(member);
        ws
    }
}

impl<S: AsyncRead + AsyncWrite + Unpin> Subscriber<S> {
    /// Receives the next message from the peer, writing out published messages meanwhile (see
    /// [`WebSocket::recv`]: the same messages, errors and end). Cancel-safe.
    pub async fn recv(&mut self) -> Option<Result<Message, Error>> {
        poll_fn(|cx| self.poll_recv(cx)).await
    }

    /// Polls for the next message. See [`recv`](Self::recv).
    pub fn poll_recv(&mut self, cx: &mut Context<'_>) -> Poll<Option<Result<Message, Error>>> {
        self.drain(cx);
        let r = self.ws.poll_recv(cx);
        if let Poll::Ready(None | Some(Err(_))) = &r {
            // The connection is over: publishers skip it from now on.
            self.member.queue.finish();
        }
        r
    }

    /// Sends a message of its own and flushes it (see [`WebSocket::send`]).
    pub async fn send(&mut self, msg: Message) -> Result<(), Error> {
        self.ws.send(msg).await
    }

    /// Closes the connection (see [`WebSocket::close`]); it takes no more messages.
    pub async fn close(&mut self, frame: Option<CloseFrame>) -> Result<(), Error> {
        self.member.queue.finish();
        self.ws.close(frame).await
    }

    /// Hands queued messages to the connection and writes them, a batch at a time, while the
    /// transport takes them; registers the task to be woken for more.
    fn drain(&mut self, cx: &mut Context<'_>) {
        for _ in 0..ROUNDS {
            // What was handed over goes out first: messages wait in the queue (where the
            // overflow policy applies), not in the write buffer.
            match Pin::new(&mut self.ws.prepared_sink()).poll_flush(cx) {
                Poll::Ready(Ok(())) => {}
                Poll::Ready(Err(_)) => {
                    // The connection has failed; `poll_recv` reports how.
                    self.member.queue.finish();
                    return;
                }
                Poll::Pending => {
                    // The transport wakes us when it takes more; meanwhile only an overflow
                    // close needs waking for.
                    let mut st = self.member.queue.lock();
                    st.park(cx.waker(), false);
                    let end = st.end;
                    drop(st);
                    self.start_overflow_close(end);
                    return;
                }
            }
            let mut batch: [Option<Arc<PreparedMessage>>; BATCH] = std::array::from_fn(|_| None);
            let mut st = self.member.queue.lock();
            let n = st.take(&mut batch, BATCH_BYTES);
            let more = !st.is_empty();
            if !more {
                st.park(cx.waker(), true);
            }
            let end = st.end;
            drop(st);
            self.start_overflow_close(end);
            if n == 0 {
                return;
            }
            let mut sink = self.ws.prepared_sink();
            for (i, m) in batch.iter_mut().take(n).enumerate() {
                let Some(m) = m.take() else { break };
                match Pin::new(&mut sink).poll_ready(cx) {
                    Poll::Ready(Ok(())) => {}
                    Poll::Ready(Err(_)) => {
                        self.member.queue.finish();
                        return;
                    }
                    Poll::Pending => {
                        // A write buffer smaller than a batch, and a transport that takes no
                        // more: the rest goes back to the front of the queue.
                        let rest = std::iter::once(m)
                            .chain(batch[i + 1..n].iter_mut().filter_map(Option::take));
                        let mut st = self.member.queue.lock();
                        st.put_back(rest);
                        st.park(cx.waker(), false);
                        return;
                    }
                }
                if Pin::new(&mut sink).start_send(m).is_err() {
                    // The connection can send no more (closing, closed).
                    self.member.queue.finish();
                    return;
                }
            }
            if !more {
                // `poll_recv` writes it out before it waits for the peer.
                return;
            }
        }
        // More is queued than a few batches: let other tasks run, then go on.
        cx.waker().wake_by_ref();
    }

    /// After an overflow under `Overflow::Close`: starts the close handshake once.
    fn start_overflow_close(&mut self, end: End) {
        let End::Overflow(code) = end else {
            return;
        };
        if self.closing {
            return;
        }
        self.closing = true;
        // Starting a close needs no room in the write buffer (the core queues the frame), so
        // this does not wait for `poll_ready`; a connection already closing refuses, which is
        // fine.
        let _ = Pin::new(&mut self.ws)
            .start_send(Message::Close(Some(CloseFrame::new(code, OVERFLOW_REASON))));
    }
}

impl<S: AsyncRead + AsyncWrite + Unpin> Stream for Subscriber<S> {
    type Item = Result<Message, Error>;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        self.get_mut().poll_recv(cx)
    }
}
