//! Running a target once: one attempt of one fire. The executor actor calls these; they know nothing of
//! policies, retries or the coordinator.
//!
//! - [`run_command`] (exec/command.rs): argv exec in its own process group, bounded output, group kill on
//!   timeout and on cancellation (dropping the future).
//! - `run_http` (exec/http.rs, crate feature `http`): one HTTP request through a caller-owned `reqwest::Client`.
//!
//! Neither panics nor returns an error: every failure, including a target that could not start, is an
//! [`AttemptResult`] with a reason, so it ends up in the fire's run record.

use std::ffi::OsString;
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, SecondsFormat};

use crate::coordinator::NodeId;
use crate::job::FireId;
use crate::run::Outcome;

mod command;
mod egress;
#[cfg(feature = "http")]
mod http;
mod tail;
#[cfg(test)]
mod tests;

pub use command::run_command;
pub use egress::{Egress, Rule as EgressRule};
#[cfg(feature = "http")]
pub use http::{HttpClients, run_http};

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

impl FireContext {
    /// The scheduled instant as RFC 3339 UTC with milliseconds (`2024-03-31T01:30:00.000Z`), as targets
    /// receive it in `CAMPANILE_SCHEDULED_AT` and `Campanile-Scheduled-At`.
    pub fn scheduled_at(&self) -> String {
        match DateTime::from_timestamp_millis(self.fire.scheduled_ms) {
            Some(at) => at.to_rfc3339_opts(SecondsFormat::Millis, true),
            // Beyond chrono's range (about ±262,000 years): no schedule produces it, but never panic.
            None => self.fire.scheduled_ms.to_string(),
        }
    }
}

/// The environment a command starts from, before its job's own `env` and the `CAMPANILE_*` fire variables.
///
/// Commands never inherit the node's whole environment: a server holds secrets there (`CAMPANILE_TOKEN`,
/// `CAMPANILE_ETCD_PASSWORD`, cloud credentials) that a job's output or webhooks would carry away. They get
/// [`BaseEnv::ALWAYS`] and whatever else the node names, taken from the node's environment when the node starts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BaseEnv {
    vars: Arc<[(OsString, OsString)]>,
    /// Users commands may run as (`run_as`); none by default.
    run_as: Arc<[String]>,
}

impl BaseEnv {
    /// Variables every command gets from the node, when the node has them.
    pub const ALWAYS: [&'static str; 4] = ["PATH", "HOME", "LANG", "TZ"];

    /// `PATH` when the node has none: where `argv[0]` is looked up.
    pub const DEFAULT_PATH: &'static str = "/usr/local/bin:/usr/bin:/bin";

    /// [`BaseEnv::ALWAYS`] and the variables named in `more`, with the values they have in this process now
    /// (unset ones are left out; `PATH` falls back to [`BaseEnv::DEFAULT_PATH`]).
    pub fn inherit<S: AsRef<str>>(more: impl IntoIterator<Item = S>) -> Self {
        let mut names: Vec<String> = Self::ALWAYS.iter().map(|&n| n.to_owned()).collect();
        for name in more {
            let name = name.as_ref();
            if !names.iter().any(|n| n == name) {
                names.push(name.to_owned());
            }
        }
        Self::from_vars(
            names
                .into_iter()
                .filter_map(|name| std::env::var_os(&name).map(|value| (name.into(), value))),
        )
    }

    /// Exactly these variables (plus `PATH` = [`BaseEnv::DEFAULT_PATH`] if they hold no `PATH`).
    pub fn from_vars(vars: impl IntoIterator<Item = (OsString, OsString)>) -> Self {
        let mut vars: Vec<(OsString, OsString)> = vars.into_iter().collect();
        if !vars.iter().any(|(name, _)| name == "PATH") {
            vars.push(("PATH".into(), Self::DEFAULT_PATH.into()));
        }
        Self {
            vars: vars.into(),
            run_as: Arc::from([]),
        }
    }

    /// The same, letting commands run as these users (a job's `run_as.user`, by name or uid as written
    /// there). Jobs naming another user are refused when created or updated on this node, and not run by it.
    #[must_use]
    pub fn allow_run_as<S: AsRef<str>>(mut self, users: impl IntoIterator<Item = S>) -> Self {
        self.run_as = users.into_iter().map(|u| u.as_ref().to_owned()).collect();
        self
    }

    /// The same with one more variable (replacing one of the same name): a worker adds `CAMPANILE_WORKER_ID`.
    #[must_use]
    pub fn with_var(mut self, name: impl Into<OsString>, value: impl Into<OsString>) -> Self {
        let name = name.into();
        let mut vars: Vec<(OsString, OsString)> = self
            .vars
            .iter()
            .filter(|(n, _)| *n != name)
            .cloned()
            .collect();
        vars.push((name, value.into()));
        self.vars = vars.into();
        self
    }

    /// Whether commands may run as `user`.
    pub fn allows_run_as(&self, user: &str) -> bool {
        self.run_as.iter().any(|u| u == user)
    }

    /// Refuses a job whose command runs as a user this node does not allow (the field and value named).
    pub fn check_run_as(
        &self,
        target: &crate::job::Target,
    ) -> Result<(), crate::job::ValidationError> {
        let crate::job::Target::Command(cmd) = target else {
            return Ok(());
        };
        match &cmd.run_as {
            Some(run_as) if !self.allows_run_as(&run_as.user) => {
                Err(crate::job::ValidationError::new(
                    "target.run_as.user",
                    &run_as.user,
                    if self.run_as.is_empty() {
                        "running commands as another user is not allowed on this node (allow_run_as is empty)".to_owned()
                    } else {
                        format!(
                            "is not one of the users this node allows (allow_run_as: {})",
                            self.run_as.join(", ")
                        )
                    },
                ))
            }
            _ => Ok(()),
        }
    }

    /// The variables, in order.
    pub fn vars(&self) -> impl Iterator<Item = (&OsString, &OsString)> {
        self.vars.iter().map(|(name, value)| (name, value))
    }
}

impl Default for BaseEnv {
    /// [`BaseEnv::inherit`] of nothing more than [`BaseEnv::ALWAYS`].
    fn default() -> Self {
        Self::inherit(std::iter::empty::<&str>())
    }
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

impl AttemptResult {
    /// A target that never ran (could not start, bad request): `Failed` with `reason` and no output.
    fn not_started(reason: String) -> Self {
        Self {
            outcome: Outcome::Failed,
            code: None,
            output: String::new(),
            reason: Some(reason),
        }
    }
}

/// The reason recorded for a run killed at its timeout: `timeout 5s`, `timeout 300ms`.
fn timeout_reason(timeout: Duration) -> String {
    format!("timeout {}", humantime::format_duration(timeout))
}
