//! The canonical form of a rebalance problem: nodes and jobs in id order, eligibility groups, sticky holders.
//!
//! Everything after this module works on indices into the canonical order, so the result cannot depend on the
//! order of the caller's slices.
//!
//! With a million jobs the cost is memory latency, not comparisons: jobs usually come in hash-map order, and
//! every random access to a job or its id text is a cache miss. So the jobs are read once, in the caller's
//! order, into compact arrays (weight, label set, and a 16-byte big-endian prefix of the id); the prefixes are
//! sorted as integers, which for ids of up to 15 bytes is exactly id order; `previous` (a sorted map) is then
//! merged in one pass, and the ids that go into the plan are cloned from `previous` where it has them, since
//! its entries sit together in memory.

use std::borrow::Cow;
use std::cmp::Ordering;
use std::collections::hash_map::DefaultHasher;
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::hash::{BuildHasherDefault, Hasher};

use super::{JobLoad, NodeSlot, Plan};
use crate::coordinator::NodeId;
use crate::job::JobId;

/// "No node" / "no group", in the `u32` index arrays.
pub(super) const NONE: u32 = u32::MAX;

/// SipHash with fixed keys: deterministic, and no read of the OS's randomness (the rebalancer does no IO).
/// Lookups only; no result depends on the iteration order of these maps. For label sets, which users write.
type Map<K, V> = HashMap<K, V, BuildHasherDefault<DefaultHasher>>;

/// Node ids (a few hundred, written by operators) are looked up once per job: a cheaper hash.
type NodeMap<'p> = HashMap<&'p str, u32, BuildHasherDefault<FxHasher>>;

/// The multiply-rotate hash of the Rust compiler (`FxHasher`), eight bytes at a time.
#[derive(Default)]
struct FxHasher(u64);

impl Hasher for FxHasher {
    fn write(&mut self, bytes: &[u8]) {
        for chunk in bytes.chunks(8) {
            let mut word = [0_u8; 8];
            word[..chunk.len()].copy_from_slice(chunk);
            self.write_u64(u64::from_le_bytes(word));
        }
    }

    fn write_u64(&mut self, word: u64) {
        self.0 = (self.0.rotate_left(5) ^ word).wrapping_mul(0x51_7c_c1_b7_27_22_0a_95);
    }

    fn finish(&self) -> u64 {
        self.0
    }
}

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
#[derive(Clone)]
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
        let node_index: NodeMap<'p> = nodes
            .iter()
            .enumerate()
            .map(|(i, n)| (n.id.as_str(), index(i)))
            .collect();
        // One pass in the caller's order: everything later needs, in compact arrays.
        let mut label_sets: Vec<&BTreeSet<String>> = Vec::new();
        let mut label_set_of: Map<&BTreeSet<String>, u32> = Map::default();
        let empty = BTreeSet::new();
        label_sets.push(&empty);
        let mut keys = Vec::with_capacity(jobs.len());
        for (i, job) in jobs.iter().enumerate() {
            // Most jobs carry no labels: skip the lookup for them.
            let labels = job.labels.as_ref();
            let set = if labels.is_empty() {
                0
            } else {
                *label_set_of.entry(labels).or_insert_with(|| {
                    label_sets.push(labels);
                    index(label_sets.len() - 1)
                })
            };
            keys.push(Key {
                prefix: prefix(job.id.as_str()),
                input: index(i),
                weight: job.weight.max(1),
                set,
            });
        }
        sort_keys(jobs, &mut keys);
        let count = keys.len();

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

        let mut ids = Vec::with_capacity(count);
        let mut weight = Vec::with_capacity(count);
        let mut group = Vec::with_capacity(count);
        let mut holder = Vec::with_capacity(count);
        let mut evicted = 0;
        for Ordered { key, owner, id } in merge_previous(jobs, keys, previous) {
            let w = key.weight;
            let g = group_of_set[key.set as usize];
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
            ids.push(id);
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

    /// The same problem as if `owner` (per job, [`NONE`] for unplaced) were the previous assignment.
    pub fn with_holders(&self, owner: &[u32]) -> Self {
        let mut next = self.clone();
        for group in &mut next.groups {
            group.sticky.iter_mut().for_each(|s| *s = 0);
        }
        for (j, &o) in owner.iter().enumerate() {
            next.holder[j] = o;
            if o != NONE {
                let group = &mut next.groups[self.group[j] as usize];
                group.sticky[group.slot[o as usize] as usize] += i64::from(self.weight[j]);
            }
        }
        next
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

/// The first 16 bytes of an id, big-endian, zero-padded. Ids contain no zero byte, so for ids shorter than 16
/// bytes (a zero last byte) prefixes compare exactly as the ids do; longer ids may tie.
fn prefix(id: &str) -> u128 {
    // Straight-line loads of whole words where the id is long enough: the fewer instructions per id, the more
    // ids' cache misses the CPU waits for at once (reading the id text is most of the rebalancer's time).
    let bytes = id.as_bytes();
    if let Some(head) = bytes.first_chunk::<16>() {
        return u128::from_be_bytes(*head);
    }
    let len = bytes.len();
    if let (Some(head), Some(tail)) = (bytes.first_chunk::<8>(), bytes.last_chunk::<8>()) {
        // 8 ≤ len < 16: the tail word overlaps the head by 16 − len bytes; shift them out (all of it when
        // len is 8: a shift by 64 would overflow).
        let low = u64::from_be_bytes(*tail)
            .checked_shl(8 * (16 - len) as u32)
            .unwrap_or(0);
        return u128::from(u64::from_be_bytes(*head)) << 64 | u128::from(low);
    }
    let mut key = 0_u128;
    for (i, &b) in bytes.iter().enumerate() {
        key |= u128::from(b) << (120 - 8 * i);
    }
    key
}

/// Compares two ids whose prefixes are `a` and `b`, reading the text only if the prefixes tie on long ids.
#[allow(clippy::ptr_arg)] // `&JobId` would mean reading the job (a cache miss) before knowing there is a tie.
fn compare(a: u128, a_id: &JobId, b: u128, b_id: &Cow<'_, JobId>) -> Ordering {
    a.cmp(&b).then_with(|| {
        if a & 0xff == 0 {
            Ordering::Equal
        } else {
            a_id.cmp(b_id)
        }
    })
}

/// What the canonical order needs of a job, read in one pass over the caller's slice and then sorted along
/// with the order, so that nothing reads the slice at random.
#[derive(Debug, Clone, Copy)]
struct Key {
    /// The id's [`prefix`].
    prefix: u128,
    /// Its index in the caller's slice.
    input: u32,
    /// Its weight, at least 1.
    weight: u32,
    /// Its label set (an index into the distinct label sets).
    set: u32,
}

/// A job in canonical order.
struct Ordered<'p> {
    /// What we read of it.
    key: Key,
    /// Its owner in `previous`.
    owner: Option<&'p NodeId>,
    /// Its id: `previous`'s copy when it has one (it is cheaper to clone, see the module docs).
    id: &'p JobId,
}

/// Sorts the keys into id order. Of repeated ids the lowest `(weight, labels)` is kept.
fn sort_keys(jobs: &[JobLoad<'_>], keys: &mut Vec<Key>) {
    keys.sort_unstable_by_key(|k| (k.prefix, k.input));
    // Runs of equal prefixes (long ids sharing 16 bytes, or repeated ids): order them by the whole id, then by
    // (weight, labels) so that the repeat kept does not depend on the input order.
    let mut start = 0;
    while start < keys.len() {
        let mut end = start + 1;
        while end < keys.len() && keys[end].prefix == keys[start].prefix {
            end += 1;
        }
        if end - start > 1 {
            keys[start..end].sort_by(|a, b| {
                let (x, y) = (&jobs[a.input as usize], &jobs[b.input as usize]);
                (&x.id, x.weight, x.labels.as_ref()).cmp(&(&y.id, y.weight, y.labels.as_ref()))
            });
        }
        start = end;
    }
    keys.dedup_by(|later, first| {
        later.prefix == first.prefix
            && jobs[later.input as usize].id == jobs[first.input as usize].id
    });
}

/// The jobs, from their sorted keys, each with its owner in `previous` (one pass over both).
fn merge_previous<'p>(
    jobs: &'p [JobLoad<'_>],
    keys: Vec<Key>,
    previous: &'p BTreeMap<JobId, NodeId>,
) -> impl Iterator<Item = Ordered<'p>> {
    let mut prev = previous.iter();
    let mut next_prev = prev
        .next()
        .map(|(id, node)| (prefix(id.as_str()), id, node));
    keys.into_iter().map(move |key| {
        // Only an address: the job itself is read (a cache miss, in hash order) only if `previous` lacks it or
        // a long id ties on its prefix.
        let id = &jobs[key.input as usize].id;
        let mut found = None;
        while let Some((p, prev_id, node)) = next_prev {
            let order = compare(p, prev_id, key.prefix, id);
            if order == Ordering::Greater {
                break;
            }
            next_prev = prev
                .next()
                .map(|(id, node)| (prefix(id.as_str()), id, node));
            if order == Ordering::Equal {
                found = Some((prev_id, node));
                break;
            }
        }
        Ordered {
            key,
            owner: found.map(|(_, node)| node),
            id: found.map_or_else(|| &**id, |(prev_id, _)| prev_id),
        }
    })
}
