//! Values exchanged with a coordinator: nodes, sessions, members, leadership, assignment, claims, ledger.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::job::{Job, JobId, ValidationError};

/// A node's id: 1 to 64 characters of `[A-Za-z0-9._-]`. Cheap to clone.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct NodeId(Arc<str>);

impl NodeId {
    /// Checks and wraps a node id.
    pub fn new(id: impl AsRef<str>) -> Result<Self, ValidationError> {
        let id = id.as_ref();
        if id.is_empty()
            || id.len() > 64
            || !id
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'))
        {
            return Err(ValidationError::new(
                "node_id",
                id,
                "must be 1 to 64 characters of [A-Za-z0-9._-]",
            ));
        }
        Ok(Self(Arc::from(id)))
    }

    /// The id as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl PartialEq<str> for NodeId {
    fn eq(&self, other: &str) -> bool {
        self.as_str() == other
    }
}

impl PartialEq<&str> for NodeId {
    fn eq(&self, other: &&str) -> bool {
        self.as_str() == *other
    }
}

impl PartialEq<String> for NodeId {
    fn eq(&self, other: &String) -> bool {
        self.as_str() == other
    }
}

impl PartialEq<NodeId> for String {
    fn eq(&self, other: &NodeId) -> bool {
        self == other.as_str()
    }
}

impl PartialEq<NodeId> for &str {
    fn eq(&self, other: &NodeId) -> bool {
        *self == other.as_str()
    }
}

impl fmt::Display for NodeId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl TryFrom<String> for NodeId {
    type Error = ValidationError;
    fn try_from(value: String) -> Result<Self, Self::Error> {
        Self::new(value)
    }
}

impl From<NodeId> for String {
    fn from(value: NodeId) -> Self {
        value.0.to_string()
    }
}

/// What a node says about itself when it joins.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NodeInfo {
    /// The node's id, unique among live members.
    pub id: NodeId,
    /// Labels that jobs may require (`region=eu`).
    #[serde(default)]
    pub labels: BTreeSet<String>,
    /// Most total job weight the node accepts; unlimited if absent.
    #[serde(default)]
    pub capacity: Option<u64>,
    /// Where its API listens, for operators (`10.0.0.5:7070`).
    #[serde(default)]
    pub address: Option<String>,
    /// Where its cluster port is reached (`10.0.0.5:7946`), for workers that find nodes through the
    /// coordinator (`campanile worker --coordinator`); absent without a cluster port.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cluster_address: Option<String>,
}

impl NodeInfo {
    /// A node without labels, capacity or address.
    pub fn new(id: NodeId) -> Self {
        Self {
            id,
            labels: BTreeSet::new(),
            capacity: None,
            address: None,
            cluster_address: None,
        }
    }
}

/// A session's id, unique within a namespace forever (never reused, also across backend restarts).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct SessionId(pub u64);

impl fmt::Display for SessionId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:x}", self.0)
    }
}

/// An open session.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Session {
    /// Its id.
    pub id: SessionId,
    /// The TTL the backend granted: without a successful keep-alive for this long, it expires.
    pub ttl: Duration,
}

/// A session's liveness as the backend sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SessionState {
    /// Valid; kept alive by keep-alives.
    Alive,
    /// The backend cannot currently confirm it (connection lost); it may still be valid server-side.
    Suspended,
    /// Expired or closed, for good.
    Expired,
}

/// A live member: a node with an open session.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Member {
    /// What the node said about itself.
    pub node: NodeInfo,
    /// Its session.
    pub session: SessionId,
    /// The node is leaving (graceful shutdown): the leader places no job on it.
    #[serde(default)]
    pub draining: bool,
}

/// The set of live members at a point in the backend's history.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Members {
    /// Increases with every change of the member set.
    pub version: u64,
    /// Live members, sorted by node id.
    pub members: Vec<Member>,
}

/// The current leader.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Leader {
    /// Leading node.
    pub node: NodeId,
    /// Its session; leadership ends with it.
    pub session: SessionId,
    /// Fencing epoch of this term: strictly greater than every earlier term's.
    pub epoch: u64,
}

/// Who owns which job, as published by the leader.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct Assignment {
    /// Epoch of the leader term that published it.
    pub epoch: u64,
    /// Increases with every publication, across terms.
    pub version: u64,
    /// Owner of each assigned job. Jobs missing here have no owner.
    pub owners: BTreeMap<JobId, NodeId>,
}

/// Precondition of a job-store write.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Precondition {
    /// The job must not exist (create).
    Absent,
    /// The job must exist at exactly this revision (update after read).
    Revision(u64),
    /// The job must exist, at any revision.
    Exists,
    /// No condition (upsert).
    Any,
}

/// A consistent snapshot of the job store.
#[derive(Debug, Clone, Default)]
pub struct JobSnapshot {
    /// Every job, sorted by id. Shared: a backend that keeps its jobs in memory hands out its own copies, so a
    /// node that lists them holds no second copy.
    pub jobs: Vec<Arc<Job>>,
    /// Store revision of the snapshot: watch from here to see every later change.
    pub revision: u64,
}

/// A change in the job store.
#[derive(Debug, Clone, PartialEq)]
pub enum JobEvent {
    /// A job was created or updated; `job.revision` is the change's revision. Shared like
    /// [`JobSnapshot::jobs`]: the node keeps the job it is given.
    Put(Arc<Job>),
    /// A job was deleted at `revision`.
    Deleted {
        /// The deleted job.
        id: JobId,
        /// Store revision of the deletion.
        revision: u64,
    },
}

impl JobEvent {
    /// The store revision of this change.
    pub fn revision(&self) -> u64 {
        match self {
            JobEvent::Put(job) => job.revision,
            JobEvent::Deleted { revision, .. } => *revision,
        }
    }
}

/// A request to hold the right to fire `job`'s instants up to `through_ms`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FireClaim {
    /// The job.
    pub job: JobId,
    /// First instant wanted, Unix ms, when the job has no claim yet (or only a claim of another session).
    /// The grant never starts before the end of an earlier holder's claim.
    pub from_ms: i64,
    /// Last instant wanted, Unix ms (inclusive).
    pub through_ms: i64,
    /// Every instant of this claim up to here has a run record (so a successor need not check them).
    pub settled_ms: i64,
}

/// Who holds the right to fire a job's instants, and up to when.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct JobClaim {
    /// The holder's session.
    pub session: SessionId,
    /// The holder's node.
    pub node: NodeId,
    /// First instant of this holder's tenure (inclusive).
    pub from_ms: i64,
    /// Last instant it may fire (inclusive).
    pub through_ms: i64,
    /// Every instant up to here has a run record; instants in `(settled_ms, through_ms]` without a record
    /// are in doubt once the holder is gone.
    pub settled_ms: i64,
    /// The previous holder's claim, kept from the takeover until `settled_ms` reaches its `through_ms` (its
    /// own `previous` is always `None`). Every grant to the holder names it while it is kept.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub previous: Option<Box<JobClaim>>,
}

/// The answer to one [`FireClaim`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ClaimResult {
    /// The session may fire instants in `[claim.from_ms, claim.through_ms]`.
    Granted {
        /// The claim as now held.
        claim: JobClaim,
        /// The claim of the previous holder, when this grant took the job over from another session.
        previous: Option<JobClaim>,
    },
    /// The current assignment does not give this job to the session's node: do not fire it.
    NotOwner {
        /// The owner in the current assignment, if any.
        owner: Option<NodeId>,
    },
    /// The job does not exist.
    NoSuchJob,
}

/// The answer to one run record write.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RecordResult {
    /// Stored.
    Recorded,
    /// A record for this fire id already exists; nothing was written.
    Duplicate,
}

/// A query of one job's run history, newest first.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RunQuery {
    /// Only records scheduled at or after this instant.
    pub from_ms: Option<i64>,
    /// Only records scheduled strictly before this instant (pagination cursor).
    pub before_ms: Option<i64>,
    /// At most this many records.
    pub limit: usize,
}

impl Default for RunQuery {
    fn default() -> Self {
        Self {
            from_ms: None,
            before_ms: None,
            limit: 100,
        }
    }
}
