//! The dispatcher actor: applies a job's overlap policy to each fire and hands fires to the executor.
//!
//! The timer only emits claimed instants of unpaused jobs, so what is left here is the decision that needs to
//! know what is running: `allow`, `skip`, `buffer_one` or `cancel_previous`. Records that need no run
//! (misfired, in doubt, skipped) are forwarded to the recorder.
//!
//! Overlap is judged against the runs this node started, by time, as if every run had started at its
//! instant:
//!
//! - An instant meets a run only if that run was handed on before the instant's time. Late instants (a
//!   catch-up after a takeover, a lease that ran out, a freeze) come together, all past their time, and
//!   whatever runs first was started after their time: when their time came, nothing of the job ran here. So
//!   they are not skipped: they wait, oldest first, and each starts when the run before it ends.
//! - With `skip`, an instant that meets a run waits for that run's end (only the newest such instant waits:
//!   an older one is skipped, a run was going at its time). Then it is skipped if the run would still have
//!   been going at its time had the run started at its own instant (instant + duration ≥ this instant), and
//!   started otherwise. So a run that was itself late (a catch-up that ends a few milliseconds into the next
//!   second) does not cost the next instant, and a skip always means that a run was going at the instant's
//!   time, in fact and on time.
//!
//! - A manual fire (trigger, backfill) is a run a user asked for: the overlap policy, which governs the
//!   schedule's instants, never skips, replaces or cancels for it. Unless the policy is `allow`, it waits
//!   with the late instants, oldest first, and starts when the run before it ends. (A skipped manual fire
//!   would be lost for good: its instant would have a `skipped` record, and a fire id has one record only.)
//!
//! Run ends come from the run tasks themselves, with the time they ended, through the shared [`Ended`]
//! buffer, read before every decision: a run that has ended is never taken for a running one because its news
//! is still queued.

#[cfg(test)]
mod tests;

use std::collections::VecDeque;
use std::sync::Arc;

use ractor::{Actor, ActorProcessingErr, ActorRef};
use rustc_hash::FxHashMap;

use super::executor;
use super::fire::{Fire, FireKind};
use super::recorder;
use crate::clock::Clock;
use crate::coordinator::SessionId;
use crate::job::{JobId, Overlap};
use crate::run::{Outcome, RunRecord};

/// The dispatcher actor.
pub struct Dispatcher;

/// Runs that ended (whatever their outcome, also fires that never started), one entry per fire handed on,
/// with the wall time (Unix ms) it ended: the executor's run tasks push their job when they end, and the
/// dispatcher takes them all before each decision. A shared buffer rather than only a message, so that the
/// overlap decision sees every run that ended before it, whatever is queued in front of the news.
pub type Ended = Arc<std::sync::Mutex<Vec<(JobId, i64)>>>;

/// Reports the end of runs: pushes `(job, ended_ms)` into `ended` and, if the buffer was empty, wakes the
/// dispatcher (one message per batch of ends, not per run).
pub fn report_ended(
    ended: &Ended,
    dispatcher: Option<&ActorRef<Msg>>,
    runs: impl IntoIterator<Item = (JobId, i64)>,
) {
    let first = {
        let mut buffer = ended.lock().unwrap_or_else(|p| p.into_inner());
        let was_empty = buffer.is_empty();
        buffer.extend(runs);
        was_empty && !buffer.is_empty()
    };
    if first && let Some(dispatcher) = dispatcher {
        let _ = dispatcher.cast(Msg::RunsEnded);
    }
}

/// Messages of the dispatcher.
#[derive(Debug)]
pub enum Msg {
    /// Instants to run.
    Fires(Vec<Fire>),
    /// Records to store as they are (no run), made under this session (see [`recorder::Msg::Record`]).
    Record(Option<SessionId>, Vec<RunRecord>),
    /// Process nothing for this long (the simulation's model of a frozen process: SIGSTOP, a long GC pause).
    Freeze(std::time::Duration),
    /// Runs ended: they wait in the [`Ended`] buffer.
    RunsEnded,
}

/// What the dispatcher is started with.
pub struct Arguments {
    /// Where runs go.
    pub executor: ActorRef<executor::Msg>,
    /// Where records go.
    pub recorder: ActorRef<recorder::Msg>,
    /// This node's id, written into records.
    pub node: crate::coordinator::NodeId,
    /// Wall time: when a run is handed on.
    pub clock: Arc<dyn Clock>,
    /// Ends of runs, filled by the executor's run tasks.
    pub ended: Ended,
}

#[derive(Debug, Default)]
struct Running {
    count: u32,
    /// The newest of the running runs: its instant and when it was handed on (Unix ms).
    instant_ms: i64,
    since_ms: i64,
    /// What waits for the running runs to end; boxed, as most jobs never have anything waiting (an entry is
    /// made and dropped per fire, so it is kept small).
    queued: Option<Box<Queued>>,
}

/// Fires of one job waiting for its running runs.
#[derive(Debug, Default)]
struct Queued {
    /// Instants whose time came before the running run was handed on (so while no run of the job was going
    /// here), oldest first: each starts when the run before it ends.
    waiting: VecDeque<Fire>,
    /// `skip`: the newest instant that met a run, decided when the run ends.
    pending: Option<Fire>,
    /// `buffer_one`: the newest instant that came while a run was going.
    buffered: Option<Fire>,
}

impl Running {
    fn start(&mut self, fire: &Fire, now_ms: i64) {
        self.count += 1;
        self.instant_ms = fire.scheduled_ms;
        self.since_ms = now_ms;
    }

    fn queued(&mut self) -> &mut Queued {
        self.queued.get_or_insert_default()
    }
}

/// The decisions of one step.
#[derive(Debug, Default)]
pub struct Decisions {
    /// Fires to start.
    pub start: Vec<Fire>,
    /// Jobs whose running runs must be cancelled first.
    pub cancel: Vec<JobId>,
    /// Records of fires that will not run.
    pub records: Vec<RunRecord>,
}

const SKIP_REASON: &str = "overlap: skip (previous run still going)";

/// The dispatcher's state: which jobs are running.
pub struct State {
    node: crate::coordinator::NodeId,
    running: FxHashMap<JobId, Running>,
}

impl State {
    /// No run in progress.
    pub fn new(node: crate::coordinator::NodeId) -> Self {
        Self {
            node,
            running: FxHashMap::default(),
        }
    }

    /// Decides what to do with new fires, at `now_ms`.
    pub fn fires(&mut self, fires: Vec<Fire>, now_ms: i64) -> Decisions {
        let mut out = Decisions::default();
        for fire in fires {
            let running = self.running.entry(fire.job.id.clone()).or_default();
            if running.count == 0 {
                running.start(&fire, now_ms);
                out.start.push(fire);
                continue;
            }
            if fire.kind == FireKind::Manual && fire.job.spec.overlap != Overlap::Allow {
                running.queued().waiting.push_back(fire);
                continue;
            }
            // Whether a run of the job was going here when the instant's time came: the running run was handed
            // on before it. If not, the instant is late and met only runs started after its time.
            let met_a_run = running.since_ms < fire.scheduled_ms;
            match fire.job.spec.overlap {
                Overlap::Allow => {
                    running.start(&fire, now_ms);
                    out.start.push(fire);
                }
                Overlap::Skip | Overlap::BufferOne if !met_a_run => {
                    running.queued().waiting.push_back(fire);
                }
                Overlap::Skip => {
                    if let Some(older) = running.queued().pending.replace(fire) {
                        // A newer instant met a run too: a run was going at the older one's time.
                        out.records.push(skipped(&self.node, &older, SKIP_REASON));
                    }
                }
                Overlap::BufferOne => {
                    if let Some(dropped) = running.queued().buffered.replace(fire) {
                        // Keep the newest; the older buffered instant is skipped.
                        out.records.push(skipped(
                            &self.node,
                            &dropped,
                            "overlap: buffer_one (a newer instant replaced it)",
                        ));
                    }
                }
                Overlap::CancelPrevious => {
                    out.cancel.push(fire.job.id.clone());
                    running.start(&fire, now_ms);
                    out.start.push(fire);
                }
            }
        }
        out
    }

    /// A run of `job` ended at `ended_ms` (seen at `now_ms`): maybe start the next waiting instant, the one
    /// that met it (unless the run would have been going at its time even on time: then it is skipped), or
    /// the buffered one.
    pub fn finished(&mut self, job: &JobId, ended_ms: i64, now_ms: i64, out: &mut Decisions) {
        let Some(running) = self.running.get_mut(job) else {
            return;
        };
        running.count = running.count.saturating_sub(1);
        if running.count > 0 {
            return;
        }
        let Some(queued) = running.queued.as_mut() else {
            self.running.remove(job);
            return;
        };
        let next = match queued.waiting.pop_front() {
            Some(next) => Some(next),
            None => {
                let pending = queued.pending.take().and_then(|pending| {
                    // The run, had it started at its instant and taken as long, would have ended at
                    // `on_time_end`.
                    let on_time_end = running.instant_ms + (ended_ms - running.since_ms).max(0);
                    if on_time_end >= pending.scheduled_ms {
                        out.records.push(skipped(&self.node, &pending, SKIP_REASON));
                        None
                    } else {
                        Some(pending)
                    }
                });
                pending.or_else(|| queued.buffered.take())
            }
        };
        match next {
            Some(next) => {
                running.start(&next, now_ms);
                out.start.push(next);
            }
            None => {
                self.running.remove(job);
            }
        }
    }

    /// Runs ended (`(job, ended_ms)`), seen at `now_ms`: what to start next, what to record.
    pub fn ended(&mut self, runs: Vec<(JobId, i64)>, now_ms: i64) -> Decisions {
        let mut out = Decisions::default();
        for (job, ended_ms) in runs {
            self.finished(&job, ended_ms, now_ms, &mut out);
        }
        out
    }
}

fn skipped(node: &crate::coordinator::NodeId, fire: &Fire, reason: &str) -> RunRecord {
    let mut record = RunRecord::new(&fire.id(), node, Outcome::Skipped);
    record.reason = Some(reason.to_owned());
    record.manual = fire.kind == FireKind::Manual;
    record
}

/// The dispatcher's actor state.
pub struct Wired {
    state: State,
    executor: ActorRef<executor::Msg>,
    recorder: ActorRef<recorder::Msg>,
    clock: Arc<dyn Clock>,
    ended: Ended,
    /// Ends taken last time (the next buffer's capacity).
    last_batch: usize,
}

impl Wired {
    /// Takes the ends of runs reported so far, and starts (or records) what waited for them.
    fn take_ended(&mut self) {
        // The next buffer is allocated outside the lock, at the size of the last batch, so that run tasks
        // push into it without growing it under the lock.
        let fresh = Vec::with_capacity(self.last_batch.clamp(16, 4096));
        let runs = std::mem::replace(
            &mut *self.ended.lock().unwrap_or_else(|p| p.into_inner()),
            fresh,
        );
        self.last_batch = runs.len();
        if !runs.is_empty() {
            let decisions = self.state.ended(runs, self.clock.now_ms());
            self.apply(decisions);
        }
    }

    fn apply(&self, decisions: Decisions) {
        for job in decisions.cancel {
            let _ = self.executor.cast(executor::Msg::Cancel(job));
        }
        if !decisions.start.is_empty() {
            let _ = self.executor.cast(executor::Msg::Run(decisions.start));
        }
        if !decisions.records.is_empty() {
            let _ = self
                .recorder
                .cast(recorder::Msg::Record(None, decisions.records));
        }
    }
}

// Local only: ractor's `cluster` feature (executor groups) asks every message type to say whether it
// can cross the network; this one cannot.
impl ractor::Message for Msg {}

impl Actor for Dispatcher {
    type Msg = Msg;
    type State = Wired;
    type Arguments = Arguments;

    async fn pre_start(
        &self,
        _myself: ActorRef<Msg>,
        args: Arguments,
    ) -> Result<Wired, ActorProcessingErr> {
        Ok(Wired {
            state: State::new(args.node),
            executor: args.executor,
            recorder: args.recorder,
            clock: args.clock,
            ended: args.ended,
            last_batch: 0,
        })
    }

    async fn handle(
        &self,
        _myself: ActorRef<Msg>,
        msg: Msg,
        wired: &mut Wired,
    ) -> Result<(), ActorProcessingErr> {
        match msg {
            Msg::Fires(fires) => {
                // Runs that ended before this decision count as ended, whatever is queued in front of their news.
                wired.take_ended();
                let decisions = wired.state.fires(fires, wired.clock.now_ms());
                wired.apply(decisions);
            }
            Msg::Record(session, records) => {
                let _ = wired.recorder.cast(recorder::Msg::Record(session, records));
            }
            Msg::Freeze(pause) => tokio::time::sleep(pause).await,
            Msg::RunsEnded => wired.take_ended(),
        }
        Ok(())
    }
}
