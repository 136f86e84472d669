//! `Intercepted`: the public interception hook, so that a logging, metrics or fault wrapper of any
//! coordinator is a few lines (implement [`Interceptor`], wrap with [`Intercepted::new`]).

use std::collections::BTreeMap;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use campanile::coordinator::{
    Assignment, ClaimResult, CoordResult, FireClaim, JobClaim, JobSnapshot, JobWatch, Leader,
    Members, NodeId, NodeInfo, Precondition, RecordResult, RunQuery, Session, SessionId,
    SessionState,
};
use campanile::{CoordError, Coordinator, Job, JobId, RunRecord};
use tokio::sync::watch;

use crate::Method;

/// One call, as an [`Interceptor`] sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct Call {
    /// The method called.
    pub method: Method,
    /// The session it was called with, if the method takes one.
    pub session: Option<SessionId>,
}

/// What a wrapper does around each call of an [`Intercepted`] coordinator. Both hooks do nothing by default.
///
/// ```
/// use std::collections::BTreeMap;
/// use std::sync::{Arc, Mutex};
///
/// use campanile::{CoordError, Coordinator};
/// use campanile_adapters::{Call, Intercepted, Interceptor, Method};
///
/// /// Counts calls per method.
/// #[derive(Default)]
/// struct Counts(Mutex<BTreeMap<Method, u64>>);
///
/// impl Interceptor for Counts {
///     fn after(&self, call: Call, _error: Option<&CoordError>) {
///         *self.0.lock().unwrap().entry(call.method).or_default() += 1;
///     }
/// }
///
/// fn counted(inner: Arc<dyn Coordinator>) -> Intercepted<Arc<dyn Coordinator>, Counts> {
///     Intercepted::new(inner, Counts::default())
/// }
/// ```
#[async_trait]
pub trait Interceptor: Send + Sync + 'static {
    /// Runs before the call is forwarded. An error fails the call without forwarding it (an injected fault;
    /// `Unavailable { certainly_aborted: true }` keeps the contract); awaiting delays it.
    async fn before(&self, call: Call) -> CoordResult<()> {
        let _ = call;
        Ok(())
    }

    /// Runs after the inner coordinator answered, with its error if any (not when `before` failed).
    fn after(&self, call: Call, error: Option<&CoordError>) {
        let _ = (call, error);
    }
}

/// A coordinator that runs an [`Interceptor`] around every call of `C` (any coordinator, or an
/// `Arc<dyn Coordinator>`) and otherwise forwards it unchanged: with hooks that fail nothing it keeps `C`'s
/// contract, and passes the conformance suite when `C` does.
#[derive(Debug, Clone)]
pub struct Intercepted<C, I> {
    inner: C,
    interceptor: I,
}

impl<C, I> Intercepted<C, I> {
    /// Wraps `inner`.
    pub fn new(inner: C, interceptor: I) -> Self {
        Self { inner, interceptor }
    }

    /// The wrapped coordinator.
    pub fn inner(&self) -> &C {
        &self.inner
    }

    /// The interceptor (to read what it counted).
    pub fn interceptor(&self) -> &I {
        &self.interceptor
    }
}

impl<C: Coordinator, I: Interceptor> Intercepted<C, I> {
    async fn run<T>(
        &self,
        method: Method,
        session: Option<SessionId>,
        forward: impl Future<Output = CoordResult<T>>,
    ) -> CoordResult<T> {
        let call = Call { method, session };
        self.interceptor.before(call).await?;
        let result = forward.await;
        self.interceptor.after(call, result.as_ref().err());
        result
    }
}

#[async_trait]
impl<C: Coordinator, I: Interceptor> Coordinator for Intercepted<C, I> {
    fn backend(&self) -> &'static str {
        self.inner.backend()
    }

    async fn open_session(&self, node: NodeInfo, ttl: Duration) -> CoordResult<Session> {
        let forward = self.inner.open_session(node, ttl);
        self.run(Method::OpenSession, None, forward).await
    }

    async fn keep_alive(&self, session: SessionId) -> CoordResult<()> {
        let forward = self.inner.keep_alive(session);
        self.run(Method::KeepAlive, Some(session), forward).await
    }

    async fn close_session(&self, session: SessionId) -> CoordResult<()> {
        let forward = self.inner.close_session(session);
        self.run(Method::CloseSession, Some(session), forward).await
    }

    async fn drain(&self, session: SessionId) -> CoordResult<()> {
        let forward = self.inner.drain(session);
        self.run(Method::Drain, Some(session), forward).await
    }

    async fn watch_session(
        &self,
        session: SessionId,
    ) -> CoordResult<watch::Receiver<SessionState>> {
        let forward = self.inner.watch_session(session);
        self.run(Method::WatchSession, Some(session), forward).await
    }

    async fn members(&self) -> CoordResult<Members> {
        let forward = self.inner.members();
        self.run(Method::Members, None, forward).await
    }

    async fn watch_members(&self) -> CoordResult<watch::Receiver<Members>> {
        let forward = self.inner.watch_members();
        self.run(Method::WatchMembers, None, forward).await
    }

    async fn campaign(&self, session: SessionId) -> CoordResult<Option<Leader>> {
        let forward = self.inner.campaign(session);
        self.run(Method::Campaign, Some(session), forward).await
    }

    async fn leader(&self) -> CoordResult<Option<Leader>> {
        let forward = self.inner.leader();
        self.run(Method::Leader, None, forward).await
    }

    async fn resign(&self, session: SessionId) -> CoordResult<()> {
        let forward = self.inner.resign(session);
        self.run(Method::Resign, Some(session), forward).await
    }

    async fn campaign_turn(&self, session: SessionId) -> CoordResult<()> {
        // A hint, not a call of the contract: not intercepted.
        self.inner.campaign_turn(session).await
    }

    async fn put_job(&self, job: Job, precondition: Precondition) -> CoordResult<u64> {
        let forward = self.inner.put_job(job, precondition);
        self.run(Method::PutJob, None, forward).await
    }

    async fn put_jobs(&self, jobs: Vec<Job>) -> CoordResult<Vec<u64>> {
        let forward = self.inner.put_jobs(jobs);
        self.run(Method::PutJobs, None, forward).await
    }

    async fn delete_job(&self, id: &JobId, precondition: Precondition) -> CoordResult<u64> {
        let forward = self.inner.delete_job(id, precondition);
        self.run(Method::DeleteJob, None, forward).await
    }

    async fn get_job(&self, id: &JobId) -> CoordResult<Option<Job>> {
        let forward = self.inner.get_job(id);
        self.run(Method::GetJob, None, forward).await
    }

    async fn list_jobs(&self) -> CoordResult<JobSnapshot> {
        let forward = self.inner.list_jobs();
        self.run(Method::ListJobs, None, forward).await
    }

    async fn watch_jobs(&self, after_revision: u64) -> CoordResult<JobWatch> {
        let forward = self.inner.watch_jobs(after_revision);
        self.run(Method::WatchJobs, None, forward).await
    }

    async fn publish_assignment(
        &self,
        session: SessionId,
        epoch: u64,
        owners: BTreeMap<JobId, NodeId>,
    ) -> CoordResult<u64> {
        let forward = self.inner.publish_assignment(session, epoch, owners);
        self.run(Method::PublishAssignment, Some(session), forward)
            .await
    }

    async fn assignment(&self) -> CoordResult<Option<Arc<Assignment>>> {
        let forward = self.inner.assignment();
        self.run(Method::Assignment, None, forward).await
    }

    async fn watch_assignment(&self) -> CoordResult<watch::Receiver<Option<Arc<Assignment>>>> {
        let forward = self.inner.watch_assignment();
        self.run(Method::WatchAssignment, None, forward).await
    }

    async fn claim_fires(
        &self,
        session: SessionId,
        claims: &[FireClaim],
    ) -> CoordResult<Vec<ClaimResult>> {
        let forward = self.inner.claim_fires(session, claims);
        self.run(Method::ClaimFires, Some(session), forward).await
    }

    async fn release_claims(
        &self,
        session: SessionId,
        releases: &[(JobId, i64)],
    ) -> CoordResult<()> {
        let forward = self.inner.release_claims(session, releases);
        self.run(Method::ReleaseClaims, Some(session), forward)
            .await
    }

    async fn claim_of(&self, job: &JobId) -> CoordResult<Option<JobClaim>> {
        let forward = self.inner.claim_of(job);
        self.run(Method::ClaimOf, None, forward).await
    }

    async fn record_runs(
        &self,
        session: SessionId,
        records: Vec<RunRecord>,
    ) -> CoordResult<Vec<RecordResult>> {
        let forward = self.inner.record_runs(session, records);
        self.run(Method::RecordRuns, Some(session), forward).await
    }

    async fn runs(&self, job: &JobId, query: RunQuery) -> CoordResult<Vec<RunRecord>> {
        let forward = self.inner.runs(job, query);
        self.run(Method::Runs, None, forward).await
    }
}
