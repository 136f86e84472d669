//! Runs asked for outside the schedule (`trigger`, `backfill`), stored with the job until their owner has
//! run them: whichever node answers the request writes it into the job, and the job's owner takes it and
//! runs it, so a requested run obeys the job's node labels and overlap policy like a scheduled one.

use serde::{Deserialize, Serialize};

use crate::coordinator::SessionId;

/// Most requested runs a job holds at once: a request that would hold more is refused (field `to` for a
/// backfill, `id` for a trigger) until the owner has run some.
pub const MAX_PENDING_REQUESTS: usize = 10_000;

/// A run asked for outside the schedule, waiting in its job until the owner has run it and its record is
/// stored.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RunRequest {
    /// The instant it runs as: its fire id is `{job}@{ms}`. A trigger's is an instant of its own (never one
    /// of the schedule's); a backfill's is the schedule's instant that it runs late.
    pub ms: i64,
    /// Asked for by a backfill (else by a trigger).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub backfill: bool,
    /// The session that took it to run (written by the owner before it runs it, under the job's revision,
    /// so one session takes it). A request taken by a session that is gone and left no record is in doubt,
    /// and settled by the job's delivery mode like a predecessor's claimed instant.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub taken: Option<SessionId>,
}

impl RunRequest {
    /// A request nobody has taken yet.
    pub fn new(ms: i64, backfill: bool) -> Self {
        Self {
            ms,
            backfill,
            taken: None,
        }
    }
}
