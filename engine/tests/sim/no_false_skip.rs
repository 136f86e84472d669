//! Invariant: `overlap: skip` skips an instant only while a run of its job can be going.
//!
//! A `skipped` record with an `overlap: skip` reason says that the instant came while a previous run of the
//! job was still going on the node that wrote it. The handler's log says when every run really started and
//! ended, so the checker can tell: a skip of instant `t` on node `n` is justified by a run of the same job on
//! `n` that had started by `t` and had not ended before `t`. A run whose end the log does not have (its node
//! was killed under it, or it was cancelled) may have gone on until its start plus the run timeout, the
//! longest a target may run; so it justifies skips up to then. So does a run on a worker whose record is
//! `in_doubt` (its node found the worker lost mid-run, or its result lost with its link, or a successor
//! found that the node left no record), even if the worker's log has its end: only the worker's result tells
//! its node that the run ended, and until the node found the worker lost, the run may have been going for
//! all it could tell. A run on another node justifies a skip only if
//! the record names that node and that run's fire id (a predecessor that vanished mid-run, whose run may
//! still be going): anything else is a skip of an instant whose time came while nothing of the job ran.
//!
//! Read from the log and the records, not from the engine's own view: the bug this catches is the engine
//! believing a run is going when none is (late instants emitted together, a run's end reaching the decision
//! late).

use std::collections::BTreeMap;

use campanile::{FireId, JobId, Outcome, RunRecord};

use super::trace::{Observed, at};
use super::workers::on_workers;

/// One run of a fire on one node: its first attempt's start and its last attempt's end (µs), `None` if the
/// log has no end for it.
struct Span<'a> {
    fire: &'a FireId,
    node: &'a str,
    start_us: i64,
    end_us: Option<i64>,
}

/// Whether a record is an overlap skip (not a fenced start, not a `buffer_one` replacement).
fn is_overlap_skip(record: &RunRecord) -> bool {
    record.outcome == Outcome::Skipped
        && record
            .reason
            .as_deref()
            .is_some_and(|r| r.starts_with("overlap: skip"))
}

/// The violations, one line each.
pub fn check(observed: &Observed) -> Vec<String> {
    let timeout_us = i64::try_from(observed.run_timeout.as_micros()).unwrap_or(i64::MAX);
    // Runs on workers whose end never reached their node.
    let lost_track: std::collections::BTreeSet<FireId> = observed
        .records
        .values()
        .flatten()
        .filter(|r| r.outcome == Outcome::InDoubt && on_workers(r.job.as_str()))
        .map(RunRecord::fire_id)
        .collect();
    let mut spans: BTreeMap<(&FireId, &str), Span<'_>> = BTreeMap::new();
    for e in &observed.executions {
        let span = spans.entry((&e.fire, e.node.as_str())).or_insert(Span {
            fire: &e.fire,
            node: &e.node,
            start_us: e.start_us,
            end_us: e.end_us,
        });
        span.start_us = span.start_us.min(e.start_us);
        span.end_us = match (span.end_us, e.end_us) {
            (Some(a), Some(b)) if !lost_track.contains(&e.fire) => Some(a.max(b)),
            _ => None,
        };
    }
    let mut by_job: BTreeMap<&JobId, Vec<&Span<'_>>> = BTreeMap::new();
    for span in spans.values() {
        by_job.entry(&span.fire.job).or_default().push(span);
    }
    let mut out = Vec::new();
    for record in observed
        .records
        .values()
        .flatten()
        .filter(|r| is_overlap_skip(r))
    {
        let t_us = record.scheduled_ms * 1000;
        let reason = record.reason.as_deref().unwrap_or_default();
        let going = by_job.get(&record.job).into_iter().flatten().any(|span| {
            let may_end_us = span
                .end_us
                .unwrap_or_else(|| span.start_us.saturating_add(timeout_us));
            let named = span.node == record.node
                || (reason.contains(span.node) && reason.contains(&span.fire.to_string()));
            named
                && span.fire.scheduled_ms != record.scheduled_ms
                && span.start_us <= t_us
                && t_us <= may_end_us
        });
        if !going {
            let near: Vec<String> = by_job
                .get(&record.job)
                .into_iter()
                .flatten()
                .filter(|s| (s.start_us - t_us).abs() <= 5_000_000)
                .map(|s| {
                    format!(
                        "{} on {} {}..{}",
                        at(s.fire.scheduled_ms),
                        s.node,
                        at(s.start_us.div_euclid(1000)),
                        s.end_us.map_or("-".to_owned(), |e| at(e.div_euclid(1000)))
                    )
                })
                .collect();
            out.push(format!(
                "{} ({}) recorded skipped by {} ({reason:?}) while no run of the job was going there; runs \
                 within 5 s: [{}]",
                record.fire_id(),
                at(record.scheduled_ms),
                record.node,
                near.join(", ")
            ));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::super::T0;
    use super::super::trace::Execution;
    use super::*;

    fn fire(scheduled_s: i64) -> FireId {
        FireId::new(JobId::new("a").unwrap(), T0 + scheduled_s * 1000)
    }

    fn run(
        seq: usize,
        node: &str,
        scheduled_s: i64,
        start_ms: i64,
        end_ms: Option<i64>,
    ) -> Execution {
        Execution {
            seq,
            fire: fire(scheduled_s),
            node: node.to_owned(),
            attempt: 1,
            start_us: (T0 + start_ms) * 1000,
            end_us: end_ms.map(|e| (T0 + e) * 1000),
        }
    }

    fn skipped(node: &str, scheduled_s: i64, reason: &str) -> RunRecord {
        let mut record = RunRecord::new(
            &fire(scheduled_s),
            &campanile::coordinator::NodeId::new(node).unwrap(),
            Outcome::Skipped,
        );
        record.reason = Some(reason.to_owned());
        record
    }

    fn observed(executions: Vec<Execution>, records: Vec<RunRecord>) -> Observed {
        Observed {
            executions,
            records: BTreeMap::from([(JobId::new("a").unwrap(), records)]),
            run_timeout: Duration::from_secs(5),
            ..Observed::default()
        }
    }

    const SKIP: &str = "overlap: skip (previous run still going)";

    #[test]
    fn a_skip_while_a_run_is_going_on_the_node_passes() {
        let observed = observed(
            vec![
                // A slow run of instant 1, from 1.000 to 3.500: instants 2 and 3 come while it goes.
                run(0, "node-1", 1, 1000, Some(3500)),
                // A run killed with its node: it may have gone on until 2.000 + 5 s.
                run(1, "node-1", 2, 2000, None),
            ],
            vec![
                skipped("node-1", 2, SKIP),
                skipped("node-1", 3, SKIP),
                skipped("node-1", 6, SKIP),
            ],
        );
        assert_eq!(check(&observed), Vec::<String>::new());
    }

    #[test]
    fn a_false_skip_is_reported() {
        let observed = observed(
            vec![
                // Instants 1, 2 and 3 were emitted together at 3.100: instant 1 ran for 5 ms, and 2 and 3 were
                // skipped, although nothing of the job ran at 2.000 or 3.000.
                run(0, "node-1", 1, 3100, Some(3105)),
                run(1, "node-1", 4, 4000, Some(4005)),
            ],
            vec![
                skipped("node-1", 2, SKIP),
                skipped("node-1", 3, SKIP),
                skipped("node-1", 5, SKIP),
            ],
        );
        let violations = check(&observed);
        assert_eq!(violations.len(), 3, "{violations:?}");
        assert!(
            violations[0].contains(&fire(2).to_string())
                && violations[0].contains("node-1")
                && violations[0].contains("no run of the job was going"),
            "{violations:?}"
        );
    }

    #[test]
    fn a_run_on_a_worker_in_doubt_justifies_skips_until_its_timeout() {
        // Job "c" runs on the workers. Its instant 1 ran on a worker from 1.000 to 1.500, but the result was
        // lost: it is recorded `in_doubt`, and node-1 skipped instant 2, as for all it knew the run was still
        // going.
        let worker_job = JobId::new("c").unwrap();
        assert!(on_workers(worker_job.as_str()));
        let on_worker_job = |mut observed: Observed| {
            for e in &mut observed.executions {
                e.fire = FireId::new(worker_job.clone(), e.fire.scheduled_ms);
            }
            for r in observed.records.values_mut().flatten() {
                r.job = worker_job.clone();
            }
            observed
        };
        let executions = vec![run(0, "node-1", 1, 1000, Some(1500))];
        let mut lost = skipped("node-2", 1, "claimed by node node-1 which left no record");
        lost.outcome = Outcome::InDoubt;
        let in_doubt = observed(
            executions.clone(),
            vec![lost.clone(), skipped("node-1", 2, SKIP)],
        );
        assert_eq!(
            check(&on_worker_job(in_doubt.clone())),
            Vec::<String>::new()
        );
        // Not after the longest it could have run.
        let late = observed(
            executions.clone(),
            vec![lost.clone(), skipped("node-1", 7, SKIP)],
        );
        assert_eq!(check(&on_worker_job(late)).len(), 1);
        // Not for a job on the nodes, whose node knew when its run ended.
        assert_eq!(check(&in_doubt).len(), 1);
        // Nor for a run on a worker whose end its node heard.
        let known = observed(executions, vec![skipped("node-1", 2, SKIP)]);
        assert_eq!(check(&on_worker_job(known)).len(), 1);
    }

    #[test]
    fn a_run_on_another_node_justifies_a_skip_only_when_the_reason_names_it() {
        let executions = vec![run(0, "node-1", 1, 1000, None)];
        let anonymous = observed(executions.clone(), vec![skipped("node-2", 3, SKIP)]);
        assert_eq!(check(&anonymous).len(), 1);
        let reason = format!(
            "overlap: skip (a run of the previous owner node-1, {}, may still be going until +6.000s)",
            fire(1)
        );
        let named = observed(executions.clone(), vec![skipped("node-2", 3, &reason)]);
        assert_eq!(check(&named), Vec::<String>::new());
        // Not after the longest it could have run.
        let late = observed(executions, vec![skipped("node-2", 7, &reason)]);
        assert_eq!(check(&late).len(), 1);
    }

    #[test]
    fn other_skips_are_not_overlap_skips() {
        let observed = observed(
            Vec::new(),
            vec![
                skipped(
                    "node-1",
                    2,
                    "fenced: the node could not prove its session valid",
                ),
                skipped(
                    "node-1",
                    3,
                    "overlap: buffer_one (a newer instant replaced it)",
                ),
            ],
        );
        assert_eq!(check(&observed), Vec::<String>::new());
    }
}
