//! Errors of the coordinator contract.

/// Why a coordinator call failed.
///
/// Fatal for the session: [`CoordError::SessionExpired`] and [`CoordError::Fenced`] mean "stop firing what you
/// own now". Per call: [`CoordError::Conflict`], [`CoordError::NotFound`], [`CoordError::Compacted`],
/// [`CoordError::Unavailable`], [`CoordError::Invalid`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
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
        /// The contended key (job id).
        key: String,
        /// What the caller expected (`revision 4`, `absent`).
        expected: String,
        /// What the store holds (`revision 5`, `present`, `absent`).
        actual: String,
    },
    /// The named object does not exist.
    #[error("not found: {key}")]
    NotFound {
        /// The missing key.
        key: String,
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
        }
    }
}
