//! `State`: the coordinator's data in memory and every rule of the `Coordinator` contract, without IO.
//!
//! `State` is the source of truth in both modes. A write call is *planned* by a `&self` method that checks
//! the rules and returns the answer plus the [`Change`]s that make it true; the caller commits the changes
//! (store first, in durable mode) and then [`State::apply`]s them. Planning never mutates, so a rejected or
//! failed write leaves nothing behind. `State` never reads a clock: callers pass `now`, and must apply
//! [`State::expired_sessions`] for that `now` before planning, so that no plan sees a session whose TTL has
//! elapsed.

#[cfg(test)]
mod tests;

use std::collections::hash_map::Entry;
use std::collections::{BTreeMap, BTreeSet};
use std::ops::Bound;
use std::sync::Arc;
use std::time::Duration;

use campanile::coordinator::{
    Assignment, ClaimResult, CoordError, CoordResult, FireClaim, JobClaim, JobEvent, JobSnapshot,
    JobWatch, Key, Leader, Member, Members, NodeId, NodeInfo, Precondition, RecordResult, RunQuery,
    Session, SessionId, SessionState, rules,
};
use campanile::job::{Job, JobId};
use campanile::run::RunRecord;
use rustc_hash::FxHashMap;
use tokio::sync::watch;
use tokio::task::AbortHandle;
use tokio::time::Instant;

use crate::change::Change;
use crate::config::InprocConfig;
use crate::job_log::JobLog;
use crate::limits;

/// A planned write: the answer to the caller and the changes that make it true.
pub(crate) type Plan<T> = CoordResult<(T, Vec<Change>)>;

/// Everything that survives a restart: what the store loads at open, and all a memory coordinator starts
/// from (empty).
#[derive(Debug, Default)]
pub(crate) struct Durable {
    /// The store revision (of the last job write).
    pub(crate) revision: u64,
    /// The last leader epoch handed out.
    pub(crate) leader_epoch: u64,
    /// The last session id handed out.
    pub(crate) last_session: u64,
    /// Jobs with their claims and run records.
    pub(crate) jobs: BTreeMap<JobId, JobEntry>,
    /// The last published assignment.
    pub(crate) assignment: Option<Assignment>,
}

/// A job and what hangs off it: deleting the job deletes all of it.
#[derive(Debug)]
pub(crate) struct JobEntry {
    /// The job as last written.
    pub(crate) job: Arc<Job>,
    /// Its current claim.
    pub(crate) claim: Option<JobClaim>,
    /// Its run records by scheduled instant: the newest `history_limit` (at least).
    pub(crate) runs: BTreeMap<i64, RunRecord>,
    /// The newest scheduled instant whose record was dropped from the history. A record at or before it is
    /// answered `Duplicate`: the ledger can no longer prove that its fire id has no record, and answering
    /// `Recorded` twice for one fire id would break "exactly one record per fire id".
    pub(crate) run_floor: Option<i64>,
}

impl JobEntry {
    /// A job without claim or history.
    pub(crate) fn new(job: Arc<Job>) -> Self {
        Self {
            job,
            claim: None,
            runs: BTreeMap::new(),
            run_floor: None,
        }
    }
}

/// A session that is open and not expired. Expired and closed sessions are removed: absence means expired.
#[derive(Debug)]
struct LiveSession {
    node: NodeInfo,
    ttl: Duration,
    /// It expires when `tokio::time::Instant::now()` reaches this without a keep-alive.
    deadline: Instant,
    /// Publishes `Alive`, then `Expired` once when the session ends; dropped with the session, so receivers
    /// keep `Expired` for good.
    state: watch::Sender<SessionState>,
    /// The task that expires the session at its deadline without any call; aborted when it ends earlier.
    reaper: Option<AbortHandle>,
    /// Marked as leaving by `drain`.
    draining: bool,
}

/// The coordinator's data. See the module docs for the plan/commit/apply discipline.
#[derive(Debug)]
pub(crate) struct State {
    config: InprocConfig,

    // Durable: written through to the store in durable mode.
    revision: u64,
    leader_epoch: u64,
    last_session: u64,
    /// Every job, by id: a hash map, as every fire's claim and record looks its job up.
    jobs: FxHashMap<JobId, JobEntry>,
    /// The ids of `jobs` in order, for listing.
    order: BTreeSet<JobId>,
    assignment: Option<Arc<Assignment>>,

    // Volatile: gone after a restart (every earlier session is then expired).
    sessions: BTreeMap<SessionId, LiveSession>,
    leader: Option<Leader>,
    members: watch::Sender<Members>,
    assignment_watch: watch::Sender<Option<Arc<Assignment>>>,
    log: JobLog,
}

impl State {
    /// A state holding `durable` (loaded, or empty), with no sessions.
    pub(crate) fn new(config: InprocConfig, durable: Durable) -> Self {
        let assignment = durable.assignment.map(Arc::new);
        Self {
            log: JobLog::new(config.watch_retention, durable.revision),
            config,
            revision: durable.revision,
            leader_epoch: durable.leader_epoch,
            last_session: durable.last_session,
            order: durable.jobs.keys().cloned().collect(),
            jobs: durable.jobs.into_iter().collect(),
            assignment_watch: watch::Sender::new(assignment.clone()),
            assignment,
            sessions: BTreeMap::new(),
            leader: None,
            members: watch::Sender::new(Members::default()),
        }
    }

    /// The last published assignment (the store diffs a new one against it).
    pub(crate) fn current_assignment(&self) -> Option<&Assignment> {
        self.assignment.as_deref()
    }

    // ------------------------------------------------------------ sessions and members

    /// The live session `id`, or `SessionExpired`: an id that is not live was closed, expired, lost in a
    /// restart, or never handed out, and none of those can come back.
    fn live(&self, id: SessionId) -> CoordResult<&LiveSession> {
        self.sessions
            .get(&id)
            .ok_or(CoordError::SessionExpired { session: id.0 })
    }

    /// Plans a new session for `node`, expiring `ttl` after `now`.
    pub(crate) fn open_session(
        &self,
        node: NodeInfo,
        ttl: Duration,
        now: Instant,
    ) -> Plan<Session> {
        limits::check_ttl(ttl)?;
        limits::check_node(&node)?;
        if let Some((id, _)) = self.sessions.iter().find(|(_, s)| s.node.id == node.id) {
            return Err(CoordError::Conflict {
                key: Key::Node(node.id.clone()),
                expected: "no live session".to_owned(),
                actual: format!("live session {id}"),
            });
        }
        let deadline = now
            .checked_add(ttl)
            .ok_or_else(|| CoordError::Invalid(format!("ttl: {ttl:?}: out of range")))?;
        let id = SessionId(self.last_session + 1);
        let changes = vec![
            Change::SessionCounter(id.0),
            Change::OpenSession {
                id,
                node,
                ttl,
                deadline,
            },
        ];
        Ok((Session { id, ttl }, changes))
    }

    /// Plans a keep-alive: the session's TTL counts again from `now`.
    pub(crate) fn keep_alive(&self, id: SessionId, now: Instant) -> Plan<()> {
        let session = self.live(id)?;
        // `now` never goes back, so the deadline only moves forward. Should `now + ttl` ever overflow, the
        // old deadline stands (the session is not extended, which is the safe side).
        let deadline = now.checked_add(session.ttl).unwrap_or(session.deadline);
        Ok(((), vec![Change::KeepAlive { id, deadline }]))
    }

    /// Plans marking the session's member as leaving.
    pub(crate) fn drain(&self, id: SessionId) -> Plan<()> {
        self.live(id)?;
        Ok(((), vec![Change::Drain(id)]))
    }

    /// Plans a graceful leave: the session ends (it leaves the members and drops leadership). Its claims
    /// stay exactly as they are: `settled_ms` may lag behind the records actually written, so ending a claim
    /// there could hand executed instants to a successor. A leaving node gives back what it will not fire
    /// with `release_claims` before it closes. Nothing to do for an expired session.
    pub(crate) fn close_session(&self, id: SessionId) -> Plan<()> {
        let changes = if self.sessions.contains_key(&id) {
            vec![Change::EndSession(id)]
        } else {
            Vec::new()
        };
        Ok(((), changes))
    }

    /// The changes that end every session whose deadline is at or before `now`. As on a close, their claims
    /// stay as they are: the successor settles them (what has no run record is in doubt).
    pub(crate) fn expired_sessions(&self, now: Instant) -> Vec<Change> {
        self.sessions
            .iter()
            .filter(|(_, s)| s.deadline <= now)
            .map(|(id, _)| Change::EndSession(*id))
            .collect()
    }

    /// When session `id` expires without a keep-alive; `None` once it has ended.
    pub(crate) fn session_deadline(&self, id: SessionId) -> Option<Instant> {
        self.sessions.get(&id).map(|s| s.deadline)
    }

    /// Remembers the task that expires session `id`, to abort it if the session ends earlier.
    pub(crate) fn set_reaper(&mut self, id: SessionId, reaper: AbortHandle) {
        match self.sessions.get_mut(&id) {
            Some(session) => session.reaper = Some(reaper),
            None => reaper.abort(),
        }
    }

    /// A receiver of the session's state; one that holds `Expired` for an unknown or ended session.
    pub(crate) fn watch_session(&self, id: SessionId) -> watch::Receiver<SessionState> {
        match self.sessions.get(&id) {
            Some(session) => session.state.subscribe(),
            // The sender is dropped at once: the receiver keeps `Expired` and never changes.
            None => watch::channel(SessionState::Expired).1,
        }
    }

    /// The live members.
    pub(crate) fn members(&self) -> Members {
        self.members.borrow().clone()
    }

    /// A receiver of the live members.
    pub(crate) fn watch_members(&self) -> watch::Receiver<Members> {
        self.members.subscribe()
    }

    // ------------------------------------------------------------ leadership

    /// Plans a campaign: the current term if `id` leads, `None` if another session does, else a new term.
    pub(crate) fn campaign(&self, id: SessionId) -> Plan<Option<Leader>> {
        let session = self.live(id)?;
        match &self.leader {
            Some(leader) if leader.session == id => Ok((Some(leader.clone()), Vec::new())),
            // Expired sessions were ended before planning, so this leader is alive.
            Some(_) => Ok((None, Vec::new())),
            None => {
                let leader = Leader {
                    node: session.node.id.clone(),
                    session: id,
                    epoch: self.leader_epoch + 1,
                };
                let changes = vec![
                    Change::LeaderEpoch(leader.epoch),
                    Change::Leader(Some(leader.clone())),
                ];
                Ok((Some(leader), changes))
            }
        }
    }

    /// The current leader.
    pub(crate) fn leader(&self) -> Option<Leader> {
        self.leader.clone()
    }

    /// Plans giving leadership up (nothing to do if `id` does not lead).
    pub(crate) fn resign(&self, id: SessionId) -> Plan<()> {
        self.live(id)?;
        let leads = self.leader.as_ref().is_some_and(|l| l.session == id);
        let changes = if leads {
            vec![Change::Leader(None)]
        } else {
            Vec::new()
        };
        Ok(((), changes))
    }

    // ------------------------------------------------------------ job store

    /// Plans writing `job` if `precondition` holds; the answer is the new store revision.
    pub(crate) fn put_job(&self, mut job: Job, precondition: Precondition) -> Plan<u64> {
        limits::check_job(&job)?;
        let current = self.jobs.get(&job.id).map(|e| e.job.revision);
        rules::check_precondition(&job.id, precondition, current)?;
        let revision = self.revision + 1;
        job.revision = revision;
        Ok((revision, vec![Change::PutJob(Arc::new(job))]))
    }

    /// Plans creating many jobs, all or none: every job is checked and every id must be absent before any
    /// change is planned. Each job gets a revision of its own (the next ones, in order), so that each store
    /// revision stays exactly one event of the job log.
    pub(crate) fn put_jobs(&self, jobs: Vec<Job>) -> Plan<Vec<u64>> {
        limits::check_jobs(&jobs, limits::MAX_JOB_BYTES)?;
        for job in &jobs {
            let current = self.jobs.get(&job.id).map(|e| e.job.revision);
            rules::check_precondition(&job.id, Precondition::Absent, current)?;
        }
        let mut revisions = Vec::with_capacity(jobs.len());
        let mut changes = Vec::with_capacity(jobs.len());
        for (revision, mut job) in (self.revision + 1..).zip(jobs) {
            job.revision = revision;
            revisions.push(revision);
            changes.push(Change::PutJob(Arc::new(job)));
        }
        Ok((revisions, changes))
    }

    /// Plans deleting a job with its claim and runs; the answer is the new store revision.
    pub(crate) fn delete_job(&self, id: &JobId, precondition: Precondition) -> Plan<u64> {
        let Some(entry) = self.jobs.get(id) else {
            return Err(CoordError::job_not_found(id));
        };
        rules::check_precondition(id, precondition, Some(entry.job.revision))?;
        let revision = self.revision + 1;
        let change = Change::DeleteJob {
            id: id.clone(),
            revision,
        };
        Ok((revision, vec![change]))
    }

    /// One job.
    pub(crate) fn get_job(&self, id: &JobId) -> Option<Job> {
        self.jobs.get(id).map(|e| Job::clone(&e.job))
    }

    /// Every job, sorted by id, at the current revision.
    pub(crate) fn list_jobs(&self) -> JobSnapshot {
        JobSnapshot {
            jobs: self
                .order
                .iter()
                .filter_map(|id| self.jobs.get(id))
                .map(|e| e.job.clone())
                .collect(),
            revision: self.revision,
        }
    }

    /// Starts a job watch after `after_revision` (not a change of the data, so not planned).
    pub(crate) fn watch_jobs(&mut self, after_revision: u64) -> CoordResult<JobWatch> {
        self.log.watch(after_revision)
    }

    // ------------------------------------------------------------ assignment

    /// Plans publishing `owners` as the leader of term `epoch`; the answer is the new version.
    pub(crate) fn publish_assignment(
        &self,
        id: SessionId,
        epoch: u64,
        owners: BTreeMap<JobId, NodeId>,
    ) -> Plan<u64> {
        self.live(id)?;
        rules::check_assignment(owners.len())?;
        match &self.leader {
            Some(leader) if leader.session == id && leader.epoch == epoch => {}
            Some(leader) if leader.session == id => {
                return Err(CoordError::Fenced {
                    reason: format!("leader epoch {epoch} != current {}", leader.epoch),
                });
            }
            _ => {
                return Err(CoordError::Fenced {
                    reason: format!("session {id} does not lead term {epoch}"),
                });
            }
        }
        let version = self.assignment.as_ref().map_or(0, |a| a.version) + 1;
        let assignment = Assignment {
            epoch,
            version,
            owners,
        };
        Ok((version, vec![Change::Assignment(Arc::new(assignment))]))
    }

    /// The last published assignment.
    pub(crate) fn assignment(&self) -> Option<Arc<Assignment>> {
        self.assignment.clone()
    }

    /// A receiver of the assignment.
    pub(crate) fn watch_assignment(&self) -> watch::Receiver<Option<Arc<Assignment>>> {
        self.assignment_watch.subscribe()
    }

    // ------------------------------------------------------------ fire claims

    /// Plans a batch of claims. Each item is answered on its own; items of the same job see the grants of
    /// the earlier ones.
    pub(crate) fn claim_fires(
        &self,
        id: SessionId,
        claims: &[FireClaim],
    ) -> Plan<Vec<ClaimResult>> {
        let session = self.live(id)?;
        limits::check_batch("claims", claims.len())?;
        claims.iter().try_for_each(limits::check_claim)?;
        let assignment = self.assignment.as_ref();
        let plan = rules::plan_claims(
            id,
            &session.node.id,
            claims,
            |job| self.jobs.get(job).map(|e| e.claim.as_ref()),
            |job| assignment.and_then(|a| a.owners.get(job)),
        );
        let changes = plan
            .writes
            .into_iter()
            .map(|(job, claim)| Change::Claim { job, claim })
            .collect();
        Ok((plan.results, changes))
    }

    /// Plans giving back, per job, the instants after the given one that session `id` holds.
    pub(crate) fn release_claims(&self, id: SessionId, releases: &[(JobId, i64)]) -> Plan<()> {
        self.live(id)?;
        limits::check_batch("releases", releases.len())?;
        let released = rules::plan_releases(id, releases, |job| {
            self.jobs.get(job).and_then(|e| e.claim.as_ref())
        });
        let changes = released
            .into_iter()
            .map(|(job, claim)| Change::Claim { job, claim })
            .collect();
        Ok(((), changes))
    }

    /// A job's current claim.
    pub(crate) fn claim_of(&self, job: &JobId) -> Option<JobClaim> {
        self.jobs.get(job).and_then(|e| e.claim.clone())
    }

    // ------------------------------------------------------------ run records

    /// Plans storing run records: one per fire id; the history of each job then keeps its newest
    /// `history_limit` records, and dropped ones raise the job's history floor.
    pub(crate) fn record_runs(
        &self,
        id: SessionId,
        records: Vec<RunRecord>,
    ) -> Plan<Vec<RecordResult>> {
        self.live(id)?;
        limits::check_batch("records", records.len())?;
        records.iter().try_for_each(limits::check_record)?;
        let mut results = Vec::with_capacity(records.len());
        let mut changes = Vec::new();
        // Scheduled instants recorded by this call, per job.
        let mut added: FxHashMap<JobId, Vec<i64>> = FxHashMap::default();
        for record in records {
            let Some(entry) = self.jobs.get(&record.job) else {
                // The job is gone (deleted while the fire ran): its history went with it.
                results.push(RecordResult::Recorded);
                continue;
            };
            let at = record.scheduled_ms;
            let fresh = added.entry(record.job.clone()).or_default();
            let duplicate = entry.runs.contains_key(&at)
                || entry.run_floor.is_some_and(|floor| at <= floor)
                || fresh.contains(&at);
            if duplicate {
                results.push(RecordResult::Duplicate);
            } else {
                fresh.push(at);
                results.push(RecordResult::Recorded);
                changes.push(Change::PutRun(record));
            }
        }
        let limit = self.config.history_limit;
        for (job, fresh) in &mut added {
            let Some(entry) = self.jobs.get(job).filter(|_| !fresh.is_empty()) else {
                continue;
            };
            fresh.sort_unstable();
            let excess = (entry.runs.len() + fresh.len()).saturating_sub(limit);
            let dropped = smallest(entry.runs.keys().copied(), fresh.iter().copied(), excess);
            for &scheduled_ms in &dropped {
                changes.push(Change::DropRun {
                    job: job.clone(),
                    scheduled_ms,
                });
            }
            if let Some(&floor_ms) = dropped.last() {
                changes.push(Change::RunFloor {
                    job: job.clone(),
                    floor_ms,
                });
            }
        }
        Ok((results, changes))
    }

    /// One job's run records, newest first.
    pub(crate) fn runs(&self, job: &JobId, query: &RunQuery) -> Vec<RunRecord> {
        let Some(entry) = self.jobs.get(job) else {
            return Vec::new();
        };
        // `BTreeMap::range` panics on an inverted range: answer it as the empty range it is.
        if let (Some(from), Some(before)) = (query.from_ms, query.before_ms)
            && from >= before
        {
            return Vec::new();
        }
        let lower = query.from_ms.map_or(Bound::Unbounded, Bound::Included);
        let upper = query.before_ms.map_or(Bound::Unbounded, Bound::Excluded);
        entry
            .runs
            .range((lower, upper))
            .rev()
            .take(query.limit)
            .map(|(_, record)| record.clone())
            .collect()
    }

    // ------------------------------------------------------------ the one mutation path

    /// Applies one change. Changes come from a plan of this state, so they are consistent with it (a claim
    /// or record always names a job that exists).
    pub(crate) fn apply(&mut self, change: Change) {
        match change {
            Change::PutJob(job) => {
                self.revision = job.revision;
                self.log.append(JobEvent::Put(job.clone()));
                match self.jobs.entry(job.id.clone()) {
                    Entry::Occupied(mut entry) => entry.get_mut().job = job,
                    Entry::Vacant(entry) => {
                        self.order.insert(job.id.clone());
                        entry.insert(JobEntry::new(job));
                    }
                }
            }
            Change::DeleteJob { id, revision } => {
                self.revision = revision;
                self.jobs.remove(&id);
                self.order.remove(&id);
                self.log.append(JobEvent::Deleted { id, revision });
            }
            Change::Assignment(assignment) => {
                self.assignment = Some(assignment.clone());
                self.assignment_watch.send_replace(Some(assignment));
            }
            Change::Claim { job, claim } => {
                if let Some(entry) = self.jobs.get_mut(&job) {
                    entry.claim = Some(claim);
                }
            }
            Change::PutRun(record) => {
                if let Some(entry) = self.jobs.get_mut(&record.job) {
                    entry.runs.insert(record.scheduled_ms, record);
                }
            }
            Change::DropRun { job, scheduled_ms } => {
                if let Some(entry) = self.jobs.get_mut(&job) {
                    entry.runs.remove(&scheduled_ms);
                }
            }
            Change::RunFloor { job, floor_ms } => {
                if let Some(entry) = self.jobs.get_mut(&job) {
                    entry.run_floor = entry.run_floor.max(Some(floor_ms));
                }
            }
            Change::LeaderEpoch(epoch) => self.leader_epoch = epoch,
            Change::SessionCounter(last) => self.last_session = last,
            Change::OpenSession {
                id,
                node,
                ttl,
                deadline,
            } => {
                let session = LiveSession {
                    node,
                    ttl,
                    deadline,
                    state: watch::Sender::new(SessionState::Alive),
                    reaper: None,
                    draining: false,
                };
                self.sessions.insert(id, session);
                self.publish_members();
            }
            Change::KeepAlive { id, deadline } => {
                if let Some(session) = self.sessions.get_mut(&id) {
                    session.deadline = deadline;
                }
            }
            Change::Drain(id) => {
                if let Some(session) = self.sessions.get_mut(&id)
                    && !session.draining
                {
                    session.draining = true;
                    self.publish_members();
                }
            }
            Change::EndSession(id) => {
                let Some(session) = self.sessions.remove(&id) else {
                    return;
                };
                session.state.send_replace(SessionState::Expired);
                if let Some(reaper) = session.reaper {
                    reaper.abort();
                }
                if self.leader.as_ref().is_some_and(|l| l.session == id) {
                    self.leader = None;
                }
                self.publish_members();
            }
            Change::Leader(leader) => self.leader = leader,
        }
    }

    /// Publishes the member set after a session opened or ended.
    fn publish_members(&mut self) {
        let mut members: Vec<Member> = self
            .sessions
            .iter()
            .map(|(id, s)| Member {
                node: s.node.clone(),
                session: *id,
                draining: s.draining,
            })
            .collect();
        members.sort_by(|a, b| a.node.id.cmp(&b.node.id));
        self.members.send_modify(|m| {
            m.version += 1;
            m.members = members;
        });
    }
}

impl Drop for State {
    fn drop(&mut self) {
        // Reapers hold only a weak reference and would exit at their deadline; end them now.
        for session in self.sessions.values() {
            if let Some(reaper) = &session.reaper {
                reaper.abort();
            }
        }
    }
}

/// The `n` smallest values of two ascending, disjoint sequences, ascending.
fn smallest(a: impl Iterator<Item = i64>, b: impl Iterator<Item = i64>, n: usize) -> Vec<i64> {
    let (mut a, mut b) = (a.peekable(), b.peekable());
    let mut out = Vec::with_capacity(n);
    while out.len() < n {
        let next = match (a.peek(), b.peek()) {
            (Some(x), Some(y)) if x <= y => a.next(),
            (Some(_), Some(_)) | (None, _) => b.next(),
            (Some(_), None) => a.next(),
        };
        match next {
            Some(value) => out.push(value),
            None => break,
        }
    }
    out
}
