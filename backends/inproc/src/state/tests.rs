//! Unit tests of `State`: the contract rules, planned and applied directly, without IO or a runtime.

use std::time::Duration;

use campanile::job::{HandlerTarget, JobSpec, Target};
use campanile::run::Outcome;
use campanile::schedule::Schedule;

use super::*;

const TTL: Duration = Duration::from_secs(10);

/// An empty state keeping the smallest history allowed.
fn state() -> State {
    let config = InprocConfig {
        history_limit: InprocConfig::MIN_HISTORY_LIMIT,
        ..InprocConfig::default()
    };
    State::new(config.normalized(), Durable::default())
}

/// Plans with `plan`, applies the changes, and returns the answer.
fn commit<T>(state: &mut State, plan: impl FnOnce(&State) -> Plan<T>) -> T {
    let (value, changes) = plan(state).expect("plan succeeds");
    for change in changes {
        state.apply(change);
    }
    value
}

fn node(name: &str) -> NodeInfo {
    NodeInfo::new(NodeId::new(name).expect("valid node id"))
}

fn job_id(name: &str) -> JobId {
    JobId::new(name).expect("valid job id")
}

fn job(name: &str) -> Job {
    let spec = JobSpec::new(
        name,
        Schedule::parse("@every 1m").expect("valid schedule"),
        Target::Handler(HandlerTarget::new("noop")),
    );
    Job::new(job_id(name), spec, 1_700_000_000_000)
}

fn request(job: &str, from_ms: i64, through_ms: i64, settled_ms: i64) -> FireClaim {
    FireClaim {
        job: job_id(job),
        from_ms,
        through_ms,
        settled_ms,
    }
}

fn record(job: &str, scheduled_ms: i64) -> RunRecord {
    let fire = campanile::job::FireId::new(job_id(job), scheduled_ms);
    RunRecord::new(&fire, &NodeId::new("a").unwrap(), Outcome::Succeeded)
}

/// Nodes `a` and `b` with live sessions (returned in that order), job `j`, and an assignment of `j` to
/// `owner`, published by `a` as leader.
fn cluster(owner: &str) -> (State, SessionId, SessionId) {
    let mut s = state();
    let now = Instant::now();
    let a = commit(&mut s, |s| s.open_session(node("a"), TTL, now)).id;
    let b = commit(&mut s, |s| s.open_session(node("b"), TTL, now)).id;
    commit(&mut s, |s| s.put_job(job("j"), Precondition::Absent));
    let epoch = commit(&mut s, |s| s.campaign(a)).expect("a leads").epoch;
    assign(&mut s, a, epoch, owner);
    (s, a, b)
}

fn assign(s: &mut State, leader: SessionId, epoch: u64, owner: &str) {
    let owners = BTreeMap::from([(job_id("j"), NodeId::new(owner).expect("valid node id"))]);
    commit(s, |s| s.publish_assignment(leader, epoch, owners));
}

fn granted(result: &ClaimResult) -> (JobClaim, Option<JobClaim>) {
    match result {
        ClaimResult::Granted { claim, previous } => (claim.clone(), previous.clone()),
        other => panic!("expected a grant, got {other:?}"),
    }
}

#[test]
fn a_holder_extending_keeps_its_start_and_never_goes_back() {
    let (mut s, a, _) = cluster("a");
    let first = commit(&mut s, |s| {
        s.claim_fires(a, &[request("j", 1000, 5000, 2000)])
    });
    let (claim, previous) = granted(&first[0]);
    assert_eq!(
        (claim.from_ms, claim.through_ms, claim.settled_ms),
        (1000, 5000, 2000)
    );
    assert_eq!(previous, None);

    // A lower through and settled, and another from: nothing goes back, from stays.
    let again = commit(&mut s, |s| {
        s.claim_fires(a, &[request("j", 3000, 4000, 1500)])
    });
    let (claim, previous) = granted(&again[0]);
    assert_eq!(
        (claim.from_ms, claim.through_ms, claim.settled_ms),
        (1000, 5000, 2000)
    );
    assert_eq!(previous, None);

    let further = commit(&mut s, |s| {
        s.claim_fires(a, &[request("j", 3000, 9000, 4000)])
    });
    let (claim, _) = granted(&further[0]);
    assert_eq!(
        (claim.from_ms, claim.through_ms, claim.settled_ms),
        (1000, 9000, 4000)
    );
    assert_eq!(s.claim_of(&job_id("j")), Some(claim));
}

#[test]
fn an_unchanged_claim_plans_no_write() {
    let (mut s, a, _) = cluster("a");
    commit(&mut s, |s| {
        s.claim_fires(a, &[request("j", 1000, 5000, 999)])
    });
    let (_, changes) = s
        .claim_fires(a, &[request("j", 1000, 5000, 999)])
        .expect("plan succeeds");
    assert!(changes.is_empty(), "{changes:?}");
}

#[test]
fn a_takeover_starts_after_the_previous_claim_and_returns_it() {
    let (mut s, a, b) = cluster("a");
    let leader_epoch = s.leader().expect("a leads").epoch;
    let (held, _) = granted(
        &commit(&mut s, |s| {
            s.claim_fires(a, &[request("j", 1000, 5000, 2000)])
        })[0],
    );

    // Not b's yet: fenced.
    let refused = commit(&mut s, |s| s.claim_fires(b, &[request("j", 0, 8000, 0)]));
    assert_eq!(
        refused[0],
        ClaimResult::NotOwner {
            owner: Some(NodeId::new("a").expect("valid node id"))
        }
    );

    assign(&mut s, a, leader_epoch, "b");
    let taken = commit(&mut s, |s| s.claim_fires(b, &[request("j", 0, 8000, 0)]));
    let (claim, previous) = granted(&taken[0]);
    assert_eq!(previous, Some(held));
    assert_eq!(
        (claim.session, claim.from_ms, claim.through_ms),
        (b, 5001, 8000)
    );

    // The old holder is now fenced.
    let stale = commit(&mut s, |s| s.claim_fires(a, &[request("j", 0, 9000, 0)]));
    assert!(
        matches!(stale[0], ClaimResult::NotOwner { .. }),
        "{stale:?}"
    );
}

#[test]
fn a_takeover_that_ends_before_the_previous_claim_is_empty() {
    let (mut s, a, b) = cluster("a");
    let epoch = s.leader().expect("a leads").epoch;
    commit(&mut s, |s| {
        s.claim_fires(a, &[request("j", 1000, 5000, 999)])
    });
    assign(&mut s, a, epoch, "b");
    let (claim, previous) =
        granted(&commit(&mut s, |s| s.claim_fires(b, &[request("j", 0, 3000, 0)]))[0]);
    assert_eq!((claim.from_ms, claim.through_ms), (5001, 5000));
    let first = previous.expect("the takeover names the previous holder");
    // Extending later keeps the start after the previous holder's end, and names the previous holder again
    // while its instants are not settled.
    let (claim, previous) =
        granted(&commit(&mut s, |s| s.claim_fires(b, &[request("j", 0, 7000, 0)]))[0]);
    assert_eq!((claim.from_ms, claim.through_ms), (5001, 7000));
    assert_eq!(previous, Some(first));
}

#[test]
fn claims_need_the_job_and_an_assignment() {
    let mut s = state();
    let a = commit(&mut s, |s| s.open_session(node("a"), TTL, Instant::now())).id;
    let results = commit(&mut s, |s| {
        s.claim_fires(a, &[request("missing", 0, 10, 0)])
    });
    assert_eq!(results, vec![ClaimResult::NoSuchJob]);
    commit(&mut s, |s| s.put_job(job("j"), Precondition::Any));
    let results = commit(&mut s, |s| s.claim_fires(a, &[request("j", 0, 10, 0)]));
    assert_eq!(results, vec![ClaimResult::NotOwner { owner: None }]);
}

#[test]
fn a_claim_through_the_end_of_time_is_invalid() {
    let (s, a, _) = cluster("a");
    let result = s.claim_fires(a, &[request("j", 0, i64::MAX, 0)]);
    assert!(matches!(result, Err(CoordError::Invalid(_))), "{result:?}");
}

#[test]
fn a_release_never_extends_and_never_goes_below_the_start() {
    let (mut s, a, _) = cluster("a");
    commit(&mut s, |s| {
        s.claim_fires(a, &[request("j", 1000, 5000, 2000)])
    });

    commit(&mut s, |s| s.release_claims(a, &[(job_id("j"), 9000)]));
    assert_eq!(s.claim_of(&job_id("j")).map(|c| c.through_ms), Some(5000));

    commit(&mut s, |s| s.release_claims(a, &[(job_id("j"), 3000)]));
    let claim = s.claim_of(&job_id("j")).expect("claimed");
    assert_eq!(
        (claim.from_ms, claim.through_ms, claim.settled_ms),
        (1000, 3000, 2000)
    );

    commit(&mut s, |s| s.release_claims(a, &[(job_id("j"), -50)]));
    let claim = s.claim_of(&job_id("j")).expect("claimed");
    assert_eq!((claim.through_ms, claim.settled_ms), (999, 2000));
}

#[test]
fn a_release_of_a_claim_held_by_another_session_is_ignored() {
    let (mut s, a, b) = cluster("a");
    commit(&mut s, |s| {
        s.claim_fires(a, &[request("j", 1000, 5000, 999)])
    });
    let ((), changes) = s
        .release_claims(b, &[(job_id("j"), 1000), (job_id("missing"), 1)])
        .expect("plan succeeds");
    assert!(changes.is_empty(), "{changes:?}");
}

#[test]
fn closing_and_expiry_keep_claims_as_they_are() {
    let (mut s, a, b) = cluster("a");
    let (held_a, _) = granted(
        &commit(&mut s, |s| {
            s.claim_fires(a, &[request("j", 1000, 5000, 2000)])
        })[0],
    );
    commit(&mut s, |s| s.close_session(a));
    assert_eq!(s.claim_of(&job_id("j")), Some(held_a.clone()));
    assert_eq!(s.leader(), None, "leadership ends with the session");
    assert_eq!(s.members().members.len(), 1);

    // b leads now, takes the job over after everything a held, and expires: its claim stays as it was.
    let epoch = commit(&mut s, |s| s.campaign(b)).expect("b leads").epoch;
    assign(&mut s, b, epoch, "b");
    let (held, previous) =
        granted(&commit(&mut s, |s| s.claim_fires(b, &[request("j", 0, 8000, 4000)]))[0]);
    assert_eq!(held.from_ms, 5001);
    assert_eq!(previous, Some(held_a));
    let later = Instant::now() + TTL * 2;
    for change in s.expired_sessions(later) {
        s.apply(change);
    }
    assert_eq!(s.claim_of(&job_id("j")), Some(held));
    assert!(s.members().members.is_empty());
    assert_eq!(s.leader(), None);
}

#[test]
fn records_are_kept_once_per_fire_id() {
    let (mut s, a, _) = cluster("a");
    let results = commit(&mut s, |s| {
        s.record_runs(
            a,
            vec![record("j", 1000), record("j", 1000), record("j", 2000)],
        )
    });
    assert_eq!(
        results,
        vec![
            RecordResult::Recorded,
            RecordResult::Duplicate,
            RecordResult::Recorded
        ]
    );
    let results = commit(&mut s, |s| {
        s.record_runs(a, vec![record("j", 2000), record("gone", 1)])
    });
    assert_eq!(
        results,
        vec![RecordResult::Duplicate, RecordResult::Recorded]
    );
    let kept: Vec<i64> = s
        .runs(&job_id("j"), &RunQuery::default())
        .iter()
        .map(|r| r.scheduled_ms)
        .collect();
    assert_eq!(kept, vec![2000, 1000]);
    assert!(s.runs(&job_id("gone"), &RunQuery::default()).is_empty());
}

#[test]
fn the_history_keeps_the_newest_records_and_refuses_dropped_fire_ids() {
    let (mut s, a, _) = cluster("a");
    let limit = InprocConfig::MIN_HISTORY_LIMIT as i64;
    // One batch in descending order: every record is new, the oldest are dropped at the end of the call.
    let batch: Vec<RunRecord> = (0..limit + 20).rev().map(|i| record("j", i * 10)).collect();
    let results = commit(&mut s, |s| s.record_runs(a, batch));
    assert!(results.iter().all(|r| *r == RecordResult::Recorded));
    let kept = s.runs(
        &job_id("j"),
        &RunQuery {
            limit: usize::MAX,
            ..RunQuery::default()
        },
    );
    assert_eq!(kept.len() as i64, limit);
    assert_eq!(kept.last().map(|r| r.scheduled_ms), Some(200));

    // A dropped fire id, and anything older than the newest dropped one, is answered Duplicate.
    let results = commit(&mut s, |s| {
        s.record_runs(a, vec![record("j", 190), record("j", 5)])
    });
    assert_eq!(results, vec![RecordResult::Duplicate; 2]);
    // A gap above the floor can still be recorded.
    let results = commit(&mut s, |s| s.record_runs(a, vec![record("j", 205)]));
    assert_eq!(results, vec![RecordResult::Recorded]);
}

#[test]
fn run_queries_honour_bounds_and_never_panic_on_inverted_ranges() {
    let (mut s, a, _) = cluster("a");
    commit(&mut s, |s| {
        s.record_runs(a, (1..=5).map(|i| record("j", i * 100)).collect())
    });
    let query = |from_ms, before_ms, limit| {
        s.runs(
            &job_id("j"),
            &RunQuery {
                from_ms,
                before_ms,
                limit,
            },
        )
        .iter()
        .map(|r| r.scheduled_ms)
        .collect::<Vec<_>>()
    };
    assert_eq!(query(Some(200), Some(500), 10), vec![400, 300, 200]);
    assert_eq!(query(None, Some(500), 2), vec![400, 300]);
    assert_eq!(query(Some(300), None, 0), Vec::<i64>::new());
    assert_eq!(query(Some(500), Some(100), 10), Vec::<i64>::new());
    assert_eq!(query(Some(300), Some(300), 10), Vec::<i64>::new());
}

#[test]
fn oversized_records_are_invalid_and_write_nothing() {
    let (s, a, _) = cluster("a");
    let mut big = record("j", 1);
    big.output = "x".repeat(RunRecord::MAX_OUTPUT + 1);
    let result = s.record_runs(a, vec![record("j", 0), big]);
    assert!(matches!(result, Err(CoordError::Invalid(_))), "{result:?}");
    let mut backwards = record("j", 100);
    backwards.last_scheduled_ms = Some(50);
    let result = s.record_runs(a, vec![backwards]);
    assert!(matches!(result, Err(CoordError::Invalid(_))), "{result:?}");
}

#[test]
fn preconditions_follow_the_contract() {
    let mut s = state();
    let id = job_id("j");
    let conflict = |r: Plan<u64>| matches!(r, Err(CoordError::Conflict { .. }));
    let not_found = |r: Plan<u64>| matches!(r, Err(CoordError::NotFound { .. }));
    assert!(not_found(s.put_job(job("j"), Precondition::Exists)));
    assert!(conflict(s.put_job(job("j"), Precondition::Revision(1))));
    assert!(not_found(s.delete_job(&id, Precondition::Any)));
    assert_eq!(
        commit(&mut s, |s| s.put_job(job("j"), Precondition::Absent)),
        1
    );
    assert!(conflict(s.put_job(job("j"), Precondition::Absent)));
    assert!(conflict(s.put_job(job("j"), Precondition::Revision(7))));
    assert_eq!(
        commit(&mut s, |s| s.put_job(job("j"), Precondition::Revision(1))),
        2
    );
    assert_eq!(
        commit(&mut s, |s| s.put_job(job("j"), Precondition::Exists)),
        3
    );
    assert!(conflict(s.delete_job(&id, Precondition::Absent)));
    assert!(conflict(s.delete_job(&id, Precondition::Revision(2))));
    assert_eq!(
        commit(&mut s, |s| s.delete_job(&id, Precondition::Revision(3))),
        4
    );
    assert_eq!(s.list_jobs().revision, 4);
    assert!(s.list_jobs().jobs.is_empty());
}

#[test]
fn deleting_a_job_deletes_its_claim_and_runs() {
    let (mut s, a, _) = cluster("a");
    commit(&mut s, |s| s.claim_fires(a, &[request("j", 0, 100, 0)]));
    commit(&mut s, |s| s.record_runs(a, vec![record("j", 50)]));
    commit(&mut s, |s| s.delete_job(&job_id("j"), Precondition::Any));
    commit(&mut s, |s| s.put_job(job("j"), Precondition::Absent));
    assert_eq!(s.claim_of(&job_id("j")), None);
    assert!(s.runs(&job_id("j"), &RunQuery::default()).is_empty());
}

#[test]
fn sessions_conflict_per_node_and_ids_are_never_reused() {
    let mut s = state();
    let now = Instant::now();
    let first = commit(&mut s, |s| s.open_session(node("a"), TTL, now)).id;
    assert!(matches!(
        s.open_session(node("a"), TTL, now),
        Err(CoordError::Conflict { .. })
    ));
    commit(&mut s, |s| s.close_session(first));
    let second = commit(&mut s, |s| s.open_session(node("a"), TTL, now)).id;
    assert!(second > first);
    assert!(matches!(
        s.keep_alive(first, now),
        Err(CoordError::SessionExpired { .. })
    ));
    for ttl in [
        Duration::ZERO,
        campanile::coordinator::limits::MAX_TTL + Duration::from_secs(1),
    ] {
        assert!(matches!(
            s.open_session(node("b"), ttl, now),
            Err(CoordError::Invalid(_))
        ));
    }
}

#[test]
fn leadership_is_fenced_by_epoch() {
    let (mut s, a, b) = cluster("a");
    let first = s.leader().expect("a leads");
    assert_eq!(commit(&mut s, |s| s.campaign(b)), None);
    assert_eq!(commit(&mut s, |s| s.campaign(a)), Some(first.clone()));
    let stale = s.publish_assignment(a, first.epoch + 1, BTreeMap::new());
    assert!(matches!(stale, Err(CoordError::Fenced { .. })), "{stale:?}");
    commit(&mut s, |s| s.resign(a));
    let second = commit(&mut s, |s| s.campaign(b)).expect("b leads");
    assert!(second.epoch > first.epoch);
    let fenced = s.publish_assignment(a, first.epoch, BTreeMap::new());
    assert!(
        matches!(fenced, Err(CoordError::Fenced { .. })),
        "{fenced:?}"
    );
    let version = commit(&mut s, |s| {
        s.publish_assignment(b, second.epoch, BTreeMap::new())
    });
    assert_eq!(version, 2, "versions grow across terms");
}

#[test]
fn smallest_merges_two_sorted_sequences() {
    let a = [1, 4, 9];
    let b = [2, 3, 10];
    assert_eq!(smallest(a.into_iter(), b.into_iter(), 4), vec![1, 2, 3, 4]);
    assert_eq!(smallest(a.into_iter(), b.into_iter(), 0), Vec::<i64>::new());
    assert_eq!(
        smallest(a.into_iter(), b.into_iter(), 9),
        vec![1, 2, 3, 4, 9, 10]
    );
}
