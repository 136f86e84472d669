//! Criterion benchmark of the rebalancer (`campanile::rebalance::rebalance`) at 100,000 and 1,000,000 jobs on
//! about 100 nodes: one node joining 99 that hold every job, three of 100 dying, and nothing changed.
//!
//! Jobs are handed over in hash order, as the leader's job map gives them, so the rebalancer pays for putting
//! them in id order; the `sorted` variant hands them over in id order. The `labels` variant splits the jobs
//! into four label groups over overlapping node sets, which takes the min-cost-flow path instead of the closed
//! form. The returned plan is dropped outside the timed section.

use std::borrow::Cow;
use std::collections::{BTreeMap, BTreeSet};
use std::hint::black_box;
use std::time::Duration;

use campanile::JobId;
use campanile::coordinator::NodeId;
use campanile::rebalance::{JobLoad, NodeSlot, rebalance};
use criterion::{BenchmarkId, Criterion, criterion_group, criterion_main};

fn job_id(i: usize) -> JobId {
    JobId::new(format!("job-{i:07}")).expect("valid id")
}

fn nodes(range: std::ops::Range<usize>) -> Vec<NodeSlot> {
    range
        .map(|i| NodeSlot::new(NodeId::new(format!("node-{i:03}")).expect("valid id")))
        .collect()
}

/// Nodes 0–59 carry `eu`, 40–99 `us`, every fifth `gpu`.
fn labelled_nodes(range: std::ops::Range<usize>) -> Vec<NodeSlot> {
    nodes(range)
        .into_iter()
        .enumerate()
        .map(|(i, node)| {
            let mut labels = BTreeSet::new();
            if i < 60 {
                labels.insert("eu".to_owned());
            }
            if i >= 40 {
                labels.insert("us".to_owned());
            }
            if i % 5 == 0 {
                labels.insert("gpu".to_owned());
            }
            node.with_labels(labels)
        })
        .collect()
}

/// A fixed pseudo-random permutation (xorshift Fisher–Yates), standing in for a hash map's order.
fn hash_order<T>(mut items: Vec<T>) -> Vec<T> {
    let mut state = 0x9e37_79b9_7f4a_7c15_u64;
    for i in (1..items.len()).rev() {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        items.swap(i, (state % (i as u64 + 1)) as usize);
    }
    items
}

struct Case {
    name: &'static str,
    jobs: Vec<JobLoad<'static>>,
    nodes: Vec<NodeSlot>,
    previous: BTreeMap<JobId, NodeId>,
}

fn cases(count: usize, labels: &'static [BTreeSet<String>; 3]) -> Vec<Case> {
    let sorted: Vec<JobLoad<'static>> = (0..count).map(|i| JobLoad::new(job_id(i))).collect();
    let shuffled = hash_order(sorted.clone());
    let on_99 = rebalance(&sorted, &nodes(0..99), &BTreeMap::new()).owners;
    let on_100 = rebalance(&sorted, &nodes(0..100), &BTreeMap::new()).owners;
    let survivors: Vec<NodeSlot> = nodes(0..100)
        .into_iter()
        .filter(|n| !["node-013", "node-050", "node-087"].contains(&n.id.as_str()))
        .collect();
    // Four label groups: eu, us, gpu, and none.
    let labelled: Vec<JobLoad<'static>> = (0..count)
        .map(|i| match i % 4 {
            3 => JobLoad::new(job_id(i)),
            k => JobLoad::new(job_id(i)).with_labels(Cow::Borrowed(&labels[k])),
        })
        .collect();
    let labelled_on_99 = rebalance(&labelled, &labelled_nodes(0..99), &BTreeMap::new()).owners;
    vec![
        Case {
            name: "join",
            jobs: shuffled.clone(),
            nodes: nodes(0..100),
            previous: on_99.clone(),
        },
        Case {
            name: "join_sorted",
            jobs: sorted,
            nodes: nodes(0..100),
            previous: on_99,
        },
        Case {
            name: "three_die",
            jobs: shuffled.clone(),
            nodes: survivors,
            previous: on_100.clone(),
        },
        Case {
            name: "unchanged",
            jobs: shuffled,
            nodes: nodes(0..100),
            previous: on_100,
        },
        Case {
            name: "join_labels",
            jobs: hash_order(labelled),
            nodes: labelled_nodes(0..100),
            previous: labelled_on_99,
        },
    ]
}

fn bench(c: &mut Criterion) {
    let labels: &'static [BTreeSet<String>; 3] = Box::leak(Box::new(
        ["eu", "us", "gpu"].map(|l| BTreeSet::from([l.to_owned()])),
    ));
    let mut group = c.benchmark_group("rebalance");
    group.sample_size(10);
    group.measurement_time(Duration::from_secs(10));
    for count in [100_000, 1_000_000] {
        for case in cases(count, labels) {
            group.bench_with_input(BenchmarkId::new(case.name, count), &case, |b, case| {
                b.iter_with_large_drop(|| {
                    rebalance(
                        black_box(&case.jobs),
                        black_box(&case.nodes),
                        black_box(&case.previous),
                    )
                })
            });
        }
    }
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
