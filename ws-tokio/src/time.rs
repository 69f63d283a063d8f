//! The core's clock: milliseconds since a process-wide origin.

use std::sync::OnceLock;
use std::time::Duration;

use tokio::time::Instant;

fn origin() -> Instant {
    static ORIGIN: OnceLock<Instant> = OnceLock::new();
    *ORIGIN.get_or_init(Instant::now)
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
