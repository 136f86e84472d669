//! The timer actor: holds the next instant of every job this node owns, claims instants ahead of time in
//! batches, and at each instant emits the due fires, in chunks, to the executor.
//!
//! One ordered set of `(next instant, slot)` for all jobs, one alarm task: no task per job. Jobs share parsed
//! schedules (see `schedule`). All decisions live in the synchronous [`State`] methods (tested without spawning);
//! `handle` only routes messages and performs the IO they ask for.
//!
//! Claims: an instant is emitted only if this node's session holds a claim covering it, and only while the
//! session is provably valid (`now < valid_until`). Claims never reach beyond `valid_until`, so a node that
//! loses its session has claimed nothing a successor cannot account for.
//!
//! Handover: a job reassigned away (`Revoke`) is not dropped at once: the timer stops renewing its claim and
//! keeps firing the instants already claimed, then lets the job go. The successor's grant starts right after
//! that claim, so no instant falls between the two owners and none is fired by both, without any extra round
//! trip. A deleted job (`Remove`) stops at once and its claim is released.
//!
//! Settling a predecessor: when a grant takes a job over from another session, that session's unsettled
//! instants `(settled_ms, through_ms]` are settled only once the predecessor is gone (its session no longer
//! live) or every one of them has a record: a live predecessor is still firing and recording them.
//!
//! Layout: this file is the actor shell (messages, and the IO each step asks for); `state` holds the pure
//! state (a slab of entries and one ordered queue) and emission; `claims` what to claim and how answers apply;
//! `settle` the accounting for a predecessor's instants, as pure decisions; `parting` what a job let go still
//! owes (a claim answered late, a predecessor not settled yet); `requests` the runs asked for
//! outside the schedule (trigger, backfill), which the owner takes and runs; `alarm` the one alarm.
//! [`Lease::permits`] is the single fencing check: the timer emits an instant, and the executor starts it,
//! only while it holds.

mod alarm;
mod claims;
mod index;
#[cfg(test)]
mod model;
mod parting;
mod pause;
mod requests;
mod settle;
mod state;
#[cfg(test)]
mod tests;

use std::sync::Arc;
use std::time::Duration;

use ractor::{Actor, ActorProcessingErr, ActorRef, RpcReplyPort};
use tracing::warn;

pub use self::claims::{
    Asked, Asking, CLAIM_CHUNK, CLAIM_SCAN, GRANTS_PER_TURN, Granted, RoundTrip, SETTLE_PER_TURN,
    ScanCursor,
};
pub use self::requests::{Requests, Taken, take_round_trip};
pub use self::settle::{Settlement, still_firing, unrecorded, unsettled_instants, verdict};
pub use self::state::{Decisions, State};
use super::{executor, recorder};
use crate::clock::Clock;
use crate::coordinator::{CoordError, Coordinator, SessionId};
use crate::job::{FireId, Job, JobId};

/// Most fires and records one wake hands on; what is left of the instant goes out in the next turn.
pub const WAKE_CHUNK: usize = 2_000;

/// Fires handed to the executor at once from which the timer makes sure another worker takes them (see
/// `Shell::apply`): below it, waking a second worker costs more than it saves.
pub const PARALLEL_FIRES: usize = 256;

/// The timer actor (no configuration of its own: see [`Arguments`]).
pub struct Timer;

/// The session the timer fires under.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Lease {
    /// The session.
    pub session: SessionId,
    /// Wall time (Unix ms) until which the session is provably valid.
    pub valid_until_ms: i64,
}

impl Lease {
    /// The one fencing check: whether an instant claimed under `session` may be emitted or started at
    /// `now_ms`. Only under this lease's own session (a new session never makes an old session's claims valid
    /// again) and only strictly before the lease's end (past it the session may have expired unseen, and a
    /// successor may own the job).
    pub fn permits(&self, session: SessionId, now_ms: i64) -> bool {
        session == self.session && now_ms < self.valid_until_ms
    }

    /// Whether the lease's own session is provably valid at `now_ms`: [`Lease::permits`] for its session.
    pub fn valid_at(&self, now_ms: i64) -> bool {
        self.permits(self.session, now_ms)
    }
}

/// Timing knobs.
#[derive(Debug, Clone, Copy)]
pub struct Config {
    /// How far ahead instants are claimed.
    pub lookahead: Duration,
    /// An instant later than this when it could first be emitted is a misfire (handled by its policy).
    pub misfire_threshold: Duration,
}

/// Messages of the timer.
#[derive(Debug)]
pub enum Msg {
    /// These jobs are now owned by this node (new, taken over, or updated).
    Upsert(Vec<Arc<Job>>),
    /// These jobs were reassigned to another node: stop renewing their claims, fire what is claimed, then
    /// let them go.
    Revoke(Vec<JobId>),
    /// Changes to jobs owned by other nodes: the ones still held, revoked, to run a claim out take them.
    Refresh(Vec<Arc<Job>>),
    /// These jobs were deleted: stop firing them now and release their claims.
    Remove(Vec<JobId>),
    /// The session changed: a (renewed) lease, or `None` when it was lost (stop firing now).
    SessionChanged(Option<Lease>),
    /// The alarm went off: emit what is due.
    Wake,
    /// Time to renew claims.
    ClaimTick,
    /// A claim round trip finished.
    Claimed(Result<RoundTrip, CoordError>),
    /// Apply the next chunk of the answers of the last round trip.
    ApplyGrants,
    /// Go on with the claim tick's scan of the jobs due within the lookahead.
    ClaimScan,
    /// A take of requested runs (trigger, backfill) under this session finished.
    Taken(SessionId, Result<Vec<Taken>, CoordError>),
    /// Run records of these instants are stored in the coordinator.
    Settled(Vec<FireId>),
    /// Stop emitting and give back every claimed instant not yet emitted (graceful leave).
    Drain {
        /// Answered when the claims are released.
        reply: RpcReplyPort<()>,
    },
    /// Process nothing for this long (the simulation's model of a frozen process: SIGSTOP, a long GC pause).
    Freeze(std::time::Duration),
    /// How many jobs the timer holds.
    Count {
        /// The answer.
        reply: RpcReplyPort<usize>,
    },
    /// Answer once the timer holds no job (every revoked claim has run out).
    WhenEmpty {
        /// Answered when empty.
        reply: RpcReplyPort<()>,
    },
    /// Answer once no predecessor claim waits to be settled (each predecessor is gone or fully recorded, and
    /// its unrecorded instants are accounted for).
    WhenSettled {
        /// Answered when nothing is pending.
        reply: RpcReplyPort<()>,
    },
}

/// What the timer is started with.
pub struct Arguments {
    /// Wall time.
    pub clock: Arc<dyn Clock>,
    /// Where claims go.
    pub coordinator: Arc<dyn Coordinator>,
    /// Where due fires go.
    pub executor: ActorRef<executor::Msg>,
    /// Where records of instants that do not run (misfired, in doubt) go.
    pub recorder: ActorRef<recorder::Msg>,
    /// This node.
    pub node: crate::coordinator::NodeId,
    /// Jobs this node is running out claims of, shared with the executor.
    pub revoked: super::Revoked,
    /// Timing knobs.
    pub config: Config,
}

/// The timer's actor state: the pure state plus its IO handles.
pub struct Shell {
    state: State,
    /// This turn handed a chunk of at least [`PARALLEL_FIRES`] fires to the executor on another worker.
    handed_off: std::cell::Cell<bool>,
    clock: Arc<dyn Clock>,
    coordinator: Arc<dyn Coordinator>,
    executor: ActorRef<executor::Msg>,
    recorder: ActorRef<recorder::Msg>,
    alarm: alarm::Alarm,
    claim_in_flight: bool,
    /// A claim tick's scan that goes on over several turns (see [`CLAIM_SCAN`]); `claim_in_flight` is set
    /// while it runs.
    scan: Option<Scan>,
    /// Answers of the last round trip not applied yet (applied [`GRANTS_PER_TURN`] per turn), and its settlements,
    /// applied after the last chunk.
    applying: Option<(std::collections::VecDeque<Granted>, Vec<Settlement>)>,
    empty_waiters: Vec<RpcReplyPort<()>>,
    settled_waiters: Vec<RpcReplyPort<()>>,
    revoked: super::Revoked,
    /// The requested runs of the jobs held (see `requests`).
    requests: requests::Requests,
}

/// A claim scan in progress: what it found so far, and where it goes on.
struct Scan {
    now_ms: i64,
    renewals: bool,
    session: SessionId,
    cursor: Option<ScanCursor>,
    asking: Asking,
}

impl Shell {
    fn publish_deadline(&self) {
        self.alarm.set(self.state.deadline(self.clock.now_ms()));
    }

    fn apply(&self, fx: Decisions) {
        let many = fx.fires.len() >= PARALLEL_FIRES;
        if !fx.fires.is_empty() {
            let _ = self.executor.cast(executor::Msg::Run(fx.fires));
        }
        if many {
            // The cast woke the executor into this worker's LIFO slot, where no other worker may take it:
            // it would start these fires only once this actor yields, and the two would take turns on one
            // core. A task scheduled after it pushes it out of the slot into the worker's queue, and the
            // runtime wakes an idle worker to take it: the executor starts this chunk on the other core
            // while this actor goes on with the next (see the yield at the end of `handle`).
            tokio::spawn(std::future::ready(()));
            self.handed_off.set(true);
        }
        if !fx.records.is_empty() {
            let session = self.state.lease.map(|l| l.session);
            let _ = self
                .recorder
                .cast(recorder::Msg::Record(session, fx.records));
        }
    }

    /// Gives claims back, each after the given instant, in a spawned call (`what` names it in the log).
    fn release(&self, releases: Vec<(JobId, i64)>, what: &'static str) {
        let Some(lease) = self.state.lease else {
            return;
        };
        if releases.is_empty() {
            return;
        }
        let coordinator = self.coordinator.clone();
        tokio::spawn(async move {
            if let Err(error) = coordinator.release_claims(lease.session, &releases).await {
                crate::metrics::coordinator_error("release_claims");
                warn!(%error, "{what} failed");
            }
        });
    }

    /// Applies the next [`GRANTS_PER_TURN`] answers of the last round trip; once they are all applied, its
    /// settlements, what became due meanwhile, and the claims of jobs that arrived meanwhile. A renewal of
    /// 100,000 claims is so some 800 short turns, with due instants emitted between them, not one long one.
    fn apply_grants(&mut self, myself: &ActorRef<Msg>) {
        let Some((grants, _)) = self.applying.as_mut() else {
            return;
        };
        let chunk: Vec<Granted> = grants.drain(..grants.len().min(GRANTS_PER_TURN)).collect();
        let more = !grants.is_empty();
        let stray = self.state.granted(chunk);
        self.release(stray, "giving back claims of jobs let go");
        if more {
            let _ = myself.cast(Msg::ApplyGrants);
            return;
        }
        let Some((_, settlements)) = self.applying.take() else {
            return;
        };
        self.claim_in_flight = false;
        let fx = self.state.settle(settlements);
        self.apply(fx);
        // Instants that became due while the claim was in flight go out now (in chunks).
        let fx = self.state.wake_at_most(self.clock.now_ms(), WAKE_CHUNK);
        if fx.fires.len() + fx.records.len() >= WAKE_CHUNK {
            let _ = myself.cast(Msg::Wake);
        }
        self.apply(fx);
        // Jobs that arrived while the claim was in flight are claimed at once; newly claimed ones take
        // their requested runs.
        self.request_claims(myself, false);
        self.take_requests(myself);
    }

    fn request_claims(&mut self, myself: &ActorRef<Msg>, renewals: bool) {
        if self.claim_in_flight {
            return;
        }
        let Some(lease) = self.state.lease else {
            return;
        };
        self.claim_in_flight = true;
        self.state.forget_parted();
        self.scan = Some(Scan {
            now_ms: self.clock.now_ms(),
            renewals,
            session: lease.session,
            cursor: None,
            asking: Asking::default(),
        });
        self.scan_claims(myself);
    }

    /// Goes on with the claim scan: one slice of [`CLAIM_SCAN`] entries per turn, then the round trip. A scan
    /// whose session ended, or that a drain overtook, is dropped (the next tick starts afresh).
    fn scan_claims(&mut self, myself: &ActorRef<Msg>) {
        let Some(mut scan) = self.scan.take() else {
            return;
        };
        let now = self.clock.now_ms();
        let Some(lease) = self
            .state
            .lease
            .filter(|l| l.session == scan.session && l.valid_at(now) && !self.state.is_draining())
        else {
            self.claim_in_flight = false;
            return;
        };
        scan.cursor = self.state.claims_due_slice(
            scan.now_ms,
            scan.renewals,
            scan.cursor,
            CLAIM_SCAN,
            &mut scan.asking,
        );
        if scan.cursor.is_some() {
            self.scan = Some(scan);
            let _ = myself.cast(Msg::ClaimScan);
            return;
        }
        let (now, renewals) = (scan.now_ms, scan.renewals);
        let Asking { claims, slots, .. } = scan.asking;
        let pending = if renewals {
            self.state.pending_settlements()
        } else {
            Vec::new()
        };
        if claims.is_empty() && pending.is_empty() {
            self.claim_in_flight = false;
            return;
        }
        let coordinator = self.coordinator.clone();
        let jobs = self.state.claimed_jobs(&slots);
        let myself = myself.clone();
        tokio::spawn(async move {
            let result = claims::claim_round_trip(
                coordinator.as_ref(),
                lease.session,
                claims,
                &jobs,
                pending,
                now,
                claims::claim_deadline(lease.valid_until_ms, now),
            )
            .await;
            let _ = myself.cast(Msg::Claimed(result));
        });
    }
}

// Local only: ractor's `cluster` feature (executor groups) asks every message type to say whether it
// can cross the network; this one cannot.
impl ractor::Message for Msg {}

impl Actor for Timer {
    type Msg = Msg;
    type State = Shell;
    type Arguments = Arguments;

    async fn pre_start(
        &self,
        myself: ActorRef<Msg>,
        args: Arguments,
    ) -> Result<Shell, ActorProcessingErr> {
        let alarm = alarm::Alarm::start(args.clock.clone(), myself.clone());
        myself.send_interval(claims::claim_tick(args.config.lookahead), || Msg::ClaimTick);
        Ok(Shell {
            handed_off: std::cell::Cell::new(false),
            state: State::new(args.node, args.config),
            clock: args.clock,
            coordinator: args.coordinator,
            executor: args.executor,
            recorder: args.recorder,
            alarm,
            claim_in_flight: false,
            scan: None,
            applying: None,
            empty_waiters: Vec::new(),
            settled_waiters: Vec::new(),
            revoked: args.revoked,
            requests: requests::Requests::default(),
        })
    }

    async fn handle(
        &self,
        myself: ActorRef<Msg>,
        msg: Msg,
        running: &mut Shell,
    ) -> Result<(), ActorProcessingErr> {
        let now = running.clock.now_ms();
        match msg {
            Msg::Upsert(jobs) => {
                {
                    let mut revoked = running.revoked.lock().unwrap_or_else(|p| p.into_inner());
                    for job in &jobs {
                        revoked.remove(&job.id); // taken back (or never revoked)
                    }
                }
                running.requests.upserted(&jobs);
                running.state.upsert(jobs, now);
                running.request_claims(&myself, false);
                running.take_requests(&myself);
            }
            Msg::Revoke(ids) => {
                running
                    .revoked
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .extend(ids.iter().cloned());
                running.state.revoke(&ids);
            }
            Msg::Refresh(jobs) => running.state.refresh(jobs, now),
            Msg::Remove(ids) => {
                let releases = running.state.remove(&ids);
                running.release(releases, "releasing claims of removed jobs");
            }
            Msg::SessionChanged(lease) => {
                running.state.set_lease(lease);
                running.request_claims(&myself, false);
                running.take_requests(&myself);
            }
            Msg::Wake => {
                // A wake hands fires on in chunks: the executor starts the first chunk while the
                // next is built, and no turn of this actor holds a worker for long (100,000 jobs due at one
                // instant are 50 turns, with other messages between them).
                let fx = running.state.wake_at_most(now, WAKE_CHUNK);
                let more = fx.fires.len() + fx.records.len() >= WAKE_CHUNK;
                running.apply(fx);
                if more {
                    let _ = myself.cast(Msg::Wake);
                }
            }
            Msg::ClaimTick => {
                running.state.refused.clear();
                running.request_claims(&myself, true);
                running.take_requests(&myself);
            }
            Msg::Claimed(result) => match result {
                Ok(trip) => {
                    running.applying = Some((trip.grants.into(), trip.settlements));
                    running.apply_grants(&myself);
                }
                Err(error) => {
                    running.claim_in_flight = false;
                    crate::metrics::coordinator_error("claim_fires");
                    warn!(%error, "claiming fires failed");
                }
            },
            Msg::ApplyGrants => running.apply_grants(&myself),
            Msg::ClaimScan => running.scan_claims(&myself),
            Msg::Taken(session, result) => running.taken(&myself, session, result),
            Msg::Settled(mut fires) => {
                // A write batch's instants settle a slice per turn, with due instants emitted between.
                if fires.len() > SETTLE_PER_TURN {
                    let rest = fires.split_off(SETTLE_PER_TURN);
                    let _ = myself.cast(Msg::Settled(rest));
                }
                running.state.settled(&fires);
                if running.requests.settled(&fires) {
                    running.take_requests(&myself);
                }
            }
            Msg::Drain { reply } => {
                let releases = running.state.drain();
                if let (Some(lease), false) = (running.state.lease, releases.is_empty())
                    && let Err(error) = running
                        .coordinator
                        .release_claims(lease.session, &releases)
                        .await
                {
                    warn!(%error, "releasing claims on drain failed");
                }
                let _ = reply.send(());
            }
            Msg::Freeze(pause) => tokio::time::sleep(pause).await,
            Msg::Count { reply } => {
                let _ = reply.send(running.state.len());
            }
            Msg::WhenEmpty { reply } => running.empty_waiters.push(reply),
            Msg::WhenSettled { reply } => running.settled_waiters.push(reply),
        }
        if !running.settled_waiters.is_empty() && !running.state.settling() {
            for waiter in running.settled_waiters.drain(..) {
                let _ = waiter.send(());
            }
        }
        if running.state.is_empty() {
            for waiter in running.empty_waiters.drain(..) {
                let _ = waiter.send(());
            }
        }
        running.publish_deadline();
        // Hand the worker back to the runtime after every turn. The fires this turn cast woke the executor on
        // this worker, into a slot no other worker may take its task from; without a yield this actor goes on
        // with its next messages (a claim answer is hundreds of turns of `ApplyGrants`, a wake of 100,000
        // fires fifty), up to tokio's budget of 128 per poll, and the executor's start of those fires waits
        // behind all of them (15–30 ms at each claim tick in the spread benchmark).
        // A turn that handed a large chunk to the executor moved it off this worker's slot (see `apply`):
        // going on at once lets the two run side by side.
        if !running.handed_off.replace(false) {
            tokio::task::yield_now().await;
        }
        Ok(())
    }
}
