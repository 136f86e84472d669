//! Fire claims: `/claims/<job>` holds the job's `JobClaim` (or `null`), written in batched `multi`s that are
//! fenced three ways at once: the session's znode exists, the assignment's znode is at the version the
//! ownership was read from, and each claim's znode is at the version its old value was read from.
//!
//! The assignment is read from the coordinator's cache (kept fresh by a watch), not per call; a stale cache
//! fails the version check and is re-read. A batch that grants nothing new still commits a `multi` of just
//! the two checks, so its `NotOwner` answers and "the session is alive" are as of one instant.

use std::collections::BTreeMap;

use campanile::coordinator::{
    Assignment, ClaimResult, CoordError, CoordResult, FireClaim, JobClaim, NodeId, SessionId,
};
use campanile::job::JobId;
use zookeeper_client as zk;

use crate::coordinator::Inner;
use crate::error::{Kind, decode, expired, from_zk};
use crate::runs::session_error;
use crate::{limits, paths};

/// Rounds of re-reading after a fence check failed because something changed meanwhile.
const ATTEMPTS: u32 = 16;
/// Claims per `multi`: about 300 bytes each, well below ZooKeeper's 1 MiB request limit.
const MULTI_CLAIMS: usize = 1500;

/// A job's claim znode as read: `None` if the job does not exist.
type Read = Option<(Option<JobClaim>, i32)>;

impl Inner {
    /// Reads the claim znodes of `jobs`.
    async fn read_claims(
        &self,
        client: &zk::Client,
        jobs: &[JobId],
    ) -> CoordResult<BTreeMap<JobId, Read>> {
        let mut out = BTreeMap::new();
        for chunk in jobs.chunks(1024) {
            let reads = self
                .zk("read claims", Kind::Read, async {
                    Ok(futures::future::join_all(
                        chunk.iter().map(|job| client.get_data(&paths::claim(job))),
                    )
                    .await)
                })
                .await?
                .map_err(|e: zk::Error| from_zk(e, "read claims", Kind::Read))?;
            for (job, read) in chunk.iter().zip(reads) {
                let path = paths::claim(job);
                let value = match read {
                    Ok((data, stat)) => {
                        Some((decode::<Option<JobClaim>>(&path, &data)?, stat.version))
                    }
                    Err(zk::Error::NoNode) => None,
                    Err(e) => return Err(from_zk(e, &format!("read {path}"), Kind::Read)),
                };
                out.insert(job.clone(), value);
            }
        }
        Ok(out)
    }

    pub(crate) async fn claim_fires(
        &self,
        id: SessionId,
        claims: &[FireClaim],
    ) -> CoordResult<Vec<ClaimResult>> {
        limits::check_batch("claims", claims.len())?;
        claims.iter().try_for_each(limits::check_claim)?;
        let acting = self.acting(id).await?;
        let client = self.writer(&acting).await?;
        let mut jobs: Vec<JobId> = claims.iter().map(|c| c.job.clone()).collect();
        jobs.sort();
        jobs.dedup();
        let mut results: Vec<Option<ClaimResult>> = vec![None; claims.len()];
        let mut pending = jobs;
        let mut fresh_assignment = false;
        for _ in 0..ATTEMPTS {
            let (assignment_version, assignment) = self.cached_assignment(fresh_assignment).await?;
            let read = self.read_claims(&client, &pending).await?;
            let mut writes: Vec<(JobId, JobClaim, i32)> = Vec::new();
            for job in &pending {
                let current = read.get(job).cloned().flatten();
                let (claim, version) = match current {
                    None => (None, None),
                    Some((claim, version)) => (claim, Some(version)),
                };
                let decided = decide(
                    id,
                    &acting.node,
                    assignment.as_deref(),
                    claims,
                    job,
                    version.is_some(),
                    claim,
                    &mut results,
                );
                if let (Some(new), Some(version)) = (decided, version) {
                    writes.push((job.clone(), new, version));
                }
            }
            let mut batches: Vec<&[(JobId, JobClaim, i32)]> = writes.chunks(MULTI_CLAIMS).collect();
            if batches.is_empty() {
                batches.push(&[]);
            }
            let mut retry = false;
            for batch in batches {
                let mut multi = client.new_multi_writer();
                let built: Result<(), zk::Error> = (|| {
                    multi.add_check_version(&paths::session(id), 0)?;
                    multi.add_check_version(paths::ASSIGNMENT, assignment_version)?;
                    for (job, claim, version) in batch {
                        let data = serde_json::to_vec(&Some(claim))
                            .map_err(|_| zk::Error::MarshallingError)?;
                        multi.add_set_data(&paths::claim(job), &data, Some(*version))?;
                    }
                    Ok(())
                })();
                built.map_err(|e| from_zk(e, "claim_fires", Kind::Write))?;
                match self.zk("claim_fires", Kind::Write, multi.commit()).await? {
                    Ok(_) => {
                        let done: Vec<&JobId> = batch.iter().map(|(job, _, _)| job).collect();
                        pending.retain(|job| !done.contains(&job));
                    }
                    Err(zk::MultiWriteError::OperationFailed { index: 0, .. }) => {
                        return Err(expired(id));
                    }
                    Err(zk::MultiWriteError::OperationFailed { index: 1, .. }) => {
                        fresh_assignment = true;
                        retry = true;
                        break;
                    }
                    Err(zk::MultiWriteError::OperationFailed {
                        source: zk::Error::BadVersion | zk::Error::NoNode,
                        ..
                    }) => {
                        retry = true;
                        break;
                    }
                    Err(zk::MultiWriteError::OperationFailed { source, .. }) => {
                        return Err(from_zk(source, "claim_fires", Kind::Write));
                    }
                    Err(zk::MultiWriteError::RequestFailed { source }) => {
                        return Err(session_error(source, id, "claim_fires"));
                    }
                }
            }
            if !retry {
                // Jobs answered without a write (not owner, no such job, nothing new) are settled by the
                // checks of the batch that committed.
                return Ok(results
                    .into_iter()
                    .map(|r| r.unwrap_or(ClaimResult::NoSuchJob))
                    .collect());
            }
            for claim_index in 0..claims.len() {
                if pending.contains(&claims[claim_index].job) {
                    results[claim_index] = None;
                }
            }
        }
        Err(CoordError::Unavailable {
            message: format!(
                "claim_fires: the assignment or the claims changed under {ATTEMPTS} attempts"
            ),
            certainly_aborted: false,
        })
    }

    pub(crate) async fn release_claims(
        &self,
        id: SessionId,
        releases: &[(JobId, i64)],
    ) -> CoordResult<()> {
        limits::check_batch("releases", releases.len())?;
        let acting = self.acting(id).await?;
        let client = self.writer(&acting).await?;
        let mut jobs: Vec<JobId> = releases.iter().map(|(job, _)| job.clone()).collect();
        jobs.sort();
        jobs.dedup();
        for _ in 0..ATTEMPTS {
            let read = self.read_claims(&client, &jobs).await?;
            let mut released: BTreeMap<&JobId, (JobClaim, i32)> = BTreeMap::new();
            for (job, through_ms) in releases {
                let held = match released.get(job) {
                    Some((claim, version)) => Some((claim.clone(), *version)),
                    None => read
                        .get(job)
                        .cloned()
                        .flatten()
                        .and_then(|(claim, version)| claim.map(|c| (c, version))),
                };
                let Some((claim, version)) = held.filter(|(c, _)| c.session == id) else {
                    continue;
                };
                if let Some(cut) = truncate(&claim, *through_ms) {
                    released.insert(job, (cut, version));
                }
            }
            let mut multi = client.new_multi_writer();
            let built: Result<(), zk::Error> = (|| {
                multi.add_check_version(&paths::session(id), 0)?;
                for (job, (claim, version)) in &released {
                    let data = serde_json::to_vec(&Some(claim))
                        .map_err(|_| zk::Error::MarshallingError)?;
                    multi.add_set_data(&paths::claim(job), &data, Some(*version))?;
                }
                Ok(())
            })();
            built.map_err(|e| from_zk(e, "release_claims", Kind::Write))?;
            match self
                .zk("release_claims", Kind::Write, multi.commit())
                .await?
            {
                Ok(_) => return Ok(()),
                Err(zk::MultiWriteError::OperationFailed { index: 0, .. }) => {
                    return Err(expired(id));
                }
                Err(zk::MultiWriteError::OperationFailed {
                    source: zk::Error::BadVersion | zk::Error::NoNode,
                    ..
                }) => {}
                Err(zk::MultiWriteError::OperationFailed { source, .. }) => {
                    return Err(from_zk(source, "release_claims", Kind::Write));
                }
                Err(zk::MultiWriteError::RequestFailed { source }) => {
                    return Err(session_error(source, id, "release_claims"));
                }
            }
        }
        Err(CoordError::Unavailable {
            message: format!("release_claims: the claims changed under {ATTEMPTS} attempts"),
            certainly_aborted: false,
        })
    }

    pub(crate) async fn claim_of(&self, job: &JobId) -> CoordResult<Option<JobClaim>> {
        let client = self.shared.reader().await?;
        let read = self.read_claims(&client, std::slice::from_ref(job)).await?;
        Ok(read
            .into_values()
            .next()
            .flatten()
            .and_then(|(claim, _)| claim))
    }
}

/// Answers every claim of `job` in `claims` (in order; later items see the grants of earlier ones) and
/// returns the claim to write, if it changed. `exists` says whether the job exists; `held` is its claim.
#[allow(clippy::too_many_arguments)]
fn decide(
    id: SessionId,
    node: &NodeId,
    assignment: Option<&Assignment>,
    claims: &[FireClaim],
    job: &JobId,
    exists: bool,
    held: Option<JobClaim>,
    results: &mut [Option<ClaimResult>],
) -> Option<JobClaim> {
    let owner = assignment.and_then(|a| a.owners.get(job));
    let mut current = held.clone();
    for (i, request) in claims.iter().enumerate().filter(|(_, c)| &c.job == job) {
        if !exists {
            results[i] = Some(ClaimResult::NoSuchJob);
            continue;
        }
        if owner != Some(node) {
            results[i] = Some(ClaimResult::NotOwner {
                owner: owner.cloned(),
            });
            continue;
        }
        let (claim, previous) = match &current {
            // The holder extends: same start, and nothing it holds or settled goes back.
            Some(c) if c.session == id => (
                JobClaim {
                    through_ms: c.through_ms.max(request.through_ms),
                    settled_ms: c.settled_ms.max(request.settled_ms),
                    ..c.clone()
                },
                None,
            ),
            // A takeover starts after everything the previous holder was granted, and keeps its unsettled
            // instants unsettled until the new holder settles them.
            Some(c) => {
                let from_ms = request.from_ms.max(c.through_ms.saturating_add(1));
                let mut claim = new_claim(id, node, request, from_ms);
                claim.settled_ms = claim.settled_ms.min(c.settled_ms);
                (claim, Some(c.clone()))
            }
            None => (new_claim(id, node, request, request.from_ms), None),
        };
        current = Some(claim.clone());
        results[i] = Some(ClaimResult::Granted { claim, previous });
    }
    current.filter(|c| Some(c) != held.as_ref())
}

/// A fresh claim of `request` by `id`, starting at `from_ms` (empty if the request ends before that).
fn new_claim(id: SessionId, node: &NodeId, request: &FireClaim, from_ms: i64) -> JobClaim {
    JobClaim {
        session: id,
        node: node.clone(),
        from_ms,
        through_ms: request.through_ms.max(from_ms.saturating_sub(1)),
        settled_ms: request.settled_ms,
    }
}

/// `claim` ending at `through_ms` instead: never extended, never below `from_ms - 1`. `None` if unchanged.
fn truncate(claim: &JobClaim, through_ms: i64) -> Option<JobClaim> {
    let through_ms = claim
        .through_ms
        .min(through_ms.max(claim.from_ms.saturating_sub(1)));
    (through_ms != claim.through_ms).then(|| JobClaim {
        through_ms,
        ..claim.clone()
    })
}
