//! A coordinator member that freezes: the calls that reach it go unanswered, and the node must not wait for
//! the backend's own request deadline before asking again (usually of another member).

use std::sync::Arc;
use std::time::Duration;

use campanile::JobId;
use campanile::run::Outcome;
use campanile_adapters::{FaultyCoordinator, Method};
use campanile_inproc::InprocCoordinator;

use super::{T0, history, node, recording, until_fired};

#[tokio::test(start_paused = true)]
async fn a_claim_call_left_unanswered_is_asked_again_within_the_lease() {
    let faulty = Arc::new(FaultyCoordinator::new(
        Arc::new(InprocCoordinator::memory()),
        7,
    ));
    let (scheduler, mut rx) = node(faulty.clone()).await;
    let job = scheduler
        .create_with_id(
            JobId::new("tick").unwrap(),
            recording("tick", "* * * * * *"),
        )
        .await
        .unwrap();
    until_fired(&mut rx, &job.id, T0 + 3000).await;
    // The next claim call reaches a member that froze: its answer comes 10 s later.
    faulty
        .control()
        .hang_next(Method::ClaimFires, 1, Duration::from_secs(10));
    until_fired(&mut rx, &job.id, T0 + 16_000).await;
    scheduler.shutdown(Duration::from_secs(5)).await.unwrap();

    let runs = history(&scheduler, &job.id).await;
    for instant in (4..=16).map(|i| T0 + i * 1000) {
        let record = runs
            .iter()
            .find(|r| r.scheduled_ms == instant)
            .unwrap_or_else(|| panic!("no record for {instant}: {runs:#?}"));
        assert_eq!(record.outcome, Outcome::Succeeded, "{record:?}");
        // Virtual time: the bound is exact, not a measure of speed. The session's TTL is 4 s.
        let late = record.started_ms.expect("it ran") - instant;
        assert!(
            late < 4000,
            "{instant} started {late} ms late: the node waited for the frozen call"
        );
    }
}
