//! Invariant: no fire id is executed twice, cluster-wide (at-most-once delivery; every simulated job uses it).
//!
//! Checked on the handler's log, not on the run records: the store keeps one record per fire id whatever
//! happens, so only the log can show a target that was started twice.

use std::collections::BTreeMap;

use campanile::FireId;

use super::trace::{Execution, Observed, at};

/// The violations: one line per fire id started more than once (first attempts only: retries of one fire
/// share its id by design).
pub fn check(observed: &Observed) -> Vec<String> {
    let mut starts: BTreeMap<&FireId, Vec<&Execution>> = BTreeMap::new();
    for execution in observed.executions.iter().filter(|e| e.attempt == 1) {
        starts.entry(&execution.fire).or_default().push(execution);
    }
    starts
        .into_iter()
        .filter(|(_, runs)| runs.len() > 1)
        .map(|(fire, runs)| {
            let each: Vec<String> = runs
                .iter()
                .map(|e| format!("{} at {}", e.node, at(e.start_us.div_euclid(1000))))
                .collect();
            format!(
                "fire {fire} ({}) executed {} times: {}",
                at(fire.scheduled_ms),
                runs.len(),
                each.join(", ")
            )
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::super::T0;
    use super::super::trace::Execution;
    use super::*;

    fn run(seq: usize, node: &str, job: &str, scheduled_s: i64, start_ms: i64) -> Execution {
        Execution {
            seq,
            fire: FireId::new(campanile::JobId::new(job).unwrap(), T0 + scheduled_s * 1000),
            node: node.to_owned(),
            attempt: 1,
            start_us: (T0 + start_ms) * 1000,
            end_us: Some((T0 + start_ms + 10) * 1000),
        }
    }

    #[test]
    fn distinct_fires_pass() {
        let observed = Observed {
            executions: vec![
                run(0, "node-1", "a", 1, 1000),
                run(1, "node-1", "b", 1, 1000),
                run(2, "node-2", "a", 2, 2000),
            ],
            ..Observed::default()
        };
        assert_eq!(check(&observed), Vec::<String>::new());
    }

    #[test]
    fn an_injected_double_fire_is_reported() {
        let mut observed = Observed {
            executions: vec![
                run(0, "node-1", "a", 1, 1000),
                run(1, "node-1", "a", 2, 2000),
            ],
            ..Observed::default()
        };
        // A stale owner resuming after a freeze runs an instant the new owner ran.
        observed.executions.push(run(2, "node-2", "a", 2, 9000));
        let violations = check(&observed);
        assert_eq!(violations.len(), 1, "{violations:?}");
        assert!(
            violations[0].contains(&format!("a@{}", T0 + 2000))
                && violations[0].contains("executed 2 times")
                && violations[0].contains("node-1")
                && violations[0].contains("node-2"),
            "{violations:?}"
        );
    }

    #[test]
    fn a_fire_started_twice_on_one_node_is_reported_and_retries_are_not() {
        let mut retry = run(1, "node-1", "a", 1, 1500);
        retry.attempt = 2;
        let observed = Observed {
            executions: vec![
                run(0, "node-1", "a", 1, 1000),
                retry,
                run(2, "node-1", "b", 1, 1000),
                run(3, "node-1", "b", 1, 1200),
            ],
            ..Observed::default()
        };
        let violations = check(&observed);
        assert_eq!(violations.len(), 1, "{violations:?}");
        assert!(violations[0].starts_with("fire b@"), "{violations:?}");
    }
}
