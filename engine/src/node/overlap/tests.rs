//! Unit tests of the overlap state, without spawning an actor: the overlap decision.

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

/// A run of the job ended at `ended_ms` (seen then).
fn end(state: &mut State, job: &Arc<Job>, ended_ms: i64) -> Decisions {
    state.ended(vec![(job.id.clone(), ended_ms)], ended_ms)
}

#[test]
fn an_instant_that_comes_while_a_run_goes_is_skipped_once_the_run_ends() {
    let job = job(Overlap::Skip);
    let mut state = state();
    let first = state.fires(vec![fire(&job, 1)], T0 + 1000);
    assert_eq!(seconds(&first.start), [1]);
    // The run of instant 1 is still going at 2: instant 2 waits for its end.
    let second = state.fires(vec![fire(&job, 2)], T0 + 2000);
    assert!(second.start.is_empty() && second.records.is_empty());
    // It ends at 2.5: begun at its instant, it would have been going at 2 all the same. Skipped.
    let ended = end(&mut state, &job, T0 + 2500);
    assert!(ended.start.is_empty());
    assert_eq!(ended.records.len(), 1);
    assert_eq!(ended.records[0].outcome, Outcome::Skipped);
    assert_eq!(ended.records[0].scheduled_ms, T0 + 2000);
    assert_eq!(
        ended.records[0].reason.as_deref(),
        Some("overlap: skip (previous run still going)")
    );
    // Nothing runs now: instant 3 starts.
    assert_eq!(
        seconds(&state.fires(vec![fire(&job, 3)], T0 + 3000).start),
        [3]
    );
}

#[test]
fn of_several_instants_that_meet_one_long_run_only_the_newest_waits() {
    let job = job(Overlap::Skip);
    let mut state = state();
    state.fires(vec![fire(&job, 1)], T0 + 1000);
    assert!(
        state
            .fires(vec![fire(&job, 2)], T0 + 2000)
            .records
            .is_empty()
    );
    let third = state.fires(vec![fire(&job, 3)], T0 + 3000);
    assert_eq!(third.records.len(), 1);
    assert_eq!(third.records[0].scheduled_ms, T0 + 2000);
    // The run ends at 3.9 (2.9 s): it would have been going at 3 too.
    let ended = end(&mut state, &job, T0 + 3900);
    assert_eq!(ended.records.len(), 1);
    assert_eq!(ended.records[0].scheduled_ms, T0 + 3000);
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
    assert_eq!(seconds(&end(&mut state, &job, T0 + 3150).start), [2]);
    assert_eq!(seconds(&end(&mut state, &job, T0 + 3200).start), [3]);
    assert!(end(&mut state, &job, T0 + 3250).start.is_empty());
    // Nothing is left running: the next instant starts.
    assert_eq!(
        seconds(&state.fires(vec![fire(&job, 4)], T0 + 4000).start),
        [4]
    );
}

/// postmortem: the late instants of a coordinator restart ran one after another, the last one ran a few
/// milliseconds into the next second, and that second's instant was recorded `skipped`: a run was going, but
/// only because it had started late.
#[test]
fn an_instant_that_meets_a_late_run_runs_if_the_run_would_have_ended_on_time() {
    let job = job(Overlap::Skip);
    let mut state = state();
    // Instants 1 and 2 are late, handed on at 2.990; instant 2 starts at 2.995 and ends at 3.010.
    state.fires(vec![fire(&job, 1), fire(&job, 2)], T0 + 2990);
    assert_eq!(seconds(&end(&mut state, &job, T0 + 2995).start), [2]);
    let third = state.fires(vec![fire(&job, 3)], T0 + 3000);
    assert!(third.start.is_empty() && third.records.is_empty());
    // 15 ms from its instant 2 it would have ended at 2.015: instant 3 met nothing then. It starts.
    let ended = end(&mut state, &job, T0 + 3010);
    assert_eq!(seconds(&ended.start), [3]);
    assert!(ended.records.is_empty());
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
    assert_eq!(seconds(&end(&mut state, &job, T0 + 4100).start), [2]);
    assert_eq!(seconds(&end(&mut state, &job, T0 + 4200).start), [4]);
    assert!(end(&mut state, &job, T0 + 4300).start.is_empty());
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

/// A manual fire (trigger, backfill) of the instant `second`.
fn manual(job: &Arc<Job>, second: i64) -> Fire {
    Fire {
        kind: FireKind::Manual,
        ..fire(job, second)
    }
}

/// Ends runs one by one, each at `now_ms`, collecting what starts, until nothing does.
fn drain(state: &mut State, job: &Arc<Job>, first: &[Fire], now_ms: i64) -> Vec<i64> {
    let mut ran = seconds(first);
    loop {
        let next = end(state, job, now_ms);
        assert!(
            next.records.is_empty(),
            "nothing skipped: {:?}",
            next.records
        );
        if next.start.is_empty() {
            return ran;
        }
        ran.extend(seconds(&next.start));
    }
}

#[test]
fn a_backfill_runs_every_instant_in_order_whatever_the_policy() {
    for overlap in [Overlap::Skip, Overlap::BufferOne, Overlap::CancelPrevious] {
        let job = job(overlap);
        let mut state = state();
        // Four past instants at once, while nothing runs.
        let first = state.fires((1..=4).map(|s| manual(&job, s)).collect(), T0 + 60_000);
        assert_eq!(seconds(&first.start), [1], "{overlap:?}");
        assert!(
            first.cancel.is_empty() && first.records.is_empty(),
            "{overlap:?}"
        );
        assert_eq!(
            drain(&mut state, &job, &first.start, T0 + 61_000),
            [1, 2, 3, 4],
            "{overlap:?}"
        );
    }
}

#[test]
fn a_trigger_while_the_job_runs_waits_and_is_never_skipped() {
    for overlap in [Overlap::Skip, Overlap::BufferOne, Overlap::CancelPrevious] {
        let job = job(overlap);
        let mut state = state();
        let scheduled = state.fires(vec![fire(&job, 1)], T0 + 1000);
        assert_eq!(seconds(&scheduled.start), [1]);

        // Triggers a moment later, while instant 1 runs: their ids are "now", after the run started.
        let at = |ms: i64| Fire {
            scheduled_ms: T0 + ms,
            ..manual(&job, 0)
        };
        let trigger = state.fires(vec![at(1500), at(1501)], T0 + 1501);

        assert!(trigger.start.is_empty(), "{overlap:?}");
        assert!(
            trigger.cancel.is_empty() && trigger.records.is_empty(),
            "{overlap:?}"
        );
        // The run ends long after: each trigger still runs, one after the other.
        assert_eq!(
            drain(&mut state, &job, &[], T0 + 9000).len(),
            2,
            "{overlap:?}"
        );
    }
}

/// A job of `overlap` whose fires run on workers of an executor group.
fn remote_job(overlap: Overlap) -> Arc<Job> {
    let mut spec = JobSpec::new(
        "a",
        Schedule::parse("* * * * * *").unwrap(),
        Target::Handler(HandlerTarget::new("h")),
    );
    spec.overlap = overlap;
    spec.executor = Some(crate::job::ExecutorGroup {
        group: "billing".into(),
    });
    Arc::new(Job::new(JobId::new("a").unwrap(), spec, T0 - 60_000))
}

/// The executor launched the fire just started: its dispatch's progress, which the test then plays.
fn launched(state: &mut State, job: &Arc<Job>) -> Arc<RemoteProgress> {
    let progress = Arc::new(RemoteProgress::default());
    state.dispatched(&job.id, progress.clone());
    progress
}

#[test]
fn a_fire_waiting_for_a_worker_is_not_a_run_going_on() {
    let job = remote_job(Overlap::Skip);
    let mut state = state();
    assert_eq!(
        seconds(&state.fires(vec![fire(&job, 1)], T0 + 1000).start),
        [1]
    );
    let progress = launched(&mut state, &job);
    // No worker has started instant 1 by 2 (offered, not told to go): instant 2 met no run, and waits.
    progress.go();
    progress.refused();
    let second = state.fires(vec![fire(&job, 2)], T0 + 2000);
    assert!(second.start.is_empty() && second.records.is_empty());
    // Instant 1 ends at 2.5 without having run (misfired): instant 2 starts, it is not skipped.
    let ended = end(&mut state, &job, T0 + 2500);
    assert!(ended.records.is_empty(), "{:?}", ended.records);
    assert_eq!(seconds(&ended.start), [2]);
}

#[test]
fn a_run_on_a_worker_goes_from_its_acknowledgement_to_its_result() {
    let job = remote_job(Overlap::Skip);
    let mut state = state();
    state.fires(vec![fire(&job, 1)], T0 + 1000);
    let progress = launched(&mut state, &job);
    progress.go();
    progress.acked(T0 + 1100);
    // Going at 2: instant 2 waits for its end.
    let second = state.fires(vec![fire(&job, 2)], T0 + 2000);
    assert!(second.start.is_empty() && second.records.is_empty());
    // Its result came at 3.2: started at its instant, it would have run until 3.1, past 2. Skipped.
    progress.finished(T0 + 3200);
    let ended = end(&mut state, &job, T0 + 3200);
    assert!(ended.start.is_empty());
    assert_eq!(ended.records.len(), 1);
    assert_eq!(ended.records[0].scheduled_ms, T0 + 2000);
    assert_eq!(ended.records[0].outcome, Outcome::Skipped);
}

#[test]
fn a_run_on_a_worker_whose_result_was_lost_justifies_no_skip() {
    let job = remote_job(Overlap::Skip);
    let mut state = state();
    state.fires(vec![fire(&job, 1)], T0 + 1000);
    let progress = launched(&mut state, &job);
    progress.go();
    progress.acked(T0 + 1100);
    state.fires(vec![fire(&job, 2)], T0 + 2000);
    // The worker was lost (`in_doubt`): when the run ended is unknown, so instant 2 runs, late.
    let ended = end(&mut state, &job, T0 + 5000);
    assert!(ended.records.is_empty(), "{:?}", ended.records);
    assert_eq!(seconds(&ended.start), [2]);
}

#[test]
fn a_fire_withdrawn_before_a_worker_started_it_says_it_never_ran() {
    let fire_id = crate::job::FireId::new(JobId::new("a").unwrap(), T0);
    let node = NodeId::new("n1").unwrap();
    let killed = |reason: &str, phase: RemotePhase| {
        let mut record = RunRecord::new(&fire_id, &node, Outcome::Failed);
        record.reason = Some(reason.to_owned());
        record.started_ms = Some(T0);
        record.attempt = 1;
        withdrawn(&mut record, phase);
        record
    };
    let shutdown = "killed: shutdown deadline passed";

    let replaced = killed(CANCELLED, RemotePhase::Waiting);
    assert_eq!(replaced.outcome, Outcome::Skipped);
    assert_eq!(
        replaced.reason.as_deref(),
        Some("overlap: cancel_previous (a newer instant came before a worker started this one)")
    );
    assert_eq!((replaced.started_ms, replaced.attempt), (None, 0));

    let stopped = killed(shutdown, RemotePhase::Waiting);
    assert_eq!(stopped.outcome, Outcome::Misfired);
    assert_eq!(
        stopped.reason.as_deref(),
        Some("missed: the node shut down before a worker started it")
    );

    let maybe = killed(CANCELLED, RemotePhase::MayHaveStarted);
    assert_eq!(maybe.outcome, Outcome::InDoubt);
    assert!(
        maybe
            .reason
            .as_deref()
            .is_some_and(|r| r.starts_with(CANCELLED) && r.ends_with("it may have started")),
        "{maybe:?}"
    );

    let ran = killed(CANCELLED, RemotePhase::Ran);
    assert_eq!(ran.outcome, Outcome::Failed);
    assert_eq!(ran.reason.as_deref(), Some(CANCELLED));
}
