//! The simulated cluster: N engine nodes over one in-memory coordinator, each behind its own
//! `FaultyCoordinator` sharing one seeded `FaultControl`, one virtual clock, and one recording handler.
//!
//! The driver ([`Cluster::apply`]) performs one scenario step at a time and logs what it did. Job changes go
//! straight to the coordinator, without faults, as an API client on a healthy path would; what they wrote is
//! read back from the store, so the job histories the invariants use are the store's own.

use std::collections::{BTreeMap, BTreeSet};
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use campanile::clock::Clock;
use campanile::coordinator::{Precondition, RunQuery, SessionId};
use campanile::job::{ExecutorGroup, HandlerTarget};
use campanile::node::ShutdownReport;
use campanile::{
    Coordinator, FireContext, Job, JobId, JobSpec, Schedule, Scheduler, SchedulerError, Target,
};
use campanile_adapters::{FaultControl, FaultyCoordinator};
use tokio::task::JoinHandle;

use super::scenario::{Action, JobChange, JobPlan, SCHEDULES, Scenario};
use super::trace::{JobHistory, JobVersion, Snapshot, Trace};

/// A bound on how long (virtual time) any one driver action may take: reaching it is a hang, and a finding.
const ACTION_BOUND: Duration = Duration::from_secs(120);

/// Deadline given to `shutdown` for running runs.
const SHUTDOWN_DEADLINE: Duration = Duration::from_secs(5);

/// Awaits `future`, panicking if it takes longer than [`ACTION_BOUND`] of virtual time.
pub async fn bounded<T>(what: impl std::fmt::Display, future: impl Future<Output = T>) -> T {
    match tokio::time::timeout(ACTION_BOUND, future).await {
        Ok(value) => value,
        Err(_) => panic!("{what} did not finish within {ACTION_BOUND:?} of virtual time"),
    }
}

enum State {
    /// Not started, crashed, or left.
    Down,
    Running(Scheduler),
    /// Shutting down gracefully (the shutdown runs in a task).
    Leaving(JoinHandle<Result<ShutdownReport, SchedulerError>>),
}

struct Node {
    state: State,
    /// In an episode (frozen, partitioned, left or crashed for an episode): not a candidate for another.
    busy: bool,
}

/// The cluster under simulation.
pub struct Cluster {
    seed: u64,
    inner: Arc<dyn Coordinator>,
    control: FaultControl,
    clock: Arc<dyn Clock>,
    trace: Trace,
    ttl: Duration,
    lookahead: Duration,
    misfire_threshold: Duration,
    nodes: BTreeMap<String, Node>,
    /// What each episode is about: a node, and for a partition its session.
    episodes: BTreeMap<u32, (String, Option<SessionId>)>,
    jobs: BTreeMap<JobId, JobHistory>,
    /// The workers of the executor group that some jobs run on ([`super::workers`]).
    workers: Option<Arc<super::workers::Workers>>,
}

/// FNV-1a: a stable hash, so a fire's simulated work is the same in every run of a seed.
pub fn stable_hash(text: &str) -> u64 {
    text.bytes().fold(0xcbf2_9ce4_8422_2325, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
    })
}

/// How long a fire's run takes and whether it fails, from its fire id and its job's name.
pub fn work(ctx: &FireContext) -> (Duration, bool) {
    let hash = stable_hash(&ctx.fire.to_string());
    let ms = if ctx.job_name.starts_with("slow") {
        700 + hash % 1600
    } else {
        hash % 300
    };
    (Duration::from_millis(ms), hash.is_multiple_of(13))
}

/// Every simulated job's run timeout: longer than any simulated run (at most 2.3 s), so none times out; it
/// bounds how long a run the log has no end for may have gone on (see `no_false_skip`).
pub const RUN_TIMEOUT: Duration = Duration::from_secs(5);

fn spec_of(plan: &JobPlan) -> JobSpec {
    let name = if plan.slow { "slow" } else { "quick" };
    let mut spec = JobSpec::new(
        format!("{name}-{}", plan.id),
        Schedule::parse(plan.schedule).expect("simulation schedules parse"),
        Target::Handler(HandlerTarget {
            timeout: Some(RUN_TIMEOUT),
            ..HandlerTarget::new("sim")
        }),
    );
    spec.misfire = plan.misfire;
    spec.overlap = plan.overlap;
    if super::workers::on_workers(&plan.id) {
        spec.executor = Some(ExecutorGroup {
            group: super::workers::GROUP.to_owned(),
        });
    }
    spec
}

impl Cluster {
    /// A cluster of `scenario.nodes`, none started yet.
    pub fn new(scenario: &Scenario, clock: Arc<dyn Clock>, trace: Trace) -> Self {
        Self {
            seed: scenario.seed,
            inner: Arc::new(campanile_inproc::InprocCoordinator::memory()),
            control: FaultControl::new(scenario.seed),
            clock,
            trace,
            ttl: scenario.ttl,
            lookahead: scenario.lookahead,
            misfire_threshold: scenario.misfire_threshold,
            nodes: scenario
                .nodes
                .iter()
                .map(|id| {
                    (
                        id.clone(),
                        Node {
                            state: State::Down,
                            busy: false,
                        },
                    )
                })
                .collect(),
            episodes: BTreeMap::new(),
            jobs: BTreeMap::new(),
            workers: None,
        }
    }

    /// The workers that connect to every node started from now on.
    pub fn set_workers(&mut self, workers: Arc<super::workers::Workers>) {
        self.workers = Some(workers);
    }

    /// The coordinator without faults.
    pub fn inner(&self) -> Arc<dyn Coordinator> {
        self.inner.clone()
    }

    fn log(&self, what: impl Into<String>) {
        self.trace.event(self.clock.now_ms(), what);
    }

    /// Starts node `id` (a fresh process under that id: it waits for an old session of the id to expire).
    pub async fn start(&mut self, id: &str) {
        if !matches!(self.nodes[id].state, State::Down) {
            self.log(format!("start {id}: it is not down, skipped"));
            return;
        }
        let trace = self.trace.clone();
        let clock = self.clock.clone();
        let coordinator = FaultyCoordinator::with_control(self.inner.clone(), self.control.clone());
        let scheduler = Scheduler::builder()
            .coordinator(Arc::new(coordinator))
            .node_id(id)
            .clock(self.clock.clone())
            .seed(self.seed ^ stable_hash(id))
            .session_ttl(self.ttl)
            .claim_lookahead(self.lookahead)
            .misfire_threshold(self.misfire_threshold)
            .local_hub()
            .handler("sim", move |ctx: FireContext| {
                let trace = trace.clone();
                let clock = clock.clone();
                async move {
                    let seq = trace.started(
                        ctx.fire.clone(),
                        ctx.node.to_string(),
                        ctx.attempt,
                        clock.now_us(),
                    );
                    let (took, fails) = work(&ctx);
                    tokio::time::sleep(took).await;
                    trace.ended(seq, clock.now_us());
                    if fails {
                        Err("simulated failure".into())
                    } else {
                        Ok(())
                    }
                }
            })
            .start();
        let scheduler = bounded(format_args!("starting {id}"), scheduler)
            .await
            .unwrap_or_else(|e| panic!("{id} did not start: {e}"));
        self.log(format!("start {id}"));
        if let (Some(workers), Some(hub)) = (&self.workers, scheduler.hub()) {
            workers.node_up(id, hub);
        }
        self.nodes.get_mut(id).expect("a node of the cluster").state = State::Running(scheduler);
    }

    /// Waits for a leaving node's shutdown to finish.
    async fn settle(&mut self, id: &str) {
        let node = self.nodes.get_mut(id).expect("a node of the cluster");
        if !matches!(node.state, State::Leaving(_)) {
            return;
        }
        if let State::Leaving(handle) = std::mem::replace(&mut node.state, State::Down) {
            if let Some(workers) = &self.workers {
                workers.node_down(id);
            }
            let result = bounded(format_args!("shutdown of {id}"), handle).await;
            let what = match result {
                Ok(Ok(report)) => format!("{id} left: {report:?}"),
                Ok(Err(e)) => format!("{id} shutdown failed: {e}"),
                Err(e) => format!("{id} shutdown task failed: {e}"),
            };
            self.log(what);
        }
    }

    /// Running nodes that are in no episode, sorted by id.
    fn candidates(&self) -> Vec<String> {
        self.nodes
            .iter()
            .filter(|(_, n)| matches!(n.state, State::Running(_)) && !n.busy)
            .map(|(id, _)| id.clone())
            .collect()
    }

    fn running(&self) -> usize {
        self.nodes
            .values()
            .filter(|n| matches!(n.state, State::Running(_)))
            .count()
    }

    /// Picks a node for episode `episode`, or logs why none and returns `None`. With `keep_one`, never the
    /// last running node.
    fn pick(&mut self, episode: u32, pick: u64, keep_one: bool, what: &str) -> Option<String> {
        let candidates = self.candidates();
        if candidates.is_empty() || (keep_one && self.running() < 2) {
            self.log(format!("{what}: no candidate node, skipped"));
            return None;
        }
        let id = candidates[(pick % candidates.len() as u64) as usize].clone();
        self.nodes.get_mut(&id).expect("a candidate").busy = true;
        self.episodes.insert(episode, (id.clone(), None));
        Some(id)
    }

    fn scheduler(&self, id: &str) -> Option<Scheduler> {
        match &self.nodes[id].state {
            State::Running(s) => Some(s.clone()),
            _ => None,
        }
    }

    /// The node's live session, as the coordinator knows it.
    async fn session_of(&self, id: &str) -> Option<SessionId> {
        let members = self.inner.members().await.ok()?;
        members
            .members
            .iter()
            .find(|m| m.node.id.as_str() == id)
            .map(|m| m.session)
    }

    /// Performs one step.
    pub async fn apply(&mut self, action: &Action) {
        match action {
            Action::Join => {
                let down = self
                    .nodes
                    .iter()
                    .find(|(_, n)| matches!(n.state, State::Down) && !n.busy)
                    .map(|(id, _)| id.clone());
                match down {
                    Some(id) => {
                        self.log(format!("join {id}"));
                        self.start(&id).await;
                    }
                    None => self.log("join: every node is up, skipped"),
                }
            }
            Action::Leave { episode, pick } => {
                if let Some(id) = self.pick(*episode, *pick, true, "leave") {
                    let scheduler = self.scheduler(&id).expect("a running candidate");
                    self.log(format!("leave {id} (graceful shutdown)"));
                    let handle =
                        tokio::spawn(async move { scheduler.shutdown(SHUTDOWN_DEADLINE).await });
                    self.nodes.get_mut(&id).expect("a node").state = State::Leaving(handle);
                }
            }
            Action::Crash { episode, pick } => {
                if let Some(id) = self.pick(*episode, *pick, true, "crash") {
                    let scheduler = self.scheduler(&id).expect("a running candidate");
                    let stats = self.control.stats();
                    self.log(format!(
                        "crash {id} (abort; replies lost so far: {})",
                        stats.replies_lost
                    ));
                    bounded(format_args!("abort of {id}"), scheduler.abort()).await;
                    if let Some(workers) = &self.workers {
                        workers.node_down(&id);
                    }
                    self.nodes.get_mut(&id).expect("a node").state = State::Down;
                }
            }
            Action::Return { episode } => {
                if let Some((id, _)) = self.episodes.get(episode).cloned() {
                    self.settle(&id).await;
                    self.log(format!("return {id} (restart under the same id)"));
                    self.start(&id).await;
                    self.nodes.get_mut(&id).expect("a node").busy = false;
                }
            }
            Action::Freeze {
                episode,
                pick,
                pause,
            } => {
                if let Some(id) = self.pick(*episode, *pick, false, "freeze") {
                    let scheduler = self.scheduler(&id).expect("a running candidate");
                    let session = self.session_of(&id).await;
                    self.log(format!(
                        "freeze {id} for {pause:?} (session {session:?}, ttl {:?})",
                        self.ttl
                    ));
                    if let Err(e) = scheduler.freeze(*pause) {
                        self.log(format!("freeze {id} failed: {e}"));
                    }
                }
            }
            Action::Release { episode } => {
                if let Some((id, _)) = self.episodes.get(episode).cloned() {
                    self.nodes.get_mut(&id).expect("a node").busy = false;
                    let session = self.session_of(&id).await;
                    self.log(format!(
                        "{id} is out of its freeze episode (session now {session:?})"
                    ));
                }
            }
            Action::Partition { episode, pick } => {
                if let Some(id) = self.pick(*episode, *pick, false, "partition") {
                    match self.session_of(&id).await {
                        Some(session) => {
                            self.control.partition(session);
                            self.episodes.insert(*episode, (id.clone(), Some(session)));
                            self.log(format!("partition {id}'s session {session}"));
                        }
                        None => {
                            self.nodes.get_mut(&id).expect("a node").busy = false;
                            self.log(format!("partition: {id} has no session now, skipped"));
                        }
                    }
                }
            }
            Action::Reconnect { episode } => {
                if let Some((id, session)) = self.episodes.get(episode).cloned() {
                    self.nodes.get_mut(&id).expect("a node").busy = false;
                    if let Some(session) = session {
                        self.control.heal_session(session);
                        let now = self.session_of(&id).await;
                        self.log(format!(
                            "reconnect {id}'s session {session} (live session now {now:?})"
                        ));
                    }
                }
            }
            Action::FailRandomly {
                methods,
                probability,
                fault,
            } => {
                match methods {
                    Some(methods) => self.control.fail_randomly_on(methods, *probability, *fault),
                    None => self.control.fail_randomly(*probability, *fault),
                }
                let on = methods.as_ref().map_or_else(
                    || "every call".to_owned(),
                    |m| m.iter().map(|m| m.name()).collect::<Vec<_>>().join(", "),
                );
                self.log(format!(
                    "coordinator errors on: {on}, p = {probability:.2}, {fault:?}"
                ));
            }
            Action::FailClaimsAfter { calls } => {
                self.control.fail_after_on(
                    &[campanile_adapters::Method::ClaimFires],
                    *calls,
                    campanile_adapters::Fault::ReplyLost,
                );
                self.log(format!(
                    "claim_fires loses its replies after {calls} more calls (the claims are written)"
                ));
            }
            Action::StopFailing => {
                self.control.stop_failing();
                self.log(format!(
                    "coordinator errors off ({:?})",
                    self.control.stats()
                ));
            }
            Action::Delay { min, max } => {
                self.control.set_delay(*min, *max);
                self.log(format!("coordinator delays {min:?}..={max:?}"));
            }
            Action::ClearDelay => {
                self.control.clear_delay();
                self.log("coordinator delays off");
            }
            Action::CreateJob(plan) => self.create(plan).await,
            Action::UpdateJob { pick, change } => self.update(*pick, change).await,
            Action::DeleteJob { pick } => self.delete(*pick).await,
        }
    }

    fn live_jobs(&self) -> Vec<JobId> {
        self.jobs
            .values()
            .filter(|j| j.deleted_ms.is_none())
            .map(|j| j.id.clone())
            .collect()
    }

    /// Creates a job (straight to the coordinator) and starts its history from the stored job.
    pub async fn create(&mut self, plan: &JobPlan) {
        let id = JobId::new(&plan.id).expect("simulation job ids are valid");
        let job = Job::new(id.clone(), spec_of(plan), self.clock.now_ms());
        self.inner
            .put_job(job, Precondition::Absent)
            .await
            .expect("the coordinator without faults accepts a create");
        let stored = self.stored(&id).await;
        self.log(format!(
            "create {id} {:?} ({}, misfire {:?}, overlap {:?}{})",
            plan.schedule,
            if plan.slow { "slow" } else { "quick" },
            plan.misfire,
            plan.overlap,
            if super::workers::on_workers(&plan.id) {
                format!(", on the workers of {}", super::workers::GROUP)
            } else {
                String::new()
            }
        ));
        self.jobs.insert(
            id.clone(),
            JobHistory {
                id,
                versions: vec![JobVersion {
                    from_ms: stored.created_ms,
                    schedule: stored.spec.schedule.as_str().to_owned(),
                }],
                deleted_ms: None,
            },
        );
    }

    async fn stored(&self, id: &JobId) -> Job {
        self.inner
            .get_job(id)
            .await
            .expect("the coordinator without faults answers")
            .expect("the job exists")
    }

    async fn update(&mut self, pick: u64, change: &JobChange) {
        let live = self.live_jobs();
        if live.is_empty() {
            self.log("update: no job, skipped");
            return;
        }
        let id = live[(pick % live.len() as u64) as usize].clone();
        let mut job = self.stored(&id).await;
        let mut spec = (*job.spec).clone();
        let what = match change {
            JobChange::Schedule => {
                let next = SCHEDULES
                    .iter()
                    .find(|s| **s != spec.schedule.as_str())
                    .expect("two schedules");
                spec.schedule = Schedule::parse(next).expect("simulation schedules parse");
                format!("schedule {next:?}")
            }
            JobChange::Misfire(policy) => {
                spec.misfire = *policy;
                format!("misfire {policy:?}")
            }
            JobChange::Overlap(policy) => {
                spec.overlap = *policy;
                format!("overlap {policy:?}")
            }
        };
        // As `Scheduler::update` does: the old timing is kept for the instants it still owes.
        job.update_spec(spec, self.clock.now_ms());
        let revision = job.revision;
        self.inner
            .put_job(job, Precondition::Revision(revision))
            .await
            .expect("the coordinator without faults accepts an update");
        let stored = self.stored(&id).await;
        self.log(format!("update {id}: {what}"));
        self.jobs
            .get_mut(&id)
            .expect("a known job")
            .versions
            .push(JobVersion {
                from_ms: stored.updated_ms,
                schedule: stored.spec.schedule.as_str().to_owned(),
            });
    }

    async fn delete(&mut self, pick: u64) {
        let live = self.live_jobs();
        if live.len() <= 3 {
            self.log("delete: keeping the last 3 jobs, skipped");
            return;
        }
        let id = live[(pick % live.len() as u64) as usize].clone();
        self.inner
            .delete_job(&id, Precondition::Exists)
            .await
            .expect("the coordinator without faults accepts a delete");
        self.log(format!("delete {id}"));
        self.jobs.get_mut(&id).expect("a known job").deleted_ms = Some(self.clock.now_ms());
    }

    /// The heal: every fault off, every node running.
    pub async fn heal(&mut self) {
        self.control.heal();
        if let Some(workers) = &self.workers {
            workers.heal();
        }
        self.log(format!(
            "heal: every fault off ({:?})",
            self.control.stats()
        ));
        let ids: Vec<String> = self.nodes.keys().cloned().collect();
        for id in ids {
            self.settle(&id).await;
            let node = self.nodes.get_mut(&id).expect("a node");
            node.busy = false;
            if matches!(node.state, State::Down) {
                self.start(&id).await;
            }
        }
    }

    /// Logs every running node's view of itself (or that it has stopped).
    pub async fn log_status(&self) {
        for (id, node) in &self.nodes {
            let State::Running(scheduler) = &node.state else {
                continue;
            };
            let what = match bounded(format_args!("status of {id}"), scheduler.status()).await {
                Ok(s) => format!(
                    "{id}: session {:?}, leader epoch {:?}, owns {} of {} jobs, assignment version {:?}",
                    s.session, s.leader_epoch, s.owned, s.jobs, s.assignment_version
                ),
                Err(e) => format!("{id}: {e} (actor {:?})", scheduler.actor().get_status()),
            };
            self.log(what);
        }
    }

    /// Graceful shutdown of every node, one after the other.
    pub async fn shutdown_all(&mut self) {
        let ids: Vec<String> = self.nodes.keys().cloned().collect();
        for id in ids {
            if let Some(scheduler) = self.scheduler(&id) {
                let result = bounded(
                    format_args!("shutdown of {id}"),
                    scheduler.shutdown(SHUTDOWN_DEADLINE),
                )
                .await;
                self.log(format!("final shutdown of {id}: {result:?}"));
            }
            self.settle(&id).await;
            self.nodes.get_mut(&id).expect("a node").state = State::Down;
        }
    }

    /// Every job's history, and the run records of those that still exist, oldest first.
    pub async fn ledger(&self) -> (Vec<JobHistory>, BTreeMap<JobId, Vec<campanile::RunRecord>>) {
        let mut records = BTreeMap::new();
        for id in self.live_jobs() {
            let query = RunQuery {
                from_ms: None,
                before_ms: None,
                limit: 1_000_000,
            };
            let mut runs = self
                .inner
                .runs(&id, query)
                .await
                .expect("the coordinator without faults answers");
            runs.reverse();
            records.insert(id, runs);
        }
        (self.jobs.values().cloned().collect(), records)
    }
}

/// Logs a [`Snapshot`] of the members and the assignment at every change, until `stop` fires.
pub fn watch_assignment(
    inner: Arc<dyn Coordinator>,
    clock: Arc<dyn Clock>,
    trace: Trace,
    mut stop: tokio::sync::oneshot::Receiver<()>,
) -> JoinHandle<()> {
    tokio::spawn(async move {
        let mut assignment = inner.watch_assignment().await.expect("a watch");
        let mut members = inner.watch_members().await.expect("a watch");
        loop {
            let owners = assignment.borrow_and_update().clone();
            let members_now: BTreeSet<String> = members
                .borrow_and_update()
                .members
                .iter()
                .map(|m| m.node.id.to_string())
                .collect();
            trace.snapshot(Snapshot {
                at_ms: clock.now_ms(),
                members: members_now,
                version: owners.as_ref().map(|a| a.version),
                owners: owners
                    .map(|a| {
                        a.owners
                            .iter()
                            .map(|(j, n)| (j.clone(), n.to_string()))
                            .collect()
                    })
                    .unwrap_or_default(),
            });
            tokio::select! {
                biased;
                _ = &mut stop => return,
                changed = assignment.changed() => if changed.is_err() { return },
                changed = members.changed() => if changed.is_err() { return },
            }
        }
    })
}
