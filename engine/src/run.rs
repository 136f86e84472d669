//! Run records: the one record each scheduled instant ends as.

use serde::{Deserialize, Serialize};

use crate::coordinator::NodeId;
use crate::job::{FireId, JobId};

/// How a fire ended. Exactly one run record per fire id exists in the coordinator.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    /// The target ran and reported success.
    Succeeded,
    /// The target ran and failed (non-zero exit, unexpected status, handler error, cancelled).
    Failed,
    /// The target ran past its timeout and was killed.
    TimedOut,
    /// Not run on purpose: overlap policy, or the job was paused/deleted before it started.
    Skipped,
    /// Not run because no node could fire it in time; the misfire policy chose not to run it.
    Misfired,
    /// Claimed by an owner that vanished before reporting: it may or may not have run.
    InDoubt,
}

impl Outcome {
    /// Every outcome, for metrics and docs.
    pub const ALL: [Outcome; 6] = [
        Outcome::Succeeded,
        Outcome::Failed,
        Outcome::TimedOut,
        Outcome::Skipped,
        Outcome::Misfired,
        Outcome::InDoubt,
    ];

    /// The snake_case name used in JSON and metric labels.
    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Succeeded => "succeeded",
            Outcome::Failed => "failed",
            Outcome::TimedOut => "timed_out",
            Outcome::Skipped => "skipped",
            Outcome::Misfired => "misfired",
            Outcome::InDoubt => "in_doubt",
        }
    }

    /// Whether the target was started for this record.
    pub fn executed(self) -> bool {
        matches!(
            self,
            Outcome::Succeeded | Outcome::Failed | Outcome::TimedOut
        )
    }
}

impl std::str::FromStr for Outcome {
    type Err = crate::job::ValidationError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Outcome::ALL
            .into_iter()
            .find(|o| o.as_str() == s)
            .ok_or_else(|| {
                crate::job::ValidationError::new(
                    "outcome",
                    s,
                    "expected one of succeeded, failed, timed_out, skipped, misfired, in_doubt",
                )
            })
    }
}

/// The record of one fire (or, for `misfired`, of a contiguous range of missed instants).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RunRecord {
    /// The job.
    pub job: JobId,
    /// The scheduled instant, Unix ms (the first one for a range).
    pub scheduled_ms: i64,
    /// For a `misfired` record covering several instants: the number covered (1 otherwise).
    #[serde(default = "one", skip_serializing_if = "is_one")]
    pub count: u32,
    /// For a range: the last instant covered, Unix ms.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_scheduled_ms: Option<i64>,
    /// Node that wrote the record.
    pub node: NodeId,
    /// Attempts made (0 when the target never started).
    pub attempt: u32,
    /// Unix ms the (last) attempt started, if one did.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub started_ms: Option<i64>,
    /// Unix ms the (last) attempt ended, if one did.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ended_ms: Option<i64>,
    /// How it ended.
    pub outcome: Outcome,
    /// Process exit code or HTTP status.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub code: Option<i32>,
    /// Why it ended this way (`overlap: skip`, `owner lost`, `timeout 5s`), when not obvious.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// Tail of the output, at most [`RunRecord::MAX_OUTPUT`] bytes.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub output: String,
    /// Whether this fire was a manual trigger or backfill rather than a scheduled instant.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub manual: bool,
}

impl RunRecord {
    /// Largest output kept in a record, in bytes.
    pub const MAX_OUTPUT: usize = 4096;

    /// A record of `fire` with `outcome`, without timings; fill in the rest with struct update syntax.
    pub fn new(fire: &FireId, node: &NodeId, outcome: Outcome) -> Self {
        Self {
            job: fire.job.clone(),
            scheduled_ms: fire.scheduled_ms,
            count: 1,
            last_scheduled_ms: None,
            node: node.clone(),
            attempt: 0,
            started_ms: None,
            ended_ms: None,
            outcome,
            code: None,
            reason: None,
            output: String::new(),
            manual: false,
        }
    }

    /// The fire this record accounts for (the first of a range).
    pub fn fire_id(&self) -> FireId {
        FireId::new(self.job.clone(), self.scheduled_ms)
    }

    /// The last instant this record accounts for.
    pub fn last_ms(&self) -> i64 {
        self.last_scheduled_ms.unwrap_or(self.scheduled_ms)
    }
}

fn one() -> u32 {
    1
}

fn is_one(n: &u32) -> bool {
    *n == 1
}
