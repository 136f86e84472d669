//! Exact optima of tiny problems by exhaustive search, compared with the rebalancer.
//!
//! Unit weights (with labels, capacities, dead owners): the rebalancer must reach the lexicographic optimum
//! `(most jobs placed, least Σ load², fewest moves)` over every possible assignment. Weights without labels:
//! its moves must be at most the fewest moves of any assignment with every load within `W/n ± w_max`, plus
//! the number of nodes that gave jobs away.

use std::borrow::Cow;
use std::collections::{BTreeMap, BTreeSet};

use proptest::prelude::*;

use super::*;

/// A tiny problem: node labels and capacities, job weights and labels, and the previous owner of each job
/// (an index into `0..MAX_NODE_IDS`; ids at or past `nodes.len()` are dead).
#[derive(Debug, Clone)]
pub(super) struct Tiny {
    pub nodes: Vec<(BTreeSet<String>, Option<u64>)>,
    pub jobs: Vec<(u32, BTreeSet<String>)>,
    pub previous: Vec<Option<usize>>,
}

const MAX_NODE_IDS: usize = 5;

impl Tiny {
    pub fn node_slots(&self) -> Vec<NodeSlot> {
        self.nodes
            .iter()
            .enumerate()
            .map(|(i, (labels, capacity))| NodeSlot {
                id: node_id(i),
                labels: labels.clone(),
                capacity: *capacity,
            })
            .collect()
    }

    pub fn job_loads(&self) -> Vec<JobLoad<'_>> {
        self.jobs
            .iter()
            .enumerate()
            .map(|(i, (weight, labels))| JobLoad {
                id: Cow::Owned(job_id(i)),
                weight: *weight,
                labels: Cow::Borrowed(labels),
            })
            .collect()
    }

    pub fn previous_map(&self) -> BTreeMap<JobId, NodeId> {
        self.previous
            .iter()
            .enumerate()
            .filter_map(|(j, owner)| owner.map(|o| (job_id(j), node_id(o))))
            .collect()
    }

    fn eligible(&self, j: usize, v: usize) -> bool {
        self.jobs[j].1.is_subset(&self.nodes[v].0)
    }

    /// Calls `visit` with every assignment (`None` = unplaced) that respects eligibility and capacities.
    fn each_assignment(&self, mut visit: impl FnMut(&[Option<usize>])) {
        let mut current = vec![None; self.jobs.len()];
        let mut load = vec![0_u64; self.nodes.len()];
        self.recurse(0, &mut current, &mut load, &mut visit);
    }

    fn recurse(
        &self,
        j: usize,
        current: &mut Vec<Option<usize>>,
        load: &mut Vec<u64>,
        visit: &mut impl FnMut(&[Option<usize>]),
    ) {
        if j == self.jobs.len() {
            visit(current);
            return;
        }
        current[j] = None;
        self.recurse(j + 1, current, load, visit);
        let w = u64::from(self.jobs[j].0.max(1));
        for v in 0..self.nodes.len() {
            if self.eligible(j, v) && self.nodes[v].1.is_none_or(|c| load[v] + w <= c) {
                load[v] += w;
                current[j] = Some(v);
                self.recurse(j + 1, current, load, visit);
                load[v] -= w;
            }
        }
        current[j] = None;
    }

    /// Jobs that leave a live node that is still eligible for them.
    fn moves(&self, assignment: &[Option<usize>]) -> usize {
        (0..self.jobs.len())
            .filter(|&j| match self.previous[j] {
                Some(h) if h < self.nodes.len() && self.eligible(j, h) => assignment[j] != Some(h),
                _ => false,
            })
            .count()
    }

    fn loads(&self, assignment: &[Option<usize>]) -> Vec<u64> {
        let mut load = vec![0; self.nodes.len()];
        for (j, owner) in assignment.iter().enumerate() {
            if let Some(v) = owner {
                load[*v] += u64::from(self.jobs[j].0.max(1));
            }
        }
        load
    }

    /// The assignment `plan` describes.
    fn assignment_of(&self, plan: &Plan) -> Vec<Option<usize>> {
        (0..self.jobs.len())
            .map(|j| {
                plan.owners
                    .get(&job_id(j))
                    .map(|n| (0..self.nodes.len()).find(|&v| node_id(v) == *n).unwrap())
            })
            .collect()
    }
}

/// `(placed weight, Σ load², moves)` of an assignment, to be maximized, minimized, minimized.
fn score(tiny: &Tiny, assignment: &[Option<usize>]) -> (Reverse<u64>, u64, usize) {
    let loads = tiny.loads(assignment);
    (
        Reverse(loads.iter().sum()),
        loads.iter().map(|l| l * l).sum(),
        tiny.moves(assignment),
    )
}

use std::cmp::Reverse;

pub(super) fn unit_tiny() -> impl Strategy<Value = Tiny> {
    let label_set = prop_oneof![
        3 => Just(labels(&[])),
        1 => Just(labels(&["a"])),
        1 => Just(labels(&["b"])),
        1 => Just(labels(&["a", "b"])),
    ];
    let node = (
        label_set.clone(),
        prop_oneof![2 => Just(None), 1 => (0_u64..4).prop_map(Some)],
    );
    let job = label_set.prop_map(|l| (1_u32, l));
    (
        prop::collection::vec(node, 1..=4),
        prop::collection::vec(job, 0..=6),
    )
        .prop_flat_map(|(mut nodes, jobs)| {
            // Every node carries "a" or the job labels would rarely fit; keep some variety.
            for (i, node) in nodes.iter_mut().enumerate() {
                if i % 2 == 0 {
                    node.0.insert("a".to_owned());
                }
            }
            let count = jobs.len();
            (
                Just(nodes),
                Just(jobs),
                prop::collection::vec(prop::option::weighted(0.8, 0..MAX_NODE_IDS), count),
            )
        })
        .prop_map(|(nodes, jobs, previous)| Tiny {
            nodes,
            jobs,
            previous,
        })
}

fn weighted_tiny() -> impl Strategy<Value = Tiny> {
    (1_usize..=3, prop::collection::vec(1_u32..=4, 0..=7))
        .prop_flat_map(|(nodes, weights)| {
            let count = weights.len();
            (
                Just(nodes),
                Just(weights),
                prop::collection::vec(prop::option::weighted(0.8, 0..MAX_NODE_IDS), count),
            )
        })
        .prop_map(|(nodes, weights, previous)| Tiny {
            nodes: vec![(BTreeSet::new(), None); nodes],
            jobs: weights.into_iter().map(|w| (w, BTreeSet::new())).collect(),
            previous,
        })
}

proptest! {
    /// Unit weights: the rebalancer's `(placed, Σ load², moves)` is the exhaustive optimum.
    #[test]
    fn unit_weights_reach_the_exhaustive_optimum(tiny in unit_tiny()) {
        let (jobs, nodes, previous) = (tiny.job_loads(), tiny.node_slots(), tiny.previous_map());
        let plan = rebalance(&jobs, &nodes, &previous);
        prop_assert_eq!(check_valid(&jobs, &nodes, &plan), Ok(()));
        let mut best = None;
        tiny.each_assignment(|a| {
            let s = score(&tiny, a);
            if best.as_ref().is_none_or(|b| s < *b) {
                best = Some(s);
            }
        });
        let got = score(&tiny, &tiny.assignment_of(&plan));
        prop_assert_eq!(Some(got), best, "plan {:?}", plan);
        prop_assert_eq!(plan.moves, got.2);
    }

    /// Weights, no labels: every load within `W/n ± w_max`, and at most one move per donor above the fewest
    /// moves any assignment with that balance needs.
    #[test]
    fn weights_stay_within_one_move_per_donor_of_the_exhaustive_minimum(tiny in weighted_tiny()) {
        let (jobs, nodes, previous) = (tiny.job_loads(), tiny.node_slots(), tiny.previous_map());
        let plan = rebalance(&jobs, &nodes, &previous);
        prop_assert_eq!(check_valid(&jobs, &nodes, &plan), Ok(()));
        let total: u64 = tiny.jobs.iter().map(|j| u64::from(j.0)).sum();
        let w_max = tiny.jobs.iter().map(|j| u64::from(j.0)).max().unwrap_or(0);
        let n = nodes.len() as u64;
        // l within W/n ± w_max, in integers: |n·l − W| ≤ n·w_max.
        let balanced = |loads: &[u64]| loads.iter().all(|&l| (n * l).abs_diff(total) <= n * w_max);
        let mut fewest = None;
        tiny.each_assignment(|a| {
            if a.iter().all(Option::is_some) && balanced(&tiny.loads(a)) {
                let m = tiny.moves(a);
                fewest = Some(fewest.map_or(m, |f: usize| f.min(m)));
            }
        });
        let fewest = fewest.expect("a balanced assignment exists");
        let ours = tiny.assignment_of(&plan);
        prop_assert!(balanced(&tiny.loads(&ours)), "loads {:?}", tiny.loads(&ours));
        let (gave, got) = donors_and_receivers(&previous, &plan);
        prop_assert!(gave.is_disjoint(&got), "a donor received: {:?} {:?}", gave, got);
        prop_assert!(
            plan.moves <= fewest + gave.len(),
            "{} moves, fewest {} + {} donors", plan.moves, fewest, gave.len()
        );
    }

    /// The flow solver, given a single group, finds loads and moves as good as the closed form's.
    #[test]
    fn the_flow_and_the_closed_form_agree_on_one_group(tiny in unit_tiny()) {
        let (jobs, nodes, previous) = (tiny.job_loads(), tiny.node_slots(), tiny.previous_map());
        let problem = input::Problem::new(&jobs, &nodes, &previous);
        for group in &problem.groups {
            let closed = quota::targets(group, &problem.capacity);
            let flowed = flow::targets(std::slice::from_ref(group), &problem.capacity).remove(0);
            let kept = |t: &[i64]| -> i64 { t.iter().zip(&group.sticky).map(|(t, s)| *t.min(s)).sum() };
            let squares = |t: &[i64]| -> i64 { t.iter().map(|t| t * t).sum() };
            prop_assert_eq!(flowed.iter().sum::<i64>(), closed.iter().sum::<i64>());
            prop_assert_eq!(squares(&flowed), squares(&closed));
            prop_assert_eq!(kept(&flowed), kept(&closed));
        }
    }
}
