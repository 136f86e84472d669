//! Fire claims: `/claims/<job>` holds the job's `JobClaim` (or `null`), written in batched `multi`s that are
//! fenced three ways at once: the session's znode exists, the assignment's znode is at the version the
//! ownership was read from, and each claim's znode is at the version its old value was read from.
//!
//! The assignment is read from the coordinator's cache (kept fresh by a watch), not per call; a stale cache
//! fails the version check and is re-read. A batch that grants nothing new still commits a `multi` of just
//! the two checks, so its `NotOwner` answers and "the session is alive" are as of one instant.

use std::collections::BTreeMap;

use campanile::coordinator::{
    ClaimResult, CoordError, CoordResult, FireClaim, JobClaim, SessionId, rules,
};
use campanile::job::JobId;
use zookeeper_client as zk;

use crate::backoff;
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
        for attempt in 0..ATTEMPTS {
            if attempt > 0 {
                backoff::raced(id.0, attempt - 1).await;
            }
            let (assignment_version, assignment) = self.cached_assignment(fresh_assignment).await?;
            let read = self.read_claims(&client, &pending).await?;
            // Only the requests of jobs not yet settled are decided again.
            let asked: Vec<usize> = (0..claims.len())
                .filter(|&i| pending.binary_search(&claims[i].job).is_ok())
                .collect();
            let owners = assignment.as_deref().map(|a| &a.owners);
            let plan = rules::plan_claims(
                id,
                &acting.node,
                asked.iter().map(|&i| &claims[i]),
                |job| {
                    read.get(job)
                        .and_then(Option::as_ref)
                        .map(|(claim, _)| claim.as_ref())
                },
                |job| owners.and_then(|o| o.get(job)),
            );
            for (&i, result) in asked.iter().zip(plan.results) {
                results[i] = Some(result);
            }
            let writes: Vec<(JobId, JobClaim, i32)> = plan
                .writes
                .into_iter()
                .filter_map(|(job, claim)| {
                    let version = read.get(&job).and_then(Option::as_ref).map(|(_, v)| *v)?;
                    Some((job, claim, version))
                })
                .collect();
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
            source: None,
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
        for attempt in 0..ATTEMPTS {
            if attempt > 0 {
                backoff::raced(id.0, attempt - 1).await;
            }
            let read = self.read_claims(&client, &jobs).await?;
            let held = |job: &JobId| {
                read.get(job)
                    .and_then(Option::as_ref)
                    .and_then(|(claim, _)| claim.as_ref())
            };
            let released: BTreeMap<JobId, (JobClaim, i32)> =
                rules::plan_releases(id, releases, held)
                    .into_iter()
                    .filter_map(|(job, claim)| {
                        let version = read.get(&job).and_then(Option::as_ref).map(|(_, v)| *v)?;
                        Some((job, (claim, version)))
                    })
                    .collect();
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
            source: None,
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
