//! `Change`: one mutation of the coordinator state. Every write call is planned as a list of changes, then
//! committed: written to the redb file in one transaction (durable mode), then applied to memory.

use std::sync::Arc;
use std::time::Duration;

use campanile::coordinator::{Assignment, JobClaim, Leader, NodeInfo, SessionId};
use campanile::job::{Job, JobId};
use campanile::run::RunRecord;
use tokio::time::Instant;

/// One mutation of [`State`](crate::state::State).
///
/// The first group is *durable*: the store writes it (see the table layout in the crate docs) and it
/// survives a restart. The second group is *volatile*: sessions, membership and leadership live only as
/// long as the process, so the store skips them. Keeping both in one type gives the state a single
/// mutation path ([`State::apply`](crate::state::State::apply)), whatever the mode.
#[derive(Debug)]
pub(crate) enum Change {
    // ------------------------------------------------------------ durable
    /// Creates or replaces a job; `job.revision` is the new store revision. Shared: the stored job, the
    /// watch event and every node that lists or watches it hold this one copy.
    PutJob(Arc<Job>),
    /// Deletes a job with its claim, run records and history floor, at store revision `revision`.
    DeleteJob {
        /// The job.
        id: JobId,
        /// The new store revision.
        revision: u64,
    },
    /// Replaces the assignment.
    Assignment(Arc<Assignment>),
    /// Replaces a job's claim.
    Claim {
        /// The job.
        job: JobId,
        /// The claim as now held.
        claim: JobClaim,
    },
    /// Stores a run record (its fire id has none yet).
    PutRun(RunRecord),
    /// Drops a run record that fell out of the job's history.
    DropRun {
        /// The job.
        job: JobId,
        /// The record's scheduled instant.
        scheduled_ms: i64,
    },
    /// Raises a job's history floor: the newest scheduled instant whose record was dropped.
    RunFloor {
        /// The job.
        job: JobId,
        /// The new floor.
        floor_ms: i64,
    },
    /// Records the last leader epoch handed out.
    LeaderEpoch(u64),
    /// Records the last session id handed out.
    SessionCounter(u64),

    // ------------------------------------------------------------ volatile
    /// Opens a session (its id was counted by a `SessionCounter` in the same batch).
    OpenSession {
        /// The new session.
        id: SessionId,
        /// Its node.
        node: NodeInfo,
        /// The granted TTL.
        ttl: Duration,
        /// When it expires without a keep-alive.
        deadline: Instant,
    },
    /// Moves a live session's expiry.
    KeepAlive {
        /// The session.
        id: SessionId,
        /// Its new expiry.
        deadline: Instant,
    },
    /// Marks a live session's member as leaving.
    Drain(SessionId),
    /// Ends a session (closed or expired): it leaves the members and drops leadership.
    EndSession(SessionId),
    /// Sets or clears the leader.
    Leader(Option<Leader>),
}

impl Change {
    /// Whether the store must write this change.
    pub(crate) fn is_durable(&self) -> bool {
        match self {
            Change::PutJob(_)
            | Change::DeleteJob { .. }
            | Change::Assignment(_)
            | Change::Claim { .. }
            | Change::PutRun(_)
            | Change::DropRun { .. }
            | Change::RunFloor { .. }
            | Change::LeaderEpoch(_)
            | Change::SessionCounter(_) => true,
            Change::OpenSession { .. }
            | Change::KeepAlive { .. }
            | Change::Drain(_)
            | Change::EndSession(_)
            | Change::Leader(_) => false,
        }
    }
}
