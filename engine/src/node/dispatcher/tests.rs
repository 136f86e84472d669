//! Unit tests of the dispatcher state, without spawning the actor: the overlap decision.

use std::sync::Arc;

use super::*;
use crate::coordinator::NodeId;
use crate::job::{HandlerTarget, Job, JobSpec, Target};
use crate::node::fire::FireKind;
use crate::schedule::Schedule;

const T0: i64 = 1_790_000_000_000; // a whole second

fn job(overlap: Overlap) -> Arc<Job> {
    let mut spec = JobSpec::new(
        "a",
        Schedule::parse("* * * * * *").unwrap(),
        Target::Handler(HandlerTarget::new("h")),
    );
    spec.overlap = overlap;
    Arc::new(Job::new(JobId::new("a").unwrap(), spec, T0 - 60_000))
}

fn fire(job: &Arc<Job>, second: i64) -> Fire {
    Fire {
        job: job.clone(),
        scheduled_ms: T0 + second * 1000,
        kind: FireKind::Scheduled,
        session: None,
        start_by_ms: None,
    }
}

fn state() -> State {
    State::new(NodeId::new("n1").unwrap())
}

fn seconds(fires: &[Fire]) -> Vec<i64> {
    fires.iter().map(|f| (f.scheduled_ms - T0) / 1000).collect()
}

#[test]
fn an_instant_that_comes_while_a_run_goes_is_skipped() {
    let job = job(Overlap::Skip);
    let mut state = state();
    let first = state.fires(vec![fire(&job, 1)], T0 + 1000);
    assert_eq!(seconds(&first.start), [1]);
    // The run of instant 1 is still going at 2.
    let second = state.fires(vec![fire(&job, 2)], T0 + 2000);
    assert!(second.start.is_empty());
    assert_eq!(second.records.len(), 1);
    assert_eq!(second.records[0].outcome, Outcome::Skipped);
    assert_eq!(second.records[0].scheduled_ms, T0 + 2000);
    // It ended: instant 3 starts.
    assert!(state.finished(&job.id, T0 + 2500).is_none());
    assert_eq!(
        seconds(&state.fires(vec![fire(&job, 3)], T0 + 3000).start),
        [3]
    );
}

/// postmortem: after a takeover (or a lease that ran out, or a freeze) the timer emits the instants that
/// passed meanwhile together; the first started and the others were recorded `skipped` (previous run still
/// going), although nothing of the job was running when their time came.
#[test]
fn late_instants_that_come_together_run_one_after_another() {
    let job = job(Overlap::Skip);
    let mut state = state();
    let now = T0 + 3100;
    let decisions = state.fires(vec![fire(&job, 1), fire(&job, 2), fire(&job, 3)], now);
    assert_eq!(seconds(&decisions.start), [1]);
    assert!(decisions.records.is_empty(), "{:?}", decisions.records);
    // Instant 4 comes while the run of instant 2 goes (started at 3.2, before 4): it is skipped.
    let next = state
        .finished(&job.id, now + 100)
        .expect("instant 2 starts");
    assert_eq!(next.scheduled_ms, T0 + 2000);
    let fresh = state.fires(vec![fire(&job, 4)], T0 + 4000);
    assert_eq!(fresh.records.len(), 1);
    assert_eq!(fresh.records[0].scheduled_ms, T0 + 4000);
    let next = state
        .finished(&job.id, T0 + 4100)
        .expect("instant 3 starts");
    assert_eq!(next.scheduled_ms, T0 + 3000);
    assert!(state.finished(&job.id, T0 + 4200).is_none());
    // Nothing is left running: the next instant starts.
    assert_eq!(
        seconds(&state.fires(vec![fire(&job, 5)], T0 + 5000).start),
        [5]
    );
}

#[test]
fn buffer_one_keeps_late_instants_and_the_newest_one_that_met_a_run() {
    let job = job(Overlap::BufferOne);
    let mut state = state();
    let decisions = state.fires(vec![fire(&job, 1), fire(&job, 2)], T0 + 2100);
    assert_eq!(seconds(&decisions.start), [1]);
    // Instants 3 and 4 come while instant 1's run goes: 4 replaces 3 in the buffer.
    assert!(
        state
            .fires(vec![fire(&job, 3)], T0 + 3000)
            .records
            .is_empty()
    );
    let replaced = state.fires(vec![fire(&job, 4)], T0 + 4000);
    assert_eq!(replaced.records.len(), 1);
    assert_eq!(replaced.records[0].scheduled_ms, T0 + 3000);
    // The late instant first, then the buffered one.
    let next = state.finished(&job.id, T0 + 4100).expect("a next run");
    assert_eq!(next.scheduled_ms, T0 + 2000);
    let next = state.finished(&job.id, T0 + 4200).expect("a next run");
    assert_eq!(next.scheduled_ms, T0 + 4000);
    assert!(state.finished(&job.id, T0 + 4300).is_none());
}

#[test]
fn allow_and_cancel_previous_start_every_instant() {
    for overlap in [Overlap::Allow, Overlap::CancelPrevious] {
        let job = job(overlap);
        let mut state = state();
        let decisions = state.fires(vec![fire(&job, 1), fire(&job, 2)], T0 + 2100);
        assert_eq!(seconds(&decisions.start), [1, 2], "{overlap:?}");
        let expected = usize::from(overlap == Overlap::CancelPrevious);
        assert_eq!(decisions.cancel.len(), expected, "{overlap:?}");
    }
}
