//! `Coordinator` for `Arc<T>`: a shared coordinator is a coordinator, so a wrapper can hold an `Arc<T>` (or an
//! `Arc<dyn Coordinator>`) and be used, or wrapped again, wherever a coordinator is expected.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use tokio::sync::watch;

use super::{
    Assignment, ClaimResult, CoordResult, Coordinator, FireClaim, JobClaim, JobSnapshot, JobWatch,
    Leader, Members, NodeId, NodeInfo, Precondition, RecordResult, RunQuery, Session, SessionId,
    SessionState,
};
use crate::job::{Job, JobId};
use crate::run::RunRecord;

/// Forwards every call to the shared coordinator: it keeps exactly the contract of `T`.
#[async_trait]
impl<T: Coordinator + ?Sized> Coordinator for Arc<T> {
    fn backend(&self) -> &'static str {
        (**self).backend()
    }

    async fn open_session(&self, node: NodeInfo, ttl: Duration) -> CoordResult<Session> {
        (**self).open_session(node, ttl).await
    }

    async fn keep_alive(&self, session: SessionId) -> CoordResult<()> {
        (**self).keep_alive(session).await
    }

    async fn close_session(&self, session: SessionId) -> CoordResult<()> {
        (**self).close_session(session).await
    }

    async fn drain(&self, session: SessionId) -> CoordResult<()> {
        (**self).drain(session).await
    }

    async fn watch_session(
        &self,
        session: SessionId,
    ) -> CoordResult<watch::Receiver<SessionState>> {
        (**self).watch_session(session).await
    }

    async fn members(&self) -> CoordResult<Members> {
        (**self).members().await
    }

    async fn watch_members(&self) -> CoordResult<watch::Receiver<Members>> {
        (**self).watch_members().await
    }

    async fn campaign(&self, session: SessionId) -> CoordResult<Option<Leader>> {
        (**self).campaign(session).await
    }

    async fn leader(&self) -> CoordResult<Option<Leader>> {
        (**self).leader().await
    }

    async fn resign(&self, session: SessionId) -> CoordResult<()> {
        (**self).resign(session).await
    }

    async fn campaign_turn(&self, session: SessionId) -> CoordResult<()> {
        (**self).campaign_turn(session).await
    }

    async fn put_job(&self, job: Job, precondition: Precondition) -> CoordResult<u64> {
        (**self).put_job(job, precondition).await
    }

    async fn put_jobs(&self, jobs: Vec<Job>) -> CoordResult<Vec<u64>> {
        (**self).put_jobs(jobs).await
    }

    async fn delete_job(&self, id: &JobId, precondition: Precondition) -> CoordResult<u64> {
        (**self).delete_job(id, precondition).await
    }

    async fn get_job(&self, id: &JobId) -> CoordResult<Option<Job>> {
        (**self).get_job(id).await
    }

    async fn list_jobs(&self) -> CoordResult<JobSnapshot> {
        (**self).list_jobs().await
    }

    async fn watch_jobs(&self, after_revision: u64) -> CoordResult<JobWatch> {
        (**self).watch_jobs(after_revision).await
    }

    async fn publish_assignment(
        &self,
        session: SessionId,
        epoch: u64,
        owners: BTreeMap<JobId, NodeId>,
    ) -> CoordResult<u64> {
        (**self).publish_assignment(session, epoch, owners).await
    }

    async fn assignment(&self) -> CoordResult<Option<Arc<Assignment>>> {
        (**self).assignment().await
    }

    async fn watch_assignment(&self) -> CoordResult<watch::Receiver<Option<Arc<Assignment>>>> {
        (**self).watch_assignment().await
    }

    async fn claim_fires(
        &self,
        session: SessionId,
        claims: &[FireClaim],
    ) -> CoordResult<Vec<ClaimResult>> {
        (**self).claim_fires(session, claims).await
    }

    async fn release_claims(
        &self,
        session: SessionId,
        releases: &[(JobId, i64)],
    ) -> CoordResult<()> {
        (**self).release_claims(session, releases).await
    }

    async fn claim_of(&self, job: &JobId) -> CoordResult<Option<JobClaim>> {
        (**self).claim_of(job).await
    }

    async fn record_runs(
        &self,
        session: SessionId,
        records: Vec<RunRecord>,
    ) -> CoordResult<Vec<RecordResult>> {
        (**self).record_runs(session, records).await
    }

    async fn runs(&self, job: &JobId, query: RunQuery) -> CoordResult<Vec<RunRecord>> {
        (**self).runs(job, query).await
    }
}
