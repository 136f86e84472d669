//! `/v1/workers`: the workers of executor groups, of every live node (`scope=cluster`, the default: this
//! node's and those each other member lists, read from its `scope=node` answer with the caller's token) or
//! of the node that answers (`scope=node`).

use std::collections::BTreeMap;

use axum::Json;
use axum::extract::State;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use super::AppState;
use super::body::Params;
use super::error::{ApiError, ErrorBody};
use super::fan_in::UnreachableNode;

/// The workers connected to the cluster's nodes (or to one node).
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct WorkersView {
    /// The node that answered (workers connect to each node; a job's fires go to the workers connected to
    /// its owner).
    pub node: String,
    /// Whether the answering node has a cluster port (`--cluster-listen`); without one no worker can connect
    /// to it.
    pub listening: bool,
    /// Connected workers, by group, id, then the node they are connected to (a worker that serves several
    /// nodes is listed once per node).
    pub workers: Vec<WorkerView>,
    /// The nodes whose workers are listed (empty for `scope=node`: the answering node only).
    #[serde(default)]
    pub nodes: Vec<String>,
    /// Live members that did not answer, and why (their workers are missing from the list).
    #[serde(default)]
    pub unreachable: Vec<UnreachableNode>,
}

/// One worker, as one node sees it.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct WorkerView {
    /// Its id (`--node-id`), given to commands as `CAMPANILE_WORKER_ID`.
    pub id: String,
    /// Its executor group.
    pub group: String,
    /// The node it is connected to.
    pub node: String,
    /// Its labels (`--labels k=v`).
    pub labels: BTreeMap<String, String>,
    /// Its concurrency limit.
    pub max_concurrent: u32,
    /// Runs it reports in progress (for every node it serves).
    pub running: u32,
    /// Fires `node` sent it that have not ended.
    pub in_flight: u32,
    /// Unix ms `node` last heard from it (it says it is alive every 500 ms).
    pub last_heartbeat_ms: i64,
    /// Its Campanile version.
    pub version: String,
    /// Handlers it offers (embedded workers); empty for `campanile worker`.
    pub handlers: Vec<String>,
}

/// `GET /v1/workers` parameters.
#[derive(Debug, Default, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct WorkersParams {
    /// `cluster` (default): the workers of every live member; `node`: those connected to this node.
    #[param(value_type = Option<String>, pattern = r"^(|cluster|node)$")]
    #[serde(default, deserialize_with = "super::body::empty_is_none")]
    pub scope: Option<String>,
}

/// Workers of executor groups: group, node, labels, running fires, last heartbeat, version. By default those
/// of every live node (each other member is asked for its own with the caller's token, 2 s each;
/// `unreachable` names those that did not answer), with `scope=node` those connected to this node.
#[utoipa::path(get, path = "/v1/workers", tag = "cluster", params(WorkersParams),
    responses((status = 200, body = WorkersView), (status = 400, body = ErrorBody)))]
pub async fn list_workers(
    State(app): State<AppState>,
    headers: axum::http::HeaderMap,
    Params(params): Params<WorkersParams>,
) -> Result<Json<WorkersView>, ApiError> {
    let cluster = super::live::scope(params.scope.as_deref())?;
    let mut view = own(&app);
    if cluster {
        let authorization = headers.get(axum::http::header::AUTHORIZATION).cloned();
        let (others, unreachable) =
            super::fan_in::peer_reads::<WorkersView>(&app, authorization, "/v1/workers?scope=node")
                .await;
        view.nodes.push(view.node.clone());
        for (node, theirs) in others {
            view.workers.extend(theirs.workers);
            view.nodes.push(node);
        }
        view.nodes.sort();
        view.workers
            .sort_by(|a, b| (&a.group, &a.id, &a.node).cmp(&(&b.group, &b.id, &b.node)));
        view.unreachable = unreachable;
    }
    Ok(Json(view))
}

/// The workers connected to this node.
fn own(app: &AppState) -> WorkersView {
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
    WorkersView {
        node: app.scheduler.node_id().to_string(),
        listening: app.scheduler.cluster_listen().is_some(),
        workers,
        nodes: Vec::new(),
        unreachable: Vec::new(),
    }
}
