//! OpenAPI schemas of the engine's types, which the engine cannot derive itself (it depends on no HTTP or
//! OpenAPI crate): mirrors of `JobSpec`, `Job` and `RunRecord` with the same serde form.
//!
//! The API (de)serializes the engine's own types; these exist only for the document. A test
//! (`tests::mirrors_match_the_engine`) round-trips fully populated values through both the engine type and
//! its mirror, both with `deny_unknown_fields`, so a field added to one and not the other fails the build's
//! tests rather than silently leaving the document behind.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// The job JSON: what a user schedules (the engine's `JobSpec`). Only `name`, `schedule` and `target` are
/// required.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(as = JobSpec, example = json!({
    "name": "report", "schedule": "0 */5 * * * *", "timezone": "Europe/London",
    "target": {"type": "command", "argv": ["/usr/bin/report", "--daily"], "timeout": "30s"},
    "misfire": {"policy": "fire_once"}, "overlap": "skip"
}))]
pub struct JobSpecDoc {
    /// Human name (1 to 256 characters, not blank, no control characters); need not be unique.
    #[schema(
        min_length = 1,
        max_length = 256,
        pattern = r"^[^\u0000-\u001F\u007F-\u009F]*[^\s\u0000-\u001F\u007F-\u009F][^\u0000-\u001F\u007F-\u009F]*$"
    )]
    pub name: String,
    /// Namespace for listing (`[A-Za-z0-9_-]`, default `default`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,
    /// Free-form labels (`team=payments`); a `notify` label selects webhooks (`notify=ops,pager`, `notify=none`).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub labels: BTreeMap<String, String>,
    /// Cron with 5, 6 (leading seconds) or 7 (trailing year) fields, `L W # ?`, a macro (`@daily`),
    /// `@every 30s [from RFC3339]`, or `@at RFC3339`.
    #[schema(example = "0 */5 * * * *")]
    pub schedule: String,
    /// IANA time zone the cron fields are read in (default `UTC`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timezone: Option<String>,
    /// DST handling of cron wall-clock times in a spring gap (default `cronie`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dst: Option<DstPolicyDoc>,
    /// On which pass of a repeated wall-clock range (the autumn hour) fixed cron times run (default `first`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dst_repeat: Option<DstRepeatDoc>,
    /// What runs.
    pub target: TargetDoc,
    /// What happens to instants that passed while no node could fire them (default `fire_once`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub misfire: Option<MisfireDoc>,
    /// What happens when an instant comes while the previous run is still going (default `skip`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub overlap: Option<OverlapDoc>,
    /// Retries of a failed run within the same fire (default none).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retry: Option<RetryDoc>,
    /// Delivery of fires in doubt after a crash (default `at_most_once`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub delivery: Option<DeliveryDoc>,
    /// Random delay in `[0, jitter]` added to each start (duration like `"10s"`, at most `1h`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub jitter: Option<String>,
    /// No instant before this one fires (RFC 3339).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(format = DateTime)]
    pub start_at: Option<String>,
    /// No instant after this one fires (RFC 3339).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(format = DateTime)]
    pub end_at: Option<String>,
    /// A paused job keeps its schedule but runs nothing until resumed (default false).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub paused: Option<bool>,
    /// Load weight for the rebalancer, 1 to 1000000 (default 1).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(minimum = 1, maximum = 1_000_000)]
    pub weight: Option<u32>,
    /// Labels a node must carry to own this job (`["region=eu"]`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub node_labels: Vec<String>,
    /// Run on a worker of this executor group (`campanile worker --group NAME`) rather than on the owning
    /// node; the owner still claims every instant. No worker of the group within the claim window: the
    /// instant is recorded `misfired` with reason "no worker of group NAME …".
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub executor: Option<ExecutorDoc>,
}

/// A job's executor group.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(as = ExecutorGroup)]
pub struct ExecutorDoc {
    /// The group's name (1 to 64 of `A-Z a-z 0-9 . _ -`).
    #[schema(pattern = r"^[A-Za-z0-9._-]{1,64}$", example = "billing")]
    pub group: String,
}

/// `PATCH /v1/jobs/{id}`: a JSON merge patch (RFC 7396) of the job JSON. Every member is optional, and `null`
/// resets a member to its default. Members that are objects (`target`, `misfire`, `retry`, `labels`) are
/// merged into the job's, so they may be partial; the merged job must then be a valid job.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(as = JobPatch, example = json!({"schedule": "0 * * * *", "paused": true}))]
pub struct JobPatchDoc {
    /// Update only if the job is still at this revision (like `If-Match`); 409 otherwise.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub revision: Option<u64>,
    /// See `JobSpec.name`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(
        min_length = 1,
        max_length = 256,
        pattern = r"^[^\u0000-\u001F\u007F-\u009F]*[^\s\u0000-\u001F\u007F-\u009F][^\u0000-\u001F\u007F-\u009F]*$"
    )]
    pub name: Option<String>,
    /// See `JobSpec.namespace`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,
    /// Labels to set; a label given as `null` is removed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub labels: Option<BTreeMap<String, Option<String>>>,
    /// See `JobSpec.schedule`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub schedule: Option<String>,
    /// See `JobSpec.timezone`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timezone: Option<String>,
    /// See `JobSpec.dst`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dst: Option<DstPolicyDoc>,
    /// See `JobSpec.dst_repeat`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dst_repeat: Option<DstRepeatDoc>,
    /// Members of the target to change (merged into the job's target).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<Object>)]
    pub target: Option<serde_json::Value>,
    /// Members of the misfire policy to change (merged into the job's).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<Object>)]
    pub misfire: Option<serde_json::Value>,
    /// See `JobSpec.overlap`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub overlap: Option<OverlapDoc>,
    /// Members of the retry policy to change (merged into the job's).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<Object>)]
    pub retry: Option<serde_json::Value>,
    /// See `JobSpec.delivery`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub delivery: Option<DeliveryDoc>,
    /// See `JobSpec.jitter`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub jitter: Option<String>,
    /// See `JobSpec.start_at`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(format = DateTime)]
    pub start_at: Option<String>,
    /// See `JobSpec.end_at`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(format = DateTime)]
    pub end_at: Option<String>,
    /// See `JobSpec.paused`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub paused: Option<bool>,
    /// See `JobSpec.weight`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(minimum = 1, maximum = 1_000_000)]
    pub weight: Option<u32>,
    /// See `JobSpec.node_labels` (replaced whole: it is a list).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub node_labels: Option<Vec<String>>,
    /// See `JobSpec.executor`; `null` runs the job on its owning node again.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub executor: Option<ExecutorDoc>,
}

/// DST handling of fixed cron times in a spring gap (wildcard jobs follow real time).
#[derive(Debug, Clone, Copy, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
#[schema(as = DstPolicy)]
pub enum DstPolicyDoc {
    /// Like cronie: a time in the spring gap runs once right after the jump.
    Cronie,
    /// Fixed times in the spring gap do not run that day.
    SkipGap,
}

/// DST handling of fixed cron times in a repeated autumn range (wildcard jobs follow real time).
#[derive(Debug, Clone, Copy, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
#[schema(as = DstRepeat)]
pub enum DstRepeatDoc {
    /// Like cronie: once, on the first pass.
    First,
    /// Once, on the second pass (after the clocks went back).
    Last,
    /// Twice, once on each pass.
    Both,
}

/// What runs when a job fires, tagged by `type`.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(tag = "type", rename_all = "snake_case")]
#[schema(as = Target)]
pub enum TargetDoc {
    /// A process started from an argv (no shell unless argv names one).
    Command(CommandDoc),
    /// An HTTP request.
    Http(HttpDoc),
    /// An in-process handler (embedded use only: the standalone binary registers none and refuses it).
    Handler(HandlerDoc),
}

/// A command target.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(as = CommandTarget)]
pub struct CommandDoc {
    /// Program and arguments; `argv[0]` is looked up in `PATH` if it has no `/`.
    pub argv: Vec<String>,
    /// Environment variables, on top of the node's `PATH`, `HOME`, `LANG`, `TZ` and `inherit_env` (never its
    /// whole environment). Values may be references resolved on the node when the fire runs.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub env: BTreeMap<String, SecretValueDoc>,
    /// Working directory.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cwd: Option<String>,
    /// Kill the process group after this long (`"30s"`); no limit if absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout: Option<String>,
    /// Run as this user and group instead of the node's: only users the node's `allow_run_as` lists, and
    /// only when the node runs as root (else the run fails, saying so).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub run_as: Option<RunAsDoc>,
}

/// Who a command runs as. The command gets the uid and gid and no supplementary groups; `HOME` is the
/// user's home unless the job's `env` sets it.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(as = RunAs)]
pub struct RunAsDoc {
    /// User name or numeric uid.
    #[schema(pattern = r"^[A-Za-z0-9._-]{1,32}$")]
    pub user: String,
    /// Group name or numeric gid; the user's primary group if absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(pattern = r"^[A-Za-z0-9._-]{1,32}$")]
    pub group: Option<String>,
}

/// An HTTP target.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(as = HttpTarget)]
pub struct HttpDoc {
    /// `http://` or `https://` URL.
    pub url: String,
    /// Method (default `POST`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub method: Option<String>,
    /// Extra request headers. Values may be references resolved on the node when the fire runs.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub headers: BTreeMap<String, SecretValueDoc>,
    /// Request body.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub body: Option<String>,
    /// Statuses counted as success; any 2xx if empty.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub expected_status: Vec<u16>,
    /// Whole-request timeout (default `"30s"`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout: Option<String>,
    /// Follow redirects, at most 5, each checked against the node's egress rules (default false).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub follow_redirects: Option<bool>,
}

/// A value that may be secret: the value itself, or a reference resolved on the node when the fire runs
/// (only the reference is stored and shown). Readers without the admin role see literal values as
/// `"(redacted)"`.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(untagged)]
#[schema(as = SecretValue)]
pub enum SecretValueDoc {
    /// The value itself.
    Literal(String),
    /// The node's environment variable of this name (not one starting with `CAMPANILE_`).
    FromEnv(FromEnvDoc),
    /// The contents of this file on the node (an absolute path; a final line break is dropped).
    FromFile(FromFileDoc),
}

/// `{"from_env": "NAME"}`.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct FromEnvDoc {
    /// Variable name.
    pub from_env: String,
}

/// `{"from_file": "/path"}`.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct FromFileDoc {
    /// Absolute path.
    pub from_file: String,
}

/// A handler target.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(as = HandlerTarget)]
pub struct HandlerDoc {
    /// The registered handler name.
    pub name: String,
    /// Abort after this long.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout: Option<String>,
}

/// Misfire policy, tagged by `policy`.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(tag = "policy", rename_all = "snake_case", deny_unknown_fields)]
#[schema(as = MisfirePolicy)]
pub enum MisfireDoc {
    /// Record passed instants as misfired; run none.
    Skip,
    /// Run the most recent passed instant once (within 24 h); record the rest.
    FireOnce,
    /// Run up to `max_count` of the most recent passed instants within `window`, oldest first.
    CatchUp {
        /// At most this many (1 to 10000, default 10).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        max_count: Option<u32>,
        /// Only instants at most this old (default `"1h"`).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        window: Option<String>,
    },
}

/// Overlap policy.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
#[schema(as = Overlap)]
pub enum OverlapDoc {
    /// Start beside the running one.
    Allow,
    /// Record the new instant as skipped.
    Skip,
    /// Keep one pending instant; skip further ones.
    BufferOne,
    /// Kill the running one and start the new one.
    CancelPrevious,
}

/// Retries.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(as = RetryPolicy)]
pub struct RetryDoc {
    /// Attempts after the first (0 to 100, default 0).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_retries: Option<u32>,
    /// Delay between attempts.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub backoff: Option<BackoffDoc>,
}

/// Retry backoff: `initial * factor^(n-1)`, capped at `max`.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(as = Backoff)]
pub struct BackoffDoc {
    /// First delay (default `"1s"`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub initial: Option<String>,
    /// Growth per retry, 1 to 10 (default 2).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub factor: Option<f64>,
    /// Largest delay (default `"1m"`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max: Option<String>,
}

/// Delivery of in-doubt fires.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
#[schema(as = Delivery)]
pub enum DeliveryDoc {
    /// Never run a fire twice: in-doubt fires are recorded, not re-run.
    AtMostOnce,
    /// Never lose a fire: in-doubt fires run again (targets de-duplicate by fire id).
    AtLeastOnce,
}

/// A stored job: the job JSON plus its identity and revision (the engine's `Job`).
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[schema(as = Job)]
pub struct JobDoc {
    /// Unique id (`[A-Za-z0-9._-]`, 1 to 128 characters).
    pub id: String,
    /// Store revision of the last write; send it back (body `revision` or `If-Match`) to update safely.
    pub revision: u64,
    /// Unix ms of creation.
    pub created_ms: i64,
    /// Unix ms of the last update.
    pub updated_ms: i64,
    /// Read-only: the schedules the job had before updates changed when it fires (at most 16, oldest
    /// first). Instants of a past schedule up to its `until_ms` stay owed; the current schedule's are owed
    /// after the last one. Absent when the timing never changed.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub past_schedules: Vec<PastScheduleDoc>,
    /// Read-only: runs asked for by `trigger` and `backfill` that the job's owner has not run and recorded
    /// yet, oldest first. Absent when none waits.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub requests: Vec<RunRequestDoc>,
    /// Read-only: the instant (Unix ms) given to the job's latest trigger; the next one gets a later one.
    /// Absent before the first trigger.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_trigger_ms: Option<i64>,
    /// The job JSON.
    #[serde(flatten)]
    pub spec: JobSpecDoc,
}

/// A run asked for outside the schedule, waiting for the job's owner (read-only).
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(as = RunRequest)]
pub struct RunRequestDoc {
    /// The instant it runs as (Unix ms): its fire id is `{job}@{ms}`.
    pub ms: i64,
    /// Asked for by a backfill (a scheduled instant run late); absent for a trigger.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub backfill: Option<bool>,
    /// The session (hexadecimal in logs, a number here) of the owner that took it to run; absent until taken.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub taken: Option<u64>,
}

/// A schedule a job had before an update (read-only).
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(as = PastSchedule)]
pub struct PastScheduleDoc {
    /// The schedule then in force.
    pub schedule: String,
    /// Its time zone.
    pub timezone: String,
    /// Its DST policy, when not the default.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dst: Option<DstPolicyDoc>,
    /// Its choice for repeated wall-clock times, when not the default.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dst_repeat: Option<DstRepeatDoc>,
    /// Its lower bound (RFC 3339).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub start_at: Option<String>,
    /// Its upper bound (RFC 3339).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub end_at: Option<String>,
    /// Unix ms of the update that replaced it: its instants up to here are owed.
    pub until_ms: i64,
}

/// `POST /v1/jobs`: the job JSON, with an optional id (generated if absent).
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[schema(as = NewJob)]
pub struct NewJobDoc {
    /// The id to create the job under (`[A-Za-z0-9._-]`); generated if absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(
        pattern = r"^[A-Za-z0-9_-][A-Za-z0-9._-]{0,127}$|^\.[A-Za-z0-9_-][A-Za-z0-9._-]{0,126}$|^\.\.[A-Za-z0-9._-]{1,126}$"
    )]
    pub id: Option<String>,
    /// The job JSON.
    #[serde(flatten)]
    pub spec: JobSpecDoc,
}

/// `POST /v1/jobs:batch`: up to 10,000 new jobs, each as `POST /v1/jobs` takes one.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[schema(as = BatchRequest)]
#[serde(deny_unknown_fields)]
pub struct BatchRequestDoc {
    /// The jobs, 1 to 10,000; ids must differ (each is generated where absent).
    #[schema(min_items = 1, max_items = 10000)]
    pub jobs: Vec<NewJobDoc>,
}

/// `PUT /v1/jobs/{id}`: the job JSON; a `Job` as read (with `id`, `revision`, `created_ms`, `updated_ms`)
/// is accepted as it is, so GET → edit → PUT works.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[schema(as = JobReplacement)]
pub struct JobReplacementDoc {
    /// Must equal the path's id when present.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(
        pattern = r"^[A-Za-z0-9_-][A-Za-z0-9._-]{0,127}$|^\.[A-Za-z0-9_-][A-Za-z0-9._-]{0,126}$|^\.\.[A-Za-z0-9._-]{1,126}$"
    )]
    pub id: Option<String>,
    /// Update only if the job is still at this revision (like `If-Match`); 409 otherwise.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub revision: Option<u64>,
    /// Ignored (read-only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub created_ms: Option<i64>,
    /// Ignored (read-only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub updated_ms: Option<i64>,
    /// Ignored (read-only).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub past_schedules: Vec<PastScheduleDoc>,
    /// Ignored (read-only).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub requests: Vec<RunRequestDoc>,
    /// Ignored (read-only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_trigger_ms: Option<i64>,
    /// The job JSON.
    #[serde(flatten)]
    pub spec: JobSpecDoc,
}

/// How a fire ended.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
#[schema(as = Outcome)]
pub enum OutcomeDoc {
    /// Ran and succeeded.
    Succeeded,
    /// Ran and failed.
    Failed,
    /// Ran past its timeout and was killed.
    TimedOut,
    /// Not run on purpose (overlap policy, paused or deleted).
    Skipped,
    /// Not run because no node could fire it in time.
    Misfired,
    /// Claimed by an owner that vanished: it may or may not have run.
    InDoubt,
}

/// The record of one fire (or, for `misfired`, of a range of missed instants).
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(as = RunRecord)]
pub struct RunRecordDoc {
    /// The job.
    pub job: String,
    /// Scheduled instant, Unix ms (the first of a range). The fire id is `{job}@{scheduled_ms}`.
    pub scheduled_ms: i64,
    /// Instants covered by a `misfired` record (1 if absent).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub count: Option<u32>,
    /// Last instant of a range, Unix ms.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_scheduled_ms: Option<i64>,
    /// Node that wrote the record.
    pub node: String,
    /// Attempts made (0 when the target never started).
    pub attempt: u32,
    /// Unix ms the last attempt started.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub started_ms: Option<i64>,
    /// Unix ms the last attempt ended.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ended_ms: Option<i64>,
    /// How it ended.
    pub outcome: OutcomeDoc,
    /// Exit code or HTTP status.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub code: Option<i32>,
    /// Why it ended this way, when not obvious.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// Tail of the output (at most 4096 bytes).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub output: Option<String>,
    /// Whether this was a manual trigger or backfill.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub manual: Option<bool>,
}

#[cfg(test)]
mod tests {
    use super::*;
    use campanile::job::{Backoff, CommandTarget, HttpTarget, MisfirePolicy, RetryPolicy};
    use campanile::{FireId, JobSpec, Outcome, RunRecord, Schedule, Target};
    use std::time::Duration;

    fn full_spec(target: Target) -> JobSpec {
        let mut spec = JobSpec::new("n", Schedule::parse("* * * * *").unwrap(), target);
        spec.namespace = "ns".into();
        spec.labels.insert("a".into(), "b".into());
        spec.timezone = "Europe/London".into();
        spec.dst = campanile::job::DstPolicy::SkipGap;
        spec.dst_repeat = campanile::job::DstRepeat::Both;
        spec.misfire = MisfirePolicy::CatchUp {
            max_count: 3,
            window: Duration::from_secs(60),
        };
        spec.overlap = campanile::job::Overlap::Allow;
        spec.retry = RetryPolicy {
            max_retries: 2,
            backoff: Backoff::default(),
        };
        spec.delivery = campanile::job::Delivery::AtLeastOnce;
        spec.jitter = Some(Duration::from_secs(1));
        spec.start_at = Some("2026-01-01T00:00:00Z".parse().unwrap());
        spec.end_at = Some("2027-01-01T00:00:00Z".parse().unwrap());
        spec.paused = true;
        spec.weight = 3;
        spec.node_labels.insert("region=eu".into());
        spec.executor = Some(campanile::job::ExecutorGroup {
            group: "billing".into(),
        });
        spec
    }

    /// Engine → mirror → engine, with `deny_unknown_fields` on both sides: every field of one is a field of
    /// the other, with the same form.
    fn round_trip<E, D>(engine: &E)
    where
        E: Serialize + serde::de::DeserializeOwned + PartialEq + std::fmt::Debug,
        D: Serialize + serde::de::DeserializeOwned,
    {
        let json = serde_json::to_value(engine).unwrap();
        let doc: D = serde_json::from_value(json.clone())
            .unwrap_or_else(|e| panic!("the mirror does not read {json}: {e}"));
        let back = serde_json::to_value(&doc).unwrap();
        let engine_again: E = serde_json::from_value(back.clone())
            .unwrap_or_else(|e| panic!("the engine does not read the mirror's {back}: {e}"));
        assert_eq!(&engine_again, engine);
    }

    #[test]
    fn mirrors_match_the_engine() {
        let mut command = CommandTarget::new(["echo", "hi"]);
        command.env.insert("K".into(), "V".into());
        command.env.insert(
            "KEY".into(),
            campanile::job::SecretValue::FromFile("/run/key".into()),
        );
        command.cwd = Some("/tmp".into());
        command.timeout = Some(Duration::from_secs(5));
        command.run_as = Some(campanile::job::RunAs {
            user: "nobody".into(),
            group: Some("nogroup".into()),
        });
        round_trip::<JobSpec, JobSpecDoc>(&full_spec(Target::Command(command)));
        let http = HttpTarget {
            url: "http://127.0.0.1/x".into(),
            method: "PUT".into(),
            headers: [
                ("X-A".to_owned(), "b".into()),
                (
                    "Authorization".to_owned(),
                    campanile::job::SecretValue::FromEnv("HOOK_AUTH".into()),
                ),
            ]
            .into(),
            body: Some("{}".into()),
            expected_status: vec![204],
            timeout: Duration::from_secs(3),
            follow_redirects: true,
        };
        round_trip::<JobSpec, JobSpecDoc>(&full_spec(Target::Http(http)));
        round_trip::<JobSpec, JobSpecDoc>(&full_spec(Target::Handler(
            campanile::job::HandlerTarget::new("h"),
        )));
        for misfire in [MisfirePolicy::Skip, MisfirePolicy::FireOnce] {
            let mut spec = full_spec(Target::Handler(campanile::job::HandlerTarget::new("h")));
            spec.misfire = misfire;
            round_trip::<JobSpec, JobSpecDoc>(&spec);
        }

        let mut job = campanile::Job::new(
            campanile::JobId::new("j").unwrap(),
            full_spec(Target::Command(CommandTarget::new(["true"]))),
            5,
        );
        let mut every_minute = (*job.spec).clone();
        every_minute.schedule = Schedule::parse("0 * * * * *").unwrap();
        every_minute.dst = campanile::job::DstPolicy::default();
        job.update_spec(every_minute, 7);
        assert_eq!(job.past_schedules.len(), 1);
        round_trip::<campanile::job::PastSchedule, PastScheduleDoc>(&job.past_schedules[0]);
        job.requests = vec![
            campanile::job::RunRequest::new(9, false),
            campanile::job::RunRequest {
                taken: Some(campanile::coordinator::SessionId(3)),
                ..campanile::job::RunRequest::new(4, true)
            },
        ];
        job.last_trigger_ms = 9;
        for request in &job.requests {
            round_trip::<campanile::job::RunRequest, RunRequestDoc>(request);
        }
        let json = serde_json::to_value(&job).unwrap();
        let doc: JobDoc = serde_json::from_value(json.clone()).unwrap();
        assert_eq!(serde_json::to_value(&doc).unwrap(), json);

        let mut record = RunRecord::new(
            &FireId::new(campanile::JobId::new("j").unwrap(), 1000),
            &campanile::coordinator::NodeId::new("node-1").unwrap(),
            Outcome::Misfired,
        );
        record.count = 3;
        record.last_scheduled_ms = Some(3000);
        record.attempt = 1;
        record.started_ms = Some(1);
        record.ended_ms = Some(2);
        record.code = Some(1);
        record.reason = Some("late".into());
        record.output = "out".into();
        record.manual = true;
        round_trip::<RunRecord, RunRecordDoc>(&record);
    }
}
