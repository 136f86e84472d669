//! Errors of the coordinator contract.

use std::error::Error;
use std::fmt;
use std::sync::Arc;

use super::NodeId;
use crate::job::JobId;

/// What a [`CoordError::Conflict`] or a [`CoordError::NotFound`] is about, as a typed id: a caller reacts
/// to it without parsing text.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Key {
    /// A job, by id (a write's precondition, a batch that names an existing job, a missing job).
    Job(JobId),
    /// A node: a session was opened for a node id that already has a live one.
    Node(NodeId),
}

impl fmt::Display for Key {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Key::Job(id) => write!(f, "{id}"),
            Key::Node(id) => write!(f, "node {id}"),
        }
    }
}

impl From<JobId> for Key {
    fn from(id: JobId) -> Self {
        Key::Job(id)
    }
}

impl From<NodeId> for Key {
    fn from(id: NodeId) -> Self {
        Key::Node(id)
    }
}

/// The cause of a [`CoordError::Unavailable`], kept for [`Error::source`] (the backend's own error: a
/// gRPC status, a ZooKeeper error, an IO error).
pub type Source = Arc<dyn Error + Send + Sync>;

/// Why a coordinator call failed.
///
/// Fatal for the session: [`CoordError::SessionExpired`] and [`CoordError::Fenced`] mean "stop firing what you
/// own now". Per call: [`CoordError::Conflict`], [`CoordError::NotFound`], [`CoordError::Compacted`],
/// [`CoordError::Unavailable`], [`CoordError::Invalid`].
#[derive(Debug, Clone, thiserror::Error)]
#[non_exhaustive]
pub enum CoordError {
    /// The session is expired or closed; it will never be valid again. Open a new one.
    #[error("session {session} expired")]
    SessionExpired {
        /// The expired session.
        session: u64,
    },
    /// The caller acted on a stale leadership term or assignment: a newer one exists.
    #[error("fenced: {reason}")]
    Fenced {
        /// What was stale (`leader epoch 3 < current 4`).
        reason: String,
    },
    /// An optimistic-concurrency precondition failed; nothing was written.
    #[error("conflict on {key}: expected {expected}, found {actual}")]
    Conflict {
        /// The contended job or node.
        key: Key,
        /// What the caller expected (`revision 4`, `absent`).
        expected: String,
        /// What the store holds (`revision 5`, `present`, `absent`).
        actual: String,
    },
    /// The named object does not exist.
    #[error("not found: {key}")]
    NotFound {
        /// The missing job.
        key: Key,
    },
    /// A watch asked to resume from a revision the store no longer has; list again and resume from there.
    #[error("revision {requested} is compacted (oldest available {oldest})")]
    Compacted {
        /// The revision asked for.
        requested: u64,
        /// The oldest revision a watch can resume from.
        oldest: u64,
    },
    /// The backend could not be reached or timed out. See [`CoordError::is_certainly_aborted`].
    #[error("coordinator unavailable: {message}")]
    Unavailable {
        /// What failed.
        message: String,
        /// True when the write certainly did not happen; false when it may have (resync before retrying).
        certainly_aborted: bool,
        /// The backend's own error, if there was one.
        #[source]
        source: Option<Source>,
    },
    /// The request itself is malformed (too large, bad key); retrying will not help.
    #[error("invalid request: {0}")]
    Invalid(String),
}

impl CoordError {
    /// Whether a failed write certainly did not take effect. When false, the caller must read back
    /// (or resync) before assuming anything about the state.
    pub fn is_certainly_aborted(&self) -> bool {
        match self {
            CoordError::Unavailable {
                certainly_aborted, ..
            } => *certainly_aborted,
            CoordError::SessionExpired { .. }
            | CoordError::Fenced { .. }
            | CoordError::Conflict { .. }
            | CoordError::NotFound { .. }
            | CoordError::Compacted { .. }
            | CoordError::Invalid(_) => true,
        }
    }

    /// Whether the session that made the call must stop firing what it owns.
    pub fn is_fatal_for_session(&self) -> bool {
        matches!(
            self,
            CoordError::SessionExpired { .. } | CoordError::Fenced { .. }
        )
    }

    /// An unavailability whose write certainly did not happen.
    pub fn unavailable(message: impl Into<String>) -> Self {
        CoordError::Unavailable {
            message: message.into(),
            certainly_aborted: true,
            source: None,
        }
    }

    /// An unavailability caused by the backend's error `source`; `certainly_aborted` as in
    /// [`CoordError::is_certainly_aborted`].
    pub fn unavailable_from(
        message: impl Into<String>,
        certainly_aborted: bool,
        source: impl Error + Send + Sync + 'static,
    ) -> Self {
        CoordError::Unavailable {
            message: message.into(),
            certainly_aborted,
            source: Some(Arc::new(source)),
        }
    }

    /// A conflict on job `id`.
    pub fn job_conflict(
        id: &JobId,
        expected: impl Into<String>,
        actual: impl Into<String>,
    ) -> Self {
        CoordError::Conflict {
            key: Key::Job(id.clone()),
            expected: expected.into(),
            actual: actual.into(),
        }
    }

    /// Job `id` does not exist.
    pub fn job_not_found(id: &JobId) -> Self {
        CoordError::NotFound {
            key: Key::Job(id.clone()),
        }
    }
}

/// Equal when the variant and every field but an unavailability's `source` are equal (a source is compared
/// by its message: two errors of a backend seldom implement `PartialEq`).
impl PartialEq for CoordError {
    fn eq(&self, other: &Self) -> bool {
        use CoordError as E;
        match (self, other) {
            (E::SessionExpired { session: a }, E::SessionExpired { session: b }) => a == b,
            (E::Fenced { reason: a }, E::Fenced { reason: b }) => a == b,
            (
                E::Conflict {
                    key: k1,
                    expected: e1,
                    actual: a1,
                },
                E::Conflict {
                    key: k2,
                    expected: e2,
                    actual: a2,
                },
            ) => k1 == k2 && e1 == e2 && a1 == a2,
            (E::NotFound { key: a }, E::NotFound { key: b }) => a == b,
            (
                E::Compacted {
                    requested: r1,
                    oldest: o1,
                },
                E::Compacted {
                    requested: r2,
                    oldest: o2,
                },
            ) => r1 == r2 && o1 == o2,
            (
                E::Unavailable {
                    message: m1,
                    certainly_aborted: c1,
                    source: s1,
                },
                E::Unavailable {
                    message: m2,
                    certainly_aborted: c2,
                    source: s2,
                },
            ) => {
                m1 == m2
                    && c1 == c2
                    && s1.as_ref().map(ToString::to_string) == s2.as_ref().map(ToString::to_string)
            }
            (E::Invalid(a), E::Invalid(b)) => a == b,
            _ => false,
        }
    }
}

impl Eq for CoordError {}

#[cfg(test)]
mod tests;
