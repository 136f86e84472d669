//! `EtcdCoordinator`: the `Coordinator` contract on etcd v3. Every write that depends on what it read is one
//! transaction whose compares check that nothing read has changed (mod revisions) and that the caller's
//! lease still exists; a failed compare re-reads and re-decides, a bounded number of times.
//!
//! This file holds the connection and the calls every part shares; the parts are in `sessions.rs`,
//! `leader.rs` (leadership and the assignment), `jobs.rs`, `claims.rs` and `runs.rs`.

use std::collections::{BTreeMap, HashSet};
use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use campanile::coordinator::{
    Assignment, ClaimResult, CoordError, CoordResult, Coordinator, FireClaim, JobClaim,
    JobSnapshot, JobWatch, Leader, Members, NodeId, NodeInfo, Precondition, RecordResult, RunQuery,
    Session, SessionId, SessionState,
};
use campanile::job::{Job, JobId};
use campanile::run::RunRecord;
use etcd_client::{Client, ConnectOptions, GetOptions, Txn, TxnResponse};
use tokio::sync::watch;

use crate::config::EtcdConfig;
use crate::error::{EtcdError, Kind, map, timed_out};
use crate::feeds::{FeedCtx, Feeds};
use crate::keys::Keys;

/// How many times a transaction whose compares failed is re-read and re-decided before the call gives up.
pub(crate) const ATTEMPTS: usize = 16;

/// A [`Coordinator`] on an etcd v3 cluster. Each instance has its own connection (to any of the
/// configured endpoints) and its own background watches; clones share them. Every node process opens one.
#[derive(Clone)]
pub struct EtcdCoordinator {
    inner: Arc<Inner>,
}

/// What clones of one coordinator share.
pub(crate) struct Inner {
    pub(crate) client: Client,
    pub(crate) keys: Keys,
    pub(crate) config: EtcdConfig,
    pub(crate) feeds: Arc<Feeds>,
    /// The last assignment read by `claim_fires`, by mod revision (most claim batches see the same one).
    pub(crate) assignment_cache: Mutex<Option<(i64, Arc<Assignment>)>>,
    /// Dropped with the coordinator: the background tasks end.
    _closed: watch::Sender<()>,
    pub(crate) closed: watch::Receiver<()>,
}

impl std::fmt::Debug for EtcdCoordinator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EtcdCoordinator")
            .field("endpoints", &self.inner.config.endpoints)
            .field("prefix", &self.inner.keys.root())
            .finish_non_exhaustive()
    }
}

impl EtcdCoordinator {
    /// Validates `config` and sets up the connection. Without user/password nothing is sent yet (an etcd
    /// that is down at start-up is not an error: calls fail `Unavailable` until it is up); with them, the
    /// credentials are checked now.
    pub async fn connect(config: EtcdConfig) -> Result<Self, EtcdError> {
        config.validate()?;
        let mut options = ConnectOptions::new()
            .with_connect_timeout(config.connect_timeout)
            // HTTP/2 pings find a dead connection (a cut cable, a frozen server) within a few seconds, so
            // that streams die and are re-established instead of hanging. Not tighter: a ping answered late
            // on a loaded machine closes a healthy connection and cancels every call on it (seen in CI with
            // a 1 s timeout). Fencing does not depend on it: each keep-alive is a round trip with a deadline.
            .with_keep_alive(Duration::from_secs(1), Duration::from_secs(3))
            .with_keep_alive_while_idle(true)
            .with_require_leader(true);
        if let (Some(user), Some(password)) = (&config.user, &config.password) {
            options = options.with_user(user.clone(), password.clone());
        }
        if let Some(tls) = &config.tls {
            options = options.with_tls(tls_options(tls)?);
        }
        let endpoints: Vec<String> = config
            .endpoints
            .iter()
            .map(|e| match &config.tls {
                Some(_) if !e.contains("://") => format!("https://{e}"),
                _ => e.clone(),
            })
            .collect();
        let client = Client::connect(&endpoints, Some(options))
            .await
            .map_err(|source| EtcdError::Connect {
                endpoints: config.endpoints.join(","),
                source,
            })?;
        let (closed_tx, closed) = watch::channel(());
        Ok(Self {
            inner: Arc::new(Inner {
                client,
                keys: Keys::new(config.normalized_prefix()),
                config,
                feeds: Arc::new(Feeds::new()),
                assignment_cache: Mutex::new(None),
                _closed: closed_tx,
                closed,
            }),
        })
    }

    /// The key prefix this coordinator uses (normalized: starts and ends with `/`).
    pub fn prefix(&self) -> &str {
        self.inner.keys.root()
    }
}

impl Inner {
    pub(crate) fn keys(&self) -> &Keys {
        &self.keys
    }

    pub(crate) fn feed_ctx(&self) -> FeedCtx {
        FeedCtx {
            client: self.client.clone(),
            keys: self.keys.clone(),
            timeout: self.config.request_timeout,
            feeds: Arc::clone(&self.feeds),
            closed: self.closed.clone(),
        }
    }

    /// Runs one etcd call with the request deadline.
    pub(crate) async fn rpc<T>(
        &self,
        what: &str,
        kind: Kind,
        call: impl Future<Output = Result<T, etcd_client::Error>>,
    ) -> CoordResult<T> {
        match tokio::time::timeout(self.config.request_timeout, call).await {
            Ok(Ok(value)) => Ok(value),
            Ok(Err(error)) => Err(map(what, kind, error)),
            Err(_) => Err(timed_out(what, kind)),
        }
    }

    pub(crate) async fn get(
        &self,
        what: &str,
        key: String,
        options: Option<GetOptions>,
    ) -> CoordResult<etcd_client::GetResponse> {
        let mut kv = self.client.kv_client();
        self.rpc(what, Kind::Read, kv.get(key, options)).await
    }

    pub(crate) async fn txn(&self, what: &str, kind: Kind, txn: Txn) -> CoordResult<TxnResponse> {
        let mut kv = self.client.kv_client();
        self.rpc(what, kind, kv.txn(txn)).await
    }

    pub(crate) fn max_ops(&self) -> usize {
        self.config.max_txn_ops
    }
}

pub(crate) fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

pub(crate) fn expired(session: SessionId) -> CoordError {
    CoordError::SessionExpired { session: session.0 }
}

pub(crate) fn contended(call: &str) -> CoordError {
    CoordError::unavailable(format!(
        "etcd {call}: the keys kept changing during {ATTEMPTS} attempts; nothing was written"
    ))
}

/// The distinct items, in order of first appearance.
pub(crate) fn distinct<'a, T: Eq + std::hash::Hash>(
    items: impl Iterator<Item = &'a T>,
) -> Vec<&'a T> {
    let mut seen = HashSet::new();
    items.filter(|item| seen.insert(*item)).collect()
}

fn tls_options(tls: &crate::config::EtcdTls) -> Result<etcd_client::TlsOptions, EtcdError> {
    let read = |field: &'static str, path: &std::path::Path| {
        std::fs::read(path).map_err(|source| EtcdError::TlsFile {
            field,
            path: path.display().to_string(),
            source,
        })
    };
    let mut options = etcd_client::TlsOptions::new();
    if let Some(ca) = &tls.ca {
        options = options.ca_certificate(etcd_client::Certificate::from_pem(read("tls.ca", ca)?));
    }
    if let (Some(cert), Some(key)) = (&tls.cert, &tls.key) {
        options = options.identity(etcd_client::Identity::from_pem(
            read("tls.cert", cert)?,
            read("tls.key", key)?,
        ));
    }
    Ok(options)
}

#[async_trait]
impl Coordinator for EtcdCoordinator {
    fn backend(&self) -> &'static str {
        "etcd"
    }

    async fn open_session(&self, node: NodeInfo, ttl: Duration) -> CoordResult<Session> {
        self.inner.open_session(node, ttl).await
    }

    async fn keep_alive(&self, session: SessionId) -> CoordResult<()> {
        self.inner.keep_alive(session).await
    }

    async fn close_session(&self, session: SessionId) -> CoordResult<()> {
        self.inner.close_session(session).await
    }

    async fn drain(&self, session: SessionId) -> CoordResult<()> {
        self.inner.drain(session).await
    }

    async fn watch_session(
        &self,
        session: SessionId,
    ) -> CoordResult<watch::Receiver<SessionState>> {
        self.inner.watch_session(session).await
    }

    async fn members(&self) -> CoordResult<Members> {
        self.inner.members().await
    }

    async fn watch_members(&self) -> CoordResult<watch::Receiver<Members>> {
        self.inner.watch_members().await
    }

    async fn campaign(&self, session: SessionId) -> CoordResult<Option<Leader>> {
        self.inner.campaign(session).await
    }

    async fn leader(&self) -> CoordResult<Option<Leader>> {
        self.inner.leader().await
    }

    async fn resign(&self, session: SessionId) -> CoordResult<()> {
        self.inner.resign(session).await
    }

    async fn put_job(&self, job: Job, precondition: Precondition) -> CoordResult<u64> {
        self.inner.put_job(job, precondition).await
    }

    async fn put_jobs(&self, jobs: Vec<Job>) -> CoordResult<Vec<u64>> {
        self.inner.put_jobs(jobs).await
    }

    async fn delete_job(&self, id: &JobId, precondition: Precondition) -> CoordResult<u64> {
        self.inner.delete_job(id, precondition).await
    }

    async fn get_job(&self, id: &JobId) -> CoordResult<Option<Job>> {
        self.inner.get_job(id).await
    }

    async fn list_jobs(&self) -> CoordResult<JobSnapshot> {
        self.inner.list_jobs().await
    }

    async fn watch_jobs(&self, after_revision: u64) -> CoordResult<JobWatch> {
        Inner::watch_jobs(&self.inner, after_revision).await
    }

    async fn publish_assignment(
        &self,
        session: SessionId,
        epoch: u64,
        owners: BTreeMap<JobId, NodeId>,
    ) -> CoordResult<u64> {
        self.inner.publish_assignment(session, epoch, owners).await
    }

    async fn assignment(&self) -> CoordResult<Option<Arc<Assignment>>> {
        self.inner.assignment().await
    }

    async fn watch_assignment(&self) -> CoordResult<watch::Receiver<Option<Arc<Assignment>>>> {
        self.inner.watch_assignment().await
    }

    async fn claim_fires(
        &self,
        session: SessionId,
        claims: &[FireClaim],
    ) -> CoordResult<Vec<ClaimResult>> {
        self.inner.claim_fires(session, claims).await
    }

    async fn release_claims(
        &self,
        session: SessionId,
        releases: &[(JobId, i64)],
    ) -> CoordResult<()> {
        self.inner.release_claims(session, releases).await
    }

    async fn claim_of(&self, job: &JobId) -> CoordResult<Option<JobClaim>> {
        self.inner.claim_of(job).await
    }

    async fn record_runs(
        &self,
        session: SessionId,
        records: Vec<RunRecord>,
    ) -> CoordResult<Vec<RecordResult>> {
        self.inner.record_runs(session, records).await
    }

    async fn runs(&self, job: &JobId, query: RunQuery) -> CoordResult<Vec<RunRecord>> {
        self.inner.runs(job, query).await
    }
}
