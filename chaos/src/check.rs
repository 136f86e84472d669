//! The checker: reads the jobs' change logs, the run records and the ledger, and finds every broken promise.
//!
//! - **No double fire**: no fire id appears twice in the ledger (every target appends its
//!   `CAMPANILE_FIRE_ID` there, so the ledger is what ran, whatever the records say).
//! - **No silent miss**: every instant a job owes has exactly one record (a `misfired` range counts for each
//!   instant it covers). An instant within `margin` of a change to its job (create, update, pause, resume,
//!   delete) may have no record (the owner sees the change a moment later) but never two; an instant after
//!   the last collection (minus a settling time) is not checked.
//! - **Ledger and records agree**: every `succeeded`/`failed` record has its ledger line, and every ledger
//!   line has a record that says it may have run (`succeeded`, `failed`, `timed_out`, `in_doubt`).
//! - **Nothing runs unscheduled**: no executed record for an instant the job does not owe (a paused job, an
//!   old schedule), beyond the margins.
//! - **A rolling restart misfires nothing**: no `misfired` record covers an instant during one.
//!
//! It also measures failover per fault: for node faults, the time from the fault to the first fire of each
//! moved job on a surviving node; for the others, the longest gap between fires of each every-second job.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};

use serde::{Deserialize, Serialize};

use crate::model::{Change, Fault, FaultKind, JobLog, LedgerLine, Record, Sched};

#[cfg(test)]
mod tests;

/// What the checker reads.
pub struct Input<'a> {
    /// Every job of the workload.
    pub jobs: &'a [JobLog],
    /// Every record collected (newest copy per job and instant).
    pub records: &'a [Record],
    /// Every ledger line.
    pub ledger: &'a [LedgerLine],
    /// The nemesis's faults.
    pub faults: &'a [Fault],
    /// Instants after this are not checked for a record (Unix ms).
    pub window_end_ms: i64,
    /// Around a change to a job, its instants may lack a record.
    pub margin_ms: i64,
    /// Records of instants this close to the last collection may not be written yet.
    pub settle_ms: i64,
    /// The nodes' session TTL.
    pub ttl_ms: i64,
}

/// One broken promise.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "kind")]
pub enum Violation {
    /// A fire id ran more than once.
    DoubleFire {
        /// The fire id.
        fire: String,
        /// The nodes that ran it, one per run.
        nodes: Vec<String>,
    },
    /// An owed instant has no record.
    Unaccounted {
        /// The fire id.
        fire: String,
    },
    /// An instant has more than one record.
    TwoRecords {
        /// The fire id.
        fire: String,
        /// The outcomes and nodes of the records.
        records: Vec<String>,
    },
    /// A `succeeded`/`failed` record without its ledger line.
    RecordWithoutLedger {
        /// The fire id.
        fire: String,
        /// The node of the record.
        node: String,
    },
    /// A ledger line without a record saying that the fire may have run.
    LedgerWithoutRecord {
        /// The fire id.
        fire: String,
        /// The node that ran it.
        node: String,
        /// The outcome recorded instead, if any.
        recorded: Option<String>,
    },
    /// An executed record for an instant its job did not owe.
    Unscheduled {
        /// The fire id.
        fire: String,
        /// The node of the record.
        node: String,
    },
    /// A `misfired` record during a rolling restart.
    MisfireInRollingRestart {
        /// The fire id of the record.
        fire: String,
        /// Instants it covers.
        count: u32,
    },
}

impl Violation {
    /// The fire id it is about.
    pub fn fire(&self) -> &str {
        match self {
            Violation::DoubleFire { fire, .. }
            | Violation::Unaccounted { fire }
            | Violation::TwoRecords { fire, .. }
            | Violation::RecordWithoutLedger { fire, .. }
            | Violation::LedgerWithoutRecord { fire, .. }
            | Violation::Unscheduled { fire, .. }
            | Violation::MisfireInRollingRestart { fire, .. } => fire,
        }
    }

    /// The instant of its fire id.
    pub fn instant(&self) -> Option<i64> {
        self.fire().rsplit_once('@')?.1.parse().ok()
    }
}

/// The failover of one fault.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Failover {
    /// Index of the fault in the nemesis's log.
    pub fault: usize,
    /// Its kind.
    pub kind: FaultKind,
    /// Per measured job: ms from the fault to the first fire on a surviving node (node faults), or the
    /// longest gap between fires (other faults).
    pub ms: Vec<i64>,
    /// Moved jobs that did not fire on a surviving node within the measuring window.
    pub not_seen: usize,
}

/// Counts the report shows.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Counts {
    /// Ledger lines (fires executed).
    pub fires: usize,
    /// Records by outcome.
    pub records: BTreeMap<String, usize>,
    /// Instants owed and checked for exactly one record.
    pub instants_checked: usize,
    /// Instants within a margin of a change, checked for at most one record.
    pub instants_in_margins: usize,
    /// Instants covered by `misfired` records.
    pub instants_misfired: usize,
}

/// What the checker found.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Verdict {
    /// Counts.
    pub counts: Counts,
    /// Every violation.
    pub violations: Vec<Violation>,
    /// Failover per fault.
    pub failovers: Vec<Failover>,
}

/// A job's schedule over time: what it owes, and where it is unsure.
struct Timeline {
    /// Instants owed outside every margin.
    certain: BTreeSet<i64>,
    /// Instants owed (or of a schedule in force) within a margin of a change.
    unsure: BTreeSet<i64>,
    /// Every instant of any schedule the job had while it existed (paused or not), for expanding ranges.
    any: BTreeSet<i64>,
    /// Instants after this are not checked.
    limit: i64,
}

fn timeline(job: &JobLog, input: &Input<'_>) -> Timeline {
    let deleted = job
        .changes
        .iter()
        .find(|(_, c)| *c == Change::Delete)
        .map(|(t, _)| *t);
    let limit = match deleted {
        Some(_) => (job.collected_ms - input.settle_ms).min(input.window_end_ms),
        None => input.window_end_ms,
    };
    let mut certain = BTreeSet::new();
    let mut unsure = BTreeSet::new();
    let mut any = BTreeSet::new();
    let mut sched: Option<Sched> = None;
    let mut paused = false;
    let end = deleted.unwrap_or(input.window_end_ms + input.settle_ms);
    let changes = &job.changes;
    for (i, (at, change)) in changes.iter().enumerate() {
        let before = sched;
        match change {
            Change::Create(s) | Change::Update(s) => sched = Some(*s),
            Change::Pause => paused = true,
            Change::Resume => paused = false,
            Change::Delete => break,
        }
        // Around the change, the schedules before and after it may both fire: at most one record.
        for s in [before, sched].into_iter().flatten() {
            unsure.extend(s.instants(at - input.margin_ms, at + input.margin_ms));
        }
        let next = changes.get(i + 1).map_or(end, |(t, _)| *t).min(end);
        if let Some(s) = sched {
            let instants = s.instants(*at, next);
            any.extend(instants.iter().copied());
            if !paused {
                certain.extend(instants.into_iter().filter(|&t| {
                    t > at + input.margin_ms && t < next - input.margin_ms && t <= limit
                }));
            }
        }
    }
    certain.retain(|t| !unsure.contains(t));
    Timeline {
        certain,
        unsure,
        any,
        limit,
    }
}

/// The instants a record covers: its single instant, or for a range the job's instants within it.
fn covered(record: &Record, timeline: Option<&Timeline>) -> Vec<i64> {
    let first = record.scheduled_ms;
    let last = record.last_scheduled_ms.unwrap_or(first);
    let count = record.count.unwrap_or(1).max(1) as usize;
    if count == 1 || last <= first {
        return vec![first];
    }
    if let Some(t) = timeline {
        let inside: Vec<i64> = t.any.range(first..=last).copied().collect();
        if inside.len() == count {
            return inside;
        }
    }
    let step = (last - first) / (count as i64 - 1);
    (0..count as i64).map(|i| first + i * step).collect()
}

/// Runs every check.
pub fn check(input: &Input<'_>) -> Verdict {
    let mut violations = Vec::new();
    let mut counts = Counts {
        fires: input.ledger.len(),
        ..Counts::default()
    };

    // No fire id twice in the ledger.
    let mut ran: HashMap<&str, Vec<&str>> = HashMap::new();
    for line in input.ledger {
        ran.entry(line.fire.as_str())
            .or_default()
            .push(line.node.as_str());
    }
    let mut doubles: Vec<_> = ran.iter().filter(|(_, nodes)| nodes.len() > 1).collect();
    doubles.sort();
    for (fire, nodes) in doubles {
        violations.push(Violation::DoubleFire {
            fire: (*fire).to_owned(),
            nodes: nodes.iter().map(|n| (*n).to_owned()).collect(),
        });
    }

    let timelines: HashMap<&str, Timeline> = input
        .jobs
        .iter()
        .map(|j| (j.id.as_str(), timeline(j, input)))
        .collect();

    // Records per job and instant.
    let mut by_instant: HashMap<&str, BTreeMap<i64, Vec<&Record>>> = HashMap::new();
    for record in input.records {
        *counts.records.entry(record.outcome.clone()).or_default() += 1;
        let t = timelines.get(record.job.as_str());
        let instants = covered(record, t);
        if record.outcome == "misfired" {
            counts.instants_misfired += instants.len();
        }
        let per_job = by_instant.entry(record.job.as_str()).or_default();
        for at in instants {
            per_job.entry(at).or_default().push(record);
        }
    }

    for job in input.jobs {
        let t = &timelines[job.id.as_str()];
        let empty = BTreeMap::new();
        let records = by_instant.get(job.id.as_str()).unwrap_or(&empty);
        for &at in &t.certain {
            counts.instants_checked += 1;
            if !records.contains_key(&at) {
                violations.push(Violation::Unaccounted {
                    fire: format!("{}@{at}", job.id),
                });
            }
        }
        counts.instants_in_margins += t.unsure.iter().filter(|&&at| at <= t.limit).count();
        for (&at, list) in records {
            if list.len() > 1 {
                violations.push(Violation::TwoRecords {
                    fire: format!("{}@{at}", job.id),
                    records: list
                        .iter()
                        .map(|r| format!("{} on {}", r.outcome, r.node))
                        .collect(),
                });
            }
            for record in list
                .iter()
                .filter(|r| r.executed() && r.manual != Some(true))
            {
                if !t.certain.contains(&at) && !t.unsure.contains(&at) && at <= t.limit {
                    violations.push(Violation::Unscheduled {
                        fire: format!("{}@{at}", job.id),
                        node: record.node.clone(),
                    });
                }
            }
        }
    }

    // Records and ledger agree.
    let in_ledger: HashSet<&str> = input.ledger.iter().map(|l| l.fire.as_str()).collect();
    for record in input.records {
        if matches!(record.outcome.as_str(), "succeeded" | "failed")
            && record.manual != Some(true)
            && !in_ledger.contains(record.fire_id().as_str())
        {
            violations.push(Violation::RecordWithoutLedger {
                fire: record.fire_id(),
                node: record.node.clone(),
            });
        }
    }
    let mut seen = HashSet::new();
    for line in input.ledger {
        let Some((job, at)) = line.job_and_instant() else {
            continue;
        };
        let Some(t) = timelines.get(job) else {
            continue;
        };
        if at > t.limit || !seen.insert(line.fire.as_str()) {
            continue;
        }
        let recorded = by_instant.get(job).and_then(|m| m.get(&at));
        let may_have_run = recorded
            .is_some_and(|list| list.iter().any(|r| r.executed() || r.outcome == "in_doubt"));
        if !may_have_run {
            violations.push(Violation::LedgerWithoutRecord {
                fire: line.fire.clone(),
                node: line.node.clone(),
                recorded: recorded.and_then(|l| l.first()).map(|r| r.outcome.clone()),
            });
        }
    }

    // A rolling restart misfires nothing.
    for fault in input
        .faults
        .iter()
        .filter(|f| f.kind == FaultKind::RollingRestart)
    {
        for record in input.records.iter().filter(|r| r.outcome == "misfired") {
            let t = timelines.get(record.job.as_str());
            let instants = covered(record, t);
            if instants
                .iter()
                .any(|&at| at >= fault.start_ms && at <= fault.end_ms + input.ttl_ms)
            {
                violations.push(Violation::MisfireInRollingRestart {
                    fire: record.fire_id(),
                    count: record.count.unwrap_or(1),
                });
            }
        }
    }
    violations.dedup();

    let failovers = failovers(input, &by_instant);
    Verdict {
        counts,
        violations,
        failovers,
    }
}

/// Every-second jobs with no change within `[from, through]`, and their executed records by start.
fn steady_jobs<'a>(
    input: &Input<'a>,
    by_instant: &HashMap<&str, BTreeMap<i64, Vec<&'a Record>>>,
    from: i64,
    through: i64,
) -> Vec<Vec<&'a Record>> {
    let mut out = Vec::new();
    for job in input.jobs {
        let mut sched = None;
        let mut paused = false;
        let mut steady = true;
        for (at, change) in &job.changes {
            if *at >= from - input.margin_ms && *at <= through + input.margin_ms {
                steady = false;
            }
            if *at < from {
                match change {
                    Change::Create(s) | Change::Update(s) => sched = Some(*s),
                    Change::Pause => paused = true,
                    Change::Resume => paused = false,
                    Change::Delete => steady = false,
                }
            }
        }
        if !steady || paused || sched != Some(Sched::Every(1000)) || through > input.window_end_ms {
            continue;
        }
        let Some(records) = by_instant.get(job.id.as_str()) else {
            continue;
        };
        let mut runs: Vec<&Record> = records
            .range(from - 10_000..=through + 10_000)
            .flat_map(|(_, list)| list.iter().copied())
            .filter(|r| r.executed() && r.started_ms.is_some())
            .collect();
        runs.sort_by_key(|r| r.started_ms);
        runs.dedup_by_key(|r| r.scheduled_ms);
        out.push(runs);
    }
    out
}

fn failovers(
    input: &Input<'_>,
    by_instant: &HashMap<&str, BTreeMap<i64, Vec<&Record>>>,
) -> Vec<Failover> {
    let mut out = Vec::new();
    for (index, fault) in input.faults.iter().enumerate() {
        let through = fault.end_ms.max(fault.start_ms + input.ttl_ms) + input.ttl_ms + 5_000;
        let jobs = steady_jobs(input, by_instant, fault.start_ms - 5_000, through);
        let mut ms = Vec::new();
        let mut not_seen = 0;
        for runs in jobs {
            if fault.kind.moves_jobs() {
                let before = runs
                    .iter()
                    .rev()
                    .find(|r| r.started_ms.is_some_and(|s| s < fault.start_ms));
                let Some(before) = before else { continue };
                if !fault.victims.contains(&before.node) {
                    continue;
                }
                let first = runs
                    .iter()
                    .filter(|r| !fault.victims.contains(&r.node))
                    .filter_map(|r| r.started_ms)
                    .find(|&s| s >= fault.start_ms && s <= through);
                match first {
                    Some(s) => ms.push(s - fault.start_ms),
                    None => not_seen += 1,
                }
            } else {
                let mut last = fault.start_ms;
                let mut gap = 0;
                for s in runs.iter().filter_map(|r| r.started_ms) {
                    if s < fault.start_ms || s > through {
                        continue;
                    }
                    gap = gap.max(s - last);
                    last = s;
                }
                gap = gap
                    .max(through.min(input.window_end_ms) - last)
                    .min(through - fault.start_ms);
                ms.push(gap);
            }
        }
        out.push(Failover {
            fault: index,
            kind: fault.kind,
            ms,
            not_seen,
        });
    }
    out
}

/// The `p`-th percentile (0–100) of `values` (nearest rank), or `None` when empty.
pub fn percentile(values: &[i64], p: f64) -> Option<i64> {
    if values.is_empty() {
        return None;
    }
    let mut sorted = values.to_vec();
    sorted.sort_unstable();
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    Some(sorted[rank.clamp(1, sorted.len()) - 1])
}
