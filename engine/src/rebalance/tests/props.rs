//! Properties of the rebalancer over generated clusters: a cluster is balanced by the rebalancer, then joins,
//! graceful leaves, crashes, new and deleted jobs, label, weight and capacity changes happen, and the
//! rebalancer runs again from the old assignment (sometimes scrambled, as an older placement might have left it).

use std::borrow::Cow;
use std::collections::{BTreeMap, BTreeSet, VecDeque};

use proptest::prelude::*;

use super::*;

/// What a generated cluster may contain.
#[derive(Debug, Clone, Copy)]
struct Shape {
    weights: bool,
    labels: bool,
    capacities: bool,
}

const UNIT: Shape = Shape {
    weights: false,
    labels: false,
    capacities: false,
};

#[derive(Debug, Clone)]
struct Node {
    id: usize,
    labels: BTreeSet<String>,
    capacity: Option<u64>,
}

#[derive(Debug, Clone)]
struct Job {
    id: usize,
    weight: u32,
    labels: BTreeSet<String>,
}

#[derive(Debug, Clone)]
struct Cluster {
    nodes: Vec<Node>,
    jobs: Vec<Job>,
}

impl Cluster {
    fn slots(&self) -> Vec<NodeSlot> {
        self.nodes
            .iter()
            .map(|n| NodeSlot {
                id: node_id(n.id),
                labels: n.labels.clone(),
                capacity: n.capacity,
            })
            .collect()
    }

    fn loads(&self) -> Vec<JobLoad<'_>> {
        self.jobs
            .iter()
            .map(|j| JobLoad {
                id: Cow::Owned(job_id(j.id)),
                weight: j.weight,
                labels: Cow::Borrowed(&j.labels),
            })
            .collect()
    }
}

/// A change to the cluster between two rebalances. Indices are taken modulo the current length.
#[derive(Debug, Clone)]
enum Event {
    Join(BTreeSet<String>, Option<u64>),
    /// The node leaves gracefully: its entries leave the assignment with it.
    Leave(usize),
    /// The node dies: the assignment still names it.
    Crash(usize),
    AddJobs(usize, u32, BTreeSet<String>),
    DeleteJobs(usize, usize),
    RelabelJob(usize, BTreeSet<String>),
    RelabelNode(usize, BTreeSet<String>),
    Reweight(usize, u32),
    Recap(usize, Option<u64>),
}

/// A cluster before and after some events, and the assignment before.
#[derive(Debug, Clone)]
struct Scenario {
    before: Cluster,
    after: Cluster,
    #[allow(dead_code)] // Printed on failure.
    events: Vec<Event>,
    /// Nodes that left gracefully.
    left: BTreeSet<usize>,
    /// `(job index, node index)` pairs that overwrite the rebalanced assignment.
    scramble: Vec<(usize, usize)>,
    /// Piles every job of the first half of the nodes onto one of them first, as a placement that never evened
    /// loads out might have.
    pile: Option<usize>,
}

impl Scenario {
    fn previous(&self) -> BTreeMap<JobId, NodeId> {
        let (jobs, nodes) = (self.before.loads(), self.before.slots());
        let mut previous = rebalance(&jobs, &nodes, &BTreeMap::new()).owners;
        if let Some(pile) = self.pile
            && !nodes.is_empty()
        {
            let half: BTreeSet<&NodeId> = nodes[..nodes.len().div_ceil(2)]
                .iter()
                .map(|n| &n.id)
                .collect();
            let onto = node_id(self.before.nodes[pile % nodes.len()].id);
            for owner in previous.values_mut() {
                if half.contains(owner) {
                    *owner = onto.clone();
                }
            }
        }
        if !self.before.nodes.is_empty() {
            for &(j, v) in &self.scramble {
                if let Some(job) = self.before.jobs.get(j) {
                    let node = &self.before.nodes[v % self.before.nodes.len()];
                    previous.insert(job_id(job.id), node_id(node.id));
                }
            }
        }
        // Graceful leavers hand their jobs over: they are no longer in the assignment. Crashed nodes still are.
        previous.retain(|_, owner| !self.left.iter().any(|&v| node_id(v) == *owner));
        previous
    }
}

fn label_set(shape: Shape) -> BoxedStrategy<BTreeSet<String>> {
    if shape.labels {
        prop_oneof![
            4 => Just(labels(&[])),
            2 => Just(labels(&["eu"])),
            1 => Just(labels(&["us"])),
            1 => Just(labels(&["gpu"])),
            1 => Just(labels(&["eu", "gpu"])),
        ]
        .boxed()
    } else {
        Just(BTreeSet::new()).boxed()
    }
}

fn node_labels(shape: Shape) -> BoxedStrategy<BTreeSet<String>> {
    if shape.labels {
        prop::sample::subsequence(vec!["eu", "us", "gpu"], 0..=3)
            .prop_map(|names| labels(&names))
            .boxed()
    } else {
        Just(BTreeSet::new()).boxed()
    }
}

fn capacity(shape: Shape) -> BoxedStrategy<Option<u64>> {
    if shape.capacities {
        prop_oneof![3 => Just(None), 1 => (0_u64..150).prop_map(Some)].boxed()
    } else {
        Just(None).boxed()
    }
}

fn weight(shape: Shape) -> BoxedStrategy<u32> {
    if shape.weights {
        prop_oneof![3 => Just(1_u32), 2 => 1_u32..=5, 1 => 1_u32..=20].boxed()
    } else {
        Just(1_u32).boxed()
    }
}

fn event(shape: Shape) -> impl Strategy<Value = Event> {
    prop_oneof![
        3 => (node_labels(shape), capacity(shape)).prop_map(|(l, c)| Event::Join(l, c)),
        2 => any::<usize>().prop_map(Event::Leave),
        2 => any::<usize>().prop_map(Event::Crash),
        2 => (1_usize..60, weight(shape), label_set(shape)).prop_map(|(n, w, l)| Event::AddJobs(n, w, l)),
        2 => (any::<usize>(), 1_usize..40).prop_map(|(at, n)| Event::DeleteJobs(at, n)),
        1 => (any::<usize>(), label_set(shape)).prop_map(|(j, l)| Event::RelabelJob(j, l)),
        1 => (any::<usize>(), node_labels(shape)).prop_map(|(v, l)| Event::RelabelNode(v, l)),
        1 => (any::<usize>(), weight(shape)).prop_map(|(j, w)| Event::Reweight(j, w)),
        1 => (any::<usize>(), capacity(shape)).prop_map(|(v, c)| Event::Recap(v, c)),
    ]
}

/// The cluster after `events`, and the nodes that left gracefully.
fn apply(cluster: &Cluster, events: &[Event]) -> (Cluster, BTreeSet<usize>) {
    let mut left = BTreeSet::new();
    let mut c = cluster.clone();
    let mut next_node = c.nodes.iter().map(|n| n.id + 1).max().unwrap_or(0);
    let mut next_job = c.jobs.iter().map(|j| j.id + 1).max().unwrap_or(0);
    for event in events {
        match event.clone() {
            Event::Join(labels, capacity) => {
                c.nodes.push(Node {
                    id: next_node,
                    labels,
                    capacity,
                });
                next_node += 1;
            }
            Event::Leave(i) => {
                if !c.nodes.is_empty() {
                    let i = i % c.nodes.len();
                    left.insert(c.nodes.remove(i).id);
                }
            }
            Event::Crash(i) => {
                if !c.nodes.is_empty() {
                    let i = i % c.nodes.len();
                    c.nodes.remove(i);
                }
            }
            Event::AddJobs(n, weight, labels) => {
                for _ in 0..n {
                    c.jobs.push(Job {
                        id: next_job,
                        weight,
                        labels: labels.clone(),
                    });
                    next_job += 1;
                }
            }
            Event::DeleteJobs(at, n) => {
                if !c.jobs.is_empty() {
                    let at = at % c.jobs.len();
                    let end = (at + n).min(c.jobs.len());
                    c.jobs.drain(at..end);
                }
            }
            Event::RelabelJob(j, labels) => {
                if !c.jobs.is_empty() {
                    let j = j % c.jobs.len();
                    c.jobs[j].labels = labels;
                }
            }
            Event::RelabelNode(v, labels) => {
                if !c.nodes.is_empty() {
                    let v = v % c.nodes.len();
                    c.nodes[v].labels = labels;
                }
            }
            Event::Reweight(j, weight) => {
                if !c.jobs.is_empty() {
                    let j = j % c.jobs.len();
                    c.jobs[j].weight = weight;
                }
            }
            Event::Recap(v, capacity) => {
                if !c.nodes.is_empty() {
                    let v = v % c.nodes.len();
                    c.nodes[v].capacity = capacity;
                }
            }
        }
    }
    (c, left)
}

fn cluster(shape: Shape) -> impl Strategy<Value = Cluster> {
    let node = (node_labels(shape), capacity(shape));
    let job = (weight(shape), label_set(shape));
    (
        prop::collection::vec(node, 1..8),
        prop::collection::vec(job, 0..250),
    )
        .prop_map(|(nodes, jobs)| Cluster {
            nodes: nodes
                .into_iter()
                .enumerate()
                .map(|(id, (labels, capacity))| Node {
                    id,
                    labels,
                    capacity,
                })
                .collect(),
            jobs: jobs
                .into_iter()
                .enumerate()
                .map(|(id, (weight, labels))| Job { id, weight, labels })
                .collect(),
        })
}

fn scenario(shape: Shape) -> impl Strategy<Value = Scenario> {
    (
        cluster(shape),
        prop::collection::vec(event(shape), 0..6),
        prop_oneof![
            3 => Just(Vec::new()),
            1 => prop::collection::vec((any::<usize>(), any::<usize>()), 0..80)
                .prop_map(|pairs| pairs.into_iter().map(|(j, v)| (j % 250, v)).collect()),
        ],
        prop::option::weighted(0.25, any::<usize>()),
    )
        .prop_map(|(before, events, scramble, pile)| {
            let (after, left) = apply(&before, &events);
            Scenario {
                before,
                after,
                events,
                left,
                scramble,
                pile,
            }
        })
}

fn any_shape() -> impl Strategy<Value = Shape> {
    (any::<bool>(), any::<bool>(), any::<bool>()).prop_map(|(weights, labels, capacities)| Shape {
        weights,
        labels,
        capacities,
    })
}

fn any_scenario() -> impl Strategy<Value = Scenario> {
    any_shape().prop_flat_map(scenario)
}

/// No chain of moves from a node to one at least two lighter with room, and no chain from an unplaced job to
/// a node with room: the optimality conditions of the most even, most placed unit-weight assignment.
fn cannot_be_evened_out(cluster: &Cluster, plan: &Plan) -> Result<(), String> {
    let nodes = &cluster.nodes;
    let index: BTreeMap<NodeId, usize> = nodes
        .iter()
        .enumerate()
        .map(|(i, n)| (node_id(n.id), i))
        .collect();
    let mut load = vec![0_u64; nodes.len()];
    let mut on: Vec<Vec<&Job>> = vec![Vec::new(); nodes.len()];
    for job in &cluster.jobs {
        if let Some(owner) = plan.owners.get(&job_id(job.id)) {
            load[index[owner]] += 1;
            on[index[owner]].push(job);
        }
    }
    let room = |v: usize| nodes[v].capacity.is_none_or(|c| load[v] < c);
    let eligible = |job: &Job, v: usize| job.labels.is_subset(&nodes[v].labels);
    let reachable = |starts: Vec<usize>| {
        let mut seen = vec![false; nodes.len()];
        let mut queue: VecDeque<usize> = starts.into_iter().collect();
        queue.iter().for_each(|&v| seen[v] = true);
        while let Some(x) = queue.pop_front() {
            for (y, seen_y) in seen.iter_mut().enumerate() {
                if !*seen_y && on[x].iter().any(|job| eligible(job, y)) {
                    *seen_y = true;
                    queue.push_back(y);
                }
            }
        }
        seen
    };
    for u in 0..nodes.len() {
        let seen = reachable(
            on[u]
                .iter()
                .flat_map(|job| (0..nodes.len()).filter(|&y| eligible(job, y)))
                .collect(),
        );
        for v in 0..nodes.len() {
            if v != u && seen[v] && load[u] >= load[v] + 2 && room(v) {
                return Err(format!(
                    "node {} ({}) can pass a job along to node {} ({})",
                    nodes[u].id, load[u], nodes[v].id, load[v]
                ));
            }
        }
    }
    for id in &plan.unplaced {
        let job = cluster.jobs.iter().find(|j| job_id(j.id) == *id).unwrap();
        if job.weight > 1 {
            continue;
        }
        let seen = reachable((0..nodes.len()).filter(|&v| eligible(job, v)).collect());
        if let Some(v) = (0..nodes.len()).find(|&v| seen[v] && room(v)) {
            return Err(format!(
                "{id} is unplaced but a chain of moves reaches node {} with room",
                nodes[v].id
            ));
        }
    }
    Ok(())
}

proptest! {
    /// Every job has exactly one owner, live and eligible, capacities hold, and a job is left unplaced only
    /// when no eligible node has room for it.
    #[test]
    fn every_job_has_one_eligible_owner_with_room(s in any_scenario()) {
        let (jobs, nodes) = (s.after.loads(), s.after.slots());
        let plan = rebalance(&jobs, &nodes, &s.previous());
        prop_assert_eq!(check_valid(&jobs, &nodes, &plan), Ok(()));
    }

    /// Rebalancing the output changes nothing and moves nothing: nothing changed, nothing moves.
    #[test]
    fn the_output_is_a_fixed_point(s in any_scenario()) {
        let (jobs, nodes) = (s.after.loads(), s.after.slots());
        let plan = rebalance(&jobs, &nodes, &s.previous());
        let again = rebalance(&jobs, &nodes, &plan.owners);
        prop_assert_eq!(again.moves, 0);
        prop_assert_eq!(again.evicted, 0);
        prop_assert_eq!(&again.owners, &plan.owners);
        prop_assert_eq!(&again.unplaced, &plan.unplaced);
    }

    /// Shuffling the jobs and the nodes, or repeating some, gives the same plan.
    #[test]
    fn the_input_order_does_not_matter(
        (s, job_order, node_order) in any_scenario().prop_flat_map(|s| {
            let (j, n) = (s.after.jobs.len(), s.after.nodes.len());
            (
                Just(s),
                Just((0..j).collect::<Vec<_>>()).prop_shuffle(),
                Just((0..n).collect::<Vec<_>>()).prop_shuffle(),
            )
        })
    ) {
        let previous = s.previous();
        let (jobs, nodes) = (s.after.loads(), s.after.slots());
        let plan = rebalance(&jobs, &nodes, &previous);
        let mut shuffled_jobs: Vec<JobLoad<'_>> = job_order.iter().map(|&i| jobs[i].clone()).collect();
        let mut shuffled_nodes: Vec<NodeSlot> = node_order.iter().map(|&i| nodes[i].clone()).collect();
        // A repeated job with a higher weight, and a repeated node with more labels, lose to the originals.
        if let Some(first) = job_order.first() {
            shuffled_jobs.push(jobs[*first].clone().with_weight(jobs[*first].weight + 1));
        }
        if let Some(first) = node_order.first() {
            let mut twin = nodes[*first].clone();
            twin.labels.insert("zz-twin".to_owned());
            shuffled_nodes.insert(0, twin);
        }
        prop_assert_eq!(rebalance(&shuffled_jobs, &shuffled_nodes, &previous), plan);
    }

    /// Unit weights, no labels, no capacities: loads differ by at most one, exactly the lower bound
    /// `Σ_v max(0, a_v − q) − min(r, #{v : a_v > q})` of jobs moves, and no node both gives and receives.
    #[test]
    fn unit_weights_move_exactly_the_lower_bound(s in scenario(UNIT)) {
        let previous = s.previous();
        let (jobs, nodes) = (s.after.loads(), s.after.slots());
        let plan = rebalance(&jobs, &nodes, &previous);
        let loads = loads(&jobs, &nodes, &plan);
        prop_assert!(spread(&loads) <= 1, "loads {:?}", loads);
        prop_assert_eq!(plan.moves, unit_lower_bound(&jobs, &nodes, &previous));
        let (gave, got) = donors_and_receivers(&previous, &plan);
        prop_assert!(gave.is_disjoint(&got), "gave {:?}, got {:?}", gave, got);
    }

    /// Unit weights with labels and capacities: as many jobs placed and loads as even as eligibility allows (no
    /// chain of moves evens them further), and a node that gave a job away received none that could have gone
    /// where that job went.
    #[test]
    fn unit_weights_with_labels_are_as_even_as_eligibility_allows(
        s in scenario(Shape { weights: false, labels: true, capacities: true })
    ) {
        let previous = s.previous();
        let (jobs, nodes) = (s.after.loads(), s.after.slots());
        let plan = rebalance(&jobs, &nodes, &previous);
        prop_assert_eq!(cannot_be_evened_out(&s.after, &plan), Ok(()));
        let node = |id: &NodeId| nodes.iter().find(|n| &n.id == id).unwrap();
        for job in &jobs {
            let (Some(old), Some(new)) = (previous.get(&job.id), plan.owners.get(&job.id)) else { continue };
            if old == new || !nodes.iter().any(|n| &n.id == old) || !job.labels.is_subset(&node(old).labels) {
                continue;
            }
            // `job` moved from `old` to `new` although it could stay. Whatever `old` received instead must not
            // have been able to go to `new`: swapping would keep every load and save a move.
            for other in &jobs {
                if plan.owners.get(&other.id) == Some(old) && previous.get(&other.id) != Some(old) {
                    prop_assert!(
                        !other.labels.is_subset(&node(new).labels),
                        "{} left {} for {} while {} came to {}", job.id, old, new, other.id, old
                    );
                }
            }
        }
    }

    /// Weights, no labels or capacities: every load within `W/n ± w_max`, no node both gives and receives, and
    /// at most one job per donor beyond a lower bound on the moves of any assignment that balanced.
    #[test]
    fn weighted_loads_stay_within_w_max_of_the_mean(
        s in scenario(Shape { weights: true, labels: false, capacities: false })
    ) {
        let previous = s.previous();
        let (jobs, nodes) = (s.after.loads(), s.after.slots());
        let plan = rebalance(&jobs, &nodes, &previous);
        let loads = loads(&jobs, &nodes, &plan);
        let total: u64 = jobs.iter().map(|j| u64::from(j.weight)).sum();
        let w_max = jobs.iter().map(|j| u64::from(j.weight)).max().unwrap_or(0);
        let n = nodes.len() as u64;
        for (node, &load) in &loads {
            prop_assert!(
                (n * load).abs_diff(total) <= n * w_max,
                "{} holds {} of {} on {} nodes, w_max {}", node, load, total, n, w_max
            );
        }
        let (gave, got) = donors_and_receivers(&previous, &plan);
        prop_assert!(gave.is_disjoint(&got), "gave {:?}, got {:?}", gave, got);
        prop_assert!(
            plan.moves <= weighted_lower_bound(&jobs, &nodes, &previous) + gave.len(),
            "{} moves, bound {}, {} donors", plan.moves, weighted_lower_bound(&jobs, &nodes, &previous), gave.len()
        );
    }
}
