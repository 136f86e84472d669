//! Placement of jobs on live nodes, as the leader publishes it. Pure.
//!
//! This is the simple sticky placement the engine starts with: a job stays where it is while its owner is live
//! and eligible; an orphan or new job goes to the least-loaded eligible node (ties by node id). It keeps
//! ownership stable and is deterministic, but it does not move jobs to even out loads after a join; the
//! minimal-move rebalancer (docs/rebalancer.md, cluster issue) replaces it.

use std::collections::{BTreeMap, HashMap};

use crate::coordinator::{Member, NodeId};
use crate::job::{Job, JobId};

/// Places every job on an eligible live member; jobs no member can take are left out (unowned).
pub fn place<'a>(
    jobs: impl IntoIterator<Item = &'a Job>,
    members: &[Member],
    previous: Option<&BTreeMap<JobId, NodeId>>,
) -> BTreeMap<JobId, NodeId> {
    let mut load: HashMap<&NodeId, u64> = members.iter().map(|m| (&m.node.id, 0)).collect();
    let by_id: HashMap<&NodeId, &Member> = members.iter().map(|m| (&m.node.id, m)).collect();
    let eligible = |job: &Job, member: &Member| job.spec.node_labels.is_subset(&member.node.labels);
    let mut jobs: Vec<&Job> = jobs.into_iter().collect();
    jobs.sort_by(|a, b| a.id.cmp(&b.id));
    let mut owners = BTreeMap::new();
    let mut orphans = Vec::new();
    for job in jobs {
        let sticky = previous
            .and_then(|p| p.get(&job.id))
            .and_then(|owner| by_id.get(owner))
            .filter(|m| eligible(job, m));
        match sticky {
            Some(member) => {
                *load.get_mut(&member.node.id).expect("member has a load") +=
                    u64::from(job.spec.weight);
                owners.insert(job.id.clone(), member.node.id.clone());
            }
            None => orphans.push(job),
        }
    }
    for job in orphans {
        let best = members
            .iter()
            .filter(|m| eligible(job, m))
            .filter(|m| {
                m.node
                    .capacity
                    .is_none_or(|cap| load[&m.node.id] + u64::from(job.spec.weight) <= cap)
            })
            .min_by(|a, b| {
                load[&a.node.id]
                    .cmp(&load[&b.node.id])
                    .then_with(|| a.node.id.cmp(&b.node.id))
            });
        if let Some(member) = best {
            *load.get_mut(&member.node.id).expect("member has a load") +=
                u64::from(job.spec.weight);
            owners.insert(job.id.clone(), member.node.id.clone());
        }
    }
    owners
}
