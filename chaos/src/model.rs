//! What a run produces and the checker reads: the jobs' change logs, the run records collected from the
//! cluster, the ledger lines the targets appended, and the nemesis's faults.

use serde::{Deserialize, Serialize};

/// A schedule of the workload, in the forms whose instants the checker can enumerate.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Sched {
    /// Every multiple of this many ms since the Unix epoch (`* * * * * *`, `*/5 * * * * *`, `@every 7s`,
    /// `*/2 * * * *`: the period divides an hour, or is anchored at the epoch).
    Every(i64),
    /// One instant, Unix ms (`@at`).
    At(i64),
}

impl Sched {
    /// The schedule as the job JSON writes it.
    pub fn to_api(self) -> String {
        match self {
            Sched::Every(1000) => "* * * * * *".into(),
            Sched::Every(ms) if ms < 60_000 && 60_000 % ms == 0 => {
                format!("*/{} * * * * *", ms / 1000)
            }
            Sched::Every(60_000) => "* * * * *".into(),
            Sched::Every(ms) if ms % 60_000 == 0 && 3_600_000 % ms == 0 => {
                format!("*/{} * * * *", ms / 60_000)
            }
            Sched::Every(ms) => format!("@every {}s", ms / 1000),
            Sched::At(ms) => {
                let secs = ms.div_euclid(1000);
                format!("@at {}", rfc3339(secs))
            }
        }
    }

    /// The instants in `(after, through]`.
    pub fn instants(self, after: i64, through: i64) -> Vec<i64> {
        match self {
            Sched::Every(period) => {
                let mut at = (after.div_euclid(period) + 1) * period;
                let mut out = Vec::new();
                while at <= through {
                    out.push(at);
                    at += period;
                }
                out
            }
            Sched::At(at) => {
                if at > after && at <= through {
                    vec![at]
                } else {
                    Vec::new()
                }
            }
        }
    }
}

/// `YYYY-MM-DDTHH:MM:SSZ` of Unix seconds (civil-from-days, proleptic Gregorian).
pub fn rfc3339(secs: i64) -> String {
    let days = secs.div_euclid(86_400);
    let rem = secs.rem_euclid(86_400);
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

/// A change the workload made to a job, at the time the API answered it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "change", content = "schedule")]
pub enum Change {
    /// Created with this schedule.
    Create(Sched),
    /// Its schedule replaced.
    Update(Sched),
    /// Paused.
    Pause,
    /// Resumed.
    Resume,
    /// Deleted (with its history).
    Delete,
}

/// One job of the workload and everything done to it.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct JobLog {
    /// The job id.
    pub id: String,
    /// Changes in time order: (Unix ms, change).
    pub changes: Vec<(i64, Change)>,
    /// Unix ms of the last successful collection of its records.
    pub collected_ms: i64,
}

/// A run record as `GET /v1/jobs/{id}/runs` answers it (the fields the checker reads).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Record {
    /// The job.
    pub job: String,
    /// The (first) scheduled instant.
    pub scheduled_ms: i64,
    /// Last instant of a range record.
    #[serde(default)]
    pub last_scheduled_ms: Option<i64>,
    /// Instants of a range record.
    #[serde(default)]
    pub count: Option<u32>,
    /// Node that wrote it.
    pub node: String,
    /// When the last attempt started.
    #[serde(default)]
    pub started_ms: Option<i64>,
    /// `succeeded`, `failed`, `timed_out`, `skipped`, `misfired`, `in_doubt`.
    pub outcome: String,
    /// Why, when given.
    #[serde(default)]
    pub reason: Option<String>,
    /// A trigger or backfill.
    #[serde(default)]
    pub manual: Option<bool>,
}

impl Record {
    /// The fire id of its (first) instant.
    pub fn fire_id(&self) -> String {
        format!("{}@{}", self.job, self.scheduled_ms)
    }

    /// Whether the target ran (the outcome comes from an attempt).
    pub fn executed(&self) -> bool {
        matches!(self.outcome.as_str(), "succeeded" | "failed" | "timed_out")
    }
}

/// One line of the ledger: a fire id and the node that ran it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LedgerLine {
    /// `job@instant_ms`.
    pub fire: String,
    /// The node id (`CAMPANILE_NODE_ID`).
    pub node: String,
}

impl LedgerLine {
    /// Parses `FIRE_ID NODE`.
    pub fn parse(line: &str) -> Option<LedgerLine> {
        let mut parts = line.split_whitespace();
        let fire = parts.next()?.to_owned();
        let node = parts.next().unwrap_or_default().to_owned();
        Some(LedgerLine { fire, node })
    }

    /// The job and instant of the fire id.
    pub fn job_and_instant(&self) -> Option<(&str, i64)> {
        let (job, at) = self.fire.rsplit_once('@')?;
        Some((job, at.parse().ok()?))
    }
}

/// A kind of fault.
#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    PartialOrd,
    Ord,
    Hash,
    Serialize,
    Deserialize,
    clap::ValueEnum,
)]
#[serde(rename_all = "snake_case")]
#[value(rename_all = "snake_case")]
pub enum FaultKind {
    /// SIGKILL a node, restart it later.
    KillNode,
    /// SIGSTOP a node past its TTL, then SIGCONT.
    FreezeNode,
    /// Cut a node off from every coordinator member: connections reset, new ones refused.
    CutDrop,
    /// Cut a node off from every coordinator member: connections silent.
    CutBlackhole,
    /// SIGKILL the coordinator's leader member, restart it later.
    KillCoordinatorLeader,
    /// SIGSTOP a coordinator member, then SIGCONT.
    FreezeCoordinatorMember,
    /// SIGTERM and restart every node, one after the other (an upgrade).
    RollingRestart,
    /// Two node faults on two nodes and a coordinator member frozen, at once.
    Combined,
}

impl FaultKind {
    /// Every kind, in the order of the report.
    pub const ALL: [FaultKind; 8] = [
        FaultKind::KillNode,
        FaultKind::FreezeNode,
        FaultKind::CutDrop,
        FaultKind::CutBlackhole,
        FaultKind::KillCoordinatorLeader,
        FaultKind::FreezeCoordinatorMember,
        FaultKind::RollingRestart,
        FaultKind::Combined,
    ];

    /// The name in reports.
    pub fn name(self) -> &'static str {
        match self {
            FaultKind::KillNode => "kill_node",
            FaultKind::FreezeNode => "freeze_node",
            FaultKind::CutDrop => "cut_drop",
            FaultKind::CutBlackhole => "cut_blackhole",
            FaultKind::KillCoordinatorLeader => "kill_coordinator_leader",
            FaultKind::FreezeCoordinatorMember => "freeze_coordinator_member",
            FaultKind::RollingRestart => "rolling_restart",
            FaultKind::Combined => "combined",
        }
    }

    /// Whether the fault takes nodes out, so that their jobs move (the failover measure is the takeover).
    pub fn moves_jobs(self) -> bool {
        matches!(
            self,
            FaultKind::KillNode
                | FaultKind::FreezeNode
                | FaultKind::CutDrop
                | FaultKind::CutBlackhole
                | FaultKind::Combined
        )
    }
}

/// A fault the nemesis injected.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Fault {
    /// What.
    pub kind: FaultKind,
    /// Unix ms it began.
    pub start_ms: i64,
    /// Unix ms it was healed.
    pub end_ms: i64,
    /// The nodes it took out (node faults).
    pub victims: Vec<String>,
    /// Human-readable detail (member numbers, durations).
    pub detail: String,
}

/// The wall clock of the harness, Unix ms.
#[allow(clippy::disallowed_methods)] // The harness compares its own wall clock with the nodes' records.
pub fn now_ms() -> i64 {
    std::time::SystemTime::UNIX_EPOCH
        .elapsed()
        .map_or(0, |d| d.as_millis() as i64)
}
