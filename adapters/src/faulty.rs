//! `FaultyCoordinator`: a `Coordinator` that wraps another and injects delays, failures and partitions,
//! for the engine's cluster simulation and for testing how callers survive an unreliable backend.

mod breaks;
mod control;
mod sessions;
mod shown;

use std::collections::{BTreeMap, BTreeSet};
use std::future::Future;
use std::sync::Arc;

use async_trait::async_trait;
use campanile::coordinator::{
    Assignment, ClaimResult, CoordResult, FireClaim, JobClaim, JobEvent, JobSnapshot, JobWatch,
    Key, Leader, Members, NodeId, NodeInfo, Precondition, RecordResult, RunQuery, Session,
    SessionId, SessionState,
};
use campanile::{CoordError, Coordinator, Job, JobId, RunRecord};
use tokio::sync::watch;

pub use breaks::ContractBreak;
pub use control::{Fault, FaultControl, FaultStats, Method};
use shown::{forward_jobs, made_up_grant, shown_members};

/// Wraps any coordinator and injects the faults its [`FaultControl`] asks for. With no fault on it is
/// transparent (it passes the conformance suite).
///
/// - **Delay**: a forwarded call first sleeps (tokio time) for a drawn duration.
/// - **Failure**: a call fails with `Unavailable`; [`Fault::Aborted`] does not forward it
///   (`certainly_aborted: true`), [`Fault::ReplyLost`] forwards it, so a write happens, and then fails
///   (`certainly_aborted: false`).
/// - **Fail after N calls**: a coordinator that dies after a while.
/// - **Partition of one session**: every call made with that session id fails without being forwarded, so
///   its keep-alives are lost and the backend expires it after its TTL; `watch_session` receivers show
///   `Suspended` meanwhile. Calls that name no session (reads, job writes, `open_session`) are not affected:
///   to cut a whole node off, give it its own wrapper and fail all its calls.
///
/// - **Contract breaks**: with [`FaultControl::break_contract`], the wrapper breaks one line of the
///   `Coordinator` contract on purpose ([`ContractBreak`]), to check that the conformance suite catches it.
///   With no break on, nothing of it runs and the wrapper is transparent.
///
/// Several wrappers may share one control (one per simulated node over one backend, say).
#[derive(Clone)]
pub struct FaultyCoordinator {
    inner: Arc<dyn Coordinator>,
    control: FaultControl,
    /// The greatest epoch answered before this wrapper was made (for [`ContractBreak::EpochsRestartAtZero`]).
    epoch_floor: u64,
    /// The session opened last on this wrapper (for [`ContractBreak::OneSessionPerInstance`]).
    last_session: Arc<std::sync::Mutex<Option<SessionId>>>,
}

impl FaultyCoordinator {
    /// Wraps `inner` with a new control whose RNG is seeded with `seed`.
    pub fn new(inner: Arc<dyn Coordinator>, seed: u64) -> Self {
        Self::with_control(inner, FaultControl::new(seed))
    }

    /// Wraps `inner` with an existing (possibly shared) control.
    pub fn with_control(inner: Arc<dyn Coordinator>, control: FaultControl) -> Self {
        let epoch_floor = control.with_memory(|m| m.max_epoch);
        Self {
            inner,
            control,
            epoch_floor,
            last_session: Arc::default(),
        }
    }

    /// The control handle (clone it to keep it after moving the wrapper into an `Arc`).
    pub fn control(&self) -> &FaultControl {
        &self.control
    }

    /// The wrapped coordinator, to look at the state without faults.
    pub fn inner(&self) -> &Arc<dyn Coordinator> {
        &self.inner
    }

    /// Whether `line` is broken.
    fn broken(&self, line: ContractBreak) -> bool {
        self.control.is_broken(line)
    }

    /// Runs one call through the control's plan.
    async fn call<T, Fut>(
        &self,
        method: Method,
        session: Option<SessionId>,
        forward: impl FnOnce() -> Fut,
    ) -> CoordResult<T>
    where
        Fut: Future<Output = CoordResult<T>>,
    {
        let plan = self.control.plan(method, session);
        if plan.abort {
            let why = match session {
                Some(s) if self.control.is_partitioned(s) => format!("session {s} is partitioned"),
                _ => "request dropped".to_owned(),
            };
            return Err(CoordError::Unavailable {
                message: format!("injected fault: {method}: {why}"),
                certainly_aborted: true,
                source: None,
            });
        }
        if let Some(delay) = plan.delay {
            tokio::time::sleep(delay).await;
        }
        let result = forward().await;
        if plan.lose_reply {
            tracing::debug!(%method, ok = result.is_ok(), "injected fault: reply lost");
            return Err(CoordError::Unavailable {
                message: format!("injected fault: {method}: reply lost"),
                certainly_aborted: false,
                source: None,
            });
        }
        result
    }
}

fn is_expired<T>(result: &CoordResult<T>) -> bool {
    matches!(result, Err(CoordError::SessionExpired { .. }))
}

/// A receiver that holds `value` and never changes (its sender lives as long as the receiver).
fn frozen<T: Send + Sync + 'static>(value: T) -> watch::Receiver<T> {
    let (tx, rx) = watch::channel(value);
    tokio::spawn(async move { tx.closed().await });
    rx
}

#[async_trait]
impl Coordinator for FaultyCoordinator {
    fn backend(&self) -> &'static str {
        self.inner.backend()
    }

    async fn open_session(&self, node: NodeInfo, ttl: std::time::Duration) -> CoordResult<Session> {
        self.wrapped_open_session(node, ttl).await
    }

    async fn keep_alive(&self, session: SessionId) -> CoordResult<()> {
        self.wrapped_keep_alive(session).await
    }

    async fn drain(&self, session: SessionId) -> CoordResult<()> {
        self.wrapped_drain(session).await
    }

    async fn close_session(&self, session: SessionId) -> CoordResult<()> {
        self.wrapped_close_session(session).await
    }

    async fn watch_session(
        &self,
        session: SessionId,
    ) -> CoordResult<watch::Receiver<SessionState>> {
        self.wrapped_watch_session(session).await
    }

    async fn members(&self) -> CoordResult<Members> {
        let mut members = self
            .call(Method::Members, None, || self.inner.members())
            .await?;
        shown_members(&self.control, &mut members);
        Ok(members)
    }

    async fn watch_members(&self) -> CoordResult<watch::Receiver<Members>> {
        use ContractBreak as B;
        let mut inner = self
            .call(Method::WatchMembers, None, || self.inner.watch_members())
            .await?;
        let misses_expiry = self.broken(B::MembersWatchMissesExpiry);
        let adjusted = [
            B::NewestMemberHidden,
            B::ClosedMemberStays,
            B::ExpiredMemberStays,
            B::MembersVersionFrozen,
        ]
        .into_iter()
        .any(|b| self.broken(b));
        let mut initial = inner.borrow_and_update().clone();
        shown_members(&self.control, &mut initial);
        if self.broken(B::MembersWatchFrozen) {
            return Ok(frozen(initial));
        }
        if !(misses_expiry || adjusted) {
            return Ok(inner);
        }
        let (tx, rx) = watch::channel(initial);
        let control = self.control.clone();
        tokio::spawn(async move {
            loop {
                tokio::select! {
                    biased;
                    () = tx.closed() => return,
                    changed = inner.changed() => if changed.is_err() { return },
                }
                let mut now = inner.borrow_and_update().clone();
                if misses_expiry {
                    let closed = control.with_memory(|m| m.closed.clone());
                    let before = tx.borrow().members.clone();
                    for member in before {
                        if !closed.contains(&member.session)
                            && !now.members.iter().any(|m| m.session == member.session)
                        {
                            now.members.push(member);
                        }
                    }
                    now.members.sort_by(|a, b| a.node.id.cmp(&b.node.id));
                }
                shown_members(&control, &mut now);
                tx.send_replace(now);
            }
        });
        Ok(rx)
    }

    async fn campaign(&self, session: SessionId) -> CoordResult<Option<Leader>> {
        use ContractBreak as B;
        let result = self
            .call(Method::Campaign, Some(session), || {
                self.inner.campaign(session)
            })
            .await;
        if is_expired(&result) && self.broken(B::ExpiredCampaignLoses) {
            return Ok(None);
        }
        let Some(mut leader) = result? else {
            if self.broken(B::LosersAlsoLead)
                && let Ok(Some(winner)) = self.inner.leader().await
                && let Ok(members) = self.inner.members().await
                && let Some(me) = members.members.iter().find(|m| m.session == session)
            {
                return Ok(Some(Leader {
                    node: me.node.id.clone(),
                    session,
                    epoch: winner.epoch,
                }));
            }
            return Ok(None);
        };
        let outlives = self.broken(B::LeadershipOutlivesSession);
        let remember = outlives || self.broken(B::ExpiredLeaderShown);
        let bump = self.broken(B::RecampaignBumpsEpoch);
        let blocked = self.control.with_memory(|m| {
            m.max_epoch = m.max_epoch.max(leader.epoch);
            let blocked = outlives
                && m.last_leader
                    .as_ref()
                    .is_some_and(|(last, resigned)| last.session != session && !resigned);
            if remember && !blocked {
                m.last_leader = Some((leader.clone(), false));
            }
            if bump {
                let again = m.led.insert(session, leader.epoch) == Some(leader.epoch);
                if again {
                    leader.epoch += 1;
                }
            }
            blocked
        });
        if blocked {
            return Ok(None);
        }
        if self.broken(B::EpochAlwaysOne) {
            leader.epoch = 1;
        }
        if self.broken(B::EpochsRestartAtZero) {
            leader.epoch = leader.epoch.saturating_sub(self.epoch_floor).max(1);
        }
        Ok(Some(leader))
    }

    async fn leader(&self) -> CoordResult<Option<Leader>> {
        use ContractBreak as B;
        if self.broken(B::LeaderNeverSeen) {
            return self.call(Method::Leader, None, || async { Ok(None) }).await;
        }
        let mut leader = self
            .call(Method::Leader, None, || self.inner.leader())
            .await?;
        if self.broken(B::ExpiredLeaderShown) {
            leader = self.control.with_memory(|m| match leader {
                Some(leader) => {
                    m.last_leader = Some((leader.clone(), false));
                    Some(leader)
                }
                None => m.last_leader.as_ref().map(|(l, _)| l.clone()),
            });
        }
        if let Some(leader) = leader.as_mut()
            && self.broken(B::EpochAlwaysOne)
        {
            leader.epoch = 1;
        }
        Ok(leader)
    }

    async fn resign(&self, session: SessionId) -> CoordResult<()> {
        use ContractBreak as B;
        if self.broken(B::ResignIgnored) {
            return self
                .call(Method::Resign, Some(session), || async { Ok(()) })
                .await;
        }
        if self.broken(B::NonLeaderResignFails)
            && !matches!(self.inner.leader().await, Ok(Some(l)) if l.session == session)
        {
            return self
                .call(Method::Resign, Some(session), || async {
                    Err(CoordError::Fenced {
                        reason: format!("session {session} is not leader"),
                    })
                })
                .await;
        }
        let result = self
            .call(Method::Resign, Some(session), || self.inner.resign(session))
            .await;
        if is_expired(&result) && self.broken(B::ClosedSessionStillResigns) {
            return Ok(());
        }
        if result.is_ok() && self.broken(B::LeadershipOutlivesSession) {
            self.control.with_memory(|m| {
                if let Some((last, resigned)) = m.last_leader.as_mut()
                    && last.session == session
                {
                    *resigned = true;
                }
            });
        }
        result
    }

    async fn campaign_turn(&self, session: SessionId) -> CoordResult<()> {
        // A hint, not a call of the contract: no fault is injected into it.
        self.inner.campaign_turn(session).await
    }
    async fn put_job(&self, mut job: Job, precondition: Precondition) -> CoordResult<u64> {
        use ContractBreak as B;
        if self.broken(B::LabelsDropped) {
            job.spec_mut().labels.clear();
        }
        let asked = if self.broken(B::PreconditionIgnored) {
            Precondition::Any
        } else {
            precondition
        };
        let id = job.id.clone();
        let result = self
            .call(Method::PutJob, None, || self.inner.put_job(job, asked))
            .await;
        if matches!(result, Err(CoordError::Conflict { .. }))
            && matches!(precondition, Precondition::Revision(_))
            && self.broken(B::LosingWriterSucceeds)
        {
            let current = self.inner.get_job(&id).await?;
            return Ok(current.map_or(0, |j| j.revision));
        }
        if result.is_ok() && self.broken(B::RevisionAlwaysOne) {
            return Ok(1);
        }
        result
    }

    async fn put_jobs(&self, jobs: Vec<Job>) -> CoordResult<Vec<u64>> {
        use ContractBreak as B;
        let unchecked = self.broken(B::BatchUnchecked);
        if unchecked || self.broken(B::BatchConflictKeepsEarlier) {
            if !unchecked {
                use campanile::coordinator::limits;
                limits::check_jobs(&jobs, limits::MAX_JOB_BYTES)?;
            }
            let mut revisions = Vec::with_capacity(jobs.len());
            for job in jobs {
                revisions.push(self.put_job(job, Precondition::Absent).await?);
            }
            return Ok(revisions);
        }
        let result = self
            .call(Method::PutJobs, None, || self.inner.put_jobs(jobs))
            .await;
        match result {
            Ok(revisions) if self.broken(B::BatchRevisionsOne) => Ok(vec![1; revisions.len()]),
            other => other,
        }
    }

    async fn delete_job(&self, id: &JobId, precondition: Precondition) -> CoordResult<u64> {
        use ContractBreak as B;
        let asked = match precondition {
            Precondition::Revision(_) if self.broken(B::DeleteIgnoresRevision) => Precondition::Any,
            other => other,
        };
        let kept = if self.broken(B::DeletedRunsStay) {
            let query = RunQuery {
                limit: usize::MAX,
                ..RunQuery::default()
            };
            self.inner.runs(id, query).await.ok()
        } else {
            None
        };
        let result = self
            .call(Method::DeleteJob, None, || self.inner.delete_job(id, asked))
            .await;
        if matches!(result, Err(CoordError::NotFound { .. }))
            && self.broken(B::DeleteOfMissingSucceeds)
        {
            return Ok(0);
        }
        if result.is_ok()
            && let Some(runs) = kept
        {
            self.control
                .with_memory(|m| m.deleted_runs.insert(id.clone(), runs));
        }
        result
    }

    async fn get_job(&self, id: &JobId) -> CoordResult<Option<Job>> {
        let job = self
            .call(Method::GetJob, None, || self.inner.get_job(id))
            .await?;
        if self.broken(ContractBreak::StaleGet) {
            return Ok(self
                .control
                .with_memory(|m| m.first_get.entry(id.clone()).or_insert(job).clone()));
        }
        Ok(job)
    }

    async fn list_jobs(&self) -> CoordResult<JobSnapshot> {
        let mut snapshot = self
            .call(Method::ListJobs, None, || self.inner.list_jobs())
            .await?;
        if self.broken(ContractBreak::ListUnsorted) {
            snapshot.jobs.reverse();
        }
        Ok(snapshot)
    }

    async fn watch_jobs(&self, after_revision: u64) -> CoordResult<JobWatch> {
        let skip = self.broken(ContractBreak::WatchSkipsEvents)
            || self.broken(ContractBreak::BatchEventsSkipped);
        let hide = self.broken(ContractBreak::CompactionHidden);
        let result = self
            .call(Method::WatchJobs, None, || {
                self.inner.watch_jobs(after_revision)
            })
            .await;
        match result {
            Err(CoordError::Compacted { .. }) if hide => {
                let (tx, rx) = tokio::sync::mpsc::channel::<CoordResult<JobEvent>>(1);
                tokio::spawn(async move { tx.closed().await });
                Ok(rx)
            }
            Ok(watch) if skip || hide => Ok(forward_jobs(watch, skip, hide)),
            other => other,
        }
    }

    async fn publish_assignment(
        &self,
        session: SessionId,
        epoch: u64,
        owners: BTreeMap<JobId, NodeId>,
    ) -> CoordResult<u64> {
        use ContractBreak as B;
        let result = self
            .call(Method::PublishAssignment, Some(session), || {
                self.inner.publish_assignment(session, epoch, owners)
            })
            .await;
        if matches!(result, Err(CoordError::Fenced { .. })) && self.broken(B::FencedPublishSucceeds)
        {
            let current = self.inner.assignment().await?;
            return Ok(current.map_or(0, |a| a.version));
        }
        if result.is_ok() && self.broken(B::PublishVersionAlwaysOne) {
            return Ok(1);
        }
        result
    }

    async fn assignment(&self) -> CoordResult<Option<Arc<Assignment>>> {
        let assignment = self
            .call(Method::Assignment, None, || self.inner.assignment())
            .await?;
        if self.broken(ContractBreak::StaleAssignment) {
            return Ok(self
                .control
                .with_memory(|m| m.first_assignment.get_or_insert(assignment).clone()));
        }
        Ok(assignment)
    }

    async fn watch_assignment(&self) -> CoordResult<watch::Receiver<Option<Arc<Assignment>>>> {
        let rx = self
            .call(Method::WatchAssignment, None, || {
                self.inner.watch_assignment()
            })
            .await?;
        if self.broken(ContractBreak::AssignmentWatchFrozen) {
            let initial = rx.borrow().clone();
            return Ok(frozen(initial));
        }
        Ok(rx)
    }

    async fn claim_fires(
        &self,
        session: SessionId,
        claims: &[FireClaim],
    ) -> CoordResult<Vec<ClaimResult>> {
        use ContractBreak as B;
        let concurrent = self.broken(B::ConcurrentNonOwnerGranted);
        if concurrent {
            self.control.with_memory(|m| m.claims_in_flight += 1);
            // Let concurrent claimers start too, so that they are seen in flight.
            tokio::task::yield_now().await;
        }
        let result = self
            .call(Method::ClaimFires, Some(session), || {
                self.inner.claim_fires(session, claims)
            })
            .await;
        let overlapping = concurrent
            && self.control.with_memory(|m| {
                m.claims_in_flight -= 1;
                m.claims_in_flight > 0
            });
        if is_expired(&result) && self.broken(B::ExpiredClaimsAnswered) {
            return Ok(vec![ClaimResult::NotOwner { owner: None }; claims.len()]);
        }
        let mut results = result?;
        let breaks: BTreeSet<ContractBreak> = [
            B::NonOwnerGranted,
            B::MissingJobNotOwner,
            B::TakeoverOverlaps,
            B::ExtensionMovesFrom,
            B::TakeoverRaisesSettled,
            B::PreviousForgotten,
            B::CloseReleasesClaims,
        ]
        .into_iter()
        .filter(|b| self.broken(*b))
        .collect();
        if breaks.is_empty() && !overlapping {
            return Ok(results);
        }
        for (request, result) in claims.iter().zip(&mut results) {
            match result {
                ClaimResult::NotOwner { owner: Some(owner) }
                    if overlapping || breaks.contains(&B::NonOwnerGranted) =>
                {
                    *result = made_up_grant(session, owner.clone(), request);
                }
                ClaimResult::NoSuchJob if breaks.contains(&B::MissingJobNotOwner) => {
                    *result = ClaimResult::NotOwner { owner: None };
                }
                ClaimResult::Granted { claim, previous } => {
                    if breaks.contains(&B::PreviousForgotten)
                        && !self
                            .control
                            .with_memory(|m| m.granted.insert((session, request.job.clone())))
                    {
                        *previous = None;
                        claim.previous = None;
                    }
                    if breaks.contains(&B::CloseReleasesClaims) {
                        self.control.with_memory(|m| {
                            m.held
                                .entry(session)
                                .or_default()
                                .insert(request.job.clone())
                        });
                    }
                    match previous {
                        Some(previous) => {
                            if breaks.contains(&B::TakeoverOverlaps) {
                                claim.from_ms = claim.from_ms.min(previous.through_ms);
                            }
                            if breaks.contains(&B::TakeoverRaisesSettled) {
                                claim.settled_ms = claim.settled_ms.max(request.settled_ms);
                            }
                        }
                        None => {
                            if breaks.contains(&B::ExtensionMovesFrom) {
                                claim.from_ms = request.from_ms;
                            }
                        }
                    }
                }
                _ => {}
            }
        }
        Ok(results)
    }

    async fn release_claims(
        &self,
        session: SessionId,
        releases: &[(JobId, i64)],
    ) -> CoordResult<()> {
        use ContractBreak as B;
        if self.broken(B::ReleaseIgnored) {
            return self
                .call(Method::ReleaseClaims, Some(session), || async { Ok(()) })
                .await;
        }
        let foreign_fails = self.broken(B::ReleaseOfForeignFails);
        let extends = self.broken(B::ReleaseExtends);
        if foreign_fails || extends {
            for (job, through_ms) in releases {
                let claim = self.inner.claim_of(job).await?;
                match claim {
                    Some(claim)
                        if claim.session == session
                            && extends
                            && claim.through_ms < *through_ms =>
                    {
                        let extension = FireClaim {
                            job: job.clone(),
                            from_ms: claim.from_ms,
                            through_ms: *through_ms,
                            settled_ms: claim.settled_ms,
                        };
                        self.inner.claim_fires(session, &[extension]).await?;
                    }
                    Some(claim) if claim.session == session => {}
                    _ if foreign_fails => {
                        return self
                            .call(Method::ReleaseClaims, Some(session), || async {
                                Err(CoordError::Conflict {
                                    key: Key::Job(job.clone()),
                                    expected: format!("held by session {session}"),
                                    actual: "held by another session or none".to_owned(),
                                })
                            })
                            .await;
                    }
                    _ => {}
                }
            }
        }
        let result = self
            .call(Method::ReleaseClaims, Some(session), || {
                self.inner.release_claims(session, releases)
            })
            .await;
        if is_expired(&result) && self.broken(B::ClosedSessionStillResigns) {
            return Ok(());
        }
        result
    }

    async fn claim_of(&self, job: &JobId) -> CoordResult<Option<JobClaim>> {
        let claim = self
            .call(Method::ClaimOf, None, || self.inner.claim_of(job))
            .await?;
        if self.broken(ContractBreak::StaleClaimOf) {
            return Ok(self
                .control
                .with_memory(|m| m.first_claim.entry(job.clone()).or_insert(claim).clone()));
        }
        Ok(claim)
    }

    async fn record_runs(
        &self,
        session: SessionId,
        records: Vec<RunRecord>,
    ) -> CoordResult<Vec<RecordResult>> {
        use ContractBreak as B;
        if self.broken(B::MissingJobRecordsFail) {
            for record in &records {
                if self.inner.get_job(&record.job).await?.is_none() {
                    let id = record.job.clone();
                    return self
                        .call(Method::RecordRuns, Some(session), || async move {
                            Err(CoordError::job_not_found(&id))
                        })
                        .await;
                }
            }
        }
        let count = records.len();
        let result = self
            .call(Method::RecordRuns, Some(session), || {
                self.inner.record_runs(session, records)
            })
            .await;
        if is_expired(&result) && self.broken(B::ExpiredRecordsAnswered) {
            return Ok(vec![RecordResult::Recorded; count]);
        }
        let mut results = result?;
        if self.broken(B::DuplicateRecorded) {
            results.fill(RecordResult::Recorded);
        }
        Ok(results)
    }

    async fn runs(&self, job: &JobId, query: RunQuery) -> CoordResult<Vec<RunRecord>> {
        use ContractBreak as B;
        let mut runs = self
            .call(Method::Runs, None, || self.inner.runs(job, query))
            .await?;
        if runs.is_empty() && self.broken(B::DeletedRunsStay) {
            runs = self
                .control
                .with_memory(|m| m.deleted_runs.get(job).cloned().unwrap_or_default());
        }
        if self.broken(B::HistoryTrimmed) {
            runs.truncate(50);
        }
        if self.broken(B::RunsOldestFirst) {
            runs.reverse();
        }
        Ok(runs)
    }
}
