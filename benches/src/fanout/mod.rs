//! Fan-out: one publisher, many subscribers, every message relayed by the server to all of them.
//!
//! - [`server`]: a fan-out server per implementation. A connection to [`PUB_PATH`] is the
//!   publisher; every other connection is a subscriber. Each text or binary message the
//!   publisher sends goes to every subscriber, the way each crate's own examples broadcast
//!   (see the module for each one). Ours is in [`server`]'s `ours` module, in one place.
//! - [`load`]: the load generator: subscriber connections that check every message's sequence
//!   number and measure its delivery latency from the send time in its payload, and a
//!   publisher connection on a thread of its own that sends at a steady rate or in bursts.
//!
//! Every payload is JSON-like text whose first [`HEAD`] bytes are the sequence number and the
//! send time (see [`stamp`]); the rest varies from message to message (a rotation of
//! [`BODIES`] generated bodies), so that compression sees realistic data, not the same message
//! over and over.

pub mod load;
pub mod server;

use ws_tokio::load::{HEAD, Rng};

/// The publisher's request path; any other path subscribes.
pub const PUB_PATH: &str = "/pub";
/// The path subscribers use.
pub const SUB_PATH: &str = "/sub";
/// How many different bodies the publisher rotates through.
pub const BODIES: usize = 64;

/// Sequence numbers wrap at 16^6 (6 hex digits).
const SEQ_DIGITS: usize = 6;
/// Send times are nanoseconds modulo 16^10 (about 18 minutes; 10 hex digits).
const TS_DIGITS: usize = HEAD - SEQ_DIGITS;
/// Send times are taken modulo this.
pub const TS_MOD: u64 = 1 << (4 * TS_DIGITS);

fn hex(out: &mut [u8], mut v: u64) {
    for b in out.iter_mut().rev() {
        *b = b"0123456789abcdef"[(v & 15) as usize];
        v >>= 4;
    }
}

fn unhex(b: &[u8]) -> Option<u64> {
    b.iter().try_fold(0u64, |acc, &c| {
        let d = (c as char).to_digit(16)?;
        Some(acc << 4 | u64::from(d))
    })
}

/// Writes `seq` and `ts_ns` (modulo [`TS_MOD`]) as 16 hex digits over the first [`HEAD`]
/// bytes of `payload` (which must be at least that long).
pub fn stamp(payload: &mut [u8], seq: u32, ts_ns: u64) {
    hex(&mut payload[..SEQ_DIGITS], u64::from(seq));
    hex(&mut payload[SEQ_DIGITS..HEAD], ts_ns % TS_MOD);
}

/// Reads what [`stamp`] wrote: `(seq, ts_ns modulo TS_MOD)`.
pub fn read_stamp(head: &[u8]) -> Option<(u32, u64)> {
    if head.len() < HEAD {
        return None;
    }
    let seq = unhex(&head[..SEQ_DIGITS])? as u32;
    let ts = unhex(&head[SEQ_DIGITS..HEAD])?;
    Some((seq, ts))
}

/// Nanoseconds from `sent` to `now`, both modulo [`TS_MOD`].
pub fn elapsed_mod(sent: u64, now: u64) -> u64 {
    (now % TS_MOD + TS_MOD - sent % TS_MOD) % TS_MOD
}

/// `count` JSON-like text bodies of exactly `size` bytes (at least [`HEAD`]): a placeholder
/// stamp, then an object with an array of quotes whose numbers differ from body to body.
pub fn bodies(size: usize, count: usize, rng: &mut Rng) -> Vec<Vec<u8>> {
    const SYMS: [&str; 8] = [
        "AAPL", "MSFT", "NVDA", "AMZN", "GOOG", "META", "TSLA", "AVGO",
    ];
    let size = size.max(HEAD);
    (0..count)
        .map(|_| {
            let mut s = String::with_capacity(size + 128);
            s.push_str(&"0".repeat(HEAD));
            if size > HEAD {
                s.push_str("{\"type\":\"quotes\",\"data\":[");
                let mut id = 0u32;
                while s.len() < size {
                    let r = rng.next_u64();
                    let px = 100.0 + (r % 50_000) as f64 / 100.0;
                    let _ = std::fmt::Write::write_fmt(
                        &mut s,
                        format_args!(
                            "{}{{\"id\":{},\"sym\":\"{}\",\"bid\":{:.2},\"ask\":{:.2},\"qty\":{},\"side\":\"{}\"}}",
                            if id == 0 { "" } else { "," },
                            id,
                            SYMS[(r >> 20) as usize % SYMS.len()],
                            px,
                            px + ((r >> 28) % 20) as f64 / 100.0,
                            (r >> 36) % 10_000,
                            if r >> 63 == 0 { "buy" } else { "sell" }
                        ),
                    );
                    id += 1;
                }
                s.truncate(size.saturating_sub(2).max(HEAD));
                while s.len() < size.saturating_sub(2) {
                    s.push(' ');
                }
                s.push_str("]}");
                s.truncate(size);
            }
            s.into_bytes()
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stamps_round_trip() {
        let mut p = vec![b'x'; 40];
        stamp(&mut p, 0x12_3456, 0xab_cdef_0123);
        assert_eq!(&p[..HEAD], b"123456abcdef0123");
        assert_eq!(read_stamp(&p), Some((0x12_3456, 0xab_cdef_0123)));
        assert_eq!(p[HEAD], b'x');
        assert_eq!(read_stamp(b"12345g0000000000"), None);
        assert_eq!(read_stamp(b"short"), None);
    }

    #[test]
    fn elapsed_wraps() {
        assert_eq!(elapsed_mod(10, 25), 15);
        assert_eq!(elapsed_mod(TS_MOD - 5, 3), 8);
        assert_eq!(elapsed_mod(TS_MOD + 7, 9), 2);
    }

    #[test]
    fn bodies_have_the_size_and_are_text() {
        let mut rng = Rng::with_seed(7);
        for size in [16, 17, 100, 1024, 16 << 10] {
            let b = bodies(size, 3, &mut rng);
            assert_eq!(b.len(), 3);
            for x in &b {
                assert_eq!(x.len(), size);
                assert!(std::str::from_utf8(x).is_ok());
            }
            if size >= 1024 {
                assert_ne!(b[0], b[1], "bodies differ");
                assert!(b[0].ends_with(b"]}"));
            }
        }
    }
}
