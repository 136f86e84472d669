//! The backend's pause between raced attempts, from the engine's one backoff
//! (`campanile::coordinator::backoff`).

/// A short pause before retry `attempt` (counting from 0) of a `multi` that lost a race, spread by `spread`
/// (a session id, the process id) so that writers that raced each other do not retry in lockstep. Without
/// it, claimers contending for the same jobs while the leader publishes re-read and lose again at once, and a
/// loaded machine can make one of them lose every attempt.
pub(crate) async fn raced(spread: u64, attempt: u32) {
    let pause = campanile::coordinator::backoff::raced(spread, attempt.saturating_add(1));
    tokio::time::sleep(pause).await;
}
