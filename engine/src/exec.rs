//! Running a target once: one attempt of one fire. The executor actor calls these; they know nothing of
//! policies, retries or the coordinator.

use crate::coordinator::NodeId;
use crate::job::{CommandTarget, FireId};
use crate::run::Outcome;

/// What a target is told about the fire it runs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FireContext {
    /// The fire (`CAMPANILE_FIRE_ID`, `Campanile-Fire-Id`).
    pub fire: FireId,
    /// The job's name (`CAMPANILE_JOB_NAME`).
    pub job_name: String,
    /// 1 for the first attempt (`CAMPANILE_ATTEMPT`).
    pub attempt: u32,
    /// The node running it (`CAMPANILE_NODE_ID`).
    pub node: NodeId,
}

/// The result of one attempt.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AttemptResult {
    /// `Succeeded`, `Failed` or `TimedOut`.
    pub outcome: Outcome,
    /// Exit code or HTTP status.
    pub code: Option<i32>,
    /// Tail of stdout+stderr or of the response body, at most `RunRecord::MAX_OUTPUT` bytes.
    pub output: String,
    /// Why, when it did not succeed.
    pub reason: Option<String>,
}

/// Runs a command target once (placeholder: the real runner lands in exec/command.rs).
pub async fn run_command(_cmd: &CommandTarget, _ctx: &FireContext) -> AttemptResult {
    AttemptResult { outcome: Outcome::Failed, code: None, output: String::new(), reason: Some("command targets are not wired yet".into()) }
}
