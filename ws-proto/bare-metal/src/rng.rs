//! The program's sources of randomness and time, passed to ws-proto as the sans-IO contract
//! intends: a small deterministic generator and a millisecond counter.

/// SplitMix64: deterministic, so every run sends the same bytes. A real device would seed it
/// from a hardware random source.
pub struct Rng(u64);

impl Rng {
    /// A generator started at `seed`.
    pub const fn new(seed: u64) -> Rng {
        Rng(seed)
    }

    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// 16 random bytes (a handshake key).
    #[cfg_attr(not(feature = "handshake"), allow(dead_code))]
    pub fn bytes16(&mut self) -> [u8; 16] {
        let (a, b) = (self.next_u64(), self.next_u64());
        let mut out = [0u8; 16];
        out[..8].copy_from_slice(&a.to_le_bytes());
        out[8..].copy_from_slice(&b.to_le_bytes());
        out
    }
}

/// Time in milliseconds, moved on by the program (a device would read a hardware timer).
pub struct Clock(u64);

impl Clock {
    /// A clock at 0 ms.
    pub const fn new() -> Clock {
        Clock(0)
    }

    /// The current time.
    pub fn now(&self) -> u64 {
        self.0
    }

    /// Moves time on to `ms` (never back).
    pub fn set(&mut self, ms: u64) {
        self.0 = self.0.max(ms);
    }
}
