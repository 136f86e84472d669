//! A fire on its way from the timer to the executor, which decides its overlap and runs it.

use std::sync::Arc;

use crate::coordinator::SessionId;
use crate::job::{FireId, Job};

/// Why an instant is being run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FireKind {
    /// At its scheduled instant.
    Scheduled,
    /// Late, chosen by the misfire policy after the instant passed unfired.
    CatchUp,
    /// Again, because its previous owner vanished without a record and the job is at-least-once.
    Redelivery,
    /// Asked for by a user (trigger or backfill): a request the owner took from the job (see
    /// `timer::requests`), run under the session that took it, outside any claim window.
    Manual,
}

/// One instant of one job to run.
#[derive(Debug, Clone)]
pub struct Fire {
    /// The job as it was when the instant was emitted.
    pub job: Arc<Job>,
    /// The scheduled instant, Unix ms.
    pub scheduled_ms: i64,
    /// Why it runs.
    pub kind: FireKind,
    /// The session under which it may run (whose claim covers it, or which took its request); the executor
    /// starts it only while that session is proven valid. `None` only for fires made outside a timer (tests).
    pub session: Option<SessionId>,
    /// The end of the claim that covers it (Unix ms): if the job has been reassigned away meanwhile, a successor
    /// may be firing later instants past it, so it must not start any more. `None` for manual fires, which
    /// no claim covers.
    pub start_by_ms: Option<i64>,
}

impl Fire {
    /// Its fire id.
    pub fn id(&self) -> FireId {
        self.job.fire_id(self.scheduled_ms)
    }
}
