//! `InprocCoordinator`: the `Coordinator` implementation over one locked [`State`] and, in durable mode, a
//! [`Store`].
//!
//! Every call follows the same steps, under one `tokio::sync::Mutex` that is never held across an `.await`
//! other than its own acquisition (a caller that waits for it yields its worker instead of blocking the
//! thread: a node's timer and executor keep running on that worker while a claim or record batch holds the
//! lock):
//! 1. lock, read `tokio::time::Instant::now()`, and end the sessions whose deadline has passed (so a call
//!    never sees an expired session, even if its reaper task has not run yet);
//! 2. plan: a `State` method checks the contract's rules and returns the answer plus the changes;
//! 3. commit: the store writes the durable changes in one transaction (durable mode), then the state
//!    applies all of them.
//!
//! A failure in step 2 or 3 leaves the state as it was. Because every call runs under the one lock, calls are
//! linearizable. In durable mode step 3 includes an fsync on the calling task: the engine batches its
//! writes (claims ahead of time), so there are few of them. One call is split: `record_runs` of more than
//! `RECORD_CHUNK` records stores them in chunks of that size, a hold of the lock each, yielding between
//! them (each record is idempotent on its fire id, so the call needs no atomicity beyond a record's).

use std::collections::BTreeMap;
use std::fmt;
use std::path::Path;
use std::sync::{Arc, Weak};

use std::time::Duration;
use tokio::sync::{Mutex, MutexGuard};

use async_trait::async_trait;
use campanile::coordinator::limits;
use campanile::coordinator::{
    Assignment, ClaimResult, CoordError, CoordResult, Coordinator, FireClaim, JobClaim,
    JobSnapshot, JobWatch, Leader, Members, NodeId, NodeInfo, Precondition, RecordResult, RunQuery,
    Session, SessionId, SessionState,
};
use campanile::history::{HistoryResult, HistoryStore};
use campanile::job::{Job, JobId};
use campanile::run::RunRecord;
use campanile_history::LocalStore;
use tokio::sync::watch;
use tokio::time::Instant;
use tracing::debug;

use crate::change::Change;
use crate::config::InprocConfig;
use crate::error::InprocError;
use crate::state::{Durable, Plan, State};
use crate::store::Store;

/// The in-process coordinator: a [`Coordinator`] for nodes that run in one process, keeping its data in
/// memory ([`InprocCoordinator::memory`]) or, durably, in one redb file ([`InprocCoordinator::open`]).
///
/// Cloning is cheap and shares one namespace: give a clone to each engine node of the process.
#[derive(Clone)]
pub struct InprocCoordinator {
    inner: Arc<Inner>,
}

struct Inner {
    core: Mutex<Core>,
    /// The file's database in durable mode (the history store keeps its tables there too).
    database: Option<Arc<redb::Database>>,
    /// The history store, made on first use.
    history: std::sync::Mutex<Option<LocalStore>>,
}

/// What the lock protects: the state, and the store that must see each write before the state does.
#[derive(Debug)]
struct Core {
    state: State,
    store: Option<Store>,
    /// Set while changes are being applied: still set afterwards only if a panic cut the application short,
    /// and then the state may be inconsistent, so every later call fails closed (what a poisoned
    /// `std::sync::Mutex` would say; the async mutex does not track panics itself).
    poisoned: bool,
}

impl Core {
    /// Commits planned changes: store first (durable mode), then memory. On a store error nothing is
    /// applied.
    fn commit(&mut self, changes: Vec<Change>) -> CoordResult<()> {
        if let Some(store) = &self.store {
            store.write(&changes, self.state.current_assignment())?;
        }
        self.poisoned = true;
        for change in changes {
            self.state.apply(change);
        }
        self.poisoned = false;
        Ok(())
    }

    /// Ends every session whose deadline is at or before `now`. Only volatile changes: nothing to store.
    fn expire_due(&mut self, now: Instant) {
        self.poisoned = true;
        for change in self.state.expired_sessions(now) {
            debug_assert!(!change.is_durable());
            if let Change::EndSession(id) = &change {
                debug!(session = %id, "session expired");
            }
            self.state.apply(change);
        }
        self.poisoned = false;
    }
}

/// Most run records stored under one hold of the lock (about 0.5 ms of work in memory).
const RECORD_CHUNK: usize = 250;

impl InprocCoordinator {
    /// A coordinator that keeps everything in memory, with the default settings.
    pub fn memory() -> Self {
        Self::memory_with(InprocConfig::default())
    }

    /// A coordinator that keeps everything in memory.
    pub fn memory_with(config: InprocConfig) -> Self {
        let state = State::new(config.normalized(), Durable::default());
        Self::from_core(Core {
            state,
            store: None,
            poisoned: false,
        })
    }

    /// A durable coordinator in the redb file at `path` (created if missing), with the default settings.
    pub fn open(path: impl AsRef<Path>) -> Result<Self, InprocError> {
        Self::open_with(path, InprocConfig::default())
    }

    /// A durable coordinator in the redb file at `path` (created if missing). Jobs, claims, run records,
    /// the assignment and the counters (store revision, leader epoch, session id) are loaded from it;
    /// sessions, members and leadership start empty. The file stays locked until the last clone is
    /// dropped.
    pub fn open_with(path: impl AsRef<Path>, config: InprocConfig) -> Result<Self, InprocError> {
        let (store, durable) = Store::open(path.as_ref())?;
        let state = State::new(config.normalized(), durable);
        let database = Some(store.database());
        Ok(Self::from_core_on(
            database,
            Core {
                state,
                store: Some(store),
                poisoned: false,
            },
        ))
    }

    fn from_core(core: Core) -> Self {
        Self::from_core_on(None, core)
    }

    fn from_core_on(database: Option<Arc<redb::Database>>, core: Core) -> Self {
        Self {
            inner: Arc::new(Inner {
                core: Mutex::new(core),
                database,
                history: std::sync::Mutex::new(None),
            }),
        }
    }

    /// The in-process history store: in durable mode the `history_*` tables of the coordinator's own file
    /// (so a restart keeps the history), in memory mode a database in memory. Every clone of the
    /// coordinator gets the same store. Records reach it through `HistoryStore::append` like any store's;
    /// the coordinator's own run records are separate (what settlement needs).
    pub fn history(&self) -> HistoryResult<Arc<dyn HistoryStore>> {
        let mut held = self
            .inner
            .history
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if let Some(store) = held.as_ref() {
            return Ok(Arc::new(store.clone()));
        }
        let store = match &self.inner.database {
            Some(db) => LocalStore::on_database(Arc::clone(db), "inproc")?,
            None => LocalStore::memory("inproc")?,
        };
        *held = Some(store.clone());
        Ok(Arc::new(store))
    }

    /// Locks the core, ends the sessions that expired, and returns the time of the call.
    async fn begin(&self) -> CoordResult<(MutexGuard<'_, Core>, Instant)> {
        let mut core = lock(&self.inner).await?;
        let now = Instant::now();
        core.expire_due(now);
        Ok((core, now))
    }

    /// Runs a read.
    async fn read<T>(&self, read: impl FnOnce(&State) -> T) -> CoordResult<T> {
        let (core, _) = self.begin().await?;
        Ok(read(&core.state))
    }

    /// Runs a write: plan, then commit.
    async fn write<T>(&self, plan: impl FnOnce(&State, Instant) -> Plan<T>) -> CoordResult<T> {
        let (mut core, now) = self.begin().await?;
        let (value, changes) = plan(&core.state, now)?;
        core.commit(changes)?;
        Ok(value)
    }
}

/// Locks the core. A poisoned core means a panic interrupted a commit, so the state may be inconsistent:
/// fail closed rather than go on.
async fn lock(inner: &Inner) -> CoordResult<MutexGuard<'_, Core>> {
    let core = inner.core.lock().await;
    if core.poisoned {
        return Err(CoordError::unavailable(
            "inproc coordinator state is poisoned by an earlier panic",
        ));
    }
    Ok(core)
}

impl fmt::Debug for InprocCoordinator {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut out = f.debug_struct("InprocCoordinator");
        match self.inner.core.try_lock() {
            Ok(core) if core.poisoned => out.field("state", &"(poisoned)"),
            Ok(core) => match &core.store {
                Some(store) => out.field("path", &store.path()),
                None => out.field("path", &"(memory)"),
            },
            Err(_) => out.field("state", &"(busy)"),
        };
        out.finish_non_exhaustive()
    }
}

/// Expires session `id` when its deadline passes without a keep-alive, so that `watch_session`, the members
/// and the leader reflect the expiry without any further call. Keep-alives only move the deadline later;
/// the task wakes at the old one, finds the new one and sleeps again. Holds the coordinator weakly, so that
/// it never keeps a dropped coordinator (and its file lock) alive.
async fn expire_at_deadline(inner: Weak<Inner>, id: SessionId, mut deadline: Instant) {
    loop {
        tokio::time::sleep_until(deadline).await;
        let next = {
            let Some(inner) = inner.upgrade() else { return };
            let Ok(mut core) = lock(&inner).await else {
                return;
            };
            core.expire_due(Instant::now());
            core.state.session_deadline(id)
        };
        match next {
            Some(next) => deadline = next,
            None => return,
        }
    }
}

#[async_trait]
impl Coordinator for InprocCoordinator {
    fn backend(&self) -> &'static str {
        "inproc"
    }

    async fn open_session(&self, node: NodeInfo, ttl: Duration) -> CoordResult<Session> {
        // Expiry needs a tokio timer: refuse (rather than panic) outside a runtime, before writing anything.
        let runtime = tokio::runtime::Handle::try_current().map_err(|_| {
            CoordError::unavailable("the inproc coordinator needs a tokio runtime with timers")
        })?;
        let (mut core, now) = self.begin().await?;
        let (session, changes) = core.state.open_session(node, ttl, now)?;
        core.commit(changes)?;
        let deadline = core.state.session_deadline(session.id).unwrap_or(now);
        let reaper = runtime.spawn(expire_at_deadline(
            Arc::downgrade(&self.inner),
            session.id,
            deadline,
        ));
        core.state.set_reaper(session.id, reaper.abort_handle());
        Ok(session)
    }

    async fn keep_alive(&self, session: SessionId) -> CoordResult<()> {
        self.write(|state, now| state.keep_alive(session, now))
            .await
    }

    async fn drain(&self, session: SessionId) -> CoordResult<()> {
        self.write(|state, _| state.drain(session)).await
    }

    async fn close_session(&self, session: SessionId) -> CoordResult<()> {
        self.write(|state, _| state.close_session(session)).await
    }

    async fn watch_session(
        &self,
        session: SessionId,
    ) -> CoordResult<watch::Receiver<SessionState>> {
        self.read(|state| state.watch_session(session)).await
    }

    async fn members(&self) -> CoordResult<Members> {
        self.read(State::members).await
    }

    async fn watch_members(&self) -> CoordResult<watch::Receiver<Members>> {
        self.read(State::watch_members).await
    }

    async fn campaign(&self, session: SessionId) -> CoordResult<Option<Leader>> {
        self.write(|state, _| state.campaign(session)).await
    }

    async fn leader(&self) -> CoordResult<Option<Leader>> {
        self.read(State::leader).await
    }

    async fn resign(&self, session: SessionId) -> CoordResult<()> {
        self.write(|state, _| state.resign(session)).await
    }

    async fn put_job(&self, job: Job, precondition: Precondition) -> CoordResult<u64> {
        self.write(|state, _| state.put_job(job, precondition))
            .await
    }

    async fn put_jobs(&self, jobs: Vec<Job>) -> CoordResult<Vec<u64>> {
        // One plan and one commit under the lock: one redb transaction (durable mode), and every watch sees
        // the whole batch or none of it.
        self.write(|state, _| state.put_jobs(jobs)).await
    }

    async fn delete_job(&self, id: &JobId, precondition: Precondition) -> CoordResult<u64> {
        self.write(|state, _| state.delete_job(id, precondition))
            .await
    }

    async fn get_job(&self, id: &JobId) -> CoordResult<Option<Job>> {
        self.read(|state| state.get_job(id)).await
    }

    async fn list_jobs(&self) -> CoordResult<JobSnapshot> {
        self.read(State::list_jobs).await
    }

    async fn watch_jobs(&self, after_revision: u64) -> CoordResult<JobWatch> {
        let (mut core, _) = self.begin().await?;
        core.state.watch_jobs(after_revision)
    }

    async fn publish_assignment(
        &self,
        session: SessionId,
        epoch: u64,
        owners: BTreeMap<JobId, NodeId>,
    ) -> CoordResult<u64> {
        self.write(|state, _| state.publish_assignment(session, epoch, owners))
            .await
    }

    async fn assignment(&self) -> CoordResult<Option<Arc<Assignment>>> {
        self.read(State::assignment).await
    }

    async fn watch_assignment(&self) -> CoordResult<watch::Receiver<Option<Arc<Assignment>>>> {
        self.read(State::watch_assignment).await
    }

    async fn claim_fires(
        &self,
        session: SessionId,
        claims: &[FireClaim],
    ) -> CoordResult<Vec<ClaimResult>> {
        self.write(|state, _| state.claim_fires(session, claims))
            .await
    }

    async fn release_claims(
        &self,
        session: SessionId,
        releases: &[(JobId, i64)],
    ) -> CoordResult<()> {
        self.write(|state, _| state.release_claims(session, releases))
            .await
    }

    async fn claim_of(&self, job: &JobId) -> CoordResult<Option<JobClaim>> {
        self.read(|state| state.claim_of(job)).await
    }

    async fn record_runs(
        &self,
        session: SessionId,
        records: Vec<RunRecord>,
    ) -> CoordResult<Vec<RecordResult>> {
        if records.len() <= RECORD_CHUNK {
            return self
                .write(|state, _| state.record_runs(session, records))
                .await;
        }
        // A large batch is stored in chunks, each under the lock once, with the worker given back between
        // them: a claim renewal or an API call waits behind one chunk, not the batch. The batch is checked
        // whole first, so a bad record still refuses it all; each record is idempotent on its fire id, so a
        // batch cut short by a lost session is stored in part, and its retry answers `Duplicate` for that part.
        limits::check_batch("records", records.len())?;
        records.iter().try_for_each(limits::check_record)?;
        let mut results = Vec::with_capacity(records.len());
        let mut records = records.into_iter();
        loop {
            let chunk: Vec<RunRecord> = records.by_ref().take(RECORD_CHUNK).collect();
            if chunk.is_empty() {
                return Ok(results);
            }
            results.extend(
                self.write(|state, _| state.record_runs(session, chunk))
                    .await?,
            );
            tokio::task::yield_now().await;
        }
    }

    async fn runs(&self, job: &JobId, query: RunQuery) -> CoordResult<Vec<RunRecord>> {
        self.read(|state| state.runs(job, &query)).await
    }
}
