//! Target loads for several groups (labels): a min-cost flow with a convex balance cost, solved by Δ-scaling.
//!
//! One unit of flow is one unit of job weight; `x_gv` is the weight of group g that node v is to hold:
//!
//! ```text
//! source ──total_g──▶ group g ──band distance of sticky_gv from [x_gv − δ_g, x_gv + δ_g]──▶ node v ──load_v², ≤ capacity_v──▶ sink
//!    └──────────────────────────────── unplaced, 1 per unit ─────────────────────────────────────────────────────────────────▲
//! ```
//!
//! Costs are lexicographic vectors `[artificial, unplaced, Σ load², band distance]`, so the optimum first places
//! as much weight as possible, then minimizes the sum of squared loads (for unit weights this is the same as
//! making the sorted load vector lexicographically smallest: Harvey, Ladner, Lovász, Tamir, "Semi-matchings for
//! bipartite graphs and load balancing"), then keeps each group's weight on each node as close to its band as
//! possible. `δ_g = w_max − 1` is the slack the realization allows with weights (`realize.rs`); the distance
//! `max(0, sticky − δ − x) + max(0, x − sticky − δ)` is convex in `x` and built from three parallel linear arcs
//! (−1 per unit up to `sticky − δ`, free up to `sticky + δ`, +1 beyond). With unit weights (`δ = 0`) it is
//! `|x − sticky|`, which per group is twice the jobs that leave plus a constant: the fewest moves. With weights,
//! a result whose groups all sit inside their bands has distance 0, so the next run finds targets that still
//! contain it and moves nothing. Artificial arcs (every vertex to a root and back, cost 1 in the first
//! component) only guarantee that every deficit is reachable while scaling; the optimum never uses them.
//!
//! The solver is the capacity-scaling algorithm for convex costs (Ahuja, Magnanti, Orlin, *Network Flows*,
//! §14.5): keep the flow Δ-optimal (no negative reduced cost on arcs with Δ of residual capacity, where a convex
//! arc costs its average over the next Δ units), send Δ units at a time along shortest paths from excess to
//! deficit vertices, halve Δ. At Δ = 1 the flow is optimal. It needs O(m log U) shortest paths for m arcs and
//! total weight U, on a graph of groups × nodes: small, however many jobs there are.

use std::cmp::Reverse;
use std::collections::BinaryHeap;

use super::input::Group;

/// A lexicographic cost: `[artificial, unplaced, Σ load², band distance]`.
type Cost = [i128; 4];

const ZERO: Cost = [0; 4];
const ARTIFICIAL: Cost = [1, 0, 0, 0];
const UNPLACED: Cost = [0, 1, 0, 0];
const INTO_BAND: Cost = [0, 0, 0, -1];
const OUT_OF_BAND: Cost = [0, 0, 0, 1];

fn add(a: Cost, b: Cost) -> Cost {
    [a[0] + b[0], a[1] + b[1], a[2] + b[2], a[3] + b[3]]
}

fn sub(a: Cost, b: Cost) -> Cost {
    [a[0] - b[0], a[1] - b[1], a[2] - b[2], a[3] - b[3]]
}

/// Per slot of each group (its eligible nodes, in order): the target weight.
pub(super) fn targets(groups: &[Group], capacity: &[i64]) -> Vec<Vec<i64>> {
    let total: i64 = groups.iter().map(|g| g.total).sum();
    let n = capacity.len();
    let (source, sink, root) = (0, 1, 2);
    let group_vertex = |g: usize| 3 + g;
    let node_vertex = |v: usize| 3 + groups.len() + v;
    let mut net = Network::new(3 + groups.len() + n);
    net.add(source, sink, total, Kind::Linear(UNPLACED));
    let mut arcs = Vec::with_capacity(groups.len());
    for (g, group) in groups.iter().enumerate() {
        net.add(source, group_vertex(g), group.total, Kind::Linear(ZERO));
        // The distance of the group's sticky weight `s` on a node from the band `[x − δ, x + δ]` around its
        // target `x`, as parallel linear arcs: −1 per unit up to `s − δ`, free up to `s + δ`, +1 beyond.
        let delta = i64::from(group.w_max) - 1;
        let per_slot: Vec<Vec<usize>> = group
            .eligible
            .iter()
            .zip(&group.sticky)
            .map(|(&v, &sticky)| {
                let (from, to) = (group_vertex(g), node_vertex(v as usize));
                let low = sticky - delta;
                let mut arcs = Vec::with_capacity(3);
                if low > 0 {
                    arcs.push(net.add(from, to, low, Kind::Linear(INTO_BAND)));
                }
                let free = (sticky + delta) - low.max(0);
                if free > 0 {
                    arcs.push(net.add(from, to, free, Kind::Linear(ZERO)));
                }
                arcs.push(net.add(from, to, group.total, Kind::Linear(OUT_OF_BAND)));
                arcs
            })
            .collect();
        arcs.push(per_slot);
    }
    for (v, &cap) in capacity.iter().enumerate() {
        net.add(node_vertex(v), sink, cap.min(total), Kind::Square);
    }
    let unbounded = total.saturating_mul(2).saturating_add(2);
    for vertex in 0..net.excess.len() {
        if vertex != root {
            net.add(vertex, root, unbounded, Kind::Linear(ARTIFICIAL));
            net.add(root, vertex, unbounded, Kind::Linear(ARTIFICIAL));
        }
    }
    net.excess[source] = total;
    net.excess[sink] = -total;
    net.solve(total);
    arcs.iter()
        .map(|per_slot| {
            per_slot
                .iter()
                .map(|arcs| arcs.iter().map(|&a| net.arcs[a].flow).sum())
                .collect()
        })
        .collect()
}

/// How an arc's cost grows with its flow `x`.
#[derive(Debug, Clone, Copy)]
enum Kind {
    /// `cost · x`.
    Linear(Cost),
    /// `x²`, in the balance component.
    Square,
}

#[derive(Debug, Clone)]
struct Arc {
    from: usize,
    to: usize,
    cap: i64,
    flow: i64,
    kind: Kind,
}

/// Whether residual half-arc `h` runs along its arc (rather than against it).
fn is_forward(h: usize) -> bool {
    h & 1 == 0
}

/// A flow network with excesses and potentials. Residual half-arcs are numbered `2·arc` (forward) and
/// `2·arc + 1` (backward).
struct Network {
    arcs: Vec<Arc>,
    out: Vec<Vec<usize>>,
    excess: Vec<i64>,
    potential: Vec<Cost>,
}

impl Network {
    fn new(vertices: usize) -> Self {
        Self {
            arcs: Vec::new(),
            out: vec![Vec::new(); vertices],
            excess: vec![0; vertices],
            potential: vec![ZERO; vertices],
        }
    }

    fn add(&mut self, from: usize, to: usize, cap: i64, kind: Kind) -> usize {
        let a = self.arcs.len();
        self.arcs.push(Arc {
            from,
            to,
            cap,
            flow: 0,
            kind,
        });
        self.out[from].push(2 * a);
        self.out[to].push(2 * a + 1);
        a
    }

    fn tail(&self, h: usize) -> usize {
        let arc = &self.arcs[h / 2];
        if is_forward(h) { arc.from } else { arc.to }
    }

    fn head(&self, h: usize) -> usize {
        let arc = &self.arcs[h / 2];
        if is_forward(h) { arc.to } else { arc.from }
    }

    fn residual(&self, h: usize) -> i64 {
        let arc = &self.arcs[h / 2];
        if is_forward(h) {
            arc.cap - arc.flow
        } else {
            arc.flow
        }
    }

    /// Cost per unit of sending `delta` units along half-arc `h` (for a convex arc, the average over them).
    fn unit_cost(&self, h: usize, delta: i64) -> Cost {
        let arc = &self.arcs[h / 2];
        let forward = is_forward(h);
        match arc.kind {
            Kind::Linear(c) if forward => c,
            Kind::Linear(c) => sub(ZERO, c),
            // ((x + Δ)² − x²) / Δ and ((x − Δ)² − x²) / Δ.
            Kind::Square if forward => [0, 0, i128::from(2 * arc.flow + delta), 0],
            Kind::Square => [0, 0, -i128::from(2 * arc.flow - delta), 0],
        }
    }

    fn reduced(&self, h: usize, delta: i64) -> Cost {
        add(
            sub(self.unit_cost(h, delta), self.potential[self.tail(h)]),
            self.potential[self.head(h)],
        )
    }

    fn push(&mut self, h: usize, amount: i64) {
        let (tail, head) = (self.tail(h), self.head(h));
        let arc = &mut self.arcs[h / 2];
        if is_forward(h) {
            arc.flow += amount;
        } else {
            arc.flow -= amount;
        }
        self.excess[tail] -= amount;
        self.excess[head] += amount;
    }

    /// Turns the excesses into an optimal flow. `total` bounds every useful flow value.
    fn solve(&mut self, total: i64) {
        let mut delta = 1_i64;
        while delta <= total / 2 {
            delta *= 2;
        }
        loop {
            self.restore(delta);
            while let Some(k) = (0..self.excess.len()).find(|&i| self.excess[i] >= delta) {
                if !self.excess.iter().any(|&e| e <= -delta) {
                    break;
                }
                let (l, pred) = self.shortest_path(k, delta);
                let mut v = l;
                while v != k {
                    let h = pred[v];
                    self.push(h, delta);
                    v = self.tail(h);
                }
            }
            if delta == 1 {
                break;
            }
            delta /= 2;
        }
        debug_assert!(self.excess.iter().all(|&e| e == 0), "flow left excess");
        debug_assert!(
            self.arcs
                .iter()
                .all(|a| !matches!(a.kind, Kind::Linear(ARTIFICIAL)) || a.flow == 0),
            "the optimum used an artificial arc"
        );
    }

    /// Makes the flow Δ-optimal for the current potentials: saturates linear arcs and pushes Δ on convex arcs
    /// that have Δ of residual capacity and a negative reduced cost. After a 2Δ-optimal phase only arcs that
    /// just gained Δ of residual capacity, and convex arcs whose Δ-average cost dropped, can qualify.
    fn restore(&mut self, delta: i64) {
        for h in 0..2 * self.arcs.len() {
            while self.residual(h) >= delta && self.reduced(h, delta) < ZERO {
                let amount = match self.arcs[h / 2].kind {
                    Kind::Linear(_) => self.residual(h),
                    Kind::Square => delta,
                };
                self.push(h, amount);
            }
        }
    }

    /// Dijkstra from `k` over half-arcs with at least `delta` residual capacity, by reduced cost (non-negative
    /// by Δ-optimality), until the nearest vertex with a deficit of `delta` is settled. Every vertex is
    /// reachable through the artificial arcs. Updates the potentials so that the path found has reduced cost 0
    /// and every reduced cost stays non-negative: settled vertices by their distance, the others by the
    /// deficit's. Returns that vertex and the half-arc into each vertex on the way.
    fn shortest_path(&mut self, k: usize, delta: i64) -> (usize, Vec<usize>) {
        let vertices = self.excess.len();
        let mut dist: Vec<Option<Cost>> = vec![None; vertices];
        let mut pred = vec![usize::MAX; vertices];
        let mut done = vec![false; vertices];
        let mut heap = BinaryHeap::new();
        dist[k] = Some(ZERO);
        heap.push(Reverse((ZERO, k)));
        let (reached, l) = loop {
            let Reverse((d, u)) = heap.pop().expect("artificial arcs reach every vertex");
            if done[u] {
                continue;
            }
            done[u] = true;
            if self.excess[u] <= -delta {
                break (d, u);
            }
            for &h in &self.out[u] {
                if self.residual(h) < delta {
                    continue;
                }
                let r = self.reduced(h, delta);
                debug_assert!(r >= ZERO, "negative reduced cost {r:?}: not Δ-optimal");
                let v = self.head(h);
                let nd = add(d, r);
                if !done[v] && dist[v].is_none_or(|old| nd < old) {
                    dist[v] = Some(nd);
                    pred[v] = h;
                    heap.push(Reverse((nd, v)));
                }
            }
        };
        for v in 0..vertices {
            let d = match dist[v] {
                Some(d) if done[v] => d,
                _ => reached,
            };
            self.potential[v] = sub(self.potential[v], d);
        }
        (l, pred)
    }
}
