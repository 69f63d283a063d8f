//! Rate limits on what a peer sends: token buckets on the injected clock.
//!
//! Time is plain milliseconds, as everywhere in this crate (see
//! [`Connection::handle_timeout`](crate::Connection::handle_timeout)); nothing here allocates
//! or uses floating point, so it runs the same on a Cortex-M3 as on a server.
//!
//! A [`RateLimiter`] holds up to two [`TokenBucket`]s, one counting messages and one counting
//! payload bytes, built from a [`RateLimits`] config (off by default). The connection asks it
//! with [`RateLimiter::admit`] for every message it receives:
//!
//! - [`Admit::Ok`]: within the limits, the tokens are taken;
//! - [`Admit::Wait`] (with [`OverLimit::Backpressure`]): hold the message and stop reading
//!   until `until`, then ask again, which then succeeds (unless the clock went backwards);
//! - [`Admit::Violation`] (with [`OverLimit::Close`]): close with [`VIOLATION_CLOSE_CODE`]
//!   (1008, policy violation).
//!
//! # Messages larger than the byte burst
//!
//! A bucket never holds more than its burst, so a message larger than the burst could never be
//! paid for in full. Such a message is admitted when the bucket is full and not in debt; what
//! it costs beyond the burst becomes debt, which the refill pays back before anything else is
//! admitted. The connection is never wedged, and the long-run rate still holds: with 1 MiB/s
//! and a 64 KiB burst, a 10 MiB message passes once the bucket is full and the next message
//! waits about 10 s. Over any stretch of time the admitted cost is at most
//! `rate * t + max(burst, largest message)`, and at most `rate * t + burst` when no message is
//! larger than the burst.
//!
//! ```
//! use ws_proto::rate::{Admit, OverLimit, RateLimiter, RateLimits};
//!
//! // 10 messages/s with bursts of 5; 1000 bytes/s with bursts of 2000; wait when over.
//! let limits = RateLimits::default()
//!     .with_messages(10, 5)
//!     .with_bytes(1000, 2000)
//!     .with_over_limit(OverLimit::Backpressure);
//! let mut limiter = RateLimiter::new(&limits, 0).unwrap();
//! assert_eq!(limiter.admit(0, 1500), Admit::Ok);
//! // 500 bytes left: 1000 more take 500 ms to refill.
//! assert_eq!(limiter.admit(0, 1000), Admit::Wait { until: 500 });
//! assert_eq!(limiter.ready_at(1000), Some(500));
//! assert_eq!(limiter.admit(500, 1000), Admit::Ok);
//! ```

use core::num::NonZeroU64;

use crate::close::CloseCode;
use crate::error::{Error, Usage};

/// Milli-tokens per token. A rate of `r` tokens per second adds exactly `r` milli-tokens per
/// millisecond, so refills need no division and never round.
const SCALE: u64 = 1000;

/// The largest rate (tokens per second) or burst (tokens) a bucket holds; larger values are
/// clamped to it. About 1.8e16: 18 PB/s, far above anything a link carries.
pub const MAX_TOKENS: u64 = u64::MAX / SCALE;

/// The close code for [`Admit::Violation`]: 1008, policy violation.
pub const VIOLATION_CLOSE_CODE: CloseCode = CloseCode::POLICY_VIOLATION;

/// A token bucket: holds up to `burst` tokens, refills at `per_second` tokens per second on the
/// caller's millisecond clock, and starts full.
///
/// Integer arithmetic only: tokens are counted in thousandths, so one millisecond adds exactly
/// `per_second` thousandths. Every operation saturates instead of overflowing, for any `now`
/// and any cost. Time that goes backwards adds nothing, and the bucket keeps counting from the
/// latest time it saw (a clock stepped back by `d` waits `d` longer: it never admits more than
/// the rate).
///
/// A cost larger than the burst is admitted when the bucket is full and leaves the excess as
/// debt (see the [module documentation](self)).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TokenBucket {
    /// Milli-tokens available, at most `capacity`; zero while `debt` is non-zero.
    level: u64,
    /// Milli-tokens owed by an admission larger than the capacity.
    debt: u64,
    /// The burst, in milli-tokens.
    capacity: u64,
    /// Milli-tokens added per millisecond (= tokens per second).
    rate: NonZeroU64,
    /// The latest time seen, in milliseconds; the level is as of this time.
    last: u64,
}

impl TokenBucket {
    /// A full bucket of `burst` tokens refilling at `per_second` tokens per second, as of `now`.
    ///
    /// Values above [`MAX_TOKENS`] are clamped to it. A `burst` of 0 admits each cost only when
    /// the previous one is paid back (no burst at all). Errors with
    /// `Error::InvalidUsage(Usage::InvalidConfig)` when `per_second` is 0 (a bucket that never
    /// refills would wedge the connection).
    pub fn new(per_second: u64, burst: u64, now: u64) -> Result<TokenBucket, Error> {
        let rate = NonZeroU64::new(per_second.min(MAX_TOKENS))
            .ok_or(Error::InvalidUsage(Usage::InvalidConfig))?;
        let capacity = burst.min(MAX_TOKENS) * SCALE;
        Ok(TokenBucket {
            level: capacity,
            debt: 0,
            capacity,
            rate,
            last: now,
        })
    }

    /// Takes `cost` tokens at `now` if they are there (a cost above the burst: if the bucket is
    /// full), else takes nothing and returns the time at which they will be.
    ///
    /// The deadline is exact: a `take` of the same cost at that time succeeds, one millisecond
    /// earlier it fails (unless something else was taken in between). It is `u64::MAX` when it
    /// lies beyond the clock's range.
    pub fn take(&mut self, now: u64, cost: u64) -> Result<(), u64> {
        self.refill(now);
        match self.ready_at(cost) {
            None => {
                self.commit(cost);
                Ok(())
            }
            Some(until) => Err(until),
        }
    }

    /// When `take` of `cost` will succeed, or `None` when it would succeed now (at any time
    /// not before the latest one this bucket saw). Looks at the bucket as of its latest
    /// `take`; time passing in between does not change the answer, which is an absolute time.
    pub fn ready_at(&self, cost: u64) -> Option<u64> {
        let deficit = self.deficit(cost);
        if deficit == 0 {
            None
        } else {
            Some(self.last.saturating_add(deficit.div_ceil(self.rate.get())))
        }
    }

    /// Whole tokens available as of the latest time seen (0 while in debt).
    pub fn available(&self) -> u64 {
        self.level / SCALE
    }

    /// Whole tokens owed by an admission larger than the burst, rounded up.
    pub fn debt(&self) -> u64 {
        self.debt.div_ceil(SCALE)
    }

    /// The burst: the most tokens the bucket holds.
    pub fn burst(&self) -> u64 {
        self.capacity / SCALE
    }

    /// The refill rate, in tokens per second.
    pub fn per_second(&self) -> u64 {
        self.rate.get()
    }

    /// Adds what the time since the latest time seen brings: first to the debt, then to the
    /// level, up to the capacity.
    fn refill(&mut self, now: u64) {
        if now <= self.last {
            return;
        }
        let gained = (now - self.last).saturating_mul(self.rate.get());
        self.last = now;
        if gained >= self.debt {
            let rest = gained - self.debt;
            self.debt = 0;
            self.level = self.level.saturating_add(rest).min(self.capacity);
        } else {
            self.debt -= gained;
        }
    }

    /// Milli-tokens missing before `cost` can be taken: 0 when it can be taken now.
    fn deficit(&self, cost: u64) -> u64 {
        // A cost above the capacity needs a full bucket.
        let needed = cost.saturating_mul(SCALE).min(self.capacity);
        // While in debt the level is 0, so this is debt + needed, at most the cost that made
        // the debt: no overflow, saturating all the same.
        self.debt.saturating_add(needed.saturating_sub(self.level))
    }

    /// Takes `cost` tokens; `deficit(cost)` must be 0.
    fn commit(&mut self, cost: u64) {
        let cost = cost.saturating_mul(SCALE);
        if cost <= self.level {
            self.level -= cost;
        } else {
            // Larger than the capacity, from a full bucket: the rest is debt.
            self.debt = cost - self.level;
            self.level = 0;
        }
    }
}

/// What happens when a message is over a rate limit.
#[non_exhaustive]
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum OverLimit {
    /// Stop reading until the tokens are back ([`Admit::Wait`]): the peer is slowed down by
    /// TCP flow control. The default.
    #[default]
    Backpressure,
    /// Close the connection with 1008, policy violation ([`Admit::Violation`]).
    Close,
}

/// One limit: a refill rate and a burst.
#[non_exhaustive]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rate {
    /// Tokens added per second (messages or bytes); at least 1.
    pub per_second: u64,
    /// The most tokens that can be spent at once after a quiet period.
    pub burst: u64,
}

impl Rate {
    /// `per_second` tokens per second with bursts of `burst`.
    pub const fn new(per_second: u64, burst: u64) -> Rate {
        Rate { per_second, burst }
    }
}

/// Rate limits on received messages: a message rate, a byte rate, and what happens over them.
///
/// Off by default (`RateLimits::default()` limits nothing).
///
/// ```
/// use ws_proto::rate::{OverLimit, RateLimits};
/// let limits = RateLimits::default()
///     .with_messages(100, 200)           // 100 messages/s, bursts of 200
///     .with_bytes(1 << 20, 4 << 20)      // 1 MiB/s, bursts of 4 MiB
///     .with_over_limit(OverLimit::Close); // close with 1008 when over
/// assert!(limits.validate().is_ok());
/// ```
#[non_exhaustive]
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RateLimits {
    /// Messages per second, with a burst; `None`: no message limit.
    pub messages: Option<Rate>,
    /// Payload bytes per second, with a burst; `None`: no byte limit.
    pub bytes: Option<Rate>,
    /// What happens over a limit.
    pub over_limit: OverLimit,
}

impl RateLimits {
    /// No limits (the default), usable in `const` context.
    pub const OFF: RateLimits = RateLimits {
        messages: None,
        bytes: None,
        over_limit: OverLimit::Backpressure,
    };

    /// Limits messages to `per_second` per second with bursts of `burst`.
    pub const fn with_messages(mut self, per_second: u64, burst: u64) -> Self {
        self.messages = Some(Rate::new(per_second, burst));
        self
    }

    /// Limits payload bytes to `per_second` per second with bursts of `burst`.
    pub const fn with_bytes(mut self, per_second: u64, burst: u64) -> Self {
        self.bytes = Some(Rate::new(per_second, burst));
        self
    }

    /// Chooses what happens over a limit.
    pub const fn with_over_limit(mut self, over_limit: OverLimit) -> Self {
        self.over_limit = over_limit;
        self
    }

    /// True when nothing is limited.
    pub const fn is_off(&self) -> bool {
        self.messages.is_none() && self.bytes.is_none()
    }

    /// Checks that the limits make sense: every rate at least 1 per second.
    pub fn validate(&self) -> Result<(), Error> {
        let ok = |r: Option<Rate>| r.is_none_or(|r| r.per_second > 0);
        if ok(self.messages) && ok(self.bytes) {
            Ok(())
        } else {
            Err(Error::InvalidUsage(Usage::InvalidConfig))
        }
    }
}

/// The answer of [`RateLimiter::admit`].
#[non_exhaustive]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Admit {
    /// Within the limits; the tokens were taken.
    Ok,
    /// Over a limit with [`OverLimit::Backpressure`]: nothing was taken. Hold the message, stop
    /// reading, and ask again at `until` (milliseconds, on the clock passed in), when it will be
    /// admitted.
    Wait {
        /// When the tokens will be there.
        until: u64,
    },
    /// Over a limit with [`OverLimit::Close`]: nothing was taken. Close the connection with
    /// [`VIOLATION_CLOSE_CODE`] (1008).
    Violation,
}

/// The rate limits of one connection: a message bucket and a byte bucket, each optional.
///
/// 88 bytes, no allocation. See the [module documentation](self).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RateLimiter {
    messages: Option<TokenBucket>,
    bytes: Option<TokenBucket>,
    over_limit: OverLimit,
}

impl RateLimiter {
    /// A limiter for `limits` with full buckets as of `now`.
    ///
    /// Errors with `Error::InvalidUsage(Usage::InvalidConfig)` when
    /// [`RateLimits::validate`] does.
    pub fn new(limits: &RateLimits, now: u64) -> Result<RateLimiter, Error> {
        let bucket = |r: Option<Rate>| {
            r.map(|r| TokenBucket::new(r.per_second, r.burst, now))
                .transpose()
        };
        Ok(RateLimiter {
            messages: bucket(limits.messages)?,
            bytes: bucket(limits.bytes)?,
            over_limit: limits.over_limit,
        })
    }

    /// Asks to admit one message of `bytes` payload bytes at `now`: takes one message token and
    /// `bytes` byte tokens if both are there, else takes nothing (both or neither).
    pub fn admit(&mut self, now: u64, bytes: u64) -> Admit {
        self.admit_cost(now, 1, bytes)
    }

    /// Like [`admit`](Self::admit), for `messages` message tokens (0 for the continuation
    /// frames of a message already counted).
    pub fn admit_cost(&mut self, now: u64, messages: u64, bytes: u64) -> Admit {
        if let Some(b) = &mut self.messages {
            b.refill(now);
        }
        if let Some(b) = &mut self.bytes {
            b.refill(now);
        }
        let m = self.messages.as_ref().and_then(|b| b.ready_at(messages));
        let b = self.bytes.as_ref().and_then(|b| b.ready_at(bytes));
        match m.max(b) {
            None => {
                if let Some(b) = &mut self.messages {
                    b.commit(messages);
                }
                if let Some(b) = &mut self.bytes {
                    b.commit(bytes);
                }
                Admit::Ok
            }
            Some(until) => match self.over_limit {
                OverLimit::Backpressure => Admit::Wait { until },
                OverLimit::Close => Admit::Violation,
            },
        }
    }

    /// When a message of `bytes` payload bytes will be admitted (the later of the two buckets'
    /// deadlines), or `None` when it would be admitted now. Lets a caller sleep until then
    /// before reading.
    pub fn ready_at(&self, bytes: u64) -> Option<u64> {
        let m = self.messages.as_ref().and_then(|b| b.ready_at(1));
        let b = self.bytes.as_ref().and_then(|b| b.ready_at(bytes));
        m.max(b)
    }

    /// The message bucket, if messages are limited.
    pub fn messages(&self) -> Option<&TokenBucket> {
        self.messages.as_ref()
    }

    /// The byte bucket, if bytes are limited.
    pub fn bytes(&self) -> Option<&TokenBucket> {
        self.bytes.as_ref()
    }

    /// True when nothing is limited (every message is admitted).
    pub fn is_off(&self) -> bool {
        self.messages.is_none() && self.bytes.is_none()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::vec::Vec;

    fn bucket(per_second: u64, burst: u64) -> TokenBucket {
        TokenBucket::new(per_second, burst, 0).unwrap()
    }

    #[test]
    fn a_new_bucket_is_full_and_spends_its_burst_exactly() {
        let mut b = bucket(10, 5);
        assert_eq!(b.available(), 5);
        for _ in 0..5 {
            assert_eq!(b.take(0, 1), Ok(()));
        }
        assert_eq!(b.available(), 0);
        // One past the burst: one token at 10/s is 100 ms away.
        assert_eq!(b.take(0, 1), Err(100));
        assert_eq!(b.ready_at(1), Some(100));
    }

    #[test]
    fn a_cost_equal_to_the_burst_passes_and_one_more_waits() {
        let mut b = bucket(1000, 64);
        assert_eq!(b.ready_at(64), None);
        assert_eq!(b.take(0, 64), Ok(()));
        let mut b = bucket(1000, 64);
        assert_eq!(b.take(0, 63), Ok(()));
        assert_eq!(b.take(0, 2), Err(1));
    }

    #[test]
    fn the_deadline_is_exact() {
        let mut b = bucket(10, 1);
        assert_eq!(b.take(0, 1), Ok(()));
        assert_eq!(b.take(99, 1), Err(100));
        assert_eq!(b.take(100, 1), Ok(()));
        assert_eq!(b.take(100, 1), Err(200));
    }

    #[test]
    fn refills_over_time_at_the_rate_without_rounding() {
        // 3 tokens/s: a third of a token per 333.3 ms, no drift over many steps.
        let mut b = bucket(3, 3);
        assert_eq!(b.take(0, 3), Ok(()));
        assert_eq!(b.ready_at(1), Some(334));
        assert_eq!(b.take(333, 1), Err(334));
        assert_eq!(b.take(334, 1), Ok(()));
        // At 1000 ms, 3 tokens have come in total, 1 of them spent.
        assert_eq!(b.take(1000, 2), Ok(()));
        assert_eq!(b.take(1000, 1), Err(1334));
        // Refill in 1 ms steps adds up to the same as one big step.
        let mut stepped = bucket(7, 100);
        let mut jumped = bucket(7, 100);
        assert_eq!(stepped.take(0, 100), Ok(()));
        assert_eq!(jumped.take(0, 100), Ok(()));
        for t in 1..=10_000 {
            stepped.refill(t);
        }
        jumped.refill(10_000);
        assert_eq!(stepped, jumped);
        assert_eq!(stepped.available(), 70);
    }

    #[test]
    fn a_quiet_period_refills_no_more_than_the_burst() {
        let mut b = bucket(100, 10);
        assert_eq!(b.take(0, 10), Ok(()));
        b.refill(60_000);
        assert_eq!(b.available(), 10);
        assert_eq!(b.take(60_000, 10), Ok(()));
        assert_eq!(b.take(60_000, 1), Err(60_010));
    }

    #[test]
    fn a_cost_above_the_burst_needs_a_full_bucket_and_leaves_debt() {
        let mut b = bucket(100, 100);
        // Not full: wait until it is (50 tokens at 100/s: 500 ms).
        assert_eq!(b.take(0, 50), Ok(()));
        assert_eq!(b.take(0, 250), Err(500));
        assert_eq!(b.take(499, 250), Err(500));
        assert_eq!(b.take(500, 250), Ok(()));
        assert_eq!((b.available(), b.debt()), (0, 150));
        // The debt (1.5 s) is paid before the next token (10 ms).
        assert_eq!(b.ready_at(1), Some(500 + 1500 + 10));
        assert_eq!(b.take(2009, 1), Err(2010));
        assert_eq!(b.take(2010, 1), Ok(()));
        // Even an empty cost waits while in debt.
        assert_eq!(b.take(2010, 250), Err(2010 + 1000));
        let mut d = bucket(100, 100);
        assert_eq!(d.take(0, 250), Ok(()));
        assert_eq!(d.take(0, 0), Err(1500));
        assert_eq!(d.take(1500, 0), Ok(()));
    }

    #[test]
    fn a_zero_burst_admits_each_cost_once_the_last_is_paid() {
        let mut b = bucket(10, 0);
        assert_eq!(b.burst(), 0);
        assert_eq!(b.take(0, 1), Ok(()));
        assert_eq!(b.take(0, 1), Err(100));
        assert_eq!(b.take(100, 3), Ok(()));
        assert_eq!(b.take(100, 1), Err(400));
    }

    #[test]
    fn a_clock_going_backwards_adds_nothing() {
        let mut b = bucket(10, 2);
        assert_eq!(b.take(1000, 2), Ok(()));
        // Back to 500: no refill, and the deadline stays on the latest time seen.
        assert_eq!(b.take(500, 1), Err(1100));
        assert_eq!(b.take(0, 1), Err(1100));
        assert_eq!(b.take(1099, 1), Err(1100));
        assert_eq!(b.take(1100, 1), Ok(()));
        // A clock that jitters back and forth gains only its forward progress.
        let mut j = bucket(1000, 10);
        assert_eq!(j.take(5000, 10), Ok(()));
        for _ in 0..100 {
            j.refill(4999);
            j.refill(5000);
        }
        assert_eq!(j.available(), 0);
        j.refill(5001);
        assert_eq!(j.available(), 1);
    }

    #[test]
    fn huge_clocks_and_values_saturate_without_overflow() {
        // A jump from 0 to the end of time refills to the burst.
        let mut b = bucket(u64::MAX, u64::MAX);
        assert_eq!((b.per_second(), b.burst()), (MAX_TOKENS, MAX_TOKENS));
        assert_eq!(b.take(0, u64::MAX), Ok(()));
        assert!(b.debt() > 0);
        assert!(b.ready_at(u64::MAX).is_some());
        assert_eq!(b.take(u64::MAX, MAX_TOKENS), Ok(()));
        // A deadline past the end of the clock is u64::MAX.
        let mut late = TokenBucket::new(1, 1, u64::MAX - 10).unwrap();
        assert_eq!(late.take(u64::MAX - 10, 1), Ok(()));
        assert_eq!(late.take(u64::MAX - 10, 1), Err(u64::MAX));
        assert_eq!(late.take(u64::MAX, u64::MAX), Err(u64::MAX));
        // The slowest bucket owing the most still answers.
        let mut slow = bucket(1, 1);
        assert_eq!(slow.take(0, u64::MAX), Ok(()));
        assert_eq!(slow.ready_at(u64::MAX), Some(u64::MAX));
        assert_eq!(slow.take(u64::MAX, 0), Ok(()));
    }

    #[test]
    fn a_zero_rate_is_a_config_error() {
        let e = Err(Error::InvalidUsage(Usage::InvalidConfig));
        assert_eq!(TokenBucket::new(0, 10, 0), e);
        assert_eq!(TokenBucket::new(1, 0, 0).map(|_| ()), Ok(()));
        for l in [
            RateLimits::default().with_messages(0, 1),
            RateLimits::default().with_bytes(0, 1),
            RateLimits::default().with_messages(1, 1).with_bytes(0, 1),
        ] {
            assert_eq!(l.validate(), Err(Error::InvalidUsage(Usage::InvalidConfig)));
            assert_eq!(
                RateLimiter::new(&l, 0),
                Err(Error::InvalidUsage(Usage::InvalidConfig))
            );
        }
        assert_eq!(RateLimits::default().with_messages(1, 0).validate(), Ok(()));
    }

    #[test]
    fn the_default_limits_nothing() {
        let l = RateLimits::default();
        assert_eq!(l, RateLimits::OFF);
        assert!(l.is_off());
        assert_eq!(l.over_limit, OverLimit::Backpressure);
        let mut r = RateLimiter::new(&l, 0).unwrap();
        assert!(r.is_off());
        for i in 0..10_000 {
            assert_eq!(r.admit(0, u64::MAX - i), Admit::Ok);
        }
        assert_eq!(r.ready_at(u64::MAX), None);
    }

    #[test]
    fn messages_per_second_with_backpressure() {
        let l = RateLimits::default().with_messages(2, 3);
        let mut r = RateLimiter::new(&l, 10).unwrap();
        assert!(r.bytes().is_none());
        for _ in 0..3 {
            assert_eq!(r.admit(10, 1 << 30), Admit::Ok);
        }
        assert_eq!(r.admit(10, 0), Admit::Wait { until: 510 });
        assert_eq!(r.ready_at(0), Some(510));
        assert_eq!(r.admit(509, 0), Admit::Wait { until: 510 });
        assert_eq!(r.admit(510, 0), Admit::Ok);
        assert_eq!(r.admit(510, 0), Admit::Wait { until: 1010 });
        assert_eq!(r.messages().map(TokenBucket::available), Some(0));
    }

    #[test]
    fn bytes_per_second_with_backpressure() {
        let l = RateLimits::default().with_bytes(1000, 2000);
        let mut r = RateLimiter::new(&l, 0).unwrap();
        assert_eq!(r.admit(0, 2000), Admit::Ok);
        assert_eq!(r.admit(0, 1), Admit::Wait { until: 1 });
        assert_eq!(r.admit(0, 1000), Admit::Wait { until: 1000 });
        assert_eq!(r.admit(1000, 1000), Admit::Ok);
        // Many small messages are fine while bytes last.
        assert_eq!(r.admit(2000, 0), Admit::Ok);
        for _ in 0..1000 {
            assert_eq!(r.admit(2000, 1), Admit::Ok);
        }
        assert_eq!(r.admit(2000, 1), Admit::Wait { until: 2001 });
    }

    #[test]
    fn both_limits_take_both_or_neither_and_wait_for_the_later() {
        let l = RateLimits::default()
            .with_messages(2, 1)
            .with_bytes(100, 100);
        let mut r = RateLimiter::new(&l, 0).unwrap();
        assert_eq!(r.admit(0, 100), Admit::Ok);
        // A message token comes at 500, 80 bytes at 800: the later one counts.
        assert_eq!(r.admit(0, 0), Admit::Wait { until: 500 });
        assert_eq!(r.admit(0, 80), Admit::Wait { until: 800 });
        assert_eq!(r.ready_at(80), Some(800));
        // At 800 the message token is there but 90 bytes are not: nothing is taken.
        assert_eq!(r.admit(800, 90), Admit::Wait { until: 900 });
        assert_eq!(r.messages().unwrap().available(), 1);
        assert_eq!(r.bytes().unwrap().available(), 80);
        assert_eq!(r.admit(900, 90), Admit::Ok);
        assert_eq!(r.messages().unwrap().available(), 0);
        assert_eq!(r.bytes().unwrap().available(), 0);
        // Now the message bucket is the later one (1400 against 1000).
        assert_eq!(r.admit(900, 10), Admit::Wait { until: 1400 });
        assert_eq!(r.admit(1399, 10), Admit::Wait { until: 1400 });
        assert_eq!(r.admit(1400, 10), Admit::Ok);
    }

    #[test]
    fn close_mode_reports_a_violation_and_takes_nothing() {
        let l = RateLimits::default()
            .with_messages(1, 2)
            .with_bytes(100, 100)
            .with_over_limit(OverLimit::Close);
        let mut r = RateLimiter::new(&l, 0).unwrap();
        assert_eq!(r.admit(0, 60), Admit::Ok);
        // Over the byte limit: a violation, and the message token was not spent.
        assert_eq!(r.admit(0, 41), Admit::Violation);
        assert_eq!(r.messages().unwrap().available(), 1);
        assert_eq!(r.admit(0, 40), Admit::Ok);
        assert_eq!(r.admit(0, 0), Admit::Violation);
        assert_eq!(r.ready_at(0), Some(1000));
        assert_eq!(r.admit(1000, 0), Admit::Ok);
        assert_eq!(VIOLATION_CLOSE_CODE, CloseCode(1008));
    }

    #[test]
    fn close_mode_admits_one_oversized_message_from_a_full_bucket() {
        let l = RateLimits::default()
            .with_bytes(1000, 100)
            .with_over_limit(OverLimit::Close);
        let mut r = RateLimiter::new(&l, 0).unwrap();
        assert_eq!(r.admit(0, 5000), Admit::Ok);
        // 4900 bytes of debt take 4.9 s to pay back, the next 100 bytes another 0.1 s.
        assert_eq!(r.admit(4899, 0), Admit::Violation);
        assert_eq!(r.ready_at(100), Some(5000));
        assert_eq!(r.admit(4900, 0), Admit::Ok);
        assert_eq!(r.admit(4999, 100), Admit::Violation);
        assert_eq!(r.admit(5000, 100), Admit::Ok);
    }

    #[test]
    fn the_limiter_is_small() {
        assert!(core::mem::size_of::<RateLimiter>() <= 88);
        assert!(core::mem::size_of::<TokenBucket>() <= 40);
    }

    /// One step of a schedule: advance the clock by `dt` (backwards when negative) and offer
    /// a message of `bytes`.
    fn schedule(max_bytes: u64) -> impl Strategy<Value = Vec<(i64, u64)>> {
        let dt = prop_oneof![
            8 => 0i64..50,
            2 => 50i64..5000,
            1 => -100i64..0,
            1 => Just(i64::MAX / 4),
        ];
        proptest::collection::vec((dt, 0..=max_bytes), 1..150)
    }

    /// Runs `steps` through a backpressure limiter; checks every `Wait` deadline is exact
    /// (admitted at `until`, refused a millisecond before); returns the admissions as
    /// (effective time, bytes), the effective time being the latest clock seen.
    fn run(r: &mut RateLimiter, steps: &[(i64, u64)]) -> Result<Vec<(u64, u64)>, TestCaseError> {
        let mut now: u64 = 1_000_000;
        let mut latest = now;
        let mut admitted = Vec::new();
        for &(dt, bytes) in steps {
            now = now.saturating_add_signed(dt);
            latest = latest.max(now);
            match r.admit(now, bytes) {
                Admit::Ok => admitted.push((latest, bytes)),
                Admit::Wait { until } => {
                    prop_assert!(until > latest || until == u64::MAX);
                    prop_assert_eq!(r.ready_at(bytes), Some(until));
                    let mut early = *r;
                    if until > latest {
                        let e = early.admit(until - 1, bytes);
                        prop_assert!(matches!(e, Admit::Wait { .. }), "early: {:?}", e);
                    }
                    let mut on_time = *r;
                    if until < u64::MAX {
                        prop_assert_eq!(on_time.admit(until, bytes), Admit::Ok);
                    }
                }
                Admit::Violation => prop_assert!(false, "backpressure mode never closes"),
            }
        }
        Ok(admitted)
    }

    /// The largest sum of admitted bytes (or messages) over any window, less the refill the
    /// window allows, in milli-tokens: must stay at or under the allowance.
    fn check_windows(
        admitted: &[(u64, u64)],
        per_second: u64,
        allowance: u128,
    ) -> Result<(), TestCaseError> {
        for i in 0..admitted.len() {
            let mut sum: u128 = 0;
            for j in i..admitted.len() {
                sum += u128::from(admitted[j].1) * 1000;
                let t = u128::from(admitted[j].0 - admitted[i].0);
                let bound = t * u128::from(per_second) + allowance * 1000;
                prop_assert!(
                    sum <= bound,
                    "window {i}..={j}: {sum} > {bound} ({:?})",
                    &admitted[i..=j]
                );
            }
        }
        Ok(())
    }

    proptest! {
        #[test]
        fn admitted_bytes_never_exceed_rate_times_t_plus_burst(
            per_second in 1u64..5000,
            burst in 1u64..2000,
            steps in schedule(2000),
        ) {
            let steps: Vec<_> = steps.into_iter().map(|(dt, b)| (dt, b % (burst + 1))).collect();
            let l = RateLimits::default().with_bytes(per_second, burst);
            let mut r = RateLimiter::new(&l, 1_000_000).unwrap();
            let admitted = run(&mut r, &steps)?;
            check_windows(&admitted, per_second, u128::from(burst))?;
        }

        #[test]
        fn oversized_messages_exceed_the_burst_by_at_most_one_message(
            per_second in 1u64..5000,
            burst in 0u64..500,
            steps in schedule(2000),
        ) {
            let l = RateLimits::default().with_bytes(per_second, burst);
            let mut r = RateLimiter::new(&l, 1_000_000).unwrap();
            let admitted = run(&mut r, &steps)?;
            let largest = steps.iter().map(|s| s.1).max().unwrap_or(0);
            check_windows(&admitted, per_second, u128::from(burst.max(largest)))?;
        }

        #[test]
        fn admitted_messages_never_exceed_rate_times_t_plus_burst(
            per_second in 1u64..100,
            burst in 1u64..20,
            steps in schedule(0),
        ) {
            let l = RateLimits::default().with_messages(per_second, burst).with_bytes(1000, 10);
            let mut r = RateLimiter::new(&l, 1_000_000).unwrap();
            let admitted: Vec<_> = run(&mut r, &steps)?.into_iter().map(|(t, _)| (t, 1)).collect();
            check_windows(&admitted, per_second, u128::from(burst))?;
        }
    }
}
