//! `POST /v1/rebalance/plan`: what the rebalancer would assign, for a given scenario or for the live
//! cluster after a drain or a join. Planning changes nothing; read-only tokens may call it. The same
//! scenario format is what `campanile rebalance plan --input FILE` reads offline.

use std::borrow::Cow;
use std::collections::{BTreeMap, BTreeSet};

use axum::Json;
use axum::extract::State;
use campanile::JobId;
use campanile::coordinator::NodeId;
use campanile::rebalance::{JobLoad, NodeSlot, rebalance};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use super::AppState;
use super::body::{JsonObject, Params};
use super::error::{ApiError, ErrorBody};

/// A rebalance scenario.
#[derive(Debug, Clone, Default, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"jobs": [{"id": "a"}, {"id": "b", "weight": 2, "labels": ["region=eu"]}],
    "previous": {"a": "n1"}, "nodes": ["n1", {"id": "n2", "capacity": 10, "labels": ["region=eu"]}]}))]
pub struct Scenario {
    /// The jobs to place. (An empty body, or `{}`, plans the live cluster instead.)
    #[serde(default)]
    #[schema(nullable)]
    pub jobs: Vec<ScenarioJob>,
    /// The previous assignment, job id → node id (nodes absent from `nodes` are gone or drained). Entries
    /// for jobs not in `jobs` (deleted since) are ignored.
    #[serde(default)]
    #[schema(nullable, value_type = BTreeMap<String, NodeIdDoc>)]
    pub previous: BTreeMap<String, String>,
    /// The live nodes: an id, or an object with capacity and labels.
    #[serde(default)]
    #[schema(nullable)]
    pub nodes: Vec<ScenarioNode>,
}

/// A job in a scenario.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ScenarioJob {
    /// Job id.
    #[schema(
        pattern = r"^[A-Za-z0-9_-][A-Za-z0-9._-]{0,127}$|^\.[A-Za-z0-9_-][A-Za-z0-9._-]{0,126}$|^\.\.[A-Za-z0-9._-]{1,126}$"
    )]
    pub id: String,
    /// Load weight, 1 to 1000000 (default 1).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(minimum = 1, maximum = 1_000_000)]
    pub weight: Option<u32>,
    /// Labels a node must carry to own it.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub labels: Vec<String>,
}

/// A node in a scenario: `"id"` or `{"id", "capacity"?, "labels"?}`.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(untagged)]
pub enum ScenarioNode {
    /// Just an id: no labels, unlimited capacity.
    Id(NodeIdDoc),
    /// A node with capacity and labels.
    Node(ScenarioNodeSpec),
}

/// A node with capacity and labels.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ScenarioNodeSpec {
    /// Node id.
    #[schema(pattern = r"^[A-Za-z0-9._-]{1,64}$")]
    pub id: String,
    /// Most total job weight, at most 2^63 - 1.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub capacity: Option<u64>,
    /// Node labels.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub labels: Vec<String>,
}

/// A node id: 1 to 64 characters of `[A-Za-z0-9._-]`.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(transparent)]
#[schema(as = NodeId, pattern = r"^[A-Za-z0-9._-]{1,64}$")]
pub struct NodeIdDoc(pub String);

/// A plan.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct Plan {
    /// Job id → node id, for every placed job.
    pub assignment: BTreeMap<String, String>,
    /// Jobs that leave a node that is still live and still eligible for them: the moves chosen for balance.
    /// Orphans of gone nodes and new jobs are placed, not moved.
    pub moves: usize,
    /// Jobs whose previous owner is live but no longer eligible (labels): they must move; not in `moves`.
    pub evicted: usize,
    /// Jobs no eligible node has room for.
    pub unplaced: Vec<String>,
}

/// `POST /v1/rebalance/plan` parameters, for a plan of the live cluster (no body).
#[derive(Debug, Default, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct PlanParams {
    /// Plan as if this node left.
    #[serde(default, deserialize_with = "super::body::empty_is_none")]
    pub drain: Option<String>,
    /// Plan as if a node with this id joined.
    #[serde(default, deserialize_with = "super::body::empty_is_none")]
    pub join: Option<String>,
    /// Labels of the joining node, comma-separated.
    #[serde(default, deserialize_with = "super::body::empty_is_none")]
    pub join_labels: Option<String>,
}

impl ScenarioNode {
    /// The node's id.
    pub fn id(&self) -> &str {
        match self {
            ScenarioNode::Id(id) => &id.0,
            ScenarioNode::Node(node) => &node.id,
        }
    }
}

impl Scenario {
    /// Checks ids, weights and references; the error names the field.
    pub fn validate(&self) -> Result<(), ApiError> {
        let mut jobs = BTreeSet::new();
        for (i, job) in self.jobs.iter().enumerate() {
            JobId::new(&job.id).map_err(|e| ApiError::from(e.within(&format!("jobs[{i}]"))))?;
            if !jobs.insert(job.id.as_str()) {
                return Err(ApiError::invalid(
                    format!("jobs[{i}].id"),
                    format!("jobs[{i}].id: {:?} is listed twice", job.id),
                ));
            }
            if job.weight.is_some_and(|w| !(1..=1_000_000).contains(&w)) {
                return Err(ApiError::invalid(
                    format!("jobs[{i}].weight"),
                    format!("jobs[{i}].weight: must be 1 to 1000000"),
                ));
            }
        }
        let mut nodes = BTreeSet::new();
        for (i, node) in self.nodes.iter().enumerate() {
            NodeId::new(node.id()).map_err(|e| {
                ApiError::invalid(format!("nodes[{i}]"), format!("nodes[{i}]: {e}"))
            })?;
            if let ScenarioNode::Node(ScenarioNodeSpec {
                capacity: Some(capacity),
                ..
            }) = node
                && i64::try_from(*capacity).is_err()
            {
                return Err(ApiError::invalid(
                    format!("nodes[{i}].capacity"),
                    format!(
                        "nodes[{i}].capacity: {capacity} must be at most {}",
                        i64::MAX
                    ),
                ));
            }
            if !nodes.insert(node.id()) {
                return Err(ApiError::invalid(
                    format!("nodes[{i}]"),
                    format!("nodes[{i}]: {:?} is listed twice", node.id()),
                ));
            }
        }
        // An entry for a job that is not in the scenario (deleted since) is ignored: it cannot move.
        for (job, node) in self
            .previous
            .iter()
            .filter(|(job, _)| jobs.contains(job.as_str()))
        {
            NodeId::new(node).map_err(|e| {
                ApiError::invalid(format!("previous.{job}"), format!("previous.{job}: {e}"))
            })?;
        }
        Ok(())
    }
}

/// The plan for a scenario: validated, then computed by the engine's minimal-move rebalancer
/// (`campanile::rebalance::rebalance`), the same pure function the leader uses.
pub fn plan(scenario: &Scenario) -> Result<Plan, ApiError> {
    scenario.validate()?;
    let set = |labels: &[String]| labels.iter().cloned().collect::<BTreeSet<String>>();
    let mut jobs = Vec::with_capacity(scenario.jobs.len());
    for job in &scenario.jobs {
        jobs.push(
            JobLoad::new(JobId::new(&job.id)?)
                .with_weight(job.weight.unwrap_or(1))
                .with_labels(Cow::<BTreeSet<String>>::Owned(set(&job.labels))),
        );
    }
    let mut nodes = Vec::with_capacity(scenario.nodes.len());
    for node in &scenario.nodes {
        let id = NodeId::new(node.id())?;
        nodes.push(match node {
            ScenarioNode::Id(_) => NodeSlot::new(id),
            ScenarioNode::Node(spec) => {
                let slot = NodeSlot::new(id).with_labels(set(&spec.labels));
                match spec.capacity {
                    Some(capacity) => slot.with_capacity(capacity),
                    None => slot,
                }
            }
        });
    }
    let mut previous = BTreeMap::new();
    let known: BTreeSet<&str> = scenario.jobs.iter().map(|j| j.id.as_str()).collect();
    for (job, node) in scenario
        .previous
        .iter()
        .filter(|(job, _)| known.contains(job.as_str()))
    {
        previous.insert(JobId::new(job)?, NodeId::new(node)?);
    }
    let plan = rebalance(&jobs, &nodes, &previous);
    Ok(Plan {
        assignment: plan
            .owners
            .iter()
            .map(|(job, node)| (job.to_string(), node.to_string()))
            .collect(),
        moves: plan.moves,
        evicted: plan.evicted,
        unplaced: plan.unplaced.iter().map(ToString::to_string).collect(),
    })
}

/// Plan a scenario (the body) or the live cluster (no body), after `?drain=NODE` (the node leaves) and
/// `?join=NODE` (a node joins), if given.
#[utoipa::path(post, path = "/v1/rebalance/plan", tag = "cluster", params(PlanParams),
    request_body(content = Option<Scenario>),
    responses((status = 200, body = Plan), (status = 400, body = ErrorBody),
        (status = 404, body = ErrorBody, description = "`drain` names no node of the cluster or scenario")))]
pub async fn plan_route(
    State(app): State<AppState>,
    Params(params): Params<PlanParams>,
    body: JsonObject,
) -> Result<Json<Plan>, ApiError> {
    let scenario = if body.0.is_empty() {
        live_scenario(&app, &params).await?
    } else {
        let mut scenario: Scenario = body.into_typed()?;
        if let Some(drain) = &params.drain {
            let before = scenario.nodes.len();
            scenario.nodes.retain(|n| n.id() != drain);
            if scenario.nodes.len() == before {
                return Err(ApiError::not_found(format!(
                    "drain: {drain:?} is not a node of the scenario"
                ))
                .with_field("drain"));
            }
        }
        if let Some(join) = &params.join {
            scenario.nodes.push(joining(join, &params));
        }
        scenario
    };
    Ok(Json(plan(&scenario)?))
}

/// The node `?join=` adds, with `join_labels`.
fn joining(id: &str, params: &PlanParams) -> ScenarioNode {
    ScenarioNode::Node(ScenarioNodeSpec {
        id: id.to_owned(),
        capacity: None,
        labels: params
            .join_labels
            .as_deref()
            .unwrap_or("")
            .split(',')
            .filter(|l| !l.is_empty())
            .map(str::to_owned)
            .collect(),
    })
}

async fn live_scenario(app: &AppState, params: &PlanParams) -> Result<Scenario, ApiError> {
    let coordinator = app.scheduler.coordinator();
    let jobs = app.scheduler.list().await?;
    let members = coordinator.members().await?;
    let assignment = coordinator.assignment().await?;
    let mut nodes: Vec<ScenarioNode> = members
        .members
        .iter()
        .filter(|m| params.drain.as_deref() != Some(m.node.id.as_str()))
        .map(|m| {
            ScenarioNode::Node(ScenarioNodeSpec {
                id: m.node.id.to_string(),
                capacity: m.node.capacity,
                labels: m.node.labels.iter().cloned().collect(),
            })
        })
        .collect();
    if let Some(drain) = &params.drain
        && !members.members.iter().any(|m| m.node.id.as_str() == drain)
    {
        return Err(
            ApiError::not_found(format!("drain: {drain:?} is not a live member"))
                .with_field("drain"),
        );
    }
    if let Some(join) = &params.join {
        nodes.push(joining(join, params));
    }
    Ok(Scenario {
        jobs: jobs
            .iter()
            .map(|j| ScenarioJob {
                id: j.id.to_string(),
                weight: Some(j.spec.weight),
                labels: j.spec.node_labels.iter().cloned().collect(),
            })
            .collect(),
        previous: assignment
            .map(|a| {
                a.owners
                    .iter()
                    .filter(|(j, _)| jobs.iter().any(|job| job.id == **j))
                    .map(|(j, n)| (j.to_string(), n.to_string()))
                    .collect()
            })
            .unwrap_or_default(),
        nodes,
    })
}
