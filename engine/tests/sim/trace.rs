//! The simulation's event log, and what one run leaves behind for the invariants to check ([`Observed`]).
//!
//! Three things are logged while the cluster runs, all stamped with virtual wall time: every execution the
//! handler sees (fire id, node, start, end), every action of the scenario driver (human-readable), and every
//! change of the members or of the published assignment. Run records are read from the coordinator at the end.
//! The invariants are pure functions of an [`Observed`], so tests can feed them hand-made ones.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;
use std::sync::{Arc, Mutex, MutexGuard};

use campanile::{FireId, JobId, RunRecord, Schedule};

use super::T0;

/// One start of a target by the handler (a retry would be another attempt of the same fire).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Execution {
    /// Position in the log: the order in which the starts happened (ties of `start_us` included).
    pub seq: usize,
    /// The fire.
    pub fire: FireId,
    /// The node that ran it.
    pub node: String,
    /// 1 for the first attempt.
    pub attempt: u32,
    /// Virtual wall time of the start, Unix µs.
    pub start_us: i64,
    /// Virtual wall time of the end, Unix µs; `None` if the run was dropped (node killed, run cancelled).
    pub end_us: Option<i64>,
}

/// The members and the published assignment at one moment, as the coordinator holds them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Snapshot {
    /// Virtual wall time, Unix ms.
    pub at_ms: i64,
    /// Live members' node ids.
    pub members: BTreeSet<String>,
    /// Version of the published assignment, if any.
    pub version: Option<u64>,
    /// Its owners.
    pub owners: BTreeMap<JobId, String>,
}

/// One spec a job had: the schedule it owes from `from_ms` (exclusive) on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JobVersion {
    /// `created_ms` for the first version, `updated_ms` for later ones: instants strictly after it are owed.
    pub from_ms: i64,
    /// The schedule's source text.
    pub schedule: String,
}

/// A job's life as the store saw it: its versions, and its deletion.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JobHistory {
    /// The job.
    pub id: JobId,
    /// Every version, oldest first (at least one).
    pub versions: Vec<JobVersion>,
    /// When it was deleted (its run records went with it).
    pub deleted_ms: Option<i64>,
}

impl JobHistory {
    /// Instants of `schedule` in `(after_ms, until_ms]`.
    pub fn instants(schedule: &str, after_ms: i64, until_ms: i64) -> Vec<i64> {
        let schedule = Schedule::parse(schedule).expect("simulation schedules parse");
        let mut out = Vec::new();
        let mut cursor = after_ms;
        while let Some(t) =
            schedule.next_after(cursor, chrono_tz::UTC, campanile::job::DstPolicy::default())
        {
            if t > until_ms {
                break;
            }
            out.push(t);
            cursor = t;
        }
        out
    }

    /// The job's instants in `(after_ms, until_ms]` by the schedule in force at each, as the engine
    /// enumerates them (`Job::next_instant`): a version's instants up to the next version's `from_ms`, the
    /// first version's also before its own `from_ms`.
    pub fn sequence(&self, after_ms: i64, until_ms: i64) -> Vec<i64> {
        let mut out = Vec::new();
        let mut era_start = i64::MIN;
        for (i, version) in self.versions.iter().enumerate() {
            let end = self
                .versions
                .get(i + 1)
                .map_or(until_ms, |next| next.from_ms.min(until_ms));
            if end > after_ms {
                out.extend(Self::instants(
                    &version.schedule,
                    after_ms.max(era_start),
                    end,
                ));
            }
            era_start = end;
            if end >= until_ms {
                break;
            }
        }
        out
    }

    /// The instants the job owes up to `until_ms`: each version's instants strictly after its `from_ms`, up to
    /// the next version's `from_ms` (an update takes effect from the next instant).
    pub fn owed(&self, until_ms: i64) -> BTreeSet<i64> {
        let mut owed = BTreeSet::new();
        for (i, version) in self.versions.iter().enumerate() {
            let end = self
                .versions
                .get(i + 1)
                .map_or(until_ms, |next| next.from_ms.min(until_ms));
            owed.extend(Self::instants(&version.schedule, version.from_ms, end));
        }
        owed
    }

    /// The instants that may have a record up to `until_ms`: the owed ones, plus instants of an older schedule
    /// after an update (an owner fires under the old spec until the update reaches it).
    pub fn allowed(&self, until_ms: i64) -> BTreeSet<i64> {
        self.versions
            .iter()
            .flat_map(|v| Self::instants(&v.schedule, v.from_ms, until_ms))
            .collect()
    }
}

/// Everything one simulation run leaves behind.
#[derive(Debug, Clone, Default)]
pub struct Observed {
    /// The seed the scenario was drawn from.
    pub seed: u64,
    /// Every node id of the cluster.
    pub nodes: BTreeSet<String>,
    /// Every execution, in start order.
    pub executions: Vec<Execution>,
    /// Run records of every job that still exists, read from the coordinator at the end.
    pub records: BTreeMap<JobId, Vec<RunRecord>>,
    /// Every job of the run.
    pub jobs: Vec<JobHistory>,
    /// Members and assignment over time, oldest first.
    pub snapshots: Vec<Snapshot>,
    /// When the faults were healed and every node was started again.
    pub healed_ms: i64,
    /// The assignment must be balanced from this instant on (the convergence bound).
    pub converged_by_ms: i64,
    /// The end of the accounted window: the moment the final shutdown began. Every instant up to here is owed
    /// a record; later ones may have one.
    pub end_ms: i64,
    /// The driver's actions, for the report.
    pub events: Vec<(i64, String)>,
    /// Set when virtual time stopped (a livelock) and the run was cancelled there: nothing else is complete.
    pub stalled_at_ms: Option<i64>,
    /// Every job's run timeout: the longest a run may go on (a run the log has no end for may have gone on
    /// until its start plus this).
    pub run_timeout: std::time::Duration,
}

/// Virtual time as an offset from the start of the simulation, for reports: `+12.345s`.
pub fn at(ms: i64) -> String {
    let rel = ms - T0;
    format!("+{}.{:03}s", rel.div_euclid(1000), rel.rem_euclid(1000))
}

impl Observed {
    /// The driver's actions, one per line.
    pub fn events_report(&self) -> String {
        let mut out = String::new();
        for (ms, what) in &self.events {
            let _ = writeln!(out, "  {} {what}", at(*ms));
        }
        out
    }

    /// Everything about one job, for a report: its versions, its executions and its run records.
    pub fn ledger_report(&self, job: &str) -> String {
        let mut out = format!("ledger of {job}:\n");
        for history in self.jobs.iter().filter(|j| j.id.as_str() == job) {
            for v in &history.versions {
                let _ = writeln!(out, "  version {:?} from {}", v.schedule, at(v.from_ms));
            }
            if let Some(deleted) = history.deleted_ms {
                let _ = writeln!(out, "  deleted at {}", at(deleted));
            }
        }
        let mut owner: Option<&String> = None;
        for snapshot in &self.snapshots {
            let now = snapshot
                .owners
                .iter()
                .find(|(id, _)| id.as_str() == job)
                .map(|(_, n)| n);
            if now != owner {
                let _ = writeln!(
                    out,
                    "  owner {} from {} (assignment version {:?})",
                    now.map_or("none", |n| n.as_str()),
                    at(snapshot.at_ms),
                    snapshot.version
                );
                owner = now;
            }
        }
        for e in self
            .executions
            .iter()
            .filter(|e| e.fire.job.as_str() == job)
        {
            let _ = writeln!(
                out,
                "  ran {} on {} at {}..{}",
                at(e.fire.scheduled_ms),
                e.node,
                at(e.start_us.div_euclid(1000)),
                e.end_us.map_or("-".to_owned(), |t| at(t.div_euclid(1000)))
            );
        }
        for (id, records) in self.records.iter().filter(|(id, _)| id.as_str() == job) {
            for r in records {
                let _ = writeln!(
                    out,
                    "  record {id}@{} {} by {} count {} last {:?} reason {:?}",
                    at(r.scheduled_ms),
                    r.outcome.as_str(),
                    r.node,
                    r.count,
                    r.last_scheduled_ms.map(at),
                    r.reason
                );
            }
        }
        out
    }

    /// A one-line summary of the run's size.
    pub fn summary(&self) -> String {
        let executed = self.executions.len();
        if let Some(stalled) = self.stalled_at_ms {
            return format!("stalled at {} after {executed} executions", at(stalled));
        }
        let records: usize = self.records.values().map(Vec::len).sum();
        let mut outcomes: BTreeMap<&str, usize> = BTreeMap::new();
        for record in self.records.values().flatten() {
            *outcomes.entry(record.outcome.as_str()).or_default() += 1;
        }
        format!(
            "{} nodes, {} jobs ({} deleted), {executed} executions, {records} run records {outcomes:?}, \
             healed at {}, accounted up to {}",
            self.nodes.len(),
            self.jobs.len(),
            self.jobs.iter().filter(|j| j.deleted_ms.is_some()).count(),
            at(self.healed_ms),
            at(self.end_ms),
        )
    }
}

/// The shared, append-only log the handler, the driver and the assignment watcher write to.
#[derive(Clone, Default)]
pub struct Trace {
    inner: Arc<Mutex<Log>>,
}

#[derive(Default)]
struct Log {
    executions: Vec<Execution>,
    events: Vec<(i64, String)>,
    snapshots: Vec<Snapshot>,
}

impl Trace {
    fn log(&self) -> MutexGuard<'_, Log> {
        // A panicking checker must not hide the log behind a poisoned lock.
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// A run started; returns its index for [`Trace::ended`].
    pub fn started(&self, fire: FireId, node: String, attempt: u32, start_us: i64) -> usize {
        let mut log = self.log();
        let seq = log.executions.len();
        log.executions.push(Execution {
            seq,
            fire,
            node,
            attempt,
            start_us,
            end_us: None,
        });
        seq
    }

    /// A run ended.
    pub fn ended(&self, seq: usize, end_us: i64) {
        self.log().executions[seq].end_us = Some(end_us);
    }

    /// The driver did something.
    pub fn event(&self, at_ms: i64, what: impl Into<String>) {
        let what = what.into();
        if std::env::var_os("CAMPANILE_SIM_LIVE").is_some() {
            eprintln!("  {} {what}", at(at_ms));
        }
        self.log().events.push((at_ms, what));
    }

    /// Members or assignment changed.
    pub fn snapshot(&self, snapshot: Snapshot) {
        self.log().snapshots.push(snapshot);
    }

    /// Moves everything logged so far into `observed`.
    pub fn drain_into(&self, observed: &mut Observed) {
        let mut log = self.log();
        observed.executions = std::mem::take(&mut log.executions);
        observed.events = std::mem::take(&mut log.events);
        observed.snapshots = std::mem::take(&mut log.snapshots);
    }
}
