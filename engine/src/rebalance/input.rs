//! The canonical form of a rebalance problem: nodes and jobs in id order, eligibility groups, sticky holders.
//!
//! Everything after this module works on indices into the canonical order, so the result cannot depend on the
//! order of the caller's slices. Building it is linear when the jobs come sorted by id (as a `BTreeMap` gives
//! them); otherwise jobs are found through a hash map keyed by id while walking `previous`, which is sorted,
//! and only the jobs that `previous` does not know (new ones) are sorted.

use std::collections::hash_map::{DefaultHasher, Entry};
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::hash::BuildHasherDefault;

use super::{JobLoad, NodeSlot, Plan};
use crate::coordinator::NodeId;
use crate::job::JobId;

/// "No node" / "no group", in the `u32` index arrays.
pub(super) const NONE: u32 = u32::MAX;

/// SipHash with fixed keys: deterministic, and no read of the OS's randomness (the rebalancer does no IO).
/// Lookups only; no result depends on the iteration order of these maps.
type Map<K, V> = HashMap<K, V, BuildHasherDefault<DefaultHasher>>;

/// The jobs that may run on the same set of nodes.
#[derive(Debug, Clone)]
pub(super) struct Group {
    /// Eligible nodes, as indices into [`Problem::nodes`], ascending. Never empty.
    pub eligible: Vec<u32>,
    /// For each node, its position in `eligible`, or [`NONE`].
    pub slot: Vec<u32>,
    /// Total weight of the group's jobs.
    pub total: i64,
    /// Per slot: weight of the group's jobs whose previous owner is that node (they may stay).
    pub sticky: Vec<i64>,
    /// Heaviest job of the group.
    pub w_max: u32,
}

/// A rebalance problem in canonical order.
pub(super) struct Problem<'p> {
    /// Live nodes by id, without repeats.
    pub nodes: Vec<&'p NodeSlot>,
    /// Per node: capacity in weight, `i64::MAX` when unlimited.
    pub capacity: Vec<i64>,
    /// Job ids by id, without repeats.
    pub jobs: Vec<&'p JobId>,
    /// Per job: weight (at least 1).
    pub weight: Vec<u32>,
    /// Per job: its group, or [`NONE`] when no live node is eligible for it.
    pub group: Vec<u32>,
    /// Per job: the previous owner if it is live and eligible (the job may stay), else [`NONE`].
    pub holder: Vec<u32>,
    /// Groups, ordered by their eligible node sets.
    pub groups: Vec<Group>,
    /// Jobs whose previous owner is live but not eligible.
    pub evicted: usize,
}

impl<'p> Problem<'p> {
    /// Puts the inputs in canonical order and computes groups and holders.
    pub fn new(
        jobs: &'p [JobLoad<'_>],
        nodes: &'p [NodeSlot],
        previous: &'p BTreeMap<JobId, NodeId>,
    ) -> Self {
        let nodes = canonical_nodes(nodes);
        let capacity = nodes
            .iter()
            .map(|n| {
                n.capacity
                    .map_or(i64::MAX, |c| i64::try_from(c).unwrap_or(i64::MAX))
            })
            .collect();
        let node_index: Map<&str, u32> = nodes
            .iter()
            .enumerate()
            .map(|(i, n)| (n.id.as_str(), index(i)))
            .collect();
        let order = canonical_jobs(jobs, previous);

        // Label sets → eligible node sets → groups. Most jobs carry no labels: skip the lookup for them.
        let mut label_sets: Vec<&BTreeSet<String>> = Vec::new();
        let mut label_set_of: Map<&BTreeSet<String>, u32> = Map::default();
        let mut job_label_set = Vec::with_capacity(order.len());
        let empty = BTreeSet::new();
        label_sets.push(&empty);
        for &(i, _) in &order {
            let labels = jobs[i as usize].labels.as_ref();
            let set = if labels.is_empty() {
                0
            } else {
                *label_set_of.entry(labels).or_insert_with(|| {
                    label_sets.push(labels);
                    index(label_sets.len() - 1)
                })
            };
            job_label_set.push(set);
        }
        let eligible_of_set: Vec<Vec<u32>> = label_sets
            .iter()
            .map(|labels| {
                (0..nodes.len())
                    .filter(|&v| labels.is_subset(&nodes[v].labels))
                    .map(index)
                    .collect()
            })
            .collect();
        let mut distinct: Vec<&Vec<u32>> =
            eligible_of_set.iter().filter(|e| !e.is_empty()).collect();
        distinct.sort();
        distinct.dedup();
        let group_of_set: Vec<u32> = eligible_of_set
            .iter()
            .map(|e| match distinct.binary_search(&e) {
                Ok(g) => index(g),
                Err(_) => NONE,
            })
            .collect();
        let mut groups: Vec<Group> = distinct
            .iter()
            .map(|eligible| {
                let mut slot = vec![NONE; nodes.len()];
                for (k, &v) in eligible.iter().enumerate() {
                    slot[v as usize] = index(k);
                }
                Group {
                    eligible: (*eligible).clone(),
                    slot,
                    total: 0,
                    sticky: vec![0; eligible.len()],
                    w_max: 0,
                }
            })
            .collect();

        let mut ids = Vec::with_capacity(order.len());
        let mut weight = Vec::with_capacity(order.len());
        let mut group = Vec::with_capacity(order.len());
        let mut holder = Vec::with_capacity(order.len());
        let mut evicted = 0;
        for (&(i, owner), &set) in order.iter().zip(&job_label_set) {
            let job = &jobs[i as usize];
            let w = job.weight.max(1);
            let g = group_of_set[set as usize];
            let owner = owner.and_then(|o| node_index.get(o.as_str()).copied());
            let mut h = NONE;
            if let Some(owner) = owner {
                match groups.get_mut(g as usize) {
                    Some(grp) if grp.slot[owner as usize] != NONE => {
                        grp.sticky[grp.slot[owner as usize] as usize] += i64::from(w);
                        h = owner;
                    }
                    _ => evicted += 1,
                }
            }
            if let Some(grp) = groups.get_mut(g as usize) {
                grp.total += i64::from(w);
                grp.w_max = grp.w_max.max(w);
            }
            ids.push(&job.id);
            weight.push(w);
            group.push(g);
            holder.push(h);
        }
        Self {
            nodes,
            capacity,
            jobs: ids,
            weight,
            group,
            holder,
            groups,
            evicted,
        }
    }

    /// The plan that gives job `j` (canonical index) to node `owner[j]`, or leaves it unplaced on [`NONE`].
    pub fn plan(&self, owner: &[u32]) -> Plan {
        let mut moves = 0;
        let mut unplaced = Vec::new();
        let mut owners = Vec::with_capacity(self.jobs.len());
        for (j, (&id, &o)) in self.jobs.iter().zip(owner).enumerate() {
            let h = self.holder[j];
            if h != NONE && o != h {
                moves += 1;
            }
            if o == NONE {
                unplaced.push(id.clone());
            } else {
                owners.push((id.clone(), self.nodes[o as usize].id.clone()));
            }
        }
        // Already in id order: `from_iter`'s stable sort only checks that, then builds the tree in bulk.
        Plan {
            owners: owners.into_iter().collect(),
            moves,
            evicted: self.evicted,
            unplaced,
        }
    }
}

/// A position or count as a `u32` index. Inputs beyond `u32::MAX - 1` entries are not supported.
pub(super) fn index(i: usize) -> u32 {
    u32::try_from(i).expect("fewer than 2^32 jobs and nodes")
}

/// Nodes by id; of repeated ids the lowest `(labels, capacity)` is kept.
fn canonical_nodes(nodes: &[NodeSlot]) -> Vec<&NodeSlot> {
    let mut sorted: Vec<&NodeSlot> = nodes.iter().collect();
    sorted.sort_by(|a, b| (&a.id, &a.labels, a.capacity).cmp(&(&b.id, &b.labels, b.capacity)));
    sorted.dedup_by(|later, first| later.id == first.id);
    sorted
}

/// The jobs in id order (as input indices), each with its owner in `previous`. Of repeated ids the lowest
/// `(weight, labels)` is kept.
fn canonical_jobs<'p>(
    jobs: &'p [JobLoad<'_>],
    previous: &'p BTreeMap<JobId, NodeId>,
) -> Vec<(u32, Option<&'p NodeId>)> {
    let mut order = Vec::with_capacity(jobs.len());
    if jobs.windows(2).all(|w| w[0].id < w[1].id) {
        // Merge-join two sorted sequences. `==` first: equal ids usually share their `Arc`, which `==` sees
        // without reading the text.
        let mut prev = previous.iter().peekable();
        for (i, job) in jobs.iter().enumerate() {
            let mut owner = None;
            while let Some(&(id, node)) = prev.peek() {
                if *id == job.id {
                    owner = Some(node);
                    prev.next();
                    break;
                }
                if *id < job.id {
                    prev.next();
                } else {
                    break;
                }
            }
            order.push((index(i), owner));
        }
        return order;
    }

    let mut by_id: Map<&str, u32> = Map::default();
    by_id.reserve(jobs.len());
    for (i, job) in jobs.iter().enumerate() {
        match by_id.entry(job.id.as_str()) {
            Entry::Vacant(e) => {
                e.insert(index(i));
            }
            Entry::Occupied(mut e) => {
                let kept = &jobs[*e.get() as usize];
                if (job.weight, job.labels.as_ref()) < (kept.weight, kept.labels.as_ref()) {
                    e.insert(index(i));
                }
            }
        }
    }
    let mut known = vec![false; jobs.len()];
    for (id, node) in previous {
        if let Some(&i) = by_id.get(id.as_str()) {
            known[i as usize] = true;
            order.push((i, Some(node)));
        }
    }
    let mut new: Vec<u32> = by_id
        .values()
        .copied()
        .filter(|&i| !known[i as usize])
        .collect();
    if new.is_empty() {
        return order;
    }
    new.sort_unstable_by(|&a, &b| jobs[a as usize].id.cmp(&jobs[b as usize].id));
    let old = std::mem::take(&mut order);
    let (mut a, mut b) = (old.into_iter().peekable(), new.into_iter().peekable());
    loop {
        let take_old = match (a.peek(), b.peek()) {
            (Some(&(x, _)), Some(&y)) => jobs[x as usize].id < jobs[y as usize].id,
            (Some(_), None) => true,
            (None, Some(_)) => false,
            (None, None) => break,
        };
        if take_old {
            order.extend(a.next());
        } else {
            order.extend(b.next().map(|y| (y, None)));
        }
    }
    order
}
