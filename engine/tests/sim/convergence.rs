//! Invariant: after the faults heal, the assignment converges to balanced within a bounded time and stays so.
//!
//! Balanced, for the simulation's jobs (unit weights, no labels): every node of the cluster is a member, every
//! job has an owner among the members, and the members' loads differ by at most 1 (design.md, "Assignment").
//! The state is the coordinator's: the live members and the last published assignment, as logged at every
//! change ([`Observed::snapshots`]). It must be balanced from [`Observed::converged_by_ms`] at the latest
//! until the final shutdown began ([`Observed::end_ms`]).

use std::collections::{BTreeMap, BTreeSet};

use campanile::JobId;

use super::trace::{Observed, Snapshot, at};

/// Why `snapshot` is not balanced for `jobs` on `nodes`, if it is not.
fn unbalanced(
    snapshot: &Snapshot,
    nodes: &BTreeSet<String>,
    jobs: &BTreeSet<&JobId>,
) -> Option<String> {
    if &snapshot.members != nodes {
        let missing: Vec<&String> = nodes.difference(&snapshot.members).collect();
        return Some(format!("not every node is a member (missing {missing:?})"));
    }
    let mut loads: BTreeMap<&str, usize> = nodes.iter().map(|n| (n.as_str(), 0)).collect();
    for job in jobs {
        match snapshot.owners.get(*job) {
            Some(owner) => match loads.get_mut(owner.as_str()) {
                Some(load) => *load += 1,
                None => return Some(format!("job {job} is owned by non-member {owner}")),
            },
            None => return Some(format!("job {job} has no owner")),
        }
    }
    let (min, max) = (
        loads.values().min().copied().unwrap_or(0),
        loads.values().max().copied().unwrap_or(0),
    );
    (max - min > 1).then(|| format!("loads differ by {}: {loads:?}", max - min))
}

/// The violations (at most one line).
pub fn check(observed: &Observed) -> Vec<String> {
    let jobs: BTreeSet<&JobId> = observed
        .jobs
        .iter()
        .filter(|j| j.deleted_ms.is_none())
        .map(|j| &j.id)
        .collect();
    // The state in effect when the faults healed, then every later one up to the final shutdown.
    let first = observed
        .snapshots
        .iter()
        .rposition(|s| s.at_ms <= observed.healed_ms)
        .unwrap_or(0);
    let states: Vec<&Snapshot> = observed.snapshots[first..]
        .iter()
        .filter(|s| s.at_ms <= observed.end_ms)
        .collect();
    let Some(last) = states.last() else {
        return vec!["no members or assignment were observed".to_owned()];
    };
    if let Some(why) = unbalanced(last, &observed.nodes, &jobs) {
        return vec![format!(
            "the assignment never converged after the heal at {}: since {} (version {:?}) {why}",
            at(observed.healed_ms),
            at(last.at_ms),
            last.version
        )];
    }
    // Balanced since the state that follows the last unbalanced one.
    let since = states
        .iter()
        .rposition(|s| unbalanced(s, &observed.nodes, &jobs).is_some())
        .map_or(observed.healed_ms, |i| states[i + 1].at_ms)
        .max(observed.healed_ms);
    if since > observed.converged_by_ms {
        return vec![format!(
            "the assignment converged only at {}, later than the bound {} (healed at {})",
            at(since),
            at(observed.converged_by_ms),
            at(observed.healed_ms)
        )];
    }
    Vec::new()
}

#[cfg(test)]
mod tests {
    use super::super::T0;
    use super::super::trace::{JobHistory, JobVersion};
    use super::*;

    fn observed(snapshots: Vec<Snapshot>) -> Observed {
        Observed {
            nodes: ["node-1", "node-2", "node-3"]
                .map(str::to_owned)
                .into_iter()
                .collect(),
            jobs: (1..=7)
                .map(|i| JobHistory {
                    id: JobId::new(format!("job-{i}")).unwrap(),
                    versions: vec![JobVersion {
                        from_ms: T0,
                        schedule: "* * * * * *".to_owned(),
                    }],
                    deleted_ms: None,
                })
                .collect(),
            snapshots,
            healed_ms: T0 + 10_000,
            converged_by_ms: T0 + 20_000,
            end_ms: T0 + 30_000,
            ..Observed::default()
        }
    }

    /// Members `members` (node numbers), jobs 1..=7 owned by `owners[i - 1]`.
    fn snapshot(at_s: i64, members: &[u8], owners: [u8; 7]) -> Snapshot {
        Snapshot {
            at_ms: T0 + at_s * 1000,
            members: members.iter().map(|n| format!("node-{n}")).collect(),
            version: Some(at_s as u64),
            owners: owners
                .iter()
                .enumerate()
                .map(|(i, n)| {
                    (
                        JobId::new(format!("job-{}", i + 1)).unwrap(),
                        format!("node-{n}"),
                    )
                })
                .collect(),
        }
    }

    #[test]
    fn balanced_within_the_bound_passes() {
        let o = observed(vec![
            snapshot(5, &[1, 2], [1, 1, 1, 1, 2, 2, 2]),
            // node-3 rejoins after the heal; the rebalancer moves two jobs to it.
            snapshot(12, &[1, 2, 3], [1, 1, 1, 1, 2, 2, 2]),
            snapshot(13, &[1, 2, 3], [1, 1, 3, 1, 2, 3, 2]),
        ]);
        assert_eq!(check(&o), Vec::<String>::new());
    }

    #[test]
    fn a_join_that_never_gets_jobs_is_reported() {
        // What the sticky placement does: the joined node stays empty.
        let o = observed(vec![
            snapshot(5, &[1, 2], [1, 1, 1, 1, 2, 2, 2]),
            snapshot(12, &[1, 2, 3], [1, 1, 1, 1, 2, 2, 2]),
        ]);
        let violations = check(&o);
        assert_eq!(violations.len(), 1, "{violations:?}");
        assert!(
            violations[0].contains("never converged") && violations[0].contains("differ by 4"),
            "{violations:?}"
        );
    }

    #[test]
    fn converging_late_or_missing_a_member_or_an_owner_is_reported() {
        let late = observed(vec![
            snapshot(12, &[1, 2, 3], [1, 1, 1, 1, 2, 2, 2]),
            snapshot(25, &[1, 2, 3], [1, 1, 3, 1, 2, 3, 2]),
        ]);
        assert!(check(&late)[0].contains("converged only at +25.000s"));

        let missing = observed(vec![snapshot(12, &[1, 2], [1, 1, 1, 2, 2, 2, 2])]);
        assert!(check(&missing)[0].contains("not every node is a member"));

        let mut orphan = snapshot(12, &[1, 2, 3], [1, 1, 3, 1, 2, 3, 2]);
        orphan.owners.remove(&JobId::new("job-7").unwrap());
        assert!(check(&observed(vec![orphan]))[0].contains("job-7 has no owner"));
    }
}
