//! The backend's pauses, from the engine's one backoff (`campanile::coordinator::backoff`).

use campanile::coordinator::SessionId;
pub(crate) use campanile::coordinator::backoff::RECONNECT;

/// A short pause before re-reading a raced transaction (`attempt` counts from 0), spread by the session id.
pub(crate) async fn raced(session: SessionId, attempt: usize) {
    let retry = u32::try_from(attempt + 1).unwrap_or(u32::MAX);
    tokio::time::sleep(campanile::coordinator::backoff::raced(session.0, retry)).await;
}
