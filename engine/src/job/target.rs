//! What a job runs: a command, an HTTP request, or an in-process handler.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::SecretValue;

/// What runs when a job fires. JSON: `{"type": "command", "argv": [...]}`, `{"type": "http", "url": ...}`,
/// `{"type": "handler", "name": ...}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Target {
    /// A process started from an argv (no shell unless `argv` names one).
    Command(CommandTarget),
    /// An HTTP request (needs the engine's `http` feature to run).
    Http(HttpTarget),
    /// A Rust closure registered on the scheduler under `name` (embedded use).
    Handler(HandlerTarget),
}

impl Target {
    /// The run timeout, if the target has one.
    pub fn timeout(&self) -> Option<Duration> {
        match self {
            Target::Command(c) => c.timeout,
            Target::Http(h) => Some(h.timeout),
            Target::Handler(h) => h.timeout,
        }
    }
}

/// A command given as argv. On timeout the whole process group is killed (`SIGKILL`), so children that the
/// command started do not outlive it. The environment gets `CAMPANILE_FIRE_ID`, `CAMPANILE_JOB_ID`,
/// `CAMPANILE_JOB_NAME`, `CAMPANILE_SCHEDULED_AT`, `CAMPANILE_ATTEMPT` and `CAMPANILE_NODE_ID`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CommandTarget {
    /// Program and arguments; `argv[0]` is looked up in `PATH` if it has no `/`.
    pub argv: Vec<String>,
    /// Environment variables of the command, on top of the node's base (`PATH`, `HOME`, `LANG`, `TZ` and what
    /// the node names; never its whole environment, see `exec::BaseEnv`). Values may be references
    /// resolved when the fire runs ([`SecretValue`]).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub env: BTreeMap<String, SecretValue>,
    /// Working directory; the node's own if absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cwd: Option<PathBuf>,
    /// Kill the process group after this long; no limit if absent.
    #[serde(
        default,
        with = "humantime_serde",
        skip_serializing_if = "Option::is_none"
    )]
    pub timeout: Option<Duration>,
    /// The user (and group) the command runs as, instead of the node's. Only users the node allows
    /// (`exec::BaseEnv::allow_run_as`) are accepted, and only a node running as root can switch to them.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub run_as: Option<RunAs>,
}

/// Who a command runs as: a user name (or numeric uid), and a group name (or gid), by default the user's
/// primary group. The command gets that uid and gid and no supplementary groups, and `HOME` is the user's
/// home directory unless the job's `env` sets it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RunAs {
    /// User name or numeric uid.
    pub user: String,
    /// Group name or numeric gid; the user's primary group if absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub group: Option<String>,
}

/// An HTTP request. Headers `Campanile-Fire-Id`, `Campanile-Job-Id`, `Campanile-Scheduled-At`,
/// `Campanile-Attempt` and `Campanile-Node-Id` are added.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HttpTarget {
    /// `http://` or `https://` URL.
    pub url: String,
    /// Method; `POST` by default.
    #[serde(default = "default_method")]
    pub method: String,
    /// Extra request headers. Values may be references resolved when the fire runs ([`SecretValue`]).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub headers: BTreeMap<String, SecretValue>,
    /// Request body.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub body: Option<String>,
    /// Statuses counted as success; any 2xx if empty.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub expected_status: Vec<u16>,
    /// Whole-request timeout; 30 s by default.
    #[serde(default = "default_http_timeout", with = "humantime_serde")]
    pub timeout: Duration,
    /// Follow redirects (at most 5, each checked against the node's egress policy); off by default, so a
    /// permitted host cannot send the request on to a denied one.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub follow_redirects: bool,
}

/// A handler registered on the scheduler's builder by name.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HandlerTarget {
    /// The registered name.
    pub name: String,
    /// Abort the handler's future after this long.
    #[serde(
        default,
        with = "humantime_serde",
        skip_serializing_if = "Option::is_none"
    )]
    pub timeout: Option<Duration>,
}

impl HandlerTarget {
    /// A handler target without a timeout.
    pub fn new(name: impl Into<String>) -> Self {
        Self {
            name: name.into(),
            timeout: None,
        }
    }
}

impl CommandTarget {
    /// A command from an argv, without env, cwd or timeout.
    pub fn new<S: Into<String>>(argv: impl IntoIterator<Item = S>) -> Self {
        Self {
            argv: argv.into_iter().map(Into::into).collect(),
            env: BTreeMap::new(),
            cwd: None,
            timeout: None,
            run_as: None,
        }
    }
}

fn default_method() -> String {
    "POST".to_owned()
}

fn default_http_timeout() -> Duration {
    Duration::from_secs(30)
}
