//! The job model: what a user schedules, as stored in the coordinator and sent over the API.
//!
//! A [`JobSpec`] is what the user writes; a [`Job`] is a spec with its identity, creation instant and the
//! store revision it was read at. Every field has a documented default so that the smallest useful job is
//! `{"name": "...", "schedule": "...", "target": {...}}`. [`JobSpec::validate`] checks everything a schedule
//! cannot check by its type and returns errors that name the field and the value.

mod id;
mod policy;
mod request;
mod secret;
mod target;
mod validate;

#[cfg(test)]
mod tests;

use std::collections::BTreeMap;
use std::collections::BTreeSet;
use std::sync::Arc;

use serde::{Deserialize, Serialize};

pub use id::{FireId, JobId};
pub use policy::{
    Backoff, Delivery, DstHandling, DstPolicy, DstRepeat, MisfirePolicy, Overlap, RetryPolicy,
};
pub use request::{MAX_PENDING_REQUESTS, RunRequest};
pub use secret::{MAX_SECRET_FILE, SecretValue};
pub use target::{CommandTarget, HandlerTarget, HttpTarget, RunAs, Target};
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
    /// How cron wall-clock times that fall into a DST gap are handled.
    #[serde(default, skip_serializing_if = "is_default")]
    pub dst: DstPolicy,
    /// On which pass of a repeated wall-clock range (the autumn hour) fixed cron times run.
    #[serde(default, skip_serializing_if = "is_default")]
    pub dst_repeat: DstRepeat,
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
    /// Where it runs: on a worker of this executor group (see `crate::cluster`); on the owning node if absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub executor: Option<ExecutorGroup>,
}

/// A job's executor group: `{"group": "billing"}`. The owning node still claims and fences every instant; a
/// worker of the group runs it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ExecutorGroup {
    /// The group's name (1 to 64 of `A-Z a-z 0-9 . _ -`), as workers give it with `--group`.
    pub group: String,
}

/// A stored job: a spec plus its identity and the store revision it was last written at.
///
/// Unlike [`JobSpec`], a stored job tolerates fields it does not know: every node of a cluster reads it,
/// and during a rolling upgrade a node of the older version must read jobs written by a newer one (an update
/// made through the older node drops the fields it does not know). Users'
/// input is checked as a `JobSpec`, which rejects unknown fields.
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
    ///
    /// Shared: every copy of a job (the backend's, the engine's, a watch event's) holds the same spec, so a
    /// node keeps one spec per job however many places hold the job.
    #[serde(flatten)]
    pub spec: Arc<JobSpec>,
    /// The schedules it had before updates changed it, oldest first: each owes its instants up to its
    /// `until_ms`, and the current spec owes its instants after the last one's. Kept so that a node settling
    /// instants claimed or missed before an update enumerates them as they were scheduled, not by the new
    /// schedule (see [`Job::next_instant`]). At most [`MAX_PAST_SCHEDULES`] are kept.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub past_schedules: Vec<PastSchedule>,
    /// Runs asked for outside the schedule (`trigger`, `backfill`) that its owner has not run and recorded
    /// yet, oldest first (at most [`MAX_PENDING_REQUESTS`]).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub requests: Vec<RunRequest>,
    /// The latest instant a trigger of this job was given: the next trigger takes a later one, so no two
    /// triggers share a fire id, even once the first has left `requests`.
    #[serde(default, skip_serializing_if = "is_default")]
    pub last_trigger_ms: i64,
}

/// How many due jobs the timer and the executor read ahead of the one they handle (see [`Job::warm`]).
pub(crate) const WARM_AHEAD: usize = 64;

/// From how many held jobs the timer reads ahead: some 10 MB of jobs and specs, more than a cache holds; below
/// it the jobs stay in cache and reading ahead only costs (10 % of a 1,000-job wake).
pub(crate) const WARM_MIN_JOBS: usize = 16_384;

/// How many earlier schedules a job keeps. A claim or a missed range that reaches back across more schedule
/// changes than this is enumerated with the oldest one kept.
pub const MAX_PAST_SCHEDULES: usize = 16;

/// A schedule a job had before an update changed when it fires.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PastSchedule {
    /// The schedule then in force.
    pub schedule: Schedule,
    /// Its time zone.
    pub timezone: String,
    /// Its DST policy.
    #[serde(default, skip_serializing_if = "is_default")]
    pub dst: DstPolicy,
    /// Its choice for repeated wall-clock times.
    #[serde(default, skip_serializing_if = "is_default")]
    pub dst_repeat: DstRepeat,
    /// Its lower bound.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub start_at: Option<chrono::DateTime<chrono::Utc>>,
    /// Its upper bound.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub end_at: Option<chrono::DateTime<chrono::Utc>>,
    /// The update that replaced it, Unix ms: its instants up to here (inclusive) are owed, later ones are not.
    pub until_ms: i64,
}

impl PastSchedule {
    /// The timing part of `spec`, in force until `until_ms`.
    fn of(spec: &JobSpec, until_ms: i64) -> Self {
        Self {
            schedule: spec.schedule.clone(),
            timezone: spec.timezone.clone(),
            dst: spec.dst,
            dst_repeat: spec.dst_repeat,
            start_at: spec.start_at,
            end_at: spec.end_at,
            until_ms,
        }
    }

    /// Whether `spec` fires at the same instants as this schedule.
    fn same_timing(&self, spec: &JobSpec) -> bool {
        self.schedule == spec.schedule
            && self.timezone == spec.timezone
            && self.dst == spec.dst
            && self.dst_repeat == spec.dst_repeat
            && self.start_at == spec.start_at
            && self.end_at == spec.end_at
    }

    /// Its first instant strictly after `after_ms`, within its bounds (not cut at `until_ms`).
    fn next_after(&self, after_ms: i64) -> Option<i64> {
        let tz = self.timezone.parse().unwrap_or(chrono_tz::UTC);
        next_within(
            &self.schedule,
            tz,
            DstHandling {
                gap: self.dst,
                repeat: self.dst_repeat,
            },
            self.start_at,
            self.end_at,
            after_ms,
        )
    }
}

/// The first instant of `schedule` strictly after `after_ms` within the start/end bounds.
fn next_within(
    schedule: &Schedule,
    tz: chrono_tz::Tz,
    dst: DstHandling,
    start_at: Option<chrono::DateTime<chrono::Utc>>,
    end_at: Option<chrono::DateTime<chrono::Utc>>,
    after_ms: i64,
) -> Option<i64> {
    let after = match start_at.map(|t| t.timestamp_millis()) {
        Some(start) if start > after_ms => start - 1,
        _ => after_ms,
    };
    let next = schedule.next_after(after, tz, dst)?;
    match end_at {
        Some(end) if next > end.timestamp_millis() => None,
        _ => Some(next),
    }
}

impl Job {
    /// A new job, created at `now_ms`, not yet stored.
    pub fn new(id: JobId, spec: JobSpec, now_ms: i64) -> Self {
        Self {
            id,
            revision: 0,
            created_ms: now_ms,
            updated_ms: now_ms,
            spec: Arc::new(spec),
            past_schedules: Vec::new(),
            requests: Vec::new(),
            last_trigger_ms: 0,
        }
    }

    /// Replaces the spec at `now_ms` (an update). When the new spec fires at other instants than the old one,
    /// the old timing is kept in [`Job::past_schedules`]: its instants up to `now_ms` stay owed, the new
    /// spec's are owed after it.
    pub fn update_spec(&mut self, spec: JobSpec, now_ms: i64) {
        let changed = PastSchedule::of(&self.spec, now_ms);
        if !changed.same_timing(&spec) {
            self.past_schedules.push(changed);
            let excess = self.past_schedules.len().saturating_sub(MAX_PAST_SCHEDULES);
            self.past_schedules.drain(..excess);
        }
        self.spec = Arc::new(spec);
        self.updated_ms = now_ms;
    }

    /// The spec, to change in place (copied first when another holder shares it).
    pub fn spec_mut(&mut self) -> &mut JobSpec {
        Arc::make_mut(&mut self.spec)
    }

    /// When the current spec's instants begin to be owed: after the last schedule change, or from the
    /// beginning of time when it never changed.
    pub fn schedule_since_ms(&self) -> i64 {
        self.past_schedules.last().map_or(i64::MIN, |p| p.until_ms)
    }

    /// The job's first instant strictly after `after_ms`, by the schedule in force at that instant: an
    /// instant up to a past schedule's `until_ms` is one of that schedule's, a later one is the current
    /// spec's. `tz` is the current spec's parsed time zone.
    pub fn next_instant(&self, tz: chrono_tz::Tz, after_ms: i64) -> Option<i64> {
        let spec = &self.spec;
        let current = |after_ms| {
            next_within(
                &spec.schedule,
                tz,
                spec.dst_handling(),
                spec.start_at,
                spec.end_at,
                after_ms,
            )
        };
        if after_ms >= self.schedule_since_ms() {
            return current(after_ms);
        }
        // A past era: the rare path (settling or catching up across a schedule change).
        let mut era_start = i64::MIN;
        for past in &self.past_schedules {
            if after_ms < past.until_ms
                && let Some(t) = past.next_after(after_ms.max(era_start))
                && t <= past.until_ms
            {
                return Some(t);
            }
            era_start = past.until_ms;
        }
        current(after_ms.max(era_start))
    }

    /// Reads the fields that firing and starting a run read, and returns a value that means nothing.
    ///
    /// For the timer's and the executor's read-ahead of a herd of due jobs: the jobs lie scattered in memory,
    /// and a loop that reads each one's spec after a queue operation, a schedule step or a run's first poll
    /// meets one cache miss after another. A loop of only these reads has no load that depends on another, so
    /// the processor fetches [`WARM_AHEAD`] jobs at once, and the real loop then finds them in cache.
    pub(crate) fn warm(&self) -> usize {
        let spec = &*self.spec;
        self.past_schedules.len()
            ^ usize::from(spec.paused)
            ^ usize::from(spec.jitter.is_some())
            ^ usize::from(spec.executor.is_some())
            ^ usize::from(spec.start_at.is_some())
            ^ spec.schedule.warm()
            ^ spec.name.len()
            ^ usize::from(matches!(spec.target, Target::Handler(_)))
            ^ spec.retry.max_retries as usize
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
            dst_repeat: DstRepeat::default(),
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
            executor: None,
        }
    }

    /// How the schedule search treats DST transitions: `dst` and `dst_repeat` together.
    pub fn dst_handling(&self) -> DstHandling {
        DstHandling {
            gap: self.dst,
            repeat: self.dst_repeat,
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
