//! Integration tests of the embedded scheduler on one node over the in-process backend: the full path from
//! creating a job to its run records, on paused tokio time (except where a real process runs).

mod bulk;
mod cluster;
mod command;
mod crash;
mod frozen;
mod history;
mod lifecycle;
mod observability;
mod policies;
mod requests;
mod restart;
mod workers;
mod writes;

use std::sync::Arc;
use std::time::Duration;

use campanile::clock::SystemClock;
use campanile::coordinator::RunQuery;
use campanile::job::HandlerTarget;
use campanile::{Coordinator, FireId, JobId, JobSpec, RunRecord, Schedule, Scheduler, Target};
use tokio::sync::mpsc;

/// A whole second, so every-second schedules line up with it: 2026-09-21T14:13:20Z.
pub const T0: i64 = 1_790_000_000_000;

/// A node over `coordinator` on a virtual clock starting at [`T0`], with a handler `record` that reports every
/// fire it runs on the returned channel.
pub async fn node(
    coordinator: Arc<dyn Coordinator>,
) -> (Scheduler, mpsc::UnboundedReceiver<FireId>) {
    node_at(coordinator, T0).await
}

/// Like [`node`], with the clock starting at `start_ms`.
pub async fn node_at(
    coordinator: Arc<dyn Coordinator>,
    start_ms: i64,
) -> (Scheduler, mpsc::UnboundedReceiver<FireId>) {
    node_with_clock(coordinator, SystemClock::starting_at(start_ms).shared()).await
}

/// Like [`node`], with the given clock.
pub async fn node_with_clock(
    coordinator: Arc<dyn Coordinator>,
    clock: Arc<dyn campanile::clock::Clock>,
) -> (Scheduler, mpsc::UnboundedReceiver<FireId>) {
    let (tx, rx) = mpsc::unbounded_channel();
    let scheduler = Scheduler::builder()
        .coordinator(coordinator)
        .node_id("node-1")
        .clock(clock)
        .session_ttl(Duration::from_secs(4))
        .handler("slow", |_| async {
            // Longer than half the claim lookahead (2 s with this TTL): its runs outlast their claim's end.
            tokio::time::sleep(Duration::from_secs(3)).await;
            Ok(())
        })
        .handler("record", move |ctx| {
            let tx = tx.clone();
            async move {
                let _ = tx.send(ctx.fire);
                Ok(())
            }
        })
        .start()
        .await
        .expect("the node starts");
    (scheduler, rx)
}

/// A job running the `record` handler on `schedule`.
pub fn recording(name: &str, schedule: &str) -> JobSpec {
    JobSpec::new(
        name,
        Schedule::parse(schedule).unwrap(),
        Target::Handler(HandlerTarget::new("record")),
    )
}

/// Waits for the fire of `job` at `scheduled_ms`, collecting every fire seen on the way.
pub async fn until_fired(
    rx: &mut mpsc::UnboundedReceiver<FireId>,
    job: &JobId,
    scheduled_ms: i64,
) -> Vec<FireId> {
    let mut seen = Vec::new();
    let wait = async {
        while let Some(fire) = rx.recv().await {
            let done = fire.job == *job && fire.scheduled_ms == scheduled_ms;
            seen.push(fire);
            if done {
                return;
            }
        }
        panic!("the node stopped before {job}@{scheduled_ms} fired");
    };
    // A failure bound on virtual time, not a synchronization.
    tokio::time::timeout(Duration::from_secs(600), wait)
        .await
        .unwrap_or_else(|_| panic!("{job}@{scheduled_ms} never fired"));
    seen
}

/// Every run record of a job, oldest first.
pub async fn history(scheduler: &Scheduler, job: &JobId) -> Vec<RunRecord> {
    let mut runs = scheduler
        .runs(
            job,
            RunQuery {
                limit: 10_000,
                ..RunQuery::default()
            },
        )
        .await
        .unwrap();
    runs.reverse();
    runs
}
