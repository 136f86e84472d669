//! Fire claims: `claims/<job>` holds the job's `JobClaim`. A batch is read in one transaction (the session
//! key, the assignment key, each job's key and claim), decided with `campanile::coordinator::rules`, and
//! written in one transaction that compares everything the decision read; a race re-reads from the failed
//! transaction's own failure branch.

use std::collections::{BTreeMap, HashMap, HashSet};

use campanile::coordinator::{
    ClaimResult, CoordResult, FireClaim, JobClaim, NodeId, SessionId, rules,
};
use campanile::job::JobId;
use etcd_client::{Compare, CompareOp, KeyValue, Txn, TxnOp};
use tracing::debug;

use crate::backoff;
use crate::coordinator::{ATTEMPTS, Inner, contended, distinct, expired};
use crate::error::Kind;
use crate::txn::{Answers, ReadAt, Reads};
use crate::{limits, stored};

/// What one read returned about a job.
#[derive(Debug, Clone, Default)]
struct JobRead {
    /// The job key's mod revision; `None` if the job does not exist.
    job_revision: Option<i64>,
    /// The job's claim, with its key's mod revision.
    claim: Option<(JobClaim, i64)>,
}

impl Inner {
    pub(crate) async fn claim_fires(
        &self,
        session: SessionId,
        claims: &[FireClaim],
    ) -> CoordResult<Vec<ClaimResult>> {
        limits::check_batch("claims", claims.len())?;
        claims.iter().try_for_each(limits::check_claim)?;
        let node = self.session_node(session).await?.id;
        let jobs = distinct(claims.iter().map(|c| &c.job));
        // Two compares per job plus two per transaction.
        let per_txn = (self.max_ops().saturating_sub(2) / 2).max(1);
        let mut results: Vec<Option<ClaimResult>> = vec![None; claims.len()];
        for chunk in jobs.chunks(per_txn) {
            let in_chunk: HashSet<&JobId> = chunk.iter().copied().collect();
            let (indices, requests): (Vec<usize>, Vec<&FireClaim>) = claims
                .iter()
                .enumerate()
                .filter(|(_, c)| in_chunk.contains(&c.job))
                .unzip();
            let answers = self.claim_chunk(session, &node, chunk, &requests).await?;
            for (i, answer) in indices.into_iter().zip(answers) {
                results[i] = Some(answer);
            }
        }
        Ok(results.into_iter().flatten().collect())
    }

    /// Claims for the requests of a few jobs (at most one transaction's worth).
    ///
    /// One read, then one transaction per attempt: it writes the changed claims if nothing read has
    /// changed, and otherwise reads everything again in its failure branch, so a race costs one round trip.
    async fn claim_chunk(
        &self,
        session: SessionId,
        node: &NodeId,
        jobs: &[&JobId],
        requests: &[&FireClaim],
    ) -> CoordResult<Vec<ClaimResult>> {
        let mut reads = Reads::new();
        let session_key = reads.count(self.keys().session(session));
        let assignment_key = reads.keys_only(self.keys().assignment());
        let job_keys: Vec<(ReadAt, ReadAt)> = jobs
            .iter()
            .map(|job| {
                (
                    reads.keys_only(self.keys().job(job)),
                    reads.get(self.keys().claim(job), None),
                )
            })
            .collect();
        let response = self
            .txn("read claims", Kind::Read, Txn::new().and_then(reads.ops()))
            .await?;
        let mut answers = Answers::of(&response, &reads)?;
        for attempt in 0..ATTEMPTS {
            if answers.count(session_key) == 0 {
                return Err(expired(session));
            }
            let assignment_revision = answers
                .first(assignment_key)
                .map_or(0, KeyValue::mod_revision);
            let assignment = self.assignment_at(assignment_revision).await?;
            let mut read = HashMap::new();
            for (job, &(job_at, claim_at)) in jobs.iter().zip(&job_keys) {
                let job_kv = answers.first(job_at);
                let claim = match answers.first(claim_at) {
                    Some(kv) => Some((
                        stored::decode::<JobClaim>(kv.key(), kv.value())?,
                        kv.mod_revision(),
                    )),
                    None => None,
                };
                read.insert(
                    (*job).clone(),
                    JobRead {
                        job_revision: job_kv.map(KeyValue::mod_revision),
                        claim,
                    },
                );
            }
            let owners = assignment.as_deref().map(|a| &a.owners);
            let plan = rules::plan_claims(
                session,
                node,
                requests.iter().copied(),
                |job| {
                    read.get(job)
                        .filter(|r| r.job_revision.is_some())
                        .map(|r| r.claim.as_ref().map(|(c, _)| c))
                },
                |job| owners.and_then(|o| o.get(job)),
            );
            let (results, changed) = (plan.results, plan.writes);
            if changed.is_empty() {
                return Ok(results);
            }
            let mut compares = vec![
                self.session_exists(session),
                Compare::mod_revision(
                    self.keys().assignment(),
                    CompareOp::Equal,
                    assignment_revision,
                ),
            ];
            let mut puts = Vec::with_capacity(changed.len());
            for (job, claim) in &changed {
                let seen = &read[job];
                compares.push(Compare::mod_revision(
                    self.keys().job(job),
                    CompareOp::Equal,
                    seen.job_revision.unwrap_or(0),
                ));
                compares.push(Compare::mod_revision(
                    self.keys().claim(job),
                    CompareOp::Equal,
                    seen.claim.as_ref().map_or(0, |(_, r)| *r),
                ));
                puts.push(TxnOp::put(
                    self.keys().claim(job),
                    stored::encode(claim)?,
                    None,
                ));
            }
            let txn = Txn::new()
                .when(compares)
                .and_then(puts)
                .or_else(reads.ops());
            let response = self.txn("claim fires", Kind::Write, txn).await?;
            if response.succeeded() {
                return Ok(results);
            }
            debug!(session = %session, attempt, "claim transaction raced, planning again");
            answers = Answers::of(&response, &reads)?;
            backoff::raced(session, attempt).await;
        }
        Err(contended("claim_fires"))
    }

    pub(crate) async fn release_claims(
        &self,
        session: SessionId,
        releases: &[(JobId, i64)],
    ) -> CoordResult<()> {
        limits::check_batch("releases", releases.len())?;
        if !self.session_alive(session).await? {
            return Err(expired(session));
        }
        let jobs = distinct(releases.iter().map(|(j, _)| j));
        let per_txn = self.max_ops().saturating_sub(1).max(1);
        for chunk in jobs.chunks(per_txn) {
            let in_chunk: HashSet<&JobId> = chunk.iter().copied().collect();
            let items: Vec<&(JobId, i64)> = releases
                .iter()
                .filter(|(j, _)| in_chunk.contains(j))
                .collect();
            self.release_chunk(session, chunk, &items).await?;
        }
        Ok(())
    }

    /// Releases for a few jobs (at most one transaction's worth).
    async fn release_chunk(
        &self,
        session: SessionId,
        jobs: &[&JobId],
        releases: &[&(JobId, i64)],
    ) -> CoordResult<()> {
        for attempt in 0..ATTEMPTS {
            let mut reads = Reads::new();
            let session_key = reads.count(self.keys().session(session));
            let claim_keys: Vec<ReadAt> = jobs
                .iter()
                .map(|job| reads.get(self.keys().claim(job), None))
                .collect();
            let response = self
                .txn("read claims", Kind::Read, Txn::new().and_then(reads.ops()))
                .await?;
            let answers = Answers::of(&response, &reads)?;
            if answers.count(session_key) == 0 {
                return Err(expired(session));
            }
            let mut held: BTreeMap<&JobId, (JobClaim, i64)> = BTreeMap::new();
            for (job, &claim_at) in jobs.iter().zip(&claim_keys) {
                if let Some(kv) = answers.first(claim_at) {
                    let claim: JobClaim = stored::decode(kv.key(), kv.value())?;
                    if claim.session == session {
                        held.insert(*job, (claim, kv.mod_revision()));
                    }
                }
            }
            let changed = rules::plan_releases(session, releases.iter().copied(), |job| {
                held.get(job).map(|(c, _)| c)
            });
            if changed.is_empty() {
                return Ok(());
            }
            let mut compares = vec![self.session_exists(session)];
            let mut puts = Vec::new();
            for (job, claim) in &changed {
                compares.push(Compare::mod_revision(
                    self.keys().claim(job),
                    CompareOp::Equal,
                    held[job].1,
                ));
                puts.push(TxnOp::put(
                    self.keys().claim(job),
                    stored::encode(claim)?,
                    None,
                ));
            }
            let txn = Txn::new().when(compares).and_then(puts);
            if self
                .txn("release claims", Kind::Write, txn)
                .await?
                .succeeded()
            {
                return Ok(());
            }
            backoff::raced(session, attempt).await;
        }
        Err(contended("release_claims"))
    }

    pub(crate) async fn claim_of(&self, job: &JobId) -> CoordResult<Option<JobClaim>> {
        let response = self.get("read claim", self.keys().claim(job), None).await?;
        response
            .kvs()
            .first()
            .map(|kv| stored::decode(kv.key(), kv.value()))
            .transpose()
    }
}
