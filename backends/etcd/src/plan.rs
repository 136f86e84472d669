//! The rules of claims and releases as plain synchronous code over what a read returned, mirroring
//! `campanile-inproc`'s `State`: the coordinator reads, plans here, then writes the changes in one
//! transaction that commits only if nothing it read has changed since.

use std::collections::{BTreeMap, HashMap};

use campanile::coordinator::{ClaimResult, FireClaim, JobClaim, NodeId, SessionId};
use campanile::job::JobId;

/// What one read returned about a job.
#[derive(Debug, Clone, Default)]
pub(crate) struct JobRead {
    /// The job key's mod revision; `None` if the job does not exist.
    pub(crate) job_revision: Option<i64>,
    /// The job's claim, with its key's mod revision.
    pub(crate) claim: Option<(JobClaim, i64)>,
}

/// Plans the claims `requests` (in call order) of `session` on `node`. Returns each request's answer
/// and the claims to write. Items of the same job see the grants of the earlier ones.
pub(crate) fn claims(
    session: SessionId,
    node: &NodeId,
    requests: &[&FireClaim],
    owner_of: impl Fn(&JobId) -> Option<NodeId>,
    read: &HashMap<JobId, JobRead>,
) -> (Vec<ClaimResult>, BTreeMap<JobId, JobClaim>) {
    let mut granted: BTreeMap<JobId, JobClaim> = BTreeMap::new();
    let mut results = Vec::with_capacity(requests.len());
    for request in requests {
        let Some(job) = read.get(&request.job).filter(|r| r.job_revision.is_some()) else {
            results.push(ClaimResult::NoSuchJob);
            continue;
        };
        let owner = owner_of(&request.job);
        if owner.as_ref() != Some(node) {
            results.push(ClaimResult::NotOwner { owner });
            continue;
        }
        let current = granted
            .get(&request.job)
            .or(job.claim.as_ref().map(|(c, _)| c));
        let (claim, previous) = match current {
            // The holder extends: same start, and nothing it holds or settled goes back.
            Some(held) if held.session == session => {
                let claim = JobClaim {
                    through_ms: held.through_ms.max(request.through_ms),
                    settled_ms: held.settled_ms.max(request.settled_ms),
                    ..held.clone()
                };
                (claim, None)
            }
            // A takeover starts after everything the previous holder was granted, and keeps its
            // unsettled instants unsettled until the new holder settles them.
            Some(held) => {
                let from_ms = request.from_ms.max(held.through_ms.saturating_add(1));
                let mut claim = fresh(session, node, request, from_ms);
                claim.settled_ms = claim.settled_ms.min(held.settled_ms);
                (claim, Some(held.clone()))
            }
            None => (fresh(session, node, request, request.from_ms), None),
        };
        if current != Some(&claim) {
            granted.insert(request.job.clone(), claim.clone());
        }
        results.push(ClaimResult::Granted { claim, previous });
    }
    (results, granted)
}

/// A fresh claim starting at `from_ms` (empty, `through_ms = from_ms - 1`, if the request ends before).
fn fresh(session: SessionId, node: &NodeId, request: &FireClaim, from_ms: i64) -> JobClaim {
    JobClaim {
        session,
        node: node.clone(),
        from_ms,
        through_ms: request.through_ms.max(from_ms.saturating_sub(1)),
        settled_ms: request.settled_ms,
    }
}

/// `claim` cut back to end at `through_ms`: never extended, never below `from_ms - 1`. `None` if nothing
/// changes.
pub(crate) fn truncate(claim: &JobClaim, through_ms: i64) -> Option<JobClaim> {
    let through_ms = claim
        .through_ms
        .min(through_ms.max(claim.from_ms.saturating_sub(1)));
    (through_ms != claim.through_ms).then(|| JobClaim {
        through_ms,
        ..claim.clone()
    })
}
