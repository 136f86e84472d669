//! The overlap decision: a job's overlap policy applied to each fire, where runs end.
//!
//! The timer only emits claimed instants of unpaused jobs, so what is left is the decision that needs to know
//! what is running: `allow`, `skip`, `buffer_one` or `cancel_previous`. It is pure state owned by the executor
//! actor, which starts the runs and sees them end: a run that has ended is never taken for a running one
//! because news of its end is queued somewhere (the executor takes the ends of its run tasks before every
//! decision), and a fire needs no hop between deciding and starting.
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
//! - A fire of a job with an executor group runs on a worker (see `crate::cluster::RemoteProgress`). Until a
//!   worker acknowledges its start it is not a run going on, only a fire waiting for one: an instant that
//!   comes meanwhile met no run, and waits (with `skip` and `buffer_one`) for it to end, as a late one does.
//!   Its run is going from the worker's acknowledgement to its result, and only that span, when the owner saw
//!   both ends, can justify a skip; a run whose end is unknown (a worker lost, a result lost) justifies none,
//!   and the instant that met it starts when it ends. Withdrawn before it started (`cancel_previous`, the
//!   shutdown deadline), it never ran: see [`withdrawn`].
//!
//! A job with nothing running has no entry: deciding for it is one lookup, and a run that ends in the
//! executor's first poll (see `executor`) never needs one.

#[cfg(test)]
mod tests;

use std::collections::VecDeque;
use std::sync::Arc;

use rustc_hash::FxHashMap;

use super::fire::{Fire, FireKind};
use crate::cluster::{RemotePhase, RemoteProgress};
use crate::job::{JobId, Overlap};
use crate::run::{Outcome, RunRecord};

#[derive(Debug, Default)]
struct Running {
    count: u32,
    /// The newest of the running runs: its instant and when it was handed on (Unix ms).
    instant_ms: i64,
    since_ms: i64,
    /// Whether the newest run is on a worker, and, once the executor launched it, how far its dispatch got.
    remote: Option<Option<Arc<RemoteProgress>>>,
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
    fn start(&mut self, scheduled_ms: i64, now_ms: i64) {
        self.count += 1;
        self.instant_ms = scheduled_ms;
        self.since_ms = now_ms;
        self.remote = None;
    }

    /// Starts `fire` (on a worker, if its job has an executor group).
    fn start_fire(&mut self, fire: &Fire, now_ms: i64) {
        self.start(fire.scheduled_ms, now_ms);
        if fire.job.spec.executor.is_some() {
            self.remote = Some(None);
        }
    }

    /// Since when the newest run has been going (Unix ms); `i64::MAX` for a fire still waiting for a worker.
    fn going_since_ms(&self) -> i64 {
        match &self.remote {
            None => self.since_ms,
            Some(progress) => progress
                .as_ref()
                .and_then(|p| p.started_ms())
                .unwrap_or(i64::MAX),
        }
    }

    /// Whether the newest run, which just ended at `ended_ms`, was going at `instant_ms` even had it started
    /// on time (at its own instant, taking as long): then an instant that met it is skipped.
    fn covers_on_time(&self, instant_ms: i64, ended_ms: i64) -> bool {
        let (since_ms, ended_ms) = match &self.remote {
            None => (self.since_ms, ended_ms),
            // On a worker: only the span the owner saw (acknowledgement to result), and only if it had
            // started by the instant.
            Some(progress) => match progress.as_ref().and_then(|p| p.span_ms()) {
                Some((started_ms, ended_ms)) if started_ms < instant_ms => (started_ms, ended_ms),
                _ => return false,
            },
        };
        self.instant_ms + (ended_ms - since_ms).max(0) >= instant_ms
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

/// The reason of a run killed by `cancel_previous`.
pub const CANCELLED: &str = "cancelled: overlap cancel_previous";

/// The record of a fire on a worker that the executor killed (`record`: `failed`, with the kill's reason),
/// by how far its dispatch got (`phase`): a fire no worker was told to go with never ran, and is `skipped`
/// when `cancel_previous` withdrew it (a newer instant replaced it, as with `buffer_one`), `misfired`
/// otherwise (the shutdown deadline); one a worker was told to go with but did not acknowledge may have
/// started, and is `in_doubt`; one that started stays `failed`.
pub fn withdrawn(record: &mut RunRecord, phase: RemotePhase) {
    let cancelled = record.reason.as_deref() == Some(CANCELLED);
    match phase {
        RemotePhase::Ran => {}
        RemotePhase::MayHaveStarted => {
            record.outcome = Outcome::InDoubt;
            let why = record.reason.take().unwrap_or_default();
            record.reason = Some(format!(
                "{why}, after a worker was told to go and before it acknowledged: it may have started"
            ));
        }
        RemotePhase::Waiting => {
            record.started_ms = None;
            record.attempt = 0;
            if cancelled {
                record.outcome = Outcome::Skipped;
                record.reason = Some(
                    "overlap: cancel_previous (a newer instant came before a worker started this one)"
                        .to_owned(),
                );
            } else {
                record.outcome = Outcome::Misfired;
                record.reason =
                    Some("missed: the node shut down before a worker started it".to_owned());
            }
        }
    }
}

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
            self.fire(fire, now_ms, &mut out);
        }
        out
    }

    /// Whether nothing of `job` runs here (nor waits): a fire of it would start at once.
    pub fn is_idle(&self, job: &JobId) -> bool {
        self.running.is_empty() || !self.running.contains_key(job)
    }

    /// A fire of an idle job (see [`State::is_idle`]) started outside [`State::fire`] and still runs: from now on
    /// it counts as running, until [`State::finished`]. (A run that ends in the executor's first poll, before any
    /// other fire is decided, is never entered at all.)
    pub fn begin(&mut self, job: JobId, scheduled_ms: i64, now_ms: i64) {
        self.running
            .entry(job)
            .or_default()
            .start(scheduled_ms, now_ms);
    }

    /// The executor launched the newest started fire of `job` on a worker: `progress` tells from now on
    /// whether it runs (see the module docs).
    pub fn dispatched(&mut self, job: &JobId, progress: Arc<RemoteProgress>) {
        if let Some(running) = self.running.get_mut(job) {
            running.remote = Some(Some(progress));
        }
    }

    /// Decides what to do with one new fire, at `now_ms`, into `out`.
    pub fn fire(&mut self, fire: Fire, now_ms: i64, out: &mut Decisions) {
        let running = self.running.entry(fire.job.id.clone()).or_default();
        if running.count == 0 {
            running.start_fire(&fire, now_ms);
            out.start.push(fire);
            return;
        }
        if fire.kind == FireKind::Manual && fire.job.spec.overlap != Overlap::Allow {
            running.queued().waiting.push_back(fire);
            return;
        }
        // Whether a run of the job was going here when the instant's time came: the running run was handed
        // on before it. If not, the instant is late and met only runs started after its time.
        let met_a_run = running.going_since_ms() < fire.scheduled_ms;
        match fire.job.spec.overlap {
            Overlap::Allow => {
                running.start_fire(&fire, now_ms);
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
                running.start_fire(&fire, now_ms);
                out.start.push(fire);
            }
        }
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
        let Some(mut queued) = running.queued.take() else {
            self.running.remove(job);
            return;
        };
        let next = match queued.waiting.pop_front() {
            Some(next) => Some(next),
            None => {
                let pending = queued.pending.take().and_then(|pending| {
                    if running.covers_on_time(pending.scheduled_ms, ended_ms) {
                        out.records.push(skipped(&self.node, &pending, SKIP_REASON));
                        None
                    } else {
                        Some(pending)
                    }
                });
                pending.or_else(|| queued.buffered.take())
            }
        };
        running.queued = Some(queued);
        match next {
            Some(next) => {
                running.start_fire(&next, now_ms);
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
