//! Publish/subscribe over WebSocket connections: named topics, a bounded queue per
//! subscriber, and every message framed (and compressed) once for all its recipients.
//!
//! A [`Topics`] registry is shared by every connection of a server (it is a cheap handle:
//! clone it into each task). A connection becomes a [`Subscriber`] with
//! [`Topics::subscriber`]; it can then [`subscribe`](Subscriber::subscribe) to named topics
//! and [`unsubscribe`](Subscriber::unsubscribe). [`Topics::publish`] sends a message to every
//! subscriber of a topic, [`Topics::publish_all`] to every subscriber.
//!
//! - **Once per message, not per recipient.** A published message becomes one
//!   [`PreparedMessage`]: framed once, and with permessage-deflate compressed once per
//!   distinct window among the topic's subscribers (the registry keeps count of them). Each
//!   subscriber's queue gets an `Arc` of it, and its connection writes the shared bytes.
//! - **Publishing never waits.** It puts the message in each subscriber's bounded queue
//!   and wakes the subscriber's task, holding no lock while anything is written or woken. A
//!   subscriber whose queue is full is handled by its [`Overflow`] policy: closed with 1008 or
//!   1013, or its oldest messages dropped (latest-value feeds), with counters of what was
//!   dropped ([`Subscriber::stats`], [`Topics::stats`]).
//! - **The subscriber's own task writes.** [`Subscriber::recv`] writes out what its queue
//!   holds while it waits for the peer: everything that queued up since the last write goes
//!   out in one vectored write (a burst of 100 messages costs a system call or two per
//!   subscriber, not 100). Keep calling `recv` (or polling the `Stream`), as with any
//!   [`WebSocket`].
//!
//! With permessage-deflate on its defaults ([`DeflateConfig::DEFAULT`](crate::DeflateConfig::DEFAULT))
//! a connection keeps no compressor (nor, as the client is asked not to keep context, a
//! decompressor between messages) of its own, and takes the variant compressed once for its
//! window. A connection with a compressor of
//! its own takes the shared variant too (its compressor forgets its context after it).
//!
//! ```no_run
//! use ws_tokio::topics::Topics;
//! use ws_tokio::Message;
//!
//! # async fn run() -> std::io::Result<()> {
//! let topics = Topics::default();
//! let listener = tokio::net::TcpListener::bind("127.0.0.1:9002").await?;
//! loop {
//!     let (tcp, _) = listener.accept().await?;
//!     let topics = topics.clone();
//!     tokio::spawn(async move {
//!         let Ok(ws) = ws_tokio::accept(tcp).await else { return };
//!         let mut sub = topics.subscriber(ws);
//!         sub.subscribe("news");
//!         // Every text message a client sends goes to every subscriber of "news".
//!         while let Some(Ok(msg)) = sub.recv().await {
//!             if let Message::Text(_) = msg {
//!                 let _ = topics.publish("news", msg);
//!             }
//!         }
//!     });
//! }
//! # }
//! ```

use std::cell::RefCell;
use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, PoisonError, RwLock, RwLockReadGuard, RwLockWriteGuard};
use std::task::Waker;

use ws_proto::{Message, PreparedMessage, SharedCompression};

use crate::error::Error;

mod queue;
mod subscriber;

pub use queue::{Overflow, QueueConfig};
pub use subscriber::{Subscriber, SubscriberStats};

use queue::{Pushed, Queue};

#[cfg(doc)]
use crate::WebSocket;

/// A registry of topics and their subscribers (see the [module documentation](self)). Clones
/// share one registry.
#[derive(Clone, Debug, Default)]
pub struct Topics {
    inner: Arc<Registry>,
}

/// What one publish did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct Published {
    /// Subscribers whose queue took the message.
    pub queued: usize,
    /// Messages dropped to make room or discarded at an overflow close (the new one
    /// included when it was not queued).
    pub dropped: usize,
    /// Subscribers closed because their queue overflowed.
    pub closed: usize,
    /// Compressed variants made (one per distinct window among the compressing subscribers,
    /// unless the message had it already).
    pub compressed: usize,
}

/// Counters of a registry, since it was made.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct TopicsStats {
    /// Subscribers now attached.
    pub subscribers: usize,
    /// Named topics with at least one subscriber.
    pub topics: usize,
    /// Messages published to at least one subscriber.
    pub published: u64,
    /// Messages put in a subscriber's queue (one per subscriber per message).
    pub queued: u64,
    /// Messages dropped by [`Overflow::DropOldest`] or discarded at an overflow close.
    pub dropped: u64,
    /// Subscribers closed because their queue overflowed.
    pub closed: u64,
}

#[derive(Debug, Default)]
struct Registry {
    queue: QueueConfig,
    named: RwLock<HashMap<Arc<str>, Arc<Topic>>>,
    /// Every subscriber.
    all: Topic,
    subscribers: AtomicUsize,
    published: AtomicU64,
    queued: AtomicU64,
    dropped: AtomicU64,
    closed: AtomicU64,
}

/// A topic: its subscribers' queues, and how messages must be compressed for them.
#[derive(Debug, Default)]
struct Topic {
    members: RwLock<Members>,
    /// The last subscriber left: the topic is out of the registry (or about to be), and takes
    /// no more subscribers. Only written with `members` locked.
    dead: AtomicBool,
}

#[derive(Debug, Default)]
struct Members {
    /// Subscribers by slot; `None` for a free slot.
    slots: Vec<Option<Arc<Queue>>>,
    free: Vec<u32>,
    len: usize,
    /// How the subscribers compress, with how many of them compress that way.
    profiles: Vec<(SharedCompression, usize)>,
}

impl Members {
    fn insert(&mut self, q: Arc<Queue>, profile: Option<SharedCompression>) -> u32 {
        self.len += 1;
        if let Some(p) = profile {
            match self.profiles.iter_mut().find(|(c, _)| *c == p) {
                Some((_, n)) => *n += 1,
                None => self.profiles.push((p, 1)),
            }
        }
        match self.free.pop() {
            Some(slot) => {
                self.slots[slot as usize] = Some(q);
                slot
            }
            None => {
                self.slots.push(Some(q));
                (self.slots.len() - 1) as u32
            }
        }
    }

    fn remove(&mut self, slot: u32, profile: Option<SharedCompression>) {
        let Some(entry) = self.slots.get_mut(slot as usize) else {
            return;
        };
        if entry.take().is_none() {
            return;
        }
        self.len -= 1;
        if let Some(p) = profile {
            if let Some(i) = self.profiles.iter().position(|(c, _)| *c == p) {
                self.profiles[i].1 -= 1;
                if self.profiles[i].1 == 0 {
                    self.profiles.swap_remove(i);
                }
            }
        }
        if self.len == 0 {
            self.slots = Vec::new();
            self.free = Vec::new();
        } else if slot as usize + 1 == self.slots.len() {
            self.slots.pop();
        } else {
            self.free.push(slot);
        }
    }
}

thread_local! {
    /// Wakers collected during a publish, woken once no lock is held (kept for the next).
    static WAKE: RefCell<Vec<Waker>> = const { RefCell::new(Vec::new()) };
}

fn read<T>(l: &RwLock<T>) -> RwLockReadGuard<'_, T> {
    l.read().unwrap_or_else(PoisonError::into_inner)
}

fn write<T>(l: &RwLock<T>) -> RwLockWriteGuard<'_, T> {
    l.write().unwrap_or_else(PoisonError::into_inner)
}

impl Topics {
    /// A registry whose subscribers get queues bounded by `queue` (unless one is given to
    /// [`subscriber_with`](Self::subscriber_with)).
    pub fn new(queue: QueueConfig) -> Topics {
        Topics {
            inner: Arc::new(Registry {
                queue: queue.checked(),
                ..Registry::default()
            }),
        }
    }

    /// The queue bound subscribers get by default.
    pub fn queue_config(&self) -> QueueConfig {
        self.inner.queue
    }

    /// Makes `ws` a subscriber, of no named topic yet (but of [`publish_all`](Self::publish_all)),
    /// with the registry's queue bound.
    pub fn subscriber<S>(&self, ws: crate::WebSocket<S>) -> Subscriber<S> {
        self.subscriber_with(ws, self.inner.queue)
    }

    /// [`subscriber`](Self::subscriber) with a queue bound of its own.
    pub fn subscriber_with<S>(&self, ws: crate::WebSocket<S>, queue: QueueConfig) -> Subscriber<S> {
        Subscriber::new(self.clone(), ws, queue)
    }

    /// Sends a text or binary message to every subscriber of `topic` (none: nothing happens).
    /// Anything else is `Error::Usage(Usage::NotData)`. Never waits: see
    /// [`publish_prepared`](Self::publish_prepared).
    pub fn publish(&self, topic: &str, message: Message) -> Result<Published, Error> {
        let Some(t) = self.topic(topic) else {
            // Check the message all the same, so that a mistake shows without subscribers.
            PreparedMessage::new(message).map_err(Error::from_proto)?;
            return Ok(Published::default());
        };
        let prepared = PreparedMessage::new(message).map_err(Error::from_proto)?;
        Ok(self.deliver(&t, prepared))
    }

    /// Sends a prepared message to every subscriber of `topic`: it is compressed here for each
    /// window the topic's compressing subscribers need that it has no variant for, then each
    /// queue gets an `Arc` of it. Full queues are handled by their [`Overflow`] policy.
    pub fn publish_prepared(&self, topic: &str, message: PreparedMessage) -> Published {
        match self.topic(topic) {
            Some(t) => self.deliver(&t, message),
            None => Published::default(),
        }
    }

    /// [`publish`](Self::publish) to every subscriber.
    pub fn publish_all(&self, message: Message) -> Result<Published, Error> {
        let prepared = PreparedMessage::new(message).map_err(Error::from_proto)?;
        Ok(self.deliver(&self.inner.all, prepared))
    }

    /// [`publish_prepared`](Self::publish_prepared) to every subscriber.
    pub fn publish_all_prepared(&self, message: PreparedMessage) -> Published {
        self.deliver(&self.inner.all, message)
    }

    /// Subscribers of `topic`.
    pub fn subscribers(&self, topic: &str) -> usize {
        self.topic(topic).map_or(0, |t| read(&t.members).len)
    }

    /// The registry's counters.
    pub fn stats(&self) -> TopicsStats {
        let r = &*self.inner;
        TopicsStats {
            subscribers: r.subscribers.load(Ordering::Relaxed),
            topics: read(&r.named).len(),
            published: r.published.load(Ordering::Relaxed),
            queued: r.queued.load(Ordering::Relaxed),
            dropped: r.dropped.load(Ordering::Relaxed),
            closed: r.closed.load(Ordering::Relaxed),
        }
    }

    fn topic(&self, name: &str) -> Option<Arc<Topic>> {
        read(&self.inner.named).get(name).cloned()
    }

    /// Compresses `msg` as the topic's subscribers need, queues it for each, then wakes the
    /// ones waiting (with no lock held).
    fn deliver(&self, topic: &Topic, mut msg: PreparedMessage) -> Published {
        let mut report = Published::default();
        let members = read(&topic.members);
        if members.len == 0 {
            return report;
        }
        let mut wake = WAKE.with(|w| std::mem::take(&mut *w.borrow_mut()));
        for (p, _) in &members.profiles {
            let bits = p.window_bits.clamp(9, 15);
            if msg.payload().len() >= p.min_size && !msg.compressed_windows().any(|w| w == bits) {
                // A failure leaves the variant out: those subscribers get the plain frame.
                let made = crate::engine::with_compressor(p.level, |c| msg.compress(c, bits));
                report.compressed += usize::from(made.is_ok());
            }
        }
        let len = msg.plain_frame().len();
        let msg = Arc::new(msg);
        for q in members.slots.iter().flatten() {
            let pushed = q.lock().push(&msg, len);
            match pushed {
                Pushed::Queued(w, dropped) => {
                    report.queued += 1;
                    report.dropped += dropped;
                    wake.extend(w);
                }
                Pushed::Closed(w, dropped) => {
                    report.closed += 1;
                    report.dropped += dropped;
                    wake.extend(w);
                }
                Pushed::Refused => {}
            }
        }
        // The wakes come with no lock held: a woken task may drop its subscriber at once.
        drop(members);
        for w in wake.drain(..) {
            w.wake();
        }
        WAKE.with(|w| {
            let mut kept = w.borrow_mut();
            if kept.capacity() < wake.capacity() {
                *kept = wake;
            }
        });
        let r = &*self.inner;
        r.published.fetch_add(1, Ordering::Relaxed);
        r.queued.fetch_add(report.queued as u64, Ordering::Relaxed);
        if report.dropped > 0 {
            r.dropped
                .fetch_add(report.dropped as u64, Ordering::Relaxed);
        }
        if report.closed > 0 {
            r.closed.fetch_add(report.closed as u64, Ordering::Relaxed);
        }
        report
    }

    /// Adds a subscriber's queue to the registry's every-subscriber list.
    fn attach(&self, q: &Arc<Queue>, profile: Option<SharedCompression>) -> u32 {
        self.inner.subscribers.fetch_add(1, Ordering::Relaxed);
        write(&self.inner.all.members).insert(q.clone(), profile)
    }

    fn detach(&self, slot: u32, profile: Option<SharedCompression>) {
        write(&self.inner.all.members).remove(slot, profile);
        self.inner.subscribers.fetch_sub(1, Ordering::Relaxed);
    }

    /// Adds a queue to the topic `name` (made if need be); the topic and the slot.
    fn join(
        &self,
        name: &str,
        q: &Arc<Queue>,
        profile: Option<SharedCompression>,
    ) -> (Arc<str>, Arc<Topic>, u32) {
        loop {
            let found = read(&self.inner.named)
                .get_key_value(name)
                .filter(|(_, t)| !t.dead.load(Ordering::Acquire))
                .map(|(k, t)| (k.clone(), t.clone()));
            let (key, topic) = match found {
                Some(f) => f,
                None => {
                    let mut named = write(&self.inner.named);
                    match named.get_key_value(name) {
                        Some((k, t)) if !t.dead.load(Ordering::Acquire) => (k.clone(), t.clone()),
                        _ => {
                            let key: Arc<str> = Arc::from(name);
                            let t = Arc::new(Topic::default());
                            named.insert(key.clone(), t.clone());
                            (key, t)
                        }
                    }
                }
            };
            let mut members = write(&topic.members);
            if topic.dead.load(Ordering::Acquire) {
                // Its last subscriber left after we found it: look again.
                continue;
            }
            let slot = members.insert(q.clone(), profile);
            drop(members);
            return (key, topic, slot);
        }
    }

    /// Takes a queue out of a topic; the last one out takes the topic out of the registry.
    fn leave(
        &self,
        key: &Arc<str>,
        topic: &Arc<Topic>,
        slot: u32,
        profile: Option<SharedCompression>,
    ) {
        let mut members = write(&topic.members);
        members.remove(slot, profile);
        let empty = members.len == 0;
        if empty {
            topic.dead.store(true, Ordering::Release);
        }
        drop(members);
        if empty {
            let mut named = write(&self.inner.named);
            if named.get(key).is_some_and(|t| Arc::ptr_eq(t, topic)) {
                named.remove(key);
            }
        }
    }
}
