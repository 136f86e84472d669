//! Unit tests of the shared claim rules: each rule of the contract on its own, without a backend.

use std::collections::BTreeMap;

use super::*;

const ME: SessionId = SessionId(1);
const OTHER: SessionId = SessionId(2);

fn node(id: &str) -> NodeId {
    NodeId::new(id).unwrap()
}

fn job(id: &str) -> JobId {
    JobId::new(id).unwrap()
}

fn request(id: &str, from_ms: i64, through_ms: i64, settled_ms: i64) -> FireClaim {
    FireClaim {
        job: job(id),
        from_ms,
        through_ms,
        settled_ms,
    }
}

fn held(session: SessionId, from_ms: i64, through_ms: i64, settled_ms: i64) -> JobClaim {
    JobClaim {
        session,
        node: node(if session == ME { "a" } else { "b" }),
        from_ms,
        through_ms,
        settled_ms,
        previous: None,
    }
}

#[test]
fn a_fresh_grant_starts_where_the_claimer_asked() {
    let (claim, previous) = grant(ME, &node("a"), &request("j", 100, 200, 99), None);
    assert_eq!(claim, held(ME, 100, 200, 99));
    assert_eq!(previous, None);
}

#[test]
fn an_extension_keeps_its_start_and_never_goes_back() {
    let current = held(ME, 100, 300, 250);
    let (claim, previous) = grant(ME, &node("a"), &request("j", 500, 200, 150), Some(&current));
    assert_eq!(
        claim, current,
        "a shorter request neither moves from_ms nor lowers through_ms or settled_ms"
    );
    assert_eq!(previous, None, "an extension is not a takeover");
    let (claim, _) = grant(ME, &node("a"), &request("j", 500, 400, 350), Some(&current));
    assert_eq!(claim, held(ME, 100, 400, 350));
}

#[test]
fn a_takeover_starts_after_the_previous_holder_and_keeps_its_unsettled_instants() {
    let current = held(OTHER, 100, 300, 250);
    let (claim, previous) = grant(ME, &node("a"), &request("j", 200, 400, 390), Some(&current));
    assert_eq!(claim.from_ms, 301, "no instant is granted to two sessions");
    assert_eq!(claim.through_ms, 400);
    assert_eq!(
        claim.settled_ms, 250,
        "the previous holder's unsettled instants stay unsettled"
    );
    assert_eq!(previous, Some(current));
}

#[test]
fn a_takeover_that_asks_for_less_than_the_previous_holder_had_is_empty() {
    let current = held(OTHER, 100, 300, 300);
    let (claim, _) = grant(ME, &node("a"), &request("j", 150, 250, 250), Some(&current));
    assert_eq!((claim.from_ms, claim.through_ms), (301, 300));
}

#[test]
fn a_batch_answers_missing_jobs_non_owned_jobs_and_sees_its_own_grants() {
    let stored: BTreeMap<JobId, Option<JobClaim>> = [
        (job("mine"), Some(held(OTHER, 0, 100, 100))),
        (job("theirs"), None),
    ]
    .into_iter()
    .collect();
    let owners: BTreeMap<JobId, NodeId> = [
        (job("mine"), node("a")),
        (job("theirs"), node("b")),
        (job("gone"), node("a")),
    ]
    .into_iter()
    .collect();
    let requests = [
        request("gone", 0, 50, 0),
        request("theirs", 0, 50, 0),
        request("mine", 0, 200, 0),
        request("mine", 0, 300, 0),
    ];
    let plan = plan_claims(
        ME,
        &node("a"),
        &requests,
        |j| stored.get(j).map(Option::as_ref),
        |j| owners.get(j),
    );
    assert_eq!(plan.results[0], ClaimResult::NoSuchJob);
    assert_eq!(
        plan.results[1],
        ClaimResult::NotOwner {
            owner: Some(node("b"))
        }
    );
    let ClaimResult::Granted { claim, previous } = &plan.results[2] else {
        panic!("the owner is granted: {:?}", plan.results[2]);
    };
    assert_eq!((claim.from_ms, claim.through_ms), (101, 200));
    assert!(previous.is_some());
    let ClaimResult::Granted { claim, previous } = &plan.results[3] else {
        panic!("the owner is granted: {:?}", plan.results[3]);
    };
    assert_eq!(
        (claim.from_ms, claim.through_ms, previous),
        (101, 300, &None),
        "the second request of a job extends the first one's grant (the predecessor had settled everything)"
    );
    assert_eq!(plan.writes.len(), 1, "one write per changed job");
    assert_eq!(plan.writes[&job("mine")].through_ms, 300);
}

#[test]
fn a_grant_that_changes_nothing_writes_nothing() {
    let current = held(ME, 0, 100, 100);
    let requests = [request("j", 0, 100, 100)];
    let plan = plan_claims(
        ME,
        &node("a"),
        &requests,
        |_| Some(Some(&current)),
        |_| Some(&current.node),
    );
    assert!(matches!(plan.results[0], ClaimResult::Granted { .. }));
    assert!(plan.writes.is_empty());
}

#[test]
fn truncation_never_extends_and_never_goes_below_the_start() {
    let claim = held(ME, 100, 300, 280);
    assert_eq!(truncate(&claim, 400), None, "a release never extends");
    assert_eq!(truncate(&claim, 300), None, "nothing to give back");
    assert_eq!(
        truncate(&claim, 200),
        Some(held(ME, 100, 200, 280)),
        "settled_ms is kept: those instants have records"
    );
    assert_eq!(
        truncate(&claim, 10).map(|c| c.through_ms),
        Some(99),
        "instants before from_ms were a previous holder's"
    );
}

#[test]
fn releases_touch_only_the_sessions_own_claims_in_order() {
    let stored: BTreeMap<JobId, JobClaim> = [
        (job("mine"), held(ME, 0, 300, 0)),
        (job("theirs"), held(OTHER, 0, 300, 0)),
    ]
    .into_iter()
    .collect();
    let releases = [
        (job("mine"), 200),
        (job("theirs"), 100),
        (job("mine"), 250),
        (job("none"), 0),
    ];
    let writes = plan_releases(ME, &releases, |j| stored.get(j));
    assert_eq!(writes.len(), 1);
    assert_eq!(
        writes[&job("mine")].through_ms,
        200,
        "a later, longer release of the same job does not extend the earlier one"
    );
}

#[test]
fn preconditions_name_the_job_and_what_was_expected() {
    let id = job("j");
    assert!(check_precondition(&id, Precondition::Any, None).is_ok());
    assert!(check_precondition(&id, Precondition::Revision(3), Some(3)).is_ok());
    assert!(check_precondition(&id, Precondition::Exists, Some(1)).is_ok());
    assert!(check_precondition(&id, Precondition::Absent, None).is_ok());
    assert_eq!(
        check_precondition(&id, Precondition::Absent, Some(2))
            .unwrap_err()
            .to_string(),
        "conflict on j: expected absent, found revision 2"
    );
    assert_eq!(
        check_precondition(&id, Precondition::Revision(3), None)
            .unwrap_err()
            .to_string(),
        "conflict on j: expected revision 3, found absent"
    );
    assert!(matches!(
        check_precondition(&id, Precondition::Exists, None),
        Err(CoordError::NotFound { .. })
    ));
}

#[test]
fn an_assignment_above_the_limit_is_refused_with_its_size() {
    assert!(check_assignment(limits::MAX_ASSIGNMENT).is_ok());
    let error = check_assignment(limits::MAX_ASSIGNMENT + 1).unwrap_err();
    assert!(matches!(error, CoordError::Invalid(_)));
    assert!(
        error
            .to_string()
            .contains(&format!("{} jobs", limits::MAX_ASSIGNMENT + 1))
    );
}

#[test]
fn a_takeover_answer_lost_is_learnt_from_the_retry_until_the_predecessor_is_settled() {
    let theirs = held(OTHER, 0, 100, 40);
    // The takeover: the predecessor is kept in the claim, and answered.
    let (taken, previous) = grant(ME, &node("a"), &request("j", 0, 200, -1), Some(&theirs));
    assert_eq!((taken.from_ms, taken.settled_ms), (101, -1));
    assert_eq!(previous.as_ref(), Some(&theirs));
    assert_eq!(taken.previous.as_deref(), Some(&theirs));
    // Its answer was lost: the retry is an extension; it names the predecessor again and settles nothing,
    // although it asks for settled_ms 99 (its first claim's "everything before from").
    let (retried, again) = grant(ME, &node("a"), &request("j", 0, 250, 99), Some(&taken));
    assert_eq!(again.as_ref(), Some(&theirs));
    assert_eq!(
        (retried.from_ms, retried.through_ms, retried.settled_ms),
        (101, 250, -1)
    );
    // A renewal that settled part of the predecessor's instants raises settled_ms and keeps it.
    let (part, kept) = grant(ME, &node("a"), &request("j", 101, 250, 60), Some(&retried));
    assert_eq!((part.settled_ms, kept.as_ref()), (60, Some(&theirs)));
    // Settled through its last instant: let go.
    let (done, gone) = grant(ME, &node("a"), &request("j", 101, 250, 100), Some(&part));
    assert_eq!((done.settled_ms, done.previous, gone), (100, None, None));
    // A takeover of a fully settled claim keeps nothing.
    let settled = held(OTHER, 0, 100, 100);
    let (clean, previous) = grant(ME, &node("a"), &request("j", 0, 200, 99), Some(&settled));
    assert_eq!((clean.previous, previous), (None, Some(settled)));
}
