//! The values stored in etcd: engine types as JSON, plus the two small records of this backend (the
//! leader key and the assignment), and how revisions of the keys fill in the fields etcd keeps for us.

use std::collections::BTreeMap;

use campanile::coordinator::{Assignment, CoordResult, Leader, NodeId, SessionId};
use campanile::job::{Job, JobId};
use etcd_client::KeyValue;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use crate::error::corrupt;

/// Decodes the JSON value at `key`; a value that does not decode is a corrupt-value error, never a panic.
pub(crate) fn decode<T: DeserializeOwned>(key: &[u8], value: &[u8]) -> CoordResult<T> {
    serde_json::from_slice(value).map_err(|e| corrupt(key, e))
}

/// Encodes a value as JSON.
pub(crate) fn encode<T: Serialize>(value: &T) -> CoordResult<Vec<u8>> {
    serde_json::to_vec(value)
        .map_err(|e| campanile::coordinator::CoordError::Invalid(format!("cannot encode: {e}")))
}

/// The job at `kv`, with its revision set to the key's mod revision.
pub(crate) fn job(kv: &KeyValue) -> CoordResult<Job> {
    let mut job: Job = decode(kv.key(), kv.value())?;
    job.revision = revision(kv.mod_revision());
    Ok(job)
}

/// The `leader` key's value; the epoch is the key's create revision.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct LeaderValue {
    pub(crate) node: NodeId,
    pub(crate) session: SessionId,
}

/// The leader at `kv`.
pub(crate) fn leader(kv: &KeyValue) -> CoordResult<Leader> {
    let value: LeaderValue = decode(kv.key(), kv.value())?;
    Ok(Leader {
        node: value.node,
        session: value.session,
        epoch: revision(kv.create_revision()),
    })
}

/// The `assignment` key's value: the owners grouped by node (each node id stored once, so the value stays
/// small); the version is the key's mod revision.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct AssignmentValue {
    pub(crate) epoch: u64,
    pub(crate) jobs: BTreeMap<NodeId, Vec<JobId>>,
}

impl AssignmentValue {
    pub(crate) fn new(epoch: u64, owners: BTreeMap<JobId, NodeId>) -> Self {
        let mut jobs: BTreeMap<NodeId, Vec<JobId>> = BTreeMap::new();
        for (job, node) in owners {
            jobs.entry(node).or_default().push(job);
        }
        Self { epoch, jobs }
    }
}

/// The assignment at `kv`.
pub(crate) fn assignment(kv: &KeyValue) -> CoordResult<Assignment> {
    let value: AssignmentValue = decode(kv.key(), kv.value())?;
    let mut owners = BTreeMap::new();
    for (node, jobs) in value.jobs {
        for job in jobs {
            if owners.insert(job, node.clone()).is_some() {
                return Err(corrupt(kv.key(), "a job is assigned to two nodes"));
            }
        }
    }
    Ok(Assignment {
        epoch: value.epoch,
        version: revision(kv.mod_revision()),
        owners,
    })
}

/// An etcd revision (never negative) as the contract's `u64`.
pub(crate) fn revision(r: i64) -> u64 {
    r.max(0) as u64
}
