//! The `Coordinator` trait: everything a node needs from the shared store that makes a cluster of nodes
//! behave as one scheduler. Backends (in-process, etcd, ZooKeeper) implement it; the conformance suite in
//! `campanile-adapters` checks every line of the `### To ensure correctness:` lists below.
//!
//! The model, in one paragraph: a node opens a **session** with a TTL and keeps it alive; while alive it is a
//! **member**. One member at a time is **leader**, with a fencing **epoch** that grows with every term. The leader
//! publishes the **assignment** (job → node). The owner of a job **claims** the right to fire the job's instants
//! ahead of time, in batches, up to some instant; the coordinator grants a claim only to the job's current owner,
//! and never grants an instant twice. Each fired instant ends as exactly one **run record**, keyed by its fire id.
//! After a takeover, the previous holder's claim (its `settled_ms` and `through_ms`) and the run records tell the
//! new owner which instants were executed, which are in doubt, and which were missed.

pub mod backoff;
mod error;
pub mod limits;
pub mod rules;
mod shared;
mod types;

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use tokio::sync::{mpsc, watch};

pub use error::{CoordError, Key, Source};
pub use types::{
    Assignment, ClaimResult, FireClaim, JobClaim, JobEvent, JobSnapshot, Leader, Member, Members,
    NodeId, NodeInfo, Precondition, RecordResult, RunQuery, Session, SessionId, SessionState,
};

use crate::job::{Job, JobId};
use crate::run::RunRecord;

/// Result of a coordinator call.
pub type CoordResult<T> = Result<T, CoordError>;

/// A stream of job-store changes, in revision order. It ends (`None`) when the backend drops the watch;
/// the caller then resumes with [`Coordinator::watch_jobs`] from the last revision it saw.
pub type JobWatch = mpsc::Receiver<CoordResult<JobEvent>>;

/// The shared store that coordinates a cluster of Campanile nodes. Object-safe: use `Arc<dyn Coordinator>`.
///
/// ### To ensure correctness:
/// - Every method is linearizable with respect to every other (a write acknowledged to one caller is seen by
///   every later read of any caller).
/// - Writes that return an error other than [`CoordError::Unavailable`] with `certainly_aborted: false` did not
///   happen.
/// - Time-based behaviour (session expiry) uses `tokio::time` or the backend server's clock, never a clock the
///   caller can skew, so that a paused-time simulation drives it.
/// - Many nodes may share one instance (`Arc`), each with its own session.
#[async_trait]
pub trait Coordinator: Send + Sync + 'static {
    /// A short name of the backend for logs and metrics (`inproc`, `etcd`, `zookeeper`).
    fn backend(&self) -> &'static str;

    // ---------------------------------------------------------------- sessions and members

    /// Opens a session for `node` with the requested TTL and makes the node a member.
    ///
    /// ### To ensure correctness:
    /// - The returned id was never returned before in this namespace.
    /// - The granted TTL is at least the requested one (a backend may round up, never down).
    /// - The node appears in [`Coordinator::members`] from the moment this returns until the session ends.
    /// - Opening a session for a node id that already has a live session fails with [`CoordError::Conflict`]
    ///   (two processes with one node id must not both run).
    async fn open_session(&self, node: NodeInfo, ttl: Duration) -> CoordResult<Session>;

    /// Renews the session's TTL from now.
    ///
    /// ### To ensure correctness:
    /// - On success the session stays alive for at least its TTL counted from when the call was *sent*.
    /// - An expired or closed session fails with [`CoordError::SessionExpired`] and is never revived.
    async fn keep_alive(&self, session: SessionId) -> CoordResult<()>;

    /// Ends the session now (graceful leave): the node leaves the members and drops leadership. Its claims stay
    /// exactly as they are: a successor starts after each claim's `through_ms` and settles `(settled_ms,
    /// through_ms]` from the run records. (A leaving node first gives back what it will not fire with
    /// [`Coordinator::release_claims`].)
    ///
    /// ### To ensure correctness:
    /// - After it returns, the session is expired: every later call with it fails with `SessionExpired`.
    /// - Closing an already expired session succeeds (idempotent).
    /// - Claims are not changed by the close: not truncated to `settled_ms` (which may lag behind the records
    ///   actually written), not released.
    async fn close_session(&self, session: SessionId) -> CoordResult<()>;

    /// Marks the session's member as leaving (graceful shutdown, first step): it stays a member, keeps its
    /// claims and any leadership, and `Member::draining` is set, so the leader places no job on it.
    ///
    /// ### To ensure correctness:
    /// - After it returns, [`Coordinator::members`] and the members watch show the member with `draining`,
    ///   and the members' `version` has grown.
    /// - Idempotent; an expired or closed session fails with `SessionExpired`.
    async fn drain(&self, session: SessionId) -> CoordResult<()>;

    /// Observes the session's liveness. The receiver sees `Expired` when the session expires or is closed.
    ///
    /// ### To ensure correctness:
    /// - A session that expires (TTL elapsed without keep-alive) is reported `Expired` without any further call.
    /// - `Expired` is final: the state never changes afterwards.
    /// - An unknown or already expired session yields a receiver that holds `Expired`.
    async fn watch_session(&self, session: SessionId)
    -> CoordResult<watch::Receiver<SessionState>>;

    /// The live members, sorted by node id.
    ///
    /// ### To ensure correctness:
    /// - Exactly the nodes whose session is open and not expired.
    async fn members(&self) -> CoordResult<Members>;

    /// Observes the members; the receiver holds the current set and sees every later change (it may skip
    /// intermediate sets, never the latest one).
    ///
    /// ### To ensure correctness:
    /// - A member whose session expires disappears from the set without any further call.
    /// - `version` grows with every change.
    async fn watch_members(&self) -> CoordResult<watch::Receiver<Members>>;

    // ---------------------------------------------------------------- leadership

    /// Tries to become leader: returns the leadership if `session` holds it now (already, or newly), `None` if
    /// another live session holds it. Does not block.
    ///
    /// ### To ensure correctness:
    /// - At most one live session is leader at any time.
    /// - A new term's epoch is strictly greater than every earlier term's (also across backend restarts);
    ///   calling again while leader returns the same epoch.
    /// - Leadership ends with the session (expiry or close); another session can then win.
    /// - An expired session fails with `SessionExpired`.
    async fn campaign(&self, session: SessionId) -> CoordResult<Option<Leader>>;

    /// The current leader, if any.
    ///
    /// ### To ensure correctness:
    /// - Never a leader whose session has expired.
    async fn leader(&self) -> CoordResult<Option<Leader>>;

    /// Gives leadership up without closing the session (no-op if not leader).
    ///
    /// ### To ensure correctness:
    /// - After it returns, another session's `campaign` can win, with a greater epoch.
    async fn resign(&self, session: SessionId) -> CoordResult<()>;

    /// Returns when `session`'s next [`campaign`](Self::campaign) may win where its last one lost: the
    /// candidate ahead of it went away, say. The engine campaigns again when it returns, so a dead leader is
    /// replaced on the event instead of on the next keep-alive round. Only a hint, not part of the contract:
    /// campaigning is correct if it never returns (the default, for a backend without such an event), and a
    /// return that changes nothing costs one campaign.
    async fn campaign_turn(&self, session: SessionId) -> CoordResult<()> {
        let _ = session;
        std::future::pending().await
    }

    // ---------------------------------------------------------------- job store

    /// Writes a job if `precondition` holds; returns the new store revision (also set as the job's revision).
    ///
    /// ### To ensure correctness:
    /// - The store revision grows with every write (put or delete) and is never reused.
    /// - A failed precondition returns [`CoordError::Conflict`] and writes nothing; `Revision(r)` compares the
    ///   job's revision, `Absent` fails if it exists, `Exists` fails (`NotFound`) if it does not.
    /// - Of concurrent writers with the same `Revision(r)` precondition, exactly one succeeds.
    /// - The job is stored as given (every field round-trips), except `revision`, set to the returned one.
    async fn put_job(&self, job: Job, precondition: Precondition) -> CoordResult<u64>;

    /// Creates many jobs that do not exist yet (each as [`Coordinator::put_job`] with
    /// [`Precondition::Absent`]), all or none; returns each job's store revision, in the order given.
    /// Atomic where the store's transactions are large enough (see each backend's docs); otherwise written
    /// in chunks, and a chunk that fails has the chunks before it deleted again (compensation).
    ///
    /// ### To ensure correctness:
    /// - Every job is checked before anything is written ([`limits::check_jobs`]: sizes, and no id twice in
    ///   the call): a rejected call returns [`CoordError::Invalid`] naming the index (`jobs[3]`) and writes
    ///   nothing.
    /// - If any of the jobs exists, the call returns [`CoordError::Conflict`] naming it, and when the call
    ///   returns none of the call's jobs is in the store (an atomic backend wrote none; a chunked one deleted
    ///   what it had created, each at the revision it created it with, so a job changed meanwhile is left).
    /// - On success every job is stored as given (every field round-trips), with `revision` set to the returned
    ///   one; the revisions are non-decreasing in the order given and greater than every write acknowledged
    ///   before the call. Jobs written in one store transaction may share its revision (etcd).
    /// - A job watch delivers one `Put` per created job; events that share a revision are delivered together,
    ///   so a watch never ends between them.
    async fn put_jobs(&self, jobs: Vec<Job>) -> CoordResult<Vec<u64>>;

    /// Deletes a job, its claims and its run history if `precondition` holds; returns the store revision.
    ///
    /// ### To ensure correctness:
    /// - A missing job returns [`CoordError::NotFound`].
    /// - `Revision(r)` not matching returns `Conflict` and deletes nothing.
    async fn delete_job(&self, id: &JobId, precondition: Precondition) -> CoordResult<u64>;

    /// One job, as last written.
    ///
    /// ### To ensure correctness:
    /// - Reflects every write acknowledged before the call.
    async fn get_job(&self, id: &JobId) -> CoordResult<Option<Job>>;

    /// Every job, with the store revision of the snapshot.
    ///
    /// ### To ensure correctness:
    /// - A consistent snapshot: exactly the writes up to `revision`, sorted by id.
    async fn list_jobs(&self) -> CoordResult<JobSnapshot>;

    /// Watches job changes with revision strictly greater than `after_revision`.
    ///
    /// ### To ensure correctness:
    /// - Every change after `after_revision` is delivered, once, in revision order, with no gaps: a caller that
    ///   resumes from the last revision it saw misses nothing.
    /// - If `after_revision` is older than what the backend retains, the call (or the first item) is
    ///   [`CoordError::Compacted`]; the caller lists again.
    async fn watch_jobs(&self, after_revision: u64) -> CoordResult<JobWatch>;

    // ---------------------------------------------------------------- assignment

    /// Publishes the assignment as leader of term `epoch`; returns its version.
    ///
    /// ### To ensure correctness:
    /// - Accepted only while `session` is alive and is the leader of exactly term `epoch`; otherwise
    ///   [`CoordError::Fenced`] (or `SessionExpired`) and nothing is written.
    /// - `version` grows with every publication.
    async fn publish_assignment(
        &self,
        session: SessionId,
        epoch: u64,
        owners: std::collections::BTreeMap<JobId, NodeId>,
    ) -> CoordResult<u64>;

    /// The last published assignment, if any.
    async fn assignment(&self) -> CoordResult<Option<Arc<Assignment>>>;

    /// Observes the assignment; the receiver holds the current one and sees every later publication (it may
    /// skip intermediate ones, never the latest).
    ///
    /// ### To ensure correctness:
    /// - Versions seen are increasing.
    async fn watch_assignment(&self) -> CoordResult<watch::Receiver<Option<Arc<Assignment>>>>;

    // ---------------------------------------------------------------- fire claims

    /// Claims, for each job, the right to fire its instants up to `through_ms`; one round trip for a batch.
    ///
    /// ### To ensure correctness:
    /// - The whole call fails with `SessionExpired` if the session is not alive.
    /// - A job is granted only if the current assignment gives it to this session's node; otherwise
    ///   `NotOwner` (a stale owner is fenced).
    /// - No instant is ever granted to two sessions: a grant that takes over from another session starts
    ///   after that session's `through_ms` (at `max(from_ms, previous.through_ms + 1)`); the previous claim is
    ///   returned so the new owner can settle it.
    /// - A holder extending its own claim keeps its `from_ms`; `through_ms` and `settled_ms` never decrease.
    /// - A grant that takes over keeps `settled_ms` at most the previous holder's: the instants the previous
    ///   holder left unsettled stay unsettled in the claim until the new holder settles them and raises it (so
    ///   a new holder that dies first does not hide them from its own successor).
    /// - A previous holder's claim with unsettled instants stays in the claim ([`JobClaim::previous`]) until
    ///   `settled_ms` reaches its `through_ms`, and every grant to the holder returns it as `previous`
    ///   meanwhile, extensions too (a holder whose takeover answer was lost learns its predecessor from the
    ///   retry); while it is kept, a request starting before the holder's claim (`from_ms < claim.from_ms`: a
    ///   first claim asked again) does not raise `settled_ms`.
    /// - Of concurrent claimers of the same job, only the assigned owner's session is granted.
    async fn claim_fires(
        &self,
        session: SessionId,
        claims: &[FireClaim],
    ) -> CoordResult<Vec<ClaimResult>>;

    /// Gives back, for each job, the instants after `through_ms` that this session claimed but will not fire
    /// (revoke before handover). Jobs it does not hold are ignored.
    ///
    /// ### To ensure correctness:
    /// - After it returns, the next owner's claim can start at `through_ms + 1`.
    /// - A claim is never extended by a release.
    async fn release_claims(
        &self,
        session: SessionId,
        releases: &[(JobId, i64)],
    ) -> CoordResult<()>;

    /// The current claim of a job, if any (the ledger's head: with the run records it tells a new owner what
    /// the previous holder executed, left in doubt, or never reached).
    ///
    /// ### To ensure correctness:
    /// - Reflects every grant, release and close acknowledged before the call.
    async fn claim_of(&self, job: &JobId) -> CoordResult<Option<JobClaim>>;

    // ---------------------------------------------------------------- run records

    /// Stores run records, at most one per fire id (`job`, `scheduled_ms`).
    ///
    /// ### To ensure correctness:
    /// - The whole call fails with `SessionExpired` if the session is not alive.
    /// - A record whose fire id already has one returns `Duplicate` and changes nothing: exactly one record per
    ///   fire id, also under concurrent writers.
    /// - A job keeps at least its newest `history_limit` records (backend setting, at least 100); older ones
    ///   may be dropped.
    /// - Records of a job that does not exist are dropped silently (`Recorded` is not promised).
    async fn record_runs(
        &self,
        session: SessionId,
        records: Vec<RunRecord>,
    ) -> CoordResult<Vec<RecordResult>>;

    /// One job's run records, newest first (by scheduled instant).
    ///
    /// ### To ensure correctness:
    /// - Reflects every record acknowledged before the call; honours `from_ms`, `before_ms` and `limit`.
    async fn runs(&self, job: &JobId, query: RunQuery) -> CoordResult<Vec<RunRecord>>;
}
