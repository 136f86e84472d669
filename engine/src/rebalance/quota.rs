//! Target loads for a single group of jobs (every job may run on the same nodes): closed form.
//!
//! The most even loads under capacities are a water level `λ`: every node gets `min(capacity, λ)`, and the
//! `spare` units left over raise `spare` of the nodes with room above `λ` to `λ + 1`. Which nodes get a spare
//! unit is the only freedom, and it decides the moves: a spare unit on a node that already holds more than `λ`
//! lets it keep one more job. So spare units go to the nodes with the most sticky load (ties: node order).
//! With unit weights that gives exactly `LB = Σ max(0, a_v − q) − min(r, #{v : a_v > q})` moves; with weights
//! it also keeps the targets of an already balanced assignment where they were, which makes the rebalance
//! idempotent (docs/rebalancer.md).

use super::input::Group;

/// Per slot of `group` (its eligible nodes, in order): the target weight. `capacity` is per node.
pub(super) fn targets(group: &Group, capacity: &[i64]) -> Vec<i64> {
    let caps: Vec<i64> = group
        .eligible
        .iter()
        .map(|&v| capacity[v as usize])
        .collect();
    let fill = |level: i64| {
        caps.iter()
            .map(|&c| c.min(level))
            .fold(0_i64, i64::saturating_add)
    };
    let placed = group.total.min(fill(i64::MAX));
    // The highest level that does not overfill: fill is monotone and fill(0) = 0.
    let (mut low, mut high) = (0, placed);
    while low < high {
        let mid = low + (high - low + 1) / 2;
        if fill(mid) <= placed {
            low = mid;
        } else {
            high = mid - 1;
        }
    }
    let level = low;
    let mut target: Vec<i64> = caps.iter().map(|&c| c.min(level)).collect();
    let mut spare = placed - fill(level);
    let mut raise: Vec<usize> = (0..caps.len()).filter(|&k| caps[k] > level).collect();
    raise.sort_by(|&a, &b| group.sticky[b].cmp(&group.sticky[a]).then(a.cmp(&b)));
    for k in raise {
        if spare == 0 {
            break;
        }
        target[k] += 1;
        spare -= 1;
    }
    debug_assert_eq!(spare, 0, "fewer nodes above the level than spare units");
    target
}
