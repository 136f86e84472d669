//! The rules every backend applies to claims, releases, job preconditions and assignments, as pure functions
//! over what the backend read. A backend reads, decides here, then writes the result fenced by what it read
//! (a transaction, a `multi`, a lock): it keeps only how it stores and how it fences, never a copy of a rule.
//!
//! The rules, each one the answer to a line of the [`Coordinator`](super::Coordinator) contract:
//! - **extend** ([`grant`]): the holder asking again keeps its `from_ms`; `through_ms` and `settled_ms` never
//!   decrease; the predecessor a takeover met is answered again until it is settled.
//! - **take over** ([`grant`]): another session's claim is followed, never overlapped: the grant starts at
//!   `max(from_ms, previous.through_ms + 1)`, and keeps `settled_ms` at most the previous holder's.
//! - **fresh** ([`grant`]): no claim yet: the grant starts where the claimer asked.
//! - **ownership** ([`plan_claims`]): a job is granted only to the node the assignment gives it to.
//! - **truncation** ([`truncate`], [`plan_releases`]): a release cuts a claim back, never extends it, never
//!   below its own start.
//! - **preconditions** ([`check_precondition`]) of job writes, and the **assignment size**
//!   ([`check_assignment`]).

use std::collections::BTreeMap;

use super::{ClaimResult, CoordError, CoordResult, FireClaim, JobClaim, NodeId, Precondition};
use super::{SessionId, limits};
use crate::job::JobId;

/// The claim `session` on `node` holds after asking for `request`, given the job's current claim `held`,
/// and the previous holder's claim when the grant takes the job over from another session.
///
/// The caller has checked that the job exists and that `node` owns it ([`plan_claims`] does both).
pub fn grant(
    session: SessionId,
    node: &NodeId,
    request: &FireClaim,
    held: Option<&JobClaim>,
) -> (JobClaim, Option<JobClaim>) {
    match held {
        // The holder extends: same start, and nothing it holds or settled goes back. While a predecessor is
        // kept, a request that starts before the claim does is the holder's first claim asked again (the
        // answer to the call that took the job over was lost): its `settled_ms` only says where it asked to
        // start, so it settles nothing.
        Some(held) if held.session == session => {
            let settled_ms = if request.from_ms < held.from_ms && held.previous.is_some() {
                held.settled_ms
            } else {
                held.settled_ms.max(request.settled_ms)
            };
            let mut claim = JobClaim {
                through_ms: held.through_ms.max(request.through_ms),
                settled_ms,
                ..held.clone()
            };
            // The predecessor is kept, and answered with every extension, until its instants are settled:
            // a holder that never saw the takeover's answer learns from it whom to settle.
            claim.previous = claim
                .previous
                .take()
                .filter(|previous| claim.settled_ms < previous.through_ms);
            let previous = claim.previous.as_deref().cloned();
            (claim, previous)
        }
        // A takeover starts after everything the previous holder was granted. The previous holder's
        // unsettled instants stay unsettled in the claim until the new holder has settled them (and raises
        // `settled_ms`): should it die first, its own successor still sees them. The previous claim is kept
        // in the new one (without its own predecessor, whose instants it covers from its `settled_ms`).
        Some(held) => {
            let from_ms = request.from_ms.max(held.through_ms.saturating_add(1));
            let mut claim = fresh(session, node, request, from_ms);
            claim.settled_ms = claim.settled_ms.min(held.settled_ms);
            let previous = JobClaim {
                previous: None,
                ..held.clone()
            };
            if previous.settled_ms < previous.through_ms {
                claim.previous = Some(Box::new(previous.clone()));
            }
            (claim, Some(previous))
        }
        None => (fresh(session, node, request, request.from_ms), None),
    }
}

/// A fresh claim of `request` starting at `from_ms` (an empty claim, `through_ms = from_ms - 1`, if the
/// request ends before that). `settled_ms` is kept as the claimer gave it (a takeover then lowers it to the
/// previous holder's).
fn fresh(session: SessionId, node: &NodeId, request: &FireClaim, from_ms: i64) -> JobClaim {
    JobClaim {
        session,
        node: node.clone(),
        from_ms,
        through_ms: request.through_ms.max(from_ms.saturating_sub(1)),
        settled_ms: request.settled_ms,
        previous: None,
    }
}

/// The answers to a batch of claims, and the claims to write.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ClaimPlan {
    /// One answer per request, in the order given.
    pub results: Vec<ClaimResult>,
    /// The claims that changed, by job: the backend writes exactly these, each fenced by what it read.
    pub writes: BTreeMap<JobId, JobClaim>,
}

/// Decides a batch of claims of `session` on `node`, in order: requests of the same job see the grants of
/// the earlier ones.
///
/// `read(job)` is what the backend read about the job: `None` if it does not exist, otherwise its current
/// claim. `owner(job)` is the job's owner in the assignment the backend read.
pub fn plan_claims<'r, 'a>(
    session: SessionId,
    node: &NodeId,
    requests: impl IntoIterator<Item = &'r FireClaim>,
    read: impl Fn(&JobId) -> Option<Option<&'a JobClaim>>,
    owner: impl Fn(&JobId) -> Option<&'a NodeId>,
) -> ClaimPlan {
    let mut plan = ClaimPlan::default();
    for request in requests {
        let Some(stored) = read(&request.job) else {
            plan.results.push(ClaimResult::NoSuchJob);
            continue;
        };
        let owner = owner(&request.job);
        if owner != Some(node) {
            plan.results.push(ClaimResult::NotOwner {
                owner: owner.cloned(),
            });
            continue;
        }
        let current = plan.writes.get(&request.job).or(stored);
        let (claim, previous) = grant(session, node, request, current);
        if current != Some(&claim) {
            plan.writes.insert(request.job.clone(), claim.clone());
        }
        plan.results.push(ClaimResult::Granted { claim, previous });
    }
    plan
}

/// `claim` ending at `through_ms` instead: never extended, and never below `from_ms - 1` (instants before
/// `from_ms` were a previous holder's, not this one's to give back). `None` if nothing changes.
///
/// `settled_ms` is kept even when it now lies past `through_ms`: those instants do have run records.
pub fn truncate(claim: &JobClaim, through_ms: i64) -> Option<JobClaim> {
    let through_ms = claim
        .through_ms
        .min(through_ms.max(claim.from_ms.saturating_sub(1)));
    (through_ms != claim.through_ms).then(|| JobClaim {
        through_ms,
        ..claim.clone()
    })
}

/// Decides a batch of releases of `session`, in order (a job named twice sees its first release): the claims
/// to write. `held(job)` is the job's current claim as read; jobs the session does not hold are ignored.
pub fn plan_releases<'r, 'a>(
    session: SessionId,
    releases: impl IntoIterator<Item = &'r (JobId, i64)>,
    held: impl Fn(&JobId) -> Option<&'a JobClaim>,
) -> BTreeMap<JobId, JobClaim> {
    let mut writes: BTreeMap<JobId, JobClaim> = BTreeMap::new();
    for (job, through_ms) in releases {
        let current = writes
            .get(job)
            .or_else(|| held(job))
            .filter(|c| c.session == session);
        if let Some(claim) = current.and_then(|c| truncate(c, *through_ms)) {
            writes.insert(job.clone(), claim);
        }
    }
    writes
}

/// Fails unless `precondition` holds for job `id` whose current revision is `current` (`None`: absent):
/// [`CoordError::Conflict`], or [`CoordError::NotFound`] for `Exists` on a missing job.
pub fn check_precondition(
    id: &JobId,
    precondition: Precondition,
    current: Option<u64>,
) -> CoordResult<()> {
    let conflict = |expected: String| {
        let actual = current.map_or_else(|| "absent".to_owned(), |r| format!("revision {r}"));
        CoordError::job_conflict(id, expected, actual)
    };
    match (precondition, current) {
        (Precondition::Any, _) | (Precondition::Absent, None) | (Precondition::Exists, Some(_)) => {
            Ok(())
        }
        (Precondition::Revision(want), Some(have)) if want == have => Ok(()),
        (Precondition::Absent, Some(_)) => Err(conflict("absent".to_owned())),
        (Precondition::Exists, None) => Err(CoordError::job_not_found(id)),
        (Precondition::Revision(want), _) => Err(conflict(format!("revision {want}"))),
    }
}

/// An assignment of `jobs` entries is not too large to publish ([`limits::MAX_ASSIGNMENT`]).
pub fn check_assignment(jobs: usize) -> CoordResult<()> {
    if jobs > limits::MAX_ASSIGNMENT {
        return Err(CoordError::Invalid(format!(
            "assignment: {jobs} jobs, at most {} allowed",
            limits::MAX_ASSIGNMENT
        )));
    }
    Ok(())
}

#[cfg(test)]
mod tests;
