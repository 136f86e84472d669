//! `EtcdCoordinator`: the `Coordinator` contract on etcd v3. Every write that depends on what it read is one
//! transaction whose compares check that nothing read has changed (mod revisions) and that the caller's
//! lease still exists; a failed compare re-reads and re-plans, a bounded number of times.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use campanile::coordinator::{
    Assignment, ClaimResult, CoordError, CoordResult, Coordinator, FireClaim, JobClaim, JobEvent,
    JobSnapshot, JobWatch, Leader, Member, Membership, NodeId, NodeInfo, Precondition,
    RecordResult, RunQuery, Session, SessionId, SessionState,
};
use campanile::job::{Job, JobId};
use campanile::run::RunRecord;
use etcd_client::{
    Client, Compare, CompareOp, ConnectOptions, DeleteOptions, EventType, GetOptions, KeyValue,
    PutOptions, SortOrder, SortTarget, Txn, TxnOp, TxnOpResponse, TxnResponse, WatchOptions,
    WatchStream,
};
use tokio::sync::{mpsc, watch};
use tracing::{debug, warn};

use crate::config::EtcdConfig;
use crate::error::{EtcdError, Kind, is_lease_not_found, map, timed_out};
use crate::feeds::{self, FeedCtx, Feeds};
use crate::keys::{self, Keys};
use crate::plan::{self, JobRead};
use crate::{limits, stored};

/// How many times a transaction whose compares failed is re-read and re-planned before the call gives up.
const ATTEMPTS: usize = 16;
/// Room of a job watch's channel.
const WATCH_BUFFER: usize = 1024;
/// Jobs per page of `list_jobs`.
const PAGE: i64 = 1000;

/// A [`Coordinator`] on an etcd v3 cluster. Each instance has its own connection (to any of the
/// configured endpoints) and its own background watches; clones share them. Every node process opens one.
#[derive(Clone)]
pub struct EtcdCoordinator {
    inner: Arc<Inner>,
}

struct Inner {
    client: Client,
    keys: Keys,
    config: EtcdConfig,
    feeds: Arc<Feeds>,
    /// The last assignment read by `claim_fires`, by mod revision (most claim batches see the same one).
    assignment_cache: Mutex<Option<(i64, Arc<Assignment>)>>,
    /// Dropped with the coordinator: the background tasks end.
    _closed: watch::Sender<()>,
    closed: watch::Receiver<()>,
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

    fn keys(&self) -> &Keys {
        &self.inner.keys
    }

    fn feed_ctx(&self) -> FeedCtx {
        FeedCtx {
            client: self.inner.client.clone(),
            keys: self.inner.keys.clone(),
            timeout: self.inner.config.request_timeout,
            feeds: Arc::clone(&self.inner.feeds),
            closed: self.inner.closed.clone(),
        }
    }

    /// Runs one etcd call with the request deadline.
    async fn rpc<T>(
        &self,
        what: &str,
        kind: Kind,
        call: impl Future<Output = Result<T, etcd_client::Error>>,
    ) -> CoordResult<T> {
        match tokio::time::timeout(self.inner.config.request_timeout, call).await {
            Ok(Ok(value)) => Ok(value),
            Ok(Err(error)) => Err(map(what, kind, error)),
            Err(_) => Err(timed_out(what, kind)),
        }
    }

    async fn get(
        &self,
        what: &str,
        key: String,
        options: Option<GetOptions>,
    ) -> CoordResult<etcd_client::GetResponse> {
        let mut kv = self.inner.client.kv_client();
        self.rpc(what, Kind::Read, kv.get(key, options)).await
    }

    async fn txn(&self, what: &str, kind: Kind, txn: Txn) -> CoordResult<TxnResponse> {
        let mut kv = self.inner.client.kv_client();
        self.rpc(what, kind, kv.txn(txn)).await
    }

    /// The node of a live session; `SessionExpired` if its lease (and so its session key) is gone.
    async fn session_node(&self, session: SessionId) -> CoordResult<NodeInfo> {
        if self.inner.feeds.is_expired(session) {
            return Err(expired(session));
        }
        let response = self
            .get("read session", self.keys().session(session), None)
            .await?;
        match response.kvs().first() {
            Some(kv) => stored::decode(kv.key(), kv.value()),
            None => Err(expired(session)),
        }
    }

    /// Whether the session's key exists (its lease is alive).
    async fn session_alive(&self, session: SessionId) -> CoordResult<bool> {
        let response = self
            .get(
                "read session",
                self.keys().session(session),
                Some(GetOptions::new().with_count_only()),
            )
            .await?;
        Ok(response.count() > 0)
    }

    fn session_exists(&self, session: SessionId) -> Compare {
        Compare::version(self.keys().session(session), CompareOp::Greater, 0)
    }

    fn session_count(&self, session: SessionId) -> TxnOp {
        TxnOp::get(
            self.keys().session(session),
            Some(GetOptions::new().with_count_only()),
        )
    }

    /// Opens a job watch starting at `start` and waits until etcd confirms it (or reports compaction).
    async fn open_job_watch(&self, start: i64) -> CoordResult<WatchStream> {
        let mut watcher = self.inner.client.watch_client();
        let options = WatchOptions::new().with_prefix().with_start_revision(start);
        let mut stream = self
            .rpc(
                "watch jobs",
                Kind::Read,
                watcher.watch(self.keys().jobs(), Some(options)),
            )
            .await?;
        let first = self.rpc("watch jobs", Kind::Read, stream.message()).await?;
        match first {
            Some(response) if response.compact_revision() > 0 => Err(CoordError::Compacted {
                requested: stored::revision(start - 1),
                oldest: stored::revision(response.compact_revision() - 1),
            }),
            Some(response) if response.canceled() => Err(CoordError::unavailable(format!(
                "etcd watch jobs: canceled: {}",
                response.cancel_reason()
            ))),
            Some(_) => Ok(stream),
            None => Err(CoordError::unavailable("etcd watch jobs: stream closed")),
        }
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
        let mut reads = vec![
            self.session_count(session),
            TxnOp::get(
                self.keys().assignment(),
                Some(GetOptions::new().with_keys_only()),
            ),
        ];
        for job in jobs {
            reads.push(TxnOp::get(
                self.keys().job(job),
                Some(GetOptions::new().with_keys_only()),
            ));
            reads.push(TxnOp::get(self.keys().claim(job), None));
        }
        let response = self
            .txn(
                "read claims",
                Kind::Read,
                Txn::new().and_then(reads.clone()),
            )
            .await?;
        let mut gets = gets(&response)?;
        for attempt in 0..ATTEMPTS {
            if gets.first().is_none_or(|g| g.count() == 0) {
                return Err(expired(session));
            }
            let assignment_revision = gets
                .get(1)
                .and_then(|g| g.kvs().first())
                .map_or(0, KeyValue::mod_revision);
            let assignment = self.assignment_at(assignment_revision).await?;
            let mut read = HashMap::new();
            for (i, job) in jobs.iter().enumerate() {
                let job_kv = gets.get(2 + 2 * i).and_then(|g| g.kvs().first());
                let claim = match gets.get(3 + 2 * i).and_then(|g| g.kvs().first()) {
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
            let (results, changed) = plan::claims(
                session,
                node,
                requests,
                |job| owners.and_then(|o| o.get(job)).cloned(),
                &read,
            );
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
                .or_else(reads.clone());
            let response = self.txn("claim fires", Kind::Write, txn).await?;
            if response.succeeded() {
                return Ok(results);
            }
            debug!(session = %session, attempt, "claim transaction raced, planning again");
            gets = crate::coordinator::gets(&response)?;
            backoff(session, attempt).await;
        }
        Err(contended("claim_fires"))
    }

    /// The assignment whose key has mod revision `revision` (0: none published), from the cache if it
    /// holds that one.
    async fn assignment_at(&self, revision: i64) -> CoordResult<Option<Arc<Assignment>>> {
        if revision == 0 {
            return Ok(None);
        }
        if let Some((cached, assignment)) = lock(&self.inner.assignment_cache).as_ref()
            && *cached == revision
        {
            return Ok(Some(Arc::clone(assignment)));
        }
        let options = GetOptions::new().with_revision(revision);
        let response = self
            .get("read assignment", self.keys().assignment(), Some(options))
            .await?;
        let Some(kv) = response.kvs().first() else {
            return Err(CoordError::unavailable(
                "etcd read assignment: the published assignment was not found at its revision",
            ));
        };
        let assignment = Arc::new(stored::assignment(kv)?);
        *lock(&self.inner.assignment_cache) = Some((revision, Arc::clone(&assignment)));
        Ok(Some(assignment))
    }

    /// Releases for a few jobs (at most one transaction's worth).
    async fn release_chunk(
        &self,
        session: SessionId,
        jobs: &[&JobId],
        releases: &[&(JobId, i64)],
    ) -> CoordResult<()> {
        for attempt in 0..ATTEMPTS {
            let mut ops = vec![self.session_count(session)];
            ops.extend(
                jobs.iter()
                    .map(|job| TxnOp::get(self.keys().claim(job), None)),
            );
            let response = self
                .txn("read claims", Kind::Read, Txn::new().and_then(ops))
                .await?;
            let gets = gets(&response)?;
            if gets.first().is_none_or(|g| g.count() == 0) {
                return Err(expired(session));
            }
            let mut held: BTreeMap<&JobId, (JobClaim, i64)> = BTreeMap::new();
            for (i, job) in jobs.iter().enumerate() {
                if let Some(kv) = gets.get(1 + i).and_then(|g| g.kvs().first()) {
                    let claim: JobClaim = stored::decode(kv.key(), kv.value())?;
                    if claim.session == session {
                        held.insert(*job, (claim, kv.mod_revision()));
                    }
                }
            }
            let mut changed: BTreeMap<&JobId, JobClaim> = BTreeMap::new();
            for (job, through_ms) in releases {
                let current = changed.get(job).or_else(|| held.get(job).map(|(c, _)| c));
                if let Some(claim) = current.and_then(|c| plan::truncate(c, *through_ms)) {
                    changed.insert(job, claim);
                }
            }
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
            backoff(session, attempt).await;
        }
        Err(contended("release_claims"))
    }

    /// Records a few run records (at most one transaction's worth); `taken` holds the fire ids this call
    /// already answered `Recorded`.
    async fn record_chunk(
        &self,
        session: SessionId,
        records: &[RunRecord],
        taken: &mut HashSet<(JobId, i64)>,
    ) -> CoordResult<Vec<RecordResult>> {
        let jobs: Vec<&JobId> = distinct(records.iter().map(|r| &r.job));
        for attempt in 0..ATTEMPTS {
            let mut ops = vec![self.session_count(session)];
            for job in &jobs {
                ops.push(TxnOp::get(
                    self.keys().job(job),
                    Some(GetOptions::new().with_keys_only()),
                ));
                ops.push(TxnOp::get(self.keys().run_floor(job), None));
            }
            for record in records {
                ops.push(TxnOp::get(
                    self.keys().run(&record.job, record.scheduled_ms),
                    Some(GetOptions::new().with_count_only()),
                ));
            }
            let response = self
                .txn("read runs", Kind::Read, Txn::new().and_then(ops))
                .await?;
            let gets = gets(&response)?;
            if gets.first().is_none_or(|g| g.count() == 0) {
                return Err(expired(session));
            }
            // Per job: (job key mod revision if it exists, floor, floor key mod revision).
            let mut seen: HashMap<&JobId, (Option<i64>, Option<i64>, i64)> = HashMap::new();
            for (i, job) in jobs.iter().enumerate() {
                let job_revision = gets
                    .get(1 + 2 * i)
                    .and_then(|g| g.kvs().first())
                    .map(KeyValue::mod_revision);
                let (floor, floor_revision) =
                    match gets.get(2 + 2 * i).and_then(|g| g.kvs().first()) {
                        Some(kv) => (
                            Some(stored::decode::<i64>(kv.key(), kv.value())?),
                            kv.mod_revision(),
                        ),
                        None => (None, 0),
                    };
                seen.insert(*job, (job_revision, floor, floor_revision));
            }
            let base = 1 + 2 * jobs.len();
            let mut local = HashSet::new();
            let mut results = Vec::with_capacity(records.len());
            let mut compares = vec![self.session_exists(session)];
            let mut puts = Vec::new();
            let mut fenced_jobs = HashSet::new();
            for (i, record) in records.iter().enumerate() {
                let (job_revision, floor, floor_revision) = seen[&record.job];
                let Some(job_revision) = job_revision else {
                    // The job is gone (deleted while the fire ran): its history went with it.
                    results.push(RecordResult::Recorded);
                    continue;
                };
                let exists = gets.get(base + i).is_some_and(|g| g.count() > 0);
                let fire = (record.job.clone(), record.scheduled_ms);
                let duplicate = exists
                    || floor.is_some_and(|f| record.scheduled_ms <= f)
                    || taken.contains(&fire)
                    || !local.insert(fire);
                if duplicate {
                    results.push(RecordResult::Duplicate);
                    continue;
                }
                results.push(RecordResult::Recorded);
                let key = self.keys().run(&record.job, record.scheduled_ms);
                compares.push(Compare::create_revision(key.clone(), CompareOp::Equal, 0));
                puts.push(TxnOp::put(key, stored::encode(record)?, None));
                if fenced_jobs.insert(&record.job) {
                    compares.push(Compare::mod_revision(
                        self.keys().job(&record.job),
                        CompareOp::Equal,
                        job_revision,
                    ));
                    compares.push(Compare::mod_revision(
                        self.keys().run_floor(&record.job),
                        CompareOp::Equal,
                        floor_revision,
                    ));
                }
            }
            if puts.is_empty() {
                return Ok(results);
            }
            let txn = Txn::new().when(compares).and_then(puts);
            if self.txn("record runs", Kind::Write, txn).await?.succeeded() {
                taken.extend(local);
                return Ok(results);
            }
            backoff(session, attempt).await;
        }
        Err(contended("record_runs"))
    }

    /// Drops the oldest run records of `jobs` that hold more than `history_limit` plus a tenth, down to
    /// `history_limit`, and raises their floors. Trimming in steps of a tenth keeps it rare: one extra
    /// transaction per job per `history_limit / 10` records.
    async fn trim(&self, jobs: &[&JobId]) -> CoordResult<()> {
        let limit = self.inner.config.history_limit;
        let slack = (limit / 10).max(1);
        for chunk in jobs.chunks(self.max_ops().max(1)) {
            let ops: Vec<TxnOp> = chunk
                .iter()
                .map(|job| {
                    TxnOp::get(
                        self.keys().runs(job),
                        Some(GetOptions::new().with_prefix().with_count_only()),
                    )
                })
                .collect();
            let response = self
                .txn("count runs", Kind::Read, Txn::new().and_then(ops))
                .await?;
            let counts: Vec<i64> = gets(&response)?.iter().map(|g| g.count()).collect();
            for (job, count) in chunk.iter().zip(counts) {
                let count = count.max(0) as usize;
                if count > limit + slack {
                    self.trim_job(job, count - limit).await?;
                }
            }
        }
        Ok(())
    }

    async fn trim_job(&self, job: &JobId, excess: usize) -> CoordResult<()> {
        let prefix = self.keys().runs(job);
        let oldest = self
            .get(
                "read runs",
                prefix.clone(),
                Some(
                    GetOptions::new()
                        .with_prefix()
                        .with_keys_only()
                        .with_sort(SortTarget::Key, SortOrder::Ascend)
                        .with_limit(excess as i64),
                ),
            )
            .await?;
        let Some(last) = oldest.kvs().last() else {
            return Ok(());
        };
        let Some(floor_ms) = keys::parse_instant(last.key()) else {
            return Err(crate::error::corrupt(last.key(), "not a run record key"));
        };
        let floor_key = self.keys().run_floor(job);
        let floor = self.get("read run floor", floor_key.clone(), None).await?;
        let (old_floor, floor_revision) = match floor.kvs().first() {
            Some(kv) => (
                Some(stored::decode::<i64>(kv.key(), kv.value())?),
                kv.mod_revision(),
            ),
            None => (None, 0),
        };
        let mut end = last.key().to_vec();
        end.push(0);
        let txn = Txn::new()
            .when(vec![
                Compare::version(self.keys().job(job), CompareOp::Greater, 0),
                Compare::mod_revision(floor_key.clone(), CompareOp::Equal, floor_revision),
            ])
            .and_then(vec![
                TxnOp::delete(prefix, Some(DeleteOptions::new().with_range(end))),
                TxnOp::put(
                    floor_key,
                    stored::encode(&old_floor.max(Some(floor_ms)))?,
                    None,
                ),
            ]);
        // A failed compare means another writer trimmed or the job is gone: nothing left to do.
        self.txn("trim runs", Kind::Write, txn).await?;
        Ok(())
    }

    /// The jobs of `chunk` whose key holds exactly the value this call wrote, with their mod revision:
    /// what a write that may have happened did write.
    async fn written_by_us(&self, chunk: &[(JobId, Vec<u8>)]) -> CoordResult<Vec<(JobId, i64)>> {
        let mut ours = Vec::new();
        for (id, value) in chunk {
            let response = self
                .get("read a new job", self.keys().job(id), None)
                .await?;
            if let Some(kv) = response.kvs().first()
                && kv.value() == value.as_slice()
            {
                ours.push((id.clone(), kv.mod_revision()));
            }
        }
        Ok(ours)
    }

    /// Deletes jobs a failed `put_jobs` created, each only if still at the revision it was created with (a
    /// job changed meanwhile was taken over by another writer and is left), with what a delete of the job
    /// removes besides (claim, runs, floor).
    async fn undo(&self, created: &[(JobId, i64)]) -> CoordResult<()> {
        // One transaction per job: a batch would delete none if one of them had changed. This is the failure
        // path only.
        for (id, revision) in created {
            let key = self.keys().job(id);
            let txn = Txn::new()
                .when(vec![Compare::mod_revision(
                    key.clone(),
                    CompareOp::Equal,
                    *revision,
                )])
                .and_then(vec![
                    TxnOp::delete(key, None),
                    TxnOp::delete(self.keys().claim(id), None),
                    TxnOp::delete(
                        self.keys().runs(id),
                        Some(DeleteOptions::new().with_prefix()),
                    ),
                    TxnOp::delete(self.keys().run_floor(id), None),
                ]);
            self.txn("undo put jobs", Kind::Write, txn).await?;
        }
        Ok(())
    }

    /// The error of a `put_jobs` whose compensation failed: some of its jobs may be left.
    fn undo_failed(
        &self,
        cause: CoordError,
        created: &[(JobId, i64)],
        unknown: usize,
    ) -> CoordError {
        warn!(%cause, created = created.len(), "put_jobs failed and could not delete what it created");
        CoordError::Unavailable {
            message: format!(
                "etcd put_jobs failed ({cause}), and it could not make sure that none of its jobs remain (of the \
                 {} it had created, plus up to {unknown} whose write may have happened): list them before retrying",
                created.len()
            ),
            certainly_aborted: false,
        }
    }

    fn max_ops(&self) -> usize {
        self.inner.config.max_txn_ops
    }
}

/// Most bytes of job values in one `put_jobs` transaction: below etcd's default `--max-request-bytes`
/// (1.5 MiB) with room for keys and framing.
const PUT_JOBS_TXN_BYTES: usize = 1 << 20;

/// Splits encoded new jobs into transactions of at most `max_ops` jobs (one compare and one put each) and
/// [`PUT_JOBS_TXN_BYTES`] of values (a single larger job, within the job limit, goes alone).
fn put_chunks(jobs: &[(JobId, Vec<u8>)], max_ops: usize) -> Vec<std::ops::Range<usize>> {
    let mut chunks = Vec::new();
    let (mut start, mut bytes) = (0, 0);
    for (i, (_, value)) in jobs.iter().enumerate() {
        if i > start && (i - start == max_ops || bytes + value.len() > PUT_JOBS_TXN_BYTES) {
            chunks.push(start..i);
            (start, bytes) = (i, 0);
        }
        bytes += value.len();
    }
    if start < jobs.len() {
        chunks.push(start..jobs.len());
    }
    chunks
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// A short pause before re-planning a raced transaction, growing with the attempt and spread by the
/// session id, so that racing writers stop colliding.
async fn backoff(session: SessionId, attempt: usize) {
    let spread = (session.0 ^ (attempt as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15)) % 8;
    let ms = (2u64 << attempt.min(5)) + spread;
    tokio::time::sleep(Duration::from_millis(ms)).await;
}

fn expired(session: SessionId) -> CoordError {
    CoordError::SessionExpired { session: session.0 }
}

fn contended(call: &str) -> CoordError {
    CoordError::unavailable(format!(
        "etcd {call}: the keys kept changing during {ATTEMPTS} attempts; nothing was written"
    ))
}

/// The range answers of a transaction, in order (other answers are skipped). An answer that leaves out an
/// operation's response is an error, never a shifted list.
fn gets(response: &TxnResponse) -> Result<Vec<etcd_client::GetResponse>, CoordError> {
    Ok(response
        .op_responses()
        .map_err(|e| {
            CoordError::unavailable(format!("etcd answered a transaction malformed: {e}"))
        })?
        .into_iter()
        .filter_map(|r| match r {
            TxnOpResponse::Get(get) => Some(get),
            _ => None,
        })
        .collect())
}

/// The distinct items, in order of first appearance.
fn distinct<'a, T: Eq + std::hash::Hash>(items: impl Iterator<Item = &'a T>) -> Vec<&'a T> {
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

/// The error of a job write whose `precondition` failed on a job at revision `current` (`None`: absent).
fn precondition_error(id: &JobId, precondition: Precondition, current: Option<u64>) -> CoordError {
    let actual = current.map_or_else(|| "absent".to_owned(), |r| format!("revision {r}"));
    let conflict = |expected: String| CoordError::Conflict {
        key: id.to_string(),
        expected,
        actual: actual.clone(),
    };
    match (precondition, current) {
        (Precondition::Absent, Some(_)) => conflict("absent".to_owned()),
        (Precondition::Revision(want), _) => conflict(format!("revision {want}")),
        (Precondition::Exists, None) => CoordError::NotFound {
            key: id.to_string(),
        },
        // The compare and the read are one transaction, so this cannot happen; answer it safely.
        _ => CoordError::unavailable(format!(
            "etcd: the write of job {id} was refused although its precondition holds"
        )),
    }
}

#[async_trait]
impl Coordinator for EtcdCoordinator {
    fn backend(&self) -> &'static str {
        "etcd"
    }

    async fn open_session(&self, node: NodeInfo, ttl: Duration) -> CoordResult<Session> {
        limits::check_ttl(ttl)?;
        limits::check_node(&node)?;
        // etcd counts TTLs in whole seconds: round up, never down.
        let seconds = (ttl.as_secs() + u64::from(ttl.subsec_nanos() > 0)).max(1);
        let mut lease = self.inner.client.lease_client();
        let grant = self
            .rpc(
                "grant lease",
                Kind::Write,
                lease.grant(seconds as i64, None),
            )
            .await?;
        let id = SessionId(grant.id() as u64);
        let granted = Duration::from_secs(grant.ttl().max(seconds as i64) as u64);
        let member_key = self.keys().member(node.id.as_str());
        let member = Member {
            node: node.clone(),
            session: id,
            draining: false,
        };
        let on_lease = || Some(PutOptions::new().with_lease(grant.id()));
        let txn = Txn::new()
            .when(vec![Compare::create_revision(
                member_key.clone(),
                CompareOp::Equal,
                0,
            )])
            .and_then(vec![
                TxnOp::put(self.keys().session(id), stored::encode(&node)?, on_lease()),
                TxnOp::put(member_key.clone(), stored::encode(&member)?, on_lease()),
            ])
            .or_else(vec![TxnOp::get(member_key, None)]);
        let result = self.txn("open session", Kind::Write, txn).await;
        let conflict = match &result {
            Ok(response) if response.succeeded() => None,
            Ok(response) => Some(
                gets(response)?
                    .first()
                    .and_then(|g| g.kvs().first().cloned())
                    .and_then(|kv| stored::decode::<Member>(kv.key(), kv.value()).ok())
                    .map_or_else(
                        || "a live session".to_owned(),
                        |m| format!("live session {}", m.session),
                    ),
            ),
            Err(_) => Some(String::new()),
        };
        let Some(actual) = conflict else {
            return Ok(Session { id, ttl: granted });
        };
        // Not opened: give the lease back now rather than let it expire.
        if let Err(error) = self
            .rpc("revoke lease", Kind::Write, lease.revoke(grant.id()))
            .await
        {
            debug!(%error, "revoking an unused lease failed; it will expire");
        }
        result?;
        Err(CoordError::Conflict {
            key: format!("node {}", node.id),
            expected: "no live session".to_owned(),
            actual,
        })
    }

    async fn keep_alive(&self, session: SessionId) -> CoordResult<()> {
        if self.inner.feeds.is_expired(session) {
            return Err(expired(session));
        }
        // One keep-alive round trip on a stream of its own: nothing to re-establish after a connection
        // loss, and the session lives at least its TTL from the moment the request was sent.
        let mut lease = self.inner.client.lease_client();
        let call = async {
            let (_keeper, _stream) = lease.keep_alive(session.0 as i64).await?;
            Ok(())
        };
        match tokio::time::timeout(self.inner.config.request_timeout, call).await {
            Ok(Ok(())) => Ok(()),
            Ok(Err(error)) if is_lease_not_found(&error) => {
                self.inner.feeds.expire(session);
                Err(expired(session))
            }
            Ok(Err(error)) => Err(map("keep alive", Kind::Write, error)),
            Err(_) => Err(timed_out("keep alive", Kind::Write)),
        }
    }

    async fn close_session(&self, session: SessionId) -> CoordResult<()> {
        let mut lease = self.inner.client.lease_client();
        let call = lease.revoke(session.0 as i64);
        match tokio::time::timeout(self.inner.config.request_timeout, call).await {
            Ok(Ok(_)) => {}
            Ok(Err(error)) if is_lease_not_found(&error) => {}
            Ok(Err(error)) => return Err(map("revoke lease", Kind::Write, error)),
            Err(_) => return Err(timed_out("revoke lease", Kind::Write)),
        }
        self.inner.feeds.expire(session);
        Ok(())
    }

    async fn drain(&self, session: SessionId) -> CoordResult<()> {
        let node = self.session_node(session).await?;
        let member_key = self.keys().member(node.id.as_str());
        let member = Member {
            node,
            session,
            draining: true,
        };
        let txn = Txn::new()
            .when(vec![Compare::lease(
                member_key.clone(),
                CompareOp::Equal,
                session.0 as i64,
            )])
            .and_then(vec![TxnOp::put(
                member_key,
                stored::encode(&member)?,
                Some(PutOptions::new().with_lease(session.0 as i64)),
            )]);
        if self.txn("drain", Kind::Write, txn).await?.succeeded() {
            return Ok(());
        }
        Err(expired(session))
    }

    async fn watch_session(
        &self,
        session: SessionId,
    ) -> CoordResult<watch::Receiver<SessionState>> {
        feeds::ensure_members(&self.feed_ctx());
        let rx = self.inner.feeds.session(session);
        if *rx.borrow() == SessionState::Expired {
            return Ok(rx);
        }
        let mut lease = self.inner.client.lease_client();
        let answer = self
            .rpc(
                "lease time to live",
                Kind::Read,
                lease.time_to_live(session.0 as i64, None),
            )
            .await?;
        if answer.ttl() < 0 {
            self.inner.feeds.expire(session);
        }
        Ok(rx)
    }

    async fn members(&self) -> CoordResult<Membership> {
        let (revision, members) = feeds::list_members(
            &self.inner.client,
            self.keys(),
            self.inner.config.request_timeout,
        )
        .await?;
        Ok(feeds::membership(revision, &members))
    }

    async fn watch_members(&self) -> CoordResult<watch::Receiver<Membership>> {
        feeds::ensure_members(&self.feed_ctx());
        let current = self.members().await?;
        self.inner.feeds.offer_members(current);
        Ok(self.inner.feeds.members.subscribe())
    }

    async fn campaign(&self, session: SessionId) -> CoordResult<Option<Leader>> {
        let node = self.session_node(session).await?;
        let leader_key = self.keys().leader();
        let value = stored::LeaderValue {
            node: node.id.clone(),
            session,
        };
        for _ in 0..ATTEMPTS {
            let txn = Txn::new()
                .when(vec![
                    Compare::create_revision(leader_key.clone(), CompareOp::Equal, 0),
                    self.session_exists(session),
                ])
                .and_then(vec![TxnOp::put(
                    leader_key.clone(),
                    stored::encode(&value)?,
                    Some(PutOptions::new().with_lease(session.0 as i64)),
                )])
                .or_else(vec![
                    self.session_count(session),
                    TxnOp::get(leader_key.clone(), None),
                ]);
            let response = self.txn("campaign", Kind::Write, txn).await?;
            if response.succeeded() {
                let epoch = response.header().map_or(0, |h| h.revision());
                return Ok(Some(Leader {
                    node: node.id,
                    session,
                    epoch: stored::revision(epoch),
                }));
            }
            let gets = gets(&response)?;
            if gets.first().is_none_or(|g| g.count() == 0) {
                return Err(expired(session));
            }
            if let Some(kv) = gets.get(1).and_then(|g| g.kvs().first()) {
                let leader = stored::leader(kv)?;
                return Ok((leader.session == session).then_some(leader));
            }
            // The leader key vanished between the compare and the read: campaign again.
        }
        Err(contended("campaign"))
    }

    async fn leader(&self) -> CoordResult<Option<Leader>> {
        let response = self.get("read leader", self.keys().leader(), None).await?;
        response.kvs().first().map(stored::leader).transpose()
    }

    async fn resign(&self, session: SessionId) -> CoordResult<()> {
        let leader_key = self.keys().leader();
        let txn = Txn::new()
            .when(vec![Compare::lease(
                leader_key.clone(),
                CompareOp::Equal,
                session.0 as i64,
            )])
            .and_then(vec![TxnOp::delete(leader_key, None)])
            .or_else(vec![self.session_count(session)]);
        let response = self.txn("resign", Kind::Write, txn).await?;
        if !response.succeeded() && gets(&response)?.first().is_none_or(|g| g.count() == 0) {
            return Err(expired(session));
        }
        Ok(())
    }

    async fn put_job(&self, mut job: Job, precondition: Precondition) -> CoordResult<u64> {
        limits::check_job(&job)?;
        let key = self.keys().job(&job.id);
        let compares = match precondition {
            Precondition::Absent => {
                vec![Compare::create_revision(key.clone(), CompareOp::Equal, 0)]
            }
            Precondition::Revision(r) => {
                let Ok(r) = i64::try_from(r) else {
                    return Err(precondition_error(&job.id, precondition, None));
                };
                vec![
                    Compare::mod_revision(key.clone(), CompareOp::Equal, r),
                    Compare::version(key.clone(), CompareOp::Greater, 0),
                ]
            }
            Precondition::Exists => vec![Compare::version(key.clone(), CompareOp::Greater, 0)],
            Precondition::Any => Vec::new(),
        };
        // The revision is the key's mod revision, filled in on every read.
        job.revision = 0;
        let txn = Txn::new()
            .when(compares)
            .and_then(vec![TxnOp::put(key.clone(), stored::encode(&job)?, None)])
            .or_else(vec![TxnOp::get(
                key,
                Some(GetOptions::new().with_keys_only()),
            )]);
        let response = self.txn("put job", Kind::Write, txn).await?;
        if response.succeeded() {
            return Ok(stored::revision(
                response.header().map_or(0, |h| h.revision()),
            ));
        }
        let current = gets(&response)?.first().and_then(|g| {
            g.kvs()
                .first()
                .map(|kv| stored::revision(kv.mod_revision()))
        });
        Err(precondition_error(&job.id, precondition, current))
    }

    async fn put_jobs(&self, jobs: Vec<Job>) -> CoordResult<Vec<u64>> {
        limits::check_jobs(&jobs, limits::MAX_JOB_BYTES)?;
        let mut encoded = Vec::with_capacity(jobs.len());
        for mut job in jobs {
            // The revision is the key's mod revision, filled in on every read.
            job.revision = 0;
            let value = stored::encode(&job)?;
            encoded.push((job.id, value));
        }
        let chunks = put_chunks(&encoded, self.max_ops());
        let mut revisions = Vec::with_capacity(encoded.len());
        let mut created: Vec<(JobId, i64)> = Vec::new();
        for range in chunks {
            let chunk = &encoded[range];
            let keys: Vec<String> = chunk.iter().map(|(id, _)| self.keys().job(id)).collect();
            let txn = Txn::new()
                .when(
                    keys.iter()
                        .map(|k| Compare::create_revision(k.clone(), CompareOp::Equal, 0))
                        .collect::<Vec<_>>(),
                )
                .and_then(
                    keys.iter()
                        .zip(chunk)
                        .map(|(k, (_, value))| TxnOp::put(k.clone(), value.clone(), None))
                        .collect::<Vec<_>>(),
                )
                .or_else(
                    keys.iter()
                        .map(|k| TxnOp::get(k.clone(), Some(GetOptions::new().with_keys_only())))
                        .collect::<Vec<_>>(),
                );
            let failure = match self.txn("put jobs", Kind::Write, txn).await {
                Ok(response) if response.succeeded() => {
                    let revision = response.header().map_or(0, |h| h.revision());
                    created.extend(chunk.iter().map(|(id, _)| (id.clone(), revision)));
                    revisions.extend(chunk.iter().map(|_| stored::revision(revision)));
                    continue;
                }
                Ok(response) => match gets(&response) {
                    Ok(found) => {
                        let existing = chunk
                            .iter()
                            .zip(&found)
                            .find_map(|((id, _), get)| get.kvs().first().map(|kv| (id, kv)));
                        match existing {
                            Some((id, kv)) => CoordError::Conflict {
                                key: id.to_string(),
                                expected: "absent".to_owned(),
                                actual: format!("revision {}", stored::revision(kv.mod_revision())),
                            },
                            None => CoordError::unavailable(
                                "etcd: a batch of new jobs was refused although none of them exists",
                            ),
                        }
                    }
                    Err(error) => error,
                },
                // The chunk may have been written (a timeout): take back whatever of it holds our bytes.
                Err(error) if !error.is_certainly_aborted() => {
                    match self.written_by_us(chunk).await {
                        Ok(ours) => created.extend(ours),
                        Err(_) => {
                            // Still take back what is known; the rest stays uncertain.
                            let _ = self.undo(&created).await;
                            return Err(self.undo_failed(error, &created, chunk.len()));
                        }
                    }
                    error
                }
                Err(error) => error,
            };
            return Err(match self.undo(&created).await {
                Ok(()) => failure,
                Err(_) => self.undo_failed(failure, &created, 0),
            });
        }
        Ok(revisions)
    }

    async fn delete_job(&self, id: &JobId, precondition: Precondition) -> CoordResult<u64> {
        let key = self.keys().job(id);
        let mut compares = vec![Compare::version(key.clone(), CompareOp::Greater, 0)];
        match precondition {
            Precondition::Absent => {
                compares.push(Compare::create_revision(key.clone(), CompareOp::Equal, 0));
            }
            Precondition::Revision(r) => {
                let r = i64::try_from(r).unwrap_or(-1);
                compares.push(Compare::mod_revision(key.clone(), CompareOp::Equal, r));
            }
            Precondition::Exists | Precondition::Any => {}
        }
        let txn = Txn::new()
            .when(compares)
            .and_then(vec![
                TxnOp::delete(key.clone(), None),
                TxnOp::delete(self.keys().claim(id), None),
                TxnOp::delete(
                    self.keys().runs(id),
                    Some(DeleteOptions::new().with_prefix()),
                ),
                TxnOp::delete(self.keys().run_floor(id), None),
            ])
            .or_else(vec![TxnOp::get(
                key,
                Some(GetOptions::new().with_keys_only()),
            )]);
        let response = self.txn("delete job", Kind::Write, txn).await?;
        if response.succeeded() {
            return Ok(stored::revision(
                response.header().map_or(0, |h| h.revision()),
            ));
        }
        let current = gets(&response)?.first().and_then(|g| {
            g.kvs()
                .first()
                .map(|kv| stored::revision(kv.mod_revision()))
        });
        match current {
            None => Err(CoordError::NotFound {
                key: id.to_string(),
            }),
            Some(_) => Err(precondition_error(id, precondition, current)),
        }
    }

    async fn get_job(&self, id: &JobId) -> CoordResult<Option<Job>> {
        let response = self.get("get job", self.keys().job(id), None).await?;
        response.kvs().first().map(stored::job).transpose()
    }

    async fn list_jobs(&self) -> CoordResult<JobSnapshot> {
        let prefix = self.keys().jobs();
        let end = keys::prefix_end(&prefix);
        let mut jobs = Vec::new();
        let mut from = prefix.into_bytes();
        let mut revision = 0;
        loop {
            // Every page reads the revision of the first one: together, one consistent snapshot.
            let mut options = GetOptions::new()
                .with_range(end.clone())
                .with_limit(PAGE)
                .with_sort(SortTarget::Key, SortOrder::Ascend);
            if revision > 0 {
                options = options.with_revision(revision);
            }
            let mut kv = self.inner.client.kv_client();
            let response = self
                .rpc("list jobs", Kind::Read, kv.get(from.clone(), Some(options)))
                .await?;
            if revision == 0 {
                revision = response.header().map_or(0, |h| h.revision());
            }
            for kv in response.kvs() {
                jobs.push(stored::job(kv)?);
            }
            match response.kvs().last() {
                Some(last) if response.more() => {
                    from = last.key().to_vec();
                    from.push(0);
                }
                _ => break,
            }
        }
        Ok(JobSnapshot {
            jobs,
            revision: stored::revision(revision),
        })
    }

    async fn watch_jobs(&self, after_revision: u64) -> CoordResult<JobWatch> {
        let Some(start) = i64::try_from(after_revision)
            .ok()
            .and_then(|r| r.checked_add(1))
        else {
            return Err(CoordError::Invalid(format!(
                "after_revision: {after_revision}: out of range"
            )));
        };
        let stream = self.open_job_watch(start).await?;
        let (tx, rx) = mpsc::channel(WATCH_BUFFER);
        tokio::spawn(forward_jobs(self.clone_weak(), stream, tx, after_revision));
        Ok(rx)
    }

    async fn publish_assignment(
        &self,
        session: SessionId,
        epoch: u64,
        owners: BTreeMap<JobId, NodeId>,
    ) -> CoordResult<u64> {
        if owners.len() > limits::MAX_ASSIGNMENT {
            return Err(CoordError::Invalid(format!(
                "assignment: {} jobs, at most {} allowed",
                owners.len(),
                limits::MAX_ASSIGNMENT
            )));
        }
        let leader_key = self.keys().leader();
        let Ok(term) = i64::try_from(epoch) else {
            return Err(CoordError::Fenced {
                reason: format!("leader epoch {epoch} is not an etcd revision"),
            });
        };
        let value = stored::encode(&stored::AssignmentValue::new(epoch, owners))?;
        let txn = Txn::new()
            .when(vec![
                Compare::create_revision(leader_key.clone(), CompareOp::Equal, term),
                Compare::lease(leader_key.clone(), CompareOp::Equal, session.0 as i64),
            ])
            .and_then(vec![TxnOp::put(self.keys().assignment(), value, None)])
            .or_else(vec![
                self.session_count(session),
                TxnOp::get(leader_key, None),
            ]);
        let response = self.txn("publish assignment", Kind::Write, txn).await?;
        if response.succeeded() {
            return Ok(stored::revision(
                response.header().map_or(0, |h| h.revision()),
            ));
        }
        let gets = gets(&response)?;
        if gets.first().is_none_or(|g| g.count() == 0) {
            return Err(expired(session));
        }
        let current = gets
            .get(1)
            .and_then(|g| g.kvs().first())
            .map(stored::leader)
            .transpose()?;
        let reason = match current {
            Some(leader) if leader.session == session => {
                format!("leader epoch {epoch} != current {}", leader.epoch)
            }
            _ => format!("session {session} does not lead term {epoch}"),
        };
        Err(CoordError::Fenced { reason })
    }

    async fn assignment(&self) -> CoordResult<Option<Arc<Assignment>>> {
        let response = self
            .get("read assignment", self.keys().assignment(), None)
            .await?;
        Ok(response
            .kvs()
            .first()
            .map(stored::assignment)
            .transpose()?
            .map(Arc::new))
    }

    async fn watch_assignment(&self) -> CoordResult<watch::Receiver<Option<Arc<Assignment>>>> {
        feeds::ensure_assignment(&self.feed_ctx());
        if let Some(current) = self.assignment().await? {
            self.inner.feeds.offer_assignment(current);
        }
        Ok(self.inner.feeds.assignment.subscribe())
    }

    async fn claim_fires(
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

    async fn release_claims(
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

    async fn claim_of(&self, job: &JobId) -> CoordResult<Option<JobClaim>> {
        let response = self.get("read claim", self.keys().claim(job), None).await?;
        response
            .kvs()
            .first()
            .map(|kv| stored::decode(kv.key(), kv.value()))
            .transpose()
    }

    async fn record_runs(
        &self,
        session: SessionId,
        records: Vec<RunRecord>,
    ) -> CoordResult<Vec<RecordResult>> {
        limits::check_batch("records", records.len())?;
        records.iter().try_for_each(limits::check_record)?;
        if !self.session_alive(session).await? {
            return Err(expired(session));
        }
        // Chunks whose reads and compares fit one transaction: one per transaction, two per job, one per
        // record.
        let budget = self.max_ops().max(4);
        let mut chunks: Vec<Vec<RunRecord>> = Vec::new();
        let mut current: Vec<RunRecord> = Vec::new();
        let mut jobs_in_current: HashSet<JobId> = HashSet::new();
        for record in records {
            let new_job = !jobs_in_current.contains(&record.job);
            let cost = 1 + 2 * (jobs_in_current.len() + usize::from(new_job)) + current.len() + 1;
            if cost > budget && !current.is_empty() {
                chunks.push(std::mem::take(&mut current));
                jobs_in_current.clear();
            }
            jobs_in_current.insert(record.job.clone());
            current.push(record);
        }
        if !current.is_empty() {
            chunks.push(current);
        }
        let mut taken = HashSet::new();
        let mut results = Vec::new();
        let mut touched: Vec<JobId> = Vec::new();
        for chunk in &chunks {
            let answers = self.record_chunk(session, chunk, &mut taken).await?;
            for (record, answer) in chunk.iter().zip(&answers) {
                if *answer == RecordResult::Recorded && !touched.contains(&record.job) {
                    touched.push(record.job.clone());
                }
            }
            results.extend(answers);
        }
        let touched: Vec<&JobId> = touched.iter().collect();
        if let Err(error) = self.trim(&touched).await {
            // The records are stored; trimming is retried by the next call that records for the job.
            warn!(%error, "trimming run history failed");
        }
        Ok(results)
    }

    async fn runs(&self, job: &JobId, query: RunQuery) -> CoordResult<Vec<RunRecord>> {
        if query.limit == 0 {
            return Ok(Vec::new());
        }
        if let (Some(from), Some(before)) = (query.from_ms, query.before_ms)
            && from >= before
        {
            return Ok(Vec::new());
        }
        let prefix = self.keys().runs(job);
        let start = match query.from_ms {
            Some(from) => self.keys().run(job, from),
            None => prefix.clone(),
        };
        let end = match query.before_ms {
            Some(before) => self.keys().run(job, before).into_bytes(),
            None => keys::prefix_end(&prefix),
        };
        let options = GetOptions::new()
            .with_range(end)
            .with_sort(SortTarget::Key, SortOrder::Descend)
            .with_limit(i64::try_from(query.limit).unwrap_or(i64::MAX));
        let response = self.get("read runs", start, Some(options)).await?;
        response
            .kvs()
            .iter()
            .map(|kv| stored::decode(kv.key(), kv.value()))
            .collect()
    }
}

impl EtcdCoordinator {
    fn clone_weak(&self) -> WatchCtx {
        WatchCtx {
            coordinator: Arc::downgrade(&self.inner),
            closed: self.inner.closed.clone(),
        }
    }
}

/// What a job watch's forwarding task holds: the coordinator weakly (a watch must not keep a dropped
/// coordinator alive) and its lifetime signal.
struct WatchCtx {
    coordinator: std::sync::Weak<Inner>,
    closed: watch::Receiver<()>,
}

/// Forwards a job watch; when etcd's stream dies, re-opens it from the last revision delivered (a few
/// times, with a short backoff) before ending the channel, after which the caller resumes itself.
async fn forward_jobs(
    mut ctx: WatchCtx,
    mut stream: WatchStream,
    tx: mpsc::Sender<CoordResult<JobEvent>>,
    mut last: u64,
) {
    'stream: loop {
        loop {
            let message = tokio::select! {
                biased;
                _ = ctx.closed.changed() => return,
                () = tx.closed() => return,
                message = stream.message() => message,
            };
            let response = match message {
                Ok(Some(response)) => response,
                Ok(None) | Err(_) => break,
            };
            if response.compact_revision() > 0 {
                let _ = tx
                    .send(Err(CoordError::Compacted {
                        requested: last,
                        oldest: stored::revision(response.compact_revision() - 1),
                    }))
                    .await;
                return;
            }
            if response.canceled() {
                break;
            }
            let Some(inner) = ctx.coordinator.upgrade() else {
                return;
            };
            let keys = inner.keys.clone();
            drop(inner);
            for event in response.events() {
                let Some(kv) = event.kv() else { continue };
                let item = match event.event_type() {
                    EventType::Put => stored::job(kv).map(JobEvent::Put),
                    EventType::Delete => match keys.job_id(kv.key()) {
                        Some(id) => Ok(JobEvent::Deleted {
                            id,
                            revision: stored::revision(kv.mod_revision()),
                        }),
                        None => Err(crate::error::corrupt(kv.key(), "not a job key")),
                    },
                };
                let failed = item.is_err();
                if let Ok(event) = &item {
                    last = event.revision();
                }
                if tx.send(item).await.is_err() || failed {
                    return;
                }
            }
        }
        // The stream died (connection lost, etcd restarting): re-open it from the last revision delivered.
        for attempt in 0..3u32 {
            tokio::select! {
                biased;
                _ = ctx.closed.changed() => return,
                () = tokio::time::sleep(Duration::from_millis(200 << attempt)) => {}
            }
            let Some(inner) = ctx.coordinator.upgrade() else {
                return;
            };
            let coordinator = EtcdCoordinator { inner };
            let reopened = coordinator.open_job_watch(last as i64 + 1).await;
            drop(coordinator);
            match reopened {
                Ok(reopened) => {
                    stream = reopened;
                    continue 'stream;
                }
                Err(error @ CoordError::Compacted { .. }) => {
                    let _ = tx.send(Err(error)).await;
                    return;
                }
                Err(error) => debug!(%error, attempt, "re-opening the job watch failed"),
            }
        }
        return;
    }
}
