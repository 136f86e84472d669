//! `/v1/workers`: the workers of executor groups connected to the node that answers.

use std::collections::BTreeMap;

use axum::Json;
use axum::extract::State;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::AppState;

/// The workers connected to one node.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct WorkersView {
    /// The node that answered (workers connect to each node; a job's fires go to the workers connected to
    /// its owner).
    pub node: String,
    /// Whether this node has a cluster port (`--cluster-listen`); without one no worker can connect.
    pub listening: bool,
    /// Connected workers, by group then id.
    pub workers: Vec<WorkerView>,
}

/// One worker.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct WorkerView {
    /// Its id (`--node-id`), given to commands as `CAMPANILE_WORKER_ID`.
    pub id: String,
    /// Its executor group.
    pub group: String,
    /// The node it is connected to (the one that answered).
    pub node: String,
    /// Its labels (`--labels k=v`).
    pub labels: BTreeMap<String, String>,
    /// Its concurrency limit.
    pub max_concurrent: u32,
    /// Runs it reports in progress (for every node it serves).
    pub running: u32,
    /// Fires this node sent it that have not ended.
    pub in_flight: u32,
    /// Unix ms it was last heard from (it says it is alive every 500 ms).
    pub last_heartbeat_ms: i64,
    /// Its Campanile version.
    pub version: String,
    /// Handlers it offers (embedded workers); empty for `campanile worker`.
    pub handlers: Vec<String>,
}

/// Workers of executor groups connected to this node: group, node, labels, running fires, last heartbeat,
/// version.
#[utoipa::path(get, path = "/v1/workers", tag = "cluster",
    responses((status = 200, body = WorkersView)))]
pub async fn list_workers(State(app): State<AppState>) -> Json<WorkersView> {
    let workers = app
        .scheduler
        .workers()
        .into_iter()
        .map(|w| WorkerView {
            id: w.id,
            group: w.group,
            node: w.node,
            labels: w.labels,
            max_concurrent: w.max_concurrent,
            running: w.running,
            in_flight: w.in_flight,
            last_heartbeat_ms: w.last_heartbeat_ms,
            version: w.version,
            handlers: w.handlers,
        })
        .collect();
    Json(WorkersView {
        node: app.scheduler.node_id().to_string(),
        listening: app.scheduler.cluster_listen().is_some(),
        workers,
    })
}
