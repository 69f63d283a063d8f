//! The core's clock: milliseconds since a process-wide origin.

use std::sync::OnceLock;
use std::time::Duration;

use tokio::time::Instant;

/// How far before the first reading the origin lies. Every runtime's clock must be past the
/// origin: tokio's paused clock (in tests) starts at the real time its runtime was built and
/// then moves only when advanced, so a runtime built before another one took the first
/// reading would otherwise read 0 ms until its clock caught up, and its deadlines would come
/// late.
const BEFORE_FIRST_READING: Duration = Duration::from_secs(1 << 20);

fn origin() -> Instant {
    static ORIGIN: OnceLock<Instant> = OnceLock::new();
    *ORIGIN.get_or_init(|| {
        let now = Instant::now();
        now.checked_sub(BEFORE_FIRST_READING).unwrap_or(now)
    })
}

/// Now, in the core's milliseconds.
pub(crate) fn now_ms() -> u64 {
    Instant::now()
        .saturating_duration_since(origin())
        .as_millis() as u64
}

/// The instant of a core deadline.
pub(crate) fn instant_of(ms: u64) -> Instant {
    origin() + Duration::from_millis(ms)
}
