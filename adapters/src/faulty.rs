//! `FaultyCoordinator`: a `Coordinator` that wraps another and injects delays, failures and partitions,
//! for the engine's cluster simulation and for testing how callers survive an unreliable backend.

mod control;

use std::collections::BTreeMap;
use std::future::Future;
use std::sync::Arc;

use async_trait::async_trait;
use campanile::coordinator::{
    Assignment, ClaimResult, CoordResult, FireClaim, JobClaim, JobSnapshot, JobWatch, Leader,
    Membership, NodeId, NodeInfo, Precondition, RecordResult, RunQuery, Session, SessionId,
    SessionState,
};
use campanile::{CoordError, Coordinator, Job, JobId, RunRecord};
use tokio::sync::watch;

pub use control::{ContractBreak, Fault, FaultControl, FaultStats, Method};

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
/// Several wrappers may share one control (one per simulated node over one backend, say).
#[derive(Clone)]
pub struct FaultyCoordinator {
    inner: Arc<dyn Coordinator>,
    control: FaultControl,
}

impl FaultyCoordinator {
    /// Wraps `inner` with a new control whose RNG is seeded with `seed`.
    pub fn new(inner: Arc<dyn Coordinator>, seed: u64) -> Self {
        Self::with_control(inner, FaultControl::new(seed))
    }

    /// Wraps `inner` with an existing (possibly shared) control.
    pub fn with_control(inner: Arc<dyn Coordinator>, control: FaultControl) -> Self {
        Self { inner, control }
    }

    /// The control handle (clone it to keep it after moving the wrapper into an `Arc`).
    pub fn control(&self) -> &FaultControl {
        &self.control
    }

    /// The wrapped coordinator, to look at the state without faults.
    pub fn inner(&self) -> &Arc<dyn Coordinator> {
        &self.inner
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
            });
        }
        result
    }
}

/// What a client cut off from its server reports: it cannot confirm the session, unless it knows it ended.
fn seen_through_partition(state: SessionState, partitioned: bool) -> SessionState {
    match state {
        SessionState::Alive if partitioned => SessionState::Suspended,
        other => other,
    }
}

#[async_trait]
impl Coordinator for FaultyCoordinator {
    fn backend(&self) -> &'static str {
        self.inner.backend()
    }

    async fn open_session(&self, node: NodeInfo, ttl: std::time::Duration) -> CoordResult<Session> {
        self.call(Method::OpenSession, None, || {
            self.inner.open_session(node, ttl)
        })
        .await
    }

    async fn keep_alive(&self, session: SessionId) -> CoordResult<()> {
        self.call(Method::KeepAlive, Some(session), || {
            self.inner.keep_alive(session)
        })
        .await
    }

    async fn drain(&self, session: SessionId) -> CoordResult<()> {
        self.call(Method::Drain, Some(session), || self.inner.drain(session))
            .await
    }

    async fn close_session(&self, session: SessionId) -> CoordResult<()> {
        self.call(Method::CloseSession, Some(session), || {
            self.inner.close_session(session)
        })
        .await
    }

    async fn watch_session(
        &self,
        session: SessionId,
    ) -> CoordResult<watch::Receiver<SessionState>> {
        let mut inner = self
            .call(Method::WatchSession, Some(session), || {
                self.inner.watch_session(session)
            })
            .await?;
        let mut partitions = self.control.partitions();
        let initial = seen_through_partition(
            *inner.borrow_and_update(),
            partitions.borrow_and_update().contains(&session),
        );
        let (tx, rx) = watch::channel(initial);
        if initial == SessionState::Expired {
            return Ok(rx);
        }
        tokio::spawn(async move {
            loop {
                tokio::select! {
                    biased;
                    () = tx.closed() => return,
                    changed = inner.changed() => if changed.is_err() { return },
                    changed = partitions.changed() => if changed.is_err() { return },
                }
                let state = seen_through_partition(
                    *inner.borrow_and_update(),
                    partitions.borrow_and_update().contains(&session),
                );
                tx.send_if_modified(|held| {
                    let changed = *held != state;
                    *held = state;
                    changed
                });
                if state == SessionState::Expired {
                    return;
                }
            }
        });
        Ok(rx)
    }

    async fn members(&self) -> CoordResult<Membership> {
        self.call(Method::Members, None, || self.inner.members())
            .await
    }

    async fn watch_members(&self) -> CoordResult<watch::Receiver<Membership>> {
        self.call(Method::WatchMembers, None, || self.inner.watch_members())
            .await
    }

    async fn campaign(&self, session: SessionId) -> CoordResult<Option<Leader>> {
        self.call(Method::Campaign, Some(session), || {
            self.inner.campaign(session)
        })
        .await
    }

    async fn leader(&self) -> CoordResult<Option<Leader>> {
        self.call(Method::Leader, None, || self.inner.leader())
            .await
    }

    async fn resign(&self, session: SessionId) -> CoordResult<()> {
        self.call(Method::Resign, Some(session), || self.inner.resign(session))
            .await
    }

    async fn put_job(&self, job: Job, precondition: Precondition) -> CoordResult<u64> {
        self.call(Method::PutJob, None, || {
            self.inner.put_job(job, precondition)
        })
        .await
    }

    async fn put_jobs(&self, jobs: Vec<Job>) -> CoordResult<Vec<u64>> {
        self.call(Method::PutJobs, None, || self.inner.put_jobs(jobs))
            .await
    }

    async fn delete_job(&self, id: &JobId, precondition: Precondition) -> CoordResult<u64> {
        self.call(Method::DeleteJob, None, || {
            self.inner.delete_job(id, precondition)
        })
        .await
    }

    async fn get_job(&self, id: &JobId) -> CoordResult<Option<Job>> {
        self.call(Method::GetJob, None, || self.inner.get_job(id))
            .await
    }

    async fn list_jobs(&self) -> CoordResult<JobSnapshot> {
        self.call(Method::ListJobs, None, || self.inner.list_jobs())
            .await
    }

    async fn watch_jobs(&self, after_revision: u64) -> CoordResult<JobWatch> {
        self.call(Method::WatchJobs, None, || {
            self.inner.watch_jobs(after_revision)
        })
        .await
    }

    async fn publish_assignment(
        &self,
        session: SessionId,
        epoch: u64,
        owners: BTreeMap<JobId, NodeId>,
    ) -> CoordResult<u64> {
        self.call(Method::PublishAssignment, Some(session), || {
            self.inner.publish_assignment(session, epoch, owners)
        })
        .await
    }

    async fn assignment(&self) -> CoordResult<Option<Arc<Assignment>>> {
        self.call(Method::Assignment, None, || self.inner.assignment())
            .await
    }

    async fn watch_assignment(&self) -> CoordResult<watch::Receiver<Option<Arc<Assignment>>>> {
        self.call(Method::WatchAssignment, None, || {
            self.inner.watch_assignment()
        })
        .await
    }

    async fn claim_fires(
        &self,
        session: SessionId,
        claims: &[FireClaim],
    ) -> CoordResult<Vec<ClaimResult>> {
        let mut results = self
            .call(Method::ClaimFires, Some(session), || {
                self.inner.claim_fires(session, claims)
            })
            .await?;
        if self.control.is_broken(ContractBreak::TakeoverRaisesSettled) {
            for (request, result) in claims.iter().zip(&mut results) {
                if let ClaimResult::Granted {
                    claim,
                    previous: Some(_),
                } = result
                {
                    claim.settled_ms = claim.settled_ms.max(request.settled_ms);
                }
            }
        }
        Ok(results)
    }

    async fn release_claims(
        &self,
        session: SessionId,
        releases: &[(JobId, i64)],
    ) -> CoordResult<()> {
        self.call(Method::ReleaseClaims, Some(session), || {
            self.inner.release_claims(session, releases)
        })
        .await
    }

    async fn claim_of(&self, job: &JobId) -> CoordResult<Option<JobClaim>> {
        self.call(Method::ClaimOf, None, || self.inner.claim_of(job))
            .await
    }

    async fn record_runs(
        &self,
        session: SessionId,
        records: Vec<RunRecord>,
    ) -> CoordResult<Vec<RecordResult>> {
        self.call(Method::RecordRuns, Some(session), || {
            self.inner.record_runs(session, records)
        })
        .await
    }

    async fn runs(&self, job: &JobId, query: RunQuery) -> CoordResult<Vec<RunRecord>> {
        self.call(Method::Runs, None, || self.inner.runs(job, query))
            .await
    }
}
