//! The dispatcher actor: applies a job's overlap policy to each fire and hands fires to the executor.
//!
//! The timer only emits claimed instants of unpaused jobs, so what is left here is the decision that needs to
//! know what is running: `allow`, `skip`, `buffer_one` or `cancel_previous`. Records that need no run
//! (misfired, in doubt, skipped) are forwarded to the recorder.
//!
//! The overlap policy governs the schedule's own instants only. A manual fire (trigger, backfill) is a run a
//! user asked for: it is never skipped, replaced or made to cancel a run. While the job runs, manual fires
//! wait in a queue of their own and start one after another, in the order they came, before a buffered
//! scheduled instant (`allow` starts them at once, as it does every instant). A manual fire that was skipped
//! would be lost for good: its instant would have a `skipped` record, and a fire id has one record only.
//! A fire whose fire id is already waiting or running here (a backfill asked for twice, or reaching an
//! instant that runs now) is dropped: it runs once.

use std::collections::{HashMap, HashSet, VecDeque};

use ractor::{Actor, ActorProcessingErr, ActorRef};

use super::executor;
use super::fire::{Fire, FireKind};
use super::recorder;
use crate::coordinator::SessionId;
use crate::job::{FireId, JobId, Overlap};
use crate::run::{Outcome, RunRecord};

/// The dispatcher actor.
pub struct Dispatcher;

/// Messages of the dispatcher.
#[derive(Debug)]
pub enum Msg {
    /// Instants to run.
    Fires(Vec<Fire>),
    /// Records to store as they are (no run), made under this session (see [`recorder::Msg::Record`]).
    Record(Option<SessionId>, Vec<RunRecord>),
    /// Process nothing for this long (the simulation's model of a frozen process: SIGSTOP, a long GC pause).
    Freeze(std::time::Duration),
    /// These runs finished (whatever their outcome), or will not start.
    Finished(Vec<FireId>),
}

/// What the dispatcher is started with.
pub struct Arguments {
    /// Where runs go.
    pub executor: ActorRef<executor::Msg>,
    /// Where records go.
    pub recorder: ActorRef<recorder::Msg>,
    /// This node's id, written into records.
    pub node: crate::coordinator::NodeId,
}

#[derive(Debug, Default)]
struct Running {
    count: u32,
    buffered: Option<Fire>,
    /// Manual fires waiting for the job's runs to end, oldest first.
    manual: VecDeque<Fire>,
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

/// The dispatcher's state: which jobs are running.
pub struct State {
    node: crate::coordinator::NodeId,
    running: HashMap<JobId, Running>,
    /// Every fire started, queued or buffered here and not finished yet.
    live: HashSet<FireId>,
}

impl State {
    /// No run in progress.
    pub fn new(node: crate::coordinator::NodeId) -> Self {
        Self {
            node,
            running: HashMap::new(),
            live: HashSet::new(),
        }
    }

    /// Decides what to do with new fires.
    pub fn fires(&mut self, fires: Vec<Fire>) -> Decisions {
        let mut out = Decisions::default();
        for fire in fires {
            let id = fire.id();
            if self.live.contains(&id) {
                // Already on its way: a backfill asked for twice, or reaching an instant that runs now, or a
                // catch-up racing a redelivery. One fire id runs once.
                continue;
            }
            let running = self.running.entry(fire.job.id.clone()).or_default();
            if running.count == 0 {
                running.count = 1;
                self.live.insert(id);
                out.start.push(fire);
                continue;
            }
            if fire.kind == FireKind::Manual && fire.job.spec.overlap != Overlap::Allow {
                self.live.insert(id);
                running.manual.push_back(fire);
                continue;
            }
            match fire.job.spec.overlap {
                Overlap::Allow => {
                    running.count += 1;
                    self.live.insert(id);
                    out.start.push(fire);
                }
                Overlap::Skip => out.records.push(skipped(
                    &self.node,
                    &fire,
                    "overlap: skip (previous run still going)",
                )),
                Overlap::BufferOne => {
                    self.live.insert(id);
                    if let Some(dropped) = running.buffered.replace(fire) {
                        // Keep the newest; the older buffered instant is skipped.
                        self.live.remove(&dropped.id());
                        out.records.push(skipped(
                            &self.node,
                            &dropped,
                            "overlap: buffer_one (a newer instant replaced it)",
                        ));
                    }
                }
                Overlap::CancelPrevious => {
                    out.cancel.push(fire.job.id.clone());
                    running.count += 1;
                    self.live.insert(id);
                    out.start.push(fire);
                }
            }
        }
        out
    }

    /// A run ended (or will not start): maybe start the next manual fire, or else the buffered one.
    pub fn finished(&mut self, fire: &FireId) -> Option<Fire> {
        self.live.remove(fire);
        let running = self.running.get_mut(&fire.job)?;
        running.count = running.count.saturating_sub(1);
        if running.count == 0 {
            if let Some(next) = running
                .manual
                .pop_front()
                .or_else(|| running.buffered.take())
            {
                running.count = 1;
                return Some(next);
            }
            self.running.remove(&fire.job);
        }
        None
    }
}

fn skipped(node: &crate::coordinator::NodeId, fire: &Fire, reason: &str) -> RunRecord {
    let mut record = RunRecord::new(&fire.id(), node.as_str(), Outcome::Skipped);
    record.reason = Some(reason.to_owned());
    record.manual = fire.kind == FireKind::Manual;
    record
}

/// The dispatcher's actor state.
pub struct Wired {
    state: State,
    executor: ActorRef<executor::Msg>,
    recorder: ActorRef<recorder::Msg>,
}

impl Wired {
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
                let decisions = wired.state.fires(fires);
                wired.apply(decisions);
            }
            Msg::Record(session, records) => {
                let _ = wired.recorder.cast(recorder::Msg::Record(session, records));
            }
            Msg::Freeze(pause) => tokio::time::sleep(pause).await,
            Msg::Finished(fires) => {
                let next: Vec<Fire> = fires
                    .iter()
                    .filter_map(|fire| wired.state.finished(fire))
                    .collect();
                if !next.is_empty() {
                    let _ = wired.executor.cast(executor::Msg::Run(next));
                }
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests;
