//! The leader's placement: what assignment to publish, by a full rebalance or, when only new unconstrained
//! jobs arrived, by putting each on the least loaded member.

use std::cmp::Reverse;
use std::collections::{BTreeMap, BinaryHeap};

use super::State;
use crate::coordinator::{Member, NodeId};
use crate::job::{Job, JobId};

impl State {
    /// The placement to publish: a full rebalance ([`crate::assign::place`]) after any change it must weigh,
    /// or, when the only change is new jobs that any member may take (no node labels, weight 1, no member
    /// with a capacity), the last assignment plus each new job on the least loaded member (ties by node id).
    ///
    /// The incremental path keeps the rebalancer's guarantees: with unit weights and no labels or capacities,
    /// "balanced" is loads that differ by at most one, which least-loaded insertion preserves, so a later full
    /// rebalance of the result moves nothing. It costs a copy of the assignment instead of a rebalance of
    /// every job, which matters when jobs arrive in bulk (`put_jobs`) and the leader places them every
    /// `rebalance_delay`. `None` when the result equals the last assignment.
    pub(super) fn place(&mut self, placeable: &[Member]) -> Option<BTreeMap<JobId, NodeId>> {
        let previous = self.assignment.as_ref().map(|a| &a.owners);
        let incremental = !self.replace_all
            && self.constrained == 0
            && placeable.iter().all(|m| m.node.capacity.is_none());
        if let (true, Some(previous)) = (incremental, previous) {
            let wanted = |id: &JobId| self.jobs.contains(id) && !previous.contains_key(id);
            if !self.fresh.iter().any(wanted) {
                return None;
            }
            // Counted per job of the last assignment, in a list of the few members: `NodeId` equality looks
            // at the pointer first (an owner's id is one `Arc` shared by all its jobs), where an ordered map
            // would compare the text of the ids for every job.
            let mut loads: Vec<(&NodeId, usize)> =
                placeable.iter().map(|m| (&m.node.id, 0)).collect();
            let mut last = 0;
            for owner in previous.values() {
                if loads.get(last).is_none_or(|(node, _)| *node != owner) {
                    match loads.iter().position(|(node, _)| *node == owner) {
                        Some(at) => last = at,
                        // An owner that is no longer placeable: only a full rebalance may move its jobs.
                        None => return self.place_all(placeable),
                    }
                }
                loads[last].1 += 1;
            }
            let mut heap: BinaryHeap<Reverse<(usize, &NodeId)>> = loads
                .into_iter()
                .map(|(node, load)| Reverse((load, node)))
                .collect();
            let mut owners = previous.clone();
            for id in &self.fresh {
                if !self.jobs.contains(id) {
                    continue;
                }
                let std::collections::btree_map::Entry::Vacant(slot) = owners.entry(id.clone())
                else {
                    continue;
                };
                let Some(Reverse((load, node))) = heap.pop() else {
                    return self.place_all(placeable);
                };
                slot.insert(node.clone());
                heap.push(Reverse((load + 1, node)));
            }
            return Some(owners);
        }
        self.place_all(placeable)
    }

    /// A full rebalance of every job; `None` when it equals the last assignment.
    pub(super) fn place_all(&mut self, placeable: &[Member]) -> Option<BTreeMap<JobId, NodeId>> {
        self.replace_all = false;
        let previous = self.assignment.as_ref().map(|a| &a.owners);
        let owners =
            crate::assign::place(self.jobs.jobs().map(|j| j.as_ref()), placeable, previous);
        (previous != Some(&owners)).then_some(owners)
    }
}

/// Whether a job's placement depends on more than the count of jobs per node: node labels or a weight.
pub(super) fn is_constrained(job: &Job) -> bool {
    !job.spec.node_labels.is_empty() || job.spec.weight != 1
}
