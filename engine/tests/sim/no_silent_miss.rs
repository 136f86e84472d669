//! Invariant: every scheduled instant of every job in the run window is accounted for by exactly one run
//! record — executed (`succeeded`, `failed`, `timed_out`), `skipped`, `misfired` (a record may cover a range:
//! `count` instants up to `last_scheduled_ms`) or `in_doubt` — and the records tell the truth about the
//! handler's log.
//!
//! - The window of a job runs from its creation to the moment the final shutdown began ([`Observed::end_ms`]);
//!   an update owes the new schedule's instants strictly after it, the old one's up to it
//!   ([`JobHistory::owed`]). Instants of an older schedule after an update, and instants after the window,
//!   may have a record (at most one) but need not.
//! - Deleted jobs are not checked here: their records are deleted with them (their executions still count for
//!   `no_double_fire` and `single_owner`).
//! - Truth: a record with an executed outcome names a node whose handler ran that fire; a fire the handler
//!   ran has a record that says so (same node) or says `in_doubt` (its owner vanished before reporting).

use std::collections::BTreeMap;

use campanile::{FireId, Outcome, RunRecord};

use super::trace::{Execution, JobHistory, Observed, at};

/// The instants `record` accounts for: itself, or the range of one of the job's schedules that starts and
/// ends where the record says and holds `count` instants.
fn covers(job: &JobHistory, record: &RunRecord) -> Result<Vec<i64>, String> {
    if record.count == 1 && record.last_scheduled_ms.is_none() {
        return Ok(vec![record.scheduled_ms]);
    }
    let (first, last) = (record.scheduled_ms, record.last_ms());
    // A range may span schedule changes: then it follows the schedule in force at each instant.
    let spanning = job.sequence(first - 1, last);
    let single = job
        .versions
        .iter()
        .rev()
        .map(|version| JobHistory::instants(&version.schedule, first - 1, last));
    for instants in std::iter::once(spanning).chain(single) {
        if instants.first() == Some(&first)
            && instants.last() == Some(&last)
            && instants.len() == record.count as usize
        {
            return Ok(instants);
        }
    }
    Err(format!(
        "job {}: {} record {}..={} ({}..{}) with count {} matches none of its schedules",
        job.id,
        record.outcome.as_str(),
        record.scheduled_ms,
        last,
        at(first),
        at(last),
        record.count
    ))
}

fn describe(record: &RunRecord) -> String {
    format!(
        "{} by {}{}",
        record.outcome.as_str(),
        record.node,
        if record.count > 1 {
            format!(
                " (range of {} from {})",
                record.count,
                at(record.scheduled_ms)
            )
        } else {
            String::new()
        }
    )
}

/// The violations, one line each.
pub fn check(observed: &Observed) -> Vec<String> {
    let mut out = Vec::new();
    let mut executions: BTreeMap<&FireId, Vec<&Execution>> = BTreeMap::new();
    for execution in observed.executions.iter().filter(|e| e.attempt == 1) {
        executions
            .entry(&execution.fire)
            .or_default()
            .push(execution);
    }
    for job in observed.jobs.iter().filter(|j| j.deleted_ms.is_none()) {
        let records = observed.records.get(&job.id).map_or(&[][..], Vec::as_slice);
        let horizon = records
            .iter()
            .map(RunRecord::last_ms)
            .chain(
                executions
                    .keys()
                    .filter(|f| f.job == job.id)
                    .map(|f| f.scheduled_ms),
            )
            .max()
            .unwrap_or(observed.end_ms)
            .max(observed.end_ms);
        let owed = job.owed(observed.end_ms);
        let allowed = job.allowed(horizon);

        let mut covered: BTreeMap<i64, Vec<&RunRecord>> = BTreeMap::new();
        for record in records {
            match covers(job, record) {
                Ok(instants) => {
                    for t in instants {
                        covered.entry(t).or_default().push(record);
                    }
                }
                Err(violation) => out.push(violation),
            }
        }
        for &t in &owed {
            match covered.get(&t).map_or(0, Vec::len) {
                0 => out.push(format!(
                    "job {}: instant {t} ({}) has no run record",
                    job.id,
                    at(t)
                )),
                1 => {}
                _ => {} // reported below, with the records
            }
        }
        for (&t, by) in &covered {
            if !allowed.contains(&t) {
                out.push(format!(
                    "job {}: a record ({}) accounts for {t} ({}), which is not one of its instants",
                    job.id,
                    describe(by[0]),
                    at(t)
                ));
            } else if by.len() > 1 {
                let each: Vec<String> = by.iter().map(|r| describe(r)).collect();
                out.push(format!(
                    "job {}: instant {t} ({}) is accounted for {} times: {}",
                    job.id,
                    at(t),
                    by.len(),
                    each.join(", ")
                ));
            }
        }

        // The records agree with the handler's log.
        for record in records.iter().filter(|r| r.outcome.executed()) {
            let ran_there = executions
                .get(&record.fire_id())
                .is_some_and(|runs| runs.iter().any(|e| e.node == record.node));
            if !ran_there {
                out.push(format!(
                    "job {}: the record of {} ({}) says {} but the handler never ran it there",
                    job.id,
                    record.scheduled_ms,
                    at(record.scheduled_ms),
                    describe(record)
                ));
            }
        }
        for (fire, runs) in executions.iter().filter(|(f, _)| f.job == job.id) {
            for run in runs {
                let by = covered
                    .get(&fire.scheduled_ms)
                    .map_or(&[][..], Vec::as_slice);
                let truthful = by.iter().any(|r| {
                    (r.outcome.executed() && r.node == run.node) || r.outcome == Outcome::InDoubt
                });
                if !truthful {
                    let said: Vec<String> = by.iter().map(|r| describe(r)).collect();
                    out.push(format!(
                        "job {}: {} ran {fire} ({}) at {} but its records say [{}]",
                        job.id,
                        run.node,
                        at(fire.scheduled_ms),
                        at(run.start_us.div_euclid(1000)),
                        said.join(", ")
                    ));
                }
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::super::T0;
    use super::super::trace::{Execution, JobVersion};
    use super::*;
    use campanile::JobId;

    /// A job "a" with these versions: (offset from T0 in ms, schedule).
    fn job(versions: &[(i64, &str)]) -> JobHistory {
        JobHistory {
            id: JobId::new("a").unwrap(),
            versions: versions
                .iter()
                .map(|&(from_ms, schedule)| JobVersion {
                    from_ms: T0 + from_ms,
                    schedule: schedule.to_owned(),
                })
                .collect(),
            deleted_ms: None,
        }
    }

    fn record(s: i64, node: &str, outcome: Outcome) -> RunRecord {
        let fire = FireId::new(JobId::new("a").unwrap(), T0 + s * 1000);
        RunRecord::new(
            &fire,
            &campanile::coordinator::NodeId::new(node).unwrap(),
            outcome,
        )
    }

    fn range(first_s: i64, last_s: i64, count: u32) -> RunRecord {
        let mut r = record(first_s, "node-2", Outcome::Misfired);
        r.count = count;
        r.last_scheduled_ms = Some(T0 + last_s * 1000);
        r
    }

    fn ran(seq: usize, s: i64, node: &str) -> Execution {
        Execution {
            seq,
            fire: FireId::new(JobId::new("a").unwrap(), T0 + s * 1000),
            node: node.to_owned(),
            attempt: 1,
            start_us: (T0 + s * 1000) * 1000,
            end_us: None,
        }
    }

    /// Every second from T0 to T0 + 6 s: 1 and 2 ran on node-1, 3..=5 misfired as one range, 6 was in doubt.
    fn clean() -> Observed {
        let records = vec![
            record(1, "node-1", Outcome::Succeeded),
            record(2, "node-1", Outcome::Failed),
            range(3, 5, 3),
            record(6, "node-2", Outcome::InDoubt),
        ];
        Observed {
            jobs: vec![job(&[(0, "* * * * * *")])],
            records: [(JobId::new("a").unwrap(), records)].into(),
            executions: vec![
                ran(0, 1, "node-1"),
                ran(1, 2, "node-1"),
                ran(2, 6, "node-1"),
            ],
            end_ms: T0 + 6500,
            ..Observed::default()
        }
    }

    #[test]
    fn a_complete_truthful_ledger_passes() {
        assert_eq!(check(&clean()), Vec::<String>::new());
    }

    #[test]
    fn an_injected_missing_record_is_reported() {
        let mut observed = clean();
        let a = JobId::new("a").unwrap();
        observed.records.get_mut(&a).unwrap().remove(3);
        let violations = check(&observed);
        assert!(
            violations
                .iter()
                .any(|v| v.contains(&format!("instant {} ", T0 + 6000))
                    && v.contains("no run record")),
            "{violations:?}"
        );
    }

    #[test]
    fn an_instant_recorded_twice_or_a_range_with_the_wrong_count_is_reported() {
        let mut observed = clean();
        let a = JobId::new("a").unwrap();
        observed
            .records
            .get_mut(&a)
            .unwrap()
            .push(record(4, "node-3", Outcome::Skipped));
        let violations = check(&observed);
        assert!(
            violations
                .iter()
                .any(|v| v.contains("accounted for 2 times")),
            "{violations:?}"
        );

        let mut observed = clean();
        observed.records.get_mut(&a).unwrap()[2] = range(3, 5, 2);
        let violations = check(&observed);
        assert!(
            violations
                .iter()
                .any(|v| v.contains("matches none of its schedules")),
            "{violations:?}"
        );
    }

    #[test]
    fn records_that_contradict_the_handlers_log_are_reported() {
        let mut observed = clean();
        // node-2 ran 4, yet 4 is recorded as misfired; node-1's record of 2 has no execution behind it.
        observed.executions.push(ran(3, 4, "node-2"));
        observed.executions.remove(1);
        let violations = check(&observed);
        assert_eq!(violations.len(), 2, "{violations:?}");
        assert!(
            violations.iter().any(|v| v.contains("node-2 ran a@")),
            "{violations:?}"
        );
        assert!(
            violations.iter().any(|v| v.contains("never ran it there")),
            "{violations:?}"
        );
    }

    #[test]
    fn an_update_owes_the_new_schedule_from_the_next_instant() {
        // Every 2 s until T0 + 3.5 s, then every second.
        let history = job(&[(0, "*/2 * * * * *"), (3500, "* * * * * *")]);
        let owed: Vec<i64> = history
            .owed(T0 + 6000)
            .into_iter()
            .map(|t| (t - T0) / 1000)
            .collect();
        assert_eq!(owed, [2, 4, 5, 6]);
        let allowed: Vec<i64> = history
            .allowed(T0 + 6000)
            .into_iter()
            .map(|t| (t - T0) / 1000)
            .collect();
        assert_eq!(allowed, [2, 4, 5, 6]);

        // Every second until T0 + 3.5 s, then every 2 s: the odd instants after the update may still be fired
        // by an owner that has not seen the update yet, but are not owed.
        let history = job(&[(0, "* * * * * *"), (3500, "*/2 * * * * *")]);
        let seconds = |set: std::collections::BTreeSet<i64>| -> Vec<i64> {
            set.into_iter().map(|t| (t - T0) / 1000).collect()
        };
        assert_eq!(seconds(history.owed(T0 + 6000)), [1, 2, 3, 4, 6]);
        assert_eq!(seconds(history.allowed(T0 + 6000)), [1, 2, 3, 4, 5, 6]);
    }

    #[test]
    fn a_misfired_range_may_span_a_schedule_change() {
        // Every 2 s until T0 + 3.5 s, then every second: one range of 2, 4, 5, 6 accounts for all four.
        let history = job(&[(0, "*/2 * * * * *"), (3500, "* * * * * *")]);
        let observed = Observed {
            jobs: vec![history],
            records: [(JobId::new("a").unwrap(), vec![range(2, 6, 4)])].into(),
            end_ms: T0 + 6500,
            ..Observed::default()
        };
        assert_eq!(check(&observed), Vec::<String>::new());
        // The same range with a count that fits no sequence is still reported.
        let mut wrong = observed.clone();
        wrong.records.get_mut(&JobId::new("a").unwrap()).unwrap()[0].count = 2;
        assert!(
            check(&wrong)
                .iter()
                .any(|v| v.contains("matches none of its schedules"))
        );
    }
}
