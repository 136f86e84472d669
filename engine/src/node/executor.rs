//! The executor actor: runs fires with bounded concurrency, with timeouts and retries, and reports each run's
//! record to the recorder and its end to the dispatcher.
//!
//! Each run is a tokio task; the actor keeps their abort handles so that `cancel_previous` and the shutdown
//! deadline can stop them (a command target's process group is killed when its future is dropped). Fires
//! beyond the concurrency limit wait in a FIFO queue; their lateness shows in the lateness histogram.
//!
//! Every fire handed on by the dispatcher ends exactly once in the dispatcher's [`dispatcher::Ended`] buffer:
//! reported by its run task the moment it ends (not relayed through this actor, whose mailbox may be
//! behind), by the actor when it kills the run, or when the fire never starts (a duplicate, a shutdown). The
//! overlap decision counts on it: a run reported twice would let an overlap through, one never reported
//! would skip the job's instants for good.

use std::collections::{HashMap, VecDeque};
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use futures::FutureExt;
use ractor::{Actor, ActorProcessingErr, ActorRef, RpcReplyPort};
use tokio::task::AbortHandle;

use super::dispatcher;
use super::fire::{Fire, FireKind};
use super::recorder;
use crate::clock::Clock;
use crate::coordinator::NodeId;
use crate::exec::{AttemptResult, FireContext};
use crate::job::{FireId, JobId, Target};
use crate::run::{Outcome, RunRecord};

/// The future an in-process handler returns: `Err(message)` marks the run failed.
pub type HandlerFuture = Pin<Box<dyn Future<Output = Result<(), String>> + Send + 'static>>;

/// An in-process handler, registered on the builder by name and named by `Target::Handler`.
pub type Handler = Arc<dyn Fn(FireContext) -> HandlerFuture + Send + Sync + 'static>;

/// The executor actor.
pub struct Executor;

/// Messages of the executor.
pub enum Msg {
    /// Fires to run (queued beyond the concurrency limit).
    Run(Vec<Fire>),
    /// Stop every running run of this job (overlap `cancel_previous`); each is recorded as failed.
    Cancel(JobId),
    /// Run tasks finished: their records wait in the completions buffer (one message per batch, not per
    /// run: under load the executor handles many completions per message).
    Completed,
    /// Where run ends are reported (set once the dispatcher exists).
    SetDispatcher(ActorRef<dispatcher::Msg>),
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
            Msg::Cancel(job) => write!(f, "Cancel({job})"),
            Msg::Completed => f.write_str("Completed"),
            Msg::SetDispatcher(_) => f.write_str("SetDispatcher"),
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
    pub handlers: Arc<HashMap<String, Handler>>,
    /// Most runs at once.
    pub max_concurrent: usize,
    /// Where records go.
    pub recorder: ActorRef<recorder::Msg>,
    /// Wall time (Unix ms) until which the node's session is proven valid (see `node::Fence`).
    pub fence: super::Fence,
    /// Jobs whose claims this node is running out (see `node::Revoked`).
    pub revoked: super::Revoked,
    /// Where run ends go, for the overlap decision (shared with the dispatcher).
    pub ended: dispatcher::Ended,
    /// What commands start from.
    pub base_env: crate::exec::BaseEnv,
    /// Where HTTP targets may connect.
    pub egress: crate::exec::Egress,
}

/// Everything a run task needs, shared.
struct RunEnv {
    node: NodeId,
    clock: Arc<dyn Clock>,
    fence: super::Fence,
    revoked: super::Revoked,
    ended: dispatcher::Ended,
    handlers: Arc<HashMap<String, Handler>>,
    base_env: crate::exec::BaseEnv,
    #[cfg(feature = "http")]
    http: crate::exec::HttpClients,
    metrics: RunMetrics,
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
    abort: AbortHandle,
    /// Whether it is a manual fire (its record says so if it is killed; the record itself is built only then,
    /// not for every fire).
    manual: bool,
    /// Set by whichever reports its end first: the task when the run ends, or the actor when it kills it.
    reported: Arc<AtomicBool>,
}

/// The executor's state.
pub struct State {
    env: Arc<RunEnv>,
    max_concurrent: usize,
    recorder: ActorRef<recorder::Msg>,
    dispatcher: Option<ActorRef<dispatcher::Msg>>,
    queue: VecDeque<Fire>,
    running: HashMap<FireId, Run>,
    /// Records of finished runs, waiting for the executor to take them (see `Msg::Completed`).
    completions: Arc<std::sync::Mutex<Vec<(FireId, RunRecord)>>>,
    draining: Option<RpcReplyPort<usize>>,
}

impl State {
    fn start_queued(&mut self, myself: &ActorRef<Msg>) {
        let mut started = false;
        while self.running.len() < self.max_concurrent
            && self.draining.is_none()
            && let Some(fire) = self.queue.pop_front()
        {
            let id = fire.id();
            if self.running.contains_key(&id) {
                // The same instant twice on one node (a manual trigger at the same millisecond): run it once.
                // The dispatcher counted it as a run: it ends here.
                dispatcher::report_ended(
                    &self.env.ended,
                    self.dispatcher.as_ref(),
                    [(fire.job.id.clone(), self.env.clock.now_ms())],
                );
                continue;
            }
            let manual = fire.kind == FireKind::Manual;
            let env = self.env.clone();
            let myself = myself.clone();
            let completions = self.completions.clone();
            let dispatcher = self.dispatcher.clone();
            let reported = Arc::new(AtomicBool::new(false));
            let ours = reported.clone();
            let fire_id = id.clone();
            let task = tokio::spawn(async move {
                let job = fire.job.id.clone();
                let record = run_fire(&env, fire).await;
                if ours.swap(true, Ordering::AcqRel) {
                    return; // killed meanwhile: the actor reported it
                }
                // The end goes to the overlap decision now, not after this actor's mailbox.
                let ended_ms = record.ended_ms.unwrap_or_else(|| env.clock.now_ms());
                dispatcher::report_ended(&env.ended, dispatcher.as_ref(), [(job, ended_ms)]);
                let first = {
                    let mut done = completions.lock().unwrap_or_else(|p| p.into_inner());
                    done.push((fire_id, record));
                    done.len() == 1
                };
                // Only the first completion of a batch wakes the executor; it takes them all.
                if first {
                    let _ = myself.cast(Msg::Completed);
                }
            });
            self.running.insert(
                id,
                Run {
                    abort: task.abort_handle(),
                    manual,
                    reported,
                },
            );
            started = true;
        }
        if started {
            self.env.metrics.in_flight.set(self.running.len() as f64);
        }
    }

    /// Aborts runs and records them as failed with `reason`.
    fn kill(&mut self, which: impl Fn(&FireId) -> bool, reason: &str) -> usize {
        let ids: Vec<FireId> = self
            .running
            .keys()
            .filter(|id| which(id))
            .cloned()
            .collect();
        let mut records = Vec::with_capacity(ids.len());
        for id in &ids {
            if self.running[id].reported.swap(true, Ordering::AcqRel) {
                continue; // it ended by itself: its record waits in the completions buffer
            }
            if let Some(run) = self.running.remove(id) {
                run.abort.abort();
                let mut record = RunRecord::new(id, self.env.node.as_str(), Outcome::Failed);
                record.manual = run.manual;
                record.reason = Some(reason.to_owned());
                record.ended_ms = Some(self.env.clock.now_ms());
                records.push(record);
            }
        }
        let killed = records.len();
        let now_ms = self.env.clock.now_ms();
        dispatcher::report_ended(
            &self.env.ended,
            self.dispatcher.as_ref(),
            records
                .iter()
                .map(|r| (r.job.clone(), r.ended_ms.unwrap_or(now_ms))),
        );
        self.finish(records);
        killed
    }

    /// Records fires that will not start because the node is leaving as `misfired`: this node knows they
    /// did not run, so it says so rather than leaving them in doubt for a successor, which may be leaving
    /// too when the whole cluster stops at once (postmortem: simulation seed 448, a fire buffered behind a
    /// slow run was dropped by the last node to leave and had no record).
    fn not_started(&mut self, fires: Vec<Fire>) {
        if fires.is_empty() {
            return;
        }
        crate::metrics::misfired("shutdown", fires.len() as u64);
        dispatcher::report_ended(
            &self.env.ended,
            self.dispatcher.as_ref(),
            fires
                .iter()
                .map(|f| (f.job.id.clone(), self.env.clock.now_ms())),
        );
        let records = fires
            .iter()
            .map(|fire| {
                let mut record =
                    RunRecord::new(&fire.id(), self.env.node.as_str(), Outcome::Misfired);
                record.reason = Some("missed: the node shut down before it could start".into());
                record.manual = fire.kind == super::fire::FireKind::Manual;
                record
            })
            .collect();
        let _ = self.recorder.cast(recorder::Msg::Record(None, records));
    }

    /// Takes every completed run from the buffer.
    fn completed(&mut self) {
        let done = std::mem::take(&mut *self.completions.lock().unwrap_or_else(|p| p.into_inner()));
        let records = done
            .into_iter()
            .filter_map(|(id, record)| self.running.remove(&id).map(|_| record))
            .collect();
        self.finish(records);
    }

    /// Stores the records of ended runs (their ends are reported already).
    fn finish(&mut self, records: Vec<RunRecord>) {
        if records.is_empty() {
            return;
        }
        let _ = self.recorder.cast(recorder::Msg::Record(None, records));
        self.env.metrics.in_flight.set(self.running.len() as f64);
    }
}

/// Runs every attempt of one fire and returns its record.
async fn run_fire(env: &RunEnv, fire: Fire) -> RunRecord {
    let id = fire.id();
    let spec = &fire.job.spec;
    if let Some(jitter) = spec.jitter.filter(|j| !j.is_zero()) {
        // Stable per fire id, so every node would pick the same delay.
        let delay = Duration::from_millis(stable_hash(&id) % (jitter.as_millis() as u64 + 1));
        tokio::time::sleep(delay).await;
    }
    let started_us = env.clock.now_us();
    env.metrics.fires.increment(1);
    if fire.kind != FireKind::Manual {
        let lateness = (started_us - fire.scheduled_ms * 1000).max(0) as f64 / 1e6;
        env.metrics.lateness.record(lateness);
    }
    let mut record = RunRecord::new(&id, env.node.as_str(), Outcome::Failed);
    record.manual = fire.kind == FireKind::Manual;
    record.started_ms = Some(started_us.div_euclid(1000));
    let attempts = spec.retry.max_retries + 1;
    for attempt in 1..=attempts {
        // Fencing, last line: a fire handed on before the session was lost (queued behind the concurrency
        // limit, buffered by `buffer_one`, delayed by jitter or a freeze) must not start once the session can
        // no longer be proven valid, or was replaced by a new one; a successor may own the job by now. Manual
        // fires are not claimed (`session` is `None`).
        let fenced = fire.session.is_some_and(|claimed_under| {
            let lease = *env.fence.lock().unwrap_or_else(|p| p.into_inner());
            !lease.is_some_and(|lease| lease.permits(claimed_under, env.clock.now_ms()))
        });
        // Only the first attempt is bound by the claim window; retries belong to a fire that has started.
        let too_late = attempt == 1
            && fire.start_by_ms.is_some_and(|by| env.clock.now_ms() > by)
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
                record.outcome = Outcome::Skipped;
                record.started_ms = None;
            }
            record.reason = Some(
                record
                    .reason
                    .map_or_else(|| why.to_owned(), |r| format!("{r}; {why}")),
            );
            break;
        }
        let ctx = FireContext {
            fire: id.clone(),
            job_name: spec.name.clone(),
            attempt,
            node: env.node.clone(),
        };
        record.started_ms = Some(env.clock.now_ms());
        let result = attempt_once(env, &spec.target, ctx).await;
        record.attempt = attempt;
        record.outcome = result.outcome;
        record.code = result.code;
        record.output = result.output;
        record.reason = result.reason;
        if result.outcome == Outcome::Succeeded || attempt == attempts {
            break;
        }
        tokio::time::sleep(spec.retry.backoff.delay(attempt)).await;
    }
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
            let run = std::panic::AssertUnwindSafe(handler(ctx)).catch_unwind();
            let result = match h.timeout {
                Some(limit) => match tokio::time::timeout(limit, run).await {
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
                Ok(Err(message)) => failed(None, &message),
                Err(_) => failed(None, "handler panicked"),
            }
        }
    }
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

impl Actor for Executor {
    type Msg = Msg;
    type State = State;
    type Arguments = Arguments;

    async fn pre_start(
        &self,
        _myself: ActorRef<Msg>,
        args: Arguments,
    ) -> Result<State, ActorProcessingErr> {
        let env = RunEnv {
            node: args.node,
            clock: args.clock,
            fence: args.fence,
            revoked: args.revoked,
            ended: args.ended,
            handlers: args.handlers,
            base_env: args.base_env,
            metrics: RunMetrics::register(),
            #[cfg(feature = "http")]
            http: crate::exec::HttpClients::new(args.egress.clone())
                .map_err(ActorProcessingErr::from)?,
        };
        Ok(State {
            env: Arc::new(env),
            max_concurrent: args.max_concurrent.max(1),
            recorder: args.recorder,
            dispatcher: None,
            queue: VecDeque::new(),
            running: HashMap::new(),
            completions: Arc::default(),
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
            Msg::Run(fires) => {
                if state.draining.is_some() || state.max_concurrent == 0 {
                    // Shutting down: a fire released after the drain began (one buffered behind a run that
                    // just ended) does not start; say so.
                    state.not_started(fires);
                    return Ok(());
                }
                state.queue.extend(fires);
            }
            Msg::Cancel(job) => {
                state.kill(|id| id.job == job, "cancelled: overlap cancel_previous");
            }
            Msg::Completed => state.completed(),
            Msg::SetDispatcher(dispatcher) => state.dispatcher = Some(dispatcher),
            Msg::Drain { deadline, reply } => {
                let queued: Vec<Fire> = state.queue.drain(..).collect();
                state.not_started(queued);
                state.draining = Some(reply);
                myself.send_after(deadline, || Msg::DrainDeadline);
            }
            Msg::DrainDeadline => {
                let killed = state.kill(|_| true, "killed: shutdown deadline passed");
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
        state.start_queued(&myself);
        Ok(())
    }
}
