//! The embedded scheduler's public API: [`Builder`] and the [`Scheduler`] handle.
//!
//! ```no_run
//! # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
//! use std::sync::Arc;
//! use campanile::{JobSpec, Schedule, Scheduler, Target};
//! use campanile::job::HandlerTarget;
//!
//! let scheduler = Scheduler::builder()
//!     .coordinator(my_coordinator()) // e.g. Arc::new(campanile_inproc::InprocCoordinator::memory())
//!     .node_id("node-1")
//!     .handler("hello", |ctx| async move {
//!         println!("fire {} (attempt {})", ctx.fire, ctx.attempt);
//!         Ok(())
//!     })
//!     .start()
//!     .await?;
//! let spec = JobSpec::new("hello", Schedule::parse("* * * * * *")?, Target::Handler(HandlerTarget::new("hello")));
//! let job = scheduler.create(spec).await?;
//! # let _ = job;
//! scheduler.shutdown(std::time::Duration::from_secs(10)).await?;
//! # Ok(()) }
//! # fn my_coordinator() -> std::sync::Arc<dyn campanile::Coordinator> { std::sync::Arc::new(campanile_inproc::InprocCoordinator::memory()) }
//! ```

use std::collections::{BTreeSet, HashMap};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use chrono::{DateTime, Utc};
use ractor::ActorRef;
use rand::Rng;

use crate::clock::Clock;
use crate::coordinator::limits::MAX_CREATE_BATCH;
use crate::coordinator::{CoordError, Coordinator, Key, NodeId, Precondition, RunQuery};
use crate::exec::BaseEnv;
use crate::job::{Job, JobId, JobSpec, ValidationError};
use crate::node::membership::NodeStatus;
use crate::node::{self, ShutdownReport};
use crate::run::RunRecord;

mod builder;
mod requests;

pub use builder::Builder;

/// How often an update without an expected revision is tried against concurrent writers.
pub const MODIFY_ATTEMPTS: u32 = 16;

/// Most instants one backfill may run.
pub const MAX_BACKFILL: usize = 10_000;

/// Records a [`Scheduler::subscribe_runs`] receiver may fall behind by before it loses the oldest.
pub const RUN_FEED_CAPACITY: usize = 4096;

/// Why a scheduler call failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SchedulerError {
    /// The input was rejected; the error names the field and the value.
    #[error(transparent)]
    Invalid(#[from] ValidationError),
    /// No such job.
    #[error("job {0} not found")]
    NotFound(JobId),
    /// The job changed since it was read (optimistic concurrency), or already exists.
    #[error("conflict on job {job}: {detail}")]
    Conflict {
        /// The job.
        job: JobId,
        /// What differed.
        detail: String,
    },
    /// The coordinator failed.
    #[error(transparent)]
    Coordinator(CoordError),
    /// The node has stopped.
    #[error("the scheduler has stopped")]
    Stopped,
    /// The builder was incomplete.
    #[error("builder: {0}")]
    Build(String),
}

impl From<CoordError> for SchedulerError {
    fn from(error: CoordError) -> Self {
        match error {
            CoordError::NotFound { key: Key::Job(id) } => SchedulerError::NotFound(id),
            CoordError::Conflict {
                key: Key::Job(job),
                expected,
                actual,
            } => SchedulerError::Conflict {
                job,
                detail: format!("expected {expected}, found {actual}"),
            },
            other => SchedulerError::Coordinator(other),
        }
    }
}

struct Inner {
    coordinator: Arc<dyn Coordinator>,
    clock: Arc<dyn Clock>,
    node: ActorRef<node::Msg>,
    node_id: NodeId,
    stored: tokio::sync::broadcast::Sender<RunRecord>,
    /// The history store given to the builder, if any.
    history: Option<Arc<dyn crate::history::HistoryStore>>,
    rng: Mutex<rand::rngs::StdRng>,
    /// What commands start from, and who they may run as (checked when a job is written here).
    base_env: BaseEnv,
    /// The cluster port and hub of executor groups, if the node has one.
    cluster: Option<crate::cluster::Listening>,
}

/// A running node's handle. Cheap to clone; job operations go to the coordinator, so they act on the whole
/// cluster, whichever node they are called on.
#[derive(Clone)]
pub struct Scheduler {
    inner: Arc<Inner>,
}

impl Scheduler {
    /// A builder.
    pub fn builder() -> Builder {
        Builder::default()
    }

    /// Workers of executor groups connected to this node (empty without a cluster port).
    pub fn workers(&self) -> Vec<crate::cluster::WorkerStatus> {
        self.inner
            .cluster
            .as_ref()
            .map(|c| c.hub.workers())
            .unwrap_or_default()
    }

    /// The address of this node's cluster port, if it has one.
    pub fn cluster_listen(&self) -> Option<std::net::SocketAddr> {
        self.inner.cluster.as_ref().and_then(|c| c.listen)
    }

    /// This node's hub of executor groups, to attach in-process workers to (the cluster simulation).
    #[cfg(feature = "testing")]
    pub fn hub(&self) -> Option<crate::cluster::Hub> {
        self.inner.cluster.as_ref().map(|c| c.hub.clone())
    }

    /// Workers joining and being lost on this node (`None` without a cluster port).
    pub fn worker_events(
        &self,
    ) -> Option<tokio::sync::broadcast::Receiver<crate::cluster::WorkerEvent>> {
        self.inner.cluster.as_ref().map(|c| c.hub.subscribe())
    }

    /// This node's id.
    pub fn node_id(&self) -> &NodeId {
        &self.inner.node_id
    }

    /// The coordinator this node uses.
    pub fn coordinator(&self) -> &Arc<dyn Coordinator> {
        &self.inner.coordinator
    }

    /// Creates a job with a generated id.
    pub async fn create(&self, spec: JobSpec) -> Result<Job, SchedulerError> {
        let id = self.generate_id();
        self.create_with_id(id, spec).await
    }

    /// Creates a job with the given id; `Conflict` if it exists.
    pub async fn create_with_id(&self, id: JobId, spec: JobSpec) -> Result<Job, SchedulerError> {
        spec.validate()?;
        self.inner.base_env.check_run_as(&spec.target)?;
        fires_at_all(&spec, self.inner.clock.now_ms())?;
        let mut job = Job::new(id, spec, self.inner.clock.now_ms());
        job.revision = self
            .inner
            .coordinator
            .put_job(job.clone(), Precondition::Absent)
            .await
            .map_err(|e| refused_by_store(&job, e))?;
        Ok(job)
    }

    /// Creates many jobs at once, all or none: each with the given id, or a generated one. At most
    /// [`MAX_CREATE_BATCH`] jobs; returns each job's id (generated where none was given) and store revision, in
    /// the order given. (Not the jobs: they are the specs as given, and a copy of 10,000 jobs per call is
    /// what a bulk import cannot spare.)
    ///
    /// Every job is validated before anything is written; an error names the job's index and the field
    /// (`jobs[17].schedule: ...`), and two jobs with one id are an error naming both indexes. If any id
    /// already exists, nothing is created (`Conflict` naming that job; see [`Coordinator::put_jobs`] for how
    /// each backend keeps it all-or-nothing).
    pub async fn create_many(
        &self,
        jobs: Vec<(Option<JobId>, JobSpec)>,
    ) -> Result<Vec<(JobId, u64)>, SchedulerError> {
        if jobs.len() > MAX_CREATE_BATCH {
            return Err(ValidationError::new(
                "jobs",
                format!("{} jobs", jobs.len()),
                format!("at most {MAX_CREATE_BATCH} jobs in one request"),
            )
            .into());
        }
        let now_ms = self.inner.clock.now_ms();
        let mut named: HashMap<&JobId, usize> = HashMap::with_capacity(jobs.len());
        for (i, (id, spec)) in jobs.iter().enumerate() {
            let within = |e: ValidationError| e.within(&format!("jobs[{i}]"));
            spec.validate().map_err(within)?;
            fires_at_all(spec, now_ms).map_err(within)?;
            if let Some(id) = id
                && let Some(first) = named.insert(id, i)
            {
                return Err(ValidationError::new(
                    format!("jobs[{i}].id"),
                    id,
                    format!("repeats jobs[{first}].id: each job needs its own id"),
                )
                .into());
            }
        }
        let taken: BTreeSet<JobId> = named.into_keys().cloned().collect();
        let mut generated = BTreeSet::new();
        let mut batch = Vec::with_capacity(jobs.len());
        for (id, spec) in jobs {
            let id = id.unwrap_or_else(|| {
                loop {
                    let id = self.generate_id();
                    if !taken.contains(&id) && generated.insert(id.clone()) {
                        break id;
                    }
                }
            });
            batch.push(Job::new(id, spec, now_ms));
        }
        let ids: Vec<JobId> = batch.iter().map(|job| job.id.clone()).collect();
        let revisions = match self.inner.coordinator.put_jobs(batch).await {
            Ok(revisions) => revisions,
            Err(CoordError::Conflict {
                key: Key::Job(job),
                actual,
                ..
            }) if ids.contains(&job) => {
                let i = ids.iter().position(|id| *id == job).unwrap_or_default();
                return Err(SchedulerError::Conflict {
                    job,
                    detail: format!("jobs[{i}].id: the job exists ({actual}); nothing was created"),
                });
            }
            Err(e) => return Err(e.into()),
        };
        Ok(ids.into_iter().zip(revisions).collect())
    }

    /// Replaces a job's spec; with `expected_revision`, only if the job is still at that revision. Takes effect
    /// from the next instant.
    pub async fn update(
        &self,
        id: &JobId,
        spec: JobSpec,
        expected_revision: Option<u64>,
    ) -> Result<Job, SchedulerError> {
        spec.validate()?;
        self.inner.base_env.check_run_as(&spec.target)?;
        // A job whose instants have all passed stays editable (its name, its labels); a new schedule or new
        // bounds must have an instant to come.
        let current = self.get(id).await?;
        if current.is_none_or(|job| {
            (
                &job.spec.schedule,
                job.spec.start_at,
                job.spec.end_at,
                &job.spec.timezone,
            ) != (&spec.schedule, spec.start_at, spec.end_at, &spec.timezone)
        }) {
            fires_at_all(&spec, self.inner.clock.now_ms())?;
        }
        self.modify(id, expected_revision, move |job| *job = spec.clone())
            .await
    }

    /// Deletes a job (and its history); with `expected_revision`, only if the job is still at that revision.
    pub async fn delete(
        &self,
        id: &JobId,
        expected_revision: Option<u64>,
    ) -> Result<(), SchedulerError> {
        let pre = expected_revision.map_or(Precondition::Exists, Precondition::Revision);
        self.inner.coordinator.delete_job(id, pre).await?;
        Ok(())
    }

    /// Pauses a job: its instants are not run (nor owed) until it is resumed.
    pub async fn pause(&self, id: &JobId) -> Result<Job, SchedulerError> {
        self.modify(id, None, |spec| spec.paused = true).await
    }

    /// Resumes a paused job from its next instant.
    pub async fn resume(&self, id: &JobId) -> Result<Job, SchedulerError> {
        self.modify(id, None, |spec| spec.paused = false).await
    }

    /// Copies a job under a new id (generated if `None`), with an optional new name.
    pub async fn clone_job(
        &self,
        id: &JobId,
        new_id: Option<JobId>,
        name: Option<String>,
    ) -> Result<Job, SchedulerError> {
        let source = self
            .get(id)
            .await?
            .ok_or_else(|| SchedulerError::NotFound(id.clone()))?;
        let mut spec = Arc::unwrap_or_clone(source.spec);
        if let Some(name) = name {
            spec.name = name;
        }
        let new_id = new_id.unwrap_or_else(|| self.generate_id());
        self.create_with_id(new_id, spec).await
    }

    /// The job's next `n` instants from now, within its start/end bounds; empty if paused.
    pub async fn next_fires(
        &self,
        id: &JobId,
        n: usize,
    ) -> Result<Vec<DateTime<Utc>>, SchedulerError> {
        let job = self
            .get(id)
            .await?
            .ok_or_else(|| SchedulerError::NotFound(id.clone()))?;
        if job.spec.paused {
            return Ok(Vec::new());
        }
        let instants = preview(&job.spec, self.inner.clock.now_ms(), n)?;
        Ok(instants
            .into_iter()
            .filter_map(DateTime::from_timestamp_millis)
            .collect())
    }

    /// One job.
    pub async fn get(&self, id: &JobId) -> Result<Option<Job>, SchedulerError> {
        Ok(self.inner.coordinator.get_job(id).await?)
    }

    /// Every job, sorted by id.
    pub async fn list(&self) -> Result<Vec<Job>, SchedulerError> {
        let jobs = self.inner.coordinator.list_jobs().await?.jobs;
        Ok(jobs.into_iter().map(Arc::unwrap_or_clone).collect())
    }

    /// A job's run records, newest first.
    pub async fn runs(
        &self,
        id: &JobId,
        query: RunQuery,
    ) -> Result<Vec<RunRecord>, SchedulerError> {
        Ok(self.inner.coordinator.runs(id, query).await?)
    }

    /// The history store this node copies accepted records into ([`Builder::history`]), if it has one.
    pub fn history(&self) -> Option<&Arc<dyn crate::history::HistoryStore>> {
        self.inner.history.as_ref()
    }

    /// Every run record this node stores from now on (executed, skipped, misfired, in doubt), as it is stored:
    /// for notifications and dashboards without polling the coordinator. Records of other nodes are not seen.
    /// A receiver that falls more than [`RUN_FEED_CAPACITY`] records behind gets `Lagged` and skips ahead.
    pub fn subscribe_runs(&self) -> tokio::sync::broadcast::Receiver<RunRecord> {
        self.inner.stored.subscribe()
    }

    /// This node's view of itself: session, leadership, jobs owned.
    pub async fn status(&self) -> Result<NodeStatus, SchedulerError> {
        ractor::call!(self.inner.node, |reply| node::Msg::Status { reply })
            .map_err(|_| SchedulerError::Stopped)
    }

    /// Graceful leave: stops taking fires, hands claimed instants back, waits for running runs up to `deadline`
    /// (then kills them), stores the records, closes the session.
    pub async fn shutdown(&self, deadline: Duration) -> Result<ShutdownReport, SchedulerError> {
        let report = ractor::call!(self.inner.node, |reply| node::Msg::Shutdown {
            deadline,
            reply
        })
        .map_err(|_| SchedulerError::Stopped)?;
        // After the drain: runs on workers were waited for like local ones.
        if let Some(cluster) = &self.inner.cluster {
            cluster.stop().await;
        }
        // Return only once the node and everything it holds (the coordinator among it) is gone.
        let _ = self
            .inner
            .node
            .get_cell()
            .stop_and_wait(None, Some(Duration::from_secs(10)))
            .await;
        Ok(report)
    }

    /// Stops the node at once, without handover: no claim is released, running runs are dropped (their
    /// processes killed), the session is left to expire. What a crash does, minus the process exit; the
    /// successor (this node restarted, or another) accounts for the instants per policy after the session's
    /// TTL. Prefer [`Scheduler::shutdown`]; this exists for tests, simulations and last-resort exits.
    pub async fn abort(&self) {
        if let Some(cluster) = &self.inner.cluster {
            cluster.stop().await;
        }
        let cell = self.inner.node.get_cell();
        for child in cell.get_children() {
            child.kill();
        }
        cell.kill();
        let _ = cell
            .stop_and_wait(None, Some(Duration::from_secs(10)))
            .await;
    }

    /// Freezes the whole node for `pause`, as if its process were stopped (SIGSTOP) and continued: for the
    /// cluster simulation and chaos tests. Returns at once; the node resumes by itself and must then find out
    /// that its session (and so its claims) may be gone before it fires anything.
    #[cfg(feature = "testing")]
    pub fn freeze(&self, pause: Duration) -> Result<(), SchedulerError> {
        self.inner
            .node
            .cast(node::Msg::Freeze(pause))
            .map_err(|_| SchedulerError::Stopped)
    }

    /// The node supervisor's actor, for tests and tools that inspect the actor tree.
    #[cfg(feature = "testing")]
    pub fn actor(&self) -> ractor::ActorCell {
        self.inner.node.get_cell()
    }

    /// Read, change, write back if nothing changed meanwhile. With `expected_revision` a concurrent change
    /// is the caller's `Conflict`; without, the change is applied again to what the other writer left (a
    /// caller who named no revision asked for its change, not for a particular base), up to
    /// [`MODIFY_ATTEMPTS`] times.
    async fn modify(
        &self,
        id: &JobId,
        expected_revision: Option<u64>,
        change: impl Fn(&mut JobSpec),
    ) -> Result<Job, SchedulerError> {
        let mut attempt = 0;
        loop {
            attempt += 1;
            let mut job = self
                .get(id)
                .await?
                .ok_or_else(|| SchedulerError::NotFound(id.clone()))?;
            if let Some(expected) = expected_revision
                && expected != job.revision
            {
                return Err(SchedulerError::Conflict {
                    job: id.clone(),
                    detail: format!("expected revision {expected}, found {}", job.revision),
                });
            }
            let mut spec = JobSpec::clone(&job.spec);
            change(&mut spec);
            job.update_spec(spec, self.inner.clock.now_ms());
            match self
                .inner
                .coordinator
                .put_job(job.clone(), Precondition::Revision(job.revision))
                .await
                .map_err(|e| refused_by_store(&job, e))
            {
                Ok(revision) => {
                    job.revision = revision;
                    return Ok(job);
                }
                Err(SchedulerError::Conflict { .. })
                    if expected_revision.is_none() && attempt < MODIFY_ATTEMPTS =>
                {
                    continue;
                }
                Err(e) => return Err(e),
            }
        }
    }

    fn generate_id(&self) -> JobId {
        let suffix: u64 = self
            .inner
            .rng
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .random();
        JobId::new(format!(
            "j-{:x}-{:012x}",
            self.inner.clock.now_ms(),
            suffix & 0xffff_ffff_ffff
        ))
        .expect("generated ids are valid")
    }
}

/// Refuses a job that would never fire after `now_ms`: its schedule has no instant to come (a past `@at`,
/// a year that has passed), or its `end_at` is before the next one. The error names the field to change.
fn fires_at_all(spec: &JobSpec, now_ms: i64) -> Result<(), ValidationError> {
    if !preview(spec, now_ms, 1)
        .map_err(|e| match e {
            SchedulerError::Invalid(v) => v,
            other => ValidationError::new("timezone", &spec.timezone, other.to_string()),
        })?
        .is_empty()
    {
        return Ok(());
    }
    let at = |ms: i64| {
        chrono::DateTime::from_timestamp_millis(ms)
            .map_or_else(|| ms.to_string(), |t| t.to_rfc3339())
    };
    if let Some(end) = spec.end_at
        && end.timestamp_millis() <= now_ms
    {
        return Err(ValidationError::new(
            "end_at",
            end.to_rfc3339(),
            format!(
                "has passed (now is {}): the job would never fire",
                at(now_ms)
            ),
        ));
    }
    let tz = spec.tz()?;
    let from = spec
        .start_at
        .map_or(now_ms, |start| now_ms.max(start.timestamp_millis() - 1));
    match (
        spec.schedule.next_after(from, tz, spec.dst_handling()),
        spec.end_at,
    ) {
        (Some(next), Some(end)) => Err(ValidationError::new(
            "end_at",
            end.to_rfc3339(),
            format!(
                "is before the schedule's next instant {}: the job would never fire",
                at(next)
            ),
        )),
        _ => Err(ValidationError::new(
            "schedule",
            spec.schedule.as_str(),
            format!(
                "has no instant after {}: the job would never fire",
                at(from.max(now_ms))
            ),
        )),
    }
}

/// The next `n` instants of a spec strictly after `after_ms`, within its start/end bounds.
pub(crate) fn preview(spec: &JobSpec, after_ms: i64, n: usize) -> Result<Vec<i64>, SchedulerError> {
    let tz = spec.tz()?;
    let start = spec
        .start_at
        .map(|t| t.timestamp_millis() - 1)
        .unwrap_or(i64::MIN);
    let end = spec
        .end_at
        .map(|t| t.timestamp_millis())
        .unwrap_or(i64::MAX);
    let mut out = spec
        .schedule
        .preview(after_ms.max(start), n.min(1000), tz, spec.dst_handling());
    out.retain(|&t| t <= end);
    Ok(out)
}

/// A job write's error. The store refuses a job itself (`CoordError::Invalid`) only for its size (see
/// `coordinator::limits::check_job`): that is the input's fault, so it becomes a [`ValidationError`] naming the
/// member that takes most of the room (`target.env.BIG`), which is what to shrink.
fn refused_by_store(job: &Job, error: CoordError) -> SchedulerError {
    let CoordError::Invalid(reason) = error else {
        return error.into();
    };
    let (field, bytes) = serde_json::to_value(&job.spec)
        .map(|spec| largest_member(&spec))
        .unwrap_or_default();
    let field = if field.is_empty() {
        "job".to_owned()
    } else {
        field
    };
    ValidationError::new(
        field,
        format!("{bytes} bytes as JSON"),
        format!("the largest part of a job the store refuses: {reason}"),
    )
    .into()
}

/// The dotted path of the member that holds most of `value`'s JSON bytes, descending while one member holds
/// at least half of its parent, and its size.
fn largest_member(value: &serde_json::Value) -> (String, usize) {
    fn size(value: &serde_json::Value) -> usize {
        serde_json::to_vec(value).map_or(0, |json| json.len())
    }
    let mut path = String::new();
    let mut current = value;
    loop {
        let total = size(current);
        let Some((key, child)) = current.as_object().and_then(|members| {
            members
                .iter()
                .max_by_key(|(_, child)| size(child))
                .filter(|(_, child)| size(child) * 2 >= total)
        }) else {
            return (path, total);
        };
        if !path.is_empty() {
            path.push('.');
        }
        path.push_str(key);
        current = child;
    }
}
