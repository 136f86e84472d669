//! The timer actor: holds the next instant of every job this node owns, claims instants ahead of time in
//! batches, and at each instant emits the due fires, in one batch, to the dispatcher.
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

#[cfg(test)]
mod tests;

use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;
use std::time::Duration;

use chrono_tz::Tz;
use ractor::{Actor, ActorProcessingErr, ActorRef, RpcReplyPort};
use tokio::sync::watch;
use tracing::{debug, warn};

use super::dispatcher;
use super::fire::{Fire, FireKind};
use crate::clock::Clock;
use crate::coordinator::{
    ClaimResult, CoordError, Coordinator, FireClaim, JobClaim, RunQuery, SessionId,
};
use crate::job::{Delivery, FireId, Job, JobId};
use crate::misfire;
use crate::run::{Outcome, RunRecord};

/// Most missed instants enumerated for one job at once; older ones are summarized by count only.
const MAX_MISSED_SCAN: usize = 100_000;

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
    pub dispatcher: ActorRef<dispatcher::Msg>,
    /// This node.
    pub node: crate::coordinator::NodeId,
    /// Jobs this node is running out claims of, shared with the executor.
    pub revoked: super::Revoked,
    /// Timing knobs.
    pub config: Config,
}

/// The outcome of one claim.
#[derive(Debug, Clone)]
pub struct Granted {
    /// The job.
    pub job: JobId,
    /// What the coordinator answered.
    pub result: ClaimResult,
}

/// The settlement of a predecessor's claim: it is gone (or recorded everything), and these of its instants
/// passed without a record.
#[derive(Debug, Clone)]
pub struct Settlement {
    /// The job.
    pub job: JobId,
    /// The predecessor's claim that is now settled.
    pub previous: JobClaim,
    /// Its instants without a run record.
    pub in_doubt: Vec<i64>,
}

/// What one claim round trip found.
#[derive(Debug, Clone, Default)]
pub struct RoundTrip {
    /// The answers to the claims.
    pub grants: Vec<Granted>,
    /// Predecessors settled in this round.
    pub settlements: Vec<Settlement>,
}

struct Entry {
    job: Arc<Job>,
    tz: Tz,
    /// The next instant not yet emitted.
    next_ms: Option<i64>,
    /// Our claim: `(from, through)`, inclusive.
    claim: Option<(i64, i64)>,
    /// Emitted instants whose run record is not yet stored.
    outstanding: Vec<i64>,
    /// The last instant emitted (or skipped while paused).
    last_ms: i64,
    /// Whether `(next_ms, slot)` is in the queue.
    queued: bool,
    /// Reassigned away: no renewal; dropped once the claim has run out.
    revoked: bool,
    /// The claim of the session we took the job over from, until it is settled.
    predecessor: Option<JobClaim>,
    /// Set when this node saw the job resumed: instants before are not owed (they passed while paused).
    resumed_ms: Option<i64>,
}

impl Entry {
    /// Every instant of our claim up to here has a stored record; while a predecessor is not settled yet, no
    /// further than its own `settled_ms` (its unsettled instants stay visible in the claim).
    fn settled_ms(&self) -> i64 {
        let base = self.claim.map_or(i64::MIN, |(from, _)| from - 1);
        let own = self.last_ms.max(base);
        // Instants waiting for their record hold `settled` back, also those before our claim (a
        // predecessor's instants we record as in doubt).
        let settled = self
            .outstanding
            .iter()
            .min()
            .map_or(own, |first| own.min(first - 1));
        match &self.predecessor {
            Some(previous) => settled.min(previous.settled_ms),
            None => settled,
        }
    }
}

/// What a state transition asks the actor to do.
#[derive(Debug, Default)]
pub struct Effects {
    /// Fires to hand to the dispatcher.
    pub fires: Vec<Fire>,
    /// Records to write (misfired, in doubt).
    pub records: Vec<RunRecord>,
}

/// The timer's state: every owned job's next instant and claim.
pub struct State {
    node: crate::coordinator::NodeId,
    config: Config,
    slots: Vec<Option<Entry>>,
    free: Vec<u32>,
    index: HashMap<JobId, u32>,
    /// `(next_ms, slot)` of every claimed entry whose next instant is within its claim or not yet reached.
    queue: BTreeSet<(i64, u32)>,
    /// Entries without a claim (new, or after a session change).
    unclaimed: BTreeSet<u32>,
    /// Entries whose next instant came before their claim was renewed.
    blocked: BTreeSet<u32>,
    /// For jobs this session let go (reassigned away): the last instant it emitted. If the job comes back
    /// to the same session, the coordinator answers with the same claim (an extension keeps `from_ms`), and
    /// the timer must resume after what it already fired, not at the claim's start.
    released: HashMap<JobId, i64>,
    /// Jobs answered `NotOwner`: not claimed again before the next claim tick (no claim storm while this
    /// node's view of the assignment is behind the coordinator's).
    refused: std::collections::HashSet<JobId>,
    lease: Option<Lease>,
    draining: bool,
}

impl State {
    /// An empty timer.
    pub fn new(node: crate::coordinator::NodeId, config: Config) -> Self {
        Self {
            node,
            config,
            slots: Vec::new(),
            free: Vec::new(),
            index: HashMap::new(),
            queue: BTreeSet::new(),
            unclaimed: BTreeSet::new(),
            blocked: BTreeSet::new(),
            released: HashMap::new(),
            refused: std::collections::HashSet::new(),
            lease: None,
            draining: false,
        }
    }

    /// Number of jobs held.
    pub fn len(&self) -> usize {
        self.index.len()
    }

    /// Whether no job is held.
    pub fn is_empty(&self) -> bool {
        self.index.is_empty()
    }

    /// Takes jobs (new or updated). An update keeps the claim and takes effect from the next instant after now.
    pub fn upsert(&mut self, jobs: Vec<Arc<Job>>, now_ms: i64) {
        for job in jobs {
            let tz = job.spec.tz().unwrap_or(chrono_tz::UTC);
            match self.index.get(&job.id).copied() {
                Some(slot) => {
                    self.dequeue(slot);
                    self.blocked.remove(&slot);
                    let entry = self.slots[slot as usize]
                        .as_mut()
                        .expect("indexed slot is occupied");
                    // An update goes on after the last instant handled: through the old schedule's
                    // instants up to the update and the new one's after it, even those that passed before
                    // the update reached this node (late ones go through the misfire policy). Pausing or
                    // resuming takes effect from now: a paused job owes nothing. (Without a claim, the grant
                    // sets the start.)
                    let after = if entry.job.spec.paused || job.spec.paused {
                        entry.last_ms.max(now_ms)
                    } else {
                        entry.last_ms
                    };
                    entry.next_ms = next_instant(&job, tz, after);
                    if entry.job.spec.paused && !job.spec.paused {
                        entry.resumed_ms = Some(now_ms);
                    }
                    entry.job = job;
                    entry.tz = tz;
                    entry.revoked = false;
                    if entry.claim.is_none() {
                        self.unclaimed.insert(slot);
                    }
                    self.enqueue(slot);
                }
                None => {
                    // No claim yet: the first claim decides where the instants start.
                    let entry = Entry {
                        job,
                        tz,
                        next_ms: None,
                        claim: None,
                        outstanding: Vec::new(),
                        last_ms: i64::MIN,
                        queued: false,
                        revoked: false,
                        predecessor: None,
                        resumed_ms: None,
                    };
                    let slot = match self.free.pop() {
                        Some(slot) => {
                            self.slots[slot as usize] = Some(entry);
                            slot
                        }
                        None => {
                            self.slots.push(Some(entry));
                            u32::try_from(self.slots.len() - 1).expect("fewer than 2^32 jobs")
                        }
                    };
                    let id = self.slots[slot as usize]
                        .as_ref()
                        .expect("just filled")
                        .job
                        .id
                        .clone();
                    self.index.insert(id, slot);
                    self.unclaimed.insert(slot);
                }
            }
        }
        metrics::gauge!(crate::metrics::JOBS_OWNED).set(self.index.len() as f64);
    }

    /// Drops deleted jobs now; returns the claims to release: `(job, last instant kept)`.
    pub fn remove(&mut self, ids: &[JobId]) -> Vec<(JobId, i64)> {
        let mut releases = Vec::new();
        for id in ids {
            let Some(&slot) = self.index.get(id) else {
                continue;
            };
            let entry = self.drop_slot(slot);
            if entry.claim.is_some() {
                releases.push((id.clone(), entry.settled_ms().max(entry.last_ms)));
            }
        }
        releases
    }

    /// Jobs reassigned away: no more renewals; each keeps firing what it has claimed and is dropped when its
    /// claim has run out (at once if it has none).
    pub fn revoke(&mut self, ids: &[JobId]) {
        for id in ids {
            let Some(&slot) = self.index.get(id) else {
                continue;
            };
            let entry = self.slots[slot as usize]
                .as_mut()
                .expect("indexed slot is occupied");
            entry.revoked = true;
            let exhausted = match entry.claim {
                None => true,
                Some((_, through)) => entry.next_ms.is_none_or(|t| t > through),
            };
            if exhausted {
                self.let_go(slot);
            }
        }
    }

    /// Drops a revoked entry, remembering where this session stopped firing it.
    fn let_go(&mut self, slot: u32) {
        let entry = self.drop_slot(slot);
        if entry.claim.is_some() {
            self.released.insert(entry.job.id.clone(), entry.last_ms);
        }
    }

    fn drop_slot(&mut self, slot: u32) -> Entry {
        self.dequeue(slot);
        self.unclaimed.remove(&slot);
        self.blocked.remove(&slot);
        let entry = self.slots[slot as usize].take().expect("slot is occupied");
        self.index.remove(&entry.job.id);
        self.free.push(slot);
        metrics::gauge!(crate::metrics::JOBS_OWNED).set(self.index.len() as f64);
        entry
    }

    /// A new or renewed lease, or `None`: the session is lost, so every claim is void.
    pub fn set_lease(&mut self, lease: Option<Lease>) {
        let session_changed = self.lease.map(|l| l.session) != lease.map(|l| l.session);
        self.lease = lease;
        if session_changed {
            // Claims belong to the old session: whatever it did not settle is the successor's to account for
            // (that may be this node's new session). Start over from the first claim.
            self.blocked.clear();
            self.released.clear(); // a new session's claims never extend the old one's
            for slot in 0..self.slots.len() as u32 {
                if self.slots[slot as usize]
                    .as_ref()
                    .is_some_and(|e| e.revoked)
                {
                    // Not ours any more, and the claim that kept it here is void.
                    self.drop_slot(slot);
                    continue;
                }
                self.dequeue(slot);
                if let Some(entry) = self.slots[slot as usize].as_mut() {
                    entry.claim = None;
                    entry.next_ms = None;
                    entry.outstanding.clear();
                    self.unclaimed.insert(slot);
                }
            }
        }
    }

    /// The instant the alarm should go off at, if any: the next instant, or the lease's end if that comes
    /// first; none while the lease has run out (nothing can fire until a renewal, which sets a new lease).
    pub fn deadline(&self, now_ms: i64) -> Option<i64> {
        let lease = self.lease?;
        if self.draining || now_ms >= lease.valid_until_ms {
            return None;
        }
        self.queue
            .first()
            .map(|&(t, _)| t.min(lease.valid_until_ms))
    }

    /// Emits what is due at `now_ms`.
    pub fn wake(&mut self, now_ms: i64) -> Effects {
        let mut fx = Effects::default();
        let Some(lease) = self.lease else { return fx };
        if self.draining || now_ms >= lease.valid_until_ms {
            // Self-fencing: the session may have expired; fire nothing until it is renewed.
            return fx;
        }
        let threshold = duration_ms(self.config.misfire_threshold);
        while let Some(&(t, slot)) = self.queue.first() {
            if t > now_ms {
                break;
            }
            self.queue.pop_first();
            let entry = self.slots[slot as usize]
                .as_mut()
                .expect("queued slot is occupied");
            entry.queued = false;
            let Some((_, through)) = entry.claim else {
                continue;
            };
            if t > through {
                if entry.revoked {
                    // Its claim has run out: the successor's begins right after.
                    self.let_go(slot);
                } else {
                    // Not claimed yet: it waits for the next grant (which re-queues it).
                    self.blocked.insert(slot);
                }
                continue;
            }
            if entry.job.spec.paused {
                entry.last_ms = t;
                entry.next_ms = next_instant(&entry.job, entry.tz, t);
            } else if now_ms > through {
                // The claim is a right to fire in a window of time, not only a set of instants: past its end a
                // successor may already be firing later instants, so what was not started in time is recorded
                // as misfired (never run late). postmortem: a renewal answered late let an old owner start an
                // instant after its successor had started a later one (simulation seed 16).
                Self::misfire(
                    &self.node,
                    lease.session,
                    entry,
                    now_ms,
                    through + 1,
                    through,
                    false,
                    &mut fx,
                );
            } else if t < now_ms - threshold {
                Self::misfire(
                    &self.node,
                    lease.session,
                    entry,
                    now_ms,
                    now_ms - threshold,
                    through,
                    true,
                    &mut fx,
                );
            } else {
                fx.fires.push(Fire {
                    job: entry.job.clone(),
                    scheduled_ms: t,
                    kind: FireKind::Scheduled,
                    session: Some(lease.session),
                    start_by_ms: Some(through),
                });
                entry.outstanding.push(t);
                entry.last_ms = t;
                entry.next_ms = next_instant(&entry.job, entry.tz, t);
            }
            if entry.revoked && entry.next_ms.is_none_or(|next| next > through) {
                self.let_go(slot);
            } else {
                self.enqueue(slot);
            }
        }
        fx
    }

    /// Handles the instants of `entry` that passed more than the threshold ago (before `until`, within the
    /// claim): the misfire policy decides which run late and which are recorded as misfired.
    #[allow(clippy::too_many_arguments)] // One call site per reason; a struct would only rename them.
    fn misfire(
        node: &crate::coordinator::NodeId,
        session: SessionId,
        entry: &mut Entry,
        now_ms: i64,
        until: i64,
        through: i64,
        may_run: bool,
        fx: &mut Effects,
    ) {
        // Keep the newest MAX_MISSED_SCAN instants (the policy runs the newest); older ones are only counted.
        let mut missed = std::collections::VecDeque::new();
        let mut dropped: Option<(i64, i64, u64)> = None; // (first, last, count) of the older instants
        let mut cursor = entry.next_ms;
        let mut scanned = 0usize;
        while let Some(t) = cursor {
            if t >= until || t > through {
                break;
            }
            if missed.len() == MAX_MISSED_SCAN {
                let old = missed.pop_front().expect("full");
                let d = dropped.get_or_insert((old, old, 0));
                d.1 = old;
                d.2 += 1;
            }
            missed.push_back(t);
            entry.last_ms = t;
            cursor = next_instant(&entry.job, entry.tz, t);
            scanned += 1;
            if scanned >= 10 * MAX_MISSED_SCAN {
                // A schedule this dense over this long a gap: stop enumerating. The record's count is then
                // a lower bound, and its range still ends at the last instant passed over.
                let last = (until - 1).min(through);
                if let Some(d) = dropped.as_mut() {
                    d.1 = d.1.max(missed.front().copied().unwrap_or(d.1));
                }
                cursor = next_instant(&entry.job, entry.tz, last);
                break;
            }
        }
        entry.next_ms = cursor;
        let missed: Vec<i64> = missed.into();
        let policy = if may_run {
            entry.job.spec.misfire
        } else {
            crate::job::MisfirePolicy::Skip
        };
        let plan = misfire::plan(policy, &missed, now_ms);
        let total = missed.len() as u64 + dropped.map_or(0, |d| d.2);
        crate::metrics::misfired("late", total.saturating_sub(plan.run.len() as u64));
        let mut skips = plan.skip;
        if let Some((first, last, count)) = dropped {
            let count = u32::try_from(count).unwrap_or(u32::MAX);
            match skips.first_mut() {
                Some(skip) => *skip = (first, skip.1, skip.2.saturating_add(count)),
                None => skips.push((first, last, count)),
            }
        }
        if !skips.is_empty() {
            debug!(job = %entry.job.id, ?skips, "instants misfired");
        }
        for (first, last, count) in skips {
            let mut record =
                RunRecord::new(&entry.job.fire_id(first), node.as_str(), Outcome::Misfired);
            record.count = count;
            record.last_scheduled_ms = (last != first).then_some(last);
            let late = Duration::from_millis(u64::try_from(now_ms - last).unwrap_or(0));
            record.reason = Some(format!(
                "missed: no node could fire it in time (last one {} late)",
                humantime::format_duration(late)
            ));
            entry.outstanding.push(first);
            fx.records.push(record);
        }
        for t in plan.run {
            entry.outstanding.push(t);
            fx.fires.push(Fire {
                job: entry.job.clone(),
                scheduled_ms: t,
                kind: FireKind::CatchUp,
                session: Some(session),
                start_by_ms: Some(through),
            });
        }
    }

    /// The claims to request now: first claims of new jobs and, with `renewals`, claims that run out soon
    /// (only entries due within the lookahead are looked at, so a tick costs what is due, not what is held).
    pub fn claims_due(&self, now_ms: i64, renewals: bool) -> Vec<FireClaim> {
        let Some(lease) = self.lease else {
            return Vec::new();
        };
        if self.draining || now_ms >= lease.valid_until_ms {
            return Vec::new();
        }
        let lookahead = duration_ms(self.config.lookahead);
        let through = (now_ms + lookahead).min(lease.valid_until_ms - 1);
        let renew_below = now_ms + lookahead / 2;
        let mut claims = Vec::new();
        let due_soon = self
            .queue
            .range(..(now_ms + lookahead + 1, 0))
            .map(|&(_, slot)| slot);
        let candidates: Box<dyn Iterator<Item = u32>> = if renewals {
            // A tick: refused jobs may be tried again.
            Box::new(
                self.unclaimed
                    .iter()
                    .copied()
                    .chain(self.blocked.iter().copied())
                    .chain(due_soon),
            )
        } else {
            Box::new(self.unclaimed.iter().copied())
        };
        for slot in candidates {
            let Some(entry) = self.slots[slot as usize].as_ref() else {
                continue;
            };
            if entry.job.spec.paused
                || entry.revoked
                || (!renewals && self.refused.contains(&entry.job.id))
            {
                continue;
            }
            let wanted = match entry.claim {
                None => true,
                Some((_, held)) => {
                    held < renew_below && entry.next_ms.is_some_and(|t| t <= now_ms + lookahead)
                }
            };
            if wanted {
                let from = entry.claim.map_or_else(
                    || first_owed_ms(&entry.job).max(entry.resumed_ms.map_or(i64::MIN, |t| t + 1)),
                    |(from, _)| from,
                );
                claims.push(FireClaim {
                    job: entry.job.id.clone(),
                    from_ms: from,
                    through_ms: through.max(from),
                    // A first claim has settled nothing of its own yet: everything before it, as far as this
                    // node knows (a takeover lowers it to the predecessor's).
                    settled_ms: if entry.claim.is_some() {
                        entry.settled_ms()
                    } else {
                        from - 1
                    },
                });
            }
        }
        claims
    }

    /// Applies the coordinator's answers to a claim request.
    pub fn granted(&mut self, grants: Vec<Granted>) {
        let Some(lease) = self.lease else { return };
        for grant in grants {
            let Some(&slot) = self.index.get(&grant.job) else {
                continue;
            };
            match grant.result {
                ClaimResult::Granted { claim, previous } => {
                    if claim.session != lease.session {
                        continue; // an answer for a session we no longer have
                    }
                    self.dequeue(slot);
                    self.unclaimed.remove(&slot);
                    self.blocked.remove(&slot);
                    let entry = self.slots[slot as usize]
                        .as_mut()
                        .expect("indexed slot is occupied");
                    if entry.claim.is_none() {
                        // A first claim: the instants start where the grant starts, or, if this session held
                        // the job before and let it go, after the last instant it fired then (postmortem: a
                        // job given back to the same session was fired again from its claim's start,
                        // simulation seeds 113 and 156).
                        let resume = (claim.from_ms - 1)
                            .max(self.released.remove(&grant.job).unwrap_or(i64::MIN));
                        entry.next_ms = next_instant(&entry.job, entry.tz, resume);
                        entry.last_ms = resume;
                        // A first grant without `previous` whose `settled_ms` lies before its start took the job
                        // over earlier, in a call whose reply was lost (the retry is answered as an extension):
                        // the takeover kept the predecessor's unsettled instants in the claim; settle them as
                        // a predecessor's. postmortem: simulation seed 6.
                        if previous.is_none()
                            && claim.settled_ms < claim.from_ms - 1
                            && entry.predecessor.is_none()
                        {
                            entry.predecessor = Some(JobClaim {
                                session: SessionId(0), // unknown, and never live: settled as soon as possible
                                node: claim.node.clone(),
                                from_ms: claim.settled_ms + 1,
                                through_ms: claim.from_ms - 1,
                                settled_ms: claim.settled_ms,
                            });
                        }
                    }
                    if entry.claim.is_none() || previous.is_some() {
                        debug!(
                            job = %grant.job,
                            from = claim.from_ms,
                            through = claim.through_ms,
                            settled = claim.settled_ms,
                            previous = ?previous,
                            next = ?entry.next_ms,
                            "claim granted"
                        );
                    }
                    // A new tenure that starts after instants this entry still had to fire (another
                    // session held the job in between, and fires those): go on from the tenure's start.
                    // postmortem: simulation seed 548 emitted an instant of the other holder's claim.
                    if entry.next_ms.is_some_and(|t| t < claim.from_ms) {
                        entry.last_ms = entry.last_ms.max(claim.from_ms - 1);
                        entry.next_ms = next_instant(&entry.job, entry.tz, entry.last_ms);
                    }
                    entry.claim = Some((claim.from_ms, claim.through_ms));
                    if let Some(previous) = previous.filter(|p| p.session != lease.session) {
                        // Settled later, once the predecessor is gone or has recorded everything.
                        entry.predecessor = Some(previous);
                    }
                    self.enqueue(slot);
                }
                ClaimResult::NotOwner { owner } => {
                    self.refused.insert(grant.job.clone());
                    debug!(job = %grant.job, owner = ?owner, "claim refused: not the owner");
                }
                ClaimResult::NoSuchJob => {}
            }
        }
    }

    /// Whether a predecessor claim waits to be settled.
    pub fn settling(&self) -> bool {
        self.slots.iter().flatten().any(|e| e.predecessor.is_some())
    }

    /// Predecessor claims still to settle, with what is needed to list their instants.
    pub fn pending_settlements(&self) -> Vec<(JobClaim, Arc<Job>, Tz)> {
        self.slots
            .iter()
            .flatten()
            .filter_map(|e| Some((e.predecessor.clone()?, e.job.clone(), e.tz)))
            .collect()
    }

    /// Applies settlements: the in-doubt instants are recorded or run again, per the job's delivery mode.
    pub fn settle(&mut self, settlements: Vec<Settlement>) -> Effects {
        let mut fx = Effects::default();
        let Some(lease) = self.lease else { return fx };
        for settlement in settlements {
            let Some(&slot) = self.index.get(&settlement.job) else {
                continue;
            };
            let entry = self.slots[slot as usize]
                .as_mut()
                .expect("indexed slot is occupied");
            if entry.predecessor.as_ref() != Some(&settlement.previous) {
                continue; // settled already, or superseded
            }
            entry.predecessor = None;
            Self::settle_previous(
                &self.node,
                lease.session,
                entry,
                &settlement.previous,
                &settlement.in_doubt,
                &mut fx,
            );
        }
        fx
    }

    /// Accounts for the previous holder's unsettled instants, per the job's delivery mode.
    fn settle_previous(
        node: &crate::coordinator::NodeId,
        session: SessionId,
        entry: &mut Entry,
        previous: &JobClaim,
        in_doubt: &[i64],
        fx: &mut Effects,
    ) {
        if in_doubt.is_empty() {
            return;
        }
        crate::metrics::misfired("in_doubt", in_doubt.len() as u64);
        debug!(job = %entry.job.id, ?in_doubt, ?previous, "predecessor settled");
        match entry.job.spec.delivery {
            Delivery::AtMostOnce => {
                for &t in in_doubt {
                    let mut record =
                        RunRecord::new(&entry.job.fire_id(t), node.as_str(), Outcome::InDoubt);
                    record.reason = Some(format!(
                        "claimed by node {} (session {}) which left no record",
                        previous.node, previous.session
                    ));
                    entry.outstanding.push(t);
                    fx.records.push(record);
                }
            }
            Delivery::AtLeastOnce => {
                for &t in in_doubt {
                    entry.outstanding.push(t);
                    fx.fires.push(Fire {
                        job: entry.job.clone(),
                        scheduled_ms: t,
                        kind: FireKind::Redelivery,
                        session: Some(session),
                        start_by_ms: entry.claim.map(|(_, through)| through),
                    });
                }
            }
        }
    }

    /// Marks instants as recorded.
    pub fn settled(&mut self, fires: &[FireId]) {
        for fire in fires {
            let Some(&slot) = self.index.get(&fire.job) else {
                continue;
            };
            let entry = self.slots[slot as usize]
                .as_mut()
                .expect("indexed slot is occupied");
            if let Some(pos) = entry
                .outstanding
                .iter()
                .position(|&t| t == fire.scheduled_ms)
            {
                entry.outstanding.swap_remove(pos);
            }
        }
    }

    /// Stops emitting; returns every claim to release, each at its last emitted instant.
    pub fn drain(&mut self) -> Vec<(JobId, i64)> {
        self.draining = true;
        self.slots
            .iter()
            .flatten()
            .filter(|e| e.claim.is_some())
            .map(|e| {
                (
                    e.job.id.clone(),
                    e.last_ms
                        .max(e.claim.map_or(i64::MIN, |(from, _)| from - 1)),
                )
            })
            .collect()
    }

    fn enqueue(&mut self, slot: u32) {
        let entry = self.slots[slot as usize]
            .as_mut()
            .expect("slot is occupied");
        // Only claimed entries wait in the queue; unclaimed ones wait in `unclaimed` for their first grant.
        if let (Some(t), false, Some(_)) = (entry.next_ms, entry.queued, entry.claim) {
            entry.queued = true;
            self.queue.insert((t, slot));
        }
    }

    fn dequeue(&mut self, slot: u32) {
        if let Some(entry) = self.slots[slot as usize].as_mut()
            && entry.queued
        {
            entry.queued = false;
            if let Some(t) = entry.next_ms {
                self.queue.remove(&(t, slot));
            }
        }
    }
}

/// The job's first instant strictly after `after_ms`, by the schedule in force then (see
/// [`Job::next_instant`]).
fn next_instant(job: &Job, tz: Tz, after_ms: i64) -> Option<i64> {
    job.next_instant(tz, after_ms)
}

/// The first instant a job is owed from, when no claim of it exists yet: just after its creation, so a job
/// created at 10:00:00.000 with an every-minute schedule first fires at 10:01, as its preview says. Not after
/// its last update: an update (even of the overlap policy) must not erase instants that passed unclaimed
/// before it. When a claim exists, the grant starts after it whatever this says.
fn first_owed_ms(job: &Job) -> i64 {
    job.created_ms + 1
}

fn duration_ms(d: Duration) -> i64 {
    i64::try_from(d.as_millis()).unwrap_or(i64::MAX)
}

/// The alarm: wakes the timer at the earliest deadline. One per timer, never one per job.
///
/// On a real-time clock it is a dedicated OS thread that sleeps on a condition variable with a timeout: the
/// kernel wakes it within tens of microseconds, below tokio's 1 ms timer resolution, and it takes nothing from
/// the runtime's workers. On a virtual clock (paused tokio time: tests, the simulation) it is a tokio task, so
/// that `tokio::time` drives it.
enum Alarm {
    Virtual(watch::Sender<Option<i64>>),
    Thread(Arc<ThreadAlarm>),
}

#[derive(Default)]
struct ThreadAlarm {
    state: std::sync::Mutex<AlarmState>,
    changed: std::sync::Condvar,
}

#[derive(Default)]
struct AlarmState {
    deadline: Option<i64>,
    /// Bumped by every `set`, so the thread can tell a new deadline from the one it just fired.
    generation: u64,
    closed: bool,
}

impl Alarm {
    fn start(clock: Arc<dyn Clock>, timer: ActorRef<Msg>) -> Self {
        if !clock.is_real_time() {
            let (tx, rx) = watch::channel(None);
            spawn_virtual_alarm(clock, timer, rx);
            return Alarm::Virtual(tx);
        }
        let shared = Arc::new(ThreadAlarm::default());
        let thread = shared.clone();
        let spawned = std::thread::Builder::new()
            .name("campanile-alarm".to_owned())
            .spawn(move || run_thread_alarm(&thread, clock.as_ref(), &timer));
        if let Err(error) = spawned {
            warn!(%error, "no alarm thread; falling back to a tokio timer");
        }
        Alarm::Thread(shared)
    }

    /// The next deadline (Unix ms), or none.
    fn set(&self, deadline: Option<i64>) {
        match self {
            Alarm::Virtual(tx) => {
                tx.send_replace(deadline);
            }
            Alarm::Thread(shared) => {
                let mut state = shared.state.lock().unwrap_or_else(|p| p.into_inner());
                state.deadline = deadline;
                state.generation += 1;
                shared.changed.notify_one();
            }
        }
    }
}

impl Drop for Alarm {
    fn drop(&mut self) {
        if let Alarm::Thread(shared) = self {
            shared
                .state
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .closed = true;
            shared.changed.notify_one();
        }
    }
}

fn run_thread_alarm(shared: &ThreadAlarm, clock: &dyn Clock, timer: &ActorRef<Msg>) {
    let mut state = shared.state.lock().unwrap_or_else(|p| p.into_inner());
    let mut fired: Option<u64> = None; // the generation whose deadline was fired
    loop {
        if state.closed {
            return;
        }
        let wait_us = match state.deadline {
            Some(at) if fired != Some(state.generation) => at * 1000 - clock.now_us(),
            _ => {
                // Nothing to wait for until the timer sets a (new) deadline.
                state = shared
                    .changed
                    .wait(state)
                    .unwrap_or_else(|p| p.into_inner());
                continue;
            }
        };
        if wait_us <= 0 {
            fired = Some(state.generation);
            drop(state);
            if timer.cast(Msg::Wake).is_err() {
                return;
            }
            state = shared.state.lock().unwrap_or_else(|p| p.into_inner());
            continue;
        }
        let timeout = Duration::from_micros(wait_us as u64);
        state = shared
            .changed
            .wait_timeout(state, timeout)
            .unwrap_or_else(|p| p.into_inner())
            .0;
    }
}

fn spawn_virtual_alarm(
    clock: Arc<dyn Clock>,
    timer: ActorRef<Msg>,
    mut deadline: watch::Receiver<Option<i64>>,
) {
    tokio::spawn(async move {
        loop {
            let at = *deadline.borrow_and_update();
            match at {
                None => {
                    if deadline.changed().await.is_err() {
                        return;
                    }
                }
                Some(at_ms) => {
                    tokio::select! {
                        biased;
                        changed = deadline.changed() => if changed.is_err() { return },
                        () = tokio::time::sleep_until(clock.deadline(at_ms)) => {
                            if timer.cast(Msg::Wake).is_err() {
                                return;
                            }
                            // The timer answers every Wake with a fresh deadline.
                            if deadline.changed().await.is_err() {
                                return;
                            }
                        }
                    }
                }
            }
        }
    });
}

/// The timer's actor state: the pure state plus its IO handles.
pub struct Running {
    state: State,
    clock: Arc<dyn Clock>,
    coordinator: Arc<dyn Coordinator>,
    dispatcher: ActorRef<dispatcher::Msg>,
    alarm: Alarm,
    claim_in_flight: bool,
    empty_waiters: Vec<RpcReplyPort<()>>,
    settled_waiters: Vec<RpcReplyPort<()>>,
    revoked: super::Revoked,
}

impl Running {
    fn publish_deadline(&self) {
        self.alarm.set(self.state.deadline(self.clock.now_ms()));
    }

    fn apply(&self, fx: Effects) {
        if !fx.fires.is_empty() {
            let _ = self.dispatcher.cast(dispatcher::Msg::Fires(fx.fires));
        }
        if !fx.records.is_empty() {
            let session = self.state.lease.map(|l| l.session);
            let _ = self
                .dispatcher
                .cast(dispatcher::Msg::Record(session, fx.records));
        }
    }

    fn request_claims(&mut self, myself: &ActorRef<Msg>, renewals: bool) {
        if self.claim_in_flight {
            return;
        }
        let Some(lease) = self.state.lease else {
            return;
        };
        let now = self.clock.now_ms();
        let claims = self.state.claims_due(now, renewals);
        let pending = if renewals {
            self.state.pending_settlements()
        } else {
            Vec::new()
        };
        if claims.is_empty() && pending.is_empty() {
            return;
        }
        self.claim_in_flight = true;
        let coordinator = self.coordinator.clone();
        let jobs: HashMap<JobId, (Arc<Job>, Tz)> = claims
            .iter()
            .filter_map(|c| {
                let slot = *self.state.index.get(&c.job)?;
                let entry = self.state.slots[slot as usize].as_ref()?;
                Some((c.job.clone(), (entry.job.clone(), entry.tz)))
            })
            .collect();
        let myself = myself.clone();
        tokio::spawn(async move {
            let result = claim_round_trip(
                coordinator.as_ref(),
                lease.session,
                claims,
                &jobs,
                pending,
                now,
            )
            .await;
            let _ = myself.cast(Msg::Claimed(result));
        });
    }
}

/// Claims, then settles the predecessors that can be settled: gone (session no longer live) or fully recorded.
/// A failure while settling leaves those predecessors pending for the next round; only a failed claim fails
/// the round trip.
async fn claim_round_trip(
    coordinator: &dyn Coordinator,
    session: SessionId,
    claims: Vec<FireClaim>,
    jobs: &HashMap<JobId, (Arc<Job>, Tz)>,
    pending: Vec<(JobClaim, Arc<Job>, Tz)>,
    now_ms: i64,
) -> Result<RoundTrip, CoordError> {
    let mut trip = RoundTrip::default();
    let mut to_settle = pending;
    for chunk in claims.chunks(10_000) {
        let results = coordinator.claim_fires(session, chunk).await?;
        for (claim, result) in chunk.iter().zip(results) {
            if let ClaimResult::Granted {
                previous: Some(previous),
                ..
            } = &result
                && previous.session != session
                && let Some((job, tz)) = jobs.get(&claim.job)
            {
                to_settle.push((previous.clone(), job.clone(), *tz));
            }
            trip.grants.push(Granted {
                job: claim.job.clone(),
                result,
            });
        }
    }
    if to_settle.is_empty() {
        return Ok(trip);
    }
    let live: std::collections::HashSet<SessionId> = match coordinator.members().await {
        Ok(members) => members.members.iter().map(|m| m.session).collect(),
        Err(error) => {
            debug!(%error, "members unavailable; settling later");
            return Ok(trip);
        }
    };
    for (previous, job, tz) in to_settle {
        let alive = live.contains(&previous.session);
        if alive && previous.through_ms >= now_ms {
            continue; // still in its tenure: it fires and records these itself
        }
        let mut candidates = Vec::new();
        let mut cursor = previous.settled_ms;
        while let Some(t) = next_instant(&job, tz, cursor) {
            if t > previous.through_ms || candidates.len() >= MAX_MISSED_SCAN {
                break;
            }
            candidates.push(t);
            cursor = t;
        }
        let mut in_doubt = candidates;
        if let (Some(&first), Some(&last)) = (in_doubt.first(), in_doubt.last()) {
            // Records starting in the range, plus the newest one starting before it: a `misfired` record may
            // cover a range of instants that begins earlier (the records of one job never overlap).
            let query = RunQuery {
                from_ms: None,
                before_ms: Some(last + 1),
                limit: in_doubt.len() + 1,
            };
            match coordinator.runs(&job.id, query).await {
                Ok(runs) => {
                    let covered: Vec<(i64, i64)> = runs
                        .iter()
                        .filter(|r| r.last_ms() >= first)
                        .map(|r| (r.scheduled_ms, r.last_ms()))
                        .collect();
                    in_doubt.retain(|&t| !covered.iter().any(|&(from, to)| from <= t && t <= to));
                }
                Err(error) => {
                    debug!(%error, job = %job.id, "runs unavailable; settling later");
                    continue;
                }
            }
        }
        if in_doubt.is_empty() || !alive {
            trip.settlements.push(Settlement {
                job: job.id.clone(),
                previous,
                in_doubt,
            });
        }
    }
    Ok(trip)
}

impl Actor for Timer {
    type Msg = Msg;
    type State = Running;
    type Arguments = Arguments;

    async fn pre_start(
        &self,
        myself: ActorRef<Msg>,
        args: Arguments,
    ) -> Result<Running, ActorProcessingErr> {
        let alarm = Alarm::start(args.clock.clone(), myself.clone());
        // Renew claims four times per lookahead, so a claim is renewed well before it runs out.
        let tick = (args.config.lookahead / 4).max(Duration::from_millis(50));
        myself.send_interval(tick, || Msg::ClaimTick);
        Ok(Running {
            state: State::new(args.node, args.config),
            clock: args.clock,
            coordinator: args.coordinator,
            dispatcher: args.dispatcher,
            alarm,
            claim_in_flight: false,
            empty_waiters: Vec::new(),
            settled_waiters: Vec::new(),
            revoked: args.revoked,
        })
    }

    async fn handle(
        &self,
        myself: ActorRef<Msg>,
        msg: Msg,
        running: &mut Running,
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
                running.state.upsert(jobs, now);
                running.request_claims(&myself, false);
            }
            Msg::Revoke(ids) => {
                running
                    .revoked
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .extend(ids.iter().cloned());
                running.state.revoke(&ids);
            }
            Msg::Remove(ids) => {
                let releases = running.state.remove(&ids);
                if let (Some(lease), false) = (running.state.lease, releases.is_empty()) {
                    let coordinator = running.coordinator.clone();
                    tokio::spawn(async move {
                        if let Err(error) =
                            coordinator.release_claims(lease.session, &releases).await
                        {
                            crate::metrics::coordinator_error("release_claims");
                            warn!(%error, "releasing claims of removed jobs failed");
                        }
                    });
                }
            }
            Msg::SessionChanged(lease) => {
                running.state.set_lease(lease);
                running.request_claims(&myself, false);
            }
            Msg::Wake => {
                let fx = running.state.wake(now);
                running.apply(fx);
            }
            Msg::ClaimTick => {
                running.state.refused.clear();
                running.request_claims(&myself, true);
            }
            Msg::Claimed(result) => {
                running.claim_in_flight = false;
                match result {
                    Ok(trip) => {
                        running.state.granted(trip.grants);
                        let fx = running.state.settle(trip.settlements);
                        running.apply(fx);
                        // Instants that became due while the claim was in flight go out now.
                        let fx = running.state.wake(running.clock.now_ms());
                        running.apply(fx);
                        // Jobs that arrived while the claim was in flight are claimed at once.
                        running.request_claims(&myself, false);
                    }
                    Err(error) => {
                        crate::metrics::coordinator_error("claim_fires");
                        warn!(%error, "claiming fires failed");
                    }
                }
            }
            Msg::Settled(fires) => running.state.settled(&fires),
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
        Ok(())
    }
}
