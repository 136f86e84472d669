//! Turning target loads into owners: keep sticky jobs, shed the surplus, place the pool, even out what weights
//! left uneven.
//!
//! Per group, with targets `t_v` and slack `δ = w_max − 1` (0 for unit weights), a node's band is
//! `[t_v − δ, t_v + δ]`:
//!
//! 1. **Shed**: a node above its band gives away jobs until it is inside: with unit weights exactly
//!    `a_v − t_v` of them, spread evenly over its jobs in id order; with weights its heaviest first (the fewest
//!    jobs that bring it under `t_v + δ`). It then ends at `≥ t_v`, since no job weighs more than `δ + 1`.
//! 2. **Place**: the pool (orphans, new jobs, shed jobs; heaviest first, then by id) goes job by job to the
//!    eligible node furthest below its target that did not shed. While the pool is not empty the loads sum to
//!    less than the targets, so that node is below its target and stays `≤ t_v + δ`.
//! 3. **Even out** (weights only): while a node is below its band, the heaviest job that fits moves to it from a
//!    node above its target that received nothing. Each such move lowers `Σ (load − t)²`, so this ends; without
//!    labels and capacities it ends with every node inside its band (docs/rebalancer.md has the argument).
//!
//! A node that gives jobs away in a group never receives jobs of that group, unless capacities leave no other
//! eligible node with room.

use std::cmp::Reverse;
use std::collections::BinaryHeap;

use super::input::{NONE, Problem, index};

/// The owner of each job (canonical index), or [`NONE`] when it is left unplaced.
pub(super) fn realize(p: &Problem<'_>, targets: &[Vec<i64>]) -> Vec<u32> {
    let mut owner = p.holder.clone();
    let mut slots: Vec<Vec<Slot>> = p
        .groups
        .iter()
        .zip(targets)
        .map(|(group, target)| {
            let delta = i64::from(group.w_max) - 1;
            group
                .eligible
                .iter()
                .zip(target)
                .zip(&group.sticky)
                .map(|((&v, &t), &sticky)| Slot {
                    node: v,
                    target: t,
                    low: t - delta,
                    high: t + delta,
                    load: sticky,
                    shed: 0,
                    gave: false,
                    got: false,
                })
                .collect()
        })
        .collect();

    // 1. Shed. Unit groups: decide in one pass with per-slot counters. Weighted groups: collect the donors' jobs.
    let mut pools: Vec<Vec<u32>> = vec![Vec::new(); p.groups.len()];
    let mut seen: Vec<Vec<i64>> = slots.iter().map(|s| vec![0; s.len()]).collect();
    let mut donor_jobs: Vec<Vec<Vec<u32>>> =
        slots.iter().map(|s| vec![Vec::new(); s.len()]).collect();
    for (g, group_slots) in slots.iter_mut().enumerate() {
        for slot in group_slots.iter_mut() {
            if slot.load > slot.high {
                slot.gave = true;
                if p.groups[g].w_max == 1 {
                    slot.shed = slot.load - slot.target;
                }
            }
        }
    }
    for (j, owner_j) in owner.iter_mut().enumerate() {
        let (g, h) = (p.group[j], p.holder[j]);
        if g == NONE {
            continue;
        }
        let g = g as usize;
        if h == NONE {
            pools[g].push(index(j));
            continue;
        }
        let k = p.groups[g].slot[h as usize] as usize;
        let slot = &slots[g][k];
        if !slot.gave {
            continue;
        }
        if p.groups[g].w_max == 1 {
            // Shed `shed` of the slot's `sticky` jobs, evenly spaced: job `rank` goes when ⌊(rank+1)·shed/sticky⌋
            // steps up.
            let rank = seen[g][k];
            seen[g][k] += 1;
            let sticky = p.groups[g].sticky[k];
            if (rank + 1) * slot.shed / sticky > rank * slot.shed / sticky {
                *owner_j = NONE;
                pools[g].push(index(j));
            }
        } else {
            donor_jobs[g][k].push(index(j));
        }
    }
    for (g, group_slots) in slots.iter_mut().enumerate() {
        for (k, slot) in group_slots.iter_mut().enumerate() {
            if p.groups[g].w_max == 1 {
                slot.load -= slot.shed;
                continue;
            }
            let jobs = &mut donor_jobs[g][k];
            jobs.sort_by_key(|&j| (Reverse(p.weight[j as usize]), j));
            for &j in jobs.iter() {
                if slot.load <= slot.high {
                    break;
                }
                owner[j as usize] = NONE;
                pools[g].push(j);
                slot.load -= i64::from(p.weight[j as usize]);
            }
        }
    }
    let mut node_load = vec![0_i64; p.nodes.len()];
    for slot in slots.iter().flatten() {
        node_load[slot.node as usize] += slot.load;
    }
    shed_over_capacity(p, &mut owner, &mut node_load, &mut slots, &mut pools);

    // 2. Place.
    for (g, pool) in pools.iter_mut().enumerate() {
        if p.groups[g].w_max > 1 {
            pool.sort_by_key(|&j| (Reverse(p.weight[j as usize]), j));
        }
        place(p, &mut owner, &mut node_load, &mut slots[g], pool);
    }

    // 3. Even out.
    for (g, group_slots) in slots.iter_mut().enumerate() {
        if p.groups[g].w_max > 1 {
            even_out(p, g, &mut owner, &mut node_load, group_slots);
        }
    }
    owner
}

/// A node's state within one group.
#[derive(Debug, Clone)]
struct Slot {
    node: u32,
    target: i64,
    low: i64,
    high: i64,
    /// Weight of the group's jobs on the node now.
    load: i64,
    /// Unit groups: how many sticky jobs it sheds.
    shed: i64,
    /// It gave jobs of this group away.
    gave: bool,
    /// It received jobs of this group.
    got: bool,
}

/// Sheds the heaviest kept jobs of nodes whose kept load exceeds their capacity (weights can leave a node up to
/// `δ` above its target in several groups at once; a shrunk capacity does the same).
fn shed_over_capacity(
    p: &Problem<'_>,
    owner: &mut [u32],
    node_load: &mut [i64],
    slots: &mut [Vec<Slot>],
    pools: &mut [Vec<u32>],
) {
    let over: Vec<bool> = node_load
        .iter()
        .zip(&p.capacity)
        .map(|(&l, &c)| l > c)
        .collect();
    if !over.contains(&true) {
        return;
    }
    let mut kept: Vec<Vec<u32>> = vec![Vec::new(); p.nodes.len()];
    for (j, &o) in owner.iter().enumerate() {
        if o != NONE && over[o as usize] {
            kept[o as usize].push(index(j));
        }
    }
    for (v, jobs) in kept.iter_mut().enumerate() {
        jobs.sort_by_key(|&j| (Reverse(p.weight[j as usize]), j));
        for &j in jobs.iter() {
            if node_load[v] <= p.capacity[v] {
                break;
            }
            let (g, w) = (
                p.group[j as usize] as usize,
                i64::from(p.weight[j as usize]),
            );
            let k = p.groups[g].slot[v] as usize;
            owner[j as usize] = NONE;
            node_load[v] -= w;
            slots[g][k].load -= w;
            slots[g][k].gave = true;
            pools[g].push(j);
        }
    }
    // Keep each pool in id order; weighted pools are re-sorted before placing anyway.
    for pool in pools.iter_mut() {
        pool.sort_unstable();
    }
}

/// Places a group's pool, job by job, on the node furthest below its target that did not shed.
fn place(
    p: &Problem<'_>,
    owner: &mut [u32],
    node_load: &mut [i64],
    slots: &mut [Slot],
    pool: &[u32],
) {
    let mut heap: BinaryHeap<Reverse<(i64, u32, usize)>> = slots
        .iter()
        .enumerate()
        .filter(|(_, s)| !s.gave)
        .map(|(k, s)| Reverse((s.load - s.target, s.node, k)))
        .collect();
    let mut popped = Vec::new();
    for &j in pool {
        let w = i64::from(p.weight[j as usize]);
        let room = |k: usize, node_load: &[i64]| {
            let v = slots[k].node as usize;
            node_load[v] + w <= p.capacity[v]
        };
        let mut chosen = None;
        let mut fallback = None;
        while let Some(Reverse(entry)) = heap.pop() {
            popped.push(entry);
            let k = entry.2;
            if room(k, node_load) {
                if slots[k].load + w <= slots[k].high {
                    chosen = Some(k);
                    break;
                }
                fallback = fallback.or(Some(k));
            }
        }
        let chosen = chosen.or(fallback).or_else(|| {
            // Only capacities can get here: no node that kept its jobs has room, so a donor takes it.
            (0..slots.len())
                .filter(|&k| slots[k].gave && room(k, node_load))
                .min_by_key(|&k| (slots[k].load - slots[k].target, slots[k].node))
        });
        for (_, node, k) in popped.drain(..) {
            let s = &slots[k];
            let key = if Some(k) == chosen {
                s.load + w - s.target
            } else {
                s.load - s.target
            };
            heap.push(Reverse((key, node, k)));
        }
        if let Some(k) = chosen {
            let s = &mut slots[k];
            owner[j as usize] = s.node;
            s.load += w;
            s.got = true;
            node_load[s.node as usize] += w;
        }
    }
}

/// Moves the heaviest fitting jobs from nodes above their target that received nothing to nodes below their
/// band, until no node is below its band or none can be helped.
fn even_out(
    p: &Problem<'_>,
    g: usize,
    owner: &mut [u32],
    node_load: &mut [i64],
    slots: &mut [Slot],
) {
    if !slots.iter().any(|s| s.load < s.low) {
        return;
    }
    // The group's jobs on each node that were there before, heaviest first.
    let mut kept: Vec<Vec<u32>> = vec![Vec::new(); slots.len()];
    for (j, &h) in p.holder.iter().enumerate() {
        if h != NONE && p.group[j] as usize == g && owner[j] == h {
            kept[p.groups[g].slot[h as usize] as usize].push(index(j));
        }
    }
    for jobs in &mut kept {
        jobs.sort_by_key(|&j| (Reverse(p.weight[j as usize]), j));
    }
    let mut stuck = vec![false; slots.len()];
    loop {
        let Some(l) = (0..slots.len())
            .filter(|&k| !stuck[k] && !slots[k].gave && slots[k].load < slots[k].low)
            .min_by_key(|&k| (slots[k].load - slots[k].target, slots[k].node))
        else {
            return;
        };
        let to = slots[l].node as usize;
        let fits = (slots[l].high - slots[l].load).min(p.capacity[to] - node_load[to]);
        // Best: heaviest job, then the sender furthest above its target, then node order, then job order.
        let mut best: Option<(u32, i64, usize, u32)> = None;
        for (m, s) in slots.iter().enumerate() {
            if m == l || s.got || s.load - s.target < 1 {
                continue;
            }
            let limit = fits.min(s.load - s.low);
            let jobs = &kept[m];
            let start = jobs.partition_point(|&j| i64::from(p.weight[j as usize]) > limit);
            let candidate = jobs[start..]
                .iter()
                .find(|&&j| owner[j as usize] == s.node)
                .copied();
            if let Some(j) = candidate {
                let key = (p.weight[j as usize], s.load - s.target, m, j);
                let better = best.is_none_or(|b| {
                    (key.0, key.1, Reverse(key.2), Reverse(key.3))
                        > (b.0, b.1, Reverse(b.2), Reverse(b.3))
                });
                if better {
                    best = Some(key);
                }
            }
        }
        let Some((_, _, m, j)) = best else {
            stuck[l] = true;
            continue;
        };
        let w = i64::from(p.weight[j as usize]);
        let from = slots[m].node as usize;
        owner[j as usize] = index(to);
        node_load[from] -= w;
        node_load[to] += w;
        slots[m].load -= w;
        slots[m].gave = true;
        slots[l].load += w;
        slots[l].got = true;
    }
}
