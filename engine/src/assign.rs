//! Placement of jobs on live nodes, as the leader publishes it. Pure.
//!
//! A thin adapter from the engine's types (jobs, members) to the minimal-move rebalancer
//! ([`crate::rebalance::rebalance`], `docs/rebalancer.md`): jobs keep their owner where balance allows, a node
//! that joins receives exactly the jobs needed to even out the loads, the jobs of a node that left are spread
//! over the others, and nothing moves when nothing changed. The leader passes only the members that are not
//! draining, so a leaving node is given nothing.

use std::borrow::Cow;
use std::collections::BTreeMap;

use crate::coordinator::{Member, NodeId};
use crate::job::{Job, JobId};
use crate::rebalance::{JobLoad, NodeSlot, rebalance};

/// Places every job on an eligible live member; jobs no member can take (labels, capacity) are left out
/// (unowned until a member that can take them joins).
pub fn place<'a>(
    jobs: impl IntoIterator<Item = &'a Job>,
    members: &[Member],
    previous: Option<&BTreeMap<JobId, NodeId>>,
) -> BTreeMap<JobId, NodeId> {
    // Borrow ids and labels: a million `Arc` clones (and drops) would each miss the cache on a lock-prefixed
    // increment. An empty label set is passed by value so that the rebalancer need not read the job again.
    let loads: Vec<JobLoad<'a>> = jobs
        .into_iter()
        .map(|job| {
            let load = JobLoad::borrowed(&job.id).with_weight(job.spec.weight);
            if job.spec.node_labels.is_empty() {
                load
            } else {
                load.with_labels(Cow::Borrowed(&job.spec.node_labels))
            }
        })
        .collect();
    let nodes: Vec<NodeSlot> = members
        .iter()
        .map(|m| {
            let slot = NodeSlot::new(m.node.id.clone()).with_labels(m.node.labels.clone());
            match m.node.capacity {
                Some(capacity) => slot.with_capacity(capacity),
                None => slot,
            }
        })
        .collect();
    let empty = BTreeMap::new();
    rebalance(&loads, &nodes, previous.unwrap_or(&empty)).owners
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use super::*;
    use crate::coordinator::{NodeInfo, SessionId};
    use crate::job::{HandlerTarget, JobSpec, Target};
    use crate::schedule::Schedule;

    fn job(i: usize) -> Job {
        let spec = JobSpec::new(
            "j",
            Schedule::parse("@hourly").unwrap(),
            Target::Handler(HandlerTarget::new("h")),
        );
        Job::new(JobId::new(format!("job-{i:02}")).unwrap(), spec, 0)
    }

    fn member(id: &str) -> Member {
        Member {
            node: NodeInfo::new(NodeId::new(id).unwrap()),
            session: SessionId(1),
            draining: false,
        }
    }

    fn loads(owners: &BTreeMap<JobId, NodeId>) -> BTreeMap<String, usize> {
        owners.values().fold(BTreeMap::new(), |mut m, n| {
            *m.entry(n.to_string()).or_default() += 1;
            m
        })
    }

    #[test]
    fn a_joining_node_gets_its_share_and_only_that_moves() {
        let jobs: Vec<Job> = (0..10).map(job).collect();
        let two = [member("a"), member("b")];
        let before = place(&jobs, &two, None);
        assert_eq!(
            loads(&before).values().copied().collect::<Vec<_>>(),
            vec![5, 5]
        );
        let three = [member("a"), member("b"), member("c")];
        let after = place(&jobs, &three, Some(&before));
        let moved = jobs
            .iter()
            .filter(|j| before[&j.id] != after[&j.id])
            .count();
        assert_eq!(
            moved, 3,
            "two consumers to three with 10 jobs moves 3: {after:?}"
        );
        let mut counts: Vec<usize> = loads(&after).values().copied().collect();
        counts.sort();
        assert_eq!(counts, vec![3, 3, 4]);
        assert_eq!(
            place(&jobs, &three, Some(&after)),
            after,
            "nothing changed, nothing moves"
        );
    }

    #[test]
    fn jobs_go_only_to_nodes_with_their_labels() {
        let mut labelled = job(1);
        labelled.spec_mut().node_labels = BTreeSet::from(["region=eu".to_owned()]);
        let mut eu = member("eu");
        eu.node.labels = BTreeSet::from(["region=eu".to_owned()]);
        let owners = place([&labelled, &job(2)], &[member("us"), eu], None);
        assert_eq!(owners[&labelled.id].as_str(), "eu");
        let owners = place([&labelled], &[member("us")], None);
        assert!(owners.is_empty(), "no eligible node: left unowned");
    }
}
