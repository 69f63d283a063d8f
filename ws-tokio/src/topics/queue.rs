//! One subscriber's bounded queue of prepared messages, and what happens when it is full.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::task::Waker;

use ws_proto::{CloseCode, PreparedMessage};

/// What to do with a subscriber whose queue is full when another message is published to it.
///
/// Either way the publisher does not wait: the message is queued, or the subscriber is dropped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Overflow {
    /// Discard what is queued and close the connection with this code: 1008 (policy
    /// violation) or 1013 (try again later), say. A code that may not be sent (1005, 1006,
    /// 1015, ...) is replaced by 1008.
    Close(CloseCode),
    /// Drop the oldest queued messages to make room: for feeds where only the latest value
    /// matters (prices, positions).
    DropOldest,
}

impl Overflow {
    /// [`Overflow::Close`] with 1008 (policy violation): the default.
    pub const CLOSE_POLICY: Overflow = Overflow::Close(CloseCode::POLICY_VIOLATION);
    /// [`Overflow::Close`] with 1013 (try again later).
    pub const CLOSE_TRY_AGAIN: Overflow = Overflow::Close(CloseCode::TRY_AGAIN_LATER);
}

/// The bound on one subscriber's queue and the policy for a full one.
///
/// The queue holds messages published to the subscriber that its connection has not taken
/// yet; each is shared with every other subscriber (an `Arc` of a
/// [`PreparedMessage`]), so a full queue of a slow subscriber pins at most
/// [`max_bytes`](Self::max_bytes) of messages, most of them held for others too.
///
/// ```
/// use ws_tokio::topics::{Overflow, QueueConfig};
///
/// // A price feed: the latest 16 values at most, older ones dropped.
/// let prices = QueueConfig::default()
///     .with_max_messages(16)
///     .with_overflow(Overflow::DropOldest);
/// assert_eq!(prices.max_messages, 16);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct QueueConfig {
    /// Messages the queue holds (at least 1). Default 1024.
    pub max_messages: usize,
    /// Bytes of frames (counted uncompressed) the queue holds: the backpressure limit. An
    /// empty queue takes one message of any size. Default 4 MiB.
    pub max_bytes: usize,
    /// What a full queue does with one more message. Default [`Overflow::CLOSE_POLICY`].
    pub overflow: Overflow,
}

impl Default for QueueConfig {
    fn default() -> Self {
        QueueConfig {
            max_messages: 1024,
            max_bytes: 4 << 20,
            overflow: Overflow::CLOSE_POLICY,
        }
    }
}

impl QueueConfig {
    /// Sets the most messages the queue holds (0 is taken as 1).
    pub fn with_max_messages(mut self, messages: usize) -> Self {
        self.max_messages = messages;
        self
    }

    /// Sets the most bytes of frames the queue holds.
    pub fn with_max_bytes(mut self, bytes: usize) -> Self {
        self.max_bytes = bytes;
        self
    }

    /// Sets what a full queue does.
    pub fn with_overflow(mut self, overflow: Overflow) -> Self {
        self.overflow = overflow;
        self
    }

    /// The limits as used: at least one message; a close code that may be sent.
    pub(super) fn checked(mut self) -> Self {
        self.max_messages = self.max_messages.max(1);
        if let Overflow::Close(code) = self.overflow {
            if !code.is_allowed_on_wire() {
                self.overflow = Overflow::CLOSE_POLICY;
            }
        }
        self
    }
}

/// Capacity a drained queue keeps (so steady publishing allocates nothing); a queue grown past
/// it by a burst gives the rest back once drained.
const KEEP: usize = 16;

/// Where a queue is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum End {
    /// Taking messages.
    Open,
    /// It overflowed under [`Overflow::Close`]: the subscriber closes with this code.
    Overflow(CloseCode),
    /// The connection can send no more (closed, failed, or the subscriber was dropped).
    Gone,
}

/// The outcome of one push.
pub(super) enum Pushed {
    /// Queued; wake the subscriber with this waker, if any.
    Queued(Option<Waker>, usize),
    /// Not queued: the subscriber is closing or gone.
    Refused,
    /// The queue overflowed under [`Overflow::Close`]: this many messages were discarded
    /// (the new one included); wake the subscriber to close.
    Closed(Option<Waker>, usize),
}

#[derive(Debug)]
pub(super) struct State {
    items: VecDeque<Arc<PreparedMessage>>,
    /// Frame bytes in `items`.
    bytes: usize,
    /// The subscriber's task, to wake when there is something for it.
    waker: Option<Waker>,
    /// The subscriber waits for messages: wake it on the next push. (Otherwise it is busy
    /// writing, and the transport wakes it.)
    idle: bool,
    pub(super) end: End,
    pub(super) limits: QueueConfig,
    /// Messages handed to the connection.
    pub(super) taken: u64,
    /// Messages dropped (by [`Overflow::DropOldest`], or discarded at an overflow close).
    pub(super) dropped: u64,
    pub(super) dropped_bytes: u64,
}

/// One subscriber's queue, shared by the publishers and the subscriber.
#[derive(Debug)]
pub(super) struct Queue {
    state: Mutex<State>,
}

impl Queue {
    pub(super) fn new(limits: QueueConfig) -> Queue {
        Queue {
            state: Mutex::new(State {
                items: VecDeque::new(),
                bytes: 0,
                waker: None,
                idle: false,
                end: End::Open,
                limits: limits.checked(),
                taken: 0,
                dropped: 0,
                dropped_bytes: 0,
            }),
        }
    }

    /// The state, locked. (A panic elsewhere while it was held leaves nothing half-done that
    /// matters here: the counters and the queue stay consistent between statements.)
    pub(super) fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Nothing more is taken: the connection cannot send. What is queued is released.
    pub(super) fn finish(&self) {
        let mut st = self.lock();
        if st.end == End::Open {
            st.end = End::Gone;
        }
        st.items = VecDeque::new();
        st.bytes = 0;
        st.waker = None;
    }
}

impl State {
    fn full(&self, len: usize) -> bool {
        self.items.len() >= self.limits.max_messages
            || (!self.items.is_empty() && self.bytes.saturating_add(len) > self.limits.max_bytes)
    }

    /// Queues `msg` (`len` frame bytes), applying the overflow policy when the queue is full.
    pub(super) fn push(&mut self, msg: &Arc<PreparedMessage>, len: usize) -> Pushed {
        if self.end != End::Open {
            return Pushed::Refused;
        }
        let mut dropped = 0;
        if self.full(len) {
            match self.limits.overflow {
                Overflow::DropOldest => {
                    while self.full(len) {
                        let Some(old) = self.items.pop_front() else {
                            break;
                        };
                        let n = old.plain_frame().len();
                        self.bytes -= n;
                        self.dropped += 1;
                        self.dropped_bytes += n as u64;
                        dropped += 1;
                    }
                }
                Overflow::Close(code) => {
                    let n = self.items.len() + 1;
                    self.dropped += n as u64;
                    self.dropped_bytes += (self.bytes + len) as u64;
                    self.items = VecDeque::new();
                    self.bytes = 0;
                    self.end = End::Overflow(code);
                    self.idle = false;
                    return Pushed::Closed(self.waker.take(), n);
                }
            }
        }
        self.items.push_back(msg.clone());
        self.bytes += len;
        let wake = if self.idle {
            self.idle = false;
            self.waker.take()
        } else {
            None
        };
        Pushed::Queued(wake, dropped)
    }

    /// Moves up to `out.len()` messages, and about `max_bytes` (at least one message), into
    /// `out`; how many.
    pub(super) fn take(
        &mut self,
        out: &mut [Option<Arc<PreparedMessage>>],
        max_bytes: usize,
    ) -> usize {
        let mut n = 0;
        let mut bytes = 0;
        while n < out.len() {
            let Some(front) = self.items.front() else {
                break;
            };
            let len = front.plain_frame().len();
            if n > 0 && bytes + len > max_bytes {
                break;
            }
            bytes += len;
            out[n] = self.items.pop_front();
            n += 1;
        }
        self.bytes -= bytes;
        self.taken += n as u64;
        if self.items.is_empty() && self.items.capacity() > KEEP {
            self.items.shrink_to(KEEP);
        }
        n
    }

    /// Puts messages taken but not handed over back at the front, in order (unless the
    /// queue has ended meanwhile).
    pub(super) fn put_back(
        &mut self,
        items: impl DoubleEndedIterator<Item = Arc<PreparedMessage>>,
    ) {
        if self.end != End::Open {
            return;
        }
        for m in items.rev() {
            self.bytes += m.plain_frame().len();
            self.taken -= 1;
            self.items.push_front(m);
        }
    }

    /// Whether nothing is queued.
    pub(super) fn is_empty(&self) -> bool {
        self.items.is_empty()
    }

    /// Messages and bytes queued.
    pub(super) fn queued(&self) -> (usize, usize) {
        (self.items.len(), self.bytes)
    }

    /// Registers the subscriber's task: `idle`, it waits for messages (wake it on a push);
    /// otherwise only an overflow close wakes it.
    pub(super) fn park(&mut self, waker: &Waker, idle: bool) {
        self.idle = idle;
        match &self.waker {
            Some(w) if w.will_wake(waker) => {}
            _ => self.waker = Some(waker.clone()),
        }
    }
}
