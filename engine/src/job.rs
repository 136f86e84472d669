//! The job model: what a user schedules, as stored in the coordinator and sent over the API.
//!
//! A [`JobSpec`] is what the user writes; a [`Job`] is a spec with its identity, creation instant and the
//! store revision it was read at. Every field has a documented default so that the smallest useful job is
//! `{"name": "...", "schedule": "...", "target": {...}}`. [`JobSpec::validate`] checks everything a schedule
//! cannot check by its type and returns errors that name the field and the value.

mod id;
mod policy;
mod target;
mod validate;

#[cfg(test)]
mod tests;

use std::collections::BTreeMap;
use std::collections::BTreeSet;

use serde::{Deserialize, Serialize};

pub use id::{FireId, JobId};
pub use policy::{Backoff, Delivery, DstPolicy, MisfirePolicy, Overlap, RetryPolicy};
pub use target::{CommandTarget, HandlerTarget, HttpTarget, Target};
pub use validate::ValidationError;

use crate::schedule::Schedule;

/// What a user asks to run and when. Serialized as the job JSON of the HTTP API.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct JobSpec {
    /// Human name; need not be unique. Given to targets as `CAMPANILE_JOB_NAME`.
    pub name: String,
    /// Namespace for listing and access; defaults to `"default"`.
    #[serde(default = "default_namespace")]
    pub namespace: String,
    /// Free-form labels for filtering (`team=payments`).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub labels: BTreeMap<String, String>,
    /// When it fires: cron (5, 6 or 7 fields), a macro, `@every 30s [from RFC3339]` or `@at RFC3339`.
    pub schedule: Schedule,
    /// IANA time zone the cron fields are read in; defaults to `UTC`.
    #[serde(default = "default_timezone")]
    pub timezone: String,
    /// How cron wall-clock times that fall into a DST gap or overlap are handled.
    #[serde(default, skip_serializing_if = "is_default")]
    pub dst: DstPolicy,
    /// What runs.
    pub target: Target,
    /// What happens to instants that passed while nobody could fire them.
    #[serde(default)]
    pub misfire: MisfirePolicy,
    /// What happens when an instant comes while the previous run is still going.
    #[serde(default)]
    pub overlap: Overlap,
    /// Retries of a failed run, within the same fire.
    #[serde(default)]
    pub retry: RetryPolicy,
    /// At-most-once (default) or at-least-once delivery of fires whose outcome is in doubt after a crash.
    #[serde(default)]
    pub delivery: Delivery,
    /// Random delay in `[0, jitter]` added to each start, drawn from the fire id (stable across nodes).
    #[serde(
        default,
        with = "humantime_serde",
        skip_serializing_if = "Option::is_none"
    )]
    pub jitter: Option<std::time::Duration>,
    /// No instant before this one fires (RFC 3339).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub start_at: Option<chrono::DateTime<chrono::Utc>>,
    /// No instant after this one fires (RFC 3339).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub end_at: Option<chrono::DateTime<chrono::Utc>>,
    /// A paused job keeps its schedule but records no runs until resumed.
    #[serde(default)]
    pub paused: bool,
    /// Load weight for the rebalancer; defaults to 1.
    #[serde(default = "default_weight")]
    pub weight: u32,
    /// Labels a node must carry to own this job (e.g. `["region=eu"]`).
    #[serde(default, skip_serializing_if = "BTreeSet::is_empty")]
    pub node_labels: BTreeSet<String>,
}

/// A stored job: a spec plus its identity and the store revision it was last written at.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Job {
    /// Unique id, chosen by the client or generated.
    pub id: JobId,
    /// Store revision of the last write of this job (0 before it is stored).
    #[serde(default)]
    pub revision: u64,
    /// Unix ms when the job was created; instants before it are never owed.
    pub created_ms: i64,
    /// Unix ms of the last update of the spec; misfire accounting after an update starts here.
    pub updated_ms: i64,
    /// What the user asked for.
    #[serde(flatten)]
    pub spec: JobSpec,
}

impl Job {
    /// A new job, created at `now_ms`, not yet stored.
    pub fn new(id: JobId, spec: JobSpec, now_ms: i64) -> Self {
        Self {
            id,
            revision: 0,
            created_ms: now_ms,
            updated_ms: now_ms,
            spec,
        }
    }

    /// The fire id of this job's instant `scheduled_ms`.
    pub fn fire_id(&self, scheduled_ms: i64) -> FireId {
        FireId::new(self.id.clone(), scheduled_ms)
    }
}

impl JobSpec {
    /// A job with every policy at its default.
    pub fn new(name: impl Into<String>, schedule: Schedule, target: Target) -> Self {
        Self {
            name: name.into(),
            namespace: default_namespace(),
            labels: BTreeMap::new(),
            schedule,
            timezone: default_timezone(),
            dst: DstPolicy::default(),
            target,
            misfire: MisfirePolicy::default(),
            overlap: Overlap::default(),
            retry: RetryPolicy::default(),
            delivery: Delivery::default(),
            jitter: None,
            start_at: None,
            end_at: None,
            paused: false,
            weight: default_weight(),
            node_labels: BTreeSet::new(),
        }
    }

    /// The parsed time zone. Only fails for a spec that did not pass [`JobSpec::validate`].
    pub fn tz(&self) -> Result<chrono_tz::Tz, ValidationError> {
        self.timezone.parse::<chrono_tz::Tz>().map_err(|_| {
            ValidationError::new("timezone", &self.timezone, "not an IANA time zone name")
        })
    }
}

fn default_namespace() -> String {
    "default".to_owned()
}

fn default_timezone() -> String {
    "UTC".to_owned()
}

fn default_weight() -> u32 {
    1
}

fn is_default<T: Default + PartialEq>(value: &T) -> bool {
    *value == T::default()
}
