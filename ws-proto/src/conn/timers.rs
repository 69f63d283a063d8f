//! Deadlines on the caller's clock: keepalive pings, the pong deadline, the idle timeout and
//! the close deadline.

use core::num::{NonZeroU32, NonZeroU64};

use super::{Connection, State};
use crate::error::{Error, TimeoutKind};

/// A deadline in the caller's milliseconds, kept inverted so that `Option<Deadline>` takes 8
/// bytes instead of 16.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Deadline(NonZeroU64);

impl Deadline {
    /// The deadline `after` milliseconds from `now`, saturating (`u64::MAX`, which never
    /// comes, is held as `u64::MAX - 1`).
    pub(super) fn after(now: u64, after: u64) -> Deadline {
        let ms = now.saturating_add(after).min(u64::MAX - 1);
        // `!ms` is at least 1 once `ms` is below `u64::MAX`.
        Deadline(NonZeroU64::new(!ms).unwrap_or(NonZeroU64::MIN))
    }

    pub(super) fn ms(self) -> u64 {
        !self.0.get()
    }

    fn due(d: Option<Deadline>, now: u64) -> bool {
        d.is_some_and(|d| d.ms() <= now)
    }
}

/// The connection's deadlines.
#[derive(Debug, Clone, Copy)]
pub(super) struct Timers {
    next_ping: Option<Deadline>,
    pong: Option<Deadline>,
    /// While closing: the peer's close frame is due (we closed first), or its end of the
    /// transport (the handshake is over or failed).
    close: Option<Deadline>,
    /// When something last arrived, for the idle timeout.
    last_heard: u64,
    /// The message being received must be complete by then.
    message: Option<Deadline>,
    /// The connection closes (1001) then: its maximum lifetime.
    lifetime: Option<Deadline>,
    /// Receiving is held back by the rate limits until then.
    paused: Option<Deadline>,
    ping_seq: u32,
}

impl Timers {
    pub(super) fn new(now: u64, ping: Option<NonZeroU32>, lifetime: Option<u64>) -> Timers {
        Timers {
            next_ping: ping.map(|p| Deadline::after(now, p.get().into())),
            pong: None,
            close: None,
            last_heard: now,
            message: None,
            lifetime: lifetime.map(|l| Deadline::after(now, l)),
            paused: None,
            ping_seq: 0,
        }
    }

    /// A message began at `now`: it must be complete within `timeout` (if set).
    pub(super) fn message_started(&mut self, now: u64, timeout: Option<NonZeroU32>) {
        self.message = timeout.map(|t| Deadline::after(now, t.get().into()));
    }

    pub(super) fn message_ended(&mut self) {
        self.message = None;
    }

    /// Holds receiving back until `until`.
    pub(super) fn pause(&mut self, until: u64) {
        self.paused = Some(Deadline::after(until, 0));
    }

    /// The pause, if it still holds at `now`.
    pub(super) fn paused_at(&mut self, now: u64) -> bool {
        if Deadline::due(self.paused, now) {
            self.paused = None;
        }
        self.paused.is_some()
    }

    pub(super) fn paused(&self) -> Option<u64> {
        self.paused.map(Deadline::ms)
    }

    /// A frame began to arrive at `now`: the peer is alive.
    pub(super) fn heard(&mut self, now: u64) {
        self.last_heard = now;
        self.pong = None;
    }

    pub(super) fn set_close(&mut self, now: u64, timeout: u32) {
        self.close = Some(Deadline::after(now, timeout.into()));
    }
}

impl Connection {
    /// Advances time to `now` and acts on every deadline that has come: queues a keepalive
    /// ping; fails the connection when nothing arrived within the pong timeout after a ping,
    /// or (if set) within the idle timeout; gives up on a peer that did not answer our close
    /// frame in time; ends the wait for the peer's EOF. Returns the error that failed the
    /// connection, if a deadline failed it now.
    pub fn handle_timeout(&mut self, now: u64) -> Result<(), Error> {
        let t = &mut self.life.timers;
        match self.life.state {
            State::Terminated => Ok(()),
            State::Open | State::ClosedByUs if Deadline::due(t.message, now) => {
                Err(self.fail(now, Error::Timeout(TimeoutKind::Message)))
            }
            State::Open => {
                t.paused_at(now);
                if Deadline::due(t.pong, now) {
                    return Err(self.fail(now, Error::Timeout(TimeoutKind::Pong)));
                }
                if Deadline::due(t.lifetime, now) {
                    // The end of the connection's life: a close like the application's.
                    t.lifetime = None;
                    let _ = self.close(now, Some(crate::close::CloseCode::GOING_AWAY), "");
                    return Ok(());
                }
                if let Some(idle) = self.life.timing.idle {
                    if t.last_heard.saturating_add(idle.get().into()) <= now {
                        return Err(self.fail(now, Error::Timeout(TimeoutKind::Idle)));
                    }
                }
                if let (Some(interval), true) =
                    (self.life.timing.ping, Deadline::due(t.next_ping, now))
                {
                    t.ping_seq = t.ping_seq.wrapping_add(1);
                    self.life.out.ping = Some(u64::from(t.ping_seq).to_be_bytes());
                    if t.pong.is_none() {
                        t.pong = Some(Deadline::after(now, self.life.timing.pong.into()));
                    }
                    t.next_ping = Some(Deadline::after(now, interval.get().into()));
                }
                Ok(())
            }
            State::ClosedByUs if Deadline::due(t.close, now) => {
                Err(self.fail(now, Error::Timeout(TimeoutKind::Close)))
            }
            State::ClosedByUs => {
                t.paused_at(now);
                Ok(())
            }
            _ => {
                if Deadline::due(t.close, now) {
                    // The peer did not end the transport in time: end it ourselves.
                    self.life.state = State::Terminated;
                }
                Ok(())
            }
        }
    }

    /// The next time [`handle_timeout`](Self::handle_timeout) must be called at, if any.
    pub fn poll_timeout(&self) -> Option<u64> {
        let t = &self.life.timers;
        match self.life.state {
            State::Terminated => None,
            State::Open => {
                let idle = self
                    .life
                    .timing
                    .idle
                    .map(|i| t.last_heard.saturating_add(i.get().into()));
                [t.next_ping, t.pong, t.message, t.lifetime, t.paused]
                    .into_iter()
                    .flatten()
                    .map(Deadline::ms)
                    .chain(idle)
                    .min()
            }
            State::ClosedByUs => [t.close, t.message, t.paused]
                .into_iter()
                .flatten()
                .map(Deadline::ms)
                .min(),
            _ => t.close.map(Deadline::ms),
        }
    }
}
