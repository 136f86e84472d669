//! The rebalancer: which live node owns each job, moving as few jobs as balance needs. Pure: no IO, no clock.
//!
//! [`rebalance`] takes the jobs (weight, required node labels), the live nodes (labels, optional capacity) and
//! the previous assignment, and returns a [`Plan`]. What it promises, in order of priority:
//!
//! 1. Every job gets exactly one owner among the nodes eligible for it (job labels ⊆ node labels) whose
//!    capacity (total weight) it fits; a job is left in [`Plan::unplaced`] only when no such node has room.
//!    With unit weights as many jobs as possible are placed.
//! 2. Loads are as even as eligibility and capacities allow. Unit weights: the sorted load vector is the
//!    lexicographically smallest possible (so max − min ≤ 1 when every node may take every job). Weighted jobs
//!    that may run anywhere: every load lies within `W/n ± w_max`.
//! 3. Among the assignments that are that balanced, the fewest jobs leave a node that is still live and still
//!    eligible ([`Plan::moves`]). With unit weights this is the exact minimum; without labels and capacities it
//!    is `Σ_v max(0, a_v − q) − min(r, #{v : a_v > q})` (`q = ⌊J/n⌋`, `r = J mod n`, `a_v` = jobs that may stay
//!    on v). Weighted jobs that may run anywhere move at most one job per donor node more than a lower bound on
//!    any assignment within `W/n ± w_max` (property-tested, with the exhaustive minimum on small cases; not
//!    proven). Without labels a node that gives jobs away receives none; with labels (unit weights) it receives
//!    none that could have taken the place of a job it gave away.
//! 4. Nothing changed → nothing moves; `rebalance` of its own output is that output; the input order of
//!    jobs and nodes does not matter.
//!
//! Weighted jobs under labels or capacities are a packing problem: there the loads are as even as a greedy
//! packing toward the flow's targets gets them, with no bound promised.
//!
//! How: jobs are grouped by the set of nodes eligible for them, a per-group target load is computed for each
//! node (closed form for one group, a min-cost flow with a convex balance cost for several), and the targets
//! are realized by keeping sticky jobs, shedding the surplus and placing the orphans. `docs/rebalancer.md`
//! gives the algorithm, its proofs in outline, its complexity and measured figures.

mod flow;
mod input;
mod quota;
mod realize;

#[cfg(test)]
mod tests;

use std::borrow::Cow;
use std::collections::{BTreeMap, BTreeSet};

use crate::coordinator::NodeId;
use crate::job::JobId;

/// A job as the rebalancer sees it. May borrow its id and labels, so that building one per stored job touches
/// neither a reference count nor the allocator (with a million jobs, each cache miss on a job's `Arc` costs more
/// than the rebalancing itself).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JobLoad<'a> {
    /// The job's id; ids are unique (a repeated id keeps its lowest `(weight, labels)`).
    pub id: Cow<'a, JobId>,
    /// Its load weight; 0 counts as 1.
    pub weight: u32,
    /// Labels a node must carry to own it.
    pub labels: Cow<'a, BTreeSet<String>>,
}

impl JobLoad<'static> {
    /// A job of weight 1 that any node may own.
    pub fn new(id: JobId) -> Self {
        Self {
            id: Cow::Owned(id),
            weight: 1,
            labels: Cow::Owned(BTreeSet::new()),
        }
    }
}

impl<'a> JobLoad<'a> {
    /// A job of weight 1 that any node may own, borrowing its id.
    pub fn borrowed(id: &'a JobId) -> Self {
        Self {
            id: Cow::Borrowed(id),
            weight: 1,
            labels: Cow::Owned(BTreeSet::new()),
        }
    }

    /// The same job with another weight.
    pub fn with_weight(self, weight: u32) -> Self {
        Self { weight, ..self }
    }

    /// The same job requiring these node labels.
    pub fn with_labels<'b>(self, labels: impl Into<Cow<'b, BTreeSet<String>>>) -> JobLoad<'b>
    where
        'a: 'b,
    {
        JobLoad {
            id: self.id,
            weight: self.weight,
            labels: labels.into(),
        }
    }
}

/// A live node as the rebalancer sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NodeSlot {
    /// The node's id; ids are unique (a repeated id keeps its lowest `(labels, capacity)`).
    pub id: NodeId,
    /// Labels it carries.
    pub labels: BTreeSet<String>,
    /// Most total job weight it accepts; unlimited if absent.
    pub capacity: Option<u64>,
}

impl NodeSlot {
    /// A node without labels or capacity.
    pub fn new(id: NodeId) -> Self {
        Self {
            id,
            labels: BTreeSet::new(),
            capacity: None,
        }
    }

    /// The same node with these labels.
    pub fn with_labels(self, labels: BTreeSet<String>) -> Self {
        Self { labels, ..self }
    }

    /// The same node accepting at most this total weight.
    pub fn with_capacity(self, capacity: u64) -> Self {
        Self {
            capacity: Some(capacity),
            ..self
        }
    }
}

/// The outcome of one rebalance.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Plan {
    /// The owner of every placed job.
    pub owners: BTreeMap<JobId, NodeId>,
    /// Jobs that leave a node that is still live and still eligible for them: the moves the rebalancer chose
    /// for balance (or because a capacity shrank). Orphans of dead nodes and new jobs are placed, not moved.
    pub moves: usize,
    /// Jobs whose previous owner is still live but no longer eligible (labels changed): they must move and are
    /// not counted in `moves`.
    pub evicted: usize,
    /// Jobs that no eligible node has room for, in id order.
    pub unplaced: Vec<JobId>,
}

/// Most extra passes for weighted jobs under labels or capacities.
const MAX_SETTLE_PASSES: usize = 16;

/// Whether one pass already gives a fixed point of [`rebalance`]: unit weights reach their targets exactly (the
/// optimum, which a second pass keeps), and weights on a single group without capacities end inside bands that
/// the next pass's targets still contain (docs/rebalancer.md has both arguments).
fn settles_at_once(problem: &input::Problem<'_>) -> bool {
    problem.groups.iter().all(|g| g.w_max == 1)
        || (problem.groups.len() == 1 && problem.capacity.iter().all(|&c| c == i64::MAX))
}

/// Weighted jobs under labels or capacities: packing can leave a node outside its band, and a pass from that
/// result may see targets that fit it better and move jobs again. So pass again from each result until one
/// repeats. A fixed point is the answer; on a cycle (a job that fits two places equally badly, handed back and
/// forth) the answer is the cycle's least member in job order, which is also what a pass from any member of the
/// cycle reaches. Either way `rebalance` of the answer is the answer.
fn settle(problem: &input::Problem<'_>, first: Vec<u32>) -> Vec<u32> {
    let mut seen = vec![first];
    for _ in 0..MAX_SETTLE_PASSES {
        let last = seen.last().expect("not empty");
        let next = assign(&problem.with_holders(last));
        if let Some(at) = seen.iter().position(|s| *s == next) {
            return seen.swap_remove(
                (at..seen.len())
                    .min_by(|&a, &b| seen[a].cmp(&seen[b]))
                    .expect("a cycle has a member"),
            );
        }
        seen.push(next);
    }
    seen.pop().expect("not empty")
}

/// Targets, then owners, per job in canonical order.
fn assign(problem: &input::Problem<'_>) -> Vec<u32> {
    let targets = if problem.groups.len() <= 1 {
        problem
            .groups
            .iter()
            .map(|group| quota::targets(group, &problem.capacity))
            .collect()
    } else {
        flow::targets(&problem.groups, &problem.capacity)
    };
    realize::realize(problem, &targets)
}

/// Assigns every job to a live, eligible node with room, as evenly as possible, keeping as many jobs as possible
/// where `previous` put them. See the module docs for the exact promises.
pub fn rebalance(
    jobs: &[JobLoad<'_>],
    nodes: &[NodeSlot],
    previous: &BTreeMap<JobId, NodeId>,
) -> Plan {
    let problem = input::Problem::new(jobs, nodes, previous);
    let mut owner = assign(&problem);
    if !settles_at_once(&problem) {
        owner = settle(&problem, owner);
    }
    problem.plan(&owner)
}
