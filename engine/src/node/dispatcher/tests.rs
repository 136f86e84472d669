//! Unit tests of the dispatcher state, without spawning the actor: the overlap policy for scheduled instants,
//! and manual fires (trigger, backfill), which the policy never drops.

use std::sync::Arc;

use super::*;
use crate::coordinator::NodeId;
use crate::job::{HandlerTarget, Job, JobSpec, Target};
use crate::schedule::Schedule;

const T0: i64 = 1_790_000_000_000;

fn job(overlap: Overlap) -> Arc<Job> {
    let mut spec = JobSpec::new(
        "report",
        Schedule::parse("* * * * * *").unwrap(),
        Target::Handler(HandlerTarget::new("h")),
    );
    spec.overlap = overlap;
    Arc::new(Job::new(JobId::new("report").unwrap(), spec, T0))
}

fn fire(job: &Arc<Job>, scheduled_ms: i64, kind: FireKind) -> Fire {
    Fire {
        job: job.clone(),
        scheduled_ms,
        kind,
        session: None,
        start_by_ms: None,
    }
}

fn instants(fires: &[Fire]) -> Vec<i64> {
    fires.iter().map(|f| f.scheduled_ms).collect()
}

/// Some run of the job ended (the dispatcher counts runs per job; which one does not matter here).
fn done(job: &Arc<Job>) -> FireId {
    job.fire_id(0)
}

fn state() -> State {
    State::new(NodeId::new("n1").unwrap())
}

#[test]
fn a_backfill_under_skip_runs_every_instant_in_order() {
    let job = job(Overlap::Skip);
    let mut state = state();
    let backfill: Vec<Fire> = (0..4)
        .map(|i| fire(&job, T0 + i * 1000, FireKind::Manual))
        .collect();

    let first = state.fires(backfill);

    assert_eq!(instants(&first.start), [T0]);
    assert!(
        first.records.is_empty(),
        "nothing skipped: {:?}",
        first.records
    );
    let mut ran = instants(&first.start);
    while let Some(next) = state.finished(&done(&job)) {
        ran.push(next.scheduled_ms);
    }
    assert_eq!(ran, [T0, T0 + 1000, T0 + 2000, T0 + 3000]);
    assert!(state.running.is_empty(), "nothing left behind");
}

#[test]
fn scheduled_instants_still_follow_skip_while_manual_fires_wait() {
    let job = job(Overlap::Skip);
    let mut state = state();
    assert_eq!(
        instants(&state.fires(vec![fire(&job, T0, FireKind::Scheduled)]).start),
        [T0]
    );

    // A trigger while the scheduled run goes on waits; the next scheduled instant is skipped as before.
    let trigger = state.fires(vec![fire(&job, T0 + 10, FireKind::Manual)]);
    let scheduled = state.fires(vec![fire(&job, T0 + 1000, FireKind::Scheduled)]);

    assert!(trigger.start.is_empty() && trigger.records.is_empty());
    assert_eq!(scheduled.records.len(), 1);
    assert_eq!(scheduled.records[0].outcome, Outcome::Skipped);
    assert_eq!(scheduled.records[0].scheduled_ms, T0 + 1000);
    assert_eq!(
        state.finished(&done(&job)).map(|f| f.scheduled_ms),
        Some(T0 + 10)
    );
    assert!(state.finished(&done(&job)).is_none());
}

#[test]
fn manual_fires_go_before_the_buffered_instant_and_replace_nothing() {
    let job = job(Overlap::BufferOne);
    let mut state = state();
    state.fires(vec![fire(&job, T0, FireKind::Scheduled)]);

    let decisions = state.fires(vec![
        fire(&job, T0 + 1, FireKind::Manual),
        fire(&job, T0 + 1000, FireKind::Scheduled),
        fire(&job, T0 + 2, FireKind::Manual),
    ]);

    assert!(decisions.start.is_empty() && decisions.records.is_empty());
    let mut ran = Vec::new();
    while let Some(next) = state.finished(&done(&job)) {
        ran.push(next.scheduled_ms);
    }
    assert_eq!(ran, [T0 + 1, T0 + 2, T0 + 1000]);
}

#[test]
fn a_manual_fire_never_cancels_a_run() {
    let job = job(Overlap::CancelPrevious);
    let mut state = state();
    state.fires(vec![fire(&job, T0, FireKind::Scheduled)]);

    let decisions = state.fires(vec![fire(&job, T0 + 5, FireKind::Manual)]);

    assert!(decisions.cancel.is_empty() && decisions.start.is_empty());
    assert_eq!(
        state.finished(&done(&job)).map(|f| f.scheduled_ms),
        Some(T0 + 5)
    );
}

#[test]
fn allow_starts_manual_fires_at_once() {
    let job = job(Overlap::Allow);
    let mut state = state();
    let decisions = state.fires(vec![
        fire(&job, T0, FireKind::Manual),
        fire(&job, T0 + 1000, FireKind::Manual),
    ]);
    assert_eq!(instants(&decisions.start), [T0, T0 + 1000]);
}

#[test]
fn a_manual_fire_already_on_its_way_runs_once() {
    let job = job(Overlap::Skip);
    let mut state = state();
    state.fires(vec![fire(&job, T0, FireKind::Scheduled)]);

    // A backfill of T0 (running now, not recorded yet) and T0 + 1000, then the same backfill again.
    let first = state.fires(vec![
        fire(&job, T0, FireKind::Manual),
        fire(&job, T0 + 1000, FireKind::Manual),
    ]);
    let again = state.fires(vec![fire(&job, T0 + 1000, FireKind::Manual)]);

    assert!(first.start.is_empty() && first.records.is_empty());
    assert!(again.start.is_empty() && again.records.is_empty());
    let next = state.finished(&job.fire_id(T0)).unwrap();
    assert_eq!(next.scheduled_ms, T0 + 1000);
    assert!(state.finished(&next.id()).is_none());
    assert!(state.live.is_empty() && state.running.is_empty());
}
