//! Invariant: at any time at most one node fires a given job.
//!
//! What is observable of "firing" is the handler's log of starts, in the (virtual) order they happened. A job's
//! owner fires its instants in order, and a handover moves the job to a node that starts after everything
//! the previous owner was granted; so, taken in start order, the scheduled instants a job fires at increase
//! across nodes. If a node starts an instant at or before one that another node has already started, both
//! were acting as the job's owner at that moment: the stale one still fired after the new one had begun (a
//! frozen owner resuming, a fenced owner that did not stop). One node's own out-of-order starts (an overlap
//! policy's buffered instant) are not ownership and are not reported.
//!
//! Overlap of runs in time is not checked: a run started by a valid owner may outlive its ownership (the
//! guarantee is about who *starts* fires).

use std::collections::BTreeMap;

use campanile::JobId;

use super::trace::{Execution, Observed, at};

/// The violations, one line each.
pub fn check(observed: &Observed) -> Vec<String> {
    let mut out = Vec::new();
    // Per job: the start with the newest scheduled instant so far.
    let mut newest: BTreeMap<&JobId, &Execution> = BTreeMap::new();
    let mut starts: Vec<&Execution> = observed
        .executions
        .iter()
        .filter(|e| e.attempt == 1)
        .collect();
    starts.sort_by_key(|e| (e.start_us, e.seq));
    for start in starts {
        let job = &start.fire.job;
        match newest.get(job) {
            Some(before) if start.fire.scheduled_ms <= before.fire.scheduled_ms => {
                if before.node != start.node {
                    out.push(format!(
                        "job {job}: {} started {} ({}) at {}, after {} had started {} ({}) at {}: \
                         two nodes acted as its owner at once",
                        start.node,
                        start.fire.scheduled_ms,
                        at(start.fire.scheduled_ms),
                        at(start.start_us.div_euclid(1000)),
                        before.node,
                        before.fire.scheduled_ms,
                        at(before.fire.scheduled_ms),
                        at(before.start_us.div_euclid(1000)),
                    ));
                }
            }
            _ => {
                newest.insert(job, start);
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::super::T0;
    use super::*;
    use campanile::FireId;

    fn run(seq: usize, node: &str, scheduled_s: i64, start_ms: i64) -> Execution {
        Execution {
            seq,
            fire: FireId::new(JobId::new("a").unwrap(), T0 + scheduled_s * 1000),
            node: node.to_owned(),
            attempt: 1,
            start_us: (T0 + start_ms) * 1000,
            end_us: None,
        }
    }

    #[test]
    fn handovers_and_one_nodes_own_reordering_pass() {
        let observed = Observed {
            executions: vec![
                run(0, "node-1", 1, 1000),
                run(1, "node-1", 2, 2000),
                // node-1 crashed; node-2 took over after the session expired.
                run(2, "node-2", 7, 7000),
                // A buffered instant of node-2 starts after a newer one (overlap buffer_one): its own order.
                run(3, "node-2", 9, 9000),
                run(4, "node-2", 8, 9100),
                // Handed back to node-1 later.
                run(5, "node-1", 12, 12_000),
            ],
            ..Observed::default()
        };
        assert_eq!(check(&observed), Vec::<String>::new());
    }

    #[test]
    fn a_stale_owner_firing_after_its_successor_is_reported() {
        let observed = Observed {
            executions: vec![
                run(0, "node-1", 1, 1000),
                run(1, "node-2", 6, 6000),
                // node-1 was frozen with instant 2 in hand, and starts it when it resumes.
                run(2, "node-1", 2, 6500),
            ],
            ..Observed::default()
        };
        let violations = check(&observed);
        assert_eq!(violations.len(), 1, "{violations:?}");
        assert!(
            violations[0].contains("node-1 started")
                && violations[0].contains("after node-2 had started"),
            "{violations:?}"
        );
    }

    #[test]
    fn an_injected_double_fire_is_reported() {
        let observed = Observed {
            executions: vec![
                run(0, "node-1", 1, 1000),
                run(1, "node-1", 2, 2000),
                run(2, "node-2", 2, 2000),
            ],
            ..Observed::default()
        };
        assert_eq!(check(&observed).len(), 1);
    }
}
