//! The executor actor: decides each fire's overlap, runs fires with bounded concurrency, with timeouts and
//! retries, and sends each run's record to the recorder.
//!
//! The timer hands it the due fires; the job's overlap policy ([`overlap`]) decides which start, and is judged
//! here, where runs end: before every decision the actor takes the ends its run tasks reported, so a run that
//! has ended is never taken for a running one.
//!
//! Each run is a tokio task; the actor keeps their abort handles so that `cancel_previous` and the shutdown
//! deadline can stop them (a command target's process group is killed when its future is dropped). An
//! in-process handler's run is first polled on the actor's turn, and needs a task only if it does not end in
//! that poll (see `inline_first_poll`): a burst of quick handlers costs no task per fire. A fire of a job
//! with nothing running, whose run ends in that poll, never enters the overlap state at all, and the records
//! of a turn go to the recorder in one message. Fires beyond the concurrency limit wait in a FIFO queue; their
//! lateness shows in the lateness histogram.
//!
//! A fire of a job with an executor group runs in a task that dispatches it to a worker (`remote_attempt`),
//! and may wait there for one. Its [`crate::cluster::RemoteProgress`] tells the overlap state whether it
//! has started (a fire waiting for a worker is not a run going on), and, when the actor kills it before a
//! worker started it, makes its record say it never ran ([`overlap::withdrawn`]).
//!
//! Every fire the overlap state counts as running is finished in it exactly once: when its run task's record
//! is taken, when it ends in the actor's first poll, when the actor kills it, or when it never starts (a
//! duplicate, a shutdown). A run finished twice would let an overlap through, one never finished would skip
//! the job's instants for good.

use std::collections::VecDeque;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicI64, AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, Waker};
use std::time::Duration;

use futures::FutureExt;
use ractor::{Actor, ActorProcessingErr, ActorRef, RpcReplyPort};
use rustc_hash::{FxHashMap, FxHashSet};
use tokio::task::JoinHandle;

use super::fire::{Fire, FireKind};
use super::overlap::{self, Decisions};
use super::recorder;
use crate::clock::Clock;
use crate::coordinator::NodeId;
use crate::exec::{AttemptResult, FireContext};
use crate::job::{FireId, JobId, Target};
use crate::run::{Outcome, RunRecord};

/// What an in-process handler's error is: any error (`?` works on any), or text (`Err("why".into())`).
pub type HandlerError = Box<dyn std::error::Error + Send + Sync>;

/// The future an in-process handler returns: `Err(error)` marks the run failed, with the error's text as
/// the run's reason.
pub type HandlerFuture = Pin<Box<dyn Future<Output = Result<(), HandlerError>> + Send + 'static>>;

/// An in-process handler, registered on the builder by name and named by `Target::Handler`.
pub type Handler = Arc<dyn Fn(FireContext) -> HandlerFuture + Send + Sync + 'static>;

/// Handlers by name. Hashed with Fx, not SipHash: every handler fire looks its handler up, the names are the
/// application's, and a name that is not registered costs one probe.
pub type Handlers = rustc_hash::FxHashMap<String, Handler>;

/// The executor actor.
pub struct Executor;

/// Messages of the executor.
pub enum Msg {
    /// Due fires: their jobs' overlap policies decide which start (queued beyond the concurrency limit).
    Run(Vec<Fire>),
    /// Run tasks finished: their records wait in the completions buffer (one message per batch, not per
    /// run: under load the executor handles many completions per message).
    Completed,
    /// Stop starting runs; answer when none is running, or when `deadline` passed, after killing the rest.
    Drain {
        /// How long running runs may take.
        deadline: Duration,
        /// Answered with the number of runs killed at the deadline.
        reply: RpcReplyPort<usize>,
    },
    /// The drain deadline passed.
    DrainDeadline,
    /// Process nothing for this long (the simulation's model of a frozen process: SIGSTOP, a long GC pause).
    Freeze(std::time::Duration),
    /// Runs in flight and queued.
    Load {
        /// `(running, queued)`.
        reply: RpcReplyPort<(usize, usize)>,
    },
}

impl std::fmt::Debug for Msg {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Msg::Run(fires) => write!(f, "Run({} fires)", fires.len()),
            Msg::Completed => f.write_str("Completed"),
            Msg::Drain { deadline, .. } => write!(f, "Drain({deadline:?})"),
            Msg::DrainDeadline => f.write_str("DrainDeadline"),
            Msg::Load { .. } => f.write_str("Load"),
            Msg::Freeze(pause) => write!(f, "Freeze({pause:?})"),
        }
    }
}

/// What the executor is started with.
pub struct Arguments {
    /// This node.
    pub node: NodeId,
    /// Wall time.
    pub clock: Arc<dyn Clock>,
    /// Registered handlers.
    pub handlers: Arc<Handlers>,
    /// Most runs at once.
    pub max_concurrent: usize,
    /// Where records go.
    pub records: recorder::Sink,
    /// Wall time (Unix ms) until which the node's session is proven valid (see `node::Fence`).
    pub fence: super::Fence,
    /// Jobs whose claims this node is running out (see `node::Revoked`).
    pub revoked: super::Revoked,
    /// What commands start from.
    pub base_env: crate::exec::BaseEnv,
    /// Where HTTP targets may connect.
    pub egress: crate::exec::Egress,
    /// Where fires of jobs with an executor group go (`None`: the node has no cluster port).
    pub hub: Option<crate::cluster::Hub>,
}

/// Everything a run task needs, shared: a run task holds one `Arc` of it and its fire, nothing else.
struct RunEnv {
    node: NodeId,
    clock: Arc<dyn Clock>,
    fence: super::Fence,
    revoked: super::Revoked,
    handlers: Arc<Handlers>,
    base_env: crate::exec::BaseEnv,
    #[cfg(feature = "http")]
    http: crate::exec::HttpClients,
    hub: Option<crate::cluster::Hub>,
    metrics: RunMetrics,
    /// The executor itself, woken by the first completion of a batch.
    executor: ActorRef<Msg>,
    /// Finished runs and killed ones, behind one lock (see [`Done`]).
    done: Mutex<Done>,
}

/// Who reports a run's end, decided under one lock: the run task when it ends, or the actor when it kills
/// the run. Exactly one of them does: a run that ended by itself has its record in `completions` (the actor
/// skips it), and a killed run is in `killed` (its task, should it still end, reports nothing).
#[derive(Default)]
struct Done {
    /// Records of finished runs, waiting for the executor to take them (see `Msg::Completed`).
    completions: Vec<RunRecord>,
    /// Runs the actor killed and reported.
    killed: FxHashSet<FireId>,
}

/// The per-fire metrics, registered once when the executor starts (a lookup per fire costs more than the
/// update; a recorder installed later than the node's start does not see them, see `crate::metrics`).
struct RunMetrics {
    fires: metrics::Counter,
    lateness: metrics::Histogram,
    in_flight: metrics::Gauge,
}

impl RunMetrics {
    fn register() -> Self {
        Self {
            fires: metrics::counter!(crate::metrics::FIRES),
            lateness: metrics::histogram!(crate::metrics::LATENESS),
            in_flight: metrics::gauge!(crate::metrics::IN_FLIGHT),
        }
    }
}

/// A started run, as the actor holds it.
struct Run {
    task: JoinHandle<()>,
    /// Whether it is a manual fire (its record says so if it is killed; the record itself is built only then,
    /// not for every fire).
    manual: bool,
    /// How far the run got, for its record if it is killed.
    progress: Arc<Progress>,
}

/// The start and number of a run's current attempt, written by its task, read by the actor when it kills the
/// run: a killed run's record says when it started and which attempt was cut short.
struct Progress {
    /// Unix ms of the current attempt's start; [`Progress::NOT_STARTED`] before the first (during jitter).
    started_ms: AtomicI64,
    /// The current attempt, 0 before the first.
    attempt: AtomicU32,
    /// A fire of a job with an executor group: how far its dispatch got (see
    /// [`overlap::withdrawn`]).
    remote: Option<Arc<crate::cluster::RemoteProgress>>,
}

impl Progress {
    const NOT_STARTED: i64 = i64::MIN;

    fn new(fire: &Fire) -> Self {
        Self {
            started_ms: AtomicI64::new(Self::NOT_STARTED),
            attempt: AtomicU32::new(0),
            remote: fire.job.spec.executor.is_some().then(Default::default),
        }
    }

    fn attempt_started(&self, attempt: u32, at_ms: i64) {
        self.started_ms.store(at_ms, Ordering::Relaxed);
        self.attempt.store(attempt, Ordering::Relaxed);
    }

    fn started_ms(&self) -> Option<i64> {
        Some(self.started_ms.load(Ordering::Relaxed)).filter(|&t| t != Self::NOT_STARTED)
    }
}

/// The executor's state.
pub struct State {
    env: Arc<RunEnv>,
    max_concurrent: usize,
    sink: recorder::Sink,
    /// Which jobs run here, and what waits for them.
    overlap: overlap::State,
    /// Records of this turn, handed to the recorder together at its end.
    records: Vec<RunRecord>,
    queue: VecDeque<Fire>,
    running: FxHashMap<FireId, Run>,
    /// Killed runs whose task may still be running (aborted, not yet dropped): their ids leave
    /// [`Done::killed`] once the task is gone.
    aborted: Vec<(FireId, JoinHandle<()>)>,
    /// Completions taken last time (the next buffer's capacity).
    last_batch: usize,
    draining: Option<RpcReplyPort<usize>>,
}

impl State {
    /// Whether the executor is shutting down: nothing new starts.
    fn closed(&self) -> bool {
        self.draining.is_some() || self.max_concurrent == 0
    }

    /// New fires, at the start of the turn: runs that ended before count as ended, then each fire's job's
    /// overlap policy decides. A fire of an idle job whose handler is polled inline starts at once, without
    /// entering the overlap state unless its run goes on past that poll.
    fn fires(&mut self, fires: Vec<Fire>) {
        self.completed();
        let now_ms = self.env.clock.now_ms();
        let mut decisions = Decisions::default();
        let mut fires = fires.into_iter();
        let mut warmed = 0usize;
        while let Some(fire) = fires.next() {
            if warmed == 0 {
                // Read ahead what starting reads of the next jobs (see `Job::warm`).
                let ahead = &fires.as_slice()[..fires.len().min(crate::job::WARM_AHEAD)];
                let sum = ahead
                    .iter()
                    .fold(0usize, |sum, f| sum.wrapping_add(f.job.warm()));
                std::hint::black_box(sum);
                warmed = ahead.len().max(1);
            }
            warmed -= 1;
            if self.queue.is_empty()
                && self.running.len() < self.max_concurrent
                && !self.closed()
                && inline_first_poll(&fire)
                && self.overlap.is_idle(&fire.job.id)
            {
                if let Some(record) = self.launch(fire.id(), fire, false, now_ms) {
                    self.records.push(record);
                }
                continue;
            }
            self.overlap.fire(fire, now_ms, &mut decisions);
            self.apply(&mut decisions);
            self.start_queued();
        }
    }

    /// Carries out overlap decisions until none is left: a cancel kills the job's runs (whose ends may release
    /// more), a start joins the queue (or, while shutting down, ends as not started), a record goes out with
    /// the turn's batch.
    fn apply(&mut self, decisions: &mut Decisions) {
        loop {
            self.records.append(&mut decisions.records);
            if let Some(job) = decisions.cancel.pop() {
                self.kill(|id| id.job == job, overlap::CANCELLED, decisions);
                continue;
            }
            if decisions.start.is_empty() {
                break;
            }
            let start = std::mem::take(&mut decisions.start);
            if self.closed() {
                self.not_started(start, decisions);
            } else {
                self.queue.extend(start);
            }
        }
    }

    /// A fire the overlap state counts as running ended at `ended_ms` (or never started): what waited for it
    /// is decided.
    fn finished(&mut self, job: &JobId, ended_ms: i64, now_ms: i64) {
        let mut decisions = Decisions::default();
        self.overlap.finished(job, ended_ms, now_ms, &mut decisions);
        self.apply(&mut decisions);
    }

    fn start_queued(&mut self) {
        let mut started = false;
        while self.running.len() < self.max_concurrent
            && self.draining.is_none()
            && let Some(fire) = self.queue.pop_front()
        {
            started = true;
            let now_ms = self.env.clock.now_ms();
            let id = fire.id();
            if self.running.contains_key(&id) {
                // The same instant twice on one node (a manual trigger at the same millisecond): run it once.
                // The overlap state counted it as a run: it ends here.
                self.finished(&id.job, now_ms, now_ms);
                continue;
            }
            let job = id.job.clone();
            if let Some(record) = self.launch(id, fire, true, now_ms) {
                let ended_ms = record.ended_ms.unwrap_or(now_ms);
                self.records.push(record);
                self.finished(&job, ended_ms, now_ms);
            }
        }
        if started {
            self.env.metrics.in_flight.set(self.running.len() as f64);
        }
    }

    /// Starts a fire's run. An in-process handler's run is polled once here first (see `inline_first_poll`):
    /// if it ended in that poll, its record is returned and no task is needed. Otherwise a task runs it, and a
    /// fire the overlap state has not counted yet (`tracked` false: started on the fast path of an idle job)
    /// is counted now.
    fn launch(&mut self, id: FireId, fire: Fire, tracked: bool, now_ms: i64) -> Option<RunRecord> {
        let manual = fire.kind == FireKind::Manual;
        let scheduled_ms = fire.scheduled_ms;
        let inline = inline_first_poll(&fire);
        let progress = Arc::new(Progress::new(&fire));
        let mut run = Box::pin(run_fire(self.env.clone(), fire, progress.clone()));
        if inline
            && let Poll::Ready(record) = run.as_mut().poll(&mut Context::from_waker(Waker::noop()))
        {
            return Some(record);
        }
        if !tracked {
            self.overlap.begin(id.job.clone(), scheduled_ms, now_ms);
        }
        if let Some(remote) = &progress.remote {
            self.overlap.dispatched(&id.job, remote.clone());
        }
        let task = tokio::spawn(run_task(self.env.clone(), run));
        self.running.insert(
            id,
            Run {
                task,
                manual,
                progress,
            },
        );
        None
    }

    /// Aborts runs and records them as failed with `reason` (a fire still waiting for a worker as
    /// [`overlap::withdrawn`] says); their ends go into the overlap state, and what that releases into `out`.
    fn kill(
        &mut self,
        which: impl Fn(&FireId) -> bool,
        reason: &str,
        out: &mut Decisions,
    ) -> usize {
        let now_ms = self.env.clock.now_ms();
        let mut records = Vec::new();
        {
            let mut done = self.env.done.lock().unwrap_or_else(|p| p.into_inner());
            let ids: Vec<FireId> = self
                .running
                .keys()
                .filter(|id| which(id))
                .filter(|id| {
                    // Ended by itself: its record waits in the completions buffer.
                    !done
                        .completions
                        .iter()
                        .any(|r| r.job == id.job && r.scheduled_ms == id.scheduled_ms)
                })
                .cloned()
                .collect();
            for id in ids {
                if let Some(run) = self.running.remove(&id) {
                    run.task.abort();
                    let mut record = RunRecord::new(&id, &self.env.node, Outcome::Failed);
                    record.manual = run.manual;
                    record.started_ms = run.progress.started_ms();
                    record.attempt = run.progress.attempt.load(Ordering::Relaxed);
                    record.reason = Some(reason.to_owned());
                    record.ended_ms = Some(now_ms);
                    if let Some(remote) = &run.progress.remote {
                        overlap::withdrawn(&mut record, remote.phase());
                    }
                    records.push(record);
                    done.killed.insert(id.clone());
                    self.aborted.push((id, run.task));
                }
            }
        }
        let killed = records.len();
        for record in &records {
            self.overlap.finished(&record.job, now_ms, now_ms, out);
        }
        self.records.extend(records);
        self.env.metrics.in_flight.set(self.running.len() as f64);
        killed
    }

    /// Records fires that will not start because the node is leaving as `misfired`: this node knows they
    /// did not run, so it says so rather than leaving them in doubt for a successor, which may be leaving
    /// too when the whole cluster stops at once (postmortem: simulation seed 448, a fire buffered behind a
    /// slow run was dropped by the last node to leave and had no record). Their ends go into the overlap
    /// state, and what that releases into `out`.
    fn not_started(&mut self, fires: Vec<Fire>, out: &mut Decisions) {
        if fires.is_empty() {
            return;
        }
        crate::metrics::misfired("shutdown", fires.len() as u64);
        let now_ms = self.env.clock.now_ms();
        for fire in fires {
            let mut record = RunRecord::new(&fire.id(), &self.env.node, Outcome::Misfired);
            record.reason = Some("missed: the node shut down before it could start".into());
            record.manual = fire.kind == FireKind::Manual;
            self.overlap.finished(&fire.job.id, now_ms, now_ms, out);
            self.records.push(record);
        }
    }

    /// Forgets killed runs whose task is gone (it ended, or was dropped by the abort).
    fn forget_aborted(&mut self) {
        if self.aborted.iter().all(|(_, task)| !task.is_finished()) {
            return;
        }
        let mut done = self.env.done.lock().unwrap_or_else(|p| p.into_inner());
        self.aborted.retain(|(id, task)| {
            let gone = task.is_finished();
            if gone {
                done.killed.remove(id);
            }
            !gone
        });
    }

    /// Takes every completed run from the buffer: each one's end goes into the overlap state, its record to
    /// the turn's batch.
    fn completed(&mut self) {
        // The next batch's buffer is allocated here, outside the lock and at the size of the last batch, so
        // that run tasks push into it without growing it under the lock.
        let mut fresh = Vec::new();
        let done = loop {
            let mut done = self.env.done.lock().unwrap_or_else(|p| p.into_inner());
            if done.completions.is_empty() {
                // Nothing ended: a lone fire's turn allocates nothing here.
                break Vec::new();
            }
            if fresh.capacity() > 0 {
                break std::mem::replace(&mut done.completions, fresh);
            }
            drop(done);
            fresh = Vec::with_capacity(self.last_batch.clamp(16, 4096));
        };
        self.last_batch = done.len();
        if done.is_empty() {
            return;
        }
        let now_ms = self.env.clock.now_ms();
        let mut decisions = Decisions::default();
        for record in &done {
            self.running
                .remove(&FireId::new(record.job.clone(), record.scheduled_ms));
            let ended_ms = record.ended_ms.unwrap_or(now_ms);
            self.overlap
                .finished(&record.job, ended_ms, now_ms, &mut decisions);
        }
        self.records.extend(done);
        self.apply(&mut decisions);
        self.env.metrics.in_flight.set(self.running.len() as f64);
    }

    /// Hands the turn's records to the recorder, together.
    fn send_records(&mut self) {
        self.sink.put(&mut self.records);
    }
}

/// Whether a fire's run is first polled on the executor's own turn rather than in a task: in-process handlers
/// without jitter. Most such handlers end in their first poll (they do their work without waiting, or hand it
/// on), and then the run costs no task; one that waits goes on in a task of its own, polled again there (its
/// first poll saw a waker that does nothing). Command and HTTP targets always start in a task (starting a
/// process blocks for a while), and so does a fire whose jitter sleeps first. An in-process handler must
/// not block the thread, as any async code: one that does delays the fires behind it in the batch.
fn inline_first_poll(fire: &Fire) -> bool {
    matches!(fire.job.spec.target, Target::Handler(_))
        && fire.job.spec.executor.is_none()
        && fire.job.spec.jitter.is_none_or(|j| j.is_zero())
}

/// One run's task: finishes the run (already polled once, maybe) and leaves its record for the actor, unless
/// the actor killed it meanwhile; the first record of a batch wakes the actor.
async fn run_task(env: Arc<RunEnv>, run: Pin<Box<impl Future<Output = RunRecord>>>) {
    let record = run.await;
    let first = {
        let mut done = env.done.lock().unwrap_or_else(|p| p.into_inner());
        if !done.killed.is_empty()
            && done
                .killed
                .remove(&FireId::new(record.job.clone(), record.scheduled_ms))
        {
            return; // killed meanwhile: the actor reported it
        }
        done.completions.push(record);
        done.completions.len() == 1
    };
    // Only the first completion of a batch wakes the executor; it takes them all.
    if first {
        let _ = env.executor.cast(Msg::Completed);
    }
}

/// Runs every attempt of one fire and returns its record.
///
/// Its future is what every run task carries: anything large that only some fires need (a jitter or backoff
/// sleep, a handler's timeout, a command or HTTP target) is boxed, so the common fire moves little.
async fn run_fire(env: Arc<RunEnv>, fire: Fire, progress: Arc<Progress>) -> RunRecord {
    let env = &*env;
    let spec = &fire.job.spec;
    let mut jitter_us = 0;
    if let Some(jitter) = spec.jitter.filter(|j| !j.is_zero()) {
        // Stable per fire id, so every node would pick the same delay.
        let delay_ms = stable_hash(&fire.id()) % (jitter.as_millis() as u64 + 1);
        jitter_us = delay_ms as i64 * 1000;
        Box::pin(tokio::time::sleep(Duration::from_millis(delay_ms))).await;
    }
    let started_us = env.clock.now_us();
    env.metrics.fires.increment(1);
    if fire.kind != FireKind::Manual {
        // Lateness is the node's, not the job's: the delay the job asked for (jitter) is not counted.
        let lateness = (started_us - fire.scheduled_ms * 1000 - jitter_us).max(0) as f64 / 1e6;
        env.metrics.lateness.record(lateness);
    }
    let mut now_ms = started_us.div_euclid(1000);
    let attempts = spec.retry.max_retries + 1;
    let mut started_ms = Some(now_ms);
    let mut last = AttemptResult {
        outcome: Outcome::Failed,
        code: None,
        output: String::new(),
        reason: None,
    };
    let mut attempt_no = 0;
    for attempt in 1..=attempts {
        // Fencing, last line: a fire handed on before the session was lost (queued behind the concurrency
        // limit, buffered by `buffer_one`, delayed by jitter or a freeze) must not start once the session can
        // no longer be proven valid, or was replaced by a new one; a successor may own the job by now. Manual
        // fires run under the session that took their request.
        let fenced = fire.session.is_some_and(|claimed_under| {
            let lease = *env.fence.lock().unwrap_or_else(|p| p.into_inner());
            !lease.is_some_and(|lease| lease.permits(claimed_under, now_ms))
        });
        // Only the first attempt is bound by the claim window; retries belong to a fire that has started.
        let too_late = attempt == 1
            && fire.start_by_ms.is_some_and(|by| now_ms > by)
            && env
                .revoked
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .contains(&fire.job.id);
        if fenced || too_late {
            let why = if fenced {
                "fenced: the node could not prove its session valid when the run was due to start"
            } else {
                "missed: it could not start before the end of its claim window"
            };
            if attempt == 1 {
                last.outcome = Outcome::Skipped;
                started_ms = None;
            }
            last.reason = Some(
                last.reason
                    .map_or_else(|| why.to_owned(), |r| format!("{r}; {why}")),
            );
            break;
        }
        let ctx = FireContext {
            fire: fire.id(),
            job_name: spec.name.clone(),
            attempt,
            node: env.node.clone(),
        };
        if attempt > 1 {
            started_ms = Some(now_ms);
        }
        progress.attempt_started(attempt, now_ms);
        last = match (&spec.executor, &progress.remote) {
            // Boxed: the dispatch to a worker is a large future, and every fire's task would carry it.
            (Some(executor), Some(remote)) => {
                Box::pin(remote_attempt(env, &fire, &executor.group, ctx, remote)).await
            }
            _ => attempt_once(env, &spec.target, ctx).await,
        };
        attempt_no = attempt;
        if matches!(last.outcome, Outcome::Misfired | Outcome::InDoubt) {
            // Not started by any worker (`misfired`), or maybe started by a lost one (`in_doubt`): either way
            // not a failure that a retry may repeat.
            if last.outcome == Outcome::Misfired && attempt == 1 {
                started_ms = None;
                attempt_no = 0;
            }
            break;
        }
        if last.outcome == Outcome::Succeeded || attempt == attempts {
            break;
        }
        Box::pin(tokio::time::sleep(spec.retry.backoff.delay(attempt))).await;
        now_ms = env.clock.now_ms();
    }
    let mut record = RunRecord::new(&fire.id(), &env.node, last.outcome);
    record.manual = fire.kind == FireKind::Manual;
    record.started_ms = started_ms;
    record.attempt = attempt_no;
    record.code = last.code;
    record.output = last.output;
    record.reason = last.reason;
    record.ended_ms = Some(env.clock.now_ms());
    if fire.kind == FireKind::Redelivery {
        let why = "redelivered: the previous owner left no record (at_least_once)";
        record.reason = Some(
            record
                .reason
                .map_or_else(|| why.to_owned(), |r| format!("{why}; {r}")),
        );
    }
    record
}

async fn attempt_once(env: &RunEnv, target: &Target, ctx: FireContext) -> AttemptResult {
    match target {
        // Boxed: their futures are large, and every fire's task would carry (and move) their size.
        Target::Command(cmd) => Box::pin(crate::exec::run_command(cmd, &ctx, &env.base_env)).await,
        #[cfg(feature = "http")]
        Target::Http(http) => Box::pin(crate::exec::run_http(&env.http, http, &ctx)).await,
        #[cfg(not(feature = "http"))]
        Target::Http(_) => failed(None, "HTTP targets need the engine's `http` feature"),
        Target::Handler(h) => {
            let Some(handler) = env.handlers.get(&h.name) else {
                return failed(None, &format!("no handler registered as {:?}", h.name));
            };
            run_handler(handler, ctx, h.timeout).await
        }
    }
}

/// One attempt of an in-process handler, on a node's executor or an embedded worker: the handler's error
/// fails the run with its text, a panic fails it as "handler panicked" (also a panic before the handler
/// returns its future, which on the executor's inline first poll would otherwise unwind through the actor),
/// and `timeout` times it out.
pub(crate) async fn run_handler(
    handler: &Handler,
    ctx: FireContext,
    timeout: Option<Duration>,
) -> AttemptResult {
    let Ok(future) = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| handler(ctx))) else {
        return failed(None, "handler panicked");
    };
    let run = std::panic::AssertUnwindSafe(future).catch_unwind();
    let result = match timeout {
        // Boxed: a timer is large, and only fires with a timeout pay for it.
        Some(limit) => match Box::pin(tokio::time::timeout(limit, run)).await {
            Ok(result) => result,
            Err(_) => {
                return AttemptResult {
                    outcome: Outcome::TimedOut,
                    code: None,
                    output: String::new(),
                    reason: Some(format!("timeout {}", humantime::format_duration(limit))),
                };
            }
        },
        None => run.await,
    };
    match result {
        Ok(Ok(())) => AttemptResult {
            outcome: Outcome::Succeeded,
            code: None,
            output: String::new(),
            reason: None,
        },
        Ok(Err(error)) => failed(None, &error.to_string()),
        Err(_) => failed(None, "handler panicked"),
    }
}

/// One attempt on a worker of the job's executor group (see `crate::cluster`): not started after the end of
/// the fire's claim window, and accounted for as `misfired` or `in_doubt` when no worker ran it for sure.
async fn remote_attempt(
    env: &RunEnv,
    fire: &Fire,
    group: &str,
    ctx: FireContext,
    progress: &Arc<crate::cluster::RemoteProgress>,
) -> AttemptResult {
    let Some(hub) = &env.hub else {
        crate::metrics::remote_dispatch_failed("no_worker");
        return AttemptResult {
            outcome: Outcome::Misfired,
            code: None,
            output: String::new(),
            reason: Some(format!(
                "no worker of group {group}: this node has no cluster port for workers to join"
            )),
        };
    };
    let now_ms = env.clock.now_ms();
    let unclaimed = now_ms + crate::cluster::UNCLAIMED_WINDOW.as_millis() as i64;
    // The claim window bounds the first attempt only, as for a local run; retries and manual fires (not
    // claimed) get a window of their own, and the owner's session still fences them on the worker.
    let deadline_ms = match fire.start_by_ms {
        Some(by) if ctx.attempt == 1 => by,
        _ => unclaimed,
    };
    hub.attempt(crate::cluster::RemoteAttempt {
        group: group.to_owned(),
        job: fire.job.id.clone(),
        job_name: ctx.job_name,
        scheduled_ms: fire.scheduled_ms,
        attempt: ctx.attempt,
        target: fire.job.spec.target.clone(),
        session: fire.session,
        deadline_ms,
        at_least_once: fire.job.spec.delivery == crate::job::Delivery::AtLeastOnce,
        progress: progress.clone(),
    })
    .await
}

fn failed(code: Option<i32>, reason: &str) -> AttemptResult {
    AttemptResult {
        outcome: Outcome::Failed,
        code,
        output: String::new(),
        reason: Some(reason.to_owned()),
    }
}

/// FNV-1a of the fire id's text: stable across processes and versions (unlike `DefaultHasher`).
fn stable_hash(id: &FireId) -> u64 {
    id.to_string().bytes().fold(0xcbf2_9ce4_8422_2325, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
    })
}

// Local only: ractor's `cluster` feature (executor groups) asks every message type to say whether it
// can cross the network; this one cannot.
impl ractor::Message for Msg {}

impl Actor for Executor {
    type Msg = Msg;
    type State = State;
    type Arguments = Arguments;

    async fn pre_start(
        &self,
        myself: ActorRef<Msg>,
        args: Arguments,
    ) -> Result<State, ActorProcessingErr> {
        let node_for_overlap = args.node.clone();
        let env = RunEnv {
            node: args.node,
            clock: args.clock,
            fence: args.fence,
            revoked: args.revoked,
            handlers: args.handlers,
            base_env: args.base_env,
            hub: args.hub,
            metrics: RunMetrics::register(),
            #[cfg(feature = "http")]
            http: crate::exec::HttpClients::new(args.egress.clone())
                .map_err(ActorProcessingErr::from)?,
            executor: myself,
            done: Mutex::default(),
        };
        Ok(State {
            env: Arc::new(env),
            max_concurrent: args.max_concurrent.max(1),
            sink: args.records,
            overlap: overlap::State::new(node_for_overlap),
            records: Vec::new(),
            queue: VecDeque::new(),
            running: FxHashMap::default(),
            aborted: Vec::new(),
            last_batch: 0,
            draining: None,
        })
    }

    async fn handle(
        &self,
        myself: ActorRef<Msg>,
        msg: Msg,
        state: &mut State,
    ) -> Result<(), ActorProcessingErr> {
        match msg {
            Msg::Run(fires) => state.fires(fires),
            Msg::Completed => state.completed(),
            Msg::Drain { deadline, reply } => {
                // From now on nothing starts: what is queued, and what a run's end releases later (one buffered
                // behind a run that just ended), ends as not started, and says so.
                state.draining = Some(reply);
                let queued: Vec<Fire> = state.queue.drain(..).collect();
                let mut decisions = Decisions::default();
                state.not_started(queued, &mut decisions);
                state.apply(&mut decisions);
                myself.send_after(deadline, || Msg::DrainDeadline);
            }
            Msg::DrainDeadline => {
                let mut decisions = Decisions::default();
                let killed =
                    state.kill(|_| true, "killed: shutdown deadline passed", &mut decisions);
                state.apply(&mut decisions);
                if let Some(reply) = state.draining.take() {
                    let _ = reply.send(killed);
                }
                // Stay in drain mode: no new runs start.
                state.max_concurrent = 0;
            }
            Msg::Freeze(pause) => tokio::time::sleep(pause).await,
            Msg::Load { reply } => {
                let _ = reply.send((state.running.len(), state.queue.len()));
            }
        }
        if state.running.is_empty()
            && let Some(reply) = state.draining.take()
        {
            let _ = reply.send(0);
            state.max_concurrent = 0;
        }
        state.forget_aborted();
        state.start_queued();
        state.send_records();
        Ok(())
    }
}
