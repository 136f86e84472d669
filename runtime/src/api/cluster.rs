//! `/v1/cluster`: members, leader and assignment, as the coordinator has them.

use std::collections::BTreeMap;

use axum::Json;
use axum::extract::State;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::AppState;
use super::error::{ApiError, ErrorBody};

/// The cluster as the coordinator sees it.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct ClusterView {
    /// The node that answered.
    pub node: String,
    /// The coordination backend (`inproc`, `etcd`, `zookeeper`).
    pub backend: String,
    /// The current leader, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub leader: Option<LeaderView>,
    /// The last published assignment, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub assignment: Option<AssignmentView>,
    /// Live members (open sessions), sorted by id.
    pub members: Vec<MemberView>,
}

/// The leader.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct LeaderView {
    /// Its node id.
    pub node: String,
    /// Fencing epoch of its term.
    pub epoch: u64,
}

/// The assignment.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct AssignmentView {
    /// Epoch of the leader term that published it.
    pub epoch: u64,
    /// Grows with every publication.
    pub version: u64,
    /// Jobs with an owner.
    pub jobs: usize,
}

/// A live member.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct MemberView {
    /// Node id.
    pub id: String,
    /// Its labels.
    pub labels: Vec<String>,
    /// Most total job weight it accepts, if limited.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub capacity: Option<u64>,
    /// Where its API listens.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub address: Option<String>,
    /// Where workers reach its cluster port (`[cluster] advertise`, else `listen`); absent without one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cluster_address: Option<String>,
    /// Its session id (hex).
    pub session: String,
    /// Jobs the assignment gives it.
    pub jobs_owned: usize,
    /// Whether it leads.
    pub leader: bool,
    /// Unix ms at which it was last seen alive: a member is listed only while its session is kept alive
    /// (within the session TTL), so this is the time of this answer. (The coordinator contract does not
    /// expose each session's last keep-alive.)
    pub last_seen_ms: i64,
}

/// Members (id, labels, address, jobs owned, last seen), leader and assignment epoch.
#[utoipa::path(get, path = "/v1/cluster", tag = "cluster",
    responses((status = 200, body = ClusterView), (status = 503, body = ErrorBody)))]
pub async fn cluster(State(app): State<AppState>) -> Result<Json<ClusterView>, ApiError> {
    let coordinator = app.scheduler.coordinator();
    let membership = coordinator.members().await?;
    let leader = coordinator.leader().await?;
    let assignment = coordinator.assignment().await?;
    let mut owned: BTreeMap<&str, usize> = BTreeMap::new();
    if let Some(assignment) = &assignment {
        for node in assignment.owners.values() {
            *owned.entry(node.as_str()).or_default() += 1;
        }
    }
    let now = app.clock.now_ms();
    let members = membership
        .members
        .iter()
        .map(|m| MemberView {
            id: m.node.id.to_string(),
            labels: m.node.labels.iter().cloned().collect(),
            capacity: m.node.capacity,
            address: m.node.address.clone(),
            cluster_address: m.node.cluster_address.clone(),
            session: m.session.to_string(),
            jobs_owned: owned.get(m.node.id.as_str()).copied().unwrap_or(0),
            leader: leader.as_ref().is_some_and(|l| l.session == m.session),
            last_seen_ms: now,
        })
        .collect();
    Ok(Json(ClusterView {
        node: app.scheduler.node_id().to_string(),
        backend: coordinator.backend().to_owned(),
        leader: leader.map(|l| LeaderView {
            node: l.node.to_string(),
            epoch: l.epoch,
        }),
        assignment: assignment.map(|a| AssignmentView {
            epoch: a.epoch,
            version: a.version,
            jobs: a.owners.len(),
        }),
        members,
    }))
}
