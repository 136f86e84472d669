//! The one backoff of retried coordinator work, in terms of [`Backoff`]: a backend's transaction that raced
//! another writer, a watch or feed whose stream died (in a backend or in the engine's feeds).

use std::time::Duration;

use crate::job::Backoff;

/// Before re-reading a write that raced another writer: 2 ms doubling to 64 ms.
pub const RACE: Backoff = Backoff {
    initial: Duration::from_millis(2),
    factor: 2.0,
    max: Duration::from_millis(64),
};

/// Before re-opening a watch or a feed whose stream died, or calling a coordinator that failed again:
/// 100 ms doubling to 2 s.
pub const RECONNECT: Backoff = Backoff {
    initial: Duration::from_millis(100),
    factor: 2.0,
    max: Duration::from_secs(2),
};

/// The pause before retry `retry` (1 for the first) of a raced write: [`RACE`] plus up to 7 ms picked by
/// `spread` (a session id, a process id), so that writers that raced each other do not retry in lockstep.
pub fn raced(spread: u64, retry: u32) -> Duration {
    let jitter = (spread ^ u64::from(retry).wrapping_mul(0x9E37_79B9_7F4A_7C15)) % 8;
    RACE.delay(retry) + Duration::from_millis(jitter)
}
