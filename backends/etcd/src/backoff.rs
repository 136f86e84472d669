//! The backend's one backoff, in terms of the engine's [`Backoff`]: how long to wait before retry `n`.

use std::time::Duration;

use campanile::coordinator::SessionId;
use campanile::job::Backoff;

/// Before re-reading a transaction that raced another writer: 2 ms doubling to 64 ms.
const RACE: Backoff = Backoff {
    initial: Duration::from_millis(2),
    factor: 2.0,
    max: Duration::from_millis(64),
};

/// Before re-opening a watch or a feed whose stream died: 100 ms doubling to 2 s.
pub(crate) const RECONNECT: Backoff = Backoff {
    initial: Duration::from_millis(100),
    factor: 2.0,
    max: Duration::from_secs(2),
};

/// A short pause before re-reading a raced transaction (`attempt` counts from 0), growing with the attempt
/// and spread by the session id, so that racing writers stop colliding.
pub(crate) async fn raced(session: SessionId, attempt: usize) {
    let spread = (session.0 ^ (attempt as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15)) % 8;
    let retry = u32::try_from(attempt + 1).unwrap_or(u32::MAX);
    tokio::time::sleep(RACE.delay(retry) + Duration::from_millis(spread)).await;
}
