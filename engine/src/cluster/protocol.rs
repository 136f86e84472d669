//! The messages between an owning node's hub and its workers, as they travel over `ractor_cluster`.
//!
//! Both directions are casts (`ractor_cluster` carries a cast at most once and keeps the order of one
//! session's messages); the request/answer pairs (an offer and its `Ready`, a go and its acknowledgement, a
//! run and its result) are matched by a dispatch number chosen by the hub. Messages are JSON inside `ractor_cluster`'s frames: a
//! message that does not decode (a peer of another version, a corrupt frame) becomes `Invalid` and is logged,
//! never a panic.

use std::collections::BTreeMap;

use ractor::BytesConvertable;
use serde::{Deserialize, Serialize};

use crate::coordinator::SessionId;
use crate::job::{JobId, Target};
use crate::run::Outcome;

/// The process group every hub (the owning side of a node) joins; workers watch it to find nodes.
pub const HUBS_GROUP: &str = "campanile.hubs";

/// The process group of one node's hub: a worker answers the node that sent a start through it.
pub fn hub_group(node_id: &str) -> String {
    format!("campanile.hub.{node_id}")
}

/// The process group a worker's actor joins, one per worker: the hub finds the actor to answer by it.
pub fn worker_group(worker_id: &str) -> String {
    format!("campanile.worker.{worker_id}")
}

/// What a worker tells about itself, in every `Alive` (so a hub that forgot it learns it again).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WorkerInfo {
    /// Unique worker id (`--node-id`, by default `hostname-pid`); given to commands as `CAMPANILE_WORKER_ID`.
    pub id: String,
    /// The executor group it serves.
    pub group: String,
    /// Free-form labels (`k=v`).
    pub labels: BTreeMap<String, String>,
    /// Most runs at once.
    pub max_concurrent: u32,
    /// The worker's Campanile version.
    pub version: String,
    /// Handlers it registered (embedded workers); empty for `campanile worker`.
    pub handlers: Vec<String>,
}

/// The owning node's session as the worker is told it: a fire claimed under `session` may start only
/// strictly before `valid_until_ms` (the owner's own fencing check, `timer::Lease::permits`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct OwnerLease {
    /// The owner's current session.
    pub session: SessionId,
    /// Wall time (Unix ms) until which the owner has proven it valid.
    pub valid_until_ms: i64,
}

/// Hub → worker.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub enum ToWorker {
    /// The owner is alive; its session is this one (`None`: it has no valid session, start nothing of it).
    Heartbeat {
        /// The owning node's id.
        owner: String,
        /// Its session, if valid.
        lease: Option<OwnerLease>,
    },
    /// Offer one attempt of a fire: the worker answers `Ready` (it holds a slot for it until its start-by
    /// time) or `Refused`, and starts nothing before the owner's `Go`.
    Start(Box<StartFire>),
    /// Start the attempt offered by `Start` with this dispatch number, unless it is too late now; answered by
    /// `Acked` (started) or `Refused`. The owner sends it to one worker only, and only after that worker's
    /// `Ready`: until then no worker can have started the fire, so the owner may offer it to another.
    Go {
        /// The owning node's id (dispatch numbers are per node).
        owner: String,
        /// The dispatch number.
        dispatch: u64,
    },
    /// Stop this dispatch's run (the owner cancelled it: `cancel_previous`, shutdown); answered by its
    /// `Finished` as usual.
    Cancel {
        /// The owning node's id (dispatch numbers are per node).
        owner: String,
        /// The dispatch number.
        dispatch: u64,
    },
    /// A message that did not decode.
    Invalid(String),
}

/// One attempt of one fire sent to a worker.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct StartFire {
    /// The hub's number for this send (the acknowledgement and result carry it).
    pub dispatch: u64,
    /// The owning node's id (`CAMPANILE_NODE_ID`).
    pub owner: String,
    /// The job.
    pub job: JobId,
    /// The scheduled instant, Unix ms.
    pub scheduled_ms: i64,
    /// The job's name.
    pub job_name: String,
    /// 1 for the first attempt.
    pub attempt: u32,
    /// What to run.
    pub target: Target,
    /// The owner's session the fire was claimed under (`None` for manual fires, which are not claimed).
    pub session: Option<SessionId>,
    /// The owner's session as of the send.
    pub lease: Option<OwnerLease>,
    /// Wall time (Unix ms) after which this send must not start: never later than the end of the owner's claim
    /// window, and sooner when the owner may want to try another worker.
    pub start_by_ms: i64,
}

/// Worker → hub.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub enum ToHub {
    /// The worker is alive and serves its group (the first one registers it).
    Alive {
        /// Who it is.
        info: WorkerInfo,
        /// Runs in progress.
        running: u32,
    },
    /// The worker can take the offered dispatch and waits for the owner's `Go`.
    Ready {
        /// The dispatch number.
        dispatch: u64,
    },
    /// The dispatch started.
    Acked {
        /// The dispatch number.
        dispatch: u64,
    },
    /// The dispatch did not start and never will.
    Refused {
        /// The dispatch number.
        dispatch: u64,
        /// Why (too late, the owner's session is gone, at its concurrency limit).
        reason: String,
    },
    /// The dispatch's run ended.
    Finished {
        /// The dispatch number.
        dispatch: u64,
        /// How.
        result: WireResult,
    },
    /// A message that did not decode.
    Invalid(String),
}

/// One attempt's result (the engine's `exec::AttemptResult`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WireResult {
    /// `succeeded`, `failed` or `timed_out`.
    pub outcome: Outcome,
    /// Exit code or HTTP status.
    pub code: Option<i32>,
    /// Output tail.
    pub output: String,
    /// Why, when it did not succeed.
    pub reason: Option<String>,
}

impl From<crate::exec::AttemptResult> for WireResult {
    fn from(r: crate::exec::AttemptResult) -> Self {
        Self {
            outcome: r.outcome,
            code: r.code,
            output: r.output,
            reason: r.reason,
        }
    }
}

impl From<WireResult> for crate::exec::AttemptResult {
    fn from(r: WireResult) -> Self {
        Self {
            outcome: r.outcome,
            code: r.code,
            output: r.output,
            reason: r.reason,
        }
    }
}

impl BytesConvertable for ToWorker {
    fn into_bytes(self) -> Vec<u8> {
        serde_json::to_vec(&self).unwrap_or_default()
    }
    fn from_bytes(bytes: Vec<u8>) -> Self {
        serde_json::from_slice(&bytes).unwrap_or_else(|e| Self::Invalid(e.to_string()))
    }
}

impl BytesConvertable for ToHub {
    fn into_bytes(self) -> Vec<u8> {
        serde_json::to_vec(&self).unwrap_or_default()
    }
    fn from_bytes(bytes: Vec<u8>) -> Self {
        serde_json::from_slice(&bytes).unwrap_or_else(|e| Self::Invalid(e.to_string()))
    }
}
